"""Fixtures for the ekmfs integration suite: real FUSE mounts of real volumes.

Owns: where the binaries are (env EKMFS_BUILD, default <repo>/build), a fresh
volume (tmp backing dir, key file outside it, config file, mountpoint), a
mounted volume whose teardown always unmounts and checks that the daemon
exited 0 without sanitizer reports, and small helpers the tests share:
running a function as another uid, dropping the page cache, reading the
daemon's log.

Divisions: paths and constants / helpers / Mount / Volume / fixtures.
"""
import errno
import os
import pickle
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

# ---- paths and constants ---------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("EKMFS_BUILD", str(REPO / "build"))).resolve()
EKMFS = BUILD / "ekmfs"
ADMIN = BUILD / "ekmfs-admin"
ROTATE = BUILD / "ekmfs-rotate"

# Sanitizer builds are several times slower: scale every wait.
SLOW = 4 if "asan" in BUILD.name or os.environ.get("EKMFS_SLOW") else 1

# A test that takes longer than this is hung (the slowest take ~2 s): its
# daemons are killed, which fails every pending FUSE request, so the suite
# goes on and reports the hang instead of stalling until CI's time runs out.
TEST_TIMEOUT = float(os.environ.get("EKMFS_TEST_TIMEOUT", 120)) * SLOW

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer")

# Format version 2 (docs/FORMAT.md): a 1024-byte header (sector 0: magic,
# version, file id, two key slots; sector 1: two state records) and blocks
# of a 24-byte XAES nonce, up to 4096 bytes of ciphertext and a 16-byte tag.
HEADER_SIZE = 1024
STATE_OFFSET = 512                  # two 256-byte state records
BLOCK = 4096
NONCE = 24
TAG = 16
CBLOCK = BLOCK + NONCE + TAG        # 4136


def block_offset(i):
    return HEADER_SIZE + i * CBLOCK


def backing_size(plain):
    if plain == 0:
        return HEADER_SIZE
    full, rest = divmod(plain, BLOCK)
    return HEADER_SIZE + full * CBLOCK + (rest + NONCE + TAG if rest else 0)


# ---- helpers ---------------------------------------------------------------

def wait_sealed(backing, timeout=15):
    """Wait until every backing file under backing is at rest: its two state
    records equal (the daemon seals a file closed without fsync within
    seconds of its close, rewriting the older record; docs/FORMAT.md)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = []
        for dirpath, dirnames, filenames in os.walk(backing):
            if dirpath == str(backing):
                dirnames[:] = [d for d in dirnames if d != ".ekmfs"]
            for n in filenames:
                p = os.path.join(dirpath, n)
                if os.path.islink(p):
                    continue
                with open(p, "rb") as f:
                    head = f.read(HEADER_SIZE)
                if len(head) == HEADER_SIZE and head[512:768] != head[768:1024]:
                    pending.append(p)
        if not pending:
            return
        assert time.monotonic() < deadline, "files never sealed: %s" % pending
        time.sleep(0.1)


def sanitizer_report(text):
    """The sanitizer lines in a process's stderr, '' when clean."""
    return "\n".join(l for l in text.splitlines()
                     if any(m in l for m in SANITIZER_MARKERS))


def is_mounted(mnt, fstype="fuse.ekmfs"):
    mnt = str(mnt)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3:
                continue
            where = fields[1].replace("\\040", " ").replace("\\011", "\t")
            if where == mnt and fields[2] == fstype:
                return True
    return False


def drop_caches():
    """Make the next read go to the daemon, not the kernel page cache."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def run_as(uid, gid, fn, *args, groups=(), umask=0o022):
    """Run fn(*args) in a forked child with the given credentials.

    Returns fn's (picklable) result; an OSError in the child is re-raised here
    with the same errno, anything else becomes an AssertionError.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            os.umask(umask)
            res = ("ok", fn(*args))
        except OSError as e:
            res = ("oserr", e.errno, str(e))
        except BaseException as e:  # noqa: B902 - report everything to the parent
            res = ("exc", repr(e))
        try:
            data = pickle.dumps(res)
        except Exception as e:
            data = pickle.dumps(("exc", "unpicklable result: %r" % e))
        with os.fdopen(wfd, "wb") as w:
            w.write(data)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        data = r.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise AssertionError("child as uid %d died (status %#x)" % (uid, status))
    res = pickle.loads(data)
    if res[0] == "ok":
        return res[1]
    if res[0] == "oserr":
        raise OSError(res[1], res[2])
    raise AssertionError("child as uid %d: %s" % (uid, res[1]))


