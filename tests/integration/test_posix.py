"""POSIX behaviour of a mounted ekmfs volume.

Owns: the file-system semantics a data store and a backup job rely on, checked
through a real FUSE mount (allow_other,default_permissions): ownership and
permissions as non-root users, rename, links, special files, sparse files and
truncation at block boundaries, open flags, concurrency, mmap, xattrs,
fallocate, locks, times, statfs, fsync and directories.

Divisions: helpers / permissions / rename / links / special files /
sizes and truncation / open flags / concurrency / mmap / xattrs / fallocate /
locks / times / statfs and fsync / directories.
"""
import ctypes
import errno
import fcntl
import mmap
import os
import random
import stat
import subprocess
import threading
import time

import pytest

from conftest import (BLOCK, backing_size, errno_of, run_as)

# ---- helpers ---------------------------------------------------------------

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2


def renameat2(old, new, flags):
    libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                               ctypes.c_char_p, ctypes.c_uint]
    r = libc.renameat2(AT_FDCWD, os.fsencode(str(old)), AT_FDCWD,
                       os.fsencode(str(new)), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def fallocate(fd, mode, offset, length):
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                               ctypes.c_long]
    r = libc.fallocate(fd, mode, offset, length)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def wr(p, data, mode=0o644):
    fd = os.open(str(p), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def rd(p):
    with open(str(p), "rb") as f:
        return f.read()


def pattern(n, seed=0):
    return random.Random(seed).randbytes(n)


def shared_dir(mnt, name="shared", mode=0o777):
    d = mnt / name
    os.mkdir(d)
    os.chmod(d, mode)
    return d


U1, U2 = 1001, 1002

# ---- permissions and ownership ----------------------------------------------


def test_created_objects_owned_by_creator(mnt):
    d = shared_dir(mnt)

    def make():
        wr(d / "file", b"hello")
        os.mkdir(d / "dir")
        os.symlink("file", d / "link")
        os.mkfifo(d / "fifo")
        return True

    run_as(U1, U1, make)
    for name in ("file", "dir", "link", "fifo"):
        st = os.lstat(d / name)
        assert (st.st_uid, st.st_gid) == (U1, U1), name
    assert stat.S_IMODE(os.stat(d / "file").st_mode) == 0o644   # umask 022 applied
    assert stat.S_IMODE(os.stat(d / "dir").st_mode) == 0o755
    assert rd(d / "file") == b"hello"


def test_eacces_on_other_users_private_file(mnt):
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: wr(d / "secret", b"top secret", 0o600))
    assert stat.S_IMODE(os.stat(d / "secret").st_mode) == 0o600
    assert run_as(U1, U1, lambda: rd(d / "secret")) == b"top secret"
    assert run_as(U2, U2, lambda: errno_of(rd, d / "secret")) == errno.EACCES
    assert run_as(U2, U2, lambda: errno_of(os.open, str(d / "secret"),
                                           os.O_WRONLY)) == errno.EACCES
    assert run_as(U2, U2, lambda: errno_of(os.truncate, str(d / "secret"), 0)) \
        == errno.EACCES
    assert rd(d / "secret") == b"top secret"


def test_group_and_other_permission_bits(mnt):
    d = shared_dir(mnt)
    wr(d / "g", b"group data")
    os.chown(d / "g", U1, 2000)
    os.chmod(d / "g", 0o640)
    # a member of group 2000 may read, not write; others may do neither
    assert run_as(U2, U2, lambda: rd(d / "g"), groups=(2000,)) == b"group data"
    assert run_as(U2, U2, lambda: errno_of(os.open, str(d / "g"), os.O_WRONLY),
                  groups=(2000,)) == errno.EACCES
    assert run_as(U2, U2, lambda: errno_of(rd, d / "g")) == errno.EACCES


def test_no_create_in_other_users_directory(mnt):
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: os.mkdir(d / "mine", 0o755))
    assert run_as(U2, U2, lambda: errno_of(wr, d / "mine" / "x", b"")) == errno.EACCES
    assert run_as(U2, U2, lambda: errno_of(os.mkdir, str(d / "mine" / "y"))) \
        == errno.EACCES
    assert not os.path.exists(d / "mine" / "x")


def test_sticky_directory_protects_files(mnt):
    d = shared_dir(mnt, mode=0o1777)
    run_as(U1, U1, lambda: wr(d / "f", b"data", 0o666))
    assert run_as(U2, U2, lambda: errno_of(os.unlink, str(d / "f"))) == errno.EPERM
    assert run_as(U2, U2, lambda: errno_of(os.rename, str(d / "f"),
                                           str(d / "g"))) == errno.EPERM
    run_as(U1, U1, lambda: os.unlink(d / "f"))
    assert not os.path.exists(d / "f")


def test_chmod_only_by_owner(mnt):
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: wr(d / "f", b"x", 0o644))
    assert run_as(U2, U2, lambda: errno_of(os.chmod, str(d / "f"), 0o666)) == errno.EPERM
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o644
    run_as(U1, U1, lambda: os.chmod(d / "f", 0o600))
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o600
    os.chmod(d / "f", 0o4755)       # root may, and special bits persist
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o4755


def test_chown_rules(mnt):
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: wr(d / "f", b"x"))
    # giving a file away is root's privilege
    assert run_as(U1, U1, lambda: errno_of(os.chown, str(d / "f"), U2, -1)) == errno.EPERM
    # the owner may change the group to one of its groups only
    run_as(U1, U1, lambda: os.chown(d / "f", -1, 2000), groups=(U1, 2000))
    assert os.stat(d / "f").st_gid == 2000
    assert run_as(U1, U1, lambda: errno_of(os.chown, str(d / "f"), -1, 3000),
                  groups=(U1, 2000)) == errno.EPERM
    assert run_as(U2, U2, lambda: errno_of(os.chown, str(d / "f"), -1, U2)) == errno.EPERM
    os.chown(d / "f", U2, 3000)
    st = os.stat(d / "f")
    assert (st.st_uid, st.st_gid) == (U2, 3000)
    assert rd(d / "f") == b"x"
    # lchown on a symlink changes the link, not the target
    os.symlink("f", d / "l")
    os.lchown(d / "l", U1, U1)
    assert (os.lstat(d / "l").st_uid, os.stat(d / "f").st_uid) == (U1, U2)


