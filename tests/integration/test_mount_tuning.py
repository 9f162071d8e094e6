"""Mount-level kernel tuning the daemon does itself: the mount's read-ahead
(`[daemon] read_ahead_kb`) and FUSE_HANDLE_KILLPRIV_V2 (docs/PERFORMANCE.md)."""

import os
import time

from conftest import SLOW


def bdi_read_ahead(mnt):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == str(mnt):
            dev = f[2]
    return int(open("/sys/class/bdi/%s/read_ahead_kb" % dev).read())


def read_ahead_becomes(mnt, want, timeout=5):
    """The daemon sets the bdi's read-ahead just after the mount appears
    (the bdi exists only then): a slow build is seen in between."""
    deadline = time.monotonic() + timeout * SLOW
    while bdi_read_ahead(mnt) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return bdi_read_ahead(mnt)


def test_read_ahead_raised(volume):
    m = volume.mount()
    assert read_ahead_becomes(volume.mnt, 1024) == 1024
    m.unmount()
    volume.write_config(volume.config.read_text().replace(
        "[audit]", "[daemon]\nread_ahead_kb = 0\n[audit]", 1))
    m = volume.mount()
    assert bdi_read_ahead(volume.mnt) == 128         # the kernel's own
    m.unmount()
    volume.write_config(volume.config.read_text().replace(
        "read_ahead_kb = 0", "read_ahead_kb = 4096"))
    m = volume.mount()
    assert read_ahead_becomes(volume.mnt, 4096) == 4096
    (volume.mnt / "f").write_bytes(b"z" * 300000)
    assert (volume.mnt / "f").read_bytes() == b"z" * 300000
    m.unmount()


def test_no_capability_lookup_per_write(volume):
    """The daemon negotiates FUSE_HANDLE_KILLPRIV_V2 (src/fs/wire.c), so the
    kernel stops asking for security.capability before every write(2)."""
    m = volume.mount(args=("-d",))
    fd = os.open(volume.mnt / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for i in range(20):
            os.write(fd, b"line %d\n" % i)
        os.fsync(fd)
    finally:
        os.close(fd)
    asked = m.log().count("opcode: GETXATTR")
    assert asked <= 2, "%d GETXATTR requests for 20 writes" % asked
    assert (volume.mnt / "log").read_bytes() == b"".join(b"line %d\n" % i for i in range(20))
    m.unmount()
