"""The crash simulator's replayer, tested on its own (no daemon, any build).

Owns: the model of tests/crash/crashsim.py on tiny synthetic logs: what a
power cut may and may not leave (sectors torn independently, never within a
sector; an unsynced extension kept or dropped; a synced file exact; syncfs
covering every file), kill images equal to the current data, namespace
operations durable at once (renames, hard links, unlinked inodes vanishing,
inode numbers reused), fallocate and truncate as Linux does them, records
about unknown inodes ignored, determinism per (seed, k), reading logs, and
materializing an image (names, hard links, symlinks, modes) through the
command line. The recorder and the daemon are tested in test_crash.py.

Divisions: synthetic volumes and logs / power cuts / kill and namespace /
data operations / logs, images and the CLI.
"""
import base64
import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "crash"))
import crashsim  # noqa: E402
from crashsim import Replayer  # noqa: E402

# ---- synthetic volumes and logs -----------------------------------------------

DEV = 42
ROOT, A, D = 1, 2, 3          # the root, file "a" (1024 bytes), directory "d"
OLD = bytes(range(256)) * 4


def snapshot(files=None):
    """A root holding 'a' (OLD, 0644) and an empty directory 'd'."""
    inodes = {str(ROOT): {"type": "dir", "mode": 0o755, "entries": {"a": A, "d": D}},
              str(A): {"type": "reg", "mode": 0o644, "data": base64.b64encode(OLD).decode()},
              str(D): {"type": "dir", "mode": 0o700, "entries": {}}}
    for ino, (name, data) in (files or {}).items():
        inodes[str(ino)] = {"type": "reg", "mode": 0o600,
                            "data": base64.b64encode(data).decode()}
        inodes[str(ROOT)]["entries"][name] = ino
    return {"path": "/nowhere", "dev": DEV, "root": ROOT, "inodes": inodes}


class Log:
    """Records in the recorder's format, numbered as it numbers them."""

    def __init__(self):
        self.records = []

    def add(self, op, **fields):
        rec = {"seq": len(self.records) + 1, "pid": 1, "op": op, "dev": DEV}
        rec.update(fields)
        if "data" in rec:
            rec["data"] = base64.b64encode(rec["data"]).decode()
        self.records.append(rec)
        return len(self.records)

    def write(self, ino, off, data):
        return self.add("write", ino=ino, off=off, data=data)


def image(snap, log, k=None, mode="kill", seed=0):
    k = len(log.records) if k is None else k
    return Replayer(snap, log.records).image(k, mode, seed)


def files_of(img):
    """{path: data} of the regular files of an image."""
    return {e.path.decode(): img.data[e.ino] for e in img.entries if e.kind == "reg"}


def power_outcomes(snap, log, path=b"a", seeds=200):
    out = set()
    for s in range(seeds):
        out.add(files_of(image(snap, log, mode="power", seed=s))[path.decode()])
    return out


# ---- power cuts --------------------------------------------------------------------

def test_torn_sectors_are_old_or_new_independently_never_mixed_inside():
    log = Log()
    new = bytes([0xee]) * 1024
    log.write(A, 0, new)
    got = power_outcomes(snapshot(), log)
    sectors = [(OLD[:512], new[:512]), (OLD[512:], new[512:])]
    expect = {a + b for a in sectors[0] for b in sectors[1]}
    assert got == expect, "a torn write gives each 512-byte sector old or new, all four ways"


def test_unsynced_extension_is_kept_dropped_or_zeros():
    log = Log()
    tail = bytes([0x77]) * 600                 # bytes 1024..1623: sectors 2 and 3
    log.write(A, 1024, tail)
    got = power_outcomes(snapshot(), log)
    short = OLD
    long_variants = {OLD + a + b for a in (bytes(512), tail[:512])
                     for b in (bytes(88), tail[512:])}
    assert got == {short} | long_variants
    assert files_of(image(snapshot(), log))["a"] == OLD + tail       # kill: page cache


