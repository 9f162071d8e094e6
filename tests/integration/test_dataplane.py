"""The fast data path: concurrency, the writeback cache, kernel caching.

Owns: correctness of what issue 5 changed: many threads doing random
operations on their own files against an in-memory model (the differential
test, threaded); concurrent writers to different blocks and to overlapping
blocks of one file, with readers alongside (block-range locks, parallel
block crypto on 1 MiB requests); size, mtime and O_APPEND under the kernel's
writeback cache; keep_cache never serving pages of a file changed behind
the mount. Both buffered I/O (through the writeback cache) and O_DIRECT
(every request reaches the daemon as sent) are exercised.

Divisions: helpers / threaded differential / concurrent writers / writeback
semantics / kernel caching.
"""
import errno
import os
import random
import threading
import time

import pytest

from conftest import BLOCK, CBLOCK, HEADER_SIZE, backing_size, drop_caches

THREADS = int(os.environ.get("EKMFS_DP_THREADS", "8"))
OPS = int(os.environ.get("EKMFS_DP_OPS", "250"))


# ---- helpers -----------------------------------------------------------------

def run_threads(fn, n):
    """fn(i) in n threads; re-raise the first exception of any of them."""
    errors = []

    def wrap(i):
        try:
            fn(i)
        except BaseException as e:  # noqa: B902 - reported to the main thread
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ---- threaded differential -----------------------------------------------------

def model_write(model, off, data):
    if off > len(model):
        model.extend(bytes(off - len(model)))
    model[off:off + len(data)] = data


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "odirect"])
def test_threads_random_ops_match_model(mnt, direct):
    """Each thread runs seeded random writes, truncates, appends and reads on
    its own file through two descriptors and checks every read against its
    model; at the end every file equals its model, also after the page cache
    is dropped."""
    flags = os.O_RDWR | os.O_CREAT | (os.O_DIRECT if direct else 0)
    models = {}

    def worker(i):
        rng = random.Random(1000 * i + (7 if direct else 3))
        path = str(mnt / ("t%d" % i))
        model = bytearray()
        fd = os.open(path, flags, 0o644)
        fd2 = os.open(path, os.O_RDWR)
        try:
            for step in range(OPS):
                k = rng.randrange(10)
                size = len(model)
                if k < 5:
                    off = rng.choice([rng.randrange(0, size + 2 * BLOCK),
                                      BLOCK * rng.randrange(0, 40), size])
                    n = rng.choice([1, 511, BLOCK, BLOCK + 1, 3 * BLOCK - 7,
                                    rng.randrange(1, 300_000)])
                    data = rng.randbytes(n)
                    assert os.pwrite(rng.choice([fd, fd2]), data, off) == n
                    model_write(model, off, data)
                elif k == 5:
                    new = rng.randrange(0, size + 3 * BLOCK)
                    os.ftruncate(fd, new)
                    del model[new:]
                    model.extend(bytes(new - len(model)))
                elif k == 6:
                    afd = os.open(path, os.O_WRONLY | os.O_APPEND)
                    data = rng.randbytes(rng.randrange(1, 3 * BLOCK))
                    os.write(afd, data)
                    os.close(afd)
                    model.extend(data)
                else:
                    off = rng.randrange(0, size + BLOCK)
                    n = rng.randrange(1, 2 * 1024 * 1024)
                    got = os.pread(rng.choice([fd, fd2]), n, off)
                    assert got == bytes(model[off:off + n]), \
                        "thread %d step %d: read %d@%d differs" % (i, step, n, off)
                assert os.fstat(fd).st_size == len(model), \
                    "thread %d step %d: size" % (i, step)
        finally:
            os.close(fd)
            os.close(fd2)
        models[i] = bytes(model)

    run_threads(worker, THREADS)
    drop_caches()
    for i, model in models.items():
        assert read_file(mnt / ("t%d" % i)) == model
        assert os.path.getsize(mnt.parent / "backing" / ("t%d" % i)) == \
            backing_size(len(model))


