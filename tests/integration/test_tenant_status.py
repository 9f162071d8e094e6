"""Per-tenant status: `ekmfs-admin status [--json]` and the control socket's
`tenants` request (docs/TENANTS.md).

A volume with the default tenant and two local-key tenants (acme: /acme,
enforced; beta: /beta, enforced only from 2099), its control socket in the
test's temp dir. Checked through the real binaries: the policy fields of each
tenant before and after the daemon creates them, the key cache state the
daemon reports (cached after a read, locked after `lock --tenant`, not
mounted after unmount), the misplaced count after a rename across a tenant
boundary, and a `tenants` answer longer than any fixed buffer.
"""
import json
import os
import re
import socket

import pytest

from conftest import drop_caches

FAR = "2099-01-01T00:00:00Z"


def tenant_config(vol, extra=""):
    return ("[daemon]\ncontrol_dir = %s\n"
            "[tenant.default]\nkey_file = %s\n"
            "[tenant.acme]\nkey_file = %s\npaths = /acme\nkey_cache_uses = 1000\n"
            "[tenant.beta]\nkey_file = %s\npaths = /beta\nenforce_from = 2099-01-01\n%s"
            % (vol.run_dir, vol.key_file, vol.keydir / "acme.key",
               vol.keydir / "beta.key", extra))


@pytest.fixture
def tvol(fresh):
    """Initialised; acme and beta configured but not yet in the keyring."""
    fresh.run_dir = fresh.root / "run"
    fresh.write_config(tenant_config(fresh))
    fresh.init()
    for d in ("acme", "beta"):
        os.mkdir(fresh.backing / d)
    return fresh


def status_json(vol):
    r = vol.admin("status", "--json", vol.backing)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return doc, {t["name"]: t for t in doc["tenants"]}


def status_text(vol):
    """The text form split into one block per tenant (its lines, joined)."""
    r = vol.admin("status", vol.backing)
    assert r.returncode == 0, r.stderr
    blocks, name = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"tenant (\S+) ", line)
        if m:
            name = m.group(1)
        elif not line.startswith("  "):
            name = None
        if name:
            blocks[name] = blocks.get(name, "") + line + "\n"
    return r.stdout, blocks


def field(block, key):
    m = re.search(r"^  %s:\s+(.*)$" % re.escape(key), block, re.M)
    assert m, "no '%s' line in:\n%s" % (key, block)
    return m.group(1)