def test_dropped_truncation_and_growth():
    log = Log()
    log.add("truncate", ino=A, size=100)
    cut = OLD[:100] + bytes(924)              # "current" beyond the new size is zeros
    kept_size = {a + b for a in (OLD[:512], cut[:512]) for b in (OLD[512:], cut[512:])}
    assert power_outcomes(snapshot(), log) == {OLD[:100]} | kept_size, \
        "an unsynced truncate keeps or drops the new size; the sectors it cut are torn"
    log2 = Log()
    log2.add("truncate", ino=A, size=3000)
    assert power_outcomes(snapshot(), log2) == {OLD, OLD + bytes(1976)}


def test_fsync_makes_a_file_exact_and_only_that_file():
    snap = snapshot({7: ("b", b"B" * 512)})
    log = Log()
    log.write(A, 0, b"\x01" * 1024)
    log.write(7, 0, b"\x02" * 512)
    k_sync = log.add("fsync", ino=A)
    log.write(A, 512, b"\x03" * 512)
    # before the fsync: both files still torn
    assert len(power_outcomes(snap, log, b"a")) > 1
    # right after it: a is exactly what was synced, b is not covered
    at = {s: files_of(image(snap, log, k_sync, "power", s)) for s in range(50)}
    assert {v["a"] for v in at.values()} == {b"\x01" * 1024}
    assert {v["b"] for v in at.values()} == {b"B" * 512, b"\x02" * 512}
    # a later unsynced write tears again, above what was synced
    assert power_outcomes(snap, log, b"a") == {b"\x01" * 1024, b"\x01" * 512 + b"\x03" * 512}


def test_fdatasync_counts_as_sync():
    log = Log()
    log.write(A, 0, b"\x05" * 700)
    log.add("fdatasync", ino=A)
    assert power_outcomes(snapshot(), log) == {b"\x05" * 700 + OLD[700:]}


def test_syncfs_makes_every_file_durable_and_ignores_other_devices():
    snap = snapshot({7: ("b", b"B" * 512)})
    log = Log()
    log.write(A, 0, b"\x01" * 1024)
    log.write(7, 0, b"\x02" * 512)
    log.records.append({"seq": 3, "pid": 1, "op": "syncfs", "dev": DEV + 1})
    assert len(power_outcomes(snap, log, b"b")) == 2, "syncfs of another device covers nothing"
    log.add("syncfs")
    for s in range(30):
        f = files_of(image(snap, log, mode="power", seed=s))
        assert f == {"a": b"\x01" * 1024, "b": b"\x02" * 512}


def test_power_cuts_are_deterministic_per_seed_and_point():
    log = Log()
    log.write(A, 0, bytes([9]) * 1024)
    log.write(A, 1024, bytes([8]) * 2048)
    for seed in (0, 1, 99):
        a = image(snapshot(), log, mode="power", seed=seed)
        b = image(snapshot(), log, mode="power", seed=seed)
        assert a.fingerprint() == b.fingerprint()
    assert len({image(snapshot(), log, mode="power", seed=s).fingerprint()
                for s in range(40)}) > 10


# ---- kill and namespace ----------------------------------------------------------

def test_kill_image_is_the_current_data_after_k_records():
    log = Log()
    log.write(A, 0, b"x" * 10)
    log.write(A, 10, b"y" * 10)
    assert files_of(image(snapshot(), log, 0))["a"] == OLD
    assert files_of(image(snapshot(), log, 1))["a"] == b"x" * 10 + OLD[10:]
    assert files_of(image(snapshot(), log, 2))["a"] == b"x" * 10 + b"y" * 10 + OLD[20:]


