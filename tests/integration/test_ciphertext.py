"""What the backing directory reveals: nothing of the content.

Owns: no plaintext substring in any backing file (content, keyring, volume
descriptor), equal plaintexts giving different ciphertexts (across files and
within one file), a fresh nonce on every block rewrite, the on-disk layout
the tamper tests rely on, and the volume metadata directory being invisible,
inaccessible and impossible to create through the mount.

Divisions: helpers / plaintext leaks / ciphertext uniqueness / layout /
.ekmfs hiding.
"""
import errno
import os

from conftest import (BLOCK, CBLOCK, HEADER_SIZE, NONCE, TAG, backing_size,
                      block_offset, errno_of)

MARKER = b"EKMFS-PLAINTEXT-MARKER-0123456789-"


def wr(p, data):
    with open(p, "wb") as f:
        f.write(data)


def backing_files(backing):
    for dirpath, _, filenames in os.walk(backing):
        for n in filenames:
            yield os.path.join(dirpath, n)


def chunks(data, n=16, step=7):
    """Overlapping 16-byte windows of data: any leak of the plaintext shows."""
    return {data[i:i + n] for i in range(0, max(1, len(data) - n + 1), step)}


# ---- plaintext leaks -----------------------------------------------------------


def test_no_plaintext_in_backing_files(mounted):
    mnt = mounted.mnt
    texts = {
        "small.txt": MARKER + b"short",
        "block.txt": (MARKER * 200)[:BLOCK],
        "multi.txt": MARKER * 1000,
        "d/nested.txt": b"nested " + MARKER * 3,
    }
    os.mkdir(mnt / "d")
    for name, data in texts.items():
        wr(mnt / name, data)
    # also data that went through partial-block rewrites and truncation
    with open(mnt / "multi.txt", "r+b") as f:
        f.seek(BLOCK - 5)
        f.write(MARKER)
        f.truncate(3 * BLOCK + 11)
    os.setxattr(mnt / "small.txt", "user.k", b"xattr values are not encrypted")
    mounted.mounts[-1].unmount()
    needles = set()
    for data in texts.values():
        needles |= chunks(data)
    needles.add(MARKER[:12])
    for path in backing_files(mounted.backing):
        blob = open(path, "rb").read()
        for n in needles:
            assert n not in blob, "plaintext %r found in %s" % (n, path)


def test_no_key_material_in_backing(volume):
    key_line = volume.key_file.read_text().strip().encode()
    assert len(key_line) == 44
    for path in backing_files(volume.backing):
        blob = open(path, "rb").read()
        assert key_line not in blob and key_line[:20] not in blob, path


# ---- ciphertext uniqueness -------------------------------------------------------


