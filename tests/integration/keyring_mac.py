"""The keyring MAC (docs/FORMAT.md "Keyring MAC"), implemented again in
Python from the specification, for two uses:

- checking the C code byte for byte: `mac(...)` of a keyring ekmfs wrote
  must equal its "mac" (test_keyring_mac.py);
- a test that holds the volume's local key file changing the keyring the
  way ekmfs's own writers do - edit, bump the generation, seal - as an
  administrator with the CMK could (`edit_sealed`). Without the key file
  an edit is tampering, and ekmfs refuses it.

Only local key files (the CMK in a file) are supported: that is all the
tests need, and the wrap is the one src/keys/providers/local.c makes.
"""
import base64
import calendar
import hashlib
import hmac
import json
import struct
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

LABEL = b"ekmfs-keyring-mac-v1\0"
WRAP_LABEL = b"ekmfs-kek-wrap-v1"
STATES = {"active": 0, "retired": 1, "destroyed": 2}


def rfc3339(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def unwrap_local(key_file, vid, tenant, version, blob):
    """A key wrapped by the local provider (nonce 12 | ciphertext 32 | tag
    16, AAD: label, volume id, u32le len, tenant, u32le version)."""
    cmk = base64.b64decode(Path(key_file).read_text().strip())
    t = tenant.encode()
    aad = WRAP_LABEL + vid + struct.pack("<I", len(t)) + t + struct.pack("<I", version)
    return AESGCM(cmk).decrypt(blob[:12], blob[12:], aad)


def _u32(v):
    return struct.pack(">I", v)


def _u64(v):
    return struct.pack(">Q", v & (2**64 - 1))


def _bytes(b):
    return _u32(len(b)) + b


def _str(s):
    return _bytes(s.encode())


def _wrapped(o, gone=False):
    blob = b"" if gone else base64.b64decode(o.get("wrapped", ""))
    bind = b"" if gone or "mac" not in o else base64.b64decode(o["mac"])
    return _str(o["cmk_ref"]) + _str(o["cmk_version"]) + _bytes(blob) + _bytes(bind)


def encoding(keyring, volume, volume_version=None):
    """The canonical encoding of keyring and volume (parsed JSON)."""
    e = LABEL
    e += _u32(volume["version"] if volume_version is None else volume_version)
    e += bytes.fromhex(volume["volume_id"])
    e += _u32(volume["block_size"])
    e += _u64(rfc3339(volume["created"]))
    e += _u64(keyring["generation"])
    e += _wrapped(keyring["mac_key"])
    e += _u32(len(keyring["tenants"]))
    for t in keyring["tenants"]:
        e += _str(t["name"]) + _u32(t["id"]) + _str(t["provider"]) + _str(t["kdf"])
        e += _u32(t["current_version"])
        e += _u64(rfc3339(t["last_rotation"])) + _u64(rfc3339(t["last_cmk_change"]))
        e += bytes([1 if t.get("enabled", True) else 0])
        e += _u32(len(t["keks"]))
        for k in t["keks"]:
            gone = k["state"] == "destroyed"
            e += _u32(k["version"]) + bytes([STATES[k["state"]]])
            e += _u64(rfc3339(k["created"])) + _wrapped(k, gone)
    return e


def mac_key(backing, key_file):
    meta = Path(backing) / ".ekmfs"
    keyring = json.loads((meta / "keyring.json").read_text())
    volume = json.loads((meta / "volume.json").read_text())
    vid = bytes.fromhex(volume["volume_id"])
    blob = base64.b64decode(keyring["mac_key"]["wrapped"])
    return unwrap_local(key_file, vid, "default", 0, blob)


def mac(keyring, volume, key):
    return hmac.new(key, encoding(keyring, volume), hashlib.sha256).hexdigest()


def edit_sealed(backing, key_file, edit):
    """edit(keyring dict) in place, then the generation bumped and the MAC
    made again, as ekmfs's writers do."""
    meta = Path(backing) / ".ekmfs"
    path = meta / "keyring.json"
    keyring = json.loads(path.read_text())
    volume = json.loads((meta / "volume.json").read_text())
    key = mac_key(backing, key_file)
    assert hmac.compare_digest(mac(keyring, volume, key), keyring["mac"]), \
        "the keyring did not authenticate before the edit"
    edit(keyring)
    keyring["generation"] += 1
    keyring["mac"] = mac(keyring, volume, key)
    path.write_text(json.dumps(keyring, indent=2) + "\n")