def test_setgid_directory_inheritance(mnt):
    d = mnt / "sgid"
    os.mkdir(d)
    os.chown(d, 0, 3000)
    os.chmod(d, 0o2777)
    assert os.stat(d).st_mode & stat.S_ISGID

    def make():
        wr(d / "f", b"x")
        os.mkdir(d / "sub")
        return True

    run_as(U1, U1, make)
    st = os.stat(d / "f")
    assert (st.st_uid, st.st_gid) == (U1, 3000)
    sub = os.stat(d / "sub")
    assert (sub.st_uid, sub.st_gid) == (U1, 3000)
    assert sub.st_mode & stat.S_ISGID, "subdirectory must inherit the setgid bit"


def test_write_requires_permission_through_open_fd_and_truncate(mnt):
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: wr(d / "ro", b"readonly", 0o444))
    # even the owner cannot open a 0444 file for writing
    assert run_as(U1, U1, lambda: errno_of(os.open, str(d / "ro"), os.O_RDWR)) \
        == errno.EACCES
    run_as(U1, U1, lambda: os.chmod(d / "ro", 0o644))

    def trunc():
        os.truncate(d / "ro", 4)
        return rd(d / "ro")

    assert run_as(U1, U1, trunc) == b"read"


# ---- rename ------------------------------------------------------------------


def test_rename_over_existing_file(mnt):
    wr(mnt / "a", pattern(9000, 1))
    wr(mnt / "b", pattern(100, 2))
    os.rename(mnt / "a", mnt / "b")
    assert not os.path.exists(mnt / "a")
    assert rd(mnt / "b") == pattern(9000, 1)
    assert os.stat(mnt / "b").st_size == 9000


def test_rename_while_open_keeps_fd_valid(mnt):
    wr(mnt / "a", b"0123456789")
    fd = os.open(mnt / "a", os.O_RDWR)
    try:
        os.rename(mnt / "a", mnt / "b")
        os.pwrite(fd, b"AB", 2)
        assert os.pread(fd, 10, 0) == b"01AB456789"
    finally:
        os.close(fd)
    assert rd(mnt / "b") == b"01AB456789"


def test_rename_directory_onto_empty_directory(mnt):
    os.makedirs(mnt / "src" / "inner")
    wr(mnt / "src" / "inner" / "f", b"deep")
    os.mkdir(mnt / "dst")
    os.rename(mnt / "src", mnt / "dst")
    assert not os.path.exists(mnt / "src")
    assert rd(mnt / "dst" / "inner" / "f") == b"deep"


def test_rename_directory_onto_nonempty_directory(mnt):
    os.mkdir(mnt / "src")
    os.mkdir(mnt / "dst")
    wr(mnt / "dst" / "keep", b"k")
    assert errno_of(os.rename, mnt / "src", mnt / "dst") in (errno.ENOTEMPTY, errno.EEXIST)
    assert rd(mnt / "dst" / "keep") == b"k"
    assert os.path.isdir(mnt / "src")


def test_rename_type_mismatch(mnt):
    os.mkdir(mnt / "d")
    wr(mnt / "f", b"f")
    assert errno_of(os.rename, mnt / "f", mnt / "d") == errno.EISDIR
    assert errno_of(os.rename, mnt / "d", mnt / "f") == errno.ENOTDIR
    assert errno_of(os.rename, mnt / "d", mnt / "d" / "sub") == errno.EINVAL
    assert errno_of(os.rename, mnt / "nonexistent", mnt / "x") == errno.ENOENT


def test_rename_across_directories(mnt):
    os.makedirs(mnt / "x" / "y")
    os.mkdir(mnt / "z")
    data = pattern(3 * BLOCK + 7, 3)
    wr(mnt / "x" / "y" / "f", data)
    os.rename(mnt / "x" / "y" / "f", mnt / "z" / "g")
    assert rd(mnt / "z" / "g") == data
    os.rename(mnt / "x", mnt / "z" / "x")
    assert sorted(os.listdir(mnt / "z")) == ["g", "x"]
    assert os.listdir(mnt / "z" / "x") == ["y"]


def test_rename_noreplace(mnt):
    wr(mnt / "a", b"A")
    wr(mnt / "b", b"B")
    assert errno_of(renameat2, mnt / "a", mnt / "b", RENAME_NOREPLACE) == errno.EEXIST
    assert (rd(mnt / "a"), rd(mnt / "b")) == (b"A", b"B")
    renameat2(mnt / "a", mnt / "c", RENAME_NOREPLACE)
    assert rd(mnt / "c") == b"A" and not os.path.exists(mnt / "a")


def test_rename_exchange(mnt):
    a, b = pattern(5000, 4), pattern(12000, 5)
    wr(mnt / "a", a)
    wr(mnt / "b", b)
    renameat2(mnt / "a", mnt / "b", RENAME_EXCHANGE)
    assert rd(mnt / "a") == b and rd(mnt / "b") == a
    assert os.stat(mnt / "a").st_size == len(b)
    # a file and a directory can be exchanged too
    os.mkdir(mnt / "d")
    wr(mnt / "d" / "inside", b"i")
    renameat2(mnt / "a", mnt / "d", RENAME_EXCHANGE)
    assert os.path.isdir(mnt / "a") and rd(mnt / "a" / "inside") == b"i"
    assert rd(mnt / "d") == b
    assert errno_of(renameat2, mnt / "a", mnt / "missing", RENAME_EXCHANGE) == errno.ENOENT


# ---- links -------------------------------------------------------------------


