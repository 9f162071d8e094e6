"""A real GlusterFS volume mounted by two clients: two "hosts" of one store.

Owns: the `gluster` fixture (module scope). It starts glusterd when none runs
(and stops it again afterwards), creates a 2-brick replicated volume on this
host (GlusterFS wants a host name for bricks, not 127.0.0.1; this machine's
host name resolves to loopback; `force` because the bricks are on the root
file system), mounts it twice with the GlusterFS FUSE client and tears all of
it down. Each client is a separate FUSE connection with its own inodes and
its own client process talking to the bricks, so locks and caches that agree
between them agree through GlusterFS, as between two hosts.

Skipped, with the reason, only when GlusterFS cannot start here (not
installed: tools/install-deps.sh installs glusterfs-server and
glusterfs-client; glusterd does not come up).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

GLUSTER = ["gluster", "--mode=script"]
# What docs/SHARED.md asks of a GlusterFS volume under ekmfs: no client-side
# caching of data or metadata, so what one client wrote and closed is what
# the other reads (the defaults keep attributes for 1 s and cache reads).
SHARED_VOLUME_OPTIONS = ("performance.stat-prefetch", "performance.quick-read",
                         "performance.io-cache", "performance.read-ahead",
                         "performance.readdir-ahead", "performance.open-behind",
                         "performance.write-behind", "performance.nl-cache")
# The FUSE client keeps a file's pages across opens (measured: 46 of 50
# reads through one client returned what the other had overwritten and
# fsynced), hence direct-io-mode.
SHARED_MOUNT_OPTIONS = ("attribute-timeout=0,entry-timeout=0,negative-timeout=0,"
                        "direct-io-mode=enable")
PIDFILE = "/run/ekmfs-test-glusterd.pid"


def _run(argv, timeout=60):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def _glusterd_answers():
    try:
        return _run(GLUSTER + ["volume", "list"], timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _start_glusterd():
    """True when we started it (and must stop it); skips when it cannot run."""
    if not shutil.which("glusterd") or not shutil.which("gluster"):
        pytest.skip("GlusterFS is not installed (glusterfs-server, glusterfs-client: "
                    "tools/install-deps.sh installs them)")
    if _run(["pgrep", "-x", "glusterd"]).returncode == 0:
        if _glusterd_answers():
            return False
        pytest.skip("a glusterd runs here but does not answer `gluster volume list`")
    r = _run(["glusterd", "-p", PIDFILE])
    if r.returncode != 0:
        pytest.skip("glusterd cannot start: %s" % (r.stderr or r.stdout).strip())
    deadline = time.monotonic() + 30
    while not _glusterd_answers():
        if time.monotonic() > deadline:
            _stop_glusterd()
            pytest.skip("glusterd started but did not answer within 30 s "
                        "(see /var/log/glusterfs/glusterd.log)")
        time.sleep(0.5)
    return True


def _stop_glusterd():
    try:
        pid = int(Path(PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _is_mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


class Gluster:
    """volume `name` with bricks b1, b2 under root; clients c1 and c2."""

    def __init__(self):
        self.host = socket.gethostname()
        self.root = Path(tempfile.mkdtemp(prefix="ekmfs-it-gluster-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.name = "ekmfs-%d-%d" % (os.getpid(), int(time.time()))
        self.bricks = [self.root / "b1", self.root / "b2"]
        self.clients = [self.root / "c1", self.root / "c2"]
        self.created = False

    def gluster(self, *args, timeout=120):
        r = _run(GLUSTER + list(args), timeout=timeout)
        assert r.returncode == 0, "gluster %s: %s" % (" ".join(args), r.stderr + r.stdout)
        return r

    def up(self):
        for d in self.bricks + self.clients:
            d.mkdir()
        self.gluster("volume", "create", self.name, "replica", "2",
                     *["%s:%s" % (self.host, b) for b in self.bricks], "force")
        self.created = True
        for opt in SHARED_VOLUME_OPTIONS:
            self.gluster("volume", "set", self.name, opt, "off")
        self.gluster("volume", "start", self.name)
        for c in self.clients:
            r = _run(["mount", "-t", "glusterfs", "-o", SHARED_MOUNT_OPTIONS,
                      "%s:/%s" % (self.host, self.name), str(c)])
            assert r.returncode == 0 and _is_mounted(c), \
                "mount -t glusterfs at %s: %s" % (c, r.stderr)

    def down(self):
        for c in self.clients:
            if _is_mounted(c):
                if _run(["umount", str(c)]).returncode != 0:
                    _run(["umount", "-l", str(c)])
        if self.created:
            _run(GLUSTER + ["volume", "stop", self.name, "force"])
            _run(GLUSTER + ["volume", "delete", self.name])
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def gluster():
    """A started GlusterFS replica-2 volume mounted at .clients[0] and [1]."""
    started = _start_glusterd()
    g = Gluster()
    try:
        g.up()
        yield g
    finally:
        g.down()
        if started:
            _stop_glusterd()
