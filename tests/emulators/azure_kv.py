#!/usr/bin/python3
"""A loopback emulator of Azure Key Vault and Entra ID speaking the real
wire protocols.

Owns: one HTTPS server (stdlib http.server + ssl, RSA from
python3-cryptography) that is at once
- an Entra ID authority: OpenID discovery documents and the OAuth2 v2.0
  token endpoint (client-credentials grant, checked against registered
  client ids and secrets), tokens being opaque bearer strings with a life;
- an Azure managed identity endpoint (IMDS /metadata/identity/oauth2/token,
  "Metadata: true" required);
- a Key Vault: RSA keys with versions (keys/NAME/create adds a version),
  GET key (JWK with n and e), PATCH of a version's attributes (enable /
  disable), wrapkey / unwrapkey with RSA-OAEP-256 and RSA-OAEP, and the
  401 challenge exactly as the service sends it to a request without a
  token: WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
  resource="https://vault.azure.net". Errors use Key Vault's JSON shape
  ({"error": {"code", "message", "innererror"}}).

Knobs for the tests under /__emu/ (not counted as vault requests): knobs
{"throttle", "fail5xx", "drop", "malformed", "oversized": N} for the next N
vault requests, {"latency_ms", "drip_ms": MS, "hang": bool} while set
(faults.py), down
{"down": bool}, deny {"client_id", "deny"} (access policy removed), stats,
reset_stats, expire_tokens (every token issued so far becomes invalid).
The token endpoint also takes a federated credential (workload identity:
client_assertion_type jwt-bearer, client_assertion = FEDERATED_TOKEN).

Checked with the official Azure SDK (azure-identity ClientSecretCredential
and azure-keyvault-keys KeyClient / CryptographyClient, Debian's
python3-azure) in tests/integration/test_emulators_azure.py.
"""
import base64
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testca  # noqa: E402
from faults import Faults, send_raw  # noqa: E402

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0f7c1d2e-3a4b-4c5d-8e9f-ekmfs0000001"
CLIENT_SECRET = "ekmfs~test~client~secret~0000000000"
# The service account token AKS projects for workload identity (a JWT in
# real life; Entra ID checks it against the app's federated credential).
FEDERATED_TOKEN = "eyJhbGciOiJSUzI1NiJ9.ekmfs-test-federated-token.c2lnbmF0dXJl"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RESOURCE = "https://vault.azure.net"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class KvError(Exception):
    def __init__(self, status, code, message, inner=None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner


class KeyVersion:
    def __init__(self, name, base):
        self.version = uuid.uuid4().hex
        self.kid = "%s/keys/%s/%s" % (base, name, self.version)
        self.priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.enabled = True
        self.created = int(time.time())

    def bundle(self):
        pub = self.priv.public_key().public_numbers()
        n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
        return {"key": {"kid": self.kid, "kty": "RSA",
                        "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey",
                                    "unwrapKey"],
                        "n": b64u(n), "e": b64u(pub.e.to_bytes(3, "big"))},
                "attributes": {"enabled": self.enabled, "created": self.created,
                               "updated": self.created, "recoveryLevel": "Recoverable",
                               "recoverableDays": 90}}


def _oaep(alg):
    if alg == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                            label=None)
    if alg == "RSA-OAEP":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(),
                            label=None)
    raise KvError(400, "BadParameter", "Invalid algorithm %r" % alg)


