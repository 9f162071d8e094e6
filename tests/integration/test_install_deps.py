"""tools/install-deps.sh when another package manager is busy or was cut off.

Owns: the wait for the dpkg lock (bounded, naming the process it waits
for), the give-up message when the lock is not released in time, and
finishing an interrupted run (dpkg --configure -a) when packages were left
half-configured. The script's functions are sourced and pointed at a
temporary dpkg database (EKMFS_DPKG_ADMINDIR), so the tests never touch
the system's packages or its locks.
"""
import os
import subprocess
import sys
import time

from conftest import REPO

SCRIPT = REPO / "tools" / "install-deps.sh"

FAKE_STATUS = """Package: ekmfs-fake-{n}
Status: install ok {state}
Priority: optional
Section: misc
Maintainer: nobody <nobody@example.org>
Architecture: all
Version: 1.0
Description: a package of the install-deps test
 It has no files and no maintainer scripts.

"""


def admindir(tmp_path, states=()):
    d = tmp_path / "dpkg"
    for sub in ("info", "updates", "triggers"):
        (d / sub).mkdir(parents=True)
    (d / "available").write_text("")
    (d / "status").write_text("".join(FAKE_STATUS.format(n=i, state=s)
                                      for i, s in enumerate(states)))
    for lock in ("lock-frontend", "lock"):
        (d / lock).write_text("")
    return d


def run_function(d, function, wait=30):
    env = dict(os.environ, EKMFS_DPKG_ADMINDIR=str(d), EKMFS_DPKG_LOCK_WAIT=str(wait))
    t0 = time.monotonic()
    # $0 stays "bash": sourced, the script defines its functions, runs no main
    r = subprocess.run(["bash", "-c", 'source "$1"; %s' % function, "bash", str(SCRIPT)],
                       capture_output=True, text=True, env=env, timeout=120)
    return r, time.monotonic() - t0


def hold_lock(path, seconds):
    """A child process that holds dpkg's kind of lock (fcntl) on path."""
    p = subprocess.Popen([sys.executable, "-c", """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
""", str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_waits_for_the_lock_holder_and_says_who(tmp_path):
    d = admindir(tmp_path)
    holder = hold_lock(d / "lock-frontend", 3)
    try:
        r, took = run_function(d, "wait_for_package_manager")
    finally:
        holder.wait()
    assert r.returncode == 0, r.stderr
    assert took >= 2, "returned after %.1f s while the lock was held" % took
    assert r.stdout.splitlines() == [
        "dependencies: waiting for another package manager (pid %d: python3) to finish "
        "(up to 30 s)..." % holder.pid,
        "dependencies: the other package manager has finished"], r.stdout


def test_no_lock_no_wait(tmp_path):
    d = admindir(tmp_path)
    r, took = run_function(d, "wait_for_package_manager")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert took < 2


def test_gives_up_after_the_bound_with_one_line(tmp_path):
    d = admindir(tmp_path)
    holder = hold_lock(d / "lock", 30)
    try:
        r, took = run_function(d, "wait_for_package_manager", wait=2)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1
    assert took < 10
    assert r.stderr.splitlines() == [
        "tools/install-deps.sh: another package manager (pid %d: python3) still holds "
        "the dpkg/apt lock after 2 s; let it finish (or stop it), then run this again"
        % holder.pid]


def status_of(d):
    r = subprocess.run(["dpkg-query", "--admindir=%s" % d, "-W",
                        "-f=${Package} ${Status}\n"], capture_output=True, text=True)
    return sorted(r.stdout.splitlines())


def test_finishes_an_interrupted_run(tmp_path):
    """Half-configured packages: said, then dpkg --configure -a, once the
    other package manager has let go of the lock."""
    d = admindir(tmp_path, ["half-configured", "installed", "unpacked"])
    holder = hold_lock(d / "lock-frontend", 2)
    try:
        r, _ = run_function(d, "finish_interrupted_run")
    finally:
        holder.wait()
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert out[0] == ("dependencies: an earlier package run was interrupted and left these "
                      "unfinished: ekmfs-fake-0 ekmfs-fake-2; finishing it with dpkg "
                      "--configure -a")
    assert out[1].startswith("dependencies: waiting for another package manager (pid %d"
                             % holder.pid)
    assert out[-1] == "dependencies: the interrupted run is finished"
    assert status_of(d) == ["ekmfs-fake-%d install ok installed" % i for i in range(3)]
    # nothing left: nothing said, nothing run
    r, _ = run_function(d, "finish_interrupted_run")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_script_still_runs_whole(tmp_path):
    """Executed (not sourced) on this machine, where everything is installed:
    no apt-get, exit 0."""
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dependencies: all installed"