def test_equal_plaintexts_differ_in_ciphertext(mounted):
    mnt = mounted.mnt
    data = MARKER * 300              # several blocks
    wr(mnt / "a", data)
    wr(mnt / "b", data)
    same_block = (b"S" * BLOCK) * 2  # two identical blocks in one file
    wr(mnt / "c", same_block)
    mounted.mounts[-1].unmount()
    a = open(mounted.bpath("a"), "rb").read()
    b = open(mounted.bpath("b"), "rb").read()
    c = open(mounted.bpath("c"), "rb").read()
    assert len(a) == len(b) == backing_size(len(data))
    assert a[16:32] != b[16:32], "file ids must differ"
    for i in range(len(data) // BLOCK):
        ba = a[block_offset(i):block_offset(i + 1)]
        bb = b[block_offset(i):block_offset(i + 1)]
        assert ba != bb and ba[:NONCE] != bb[:NONCE], "block %d equal in two files" % i
        assert ba[NONCE:NONCE + 64] != bb[NONCE:NONCE + 64]
    c0, c1 = c[block_offset(0):block_offset(1)], c[block_offset(1):block_offset(2)]
    assert c0[:NONCE] != c1[:NONCE] and c0[NONCE:] != c1[NONCE:]


def test_rewrite_changes_nonce(mounted):
    """Every rewrite of a block seals it under a new nonce. A rewrite of
    durable data goes to the file's journal first and reaches the file when
    it is closed, so each round ends with an unmount."""
    mnt = mounted.mnt
    data = bytes(range(256)) * 48         # 3 blocks
    wr(mnt / "f", data)
    mounted.mounts[-1].unmount()
    seen = [open(mounted.bpath("f"), "rb").read()]
    for _ in range(3):
        mounted.mount()
        with open(mnt / "f", "r+b") as f:
            f.seek(10)
            f.write(data[10:20])          # same bytes, same place
            f.flush()
            os.fsync(f.fileno())
        mounted.mounts[-1].unmount()
        after = open(mounted.bpath("f"), "rb").read()
        assert len(after) == len(seen[0])
        for before in seen:
            assert after[block_offset(0):block_offset(0) + NONCE] != \
                before[block_offset(0):block_offset(0) + NONCE], "block 0 rewritten with an old nonce"
            assert after[block_offset(0) + NONCE:block_offset(1)] != \
                before[block_offset(0) + NONCE:block_offset(1)]
        # blocks not written keep their bytes
        assert after[block_offset(1):] == seen[-1][block_offset(1):]
        seen.append(after)
    mounted.mount()
    assert open(mnt / "f", "rb").read() == data


# ---- layout -------------------------------------------------------------------------


def test_backing_layout(mounted):
    mnt = mounted.mnt
    wr(mnt / "f", b"x" * (2 * BLOCK + 100))
    wr(mnt / "empty", b"")
    raw = open(mounted.bpath("f"), "rb").read()
    assert len(raw) == HEADER_SIZE + 2 * CBLOCK + 100 + NONCE + TAG
    assert raw[:4] == b"EKMF"
    assert int.from_bytes(raw[4:6], "little") == 2
    assert int.from_bytes(raw[6:8], "little") == HEADER_SIZE
    assert raw[224:512] == bytes(288)       # reserved
    slot_seq = int.from_bytes(raw[32:40], "little")
    assert slot_seq >= 1
    assert os.stat(mounted.bpath("empty")).st_size in (0, HEADER_SIZE)
    assert os.stat(mnt / "empty").st_size == 0


# ---- .ekmfs hiding ---------------------------------------------------------------


def test_metadata_dir_invisible(mounted):
    mnt = mounted.mnt
    assert (mounted.backing / ".ekmfs" / "keyring.json").exists()
    assert ".ekmfs" not in os.listdir(mnt)
    assert ".ekmfs" not in [e.name for e in os.scandir(mnt)]
    wr(mnt / "visible", b"x")
    assert os.listdir(mnt) == ["visible"]


def test_metadata_dir_inaccessible(mounted):
    mnt = mounted.mnt
    for p in (mnt / ".ekmfs", mnt / ".ekmfs" / "keyring.json",
              mnt / ".ekmfs" / "volume.json"):
        assert errno_of(os.stat, p) == errno.ENOENT, p
        assert errno_of(os.open, p, os.O_RDONLY) == errno.ENOENT, p
        assert errno_of(os.lstat, p) == errno.ENOENT, p
    assert errno_of(os.listdir, mnt / ".ekmfs") == errno.ENOENT
    assert errno_of(os.rmdir, mnt / ".ekmfs") == errno.ENOENT
    assert errno_of(os.unlink, mnt / ".ekmfs" / "keyring.json") == errno.ENOENT
    assert errno_of(os.rename, mnt / ".ekmfs", mnt / "stolen") == errno.ENOENT
    assert (mounted.backing / ".ekmfs" / "keyring.json").exists()
    assert errno_of(os.getxattr, mnt / ".ekmfs", "user.x") == errno.ENOENT


def test_metadata_dir_not_creatable(mounted):
    mnt = mounted.mnt
    def meta_names():
        # The daemon's audit writer replaces .ekmfs/audit.head through a
        # transient audit.head.tmp at any moment: not a created name.
        return sorted(n for n in os.listdir(mounted.backing / ".ekmfs")
                      if not n.endswith(".tmp"))

    before = meta_names()
    wr(mnt / "f", b"x")
    os.mkdir(mnt / "d")
    attempts = {
        "mkdir": lambda: os.mkdir(mnt / ".ekmfs"),
        "create": lambda: os.close(os.open(mnt / ".ekmfs", os.O_CREAT | os.O_WRONLY, 0o600)),
        "symlink": lambda: os.symlink("f", mnt / ".ekmfs"),
        "mknod": lambda: os.mkfifo(mnt / ".ekmfs"),
        "link": lambda: os.link(mnt / "f", mnt / ".ekmfs"),
        "rename file": lambda: os.rename(mnt / "f", mnt / ".ekmfs"),
        "rename dir": lambda: os.rename(mnt / "d", mnt / ".ekmfs"),
    }
    for what, fn in attempts.items():
        assert errno_of(fn) == errno.EPERM, what
    assert meta_names() == before
    assert (mnt / "f").exists() and (mnt / "d").is_dir()
    # only the root's .ekmfs is reserved
    os.mkdir(mnt / "d" / ".ekmfs")
    wr(mnt / "d" / ".ekmfs" / "ok", b"fine")
    assert open(mnt / "d" / ".ekmfs" / "ok", "rb").read() == b"fine"


def test_zero_byte_backing_file_is_an_empty_file(volume):
    # a 0-byte backing file (e.g. restored by a backup tool) is a valid empty file
    (volume.backing / "restored-empty").write_bytes(b"")
    m = volume.mount()
    p = volume.mnt / "restored-empty"
    assert os.stat(p).st_size == 0
    assert open(p, "rb").read() == b""
    with open(p, "ab") as f:
        f.write(b"now with content")
    assert open(p, "rb").read() == b"now with content"
    m.unmount()
    raw = (volume.backing / "restored-empty").read_bytes()
    assert raw[:4] == b"EKMF" and len(raw) == backing_size(len(b"now with content"))
    assert b"now with content" not in raw