def test_hard_links_share_content(mnt):
    data = pattern(2 * BLOCK + 100, 6)
    wr(mnt / "a", data)
    os.mkdir(mnt / "d")
    os.link(mnt / "a", mnt / "d" / "b")
    sa, sb = os.stat(mnt / "a"), os.stat(mnt / "d" / "b")
    assert sa.st_ino == sb.st_ino and sa.st_nlink == 2
    assert rd(mnt / "d" / "b") == data
    # a write through one name is read through the other (one DEK, one file)
    with open(mnt / "d" / "b", "r+b") as f:
        f.seek(BLOCK - 2)
        f.write(b"LINKED")
    expect = data[:BLOCK - 2] + b"LINKED" + data[BLOCK + 4:]
    assert rd(mnt / "a") == expect
    os.unlink(mnt / "a")
    assert os.stat(mnt / "d" / "b").st_nlink == 1
    assert rd(mnt / "d" / "b") == expect
    assert errno_of(os.link, mnt / "d", mnt / "dlink") == errno.EPERM
    assert errno_of(os.link, mnt / "d" / "b", mnt / "d" / "b") == errno.EEXIST


def test_hard_link_open_concurrently(mnt):
    wr(mnt / "a", b"x" * 10)
    os.link(mnt / "a", mnt / "b")
    fa = os.open(mnt / "a", os.O_RDWR)
    fb = os.open(mnt / "b", os.O_RDWR)
    try:
        os.pwrite(fa, b"A" * 5000, 0)
        assert os.pread(fb, 6000, 0) == b"A" * 5000
        os.ftruncate(fb, 3)
        assert os.fstat(fa).st_size == 3
    finally:
        os.close(fa)
        os.close(fb)


def test_symlinks(mnt):
    wr(mnt / "target", b"through the link")
    os.mkdir(mnt / "d")
    os.symlink("../target", mnt / "d" / "rel")
    os.symlink(str(mnt / "target"), mnt / "abs")
    os.symlink("does/not/exist", mnt / "dangling")
    long_target = "x" * 1000
    os.symlink(long_target, mnt / "long")
    assert os.readlink(mnt / "d" / "rel") == "../target"
    assert os.readlink(mnt / "abs") == str(mnt / "target")
    assert os.readlink(mnt / "long") == long_target
    assert rd(mnt / "d" / "rel") == b"through the link"
    assert rd(mnt / "abs") == b"through the link"
    st = os.lstat(mnt / "d" / "rel")
    assert stat.S_ISLNK(st.st_mode) and st.st_size == len("../target")
    assert errno_of(os.stat, mnt / "dangling") == errno.ENOENT
    assert errno_of(os.symlink, "x", mnt / "abs") == errno.EEXIST
    os.unlink(mnt / "abs")
    assert os.path.exists(mnt / "target")


# ---- special files -----------------------------------------------------------


