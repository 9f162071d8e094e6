"""The loopback KMS emulators, checked with the vendors' own clients.

If the official client and ekmfs both work against an emulator, ekmfs speaks
the real protocol. AWS: botocore (the engine of boto3 and the aws CLI) and
the aws CLI itself, from Debian (python3-botocore, awscli), with
--endpoint-url and the test CA. Azure: see test_emulators_azure.py.
"""
import base64
import json
import os
import subprocess

import pytest

from byok_helpers import admin_call, aws_kms, botocore_client


@pytest.fixture
def kms(tmp_path):
    emu = aws_kms.KmsEmulator(str(tmp_path)).start()
    yield emu
    emu.stop()


def test_botocore_key_lifecycle_and_context(kms):
    c = botocore_client(kms)
    md = c.create_key(Description="conformance")["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["Arn"].startswith("arn:aws:kms:us-east-1:")
    c.create_alias(AliasName="alias/conf", TargetKeyId=md["KeyId"])
    assert [a["AliasName"] for a in c.list_aliases()["Aliases"]] == ["alias/conf"]
    alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/conf"
    ctx = {"purpose": "test", "n": "1"}
    for key_ref in (md["KeyId"], md["Arn"], "alias/conf", alias_arn):
        e = c.encrypt(KeyId=key_ref, Plaintext=b"p" * 32, EncryptionContext=ctx)
        assert e["KeyId"] == md["Arn"]
        d = c.decrypt(CiphertextBlob=e["CiphertextBlob"], EncryptionContext=ctx)
        assert d["Plaintext"] == b"p" * 32 and d["KeyId"] == md["Arn"]
    # The encryption context is enforced: a missing or changed one fails.
    with pytest.raises(c.exceptions.InvalidCiphertextException):
        c.decrypt(CiphertextBlob=e["CiphertextBlob"])
    with pytest.raises(c.exceptions.InvalidCiphertextException):
        c.decrypt(CiphertextBlob=e["CiphertextBlob"], EncryptionContext={"purpose": "x",
                                                                          "n": "1"})
    # Naming another key than the one that encrypted is refused.
    other = c.create_key()["KeyMetadata"]
    with pytest.raises(c.exceptions.IncorrectKeyException):
        c.decrypt(CiphertextBlob=e["CiphertextBlob"], EncryptionContext=ctx,
                  KeyId=other["KeyId"])
    # ReEncrypt moves a ciphertext to another key without exposing it.
    r = c.re_encrypt(CiphertextBlob=e["CiphertextBlob"], SourceEncryptionContext=ctx,
                     DestinationKeyId=other["Arn"], DestinationEncryptionContext={"a": "b"})
    assert r["KeyId"] == other["Arn"] and r["SourceKeyId"] == md["Arn"]
    assert c.decrypt(CiphertextBlob=r["CiphertextBlob"],
                     EncryptionContext={"a": "b"})["Plaintext"] == b"p" * 32
    # Disable / enable / schedule and cancel deletion.
    c.disable_key(KeyId=md["KeyId"])
    assert c.describe_key(KeyId="alias/conf")["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(c.exceptions.DisabledException):
        c.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    with pytest.raises(c.exceptions.DisabledException):
        c.decrypt(CiphertextBlob=e["CiphertextBlob"], EncryptionContext=ctx)
    c.enable_key(KeyId=md["KeyId"])
    c.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    with pytest.raises(c.exceptions.KMSInvalidStateException):
        c.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    c.cancel_key_deletion(KeyId=md["KeyId"])
    assert c.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(c.exceptions.NotFoundException):
        c.describe_key(KeyId="alias/nope")
    # Rotation keeps the old material: old ciphertexts still decrypt.
    c.enable_key(KeyId=md["KeyId"])
    c.enable_key_rotation(KeyId=md["KeyId"])
    assert c.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is True
    admin_call(kms, "/__emu/rotate", {"KeyId": md["KeyId"]})
    e2 = c.encrypt(KeyId=md["KeyId"], Plaintext=b"new", EncryptionContext=ctx)
    assert e2["CiphertextBlob"][40:44] != e["CiphertextBlob"][40:44]   # new material
    assert c.decrypt(CiphertextBlob=e["CiphertextBlob"],
                     EncryptionContext=ctx)["Plaintext"] == b"p" * 32
    gdk = c.generate_data_key(KeyId=md["KeyId"], KeySpec="AES_256")
    assert len(gdk["Plaintext"]) == 32


def test_botocore_signature_checks(kms):
    good = botocore_client(kms)
    kid = good.create_key()["KeyMetadata"]["KeyId"]
    bad_secret = botocore_client(kms, secret="wrong")
    with pytest.raises(bad_secret.exceptions.ClientError) as e:
        bad_secret.describe_key(KeyId=kid)
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    bad_id = botocore_client(kms, akid="AKIDNOTKNOWN00000000")
    with pytest.raises(bad_id.exceptions.ClientError) as e:
        bad_id.describe_key(KeyId=kid)
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    import botocore.session
    other_region = botocore.session.get_session().create_client(
        "kms", region_name="eu-west-1", endpoint_url=kms.url, verify=kms.ca,
        aws_access_key_id=aws_kms.DEFAULT_AKID, aws_secret_access_key=aws_kms.DEFAULT_SECRET)
    with pytest.raises(other_region.exceptions.ClientError) as e:
        other_region.describe_key(KeyId=kid)
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_botocore_sees_throttling_and_retries(kms):
    from botocore.config import Config
    import botocore.session
    c = botocore.session.get_session().create_client(
        "kms", region_name="us-east-1", endpoint_url=kms.url, verify=kms.ca,
        aws_access_key_id=aws_kms.DEFAULT_AKID, aws_secret_access_key=aws_kms.DEFAULT_SECRET,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    kid = c.create_key()["KeyMetadata"]["KeyId"]
    admin_call(kms, "/__emu/knobs", {"throttle": 1})
    with pytest.raises(c.exceptions.ClientError) as e:
        c.describe_key(KeyId=kid)
    assert e.value.response["Error"]["Code"] == "ThrottlingException"
    admin_call(kms, "/__emu/knobs", {"fail5xx": 1})
    with pytest.raises(c.exceptions.KMSInternalException):
        c.describe_key(KeyId=kid)
    # botocore's own retry logic recovers from a throttle, as with AWS.
    retrying = botocore_client(kms)
    admin_call(kms, "/__emu/knobs", {"throttle": 1})
    assert retrying.describe_key(KeyId=kid)["KeyMetadata"]["KeyId"] == kid


def test_aws_cli(kms, tmp_path):
    c = botocore_client(kms)
    arn = c.create_key()["KeyMetadata"]["Arn"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "AWS_ACCESS_KEY_ID": aws_kms.DEFAULT_AKID,
           "AWS_SECRET_ACCESS_KEY": aws_kms.DEFAULT_SECRET,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CA_BUNDLE": kms.ca,
           "AWS_PAGER": ""}
    plain = tmp_path / "plain"
    plain.write_bytes(b"secret via the aws cli")

    def aws(*args):
        r = subprocess.run(["aws", "--endpoint-url", kms.url, "--output", "json", "kms"]
                           + list(args), env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout) if r.stdout.strip() else {}

    assert aws("describe-key", "--key-id", arn)["KeyMetadata"]["KeyState"] == "Enabled"
    enc = aws("encrypt", "--key-id", arn, "--plaintext", "fileb://%s" % plain,
              "--encryption-context", "tenant=default")
    blob = tmp_path / "blob"
    blob.write_bytes(base64.b64decode(enc["CiphertextBlob"]))
    dec = aws("decrypt", "--ciphertext-blob", "fileb://%s" % blob,
              "--encryption-context", "tenant=default")
    assert base64.b64decode(dec["Plaintext"]) == b"secret via the aws cli"
    aws("disable-key", "--key-id", arn)
    assert aws("describe-key", "--key-id", arn)["KeyMetadata"]["KeyState"] == "Disabled"