def test_per_tenant_status_through_a_mount(tvol):
    vol = tvol
    # Configured, not in the keyring yet: policy shown, no daemon.
    _, t = status_json(vol)
    assert t["default"]["in_keyring"] and not t["acme"]["in_keyring"]
    assert t["acme"]["id"] is None and t["acme"]["keks"] == []
    assert t["acme"]["paths"] == ["/acme"] and t["acme"]["enforced"] is True
    assert t["acme"]["enforce_from"] == "always"
    assert t["beta"]["enforce_from"] == FAR and t["beta"]["enforced"] is False
    assert t["default"]["enforce_from"] == "always" and t["default"]["paths"] == []
    assert {n: x["cache"]["state"] for n, x in t.items()} == dict.fromkeys(t, "not mounted")
    text, b = status_text(vol)
    assert "not in the keyring yet" in b["acme"]
    assert field(b["beta"], "enforce from") == FAR + " (enforced now: no)"
    assert field(b["acme"], "enforce from") == "always (enforced now: yes)"
    assert field(b["acme"], "paths") == "/acme"

    m = vol.mount()
    (vol.mnt / "acme" / "a").write_bytes(b"acme data")
    (vol.mnt / "beta" / "b").write_bytes(b"beta, not enforced yet")
    (vol.mnt / "top").write_bytes(b"default")
    drop_caches()
    assert (vol.mnt / "acme" / "a").read_bytes() == b"acme data"

    doc, t = status_json(vol)
    assert [x["name"] for x in doc["tenants"]] == ["default", "acme", "beta"]
    acme, beta, dflt = t["acme"], t["beta"], t["default"]
    assert acme["in_keyring"] and acme["configured"] and acme["enabled"]
    assert acme["provider"] == "local" and acme["cmk_ref"] == acme["keks"][0]["cmk_ref"]
    # files: acme's path is enforced, beta's is not yet (its file is default's)
    assert {n: x["keks"][0]["files"] for n, x in t.items()} == {
        "default": 2, "acme": 1, "beta": 0}
    c = acme["cache"]
    assert c["state"] == "cached" and c["use_limit"] == 1000 and c["uses"] >= 1
    assert 0 < c["expires_in"] <= 300 and c["enforced"] is True
    assert beta["cache"]["enforced"] is False and dflt["cache"]["state"] == "cached"
    assert acme["rotation_days"] == 60 and acme["next_rotation"] > acme["last_rotation"]
    assert doc["misplaced_files"] == 0
    text, b = status_text(vol)
    assert re.fullmatch(r"cached \(refetch in \d+ s, \d+ of 1000 uses\)",
                        field(b["acme"], "cache")), b["acme"]
    assert re.search(r"^\s*KEK v1\s+active\b.*\bfiles\s+1$", b["acme"], re.M)
    assert field(b["acme"], "enabled") == "yes"

    # lock one tenant: only its cache is locked
    r = vol.admin("lock", "--tenant", "acme", vol.mnt)
    assert r.returncode == 0, r.stderr
    _, t = status_json(vol)
    assert t["acme"]["cache"]["state"] == "locked"
    assert t["default"]["cache"]["state"] == "cached"
    _, b = status_text(vol)
    assert field(b["acme"], "cache") == "locked"
    assert vol.admin("unlock", "--tenant", "acme", vol.mnt).returncode == 0

    # a rename across the boundary keeps acme's header under default's path
    os.rename(vol.mnt / "acme" / "a", vol.mnt / "moved")
    assert (vol.mnt / "moved").read_bytes() == b"acme data"
    doc, t = status_json(vol)
    assert doc["misplaced_files"] == 1
    assert (t["default"]["misplaced_files"], t["default"]["misplaced_away"]) == (1, 0)
    assert (t["acme"]["misplaced_files"], t["acme"]["misplaced_away"]) == (0, 1)
    assert t["beta"]["misplaced_files"] == t["beta"]["misplaced_away"] == 0
    text, b = status_text(vol)
    assert "misplaced files: 1 " in text and "ekmfs-rotate migrate" in text
    assert field(b["default"], "misplaced").startswith("1 file routed here")

    m.unmount()
    _, t = status_json(vol)
    assert {n: x["cache"]["state"] for n, x in t.items()} == dict.fromkeys(t, "not mounted")
    _, b = status_text(vol)
    assert all(field(x, "cache") == "not mounted" for x in b.values())

    # beta dropped from the configuration: still in the keyring, unconfigured
    vol.write_config(tenant_config(vol).split("[tenant.beta]")[0])
    _, t = status_json(vol)
    assert t["beta"]["configured"] is False and t["beta"]["keks"][0]["version"] == 1
    _, b = status_text(vol)
    assert field(b["beta"], "configured").startswith("no")


def test_tenants_request_longer_than_a_buffer(fresh):
    """40 tenants: the one-line answer is several KiB."""
    vol = fresh
    vol.run_dir = vol.root / "run"
    text = "[daemon]\ncontrol_dir = %s\n[tenant.default]\nkey_file = %s\n" % (
        vol.run_dir, vol.key_file)
    names = ["tenant-%02d.example" % i for i in range(40)]
    for n in names:
        text += "[tenant.%s]\nkey_file = %s\npaths = /%s\n" % (n, vol.keydir / (n + ".key"), n)
    vol.write_config(text)
    vol.init()
    for n in names:
        os.mkdir(vol.backing / n)
    m = vol.mount()
    sock = next(vol.run_dir.iterdir())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(b"tenants\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert len(data) > 4096 and data.endswith(b"\n") and data.count(b"\n") == 1
    assert data.startswith(b"ok ")
    states = json.loads(data[3:])
    assert [x["tenant"] for x in states] == ["default"] + names
    assert set(states[0]) == {"tenant", "id", "current_version", "cache", "expires_in",
                              "uses", "use_limit", "enforced"}
    assert all(x["cache"] == "cached" and x["current_version"] == 1 for x in states)
    assert len({x["id"] for x in states}) == 41
    _, t = status_json(vol)
    assert all(t[n]["cache"]["state"] == "cached" for n in names)
    m.unmount()
