"""Mount-level kernel tuning the daemon does itself: the mount's read-ahead
(`[daemon] read_ahead_kb`, docs/PERFORMANCE.md)."""


def bdi_read_ahead(mnt):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == str(mnt):
            dev = f[2]
    return int(open("/sys/class/bdi/%s/read_ahead_kb" % dev).read())


def test_read_ahead_raised(volume):
    m = volume.mount()
    assert bdi_read_ahead(volume.mnt) == 1024
    m.unmount()
    volume.write_config(volume.config.read_text().replace(
        "[audit]", "[daemon]\nread_ahead_kb = 0\n[audit]", 1))
    m = volume.mount()
    assert bdi_read_ahead(volume.mnt) == 128         # the kernel's own
    m.unmount()
    volume.write_config(volume.config.read_text().replace(
        "read_ahead_kb = 0", "read_ahead_kb = 4096"))
    m = volume.mount()
    assert bdi_read_ahead(volume.mnt) == 4096
    (volume.mnt / "f").write_bytes(b"z" * 300000)
    assert (volume.mnt / "f").read_bytes() == b"z" * 300000
    m.unmount()
