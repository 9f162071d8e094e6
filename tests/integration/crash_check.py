"""The crash simulator's checker: crash points of a recorded run, mounted and judged.

Owns: a recorded run (the volume, the snapshot of its backing directory
taken before the daemon started, the crash log, the oracle's journal); the
choice of crash points (every point in kill mode, random points with random
power-cut seeds); and checking one crash point: the replayer's image
(tests/crash/crashsim.py) is written to a fresh directory on tmpfs, mounted
with the real daemon (same key file, a configuration of its own so the
checks' audit records stay out of the run's audit log), every file read
through the mount, `ekmfs-admin verify` run on it at the same time, and
what was seen judged by the oracle (crash_oracle.py). Images are observed
on two mountpoints at once; an image identical to a recent one (in kill
mode an fsync changes nothing a crash can show) is observed once. A failure names the workload seed, k, the mode,
the power-cut seed, the file, the offset, and what was expected and found;
the first few failing images are kept (materialized afresh, never mounted)
with the command that rebuilds them.

Divisions: a recorded run / observing an image / crash points / reports.
"""
import base64
import collections
import concurrent.futures
import ctypes
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import ADMIN, REPO, Mount
import crash_oracle

sys.path.insert(0, str(REPO / "tests" / "crash"))
import crashsim  # noqa: E402

KEEP_DIR = Path(os.environ.get("EKMFS_CRASH_KEEP_DIR", "/tmp/ekmfs-crash-failures"))
SCRATCH_PARENT = "/dev/shm" if os.path.isdir("/dev/shm") else None
_libc = ctypes.CDLL(None, use_errno=True)

# Crash images observed at once (each on its own mountpoint).
WORKERS = int(os.environ.get("EKMFS_CRASH_WORKERS", "2"))

# ---- a recorded run ------------------------------------------------------------


class Run:
    """Everything a crash point needs: the volume, snapshot, log, journal."""

    def __init__(self, vol, label, snapshot, log, journal):
        self.vol, self.label = vol, label
        self.snapshot, self.log, self.journal = snapshot, log, journal
        self.records = crashsim.read_log(log)
        self.snap_path = vol.root / ("%s.snapshot.json" % label)
        crashsim.save_snapshot(snapshot, self.snap_path)


# ---- observing an image ----------------------------------------------------------


class Observation:
    def __init__(self):
        self.mount_error = None
        self.daemon_error = None
        self.files = {}           # path -> bytes, or crash_oracle.ReadError
        self.verify_rc = 0
        self.verify_out = ""


class ImageVolume:
    """The attributes conftest.Mount needs, for a crash image."""

    def __init__(self, root, backing, config):
        self.root = root
        self.backing = backing
        self.mnt = root / "mnt"
        self.config = config
        self.config_enabled = True


def first_bad_offset(path, step=4096):
    """Where reading path starts to fail (-1: it does not even open)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return -1
    off = 0
    try:
        while True:
            try:
                chunk = os.pread(fd, step, off)
            except OSError:
                return off
            if not chunk:
                return None
            off += len(chunk)
    finally:
        os.close(fd)


def read_tree(mnt):
    """{path: content, or crash_oracle.ReadError} of every regular file
    below mnt."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(mnt):
        dirnames.sort()
        for n in sorted(filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, mnt)
            try:
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                with open(p, "rb") as f:
                    files[rel] = f.read()
            except OSError as e:
                files[rel] = crash_oracle.ReadError(e.errno, first_bad_offset(p))
    return files


