"""ekmfs-rotate migrate, misplaced files in ekmfs-rotate status, and the CMK
change before a tenant's enforcement date, on real volumes and mounts.

Owns: files created before enforce_from sit on the default tenant and
migrate moves them to their tenant once it is enforced (and back when
enabled = false) with every byte after the 256-byte header unchanged; the
--tenant filter; --dry-run changing nothing; a file renamed across a tenant
boundary reported as misplaced and re-homed; kill -9 during migrate then a
rerun; the audit records; cmk not bound by min_cmk_change_interval before
enforcement. Two BYOK tenants (acme, beta) with local key files that the
tenant creation makes, and the default tenant (docs/TENANTS.md).

Divisions: helpers / migrate both ways / filter, tenant creation, a tenant
whose key is unavailable / misplaced renames / crash safety / CMK before
enforcement.
"""
import os
import random

import pytest

from conftest import BUILD, run_cli
from ondisk import (ROTATE, SLOT, after_header, audit_records, kill_at_random, rotate, slots,
                    tenant_ids, tenants_config, tree_hash)

BENCHGEN = BUILD / "tools" / "rotate" / "ekmfs-rotate-benchgen"
PAST = "2020-01-01"
FUTURE = "2099-01-01T00:00:00Z"

# ---- helpers ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _rotate_binary():
    if not os.access(ROTATE, os.X_OK):
        pytest.skip("ekmfs-rotate not built")


def config(vol, acme=None, beta=None, acme_paths="/bots/acme"):
    """default + acme (acme_paths) + beta (/bots/beta); acme / beta: a dict
    of extra keys, or None to leave the tenant out of the configuration."""
    tenants_config(vol, [(name, paths, keys) for name, paths, keys in
                         (("acme", acme_paths, acme), ("beta", "/bots/beta", beta))
                         if keys is not None])


def placed(path):
    """The tenant id of a backing file, asserting the move left one slot in
    use and the other all zero (no slot for the old tenant's KEK)."""
    used = [s for s in slots(path) if s[0]]
    assert len(used) == 1, "%s: %d slots in use" % (path, len(used))
    assert [s for s in slots(path) if not s[0]][0][3] == bytes(SLOT), path
    return used[0][1]


def content_of(vol, rels):
    """sha256 of the bytes after the header of each rel (a dict by rel)."""
    by_path = after_header([vol.bpath(rel) for rel in rels])
    return {rel: by_path[vol.bpath(rel)] for rel in rels}


def read_all(vol, expect):
    """Every file reads back through a fresh mount."""
    m = vol.mount()
    try:
        for rel, data in expect.items():
            assert (vol.mnt / rel).read_bytes() == data, rel
    finally:
        m.unmount()


ACME = ["bots/acme/a", "bots/acme/deep/b", "bots/acme/c", "bots/acme/empty"]
BETA = ["bots/beta/d", "bots/beta/e"]
OTHER = ["other/f", "top"]


@pytest.fixture
def tvol(volume):
    """acme and beta configured but not yet enforced; files written through
    a mount under both and elsewhere (one of them empty: a header only), and
    a 0-byte backing file (an empty file whose header was never written)."""
    for d in ("bots/acme/deep", "bots/beta", "other"):
        (volume.backing / d).mkdir(parents=True)
    config(volume, acme={"enforce_from": FUTURE}, beta={"enforce_from": FUTURE})
    m = volume.mount()
    expect = {}
    for i, rel in enumerate(ACME + BETA + OTHER):
        expect[rel] = os.urandom([1, 4096, 9000, 0, 70000, 100, 5000, 3][i])
        (volume.mnt / rel).write_bytes(expect[rel])
    m.unmount()
    open(volume.bpath("bots/acme/zero"), "wb").close()
    expect["bots/acme/zero"] = b""
    volume.expect = expect
    return volume


# ---- migrate both ways -----------------------------------------------------

