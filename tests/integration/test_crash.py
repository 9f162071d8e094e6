"""Crash consistency of a mounted volume, proved by the crash simulator.

Owns: the product promise under crashes - after a kill -9 of the daemon at
any system call, and after a power cut (unsynced writes dropped or torn at
512-byte granularity), every byte fsynced before the crash reads back
intact, and every file opens. The daemon (and ekmfs-rotate) record every
change to the backing store ($EKMFS_CRASH_LOG, src/io/record.c); the
replayer (tests/crash/crashsim.py) builds the backing directory a crash
after any k records would leave; the checker (crash_check.py) mounts each
such image with the real daemon and the oracle (crash_oracle.py) judges it.
docs/CRASH.md explains the model and its limits.

Needs a -Dfault_injection=true build (the recorder is compiled only there);
elsewhere every test here is skipped. The tests that hold the daemon to the
promise run with a bounded budget (EKMFS_CRASH_POINTS, docs/CRASH.md); the
format before v2 failed them. The tests of the simulator itself
(the recorder reproduces a real kill -9 exactly, a whole run replays to the
final backing directory) always run on a fault build; the replayer's own
model is tested without a daemon in test_crashsim_model.py.

Knobs (docs/CRASH.md): EKMFS_CRASH_POINTS (crash points per run of this
file, default 2000, shared by the tests below), EKMFS_CRASH_SEEDS (seeds
of the random runs, default 1,2), EKMFS_CRASH_OPS and EKMFS_CRASH_SMALL_OPS
(operations of a random run and of the small run), EKMFS_CRASH_MAX_FAILING
(stop a test after that many failing points), EKMFS_CRASH_KEEP (failing
images kept in /tmp/ekmfs-crash-failures), EKMFS_CRASH_WORKERS (images
mounted at once).

Divisions: configuration / recording helpers / the simulator itself /
random workloads / rotation / the known partial-block bug / real kill -9.
"""
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import BLOCK, EKMFS, REPO, SLOW, run_cli, sanitizer_report
from crash_check import Run, check_points, plan, points_rng
from crash_workload import (LogCursor, World, append_to, data_effects, fresh_ref, fsync_file,
                            names_effects, op_append, run_workload)
from ondisk import ROTATE

sys.path.insert(0, str(REPO / "tests" / "crash"))
import crashsim  # noqa: E402

# ---- configuration -------------------------------------------------------------


def fault_build():
    out = subprocess.run([str(EKMFS), "--version"], capture_output=True, text=True).stdout
    return "fault injection: enabled" in out


FAULT_BUILD = fault_build()
pytestmark = pytest.mark.skipif(not FAULT_BUILD,
                                reason="needs a -Dfault_injection=true build (the crash "
                                       "recorder is compiled only there)")

POINTS = int(os.environ.get("EKMFS_CRASH_POINTS", "2000"))
SEEDS = [int(s) for s in os.environ.get("EKMFS_CRASH_SEEDS", "1,2").split(",")]
OPS = int(os.environ.get("EKMFS_CRASH_OPS", "1000"))
SMALL_OPS = int(os.environ.get("EKMFS_CRASH_SMALL_OPS", "100"))
MAX_FAILING = int(os.environ.get("EKMFS_CRASH_MAX_FAILING", "25"))
KEEP = int(os.environ.get("EKMFS_CRASH_KEEP", "3"))

# How the budget is shared: a small run with every kill point, the random
# workloads (a few thousand records each), and the rotation.
SMALL_POINTS = POINTS * 15 // 100
ROTATE_POINTS = POINTS * 15 // 100
RANDOM_POINTS = POINTS - SMALL_POINTS - ROTATE_POINTS


def hang_budget(points):
    """A crash point costs 40-110 ms: the hang guard must not fire on a
    long run."""
    return pytest.mark.hang_timeout(120 + points * 0.5 * SLOW)


# ---- recording helpers -----------------------------------------------------------

@contextlib.contextmanager
def recording(log):
    """$EKMFS_CRASH_LOG for the processes started inside (and only them)."""
    os.environ["EKMFS_CRASH_LOG"] = str(log)
    try:
        yield
    finally:
        os.environ.pop("EKMFS_CRASH_LOG", None)


def start_recorded(vol, label):
    """Snapshot the backing directory, then mount it with recording on."""
    os.sync()
    snap = crashsim.take_snapshot(vol.backing)
    log = vol.root / ("%s.log" % label)
    with recording(log):
        m = vol.mount()
    return snap, log, m


