"""Operations: install into a temporary prefix, manual pages, bash completion,
mounting with mount(8) / fstab / mount.fuse3, the systemd unit and sd_notify,
SIGHUP reload, SIGTERM, the metrics file, `ekmfs-admin status --json`.

Owns: the `installed` fixture (a `meson setup --prefix=TMP` build of this
tree with the build options of EKMFS_BUILD, installed with `meson install`),
and helpers for daemons that detach (mounted through mount(8)).

Divisions: install fixture and helpers / installed files and docs / mounting
the usual ways / systemd and sd_notify / signals / metrics / status --json.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import (BUILD, REPO, ROTATE, SLOW, block_offset, drop_caches, is_mounted, run_cli,
                      sanitizer_report)

MAN_PAGES = ["man8/ekmfs.8", "man8/ekmfs-admin.8", "man8/ekmfs-rotate.8",
             "man5/ekmfs.ini.5"]
SYSTEM_HELPER = Path("/usr/sbin/mount.fuse.ekmfs")   # /sbin is /usr/sbin on Debian 12


# ---- install fixture and helpers --------------------------------------------

def build_options():
    """buildtype and sanitizer options of the build under test, so the
    installed binaries are built the same way (ASan runs stay ASan)."""
    r = subprocess.run(["meson", "introspect", "--buildoptions", str(BUILD)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return []
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    args = ["-Dbuildtype=%s" % opts.get("buildtype", "debugoptimized")]
    san = opts.get("b_sanitize", "none")
    if san and san != "none":
        args += ["-Db_sanitize=%s" % san, "-Db_lundef=false"]
    return args


@pytest.fixture(scope="module")
def installed():
    """A prefix with `meson install` of this source tree."""
    top = Path(tempfile.mkdtemp(prefix="ekmfs-it-install-", dir="/tmp"))
    os.chmod(top, 0o755)
    prefix, builddir = top / "prefix", top / "build"
    steps = [["meson", "setup", "--prefix=%s" % prefix] + build_options()
             + [str(builddir), str(REPO)],
             ["ninja", "-C", str(builddir), "-j", "2"],
             ["meson", "install", "-C", str(builddir), "--quiet"]]
    try:
        for argv in steps:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, "%s failed:\n%s%s" % (
                " ".join(argv), r.stdout[-3000:], r.stderr[-3000:])
        yield prefix
    finally:
        shutil.rmtree(top, ignore_errors=True)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout * SLOW
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def daemon_pids(backing):
    """Pids of ekmfs daemons serving backing (for daemons that detached)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ekmfs") and str(backing).encode() in argv:
            pids.append(int(d.name))
    return pids