def test_migrate_to_tenant_then_back_when_disabled(tvol):
    vol = tvol
    ids = tenant_ids(vol)
    assert set(ids) == {"default", "acme", "beta"}     # made at mount
    assert all(placed(vol.bpath(r)) == ids["default"] for r in ACME + BETA + OTHER)
    st = rotate(vol, "status", json_out=True)
    assert st.returncode == 0 and st.json["misplaced_files"] == 0, st.stderr
    content = content_of(vol, ACME + BETA + OTHER)

    # enforcement date passed: the files made before it are misplaced now
    config(vol, acme={"enforce_from": PAST}, beta={"enforce_from": FUTURE})
    st = rotate(vol, "status", json_out=True)
    assert st.json["misplaced_files"] == len(ACME)
    assert [m["path"] for m in st.json["misplaced"]] == sorted(ACME)
    assert all(m["tenant"] == "default" and m["routes_to"] == "acme"
               for m in st.json["misplaced"])
    st = rotate(vol, "status")
    assert "misplaced files: 4" in st.stdout and "ekmfs-rotate migrate" in st.stdout
    assert "/bots/acme/deep/b  (tenant default, routes to acme)" in st.stdout

    before = tree_hash(vol.backing)
    r = rotate(vol, "migrate", "--dry-run", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["migrated"] == len(ACME) and r.json["migrated_to"] == {"acme": 4}
    assert r.json["dry_run"] is True
    assert tree_hash(vol.backing) == before                     # changed nothing

    r = rotate(vol, "migrate", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["migrated"] == 4 and r.json["migrated_to"] == {"acme": 4}
    assert r.json["empty"] == 1 and r.json["remaining_misplaced"] == 0
    assert r.json["in_place"] == len(ACME + BETA + OTHER)      # after the run
    assert all(placed(vol.bpath(rel)) == ids["acme"] for rel in ACME)
    assert all(placed(vol.bpath(rel)) == ids["default"] for rel in BETA + OTHER)
    assert content_of(vol, ACME + BETA + OTHER) == content   # content untouched
    assert os.path.getsize(vol.bpath("bots/acme/zero")) == 0
    read_all(vol, vol.expect)
    assert rotate(vol, "status", json_out=True).json["misplaced_files"] == 0
    r = rotate(vol, "migrate", json_out=True)                  # nothing left
    assert r.returncode == 0 and r.json["migrated"] == 0 and r.json["passes"] == 1

    # BYOK switched off: acme's paths route to default, migrate moves them back
    config(vol, acme={"enforce_from": PAST, "enabled": "false"},
           beta={"enforce_from": FUTURE})
    st = rotate(vol, "status", json_out=True)
    assert st.json["misplaced_files"] == 4
    assert {m["routes_to"] for m in st.json["misplaced"]} == {"default"}
    r = rotate(vol, "migrate", "-q")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert all(placed(vol.bpath(rel)) == ids["default"] for rel in ACME)
    assert content_of(vol, ACME + BETA + OTHER) == content
    read_all(vol, vol.expect)

    # the audit trail has both runs with their counts, and still verifies
    recs = audit_records(vol)
    ev = [x["event"] for x in recs]
    assert ev.count("migrate_start") == 3                      # not for the dry run
    fin = [x for x in recs if x["event"] == "migrate_finish"]
    assert [f["details"]["migrated"] for f in fin] == [4, 0, 4]
    assert fin[0]["details"]["migrated_to"] == {"acme": 4}
    assert fin[-1]["details"]["migrated_to"] == {"default": 4}
    assert all(f["outcome"] == "success" for f in fin)
    v = vol.admin("audit", "verify", vol.backing)
    assert v.returncode == 0, v.stdout + v.stderr


# ---- filter and tenant creation --------------------------------------------

def test_tenant_filter_and_creation_by_migrate(volume):
    vol = volume
    for d in ("bots/acme/deep", "bots/beta", "other"):
        (vol.backing / d).mkdir(parents=True)
    config(vol)                                    # no tenants: all on default
    m = vol.mount()
    expect = {rel: os.urandom(3000 + i) for i, rel in enumerate(ACME + BETA + OTHER)}
    for rel, data in expect.items():
        (vol.mnt / rel).write_bytes(data)
    m.unmount()
    content = content_of(vol, expect)
    config(vol, acme={"enforce_from": PAST}, beta={"enforce_from": PAST})
    assert set(tenant_ids(vol)) == {"default"}     # no daemon ran since

    # a dry run names what would move but creates no tenant
    kr_before = (vol.backing / ".ekmfs" / "keyring.json").read_bytes()
    r = rotate(vol, "migrate", "--dry-run", "--tenant", "beta", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["migrated_to"] == {"beta": 2} and r.json["tenant"] == "beta"
    assert r.json["not_selected"] == len(ACME + OTHER)
    assert (vol.backing / ".ekmfs" / "keyring.json").read_bytes() == kr_before
    assert not (vol.keydir / "beta.key").exists()

    # --tenant beta creates beta only and moves only beta's files
    r = rotate(vol, "migrate", "--tenant", "beta", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["tenants_created"] == ["beta"] and r.json["migrated_to"] == {"beta": 2}
    ids = tenant_ids(vol)
    assert set(ids) == {"default", "beta"}
    assert (vol.keydir / "beta.key").stat().st_mode & 0o077 == 0
    assert all(placed(vol.bpath(rel)) == ids["beta"] for rel in BETA)
    assert all(placed(vol.bpath(rel)) == ids["default"] for rel in ACME + OTHER)

    # then acme, without a filter
    r = rotate(vol, "migrate", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["tenants_created"] == ["acme"] and r.json["migrated_to"] == {"acme": 4}
    ids = tenant_ids(vol)
    assert all(placed(vol.bpath(rel)) == ids["acme"] for rel in ACME)
    assert content_of(vol, expect) == content
    read_all(vol, expect)
    recs = audit_records(vol)
    created = [x for x in recs if x["event"] == "tenant_created"]
    assert [x["tenant"] for x in created] == ["beta", "acme"]
    assert all(x.get("key_ref") for x in created)
    assert [x["tenant"] for x in recs if x["event"] == "cmk_set"] == ["beta", "acme"]
    assert vol.admin("audit", "verify", vol.backing).returncode == 0

    r = rotate(vol, "migrate", "--tenant", "nosuch")
    assert r.returncode == 1 and "nosuch" in r.stderr
    # a path that is not a directory of the volume: refused as by the daemon
    config(vol, acme={"enforce_from": PAST}, acme_paths="/bots/acme, /bots/nope")
    r = rotate(vol, "migrate")
    assert r.returncode == 1 and "key 'paths' in [tenant.acme]" in r.stderr, r.stderr


def test_unavailable_tenant_key_skips_only_its_files(tvol):
    vol = tvol
    config(vol, acme={"enforce_from": PAST}, beta={"enforce_from": PAST})
    ids = tenant_ids(vol)
    beta_key = vol.keydir / "beta.key"
    os.rename(beta_key, vol.keydir / "beta.key.away")          # beta's CMK is gone
    r = rotate(vol, "migrate", json_out=True)
    assert r.returncode == 3, r.stderr
    assert r.json["migrated_to"] == {"acme": len(ACME)}
    assert sorted(x["path"] for x in r.json["skipped"]) == sorted(BETA)
    assert all("tenant 'beta'" in x["reason"] for x in r.json["skipped"])
    assert "warning: the KEKs of tenant 'beta' cannot be unwrapped" in r.stderr
    assert all(placed(vol.bpath(rel)) == ids["default"] for rel in BETA)
    recs = audit_records(vol)
    assert sorted(x["path"] for x in recs if x["event"] == "migrate_skipped_file") == \
        sorted(BETA)
    fin = [x for x in recs if x["event"] == "migrate_finish"][-1]
    assert fin["outcome"] == "failure" and fin["details"]["skipped"] == len(BETA)
    os.rename(vol.keydir / "beta.key.away", beta_key)
    r = rotate(vol, "migrate", json_out=True)
    assert r.returncode == 0 and r.json["migrated_to"] == {"beta": len(BETA)}, r.stderr
    read_all(vol, vol.expect)


# ---- misplaced renames -----------------------------------------------------

def test_renamed_file_reported_and_rehomed(tvol):
    vol = tvol
    config(vol, acme={"enforce_from": PAST}, beta={"enforce_from": FUTURE})
    assert rotate(vol, "migrate", "-q").returncode == 0
    ids = tenant_ids(vol)
    m = vol.mount()
    data = os.urandom(20000)
    (vol.mnt / "bots/acme/doc").write_bytes(data)
    assert placed(vol.bpath("bots/acme/doc")) == ids["acme"]
    os.rename(vol.mnt / "bots/acme/doc", vol.mnt / "other/doc")
    assert (vol.mnt / "other/doc").read_bytes() == data       # still readable
    m.unmount()
    content = content_of(vol, ["other/doc"])

    st = rotate(vol, "status", json_out=True)
    assert st.returncode == 0, st.stderr
    assert st.json["misplaced_files"] == 1
    assert st.json["misplaced"] == [{"path": "other/doc", "tenant": "acme",
                                     "routes_to": "default"}]
    # --tenant beta does not touch it (neither its header nor its route is beta)
    r = rotate(vol, "migrate", "--tenant", "beta", json_out=True)
    assert r.returncode == 0 and r.json["migrated"] == 0, r.stderr
    assert placed(vol.bpath("other/doc")) == ids["acme"]
    # --tenant acme does: the header is acme's
    r = rotate(vol, "migrate", "--tenant", "acme", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["migrated_to"] == {"default": 1}
    assert placed(vol.bpath("other/doc")) == ids["default"]
    assert content_of(vol, ["other/doc"]) == content
    assert rotate(vol, "status", json_out=True).json["misplaced_files"] == 0
    read_all(vol, dict(vol.expect, **{"other/doc": data}))


# ---- crash safety ----------------------------------------------------------

def test_kill9_during_migrate_then_rerun(volume):
    vol = volume
    n, size = 1500, 300
    config(vol)
    r = run_cli([BENCHGEN, "-c", vol.config, vol.backing, n, size], timeout=300)
    assert r.returncode == 0, r.stderr
    rels = sorted(os.path.relpath(os.path.join(d, f), vol.backing)
                  for d, _, fs in os.walk(vol.backing) if ".ekmfs" not in d for f in fs)
    assert len(rels) == n
    content = content_of(vol, rels)
    # bench0000 and bench0001 belong to acme: the enforced config moves them
    # there, the disabled one moves them back; runs of both are cut short
    rng = random.Random(4321)
    killed = 0
    for run in range(10):
        config(vol, acme={"enforce_from": PAST, "enabled": "true" if run % 2 == 0
                          else "false"}, acme_paths="/bench0000, /bench0001")
        killed += kill_at_random([ROTATE, "-c", vol.config, "migrate", "-q", "--jobs",
                                  1 + run % 2, vol.backing], rng, 0.15)
    assert killed >= 3, "the runs finished too fast to be interrupted"
    assert content_of(vol, rels) == content
    # every file reads in its interrupted state, then a rerun completes
    config(vol, acme={"enforce_from": PAST}, acme_paths="/bench0000, /bench0001")
    want = bytes((k * 7 + 1) & 0xff for k in range(size))
    read_all(vol, {rel: want for rel in rels[::50]})
    r = rotate(vol, "migrate", json_out=True)
    assert r.returncode == 0, r.stderr
    assert r.json["remaining_misplaced"] == 0
    ids = tenant_ids(vol)
    for rel in rels:
        want_id = ids["acme"] if rel.split("/")[0] in ("bench0000", "bench0001") \
            else ids["default"]
        assert placed(vol.bpath(rel)) == want_id, rel
    assert content_of(vol, rels) == content
    read_all(vol, {rel: want for rel in rels})
    v = vol.admin("verify", vol.backing)
    assert v.returncode == 0, v.stdout[-2000:] + v.stderr


# ---- CMK before enforcement ------------------------------------------------

def test_cmk_free_before_enforcement_then_interval(tvol):
    vol = tvol
    # acme was created at mount moments ago: its CMK change interval (24h by
    # default) has not passed, but acme is not enforced until 2099
    r = rotate(vol, "cmk", "--tenant", "acme", json_out=True)
    assert r.returncode == 0, r.stderr
    assert "not enforced until 2099-01-01" in r.json["message"]
    assert "min_cmk_change_interval" in r.json["message"]
    newkey = vol.keydir / "acme2.key"
    newkey.write_text(run_cli([BUILD / "ekmfs-admin", "keygen"]).stdout)
    os.chmod(newkey, 0o600)
    r = rotate(vol, "cmk", "--tenant", "acme", "--to", newkey)
    assert r.returncode == 0, r.stderr
    assert "not enforced until" in r.stdout and "key_file = %s" % newkey in r.stdout
    rec = [x for x in audit_records(vol) if x["event"] == "cmk_changed"]
    assert len(rec) == 2 and all("not enforced until" in x["reason"] for x in rec)
    assert all(x["tenant"] == "acme" for x in rec)
    # old and new CMK on record: the same key re-wrapped, then a new key file
    # (local CMK versions are key fingerprints)
    d0, d1 = rec[0]["details"], rec[1]["details"]
    assert d0["old_cmk_version"] == d0["new_cmk_version"]
    assert d1["old_cmk_version"] == d0["new_cmk_version"]
    assert d1["new_cmk_version"] != d1["old_cmk_version"]
    assert d1["old_cmk_ref"] and d1["new_cmk_ref"]

    # enforced from now on: the interval applies again
    vol.write_config(vol.config.read_text().replace(
        FUTURE, PAST, 1).replace(str(vol.keydir / "acme.key"), str(newkey)))
    r = rotate(vol, "cmk", "--tenant", "acme", json_out=True)
    assert r.returncode == 4 and r.json["outcome"] == "refused", r.stderr
    assert "min_cmk_change_interval" in r.stderr
    refused = [x for x in audit_records(vol) if x["event"] == "cmk_change_refused"]
    assert refused and refused[-1]["tenant"] == "acme"
    # the default tenant was never "before enforcement": its first change
    # after init is allowed (the CMK set at creation), the next one refused
    assert rotate(vol, "cmk").returncode == 0
    assert rotate(vol, "cmk").returncode == 4
    assert vol.admin("audit", "verify", vol.backing).returncode == 0


def test_help_and_usage(volume):
    r = run_cli([ROTATE, "--help"])
    assert r.returncode == 0
    for word in ("migrate [--tenant T]", "enforce_from", "enabled = false", "misplaced",
                 "changed freely", "remain misplaced"):
        assert word in r.stdout, word
    for bad in (["migrate", "--version", "1"], ["migrate", "--force"], ["migrate"]):
        argv = [ROTATE, "-c", volume.config] + bad
        if bad != ["migrate"]:
            argv.append(volume.backing)
        assert run_cli(argv).returncode == 2, bad
