"""Bring your own key with AWS KMS, end to end through real mounts.

The KMS is tests/emulators/aws_kms.py on loopback (real JSON 1.1 protocol,
SigV4 verified, TLS with a CA made for the test); ekmfs talks to it exactly
as it would to AWS, through an endpoint override and a CA file.

Covers: init / mount / write / remount / read with the KEK wrapped by KMS
(EncryptionContext, recorded key ARN); `ekmfs-admin test` all-pass and each
failure mode; revocation lock-out after key_cache_ttl and recovery without a
remount; outages served from the cache for outage_grace; throttling and 5xx
retried; the credential chain (files, profiles, IMDSv2, container, web
identity); secrets never logged and loose credential files refused; and the
count of KMS requests for many opens.
"""
import errno
import json
import os
import socket
import time

import pytest

from byok_helpers import (admin_call, aws_config, aws_kms, botocore_client, clean_aws_env,
                          kms_stats, use_default_aws_keys)
from conftest import SLOW, drop_caches, errno_of


@pytest.fixture
def kms(tmp_path):
    emu = aws_kms.KmsEmulator(str(tmp_path)).start()
    yield emu
    emu.stop()


@pytest.fixture
def key(kms):
    return kms.state.create_key("ekmfs test CMK")


@pytest.fixture
def aws_env(monkeypatch, fresh):
    clean_aws_env(monkeypatch, fresh.root)
    use_default_aws_keys(monkeypatch)
    return monkeypatch


@pytest.fixture
def aws_vol(fresh, kms, key, aws_env):
    """An uninitialised volume whose default tenant uses the emulated KMS."""
    fresh.write_config(aws_config(kms, key.arn))
    fresh.kms = kms
    fresh.key = key
    fresh.env = aws_env
    return fresh


def admin_test(vol, *args):
    r = vol.admin("test", *args, vol.backing)
    return r, {l.split()[0] + " " + l.split()[1]: l for l in r.stdout.splitlines()
               if l.startswith("  ")}


def check_line(r, name):
    for line in r.stdout.splitlines():
        if line.strip().startswith(name):
            return line
    raise AssertionError("no line %r in:\n%s" % (name, r.stdout))


# ---- init, mount, write, remount, read ------------------------------------

def test_init_mount_write_remount_read(aws_vol):
    vol = aws_vol
    r = vol.init()
    assert "AWS KMS key" in r.stdout
    kr = json.loads((vol.backing / ".ekmfs" / "keyring.json").read_text())
    t = kr["tenants"][0]
    assert t["provider"] == "aws-kms"
    kek = t["keks"][0]
    assert kek["cmk_ref"] == vol.key.arn
    assert kek["cmk_version"] == vol.key.arn           # the ARN KMS reported
    assert "mac" not in kek                            # KMS binds the context itself
    assert kms_stats(vol.kms).get("Encrypt", 0) >= 1
    # The wrap is bound to this volume: KMS refuses it under another context.
    import base64
    blob = base64.b64decode(kek["wrapped"])
    c = botocore_client(vol.kms)
    vid = json.loads((vol.backing / ".ekmfs" / "volume.json").read_text())["volume_id"]
    ctx = {"ekmfs:volume": vid, "ekmfs:tenant": "default", "ekmfs:kek-version": "1"}
    assert len(c.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"]) == 32
    with pytest.raises(c.exceptions.InvalidCiphertextException):
        c.decrypt(CiphertextBlob=blob, EncryptionContext=dict(ctx, **{"ekmfs:kek-version": "2"}))

    m = vol.mount()
    data = {"a.txt": b"hello byok\n", "big.bin": os.urandom(300000)}
    os.mkdir(vol.mnt / "d")
    for name, content in data.items():
        (vol.mnt / "d" / name).write_bytes(content)
    m = vol.remount(m)
    for name, content in data.items():
        assert (vol.mnt / "d" / name).read_bytes() == content
    m.unmount()
    # The ciphertext on disk is not the plaintext.
    assert b"hello byok" not in (vol.backing / "d" / "a.txt").read_bytes()


def test_alias_key_and_kms_rotation(aws_vol):
    """key_id may be an alias; KMS key rotation keeps old material usable."""
    vol = aws_vol
    c = botocore_client(vol.kms)
    c.create_alias(AliasName="alias/ekmfs-test", TargetKeyId=vol.key.id)
    vol.write_config(aws_config(vol.kms, "alias/ekmfs-test"))
    vol.init()
    kek = json.loads((vol.backing / ".ekmfs" / "keyring.json").read_text())["tenants"][0]["keks"][0]
    assert kek["cmk_ref"] == "alias/ekmfs-test"
    assert kek["cmk_version"] == vol.key.arn
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"before rotation")
    m.unmount()
    admin_call(vol.kms, "/__emu/rotate", {"KeyId": vol.key.id})
    assert len(vol.key.materials) == 2
    m = vol.mount()
    assert (vol.mnt / "f").read_bytes() == b"before rotation"
    m.unmount()


