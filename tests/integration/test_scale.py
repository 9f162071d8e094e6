"""Many inodes, few descriptors (issue 17).

The daemon names inodes by file handles and keeps only a bounded cache of
descriptors (src/fs/fdcache.c), so the kernel may hold more inodes than the
daemon may open files. Here the daemon runs under a descriptor limit of
4096 (prlimit: it can raise its soft limit only to the hard one) and one
directory gets more than 25,000 files: no EMFILE, and /proc/PID/fd stays
within the cache's limit. Hard links, renames over open files and unlinked
open files keep working after their descriptors were evicted. Without file
handles (inode_file_handles = never) the daemon refuses new inodes with
ENFILE at its budget and keeps working for what is open.

The larger run is bench/scale.sh (10^6 files); test_scale_script runs it
with a small count.
"""
import errno
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import SLOW

NFILES = int(os.environ.get("EKMFS_SCALE_FILES", 25_500))
NOFILE = 4096
CACHE = NOFILE // 2           # the cache's automatic size (src/fs/main.c)
SLACK = 128                   # open files, journals, sockets, in-flight ops


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def nofile_soft(pid):
    for line in Path("/proc/%d/limits" % pid).read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no limit line")


def daemon_state(vol):
    r = vol.admin("status", "--json", str(vol.backing))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["daemon"]
    assert d is not None, "status --json has no daemon member while mounted"
    return d


def low_limit_mount(volume, nofile, extra=""):
    if extra:
        volume.write_config(volume.config.read_text().replace(
            "[audit]", "[daemon]\n%s\n[audit]" % extra, 1))
    volume.launcher = ["prlimit", "--nofile=%d:%d" % (nofile, nofile), "--"]
    m = volume.mount()
    assert nofile_soft(m.proc.pid) == nofile
    return m


