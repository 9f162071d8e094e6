"""The audit log, lock/unlock of a mounted volume, and import-plaintext.

Each test uses a volume whose config sends the audit log and the control
socket into the test's temp dir ([audit] file, [daemon] control_dir), and
checks through the real binaries: records written by init / mount /
decryption failures / lock / unlock / import, `audit verify` catching each
kind of edit, ENOKEY on open handles after `lock`, and in-place encryption of
plaintext files (including the leftover of an interrupted import).
"""
import errno
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BUILD, REPO, ROTATE, block_offset, errno_of, is_mounted, run_as, run_cli


@pytest.fixture
def avol(fresh):
    """An initialised volume with its audit log and control socket in its dir."""
    fresh.audit_log = fresh.root / "log" / "audit.log"
    fresh.run_dir = fresh.root / "run"
    fresh.write_config(
        "[daemon]\ncontrol_dir = %s\n[audit]\nfile = %s\n"
        "[tenant.default]\nkey_file = %s\n"
        % (fresh.run_dir, fresh.audit_log, fresh.key_file))
    r = fresh.init()
    assert "audit log: %s" % fresh.audit_log in r.stdout
    return fresh


def records(vol):
    return [json.loads(l) for l in vol.audit_log.read_text().splitlines()]


def events(vol):
    return [r["event"] for r in records(vol)]


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def verify(vol, *extra):
    return vol.admin("audit", "verify", *extra, vol.backing)


def test_init_mount_tamper_unmount_are_recorded(avol):
    assert events(avol) == ["volume_init"]
    first = records(avol)[0]
    assert first["seq"] == 1 and first["outcome"] == "success"
    assert first["tenant"] == "default" and first["kek_version"] == 1
    assert first["key_ref"] == "local:key-file" and first["uid"] == 0
    assert len(first["mac"]) == 64 and first["time"].endswith("Z")
    assert oct(avol.audit_log.stat().st_mode & 0o777) == "0o600"

    m = avol.mount()
    (avol.mnt / "f").write_bytes(b"x" * 10000)
    m.unmount()
    with open(avol.bpath("f"), "r+b") as f:        # flip a byte of block 1
        f.seek(block_offset(1) + 20)
        b = f.read(1)
        f.seek(block_offset(1) + 20)
        f.write(bytes([b[0] ^ 1]))
    m = avol.mount()
    with open(avol.mnt / "f", "rb") as f:
        assert f.read(4096) == b"x" * 4096
        assert errno_of(f.read) == errno.EIO
    m.unmount()

    assert events(avol) == ["volume_init", "mount", "unmount", "mount",
                            "decrypt_failed", "unmount"]
    bad = [r for r in records(avol) if r["event"] == "decrypt_failed"]
    assert bad[0]["path"] == "f" and bad[0]["details"] == {"block": 1}
    assert bad[0]["outcome"] == "failure" and len(bad[0]["file_id"]) == 32
    r = verify(avol)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 records verified" in r.stdout

    r = avol.admin("audit", "show", "--event", "decrypt_failed", "--json", avol.backing)
    assert r.returncode == 0
    assert [json.loads(l)["seq"] for l in r.stdout.splitlines()] == [5]
    r = avol.admin("audit", "show", "--since", "2000-01-01T00:00:00Z", avol.backing)
    assert len(r.stdout.splitlines()) == 6 and "volume_init" in r.stdout
    r = avol.admin("audit", "show", "--since", "2999-01-01T00:00:00Z", avol.backing)
    assert r.stdout == ""


def help_events():
    """The event names ekmfs-admin --help lists under audit show."""
    text = run_cli([BUILD / "ekmfs-admin", "--help"]).stdout
    block = text.split("one of the event names", 1)[1].split("\n  lock ", 1)[0]
    return re.findall(r"[a-z_]+(?=,|\s*$)", block.split(":", 1)[1])


