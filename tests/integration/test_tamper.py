"""Tampered backing files: detected, reported, contained.

Owns: every tampering case of the acceptance criteria (a flipped bit, a
zeroed block, a block swapped within a file, a block copied from another file
at the same index, a truncated header, corrupt header magic and slot bytes),
applied to an unmounted volume and then remounted, or to a mounted one after
dropping the page cache. For each: the affected read fails with EIO while the
other blocks still read, the daemon logs one line naming file and block (or
"header"), keeps serving other files, and `ekmfs-admin verify` lists the
damage and exits 1 (0 on an intact volume). Garbage backing files never crash
or hang the daemon.

Divisions: helpers / intact volume / tamper cases / tamper while mounted /
garbage backing files.
"""
import errno
import os
import random
import re

import pytest

from conftest import (BLOCK, CBLOCK, HEADER_SIZE, NONCE, TAG, block_offset,
                      drop_caches, errno_of)

NBLOCKS = 5                          # 4 full blocks and a partial one
SIZE = 4 * BLOCK + 1000
VICTIM = "sub/victim"


def pattern(n, seed):
    return random.Random(seed).randbytes(n)


def write_files(mnt):
    os.mkdir(mnt / "sub")
    files = {VICTIM: pattern(SIZE, 1), "sub/other": pattern(SIZE, 2),
             "bystander": pattern(2 * BLOCK + 7, 3)}
    for rel, data in files.items():
        with open(mnt / rel, "wb") as f:
            f.write(data)
    return files


