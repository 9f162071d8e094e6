"""The systemd unit ekmfs@.service, exercised without systemd as PID 1.

Owns: running the unit the way systemd would, from the unit file the build
generates (contrib/ekmfs@.service in the build directory): its
EnvironmentFile read as systemd reads one, the instance specifiers (%i,
%I, %f) substituted per systemd.unit(5), $VAR / ${VAR} expanded as
systemd expands them in Exec lines; ExecStart run with a real sd_notify
socket (NOTIFY_SOCKET, AF_UNIX datagrams with the sender's credentials),
READY=1 arriving from the main process once the mount is visible,
ExecReload (RELOADING=1, READY=1), ExecStop (STOPPING=1, unmount, exit 0
within TimeoutStopSec). Also the unit's settings that matter here, and
systemd-analyze verify when it is installed. test_ops.py has the
installed unit and the start/stop through systemctl where PID 1 is
systemd.
"""
import json
import os
import re
import resource
import shlex
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD, SLOW, is_mounted, sanitizer_report

UNIT = BUILD / "contrib" / "ekmfs@.service"


# ---- systemd's rules, as far as this unit needs them ------------------------

def parse_unit(path):
    """{section: [(key, value), ...]} of a unit file (comments and
    continuation lines as systemd.syntax(7) has them)."""
    sections, cur, pending = {}, None, ""
    for raw in Path(path).read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = line.strip("[]")
            sections.setdefault(cur, [])
            continue
        key, _, value = line.partition("=")
        sections[cur].append((key.strip(), value.strip()))
    return sections


def setting(unit, section, key):
    values = [v for k, v in unit[section] if k == key]
    assert len(values) == 1, "%s= in [%s]: %r" % (key, section, values)
    return values[0]


def escape_path(path):
    """systemd-escape --path (systemd.unit(5), "String Escaping")."""
    p = os.path.normpath(path).strip("/")
    if not p:
        return "-"
    out = []
    for i, ch in enumerate(p.encode()):
        c = chr(ch)
        if c == "/":
            out.append("-")
        elif (c.isascii() and (c.isalnum() or c in ":_.")) and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.append("\\x%02x" % ch)
    return "".join(out)


def unescape(s):
    """%I: the instance with \\xNN decoded and "-" as "/"."""
    out = bytearray()
    i = 0
    while i < len(s):
        if s.startswith("\\x", i):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += b"/" if s[i] == "-" else s[i].encode()
            i += 1
    return out.decode()


def specifiers(text, instance):
    table = {"i": instance, "I": unescape(instance), "f": "/" + unescape(instance),
             "%": "%"}
    return re.sub(r"%(.)", lambda m: table[m.group(1)], text)


def read_environment_file(path):
    """KEY=VALUE lines; quotes removed (systemd.exec(5) EnvironmentFile=)."""
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = " ".join(shlex.split(value)) if value else ""
    return env


def exec_argv(line, env, instance):
    """An Exec*= line as systemd runs it: prefixes ('-', '@', ...) apart,
    specifiers resolved, words split, ${VAR} one word, $VAR split into
    words on whitespace."""
    prefixes = ""
    while line and line[0] in "-@:+!":
        prefixes += line[0]
        line = line[1:]
    argv = []
    for word in shlex.split(specifiers(line, instance)):
        m = re.fullmatch(r"\$\{(\w+)\}", word)
        if m:
            argv.append(env.get(m.group(1), ""))
            continue
        m = re.fullmatch(r"\$(\w+)", word)
        if m:
            argv += env.get(m.group(1), "").split()
            continue
        argv.append(word)
    return prefixes, argv


# ---- sd_notify ---------------------------------------------------------------

class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: datagrams with the
    sender's pid (SO_PASSCRED), as systemd checks NotifyAccess=main."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)

    def receive(self, timeout=20):
        self.sock.settimeout(timeout * SLOW)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("3i", cdata[:12])
        msg = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
        return msg, pid

    def close(self):
        self.sock.close()


# ---- the tests -----------------------------------------------------------------

def build_bindir():
    r = subprocess.run(["meson", "introspect", "--buildoptions", str(BUILD)],
                       capture_output=True, text=True, check=True)
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    return os.path.join(opts["prefix"], opts["bindir"])


def test_unit_settings():
    """What the daemon relies on: notify readiness from the main process,
    the network before a KMS is asked, no mount namespace of its own (the
    mount must be visible to the whole system), locked memory for keys."""
    unit = parse_unit(UNIT)
    assert setting(unit, "Service", "Type") == "notify"
    assert setting(unit, "Service", "NotifyAccess") == "main"
    assert setting(unit, "Service", "KillMode") == "mixed"
    assert setting(unit, "Service", "LimitMEMLOCK") == "infinity"
    assert "network-online.target" in setting(unit, "Unit", "After").split()
    assert "network-online.target" in setting(unit, "Unit", "Wants").split()
    assert setting(unit, "Unit", "ConditionPathIsDirectory") == "%f"
    assert setting(unit, "Install", "WantedBy") == "multi-user.target"
    for key in ("PrivateTmp", "PrivateMounts", "ProtectSystem", "ProtectHome",
                "MountFlags", "RootDirectory", "TemporaryFileSystem"):
        assert key not in dict(unit["Service"]), key + "= would hide the mount"
    # ExecStart runs the installed daemon in the foreground (-f: Type=notify)
    _, argv = exec_argv(setting(unit, "Service", "ExecStart"), {}, "mnt-vault")
    assert argv[:2] == [os.path.join(build_bindir(), "ekmfs"), "-f"]
    assert argv[-1] == "/mnt/vault"