def test_mkfifo(mnt):
    os.mkfifo(mnt / "fifo", 0o640)
    st = os.stat(mnt / "fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    fd = os.open(mnt / "fifo", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(fd, b"ping")
        assert os.read(fd, 10) == b"ping"
    finally:
        os.close(fd)


def test_mknod(mnt):
    os.mknod(mnt / "reg", stat.S_IFREG | 0o600)
    st = os.stat(mnt / "reg")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    assert rd(mnt / "reg") == b""
    with open(mnt / "reg", "r+b") as f:
        f.write(b"made by mknod")
    assert rd(mnt / "reg") == b"made by mknod"
    os.mknod(mnt / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    st = os.stat(mnt / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    os.mknod(mnt / "sock", stat.S_IFSOCK | 0o600)
    assert stat.S_ISSOCK(os.stat(mnt / "sock").st_mode)


# ---- sizes and truncation ----------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 15, 4095, 4096, 4097, 8191, 8192, 8193,
                               12288, 65536 + 3, 1 << 20])
def test_stat_size_is_plaintext_size(mounted, n):
    mnt = mounted.mnt
    data = pattern(n, n)
    wr(mnt / "f", data)
    assert os.stat(mnt / "f").st_size == n
    assert rd(mnt / "f") == data
    bsize = os.stat(mounted.bpath("f")).st_size
    assert bsize == backing_size(n) or (n == 0 and bsize == 0), \
        "backing size %d for %d plaintext bytes" % (bsize, n)
    # readdir-plus / lookup paths report the same
    entry = [e for e in os.scandir(mnt) if e.name == "f"][0]
    assert entry.stat().st_size == n


def test_sparse_file(mnt):
    off = 1 << 20
    fd = os.open(mnt / "sparse", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"end", off)
        assert os.fstat(fd).st_size == off + 3
        assert os.pread(fd, 8192, 0) == bytes(8192)
    finally:
        os.close(fd)
    data = rd(mnt / "sparse")
    assert data == bytes(off) + b"end"
    # writing into the middle of the hole keeps both sides intact
    with open(mnt / "sparse", "r+b") as f:
        f.seek(300000)
        f.write(b"mid")
    data = rd(mnt / "sparse")
    assert data[:300000] == bytes(300000) and data[300000:300003] == b"mid"
    assert data[300003:off] == bytes(off - 300003) and data[off:] == b"end"


def test_lseek_past_end_then_write(mnt):
    with open(mnt / "f", "wb") as f:
        f.write(b"abc")
        f.seek(BLOCK * 2 + 5)
        f.write(b"xyz")
    assert rd(mnt / "f") == b"abc" + bytes(BLOCK * 2 + 2) + b"xyz"


TRUNC_SIZES = sorted({s for k in range(4) for s in (BLOCK * k - 1, BLOCK * k, BLOCK * k + 1)
                      if s >= 0})


@pytest.mark.parametrize("t", TRUNC_SIZES)
def test_truncate_down_then_up(mnt, t):
    full = pattern(3 * BLOCK + 1000, 7)
    wr(mnt / "f", full)
    os.truncate(mnt / "f", t)
    assert os.stat(mnt / "f").st_size == t
    assert rd(mnt / "f") == full[:t]
    # growing again must show zeros, never the old bytes
    os.truncate(mnt / "f", t + 5000)
    assert rd(mnt / "f") == full[:t] + bytes(5000)


@pytest.mark.parametrize("t", TRUNC_SIZES)
def test_truncate_up_from_partial_block(mnt, t):
    start = pattern(100, 8)
    wr(mnt / "f", start)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        os.ftruncate(fd, t)
        assert os.fstat(fd).st_size == t
        expect = (start + bytes(max(0, t - 100)))[:t]
        assert os.pread(fd, t + 10, 0) == expect
        # a write after the new end extends again
        os.pwrite(fd, b"Z", t + 3)
        assert os.pread(fd, t + 10, 0) == expect + b"\0\0\0Z"
    finally:
        os.close(fd)


def test_truncate_sequence_on_open_fd(mnt):
    model = bytearray()
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    rng = random.Random(99)
    try:
        for _ in range(60):
            t = rng.choice(TRUNC_SIZES + [rng.randrange(0, 4 * BLOCK)])
            os.ftruncate(fd, t)
            if t < len(model):
                del model[t:]
            else:
                model.extend(bytes(t - len(model)))
            off = rng.randrange(0, 4 * BLOCK)
            chunk = rng.randbytes(rng.randrange(1, 2 * BLOCK))
            os.pwrite(fd, chunk, off)
            if off > len(model):
                model.extend(bytes(off - len(model)))
            model[off:off + len(chunk)] = chunk
            assert os.fstat(fd).st_size == len(model)
            assert os.pread(fd, len(model) + 1, 0) == bytes(model)
    finally:
        os.close(fd)


# ---- open flags --------------------------------------------------------------


def test_o_append_two_fds(mnt):
    wr(mnt / "log", b"start\n")
    f1 = os.open(mnt / "log", os.O_WRONLY | os.O_APPEND)
    f2 = os.open(mnt / "log", os.O_WRONLY | os.O_APPEND)
    expect = b"start\n"
    try:
        for i in range(40):
            fd = f1 if i % 3 else f2
            line = (b"%d:" % i) + b"x" * (i * 97 % 5000) + b"\n"
            os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND ignores the offset
            os.write(fd, line)
            expect += line
    finally:
        os.close(f1)
        os.close(f2)
    assert rd(mnt / "log") == expect


def test_o_append_pwrite_and_read(mnt):
    wr(mnt / "f", b"0123")
    fd = os.open(mnt / "f", os.O_RDWR | os.O_APPEND)
    try:
        os.write(fd, b"45")
        assert os.pread(fd, 10, 0) == b"012345"
    finally:
        os.close(fd)


def test_o_excl(mnt):
    fd = os.open(mnt / "x", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"first")
    os.close(fd)
    assert errno_of(os.open, mnt / "x", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600) \
        == errno.EEXIST
    os.symlink("x", mnt / "sl")
    assert errno_of(os.open, mnt / "sl", os.O_WRONLY | os.O_CREAT | os.O_EXCL) \
        == errno.EEXIST
    assert rd(mnt / "x") == b"first"


def test_o_trunc(mnt):
    wr(mnt / "f", pattern(3 * BLOCK, 9))
    fd = os.open(mnt / "f", os.O_RDWR | os.O_TRUNC)
    try:
        assert os.fstat(fd).st_size == 0
        os.write(fd, b"new")
    finally:
        os.close(fd)
    assert rd(mnt / "f") == b"new"
    fd = os.open(mnt / "f", os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert rd(mnt / "f") == b"" and os.stat(mnt / "f").st_size == 0


def test_write_only_open_partial_block_update(mnt):
    # O_WRONLY still needs read-modify-write of the partial block
    data = pattern(2 * BLOCK, 10)
    wr(mnt / "f", data)
    fd = os.open(mnt / "f", os.O_WRONLY)
    try:
        os.pwrite(fd, b"PATCH", BLOCK - 2)
    finally:
        os.close(fd)
    assert rd(mnt / "f") == data[:BLOCK - 2] + b"PATCH" + data[BLOCK + 3:]


def test_unlinked_open_file_stays_usable(mnt):
    wr(mnt / "f", b"before")
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        os.unlink(mnt / "f")
        assert not os.path.exists(mnt / "f")
        os.pwrite(fd, b"AFTER-UNLINK" * 1000, 0)
        assert os.pread(fd, 12, 0) == b"AFTER-UNLINK"
        assert os.fstat(fd).st_size == 12000
    finally:
        os.close(fd)


def test_large_file_chunked_io(mnt):
    data = pattern(5 * (1 << 20) + 333, 11)
    with open(mnt / "big", "wb") as f:
        pos = 0
        rng = random.Random(1)
        while pos < len(data):
            n = rng.choice([1, 100, 4095, 4096, 4097, 65536, 131072 + 5, 1 << 20])
            f.write(data[pos:pos + n])
            pos += n
    assert os.stat(mnt / "big").st_size == len(data)
    assert rd(mnt / "big") == data
    with open(mnt / "big", "rb") as f:
        f.seek(3 * BLOCK - 10)
        assert f.read(BLOCK * 5) == data[3 * BLOCK - 10:8 * BLOCK - 10]


# ---- concurrency -------------------------------------------------------------


def run_threads(fns):
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # noqa: B902 - collect for the main thread
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
        assert not t.is_alive(), "thread hung"
    if errors:
        raise errors[0]


def test_concurrent_writers_different_blocks(mnt):
    nthreads, blocks_each, rounds = 6, 8, 5
    path = mnt / "shared"
    wr(path, b"")
    final = {}

    def writer(tid):
        def fn():
            rng = random.Random(tid)
            fd = os.open(path, os.O_WRONLY)
            try:
                for r in range(rounds):
                    for j in range(blocks_each):
                        blk = j * nthreads + tid
                        data = rng.randbytes(BLOCK)
                        os.pwrite(fd, data, blk * BLOCK)
                        final[blk] = data
            finally:
                os.close(fd)
        return fn

    run_threads([writer(t) for t in range(nthreads)])
    expect = b"".join(final[i] for i in range(nthreads * blocks_each))
    got = rd(path)
    assert len(got) == len(expect)
    bad = [i for i in range(nthreads * blocks_each)
           if got[i * BLOCK:(i + 1) * BLOCK] != expect[i * BLOCK:(i + 1) * BLOCK]]
    assert not bad, "blocks with wrong content: %s" % bad


def test_concurrent_writers_same_block_disjoint_ranges(mnt):
    # unaligned ranges that share blocks: read-modify-write must not lose updates
    nthreads, span = 8, 1000
    path = mnt / "f"
    wr(path, bytes(nthreads * span))
    final = {}

    def writer(tid):
        def fn():
            rng = random.Random(100 + tid)
            fd = os.open(path, os.O_RDWR)
            try:
                for _ in range(30):
                    data = rng.randbytes(span)
                    os.pwrite(fd, data, tid * span)
                    final[tid] = data
            finally:
                os.close(fd)
        return fn

    run_threads([writer(t) for t in range(nthreads)])
    assert rd(path) == b"".join(final[t] for t in range(nthreads))


def test_many_threads_read_one_file(mnt):
    data = pattern((1 << 20) + 1234, 12)
    wr(mnt / "f", data)

    def reader(seed):
        def fn():
            rng = random.Random(seed)
            fd = os.open(mnt / "f", os.O_RDONLY)
            try:
                for _ in range(150):
                    off = rng.randrange(0, len(data))
                    n = rng.choice([1, 17, BLOCK, BLOCK + 1, 3 * BLOCK, 70000])
                    got = os.pread(fd, n, off)
                    assert got == data[off:off + n], "seed %d off %d n %d" % (seed, off, n)
            finally:
                os.close(fd)
        return fn

    run_threads([reader(s) for s in range(10)])


def test_readers_during_writes_see_whole_blocks(mnt):
    # a reader racing a writer may see old and new pages mixed (the kernel
    # page cache allows that), but never an I/O error from a half-written
    # ciphertext block, a short read or bytes that were never written
    a, b = b"A" * BLOCK, b"B" * BLOCK
    nblocks = 16
    wr(mnt / "f", a * nblocks)
    stop = threading.Event()

    def writer():
        fd = os.open(mnt / "f", os.O_WRONLY)
        try:
            for i in range(200):
                os.pwrite(fd, (a if i % 2 else b) * nblocks, 0)
        finally:
            os.close(fd)
            stop.set()

    def reader():
        fd = os.open(mnt / "f", os.O_RDONLY)
        try:
            while not stop.is_set():
                got = os.pread(fd, BLOCK * nblocks, 0)
                assert len(got) == BLOCK * nblocks
                assert set(got) <= {ord("A"), ord("B")}, "foreign bytes read"
        finally:
            os.close(fd)

    run_threads([writer, reader, reader])


# ---- mmap --------------------------------------------------------------------


def test_mmap_shared_read_write(mounted):
    mnt = mounted.mnt
    size = 3 * BLOCK + 500
    data = bytearray(pattern(size, 13))
    wr(mnt / "m", bytes(data))
    fd = os.open(mnt / "m", os.O_RDWR)
    try:
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        assert mm[:] == bytes(data)
        patch = b"MMAP-WRITE-ACROSS-A-BLOCK-BOUNDARY"
        off = BLOCK - 10
        mm[off:off + len(patch)] = patch
        data[off:off + len(patch)] = patch
        mm[size - 1:size] = b"!"
        data[size - 1] = ord("!")
        mm.flush()
        assert os.pread(fd, size + 10, 0) == bytes(data)
        mm.close()
    finally:
        os.close(fd)
    assert rd(mnt / "m") == bytes(data)
    mounted.remount(mounted.mounts[-1])
    assert rd(mnt / "m") == bytes(data)


def test_mmap_sees_write_and_grows(mnt):
    wr(mnt / "m", b"x" * BLOCK)
    fd = os.open(mnt / "m", os.O_RDWR)
    try:
        os.ftruncate(fd, 3 * BLOCK)
        mm = mmap.mmap(fd, 3 * BLOCK)
        assert mm[BLOCK:3 * BLOCK] == bytes(2 * BLOCK)
        mm[2 * BLOCK:2 * BLOCK + 4] = b"tail"
        mm.flush()
        mm.close()
    finally:
        os.close(fd)
    assert rd(mnt / "m") == b"x" * BLOCK + bytes(BLOCK) + b"tail" + bytes(BLOCK - 4)


# ---- xattrs ------------------------------------------------------------------


def test_user_xattrs(mnt):
    p = mnt / "f"
    wr(p, b"content")
    os.setxattr(p, "user.color", b"blue")
    big = pattern(3000, 14)
    os.setxattr(p, "user.blob", big)
    os.setxattr(p, "user.empty", b"")
    assert os.getxattr(p, "user.color") == b"blue"
    assert os.getxattr(p, "user.blob") == big
    assert os.getxattr(p, "user.empty") == b""
    assert sorted(os.listxattr(p)) == ["user.blob", "user.color", "user.empty"]
    assert errno_of(os.setxattr, p, "user.color", b"red", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.setxattr, p, "user.none", b"x", os.XATTR_REPLACE) == errno.ENODATA
    os.setxattr(p, "user.color", b"red", os.XATTR_REPLACE)
    assert os.getxattr(p, "user.color") == b"red"
    os.removexattr(p, "user.color")
    assert errno_of(os.getxattr, p, "user.color") == errno.ENODATA
    assert errno_of(os.removexattr, p, "user.color") == errno.ENODATA
    assert sorted(os.listxattr(p)) == ["user.blob", "user.empty"]
    assert rd(p) == b"content"
    os.mkdir(mnt / "d")
    os.setxattr(mnt / "d", "user.dir", b"yes")
    assert os.getxattr(mnt / "d", "user.dir") == b"yes"


def test_non_user_xattr_namespace_refused(mnt):
    p = mnt / "f"
    wr(p, b"x")
    for name in ("trusted.ekmfs-test", "security.ekmfs-test"):
        e = errno_of(os.setxattr, p, name, b"v")
        assert e in (errno.EOPNOTSUPP, errno.EPERM), (name, e)
        assert name not in os.listxattr(p)
    for name in ("trusted.ekmfs-test", "security.selinux", "system.posix_acl_access"):
        assert errno_of(os.getxattr, p, name) == errno.EOPNOTSUPP, name


def test_ls_asks_unsupported_xattrs_once(mounted):
    """ls -l asks each file for its SELinux label and POSIX ACL; told "not
    supported", it stops asking for the rest of the mount, so a listing
    costs no extra round trips per file (strace counts the calls ls makes)."""
    mnt = mounted.mnt
    os.mkdir(mnt / "many")
    for i in range(50):
        wr(mnt / "many" / ("f%d" % i), b"x")
    os.setxattr(mnt / "many" / "f7", "user.k", b"v")
    r = subprocess.run(["strace", "-f", "-e", "trace=getxattr,lgetxattr", "-o", "/dev/stdout",
                        "ls", "-l", str(mnt / "many")], capture_output=True, text=True,
                       check=True)
    calls = [l for l in r.stdout.splitlines() if "xattr(" in l]
    assert 1 <= len(calls) <= 6, calls
    assert all("EOPNOTSUPP" in l or "ENOTSUP" in l for l in calls), calls
    assert os.getxattr(mnt / "many" / "f7", "user.k") == b"v"


def test_xattr_permissions(mnt):
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: wr(d / "f", b"x", 0o644))
    run_as(U1, U1, lambda: os.setxattr(d / "f", "user.k", b"v"))
    assert run_as(U2, U2, lambda: os.getxattr(d / "f", "user.k")) == b"v"
    assert run_as(U2, U2, lambda: errno_of(os.setxattr, d / "f", "user.k", b"w")) \
        in (errno.EACCES, errno.EPERM)
    assert os.getxattr(d / "f", "user.k") == b"v"


# ---- fallocate ---------------------------------------------------------------


def test_fallocate_extends_with_zeros(mnt):
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"head")
        os.posix_fallocate(fd, 0, 3 * BLOCK + 10)
        assert os.fstat(fd).st_size == 3 * BLOCK + 10
        assert os.pread(fd, 4 * BLOCK, 0) == b"head" + bytes(3 * BLOCK + 6)
        fallocate(fd, 0, 0, 100)            # inside the file: no change
        assert os.fstat(fd).st_size == 3 * BLOCK + 10
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 10 * BLOCK)
        assert os.fstat(fd).st_size == 3 * BLOCK + 10
        assert os.pread(fd, 4, 0) == b"head"
    finally:
        os.close(fd)