def unmount_detached(mnt, backing):
    """umount a mount whose daemon detached; the daemon must go away."""
    r = subprocess.run(["umount", str(mnt)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not daemon_pids(backing), 30, "the daemon to exit after umount")


def write_then_read(mnt, name=b"hello ops\n"):
    p = Path(mnt) / "ops.txt"
    p.write_bytes(name * 1000)
    drop_caches()
    assert p.read_bytes() == name * 1000


def mount_options(mnt):
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(mnt) and fields[2] == "fuse.ekmfs":
                return fields[3].split(",")
    return None


@pytest.fixture
def system_helper(installed):
    """/sbin/mount.fuse.ekmfs pointing at the installed helper, removed after.
    mount(8) only looks for helpers in /sbin."""
    if SYSTEM_HELPER.exists() or SYSTEM_HELPER.is_symlink():
        pytest.skip("%s already exists (a system-wide ekmfs install); not "
                    "replacing it" % SYSTEM_HELPER)
    SYSTEM_HELPER.symlink_to(installed / "sbin" / "mount.fuse.ekmfs")
    try:
        yield
    finally:
        SYSTEM_HELPER.unlink()


# ---- installed files and docs ---------------------------------------------------

def test_install_layout(installed):
    for rel in ["bin/ekmfs", "bin/ekmfs-admin", "bin/ekmfs-rotate", "sbin/mount.fuse.ekmfs",
                "lib/systemd/system/ekmfs@.service",
                "share/bash-completion/completions/ekmfs",
                "share/bash-completion/completions/ekmfs-admin",
                "share/bash-completion/completions/ekmfs-rotate",
                "share/doc/ekmfs/ekmfs.ini.example", "share/doc/ekmfs/fstab.example",
                "share/doc/ekmfs/ekmfs.env.example", "share/doc/ekmfs/BACKUP.md",
                "share/doc/ekmfs/OPERATIONS.md"] + ["share/man/" + m for m in MAN_PAGES]:
        assert (installed / rel).exists(), "not installed: " + rel
    for b in ("ekmfs", "ekmfs-admin", "ekmfs-rotate"):
        r = run_cli([installed / "bin" / b, "--version"])
        assert r.returncode == 0 and "0.1.0" in r.stdout, r.stderr
    assert os.access(installed / "sbin" / "mount.fuse.ekmfs", os.X_OK)
    # The helper and the unit start the installed daemon by its full path:
    # mount(8) runs helpers with an empty PATH.
    ekmfs = str(installed / "bin" / "ekmfs")
    assert 'EKMFS=%s\n' % ekmfs in (installed / "sbin" / "mount.fuse.ekmfs").read_text()
    unit = (installed / "lib/systemd/system/ekmfs@.service").read_text()
    assert "ExecStart=%s -f " % ekmfs in unit
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit


def test_readme_build_paths_exist_and_install_puts_them_on_path(tmp_path):
    """The README's build line names where each program lands; all three
    are there after `ninja -C build`, and `meson install` puts all three
    into bindir."""
    readme = (REPO / "README.md").read_text()
    line = next(l for l in readme.splitlines() if "ninja -C build" in l and "produces" in l)
    named = re.findall(r"build/(ekmfs[a-z-]*)", line)
    assert sorted(named) == ["ekmfs", "ekmfs-admin", "ekmfs-rotate"], line
    for name in named:
        assert os.access(BUILD / name, os.X_OK), "README says build/%s; not in %s" % (
            name, BUILD)
    r = subprocess.run(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--quiet",
                        "--destdir", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    opts = {o["name"]: o["value"] for o in json.loads(subprocess.run(
        ["meson", "introspect", "--buildoptions", str(BUILD)],
        capture_output=True, text=True, check=True).stdout)}
    bindir = tmp_path / (Path(opts["prefix"]) / opts["bindir"]).relative_to("/")
    assert sorted(p.name for p in bindir.iterdir()) == named
    for name in named:
        assert os.access(bindir / name, os.X_OK)


def test_man_pages_render_without_warnings(installed):
    mandir = installed / "share" / "man"
    for page in MAN_PAGES:
        path = mandir / page
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-cbou", str(path)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", "%s: %s" % (page, r.stderr)
        assert "NAME" in r.stdout and "SEE ALSO" in r.stdout
        r = subprocess.run(["man", "-l", str(path)], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="80", MAN_KEEP_STDERR="1"))
        assert r.returncode == 0 and r.stderr == "", "%s: %s" % (page, r.stderr)
    # Found by name through MANPATH, as man(1) would after an install.
    for name in ("ekmfs", "ekmfs-admin", "ekmfs-rotate", "ekmfs.ini"):
        r = subprocess.run(["man", "-w", name], capture_output=True, text=True,
                           env=dict(os.environ, MANPATH=str(mandir)))
        assert r.returncode == 0 and r.stdout.startswith(str(mandir)), (name, r.stderr)


def man_text(installed, page):
    # Very long lines: no hyphenation breaks inside option names.
    r = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", "-rLL=5000n",
                        str(installed / "share" / "man" / page)],
                       capture_output=True, text=True)
    text = re.sub(r"[\u2010-]\n\s*", "", r.stdout)
    return re.sub(r"\s+", " ", text.replace("\u2212", "-"))


def test_ini_man_page_documents_every_example_key(installed):
    example = (installed / "share/doc/ekmfs/ekmfs.ini.example").read_text()
    keys = set(re.findall(r"^;?([a-z_]+) = ", example, re.M))
    sections = set(re.findall(r"^\[([a-z.]+)\]", example, re.M))
    assert {"attr_timeout", "key_file", "metrics_file", "metrics_interval"} <= keys
    text = man_text(installed, "man5/ekmfs.ini.5")
    missing = sorted(k for k in keys if k not in text)
    assert not missing, "ekmfs.ini(5) does not document: %s" % missing
    assert all("[%s]" % s in text for s in sections)