def errno_of(fn, *args, **kw):
    """The errno fn raises, or 0 when it succeeds."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


def tree_snapshot(root):
    """Everything a user can observe about a tree, for equality checks."""
    snap = {}
    root = str(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            entry = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                     "size": st.st_size if not os.path.isdir(p) else None,
                     "nlink": st.st_nlink if not os.path.isdir(p) else None,
                     "mtime_ns": st.st_mtime_ns if not os.path.islink(p) else None,
                     "xattrs": {}}
            if os.path.islink(p):
                entry["target"] = os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    entry["data"] = f.read()
                for x in sorted(os.listxattr(p, follow_symlinks=False)):
                    entry["xattrs"][x] = os.getxattr(p, x, follow_symlinks=False)
            elif os.path.isdir(p):
                for x in sorted(os.listxattr(p, follow_symlinks=False)):
                    entry["xattrs"][x] = os.getxattr(p, x, follow_symlinks=False)
            snap[rel] = entry
    return snap


def run_cli(argv, timeout=60, **kw):
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True,
                          timeout=timeout * SLOW, **kw)


def dir_state(path):
    """Names, sizes, modes and contents of every file below path (for
    'nothing was written' checks)."""
    state = {}
    path = Path(path)
    if not path.exists():
        return None
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else None
        state[str(p.relative_to(path))] = (st.st_mode, st.st_size, st.st_mtime_ns, data)
    return state


# ---- Mount -----------------------------------------------------------------

LIVE_MOUNTS = set()      # Mounts whose daemon may still run (for the hang guard)


class Mount:
    """One run of `ekmfs -f` in the background."""

    def __init__(self, vol, opts, args, seq):
        self.vol = vol
        self.path = vol.mnt
        self.opts = opts
        self.args = args
        self.errpath = vol.root / ("ekmfs-%d.stderr" % seq)
        self.proc = None
        self.returncode = None

    def start(self, expect_ok=True):
        # launcher: a command that execs the daemon (e.g. prlimit), so
        # proc.pid is still the daemon's
        argv = list(getattr(self.vol, "launcher", ())) + [str(EKMFS)]
        if self.vol.config_enabled:
            argv += ["-c", str(self.vol.config)]
        argv += list(self.args) + ["-f"]
        if self.opts:
            argv += ["-o", self.opts]
        argv += [str(self.vol.backing), str(self.path)]
        self.argv = argv
        with open(self.errpath, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        LIVE_MOUNTS.add(self)
        if not expect_ok:
            return
        deadline = time.monotonic() + 15 * SLOW
        while not is_mounted(self.path):
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise AssertionError("ekmfs exited %d before mounting: %s"
                                     % (rc, self.log().strip()))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("ekmfs did not mount within %ds: %s"
                                     % (15 * SLOW, self.log().strip()))
            time.sleep(0.02)

    def log(self):
        try:
            return self.errpath.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        LIVE_MOUNTS.discard(self)
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        LIVE_MOUNTS.discard(self)
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-uz", str(self.path)],
                           capture_output=True)

    def unmount(self):
        """fusermount3 -u, then the daemon must exit 0 with a clean stderr."""
        problems = []
        if is_mounted(self.path):
            for _ in range(50):
                r = subprocess.run(["fusermount3", "-u", str(self.path)],
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    break
                time.sleep(0.1)
            else:
                problems.append("fusermount3 -u failed: " + r.stderr.strip())
                subprocess.run(["fusermount3", "-uz", str(self.path)],
                               capture_output=True)
        rc = self.wait_exit(30 * SLOW)
        if rc is None:
            problems.append("ekmfs did not exit after unmount")
            self.kill()
        elif rc != 0:
            problems.append("ekmfs exited %d after unmount" % rc)
        rep = sanitizer_report(self.log())
        if rep:
            problems.append("sanitizer: " + rep)
        if problems:
            raise AssertionError("; ".join(problems) + "\n--- ekmfs stderr ---\n"
                                 + self.log()[-4000:])

    def auth_failures(self):
        return [l for l in self.log().splitlines()
                if "authentication failed" in l]


# ---- Volume ----------------------------------------------------------------

class Volume:
    """A temp dir holding backing/, mnt/, keys/local.key and ekmfs.ini."""

    def __init__(self, root):
        self.root = Path(root)
        self.backing = self.root / "backing"
        self.mnt = self.root / "mnt"
        self.keydir = self.root / "keys"
        self.key_file = self.keydir / "local.key"
        self.config = self.root / "ekmfs.ini"
        self.config_enabled = True
        self.launcher = []
        self.mounts = []
        for d in (self.backing, self.mnt):
            d.mkdir(mode=0o755)
        self.keydir.mkdir(mode=0o700)
        self.write_config("[tenant.default]\nkey_file = %s\n" % self.key_file)

    def write_config(self, text):
        # Every test volume keeps its audit log in its own temp dir rather
        # than the system default under /var/log/ekmfs. Appended last, so
        # line numbers of a test's own (possibly broken) lines do not move.
        if "[audit]" not in text:
            text += "\n[audit]\nfile = %s\n" % (self.root / "audit.log")
        # The whole suite under another daemon setting, e.g.
        # EKMFS_TEST_DAEMON="fd_cache = 1" (every inode descriptor evicted
        # as soon as it is idle) or "inode_file_handles = never".
        extra = os.environ.get("EKMFS_TEST_DAEMON")
        if extra:
            text += "\n[daemon]\n%s\n" % extra.replace(";", "\n")
        self.config.write_text(text)

    def admin(self, *args, config=True):
        argv = [ADMIN]
        if config:
            argv += ["-c", self.config]
        return run_cli(argv + list(args))

    def init(self):
        r = self.admin("init", self.backing)
        assert r.returncode == 0, "ekmfs-admin init failed: %s" % r.stderr
        return r

    def mount(self, opts="allow_other,default_permissions", args=()):
        m = Mount(self, opts, args, len(self.mounts))
        self.mounts.append(m)
        m.start()
        return m

    def remount(self, m, **kw):
        m.unmount()
        return self.mount(**kw)

    def bpath(self, rel):
        """The backing file behind a path relative to the volume root."""
        return self.backing / rel

    def cleanup(self):
        for m in self.mounts:
            m.kill()


def make_root():
    root = tempfile.mkdtemp(prefix="ekmfs-it-", dir="/tmp")
    # non-root test users must be able to reach the mountpoint
    os.chmod(root, 0o755)
    return root


# ---- fixtures --------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def _binaries():
    for b in (EKMFS, ADMIN):
        if not os.access(b, os.X_OK):
            pytest.exit("missing binary %s (build first, or set EKMFS_BUILD)" % b,
                        returncode=3)
    if os.geteuid() != 0:
        pytest.exit("the integration suite must run as root (FUSE allow_other, "
                    "setuid children)", returncode=3)


@pytest.fixture(autouse=True)
def _hang_guard(request):
    """Kill the daemons of a test that runs past TEST_TIMEOUT (or its
    hang_timeout(seconds) marker, for tests sized by a budget), then fail it."""
    fired = []
    marker = request.node.get_closest_marker("hang_timeout")
    limit = max(TEST_TIMEOUT, marker.args[0]) if marker else TEST_TIMEOUT

    def fire():
        fired.append(True)
        for m in list(LIVE_MOUNTS):
            if m.proc and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGKILL)

    timer = threading.Timer(limit, fire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()
    if fired:
        pytest.fail("test hung for more than %ds; ekmfs was killed to free it" % limit)


@pytest.fixture
def fresh():
    """An uninitialised volume layout (no .ekmfs yet, no key file)."""
    root = make_root()
    vol = Volume(root)
    yield vol
    vol.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def volume(fresh):
    """An initialised volume, not mounted."""
    fresh.init()
    return fresh


@pytest.fixture
def mounted(volume):
    """A mounted volume (allow_other,default_permissions). The teardown
    unmounts the latest mount and fails the test if the daemon did not exit
    0 or reported sanitizer errors."""
    m = volume.mount()
    yield volume
    last = volume.mounts[-1]
    if last.proc.poll() is None or is_mounted(last.path):
        last.unmount()
    elif last.returncode is None:
        # the test unmounted it itself but may not have checked
        rep = sanitizer_report(last.log())
        assert not rep, rep
    del m


@pytest.fixture
def mnt(mounted):
    """The mountpoint path of a mounted volume."""
    return mounted.mnt


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test")
    config.addinivalue_line("markers", "hang_timeout(seconds): a longer hang guard")


def eio(fn, *args):
    """Assert fn(*args) fails with EIO."""
    e = errno_of(fn, *args)
    assert e == errno.EIO, "expected EIO, got %s" % (errno.errorcode.get(e, e) if e else "success")