# ---- ekmfs-admin test --------------------------------------------------------

def test_admin_test_all_pass(aws_vol):
    vol = aws_vol
    vol.init()
    r = vol.admin("test", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("configuration", "endpoint reachable", "authentication", "key state",
                 "encrypt", "decrypt round-trip", "wrong-context rejection",
                 "re-encrypt in the service", "keyring KEK unwraps"):
        line = check_line(r, name)
        assert " ok " in line, line
    assert "Enabled" in check_line(r, "key state")
    assert r.stdout.splitlines()[-1] == "all checks passed"
    j = vol.admin("test", "--json", vol.backing)
    assert j.returncode == 0
    doc = json.loads(j.stdout)
    assert doc["ok"] is True and doc["provider"] == "aws-kms"
    assert [c["status"] for c in doc["checks"]] == ["ok"] * 9


def _blackhole():
    """A TCP port that accepts connections and never answers (a hung TLS
    handshake), so only the timeout ends the request."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


@pytest.mark.parametrize("mode", ["bad-secret", "unknown-access-key", "no-credentials",
                                  "disabled-key", "pending-deletion", "access-denied",
                                  "missing-key", "wrong-region", "wrong-endpoint",
                                  "unreachable", "untrusted-certificate"])
def test_admin_test_failure_modes(aws_vol, mode):
    vol, kms = aws_vol, aws_vol.kms
    vol.init()
    c = botocore_client(kms)
    failed, words, extra = None, None, ""
    hole = None
    if mode == "bad-secret":
        vol.env.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        failed, words = "authentication", "InvalidSignatureException"
    elif mode == "unknown-access-key":
        vol.env.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN000000000")
        failed, words = "authentication", "UnrecognizedClientException"
    elif mode == "no-credentials":
        vol.env.delenv("AWS_ACCESS_KEY_ID")
        vol.env.delenv("AWS_SECRET_ACCESS_KEY")
        failed, words = "authentication", "no AWS credentials found"
    elif mode == "disabled-key":
        c.disable_key(KeyId=vol.key.id)
        failed, words = "key state", "is Disabled"
    elif mode == "pending-deletion":
        c.schedule_key_deletion(KeyId=vol.key.id, PendingWindowInDays=7)
        failed, words = "key state", "PendingDeletion"
    elif mode == "access-denied":
        admin_call(kms, "/__emu/deny", {"KeyId": vol.key.id,
                                        "AccessKeyId": aws_kms.DEFAULT_AKID})
        failed, words = "key state", "AccessDeniedException"
    elif mode == "missing-key":
        vol.write_config(aws_config(kms, "alias/does-not-exist"))
        failed, words = "key state", "NotFoundException"
    elif mode == "wrong-region":
        vol.write_config(aws_config(kms, vol.key.arn, region="eu-west-1"))
        failed, words = "authentication", "region"
    elif mode == "wrong-endpoint":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()                      # nobody listens there now
        vol.write_config(aws_config(kms, vol.key.arn,
                                    endpoint="https://127.0.0.1:%d" % port))
        failed, words = "endpoint reachable", "cannot reach"
    elif mode == "unreachable":
        hole = _blackhole()
        vol.write_config(aws_config(kms, vol.key.arn, extra="timeout = 1\nmax_retries = 0\n",
                                    endpoint="https://127.0.0.1:%d" % hole.getsockname()[1]))
        failed, words = "endpoint reachable", "timed out"
    elif mode == "untrusted-certificate":
        text = aws_config(kms, vol.key.arn)
        vol.write_config("\n".join(l for l in text.splitlines()
                                   if not l.startswith("ca_file")) + "\n")
        failed, words = "endpoint reachable", "certificate"
    t0 = time.monotonic()
    r = vol.admin("test", vol.backing)
    elapsed = time.monotonic() - t0
    if hole:
        hole.close()
    assert r.returncode == 1, r.stdout + r.stderr
    line = check_line(r, failed)
    assert "FAILED" in line and words in line, line
    # every check before it passed, every one after it was skipped
    names = ["configuration", "endpoint reachable", "authentication", "key state", "encrypt"]
    i = names.index(failed)
    for before in names[:i]:
        assert " ok " in check_line(r, before)
    for after in names[i + 1:]:
        assert "skipped" in check_line(r, after)
    if mode == "unreachable":
        assert elapsed < 10 * SLOW, "the 1 s timeout was not applied (%.1f s)" % elapsed
    doc = json.loads(vol.admin("test", "--json", vol.backing).stdout)
    assert doc["ok"] is False
    assert {c["check"]: c["status"] for c in doc["checks"]}[failed] == "failed"


# ---- revocation, outage, throttling -------------------------------------------

def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def open_errno(path):
    drop_caches()
    return errno_of(lambda: open(path, "rb").close())


def audit_events(vol):
    """The records of the volume's audit log (conftest puts it in vol.root)."""
    path = vol.root / "audit.log"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def test_revocation_locks_out_after_ttl_and_recovers(aws_vol):
    vol = aws_vol
    vol.write_config(aws_config(vol.kms, vol.key.arn, extra="key_cache_ttl = 2\n")
                     + "[daemon]\nlog_level = debug\n")
    vol.init()
    t_before_fetch = time.monotonic()       # the daemon fetches the KEK after this
    m = vol.mount()
    f = vol.mnt / "secret.txt"
    f.write_bytes(b"tenant data")
    assert f.read_bytes() == b"tenant data"
    c = botocore_client(vol.kms)
    c.disable_key(KeyId=vol.key.id)
    # Within the TTL the cached KEK still serves; after it, open() fails.
    # The TTL runs from the fetch (not from the disable, which a loaded
    # machine may reach more than a second later): no ENOKEY before it.
    wait_for(lambda: open_errno(f) == errno.ENOKEY, 10 * SLOW, "ENOKEY after the TTL")
    assert time.monotonic() - t_before_fetch >= 2.0
    # Metadata keeps working: stat and readdir need no key.
    assert os.stat(f).st_size == len(b"tenant data")
    assert "secret.txt" in os.listdir(vol.mnt)
    # New files cannot be created under a revoked key either.
    assert errno_of(lambda: (vol.mnt / "new.txt").write_bytes(b"x")) == errno.ENOKEY
    # The refusal is remembered for a TTL: no KMS request per open().
    admin_call(vol.kms, "/__emu/reset_stats", {})
    for _ in range(50):
        assert open_errno(f) == errno.ENOKEY
    assert kms_stats(vol.kms).get("Decrypt", 0) <= 2
    # Re-enabling the key restores access without a remount.
    c.enable_key(KeyId=vol.key.id)
    wait_for(lambda: open_errno(f) == 0, 10 * SLOW, "access after re-enable")
    assert f.read_bytes() == b"tenant data"
    m.unmount()
    log = m.log()
    assert "DisabledException" in log and "locked" in log
    assert "access restored" in log
    # The audit trail records the refusal and the recovery, in that order.
    events = audit_events(vol)
    refused = [e for e in events if e["event"] == "kms_refused"]
    assert refused and refused[0]["outcome"] == "refused"
    assert refused[0]["tenant"] == "default" and refused[0]["kek_version"] == 1
    assert "DisabledException" in refused[0]["reason"]
    restored = [e for e in events if e["event"] == "kms_access_restored"]
    assert restored and restored[0]["seq"] > refused[0]["seq"]
    assert vol.admin("audit", "verify", vol.backing).returncode == 0


def test_outage_served_from_cache_within_grace(aws_vol):
    vol = aws_vol
    vol.write_config(aws_config(vol.kms, vol.key.arn,
                                extra="key_cache_ttl = 1\noutage_grace = 60\n"
                                      "timeout = 2\nmax_retries = 1\n"))
    vol.init()
    m = vol.mount()
    f = vol.mnt / "f"
    f.write_bytes(b"still here")
    admin_call(vol.kms, "/__emu/down", {"down": True})
    time.sleep(2)                      # past the TTL: the provider is asked, fails
    assert open_errno(f) == 0
    assert f.read_bytes() == b"still here"
    time.sleep(1.5)
    assert open_errno(f) == 0
    admin_call(vol.kms, "/__emu/down", {"down": False})
    m.unmount()
    assert "serving the cached key" in m.log()


def test_outage_beyond_grace_locks_then_recovers(aws_vol):
    vol = aws_vol
    vol.write_config(aws_config(vol.kms, vol.key.arn,
                                extra="key_cache_ttl = 1\noutage_grace = 2\n"
                                      "timeout = 2\nmax_retries = 0\n"))
    vol.init()
    m = vol.mount()
    f = vol.mnt / "f"
    f.write_bytes(b"data")
    admin_call(vol.kms, "/__emu/down", {"down": True})
    wait_for(lambda: open_errno(f) == errno.ENOKEY, 15 * SLOW, "lock-out after the grace")
    admin_call(vol.kms, "/__emu/down", {"down": False})
    wait_for(lambda: open_errno(f) == 0, 15 * SLOW, "recovery after the outage")
    m.unmount()
    names = [e["event"] for e in audit_events(vol)]
    assert "kms_outage_start" in names and "kms_access_restored" in names
    assert names.index("kms_outage_start") < names.index("kms_access_restored")


def test_throttling_and_5xx_are_retried(aws_vol):
    vol = aws_vol
    vol.write_config(aws_config(vol.kms, vol.key.arn, extra="max_retries = 3\n"))
    admin_call(vol.kms, "/__emu/knobs", {"throttle": 2})
    vol.init()                         # Encrypt throttled twice, then succeeds
    admin_call(vol.kms, "/__emu/knobs", {"fail5xx": 2})
    r = vol.admin("test", vol.backing)
    assert r.returncode == 0, r.stdout
    admin_call(vol.kms, "/__emu/knobs", {"drop": 1})
    r = vol.admin("test", vol.backing)
    assert r.returncode == 0, r.stdout
    # More failures than retries: reported, and named.
    admin_call(vol.kms, "/__emu/knobs", {"throttle": 10})
    r = vol.admin("test", vol.backing)
    assert r.returncode == 1
    assert "ThrottlingException" in r.stdout
    admin_call(vol.kms, "/__emu/knobs", {"throttle": 0})


def test_many_opens_cost_at_most_one_kms_call_per_ttl(aws_vol):
    """10,000 opens across 200 files within one TTL: at most one KMS call."""
    vol = aws_vol
    vol.init()
    m = vol.mount()
    files = [vol.mnt / ("f%03d" % i) for i in range(200)]
    for i, p in enumerate(files):
        p.write_bytes(b"%d" % i)
    m = vol.remount(m)                 # an empty cache: the mount unwraps once
    admin_call(vol.kms, "/__emu/reset_stats", {})
    drop_caches()
    opens = 0
    for _ in range(50):
        for p in files:
            fd = os.open(p, os.O_RDONLY)
            os.read(fd, 1)
            os.close(fd)
            opens += 1
    assert opens == 10000
    stats = kms_stats(vol.kms)
    assert stats.get("total", 0) <= 1, stats
    m.unmount()


# ---- credentials and secrets ------------------------------------------------------

def test_shared_credentials_file_profile_and_permissions(aws_vol, tmp_path):
    vol = aws_vol
    vol.env.delenv("AWS_ACCESS_KEY_ID")
    vol.env.delenv("AWS_SECRET_ACCESS_KEY")
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = x\n"
                     "[ekmfs]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (aws_kms.DEFAULT_AKID, aws_kms.DEFAULT_SECRET))
    os.chmod(creds, 0o600)
    vol.env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    vol.write_config(aws_config(vol.kms, vol.key.arn, extra="profile = ekmfs\n")
                     + "[daemon]\nlog_level = debug\n")
    vol.init()
    r = vol.admin("test", vol.backing)
    assert r.returncode == 0, r.stdout
    m = vol.mount()
    (vol.mnt / "x").write_bytes(b"1")
    m.unmount()
    # The secret never appears in any output or log.
    for text in (r.stdout, r.stderr, m.log()):
        assert aws_kms.DEFAULT_SECRET not in text
    # A credentials file others can read is refused, with the reason.
    os.chmod(creds, 0o644)
    r = vol.admin("test", vol.backing)
    assert r.returncode == 1
    assert "mode 0644" in r.stdout and "chmod 600" in r.stdout
    assert aws_kms.DEFAULT_SECRET not in r.stdout + r.stderr


def test_session_token_from_environment(aws_vol):
    vol = aws_vol
    admin_call(vol.kms, "/__emu/credentials", {"AccessKeyId": "ASIAEKMFSSESSION0001",
                                               "SecretAccessKey": "session-secret",
                                               "SessionToken": "the-session-token"})
    vol.env.setenv("AWS_ACCESS_KEY_ID", "ASIAEKMFSSESSION0001")
    vol.env.setenv("AWS_SECRET_ACCESS_KEY", "session-secret")
    vol.env.setenv("AWS_SESSION_TOKEN", "the-session-token")
    vol.init()
    assert vol.admin("test", vol.backing).returncode == 0
    vol.env.setenv("AWS_SESSION_TOKEN", "another-token")
    r = vol.admin("test", vol.backing)
    assert r.returncode == 1 and "UnrecognizedClientException" in r.stdout


@pytest.mark.parametrize("source", ["imds", "container", "sts"])
def test_credential_services(aws_vol, tmp_path, source):
    vol, kms = aws_vol, aws_vol.kms
    vol.env.delenv("AWS_ACCESS_KEY_ID")
    vol.env.delenv("AWS_SECRET_ACCESS_KEY")
    if source == "imds":
        vol.env.delenv("AWS_EC2_METADATA_DISABLED")
        vol.env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", kms.url)
    elif source == "container":
        kms.creds.container_auth = "Bearer container-secret"
        tok = tmp_path / "container-token"
        tok.write_text("Bearer container-secret\n")
        os.chmod(tok, 0o600)
        vol.env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", kms.url + "/container-credentials")
        vol.env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(tok))
    else:
        admin_call(kms, "/__emu/web_identity", {"token": "eyJ.web-identity.token"})
        tok = tmp_path / "web-identity-token"
        tok.write_text("eyJ.web-identity.token")
        os.chmod(tok, 0o600)
        vol.env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tok))
        vol.env.setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/ekmfs")
        vol.env.setenv("AWS_ENDPOINT_URL_STS", kms.url + "/")
    vol.init()
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"via " + source.encode())
    m = vol.remount(m)
    assert (vol.mnt / "f").read_bytes() == b"via " + source.encode()
    m.unmount()
    issued = admin_call(kms, "/__emu/stats")["issued"]
    # init (twice: the volume, then its audit key, docs/AUDIT.md) and each
    # mount fetch once; the credentials are cached in between
    assert 1 <= issued[source] <= 4, issued


