"""The crash simulator's oracle: what a crash image must show.

Owns: the journal of a workload (what each operation did to which file, and
the crash log's record count before and after it), the expectations it
implies at a crash point k, and the check of what a mounted crash image
showed against them. Pure Python, no mounts: crash_check.py observes the
images, crash_workload.py writes the journal. docs/CRASH.md has the rules.

Files are identified by the inode number of their twin in the workload's
plain reference directory (so hard links and renames need no bookkeeping).
An operation's "start" is the log position when it was called and "end"
the position when it returned: records before start cannot hold its
effects, and records up to end hold everything the daemon did for it. So at
a crash after k records:
  * an fsync (or fdatasync) completed iff its end <= k; the file's content
    then is its reference content when the fsync returned;
  * an operation may have had effects iff its start < k;
  * a namespace operation is durable iff its end <= k (the model makes
    names durable at once); one still running at k leaves the names it
    changes uncertain, and those are not checked.
What must hold, per file with a completed fsync: it opens and reads whole
without error; its size lies between the smallest and the largest size the
file had from that fsync on (among operations started before k); every
byte below that size that no operation started since then touched equals
the fsynced content. Every other regular file of the image must open and
read whole without error; every name the oracle knows must exist; and
`ekmfs-admin verify` must find no damage.

Divisions: the journal / expectations at k / checking an observation.
"""
import errno

INF = float("inf")

# ---- the journal -------------------------------------------------------------


class Event:
    """One completed workload operation.

    touch:  [(ino, lo, hi, size_lo, size_hi)]: the byte range [lo, hi)
            of the file may have changed (hi may be INF), and its size
            was between size_lo and size_hi while the operation ran
    fsync:  (ino, content) when it was a successful fsync/fdatasync
    names:  {path: ino} of every regular file after it, when it changed
            names (None otherwise)
    """
    __slots__ = ("i", "desc", "start", "end", "touch", "fsync", "names")

    def __init__(self, i, desc, start, end, touch, fsync, names):
        self.i, self.desc, self.start, self.end = i, desc, start, end
        self.touch, self.fsync, self.names = touch, fsync, names


