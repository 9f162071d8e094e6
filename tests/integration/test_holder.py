"""One daemon per volume: the mount lock on the backing store (holder.h).

Owns: a second mount of a mounted volume (on top of the first, or at
another mountpoint) exits 1 with one line naming the holder (host, pid,
mountpoint) and mounts nothing; a daemon killed with SIGKILL leaves a holder
record whose lock the kernel dropped, which does not block the next mount
(that mount recovers); `ekmfs-admin status` (text and --json) shows the
holder, or that the volume is not mounted. Real mounts throughout.
"""
import json
import os
import signal
import socket
import time

from conftest import SLOW, Mount, is_mounted


def mounts_at(path, fstype="fuse.ekmfs"):
    n = 0
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(path) and fields[2] == fstype:
                n += 1
    return n


def second_mount(vol, where):
    """Start ekmfs for vol at where; return (exit status, stderr)."""
    m = Mount(vol, "allow_other,default_permissions", (), len(vol.mounts))
    m.path = where
    m.start(expect_ok=False)
    rc = m.wait_exit(30 * SLOW)
    if rc is None:
        m.kill()
    assert rc is not None, "the second ekmfs did not exit: %s" % m.log()
    return rc, m.log()


def holder_line(first, where):
    return ("ekmfs: the volume is already mounted by %s (pid %d) at %s: one daemon at a "
            "time (or -o shared on every host)" % (socket.gethostname(), first.proc.pid,
                                                   where))


def test_second_mount_on_top_is_refused(mounted):
    vol = mounted
    first = vol.mounts[0]
    (vol.mnt / "f").write_bytes(b"data")
    rc, err = second_mount(vol, vol.mnt)
    assert rc == 1, err
    assert err.splitlines() == [holder_line(first, vol.mnt)], err
    assert mounts_at(vol.mnt) == 1
    # the first mount still serves, and its holder record is intact
    assert (vol.mnt / "f").read_bytes() == b"data"
    st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
    assert st["holder"]["pid"] == first.proc.pid


def test_second_mount_elsewhere_is_refused(mounted):
    vol = mounted
    first = vol.mounts[0]
    other = vol.root / "mnt2"
    other.mkdir()
    rc, err = second_mount(vol, other)
    assert rc == 1, err
    assert err.splitlines() == [holder_line(first, vol.mnt)], err
    assert mounts_at(other) == 0
    assert mounts_at(vol.mnt) == 1


def test_status_shows_the_holder(volume):
    vol = volume
    r = vol.admin("status", vol.backing)
    assert r.returncode == 0, r.stderr
    assert "mounted by:     not mounted\n" in r.stdout
    st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
    assert st["holder"] is None and st["recovery_pending"] is False

    before = time.time()
    m = vol.mount()
    r = vol.admin("status", vol.backing)
    line = [l for l in r.stdout.splitlines() if l.startswith("mounted by:")]
    assert len(line) == 1, r.stdout
    assert line[0].startswith("mounted by:     %s pid %d at %s since "
                              % (socket.gethostname(), m.proc.pid, vol.mnt)), line
    st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
    h = st["holder"]
    assert (h["host"], h["pid"], h["mountpoint"], h["live"], h["mode"]) == \
        (socket.gethostname(), m.proc.pid, str(vol.mnt), True, "exclusive"), h
    since = time.mktime(time.strptime(h["since"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 2 <= since <= time.time() + 2, (h["since"], before)
    assert st["recovery_pending"] is False

    m.unmount()
    r = vol.admin("status", vol.backing)
    assert "mounted by:     not mounted\n" in r.stdout, r.stdout
    st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
    assert st["holder"] is None


def test_a_killed_daemon_does_not_block_the_next_mount(volume):
    vol = volume
    m = vol.mount()
    with open(vol.mnt / "f", "wb") as f:
        f.write(b"x" * 10000)
        f.flush()
        os.fsync(f.fileno())
    pid = m.proc.pid
    m.proc.send_signal(signal.SIGKILL)
    assert m.proc.wait(timeout=10 * SLOW) == -signal.SIGKILL
    m.kill()                                  # fusermount3 -uz of the dead mount
    assert not is_mounted(vol.mnt)
    # the record is left, its lock is not held: status says so
    assert (vol.backing / ".ekmfs" / "holder").exists()
    r = vol.admin("status", vol.backing)
    assert ("mounted by:     not mounted (the last holder, %s pid %d, died: the next "
            "mount recovers)" % (socket.gethostname(), pid)) in r.stdout, r.stdout
    st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
    assert st["holder"]["live"] is False and st["holder"]["pid"] == pid
    assert st["recovery_pending"] is True

    m2 = vol.mount()
    assert (vol.mnt / "f").read_bytes() == b"x" * 10000
    assert "recovery:" in m2.log(), m2.log()
    st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
    assert st["holder"]["pid"] == m2.proc.pid and st["holder"]["live"] is True
    m2.unmount()
