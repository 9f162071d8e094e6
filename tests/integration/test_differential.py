"""Randomized differential test: the mount against a plain directory.

Owns: seeded random operation sequences (writes at random offsets and at
block boundaries, truncates, appends, renames, unlinks, links, mkdir/rmdir,
reads, fallocate, writes through long-held file descriptors, including after the name
is gone) applied to the ekmfs mount and to a plain temporary directory. After
every step the outcome (result or errno) and the touched files' size and
content must be equal; the full trees are compared periodically, at the end,
and after a remount. A failure names the seed and the last operations;
EKMFS_DIFF_SEEDS=1,2,3 and EKMFS_DIFF_OPS=N rerun chosen seeds.

Divisions: configuration / the two-sided world / operations / the test.
"""
import errno
import os
import random
import shutil
import tempfile

import pytest

from conftest import BLOCK

# ---- configuration -----------------------------------------------------------

SEEDS = [int(s) for s in os.environ.get("EKMFS_DIFF_SEEDS", "1,2,3,4,5,6").split(",")]
OPS = int(os.environ.get("EKMFS_DIFF_OPS", "800"))

DIRS = ["d0", "d1", "d0/e"]
FILES = ["f0", "f1", "f2", "f3", "d0/f0", "d0/f1", "d1/f0", "d1/f1", "d0/e/f0"]


def interesting_offset(rng, size):
    k = rng.randrange(0, 6)
    return rng.choice([
        BLOCK * k, BLOCK * k - 1 if k else 0, BLOCK * k + 1,
        rng.randrange(0, 6 * BLOCK), size, size + rng.randrange(1, 3 * BLOCK),
        max(0, size - rng.randrange(1, BLOCK + 2)),
    ])


def interesting_length(rng):
    return rng.choice([1, 2, 100, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK,
                       rng.randrange(1, 3 * BLOCK), rng.randrange(1, 300)])


# ---- the two-sided world -----------------------------------------------------

class World:
    """The same relative paths under two roots; every op runs on both."""

    def __init__(self, mnt, ref, rng):
        self.roots = (str(mnt), str(ref))
        self.rng = rng
        self.held = []          # [(label, fd_mnt, fd_ref)]
        self.history = []

    def p(self, side, rel):
        return os.path.join(self.roots[side], rel)

    def both(self, fn):
        """fn(side) on both sides; same result or same errno required."""
        out = []
        for side in (0, 1):
            try:
                out.append(("ok", fn(side)))
            except OSError as e:
                out.append(("err", errno.errorcode.get(e.errno, e.errno)))
        return out

    def size_of(self, rel):
        try:
            return os.stat(self.p(1, rel)).st_size
        except OSError:
            return 0

    def close_all(self):
        for _, a, b in self.held:
            os.close(a)
            os.close(b)
        self.held = []


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def fd_state(fd):
    size = os.fstat(fd).st_size
    return size, os.pread(fd, size + 10, 0)


def path_state(path):
    try:
        st = os.lstat(path)
    except OSError as e:
        return ("missing", e.errno)
    if os.path.isdir(path):
        return ("dir",)
    return ("file", st.st_size, st.st_nlink, read_all(path))


def tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), root)] = ("dir",)
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = path_state(p)
    return out


# ---- operations --------------------------------------------------------------
# Each returns (description, paths whose state must now match).

def op_write(w):
    rel = w.rng.choice(FILES)
    off = interesting_offset(w.rng, w.size_of(rel))
    data = w.rng.randbytes(interesting_length(w.rng))

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            return os.pwrite(fd, data, off)
        finally:
            os.close(fd)
    return "write %s off=%d len=%d" % (rel, off, len(data)), fn, [rel]


def op_append(w):
    rel = w.rng.choice(FILES)
    data = w.rng.randbytes(interesting_length(w.rng))

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            return os.write(fd, data)
        finally:
            os.close(fd)
    return "append %s len=%d" % (rel, len(data)), fn, [rel]


def op_truncate(w):
    rel = w.rng.choice(FILES)
    size = interesting_offset(w.rng, w.size_of(rel))
    return ("truncate %s %d" % (rel, size),
            lambda side: os.truncate(w.p(side, rel), size), [rel])


def op_otrunc(w):
    rel = w.rng.choice(FILES)
    data = w.rng.randbytes(w.rng.choice([0, 10, BLOCK + 3]))

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            return os.write(fd, data) if data else 0
        finally:
            os.close(fd)
    return "o_trunc %s len=%d" % (rel, len(data)), fn, [rel]


def op_read(w):
    rel = w.rng.choice(FILES)
    off = interesting_offset(w.rng, w.size_of(rel))
    n = interesting_length(w.rng)

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_RDONLY)
        try:
            return os.pread(fd, n, off)
        finally:
            os.close(fd)
    return "read %s off=%d len=%d" % (rel, off, n), fn, []


def op_rename(w):
    src = w.rng.choice(FILES + DIRS)
    dst = w.rng.choice(FILES + DIRS)
    return ("rename %s -> %s" % (src, dst),
            lambda side: os.rename(w.p(side, src), w.p(side, dst)), [src, dst])


def op_unlink(w):
    rel = w.rng.choice(FILES)
    return "unlink %s" % rel, lambda side: os.unlink(w.p(side, rel)), [rel]


