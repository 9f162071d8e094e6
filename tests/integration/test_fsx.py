"""fsx (tests/integration/fsx.py) through a real mount, and sparse files.

Owns: fsx with punch-hole and zero-range, mmap and reopen on the mount with
and without the writeback cache (several seeds); the same runs on the
plain tmp file system (the model is right) and with a model that forgets
punch-holes (fsx can fail); `truncate -s 100G` on the mount in under 0.1 s
and 1 MiB of backing space, reading as zeros, and writes far past the end.

Longer runs: `sudo /usr/bin/python3 tests/integration/fsx.py -N 200000 -S 7
MOUNTPOINT/file` (see the README).

Divisions: fsx / sparse files.
"""
import os
import time

import pytest

import fsx
from conftest import HEADER_SIZE, SLOW

OPS = int(os.environ.get("EKMFS_FSX_OPS", "3000"))


# ---- fsx ------------------------------------------------------------------------


def test_fsx_model_on_a_plain_file_system(tmp_path):
    fsx.Fsx(str(tmp_path / "f"), 1, 65536, 262144).run(OPS)


def test_fsx_fails_when_the_file_system_is_wrong(tmp_path):
    class ForgetsPunches(fsx.Fsx):
        def op_fallocate(self, mode, name):
            if mode & fsx.FALLOC_FL_PUNCH_HOLE:
                off, length = self.pick()
                self.note("punch_hole (done, but not in the model) 0x%x len 0x%x" % (off, length))
                fsx.fallocate(self.fd, mode, off, length)
                return
            super().op_fallocate(mode, name)

    with pytest.raises(fsx.Mismatch):
        ForgetsPunches(str(tmp_path / "f"), 2, 65536, 262144).run(OPS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fsx_on_the_mount(mounted, seed):
    fsx.Fsx(str(mounted.mnt / ("fsx%d" % seed)), seed, 65536, 262144).run(OPS)
    m = mounted.mounts[-1]
    m.unmount()
    r = mounted.admin("verify", mounted.backing)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("seed", [4, 5])
def test_fsx_without_the_writeback_cache(volume, seed):
    volume.write_config(volume.config.read_text().replace(
        "[tenant.default]", "[daemon]\nwriteback_cache = false\n\n[tenant.default]", 1))
    volume.mount()
    fsx.Fsx(str(volume.mnt / "fsx"), seed, 65536, 262144).run(OPS)
    volume.mounts[-1].unmount()


# ---- sparse files ---------------------------------------------------------------------


def test_truncate_to_100_gib_is_instant_and_takes_no_space(mounted):
    p = mounted.mnt / "big"
    with open(p, "wb") as f:
        f.write(b"head")
    t0 = time.monotonic()
    os.truncate(p, 100 << 30)
    took = time.monotonic() - t0
    assert took < 0.1 * SLOW, "truncate -s 100G took %.3f s" % took
    assert os.stat(p).st_size == 100 << 30
    st = os.stat(mounted.bpath("big"))
    assert st.st_blocks * 512 < 1 << 20, "%d bytes allocated" % (st.st_blocks * 512)
    with open(p, "rb") as f:
        assert f.read(4) == b"head"
        f.seek(50 << 30)
        assert f.read(1 << 16) == bytes(1 << 16)
        f.seek((100 << 30) - 10)
        assert f.read() == bytes(10)
    # a write far out, then everything still reads
    with open(p, "r+b") as f:
        f.seek(70 << 30)
        f.write(b"far")
    mounted.mounts[-1].unmount()
    st = os.stat(mounted.bpath("big"))
    assert st.st_blocks * 512 < 1 << 20
    r = mounted.admin("verify", mounted.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    m = mounted.mount()
    with open(p, "rb") as f:
        f.seek(70 << 30)
        assert f.read(3) == b"far"
        f.seek((70 << 30) - 4096)
        assert f.read(4096) == bytes(4096)
    m.unmount()


def test_a_zeroed_block_of_a_sparse_file_is_not_a_hole(mounted):
    """Holes come from the authenticated record, never from zeros on disk."""
    p = mounted.mnt / "f"
    with open(p, "wb") as f:
        f.write(os.urandom(3 * 4096))
        f.truncate(1 << 20)
    mounted.mounts[-1].unmount()
    b = mounted.bpath("f")
    with open(b, "r+b") as f:
        f.seek(HEADER_SIZE + 4136)          # block 1, written data
        f.write(bytes(4136))
    m = mounted.mount()
    with open(p, "rb") as f:
        assert f.read(4096)
        f.seek(4096)
        with pytest.raises(OSError):
            f.read(4096)
        f.seek(8 * 4096)
        assert f.read(4096) == bytes(4096)   # a real hole
    m.unmount()