def test_audit_show_knows_its_event_names(volume):
    """An unknown --event is a usage error (one line, exit 2) listing the
    known names, which are those --help lists and docs/AUDIT.md's table."""
    listed = help_events()
    assert {"volume_init", "mount", "lock", "cmk_changed", "migrate_refused"} <= set(listed)
    r = volume.admin("audit", "show", "--event", "bogus", volume.backing)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ekmfs-admin: --event bogus: no such "
                                                   "audit event"), r.stderr
    assert re.findall(r"[a-z_]+(?=,|$)", lines[0].split("are: ", 1)[1]) == listed
    # docs/AUDIT.md's table names the same events
    doc = (REPO / "docs" / "AUDIT.md").read_text()
    table = doc.split("| event | by | when |", 1)[1].split("\n\n", 1)[0]
    documented = [n for row in table.splitlines()[2:]
                  for n in re.findall(r"`([a-z_]+)`", row.split("|")[1])]
    assert sorted(documented) == sorted(listed)
    # a known event is accepted (and matches nothing on a fresh volume's log)
    r = volume.admin("audit", "show", "--event", "migrate_refused", volume.backing)
    assert r.returncode == 0 and r.stdout == "", r.stderr


def test_audit_show_since_takes_dates_and_offsets(volume, tmp_path):
    """--since takes a date (00:00 UTC) or RFC 3339 with an offset or Z and
    fractional seconds; impossible dates and zoneless times are refused."""
    log = tmp_path / "audit.log"
    times = ["2026-12-03T23:59:59Z", "2026-12-04T00:00:00Z", "2026-12-04T08:30:00Z"]
    log.write_text("".join(json.dumps({"seq": i + 1, "time": t, "event": "mount",
                                       "outcome": "success"}) + "\n"
                           for i, t in enumerate(times)))

    def shown(since):
        r = volume.admin("audit", "show", "--json", "--log", log, "--since", since,
                         volume.backing)
        assert r.returncode == 0, (since, r.stderr)
        return [json.loads(l)["seq"] for l in r.stdout.splitlines()]

    assert shown("2026-12-04") == [2, 3]
    assert shown("2026-12-03") == [1, 2, 3]
    assert shown("2026-12-04T10:00:00+02:00") == [3]           # 08:00Z
    assert shown("2026-12-04T01:00:00+01:00") == [2, 3]        # 00:00Z
    assert shown("2026-12-03T23:59:59.750-00:00") == [1, 2, 3]
    assert shown("2026-12-04T08:30:01Z") == []
    for bad, why in [("2026-02-30", "no such date"), ("2027-02-29", "no such date"),
                     ("2026-12-04T24:00:00Z", "no such date"),
                     ("2026-12-04T10:00:00", "a time needs its zone"),
                     ("yesterday", "not a date")]:
        r = volume.admin("audit", "show", "--log", log, "--since", bad, volume.backing)
        assert r.returncode == 2 and r.stdout == "", (bad, r.returncode)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "ekmfs-admin: --since %s: %s" % (bad, why)), r.stderr
    assert shown("2028-02-29") == []                          # a leap day exists


def make_records(vol, n_mounts=2):
    for _ in range(n_mounts):
        vol.mount().unmount()
    assert len(records(vol)) == 1 + 2 * n_mounts


def edit_log(vol, fn):
    lines = vol.audit_log.read_text().splitlines(keepends=True)
    vol.audit_log.write_text("".join(fn(lines)))


def swap(lines):
    lines[1], lines[2] = lines[2], lines[1]
    return lines


def change_field(lines):
    rec = lines[2].replace('"event":"unmount"', '"event":"mount"')
    assert rec != lines[2]
    return lines[:2] + [rec] + lines[3:]


def insert_copy(lines):
    return lines[:3] + [lines[2]] + lines[3:]


@pytest.mark.parametrize("kind, fn, bad_seq", [
    ("edited", change_field, 3),
    ("reordered", swap, 2),
    ("inserted", insert_copy, 4),
    ("deleted", lambda l: l[:2] + l[3:], 3),
    ("truncated", lambda l: l[:-2], 4),
])
def test_verify_catches(avol, kind, fn, bad_seq):
    make_records(avol)
    assert verify(avol).returncode == 0
    edit_log(avol, fn)
    r = verify(avol)
    assert r.returncode == 1, kind
    assert "BAD at seq %d" % bad_seq in r.stdout, r.stdout


def test_verify_needs_the_key_and_catches_head_loss(avol):
    make_records(avol, 1)
    (avol.backing / ".ekmfs" / "audit.head").unlink()
    r = verify(avol)
    assert r.returncode == 1 and "missing" in r.stdout
    # With the head gone, no writer starts a new chain silently.
    r = avol.admin("import-plaintext", avol.backing)
    assert r.returncode == 1 and "audit.head" in r.stderr