def test_fallocate_punch_hole_refused_or_correct(mnt):
    data = pattern(3 * BLOCK, 15)
    wr(mnt / "f", data)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        e = errno_of(fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, BLOCK)
        got = os.pread(fd, 4 * BLOCK, 0)
    finally:
        os.close(fd)
    if e:
        assert e == errno.EOPNOTSUPP
        assert got == data
    else:
        assert got == data[:100] + bytes(BLOCK) + data[100 + BLOCK:]


# ---- locks -------------------------------------------------------------------


def _try_lock(path, start, length):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    finally:
        os.close(fd)


def test_posix_locks_between_processes(mnt):
    p = mnt / "lockfile"
    wr(p, b"x" * 100)
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
        # another process: conflicting range refused, disjoint range granted
        assert run_as(0, 0, _try_lock, str(p), 5, 10) is False
        assert run_as(0, 0, _try_lock, str(p), 50, 10) is True
        fcntl.lockf(fd, fcntl.LOCK_UN, 10, 0)
        assert run_as(0, 0, _try_lock, str(p), 5, 10) is True
    finally:
        os.close(fd)


def test_flock_between_processes(mnt):
    p = mnt / "flockfile"
    wr(p, b"")

    def try_flock(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno == errno.EWOULDBLOCK:
                return False
            raise
        finally:
            os.close(fd)

    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert run_as(0, 0, try_flock, str(p)) is False
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert run_as(0, 0, try_flock, str(p)) is True
    finally:
        os.close(fd)


# ---- times -------------------------------------------------------------------


def test_utimens(mnt):
    p = mnt / "f"
    wr(p, b"x")
    os.utime(p, ns=(1_000_000_123_456_789, 1_500_000_987_654_321))
    st = os.stat(p)
    assert st.st_atime_ns == 1_000_000_123_456_789
    assert st.st_mtime_ns == 1_500_000_987_654_321
    before = time.time()
    os.utime(p)
    st = os.stat(p)
    assert abs(st.st_mtime - before) < 5 and abs(st.st_atime - before) < 5
    # symlink times without following
    os.symlink("f", mnt / "l")
    os.utime(mnt / "l", ns=(2_000_000_000_000_000, 1_234_000_000_000_000),
             follow_symlinks=False)
    assert os.lstat(mnt / "l").st_mtime_ns == 1_234_000_000_000_000
    assert os.stat(p).st_mtime_ns != os.lstat(mnt / "l").st_mtime_ns


def test_write_updates_mtime(mnt):
    p = mnt / "f"
    wr(p, b"x")
    os.utime(p, (1000, 1000))
    with open(p, "ab") as f:
        f.write(b"y")
    assert os.stat(p).st_mtime > 1000


def test_utime_permissions(mnt):
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: wr(d / "f", b"x", 0o666), umask=0)
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o666
    # a writer who is not the owner may set the current time only
    run_as(U2, U2, lambda: os.utime(d / "f"))
    assert run_as(U2, U2, lambda: errno_of(os.utime, d / "f", (1, 1))) == errno.EPERM
    run_as(U1, U1, lambda: os.utime(d / "f", (5, 5)))
    assert os.stat(d / "f").st_mtime == 5