class KvState:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}                  # name -> [KeyVersion] (last is current)
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self.federated = {CLIENT_ID: FEDERATED_TOKEN}   # workload identity
        self.denied = set()             # client ids without an access policy
        self.tokens = {}                # token -> (client id, expiry)
        self.token_life = 3600
        self.stats = {}
        self.faults = Faults()
        self.base = None
        self.managed_identity_client = "managed-identity-client"

    def issue(self, client):
        tok = secrets.token_urlsafe(48)
        self.tokens[tok] = (client, time.time() + self.token_life)
        self.stats["tokens"] = self.stats.get("tokens", 0) + 1
        return {"token_type": "Bearer", "expires_in": self.token_life,
                "ext_expires_in": self.token_life, "access_token": tok}

    def create(self, name):
        kv = KeyVersion(name, self.base)
        self.keys.setdefault(name, []).append(kv)
        return kv

    def find(self, name, version):
        versions = self.keys.get(name)
        if not versions:
            raise KvError(404, "KeyNotFound", "A key with (name/id) %s was not found in this "
                          "key vault. If you recently deleted this key you may be able to "
                          "recover it using the correct recovery command." % name)
        if not version:
            return versions[-1]
        for kv in versions:
            if kv.version == version:
                return kv
        raise KvError(404, "KeyNotFound", "A key with (name/id) %s/%s was not found in this "
                      "key vault." % (name, version))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ekmfs-keyvault-emulator"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj, extra=(), drip_ms=0):
        data = json.dumps(obj).encode()
        send_raw(self, status, "application/json; charset=utf-8", data, drip_ms,
                 [("x-ms-request-id", str(uuid.uuid4()))] + list(extra))

    def _kv_error(self, e, extra=()):
        err = {"code": e.code, "message": e.message}
        if e.inner:
            err["innererror"] = {"code": e.inner}
        self._send(e.status, {"error": err}, extra)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    @property
    def st(self):
        return self.server.state

    # -- Entra ID ------------------------------------------------------------

    def _openid(self, tenant):
        base = self.st.base
        return {"token_endpoint": "%s/%s/oauth2/v2.0/token" % (base, tenant),
                "authorization_endpoint": "%s/%s/oauth2/v2.0/authorize" % (base, tenant),
                "issuer": "%s/%s/v2.0" % (base, tenant),
                "jwks_uri": "%s/%s/discovery/v2.0/keys" % (base, tenant),
                "response_types_supported": ["code", "id_token", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "client_secret_basic"],
                "device_authorization_endpoint": "%s/%s/oauth2/v2.0/devicecode"
                % (base, tenant)}

    def _token(self, tenant, body):
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        get = lambda k: (form.get(k) or [""])[0]  # noqa: E731
        if tenant != TENANT:
            return self._send(400, {"error": "invalid_request", "error_description":
                                    "AADSTS90002: Tenant '%s' not found." % tenant})
        if get("grant_type") != "client_credentials":
            return self._send(400, {"error": "unsupported_grant_type"})
        client = get("client_id")
        if get("client_assertion_type") == JWT_BEARER:
            # workload identity: a federated credential instead of a secret
            with self.st.lock:
                self.st.stats["federated"] = self.st.stats.get("federated", 0) + 1
            if self.st.federated.get(client) is None or \
                    not secrets.compare_digest(self.st.federated[client],
                                               get("client_assertion")):
                return self._send(401, {"error": "invalid_client", "error_description":
                                        "AADSTS700213: No matching federated identity "
                                        "record found for presented assertion."})
        elif self.st.clients.get(client) is None or \
                not secrets.compare_digest(self.st.clients[client], get("client_secret")):
            return self._send(401, {"error": "invalid_client", "error_description":
                                    "AADSTS7000215: Invalid client secret provided."})
        if get("scope") not in (RESOURCE + "/.default", RESOURCE + "//.default"):
            return self._send(400, {"error": "invalid_scope", "error_description":
                                    "AADSTS70011: The provided scope is not valid."})
        with self.st.lock:
            self._send(200, self.st.issue(client))

    def _imds(self, query):
        if self.headers.get("Metadata") != "true":
            return self._send(400, {"error": "invalid_request",
                                    "error_description": "Required metadata header not "
                                    "specified"})
        q = urllib.parse.parse_qs(query)
        if (q.get("resource") or [""])[0].rstrip("/") != RESOURCE:
            return self._send(400, {"error": "invalid_resource"})
        with self.st.lock:
            tok = self.st.issue(self.st.managed_identity_client)
        tok["expires_in"] = str(tok["expires_in"])       # IMDS sends strings
        tok["resource"] = RESOURCE
        tok["expires_on"] = str(int(time.time()) + self.st.token_life)
        self._send(200, tok)

    # -- Key Vault -----------------------------------------------------------

    def _challenge(self):
        return [("WWW-Authenticate", 'Bearer authorization="%s/%s", resource="%s"'
                 % (self.st.base, TENANT, RESOURCE))]

    def _authorize(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise KvError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or "
                          "PoP token.")
        entry = self.st.tokens.get(auth[7:])
        if not entry or entry[1] < time.time():
            raise KvError(401, "Unauthorized", "AKV10032: Invalid issuer or the token is "
                          "expired.")
        if entry[0] in self.st.denied:
            raise KvError(403, "Forbidden", "The user, group or application does not have "
                          "keys get permission on key vault.", "AccessDenied")
        return entry[0]

    def _vault(self, method, path, query, body):
        q = urllib.parse.parse_qs(query)
        if not (q.get("api-version") or [""])[0]:
            raise KvError(400, "BadParameter", "The request is missing api-version.")
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "keys":
            raise KvError(404, "NotFound", "no such path")
        name = parts[1]
        rest = parts[2:]
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            raise KvError(400, "BadParameter", "The request body is not JSON.")
        if method == "POST" and rest == ["create"]:
            if req.get("kty", "RSA") not in ("RSA", "RSA-HSM"):
                raise KvError(400, "BadParameter", "only RSA keys in this emulator")
            return self.st.create(name).bundle()
        op = None
        if rest and rest[-1] in ("wrapkey", "unwrapkey"):
            op = rest[-1]
            rest = rest[:-1]
        if len(rest) > 1:
            raise KvError(404, "NotFound", "no such path")
        kv = self.st.find(name, rest[0] if rest else None)
        if method == "GET" and op is None:
            if not kv.enabled:
                raise KvError(403, "Forbidden", "Operation get is not allowed on a disabled "
                              "key.", "KeyDisabled")
            return kv.bundle()
        if method == "PATCH" and op is None:
            attrs = req.get("attributes") or {}
            if "enabled" in attrs:
                kv.enabled = bool(attrs["enabled"])
            return kv.bundle()
        if method == "POST" and op:
            if not kv.enabled:
                raise KvError(403, "Forbidden", "Operation %s is not allowed on a disabled "
                              "key." % ("wrapKey" if op == "wrapkey" else "unwrapKey"),
                              "KeyDisabled")
            pad = _oaep(req.get("alg"))
            try:
                value = unb64u(req.get("value", ""))
            except Exception:
                raise KvError(400, "BadParameter", "value is not base64url")
            if op == "wrapkey":
                out = kv.priv.public_key().encrypt(value, pad)
            else:
                try:
                    out = kv.priv.decrypt(value, pad)
                except ValueError:
                    raise KvError(400, "BadParameter", "Error occurred while decrypting "
                                  "the value.")
            return {"kid": kv.kid, "value": b64u(out)}
        raise KvError(405, "MethodNotAllowed", "method not allowed")

    def _handle(self, method):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, url.query
        body = self._body()
        if path.startswith("/__emu/"):
            return self._admin(path, body)
        if method == "GET" and path.endswith("/.well-known/openid-configuration"):
            return self._send(200, self._openid(path.split("/")[1]))
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            return self._token(path.split("/")[1], body)
        if method == "GET" and path == "/metadata/identity/oauth2/token":
            return self._imds(query)
        if not path.startswith("/keys/"):
            return self._send(404, {"error": {"code": "NotFound", "message": path}})
        with self.st.lock:
            self.st.stats["vault"] = self.st.stats.get("vault", 0) + 1
            op = path.rsplit("/", 1)[-1] if path.endswith("key") else method
            self.st.stats[op] = self.st.stats.get(op, 0) + 1
            knob = self.st.faults.take()
        if self.st.faults.before_answer(self, knob):
            return
        if knob == "throttle":
            return self._kv_error(KvError(429, "Throttled", "Request was not processed "
                                          "because too many requests were received."),
                                  [("Retry-After", "0")])
        if knob == "fail5xx":
            return self._kv_error(KvError(500, "InternalServerError", "injected failure"))
        try:
            with self.st.lock:
                self._authorize()
                result = self._vault(method, path, query, body)
            self._send(200, result, drip_ms=self.st.faults.drip_ms)
        except KvError as e:
            self._kv_error(e, self._challenge() if e.status == 401 else ())

    def _admin(self, path, body):
        req = json.loads(body or b"{}")
        with self.st.lock:
            if path == "/__emu/stats":
                return self._send(200, dict(self.st.stats))
            if path == "/__emu/reset_stats":
                self.st.stats.clear()
            elif path == "/__emu/knobs":
                self.st.faults.set(req)
            elif path == "/__emu/down":
                self.st.faults.down = bool(req.get("down"))
            elif path == "/__emu/deny":
                (self.st.denied.add if req.get("deny", True)
                 else self.st.denied.discard)(req["client_id"])
            elif path == "/__emu/expire_tokens":
                self.st.tokens.clear()
            elif path == "/__emu/enable":
                self.st.find(req["name"], req.get("version")).enabled = bool(req["enabled"])
            elif path == "/__emu/create":
                return self._send(200, self.st.create(req["name"]).bundle())
            else:
                return self._send(404, {"error": "no such knob"})
        self._send(200, {})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")


class KvEmulator:
    """The server in a background thread, for tests in this process."""

    def __init__(self, directory, port=0):
        self.ca, cert, key = testca.make_ca(os.path.join(directory, "kv-ca"))
        self.state = KvState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.state.base = self.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def create_key(self, name):
        with self.state.lock:
            return self.state.create(name)


def main(argv):
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args(argv)
    emu = KvEmulator(a.dir or tempfile.mkdtemp(prefix="kv-emu-"), a.port).start()
    kv = emu.create_key("ekmfs-cmk")
    print("READY %d %s %s" % (emu.port, emu.ca, kv.kid), flush=True)
    try:
        emu.thread.join()
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
