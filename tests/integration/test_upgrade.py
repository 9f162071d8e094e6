"""A volume of the first release (format version 1) under the current programs.

Owns: reading version 1 files through a mount, converting a file at its
first change (and only that file), `ekmfs-admin upgrade` (refused while
mounted or before a recovery; converts every file keeping content, size,
mtime and inode; marks volume.json version 2; idempotent; names a damaged
file and leaves the volume version 1), and an upgrade killed at every
point of its recorded run (the crash simulator) finishing on the next run
or mount with every file intact.

The volume is tests/fixtures/v1-volume/, made by the first release's own
programs (tests/fixtures/make_v1_volume.sh).

Divisions: helpers / reading and converting on change / ekmfs-admin upgrade
/ damage / crash points.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ADMIN, BUILD, SLOW, drop_caches, run_cli
from ondisk import slots

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "v1-volume"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


# ---- helpers --------------------------------------------------------------------


@pytest.fixture
def v1(fresh):
    """The fixture volume copied into a fresh test volume (not mounted)."""
    shutil.rmtree(fresh.backing)
    shutil.copytree(FIXTURE / "backing", fresh.backing, symlinks=True)
    shutil.copy(FIXTURE / "local.key", fresh.key_file)
    os.chmod(fresh.key_file, 0o600)
    shutil.copy(FIXTURE / "audit.log", fresh.root / "audit.log")
    os.chmod(fresh.root / "audit.log", 0o600)
    return fresh


def header_version(path):
    with open(path, "rb") as f:
        head = f.read(6)
    return int.from_bytes(head[4:6], "little") if len(head) == 6 else None


def volume_version(vol):
    return json.loads((vol.backing / ".ekmfs" / "volume.json").read_text())["version"]


def regular_files():
    return sorted(rel for rel, e in EXPECTED.items() if "sha256" in e)


def check_all(mnt):
    for rel, e in EXPECTED.items():
        p = mnt / rel
        if "symlink" in e:
            assert os.readlink(p) == e["symlink"], rel
            continue
        data = p.read_bytes()
        assert os.stat(p).st_size == e["size"], rel
        assert len(data) == e["size"] and hashlib.sha256(data).hexdigest() == e["sha256"], rel


def backing_state(vol):
    """inode, mtime and header version of every regular backing file."""
    out = {}
    for rel in regular_files():
        st = os.stat(vol.bpath(rel))
        out[rel] = (st.st_ino, st.st_mtime_ns, header_version(vol.bpath(rel)))
    return out


def upgrade(vol):
    return vol.admin("upgrade", vol.backing)


# ---- reading and converting on change ----------------------------------------------


def test_v1_volume_reads_and_converts_a_file_at_its_first_change(v1):
    before = backing_state(v1)
    assert {v for (_, _, v) in before.values()} == {1}
    m = v1.mount()
    check_all(v1.mnt)
    m.unmount()
    # reading changes nothing
    assert backing_state(v1) == before
    m = v1.mount()
    with open(v1.mnt / "multi.bin", "r+b") as f:
        f.seek(5000)
        f.write(b"CHANGED")
    m.unmount()
    after = backing_state(v1)
    assert after["multi.bin"][2] == 2 and after["multi.bin"][0] == before["multi.bin"][0]
    assert {rel: s for rel, s in after.items() if rel != "multi.bin"} == \
        {rel: s for rel, s in before.items() if rel != "multi.bin"}
    assert volume_version(v1) == 1
    assert not list((v1.backing / ".ekmfs" / "journal").iterdir())
    r = v1.admin("verify", v1.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    m = v1.mount()
    data = (v1.mnt / "multi.bin").read_bytes()
    assert data[5000:5007] == b"CHANGED" and len(data) == 100000
    m.unmount()


def test_v1_keyring_is_sealed_by_its_first_writer_while_mounted(v1):
    """ekmfs 1's keyring has no MAC (docs/FORMAT.md "Keyring MAC"). A v1
    volume mounted by the daemon and rotated by ekmfs-rotate: rotate seals
    the keyring with the MAC key it made; the daemon, holding a key it made
    itself, takes the stored one at its next re-read and keeps following
    changes; the sealed keyring then authenticates everywhere."""
    kr_path = v1.backing / ".ekmfs" / "keyring.json"
    assert "mac" not in json.loads(kr_path.read_text())
    m = v1.mount()
    assert "has no MAC (made by ekmfs 1)" in m.log()
    r = run_cli([BUILD / "ekmfs-rotate", "-c", v1.config, "kek", v1.backing], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    kr = json.loads(kr_path.read_text())
    assert "mac" in kr and "mac_key" in kr
    (v1.mnt / "after-rotation").write_bytes(b"new file")
    m.unmount()
    assert "keeping the keyring in memory" not in m.log(), m.log()[-2000:]
    assert [v for seq, _, v, _ in slots(v1.backing / "after-rotation") if seq] == \
        [kr["tenants"][0]["current_version"]]
    r = v1.admin("verify", "--keys", v1.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    m = v1.mount()
    assert (v1.mnt / "after-rotation").read_bytes() == b"new file"
    check_all(v1.mnt)
    m.unmount()
    assert "has no MAC" not in m.log()


# ---- ekmfs-admin upgrade --------------------------------------------------------------


def test_upgrade_converts_every_file_and_marks_the_volume(v1):
    before = backing_state(v1)
    m = v1.mount()
    r = upgrade(v1)
    assert r.returncode == 1
    assert "in use" in r.stderr and "unmount it first" in r.stderr, r.stderr
    assert backing_state(v1) == before
    m.unmount()

    r = upgrade(v1)
    assert r.returncode == 0, r.stdout + r.stderr
    files = len(regular_files())
    # every regular file has a version 1 header (an empty one too)
    assert "upgrade: %d files, %d converted" % (files, files) in r.stdout, r.stdout
    after = backing_state(v1)
    for rel in regular_files():
        ino, mtime, _ = before[rel]
        assert after[rel] == (ino, mtime, 2), rel
    assert volume_version(v1) == 2
    assert not list((v1.backing / ".ekmfs" / "journal").iterdir())
    r = v1.admin("verify", v1.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    r = v1.admin("audit", "verify", v1.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    r = v1.admin("audit", "show", "--event", "upgrade_finish", v1.backing)
    assert '"converted"' in r.stdout or "converted" in r.stdout, r.stdout
    m = v1.mount()
    check_all(v1.mnt)
    m.unmount()
    # again: nothing to do
    r = upgrade(v1)
    assert r.returncode == 0 and "already version 2" in r.stdout, r.stdout


def test_upgrade_refuses_a_volume_awaiting_recovery(v1):
    m = v1.mount()
    m.kill()                 # the daemon dies with the volume mounted
    r = upgrade(v1)
    assert r.returncode == 1
    assert "not unmounted cleanly" in r.stderr and "mount it once" in r.stderr, r.stderr
    m = v1.mount()           # recovers
    m.unmount()
    r = upgrade(v1)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- damage ---------------------------------------------------------------------------


def test_upgrade_names_a_damaged_file_and_keeps_the_volume_at_version_1(v1):
    bad = v1.bpath("multi.bin")
    raw = bytearray(bad.read_bytes())
    raw[256 + 2 * 4124 + 100] ^= 1           # block 2 of the version 1 file
    bad.write_bytes(bytes(raw))
    r = upgrade(v1)
    assert r.returncode == 1
    assert "FAILED multi.bin:" in r.stdout and "block 2" in r.stdout, r.stdout
    assert "stays version 1" in r.stdout
    assert volume_version(v1) == 1
    assert bad.read_bytes() == bytes(raw), "a file that failed to convert was changed"
    assert header_version(v1.bpath("small.txt")) == 2
    m = v1.mount()
    assert (v1.mnt / "small.txt").read_bytes() == b"hello, version 1\n"
    with pytest.raises(OSError):
        (v1.mnt / "multi.bin").read_bytes()
    m.unmount()


# ---- crash points ---------------------------------------------------------------------


def fault_build():
    fb = Path(os.environ.get("EKMFS_FAULT_BUILD", BUILD.parent / "build-fault"))
    if (fb / "ekmfs-admin").exists() and \
            b"EKMFS_CRASH_LOG" in (fb / "ekmfs-admin").read_bytes():
        return fb
    if b"EKMFS_CRASH_LOG" in Path(ADMIN).read_bytes():
        return Path(ADMIN).parent
    return None


@pytest.mark.hang_timeout(600)
def test_upgrade_survives_a_crash_at_every_point(v1, tmp_path):
    """ekmfs-admin upgrade recorded by the crash simulator; at every kill
    point and at power cuts, the image converts on the next upgrade and
    every file reads as before."""
    fb = fault_build()
    if not fb:
        pytest.skip("needs a -Dfault_injection=true build (build-fault/)")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "crash"))
    import crashsim

    os.sync()
    snap = crashsim.take_snapshot(v1.backing)
    log = tmp_path / "crash.log"
    env = dict(os.environ, EKMFS_CRASH_LOG=str(log))
    r = subprocess.run([fb / "ekmfs-admin", "-c", v1.config, "upgrade", v1.backing],
                       env=env, capture_output=True, text=True, timeout=120 * SLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    records = crashsim.read_log(log)
    assert len(records) > 20, "the upgrade recorded almost nothing"
    rng = random.Random(7)
    points = [(k, "kill", 0) for k in range(len(records) + 1)]
    points += [(rng.randrange(len(records) + 1), "power", rng.randrange(1 << 30))
               for _ in range(40)]
    points.sort()
    rep = crashsim.Replayer(snap, records)
    failures = []
    for k, mode, seed in points:
        shutil.rmtree(v1.backing)
        rep.image(k, mode, seed).materialize(v1.backing)
        # The audit log lives outside BACKING and is not part of the image:
        # the run's log holds records past this image's chain head, which
        # every writer rightly refuses as a rolled-back head (AUDIT.md). Each
        # image starts a fresh log, as after a log rotation.
        (v1.root / "audit.log").write_bytes(b"")
        r = upgrade(v1)
        why = None
        if r.returncode != 0:
            why = "upgrade after the crash failed: " + (r.stdout + r.stderr)[-400:]
        elif volume_version(v1) != 2:
            why = "volume.json not version 2"
        else:
            m = v1.mount()
            try:
                check_all(v1.mnt)
            except (AssertionError, OSError) as e:
                why = "content: %r" % (e,)
            m.unmount()
        if why:
            failures.append("k=%d %s seed=%d: %s" % (k, mode, seed, why))
            if len(failures) >= 5:
                break
    print("upgrade crash points: %d checked (%d records)" % (len(points), len(records)))
    assert not failures, "\n".join(failures)
