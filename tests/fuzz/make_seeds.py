#!/usr/bin/python3
"""tests/fuzz/make_seeds.py - (re)generate the seed corpora written as
code: the format harnesses' seeds from the test vectors
(tests/vectors/format_vectors.txt), and the key-service answers of the KMS
harness (shaped like the real services' and the emulators' in
tests/emulators/). Seeds taken from real runs live in corpus/NAME/ beside
these (their names do not start with "vec-" or "gen-") and are not touched.

Run from anywhere: python3 tests/fuzz/make_seeds.py
"""
import base64
import hashlib
import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parent / "vectors" / "format_vectors.txt"
CBLOCK_V2 = 4096 + 24 + 16


def vectors():
    v = {}
    for line in VECTORS.read_text().splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        k, _, val = line.partition("=")
        v[k.strip()] = bytes.fromhex(val.strip())
    return v


def put(name, seed, data, prefix="vec-"):
    d = HERE / "corpus" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / (prefix + seed)).write_bytes(data)


def main():
    v = vectors()
    files = {
        "a": v["a_header"] + v["a_block0"] + v["a_block1"],
        "b": v["b_header"] + v["b_block0"],
        "c": v["c_header"] + v["c_block0"] + v["c_block1"],
    }
    assert hashlib.sha256(files["c"]).digest() == v["c_file_sha256"]
    d = bytearray(v["d_header"])
    for i in range(7):
        if "d_block%d" % i in v:
            d += v["d_block%d" % i]
        else:
            d += bytes(CBLOCK_V2)          # a hole: nothing stored that counts
    files["d"] = bytes(d)
    assert hashlib.sha256(files["d"]).digest() == v["d_file_sha256"]
    journal_e = v["e_journal_header"] + v["e_rec0"]

    # header: backing files as they start
    for k, f in files.items():
        put("header", k, f)
    put("header", "c-sector0", v["c_header"][:512])

    # state: flags (bit 0 keep the MAC) + record + a script of hole ops
    script = bytes([0, 10, 5, 0, 30, 3, 1, 12, 1, 0, 16, 20, 2, 25, 0, 3, 7, 7, 1, 0, 40])
    put("state", "c", b"\0" + v["c_state"] + script)
    put("state", "d", b"\0" + v["d_state"] + script)
    put("state", "d-ownmac", b"\1" + v["d_state"])
    put("state", "empty", b"\0" + bytes(256) + script)

    # journal: flags (bit 0 keep the MAC) + journal (d's key)
    put("journal", "e", b"\1" + journal_e)
    put("journal", "e-remac", b"\0" + journal_e + bytes(16))

    # block: mode (bit 0 v2, bit 1 seal) + index u64 + stored block / nonce+plaintext
    idx = lambda i: struct.pack("<Q", i)
    put("block", "c0", b"\1" + idx(0) + v["c_block0"])
    put("block", "c1", b"\1" + idx(1) + v["c_block1"])
    put("block", "a0", b"\0" + idx(0) + v["a_block0"])
    put("block", "a1", b"\0" + idx(1) + v["a_block1"])
    put("block", "seal-v2", b"\3" + idx(9) + bytes(range(24)) + b"plaintext " * 30 + b"\x55")
    put("block", "seal-v1", b"\2" + idx(1) + bytes(range(12)) + b"x" * 4096 + b"\x01")

    # content: flags (bit 0 settle, bit 1 in use) + file length u32 + file + journal
    def content(flags, f, j=b""):
        return bytes([flags]) + struct.pack("<I", len(f)) + f + j
    for k in ("a", "b", "c", "d"):
        put("content", k, content(0, files[k]))
    put("content", "d-journal-settle", content(1, files["d"], journal_e))
    put("content", "d-journal-in-use", content(2, files["d"], journal_e))
    put("content", "d-journal", content(0, files["d"], journal_e))

    kms_seeds()
    creds_seeds()
    config_seeds()
    keyring_seeds()


SEP = b"\n~~~\n"        # between two responses (tests/fuzz/transport.c)
AWS, AZURE, AZURE_MSI, AZURE_HSM = 0, 1, 2, 3          # fuzz_kms.c's tenants
WRAP, UNWRAP, PROBE, REWRAP = 0, 1, 2, 3


def resp(status, obj, auth=None):
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return str(status).encode() + (b" " + auth if auth else b"") + b"\n" + body


def kms(name, tenant, op, *responses):
    put("kms", name, bytes([tenant, op]) + SEP.join(responses), prefix="gen-")


