"""Backups of the ciphertext (docs/BACKUP.md): tar and rsync of a mounted
volume under a write load, restore into a fresh directory on a "new host"
(fresh mountpoint, the key file at another path), files caught mid-write,
the keyless backup manifest, and restore after a KEK rotation.

Divisions: helpers (volumes for restores, the write load) / the manifest /
live backup with tar and rsync / files caught mid-write / after a rotation.
"""
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (BLOCK, BUILD, CBLOCK, HEADER_SIZE, ROTATE, SLOW, Volume, block_offset,
                      drop_caches, make_root, run_cli, wait_sealed)


# ---- helpers ---------------------------------------------------------------------

@pytest.fixture
def new_host(volume):
    """A second volume layout standing for another machine: empty backing
    dir, fresh mountpoint, and a copy of the CMK (key file) at another path,
    named by its own configuration."""
    vol = Volume(make_root())
    shutil.copy(volume.key_file, vol.key_file)
    os.chmod(vol.key_file, 0o600)
    yield vol
    vol.cleanup()
    shutil.rmtree(vol.root, ignore_errors=True)


def damaged(r):
    """Paths `ekmfs-admin verify` names as damaged."""
    return {m.group(1) for m in re.finditer(r"^DAMAGED (.+?): ", r.stdout, re.M)}


def midwrite(r):
    """Paths `ekmfs-admin verify` names as caught mid-write (a mount of the
    copy settles them as after a crash)."""
    return {m.group(1) for m in re.finditer(r"^MIDWRITE (.+?): ", r.stdout, re.M)}


def populate_stable(mnt):
    """Files, a directory, a symlink and an empty file; returns name -> bytes."""
    files = {}
    (mnt / "dir" / "sub").mkdir(parents=True)
    for i, size in enumerate([1, 100, BLOCK, BLOCK + 1, 5 * BLOCK - 7, 70000, 0] * 4):
        name = ("dir/sub/s%02d" if i % 3 == 0 else "s%02d") % i
        data = os.urandom(size)
        (mnt / name).write_bytes(data)
        files[name] = data
    os.symlink("s01", mnt / "link")
    return files


def record(name, k):
    return (("%s-%08d|" % (name, k)).encode() * BLOCK)[:BLOCK]


def version_block(name, v, i):
    return (("%s-v%08d-b%02d|" % (name, v, i)).encode() * BLOCK)[:BLOCK]


REWRITE_BLOCKS = 8


