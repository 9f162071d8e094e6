"""ekmfs-rotate through real volumes and real mounts.

Owns: the rotation guarantees of issue 3 - content bytes untouched, crash
safety under kill -9, online rotation under a writer and a reader, the
daemon picking up a new KEK version, no slot left for an old KEK, retire and
destroy, the CMK interval, corrupt headers skipped and reported, --dry-run,
the rotate lock, and backups taken before a rotation.

Divisions: helpers / basic rotation / crash safety / online / keyring
commands / bad input and refusals.
"""
import fcntl
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import threading
import time

import pytest

import keyring_mac
from conftest import BUILD, HEADER_SIZE, SLOW, Volume, dir_state, run_cli
from ondisk import (ROTATE, SLOT, after_header, audit_records, backing_files, kill_at_random,
                    rotate, slots, tree_hash)

BENCHGEN = BUILD / "tools" / "rotate" / "ekmfs-rotate-benchgen"

# ---- helpers ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _rotate_binary():
    if not os.access(ROTATE, os.X_OK):
        pytest.skip("ekmfs-rotate not built")


def versions_in_use(path):
    return sorted(v for seq, _, v, _ in slots(path) if seq)


def content_after_header(vol):
    return after_header(backing_files(vol))


def assert_done(vol, version):
    """Every non-empty file is on `version` only; the other slot is all zero."""
    for p in backing_files(vol):
        if os.path.getsize(p) == 0:
            continue
        s = slots(p)
        used = [x for x in s if x[0]]
        assert len(used) == 1, "%s: %d slots in use" % (p, len(used))
        assert used[0][2] == version, "%s on v%d, want v%d" % (p, used[0][2], version)
        empty = [x for x in s if not x[0]][0]
        assert empty[3] == bytes(SLOT), "%s: cleared slot not all zero" % p


def payload(i, size):
    return bytes((i * 31 + k * 7) % 251 for k in range(size))


def fill(mnt, n=40):
    sizes = [0, 1, 100, 4095, 4096, 4097, 9000, 70000]
    expect = {}
    os.makedirs(os.path.join(mnt, "d1", "d2"), exist_ok=True)
    for i in range(n):
        rel = os.path.join("d1" if i % 3 else "", "d2" if i % 5 == 0 and i % 3 else "",
                           "f%03d" % i)
        data = payload(i, sizes[i % len(sizes)])
        with open(os.path.join(mnt, rel), "wb") as f:
            f.write(data)
        expect[rel] = data
    return expect


def check_through_mount(mnt, expect):
    for rel, data in expect.items():
        with open(os.path.join(mnt, rel), "rb") as f:
            assert f.read() == data, rel


def benchgen(vol, count, size):
    r = run_cli([BENCHGEN, "-c", vol.config, vol.backing, count, size], timeout=300)
    assert r.returncode == 0, r.stderr


def bench_expected(size):
    return bytes((k * 7 + 1) & 0xff for k in range(size))


# ---- basic rotation --------------------------------------------------------