# ---- CMK change with ekmfs-rotate --------------------------------------------

def test_rotate_cmk_to_a_new_kms_key_uses_reencrypt(aws_vol):
    """`ekmfs-rotate cmk --to NEW_KEY` re-wraps the KEKs inside KMS
    (ReEncrypt: the KEK never leaves the service); the volume then opens
    with the new key while the old one is disabled."""
    from conftest import ROTATE as rotate, run_cli
    vol = aws_vol
    vol.init()
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"under the old CMK" * 1000)
    m.unmount()
    new = vol.kms.state.create_key("ekmfs new CMK")
    admin_call(vol.kms, "/__emu/reset_stats", {})
    r = run_cli([rotate, "-c", vol.config, "cmk", "--to", new.arn, "--force", vol.backing])
    assert r.returncode == 0, r.stderr
    assert "key_id = %s" % new.arn in r.stdout
    assert kms_stats(vol.kms).get("ReEncrypt", 0) == 1       # one KEK record
    kek = json.loads((vol.backing / ".ekmfs" / "keyring.json").read_text())[
        "tenants"][0]["keks"][0]
    assert kek["cmk_ref"] == new.arn
    botocore_client(vol.kms).disable_key(KeyId=vol.key.id)
    vol.write_config(aws_config(vol.kms, new.arn))
    m = vol.mount()
    assert (vol.mnt / "f").read_bytes() == b"under the old CMK" * 1000
    m.unmount()
    events = [e["event"] for e in audit_events(vol)]
    assert "cmk_changed" in events


