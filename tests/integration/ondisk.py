"""What the integration tests read straight from a volume's backing directory
and its tools, shared by the rotation, migration and tenant tests: the
plaintext key-slot fields of a file header (docs/FORMAT.md), the keyring,
the audit log, hashes of content and of whole trees, ekmfs-rotate, and a
tenants configuration (docs/TENANTS.md)."""

import hashlib
import json
import os
import signal
import struct
import subprocess
import time

from conftest import HEADER_SIZE, ROTATE, SLOW, run_cli, sanitizer_report

SLOT = 96                     # key slots at header bytes 32 and 128


def rotate(vol, *args, json_out=False, timeout=120):
    """Run ekmfs-rotate with the volume's config; r.json with --json."""
    argv = [ROTATE, "-c", vol.config] + list(args)
    if json_out:
        argv.append("--json")
    argv.append(vol.backing)
    r = run_cli(argv, timeout=timeout)
    rep = sanitizer_report(r.stderr)
    assert not rep, rep
    if json_out and r.stdout.strip():
        r.json = json.loads(r.stdout)
    return r


def slots(path):
    """[(seq, tenant, version, raw96)] of the two key slots of a backing file."""
    with open(path, "rb") as f:
        h = f.read(HEADER_SIZE)
    out = []
    for i in range(2):
        raw = h[32 + i * SLOT:32 + (i + 1) * SLOT]
        seq, tenant, version = struct.unpack_from("<QII", raw)
        out.append((seq, tenant, version, raw))
    return out


def header_tenant(path):
    """Tenant id of the newest key slot of a backing file."""
    return max(slots(path))[1]


def backing_files(vol):
    """Every regular file of the volume (not .ekmfs), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(vol.backing):
        if dirpath == str(vol.backing) and ".ekmfs" in dirnames:
            dirnames.remove(".ekmfs")
        out += [os.path.join(dirpath, n) for n in filenames]
    return sorted(out)


def after_header(paths):
    """sha256 of every byte after the 256-byte header, per path."""
    res = {}
    for p in paths:
        with open(p, "rb") as f:
            f.seek(HEADER_SIZE)
            res[p] = hashlib.sha256(f.read()).hexdigest()
    return res


def tree_hash(root):
    """Every byte, name, mode and mtime below root (including .ekmfs)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for n in sorted(filenames + dirnames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            h.update(("%s %o %d %d\n" % (os.path.relpath(p, root), st.st_mode,
                                         st.st_size, st.st_mtime_ns)).encode())
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def keyring(vol):
    return json.loads((vol.backing / ".ekmfs" / "keyring.json").read_text())


def tenant_ids(vol):
    return {t["name"]: t["id"] for t in keyring(vol)["tenants"]}


def audit_records(vol):
    """The records of the audit log the test volume's config names."""
    return [json.loads(l) for l in (vol.root / "audit.log").read_text().splitlines()
            if l.strip()]


def wait_for(pred, timeout=15):
    """Poll pred until it holds (True) or timeout (x SLOW) passes (False)."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def tenants_config(vol, tenants, head=""):
    """Write a config: head, the default tenant, then [tenant.NAME] for each
    (name, paths, extra keys) with its own local key file keys/NAME.key."""
    text = head + "[tenant.default]\nkey_file = %s\n" % vol.key_file
    for name, paths, keys in tenants:
        text += "[tenant.%s]\nprovider = local\nkey_file = %s\npaths = %s\n" % (
            name, vol.keydir / (name + ".key"), paths)
        for k, v in keys.items():
            text += "%s = %s\n" % (k, v)
    vol.write_config(text)


def kill_at_random(argv, rng, max_delay):
    """Start argv, SIGKILL it after a random delay of up to max_delay (x
    SLOW) s if it still runs; its stderr must hold no sanitizer report.
    True when it was killed."""
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    time.sleep(rng.uniform(0.0, max_delay) * SLOW)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.wait()
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    assert not sanitizer_report(err), err
    return killed