def test_kek_rotation_content_untouched_and_daemon_picks_up(mounted):
    vol, mnt = mounted, mounted.mnt
    expect = fill(mnt)
    # a 0-byte backing file: an empty file whose header was never written
    open(vol.backing / "empty0", "wb").close()
    before = content_after_header(vol)
    assert all(versions_in_use(p) == [1] for p in backing_files(vol)
               if os.path.getsize(p))

    r = rotate(vol, "kek", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["new_version"] == 2 and r.json["remaining_on_old_versions"] == 0
    assert r.json["rewrapped"] == len(expect)
    assert r.json["empty"] == 1 and r.json["retired_versions"] == [1]
    assert content_after_header(vol) == before
    assert_done(vol, 2)
    assert os.path.getsize(vol.backing / "empty0") == 0

    # the running daemon uses v2 for new files, without a restart
    with open(os.path.join(mnt, "after"), "wb") as f:
        f.write(b"new file after the rotation")
    assert versions_in_use(vol.backing / "after") == [2]
    check_through_mount(mnt, expect)

    st = rotate(vol, "status", json_out=True)
    assert st.returncode == 0, st.stderr
    keks = {k["version"]: k for k in st.json["tenants"][0]["keks"]}
    assert keks[1]["state"] == "retired" and keks[1]["files"] == 0
    assert keks[2]["state"] == "active" and keks[2]["files"] == len(expect) + 1
    assert st.json["tenants"][0]["current_version"] == 2

    # a second rotation, then the volume verifies and remounts
    before = content_after_header(vol)
    r = rotate(vol, "kek", "-q")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert content_after_header(vol) == before
    assert_done(vol, 3)
    m = vol.remount(vol.mounts[-1])
    check_through_mount(mnt, expect)
    del m
    v = vol.admin("verify", vol.backing)
    assert v.returncode == 0, v.stdout + v.stderr


def test_help_usage_and_exit_codes(volume):
    r = run_cli([ROTATE, "--help"])
    assert r.returncode == 0
    for word in ("status", "kek", "rewrap", "retire", "cmk", "--dry-run", "--jobs",
                 "--json", "Exit status", "refused"):
        assert word in r.stdout
    assert run_cli([ROTATE, "bogus", volume.backing]).returncode == 2
    assert run_cli([ROTATE, "kek"]).returncode == 2
    assert run_cli([ROTATE, "retire", volume.backing]).returncode == 2
    assert run_cli([ROTATE, "kek", "--jobs", "0", volume.backing]).returncode == 2
    assert run_cli([ROTATE, "kek", "--force", volume.backing]).returncode == 2
    r = run_cli([ROTATE, "-c", volume.config, "status", volume.root / "nope"])
    assert r.returncode == 1 and "nope" in r.stderr


# ---- crash safety ----------------------------------------------------------

def test_kill9_at_random_points_then_rerun(volume):
    vol = volume
    n, size = 2000, 300
    benchgen(vol, n, size)
    before = content_after_header(vol)
    rng = random.Random(1234)
    killed = 0
    for run in range(20):
        cmd = "kek" if run % 2 == 0 else "rewrap"
        killed += kill_at_random([ROTATE, "-c", vol.config, cmd, "-q", "--jobs", 1 + run % 3,
                                  vol.backing], rng, 0.25)
    assert killed >= 5, "the runs finished too fast to be interrupted"
    # every file is readable through a fresh mount, and verify is clean
    assert content_after_header(vol) == before
    v = vol.admin("verify", vol.backing)
    assert v.returncode == 0, v.stdout[-2000:] + v.stderr
    m = vol.mount()
    want = bench_expected(size)
    for p in backing_files(vol):
        rel = os.path.relpath(p, vol.backing)
        with open(os.path.join(vol.mnt, rel), "rb") as f:
            assert f.read() == want, rel
    m.unmount()
    # the rerun completes: no file left on an old version, no old slot
    r = rotate(vol, "rewrap", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["remaining_on_old_versions"] == 0
    cur = r.json["target_version"]
    assert_done(vol, cur)
    assert content_after_header(vol) == before


def test_interrupted_states_are_readable_and_finished(mounted):
    """The two crash states the protocol can leave: both slots in use (new
    slot durable, old not yet cleared) and a slot write cut after its seq."""
    vol, mnt = mounted, mounted.mnt
    expect = fill(mnt, 6)
    names = [r for r, d in expect.items() if d]
    a, b = (vol.backing / names[0]), (vol.backing / names[1])
    old_a = open(a, "rb").read(HEADER_SIZE)
    old_b = open(b, "rb").read(HEADER_SIZE)
    assert rotate(vol, "kek", "-q").returncode == 0
    new_a = open(a, "rb").read(HEADER_SIZE)
    # a: old slot 0 (v1, seq 1) back next to the new slot 1 (v2, seq 2)
    with open(a, "r+b") as f:
        f.write(old_a[:32 + SLOT])
    assert versions_in_use(a) == [1, 2]
    assert new_a[32 + SLOT:32 + 2 * SLOT] == open(a, "rb").read(HEADER_SIZE)[128:224]
    # b: back to v1 with slot 1 holding only a seq (a cut-short write)
    with open(b, "r+b") as f:
        f.write(old_b[:32 + SLOT] + struct.pack("<Q", 2) + bytes(SLOT - 8))
    m = vol.remount(vol.mounts[-1])
    check_through_mount(mnt, expect)
    r = rotate(vol, "rewrap", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["stale_slots_cleared"] == 1 and r.json["rewrapped"] == 1
    assert_done(vol, 2)
    m = vol.remount(m)
    check_through_mount(mnt, expect)


# ---- online ----------------------------------------------------------------

def test_rotate_while_writer_and_reader_run(mounted):
    vol, mnt = mounted, mounted.mnt
    expect = fill(mnt, 60)
    stop = threading.Event()
    errors = []
    written = {}
    lock = threading.Lock()

    def writer():
        i = 0
        try:
            while not stop.is_set():
                rel = "w%04d" % (i % 300)
                data = payload(i, 1000 + (i * 37) % 9000)
                with open(os.path.join(mnt, rel), "wb") as f:
                    f.write(data)
                with lock:
                    written[rel] = data
                i += 1
        except Exception as e:  # noqa: B902 - any failure is the finding
            errors.append("writer: %r" % e)

    def reader():
        try:
            while not stop.is_set():
                for rel, data in list(expect.items()):
                    with open(os.path.join(mnt, rel), "rb") as f:
                        got = f.read()
                    if got != data:
                        errors.append("reader: %s differs" % rel)
                        return
        except Exception as e:  # noqa: B902
            errors.append("reader: %r" % e)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        codes = []
        for _ in range(4):
            time.sleep(0.2)
            r = rotate(vol, "kek", "-q", "--jobs", "2")
            codes.append((r.returncode, r.stderr))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert all(c == 0 for c, _ in codes), codes
    check_through_mount(mnt, expect)
    with lock:
        check_through_mount(mnt, written)
    # files created during the rotations: a final rewrap leaves none behind
    r = rotate(vol, "rewrap", json_out=True)
    assert r.returncode == 0, r.stderr
    assert_done(vol, 5)
    v = vol.admin("verify", vol.backing)
    assert v.returncode == 0, v.stdout[-2000:]


def test_backup_before_rotation_restores_with_its_own_keyring(mounted):
    vol, mnt = mounted, mounted.mnt
    expect = fill(mnt, 12)
    vol.mounts[-1].unmount()
    backup = vol.root / "backup"
    subprocess.run(["cp", "-a", str(vol.backing), str(backup)], check=True)
    assert rotate(vol, "kek", "-q").returncode == 0
    r = rotate(vol, "retire", "--version", "1", "--destroy")
    assert r.returncode == 0, r.stderr
    assert "backup" in r.stdout.lower()
    # the backup, with its own keyring copy (v1 intact), still mounts and reads
    # - restored as on another machine, with its own audit log: its chain
    # head is older than the live volume's log, which refuses it (AUDIT.md)
    bvol = Volume.__new__(Volume)
    bvol.__dict__.update(vol.__dict__)
    bvol.backing = backup
    bvol.mounts = []
    bvol.config = vol.root / "backup.ini"
    bvol.config.write_text(vol.config.read_text().replace(
        str(vol.root / "audit.log"), str(vol.root / "backup-audit.log")))
    m = bvol.mount()
    check_through_mount(mnt, expect)
    m.unmount()
    # the live volume reads too
    m = vol.mount()
    check_through_mount(mnt, expect)
    m.unmount()
    # but the backup's data with the new keyring (v1 destroyed) cannot be read
    shutil.copy(vol.backing / ".ekmfs" / "keyring.json", backup / ".ekmfs" / "keyring.json")
    m = bvol.mount()
    rel = [r for r, d in expect.items() if d][0]
    with pytest.raises(OSError):
        with open(os.path.join(mnt, rel), "rb") as f:
            f.read()
    m.unmount()


# ---- keyring commands ------------------------------------------------------

def test_retire_refused_while_referenced_then_destroy(volume):
    vol = volume
    benchgen(vol, 30, 100)
    victim = backing_files(vol)[0]
    old = open(victim, "rb").read()
    r = rotate(vol, "retire", "--version", "1")
    assert r.returncode == 4 and "current" in r.stderr
    assert rotate(vol, "kek", "-q").returncode == 0
    # a file restored from before the rotation references v1 again
    with open(victim, "wb") as f:
        f.write(old)
    r = rotate(vol, "retire", "--version", "1", "--destroy", json_out=True)
    assert r.returncode == 4, r.stderr
    assert r.json["outcome"] == "refused" and "1 files still reference KEK v1" in r.stderr
    st = rotate(vol, "status", json_out=True)
    assert {k["version"]: k["state"] for k in st.json["tenants"][0]["keks"]} == \
        {1: "retired", 2: "active"}
    assert rotate(vol, "rewrap", "-q").returncode == 0
    r = rotate(vol, "retire", "--version", "1", "--destroy")
    assert r.returncode == 0, r.stderr
    st = rotate(vol, "status", json_out=True)
    k1 = [k for k in st.json["tenants"][0]["keks"] if k["version"] == 1][0]
    assert k1["state"] == "destroyed" and k1["files"] == 0
    kr = json.loads((vol.backing / ".ekmfs" / "keyring.json").read_text())
    assert [k["wrapped"] for k in kr["tenants"][0]["keks"] if k["version"] == 1] == [""]
    r = rotate(vol, "retire", "--version", "7")
    assert r.returncode == 1 and "no KEK version 7" in r.stderr


def test_first_cmk_change_after_init_is_allowed(volume):
    """The CMK set at init has never been changed: replacing it is the first
    change, not held back by min_cmk_change_interval; the next one is."""
    vol = volume
    st = rotate(vol, "status", json_out=True).json["tenants"][0]
    assert st["cmk_changed"] is False
    assert st["next_cmk_change_allowed"] == st["last_cmk_change"]
    text = rotate(vol, "status").stdout
    assert "last CMK change: none (the CMK set at creation" in text, text
    newkey = vol.keydir / "new.key"
    newkey.write_text(run_cli([BUILD / "ekmfs-admin", "keygen"]).stdout)
    os.chmod(newkey, 0o600)
    r = rotate(vol, "cmk", "--to", newkey, json_out=True)
    assert r.returncode == 0 and r.json["outcome"] == "done", r.stderr
    assert ("min_cmk_change_interval (1d) not applied: this is the first change of the "
            "CMK tenant 'default' was created with") in r.json["message"]
    st = rotate(vol, "status", json_out=True).json["tenants"][0]
    assert st["cmk_changed"] is True and st["last_cmk_change"] > st["keks"][0]["created"]
    # the second change is a change of a key in use: the interval applies
    vol.write_config("[tenant.default]\nkey_file = %s\n" % newkey)
    r = rotate(vol, "cmk", json_out=True)
    assert r.returncode == 4 and r.json["outcome"] == "refused", r.stderr
    assert "less than min_cmk_change_interval (1d) ago" in r.stderr
    v = vol.admin("verify", vol.backing)
    assert v.returncode == 0, v.stdout + v.stderr


def test_cmk_interval_refusal_force_and_new_key(volume):
    vol = volume
    benchgen(vol, 20, 5000)
    r = rotate(vol, "cmk")                  # the first change after init: allowed
    assert r.returncode == 0, r.stderr
    r = rotate(vol, "cmk", json_out=True)
    assert r.returncode == 4 and r.json["outcome"] == "refused"
    assert "min_cmk_change_interval" in r.stderr
    r = rotate(vol, "cmk", "--force")
    assert r.returncode == 0, r.stderr
    # a new key file through --to, still under --force (just changed)
    newkey = vol.keydir / "new.key"
    key = run_cli([BUILD / "ekmfs-admin", "keygen"]).stdout
    newkey.write_text(key)
    os.chmod(newkey, 0o644)
    r = rotate(vol, "cmk", "--to", newkey, "--force")
    assert r.returncode == 1 and "new.key" in r.stderr          # loose mode refused
    os.chmod(newkey, 0o600)
    inside = vol.backing / "k.key"
    shutil.copy(newkey, inside)
    os.chmod(inside, 0o600)
    r = rotate(vol, "cmk", "--to", inside, "--force")
    assert r.returncode == 1 and "inside the backing directory" in r.stderr
    os.unlink(inside)
    r = rotate(vol, "cmk", "--to", newkey)
    assert r.returncode == 4                                     # interval again
    r = rotate(vol, "cmk", "--to", newkey, "--force")
    assert r.returncode == 0, r.stderr
    assert "key_file = %s" % newkey in r.stdout
    # the old key no longer opens the volume; the new one does
    assert vol.admin("verify", vol.backing).returncode == 1
    vol.write_config("[tenant.default]\nkey_file = %s\nmin_cmk_change_interval = 1s\n"
                     % newkey)
    v = vol.admin("verify", vol.backing)
    assert v.returncode == 0, v.stdout + v.stderr
    # (a change in the second the volume was created is recorded one second
    # later, to tell it from the CMK set at creation: wait two)
    time.sleep(2.1)
    r = rotate(vol, "cmk")                                       # interval passed
    assert r.returncode == 0, r.stderr
    m = vol.mount()
    with open(os.path.join(vol.mnt, os.path.relpath(backing_files(vol)[0], vol.backing)),
              "rb") as f:
        assert f.read() == bench_expected(5000)
    m.unmount()


# ---- bad input and refusals ------------------------------------------------

WRITING_COMMANDS = [["kek"], ["rewrap"], ["retire", "--version", "1"], ["cmk", "--force"],
                    ["migrate"]]


def error_line(r):
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_errors_lead_with_the_cause_and_fix(volume):
    """An error line is: the root cause, what to do, then what it meant for
    the volume (" - nothing was changed"), for every writing command."""
    vol = volume
    (vol.root / "audit.log").unlink()

    def state():            # the lock file (empty) is all a refused run may leave
        st = dir_state(vol.backing)
        st.pop(".ekmfs/rotate.lock", None)
        st.pop(".ekmfs")
        return st

    before = state()
    key = vol.key_file
    os.chmod(key, 0o644)
    for args in WRITING_COMMANDS:
        r = rotate(vol, *args)
        assert r.returncode == 1, (args, r.stderr)
        assert error_line(r) == ("ekmfs-rotate: key file %s has mode 0644 (group/other may "
                                 "read it); chmod 600 %s - nothing was changed" % (key, key))
    os.chmod(key, 0o600)
    good = key.read_bytes()
    key.write_text(run_cli([BUILD / "ekmfs-admin", "keygen"]).stdout)
    for args in WRITING_COMMANDS:
        r = rotate(vol, *args)
        assert r.returncode == 1, (args, r.stderr)
        line = error_line(r)
        assert line.startswith("ekmfs-rotate: key file %s is not the key of tenant 'default' "
                               "(its fingerprint is " % key), line
        assert "); configure the key the keyring is wrapped with" in line, line
        assert line.endswith(" - nothing was changed"), line
    key.write_bytes(good)
    assert state() == before
    log = vol.root / "audit.log"
    assert not log.exists() or log.read_text() == ""        # no record either
    # a refusal says so at the end
    r = rotate(vol, "retire", "--version", "1")
    assert r.returncode == 4
    assert error_line(r) == ("ekmfs-rotate: KEK v1 is the current version of tenant "
                             "'default'; rotate first (ekmfs-rotate kek) - refused, "
                             "nothing was changed")
    # read-only commands and dry runs have nothing to add
    os.chmod(key, 0o644)
    r = rotate(vol, "kek", "--dry-run")
    assert r.returncode == 1 and error_line(r).endswith("chmod 600 %s" % key), r.stderr
    os.chmod(key, 0o600)


def test_corrupt_headers_skipped_and_reported(volume):
    vol = volume
    benchgen(vol, 50, 200)
    files = backing_files(vol)
    tampered, foreign, unknown = files[3], files[10], files[20]
    with open(tampered, "r+b") as f:              # a flipped bit in the wrapped DEK
        f.seek(32 + 40)
        b = f.read(1)
        f.seek(32 + 40)
        f.write(bytes([b[0] ^ 1]))
    with open(foreign, "r+b") as f:               # not an ekmfs header at all
        f.write(b"PLAINTEXT!")
    with open(unknown, "r+b") as f:               # names KEK v99
        f.seek(32 + 12)
        f.write(struct.pack("<I", 99))
    bad = {p: open(p, "rb").read() for p in (tampered, foreign, unknown)}
    r = rotate(vol, "kek", json_out=True)
    assert r.returncode == 3, r.stderr
    skipped = {s["path"]: s["reason"] for s in r.json["skipped"]}
    rel = lambda p: os.path.relpath(p, vol.backing)  # noqa: E731
    assert set(skipped) == {rel(tampered), rel(foreign), rel(unknown)}
    assert "authenticates" in skipped[rel(tampered)]
    assert "not an ekmfs file" in skipped[rel(foreign)]
    assert "v99" in skipped[rel(unknown)]
    for p in bad:
        assert "skipped %s" % rel(p) in r.stderr
        assert open(p, "rb").read() == bad[p]      # never "fixed"
    for p in files:
        if p not in bad:
            assert versions_in_use(p) == [2], p
    assert r.json["rewrapped"] == len(files) - 3
    # retire is refused while unreadable headers might reference the version
    assert rotate(vol, "retire", "--version", "1").returncode == 4


def test_dry_run_changes_nothing(volume):
    vol = volume
    benchgen(vol, 40, 100)
    h = tree_hash(vol.backing)
    r = rotate(vol, "kek", "--dry-run", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["rewrapped"] == 40 and r.json["dry_run"] is True
    for args in (["rewrap", "-n"], ["retire", "--version", "1", "-n"],
                 ["cmk", "--force", "-n"]):
        r = rotate(vol, *args)
        assert r.returncode in (0, 4), (args, r.stderr)
    assert tree_hash(vol.backing) == h
    # after a real rotation a dry-run rewrap has nothing to do
    assert rotate(vol, "kek", "-q").returncode == 0
    h = tree_hash(vol.backing)
    r = rotate(vol, "rewrap", "--dry-run", json_out=True)
    assert r.json["rewrapped"] == 0 and r.json["already_current"] == 40
    r = rotate(vol, "retire", "--version", "1", "--destroy", "--dry-run")
    assert r.returncode == 0 and "would be" in r.stdout
    assert tree_hash(vol.backing) == h


def test_second_rotate_refused(volume):
    vol = volume
    benchgen(vol, 10, 10)
    assert rotate(vol, "kek", "-q").returncode == 0   # creates .ekmfs/rotate.lock
    lockp = vol.backing / ".ekmfs" / "rotate.lock"
    assert oct(lockp.stat().st_mode & 0o777) == "0o600"
    # hold the lock exactly as a running ekmfs-rotate does
    fd = os.open(lockp, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        before = tree_hash(vol.backing)
        for cmd in (["kek"], ["rewrap"], ["cmk", "--force"], ["retire", "--version", "1"]):
            r = rotate(vol, *cmd, json_out=True)
            assert r.returncode == 4, (cmd, r.stderr)
            assert "another ekmfs-rotate" in r.stderr and r.json["outcome"] == "refused"
        assert tree_hash(vol.backing) == before
        assert rotate(vol, "status").returncode == 0      # read-only: not locked
    finally:
        os.close(fd)
    assert rotate(vol, "rewrap", "-q").returncode == 0


# ---- audit trail -----------------------------------------------------------

def test_rotation_is_audited(volume):
    """Every key-changing command leaves records; the chain still verifies."""
    vol = volume
    benchgen(vol, 12, 100)
    victim = backing_files(vol)[0]
    with open(victim, "r+b") as f:                 # one unreadable header
        f.write(b"XXXX")
    assert rotate(vol, "kek", "-q").returncode == 3
    assert rotate(vol, "cmk", "-q").returncode == 0  # the first change: allowed
    r = rotate(vol, "cmk")
    assert r.returncode == 4                        # interval: refused, audited
    rotate(vol, "rewrap", "--dry-run")              # a dry run writes no record
    os.unlink(victim)
    assert rotate(vol, "rewrap", "-q").returncode == 0
    assert rotate(vol, "retire", "--version", "1", "--destroy").returncode == 0
    recs = audit_records(vol)
    ev = [r["event"] for r in recs]
    for name in ("kek_created", "rewrap_start", "rewrap_skipped_file", "rewrap_finish",
                 "cmk_changed", "cmk_change_refused", "kek_retired", "kek_destroyed"):
        assert name in ev, (name, ev)
    assert ev.index("kek_created") < ev.index("rewrap_start") < ev.index("rewrap_finish")
    created = recs[ev.index("kek_created")]
    assert created["kek_version"] == 2 and created["tenant"] == "default"
    skipped = recs[ev.index("rewrap_skipped_file")]
    assert skipped["path"] == os.path.relpath(victim, vol.backing)
    finish = recs[ev.index("rewrap_finish")]
    assert finish["outcome"] == "failure" and finish["details"]["skipped"] == 1
    assert recs[ev.index("cmk_change_refused")]["outcome"] == "refused"
    assert recs[ev.index("kek_destroyed")]["kek_version"] == 1
    assert ev.count("rewrap_start") == 2            # not for the dry run
    v = vol.admin("audit", "verify", vol.backing)
    assert v.returncode == 0, v.stdout + v.stderr


def test_rotation_refused_when_the_audit_log_cannot_be_written(volume):
    vol = volume
    benchgen(vol, 5, 100)
    blocker = vol.root / "not-a-dir"
    blocker.write_text("")
    vol.write_config("[tenant.default]\nkey_file = %s\n[audit]\nfile = %s/audit.log\n"
                     % (vol.key_file, blocker))
    before = (vol.backing / ".ekmfs" / "keyring.json").read_bytes()
    r = rotate(vol, "kek")
    assert r.returncode == 1
    assert "audit log" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (vol.backing / ".ekmfs" / "keyring.json").read_bytes() == before


# ---- scheduled rotation by the daemon ------------------------------------

def backdate_last_rotation(vol, days):
    """Pretend the last rotation was `days` ago (the keyring field the
    schedule reads). The keyring MAC covers it: the test changes it as a
    holder of the CMK would, sealing the keyring again."""
    when = time.gmtime(time.time() - days * 86400)

    def edit(kr):
        kr["tenants"][0]["last_rotation"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", when)
    keyring_mac.edit_sealed(vol.backing, vol.key_file, edit)


def wait_until(cond, timeout, what):
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def test_daemon_runs_scheduled_rotation(volume):
    vol = volume
    vol.write_config("[tenant.default]\nkey_file = %s\nrotation_days = 60\n"
                     "[daemon]\nrotate_program = %s\nrotation_check_interval = 1\n"
                     % (vol.key_file, ROTATE))
    benchgen(vol, 30, 5000)
    before = content_after_header(vol)
    backdate_last_rotation(vol, 59)
    m = vol.mount()
    time.sleep(2.5)                      # not due yet: nothing happens
    assert all(versions_in_use(p) == [1] for p in backing_files(vol))
    backdate_last_rotation(vol, 61)
    wait_until(lambda: all(versions_in_use(p) == [2] for p in backing_files(vol)), 30,
               "the daemon's scheduled rotation to re-wrap every file")
    wait_until(lambda: "scheduled KEK rotation of tenant 'default' finished" in m.log(),
               30, "the rotation to finish")
    # content untouched, files readable through the mount, new files on v2
    assert content_after_header(vol) == before
    name = os.path.relpath(backing_files(vol)[0], vol.backing)
    assert open(vol.mnt / name, "rb").read() == bench_expected(5000)
    (vol.mnt / "after").write_bytes(b"new")
    assert versions_in_use(vol.backing / "after") == [2]
    # rotated once: the next check finds the rotation no longer due
    time.sleep(2.5)
    st = rotate(vol, "status", json_out=True)
    assert {k["version"]: k["state"] for k in st.json["tenants"][0]["keks"]} == \
        {1: "retired", 2: "active"}
    m.unmount()
    ev = [r["event"] for r in audit_records(vol)]
    assert ev.count("scheduled_rotation_start") == 1
    assert ev.index("scheduled_rotation_start") < ev.index("kek_created") < \
        ev.index("rewrap_finish")


def test_scheduled_rotation_external_only_logs(volume):
    vol = volume
    vol.write_config("[tenant.default]\nkey_file = %s\n[daemon]\nrotate_program = %s\n"
                     "rotation_check_interval = 1\nscheduled_rotation = external\n"
                     % (vol.key_file, ROTATE))
    benchgen(vol, 5, 100)
    backdate_last_rotation(vol, 61)
    m = vol.mount()
    wait_until(lambda: "is due since" in m.log(), 10, "the due notice")
    time.sleep(1.5)
    assert all(versions_in_use(p) == [1] for p in backing_files(vol))
    m.unmount()
    assert m.log().count("is due since") == 1     # once a day, not every check


def metrics(path):
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_rotation_progress_in_daemon_metrics(volume):
    vol = volume
    mfile = vol.root / "metrics.prom"
    vol.write_config("[tenant.default]\nkey_file = %s\n[daemon]\nmetrics_file = %s\n"
                     "metrics_interval = 1\n" % (vol.key_file, mfile))
    benchgen(vol, 10000, 10)
    m = vol.mount()
    wait_until(lambda: mfile.exists(), 10, "the metrics file")
    assert metrics(mfile)["ekmfs_rotation_running"] == 0
    progress = vol.backing / ".ekmfs" / "rotate.progress"
    proc = subprocess.Popen([ROTATE, "-c", vol.config, "kek", "-q", vol.backing],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 30 * SLOW
        while not progress.exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGSTOP)          # hold the pass mid-way
        assert progress.exists(), "ekmfs-rotate published no progress"
        pid, done, total = progress.read_text().split()[:3]
        assert int(pid) == proc.pid and int(total) == 10000 and int(done) <= 10000
        wait_until(lambda: metrics(mfile)["ekmfs_rotation_running"] == 1, 10,
                   "ekmfs_rotation_running 1")
        got = metrics(mfile)
        assert got["ekmfs_rotation_files_total"] == 10000
        assert got["ekmfs_rotation_files_done"] <= 10000
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert not progress.exists()
    wait_until(lambda: metrics(mfile)["ekmfs_rotation_running"] == 0, 10,
               "ekmfs_rotation_running back to 0")
    m.unmount()


def test_rotation_leaves_mtime_size_and_content_as_the_mount_shows_them(mounted):
    """A re-wrap writes key slots: through the mount no file's mtime, size
    or content moves, while a writer keeps writing (the daemon's write fence,
    docs/ROTATION.md) and with the volume unmounted."""
    vol, mnt = mounted, mounted.mnt
    expect = fill(mnt, 40)
    old = 1_600_000_000
    for i, rel in enumerate(sorted(expect)):
        os.utime(os.path.join(mnt, rel), (old + i, old + i))
    before = {rel: os.stat(os.path.join(mnt, rel)) for rel in expect}
    stop = threading.Event()
    errors = []
    last_write = {}

    def writer():
        try:
            fd = os.open(os.path.join(mnt, "busy"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                i = 0
                while not stop.is_set():
                    os.pwrite(fd, payload(i, 5000), (i % 7) * 4096)
                    last_write["t"] = time.time()
                    i += 1
            finally:
                os.close(fd)
        except Exception as e:  # noqa: B902 - any failure is the finding
            errors.append("writer: %r" % e)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(2):
            r = rotate(vol, "kek", "-q", "--jobs", "2")
            assert r.returncode == 0, r.stderr
            assert "may show the rotation's mtime" not in r.stderr, r.stderr
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    assert_done(vol, 3)
    for rel in expect:
        st = os.stat(os.path.join(mnt, rel))
        assert (st.st_mtime_ns, st.st_size) == (before[rel].st_mtime_ns, before[rel].st_size), rel
    check_through_mount(mnt, expect)
    # the file written throughout keeps the time of its writes, not older
    assert os.stat(os.path.join(mnt, "busy")).st_mtime >= last_write["t"] - 2
    # unmounted: the same
    vol.mounts[-1].unmount()
    r = rotate(vol, "kek", "-q")
    assert r.returncode == 0, r.stderr
    vol.mount()
    for rel in expect:
        st = os.stat(os.path.join(mnt, rel))
        assert st.st_mtime_ns == before[rel].st_mtime_ns, rel
    check_through_mount(mnt, expect)
