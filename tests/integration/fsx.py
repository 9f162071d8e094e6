#!/usr/bin/python3
"""fsx for ekmfs: a file system exerciser in the manner of fsx (Avadis
Tevanian Jr., Apple; rewritten by Conrad Minshall), written anew for this
project because Debian 12 packages no fsx.

Owns: a seeded random sequence of operations on one file through a mount
(write, read, mmap read, mmap write, truncate up and down, fallocate plain
and KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE with and without KEEP_SIZE, fsync,
fdatasync, close and reopen), each applied to an in-memory model as Linux
defines it; every read (and, every N operations and at the end, the whole
file, through a second descriptor) is compared with the model, and the
size with stat. The first difference stops the run with the operation
log, the offset and both byte strings.

Usage: fsx.py [-N ops] [-S seed] [-l maxlen] [-o maxop] [--no-punch]
              [--no-zero] [--no-mmap] FILE
Divisions: the model / the operations / the run / the command line.
"""
import argparse
import errno
import mmap
import os
import random
import sys

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

try:
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
except OSError:              # pragma: no cover
    _libc = None


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Mismatch(AssertionError):
    pass


# ---- the model -----------------------------------------------------------------

class Model:
    """The file's bytes as Linux defines them after each operation."""

    def __init__(self):
        self.data = bytearray()

    @property
    def size(self):
        return len(self.data)

    def write(self, off, buf):
        if off > self.size:
            self.data.extend(bytes(off - self.size))
        self.data[off:off + len(buf)] = buf

    def truncate(self, size):
        if size < self.size:
            del self.data[size:]
        else:
            self.data.extend(bytes(size - self.size))

    def zero(self, off, length, keep_size):
        end = off + length
        if not keep_size and end > self.size:
            self.truncate(end)
        end = min(end, self.size)
        if off < end:
            self.data[off:end] = bytes(end - off)

    def allocate(self, off, length, keep_size):
        if not keep_size and off + length > self.size:
            self.truncate(off + length)


# ---- the operations -----------------------------------------------------------------