def op_link(w):
    src, dst = w.rng.choice(FILES), w.rng.choice(FILES)
    return ("link %s -> %s" % (src, dst),
            lambda side: os.link(w.p(side, src), w.p(side, dst)), [src, dst])


def op_mkdir(w):
    rel = w.rng.choice(DIRS)
    return "mkdir %s" % rel, lambda side: os.mkdir(w.p(side, rel)), [rel]


def op_rmdir(w):
    rel = w.rng.choice(DIRS)
    return "rmdir %s" % rel, lambda side: os.rmdir(w.p(side, rel)), [rel]


def op_hold(w):
    rel = w.rng.choice(FILES)
    if len(w.held) >= 4:
        label, a, b = w.held.pop(w.rng.randrange(len(w.held)))
        os.close(a)
        os.close(b)
        return "close held %s" % label, lambda side: None, []
    fds = []

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_RDWR)
        fds.append(fd)
        return None
    res = w.both(fn)
    if len(fds) == 2:
        w.held.append((rel, fds[0], fds[1]))
    else:
        for fd in fds:
            os.close(fd)
    return "hold %s" % rel, None, res


def op_held_write(w):
    if not w.held:
        return op_write(w)
    label, a, b = w.rng.choice(w.held)
    size = os.fstat(b).st_size
    off = interesting_offset(w.rng, size)
    data = w.rng.randbytes(interesting_length(w.rng))
    if w.rng.random() < 0.2:
        new = interesting_offset(w.rng, size)
        return ("held ftruncate %s %d" % (label, new),
                lambda side: os.ftruncate((a, b)[side], new), ("fd", a, b))
    return ("held pwrite %s off=%d len=%d" % (label, off, len(data)),
            lambda side: os.pwrite((a, b)[side], data, off), ("fd", a, b))


def op_fallocate(w):
    rel = w.rng.choice(FILES)
    off = interesting_offset(w.rng, w.size_of(rel))
    n = interesting_length(w.rng)

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY)
        try:
            os.posix_fallocate(fd, off, n)
        finally:
            os.close(fd)
    return "fallocate %s off=%d len=%d" % (rel, off, n), fn, [rel]


OPERATIONS = [(op_write, 24), (op_append, 8), (op_truncate, 10), (op_otrunc, 3),
              (op_read, 12), (op_rename, 7), (op_unlink, 5), (op_link, 5),
              (op_mkdir, 4), (op_rmdir, 3), (op_hold, 5), (op_held_write, 14),
              (op_fallocate, 3)]


def pick(rng):
    total = sum(wt for _, wt in OPERATIONS)
    x = rng.randrange(total)
    for fn, wt in OPERATIONS:
        if x < wt:
            return fn
        x -= wt
    raise AssertionError("unreachable")


# ---- the test ----------------------------------------------------------------

def compare_trees(w, when):
    a, b = tree(w.roots[0]), tree(w.roots[1])
    if a == b:
        return
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    detail = {k: (summ(a.get(k)), summ(b.get(k))) for k in diff[:5]}
    raise AssertionError("trees differ %s: %s" % (when, detail))


def summ(state):
    if state and state[0] == "file":
        return state[:3] + ("<%d bytes>" % len(state[3]),)
    return state


def run_sequence(w, seed, nops):
    for i in range(nops):
        desc, fn, touched = pick(w.rng)(w)
        w.history.append(desc)
        if fn is None:
            results = touched
            touched = []
        else:
            results = w.both(fn)
        ctx = "seed %d op %d (%s); last ops:\n  %s" % (
            seed, i, desc, "\n  ".join(w.history[-15:]))
        assert results[0] == results[1], "outcome differs: mount %r, plain %r; %s" % (
            results[0][:1] + (summ_r(results[0][1]),), results[1][:1] + (summ_r(results[1][1]),), ctx)
        if isinstance(touched, tuple):
            _, a, b = touched
            sa, sb = fd_state(a), fd_state(b)
            assert sa == sb, "held fd differs: mount size %d, plain size %d; %s" % (
                sa[0], sb[0], ctx)
        else:
            for rel in touched:
                sa, sb = path_state(w.p(0, rel)), path_state(w.p(1, rel))
                assert sa == sb, "%s differs: mount %r, plain %r; %s" % (
                    rel, summ(sa), summ(sb), ctx)
        if i % 100 == 99:
            compare_trees(w, "after op %d, seed %d" % (i, seed))


def summ_r(r):
    if isinstance(r, bytes):
        return "<%d bytes %s>" % (len(r), r[:8].hex())
    return r


@pytest.mark.parametrize("seed", SEEDS)
def test_differential(mounted, seed):
    ref = tempfile.mkdtemp(prefix="ekmfs-diff-ref-")
    w = World(mounted.mnt, ref, random.Random(seed))
    try:
        os.mkdir(w.p(0, "d0"))
        os.mkdir(w.p(1, "d0"))
        run_sequence(w, seed, OPS)
        w.close_all()
        compare_trees(w, "at the end of seed %d" % seed)
        mounted.remount(mounted.mounts[-1])
        compare_trees(w, "after remount, seed %d" % seed)
    finally:
        w.close_all()
        shutil.rmtree(ref, ignore_errors=True)
