"""Progress of long admin work on a terminal, and silence elsewhere.

Owns: ekmfs-admin verify, import-plaintext and backup-manifest draw a bar
with a rate and an ETA on stderr when stderr is a terminal (a pty here),
ekmfs-rotate draws the same bar (one shared implementation), stdout
(DAMAGED lines, the manifest, --json) never gets any of it, and without a
terminal (or with EKMFS_PROGRESS=off) nothing extra appears on stderr.
"""
import json
import os
import pty
import re
import subprocess

from conftest import ADMIN, BUILD, ROTATE, SLOW

BENCHGEN = BUILD / "tools" / "rotate" / "ekmfs-rotate-benchgen"
# "verify [#####.........]  40% 1.2 MiB/3.0 MiB, 12.5 MiB/s, ETA 0s"
BAR = r"\[[#.]{30}\] +\d+% [\d.]+( [KMGT]?i?B)?/[\d.]+( [KMGT]?i?B)?( files)?, " \
      r"[\d.]+( [KMGT]?i?B)?( files)?/s, ETA \d+s"


def on_pty(argv, env=None):
    """Run argv with stderr on a terminal; (exit status, stdout, terminal text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave,
                         env=dict(os.environ, **(env or {})))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:             # EIO: the last writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = p.stdout.read().decode()
    p.stdout.close()
    rc = p.wait(timeout=120 * SLOW)
    return rc, out, b"".join(chunks).decode(errors="replace")


def piped(argv, env=None):
    r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120 * SLOW, env=dict(os.environ, **(env or {})))
    return r.returncode, r.stdout, r.stderr


def bars(term, label):
    """The progress states drawn for label (the terminal text split at \\r)."""
    return [s for s in re.split(r"[\r\n]", term.replace("\x1b[K", ""))
            if re.match(re.escape(label) + " " + BAR, s.strip())]


def filled(vol):
    r = subprocess.run([str(BENCHGEN), "-c", str(vol.config), str(vol.backing), "24",
                        "300000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return vol


def test_verify_shows_progress_on_a_terminal_only(volume):
    vol = filled(volume)
    argv = [ADMIN, "-c", vol.config, "verify", vol.backing]
    rc, out, term = on_pty(argv)
    assert rc == 0, out + term
    shown = bars(term, "verify")
    assert shown, "no progress bar on the terminal: %r" % term
    assert re.search(r"100% .* [\d.]+ [KMG]iB/s, ETA 0s$", shown[-1].strip()), shown[-1]
    # stdout has the result only
    assert out == "verify: 24 files checked, 0 damaged\n"
    # not a terminal: nothing extra
    assert piped(argv) == (0, out, "")
    # EKMFS_PROGRESS=off: nothing even on a terminal
    rc, out2, term = on_pty(argv, {"EKMFS_PROGRESS": "off"})
    assert rc == 0 and out2 == out and bars(term, "verify") == []


def test_damaged_lines_stay_whole_on_a_terminal(volume):
    vol = filled(volume)
    victim = sorted(p for p in vol.backing.rglob("*") if p.is_file()
                    and ".ekmfs" not in p.parts)[5]
    with open(victim, "r+b") as f:
        f.seek(4096)
        b = f.read(1)
        f.seek(4096)
        f.write(bytes([b[0] ^ 1]))
    rc, out, term = on_pty([ADMIN, "-c", vol.config, "verify", vol.backing])
    assert rc == 1
    lines = out.splitlines()
    assert lines[-1] == "verify: 24 files checked, 1 damaged"
    assert len(lines) == 2 and re.fullmatch(r"DAMAGED \S+: block 0: authentication failed "
                                            r"\(tampered or corrupt\)", lines[0]), out
    assert "\r" not in out and "\x1b" not in out


def test_backup_manifest_progress_never_touches_the_manifest(volume):
    vol = filled(volume)
    argv = [ADMIN, "backup-manifest", vol.backing]
    rc, out, term = on_pty(argv)
    assert rc == 0
    assert bars(term, "backup-manifest"), term
    assert "\r" not in out and "\x1b" not in out
    rc2, out2, err2 = piped(argv)
    assert rc2 == 0 and err2 == ""
    # the same manifest, whatever stderr is (the "# written" time aside)
    strip = lambda m: [l for l in m.splitlines() if not l.startswith("# written")]
    assert strip(out) == strip(out2)
    assert out.startswith("# ekmfs backup manifest 1\n")


def test_import_plaintext_progress(volume):
    vol = volume
    plain = vol.backing / "old"
    plain.mkdir()
    for i in range(12):
        (plain / ("f%02d" % i)).write_bytes(os.urandom(200000))
    rc, out, term = on_pty([ADMIN, "-c", vol.config, "import-plaintext", plain])
    assert rc == 0, out + term
    shown = bars(term, "import-plaintext")
    assert shown and "2.3 MiB/2.3 MiB" in shown[-1], shown
    assert out.splitlines()[-1] == "import-plaintext: 12 imported, 0 skipped (empty or " \
                                   "already encrypted), 0 failed"
    assert all(l.startswith("imported old/f") for l in out.splitlines()[:-1])
    # again, not on a terminal: every file is skipped (already encrypted), no bar
    rc, out, err = piped([ADMIN, "-c", vol.config, "import-plaintext", plain])
    assert rc == 0 and err == "" and "0 imported, 12 skipped" in out


def test_rotate_shares_the_bar_and_keeps_json_clean(volume):
    vol = filled(volume)
    rc, out, term = on_pty([ROTATE, "-c", vol.config, "kek", "--json", vol.backing])
    assert rc == 0, out + term
    shown = bars(term, "re-wrap pass 1")
    assert shown and " files/s, " in shown[-1], term
    doc = json.loads(out)
    assert doc["outcome"] == "done"
    # not a terminal, short run: no periodic line (every 5 s), no bar
    rc, out, err = piped([ROTATE, "-c", vol.config, "rewrap", vol.backing])
    assert rc == 0 and "[" not in err, err


def test_upgrade_shows_progress_on_a_terminal(fresh):
    """ekmfs-admin upgrade of a first-release volume (test_upgrade.py's
    fixture) draws the bar; its result lines stay on stdout."""
    from test_upgrade import FIXTURE
    import shutil

    shutil.rmtree(fresh.backing)
    shutil.copytree(FIXTURE / "backing", fresh.backing, symlinks=True)
    shutil.copy(FIXTURE / "local.key", fresh.key_file)
    os.chmod(fresh.key_file, 0o600)
    shutil.copy(FIXTURE / "audit.log", fresh.root / "audit.log")
    rc, out, term = on_pty([ADMIN, "-c", fresh.config, "upgrade", fresh.backing])
    assert rc == 0, out + term
    shown = bars(term, "upgrade")
    assert shown, "no progress bar on the terminal: %r" % term
    assert "upgrade: 7 files, 7 converted" in out and "[" not in out