def test_admin_and_rotate_man_pages_cover_their_help(installed):
    text = man_text(installed, "man8/ekmfs-admin.8")
    help_text = run_cli([installed / "bin" / "ekmfs-admin", "--help"]).stdout
    commands = re.findall(r"^  ([a-z][a-z-]+) ", help_text, re.M)
    assert {"init", "status", "verify", "keygen", "backup-manifest"} <= set(commands)
    assert all(c in text for c in commands)
    assert "--json" in text and "--check" in text

    text = man_text(installed, "man8/ekmfs-rotate.8")
    help_text = run_cli([installed / "bin" / "ekmfs-rotate", "--help"]).stdout
    options = set(re.findall(r"(--[a-z][a-z-]+)", help_text))
    assert {"--dry-run", "--jobs", "--destroy", "--force"} <= options
    missing = sorted(o for o in options if o not in text)
    assert not missing, "ekmfs-rotate(8) lacks %s" % missing
    for code in ("0", "1", "2", "3", "4"):
        assert re.search(r"EXIT STATUS.* %s " % code, text)


def complete(installed, words):
    """COMPREPLY of the installed completion for the command line words
    (the last one is the word being completed)."""
    script = ("source /usr/share/bash-completion/bash_completion\n"
              "source %s\n"
              "COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=\"${COMP_WORDS[*]}\"\n"
              "COMP_POINT=${#COMP_LINE}\n"
              "$(complete -p %s | sed 's/.*-F \\([^ ]*\\).*/\\1/')\n"
              "printf '%%s\\n' \"${COMPREPLY[@]}\"\n") % (
        installed / "share/bash-completion/completions" / words[0],
        " ".join("'%s'" % w for w in words), len(words) - 1, words[0])
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_bash_completion(installed):
    if not Path("/usr/share/bash-completion/bash_completion").exists():
        pytest.skip("bash-completion is not installed")
    assert complete(installed, ["ekmfs-admin", ""]) >= {
        "init", "status", "verify", "keygen", "backup-manifest"}
    assert complete(installed, ["ekmfs-admin", "status", "--j"]) == {"--json"}
    assert complete(installed, ["ekmfs-rotate", ""]) == {
        "status", "kek", "rewrap", "retire", "cmk"}
    assert "--destroy" in complete(installed, ["ekmfs-rotate", "retire", "--"])
    assert "--destroy" not in complete(installed, ["ekmfs-rotate", "kek", "--"])
    assert {"--foreground", "--config"} <= complete(installed, ["ekmfs", "--"])


# ---- mounting the usual ways ------------------------------------------------------

def test_mount_fuse3_generic_helper_passes_options_last(installed, volume):
    """fuse3's mount.fuse3 runs `ekmfs BACKING MOUNTPOINT -o OPTS` (options
    after the positionals, plus rw,dev,suid): ekmfs must accept that."""
    env = dict(os.environ, PATH="%s:/usr/sbin:/usr/bin:/sbin:/bin" % (installed / "bin"))
    r = subprocess.run(["/sbin/mount.fuse3", str(volume.backing), str(volume.mnt),
                        "-t", "fuse.ekmfs", "-o",
                        "config=%s,allow_other,nofail,_netdev" % volume.config],
                       capture_output=True, text=True, env=env, timeout=60 * SLOW)
    assert r.returncode == 0, r.stderr
    try:
        assert is_mounted(volume.mnt)
        assert "allow_other" in mount_options(volume.mnt)
        write_then_read(volume.mnt)
    finally:
        unmount_detached(volume.mnt, volume.backing)
    assert not is_mounted(volume.mnt)


def test_mount_t_fuse_ekmfs(installed, system_helper, volume):
    r = subprocess.run(["mount", "-t", "fuse.ekmfs", str(volume.backing), str(volume.mnt),
                        "-o", "config=%s,allow_other" % volume.config],
                       capture_output=True, text=True, timeout=60 * SLOW)
    assert r.returncode == 0, r.stderr
    try:
        assert is_mounted(volume.mnt)
        opts = mount_options(volume.mnt)
        assert "allow_other" in opts and "default_permissions" in opts
        write_then_read(volume.mnt)
        pids = daemon_pids(volume.backing)
        assert len(pids) == 1
        exe = os.readlink("/proc/%d/exe" % pids[0])
        assert exe == str(installed / "bin" / "ekmfs")
    finally:
        unmount_detached(volume.mnt, volume.backing)
    # A wrong key: mount fails with ekmfs's one-line reason, nothing mounted.
    volume.write_config("[tenant.default]\nkey_file = %s\n" % (volume.keydir / "none.key"))
    r = subprocess.run(["mount", "-t", "fuse.ekmfs", str(volume.backing), str(volume.mnt),
                        "-o", "config=%s" % volume.config],
                       capture_output=True, text=True, timeout=60 * SLOW)
    assert r.returncode != 0 and "none.key" in r.stderr, r.stderr
    assert not is_mounted(volume.mnt)