# ---- credential sources the AWS SDKs also read --------------------------------

@pytest.mark.parametrize("var", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_region_and_endpoint_from_environment(aws_vol, var):
    """No region or endpoint in the section: AWS_REGION (or
    AWS_DEFAULT_REGION) and AWS_ENDPOINT_URL_KMS, as the SDKs read them."""
    vol = aws_vol
    vol.write_config("[tenant.default]\nprovider = aws-kms\nkey_id = %s\nca_file = %s\n"
                     % (vol.key.arn, vol.kms.ca))
    r = vol.admin("init", vol.backing)
    assert r.returncode != 0 and "needs key_id and region" in r.stderr, r.stderr
    vol.env.setenv("AWS_ENDPOINT_URL_KMS", vol.kms.url + "/")
    # The emulator checks the SigV4 region as KMS does: a wrong one fails.
    vol.env.setenv(var, "eu-west-3")
    r = vol.admin("init", vol.backing)
    assert r.returncode != 0, r.stdout
    vol.env.setenv(var, vol.kms.region)
    vol.init()
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"region from the environment")
    m = vol.remount(m)
    assert (vol.mnt / "f").read_bytes() == b"region from the environment"
    m.unmount()
    assert kms_stats(vol.kms).get("Decrypt", 0) >= 1