class Fsx:
    def __init__(self, path, seed, maxlen, maxop, punch=True, zero=True, use_mmap=True,
                 check_every=50, log=None):
        self.path = path
        self.rng = random.Random(seed)
        self.seed = seed
        self.maxlen = maxlen
        self.maxop = maxop
        self.punch = punch
        self.zero = zero
        self.use_mmap = use_mmap
        self.check_every = check_every
        self.m = Model()
        self.history = []
        self.log = log
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def note(self, text):
        self.history.append(text)
        if len(self.history) > 40:
            del self.history[0]
        if self.log:
            self.log.write(text + "\n")

    def fail(self, what):
        raise Mismatch("fsx seed %d: %s\nlast operations:\n  %s" % (
            self.seed, what, "\n  ".join(self.history)))

    def compare(self, off, got, where):
        want = bytes(self.m.data[off:off + len(got)])
        if len(got) != len(want):
            self.fail("%s at %d: got %d bytes, the model has %d" % (where, off, len(got), len(want)))
        if got != want:
            i = next(i for i in range(len(got)) if got[i] != want[i])
            self.fail("%s: first difference at offset %d: got %s, expected %s" % (
                where, off + i, got[i:i + 16].hex(), want[i:i + 16].hex()))

    def pick(self, maxoff=None):
        maxoff = self.maxop if maxoff is None else maxoff
        off = self.rng.randrange(maxoff)
        length = self.rng.randrange(1, self.maxlen + 1)
        if self.rng.random() < 0.25:          # block-aligned cases
            off -= off % 4096
            length = max(4096, length - length % 4096)
        return off, min(length, self.maxop - off) or 1

    def op_write(self):
        off, length = self.pick()
        buf = bytes(self.rng.getrandbits(8) for _ in range(min(length, 64))) * \
            (length // 64 + 1)
        buf = buf[:length]
        self.note("write 0x%x len 0x%x" % (off, length))
        if os.pwrite(self.fd, buf, off) != length:
            self.fail("short write at %d" % off)
        self.m.write(off, buf)

    def op_read(self):
        if not self.m.size:
            return
        off, length = self.pick(self.m.size)
        self.note("read 0x%x len 0x%x" % (off, length))
        got = os.pread(self.fd, length, off)
        self.compare(off, got, "read")

    def op_mapread(self):
        if not self.use_mmap or not self.m.size:
            return self.op_read()
        off, length = self.pick(self.m.size)
        length = min(length, self.m.size - off)
        self.note("mapread 0x%x len 0x%x" % (off, length))
        with mmap.mmap(self.fd, self.m.size, prot=mmap.PROT_READ) as mm:
            got = mm[off:off + length]
        self.compare(off, got, "mapread")

    def op_mapwrite(self):
        if not self.use_mmap:
            return self.op_write()
        off, length = self.pick()
        end = off + length
        self.note("mapwrite 0x%x len 0x%x" % (off, length))
        if end > self.m.size:
            os.ftruncate(self.fd, end)
            self.m.truncate(end)
        buf = bytes([self.rng.getrandbits(8)]) * length
        with mmap.mmap(self.fd, end, prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            mm[off:end] = buf
            mm.flush()
        self.m.write(off, buf)

    def op_truncate(self):
        size = self.rng.randrange(self.maxop)
        if self.rng.random() < 0.3:
            size -= size % 4096
        self.note("truncate 0x%x (from 0x%x)" % (size, self.m.size))
        os.ftruncate(self.fd, size)
        self.m.truncate(size)

    def op_fallocate(self, mode, name):
        off, length = self.pick()
        self.note("%s 0x%x len 0x%x" % (name, off, length))
        try:
            fallocate(self.fd, mode, off, length)
        except OSError as e:
            if e.errno == errno.EOPNOTSUPP:
                self.fail("%s refused with EOPNOTSUPP" % name)
            raise
        keep = bool(mode & FALLOC_FL_KEEP_SIZE)
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            self.m.zero(off, length, keep)
        else:
            self.m.allocate(off, length, keep)

    def op_sync(self):
        if self.rng.random() < 0.5:
            self.note("fsync")
            os.fsync(self.fd)
        else:
            self.note("fdatasync")
            os.fdatasync(self.fd)

    def op_reopen(self):
        self.note("close/open")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR)

    def check_whole(self, where):
        size = os.fstat(self.fd).st_size
        if size != self.m.size:
            self.fail("%s: size %d, the model has %d" % (where, size, self.m.size))
        fd2 = os.open(self.path, os.O_RDONLY)
        try:
            got = bytearray()
            while len(got) < size + 1:
                piece = os.pread(fd2, 1 << 20, len(got))
                if not piece:
                    break
                got += piece
        finally:
            os.close(fd2)
        self.compare(0, bytes(got), where + " (whole file)")

    # ---- the run ----

    def run(self, nops):
        table = [(self.op_read, 12), (self.op_write, 14), (self.op_mapread, 4),
                 (self.op_mapwrite, 4), (self.op_truncate, 5),
                 (lambda: self.op_fallocate(0, "fallocate"), 2),
                 (lambda: self.op_fallocate(FALLOC_FL_KEEP_SIZE, "fallocate_keep"), 2),
                 (self.op_sync, 2), (self.op_reopen, 2)]
        if self.punch:
            table.append((lambda: self.op_fallocate(
                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "punch_hole"), 4))
        if self.zero:
            table.append((lambda: self.op_fallocate(FALLOC_FL_ZERO_RANGE, "zero_range"), 2))
            table.append((lambda: self.op_fallocate(
                FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, "zero_range_keep"), 2))
        ops = [f for f, w in table for _ in range(w)]
        for i in range(nops):
            op = self.rng.choice(ops)
            op()
            if self.check_every and i % self.check_every == self.check_every - 1:
                self.check_whole("after op %d" % i)
        self.check_whole("at the end")
        os.close(self.fd)


# ---- the command line ----------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-N", type=int, default=10000, help="operations (10000)")
    ap.add_argument("-S", type=int, default=1, help="seed (1)")
    ap.add_argument("-l", type=int, default=65536, help="largest transfer (65536)")
    ap.add_argument("-o", type=int, default=262144, help="largest offset (262144)")
    ap.add_argument("--no-punch", action="store_true")
    ap.add_argument("--no-zero", action="store_true")
    ap.add_argument("--no-mmap", action="store_true")
    ap.add_argument("file")
    a = ap.parse_args(argv)
    f = Fsx(a.file, a.S, a.l, a.o, punch=not a.no_punch, zero=not a.no_zero,
            use_mmap=not a.no_mmap)
    try:
        f.run(a.N)
    except Mismatch as e:
        print(e, file=sys.stderr)
        return 1
    print("fsx: %d operations, seed %d: all reads matched" % (a.N, a.S))
    return 0


if __name__ == "__main__":
    sys.exit(main())
