"""Tenants through a real mount: path routing of new files, enforce_from,
enabled = false, creation of a tenant's keys at mount and on reload, the
KEK cache use limit, per-tenant lock, cross-tenant renames and the config
errors that refuse a mount or a reload (docs/TENANTS.md).

Two BYOK tenants with their own local key files (acme, beta) share one volume
with the default tenant. The tenant of a file is read from the plaintext slot
fields of its backing header (docs/FORMAT.md)."""

import errno
import os
import signal

import pytest

from conftest import Mount, errno_of
from ondisk import audit_records as records
from ondisk import header_tenant, keyring, tenant_ids, tenants_config, wait_for

PAST = "2020-01-01"
FUTURE = "2099-01-01T00:00:00Z"


def config(vol, acme=None, beta=None):
    """default + acme (/bots/acme, /apps/acme) + beta (/bots/beta); each of
    acme / beta is a dict of extra keys, or None to leave the tenant out."""
    tenants_config(vol, [(name, paths, keys) for name, paths, keys in
                         (("acme", "/bots/acme, /apps/acme", acme),
                          ("beta", "/bots/beta", beta)) if keys is not None],
                   head="[daemon]\ncontrol_dir = %s\n" % (vol.root / "run"))


def reload(vol, m, expect="configuration reloaded"):
    """SIGHUP the daemon and wait for its verdict in the log."""
    before = m.log().count(expect)
    m.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: m.log().count(expect) > before), m.log()[-2000:]


@pytest.fixture
def tvol(volume):
    for d in ("bots/acme", "apps/acme", "bots/beta", "other"):
        (volume.backing / d).mkdir(parents=True)
    config(volume, acme={"enforce_from": PAST}, beta={"enforce_from": FUTURE})
    return volume


def test_new_files_route_by_path_and_date(tvol):
    m = tvol.mount()
    ids = tenant_ids(tvol)
    assert set(ids) == {"default", "acme", "beta"}
    assert len(set(ids.values())) == 3
    # the tenants' CMKs were created for them, private
    for name in ("acme", "beta"):
        st = (tvol.keydir / (name + ".key")).stat()
        assert st.st_mode & 0o077 == 0
    files = {"bots/acme/a": "acme", "bots/acme/deep/er/b": "acme", "apps/acme/c": "acme",
             "bots/beta/d": "default",          # beta's enforce_from is in 2099
             "other/e": "default", "top": "default",
             "bots/acmeish": "default"}         # a sibling, not inside /bots/acme
    for rel in files:
        p = tvol.mnt / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode() * 100)
    for rel, tenant in files.items():
        assert header_tenant(tvol.bpath(rel)) == ids[tenant], rel
    # audit: both tenants created, with their CMK (written from a queue)
    assert wait_for(lambda: len([r for r in records(tvol) if r["event"] == "cmk_set"]) >= 2)
    recs = records(tvol)
    created = [r for r in recs if r["event"] == "tenant_created"]
    assert sorted(r["tenant"] for r in created) == ["acme", "beta"]
    assert all(r.get("key_ref") for r in created)
    assert sorted(r["tenant"] for r in recs if r["event"] == "cmk_set") == ["acme", "beta"]
    # everything reads back after a remount (the keyring has both tenants)
    m = tvol.remount(m)
    for rel in files:
        assert (tvol.mnt / rel).read_bytes() == rel.encode() * 100
    assert "tenant_created" not in [r["event"] for r in records(tvol)[len(recs):]]
    m.unmount()
    r = tvol.admin("audit", "verify", tvol.backing)
    assert r.returncode == 0, r.stdout + r.stderr


