"""The crash simulator's workload: seeded random operations on a recorded mount.

Owns: the log cursor (how many records the crash log holds now), and a
seeded random sequence of file operations applied to a mounted volume whose
daemon records every backing change ($EKMFS_CRASH_LOG, src/io/record.c) and,
when it succeeds there, to a plain reference directory; each operation goes
into the oracle's journal (crash_oracle.py) with the log positions before
and after it, the byte ranges it touched, the content an fsync made
durable, and the names after a namespace change. The operations: creating
writes, appends of random sizes (most start inside a block), overwrites,
truncates up and down, O_TRUNC opens, fsync and fdatasync (by path and on
held descriptors), renames, unlinks, hard links, fallocate (plain,
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE: the mount may refuse the last two with
EOPNOTSUPP), directories, and descriptors held across renames and unlinks.

Divisions: the log cursor / the world / operations / running a workload.
"""
import ctypes
import errno
import fcntl
import os
import random
import shutil
import stat

from conftest import BLOCK
from crash_oracle import INF, Journal

# ---- the log cursor ------------------------------------------------------------


class LogCursor:
    """Counts the crash log's records. A shared flock makes the count one of
    whole records of finished calls (the recorder holds the lock exclusively
    around each call and its append)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.seen = 0
        self.count = 0

    def position(self):
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        try:
            size = os.fstat(self.fd).st_size
            while self.seen < size:
                chunk = os.pread(self.fd, min(1 << 20, size - self.seen), self.seen)
                if not chunk:
                    break
                self.count += chunk.count(b"\n")
                self.seen += len(chunk)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        return self.count

    def close(self):
        os.close(self.fd)


# ---- the world -------------------------------------------------------------------

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Diverged(AssertionError):
    """An operation succeeded on the mount and failed on the reference."""


class World:
    """The mount and the reference directory, the journal, the log cursor."""

    def __init__(self, mnt, ref, cursor, rng, files, dirs):
        self.roots = (str(mnt), str(ref))
        self.cursor = cursor
        self.rng = rng
        self.files, self.dirs = files, dirs
        self.journal = Journal()
        self.held = []            # [(label, mount fd, reference fd)]
        self.refused = {}         # desc kind -> errno name, operations the mount refused

    def p(self, side, rel):
        return os.path.join(self.roots[side], rel)

    def ref_stat(self, rel):
        try:
            st = os.stat(self.p(1, rel))
        except OSError:           # missing, or a file where a directory was
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def names(self):
        """{path: reference inode} of every regular file."""
        out = {}
        root = self.roots[1]
        for dirpath, _, filenames in os.walk(root):
            for n in filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    out[os.path.relpath(p, root)] = st.st_ino
        return out

    def run(self, desc, fn, effects):
        """fn(side) on the mount; when it succeeds, on the reference too.
        effects() (called before and after) says what to journal."""
        start = self.cursor.position()
        try:
            fn(0)
        except OSError as e:
            self.refused[desc.split()[0]] = errno.errorcode.get(e.errno, e.errno)
            return False
        before = effects(None)
        try:
            fn(1)
        except OSError as e:
            raise Diverged("%s: the mount did it, the reference says %s" % (desc, e)) from e
        end = self.cursor.position()
        touch, fsync, names = effects(before)
        self.journal.add(desc, start, end, touch, fsync, names)
        return True

    def close_all(self):
        for _, a, b in self.held:
            os.close(a)
            os.close(b)
        self.held = []


# ---- operations ----------------------------------------------------------------
# Each picks its arguments with w.rng, then w.run()s itself. The effects
# function is called once before the reference side runs (with None; it
# returns what it needs to remember) and once after (with that).

def interesting_offset(rng, size):
    k = rng.randrange(0, 5)
    return rng.choice([BLOCK * k, BLOCK * k + rng.randrange(1, BLOCK), rng.randrange(0, 5 * BLOCK),
                       size, max(0, size - rng.randrange(1, BLOCK + 2)),
                       size + rng.randrange(1, 2 * BLOCK)])


def interesting_length(rng):
    return rng.choice([1, 100, 200, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 7,
                       rng.randrange(1, 3 * BLOCK), rng.randrange(1, 600)])


def data_effects(w, rel, rng_of, through=None):
    """Effects of an operation on the file at rel that touches the byte
    range rng_of(size before) and changes the size from before to after,
    passing through the size `through` on its way (O_TRUNC: 0)."""
    def effects(before):
        if before is None:
            st = w.ref_stat(rel)
            return (st.st_size if st else 0, st is None)
        size0, created = before
        st = w.ref_stat(rel)
        lo, hi = rng_of(size0)
        sizes = [size0, st.st_size] + ([through] if through is not None else [])
        touch = [(st.st_ino, lo, hi, min(sizes), max(sizes))]
        return touch, None, w.names() if created else None
    return effects


def op_write(w):
    rel = w.rng.choice(w.files)
    st = w.ref_stat(rel)
    off = interesting_offset(w.rng, st.st_size if st else 0)
    data = w.rng.randbytes(interesting_length(w.rng))

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, off)
        finally:
            os.close(fd)
    w.run("write %s off=%d len=%d" % (rel, off, len(data)), fn,
          data_effects(w, rel, lambda s: (min(s, off), off + len(data))))


def op_truncate(w):
    rel = w.rng.choice(w.files)
    st = w.ref_stat(rel)
    if st is None:
        return
    size = interesting_offset(w.rng, st.st_size)
    w.run("truncate %s %d" % (rel, size), lambda side: os.truncate(w.p(side, rel), size),
          data_effects(w, rel, lambda s: (size, INF) if size < s else (s, size)))


def op_otrunc(w):
    rel = w.rng.choice(w.files)
    data = w.rng.randbytes(w.rng.choice([0, 10, 100, BLOCK + 3]))

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if data:
                os.write(fd, data)
        finally:
            os.close(fd)
    w.run("o_trunc %s len=%d" % (rel, len(data)), fn,
          data_effects(w, rel, lambda s: (0, INF), through=0))


def sync_effects(w, rel=None, fds=None):
    def effects(before):
        if before is None:
            return True
        if fds is not None:
            fd = fds[1]
            st = os.fstat(fd)
            content = os.pread(fd, st.st_size + 1, 0)
        else:
            st = os.stat(w.p(1, rel))
            with open(w.p(1, rel), "rb") as f:
                content = f.read()
        return [], (st.st_ino, content), None
    return effects


def fsync_file(w, rel, datasync=False):
    """fsync (or fdatasync) the file at rel."""
    def fn(side):
        fd = os.open(w.p(side, rel), os.O_RDWR)
        try:
            (os.fdatasync if datasync else os.fsync)(fd)
        finally:
            os.close(fd)
    return w.run("%s %s" % ("fdatasync" if datasync else "fsync", rel), fn, sync_effects(w, rel))


def op_fsync(w):
    rel = w.rng.choice(w.files)
    if w.ref_stat(rel) is not None:
        fsync_file(w, rel, w.rng.random() < 0.3)


def append_to(w, rel):
    """An append of a random size to rel (made if missing)."""
    n = w.rng.choice([1, 100, 100, 300, 1000, BLOCK - 100, BLOCK, BLOCK + 100,
                      w.rng.randrange(1, 3 * BLOCK)])
    data = w.rng.randbytes(n)

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return w.run("append %s len=%d" % (rel, n), fn, data_effects(w, rel, lambda s: (s, s + n)))


def op_append(w):
    append_to(w, w.rng.choice(w.files))


def names_effects(w):
    def effects(before):
        if before is None:
            return True
        return [], None, w.names()
    return effects


def op_rename(w):
    src = w.rng.choice(w.files + w.dirs)
    dst = w.rng.choice(w.files + w.dirs)
    w.run("rename %s -> %s" % (src, dst),
          lambda side: os.rename(w.p(side, src), w.p(side, dst)), names_effects(w))


def op_unlink(w):
    rel = w.rng.choice(w.files)
    w.run("unlink %s" % rel, lambda side: os.unlink(w.p(side, rel)), names_effects(w))


def op_link(w):
    src, dst = w.rng.choice(w.files), w.rng.choice(w.files)
    w.run("link %s -> %s" % (src, dst),
          lambda side: os.link(w.p(side, src), w.p(side, dst)), names_effects(w))


def op_mkdir(w):
    rel = w.rng.choice(w.dirs)
    w.run("mkdir %s" % rel, lambda side: os.mkdir(w.p(side, rel)), names_effects(w))


def op_rmdir(w):
    rel = w.rng.choice(w.dirs)
    w.run("rmdir %s" % rel, lambda side: os.rmdir(w.p(side, rel)), names_effects(w))


def op_fallocate(w):
    rel = w.rng.choice(w.files)
    st = w.ref_stat(rel)
    if st is None:
        return
    off = interesting_offset(w.rng, st.st_size)
    n = interesting_length(w.rng)
    mode, label = w.rng.choice([(0, "plain"), (FALLOC_FL_KEEP_SIZE, "keep_size"),
                                (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "punch_hole"),
                                (FALLOC_FL_ZERO_RANGE, "zero_range")])

    def fn(side):
        fd = os.open(w.p(side, rel), os.O_WRONLY)
        try:
            fallocate(fd, mode, off, n)
        finally:
            os.close(fd)

    def rng_of(s):
        if mode == 0 or mode == FALLOC_FL_KEEP_SIZE:
            return (s, max(s, off + n))
        return (min(s, off), off + n)
    w.run("fallocate_%s %s off=%d len=%d" % (label, rel, off, n), fn, data_effects(w, rel, rng_of))


def op_hold(w):
    if len(w.held) >= 3:
        label, a, b = w.held.pop(w.rng.randrange(len(w.held)))
        os.close(a)
        os.close(b)
        return
    rel = w.rng.choice(w.files)
    if w.ref_stat(rel) is None:
        return
    try:
        a = os.open(w.p(0, rel), os.O_RDWR)
    except OSError:
        return
    w.held.append((rel, a, os.open(w.p(1, rel), os.O_RDWR)))


def held_effects(w, fds, rng_of):
    def effects(before):
        if before is None:
            return os.fstat(fds[1]).st_size
        st = os.fstat(fds[1])
        lo, hi = rng_of(before)
        return [(st.st_ino, lo, hi, min(before, st.st_size), max(before, st.st_size))], \
            None, None
    return effects


def op_held(w):
    if not w.held:
        return op_hold(w)
    label, a, b = w.rng.choice(w.held)
    fds = (a, b)
    size = os.fstat(b).st_size
    x = w.rng.random()
    if x < 0.25:
        datasync = w.rng.random() < 0.3
        w.run("held %s %s" % ("fdatasync" if datasync else "fsync", label),
              lambda side: (os.fdatasync if datasync else os.fsync)(fds[side]),
              sync_effects(w, fds=fds))
    elif x < 0.4:
        new = interesting_offset(w.rng, size)
        w.run("held ftruncate %s %d" % (label, new),
              lambda side: os.ftruncate(fds[side], new),
              held_effects(w, fds, lambda s: (new, INF) if new < s else (s, new)))
    else:
        off = interesting_offset(w.rng, size)
        data = w.rng.randbytes(interesting_length(w.rng))
        w.run("held pwrite %s off=%d len=%d" % (label, off, len(data)),
              lambda side: os.pwrite(fds[side], data, off),
              held_effects(w, fds, lambda s: (min(s, off), off + len(data))))


OPERATIONS = [(op_write, 14), (op_append, 16), (op_truncate, 5), (op_otrunc, 2),
              (op_fsync, 14), (op_rename, 4), (op_unlink, 3), (op_link, 3),
              (op_mkdir, 2), (op_rmdir, 1), (op_fallocate, 4), (op_hold, 3),
              (op_held, 9)]


def pick(rng):
    total = sum(wt for _, wt in OPERATIONS)
    x = rng.randrange(total)
    for fn, wt in OPERATIONS:
        if x < wt:
            return fn
        x -= wt
    raise AssertionError("unreachable")


# ---- running a workload --------------------------------------------------------

FILES = ["f0", "f1", "f2", "f3", "d0/f0", "d0/f1", "d1/f0"]
DIRS = ["d0", "d1"]


def run_workload(mnt, ref, log, seed, nops, files=FILES, dirs=DIRS):
    """nops random operations (seeded) on mnt and ref; the journal."""
    cursor = LogCursor(log)
    w = World(mnt, ref, cursor, random.Random(seed), files, dirs)
    try:
        w.run("mkdir d0", lambda side: os.mkdir(w.p(side, "d0")), names_effects(w))
        for _ in range(nops):
            pick(w.rng)(w)
    finally:
        w.close_all()
        cursor.close()
    return w


def fresh_ref(path):
    shutil.rmtree(path, ignore_errors=True)
    os.mkdir(path)
    return path
