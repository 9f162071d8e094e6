#!/usr/bin/python3
"""crashsim.py - the crash simulator's replayer: a log prefix -> a crash image.

Owns: the initial snapshot of a backing directory, reading the log that
src/io/record.c writes (its header documents the records), the model of the
backing file system the log drives, the two crash modes, and materializing
the image a crash after k records leaves behind into a fresh directory.
Importable by the tests (tests/integration/test_crash.py); also a command
line tool (`crashsim.py --help`). docs/CRASH.md explains the model.

The model:
  * inodes, by st_ino on the backing directory's device: type, mode, and for
    regular files the current data (what a reader sees now) and the durable
    data (what survives a power cut: the current data at the last fsync,
    fdatasync or syncfs that covered the inode);
  * directories map names to inodes, so hard links are shared inodes;
  * namespace operations (create, mkdir, mknod, symlink, link, unlink,
    rename) apply in log order and are durable at once: a limit of the
    model, which never loses or reorders a name;
  * records about inodes the model does not know (outside the backing
    directory: the audit log, the key file, another device) are ignored.

The crash modes, after the first k records:
  kill   the process died; the page cache survives: every file is exactly
         its current data.
  power  the machine lost power: a file whose current data differs from its
         durable data gets, at random, its durable or its current size, and
         every 512-byte sector that differs between the two (beyond the
         durable size "durable" means zeros, beyond the current size
         "current" means zeros) independently the durable or the current
         content. The random choices are a function of (seed, k) only.

Divisions: snapshot / log / model / crash images / materialize / CLI.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import stat
import sys

SECTOR = 512

# fallocate(2) modes
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20

# renameat2(2) flags
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def name_bytes(s):
    """A name or target as the recorder wrote it (code points = bytes)."""
    return s.encode("latin-1")


def name_str(b):
    return b.decode("latin-1")


# ---- snapshot ----------------------------------------------------------------

def take_snapshot(backing):
    """Every object below backing (included): type, inode number, mode,
    content or symlink target, and the names of every directory. Hard links
    appear as one inode with several names. Returns a JSON-able dict."""
    backing = os.fsencode(os.path.abspath(backing))
    st = os.lstat(backing)
    inodes = {}

    def visit(path, st):
        ino = st.st_ino
        if ino in inodes:
            return ino
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            node = {"type": "dir", "mode": mode, "entries": {}}
            inodes[ino] = node
            for name in sorted(os.listdir(path)):
                p = os.path.join(path, name)
                node["entries"][name_str(name)] = visit(p, os.lstat(p))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                data = f.read()
            inodes[ino] = {"type": "reg", "mode": mode,
                           "data": base64.b64encode(data).decode()}
        elif stat.S_ISLNK(st.st_mode):
            inodes[ino] = {"type": "lnk", "mode": mode,
                           "target": name_str(os.readlink(path))}
        else:
            inodes[ino] = {"type": "other", "mode": mode, "fmt": stat.S_IFMT(st.st_mode),
                           "rdev": st.st_rdev}
        return ino

    visit(backing, st)
    return {"path": os.fsdecode(backing), "dev": st.st_dev, "root": st.st_ino,
            "inodes": {str(k): v for k, v in inodes.items()}}


def save_snapshot(snap, path):
    with open(path, "w") as f:
        json.dump(snap, f)


def load_snapshot(path):
    with open(path) as f:
        return json.load(f)


# ---- log ---------------------------------------------------------------------

def read_log(path):
    """The records of a log, in order. A torn last line (a writer killed in
    the middle of its append) is not a record."""
    records = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            records.append(json.loads(line))
    for i, r in enumerate(records):
        if r.get("seq") != i + 1:
            raise ValueError("%s: record %d has seq %r (a log is 1, 2, 3, ...)"
                             % (path, i + 1, r.get("seq")))
    return records


def count_records(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


# ---- model -------------------------------------------------------------------

class Inode:
    """One object of the backing file system."""
    __slots__ = ("kind", "mode", "cur", "dur", "entries", "target", "fmt", "rdev")

    def __init__(self, kind, mode):
        self.kind = kind          # "dir", "reg", "lnk" or "other"
        self.mode = mode          # permission bits
        self.cur = bytearray()    # reg: current data
        self.dur = b""            # reg: durable data
        self.entries = {}         # dir: name (bytes) -> ino
        self.target = b""         # lnk
        self.fmt = 0              # other: S_IFMT bits
        self.rdev = 0


class Model:
    """The backing file system as the log has changed it so far."""

    def __init__(self, snap):
        self.dev = snap["dev"]
        self.root = snap["root"]
        self.inodes = {}
        self.dirty = set()        # reg inodes whose cur may differ from dur
        self.applied = 0          # records applied
        self.ignored = 0          # records about unknown inodes or no content
        for k, v in snap["inodes"].items():
            node = Inode(v["type"], v["mode"])
            if v["type"] == "dir":
                node.entries = {name_bytes(n): i for n, i in v["entries"].items()}
            elif v["type"] == "reg":
                node.dur = base64.b64decode(v["data"])
                node.cur = bytearray(node.dur)
            elif v["type"] == "lnk":
                node.target = name_bytes(v["target"])
            else:
                node.fmt, node.rdev = v["fmt"], v["rdev"]
            self.inodes[int(k)] = node

    # -- helpers

    def _node(self, rec, key="ino", kind=None):
        if rec.get("dev") != self.dev:
            return None
        node = self.inodes.get(rec.get(key))
        if node is None or (kind and node.kind != kind):
            return None
        return node

    def _dir(self, rec, key="dir"):
        return self._node(rec, key, "dir")

    def _changed(self, ino):
        self.dirty.add(ino)

    @staticmethod
    def _resize(node, size):
        if size < len(node.cur):
            del node.cur[size:]
        else:
            node.cur.extend(bytes(size - len(node.cur)))

    @staticmethod
    def _zero(node, off, end):
        end = min(end, len(node.cur))
        if off < end:
            node.cur[off:end] = bytes(end - off)

    # -- records

    def apply(self, rec):
        fn = getattr(self, "op_" + rec["op"], None)
        if fn is None:
            raise ValueError("record %d: unknown op %r" % (rec["seq"], rec["op"]))
        if fn(rec) is False:
            self.ignored += 1
        self.applied += 1

    def op_write(self, rec):
        node = self._node(rec, kind="reg")
        if node is None:
            return False
        data = base64.b64decode(rec["data"])
        off = rec["off"]
        if off > len(node.cur):
            self._resize(node, off)
        node.cur[off:off + len(data)] = data
        self._changed(rec["ino"])

    def op_truncate(self, rec):
        node = self._node(rec, kind="reg")
        if node is None:
            return False
        self._resize(node, rec["size"])
        self._changed(rec["ino"])

    def op_fallocate(self, rec):
        """As Linux does it for the data a reader sees (allocation itself
        is invisible)."""
        node = self._node(rec, kind="reg")
        if node is None:
            return False
        mode, off, length = rec["mode"], rec["off"], rec["len"]
        end = off + length
        if mode & FALLOC_FL_PUNCH_HOLE:
            self._zero(node, off, end)
        elif mode & FALLOC_FL_COLLAPSE_RANGE:
            del node.cur[off:end]
        elif mode & FALLOC_FL_INSERT_RANGE:
            node.cur[off:off] = bytes(length)
        elif mode & FALLOC_FL_ZERO_RANGE:
            self._zero(node, off, end)
            if not mode & FALLOC_FL_KEEP_SIZE and end > len(node.cur):
                self._resize(node, end)
        elif not mode & FALLOC_FL_KEEP_SIZE and end > len(node.cur):
            self._resize(node, end)
        self._changed(rec["ino"])

    def _sync(self, ino):
        node = self.inodes[ino]
        if node.kind == "reg":
            node.dur = bytes(node.cur)
        self.dirty.discard(ino)

    def op_fsync(self, rec):
        if self._node(rec) is None:
            return False
        self._sync(rec["ino"])

    op_fdatasync = op_fsync

    def op_syncfs(self, rec):
        if rec.get("dev") != self.dev:
            return False
        for ino in list(self.dirty):
            self._sync(ino)

    def _make(self, rec, node):
        parent = self._dir(rec)
        if parent is None:
            return False
        # An inode number freed by an unlink may come back: a new object.
        self.inodes[rec["ino"]] = node
        self.dirty.discard(rec["ino"])
        parent.entries[name_bytes(rec["name"])] = rec["ino"]

    def op_create(self, rec):
        return self._make(rec, Inode("reg", rec["mode"]))

    def op_mkdir(self, rec):
        return self._make(rec, Inode("dir", rec["mode"]))

    def op_mknod(self, rec):
        fmt = stat.S_IFMT(rec["mode"])
        if fmt in (0, stat.S_IFREG):
            node = Inode("reg", stat.S_IMODE(rec["mode"]))
        else:
            node = Inode("other", stat.S_IMODE(rec["mode"]))
            node.fmt, node.rdev = fmt, rec["rdev"]
        return self._make(rec, node)

    def op_symlink(self, rec):
        node = Inode("lnk", 0o777)
        node.target = name_bytes(rec["target"])
        return self._make(rec, node)

    def op_link(self, rec):
        parent = self._dir(rec)
        if parent is None or rec["ino"] not in self.inodes:
            return False
        parent.entries[name_bytes(rec["name"])] = rec["ino"]

    def op_unlink(self, rec):
        parent = self._dir(rec)
        if parent is None:
            return False
        parent.entries.pop(name_bytes(rec["name"]), None)

    def op_rename(self, rec):
        old, new = self._dir(rec, "olddir"), self._dir(rec, "newdir")
        oldname, newname = name_bytes(rec["oldname"]), name_bytes(rec["newname"])
        if old is None and new is None:
            return False
        if rec["flags"] & RENAME_EXCHANGE:
            if old is not None:
                old.entries[oldname] = rec["replaced"]
            if new is not None:
                new.entries[newname] = rec["ino"]
            return None
        if old is not None:
            old.entries.pop(oldname, None)
        if new is not None:
            if rec["ino"] in self.inodes:
                new.entries[newname] = rec["ino"]
            else:                 # moved in from outside: content unknown
                new.entries.pop(newname, None)
                return False
        return None

    def op_chmod(self, rec):
        node = self._node(rec)
        if node is None:
            return False
        node.mode = rec["mode"]

    def op_chown(self, rec):        # owners are not modelled
        return False

    op_utimes = op_setxattr = op_removexattr = op_chown

    # -- views

    def tree(self):
        """(path, ino) of every object reachable from the root, parents
        first, in a fixed order; path is bytes relative to the root."""
        out = []

        def walk(dir_ino, prefix):
            for name in sorted(self.inodes[dir_ino].entries):
                ino = self.inodes[dir_ino].entries[name]
                if ino not in self.inodes:
                    continue
                path = prefix + name
                out.append((path, ino))
                if self.inodes[ino].kind == "dir":
                    walk(ino, path + b"/")

        walk(self.root, b"")
        return out


class Replayer:
    """A model moved forward through a log, one crash point after another
    (k must not decrease: replay is incremental)."""

    def __init__(self, snap, records):
        self.snap = snap
        self.records = records
        self.model = Model(snap)

    def advance(self, k):
        if k < self.model.applied:
            raise ValueError("crash points must be visited in order (%d after %d)"
                             % (k, self.model.applied))
        if k > len(self.records):
            raise ValueError("crash point %d beyond the log's %d records"
                             % (k, len(self.records)))
        while self.model.applied < k:
            self.model.apply(self.records[self.model.applied])
        return self.model

    def image(self, k, mode, seed=0):
        self.advance(k)
        return crash_image(self.model, mode, seed, k)


# ---- crash images ------------------------------------------------------------

def torn(dur, cur, rng):
    """A power cut's version of one file: see the module docstring."""
    size = rng.choice((len(dur), len(cur))) if len(dur) != len(cur) else len(cur)
    out = bytearray(dur[:size])
    out.extend(bytes(size - len(out)))
    for s in range(0, size, SECTOR):
        d = out[s:s + SECTOR]
        c = cur[s:s + SECTOR]
        if len(c) < len(d):
            c = c + bytes(len(d) - len(c))
        if c != d and rng.random() < 0.5:
            out[s:s + SECTOR] = c
    return bytes(out)