def kms_seeds():
    arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    kek = base64.b64encode(bytes(range(32))).decode()
    blob = base64.b64encode(bytes(range(200))).decode()
    err = lambda t, m: {"__type": t, "message": m}
    kms("aws-wrap", AWS, WRAP, resp(200, {"CiphertextBlob": blob, "KeyId": arn,
                                          "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}))
    kms("aws-unwrap", AWS, UNWRAP, resp(200, {"KeyId": arn, "Plaintext": kek,
                                              "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}))
    kms("aws-probe", AWS, PROBE, resp(200, {"KeyMetadata": {
        "AWSAccountId": "111122223333", "KeyId": arn.split("/")[-1], "Arn": arn,
        "Enabled": True, "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT",
        "KeySpec": "SYMMETRIC_DEFAULT", "CreationDate": 1700000000.0}}))
    kms("aws-probe-disabled", AWS, PROBE, resp(200, {"KeyMetadata": {
        "Arn": arn, "KeyState": "PendingDeletion"}}))
    kms("aws-rewrap", AWS, REWRAP, resp(200, {"CiphertextBlob": blob, "KeyId": arn,
                                              "SourceKeyId": arn}))
    kms("aws-throttled", AWS, UNWRAP,
        resp(400, err("ThrottlingException", "Rate exceeded")),
        resp(503, b"<html>Service Unavailable</html>"),
        resp(200, {"KeyId": arn, "Plaintext": kek}))
    kms("aws-rejected", AWS, UNWRAP, resp(400, err("com.amazonaws.kms#InvalidCiphertextException",
                                                   "")))
    kms("aws-denied", AWS, WRAP, resp(400, err("AccessDeniedException", "User is not "
                                               "authorized to perform kms:Encrypt")))
    kms("aws-auth", AWS, PROBE, resp(403, {"__type": "UnrecognizedClientException",
                                          "Message": "The security token is invalid"}))
    kms("aws-notjson", AWS, UNWRAP, resp(502, b"<html>502 Bad Gateway</html>"))

    tok = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
           "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJmdXp6In0.c2ln"}
    msi = dict(tok, expires_in="86399", resource="https://vault.azure.net")
    kid = "https://fuzz.vault.azure.net/keys/kek/0123456789abcdef"
    b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    azerr = lambda c, m, inner=None: {"error": dict({"code": c, "message": m},
                                                    **({"innererror": {"code": inner}}
                                                       if inner else {}))}
    key = {"key": {"kid": kid, "kty": "RSA", "key_ops": ["wrapKey", "unwrapKey"],
                   "n": b64u(bytes(256)), "e": "AQAB"},
           "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000,
                          "recoveryLevel": "Recoverable+Purgeable"}}
    kms("azure-wrap", AZURE, WRAP, resp(200, tok),
        resp(200, {"kid": kid, "value": b64u(bytes(range(256)))}))
    kms("azure-unwrap", AZURE, UNWRAP, resp(200, tok),
        resp(200, {"kid": kid, "value": b64u(bytes(range(32)))}))
    kms("azure-probe", AZURE, PROBE, resp(200, tok), resp(200, key))
    kms("azure-probe-disabled", AZURE, PROBE, resp(200, tok),
        resp(200, dict(key, attributes={"enabled": False})))
    kms("azure-msi-unwrap", AZURE_MSI, UNWRAP, resp(200, msi),
        resp(200, {"kid": kid, "value": b64u(bytes(range(32)))}))
    kms("azure-hsm-wrap", AZURE_HSM, WRAP, resp(200, tok),
        resp(200, {"kid": "https://fuzz.managedhsm.azure.net/keys/kek/v2",
                   "value": b64u(bytes(40))}))
    kms("azure-401-refresh", AZURE, UNWRAP, resp(200, tok),
        resp(401, azerr("Unauthorized", "AKV10022: Invalid audience"),
             b'Bearer authorization="https://login.microsoftonline.com/fuzz", '
             b'resource="https://vault.azure.net"'),
        resp(200, tok), resp(200, {"kid": kid, "value": b64u(bytes(range(32)))}))
    kms("azure-disabled", AZURE, WRAP, resp(200, tok),
        resp(403, azerr("Forbidden", "Operation wrapKey is not allowed on a disabled key.",
                        "KeyDisabled")))
    kms("azure-rejected", AZURE, UNWRAP, resp(200, tok),
        resp(400, azerr("BadParameter", "Invalid ciphertext")))
    kms("azure-throttled", AZURE, UNWRAP, resp(200, tok),
        resp(429, azerr("Throttled", "Request was not processed because too many requests")),
        resp(200, {"kid": kid, "value": b64u(bytes(range(32)))}))
    kms("azure-token-refused", AZURE, WRAP,
        resp(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid "
                   "client secret provided."}))
    kms("azure-notfound", AZURE_MSI, PROBE, resp(200, msi),
        resp(404, azerr("KeyNotFound", "A key with (name/id) kek was not found")))



def creds(name, source, profile, body):
    put("aws_creds", name, bytes([source, profile]) + body, prefix="gen-")


def creds_seeds():
    akid, secret = "ASIAFUZZEXAMPLE12345", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    token = "IQoJb3JpZ2luX2VjEFUaCXVzLWVhc3QtMSJGMEQCIFuzzSessionTokenExample=="
    creds("file-default", 0, 0, ("# credentials\n[default]\naws_access_key_id = %s\n"
                                 "aws_secret_access_key = %s\n\n[other]\n"
                                 "aws_access_key_id=AKIDOTHER\n" % (akid, secret)).encode())
    creds("file-profile-token", 0, 1, ("[default]\naws_access_key_id=x\n[fuzz]\n"
                                       "aws_access_key_id=%s\r\naws_secret_access_key=%s\r\n"
                                       "aws_session_token = %s\r\n" % (akid, secret, token)
                                       ).encode())
    creds("config-profile", 1, 1, ("[default]\nregion = eu-west-1\n; comment\n"
                                   "[profile fuzz]\nregion=eu-west-1\naws_access_key_id=%s\n"
                                   "aws_secret_access_key=%s\n" % (akid, secret)).encode())
    creds("config-role", 1, 0, b"[default]\nrole_arn = arn:aws:iam::111122223333:role/fuzz\n"
          b"web_identity_token_file = /nonexistent/token\nrole_session_name = fuzz\n")
    sts = ('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
           '2011-06-15/">\n  <AssumeRoleWithWebIdentityResult>\n    <Credentials>\n'
           '      <SessionToken>%s</SessionToken>\n      <SecretAccessKey>%s'
           '</SecretAccessKey>\n      <Expiration>2030-01-01T00:00:00Z</Expiration>\n'
           '      <AccessKeyId>%s</AccessKeyId>\n    </Credentials>\n'
           '    <SubjectFromWebIdentityToken>fuzz</SubjectFromWebIdentityToken>\n'
           '  </AssumeRoleWithWebIdentityResult>\n</AssumeRoleWithWebIdentityResponse>\n'
           % (token, secret, akid))
    creds("sts", 2, 0, b"200\n" + sts.encode())
    creds("sts-refused", 2, 0, b"403\n<ErrorResponse><Error><Type>Sender</Type><Code>"
          b"AccessDenied</Code><Message>Not authorized</Message></Error></ErrorResponse>")
    cj = json.dumps({"AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                     "Expiration": "2030-01-01T00:00:00Z", "RoleArn": "arn:aws:iam::1:role/r"})
    creds("container", 3, 0, b"200\n" + cj.encode())
    creds("container-fraction", 3, 0, b"200\n" + cj.replace("00Z", "00.123Z").encode())
    creds("imds", 4, 0, b"200\nAQAEAFuzzImdsToken==" + SEP + b"200\nfuzz-role\n" + SEP +
          b"200\n" + json.dumps({"Code": "Success", "LastUpdated": "2029-12-31T23:00:00Z",
                                 "Type": "AWS-HMAC", "AccessKeyId": akid,
                                 "SecretAccessKey": secret, "Token": token,
                                 "Expiration": "2030-01-01T00:00:00Z"}).encode())
    creds("imds-no-role", 4, 0, b"200\ntok" + SEP + b"404\n")



def config_seeds():
    put("config", "daemon", b"""[daemon]
attr_timeout = 1.5
entry_timeout = 0
max_threads = 8
writeback_cache = false
read_ahead_kb = 0
log_level = debug
log_file = /var/log/ekmfs/vault.log
metrics_file = /var/lib/prometheus/node-exporter/ekmfs.prom
metrics_interval = 15
control_dir = /run/ekmfs
scheduled_rotation = external
rotate_program = /usr/local/bin/ekmfs-rotate
rotation_check_interval = 3600

[audit]
file = /var/log/ekmfs/vault.log
syslog = true

[tenant.default]
key_file = /etc/ekmfs/vault.key
rotation_days = 90
min_cmk_change_interval = 24h
""", prefix="gen-")
    put("config", "tenants", b"""# every provider, tenant policies
[tenant.default]
passphrase_file = /etc/ekmfs/passphrase
scrypt_n = 16384
key_cache_ttl = 5m

[tenant.acme]
provider = aws-kms
key_id = alias/acme-ekmfs
region = eu-west-1
endpoint = https://kms-fips.eu-west-1.amazonaws.com/
profile = acme
paths = /bots/acme, /apps/acme-prod
enforce_from = 2027-01-01
key_cache_ttl = 300
outage_grace = 1h
connect_timeout = 2.5
timeout = 10
max_retries = 5
ca_file = /etc/ekmfs/kms-ca.pem
key_cache_uses = 0

[tenant.contoso]
provider = azure-keyvault
key_id = https://contoso.vault.azure.net/keys/ekmfs-cmk/0123456789abcdef0123456789abcdef
tenant_id = 72f988bf-86f1-41af-91ab-2d7cd011db47
client_id = 00000000-0000-0000-0000-000000000000
client_secret_file = /etc/ekmfs/azure-client-secret
authority_host = https://login.microsoftonline.com
api_version = 7.4
algorithm = RSA-OAEP-256
paths = /contoso
enabled = false

[tenant.hsm]
provider = azure-keyvault
key_id = https://contoso.managedhsm.azure.net/keys/cmk
use_managed_identity = true
imds_endpoint = http://169.254.169.254
algorithm = A256KW
paths = /hsm/a, /hsm/b/c
enforce_from = 2026-02-28T12:00:00Z

[tenant.local-2]
provider = local
key_file = /etc/ekmfs/tenants/l2.key
paths = /l2
""", prefix="gen-")
    put("config", "prompt", b"[tenant.default]\npassphrase = prompt\n", prefix="gen-")
    put("config", "overlap", b"[tenant.a]\nprovider = local\nkey_file = /k\npaths = /x\n"
        b"[tenant.b]\nprovider = local\nkey_file = /k\npaths = /x/y\n", prefix="gen-")
    put("config", "example", (HERE.parent.parent / "ekmfs.ini.example").read_bytes(),
        prefix="gen-")


def keyring_seeds():
    meta = HERE / "fixtures" / "audit" / "backing" / ".ekmfs"
    put("keyring", "fixture-keyring", b"\0" + (meta / "keyring.json").read_bytes(),
        prefix="gen-")
    put("keyring", "fixture-volume", b"\1" + (meta / "volume.json").read_bytes(),
        prefix="gen-")
    b64 = lambda b: base64.b64encode(b).decode()
    kek = lambda v, st, ref, ver, blob, mac=None: dict(
        {"version": v, "state": st, "created": "2026-01-02T03:04:05Z", "cmk_ref": ref,
         "cmk_version": ver, "wrapped": b64(blob) if blob else ""},
        **({"mac": b64(mac)} if mac else {}))
    doc = {"format": "ekmfs-keyring", "version": 1, "generation": 41, "tenants": [
        {"name": "default", "id": 1, "provider": "local", "kdf": "scrypt:N=65536,r=8,p=1,"
         "salt=" + b64(bytes(16)), "current_version": 2, "last_rotation": "2026-03-01T00:00:00Z",
         "last_cmk_change": "2026-01-02T03:04:05Z", "keks": [
             kek(1, "retired", "local:passphrase", "00ff00ff00ff00ff", bytes(range(60))),
             kek(2, "active", "local:passphrase", "00ff00ff00ff00ff", bytes(range(60)))]},
        {"name": "acme", "id": 7, "provider": "aws-kms", "kdf": "", "current_version": 1,
         "last_rotation": "2026-01-02T03:04:05Z", "last_cmk_change": "2026-01-02T03:04:06Z",
         "keks": [kek(1, "active", "alias/acme", "arn:aws:kms:eu-west-1:1:key/k",
                      bytes(range(184)))]},
        {"name": "contoso", "id": 9, "provider": "azure-keyvault", "kdf": "alg=RSA-OAEP-256",
         "current_version": 3, "last_rotation": "2026-01-02T03:04:05Z",
         "last_cmk_change": "2026-01-02T03:04:05Z", "enabled": False, "keks": [
             kek(1, "destroyed", "https://c.vault.azure.net/keys/k", "", b""),
             kek(3, "active", "https://c.vault.azure.net/keys/k",
                 "https://c.vault.azure.net/keys/k/0123abcd", bytes(256), bytes(32))]}]}
    put("keyring", "tenants", b"\0" + json.dumps(doc, indent=2).encode(), prefix="gen-")
    put("keyring", "volume-v1", b"\1" + json.dumps(
        {"format": "ekmfs-volume", "version": 1, "volume_id": "00112233445566778899aabbccddeeff",
         "block_size": 4096, "created": "2025-12-31T23:59:59Z"}).encode(), prefix="gen-")


if __name__ == "__main__":
    main()