def test_enforce_and_disable_by_reload(tvol):
    m = tvol.mount()
    ids = tenant_ids(tvol)
    (tvol.mnt / "bots/beta/before").write_bytes(b"b" * 5000)
    assert header_tenant(tvol.bpath("bots/beta/before")) == ids["default"]

    # enforcement date reached (a config reload instead of waiting)
    config(tvol, acme={"enforce_from": PAST}, beta={"enforce_from": PAST})
    reload(tvol, m)
    (tvol.mnt / "bots/beta/after").write_bytes(b"a" * 5000)
    assert header_tenant(tvol.bpath("bots/beta/after")) == ids["beta"]
    # the file from before stays where it was, and readable
    assert header_tenant(tvol.bpath("bots/beta/before")) == ids["default"]
    assert (tvol.mnt / "bots/beta/before").read_bytes() == b"b" * 5000

    # BYOK switched off: new files go to the default tenant
    config(tvol, acme={"enforce_from": PAST, "enabled": "false"},
           beta={"enforce_from": PAST})
    reload(tvol, m)
    (tvol.mnt / "bots/acme/off").write_bytes(b"o" * 10)
    assert header_tenant(tvol.bpath("bots/acme/off")) == ids["default"]
    acme = [t for t in keyring(tvol)["tenants"] if t["name"] == "acme"][0]
    assert acme["enabled"] is False
    # ... and on again
    config(tvol, acme={"enforce_from": PAST}, beta={"enforce_from": PAST})
    reload(tvol, m)
    (tvol.mnt / "bots/acme/on").write_bytes(b"n" * 10)
    assert header_tenant(tvol.bpath("bots/acme/on")) == ids["acme"]
    assert "enabled" not in [t for t in keyring(tvol)["tenants"] if t["name"] == "acme"][0]
    m.unmount()                     # writes what the audit queue holds
    events = [(r["event"], r.get("tenant")) for r in records(tvol)]
    assert ("tenant_disabled", "acme") in events
    assert events.index(("tenant_disabled", "acme")) < events.index(("tenant_enabled", "acme"))


def test_tenant_added_on_reload(volume):
    (volume.backing / "bots/acme").mkdir(parents=True)
    (volume.backing / "apps/acme").mkdir(parents=True)
    config(volume)
    m = volume.mount()
    (volume.mnt / "bots/acme/early").write_bytes(b"e")
    assert set(tenant_ids(volume)) == {"default"}
    config(volume, acme={})                       # no enforce_from: at once
    reload(volume, m)
    ids = tenant_ids(volume)
    assert "acme" in ids
    (volume.mnt / "bots/acme/late").write_bytes(b"l")
    assert header_tenant(volume.bpath("bots/acme/late")) == ids["acme"]
    assert header_tenant(volume.bpath("bots/acme/early")) == ids["default"]
    m.unmount()
    assert [r["tenant"] for r in records(volume) if r["event"] == "tenant_created"] == ["acme"]


def test_rename_across_tenants_stays_readable(tvol):
    m = tvol.mount()
    ids = tenant_ids(tvol)
    data = os.urandom(20000)
    (tvol.mnt / "bots/acme/doc").write_bytes(data)
    os.rename(tvol.mnt / "bots/acme/doc", tvol.mnt / "other/doc")
    assert header_tenant(tvol.bpath("other/doc")) == ids["acme"]
    assert (tvol.mnt / "other/doc").read_bytes() == data
    m = tvol.remount(m)
    assert (tvol.mnt / "other/doc").read_bytes() == data
    m.unmount()


def test_lock_one_tenant(tvol):
    m = tvol.mount()
    (tvol.mnt / "bots/acme/a").write_bytes(b"acme " * 1000)
    (tvol.mnt / "other/d").write_bytes(b"dflt " * 1000)
    fd = os.open(tvol.mnt / "bots/acme/a", os.O_RDONLY)
    try:
        r = tvol.admin("lock", "--tenant", "acme", tvol.mnt)
        assert r.returncode == 0, r.stderr
        assert errno_of(os.pread, fd, 5, 0) == errno.ENOKEY
        assert errno_of(os.open, str(tvol.mnt / "bots/acme/a"), os.O_RDONLY) == errno.ENOKEY
        # a new file routed to the locked tenant cannot be created ...
        assert errno_of(os.open, str(tvol.mnt / "bots/acme/new"),
                        os.O_CREAT | os.O_WRONLY) == errno.ENOKEY
        assert not tvol.bpath("bots/acme/new").exists()    # nothing left behind
        # ... while the default tenant's files and new files carry on
        assert (tvol.mnt / "other/d").read_bytes() == b"dflt " * 1000
        (tvol.mnt / "other/new").write_bytes(b"fine")
        r = tvol.admin("unlock", "--tenant", "acme", tvol.mnt)
        assert r.returncode == 0, r.stderr
        assert os.pread(fd, 5, 0) == b"acme "
    finally:
        os.close(fd)
    m.unmount()