def test_renames_are_durable_without_fsync_and_exchange_swaps():
    log = Log()
    log.add("rename", olddir=ROOT, oldname="a", newdir=D, newname="moved", flags=0, ino=A,
            replaced=0)
    for mode in ("kill", "power"):
        assert set(files_of(image(snapshot(), log, mode=mode))) == {"d/moved"}
    snap = snapshot({7: ("b", b"B")})
    log = Log()
    log.add("rename", olddir=ROOT, oldname="a", newdir=ROOT, newname="b", flags=2, ino=A,
            replaced=7)
    f = files_of(image(snap, log))
    assert f == {"a": b"B", "b": OLD}
    log = Log()
    log.add("rename", olddir=ROOT, oldname="a", newdir=ROOT, newname="b", flags=0, ino=A,
            replaced=7)
    assert files_of(image(snap, log)) == {"b": OLD}, "the replaced file is gone"


def test_hard_links_share_one_inode_and_materialize_as_links(tmp_path):
    log = Log()
    log.add("link", dir=D, name="c", ino=A)
    log.write(A, 0, b"z" * 4)
    img = image(snapshot(), log)
    f = files_of(img)
    assert f["a"] == f["d/c"] == b"z" * 4 + OLD[4:]
    img.materialize(tmp_path / "img")
    assert os.stat(tmp_path / "img" / "a").st_ino == os.stat(tmp_path / "img" / "d" / "c").st_ino


def test_unlinked_inodes_vanish_and_numbers_are_reused():
    log = Log()
    log.add("unlink", dir=ROOT, name="a", ino=A, rmdir=0)
    log.write(A, 0, b"still open")              # through a held descriptor
    assert files_of(image(snapshot(), log)) == {}
    log.add("create", dir=D, name="new", ino=A, mode=0o600)
    log.write(A, 0, b"fresh")
    f = files_of(image(snapshot(), log))
    assert f == {"d/new": b"fresh"}, "a reused inode number is a new, empty file"
    assert power_outcomes(snapshot(), log, b"d/new") == {b"", bytes(5), b"fresh"}


def test_records_about_unknown_inodes_are_ignored():
    log = Log()
    log.write(999, 0, b"audit log line")
    log.add("fsync", ino=999)
    log.add("create", dir=998, name="x", ino=997, mode=0o600)
    log.add("rename", olddir=ROOT, oldname="a", newdir=996, newname="out", flags=0, ino=A,
            replaced=0)
    rp = Replayer(snapshot(), log.records)
    img = rp.image(len(log.records), "kill")
    assert files_of(img) == {}, "a file renamed out of the backing directory is gone"
    assert rp.model.ignored == 3


def test_directories_symlinks_and_modes(tmp_path):
    log = Log()
    log.add("mkdir", dir=D, name="sub", ino=10, mode=0o750)
    log.add("create", dir=10, name="f", ino=11, mode=0o640)
    log.write(11, 0, b"data")
    log.add("symlink", dir=ROOT, name="ln", ino=12, target="d/sub/f")
    log.add("chmod", ino=A, mode=0o600)
    log.add("chown", ino=A, uid=5, gid=5)
    log.add("utimes", ino=A, atime=None, mtime=None)
    img = image(snapshot(), log)
    out = tmp_path / "img"
    img.materialize(out)
    assert (out / "d" / "sub" / "f").read_bytes() == b"data"
    assert os.readlink(out / "ln") == "d/sub/f"
    assert stat.S_IMODE(os.stat(out / "a").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "d" / "sub").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(out / "d" / "sub" / "f").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(out / "d").st_mode) == 0o700


# ---- data operations ------------------------------------------------------------------

@pytest.mark.parametrize("mode,off,length,expect", [
    (0x01, 0, 5000, OLD),                                        # KEEP_SIZE: nothing seen
    (0x00, 0, 2000, OLD + bytes(976)),                           # plain: grows
    (0x00, 0, 10, OLD),                                          # plain, inside: nothing
    (0x03, 100, 200, OLD[:100] + bytes(200) + OLD[300:]),        # PUNCH_HOLE|KEEP_SIZE
    (0x03, 1000, 500, OLD[:1000] + bytes(24)),                   # punch past the end
    (0x10, 1000, 100, OLD[:1000] + bytes(100)),                  # ZERO_RANGE: grows
    (0x11, 1000, 100, OLD[:1000] + bytes(24)),                   # ZERO_RANGE|KEEP_SIZE
    (0x08, 0, 256, OLD[256:]),                                   # COLLAPSE_RANGE
    (0x20, 256, 256, OLD[:256] + bytes(256) + OLD[256:]),        # INSERT_RANGE
])
def test_fallocate_modes(mode, off, length, expect):
    log = Log()
    log.add("fallocate", ino=A, mode=mode, off=off, len=length)
    assert files_of(image(snapshot(), log))["a"] == expect