def test_rotated_log_verifies_with_its_predecessor(avol):
    make_records(avol, 1)
    old = avol.audit_log.with_name("audit.log.1")
    avol.audit_log.rename(old)
    avol.mount().unmount()
    assert verify(avol).returncode == 1
    r = verify(avol, "--log", old, "--log", avol.audit_log)
    assert r.returncode == 0 and "5 records verified" in r.stdout


def test_lock_unlock_with_open_files(avol):
    m = avol.mount()
    path = avol.mnt / "doc"
    path.write_bytes(b"secret data " * 1000)
    fd = os.open(path, os.O_RDWR)
    try:
        assert os.pread(fd, 12, 0) == b"secret data "
        r = avol.admin("lock", avol.mnt)
        assert r.returncode == 0, r.stderr
        assert "locked" in r.stdout
        # The open handle has lost its key; cached pages are gone too.
        assert errno_of(os.pread, fd, 12, 0) == errno.ENOKEY
        assert errno_of(os.pwrite, fd, b"x", 0) == errno.ENOKEY
        assert errno_of(os.open, str(path), os.O_RDONLY) == errno.ENOKEY
        assert errno_of(os.open, str(avol.mnt / "new"),
                        os.O_CREAT | os.O_WRONLY) == errno.ENOKEY
        assert avol.admin("lock", "--tenant", "nobody", avol.mnt).returncode == 1
        r = avol.admin("unlock", avol.mnt)
        assert r.returncode == 0, r.stderr
        assert path.read_bytes() == b"secret data " * 1000
        # Handles opened before the lock work again after the unlock.
        assert os.pread(fd, 12, 0) == b"secret data "
    finally:
        os.close(fd)
    sock = next(avol.run_dir.iterdir())
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    # Not root: the socket refuses.
    r = run_as(1001, 1001, lambda: subprocess.run(
        [str(BUILD / "ekmfs-admin"), "-c", str(avol.config), "lock", str(avol.mnt)],
        capture_output=True, text=True).returncode)
    assert r == 1
    m.unmount()
    assert not sock.exists()
    ev = records(avol)
    locks = [r for r in ev if r["event"] in ("lock", "unlock")]
    assert [(r["event"], r["outcome"]) for r in locks] == [
        ("lock", "success"), ("lock", "failure"), ("unlock", "success")]
    assert locks[0]["uid"] == 0 and locks[0]["pid"] > 0
    assert "nobody" in locks[1]["reason"]
    assert verify(avol).returncode == 0


def avol_config(vol, key_file):
    vol.write_config("[daemon]\ncontrol_dir = %s\n[audit]\nfile = %s\n"
                     "[tenant.default]\nkey_file = %s\n"
                     % (vol.run_dir, vol.audit_log, key_file))


def new_cmk(vol):
    """ekmfs-rotate cmk --to a fresh key file, as docs/ROTATION.md says."""
    new_key = vol.keydir / "new.key"
    new_key.write_text(run_cli([BUILD / "ekmfs-admin", "keygen"]).stdout)
    os.chmod(new_key, 0o600)
    r = run_cli([ROTATE, "-c", vol.config, "cmk", "--to", new_key, vol.backing])
    assert r.returncode == 0, r.stderr
    assert "key_file = %s" % new_key in r.stdout
    return new_key


def test_unlock_after_a_cmk_change_uses_the_new_key(avol):
    """After ekmfs-rotate cmk --to NEW (the daemon still holds the old key
    file), lock + unlock re-reads the configuration: with key_file = NEW the
    files are readable again; with the old key_file unlock says why, in
    one line without the errno token, and the tenant stays locked."""
    m = avol.mount()
    (avol.mnt / "doc").write_bytes(b"before the CMK change " * 500)
    new_key = new_cmk(avol)
    assert avol.admin("lock", avol.mnt).returncode == 0
    # the configuration still names the old key: refused, still locked
    r = avol.admin("unlock", avol.mnt)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("ekmfs-admin: %s: key file %s is not the key of tenant "
                               "'default'" % (avol.mnt, avol.key_file)), lines[0]
    assert lines[0].endswith("- still locked (the configuration file was re-read)")
    assert "EKEYREJECTED" not in r.stderr
    assert errno_of(open, avol.mnt / "doc", "rb") == errno.ENOKEY
    # the configuration names the new key, as the cmk output says: unlocked
    avol_config(avol, new_key)
    r = avol.admin("unlock", avol.mnt)
    assert r.returncode == 0, r.stderr
    assert "the configuration was re-read" in r.stdout
    assert (avol.mnt / "doc").read_bytes() == b"before the CMK change " * 500
    (avol.mnt / "after").write_bytes(b"new file")
    assert "tenant 'default': provider settings changed; now in use" in m.log()
    m.unmount()
    # the volume opens with the new key alone
    m = avol.mount()
    assert (avol.mnt / "after").read_bytes() == b"new file"
    m.unmount()