def report(rep):
    text = rep.summary()
    print("\n" + text)
    if rep.failing:
        print(rep.details())
    return text


# ---- the simulator itself --------------------------------------------------------

def test_whole_run_replays_to_the_backing_directory(volume):
    """Every change the daemon made is in the log: replaying all of it onto
    the snapshot gives exactly the backing directory after a clean unmount
    (names, hard links, modes, every byte)."""
    snap, log, m = start_recorded(volume, "whole")
    ref = fresh_ref(volume.root / "ref")
    w = run_workload(volume.mnt, ref, log, seed=7, nops=150)
    m.unmount()
    records = crashsim.read_log(log)
    assert len(records) > 300, "the workload hardly wrote anything: %d records" % len(records)
    assert {"create", "write", "fsync", "rename", "link", "unlink", "truncate"} <= \
        {r["op"] for r in records}
    img = crashsim.Replayer(snap, records).image(len(records), "kill")
    out = volume.root / "replayed"
    img.materialize(out)
    assert crashsim.compare_trees(volume.backing, out) == []
    assert len(w.journal.events) > 100


def test_recorder_replays_a_real_kill(volume):
    """A real SIGKILL of the daemon at one of its pwrites (strace injects
    it on entry: that pwrite never happens) leaves exactly the replayer's
    kill image after the records the log holds: the recorder misses
    nothing and the replayer adds nothing."""
    snap, log, m = start_recorded(volume, "kill")
    tracer = StraceKill(m.proc.pid, "pwrite64", 25)
    w = append_until_dead(volume, log, random.Random(3), m)
    tracer.finish()
    assert m.proc.wait(timeout=30 * SLOW) == -signal.SIGKILL, "the daemon was not killed"
    m.kill()
    assert len(w.journal.events) > 5, "killed before the workload got going"
    records = crashsim.read_log(log)
    out = volume.root / "replayed"
    crashsim.Replayer(snap, records).image(len(records), "kill").materialize(out)
    assert crashsim.compare_trees(volume.backing, out) == []


def test_checker_flags_a_daemon_that_skips_fsync(volume):
    """The checker can fail: the same recorded run, replayed as if the
    daemon had not passed the fsync on (its record dropped from the log),
    must fail after a power cut, while the true log passes: in kill mode and
    in power mode, whatever the seed."""
    snap, log, m = start_recorded(volume, "skipped")
    ref = fresh_ref(volume.root / "ref")
    cursor = LogCursor(log)
    w = World(volume.mnt, ref, cursor, random.Random(1), ["f"], [])
    data = os.urandom(3 * BLOCK + 100)

    def write(side):
        with open(w.p(side, "f"), "wb") as f:
            f.write(data)
    w.run("write f len=%d" % len(data), write, data_effects(w, "f", lambda s: (0, len(data))))
    fsync_file(w, "f")
    cursor.close()
    m.unmount()
    run = Run(volume, "skipped", snap, log, w.journal)
    end = len(run.records)
    bino = os.stat(volume.bpath("f")).st_ino
    syncs = [i for i, r in enumerate(run.records)
             if r["op"] in ("fsync", "fdatasync") and r["ino"] == bino]
    assert syncs, "no fsync of f recorded"
    # When the fsync has returned: the unmount later syncs the whole file
    # system, which would make everything durable whatever the fsync did.
    after = [ev for ev in w.journal.events if ev.desc.startswith("fsync")][-1].end
    points = [(after, "power", s) for s in range(6)]
    good = check_points(run, [(after, "kill", 0)] + points + [(end, "kill", 0)], "skipped",
                        keep=0)
    assert not good.failing, good.summary() + "\n" + good.details()
    for i in syncs:                       # an ignored record keeps the numbering
        run.records[i] = dict(run.records[i], op="chown", uid=-1, gid=-1)
    bad = check_points(run, points, "skipped", keep=0)
    assert len(bad.failing) == 6, bad.summary() + "\n" + bad.details()
    assert set(bad.by_kind) <= {"size", "content", "unreadable", "verify"}, bad.by_kind


# ---- random workloads ------------------------------------------------------------

def random_run(volume, seed, nops, label):
    snap, log, m = start_recorded(volume, label)
    ref = fresh_ref(volume.root / "ref")
    w = run_workload(volume.mnt, ref, log, seed, nops)
    m.unmount()
    return Run(volume, label, snap, log, w.journal)


