"""Shared pieces of the BYOK integration tests (test_byok*.py, test_emulators.py).

Owns: starting the loopback KMS emulators of tests/emulators/ in this
process, the clean AWS environment every test starts from (no ~/.aws, no
instance metadata probing), the emulator's admin endpoint (knobs, stats),
and writing an ekmfs.ini whose default tenant uses a cloud provider.
"""
import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path

EMULATORS = Path(__file__).resolve().parents[1] / "emulators"
sys.path.insert(0, str(EMULATORS))

import aws_kms  # noqa: E402  (tests/emulators)


def clean_aws_env(monkeypatch, root):
    """Only what a test sets reaches ekmfs: no credentials from the machine."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(Path(root) / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(Path(root) / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def use_default_aws_keys(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws_kms.DEFAULT_AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_kms.DEFAULT_SECRET)


def admin_call(emu, path, body=None):
    """POST (or GET when body is None) to the emulator's /__emu/ endpoint."""
    ctx = ssl.create_default_context(cafile=emu.ca)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(emu.url + path, data=data,
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def kms_stats(emu):
    return admin_call(emu, "/__emu/stats")["ops"]


def aws_config(emu, key_id, extra="", region=None, endpoint=None):
    return ("[tenant.default]\nprovider = aws-kms\nkey_id = %s\nregion = %s\n"
            "endpoint = %s/\nca_file = %s\n%s"
            % (key_id, region or emu.region, endpoint or emu.url, emu.ca, extra))


def botocore_client(emu, akid=None, secret=None):
    import botocore.session
    s = botocore.session.get_session()
    return s.create_client("kms", region_name=emu.region, endpoint_url=emu.url,
                           verify=emu.ca,
                           aws_access_key_id=akid or aws_kms.DEFAULT_AKID,
                           aws_secret_access_key=secret or aws_kms.DEFAULT_SECRET)
