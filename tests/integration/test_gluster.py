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