def _process_profile(vol, tmp_path, script_body):
    script = tmp_path / "creds.sh"
    script.write_text("#!/bin/sh\n" + script_body)
    os.chmod(script, 0o700)
    config = tmp_path / "aws-config"
    config.write_text("[profile other]\naws_access_key_id = AKIDWRONG\n"
                      "aws_secret_access_key = x\n"
                      "[profile ekmfs]\ncredential_process = %s --flag\n" % script)
    os.chmod(config, 0o600)
    vol.env.setenv("AWS_CONFIG_FILE", str(config))
    vol.env.delenv("AWS_ACCESS_KEY_ID")
    vol.env.delenv("AWS_SECRET_ACCESS_KEY")
    vol.write_config(aws_config(vol.kms, vol.key.arn, extra="profile = ekmfs\ntimeout = 2\n"
                                "max_retries = 0\n") + "[daemon]\nlog_level = debug\n")


def test_credential_process(aws_vol, tmp_path):
    vol = aws_vol
    runs = tmp_path / "runs"
    _process_profile(vol, tmp_path, (
        'echo "$1" >> %s\ncat <<EOF\n{"Version": 1, "AccessKeyId": "%s",\n'
        ' "SecretAccessKey": "%s", "Expiration": "2099-01-01T00:00:00Z"}\nEOF\n')
        % (runs, aws_kms.DEFAULT_AKID, aws_kms.DEFAULT_SECRET))
    vol.init()
    r = vol.admin("test", vol.backing)
    assert r.returncode == 0, r.stdout
    m = vol.mount()
    (vol.mnt / "f").write_bytes(b"process credentials")
    m = vol.remount(m)
    assert (vol.mnt / "f").read_bytes() == b"process credentials"
    m.unmount()
    assert runs.read_text().split() and set(runs.read_text().split()) == {"--flag"}
    for text in (r.stdout, r.stderr, m.log()):
        assert aws_kms.DEFAULT_SECRET not in text


@pytest.mark.parametrize("mode", ["fails", "hangs", "bad-answer"])
def test_credential_process_failures(aws_vol, tmp_path, mode):
    vol = aws_vol
    body = {"fails": "echo oops >&2\nexit 3\n",
            "hangs": "exec sleep 30\n",
            "bad-answer": 'echo \'{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "S"}\'\n'}
    _process_profile(vol, tmp_path, body[mode])
    t0 = time.monotonic()
    r = vol.admin("test", vol.backing)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout
    line = check_line(r, "authentication")
    assert "credential_process of profile 'ekmfs'" in line, line
    assert {"fails": "exit status 3", "hangs": "no answer within the timeout",
            "bad-answer": '"Version": 1'}[mode] in line, line
    assert took < 10 * SLOW, took
