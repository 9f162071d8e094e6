"""Persistence: everything written survives an unmount and a new mount.

Owns: a tree of files with sizes around block boundaries, empty files, sparse
files, nested directories, symlinks, hard links, user xattrs, modes, owners
and times, written, unmounted, mounted again (and once more after changes
made in the second mount) and compared in full.

Divisions: building the tree / the tests.
"""
import os
import random

from conftest import BLOCK, tree_snapshot

SIZES = [0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 1, 2 * BLOCK,
         2 * BLOCK + 1, 3 * BLOCK + 2048, 256 * 1024 + 17]


def fname(n):
    """Where build_tree puts the file of n bytes."""
    i = SIZES.index(n)
    return ("a/" if i % 2 else "a/b/") + "f%d" % n


def build_tree(mnt):
    rng = random.Random(42)
    os.makedirs(mnt / "a" / "b" / "c")
    os.mkdir(mnt / "empty-dir")
    for n in SIZES:
        with open(mnt / fname(n), "wb") as f:
            f.write(rng.randbytes(n))
    with open(mnt / "a/b/c/sparse", "wb") as f:
        f.seek(2 * 1024 * 1024)
        f.write(b"tail")
    os.symlink("../" + fname(BLOCK), mnt / "a/link-rel")
    os.symlink("/nonexistent/target", mnt / "dangling")
    os.link(mnt / fname(1), mnt / "hardlink")
    os.chmod(mnt / fname(1), 0o640)
    os.chmod(mnt / "a/b", 0o750)
    os.mkfifo(mnt / "fifo", 0o600)
    os.setxattr(mnt / fname(0), "user.note", b"empty file with an xattr")
    os.setxattr(mnt / "a", "user.dir", rng.randbytes(200))
    os.chown(mnt / "a/b/c/sparse", 1001, 2000)
    os.utime(mnt / "a/b/c", ns=(1_600_000_000_111_111_111, 1_600_000_000_222_222_222))
    os.utime(mnt / fname(BLOCK), ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_002))


def test_remount_preserves_tree(mounted):
    mnt = mounted.mnt
    build_tree(mnt)
    before = tree_snapshot(mnt)
    assert before["hardlink"]["nlink"] == 2
    m = mounted.remount(mounted.mounts[-1])
    after = tree_snapshot(mnt)
    assert sorted(after) == sorted(before)
    for k in before:
        assert after[k] == before[k], "%s changed across remount" % k

    # change things in the second mount, then a third mount sees the changes
    with open(mnt / fname(BLOCK + 1), "r+b") as f:
        f.seek(BLOCK - 1)
        f.write(b"XY")
    os.truncate(mnt / fname(2 * BLOCK), BLOCK + 3)
    os.rename(mnt / "a/b/c", mnt / "moved")
    os.unlink(mnt / "hardlink")
    os.removexattr(mnt / "a", "user.dir")
    with open(mnt / "new-after-remount", "wb") as f:
        f.write(b"n" * (BLOCK * 3))
    before2 = tree_snapshot(mnt)
    m.unmount()
    mounted.mount()
    after2 = tree_snapshot(mnt)
    assert sorted(after2) == sorted(before2)
    for k in before2:
        assert after2[k] == before2[k], "%s changed across the second remount" % k


def test_remount_many_files(mounted):
    mnt = mounted.mnt
    rng = random.Random(5)
    expect = {}
    for i in range(300):
        name = "d%d/f%d" % (i % 7, i)
        os.makedirs(mnt / os.path.dirname(name), exist_ok=True)
        data = rng.randbytes(rng.choice([0, 1, 4095, 4096, 4097, rng.randrange(0, 20000)]))
        with open(mnt / name, "wb") as f:
            f.write(data)
        expect[name] = data
    mounted.remount(mounted.mounts[-1])
    for name, data in expect.items():
        with open(mnt / name, "rb") as f:
            assert f.read() == data, name
        assert os.stat(mnt / name).st_size == len(data)
