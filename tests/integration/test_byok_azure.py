"""Bring your own key with Azure Key Vault, end to end through real mounts.

The vault and its Entra ID authority are tests/emulators/azure_kv.py on
loopback (TLS with a test CA). Covers: init / mount / write / remount / read
with RSA-OAEP-256 wraps recorded with their versioned kid and the binding
MAC; a new key version used for new wraps while old KEKs still unwrap; the
MAC refusing a record moved to another volume; `ekmfs-admin test` all-pass
and failure modes; revocation after key_cache_ttl and recovery; a revoked
token replaced after a 401; managed identity; loose secret files refused and
secrets never logged.
"""
import base64
import errno
import json
import os
import time

import pytest

from byok_helpers import EMULATORS  # noqa: F401  (puts tests/emulators on sys.path)
from conftest import SLOW, drop_caches, errno_of

import azure_kv  # noqa: E402


@pytest.fixture
def kv(tmp_path):
    emu = azure_kv.KvEmulator(str(tmp_path)).start()
    yield emu
    emu.stop()


def azure_config(kv, key_id, secret_file, extra=""):
    return ("[tenant.default]\nprovider = azure-keyvault\nkey_id = %s\ntenant_id = %s\n"
            "client_id = %s\nclient_secret_file = %s\nauthority_host = %s\n"
            "ca_file = %s\n%s" % (key_id, azure_kv.TENANT, azure_kv.CLIENT_ID, secret_file,
                                  kv.url, kv.ca, extra))


@pytest.fixture
def az_vol(fresh, kv, monkeypatch):
    monkeypatch.delenv("AZURE_CLIENT_SECRET", raising=False)
    key = kv.create_key("ekmfs-cmk")
    secret = fresh.keydir / "client-secret"
    secret.write_text(azure_kv.CLIENT_SECRET + "\n")
    os.chmod(secret, 0o600)
    fresh.kv, fresh.key, fresh.secret_file = kv, key, secret
    fresh.key_url = "%s/keys/ekmfs-cmk" % kv.url
    fresh.write_config(azure_config(kv, fresh.key_url, secret))
    return fresh


def keyring(vol):
    return json.loads((vol.backing / ".ekmfs" / "keyring.json").read_text())


def check_line(r, name):
    for line in r.stdout.splitlines():
        if line.strip().startswith(name):
            return line
    raise AssertionError("no line %r in:\n%s" % (name, r.stdout))


def open_errno(path):
    drop_caches()
    return errno_of(lambda: open(path, "rb").close())


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def test_init_mount_write_remount_read(az_vol):
    vol = az_vol
    r = vol.init()
    assert "Azure Key Vault key" in r.stdout
    t = keyring(vol)["tenants"][0]
    assert t["provider"] == "azure-keyvault" and t["kdf"] == "alg=RSA-OAEP-256"
    kek = t["keks"][0]
    assert kek["cmk_ref"] == vol.key_url
    assert kek["cmk_version"] == vol.key.kid               # the versioned kid
    assert len(base64.b64decode(kek["mac"])) == 32
    assert len(base64.b64decode(kek["wrapped"])) == 256    # RSA-2048 OAEP
    m = vol.mount()
    (vol.mnt / "a").write_bytes(b"azure byok")
    big = os.urandom(200000)
    (vol.mnt / "b").write_bytes(big)
    m = vol.remount(m)
    assert (vol.mnt / "a").read_bytes() == b"azure byok"
    assert (vol.mnt / "b").read_bytes() == big
    m.unmount()


def test_new_key_version_old_keks_still_unwrap(az_vol):
    vol = az_vol
    vol.init()
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"v1 data")
    m.unmount()
    v2 = vol.kv.create_key("ekmfs-cmk")                    # a new version in the vault
    r = vol.admin("test", vol.backing)
    assert r.returncode == 0, r.stdout
    assert v2.kid in check_line(r, "encrypt")              # new wraps use the new version
    assert vol.key.kid in check_line(r, "keyring KEK unwraps")  # old KEK by its kid
    m = vol.mount()
    assert (vol.mnt / "f").read_bytes() == b"v1 data"
    m.unmount()


def test_binding_mac_refuses_a_moved_record(az_vol):
    """RSA-OAEP has no associated data: the MAC is what binds the record."""
    vol = az_vol
    vol.init()
    kr = keyring(vol)
    # The same record presented as KEK v2 of this tenant must not open.
    rec = dict(kr["tenants"][0]["keks"][0], version=2)
    kr["tenants"][0]["keks"].append(rec)
    kr["tenants"][0]["current_version"] = 2
    (vol.backing / ".ekmfs" / "keyring.json").write_text(json.dumps(kr))
    r = vol.admin("test", vol.backing)
    line = check_line(r, "keyring KEK unwraps")
    assert "FAILED" in line and "binding MAC" in line, line
    # A flipped MAC on the real record is refused too.
    kr["tenants"][0]["current_version"] = 1
    mac = bytearray(base64.b64decode(kr["tenants"][0]["keks"][0]["mac"]))
    mac[0] ^= 1
    kr["tenants"][0]["keks"][0]["mac"] = base64.b64encode(bytes(mac)).decode()
    (vol.backing / ".ekmfs" / "keyring.json").write_text(json.dumps(kr))
    r = vol.admin("test", vol.backing)
    assert "binding MAC" in check_line(r, "keyring KEK unwraps")