def test_sighup_applies_a_new_key_file_that_opens_the_keyring(avol):
    """A reload takes a changed key_file once it opens the keyring (after
    ekmfs-rotate cmk), and refuses one that does not (before it)."""
    m = avol.mount()
    (avol.mnt / "doc").write_bytes(b"x" * 9000)
    other = avol.keydir / "other.key"
    other.write_text(run_cli([BUILD / "ekmfs-admin", "keygen"]).stdout)
    os.chmod(other, 0o600)
    avol_config(avol, other)                  # not (yet) the keyring's key
    m.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload refused" in m.log())
    assert "the changed provider settings cannot unwrap its KEK v1" in m.log()
    avol_config(avol, avol.key_file)
    new_key = new_cmk(avol)
    avol_config(avol, new_key)
    m.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "provider settings changed; now in use" in m.log())
    assert avol.admin("lock", avol.mnt).returncode == 0
    r = avol.admin("unlock", avol.mnt)
    assert r.returncode == 0 and "re-read" not in r.stdout, r.stdout + r.stderr
    assert (avol.mnt / "doc").read_bytes() == b"x" * 9000
    m.unmount()


def test_import_plaintext(avol):
    plain = avol.backing / "sub" / "old.txt"
    plain.parent.mkdir()
    data = os.urandom(10000)
    plain.write_bytes(data)
    os.chown(plain, 1001, 1002)
    os.chmod(plain, 0o640)
    os.setxattr(plain, "user.tag", b"kept")
    os.utime(plain, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    r = avol.admin("verify", avol.backing)
    assert r.returncode == 1 and "import-plaintext" in r.stdout

    r = avol.admin("import-plaintext", plain)
    assert r.returncode == 0, r.stderr
    assert "1 imported" in r.stdout
    st = plain.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1001, 1002, 0o640)
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    assert os.getxattr(plain, "user.tag") == b"kept"
    assert plain.read_bytes()[:4] == b"EKMF"
    assert avol.admin("verify", avol.backing).returncode == 0
    # Never twice.
    r = avol.admin("import-plaintext", plain)
    assert r.returncode == 1 and "already has an ekmfs header" in r.stderr

    m = avol.mount()
    assert (avol.mnt / "sub" / "old.txt").read_bytes() == data
    m.unmount()
    imp = [r for r in records(avol) if r["event"] == "import_plaintext"]
    assert len(imp) == 1 and imp[0]["path"] == "sub/old.txt"
    assert verify(avol).returncode == 0


def test_import_leftover_temp_is_harmless_and_cleaned(avol):
    """A crash before the rename leaves the plaintext original untouched and
    a temporary file; verify names it, and the next import removes it."""
    plain = avol.backing / "a.bin"
    plain.write_bytes(b"plain " * 3000)
    leftover = avol.backing / ".ekmfs-import.a.bin"
    leftover.write_bytes(b"EKMF" + b"\0" * 500)      # a torn encrypted copy
    r = avol.admin("verify", avol.backing)
    assert r.returncode == 1 and "interrupted import-plaintext" in r.stdout
    r = avol.admin("import-plaintext", avol.backing)      # the whole tree
    assert r.returncode == 0, r.stderr
    assert "removed .ekmfs-import.a.bin" in r.stderr
    assert not leftover.exists()
    assert avol.admin("verify", avol.backing).returncode == 0
    m = avol.mount()
    assert (avol.mnt / "a.bin").read_bytes() == b"plain " * 3000
    m.unmount()