def test_fstab_entry_and_mount_mountpoint(installed, system_helper, volume):
    fstab = Path("/etc/fstab")
    saved = fstab.read_bytes() if fstab.exists() else None
    line = "%s %s fuse.ekmfs config=%s,allow_other,noauto,nofail,x-systemd.automount 0 0\n" % (
        volume.backing, volume.mnt, volume.config)
    try:
        fstab.write_bytes((saved or b"") + line.encode())
        r = subprocess.run(["mount", str(volume.mnt)], capture_output=True, text=True,
                           timeout=60 * SLOW)
        assert r.returncode == 0, r.stderr
        try:
            assert is_mounted(volume.mnt)
            assert "allow_other" in mount_options(volume.mnt)
            write_then_read(volume.mnt)
        finally:
            unmount_detached(volume.mnt, volume.backing)
    finally:
        if saved is None:
            fstab.unlink()
        else:
            fstab.write_bytes(saved)
    assert fstab.exists() == (saved is not None)
    if saved is not None:
        assert fstab.read_bytes() == saved


# ---- systemd and sd_notify ----------------------------------------------------------

def test_systemd_unit_verifies(installed, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    # A template cannot be verified on its own: verify an instance.
    unit = tmp_path / "ekmfs@tmp-vault.service"
    shutil.copy(installed / "lib/systemd/system/ekmfs@.service", unit)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, env=dict(os.environ,
                                           MANPATH=str(installed / "share" / "man")))
    # verify exits 0 on parse warnings: any output is a problem.
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_systemd_unit_start_stop(installed, volume):
    try:
        pid1 = Path("/proc/1/comm").read_text().strip()
    except OSError:
        pid1 = "?"
    if pid1 != "systemd":
        pytest.skip("PID 1 is %r, not systemd: cannot start ekmfs@.service here; "
                    "the unit is checked by systemd-analyze verify and the "
                    "sd_notify protocol by test_sd_notify_protocol" % pid1)
    instance = subprocess.run(["systemd-escape", "-p", str(volume.mnt)], capture_output=True,
                              text=True).stdout.strip()
    unit_name = "ekmfs@%s.service" % instance
    unit_dir, env_dir = Path("/run/systemd/system"), Path("/etc/ekmfs")
    env_dir.mkdir(parents=True, exist_ok=True)
    env_file = env_dir / ("%s.env" % instance)
    shutil.copy(installed / "lib/systemd/system/ekmfs@.service", unit_dir / "ekmfs@.service")
    env_file.write_text("EKMFS_BACKING=%s\nEKMFS_OPTIONS=-c %s\n" % (volume.backing,
                                                                     volume.config))
    try:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        r = subprocess.run(["systemctl", "start", unit_name], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        # Type=notify: start returns once READY=1 arrived, i.e. mounted.
        assert is_mounted(volume.mnt)
        write_then_read(volume.mnt)
        assert subprocess.run(["systemctl", "reload", unit_name]).returncode == 0
        write_then_read(volume.mnt, b"after reload\n")
        assert subprocess.run(["systemctl", "stop", unit_name]).returncode == 0
        assert not is_mounted(volume.mnt)
        r = subprocess.run(["systemctl", "show", "-p", "Result", unit_name],
                           capture_output=True, text=True)
        assert "Result=success" in r.stdout
    finally:
        subprocess.run(["systemctl", "stop", unit_name], capture_output=True)
        (unit_dir / "ekmfs@.service").unlink()
        env_file.unlink()
        subprocess.run(["systemctl", "daemon-reload"])


class NotifySocket:
    """A systemd-notify-compatible receiver: a unix datagram socket whose
    path goes into NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def receive(self, timeout=15):
        self.sock.settimeout(timeout * SLOW)
        data = self.sock.recv(4096).decode()
        return dict(l.split("=", 1) for l in data.splitlines() if "=" in l)

    def close(self):
        self.sock.close()


def test_sd_notify_protocol(volume, monkeypatch):
    ns = NotifySocket(volume.root / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
    try:
        m = volume.mount()
        msg = ns.receive()
        # READY only once the file system is mounted and serving.
        assert msg.get("READY") == "1", msg
        assert is_mounted(volume.mnt)
        write_then_read(volume.mnt)

        m.proc.send_signal(signal.SIGHUP)
        assert ns.receive().get("RELOADING") == "1"
        msg = ns.receive()
        assert msg.get("READY") == "1" and is_mounted(volume.mnt), msg

        m.unmount()
        assert ns.receive().get("STOPPING") == "1"
    finally:
        ns.close()


def test_systemd_notify_tool_accepts_our_socket(tmp_path):
    """The test socket speaks the protocol systemd-notify speaks."""
    if not shutil.which("systemd-notify"):
        pytest.skip("systemd-notify is not installed")
    ns = NotifySocket(tmp_path / "n.sock")
    try:
        r = subprocess.run(["systemd-notify", "--ready", "--status=ok"],
                           env=dict(os.environ, NOTIFY_SOCKET=ns.path),
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip("systemd-notify refuses to run here: " + r.stderr.strip())
        msg = ns.receive()
        assert msg.get("READY") == "1" and msg.get("STATUS") == "ok"
    finally:
        ns.close()


# ---- signals ---------------------------------------------------------------------

def metrics(path):
    """name{labels} -> value of a Prometheus text file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def config_text(volume, daemon=""):
    return "[daemon]\n%s\n[tenant.default]\nkey_file = %s\n" % (daemon, volume.key_file)


def test_sighup_reloads_and_keeps_serving(volume):
    prom_a, prom_b = volume.root / "a.prom", volume.root / "b.prom"
    volume.write_config(config_text(volume, "metrics_file = %s\nmetrics_interval = 1" % prom_a))
    m = volume.mount()
    errors, stop = [], threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            p = volume.mnt / ("load-%d" % (i % 4))
            data = (b"%d " % i) * 3000
            try:
                p.write_bytes(data)
                if p.read_bytes() != data:
                    errors.append("wrong data in %s" % p.name)
            except OSError as e:
                errors.append(repr(e))
            i += 1

    t = threading.Thread(target=load)
    t.start()
    try:
        wait_for(prom_a.exists, 10, "the first metrics file")
        # 1: a good reload moves the metrics file and changes the timeouts.
        volume.write_config(config_text(volume, "metrics_file = %s\nmetrics_interval = 1\n"
                                        "attr_timeout = 0.5\nlog_level = info" % prom_b))
        m.proc.send_signal(signal.SIGHUP)
        wait_for(prom_b.exists, 10, "the metrics file at its reloaded path")
        assert metrics(prom_b)["ekmfs_config_reloads_total"] == 1
        # 2: a file that does not parse changes nothing.
        volume.write_config("[daemon]\nbogus_key = 1\n")
        m.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: metrics(prom_b).get("ekmfs_config_reload_failures_total") == 1, 10,
                 "the refused reload to be counted")
        # 3: a key_file that does not open the keyring is refused with the
        # whole reload; the keys in use stay (test_audit.py has the key
        # file that does, after ekmfs-rotate cmk).
        volume.write_config(config_text(volume, "metrics_file = %s\nmetrics_interval = 1"
                                        % prom_b).replace(
            "key_file = %s" % volume.key_file, "key_file = %s" % (volume.keydir / "x.key")))
        m.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: metrics(prom_b).get("ekmfs_config_reload_failures_total") == 2, 10,
                 "the third reload to be refused")
        time.sleep(0.3 * SLOW)
        assert is_mounted(volume.mnt) and m.proc.poll() is None
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:5]
    log = m.log()
    assert "bogus_key" in log and "reload refused" in log
    assert "the changed provider settings cannot unwrap its KEK v1" in log
    assert log.count("configuration reloaded") == 1
    write_then_read(volume.mnt)
    m.unmount()