@pytest.mark.hang_timeout(900)
def test_many_files_one_directory_under_low_fd_limit(volume):
    m = low_limit_mount(volume, NOFILE)
    pid = m.proc.pid
    mnt = volume.mnt
    flat = mnt / "flat"
    flat.mkdir()

    # Held through the whole run, to be checked after their inodes'
    # descriptors were evicted: an open file that loses its last name, a
    # hard link, and an open file renamed over.
    (mnt / "a").write_bytes(b"alpha")
    held_a = os.open(mnt / "a", os.O_RDWR)
    os.link(mnt / "a", mnt / "a2")
    (mnt / "c").write_bytes(b"old c")
    held_c = os.open(mnt / "c", os.O_RDONLY)
    (mnt / "d").write_bytes(b"new d")

    peak = 0
    for i in range(NFILES):
        fd = os.open(flat / ("f%06d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b"%d\n" % i)
        os.close(fd)
        if i % 500 == 0:
            peak = max(peak, fd_count(pid))
        if i == NFILES // 2:
            os.unlink(mnt / "a")
            os.rename(mnt / "d", mnt / "c")
    peak = max(peak, fd_count(pid))

    # find + stat of every file, and a sample read
    names = os.listdir(flat)
    assert len(names) == NFILES
    for n in names:
        st = os.stat(flat / n)
        assert st.st_size == len(b"%d\n" % int(n[1:])), n
    for i in range(0, NFILES, 997):
        assert (flat / ("f%06d" % i)).read_bytes() == b"%d\n" % i
    peak = max(peak, fd_count(pid))
    state = daemon_state(volume)

    # The kernel held thousands of inodes; the daemon never the descriptors.
    assert state["file_handles"] is True
    assert state["descriptor_limit"] == NOFILE
    assert state["fd_cache"]["limit"] == CACHE
    # An eviction happens only while more inodes are alive than the cache
    # keeps descriptors (their count now depends on what the kernel has
    # forgotten meanwhile: drop_caches by other jobs, memory pressure).
    assert state["fd_cache"]["evictions"] > 0
    assert state["inodes"] >= 1
    assert peak <= CACHE + SLACK, "daemon held %d descriptors" % peak
    assert state["descriptors"] <= CACHE + SLACK

    # POSIX after eviction: the unlinked open file, its other name, the
    # file renamed over while open.
    os.pwrite(held_a, b"ALPHA!", 0)
    assert os.pread(held_a, 100, 0) == b"ALPHA!"
    assert (mnt / "a2").read_bytes() == b"ALPHA!"
    assert os.stat(mnt / "a2").st_nlink == 1
    assert not (mnt / "a").exists()
    assert os.pread(held_c, 100, 0) == b"old c"
    assert (mnt / "c").read_bytes() == b"new d"
    assert os.fstat(held_c).st_nlink == 0
    os.close(held_a)
    os.close(held_c)
    assert ".ekmfs" not in os.listdir(mnt)
    m.unmount()

    # Everything is still there after a remount.
    volume.launcher = []
    m = volume.mount()
    assert len(os.listdir(flat)) == NFILES
    assert (flat / ("f%06d" % (NFILES - 1))).read_bytes() == b"%d\n" % (NFILES - 1)
    m.unmount()


@pytest.mark.hang_timeout(600)
def test_without_file_handles_the_budget_holds(volume):
    """The fallback (a backing file system without file handles, forced
    here): every inode keeps a descriptor; at the budget new inodes are
    refused with ENFILE, and what is open keeps working."""
    nofile = 1024
    budget = nofile - nofile // 4
    m = low_limit_mount(volume, nofile, "inode_file_handles = never")
    pid = m.proc.pid
    mnt = volume.mnt
    (mnt / "open").write_bytes(b"kept open")
    held = os.open(mnt / "open", os.O_RDWR)

    made, err = 0, None
    for i in range(2 * nofile):
        try:
            fd = os.open(mnt / ("f%05d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as e:
            err = e.errno
            break
        os.write(fd, b"x")
        os.close(fd)
        made += 1
    assert err == errno.ENFILE, "creates ended with %s after %d files" % (
        errno.errorcode.get(err), made)
    assert budget - 64 <= made <= budget, made
    assert fd_count(pid) <= nofile

    state = daemon_state(volume)
    assert state["file_handles"] is False
    assert state["fd_cache"]["refused"] >= 1
    assert state["fd_cache"]["kept"] <= budget

    # What the kernel holds still works: the open file, and opening,
    # reading and writing files it has looked up.
    os.pwrite(held, b"KEPT", 0)
    assert os.pread(held, 100, 0) == b"KEPT open"
    assert (mnt / "f00000").read_bytes() == b"x"
    with open(mnt / "f00001", "r+b") as f:
        f.write(b"y")
    assert (mnt / "f00001").read_bytes() == b"y"
    os.close(held)
    assert "refused (ENFILE)" in m.log()
    m.unmount()


def test_scale_script(volume, tmp_path):
    """bench/scale.sh with a small count: every step runs and reports."""
    script = Path(__file__).resolve().parents[2] / "bench" / "scale.sh"
    build = os.environ.get("EKMFS_BUILD") or str(Path(__file__).resolve().parents[2] / "build")
    out = tmp_path / "report"
    r = subprocess.run([str(script), "--files", "3000", "--build", build,
                        "--dir", str(tmp_path / "run"), "--report", str(out)],
                       capture_output=True, text=True, timeout=600 * SLOW)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = out.read_text()
    for step in ("create-tree", "create-flat", "find-stat", "read-sample", "status",
                 "verify", "backup-manifest", "rotate-kek", "remount", "daemon"):
        assert "\n" + step + " " in "\n" + report, step + " missing:\n" + report
    assert "EMFILE" not in r.stdout + r.stderr


def test_tenant_of_a_file_reopened_by_handle(fresh):
    """A file whose descriptor was evicted is reopened by its handle; once
    the backing file system has dropped its dentry that descriptor has no
    path ("/"), and a new header (O_TRUNC) must still take the tenant of
    the file's path, not the default one."""
    vol = fresh
    vol.run_dir = vol.root / "run"
    vol.write_config("[daemon]\ncontrol_dir = %s\nfd_cache = 1\nentry_timeout = 60\n"
                     "[tenant.default]\nkey_file = %s\n"
                     "[tenant.acme]\nkey_file = %s\npaths = /acme\n"
                     % (vol.run_dir, vol.key_file, vol.keydir / "acme.key"))
    vol.init()
    os.mkdir(vol.backing / "acme")
    m = vol.mount()
    mnt = vol.mnt
    names = ["f%d" % i for i in range(20)]
    held = []
    for n in names:
        os.mknod(mnt / "acme" / n, 0o644 | stat.S_IFREG)   # empty, no header yet
        # pinned in the kernel (drop_caches would make it forget them)
        held.append(os.open(mnt / "acme" / n, os.O_PATH))
    (mnt / "other").write_bytes(b"x")      # evicts the last descriptors
    for _ in range(3):
        subprocess.run(["sh", "-c", "sync; echo 2 > /proc/sys/vm/drop_caches"], check=True)
    for n in names:
        with open(mnt / "acme" / n, "r+b") as f:  # the first write makes the header
            f.write(b"second")
        assert (mnt / "acme" / n).read_bytes() == b"second"
    for fd in held:
        os.close(fd)
    r = vol.admin("status", "--json", str(vol.backing))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["misplaced_files"] == 0, [
        (t["name"], t["misplaced_files"], t["misplaced_away"]) for t in doc["tenants"]]
    m.unmount()