def test_writes_past_the_end_leave_a_zero_gap_and_create_truncates():
    log = Log()
    log.write(A, 2000, b"end")
    assert files_of(image(snapshot(), log))["a"] == OLD + bytes(976) + b"end"
    log.add("truncate", ino=A, size=0)
    assert files_of(image(snapshot(), log))["a"] == b""


# ---- logs, images and the CLI ------------------------------------------------------

def test_read_log_drops_a_torn_last_line_and_checks_the_order(tmp_path):
    p = tmp_path / "log"
    p.write_bytes(b'{"seq":1,"pid":1,"op":"fsync","dev":1,"ino":1}\n{"seq":2,"pi')
    assert [r["seq"] for r in crashsim.read_log(p)] == [1]
    p.write_bytes(b'{"seq":1,"pid":1,"op":"fsync","dev":1,"ino":1}\n'
                  b'{"seq":3,"pid":1,"op":"fsync","dev":1,"ino":1}\n')
    with pytest.raises(ValueError):
        crashsim.read_log(p)


def test_replay_moves_forward_only():
    log = Log()
    log.write(A, 0, b"a")
    rp = Replayer(snapshot(), log.records)
    rp.image(1, "kill")
    with pytest.raises(ValueError):
        rp.image(0, "kill")
    with pytest.raises(ValueError):
        rp.image(2, "kill")


def test_names_are_bytes(tmp_path):
    log = Log()
    log.add("create", dir=ROOT, name="caf\u00e9\u00ff\n", ino=20, mode=0o644)
    img = image(snapshot(), log)
    img.materialize(tmp_path / "img")
    assert b"caf\xe9\xff\n" in os.listdir(os.fsencode(tmp_path / "img"))


def test_cli_snapshot_then_image_of_a_real_directory(tmp_path):
    src = tmp_path / "backing"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_bytes(b"0123456789" * 100)
    os.link(src / "f", src / "sub" / "hard")
    os.symlink("f", src / "ln")
    os.chmod(src / "f", 0o640)
    tool = [sys.executable, str(REPO / "tests" / "crash" / "crashsim.py")]
    snap_path = tmp_path / "snap.json"
    subprocess.run(tool + ["snapshot", str(src), str(snap_path)], check=True)
    snap = json.loads(snap_path.read_text())
    st = os.stat(src / "f")
    log_path = tmp_path / "log"
    recs = [{"seq": 1, "pid": 9, "op": "write", "dev": st.st_dev, "ino": st.st_ino, "off": 1000,
             "data": base64.b64encode(b"tail").decode()},
            {"seq": 2, "pid": 9, "op": "rename", "dev": st.st_dev, "olddir": snap["root"],
             "oldname": "ln", "newdir": snap["root"], "newname": "ln2", "flags": 0,
             "ino": os.lstat(src / "ln").st_ino, "replaced": 0}]
    log_path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "img"
    r = subprocess.run(tool + ["image", "--snapshot", str(snap_path), "--log", str(log_path),
                               "-k", "2", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # what the two records did to the real directory, the image must show
    with open(src / "f", "r+b") as f:
        f.seek(1000)
        f.write(b"tail")
    os.rename(src / "ln", src / "ln2")
    assert crashsim.compare_trees(src, out) == []
    info = subprocess.run(tool + ["info", str(log_path)], capture_output=True, text=True)
    assert "2 records" in info.stdout and "rename" in info.stdout