def test_admin_test_all_pass(az_vol):
    vol = az_vol
    vol.init()
    r = vol.admin("test", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("configuration", "endpoint reachable", "authentication", "key state",
                 "encrypt", "decrypt round-trip", "wrong-context rejection",
                 "keyring KEK unwraps"):
        assert " ok " in check_line(r, name)
    doc = json.loads(vol.admin("test", "--json", vol.backing).stdout)
    assert doc["ok"] is True and doc["provider"] == "azure-keyvault"


@pytest.mark.parametrize("mode", ["bad-secret", "unknown-tenant", "disabled-key",
                                  "access-removed", "missing-key", "unreachable"])
def test_admin_test_failure_modes(az_vol, mode):
    vol, kv = az_vol, az_vol.kv
    vol.init()
    if mode == "bad-secret":
        vol.secret_file.write_text("wrong\n")
        failed, words = "authentication", "AADSTS7000215"
    elif mode == "unknown-tenant":
        vol.write_config(azure_config(kv, vol.key_url, vol.secret_file)
                         .replace(azure_kv.TENANT, "00000000-0000-0000-0000-000000000000"))
        failed, words = "authentication", "AADSTS90002"
    elif mode == "disabled-key":
        kv.state.find("ekmfs-cmk", None).enabled = False
        failed, words = "key state", "KeyDisabled"
    elif mode == "access-removed":
        kv.state.denied.add(azure_kv.CLIENT_ID)
        failed, words = "key state", "AccessDenied"
    elif mode == "missing-key":
        vol.write_config(azure_config(kv, kv.url + "/keys/nope", vol.secret_file))
        failed, words = "key state", "KeyNotFound"
    else:
        text = azure_config(kv, vol.key_url, vol.secret_file, "max_retries = 0\n")
        vol.write_config(text.replace(kv.url + "/keys", "https://127.0.0.1:9/keys"))
        failed, words = "endpoint reachable", "cannot reach"
    r = vol.admin("test", vol.backing)
    assert r.returncode == 1, r.stdout + r.stderr
    line = check_line(r, failed)
    assert "FAILED" in line and words in line, line
    assert "skipped" in check_line(r, "encrypt")


def test_revocation_and_recovery_without_remount(az_vol):
    vol = az_vol
    vol.write_config(azure_config(vol.kv, vol.key_url, vol.secret_file, "key_cache_ttl = 2\n"))
    vol.init()
    m = vol.mount()
    f = vol.mnt / "f"
    f.write_bytes(b"tenant data")
    vol.kv.state.find("ekmfs-cmk", None).enabled = False
    wait_for(lambda: open_errno(f) == errno.ENOKEY, 10 * SLOW, "ENOKEY after the TTL")
    assert "f" in os.listdir(vol.mnt) and os.stat(f).st_size == 11
    vol.kv.state.find("ekmfs-cmk", None).enabled = True
    wait_for(lambda: open_errno(f) == 0, 10 * SLOW, "access after re-enable")
    assert f.read_bytes() == b"tenant data"
    m.unmount()
    assert "KeyDisabled" in m.log()


def test_revoked_token_is_replaced(az_vol):
    vol = az_vol
    vol.write_config(azure_config(vol.kv, vol.key_url, vol.secret_file, "key_cache_ttl = 1\n"))
    vol.init()
    m = vol.mount()
    f = vol.mnt / "f"
    f.write_bytes(b"x")
    before = vol.kv.state.stats.get("tokens", 0)
    with vol.kv.state.lock:
        vol.kv.state.tokens.clear()     # every token issued so far is now invalid
    time.sleep(1.5)
    assert open_errno(f) == 0           # 401, a new token, success
    assert vol.kv.state.stats.get("tokens", 0) == before + 1
    m.unmount()


def test_managed_identity(az_vol):
    vol, kv = az_vol, az_vol.kv
    vol.write_config("[tenant.default]\nprovider = azure-keyvault\nkey_id = %s\n"
                     "use_managed_identity = true\nimds_endpoint = %s\nca_file = %s\n"
                     % (vol.key_url, kv.url, kv.ca))
    vol.init()
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"mi")
    m = vol.remount(m)
    assert (vol.mnt / "f").read_bytes() == b"mi"
    m.unmount()
    assert vol.admin("test", vol.backing).returncode == 0


def test_secret_file_rules_and_no_secret_in_logs(az_vol):
    vol = az_vol
    vol.write_config(azure_config(vol.kv, vol.key_url, vol.secret_file)
                     + "[daemon]\nlog_level = debug\n")
    vol.init()
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"x")
    m.unmount()
    r = vol.admin("test", vol.backing)
    for text in (m.log(), r.stdout, r.stderr):
        assert azure_kv.CLIENT_SECRET not in text
        for tok in list(vol.kv.state.tokens):
            assert tok not in text
    os.chmod(vol.secret_file, 0o640)
    r = vol.admin("test", vol.backing)
    assert r.returncode == 1 and "mode 0640" in r.stdout
    # A secret file inside the backing directory is refused at init.
    other = vol.root / "other-backing"
    other.mkdir()
    inside = other / "secret"           # need not exist yet to be refused
    vol.write_config(azure_config(vol.kv, vol.key_url, inside))
    r = vol.admin("init", other)
    assert r.returncode == 1 and "inside the backing directory" in r.stderr


