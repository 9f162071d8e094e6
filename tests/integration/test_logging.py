"""Where the daemon's log goes: [daemon] log_file, and stderr when no
syslog daemon listens.

Owns: a detached daemon with log_file writes timestamped lines there
(its mount line), reopens the file on SIGHUP after it was moved away
(log rotation), refuses a log file inside the backing directory or under
the mountpoint; without log_file and without a syslog listener, a
detached daemon keeps logging to stderr when that is a file, and warns
before detaching when it is a pipe. Real mounts, daemons that detach.
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import EKMFS, SLOW, is_mounted, run_cli

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ekmfs\[(\d+)\] "
                  r"(error|warning|info|debug): (.*)$")


def wait_for(pred, what, timeout=15):
    deadline = time.monotonic() + timeout * SLOW
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def syslog_listens():
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_UNIX, kind)
        try:
            s.connect("/dev/log")
            return True
        except OSError:
            pass
        finally:
            s.close()
    return False


def unmount_detached(vol, pid):
    if is_mounted(vol.mnt):
        subprocess.run(["fusermount3", "-u", str(vol.mnt)], capture_output=True)
    if pid:
        wait_for(lambda: not os.path.exists("/proc/%d" % pid), "the daemon to exit", 30)


def with_log_file(vol, path):
    vol.write_config("[daemon]\nlog_file = %s\n[tenant.default]\nkey_file = %s\n"
                     % (path, vol.key_file))


def lines(path):
    out = []
    for l in path.read_text().splitlines():
        m = LINE.match(l)
        assert m, "not a log line: %r" % l
        out.append(m.groups())
    return out


def test_log_file_gets_the_mount_line_and_is_reopened_on_sighup(volume):
    logdir = volume.root / "log"
    logdir.mkdir()
    log = logdir / "ekmfs.log"
    with_log_file(volume, log)
    pid = None
    try:
        r = run_cli([EKMFS, "-c", volume.config, volume.backing, volume.mnt], timeout=30)
        assert r.returncode == 0, r.stderr
        assert is_mounted(volume.mnt)
        assert r.stderr == ""                   # the log went to the file
        wait_for(lambda: log.exists() and "mounted" in log.read_text(), "the mount line")
        assert oct(log.stat().st_mode & 0o777) == "0o600"
        mounted = [l for l in lines(log) if l[3] == "mounted %s at %s"
                   % (volume.backing, volume.mnt)]
        assert len(mounted) == 1 and mounted[0][2] == "info", log.read_text()
        pid = int(mounted[0][1])
        # logrotate: move the file away, then SIGHUP
        rotated = logdir / "ekmfs.log.1"
        log.rename(rotated)
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: log.exists() and "configuration reloaded" in log.read_text(),
                 "the reopened log file")
        assert "configuration reloaded" not in rotated.read_text()
        assert all(int(l[1]) == pid for l in lines(log))
        (volume.mnt / "f").write_bytes(b"still serving")
        assert (volume.mnt / "f").read_bytes() == b"still serving"
    finally:
        unmount_detached(volume, pid)


@pytest.mark.parametrize("where", ["backing", "mountpoint"])
def test_log_file_inside_the_volume_is_refused(volume, where):
    log = (volume.backing if where == "backing" else volume.mnt) / "ekmfs.log"
    with_log_file(volume, log)
    r = run_cli([EKMFS, "-c", volume.config, "-f", volume.backing, volume.mnt], timeout=30)
    assert r.returncode == 1 and not is_mounted(volume.mnt)
    err = r.stderr.splitlines()
    assert len(err) == 1, r.stderr
    if where == "backing":
        assert err[0] == ("ekmfs: log_file %s is inside the backing directory %s: the log "
                          "would be a plaintext file in the volume; put it elsewhere"
                          % (log, volume.backing))
    else:
        assert err[0].startswith("ekmfs: log_file %s is under the mountpoint %s"
                                 % (log, volume.mnt)), err[0]
    assert not log.exists()


@pytest.mark.skipif(syslog_listens(), reason="a syslog daemon listens on /dev/log here")
def test_without_syslog_a_detached_daemon_logs_to_stderr(volume, tmp_path):
    """No syslog daemon: the detached daemon keeps its stderr when that is
    a file (as under a service manager's journal), instead of losing every
    line to syslog(3)."""
    errfile = tmp_path / "stderr"
    try:
        with open(errfile, "wb") as err:
            r = subprocess.run([str(EKMFS), "-c", str(volume.config), str(volume.backing),
                                str(volume.mnt)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err, timeout=30 * SLOW)
        assert r.returncode == 0, errfile.read_text()
        assert is_mounted(volume.mnt)
        wait_for(lambda: "mounted %s at %s" % (volume.backing, volume.mnt)
                 in errfile.read_text(), "the mount line on stderr")
        text = errfile.read_text()
        assert "ekmfs: no syslog daemon listens on /dev/log: logging to stderr" in text
    finally:
        unmount_detached(volume, None)


@pytest.mark.skipif(syslog_listens(), reason="a syslog daemon listens on /dev/log here")
def test_without_syslog_a_pipe_gets_a_warning_not_the_log(volume):
    """stderr a pipe (a caller that waits for its end): the daemon warns,
    then detaches from it, so the caller is not held."""
    try:
        r = run_cli([EKMFS, "-c", volume.config, volume.backing, volume.mnt], timeout=30)
        assert r.returncode == 0, r.stderr
        assert is_mounted(volume.mnt)
        assert ("no syslog daemon listens on /dev/log and stderr is not a file or a "
                "journal: the log is lost once the daemon detaches; set [daemon] "
                "log_file") in r.stderr
    finally:
        unmount_detached(volume, None)