@pytest.mark.skipif(not os.access(ROTATE, os.X_OK), reason="no ekmfs-rotate")
def test_audit_key_survives_cmk_change(avol):
    new_key = avol.keydir / "new.key"
    new_key.write_text(run_cli([BUILD / "ekmfs-admin", "keygen"]).stdout)
    os.chmod(new_key, 0o600)
    r = run_cli([ROTATE, "-c", avol.config, "cmk", "--force", "--to", new_key,
                 avol.backing])
    assert r.returncode == 0, r.stdout + r.stderr
    avol.write_config(avol.config.read_text().replace(str(avol.key_file), str(new_key)))
    r = verify(avol)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((avol.backing / ".ekmfs" / "audit.key.json").read_text())
    assert len(doc["wraps"]) == 1


def test_audit_config_errors(fresh):
    fresh.write_config("[audit]\nfile = relative.log\n")
    r = fresh.admin("init", fresh.backing)
    assert r.returncode == 1 and "must be an absolute path" in r.stderr
    fresh.write_config("[audit]\nsyslog = maybe\n")
    r = fresh.admin("init", fresh.backing)
    assert r.returncode == 1 and "syslog" in r.stderr
    fresh.write_config("[audit]\nfiles = /x\n")
    r = fresh.admin("init", fresh.backing)
    assert r.returncode == 1 and "unknown key 'files'" in r.stderr


# ---- the trail fails closed ---------------------------------------------------

def refused_mount(vol):
    """ekmfs in the foreground: must exit 1 with one line, nothing mounted."""
    r = subprocess.run([str(BUILD / "ekmfs"), "-c", str(vol.config), "-f",
                        str(vol.backing), str(vol.mnt)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    assert not is_mounted(vol.mnt)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ekmfs: "), r.stderr
    assert lines[0].endswith("; not mounted (docs/AUDIT.md: [audit] enabled = false "
                             "mounts without an audit log)"), r.stderr
    return lines[0]


def test_mount_refused_when_the_audit_key_is_corrupt(avol):
    make_records(avol, 1)
    key = avol.backing / ".ekmfs" / "audit.key.json"
    doc = json.loads(key.read_text())
    w = bytearray(doc["wraps"][0]["wrapped"], "ascii")
    w[10] = ord("A") if w[10] != ord("A") else ord("B")
    doc["wraps"][0]["wrapped"] = w.decode()
    key.write_text(json.dumps(doc))
    n = len(records(avol))
    line = refused_mount(avol)
    assert "audit" in line or "authent" in line, line
    assert len(records(avol)) == n
    # Deleted: no second chain is started (the head and the log remain).
    key.unlink()
    assert "audit key .ekmfs/audit.key.json is missing" in refused_mount(avol)
    assert not key.exists()


def test_mount_refused_when_the_head_is_deleted_or_rolled_back(avol):
    make_records(avol, 1)
    head = avol.backing / ".ekmfs" / "audit.head"
    old = head.read_bytes()
    avol.mount().unmount()
    now = head.read_bytes()
    head.write_bytes(old)                       # two records back
    line = refused_mount(avol)
    assert "rolled back" in line, line
    head.unlink()
    assert "audit.head is missing" in refused_mount(avol)
    head.write_bytes(now)
    avol.mount().unmount()                      # the real head: mounts
    assert verify(avol).returncode == 0


def test_records_cut_from_the_log_refuse_the_mount(avol):
    make_records(avol, 2)
    edit_log(avol, lambda l: l[:-2])
    assert "cut from the log" in refused_mount(avol)


def test_audit_off_is_marked_and_recorded_when_back_on(avol):
    make_records(avol, 1)
    cfg = avol.config.read_text()
    avol.write_config(cfg.replace("[audit]\n", "[audit]\nenabled = false\n"))
    n = len(records(avol))
    m = avol.mount()
    (avol.mnt / "f").write_bytes(b"x")
    m.unmount()
    assert len(records(avol)) == n              # nothing recorded while off
    mark = avol.backing / ".ekmfs" / "audit.off"
    assert mark.read_text().startswith("since ")
    avol.write_config(cfg)
    avol.mount().unmount()
    recs = records(avol)
    assert [r["event"] for r in recs[n:]] == ["audit_resumed", "mount", "unmount"]
    assert recs[n]["reason"].startswith("the audit log was off: since ")
    assert not mark.exists()
    assert verify(avol).returncode == 0