def test_sigterm_unmounts_cleanly_even_when_busy(volume):
    """SIGTERM (systemctl stop) unmounts and exits 0 even while a process
    keeps the mount busy (its working directory is inside it)."""
    m = volume.mount()
    (volume.mnt / "d").mkdir()
    busy = subprocess.Popen(["sleep", "600"], cwd=volume.mnt / "d")
    try:
        r = subprocess.run(["umount", str(volume.mnt)], capture_output=True, text=True)
        assert r.returncode != 0 and is_mounted(volume.mnt), "the mount is not busy"
        m.proc.send_signal(signal.SIGTERM)
        assert m.wait_exit(30 * SLOW) == 0, m.log()
        assert not is_mounted(volume.mnt)
    finally:
        busy.kill()
        busy.wait()
    assert not sanitizer_report(m.log()), m.log()


# ---- metrics -------------------------------------------------------------------------

def test_metrics_file_counts(volume):
    prom = volume.root / "m" / "ekmfs.prom"
    prom.parent.mkdir()
    volume.write_config(config_text(volume, "metrics_file = %s\nmetrics_interval = 1" % prom))
    m = volume.mount()
    wait_for(prom.exists, 10, "the metrics file")
    first = metrics(prom)
    assert first["ekmfs_kms_calls_total"] >= 1          # the current KEK at open
    assert first["ekmfs_auth_failures_total"] == 0

    data = os.urandom(3 * 4096 + 100)
    (volume.mnt / "a").write_bytes(data)
    drop_caches()
    assert (volume.mnt / "a").read_bytes() == data
    held = open(volume.mnt / "a", "rb")
    try:
        wait_for(lambda: metrics(prom)["ekmfs_open_files"] >= 1, 10, "open_files >= 1")
    finally:
        held.close()
    # Tamper one block: the read fails and the failure is counted.
    with open(volume.backing / "a", "r+b") as f:
        f.seek(block_offset(1) + 40)
        b = f.read(1)
        f.seek(block_offset(1) + 40)
        f.write(bytes([b[0] ^ 1]))
    drop_caches()
    with pytest.raises(OSError):
        (volume.mnt / "a").read_bytes()
    wait_for(lambda: metrics(prom)["ekmfs_auth_failures_total"] >= 1, 10,
             "the authentication failure in the metrics")
    wait_for(lambda: metrics(prom)["ekmfs_open_files"] == 0, 10, "open_files back to 0")
    now = metrics(prom)
    assert now["ekmfs_written_bytes_total"] >= len(data)
    assert now["ekmfs_read_bytes_total"] >= len(data)
    assert now["ekmfs_writes_total"] >= 1 and now["ekmfs_reads_total"] >= 1
    assert now["ekmfs_read_errors_total"] >= 1
    assert now["ekmfs_kek_cache_hits_total"] >= 1
    assert now["ekmfs_uptime_seconds"] >= 0
    assert any(k.startswith("ekmfs_info{") for k in now)
    # Atomic replacement leaves no temporary files behind.
    assert [p.name for p in prom.parent.iterdir()] == ["ekmfs.prom"]
    m.unmount()
    # The last write at exit.
    assert metrics(prom)["ekmfs_open_files"] == 0


