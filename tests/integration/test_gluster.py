"""One volume, two hosts: the mount lock through a real GlusterFS volume.

Owns: an ekmfs volume whose backing directory lives on GlusterFS, seen
through two GlusterFS clients (gluster.py) as two hosts would see it. A
mount through client 1 works; a second mount through client 2 exits 1 with
the one line that names the holder, nothing mounted: the OFD lock on
.ekmfs/mount.lock is held in GlusterFS's locks translator on the bricks,
not in either client's kernel. A daemon killed with SIGKILL on client 1
leaves a lock GlusterFS releases with its file, so client 2 mounts and
recovers.
"""
import copy
import json
import os
import shutil
import signal
import socket
import time

import pytest

from conftest import SLOW, Mount, Volume, is_mounted, make_root
from gluster import gluster  # noqa: F401 - the fixture
from test_holder import mounts_at


@pytest.fixture
def gvol(gluster):  # noqa: F811 - the fixture
    """An initialised ekmfs volume on GlusterFS: .backing through client 1;
    .other is the same volume through client 2, with its own mountpoint."""
    root = make_root()
    vol = Volume(root)
    vol.backing.rmdir()
    name = os.path.basename(root)
    vol.backing = gluster.clients[0] / name
    vol.backing.mkdir()
    vol.init()
    other = copy.copy(vol)
    other.backing = gluster.clients[1] / name
    other.mnt = vol.root / "mnt2"
    other.mnt.mkdir()
    other.mounts = []
    other.root = vol.root / "host2"            # its own daemon logs
    other.root.mkdir()
    assert (other.backing / ".ekmfs").is_dir(), "client 2 does not see the volume"
    yield vol, other
    other.cleanup()
    vol.cleanup()
    shutil.rmtree(vol.backing, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


def try_mount(vol):
    m = Mount(vol, "allow_other,default_permissions", (), len(vol.mounts))
    m.start(expect_ok=False)
    rc = m.wait_exit(30 * SLOW)
    if rc is None:
        m.kill()
    return rc, m.log()


def test_second_mount_from_another_client_is_refused(gvol):
    vol, other = gvol
    first = vol.mount()
    (vol.mnt / "f").write_bytes(b"through client 1")
    rc, err = try_mount(other)
    assert rc == 1, err
    assert err.splitlines() == [
        "ekmfs: the volume is already mounted by %s (pid %d) at %s: one daemon at a time "
        "(or -o shared on every host)" % (socket.gethostname(), first.proc.pid, vol.mnt)], err
    assert mounts_at(other.mnt) == 0 and mounts_at(vol.mnt) == 1
    # client 2 sees who holds it, and that the holder is alive
    st = json.loads(other.admin("status", "--json", other.backing).stdout)
    assert (st["holder"]["pid"], st["holder"]["live"]) == (first.proc.pid, True), st
    assert (vol.mnt / "f").read_bytes() == b"through client 1"
    first.unmount()


def test_a_killed_daemon_on_one_client_does_not_block_the_other(gvol):
    vol, other = gvol
    first = vol.mount()
    with open(vol.mnt / "f", "wb") as f:
        f.write(b"y" * 20000)
        f.flush()
        os.fsync(f.fileno())
    first.proc.send_signal(signal.SIGKILL)
    assert first.proc.wait(timeout=10 * SLOW) == -signal.SIGKILL
    first.kill()
    assert not is_mounted(vol.mnt)
    m = other.mount()
    assert (other.mnt / "f").read_bytes() == b"y" * 20000
    assert "recovery:" in m.log(), m.log()
    # client 1 sees the new holder once its GlusterFS client's metadata
    # cache has expired
    t0 = time.monotonic()
    while True:
        st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
        if st["holder"] or time.monotonic() > t0 + 10:
            break
        time.sleep(0.1)
    print("client 1 saw the new holder after %.1f s" % (time.monotonic() - t0))
    assert (st["holder"]["pid"], st["holder"]["live"]) == (m.proc.pid, True), st
    m.unmount()


# ---- shared mode (docs/SHARED.md) ------------------------------------------

SHARED = "allow_other,default_permissions,shared"


def mount_shared(vol):
    m = Mount(vol, SHARED, (), len(vol.mounts))
    vol.mounts.append(m)
    m.start()
    return m


def test_shared_and_exclusive_mounts_exclude_each_other(gvol):
    vol, other = gvol
    a = mount_shared(vol)
    rc, err = try_mount(other)                 # exclusive while shared
    assert rc == 1, err
    assert err.splitlines() == [
        "ekmfs: the volume is mounted in shared mode by %s (pid %d) at %s: mount it with "
        "-o shared too, or unmount those first" % (socket.gethostname(), a.proc.pid,
                                                   vol.mnt)], err
    assert mounts_at(other.mnt) == 0
    b = mount_shared(other)                    # shared joins shared
    st = json.loads(other.admin("status", "--json", other.backing).stdout)
    got = sorted((h["pid"], h["mountpoint"], h["mode"], h["live"])
                 for h in st["shared_holders"])
    assert got == sorted([(a.proc.pid, str(vol.mnt), "shared", True),
                          (b.proc.pid, str(other.mnt), "shared", True)]), st
    assert st["holder"] is None
    b.unmount()
    a.unmount()
    ex = vol.mount()                           # then shared while exclusive
    m = Mount(other, SHARED, (), 99)
    m.start(expect_ok=False)
    assert m.wait_exit(30 * SLOW) == 1, m.log()
    assert "already mounted by %s (pid %d)" % (socket.gethostname(), ex.proc.pid) in m.log()
    assert mounts_at(other.mnt) == 0
    ex.unmount()


def test_shared_close_to_open(gvol):
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    files = {"f%d" % n: os.urandom(n) for n in (0, 1, 4095, 4096, 4097, 100000, 1 << 20)}
    for name, data in files.items():
        with open(vol.mnt / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    for name, data in files.items():
        with open(other.mnt / name, "rb") as f:
            assert f.read() == data, name
    # overwritten shorter through b: a sees the new size and bytes at once
    for name, data in files.items():
        with open(other.mnt / name, "r+b") as f:
            f.truncate(len(data) // 3)
            f.seek(0)
            f.write(b"B" * (len(data) // 7))
    for name, data in files.items():
        want = b"B" * (len(data) // 7) + data[len(data) // 7:len(data) // 3]
        assert os.stat(vol.mnt / name).st_size == len(want), name
        with open(vol.mnt / name, "rb") as f:
            assert f.read() == want, name
    assert not a.auth_failures() and not b.auth_failures()
    b.unmount()
    a.unmount()


def hammer(path, seed, rounds):
    """open, write blocks (some whole, some across block edges), close."""
    import random
    rng = random.Random(seed)
    for i in range(rounds):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for _ in range(rng.randint(1, 4)):
                if rng.random() < 0.5:
                    off, n = rng.randrange(16) * 4096, 4096 * rng.randint(1, 3)
                else:
                    off, n = rng.randrange(16 * 4096), rng.randint(1, 9000)
                os.pwrite(fd, bytes([seed]) * n, off)
            if i % 10 == 0:
                os.fsync(fd)
        finally:
            os.close(fd)


def test_shared_two_writers_one_file(gvol):
    import multiprocessing
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    (vol.mnt / "h").write_bytes(b"\0" * 16 * 4096)
    ps = [multiprocessing.Process(target=hammer, args=(m / "h", seed, 60))
          for m, seed in ((vol.mnt, 0xA1), (other.mnt, 0xB2))]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120 * SLOW)
        assert p.exitcode == 0, "a writer failed (exit %s)\n--- a ---\n%s\n--- b ---\n%s" % (
            p.exitcode, a.log()[-3000:], b.log()[-3000:])
    # every block authenticates through both mounts, and both read the same
    da = (vol.mnt / "h").read_bytes()
    db = (other.mnt / "h").read_bytes()
    assert da == db
    assert set(da) <= {0, 0xA1, 0xB2} and {0xA1, 0xB2} <= set(da)
    assert not a.auth_failures() and not b.auth_failures()
    b.unmount()
    a.unmount()
    r = vol.admin("verify", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr
