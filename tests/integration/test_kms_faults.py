"""The KMS fault matrix (issue 13, docs/BYOK.md "Cache, revocation and
outages"), for each cloud provider against its loopback emulator
(tests/emulators/, faults.py): connection refused, hang (no byte of
answer), slow drip, 5xx, throttling, key disabled, malformed answer,
oversized answer.

For each fault, on a mounted volume whose default tenant's KEK is past its
key_cache_ttl (outage_grace = 0, so an outage locks out at once): the
outcome an open sees (ENOKEY, never EIO), the time it takes (bounded by
timeout x (max_retries + 1) plus backoff), the audit record (kms_refused,
its reason naming the fault), that a tenant on another key service keeps
working, and that lifting a transient fault restores access without a
remount. The figures are printed (pytest -s).
"""
import errno
import json
import os
import time

import pytest

from byok_helpers import EMULATORS  # noqa: F401  (tests/emulators on sys.path)
from byok_helpers import aws_config, aws_kms, clean_aws_env, use_default_aws_keys
from conftest import SLOW, drop_caches, errno_of

import azure_kv  # noqa: E402

TIMEOUT, RETRIES = 1, 1
# timeout x attempts, the backoff before the retry (at most 200 ms for the
# first), and room for a loaded machine.
BOUND = (TIMEOUT * (RETRIES + 1) + 0.2 + 1.5) * SLOW
EXTRA = ("key_cache_ttl = 1\noutage_grace = 0\ntimeout = %d\nconnect_timeout = %d\n"
         "max_retries = %d\n" % (TIMEOUT, TIMEOUT, RETRIES))


class Aws:
    name = "aws"

    def __init__(self, tmp, vol, monkeypatch):
        clean_aws_env(monkeypatch, vol.root)
        use_default_aws_keys(monkeypatch)
        self.emu = aws_kms.KmsEmulator(str(tmp)).start()
        self.key = self.emu.state.create_key("fault matrix CMK")
        self.faults = self.emu.state.faults

    def config(self):
        return aws_config(self.emu, self.key.arn, extra=EXTRA)

    def disable(self, off=True):
        with self.emu.state.lock:
            self.key.state = "Disabled" if off else "Enabled"

    def stop(self):
        self.faults.set({"hang": False})
        self.emu.stop()


class Azure:
    name = "azure"

    def __init__(self, tmp, vol, monkeypatch):
        monkeypatch.delenv("AZURE_CLIENT_SECRET", raising=False)
        self.emu = azure_kv.KvEmulator(str(tmp)).start()
        self.emu.create_key("ekmfs-cmk")
        self.secret = vol.keydir / "client-secret"
        self.secret.write_text(azure_kv.CLIENT_SECRET + "\n")
        os.chmod(self.secret, 0o600)
        self.faults = self.emu.state.faults

    def config(self):
        return ("[tenant.default]\nprovider = azure-keyvault\nkey_id = %s/keys/ekmfs-cmk\n"
                "tenant_id = %s\nclient_id = %s\nclient_secret_file = %s\n"
                "authority_host = %s\nca_file = %s\n%s"
                % (self.emu.url, azure_kv.TENANT, azure_kv.CLIENT_ID, self.secret,
                   self.emu.url, self.emu.ca, EXTRA))

    def disable(self, off=True):
        with self.emu.state.lock:
            self.emu.state.find("ekmfs-cmk", None).enabled = not off

    def stop(self):
        self.faults.set({"hang": False})
        self.emu.stop()


# fault: (apply, lift, what the audit reason names per provider)
FAULTS = {
    "refused": (lambda p: p.emu.stop(), None,
                {"aws": "cannot reach", "azure": "cannot reach"}),
    "hang": (lambda p: p.faults.set({"hang": True}),
             lambda p: p.faults.set({"hang": False}),
             {"aws": "cannot reach", "azure": "cannot reach"}),
    "slow_drip": (lambda p: p.faults.set({"drip_ms": 100}),
                  lambda p: p.faults.set({"drip_ms": 0}),
                  {"aws": "cannot reach", "azure": "cannot reach"}),
    "5xx": (lambda p: p.faults.set({"fail5xx": 1000}),
            lambda p: p.faults.set({"fail5xx": 0}),
            {"aws": "KMSInternalException", "azure": "InternalServerError"}),
    "throttling": (lambda p: p.faults.set({"throttle": 1000}),
                   lambda p: p.faults.set({"throttle": 0}),
                   {"aws": "ThrottlingException", "azure": "Throttled"}),
    "key_disabled": (lambda p: p.disable(True), lambda p: p.disable(False),
                     {"aws": "DisabledException", "azure": "KeyDisabled"}),
    "malformed": (lambda p: p.faults.set({"malformed": 1000}),
                  lambda p: p.faults.set({"malformed": 0}),
                  {"aws": "no Plaintext", "azure": "no value"}),
    "oversized": (lambda p: p.faults.set({"oversized": 1000}),
                  lambda p: p.faults.set({"oversized": 0}),
                  {"aws": "larger than", "azure": "larger than"}),
}


def open_errno(path):
    return errno_of(lambda: os.close(os.open(path, os.O_RDONLY)))


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("provider", [Aws, Azure], ids=["aws", "azure"])
def test_fault(fresh, tmp_path, monkeypatch, provider, fault):
    vol = fresh
    p = provider(tmp_path, vol, monkeypatch)
    apply, lift, reason = FAULTS[fault]
    try:
        vol.write_config(p.config() + "[tenant.other]\nprovider = local\nkey_file = %s\n"
                         "paths = /other\nenforce_from = 2020-01-01\n"
                         % (vol.keydir / "other.key"))
        vol.init()
        (vol.backing / "other").mkdir()
        m = vol.mount()
        f, g = vol.mnt / "f", vol.mnt / "other" / "g"
        f.write_bytes(b"cloud tenant")
        g.write_bytes(b"local tenant")
        apply(p)
        time.sleep(1.2)                    # past key_cache_ttl
        drop_caches()
        t0 = time.monotonic()
        err = open_errno(f)
        took = time.monotonic() - t0
        t0 = time.monotonic()
        other = open_errno(g)
        other_took = time.monotonic() - t0
        print("\n%s %s: open -> %s in %.2f s (bound %.1f s); other tenant's open %.1f ms"
              % (p.name, fault, errno.errorcode.get(err, err), took, BOUND, other_took * 1e3))
        assert err == errno.ENOKEY, errno.errorcode.get(err, err)
        assert took < BOUND, took
        assert other == 0 and other_took < 0.25 * SLOW, (other, other_took)
        if lift:
            lift(p)
            wait_for(lambda: open_errno(f) == 0, 15 * SLOW, "access after the fault")
            assert f.read_bytes() == b"cloud tenant"
        m.unmount()
    finally:
        p.stop()
    events = [json.loads(l) for l in (vol.root / "audit.log").read_text().splitlines()
              if l.strip()]
    refused = [e for e in events if e["event"] == "kms_refused" and e["tenant"] == "default"]
    assert refused, [e["event"] for e in events]
    assert refused[0]["outcome"] == "refused"
    assert reason[p.name] in refused[0]["reason"], refused[0]["reason"]
    print("  audit kms_refused: %s" % refused[0]["reason"][:200])
    if lift:
        assert any(e["event"] == "kms_access_restored" for e in events)
