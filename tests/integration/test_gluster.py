"""One volume, two hosts: the mount lock through a real GlusterFS volume.

Owns: an ekmfs volume whose backing directory lives on GlusterFS, seen
through two GlusterFS clients (gluster.py) as two hosts would see it. A
mount through client 1 works; a second mount through client 2 exits 1 with
the one line that names the holder, nothing mounted: the OFD lock on
.ekmfs/mount.lock is held in GlusterFS's locks translator on the bricks,
not in either client's kernel. A daemon killed with SIGKILL on client 1
leaves a lock GlusterFS releases with its file, so client 2 mounts and
recovers. Shared mode (docs/SHARED.md) on the same two clients:
close-to-open, two writers on one file, fsx with a reader on the other
host, a file held open handed over (lease recall), the volume-wide lock
(also unlocking one tenant while all are locked), ekmfs-rotate while both
write, keyring changes (KEK, retire, new tenant, disable, CMK change)
reaching the other host, and a daemon killed mid-write.
"""
import copy
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import SLOW, Mount, Volume, errno_of, is_mounted, make_root
from gluster import gluster  # noqa: F401 - the fixture
from test_holder import mounts_at


def host_config(vol, where, audit_log):
    vol.audit_log = audit_log
    vol.run_dir = where / "run"
    vol.config.write_text("[daemon]\ncontrol_dir = %s\n[audit]\nfile = %s\n"
                          "[tenant.default]\nkey_file = %s\n"
                          % (vol.run_dir, vol.audit_log, vol.key_file))


@pytest.fixture
def gvol(gluster):  # noqa: F811 - the fixture
    """An initialised ekmfs volume on GlusterFS: .backing through client 1;
    .other is the same volume through client 2, with its own mountpoint."""
    root = make_root()
    vol = Volume(root)
    vol.backing.rmdir()
    name = os.path.basename(root)
    vol.backing = gluster.clients[0] / name
    vol.backing.mkdir()
    # One audit chain per volume (docs/SHARED.md): every host appends to
    # the same log, on the shared store, each through its own client.
    host_config(vol, vol.root, gluster.clients[0] / (name + ".audit.log"))
    vol.init()
    # Host 2: the same key, its own configuration, control socket directory,
    # audit log and daemon logs, as on another machine.
    other = copy.copy(vol)
    other.backing = gluster.clients[1] / name
    other.mnt = vol.root / "mnt2"
    other.mnt.mkdir()
    other.mounts = []
    other.root = vol.root / "host2"
    other.root.mkdir()
    other.config = other.root / "ekmfs.ini"
    host_config(other, other.root, gluster.clients[1] / (name + ".audit.log"))
    assert (other.backing / ".ekmfs").is_dir(), "client 2 does not see the volume"
    yield vol, other
    other.cleanup()
    vol.cleanup()
    shutil.rmtree(vol.backing, ignore_errors=True)
    vol.audit_log.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)


def try_mount(vol):
    m = Mount(vol, "allow_other,default_permissions", (), len(vol.mounts))
    m.start(expect_ok=False)
    rc = m.wait_exit(30 * SLOW)
    if rc is None:
        m.kill()
    return rc, m.log()


def test_second_mount_from_another_client_is_refused(gvol):
    vol, other = gvol
    first = vol.mount()
    (vol.mnt / "f").write_bytes(b"through client 1")
    rc, err = try_mount(other)
    assert rc == 1, err
    assert err.splitlines() == [
        "ekmfs: the volume is already mounted by %s (pid %d) at %s: one daemon at a time "
        "(or -o shared on every host)" % (socket.gethostname(), first.proc.pid, vol.mnt)], err
    assert mounts_at(other.mnt) == 0 and mounts_at(vol.mnt) == 1
    # client 2 sees who holds it, and that the holder is alive
    st = json.loads(other.admin("status", "--json", other.backing).stdout)
    assert (st["holder"]["pid"], st["holder"]["live"]) == (first.proc.pid, True), st
    assert (vol.mnt / "f").read_bytes() == b"through client 1"
    first.unmount()