class Entry:
    """One object of an image, copied out of the model (which moves on)."""
    __slots__ = ("path", "ino", "kind", "mode", "target", "fmt", "rdev")

    def __init__(self, path, ino, node):
        self.path, self.ino = path, ino
        self.kind, self.mode = node.kind, node.mode
        self.target, self.fmt, self.rdev = node.target, node.fmt, node.rdev


class Image:
    """What a crash leaves: the objects (parents first) and each file's data."""

    def __init__(self, model, data, mode, seed, k):
        self.entries = [Entry(path, ino, model.inodes[ino]) for path, ino in model.tree()]
        self.root_mode = model.inodes[model.root].mode
        self.data = data          # ino -> bytes, for every reg inode in the tree
        self.mode, self.seed, self.k = mode, seed, k

    def fingerprint(self):
        """Equal for images that materialize identically."""
        h = hashlib.blake2b(digest_size=16)
        h.update(b"%o\0" % self.root_mode)
        for e in self.entries:
            h.update(b"%s\0%d\0%s\0%o\0" % (e.path, e.ino, e.kind.encode(), e.mode))
            if e.kind == "reg":
                h.update(hashlib.blake2b(self.data[e.ino], digest_size=16).digest())
            elif e.kind == "lnk":
                h.update(e.target + b"\0")
            elif e.kind == "other":
                h.update(b"%d\0%d\0" % (e.fmt, e.rdev))
        return h.hexdigest()

    def materialize(self, dest):
        """Write the image into dest (created; must not exist): names, hard
        links, symlinks, file modes. Owners are whoever runs this."""
        dest = os.fsencode(dest)
        os.mkdir(dest)
        first_path = {}
        dirs = [(dest, self.root_mode)]
        for e in self.entries:
            p = os.path.join(dest, e.path)
            if e.kind == "dir":
                os.mkdir(p, 0o700)
                dirs.append((p, e.mode))
            elif e.kind == "reg":
                if e.ino in first_path:
                    os.link(first_path[e.ino], p)
                    continue
                first_path[e.ino] = p
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, self.data[e.ino])
                finally:
                    os.close(fd)
                os.chmod(p, e.mode)
            elif e.kind == "lnk":
                os.symlink(e.target, p)
            else:
                os.mknod(p, e.fmt | e.mode, e.rdev)
        for p, mode in reversed(dirs):
            os.chmod(p, mode)


