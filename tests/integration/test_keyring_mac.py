"""The Keyring MAC through the real tools (docs/FORMAT.md "Keyring MAC"):
every field of keyring.json and volume.json edited by someone without the
CMK - timestamps, counters, ids, states, wrapped keys, fingerprints,
references, names - records deleted, duplicated, reordered and added, and
another volume's keyring swapped in: the daemon refuses to mount with one
line, `ekmfs-admin verify` and `ekmfs-rotate` refuse too, and once the
files are put back everything opens again. Plus: the MAC matches the
independent Python implementation, a running daemon refuses a rolled-back
keyring, and `verify --keys` finds a retired KEK that no longer opens."""
import base64
import copy
import json
import shutil
import signal
import subprocess
import time

import pytest

import keyring_mac
from conftest import BUILD, Volume, is_mounted, make_root
from ondisk import audit_records, rotate, slots, tenants_config, wait_for

PAST = "2020-01-01"


def versions_in_use(path):
    return sorted(v for seq, _, v, _ in slots(path) if seq)


def meta(vol, name):
    return vol.backing / ".ekmfs" / name


def load(vol, name):
    return json.loads(meta(vol, name).read_text())


def refused_mount(vol):
    """ekmfs in the foreground: exit 1, one line, nothing mounted."""
    r = subprocess.run([str(BUILD / "ekmfs"), "-c", str(vol.config), "-f",
                        str(vol.backing), str(vol.mnt)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert not is_mounted(vol.mnt)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("ekmfs: "), \
        (r.returncode, r.stderr)
    return lines[0]


@pytest.fixture
def rich(volume):
    """Two tenants (default, acme); default has KEK v1 destroyed, v2
    retired, v3 active; files of both tenants."""
    vol = volume
    (vol.backing / "bots" / "acme").mkdir(parents=True)
    tenants_config(vol, [("acme", "/bots/acme", {"enforce_from": PAST})],
                   head="[daemon]\ncontrol_dir = %s\n" % (vol.root / "run"))
    m = vol.mount()
    (vol.mnt / "a").write_bytes(b"default tenant " * 100)
    (vol.mnt / "bots" / "acme" / "b").write_bytes(b"acme tenant " * 100)
    m.unmount()
    for args in (("kek",), ("kek",), ("retire", "--version", "1", "--destroy")):
        r = rotate(vol, *args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    kr = load(vol, "keyring.json")
    assert [t["name"] for t in kr["tenants"]] == ["default", "acme"]
    assert [k["state"] for k in kr["tenants"][0]["keks"]] == ["destroyed", "retired", "active"]
    return vol


def flip_b64(s):
    raw = bytearray(base64.b64decode(s))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def later(t):
    return t.replace(t[:4], str(int(t[:4]) + 1), 1)


def kek(kr, tenant, version):
    return next(k for k in kr["tenants"][tenant]["keks"] if k["version"] == version)


def set_(path, value):
    def edit(doc):
        o = doc
        for p in path[:-1]:
            o = o[p]
        o[path[-1]] = value(o[path[-1]]) if callable(value) else value
    return edit


def delete(path):
    def edit(doc):
        o = doc
        for p in path[:-1]:
            o = o[p]
        del o[path[-1]]
    return edit


def reorder_keks(kr):
    kr["tenants"][0]["keks"].reverse()


def reorder_tenants(kr):
    kr["tenants"].reverse()


def add_kek(kr):
    extra = copy.deepcopy(kek(kr, 0, 2))
    extra["version"] = 9
    kr["tenants"][0]["keks"].append(extra)


def duplicate_kek(kr):
    kr["tenants"][0]["keks"].append(copy.deepcopy(kek(kr, 0, 2)))


def delete_retired(kr):
    kr["tenants"][0]["keks"] = [k for k in kr["tenants"][0]["keks"] if k["version"] != 2]


def revive_v2(kr):
    kek(kr, 0, 2)["state"] = "active"
    kr["tenants"][0]["current_version"] = 2


def disable_acme(kr):
    kr["tenants"][1]["enabled"] = False


def strip_seal(kr):
    del kr["mac"]
    del kr["mac_key"]


KEYRING_EDITS = {
    # timestamps
    "last_rotation": set_(["tenants", 0, "last_rotation"], later),
    "last_cmk_change": set_(["tenants", 0, "last_cmk_change"], later),
    "kek created": lambda kr: kek(kr, 0, 2).__setitem__("created", later(kek(kr, 0, 2)["created"])),
    "acme kek created": set_(["tenants", 1, "keks", 0, "created"], later),
    # counters
    "generation": set_(["generation"], lambda g: g + 1),
    "current_version": revive_v2,
    "kek version": lambda kr: kek(kr, 0, 2).__setitem__("version", 7),
    # ids and names
    "tenant id": set_(["tenants", 1, "id"], 5),
    "tenant name": set_(["tenants", 1, "name"], "acme2"),
    "kdf": set_(["tenants", 1, "kdf"], "x"),
    # states
    "retired to active": lambda kr: kek(kr, 0, 2).__setitem__("state", "active"),
    "enabled": disable_acme,
    # wrapped keys, fingerprints, references
    "retired wrapped": lambda kr: kek(kr, 0, 2).__setitem__("wrapped", flip_b64(kek(kr, 0, 2)["wrapped"])),
    "cmk_version": lambda kr: kek(kr, 0, 2).__setitem__("cmk_version", "0000000000000000"),
    "cmk_ref": lambda kr: kek(kr, 0, 2).__setitem__("cmk_ref", "local:passphrase"),
    "mac_key wrapped": set_(["mac_key", "wrapped"], flip_b64),
    "mac_key cmk_version": set_(["mac_key", "cmk_version"], "0000000000000000"),
    "mac": set_(["mac"], lambda m: ("1" if m[0] == "0" else "0") + m[1:]),
    "mac removed": strip_seal,
    "mac only removed": delete(["mac"]),
    # records
    "retired record deleted": delete_retired,
    "record duplicated": duplicate_kek,
    "records reordered": reorder_keks,
    "tenants reordered": reorder_tenants,
    "record added": add_kek,
    "tenant deleted": lambda kr: kr["tenants"].pop(),
}

VOLUME_EDITS = {
    "volume created": set_(["created"], later),
    "volume id": set_(["volume_id"], lambda v: v[:-1] + ("1" if v[-1] == "0" else "0")),
    "version downgraded": set_(["version"], 1),
    "block size": set_(["block_size"], 8192),
}


def named(line):
    """The refusal names the metadata file, or (a volume id edited, which
    every KEK wrap is bound to) the record the provider refused."""
    return ".ekmfs/" in line or "does not authenticate (tampered or moved)" in line


def test_every_field_and_record_edit_is_refused(rich):
    vol = rich
    saved = {n: meta(vol, n).read_text() for n in ("keyring.json", "volume.json")}
    seen = []
    for doc, edits in (("keyring.json", KEYRING_EDITS), ("volume.json", VOLUME_EDITS)):
        for what, edit in edits.items():
            d = json.loads(saved[doc])
            edit(d)
            meta(vol, doc).write_text(json.dumps(d, indent=2) + "\n")
            line = refused_mount(vol)
            assert named(line), (what, line)
            v = vol.admin("verify", vol.backing)
            assert v.returncode == 1 and named(v.stderr), (what, v.stdout, v.stderr)
            r = rotate(vol, "kek", "--dry-run")
            assert r.returncode != 0 and named(r.stderr), (what, r.stdout, r.stderr)
            seen.append((what, line))
            meta(vol, doc).write_text(saved[doc])
    # The MAC, not only the parser, refused the edits that parse.
    by_mac = [w for w, line in seen if "does not authenticate with volume.json" in line or
              "has no MAC" in line or "(mac_key) does not open" in line]
    print("\n".join("%-24s %s" % s for s in seen))
    assert len(by_mac) >= 25, seen
    m = vol.mount()
    assert (vol.mnt / "a").read_bytes() == b"default tenant " * 100
    assert (vol.mnt / "bots" / "acme" / "b").read_bytes() == b"acme tenant " * 100
    m.unmount()
    assert vol.admin("verify", vol.backing).returncode == 0


def test_another_volumes_keyring_is_refused(rich):
    vol = rich
    other = Volume(make_root())
    try:
        other.write_config("[tenant.default]\nkey_file = %s\n" % vol.key_file)
        other.init()
        for names in (("keyring.json",), ("keyring.json", "volume.json")):
            saved = {n: meta(vol, n).read_bytes() for n in names}
            for n in names:
                shutil.copy(meta(other, n), meta(vol, n))
            line = refused_mount(vol)
            assert "does not authenticate" in line or "not the key" in line, line
            assert vol.admin("verify", vol.backing).returncode == 1
            for n, b in saved.items():
                meta(vol, n).write_bytes(b)
    finally:
        shutil.rmtree(other.root, ignore_errors=True)
    m = vol.mount()
    m.unmount()


def test_the_mac_matches_the_python_implementation(rich):
    """After init, two rotations, a destroy and a tenant creation by the
    daemon, the stored MAC is the one FORMAT.md's encoding gives."""
    vol = rich
    kr, v = load(vol, "keyring.json"), load(vol, "volume.json")
    key = keyring_mac.mac_key(vol.backing, vol.key_file)
    assert keyring_mac.mac(kr, v, key) == kr["mac"]
    assert keyring_mac.mac(kr, v, bytes(32)) != kr["mac"]


def test_a_running_daemon_refuses_a_rolled_back_keyring(rich):
    vol = rich
    old = meta(vol, "keyring.json").read_bytes()
    m = vol.mount()
    r = rotate(vol, "kek")
    assert r.returncode == 0, r.stderr
    assert load(vol, "keyring.json")["tenants"][0]["current_version"] == 4
    (vol.mnt / "mid").write_bytes(b"x")             # the daemon reads it
    assert versions_in_use(vol.backing / "mid") == [4]
    meta(vol, "keyring.json").write_bytes(old)     # sealed, but older
    (vol.mnt / "new").write_bytes(b"x")
    assert wait_for(lambda: "rolled back" in m.log()), m.log()[-2000:]
    assert versions_in_use(vol.backing / "new") == [4]
    m.unmount()
    ev = [(e["event"], e.get("outcome")) for e in audit_records(vol)]
    assert ("keyring_tampered", "refused") in ev


def test_verify_keys_checks_every_kek_record(rich):
    vol = rich
    r = vol.admin("verify", "--keys", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "KEK default v2 (retired" in r.stdout and "opens" in r.stdout
    assert "KEK default v1: destroyed" in r.stdout
    assert "KEK acme v1 (active" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "verify --keys: 0 KEK records failed"
    # A retired record that no longer opens, written by a holder of the CMK
    # (so the keyring MAC is good): only verify --keys can find it before a
    # backup needs it.
    keyring_mac.edit_sealed(vol.backing, vol.key_file, lambda kr: kek(kr, 0, 2).__setitem__(
        "wrapped", flip_b64(kek(kr, 0, 2)["wrapped"])))
    assert vol.admin("verify", vol.backing).returncode == 0   # no file uses v2
    r = vol.admin("verify", "--keys", vol.backing)
    assert r.returncode == 1
    assert "BAD KEK default v2 (retired" in r.stdout, r.stdout
    assert r.stdout.strip().splitlines()[-1] == "verify --keys: 1 KEK record failed"


def test_the_audit_trail_anchors_the_keyring_across_restarts(rich):
    """A whole older keyring (a valid MAC) put back while nothing runs: the
    audit chain head recorded a newer generation, so the next mount and
    ekmfs-rotate refuse it. A sealed keyring stripped of its MAC on a
    volume set back to version 1 is refused the same way."""
    vol = rich
    head = json.loads(meta(vol, "audit.head").read_text())
    gen = load(vol, "keyring.json")["generation"]
    assert head["keyring_generation"] == gen
    old = meta(vol, "keyring.json").read_bytes()
    r = rotate(vol, "kek")
    assert r.returncode == 0, r.stderr
    new = meta(vol, "keyring.json").read_bytes()
    assert json.loads(meta(vol, "audit.head").read_text())["keyring_generation"] > gen
    meta(vol, "keyring.json").write_bytes(old)
    line = refused_mount(vol)
    assert "it was rolled back" in line and "audit trail recorded" in line, line
    r = rotate(vol, "kek")
    assert r.returncode != 0 and "it was rolled back" in r.stderr, r.stderr
    meta(vol, "keyring.json").write_bytes(new)

    saved = {n: meta(vol, n).read_text() for n in ("keyring.json", "volume.json")}
    kr, v = json.loads(saved["keyring.json"]), json.loads(saved["volume.json"])
    strip_seal(kr)
    v["version"] = 1
    meta(vol, "keyring.json").write_text(json.dumps(kr))
    meta(vol, "volume.json").write_text(json.dumps(v))
    line = refused_mount(vol)
    assert "the MAC was stripped" in line, line
    for n, text in saved.items():
        meta(vol, n).write_text(text)
    m = vol.mount()
    (vol.mnt / "after").write_bytes(b"ok")
    m.unmount()


def test_an_edited_last_rotation_postpones_no_scheduled_rotation(volume):
    """The attack the issue measured: last_rotation set to 2099 in the
    keyring file. The daemon's schedule reads the keyring it holds, which
    refuses the edit, so a rotation that falls due is still started (and
    ekmfs-rotate, reading the edited file, refuses it as tampered)."""
    from conftest import ROTATE
    vol = volume

    def config(days):
        vol.write_config("[tenant.default]\nkey_file = %s\nrotation_days = %d\n[daemon]\n"
                         "rotate_program = %s\nrotation_check_interval = 1\n"
                         % (vol.key_file, days, ROTATE))
    config(60)
    when = time.gmtime(time.time() - 59 * 86400)
    keyring_mac.edit_sealed(vol.backing, vol.key_file, lambda kr: kr["tenants"][0].__setitem__(
        "last_rotation", time.strftime("%Y-%m-%dT%H:%M:%SZ", when)))
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"x")
    time.sleep(1.5)                              # a check: not due (59 < 60 days)
    assert "is due" not in m.log()
    kr = load(vol, "keyring.json")
    kr["tenants"][0]["last_rotation"] = "2099-01-01T00:00:00Z"
    meta(vol, "keyring.json").write_text(json.dumps(kr, indent=2) + "\n")
    config(30)                                   # now due, by the authentic keyring
    m.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "KEK rotation of tenant 'default' is due" in m.log(), 20), \
        m.log()[-2000:]
    assert wait_for(lambda: "keeping the keyring in memory" in m.log(), 10), m.log()[-2000:]
    m.unmount()