def test_key_cache_use_limit(tvol):
    config(tvol, acme={"enforce_from": PAST, "key_cache_uses": 3}, beta={})
    m = tvol.mount()
    for i in range(8):
        (tvol.mnt / ("bots/acme/f%d" % i)).write_bytes(b"x" * 100)
    def expired_records():
        return [r for r in records(tvol)
                if r["event"] == "cache_expire" and r.get("tenant") == "acme"]
    # 8 creates at 3 uses per fetch: two refetches for the limit (the
    # daemon writes its audit records from a queue: wait for them)
    assert wait_for(lambda: len(expired_records()) >= 2), \
        [r["event"] for r in records(tvol)]
    expired = expired_records()
    assert all("use limit" in r["reason"] for r in expired)
    assert not [r for r in records(tvol)
                if r["event"] == "cache_expire" and r.get("tenant") == "default"]
    for i in range(8):
        assert (tvol.mnt / ("bots/acme/f%d" % i)).read_bytes() == b"x" * 100
    m.unmount()


def test_missing_path_refuses_mount(volume):
    (volume.backing / "bots").mkdir()
    config(volume, acme={})
    m = volume.mounts
    r = volume.admin("status", volume.backing)      # offline tools still work
    assert r.returncode == 0, r.stderr
    mnt = Mount(volume, "", (), len(m))
    m.append(mnt)
    mnt.start(expect_ok=False)
    assert mnt.wait_exit(30) == 1
    msg = mnt.log().strip().splitlines()
    assert len(msg) == 1, msg
    line = [i for i, l in enumerate(volume.config.read_text().splitlines(), 1)
            if l.startswith("paths")][0]
    assert msg[0] == ("ekmfs: %s:%d: key 'paths' in [tenant.acme]: /bots/acme: No such file "
                      "or directory in the volume (create the directory first)"
                      % (volume.config, line))
    # nothing was created for the tenant
    assert set(tenant_ids(volume)) == {"default"}
    assert not (volume.keydir / "acme.key").exists()


def test_bad_reload_changes_nothing(tvol):
    m = tvol.mount()
    ids = tenant_ids(tvol)
    good = tvol.config.read_text()
    # beta's path overlaps acme's: refused with file:line, routing unchanged
    tvol.config.write_text(good.replace("paths = /bots/beta", "paths = /bots/acme/sub"))
    reload(tvol, m, expect="reload refused")
    assert "overlaps /bots/acme of [tenant.acme]" in m.log()
    (tvol.mnt / "bots/acme/x").write_bytes(b"x")
    assert header_tenant(tvol.bpath("bots/acme/x")) == ids["acme"]
    # a path missing from the volume: refused too
    tvol.config.write_text(good.replace("paths = /bots/beta", "paths = /bots/gamma"))
    reload(tvol, m, expect="reload refused")
    assert "/bots/gamma: No such file or directory in the volume" in m.log()
    (tvol.mnt / "bots/beta/y").write_bytes(b"y")
    assert header_tenant(tvol.bpath("bots/beta/y")) == ids["default"]
    assert m.proc.poll() is None
    m.unmount()


def test_wrong_tenant_key_refuses_mount(tvol):
    m = tvol.mount()
    (tvol.mnt / "bots/acme/a").write_bytes(b"a")
    m.unmount()
    (tvol.keydir / "acme.key").write_text(
        __import__("base64").b64encode(os.urandom(32)).decode() + "\n")
    mnt = Mount(tvol, "", (), len(tvol.mounts))
    tvol.mounts.append(mnt)
    mnt.start(expect_ok=False)
    assert mnt.wait_exit(30) == 1
    lines = mnt.log().strip().splitlines()
    assert len(lines) == 1 and "acme" in lines[0], lines