def test_a_killed_daemon_on_one_client_does_not_block_the_other(gvol):
    vol, other = gvol
    first = vol.mount()
    with open(vol.mnt / "f", "wb") as f:
        f.write(b"y" * 20000)
        f.flush()
        os.fsync(f.fileno())
    first.proc.send_signal(signal.SIGKILL)
    assert first.proc.wait(timeout=10 * SLOW) == -signal.SIGKILL
    first.kill()
    assert not is_mounted(vol.mnt)
    m = other.mount()
    assert (other.mnt / "f").read_bytes() == b"y" * 20000
    assert "recovery:" in m.log(), m.log()
    # client 1 sees the new holder once its GlusterFS client's metadata
    # cache has expired
    t0 = time.monotonic()
    while True:
        st = json.loads(vol.admin("status", "--json", vol.backing).stdout)
        if st["holder"] or time.monotonic() > t0 + 10:
            break
        time.sleep(0.1)
    print("client 1 saw the new holder after %.1f s" % (time.monotonic() - t0))
    assert (st["holder"]["pid"], st["holder"]["live"]) == (m.proc.pid, True), st
    m.unmount()


# ---- shared mode (docs/SHARED.md) ------------------------------------------

SHARED = "allow_other,default_permissions,shared"


def mount_shared(vol):
    m = Mount(vol, SHARED, (), len(vol.mounts))
    vol.mounts.append(m)
    m.start()
    return m


def test_shared_and_exclusive_mounts_exclude_each_other(gvol):
    vol, other = gvol
    a = mount_shared(vol)
    rc, err = try_mount(other)                 # exclusive while shared
    assert rc == 1, err
    assert err.splitlines() == [
        "ekmfs: the volume is mounted in shared mode by %s (pid %d) at %s: mount it with "
        "-o shared too, or unmount those first" % (socket.gethostname(), a.proc.pid,
                                                   vol.mnt)], err
    assert mounts_at(other.mnt) == 0
    b = mount_shared(other)                    # shared joins shared
    st = json.loads(other.admin("status", "--json", other.backing).stdout)
    got = sorted((h["pid"], h["mountpoint"], h["mode"], h["live"])
                 for h in st["shared_holders"])
    assert got == sorted([(a.proc.pid, str(vol.mnt), "shared", True),
                          (b.proc.pid, str(other.mnt), "shared", True)]), st
    assert st["holder"] is None
    b.unmount()
    a.unmount()
    ex = vol.mount()                           # then shared while exclusive
    m = Mount(other, SHARED, (), 99)
    m.start(expect_ok=False)
    assert m.wait_exit(30 * SLOW) == 1, m.log()
    assert "already mounted by %s (pid %d)" % (socket.gethostname(), ex.proc.pid) in m.log()
    assert mounts_at(other.mnt) == 0
    ex.unmount()