class Observer:
    """One mountpoint on which crash images are mounted one at a time."""

    def __init__(self, root, scratch, key_file, wid):
        self.root = root / ("w%d" % wid)
        (self.root / "mnt").mkdir(parents=True, exist_ok=True)
        # Its own audit log, begun afresh for every image: the audit trail
        # fails closed (docs/AUDIT.md), and an image's chain head is from
        # its crash point, behind what earlier images' daemons appended; an
        # empty log is in step with any head (as after log rotation).
        self.audit_log = scratch / ("audit.%d.log" % wid)
        self.config = scratch / ("check.%d.ini" % wid)
        self.config.write_text("[tenant.default]\nkey_file = %s\n\n[audit]\nfile = %s\n"
                               % (key_file, self.audit_log))
        self.wid = wid

    def observe(self, dest):
        obs = Observation()
        self.audit_log.unlink(missing_ok=True)
        verify = subprocess.Popen([str(ADMIN), "-c", str(self.config), "verify", str(dest)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        m = Mount(ImageVolume(self.root, dest, self.config), None, (), self.wid)
        try:
            m.start()
        except AssertionError as e:
            obs.mount_error = str(e)[:2000]
            m.kill()
        else:
            try:
                obs.files = read_tree(m.path)
            finally:
                # umount(2) directly (we are root) saves a fusermount3
                # process per image; Mount.unmount then finds it unmounted
                # and only checks the daemon's exit and stderr.
                _libc.umount2(os.fsencode(m.path), 0)    # failed: see below
                try:
                    m.unmount()
                except AssertionError as e:
                    obs.daemon_error = str(e)[:2000]
        obs.verify_out = verify.communicate(timeout=120)[0]
        obs.verify_rc = verify.returncode
        return obs


class ObserverPool:
    """Observes crash images on a few mountpoints at once (the daemon's
    start-up is CPU work: two workers on two cores nearly halve the time).
    Images identical to a recent one are observed once."""

    RECENT = 16

    def __init__(self, vol, workers=WORKERS):
        # The images' daemons must not append to the run's crash log.
        assert "EKMFS_CRASH_LOG" not in os.environ, "recording is still on"
        self.scratch = Path(tempfile.mkdtemp(prefix="ekmfs-crash-", dir=SCRATCH_PARENT))
        os.chmod(self.scratch, 0o755)
        # Mountpoints stay in the volume's directory (tools/test.sh cleans up
        # /tmp/ekmfs-it-* mounts); the audit log the daemons append to (and
        # fsync) goes to tmpfs with the images.
        root = vol.root / "check"
        root.mkdir(exist_ok=True)
        self.free = queue.Queue()
        for wid in range(workers):
            self.free.put(Observer(root, self.scratch, vol.key_file, wid))
        self.executor = concurrent.futures.ThreadPoolExecutor(workers)
        self.recent = collections.OrderedDict()    # fingerprint -> Future
        self.mounted = 0
        self.n = 0

    def _observe(self, dest):
        obs = self.free.get()
        try:
            return obs.observe(dest)
        finally:
            self.free.put(obs)
            shutil.rmtree(dest, ignore_errors=True)

    def submit(self, img):
        """A Future of the Observation of img."""
        fp = img.fingerprint()
        fut = self.recent.get(fp)
        if fut is not None:
            self.recent.move_to_end(fp)
            return fut
        self.n += 1
        dest = self.scratch / ("img-%d" % self.n)
        img.materialize(dest)
        fut = self.executor.submit(self._observe, dest)
        self.mounted += 1
        self.recent[fp] = fut
        if len(self.recent) > self.RECENT:
            self.recent.popitem(last=False)
        return fut

    def close(self):
        self.executor.shutdown(wait=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


# ---- crash points ------------------------------------------------------------------


KILL_WINDOW = 16


def plan(nrecords, budget, rng, first=0, last=None, every_kill=False):
    """[(k, mode, power seed)] in order of k, for k in [first, last].

    Kill points: all of them when every_kill or when they fit in half the
    budget; else half the budget in random windows of KILL_WINDOW
    consecutive points (every step of the operations there, and a crash
    image is often the same as its neighbour's, which is observed once).
    The rest of the budget: random points with random power-cut seeds."""
    last = nrecords if last is None else last
    ks = list(range(first, last + 1))
    if every_kill or len(ks) <= budget // 2:
        kills = ks
    else:
        chosen = set()
        while len(chosen) < budget // 2:
            start = rng.choice(ks)
            for k in range(start, min(start + KILL_WINDOW, last + 1)):
                if len(chosen) < budget // 2:
                    chosen.add(k)
        kills = sorted(chosen)
    points = [(k, "kill", 0) for k in kills]
    points += [(rng.choice(ks), "power", rng.randrange(1 << 30))
               for _ in range(max(0, budget - len(kills)))]
    return sorted(points)


class Report:
    def __init__(self, run, seed):
        self.run, self.seed = run, seed
        self.points = 0
        self.failing = []          # [(k, mode, power seed, [Failure])]
        self.by_kind = {}
        self.kept = []             # [(image dir, command that rebuilds it)]
        self.keep_dir = None
        self.t0 = time.monotonic()
        self.elapsed = 0.0
        self.mounted = 0

    def add(self, k, mode, pseed, fails):
        self.points += 1
        if fails:
            self.failing.append((k, mode, pseed, fails))
            for f in fails:
                self.by_kind[f.kind] = self.by_kind.get(f.kind, 0) + 1

    def keep(self, img):
        """A pristine copy of a failing image, with the snapshot and log
        that rebuild it (the run's own files go with its volume)."""
        if self.keep_dir is None:
            KEEP_DIR.mkdir(parents=True, exist_ok=True)
            self.keep_dir = Path(tempfile.mkdtemp(prefix="%s-%s-" % (self.run.label, self.seed),
                                                  dir=KEEP_DIR))
            shutil.copy(self.run.snap_path, self.keep_dir / "snapshot.json")
            shutil.copy(self.run.log, self.keep_dir / "crash.log")
        dest = self.keep_dir / ("k%d-%s-%d" % (img.k, img.mode, img.seed))
        img.materialize(dest)
        cmd = ("%s %s image --snapshot %s --log %s -k %d --mode %s --seed %d DIR"
               % (sys.executable, REPO / "tests" / "crash" / "crashsim.py",
                  self.keep_dir / "snapshot.json", self.keep_dir / "crash.log", img.k,
                  img.mode, img.seed))
        self.kept.append((dest, cmd))

    def summary(self):
        per = self.elapsed / self.points if self.points else 0
        return ("%s (workload seed %s): %d crash points in %.1fs (%.1f ms each), %d images "
                "mounted, %d records; %d failing points %s"
                % (self.run.label, self.seed, self.points, self.elapsed, per * 1000,
                   self.mounted, len(self.run.records), len(self.failing),
                   dict(sorted(self.by_kind.items())) if self.by_kind else ""))

    def details(self, limit=8):
        out = []
        for k, mode, pseed, fails in self.failing[:limit]:
            rec = self.run.records[k - 1] if k else None
            nxt = self.run.records[k] if k < len(self.run.records) else None
            out.append("FAIL seed=%s k=%d mode=%s%s: crash after record %s, before %s"
                       % (self.seed, k, mode, " power_seed=%d" % pseed if mode == "power" else "",
                          brief(rec), brief(nxt)))
            for f in fails[:6]:
                out.append("    " + str(f))
            out.extend("  " + line for line in self.run.journal.around(k))
        for path, cmd in self.kept:
            out.append("kept %s (rebuild: %s)" % (path, cmd))
        return "\n".join(out)


def brief(rec):
    if rec is None:
        return "-"
    keys = [k for k in ("ino", "off", "size", "name", "newname") if k in rec]
    extra = " ".join("%s=%s" % (k, rec[k]) for k in keys)
    if rec["op"] == "write":
        extra += " len=%d" % len(base64.b64decode(rec["data"]))
    return "#%d %s pid=%d %s" % (rec["seq"], rec["op"], rec["pid"], extra)


def check_points(run, points, seed, max_failing=25, keep=3, workers=WORKERS):
    """Check every (k, mode, power seed) of points (in order of k); stop
    after max_failing failing points. Returns the Report."""
    rep = Report(run, seed)
    replayer = crashsim.Replayer(run.snapshot, run.records)
    pool = ObserverPool(run.vol, workers)
    pending = collections.deque()

    def judge(item):
        k, mode, pseed, img, fut = item
        fails = crash_oracle.check(crash_oracle.expectations(run.journal, k), fut.result())
        rep.add(k, mode, pseed, fails)
        if fails and len(rep.kept) < keep:
            rep.keep(img)

    try:
        for k, mode, pseed in points:
            if len(rep.failing) >= max_failing:
                break
            img = replayer.image(k, mode, pseed)
            pending.append((k, mode, pseed, img, pool.submit(img)))
            while pending and (len(pending) > 2 * workers + 2 or pending[0][4].done()):
                judge(pending.popleft())
        while pending:
            judge(pending.popleft())
    finally:
        pool.close()
        rep.elapsed = time.monotonic() - rep.t0
        rep.mounted = pool.mounted
    return rep


def points_rng(seed):
    return random.Random("points:%s" % seed)