def test_metrics_interval_is_validated(volume):
    volume.write_config(config_text(volume, "metrics_interval = 0"))
    r = volume.admin("status", volume.backing)
    assert r.returncode == 1 and "metrics_interval" in r.stderr
    volume.write_config(config_text(volume, "metrics_file = relative.prom"))
    r = volume.admin("status", volume.backing)
    assert r.returncode == 1 and "metrics_file" in r.stderr


# ---- status --json ---------------------------------------------------------------------

def test_status_json(mounted):
    vol = mounted
    for i in range(3):
        (vol.mnt / ("f%d" % i)).write_bytes(b"x" * (i + 1))
    (vol.mnt / "empty").write_bytes(b"")
    r = vol.admin("status", "--json", vol.backing)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["mounted_at"] == [str(vol.mnt)]
    assert re.fullmatch(r"[0-9a-f]{32}", st["volume_id"])
    # Files created through the mount get their header at once, empty or not.
    assert st["files"] == {"total": 4, "empty": 0, "bad_header": 0, "unreadable": 0}
    (t,) = st["tenants"]
    assert t["name"] == "default" and t["current_kek_version"] == 1
    assert t["keks"][0]["files"] == 4 and t["keks"][0]["state"] == "active"
    assert t["files_on_older_keks"] == 0 and st["unknown_keks"] == []
    # Same numbers as the text form; options after BACKING work too.
    r2 = vol.admin("status", vol.backing, "--json")
    assert json.loads(r2.stdout)["files"] == st["files"]
    assert vol.admin("status", "--bogus", vol.backing).returncode == 2
    if not ROTATE.exists():
        return
    # After a rotation every file is on the new version; none left behind.
    r = run_cli([ROTATE, "-c", vol.config, "kek", "-q", vol.backing])
    assert r.returncode == 0, r.stderr
    (vol.mnt / "new").write_bytes(b"after rotation")
    st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
    (t,) = st["tenants"]
    assert t["current_kek_version"] == 2 and t["files_on_older_keks"] == 0
    assert {k["version"]: k["files"] for k in t["keks"]} == {1: 0, 2: 5}