def test_shared_close_to_open(gvol):
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    files = {"f%d" % n: os.urandom(n) for n in (0, 1, 4095, 4096, 4097, 100000, 1 << 20)}
    for name, data in files.items():
        with open(vol.mnt / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    for name, data in files.items():
        with open(other.mnt / name, "rb") as f:
            assert f.read() == data, name
    # overwritten shorter through b: a sees the new size and bytes at once
    for name, data in files.items():
        with open(other.mnt / name, "r+b") as f:
            f.truncate(len(data) // 3)
            f.seek(0)
            f.write(b"B" * (len(data) // 7))
    for name, data in files.items():
        want = b"B" * (len(data) // 7) + data[len(data) // 7:len(data) // 3]
        assert os.stat(vol.mnt / name).st_size == len(want), name
        with open(vol.mnt / name, "rb") as f:
            assert f.read() == want, name
    assert not a.auth_failures() and not b.auth_failures()
    b.unmount()
    a.unmount()


def hammer(path, seed, rounds):
    """open, write blocks (some whole, some across block edges), close."""
    import random
    rng = random.Random(seed)
    for i in range(rounds):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for _ in range(rng.randint(1, 4)):
                if rng.random() < 0.5:
                    off, n = rng.randrange(16) * 4096, 4096 * rng.randint(1, 3)
                else:
                    off, n = rng.randrange(16 * 4096), rng.randint(1, 9000)
                os.pwrite(fd, bytes([seed]) * n, off)
            if i % 10 == 0:
                os.fsync(fd)
        finally:
            os.close(fd)


def test_shared_two_writers_one_file(gvol):
    import multiprocessing
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    (vol.mnt / "h").write_bytes(b"\0" * 16 * 4096)
    ps = [multiprocessing.Process(target=hammer, args=(m / "h", seed, 60))
          for m, seed in ((vol.mnt, 0xA1), (other.mnt, 0xB2))]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120 * SLOW)
        assert p.exitcode == 0, "a writer failed (exit %s)\n--- a ---\n%s\n--- b ---\n%s" % (
            p.exitcode, a.log()[-3000:], b.log()[-3000:])
    # every block authenticates through both mounts, and both read the same
    da = (vol.mnt / "h").read_bytes()
    db = (other.mnt / "h").read_bytes()
    assert da == db
    assert set(da) <= {0, 0xA1, 0xB2} and {0xA1, 0xB2} <= set(da)
    assert not a.auth_failures() and not b.auth_failures()
    b.unmount()
    a.unmount()
    r = vol.admin("verify", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr


def wait_errno(path, want, limit):
    """Seconds until opening path fails with want (or succeeds: want 0)."""
    t0 = time.monotonic()
    while True:
        e = errno_of(lambda: os.close(os.open(path, os.O_RDONLY)))
        if e == want:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < limit, "%s: still %s after %.1f s" % (
            path, errno.errorcode.get(e, e) if e else "opens", limit)
        time.sleep(0.05)


def test_shared_lock_is_volume_wide(gvol):
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    (vol.mnt / "f").write_bytes(b"locked data")
    assert (other.mnt / "f").read_bytes() == b"locked data"
    fd = os.open(other.mnt / "f", os.O_RDONLY)        # open on b across the lock
    try:
        r = vol.admin("lock", vol.mnt)                # reaches a only
        assert r.returncode == 0, r.stderr
        assert "every mount of the volume within 2 s" in r.stdout, r.stdout
        # an open on a waits for b's lease on f, which b gives up when it
        # applies the lock: both within the bound
        wait_errno(vol.mnt / "f", errno.ENOKEY, 2.5)
        took = wait_errno(other.mnt / "f", errno.ENOKEY, 2.5)
        print("host 2 refused opens %.2f s after the lock" % took)
        assert errno_of(os.pread, fd, 4, 0) == errno.ENOKEY
        assert errno_of(os.open, str(other.mnt / "new"),
                        os.O_CREAT | os.O_WRONLY) == errno.ENOKEY
        r = vol.admin("unlock", vol.mnt)
        assert r.returncode == 0, r.stderr
        wait_errno(vol.mnt / "f", 0, 2.5)
        took = wait_errno(other.mnt / "f", 0, 2.5)
        print("host 2 opened again %.2f s after the unlock" % took)
        assert os.pread(fd, 6, 0) == b"locked"
    finally:
        os.close(fd)
    b.unmount()
    a.unmount()
    # one chain: audited once, by the daemon that was asked; the other
    # logged it; both hosts' mounts are in it
    recs = [json.loads(l) for l in vol.audit_log.read_text().splitlines()]
    evs = [r["event"] for r in recs]
    assert evs.count("lock") == 1 and evs.count("unlock") == 1, evs
    assert evs.count("mount") == 2 and evs.count("unmount") == 2, evs
    assert "locked on another host" in b.log(), b.log()
    for v in (vol, other):
        r = v.admin("audit", "verify", v.backing)
        assert r.returncode == 0, r.stdout + r.stderr


def writer(mnt, tag, stop_at, out):
    """Rewrite and create files until stop_at; their last contents to out."""
    import pickle
    last, i = {}, 0
    while time.time() < stop_at:
        name = "w%s-%d" % (tag, i % 12)
        data = (b"%s %d " % (tag.encode(), i)) * (1 + i % 900)
        with open(os.path.join(mnt, name), "wb") as f:
            f.write(data)
        last[name] = data
        i += 1
    with open(out, "wb") as f:
        pickle.dump(last, f)


def test_shared_rotate_while_both_write(gvol):
    import multiprocessing
    import pickle
    from conftest import ROTATE, run_cli
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    for i in range(20):
        (vol.mnt / ("old%d" % i)).write_bytes(b"old %d " % i * (1 + 300 * i))
    stop_at = time.time() + 8 * SLOW
    outs = [vol.root / "wa.pickle", vol.root / "wb.pickle"]
    ps = [multiprocessing.Process(target=writer, args=(str(m), t, stop_at, o))
          for m, t, o in ((vol.mnt, "A", outs[0]), (other.mnt, "B", outs[1]))]
    for p in ps:
        p.start()
    time.sleep(1)
    r = run_cli([ROTATE, "-c", vol.config, "kek", vol.backing], timeout=120)
    for p in ps:
        p.join(60 * SLOW)
        assert p.exitcode == 0, "a writer failed\n%s\n%s" % (a.log()[-2000:], b.log()[-2000:])
    assert r.returncode == 0, r.stdout + r.stderr
    expect = {("old%d" % i): b"old %d " % i * (1 + 300 * i) for i in range(20)}
    for o in outs:
        expect.update(pickle.loads(o.read_bytes()))
    for m in (vol.mnt, other.mnt):
        for name, data in expect.items():
            assert (m / name).read_bytes() == data, (m, name)
    assert not a.auth_failures() and not b.auth_failures()
    b.unmount()
    a.unmount()
    r = vol.admin("verify", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr


def reload(m, expect="configuration reloaded"):
    before = m.log().count(expect)
    m.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20 * SLOW
    while m.log().count(expect) == before:
        assert time.monotonic() < deadline, m.log()[-2000:]
        time.sleep(0.05)


def unmount_and_check_keys(vol, a, b):
    """Unmount both hosts: neither refused a keyring it re-read, no block
    failed; verify --keys passes. Its result."""
    b.unmount()
    a.unmount()
    for m in (a, b):
        assert "keeping the keyring in memory" not in m.log(), m.log()[-2000:]
        assert not m.auth_failures()
    r = vol.admin("verify", "--keys", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def add_acme(vol, other):
    """Tenant acme (/bots/acme, a local key) in both hosts' configurations."""
    (vol.backing / "bots" / "acme").mkdir(parents=True)
    acme = ("[tenant.acme]\nprovider = local\nkey_file = %s\npaths = /bots/acme\n"
            "enforce_from = 2020-01-01\n" % (vol.keydir / "acme.key"))
    for v in (vol, other):
        v.config.write_text(v.config.read_text() + acme)


def test_shared_keyring_changes_reach_the_other_host(gvol):
    """Keyring changes made through one host reach the other (docs/SHARED.md):
    a KEK rotation and a destroyed version by ekmfs-rotate on host 1, and a
    new tenant made by host 1's daemon at a reload and adopted by host 2's
    at its own. Host 2 authenticates every keyring it re-reads (the keyring
    MAC; its log shows no refusal), writes new files under the new KEK and
    the new tenant, and reads everything; both keyrings verify."""
    from conftest import ROTATE, run_cli
    from ondisk import header_tenant, slots
    vol, other = gvol
    (vol.backing / "bots" / "acme").mkdir(parents=True)
    a, b = mount_shared(vol), mount_shared(other)
    (vol.mnt / "before").write_bytes(b"before " * 100)
    for args in (("kek",), ("retire", "--version", "1", "--destroy")):
        r = run_cli([ROTATE, "-c", vol.config] + list(args) + [vol.backing], timeout=120)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    (other.mnt / "after-rotation").write_bytes(b"written by host 2")
    assert [v for seq, _, v, _ in slots(other.backing / "after-rotation") if seq] == [2]
    acme = ("[tenant.acme]\nprovider = local\nkey_file = %s\npaths = /bots/acme\n"
            "enforce_from = 2020-01-01\n" % (vol.keydir / "acme.key"))
    for v in (vol, other):
        v.config.write_text(v.config.read_text() + acme)
    reload(a)                                   # makes acme's record and KEK v1
    reload(b)                                   # finds it made: adopts it
    (other.mnt / "bots" / "acme" / "from-host2").write_bytes(b"acme data")
    (vol.mnt / "bots" / "acme" / "from-host1").write_bytes(b"acme data 1")
    assert header_tenant(other.backing / "bots" / "acme" / "from-host2") == 2
    for m in (vol.mnt, other.mnt):
        assert (m / "before").read_bytes() == b"before " * 100
        assert (m / "after-rotation").read_bytes() == b"written by host 2"
        assert (m / "bots" / "acme" / "from-host2").read_bytes() == b"acme data"
        assert (m / "bots" / "acme" / "from-host1").read_bytes() == b"acme data 1"
    r = unmount_and_check_keys(vol, a, b)
    assert "KEK acme v1 (active" in r.stdout and "KEK default v1: destroyed" in r.stdout
    r = vol.admin("verify", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr


def read_all(path):
    """The whole file through one descriptor, 64 KiB at a time."""
    fd = os.open(path, os.O_RDONLY)
    try:
        out = bytearray()
        while True:
            piece = os.read(fd, 65536)
            if not piece:
                return bytes(out)
            out += piece
    finally:
        os.close(fd)


def run_fsx(path, seed, nops, out):
    import fsx

    class KeptOpen(fsx.Fsx):
        def op_reopen(self):         # the file stays open for the whole run
            self.note("(close/open skipped)")
    try:
        KeptOpen(path, seed, 65536, 262144).run(nops)
        out.put("ok")
    except BaseException as e:       # reported to the test, whatever it is
        out.put("%s: %s" % (type(e).__name__, e))


def test_shared_fsx_while_the_other_host_reads(gvol):
    """fsx on host 1 keeps its file open for the whole run (writes, mmap,
    truncate, punch, reopen now and then) while host 2 opens, reads and
    closes the same file in a loop. Host 2 never waits for fsx to close:
    its reads recall the lease operation by operation (docs/SHARED.md).
    fsx checks every read of host 1 against its model, so a lost or stale
    write from a hand-over fails it; every read on host 2 authenticates;
    at the end both hosts read fsx's final file."""
    import multiprocessing
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    path_a, path_b = vol.mnt / "fsx", other.mnt / "fsx"
    out = multiprocessing.Queue()
    p = multiprocessing.Process(target=run_fsx, args=(str(path_a), 11, 1200, out))
    p.start()
    passes, sizes, errors = 0, set(), []
    deadline = time.monotonic() + 600 * SLOW
    while p.is_alive() and time.monotonic() < deadline:
        try:
            data = read_all(path_b)
        except FileNotFoundError:
            time.sleep(0.01)         # fsx has not made it yet
            continue
        except OSError as e:
            errors.append(e)
            break
        passes += 1
        sizes.add(len(data))
    p.join(60 * SLOW)
    if p.is_alive():
        p.kill()
    result = out.get(timeout=5) if not out.empty() else "fsx did not finish"
    assert result == "ok", "%s\n--- host 1 ---\n%s\n--- host 2 ---\n%s" % (
        result, a.log()[-3000:], b.log()[-3000:])
    assert not errors, "host 2 read failed: %r\n%s" % (errors, b.log()[-3000:])
    # host 2 read all along (not once fsx had closed), and saw the file change
    assert passes >= 20 and len(sizes) >= 5, (passes, sorted(sizes))
    final = read_all(path_a)
    assert read_all(path_b) == final
    assert not a.auth_failures() and not b.auth_failures()
    b.unmount()
    a.unmount()
    r = vol.admin("verify", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shared_file_held_open_is_handed_over(gvol):
    """A descriptor host 1 keeps open (a log, a database) does not keep the
    file from host 2: host 2 opens it within the bound, reads what host 1
    wrote before, writes; host 1 then reads host 2's bytes through its old
    descriptor and writes on; ekmfs-rotate re-wraps the file meanwhile. The
    recalls are counted in ekmfs_lease_recalls_total."""
    from conftest import ROTATE, run_cli
    from test_ops import metrics
    vol, other = gvol
    prom = vol.root / "a.prom"
    vol.config.write_text(vol.config.read_text().replace(
        "[daemon]\n", "[daemon]\nmetrics_file = %s\nmetrics_interval = 1\n" % prom))
    a, b = mount_shared(vol), mount_shared(other)
    fa = os.open(vol.mnt / "held", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fa, b"A" * 10000, 0)
        # In a child, so that a host 2 that waits fails the test, not hangs it.
        t0 = time.monotonic()
        try:
            r = subprocess.run(
                [sys.executable, "-c", "import os, sys\n"
                 "fd = os.open(sys.argv[1], os.O_RDWR)\n"
                 "sys.stdout.write(os.pread(fd, 20000, 0).decode())\n"
                 "os.pwrite(fd, b'B' * 5000, 8000)\n", str(other.mnt / "held")],
                capture_output=True, text=True, timeout=10 * SLOW)
        except subprocess.TimeoutExpired:
            pytest.fail("host 2 still waits for a file host 1 holds open")
        took = time.monotonic() - t0
        print("host 2 opened, read and wrote a file host 1 holds open in %.3f s "
              "(a python start included)" % took)
        assert r.returncode == 0 and r.stdout == "A" * 10000, r.stderr
        assert took < 2 * SLOW, "host 2 waited %.2f s for a file host 1 holds open" % took
        assert os.pread(fa, 20000, 0) == b"A" * 8000 + b"B" * 5000
        os.pwrite(fa, b"C" * 100, 12900)
        r = run_cli([ROTATE, "-c", other.config, "kek", other.backing], timeout=60 * SLOW)
        assert r.returncode == 0, r.stdout + r.stderr
        os.pwrite(fa, b"D" * 100, 13000)
    finally:
        os.close(fa)
    want = b"A" * 8000 + b"B" * 4900 + b"C" * 100 + b"D" * 100
    assert (other.mnt / "held").read_bytes() == want
    # Both hosts keep one file open and take turns, operation by operation:
    # each read sees the other host's write just before it.
    fa = os.open(vol.mnt / "turns", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fa, b"-" * 8192, 0)
    fb = os.open(other.mnt / "turns", os.O_RDWR)
    try:
        turns = []
        for i in range(20):
            t0 = time.monotonic()
            os.pwrite(fa, b"a%02d" % i, 4090)          # across a block edge
            assert os.pread(fb, 3, 4090) == b"a%02d" % i, i
            os.pwrite(fb, b"b%02d" % i, 100)
            assert os.pread(fa, 3, 100) == b"b%02d" % i, i
            turns.append((time.monotonic() - t0) / 2)
        turns.sort()
        print("hand-over between hosts, operation by operation: median %.3f s, max %.3f s"
              % (turns[len(turns) // 2], turns[-1]))
    finally:
        os.close(fb)
        os.close(fa)
    assert (vol.mnt / "held").read_bytes() == want
    deadline = time.monotonic() + 10 * SLOW
    while metrics(prom).get("ekmfs_lease_recalls_total", 0) < 2:
        assert time.monotonic() < deadline, prom.read_text()
        time.sleep(0.2)
    assert not a.auth_failures() and not b.auth_failures()
    b.unmount()
    a.unmount()
    r = vol.admin("verify", "--keys", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shared_daemon_killed_mid_write_is_settled_by_the_other(gvol):
    """A shared daemon killed while it writes a file (fsynced part, then
    unsynced writes, the file still open) leaves it between states; host 2,
    still running, loads it: it finds a daemon of the volume dead and
    settles the file as a recovery would (fsynced bytes kept), instead of
    refusing it. Then host 1 mounts again and every file reads alike."""
    vol, other = gvol
    a, b = mount_shared(vol), mount_shared(other)
    synced = os.urandom(300000)
    more = os.urandom(200000)
    fd = os.open(vol.mnt / "mid", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, synced)
    os.fsync(fd)
    os.pwrite(fd, more, 100000)             # overwrites and grows, unsynced
    os.write(fd, b"tail" * 1000)
    a.proc.send_signal(signal.SIGKILL)
    assert a.proc.wait(timeout=10 * SLOW) == -signal.SIGKILL
    try:
        os.close(fd)
    except OSError:
        pass
    a.kill()
    got = (other.mnt / "mid").read_bytes()
    assert got[:100000] == synced[:100000]
    assert got in (synced, synced[:100000] + more, synced[:100000] + more + b"tail" * 1000), \
        (len(got), b.log()[-2000:])
    assert "recovered after a crash" in b.log() or got == synced[:100000] + more + \
        b"tail" * 1000, b.log()[-2000:]
    assert not b.auth_failures(), b.log()[-2000:]
    vol.mounts.remove(a)
    a2 = mount_shared(vol)
    assert (vol.mnt / "mid").read_bytes() == got
    b.unmount()
    a2.unmount()
    r = vol.admin("verify", vol.backing)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shared_disable_and_cmk_change_reach_the_other_host(gvol):
    """Disabling a tenant through host 1 (its configuration, a reload) makes
    host 2 route new files of the tenant's paths to the default tenant at
    once, though host 2's configuration still says enabled, and a reload of
    host 2 does not undo it; enabling through host 1 brings them back. A
    CMK change of the default tenant by ekmfs-rotate on host 1, with both
    configurations then pointed at the new key and reloaded, leaves both
    hosts reading and writing, and the keyring sealed under the new CMK."""
    from conftest import ADMIN, ROTATE, run_cli
    from ondisk import header_tenant
    vol, other = gvol
    add_acme(vol, other)
    a, b = mount_shared(vol), mount_shared(other)
    d1, d2 = vol.mnt / "bots" / "acme", other.mnt / "bots" / "acme"
    (d1 / "before").write_bytes(b"acme 1")
    assert header_tenant(other.backing / "bots" / "acme" / "before") == 2

    vol.config.write_text(vol.config.read_text().replace(
        "enforce_from = 2020-01-01\n", "enforce_from = 2020-01-01\nenabled = false\n"))
    reload(a)
    (d2 / "while-disabled").write_bytes(b"default 2")
    assert header_tenant(other.backing / "bots" / "acme" / "while-disabled") == 1
    reload(b)                                  # its own configuration unchanged
    assert "the keyring's record applies" in b.log(), b.log()[-2000:]
    (d2 / "after-reload").write_bytes(b"default 3")
    assert header_tenant(other.backing / "bots" / "acme" / "after-reload") == 1
    vol.config.write_text(vol.config.read_text().replace("enabled = false\n", ""))
    reload(a)
    (d2 / "enabled-again").write_bytes(b"acme 4")
    assert header_tenant(other.backing / "bots" / "acme" / "enabled-again") == 2

    newkey = vol.keydir / "new.key"
    newkey.write_text(run_cli([ADMIN, "keygen"]).stdout)
    os.chmod(newkey, 0o600)
    r = run_cli([ROTATE, "-c", vol.config, "cmk", "--to", newkey, vol.backing], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for v, m in ((vol, a), (other, b)):
        v.config.write_text(v.config.read_text().replace(
            "key_file = %s\n" % v.key_file, "key_file = %s\n" % newkey, 1))
        reload(m)
    (d2 / "after-cmk").write_bytes(b"acme 5")
    (other.mnt / "default-after-cmk").write_bytes(b"default 6")
    (vol.mnt / "default-after-cmk-1").write_bytes(b"default 7")
    want = {"bots/acme/before": b"acme 1", "bots/acme/while-disabled": b"default 2",
            "bots/acme/after-reload": b"default 3", "bots/acme/enabled-again": b"acme 4",
            "bots/acme/after-cmk": b"acme 5", "default-after-cmk": b"default 6",
            "default-after-cmk-1": b"default 7"}
    for m in (vol.mnt, other.mnt):
        for name, data in want.items():
            assert (m / name).read_bytes() == data, (m, name)
    unmount_and_check_keys(vol, a, b)


def test_shared_unlock_of_one_tenant_while_all_are_locked(gvol):
    """lock (every tenant) then unlock --tenant acme through host 1: acme
    opens again on both hosts, the default tenant stays locked on both
    (host 1 turns the mark of every tenant into marks of the still-locked
    ones); unlock through host 1 then opens everything on both."""
    vol, other = gvol
    add_acme(vol, other)
    a, b = mount_shared(vol), mount_shared(other)
    (vol.mnt / "d").write_bytes(b"default")
    (vol.mnt / "bots" / "acme" / "t").write_bytes(b"acme")
    r = vol.admin("lock", vol.mnt)
    assert r.returncode == 0, r.stderr
    for m in (vol.mnt, other.mnt):
        wait_errno(m / "d", errno.ENOKEY, 2.5)
        wait_errno(m / "bots" / "acme" / "t", errno.ENOKEY, 2.5)
    r = vol.admin("unlock", "--tenant", "acme", vol.mnt)
    assert r.returncode == 0, r.stderr
    for m in (vol.mnt, other.mnt):
        wait_errno(m / "bots" / "acme" / "t", 0, 2.5)
    time.sleep(1.5)                            # more than one poll of host 2
    for m in (vol.mnt, other.mnt):
        assert errno_of(lambda: os.close(os.open(m / "d", os.O_RDONLY))) == errno.ENOKEY, m
    assert (other.mnt / "bots" / "acme" / "t").read_bytes() == b"acme"
    r = vol.admin("unlock", vol.mnt)
    assert r.returncode == 0, r.stderr
    for m in (vol.mnt, other.mnt):
        wait_errno(m / "d", 0, 2.5)
    assert (other.mnt / "d").read_bytes() == b"default"
    assert not [p for p in (vol.backing / ".ekmfs").iterdir() if p.name.startswith("locked")]
    b.unmount()
    a.unmount()