class Journal:
    def __init__(self):
        self.events = []

    def add(self, desc, start, end, touch=(), fsync=None, names=None):
        if self.events and start < self.events[-1].end:
            raise AssertionError("journal: %r starts (%d) before the previous operation "
                                 "ended (%d): the workload must be sequential"
                                 % (desc, start, self.events[-1].end))
        self.events.append(Event(len(self.events), desc, start, end, list(touch), fsync, names))

    def around(self, k, n=4):
        """The operations around crash point k, for failure messages."""
        out = []
        for ev in self.events:
            if ev.end >= k - 50 and ev.start <= k + 50:
                out.append("  op %d [%d..%d]%s %s" % (
                    ev.i, ev.start, ev.end,
                    " <- crash" if ev.start < k <= ev.end or (ev.start == ev.end == k) else "",
                    ev.desc))
        mid = next((j for j, l in enumerate(out) if "<- crash" in l), len(out) // 2)
        return out[max(0, mid - n):mid + n + 1]


# ---- expectations at k -------------------------------------------------------


class FileExpect:
    """What one file must show: its content at its last completed fsync,
    the ranges touched since, and the range of sizes it may have."""
    __slots__ = ("content", "fsync_op", "touched", "size_lo", "size_hi")

    def __init__(self, content, fsync_op):
        self.content = content
        self.fsync_op = fsync_op
        self.touched = []
        self.size_lo = self.size_hi = len(content)

    def touch(self, lo, hi, size_lo, size_hi):
        self.touched.append((lo, hi))
        self.size_lo = min(self.size_lo, size_lo)
        self.size_hi = max(self.size_hi, size_hi)

    def untouched(self, upto):
        """The ranges below upto that no operation touched since the fsync."""
        out, pos = [], 0
        for lo, hi in sorted(self.touched):
            if lo > pos:
                out.append((pos, min(lo, upto)))
            pos = max(pos, hi)
            if pos >= upto:
                break
        if pos < upto:
            out.append((pos, upto))
        return [(a, b) for a, b in out if a < b]


class Expectations:
    def __init__(self, names, uncertain, files, inflight):
        self.names = names            # path -> ino, durable at k
        self.uncertain = uncertain    # paths a running operation may change
        self.files = files            # ino -> FileExpect (fsynced files)
        self.inflight = inflight      # the Event running at k, or None


def expectations(journal, k):
    names, uncertain, files, inflight = {}, set(), {}, None
    for ev in journal.events:
        if ev.start >= k:
            break
        done = ev.end <= k
        if not done:
            inflight = ev
        for ino, lo, hi, size_lo, size_hi in ev.touch:
            if ino in files:
                files[ino].touch(lo, hi, size_lo, size_hi)
        if ev.fsync and done:
            ino, content = ev.fsync
            files[ino] = FileExpect(content, ev.i)
        if ev.names is not None:
            if done:
                names = ev.names
            else:
                uncertain = {p for p in set(names) | set(ev.names)
                             if names.get(p) != ev.names.get(p)}
    return Expectations(names, uncertain, files, inflight)


# ---- checking an observation ---------------------------------------------------


class ReadError:
    """A file that could not be read whole: the errno, and the offset of
    the first 4 KiB read that failed (-1: the open failed; None: unknown)."""
    __slots__ = ("errno", "offset")

    def __init__(self, err, offset):
        self.errno, self.offset = err, offset


class Failure:
    def __init__(self, kind, path, text):
        self.kind, self.path, self.text = kind, path, text

    def __str__(self):
        return "%s %s: %s" % (self.kind, self.path, self.text)


def _hex(b):
    return b[:16].hex() + ("..." if len(b) > 16 else "")


def unreadable_text(exp, path, err):
    text = "reading fails with %s" % errno.errorcode.get(err.errno, err.errno)
    if err.offset is not None:
        text += " at byte %d" % err.offset if err.offset >= 0 else " at open"
    want = exp.files.get(exp.names.get(path)) if path not in exp.uncertain else None
    if want is None:
        return text + "; never fsynced" if path in exp.names else text
    off = max(err.offset or 0, 0)
    touched = not any(lo <= off < hi for lo, hi in want.untouched(len(want.content)))
    return text + "; op %d fsynced %d bytes (there: %s, %s since)" % (
        want.fsync_op, len(want.content), _hex(want.content[off:off + 16]) or "past the end",
        "touched" if touched else "untouched")


def check(exp, obs):
    """Failures of an observed crash image against the expectations.

    obs.mount_error: why the image did not mount (None when it did)
    obs.daemon_error: what went wrong at unmount (exit status, sanitizer)
    obs.files: {path: bytes or ReadError} of every regular file seen
    obs.verify_rc, obs.verify_out: ekmfs-admin verify's verdict
    """
    fails = []
    if obs.mount_error:
        return [Failure("mount", "/", obs.mount_error)]
    if obs.daemon_error:
        fails.append(Failure("daemon", "/", obs.daemon_error))
    for path, got in sorted(obs.files.items()):
        if isinstance(got, ReadError):
            fails.append(Failure("unreadable", path, unreadable_text(exp, path, got)))
    for path, ino in sorted(exp.names.items()):
        if path in exp.uncertain:
            continue
        got = obs.files.get(path)
        if got is None:
            fails.append(Failure("missing", path, "the name is durable but the image has "
                                 "no such file"))
            continue
        want = exp.files.get(ino)
        if want is None or isinstance(got, ReadError):
            continue
        if not want.size_lo <= len(got) <= want.size_hi:
            fails.append(Failure("size", path, "size %d, expected %d..%d (%d bytes fsynced "
                                 "by op %d)" % (len(got), want.size_lo, want.size_hi,
                                                len(want.content), want.fsync_op)))
        for lo, hi in want.untouched(min(len(got), len(want.content))):
            if got[lo:hi] != want.content[lo:hi]:
                off = lo + next(i for i in range(hi - lo)
                                if got[lo + i] != want.content[lo + i])
                fails.append(Failure("content", path, "byte %d differs from what op %d "
                                     "fsynced: expected %s, found %s" % (
                                         off, want.fsync_op, _hex(want.content[off:off + 16]),
                                         _hex(got[off:off + 16]))))
                break
    known = set(exp.names) | exp.uncertain
    for path in sorted(set(obs.files) - known):
        fails.append(Failure("extra", path, "the image has a file no operation left there"))
    if obs.verify_rc != 0:
        damaged = [l for l in obs.verify_out.splitlines() if l.startswith("DAMAGED")]
        fails.append(Failure("verify", "/", "ekmfs-admin verify exits %d: %s" % (
            obs.verify_rc, "; ".join(damaged[:4]) or obs.verify_out.strip()[-300:])))
    return fails