class WriteLoad:
    """Appenders (whole 4 KiB records) and in-place rewriters (a whole new
    version of an 8-block file) running on their own files until stopped."""

    def __init__(self, mnt, n_append=2, n_rewrite=2):
        self.mnt = mnt
        self.append_names = ["hot/append%d" % i for i in range(n_append)]
        self.rewrite_names = ["hot/rewrite%d" % i for i in range(n_rewrite)]
        self.stop = threading.Event()
        self.errors = []
        self.versions = {}
        self.writes = 0           # completed writes, to prove the copy overlapped them
        (mnt / "hot").mkdir()
        for n in self.rewrite_names:
            self.rewrite(n, 0)
        for n in self.append_names:
            (mnt / n).write_bytes(record(n, 0))
        self.threads = [threading.Thread(target=self.appender, args=(n,))
                        for n in self.append_names]
        self.threads += [threading.Thread(target=self.rewriter, args=(n,))
                         for n in self.rewrite_names]

    @property
    def names(self):
        return set(self.append_names + self.rewrite_names)

    def rewrite(self, name, v):
        data = b"".join(version_block(name, v, i) for i in range(REWRITE_BLOCKS))
        fd = os.open(self.mnt / name, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.versions[name] = v

    def appender(self, name):
        k = 1
        try:
            with open(self.mnt / name, "ab") as f:
                while not self.stop.is_set():
                    f.write(record(name, k))
                    f.flush()
                    os.fsync(f.fileno())
                    k += 1
                    self.writes += 1
        except OSError as e:
            self.errors.append(repr(e))

    def rewriter(self, name):
        v = 1
        try:
            while not self.stop.is_set():
                self.rewrite(name, v)
                v += 1
                self.writes += 1
        except OSError as e:
            self.errors.append(repr(e))

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        assert not self.errors, self.errors

    def check_copy(self, name, data):
        """A copy of a hot file that verify passed: every block is one that was
        really written (no garbage, no torn block), in a consistent place."""
        assert len(data) % BLOCK == 0, "%s: %d bytes" % (name, len(data))
        blocks = [data[i:i + BLOCK] for i in range(0, len(data), BLOCK)]
        if name in self.append_names:
            assert blocks == [record(name, k) for k in range(len(blocks))], name
        else:
            assert len(blocks) == REWRITE_BLOCKS, name
            top = self.versions[name]
            for i, b in enumerate(blocks):
                m = re.match(rb"%s-v(\d{8})-b(\d\d)\|" % re.escape(name.encode()), b)
                assert m and int(m.group(2)) == i and int(m.group(1)) <= top, (name, i)
                assert b == version_block(name, int(m.group(1)), i)


# ---- the manifest --------------------------------------------------------------------

def test_backup_manifest_and_check(mounted, tmp_path):
    vol = mounted
    files = populate_stable(vol.mnt)
    secret = b"PLAINTEXT-MARKER-" * 10
    (vol.mnt / "secret.txt").write_bytes(secret)
    manifest = tmp_path / "vol.manifest"
    # No key needed: run it with a configuration whose key file is absent.
    r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", "-o", manifest, vol.backing])
    assert r.returncode == 0, r.stderr
    text = manifest.read_text()
    assert text.startswith("# ekmfs backup manifest 1\n")
    assert b"PLAINTEXT-MARKER" not in manifest.read_bytes()
    rows = {l.split("\t")[-1]: l.split("\t") for l in text.splitlines()
            if not l.startswith("#")}
    assert {".", ".ekmfs", ".ekmfs/keyring.json", ".ekmfs/volume.json", "link",
            "dir", "secret.txt"} <= set(rows)
    assert ".ekmfs/lock" not in rows
    assert set(files) <= set(rows)
    typ, mode, owner, size, sha, fid, key, _ = rows["secret.txt"]
    assert typ == "f" and key == "default:v1" and re.fullmatch(r"[0-9a-f]{32}", fid)
    assert int(size) == (vol.backing / "secret.txt").stat().st_size
    assert rows["link"][0] == "l" and rows["dir"][0] == "d"

    copy = tmp_path / "copy"
    assert subprocess.run(["cp", "-a", str(vol.backing), str(copy)]).returncode == 0
    r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", "--check", manifest, copy])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("check: %d match, 0 missing, 0 differ, 0 extra"
                                     % len(rows))
    # Damage the copy four ways: each is named.
    with open(copy / "s01", "r+b") as f:
        f.seek(300)
        b = f.read(1)
        f.seek(300)
        f.write(bytes([b[0] ^ 0x80]))
    (copy / "s04").unlink()
    (copy / "stray").write_bytes(b"x")
    os.chmod(copy / "dir", 0o700)
    r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", "--check", manifest, copy])
    assert r.returncode == 1
    assert "DIFFERS s01: content (sha256)" in r.stdout
    assert "MISSING s04" in r.stdout and "EXTRA stray" in r.stdout
    assert "DIFFERS dir: mode" in r.stdout
    assert "1 missing, 2 differ, 1 extra" in r.stdout
    bad = tmp_path / "bad.manifest"
    bad.write_text("not a manifest\n")
    r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", "--check", bad, copy])
    assert r.returncode == 1 and "not an ekmfs backup manifest" in r.stderr


# ---- live backup with tar and rsync --------------------------------------------------

