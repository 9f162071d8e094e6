"""Fault injection through the I/O seam of a mounted daemon.

Owns: what a caller sees when the backing file system fails under ekmfs:
short writes (completed by the daemon), EIO and ENOSPC on writes, EIO on
reads and fsync. Each case checks a clear errno to the caller, that no
block is left damaged (the file reads back whole, with its old content
where the write failed), and that the daemon keeps serving once the fault
is gone. Needs a build with `-Dfault_injection=true` (tools/test.sh makes
one, build-fault/); against other builds these tests are skipped.

The daemon reads its faults from the file named by $EKMFS_FAULT_FILE (see
src/io/fault.c): "OP KIND [count=N] [min_off=BYTES]".
"""
import errno
import os
import subprocess

import pytest

from conftest import BLOCK, EKMFS, backing_size, drop_caches


def fault_build():
    out = subprocess.run([str(EKMFS), "--version"], capture_output=True, text=True).stdout
    return "fault injection: enabled" in out


pytestmark = pytest.mark.skipif(not fault_build(),
                                reason="needs a -Dfault_injection=true build")


@pytest.fixture
def faulty(volume, monkeypatch):
    """A mounted volume whose daemon obeys volume.root/faults."""
    ctl = volume.root / "faults"
    ctl.write_text("")
    monkeypatch.setenv("EKMFS_FAULT_FILE", str(ctl))
    m = volume.mount()
    volume.fault = lambda spec: ctl.write_text(spec + "\n")
    yield volume
    ctl.write_text("")
    if m.proc.poll() is None:
        m.unmount()


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def direct_write(path, data, off, flags=0):
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT | flags)
    try:
        return os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def still_serving(vol):
    p = vol.mnt / "after"
    p.write_bytes(b"ok" * 5000)
    drop_caches()
    assert read_file(p) == b"ok" * 5000


def test_enospc_while_extending_keeps_old_content(faulty):
    p = faulty.mnt / "f"
    old = os.urandom(3 * BLOCK + 100)
    p.write_bytes(old)
    # Writes beyond the current backing end fail: the extension cannot land.
    faulty.fault("write ENOSPC min_off=%d" % backing_size(len(old)))
    assert errno_of(direct_write, p, os.urandom(5 * BLOCK), 2 * BLOCK) == errno.ENOSPC
    faulty.fault("")
    drop_caches()
    assert os.path.getsize(faulty.bpath("f")) == backing_size(len(old))
    assert read_file(p) == old
    still_serving(faulty)


def test_eio_on_overwrite_is_reported(faulty):
    p = faulty.mnt / "f"
    old = os.urandom(4 * BLOCK)
    p.write_bytes(old)
    faulty.fault("write EIO")
    assert errno_of(direct_write, p, b"z" * 100, BLOCK + 10) == errno.EIO
    faulty.fault("")
    drop_caches()
    assert read_file(p) == old             # nothing was written: no torn block
    still_serving(faulty)


def test_short_writes_are_completed(faulty):
    p = faulty.mnt / "f"
    faulty.fault("write short")
    data = os.urandom(2 * 1024 * 1024 + 7)
    with open(p, "wb") as f:
        f.write(data)
    faulty.fault("")
    drop_caches()
    assert read_file(p) == data
    assert os.path.getsize(faulty.bpath("f")) == backing_size(len(data))


def test_buffered_write_error_surfaces_at_fsync(faulty):
    p = faulty.mnt / "f"
    p.write_bytes(b"a" * BLOCK)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, os.urandom(10 * BLOCK))     # cached by the kernel
        faulty.fault("write ENOSPC")
        assert errno_of(os.fsync, fd) in (errno.ENOSPC, errno.EIO)
        faulty.fault("")
    finally:
        os.close(fd)
    drop_caches()
    data = read_file(p)                          # every block authenticates
    assert data[:BLOCK] == b"a" * BLOCK
    still_serving(faulty)


def test_buffered_write_error_surfaces_at_close(faulty):
    """close() without fsync: the kernel writes its dirty pages back itself
    before the file goes (the daemon has no flush handler, so no FLUSH round
    trip follows) and close reports their failure."""
    p = faulty.mnt / "g"
    p.write_bytes(b"a" * BLOCK)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, os.urandom(10 * BLOCK))         # cached by the kernel
    faulty.fault("write ENOSPC")
    try:
        assert errno_of(os.close, fd) in (errno.ENOSPC, errno.EIO)
    finally:
        faulty.fault("")
    drop_caches()
    assert read_file(p)[:BLOCK] == b"a" * BLOCK  # every block authenticates
    still_serving(faulty)


def test_read_eio_then_recovers(faulty):
    p = faulty.mnt / "f"
    data = os.urandom(6 * BLOCK)
    p.write_bytes(data)
    drop_caches()
    faulty.fault("read EIO")
    assert errno_of(read_file, p) == errno.EIO
    faulty.fault("")
    drop_caches()
    assert read_file(p) == data
    still_serving(faulty)


def test_fsync_eio_reported(faulty):
    p = faulty.mnt / "f"
    with open(p, "wb") as f:
        f.write(b"x" * 100)
        faulty.fault("fsync EIO")
        assert errno_of(os.fsync, f.fileno()) == errno.EIO
        faulty.fault("")
        os.fsync(f.fileno())
    still_serving(faulty)