def test_escaping_matches_systemd_escape(tmp_path):
    if not shutil.which("systemd-escape"):
        pytest.skip("systemd-escape is not installed")
    for path in ["/mnt/vault", "/tmp/ekmfs-it-ab_c1/mnt", "/srv/a b/.hidden", "/"]:
        r = subprocess.run(["systemd-escape", "-p", path], capture_output=True, text=True)
        assert escape_path(path) == r.stdout.strip(), path
        assert "/" + unescape(escape_path(path)).lstrip("/") == os.path.normpath(path)


def test_unit_lifecycle_with_sd_notify(volume, tmp_path):
    unit = parse_unit(UNIT)
    instance = escape_path(str(volume.mnt))
    assert os.path.isdir(specifiers(setting(unit, "Unit", "ConditionPathIsDirectory"),
                                    instance))
    # EnvironmentFile=/etc/ekmfs/%i.env: the same contents, in the test's dir
    env_path = specifiers(setting(unit, "Service", "EnvironmentFile"), instance)
    assert env_path == "/etc/ekmfs/%s.env" % instance
    env_file = tmp_path / os.path.basename(env_path)
    env_file.write_text('EKMFS_BACKING=%s\nEKMFS_OPTIONS="-c %s -o allow_other"\n'
                        % (volume.backing, volume.config))
    env = read_environment_file(env_file)

    prefix, start = exec_argv(setting(unit, "Service", "ExecStart"), env, instance)
    assert prefix == ""
    # the unit names the installed daemon; the build's is the same program
    assert start[0] == os.path.join(build_bindir(), "ekmfs")
    start[0] = str(BUILD / "ekmfs")
    assert start[1:] == ["-f", "-c", str(volume.config), "-o", "allow_other",
                         str(volume.backing), str(volume.mnt)]

    ns = NotifySocket(tmp_path / "notify")
    errlog = tmp_path / "stderr"
    proc = None
    try:
        def limits():           # LimitMEMLOCK=infinity, where this sandbox allows it
            try:
                resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY,) * 2)
            except (ValueError, OSError):
                pass

        with open(errlog, "wb") as err:
            proc = subprocess.Popen(start, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    env=dict(os.environ, NOTIFY_SOCKET=ns.path, **env),
                                    preexec_fn=limits)
        msg, pid = ns.receive()
        # READY=1 from the main process, once the volume is mounted
        assert msg.get("READY") == "1", msg
        assert pid == proc.pid, "READY=1 from pid %s, the main process is %d" % (pid,
                                                                               proc.pid)
        assert is_mounted(volume.mnt)
        (volume.mnt / "f").write_bytes(b"under the unit")
        assert (volume.mnt / "f").read_bytes() == b"under the unit"

        # ExecReload=/bin/kill -HUP $MAINPID
        _, reload = exec_argv(setting(unit, "Service", "ExecReload"),
                              dict(env, MAINPID=str(proc.pid)), instance)
        assert reload == ["/bin/kill", "-HUP", str(proc.pid)]
        assert subprocess.run(reload).returncode == 0
        assert ns.receive()[0].get("RELOADING") == "1"
        msg, pid = ns.receive()
        assert msg.get("READY") == "1" and pid == proc.pid, msg
        assert (volume.mnt / "f").read_bytes() == b"under the unit"

        # ExecStop=-/bin/fusermount3 -u %f ('-': its failure is ignored)
        prefix, stop = exec_argv(setting(unit, "Service", "ExecStop"), env, instance)
        assert prefix == "-" and stop == ["/bin/fusermount3", "-u", str(volume.mnt)]
        deadline = time.monotonic() + 10 * SLOW
        while subprocess.run(stop, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "fusermount3 -u kept failing"
            time.sleep(0.1)
        msg, pid = ns.receive()
        assert msg.get("STOPPING") == "1" and pid == proc.pid, msg
        stop_timeout = int(setting(unit, "Service", "TimeoutStopSec"))
        assert proc.wait(timeout=stop_timeout) == 0
        assert not is_mounted(volume.mnt)
        rep = sanitizer_report(errlog.read_text(errors="replace"))
        assert not rep, rep
    finally:
        ns.close()
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        if is_mounted(volume.mnt):
            subprocess.run(["fusermount3", "-uz", str(volume.mnt)], capture_output=True)


def test_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    # An instance of the template, with the daemon it names pointed at the
    # build's (verify checks that ExecStart= is executable).
    text = UNIT.read_text().replace(os.path.join(build_bindir(), "ekmfs"),
                                    str(BUILD / "ekmfs"))
    unit = tmp_path / "ekmfs@tmp-vault.service"
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True)
    # verify exits 0 on parse warnings: any output is a problem.
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