def copy_backing(tool, src, dest, tmp_path):
    """Back up src with tar or rsync; returns a function restoring into a dir."""
    if tool == "tar":
        archive = tmp_path / "backup.tar"
        r = subprocess.run(["tar", "-C", str(src), "--numeric-owner", "--xattrs", "-cpf",
                            str(archive), "."], capture_output=True, text=True)
        # 1: "file changed as we read it" - expected under a write load.
        assert r.returncode in (0, 1), r.stderr

        def restore(into):
            r = subprocess.run(["tar", "-C", str(into), "--numeric-owner", "--xattrs",
                                "-xpf", str(archive)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        return restore
    if not shutil.which("rsync"):
        pytest.skip("rsync is not installed (tools/install-deps.sh installs it)")
    r = subprocess.run(["rsync", "-aHAX", "--numeric-ids", "%s/" % src, "%s/" % dest],
                       capture_output=True, text=True)
    # 24: "some files vanished" - journals of files being rewritten come and
    # go under a write load (docs/BACKUP.md); nothing else may vanish.
    vanished = re.findall(r'file has vanished: "([^"]*)"', r.stderr)
    assert r.returncode == 0 or (r.returncode == 24 and vanished and all(
        "/.ekmfs/journal/" in v for v in vanished)), r.stderr

    def restore(into):
        r = subprocess.run(["rsync", "-aHAX", "--numeric-ids", "%s/" % dest, "%s/" % into],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return restore


@pytest.mark.parametrize("tool", ["tar", "rsync"])
def test_live_backup_restores_on_new_host(tool, mounted, new_host, tmp_path):
    vol = mounted
    stable = populate_stable(vol.mnt)
    os.sync()
    wait_sealed(vol.backing)
    before = {n: (vol.backing / n).read_bytes() for n in stable}
    load = WriteLoad(vol.mnt)
    load.start()
    try:
        time.sleep(0.3 * SLOW)
        writes_before = load.writes
        restore = copy_backing(tool, vol.backing, tmp_path / "backup", tmp_path)
        writes_during = load.writes - writes_before
    finally:
        load.finish()
    assert writes_during > 0, "the copy did not overlap any write"
    # The stable files were not written during the copy.
    assert {n: (vol.backing / n).read_bytes() for n in stable} == before

    # Restore on the "new host": fresh dir, fresh mountpoint, key at another path.
    restore(new_host.backing)
    if tool == "rsync":
        manifest = tmp_path / "backup.manifest"
        r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", "-o", manifest,
                     tmp_path / "backup"])
        assert r.returncode == 0, r.stderr
        r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", "--check", manifest,
                     new_host.backing])
        assert r.returncode == 0, r.stdout
    r = new_host.admin("verify", new_host.backing)
    flagged = damaged(r)
    assert flagged | midwrite(r) <= load.names, \
        "verify flagged files not written during the copy: %s" % (flagged - load.names)
    assert (r.returncode == 0) == (not flagged), r.stdout + r.stderr

    new_host.mount()
    for name, data in stable.items():
        assert (new_host.mnt / name).read_bytes() == data, name
    assert os.readlink(new_host.mnt / "link") == "s01"
    for name in load.names - flagged:
        load.check_copy(name, (new_host.mnt / name).read_bytes())
    for name in flagged:
        with pytest.raises(OSError):
            (new_host.mnt / name).read_bytes()
    new_host.mounts[-1].unmount()


# ---- files caught mid-write -----------------------------------------------------------

def test_verify_names_a_file_copied_mid_write(mounted, tmp_path):
    """Constructed: what a copier sees when the daemon rewrites block 1
    between the copier's reads of its two halves, and a copy cut inside a
    block (a file growing while it was copied). The two versions of the
    file are taken at rest (unmounted): a rewrite of durable data reaches
    the file itself when the journal is folded in at close."""
    vol = mounted
    victim = vol.mnt / "victim"
    victim.write_bytes(os.urandom(3 * BLOCK))
    (vol.mnt / "grower").write_bytes(os.urandom(3 * BLOCK))
    (vol.mnt / "bystander").write_bytes(b"calm" * 3000)
    vol.mounts[-1].unmount()
    old = (vol.backing / "victim").read_bytes()
    vol.mount()
    fd = os.open(victim, os.O_WRONLY)
    try:
        os.pwrite(fd, os.urandom(BLOCK), BLOCK)
        os.fsync(fd)
    finally:
        os.close(fd)
    vol.mounts[-1].unmount()
    new = (vol.backing / "victim").read_bytes()
    mid = block_offset(1) + CBLOCK // 2
    assert old[:512] == new[:512]             # sector 0: the key slots
    assert old[HEADER_SIZE:block_offset(1)] == new[HEADER_SIZE:block_offset(1)]
    assert old[mid:block_offset(2)] != new[mid:block_offset(2)]

    copy = tmp_path / "copy"
    shutil.copytree(vol.backing, copy, symlinks=True)
    (copy / "victim").write_bytes(old[:mid] + new[mid:])
    grower = (vol.backing / "grower").read_bytes()
    (copy / "grower").write_bytes(grower[:block_offset(2) + 100])
    r = vol.admin("verify", copy)
    assert r.returncode == 1
    assert damaged(r) == {"victim", "grower"}, r.stdout
    assert re.search(r"^DAMAGED victim: block 1: authentication failed", r.stdout, re.M)