@hang_budget(SMALL_POINTS)
def test_every_kill_point_of_a_small_run(volume):
    """Every crash point of a small random run in kill mode (and power
    cuts at random points with what is left of the budget)."""
    run = random_run(volume, 3, SMALL_OPS, "small")
    points = plan(len(run.records), SMALL_POINTS, points_rng(3), every_kill=True)
    rep = check_points(run, points, 3, MAX_FAILING, KEEP)
    text = report(rep)
    assert not rep.failing, text + "\n" + rep.details()


@hang_budget(RANDOM_POINTS // len(SEEDS))
@pytest.mark.parametrize("seed", SEEDS)
def test_random_workload_crash_points(volume, seed):
    """A run of a few thousand records; random kill points and random
    power cuts at random points."""
    run = random_run(volume, seed, OPS, "random")
    points = plan(len(run.records), RANDOM_POINTS // len(SEEDS), points_rng(seed))
    rep = check_points(run, points, seed, MAX_FAILING, KEEP)
    text = report(rep)
    assert not rep.failing, text + "\n" + rep.details()


# ---- rotation ----------------------------------------------------------------------

@hang_budget(ROTATE_POINTS)
def test_crash_points_inside_a_rotation(volume):
    """ekmfs-rotate kek runs (recorded into the same log) while the daemon is
    mounted and a writer appends and fsyncs: a crash anywhere inside the
    rotation leaves every file openable with its fsynced content."""
    snap, log, m = start_recorded(volume, "rotate")
    ref = fresh_ref(volume.root / "ref")
    cursor = LogCursor(log)
    files = ["r%02d" % i for i in range(16)] + ["d/r%02d" % i for i in range(8)]
    w = World(volume.mnt, ref, cursor, random.Random(11), files, ["d"])
    w.run("mkdir d", lambda side: os.mkdir(w.p(side, "d")), names_effects(w))
    for rel in files:                       # every file exists and is fsynced
        append_to(w, rel)
        fsync_file(w, rel)
    w.files = files[:4]                     # the writer's files during the rotation
    done = threading.Event()
    failures = []

    def writer():
        try:
            while not done.is_set():
                op_append(w)
                if w.rng.random() < 0.4:
                    fsync_file(w, w.rng.choice(w.files))
        except Exception as e:  # noqa: B902 - any failure is the finding
            failures.append(repr(e))

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.05)
        with recording(log):
            r = run_cli([ROTATE, "-c", volume.config, "kek", "-q", "--jobs", "2",
                         volume.backing], timeout=120)
        time.sleep(0.05)
    finally:
        done.set()
        t.join(60)
    cursor.close()
    m.unmount()
    assert r.returncode == 0, r.stderr
    assert not sanitizer_report(r.stderr), r.stderr
    assert not failures, failures
    run = Run(volume, "rotate", snap, log, w.journal)
    mine = [i + 1 for i, rec in enumerate(run.records) if rec["pid"] != m.proc.pid]
    assert len(mine) > 50, "the rotation recorded only %d changes" % len(mine)
    first, last = mine[0] - 1, mine[-1]
    points = plan(len(run.records), ROTATE_POINTS, points_rng("rotate"), first, last)
    rep = check_points(run, points, "rotate", MAX_FAILING, KEEP)
    text = report(rep)
    assert not rep.failing, text + "\n" + rep.details()


# ---- the known partial-block bug -----------------------------------------------------

def test_append_after_fsync_never_damages_the_fsynced_block(volume):
    """fsync 100 bytes, append 100 more: the append re-seals block 0. A
    crash at any record of that append (in the current format: after the
    pwrite of the block's new tail, before the pwrite of its head) must
    leave block 0 authenticating, with the fsynced 100 bytes intact. Every
    crash point from the fsync to the append's last write to the file is
    checked in kill mode, and with 8 power-cut seeds each."""
    snap, log, m = start_recorded(volume, "partial")
    ref = fresh_ref(volume.root / "ref")
    cursor = LogCursor(log)
    w = World(volume.mnt, ref, cursor, random.Random(5), ["f"], [])
    first = os.urandom(100)
    second = os.urandom(100)

    def write(data, off):
        def fn(side):
            fd = os.open(w.p(side, "f"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        return fn
    w.run("write f off=0 len=100", write(first, 0), data_effects(w, "f", lambda s: (0, 100)))
    fsync_file(w, "f")
    synced = cursor.position()
    w.run("append f len=100", write(second, 100), data_effects(w, "f", lambda s: (100, 200)))
    fsync_file(w, "f")
    cursor.close()
    m.unmount()
    run = Run(volume, "partial", snap, log, w.journal)
    bino = os.stat(volume.bpath("f")).st_ino
    writes = [i + 1 for i, r in enumerate(run.records)
              if i >= synced and r["op"] == "write" and r["ino"] == bino]
    assert writes, "the append wrote nothing to the backing file"
    points = [(k, "kill", 0) for k in range(synced, writes[-1] + 1)]
    points += [(k, "power", s) for k in range(synced, writes[-1] + 1) for s in range(8)]
    rep = check_points(run, sorted(points), "partial", MAX_FAILING, KEEP)
    text = report(rep)
    assert not rep.failing, text + "\n" + rep.details()


# ---- real kill -9 ----------------------------------------------------------------------

class StraceKill:
    """strace attached to a running daemon (all its threads), delivering
    SIGKILL on entry to the nth call of syscall (strace counts per thread)."""

    def __init__(self, pid, syscall, n):
        self.proc = subprocess.Popen(
            ["strace", "-f", "-o", "/dev/null", "-p", str(pid), "-e", "trace=" + syscall,
             "-e", "inject=%s:signal=SIGKILL:when=%d" % (syscall, n)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 10 * SLOW
        line = ""
        while "attached" not in line:
            line = self.proc.stderr.readline()
            if not line and (self.proc.poll() is not None or time.monotonic() > deadline):
                raise AssertionError("strace did not attach to %d" % pid)

    def finish(self):
        try:
            self.proc.wait(timeout=30 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


def append_until_dead(vol, log, rng, m, files=("a", "b", "c"), limit=60.0):
    """Appends of random sizes and fsyncs through the mount until the daemon
    is gone (or limit seconds pass). The journal of what completed."""
    cursor = LogCursor(log)
    w = World(vol.mnt, fresh_ref(vol.root / "ref"), cursor, rng, list(files), [])
    deadline = time.monotonic() + limit * SLOW
    try:
        while m.proc.poll() is None and time.monotonic() < deadline:
            rel = w.rng.choice(w.files)
            if w.rng.random() < 0.6 or w.ref_stat(rel) is None:
                append_to(w, rel)
            else:
                fsync_file(w, rel)
    finally:
        cursor.close()
    return w


def fsynced_bytes_intact(vol, journal):
    """Remount; every file reads whole, and every byte fsynced (and not
    appended to since, appends being all the writer does) is intact."""
    from crash_oracle import expectations
    exp = expectations(journal, float("inf"))
    m = vol.mount()
    problems = []
    try:
        for path, ino in sorted(exp.names.items()):
            try:
                with open(vol.mnt / path, "rb") as f:
                    got = f.read()
            except OSError as e:
                problems.append("%s: %s" % (path, e))
                continue
            want = exp.files.get(ino)
            if want is None:
                continue
            if len(got) < len(want.content):
                problems.append("%s: %d bytes, %d were fsynced" % (path, len(got),
                                                                   len(want.content)))
            elif got[:len(want.content)] != want.content:
                off = next(i for i in range(len(want.content)) if got[i] != want.content[i])
                problems.append("%s: fsynced byte %d changed" % (path, off))
    finally:
        m.unmount()
    v = vol.admin("verify", vol.backing)
    if v.returncode != 0:
        problems.append("verify: " + v.stdout.strip()[-500:])
    return problems


@pytest.mark.parametrize("attempt", range(4))
def test_kill9_at_a_random_moment_keeps_fsynced_bytes(volume, attempt):
    rng = random.Random(100 + attempt)
    snap, log, m = start_recorded(volume, "kill9")
    killer = threading.Timer(rng.uniform(0.2, 1.0) * SLOW,
                             lambda: m.proc.send_signal(signal.SIGKILL))
    killer.start()
    try:
        w = append_until_dead(volume, log, rng, m)
    finally:
        killer.cancel()
    m.kill()
    problems = fsynced_bytes_intact(volume, w.journal)
    assert not problems, "kill -9 after %d operations: %s" % (len(w.journal.events), problems)


@pytest.mark.parametrize("n", [3, 8, 13, 21, 34])
def test_kill9_at_the_nth_pwrite_keeps_fsynced_bytes(volume, n):
    snap, log, m = start_recorded(volume, "kill9n")
    tracer = StraceKill(m.proc.pid, "pwrite64", n)
    w = append_until_dead(volume, log, random.Random(n), m)
    tracer.finish()
    m.kill()
    problems = fsynced_bytes_intact(volume, w.journal)
    assert not problems, "kill -9 at pwrite %d, after %d operations: %s" % (
        n, len(w.journal.events), problems)