def crash_image(model, mode, seed, k):
    """The image of a crash of the given mode with the model as it is."""
    if mode not in ("kill", "power"):
        raise ValueError("crash mode is kill or power, not %r" % mode)
    data = {}
    rng = random.Random("%d:%d" % (seed, k)) if mode == "power" else None
    for path, ino in model.tree():
        node = model.inodes[ino]
        if node.kind != "reg" or ino in data:
            continue
        if mode == "kill" or ino not in model.dirty or node.cur == node.dur:
            data[ino] = bytes(node.cur)
        else:
            data[ino] = torn(node.dur, node.cur, rng)
    return Image(model, data, mode, seed, k)


# ---- materialize -------------------------------------------------------------

def materialize(snap, records, k, mode, seed, dest):
    """One crash image from scratch (the CLI's and a debugger's way)."""
    img = Replayer(snap, records).image(k, mode, seed)
    img.materialize(dest)
    return img


def compare_trees(a, b):
    """Differences between two directory trees (names, types, modes, data,
    symlink targets, hard-link groups), as a list of lines; [] when equal."""
    def scan(root):
        root = os.fsencode(root)
        out, groups = {}, {}
        for dirpath, dirnames, filenames in os.walk(root):
            for n in sorted(dirnames + filenames):
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, root)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        what = ("reg", hashlib.sha256(f.read()).hexdigest(), st.st_size)
                    groups.setdefault(st.st_ino, []).append(rel)
                elif stat.S_ISLNK(st.st_mode):
                    what = ("lnk", os.readlink(p))
                elif stat.S_ISDIR(st.st_mode):
                    what = ("dir",)
                else:
                    what = ("other", stat.S_IFMT(st.st_mode))
                out[rel] = what + (stat.S_IMODE(st.st_mode),)
        links = sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1)
        return out, links

    (ta, la), (tb, lb) = scan(a), scan(b)
    diffs = []
    for rel in sorted(set(ta) | set(tb)):
        if ta.get(rel) != tb.get(rel):
            diffs.append("%s: %r != %r" % (os.fsdecode(rel), ta.get(rel), tb.get(rel)))
    if la != lb:
        diffs.append("hard links differ: %r != %r" % (la, lb))
    return diffs