def test_verify_names_a_file_torn_by_a_live_copy(mounted, tmp_path):
    """Forced with the real daemon: copy a file in small pieces while a
    writer keeps rewriting it, so the copy straddles the daemon's writes."""
    vol = mounted
    path = vol.mnt / "busy"
    path.write_bytes(b"\0" * (4 * BLOCK))
    stop = threading.Event()

    def writer():
        # A bot saving its state: the whole file replaced in place (O_TRUNC
        # gives it a new file id and DEK) and synced, again and again.
        while not stop.is_set():
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, os.urandom(4 * BLOCK))
                os.fsync(fd)
            finally:
                os.close(fd)

    t = threading.Thread(target=writer)
    t.start()
    flagged = set()
    try:
        for attempt in range(5):
            copy = tmp_path / ("copy%d" % attempt)
            shutil.copytree(vol.backing, copy, symlinks=True)
            with open(vol.backing / "busy", "rb") as src, open(copy / "busy", "wb") as dst:
                while True:
                    piece = src.read(1000)
                    if not piece:
                        break
                    dst.write(piece)
                    time.sleep(0.002)
            r = vol.admin("verify", copy)
            flagged = damaged(r) | midwrite(r)
            if flagged:
                break
    finally:
        stop.set()
        t.join()
    assert flagged == {"busy"}, "five copies made during rewrites all verified clean: " + r.stdout + r.stderr
    assert re.search(r"authentication failed|cut short|impossible|mid-write", r.stdout), r.stdout


# ---- after a rotation ------------------------------------------------------------------

def test_restore_after_kek_rotation_from_older_backup(mounted, new_host, tmp_path):
    if not ROTATE.exists():
        pytest.skip("ekmfs-rotate is not in this build (%s): cannot rotate" % ROTATE)
    vol = mounted
    files = populate_stable(vol.mnt)
    os.sync()
    archive = tmp_path / "before.tar"
    r = subprocess.run(["tar", "-C", str(vol.backing), "--numeric-owner", "-cpf",
                        str(archive), "."], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    # Rotate the live volume and destroy the KEK the backup's files use.
    for args in (["kek"], ["retire", "--version", "1", "--destroy"]):
        r = run_cli([ROTATE, "-c", vol.config, "-q"] + args + [vol.backing], timeout=120)
        assert r.returncode == 0, r.stderr
    r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", vol.backing])
    assert "default:v1" not in r.stdout and "default:v2" in r.stdout
    vol.mounts[-1].unmount()

    subprocess.run(["tar", "-C", str(new_host.backing), "--numeric-owner", "-xpf",
                    str(archive)], check=True)
    r = run_cli([BUILD / "ekmfs-admin", "backup-manifest", new_host.backing])
    assert "default:v1" in r.stdout and "default:v2" not in r.stdout
    r = new_host.admin("verify", new_host.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    new_host.mount()
    drop_caches()
    for name, data in files.items():
        assert (new_host.mnt / name).read_bytes() == data, name
    new_host.mounts[-1].unmount()

    # It is the backup's own keyring that restores: with the live one (v1
    # destroyed) the same files cannot be opened.
    shutil.copy(vol.backing / ".ekmfs" / "keyring.json",
                new_host.backing / ".ekmfs" / "keyring.json")
    r = new_host.admin("verify", new_host.backing)
    assert r.returncode == 1 and "destroyed" in r.stdout