def test_keyring_pointing_at_another_host_is_refused_without_connecting(az_vol):
    """The bearer token goes to the configured vault only (issue 13): a key
    version in the keyring that names another host, port or key is refused
    as tampering, audited, and nothing connects there. The daemon refuses
    the edited keyring as a whole (its MAC) and keeps serving with the one
    it holds; `ekmfs-admin test`, which reads records without the MAC,
    shows the provider's own guard refusing the record."""
    import select
    import socket

    vol = az_vol
    vol.write_config(azure_config(vol.kv, vol.key_url, vol.secret_file,
                                  extra="key_cache_ttl = 1\n"))
    vol.init()
    m = vol.mount()
    f = vol.mnt / "f"
    f.write_bytes(b"vault data")
    path = vol.backing / ".ekmfs" / "keyring.json"
    original = path.read_text()
    kid = keyring(vol)["tenants"][0]["keks"][0]["cmk_version"]
    version = kid.rsplit("/", 1)[1]
    # Listeners where a tampered record points: another host (127.0.0.2)
    # and another port of the vault's own host.
    listeners = []
    for host in ("127.0.0.2", "127.0.0.1"):
        s = socket.socket()
        s.bind((host, 0))
        s.listen(8)
        s.setblocking(False)
        listeners.append(s)
    targets = ["https://127.0.0.2:%d/keys/ekmfs-cmk/%s" % (listeners[0].getsockname()[1],
                                                          version),
               "https://127.0.0.1:%d/keys/ekmfs-cmk/%s" % (listeners[1].getsockname()[1],
                                                          version),
               "%s/keys/another-key/%s" % (vol.kv.url, version)]
    try:
        for target in targets:
            kr = json.loads(original)
            kr["tenants"][0]["keks"][0]["cmk_version"] = target
            path.write_text(json.dumps(kr))
            before = dict(vol.kv.state.stats)
            time.sleep(1.2)                # past the TTL: the record is used again
            assert open_errno(f) == 0, target          # the authentic keyring serves
            # The daemon asked only the configured vault, with the
            # authentic record (the cache entry had expired): at most once.
            assert vol.kv.state.stats.get("unwrapkey", 0) <= before.get("unwrapkey", 0) + 1
            # ekmfs-admin test refuses it too (its own round trip still
            # goes to the configured vault).
            r = vol.admin("test", vol.backing)
            line = check_line(r, "keyring KEK unwraps")
            assert "FAILED" in line and "names another key" in line, r.stdout
            # Nothing connected where the record points.
            assert select.select(listeners, [], [], 0.3)[0] == [], target
    finally:
        for s in listeners:
            s.close()
    path.write_text(original)
    wait_for(lambda: open_errno(f) == 0, 10 * SLOW, "access with the real record")
    assert f.read_bytes() == b"vault data"
    m.unmount()
    assert "keeping the keyring in memory" in m.log()
    events = [json.loads(l) for l in (vol.root / "audit.log").read_text().splitlines()
              if l.strip()]
    tampered = [e for e in events if e["event"] == "keyring_tampered"]
    assert len(tampered) >= len(targets), [e["event"] for e in events]
    assert tampered[0]["outcome"] == "refused" and tampered[0]["tenant"] == "default"
    assert "does not authenticate with volume.json" in tampered[0]["reason"]


def test_workload_identity_federated_token(az_vol, monkeypatch):
    """AKS workload identity: AZURE_TENANT_ID, AZURE_CLIENT_ID and the
    projected token in AZURE_FEDERATED_TOKEN_FILE, exchanged with Entra ID
    as a client assertion; no client secret anywhere."""
    vol = az_vol
    token = vol.keydir / "azure-identity-token"
    token.write_text(azure_kv.FEDERATED_TOKEN + "\n")
    os.chmod(token, 0o600)
    vol.write_config("[tenant.default]\nprovider = azure-keyvault\nkey_id = %s\n"
                     "authority_host = %s\nca_file = %s\n" % (vol.key_url, vol.kv.url,
                                                              vol.kv.ca))
    monkeypatch.setenv("AZURE_TENANT_ID", azure_kv.TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", azure_kv.CLIENT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token))
    vol.init()
    assert vol.kv.state.stats.get("federated", 0) >= 1
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"workload identity")
    m = vol.remount(m)
    assert (vol.mnt / "f").read_bytes() == b"workload identity"
    m.unmount()
    assert azure_kv.FEDERATED_TOKEN not in m.log()
    # A token the app has no federated credential for is refused.
    token.write_text("eyJ.not-federated.x\n")
    r = vol.admin("test", vol.backing)
    assert r.returncode == 1
    assert "AADSTS700213" in check_line(r, "authentication"), r.stdout