# ---- statfs and fsync --------------------------------------------------------


def test_statfs(mounted):
    sv = os.statvfs(mounted.mnt)
    bv = os.statvfs(mounted.backing)
    assert sv.f_bsize > 0 and sv.f_blocks > 0
    assert sv.f_bfree <= sv.f_blocks and sv.f_bavail <= sv.f_blocks
    assert sv.f_namemax > 0
    # the mount reports the backing file system's capacity (within rounding)
    assert abs(sv.f_blocks * sv.f_frsize - bv.f_blocks * bv.f_frsize) \
        <= max(sv.f_frsize, bv.f_frsize) * 16


def test_fsync_makes_data_reach_backing(mounted):
    mnt = mounted.mnt
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, pattern(2 * BLOCK + 5, 16))
        os.fsync(fd)
        assert os.stat(mounted.bpath("f")).st_size == backing_size(2 * BLOCK + 5)
        os.write(fd, b"more")
        os.fdatasync(fd)
        assert os.stat(mounted.bpath("f")).st_size == backing_size(2 * BLOCK + 9)
    finally:
        os.close(fd)
    dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# ---- directories -------------------------------------------------------------


def test_mkdir_rmdir(mnt):
    os.mkdir(mnt / "d", 0o700)
    assert stat.S_IMODE(os.stat(mnt / "d").st_mode) == 0o700
    assert errno_of(os.mkdir, mnt / "d") == errno.EEXIST
    wr(mnt / "d" / "f", b"x")
    assert errno_of(os.rmdir, mnt / "d") == errno.ENOTEMPTY
    assert errno_of(os.rmdir, mnt / "d" / "f") == errno.ENOTDIR
    assert errno_of(os.unlink, mnt / "d") in (errno.EISDIR, errno.EPERM)
    os.unlink(mnt / "d" / "f")
    os.rmdir(mnt / "d")
    assert not os.path.exists(mnt / "d")
    assert errno_of(os.rmdir, mnt / "d") == errno.ENOENT
    os.makedirs(mnt / "a" / "b" / "c" / "d")
    assert os.path.isdir(mnt / "a" / "b" / "c" / "d")
    st = os.stat(mnt / "a")
    assert st.st_nlink == 3   # ".", "a" in parent, ".." of b