def read_range(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


def check_blocks(path, data, bad):
    """Blocks in bad fail with EIO; every other block reads correctly."""
    for k in range(NBLOCKS):
        want = data[k * BLOCK:(k + 1) * BLOCK]
        if k in bad:
            e = errno_of(read_range, path, k * BLOCK, BLOCK)
            assert e == errno.EIO, "block %d: expected EIO, got %s" % (
                k, errno.errorcode.get(e, "success"))
        else:
            assert read_range(path, k * BLOCK, BLOCK) == want, "block %d" % k
    assert errno_of(lambda: open(path, "rb").read()) == errno.EIO


def verify(vol):
    r = vol.admin("verify", vol.backing)
    lines = r.stdout.strip().splitlines()
    assert lines, "verify printed nothing; stderr: %s" % r.stderr
    m = re.fullmatch(r"verify: (\d+) files checked, (\d+) damaged", lines[-1])
    assert m, "last line of verify: %r" % lines[-1]
    return r, lines, int(m.group(1)), int(m.group(2))


def flip(path, offset, mask=0x01):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def region(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def put(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def block_len(k):
    return CBLOCK if k < NBLOCKS - 1 else (SIZE - 4 * BLOCK) + NONCE + TAG


# ---- intact volume -------------------------------------------------------------


def test_verify_intact_volume(mounted):
    files = write_files(mounted.mnt)
    mounted.mounts[-1].unmount()
    r, lines, checked, damaged = verify(mounted)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (checked, damaged) == (len(files), 0)
    assert not any(l.startswith("DAMAGED") for l in lines)
    for data in files.values():
        assert data[:16].hex() not in r.stdout and data[:16].decode("latin-1") not in r.stdout
    # empty and sparse files are intact too
    m = mounted.mount()
    open(mounted.mnt / "empty", "wb").close()
    with open(mounted.mnt / "sparse", "wb") as f:
        f.seek(300000)
        f.write(b"x")
    m.unmount()
    r, lines, checked, damaged = verify(mounted)
    assert r.returncode == 0 and damaged == 0, r.stdout
    assert checked >= len(files) + 1


# ---- tamper cases --------------------------------------------------------------


def t_bitflip_content(b, other):
    flip(b, block_offset(1) + NONCE + 100)
    return {1}


def t_bitflip_nonce(b, other):
    flip(b, block_offset(2) + 3, 0x80)
    return {2}


def t_bitflip_tag_last_block(b, other):
    flip(b, block_offset(4) + block_len(4) - 1)
    return {4}


def t_zeroed_block(b, other):
    put(b, block_offset(0), bytes(CBLOCK))
    return {0}


def t_swapped_blocks(b, other):
    b1 = region(b, block_offset(1), CBLOCK)
    b2 = region(b, block_offset(2), CBLOCK)
    put(b, block_offset(1), b2)
    put(b, block_offset(2), b1)
    return {1, 2}


def t_block_from_other_file(b, other):
    put(b, block_offset(3), region(other, block_offset(3), CBLOCK))
    return {3}


def t_header_truncated(b, other):
    os.truncate(b, 100)
    return "header"


def t_header_magic(b, other):
    put(b, 0, b"XKMF")
    return "header"


def t_header_slot_wrapped_dek(b, other):
    flip(b, 32 + 30)                 # inside slot 0's wrapped DEK
    return "header"


def t_header_slot_version(b, other):
    flip(b, 32 + 12)                 # slot 0's KEK version
    return "header-nokey"


def t_header_file_id(b, other):
    flip(b, 20)                      # file id, bound into the slot and every block
    return "header"


def t_header_from_other_file(b, other):
    put(b, 0, region(other, 0, HEADER_SIZE))
    return "all"


CASES = [t_bitflip_content, t_bitflip_nonce, t_bitflip_tag_last_block,
         t_zeroed_block, t_swapped_blocks, t_block_from_other_file,
         t_header_truncated, t_header_magic, t_header_slot_wrapped_dek,
         t_header_slot_version, t_header_file_id, t_header_from_other_file]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[2:] for c in CASES])
def test_tamper_detected(mounted, case):
    mnt = mounted.mnt
    files = write_files(mnt)
    mounted.mounts[-1].unmount()
    bpath = mounted.bpath(VICTIM)
    what = case(bpath, mounted.bpath("sub/other"))
    m = mounted.mount()
    victim = mnt / VICTIM
    if what in ("header", "header-nokey"):
        e = errno_of(lambda: open(victim, "rb").read())
        # A slot naming a KEK version the keyring never issued is tampering
        # too (versions are never reused, records never removed): EIO.
        ok = (errno.EIO,)
        assert e in ok, "header tamper: expected EIO, got %s" % (
            errno.errorcode.get(e, "success"))
        log = [l for l in m.log().splitlines() if VICTIM in l]
        assert any(re.search(r"ekmfs: %s: header: \S" % re.escape(VICTIM), l) for l in log), \
            "no header log line: %r" % m.log()
    elif what == "all":
        # the other file's header opens, but no block of ours belongs to its id
        check_blocks(victim, files[VICTIM], bad=set(range(NBLOCKS)))
    else:
        check_blocks(victim, files[VICTIM], bad=what)
        lines = m.auth_failures()
        for k in what:
            want = "ekmfs: %s: block %d: authentication failed (tampered or corrupt)" % (VICTIM, k)
            assert any(l.strip() == want for l in lines), "missing %r in log: %r" % (want, m.log())
        named = {int(x) for x in re.findall(r"%s: block (\d+):" % re.escape(VICTIM), m.log())}
        assert named <= set(what), "log names intact blocks: %s" % sorted(named - set(what))
    # the daemon keeps serving: other files of the volume, even in the same dir
    assert open(mnt / "bystander", "rb").read() == files["bystander"]
    assert open(mnt / "sub/other", "rb").read() == files["sub/other"]
    assert m.proc.poll() is None, "daemon died"
    assert os.stat(victim).st_size in (SIZE, 0)
    # the file may be removed or replaced through the mount
    os.unlink(mnt / "sub/other")
    m.unmount()
    r, lines, checked, damaged = verify(mounted)
    assert r.returncode == 1, "verify must exit 1 on damage: %s" % r.stdout
    assert damaged == 1 and checked == 2, lines[-1]
    dl = [l for l in lines if l.startswith("DAMAGED ")]
    assert dl and all(l.startswith("DAMAGED %s:" % VICTIM) for l in dl), dl
    text = "\n".join(dl)
    if what in ("header", "header-nokey"):
        assert "header" in text, text
    elif what == "all":
        assert "block" in text or "header" in text, text
    else:
        for k in what:
            assert re.search(r"\bblock %d\b" % k, text), "verify does not name block %d: %s" % (k, text)
        listed = {int(x) for x in re.findall(r"\bblock (\d+)\b", text)}
        assert listed <= set(what), text
    data = files[VICTIM]
    for i in range(0, len(data) - 16, 512):
        assert data[i:i + 16].hex() not in r.stdout


# ---- tamper while mounted --------------------------------------------------------


def test_tamper_while_mounted(mounted):
    mnt = mounted.mnt
    files = write_files(mnt)
    m = mounted.mounts[-1]
    victim = mnt / VICTIM
    assert open(victim, "rb").read() == files[VICTIM]
    flip(mounted.bpath(VICTIM), block_offset(3) + NONCE + 7)
    drop_caches()
    check_blocks(victim, files[VICTIM], bad={3})
    assert any("%s: block 3: authentication failed" % VICTIM in l for l in m.auth_failures())
    # writing a whole new block 3 through the mount repairs it
    fd = os.open(victim, os.O_WRONLY)
    try:
        os.pwrite(fd, b"R" * BLOCK, 3 * BLOCK)
    finally:
        os.close(fd)
    drop_caches()
    fixed = files[VICTIM][:3 * BLOCK] + b"R" * BLOCK + files[VICTIM][4 * BLOCK:]
    assert open(victim, "rb").read() == fixed
    assert open(mnt / "bystander", "rb").read() == files["bystander"]


def test_partial_write_into_tampered_block_fails(mounted):
    mnt = mounted.mnt
    files = write_files(mnt)
    flip(mounted.bpath(VICTIM), block_offset(1) + NONCE + 1)
    drop_caches()
    fd = os.open(mnt / VICTIM, os.O_WRONLY)
    try:
        # read-modify-write of a block that does not authenticate must fail,
        # not re-seal the attacker's bytes as valid data
        e = errno_of(os.pwrite, fd, b"abc", BLOCK + 10)
        if e == 0:
            e = errno_of(os.fsync, fd)
    finally:
        cl = errno_of(os.close, fd)
    assert errno.EIO in (e, cl), "partial write into a tampered block was accepted"
    drop_caches()
    assert errno_of(read_range, mnt / VICTIM, BLOCK, BLOCK) == errno.EIO
    assert read_range(mnt / VICTIM, 0, BLOCK) == files[VICTIM][:BLOCK]


# ---- garbage backing files ---------------------------------------------------------


def test_garbage_backing_files_never_crash(mounted):
    """Files the daemon never wrote: every kind of nonsense yields an error
    or a consistent answer, never a crash or a hang."""
    mnt = mounted.mnt
    files = write_files(mnt)
    m = mounted.mounts[-1]
    good = open(mounted.bpath("bystander"), "rb").read()
    rng = random.Random(7)
    garbage = {
        "g_small": rng.randbytes(1),
        "g_100": rng.randbytes(100),
        "g_255": rng.randbytes(255),
        "g_header_only_random": rng.randbytes(HEADER_SIZE),
        "g_random_blocks": rng.randbytes(HEADER_SIZE + 3 * CBLOCK + 50),
        "g_good_header_short_block": good[:HEADER_SIZE + 20],
        "g_good_header_garbage": good[:HEADER_SIZE] + rng.randbytes(CBLOCK),
        "g_magic_only": b"EKMF" + bytes(HEADER_SIZE - 4),
        "g_max_fields": b"EKMF" + b"\xff" * (HEADER_SIZE - 4) + rng.randbytes(100),
        "g_huge_sparse": None,
    }
    for name, data in garbage.items():
        p = mounted.bpath(name)
        if data is None:
            with open(p, "wb") as f:
                f.write(good[:HEADER_SIZE])
                f.truncate(HEADER_SIZE + 1000 * CBLOCK)   # a hole of zeroed blocks
        else:
            with open(p, "wb") as f:
                f.write(data)
    drop_caches()
    for name in garbage:
        p = mnt / name
        st = os.stat(p)
        assert st.st_size >= 0
        e = errno_of(lambda: open(p, "rb").read())
        assert e == errno.EIO or (e == 0 and st.st_size == 0), (name, e, st.st_size)
        errno_of(os.truncate, p, 5)     # may fail; must not crash
        errno_of(lambda: open(p, "ab").write(b"x"))
        assert m.proc.poll() is None, "daemon died on %s" % name
    assert sorted(n for n in os.listdir(mnt) if n.startswith("g_")) == sorted(garbage)
    assert open(mnt / "bystander", "rb").read() == files["bystander"]
    r, lines, checked, damaged = (None, None, None, None)
    m.unmount()
    r, lines, checked, damaged = verify(mounted)
    assert r.returncode == 1
    damaged_names = {l.split()[1].rstrip(":") for l in lines if l.startswith("DAMAGED ")}
    # files that truncate/append repaired into valid files may be intact now;
    # never may an intact one be listed
    assert not damaged_names & {VICTIM, "sub/other", "bystander"}
    assert damaged >= 1 and damaged == len(damaged_names)


# ---- cuts, appends, state records and header room (format v2) ------------------

def cut(n):
    def t(b, other):
        os.truncate(b, n if n >= 0 else os.path.getsize(b) + n)
        return "state"
    t.__name__ = "t_cut_%d" % n
    return t


def t_cut_block_boundary(b, other):
    os.truncate(b, block_offset(3))
    return "state"


def t_cut_to_header(b, other):
    os.truncate(b, HEADER_SIZE)
    return "state"


def t_cut_inside_records(b, other):
    os.truncate(b, 700)
    return "state"


def t_cut_inside_sector0(b, other):
    os.truncate(b, 300)
    return "state"


def t_cut_mid_block(b, other):
    os.truncate(b, block_offset(2) + 100)
    return "state"


def t_cut_impossible_1(b, other):
    os.truncate(b, block_offset(4) + 1)          # 1 byte of the last block
    return "state"


def t_cut_impossible_40(b, other):
    os.truncate(b, block_offset(4) + NONCE + TAG)  # the overhead, no byte of data
    return "state"


def t_cut_last_byte(b, other):
    os.truncate(b, os.path.getsize(b) - 1)
    return "state"


def t_appended_byte(b, other):
    with open(b, "ab") as f:
        f.write(b"\0")
    return "state"


def t_appended_block(b, other):
    with open(b, "ab") as f:
        f.write(random.Random(5).randbytes(CBLOCK))
    return "state"


def t_record0_bitflip(b, other):
    flip(b, 512 + 9)                              # record 0's size
    return "state"


def t_record1_mac(b, other):
    flip(b, 768 + 255)                            # record 1's MAC
    return "state"


def t_records_zeroed(b, other):
    put(b, 512, bytes(512))
    return "state"


def t_header_reserved(b, other):
    flip(b, 300)                                  # reserved, must be zero
    return "header"


CUT_CASES = [t_cut_block_boundary, t_cut_to_header, t_cut_inside_records, t_cut_inside_sector0,
             t_cut_mid_block, t_cut_impossible_1, t_cut_impossible_40, t_cut_last_byte,
             t_appended_byte, t_appended_block, t_record0_bitflip, t_record1_mac,
             t_records_zeroed, t_header_reserved]


def audit_damage(vol, rel):
    r = vol.admin("audit", "show", "--event", "decrypt_failed", "--json", vol.backing)
    return [l for l in r.stdout.splitlines() if '"%s"' % rel in l]


@pytest.mark.parametrize("case", CUT_CASES, ids=[c.__name__[2:] for c in CUT_CASES])
def test_cuts_appends_and_records_detected(mounted, case):
    """Every cut (block boundary, header only, inside the header, mid-block,
    sizes no layout has), appended bytes and edited state records: the file
    no longer opens (EIO), the daemon logs and audits it, verify names it,
    and the other files are untouched."""
    mnt = mounted.mnt
    files = write_files(mnt)
    mounted.mounts[-1].unmount()
    bpath = mounted.bpath(VICTIM)
    case(bpath, mounted.bpath("sub/other"))
    after_tamper = open(bpath, "rb").read()
    m = mounted.mount()
    victim = mnt / VICTIM
    assert errno_of(lambda: open(victim, "rb").read()) == errno.EIO
    assert errno_of(lambda: open(victim, "r+b").write(b"x")) == errno.EIO
    assert any(re.search(r"ekmfs: %s: header: \S" % re.escape(VICTIM), l)
               for l in m.log().splitlines()), m.log()
    assert open(mnt / "bystander", "rb").read() == files["bystander"]
    assert open(mnt / "sub/other", "rb").read() == files["sub/other"]
    m.unmount()
    # nothing was "repaired": the damage stays as the attacker left it
    assert open(bpath, "rb").read() == after_tamper
    assert audit_damage(mounted, VICTIM), "no decrypt_failed audit record for the file"
    r, lines, checked, damaged = verify(mounted)
    assert r.returncode == 1 and damaged == 1, r.stdout
    assert any(l.startswith("DAMAGED %s:" % VICTIM) for l in lines), lines


def test_forged_slot_in_the_unused_slot_is_reported(mounted):
    """Header room: bytes put in the unused key slot (a slot that parses but
    does not authenticate) are reported although the file still opens."""
    mnt = mounted.mnt
    files = write_files(mnt)
    mounted.mounts[-1].unmount()
    b = mounted.bpath(VICTIM)
    raw = region(b, 32, 96)
    slot0_seq = int.from_bytes(raw[:8], "little")
    used = 32 if slot0_seq else 128
    free = 128 if used == 32 else 32
    forged = (slot0_seq + 1).to_bytes(8, "little") + region(b, used + 8, 8) + \
        random.Random(9).randbytes(60) + bytes(20)
    put(b, free, forged)
    m = mounted.mount()
    assert open(mnt / VICTIM, "rb").read() == files[VICTIM]
    assert any(re.search(r"ekmfs: %s: header: \S" % re.escape(VICTIM), l)
               for l in m.log().splitlines()), m.log()
    m.unmount()
    assert audit_damage(mounted, VICTIM)
    r, lines, checked, damaged = verify(mounted)
    assert r.returncode == 1 and damaged == 1, r.stdout
    assert any(l.startswith("DAMAGED %s: header" % VICTIM) for l in lines), lines


def test_cut_behind_a_live_mount_never_becomes_data(mounted):
    """With the writeback cache: a file cut behind the mount (closed, then
    open) reads EIO at the cut blocks, and no write through the mount turns
    the missing part into authenticated data (zeros or otherwise)."""
    mnt = mounted.mnt
    files = write_files(mnt)
    victim = mnt / VICTIM
    os.sync()
    # open: the content state is loaded; then the cut
    fd = os.open(victim, os.O_RDWR)
    try:
        assert os.pread(fd, BLOCK, 0) == files[VICTIM][:BLOCK]
        os.truncate(mounted.bpath(VICTIM), block_offset(2))
        drop_caches()
        assert errno_of(os.pread, fd, BLOCK, 3 * BLOCK) == errno.EIO
        # a partial write into a cut block needs its old bytes: refused
        e = errno_of(os.pwrite, fd, b"abc", 3 * BLOCK + 10)
        if e == 0:
            e = errno_of(os.fsync, fd)
        assert e == errno.EIO, "a write into a cut block was accepted"
        # an append re-seals the partial last block: refused too
        e = errno_of(os.pwrite, fd, b"tail", SIZE)
        if e == 0:
            e = errno_of(os.fsync, fd)
        assert e == errno.EIO, "an append over a cut end was accepted"
    finally:
        errno_of(os.close, fd)
    drop_caches()
    assert errno_of(read_range, victim, 3 * BLOCK, BLOCK) == errno.EIO
    assert errno_of(read_range, victim, 2 * BLOCK, BLOCK) == errno.EIO
    assert open(mnt / "bystander", "rb").read() == files["bystander"]
    mounted.mounts[-1].unmount()
    r, lines, checked, damaged = verify(mounted)
    assert r.returncode == 1 and any(l.startswith("DAMAGED %s:" % VICTIM) for l in lines), \
        r.stdout