# ---- concurrent writers ----------------------------------------------------------

@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "odirect"])
def test_writers_to_different_blocks(mnt, direct):
    """Threads rewrite disjoint, unaligned ranges of one 8 MiB file (partial
    blocks at both ends of each range, 1 MiB requests in the middle) while
    readers read the whole file: no read fails, and the result is exact."""
    size = 8 * 1024 * 1024
    path = str(mnt / "shared")
    with open(path, "wb") as f:
        f.write(bytes(size))
    model = bytearray(size)
    nwriters = 4
    span = size // nwriters
    stop = threading.Event()
    flags = os.O_RDWR | (os.O_DIRECT if direct else 0)

    def writer(i):
        rng = random.Random(i)
        fd = os.open(path, flags)
        try:
            for _ in range(12):
                off = i * span + rng.randrange(0, BLOCK)
                n = rng.randrange(span // 2, span - BLOCK)
                data = rng.randbytes(n)
                assert os.pwrite(fd, data, off) == n
                model[off:off + n] = data        # disjoint: no lock needed
        finally:
            os.close(fd)

    def reader():
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
        try:
            while not stop.is_set():
                assert len(os.pread(fd, size, 0)) == size
        finally:
            os.close(fd)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        run_threads(writer, nwriters)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert read_file(path) == bytes(model)
    drop_caches()
    assert read_file(path) == bytes(model)


def test_writers_to_overlapping_blocks(mnt):
    """Threads write a constant byte each over the same unaligned range that
    spans partial and whole blocks, with O_DIRECT so every write reaches the
    daemon as sent: afterwards every block authenticates, the size is
    unchanged, and every byte is one of the written values; each block is
    whole from a single writer except where write ranges end inside it."""
    size = 64 * BLOCK
    path = str(mnt / "overlap")
    with open(path, "wb") as f:
        f.write(b"\x00" * size)
    lo, hi = BLOCK // 2, 40 * BLOCK + 123

    def writer(i):
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
        try:
            for _ in range(30):
                assert os.pwrite(fd, bytes([i + 1]) * (hi - lo), lo) == hi - lo
        finally:
            os.close(fd)

    run_threads(writer, 4)
    drop_caches()
    data = read_file(path)
    assert len(data) == size
    assert data[:lo] == bytes(lo) and data[hi:] == bytes(size - hi)
    assert set(data[lo:hi]) <= {1, 2, 3, 4}
    # Blocks wholly inside the range come from one write each (a block is
    # sealed as a unit and written under its range lock).
    for b in range(1, hi // BLOCK):
        assert len(set(data[b * BLOCK:(b + 1) * BLOCK])) == 1, "block %d torn" % b


# ---- writeback semantics -----------------------------------------------------------

def test_size_visible_while_cached_and_after_remount(mounted):
    """Under the writeback cache the kernel holds the size of dirty data:
    stat is right at once, and the backing file agrees after close."""
    mnt = mounted.mnt
    p = mnt / "grow"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    for i in range(100):
        os.write(fd, b"x" * 1000)
        assert os.fstat(fd).st_size == 1000 * (i + 1)
        assert os.stat(p).st_size == 1000 * (i + 1)
    os.ftruncate(fd, 12345)
    assert os.stat(p).st_size == 12345
    os.close(fd)
    assert os.path.getsize(mounted.bpath("grow")) == backing_size(12345)
    mounted.remount(mounted.mounts[-1])
    assert os.stat(p).st_size == 12345
    assert read_file(p) == b"x" * 12345


def test_mtime_stable_across_flush_and_remount(mounted):
    """The kernel stamps mtime at write() and flushes data later; the mtime
    seen before close must be the one that survives a remount, and an
    explicit utime after the writes wins."""
    mnt = mounted.mnt
    p = mnt / "m"
    with open(p, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))
        f.flush()
        seen = os.fstat(f.fileno()).st_mtime_ns
    time.sleep(0.05)
    assert os.stat(p).st_mtime_ns == seen
    q = mnt / "q"
    with open(q, "wb") as f:
        f.write(b"abc" * 5000)
        os.utime(f.fileno(), ns=(1_600_000_000_000_000_001, 1_600_000_000_000_000_002))
    mounted.remount(mounted.mounts[-1])
    assert os.stat(p).st_mtime_ns == seen
    assert os.stat(q).st_mtime_ns == 1_600_000_000_000_000_002
    # A write after an old utime moves mtime to now.
    before = time.time_ns()
    with open(q, "ab") as f:
        f.write(b"more")
    assert os.stat(q).st_mtime_ns >= before - 1_000_000_000


def test_unlink_time_flush(mounted):
    """Each unlink of a cached file makes the kernel flush its times to the
    daemon. An open, unlinked file keeps its mtime, size and content; a file
    that keeps another name has its ctime moved, as POSIX asks of unlink."""
    mnt = mounted.mnt
    p = mnt / "gone"
    data = os.urandom(2 * BLOCK + 7)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        mtime = os.fstat(fd).st_mtime_ns
        time.sleep(0.02)
        os.unlink(p)
        st = os.fstat(fd)
        assert (st.st_nlink, st.st_mtime_ns, st.st_size) == (0, mtime, len(data))
        assert os.pread(fd, len(data) + 10, 0) == data
    finally:
        os.close(fd)
    a = mnt / "a"
    a.write_bytes(b"x" * 100)
    os.link(a, mnt / "b")
    before = os.stat(a)
    time.sleep(0.02)
    os.unlink(mnt / "b")
    after = os.stat(a)
    assert after.st_nlink == 1 and after.st_mtime_ns == before.st_mtime_ns
    assert after.st_ctime_ns > before.st_ctime_ns


def test_append_interleaved_descriptors(mnt):
    """Two O_APPEND descriptors and a positional writer on one file: every
    append lands at the end as the kernel saw it."""
    p = str(mnt / "app")
    a = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    b = os.open(p, os.O_WRONLY | os.O_APPEND)
    expect = bytearray()
    for i in range(200):
        chunk = bytes([i % 251]) * (1 + (i * 37) % 700)
        os.write(a if i % 2 else b, chunk)
        expect += chunk
    c = os.open(p, os.O_WRONLY)
    os.pwrite(c, b"HEAD", 0)
    expect[0:4] = b"HEAD"
    for fd in (a, b, c):
        os.close(fd)
    assert read_file(p) == bytes(expect)
    drop_caches()
    assert read_file(p) == bytes(expect)


def test_write_only_handle_partial_page(mnt):
    """The writeback cache reads the pages around a partial write even when
    the file was opened write-only."""
    p = mnt / "wo"
    data = bytearray(os.urandom(5 * BLOCK))
    p.write_bytes(bytes(data))
    drop_caches()
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"hello", BLOCK + 100)
    os.close(fd)
    data[BLOCK + 100:BLOCK + 105] = b"hello"
    drop_caches()
    assert read_file(p) == bytes(data)


# ---- kernel caching ------------------------------------------------------------------

def test_changed_behind_mount_not_served_from_cache(mounted):
    """keep_cache is only for files unchanged since the daemon last touched
    them: a block damaged in the backing file is detected at the next open
    even though its plaintext is still in the page cache."""
    mnt = mounted.mnt
    p = mnt / "k"
    data = os.urandom(4 * BLOCK)
    p.write_bytes(data)
    assert read_file(p) == data          # cached now
    assert read_file(p) == data          # and kept across opens
    with open(mounted.bpath("k"), "r+b") as f:
        f.seek(HEADER_SIZE + CBLOCK + 100)
        b = f.read(1)
        f.seek(HEADER_SIZE + CBLOCK + 100)
        f.write(bytes([b[0] ^ 1]))
    time.sleep(1.1)                      # past attr_timeout
    with pytest.raises(OSError) as e:
        read_file(p)
    assert e.value.errno == errno.EIO