def test_readdir_lists_exactly_the_entries(mnt):
    os.mkdir(mnt / "d")
    os.mkdir(mnt / "d" / "sub")
    wr(mnt / "d" / "file", b"x")
    os.symlink("file", mnt / "d" / "link")
    os.mkfifo(mnt / "d" / "fifo")
    kinds = {e.name: (e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False),
                      e.is_symlink()) for e in os.scandir(mnt / "d")}
    assert kinds == {"sub": (True, False, False), "file": (False, True, False),
                     "link": (False, False, True), "fifo": (False, False, False)}


def test_readdir_many_entries(mnt):
    d = mnt / "many"
    os.mkdir(d)
    names = {"entry-%05d-%s" % (i, "x" * (i % 200)) for i in range(3000)}
    for n in names:
        fd = os.open(d / n, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
    assert set(os.listdir(d)) == names
    # removing while listing in batches leaves the right remainder
    removed = set(sorted(names)[::2])
    for n in removed:
        os.unlink(d / n)
    assert set(os.listdir(d)) == names - removed


def test_long_and_odd_names(mnt):
    for name in ("n" * 255, "sp ace", "uni-\u00e9\u4e2d", "-dash", "new\nline", ".hidden"):
        wr(mnt / name, name.encode())
        assert rd(mnt / name) == name.encode()
    assert errno_of(wr, mnt / ("n" * 256), b"") == errno.ENAMETOOLONG


# ---- metadata updates and corner cases (as conformance suites check them) ----


def tick():
    # ctime/mtime come from the kernel's coarse clock: let it advance
    time.sleep(0.03)


def test_parent_times_follow_entry_changes(mnt):
    d = mnt / "d"
    os.mkdir(d)
    ops = [("create", lambda: wr(d / "f", b"x")),
           ("mkdir", lambda: os.mkdir(d / "sub")),
           ("symlink", lambda: os.symlink("f", d / "l")),
           ("link", lambda: os.link(d / "f", d / "h")),
           ("rename", lambda: os.rename(d / "h", d / "h2")),
           ("unlink", lambda: os.unlink(d / "h2")),
           ("rmdir", lambda: os.rmdir(d / "sub"))]
    for what, fn in ops:
        before = os.stat(d)
        tick()
        fn()
        after = os.stat(d)
        assert after.st_mtime_ns > before.st_mtime_ns, "%s: parent mtime" % what
        assert after.st_ctime_ns > before.st_ctime_ns, "%s: parent ctime" % what


def test_file_ctime_and_mtime_updates(mnt):
    p = mnt / "f"
    wr(p, b"x" * 100)
    steps = [("chmod", lambda: os.chmod(p, 0o600), False),
             ("chown", lambda: os.chown(p, U1, U1), False),
             ("link", lambda: os.link(p, mnt / "g"), False),
             ("setxattr", lambda: os.setxattr(p, "user.a", b"1"), False),
             ("truncate", lambda: os.truncate(p, 50), True),
             ("write", lambda: wr_at(p, b"y", 10), True)]
    for what, fn, changes_mtime in steps:
        before = os.stat(p)
        tick()
        fn()
        after = os.stat(p)
        assert after.st_ctime_ns > before.st_ctime_ns, "%s: ctime" % what
        if changes_mtime:
            assert after.st_mtime_ns > before.st_mtime_ns, "%s: mtime" % what
        else:
            assert after.st_mtime_ns == before.st_mtime_ns, "%s: mtime changed" % what


def wr_at(p, data, off):
    fd = os.open(p, os.O_WRONLY)
    try:
        os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def special_file(mnt, data, mode=0o6777, file_mode=0o777):
    """A file of U1 in a shared directory with its set-user/group-ID bits."""
    d = shared_dir(mnt)
    run_as(U1, U1, lambda: wr(d / "f", data, file_mode), umask=0)
    os.chmod(d / "f", mode)
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == mode
    return d / "f"


def special_bits(p):
    return stat.S_IMODE(os.stat(p).st_mode) & (stat.S_ISUID | stat.S_ISGID)


def test_write_by_non_owner_clears_setuid(mnt):
    f = special_file(mnt, b"exe")
    run_as(U2, U2, lambda: wr_at(f, b"E", 0))
    assert special_bits(f) == 0, oct(os.stat(f).st_mode)
    assert rd(f) == b"Exe"


def test_truncate_by_non_owner_clears_setuid(mnt):
    f = special_file(mnt, b"exe" * 100)
    run_as(U2, U2, lambda: os.truncate(f, 5))
    assert special_bits(f) == 0, oct(os.stat(f).st_mode)
    assert rd(f) == b"exeex"


def test_open_trunc_by_non_owner_clears_setuid(mnt):
    f = special_file(mnt, b"exe" * 100)
    run_as(U2, U2, lambda: os.close(os.open(f, os.O_WRONLY | os.O_TRUNC)))
    assert os.stat(f).st_size == 0
    assert special_bits(f) == 0, oct(os.stat(f).st_mode)


def test_fallocate_by_non_owner_clears_setuid(mnt):
    f = special_file(mnt, b"exe")

    def grow():
        fd = os.open(f, os.O_WRONLY)
        try:
            os.posix_fallocate(fd, 0, 10000)
        finally:
            os.close(fd)
    run_as(U2, U2, grow)
    assert os.stat(f).st_size == 10000
    assert special_bits(f) == 0, oct(os.stat(f).st_mode)
    assert rd(f) == b"exe" + bytes(10000 - 3)


def test_setgid_without_group_exec_survives_write(mnt):
    """Only a group-executable file loses set-group-ID on write (without
    group execute the bit means mandatory locking), as on a local file
    system; set-user-ID always goes."""
    f = special_file(mnt, b"data", mode=0o6666, file_mode=0o666)
    run_as(U2, U2, lambda: wr_at(f, b"D", 0))
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o2666, oct(os.stat(f).st_mode)
    # root's own writes keep the bits (CAP_FSETID)
    os.chmod(f, 0o6777)
    wr_at(f, b"d", 0)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o6777


def test_chown_clears_setuid(mnt):
    p = mnt / "f"
    wr(p, b"x")
    os.chmod(p, 0o4755)
    os.chown(p, U1, U1)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (U1, U1)
    assert not st.st_mode & stat.S_ISUID, oct(st.st_mode)


def test_create_with_mode_zero(mnt):
    # root may open it anyway; a user gets the fd the creating open asked for
    fd = os.open(mnt / "root0", os.O_CREAT | os.O_RDWR, 0)
    try:
        os.write(fd, b"root")
        assert os.pread(fd, 10, 0) == b"root"
    finally:
        os.close(fd)
    assert stat.S_IMODE(os.stat(mnt / "root0").st_mode) == 0
    d = shared_dir(mnt)

    def user():
        fd = os.open(d / "u0", os.O_CREAT | os.O_WRONLY, 0)
        try:
            os.write(fd, b"user data")
        finally:
            os.close(fd)
        return errno_of(os.open, d / "u0", os.O_RDONLY)

    assert run_as(U1, U1, user) == errno.EACCES
    assert rd(d / "u0") == b"user data"


def test_mkdir_keeps_sticky_and_setgid_bits(mnt):
    os.mkdir(mnt / "t", 0o1777)
    os.chmod(mnt / "t", 0o1777)
    assert stat.S_IMODE(os.stat(mnt / "t").st_mode) == 0o1777
    os.mkdir(mnt / "g")
    os.chmod(mnt / "g", 0o2755)
    assert stat.S_IMODE(os.stat(mnt / "g").st_mode) == 0o2755


def test_rename_onto_own_hard_link_is_noop(mnt):
    wr(mnt / "a", b"same inode")
    os.link(mnt / "a", mnt / "b")
    os.rename(mnt / "a", mnt / "b")
    assert rd(mnt / "a") == rd(mnt / "b") == b"same inode"
    assert os.stat(mnt / "a").st_nlink == 2


def test_path_errors(mnt):
    wr(mnt / "f", b"x")
    os.mkdir(mnt / "d")
    os.symlink("loop2", mnt / "loop1")
    os.symlink("loop1", mnt / "loop2")
    assert errno_of(os.open, mnt / "f" / "x", os.O_RDONLY) == errno.ENOTDIR
    assert errno_of(os.open, mnt / "d", os.O_WRONLY) == errno.EISDIR
    assert errno_of(os.open, mnt / "loop1", os.O_RDONLY) == errno.ELOOP
    assert errno_of(os.open, mnt / "nope" / "x", os.O_CREAT | os.O_WRONLY) == errno.ENOENT
    assert errno_of(os.truncate, mnt / "d", 0) == errno.EISDIR
    assert errno_of(os.mkdir, mnt / "f") == errno.EEXIST


def test_concurrent_namespace_operations(mnt):
    """Threads create, write, rename, link and unlink their own names in
    shared directories: the inode table must stay consistent."""
    os.mkdir(mnt / "a")
    os.mkdir(mnt / "b")

    def worker(tid):
        def fn():
            rng = random.Random(tid)
            for i in range(60):
                name = "t%d-%d" % (tid, i)
                data = rng.randbytes(rng.randrange(0, 3 * BLOCK))
                wr(mnt / "a" / name, data)
                os.rename(mnt / "a" / name, mnt / "b" / name)
                os.link(mnt / "b" / name, mnt / "a" / (name + ".l"))
                assert rd(mnt / "a" / (name + ".l")) == data
                if i % 2:
                    os.unlink(mnt / "b" / name)
                    assert os.stat(mnt / "a" / (name + ".l")).st_nlink == 1
        return fn

    run_threads([worker(t) for t in range(6)])
    a, b = set(os.listdir(mnt / "a")), set(os.listdir(mnt / "b"))
    assert a == {"t%d-%d.l" % (t, i) for t in range(6) for i in range(60)}
    assert b == {"t%d-%d" % (t, i) for t in range(6) for i in range(0, 60, 2)}


def test_concurrent_appends_are_atomic(mnt):
    path = mnt / "journal"
    wr(path, b"")
    nthreads, nrec = 6, 80

    def appender(tid):
        def fn():
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                for i in range(nrec):
                    body = (b"%d.%d|" % (tid, i)) * (1 + (tid * 31 + i * 17) % 300)
                    os.write(fd, b"<" + body + b">\n")
            finally:
                os.close(fd)
        return fn

    run_threads([appender(t) for t in range(nthreads)])
    data = rd(path)
    records = data.split(b"\n")[:-1]
    assert len(records) == nthreads * nrec
    seen = set()
    for r in records:
        assert r.startswith(b"<") and r.endswith(b">"), r[:40]
        first = r[1:].split(b"|")[0]
        assert r[1:-1] == (first + b"|") * (len(r[1:-1]) // (len(first) + 1)), "torn record"
        seen.add(first)
    assert len(seen) == nthreads * nrec