# ---- CLI ---------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="crashsim.py",
        description="The ekmfs crash simulator's replayer (docs/CRASH.md).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("snapshot", help="snapshot a backing directory (before the daemon starts)")
    p.add_argument("backing")
    p.add_argument("out", help="snapshot file (JSON)")
    p = sub.add_parser("info", help="count a log's records by op and process")
    p.add_argument("log")
    p = sub.add_parser("image", help="materialize the image of a crash after K records")
    p.add_argument("--snapshot", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("-k", type=int, required=True, help="records applied before the crash")
    p.add_argument("--mode", choices=("kill", "power"), default="kill")
    p.add_argument("--seed", type=int, default=0, help="power-cut seed")
    p.add_argument("out", help="new directory for the image")
    args = ap.parse_args(argv)

    if args.cmd == "snapshot":
        save_snapshot(take_snapshot(args.backing), args.out)
        return 0
    if args.cmd == "info":
        records = read_log(args.log)
        by_op, by_pid = {}, {}
        for r in records:
            by_op[r["op"]] = by_op.get(r["op"], 0) + 1
            by_pid[r["pid"]] = by_pid.get(r["pid"], 0) + 1
        print("%d records" % len(records))
        for op in sorted(by_op):
            print("  %-12s %d" % (op, by_op[op]))
        for pid in sorted(by_pid):
            print("  pid %-8d %d" % (pid, by_pid[pid]))
        return 0
    img = materialize(load_snapshot(args.snapshot), read_log(args.log), args.k,
                      args.mode, args.seed, args.out)
    print("%s: crash image after %d records (%s%s), %d objects"
          % (args.out, args.k, args.mode,
             ", seed %d" % args.seed if args.mode == "power" else "", len(img.entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
