#!/usr/bin/python3
"""A loopback emulator of AWS KMS that speaks the real wire protocol.

Owns: an HTTPS server (Python stdlib http.server + ssl; AES-GCM from
python3-cryptography) implementing the AWS JSON 1.1 protocol of KMS
(POST / with X-Amz-Target: TrentService.<Op>) for the operations ekmfs and
the tests use, with real SigV4 verification (a bad signature, an unknown
access key, a wrong region or a stale date is refused as AWS refuses it),
keys with states (enable, disable, pending deletion), aliases, rotation that
keeps the old key material, and EncryptionContext enforcement. It also
answers the credential services of the AWS SDK chain (EC2 IMDSv2, container
credentials, STS AssumeRoleWithWebIdentity) so those paths can be tested.

Knobs for the tests, on the same port under /__emu/ (never counted as KMS
requests): POST /__emu/knobs {"throttle": N, "fail5xx": N, "drop": N,
"malformed": N, "oversized": N} applies to the next N KMS requests,
{"latency_ms": MS, "drip_ms": MS, "hang": bool} to every one while set
(faults.py); POST /__emu/rotate
{"KeyId": K} rotates key material as KMS's automatic rotation does (older
botocore lacks RotateKeyOnDemand); GET /__emu/stats gives
request counts per operation; POST /__emu/reset_stats; POST /__emu/down
{"down": true} refuses every KMS request at the TCP level (connection
dropped) until turned off.

The emulator's own conformance is checked with the official AWS clients
(botocore and the aws CLI from Debian) in tests/integration/test_emulators.py.

Run standalone: aws_kms.py [--port N] [--dir D]: writes a CA and prints
"READY <port> <ca.pem>" then serves until killed.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testca  # noqa: E402
from faults import Faults, send_raw  # noqa: E402

ACCOUNT = "111122223333"
DEFAULT_AKID = "AKIDEKMFSTEST0000001"
DEFAULT_SECRET = "ekmfs/test/secret/key/0000000000000000000"
BLOB_MAGIC = b"EKMU"
MAX_SKEW = 15 * 60


class KmsError(Exception):
    def __init__(self, kind, message, status=400):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


# ---- SigV4 verification (an implementation independent of ekmfs's) --------

def _uri_encode(s, keep_slash):
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(s, safe=safe)


def _canonical_path(raw):
    path = urllib.parse.unquote(raw)
    segs = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    out = "/" + "/".join(_uri_encode(s, False) for s in segs)
    if len(segs) and path.endswith("/"):
        out += "/"
    return out


def _canonical_query(q):
    pairs = []
    for part in q.split("&") if q else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((_uri_encode(urllib.parse.unquote(k), False),
                      _uri_encode(urllib.parse.unquote(v), False)))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def _signing_key(secret, date, region, service):
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
                     r"\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})$")


def verify_sigv4(method, raw_path, headers, body, creds, region, service, now=None):
    """Raise KmsError unless the request carries a valid SigV4 signature by a
    known access key. headers: list of (name, value) as received."""
    auth = None
    for n, v in headers:
        if n.lower() == "authorization":
            auth = v
    if not auth:
        raise KmsError("MissingAuthenticationTokenException",
                       "Missing Authentication Token")
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise KmsError("IncompleteSignatureException",
                       "Authorization header requires Credential, SignedHeaders, Signature")
    akid, date, reg, svc, signed, sig = m.groups()
    if akid not in creds:
        raise KmsError("UnrecognizedClientException",
                       "The security token included in the request is invalid.")
    secret, token, expires = creds[akid]
    if expires is not None and time.time() > expires:
        raise KmsError("ExpiredTokenException", "The security token included in the "
                       "request is expired")
    if svc != service:
        raise KmsError("InvalidSignatureException",
                       "Credential should be scoped to correct service: '%s'." % service)
    if reg != region:
        raise KmsError("InvalidSignatureException",
                       "Credential should be scoped to a valid region.")
    hmap = {}
    for n, v in headers:
        hmap.setdefault(n.lower(), []).append(" ".join(v.strip().split()))
    amz_date = (hmap.get("x-amz-date") or [""])[0]
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        raise KmsError("IncompleteSignatureException", "X-Amz-Date is missing or malformed")
    if abs((now or time.time()) - t) > MAX_SKEW or amz_date[:8] != date:
        raise KmsError("InvalidSignatureException", "Signature expired: %s is now earlier "
                       "or later than the allowed window." % amz_date)
    names = signed.split(";")
    if "host" not in names or names != sorted(names):
        raise KmsError("InvalidSignatureException", "SignedHeaders must include host, sorted")
    if token is not None:
        if (hmap.get("x-amz-security-token") or [None])[0] != token or \
                "x-amz-security-token" not in names:
            raise KmsError("UnrecognizedClientException",
                           "The security token included in the request is invalid.")
    path, _, query = raw_path.partition("?")
    canon = "\n".join([
        method, _canonical_path(path), _canonical_query(query),
        "".join("%s:%s\n" % (n, ",".join(hmap.get(n, []))) for n in names),
        signed, hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, "%s/%s/%s/aws4_request" % (date, reg, svc),
                     hashlib.sha256(canon.encode()).hexdigest()])
    want = hmac.new(_signing_key(secret, date, reg, svc), sts.encode(),
                    hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        raise KmsError("InvalidSignatureException",
                       "The request signature we calculated does not match the signature "
                       "you provided. Check your AWS Secret Access Key and signing method.")
    return akid


# ---- the key store ---------------------------------------------------------

class Key:
    def __init__(self, region, description=""):
        self.id = str(uuid.uuid4())
        self.arn = "arn:aws:kms:%s:%s:key/%s" % (region, ACCOUNT, self.id)
        self.state = "Enabled"
        self.materials = [AESGCM.generate_key(256)]
        self.rotation = False
        self.description = description
        self.created = time.time()
        self.deletion_date = None
        self.denied = set()       # access key ids refused by the key policy

    def metadata(self):
        md = {"AWSAccountId": ACCOUNT, "KeyId": self.id, "Arn": self.arn,
              "CreationDate": self.created, "Enabled": self.state == "Enabled",
              "Description": self.description, "KeyUsage": "ENCRYPT_DECRYPT",
              "KeyState": self.state, "Origin": "AWS_KMS", "KeyManager": "CUSTOMER",
              "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
              "KeySpec": "SYMMETRIC_DEFAULT",
              "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False}
        if self.deletion_date:
            md["DeletionDate"] = self.deletion_date
        return md


def _aad(ctx):
    return json.dumps(ctx or {}, sort_keys=True, separators=(",", ":")).encode()


class KmsState:
    def __init__(self, region):
        self.region = region
        self.lock = threading.Lock()
        self.keys = {}
        self.aliases = {}
        self.creds = {DEFAULT_AKID: (DEFAULT_SECRET, None, None)}
        self.stats = {}
        self.faults = Faults()

    def resolve(self, key_id, must_exist=True):
        if not isinstance(key_id, str) or not key_id:
            raise KmsError("ValidationException", "KeyId is required")
        kid = key_id
        m = re.match(r"arn:aws:kms:([^:]+):(\d+):(key|alias)/(.+)$", key_id)
        if m:
            if m.group(1) != self.region or m.group(2) != ACCOUNT:
                raise KmsError("NotFoundException", "Invalid arn %s" % key_id)
            kid = m.group(4) if m.group(3) == "key" else "alias/" + m.group(4)
        if kid.startswith("alias/"):
            if kid not in self.aliases:
                raise KmsError("NotFoundException", "Alias %s is not found." % key_id)
            kid = self.aliases[kid]
        if kid not in self.keys:
            raise KmsError("NotFoundException", "Key '%s' does not exist" % key_id)
        return self.keys[kid]

    @staticmethod
    def usable(key, akid):
        if akid in key.denied:
            raise KmsError("AccessDeniedException", "User is not authorized to perform "
                           "this operation on %s because no resource-based policy allows it"
                           % key.arn)
        if key.state == "Disabled":
            raise KmsError("DisabledException", "%s is disabled." % key.arn)
        if key.state != "Enabled":
            raise KmsError("KMSInvalidStateException", "%s is pending deletion." % key.arn)

    def create_key(self, description=""):
        with self.lock:
            k = Key(self.region, description)
            self.keys[k.id] = k
            return k


def _b64(data):
    return base64.b64encode(data).decode()


def _unb64(s, field):
    try:
        return base64.b64decode(s, validate=True)
    except Exception:
        raise KmsError("ValidationException", "%s is not valid base64" % field)


def _seal(key, ctx, plaintext):
    idx = len(key.materials) - 1
    nonce = os.urandom(12)
    ct = AESGCM(key.materials[idx]).encrypt(nonce, plaintext, _aad(ctx))
    return BLOB_MAGIC + key.id.encode() + idx.to_bytes(4, "big") + nonce + ct


def _open(state, blob, ctx):
    if len(blob) < 4 + 36 + 4 + 12 + 16 or blob[:4] != BLOB_MAGIC:
        raise KmsError("InvalidCiphertextException", "")
    kid = blob[4:40].decode(errors="replace")
    key = state.keys.get(kid)
    if key is None:
        raise KmsError("InvalidCiphertextException", "")
    idx = int.from_bytes(blob[40:44], "big")
    if idx >= len(key.materials):
        raise KmsError("InvalidCiphertextException", "")
    return key, idx, blob[44:56], blob[56:]


def _decrypt(state, req, akid, blob_field="CiphertextBlob", key_field="KeyId",
             ctx_field="EncryptionContext"):
    blob = _unb64(req.get(blob_field, ""), blob_field)
    key, idx, nonce, ct = _open(state, blob, req.get(ctx_field))
    if req.get(key_field):
        want = state.resolve(req[key_field])
        if want is not key:
            raise KmsError("IncorrectKeyException", "The key ID in the request does not "
                           "identify a CMK that can perform this operation.")
    state.usable(key, akid)
    try:
        pt = AESGCM(key.materials[idx]).decrypt(nonce, ct, _aad(req.get(ctx_field)))
    except Exception:
        raise KmsError("InvalidCiphertextException", "")
    return key, pt


def _check_ctx(ctx):
    if ctx is None:
        return
    if not isinstance(ctx, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in ctx.items()):
        raise KmsError("ValidationException", "EncryptionContext must map strings to strings")


def do_op(state, op, req, akid):
    """One KMS operation; returns the answer object or raises KmsError."""
    with state.lock:
        if op == "CreateKey":
            k = Key(state.region, req.get("Description", ""))
            state.keys[k.id] = k
            return {"KeyMetadata": k.metadata()}
        if op == "DescribeKey":
            k = state.resolve(req.get("KeyId"))
            if akid in k.denied:
                state.usable(k, akid)
            return {"KeyMetadata": k.metadata()}
        if op == "ListKeys":
            return {"Keys": [{"KeyId": k.id, "KeyArn": k.arn} for k in state.keys.values()],
                    "Truncated": False}
        if op == "Encrypt":
            k = state.resolve(req.get("KeyId"))
            state.usable(k, akid)
            _check_ctx(req.get("EncryptionContext"))
            pt = _unb64(req.get("Plaintext", ""), "Plaintext")
            if not 1 <= len(pt) <= 4096:
                raise KmsError("ValidationException", "Plaintext must be 1..4096 bytes")
            return {"CiphertextBlob": _b64(_seal(k, req.get("EncryptionContext"), pt)),
                    "KeyId": k.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
        if op == "Decrypt":
            _check_ctx(req.get("EncryptionContext"))
            k, pt = _decrypt(state, req, akid)
            return {"KeyId": k.arn, "Plaintext": _b64(pt),
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
        if op == "ReEncrypt":
            src, pt = _decrypt(state, req, akid, key_field="SourceKeyId",
                               ctx_field="SourceEncryptionContext")
            dst = state.resolve(req.get("DestinationKeyId"))
            state.usable(dst, akid)
            ctx = req.get("DestinationEncryptionContext")
            _check_ctx(ctx)
            return {"CiphertextBlob": _b64(_seal(dst, ctx, pt)), "KeyId": dst.arn,
                    "SourceKeyId": src.arn, "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                    "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
        if op == "GenerateDataKey":
            k = state.resolve(req.get("KeyId"))
            state.usable(k, akid)
            n = req.get("NumberOfBytes") or {"AES_256": 32, "AES_128": 16}.get(
                req.get("KeySpec"), 0)
            if not 1 <= n <= 1024:
                raise KmsError("ValidationException", "KeySpec or NumberOfBytes required")
            pt = os.urandom(n)
            return {"CiphertextBlob": _b64(_seal(k, req.get("EncryptionContext"), pt)),
                    "Plaintext": _b64(pt), "KeyId": k.arn}
        if op in ("EnableKey", "DisableKey"):
            k = state.resolve(req.get("KeyId"))
            if k.state == "PendingDeletion":
                raise KmsError("KMSInvalidStateException", "%s is pending deletion." % k.arn)
            k.state = "Enabled" if op == "EnableKey" else "Disabled"
            return {}
        if op == "ScheduleKeyDeletion":
            k = state.resolve(req.get("KeyId"))
            days = req.get("PendingWindowInDays", 30)
            if not 7 <= days <= 30:
                raise KmsError("ValidationException", "PendingWindowInDays must be 7..30")
            k.state = "PendingDeletion"
            k.deletion_date = time.time() + days * 86400
            return {"KeyId": k.arn, "DeletionDate": k.deletion_date,
                    "KeyState": k.state, "PendingWindowInDays": days}
        if op == "CancelKeyDeletion":
            k = state.resolve(req.get("KeyId"))
            if k.state != "PendingDeletion":
                raise KmsError("KMSInvalidStateException", "%s is not pending deletion."
                               % k.arn)
            k.state, k.deletion_date = "Disabled", None
            return {"KeyId": k.arn}
        if op == "CreateAlias":
            name = req.get("AliasName", "")
            if not name.startswith("alias/") or name.startswith("alias/aws/"):
                raise KmsError("ValidationException", "Alias must start with alias/")
            if name in state.aliases:
                raise KmsError("AlreadyExistsException", "An alias with the name %s already "
                               "exists" % name)
            state.aliases[name] = state.resolve(req.get("TargetKeyId")).id
            return {}
        if op == "DeleteAlias":
            if state.aliases.pop(req.get("AliasName", ""), None) is None:
                raise KmsError("NotFoundException", "Alias is not found.")
            return {}
        if op == "ListAliases":
            return {"Aliases": [{"AliasName": a, "AliasArn": "arn:aws:kms:%s:%s:%s"
                                 % (state.region, ACCOUNT, a), "TargetKeyId": t}
                                for a, t in sorted(state.aliases.items())],
                    "Truncated": False}
        if op in ("EnableKeyRotation", "DisableKeyRotation"):
            k = state.resolve(req.get("KeyId"))
            k.rotation = op == "EnableKeyRotation"
            return {}
        if op == "GetKeyRotationStatus":
            return {"KeyRotationEnabled": state.resolve(req.get("KeyId")).rotation}
        if op == "RotateKeyOnDemand":
            k = state.resolve(req.get("KeyId"))
            state.usable(k, akid)
            k.materials.append(AESGCM.generate_key(256))
            return {"KeyId": k.id}
        raise KmsError("UnknownOperationException", "", 400)


# ---- credential services (EC2 IMDSv2, container, STS) ------------------------

class CredServices:
    """Issue temporary credentials the way the AWS credential services do."""

    def __init__(self, state):
        self.state = state
        self.imds_tokens = set()
        self.role = "ekmfs-role"
        self.web_tokens = set()          # accepted web identity tokens
        self.container_auth = None       # required Authorization header value
        self.lifetime = 3600
        self.issued = {"imds": 0, "container": 0, "sts": 0}

    def issue(self, kind):
        akid = "ASIA" + uuid.uuid4().hex[:16].upper()
        secret = base64.b64encode(os.urandom(30)).decode()
        token = base64.b64encode(os.urandom(64)).decode()
        expires = time.time() + self.lifetime
        with self.state.lock:
            self.state.creds[akid] = (secret, token, expires)
            self.issued[kind] += 1
        exp = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
        return akid, secret, token, exp.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- HTTP ------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ekmfs-kms-emulator"

    def log_message(self, fmt, *args):   # keep test output quiet
        pass

    def _send(self, status, obj=None, ctype="application/x-amz-json-1.1", raw=None,
              extra=(), drip_ms=0):
        data = raw if raw is not None else json.dumps(obj if obj is not None else {}).encode()
        send_raw(self, status, ctype, data, drip_ms,
                 [("x-amzn-RequestId", str(uuid.uuid4()))] + list(extra))

    def _error(self, e):
        self._send(e.status, {"__type": e.kind, "message": e.message},
                   extra=[("x-amzn-ErrorType", e.kind)])

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_PUT(self):
        if self.path == "/latest/api/token":
            self._body()
            tok = base64.b64encode(os.urandom(24)).decode()
            self.server.creds.imds_tokens.add(tok)
            return self._send(200, raw=tok.encode(), ctype="text/plain")
        self._send(404, raw=b"", ctype="text/plain")

    def do_GET(self):
        st, cs = self.server.state, self.server.creds
        if self.path == "/__emu/stats":
            with st.lock:
                return self._send(200, {"ops": dict(st.stats), "issued": dict(cs.issued)},
                                  ctype="application/json")
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") not in cs.imds_tokens:
                return self._send(401, raw=b"", ctype="text/plain")
            role = self.path.rsplit("/", 1)[1]
            if not role:
                return self._send(200, raw=cs.role.encode(), ctype="text/plain")
            if role != cs.role:
                return self._send(404, raw=b"", ctype="text/plain")
            akid, secret, token, exp = cs.issue("imds")
            return self._send(200, {"Code": "Success", "Type": "AWS-HMAC",
                                    "AccessKeyId": akid, "SecretAccessKey": secret,
                                    "Token": token, "Expiration": exp},
                              ctype="application/json")
        if self.path == "/container-credentials":
            if cs.container_auth and self.headers.get("Authorization") != cs.container_auth:
                return self._send(403, {"message": "bad authorization"},
                                  ctype="application/json")
            akid, secret, token, exp = cs.issue("container")
            return self._send(200, {"AccessKeyId": akid, "SecretAccessKey": secret,
                                    "Token": token, "Expiration": exp,
                                    "RoleArn": "arn:aws:iam::%s:role/%s" % (ACCOUNT, cs.role)},
                              ctype="application/json")
        self._send(404, {"message": "not found"}, ctype="application/json")

    def _admin(self, body):
        st = self.server.state
        req = json.loads(body or b"{}")
        with st.lock:
            if self.path == "/__emu/knobs":
                st.faults.set(req)
            elif self.path == "/__emu/reset_stats":
                st.stats.clear()
            elif self.path == "/__emu/down":
                st.faults.down = bool(req.get("down"))
            elif self.path == "/__emu/deny":
                k = st.resolve(req["KeyId"])
                (k.denied.add if req.get("deny", True) else k.denied.discard)(req["AccessKeyId"])
            elif self.path == "/__emu/rotate":
                # What KMS's automatic yearly rotation does: new material for
                # new encryptions, the old kept for decryption.
                st.resolve(req["KeyId"]).materials.append(AESGCM.generate_key(256))
            elif self.path == "/__emu/credentials":
                st.creds[req["AccessKeyId"]] = (req["SecretAccessKey"],
                                                req.get("SessionToken"), req.get("Expires"))
            elif self.path == "/__emu/web_identity":
                self.server.creds.web_tokens.add(req["token"])
            else:
                return self._send(404, {"message": "no such knob"}, ctype="application/json")
        self._send(200, {}, ctype="application/json")

    def _sts(self, body):
        cs = self.server.creds
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        action = (form.get("Action") or [""])[0]
        tok = (form.get("WebIdentityToken") or [""])[0]
        if action != "AssumeRoleWithWebIdentity" or tok not in cs.web_tokens:
            err = ("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken"
                   "</Code><Message>bad token</Message></Error></ErrorResponse>")
            return self._send(400, raw=err.encode(), ctype="text/xml")
        akid, secret, token, exp = cs.issue("sts")
        xml = ("<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
               "<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s"
               "</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s"
               "</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
               "</AssumeRoleWithWebIdentityResponse>" % (akid, secret, token, exp))
        self._send(200, raw=xml.encode(), ctype="text/xml")

    def do_POST(self):
        st = self.server.state
        body = self._body()
        if self.path.startswith("/__emu/"):
            return self._admin(body)
        target = self.headers.get("X-Amz-Target", "")
        if not target and body.startswith(b"Action="):
            return self._sts(body)
        if not target.startswith("TrentService."):
            return self._error(KmsError("UnknownOperationException", ""))
        op = target[len("TrentService."):]
        with st.lock:
            st.stats[op] = st.stats.get(op, 0) + 1
            st.stats["total"] = st.stats.get("total", 0) + 1
            k = st.faults.take()
        if st.faults.before_answer(self, k):
            return
        if k == "throttle":
            return self._error(KmsError("ThrottlingException", "Rate exceeded"))
        if k == "fail5xx":
            return self._error(KmsError("KMSInternalException", "injected failure", 500))
        try:
            if self.headers.get("Content-Type", "").split(";")[0] != \
                    "application/x-amz-json-1.1":
                raise KmsError("SerializationException", "bad content type")
            akid = verify_sigv4("POST", self.path, list(self.headers.items()), body,
                                st.creds, st.region, "kms")
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                raise KmsError("SerializationException", "body is not JSON")
            if not isinstance(req, dict):
                raise KmsError("SerializationException", "body is not a JSON object")
            self._send(200, do_op(st, op, req, akid), drip_ms=st.faults.drip_ms)
        except KmsError as e:
            self._error(e)


class KmsEmulator:
    """The server in a background thread, for tests in this process."""

    def __init__(self, directory, region="us-east-1", port=0):
        self.ca, cert, key = testca.make_ca(os.path.join(directory, "kms-ca"))
        self.state = KmsState(region)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state
        self.httpd.creds = CredServices(self.state)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.region = region
        self.creds = self.httpd.creds
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def stats(self):
        with self.state.lock:
            return dict(self.state.stats)


def main(argv):
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--dir", default=None)
    a = ap.parse_args(argv)
    emu = KmsEmulator(a.dir or tempfile.mkdtemp(prefix="kms-emu-"), a.region, a.port).start()
    k = emu.state.create_key("default test key")
    print("READY %d %s %s" % (emu.port, emu.ca, k.arn), flush=True)
    try:
        emu.thread.join()
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
