#!/usr/bin/python3
"""gen_format_vectors.py - an independent implementation of the ekmfs file
format (docs/FORMAT.md), written from the specification and not from the C
code, that produces tests/vectors/format_vectors.txt.

tests/unit/test_format.c checks that the C codec produces exactly these bytes
and opens them. Run from anywhere:  /usr/bin/python3 gen_format_vectors.py
(needs python3-cryptography: apt-get install python3-cryptography).

Before generating, the script checks the primitives it rests on against
published vectors with the same library: AES-256-GCM (McGrew & Viega, GCM
spec, test cases 13-16, as used by tests/unit/test_aead.c), XAES-256-GCM
(the two vectors of the C2SP specification, derived keys included) and
HKDF-SHA256 (RFC 5869, test cases 1 and 3, by hand and with the library).

Divisions: primitives (XAES-256-GCM, HKDF, HMAC) / version 1 (header,
blocks; vectors a and b) / version 2 (sector 0, state records, blocks,
journal; vectors c, d and e) / checks of the primitives / output.
"""
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"EKMF"
BLOCK_SIZE = 4096
SLOT_SIZE = 96
V1, V2 = 1, 2
HEADER_SIZE = {V1: 256, V2: 1024}
SECTOR = 512
STATE_SIZE = 256
STATE_HOLES, STATE_SALTS = 9, 4
STATE_INFO = b"ekmfs-v2-state"         # 14 bytes: HKDF info and MAC prefix
JOURNAL_INFO = b"ekmfs-v2-journal"     # 16 bytes: journal header MAC prefix
JOURNAL_MAGIC, RECORD_MAGIC = b"EKMJ", b"EKMR"
V2_OVERHEAD = 24 + 16                  # nonce + tag


def seq_bytes(start, n):
    """n consecutive byte values from start: seq_bytes(0x20, 3) = 20 21 22."""
    return bytes((start + i) & 0xFF for i in range(n))


# ---- primitives ----

def aes_block(key, block16):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block16) + enc.finalize()


def xaes_derive(key, salt):
    """C2SP XAES-256-GCM key derivation, as FORMAT.md "Content blocks" states
    it: L = AES_K(0^128), K1 = L << 1 (^ 0x87 in the last byte when the top
    bit of L was set), Kx = AES_K(M1 ^ K1) || AES_K(M2 ^ K1) with
    M1 = 00 01 58 00 || salt and M2 = 00 02 58 00 || salt."""
    assert len(key) == 32 and len(salt) == 12
    lval = int.from_bytes(aes_block(key, bytes(16)), "big")
    k1 = (lval << 1) & ((1 << 128) - 1)
    if lval >> 127:
        k1 ^= 0x87
    k1 = k1.to_bytes(16, "big")
    m1 = b"\x00\x01\x58\x00" + salt
    m2 = b"\x00\x02\x58\x00" + salt
    xor = lambda a, b: bytes(x ^ y for x, y in zip(a, b))
    return aes_block(key, xor(m1, k1)) + aes_block(key, xor(m2, k1))


def xaes_seal(key, nonce24, pt, aad):
    """ciphertext || tag."""
    assert len(nonce24) == 24
    return AESGCM(xaes_derive(key, nonce24[:12])).encrypt(nonce24[12:], pt, aad or None)


def hkdf_sha256(ikm, info, length):
    """RFC 5869 by hand, salt absent (= 32 zero bytes); checked against the
    library's HKDF every time it is called."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    okm = okm[:length]
    lib = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(ikm)
    assert lib == okm, "HKDF by hand and the library disagree"
    return okm


def hmac_sha256(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


# ---- version 1 and 2: header sector 0 and key slots ----

def header_prefix(version, file_id):
    # magic | version u16 | header size u16 | block size u32 | flags u32 | file id
    return MAGIC + struct.pack("<HHII", version, HEADER_SIZE[version], BLOCK_SIZE, 0) + file_id


def slot(prefix, seq, tenant, kek_version, kek, dek, nonce):
    fields = struct.pack("<QII", seq, tenant, kek_version)
    sealed = AESGCM(kek).encrypt(nonce, dek, prefix + fields)  # ciphertext || tag
    out = fields + nonce + sealed + bytes(20)
    assert len(out) == SLOT_SIZE
    return out


def header(file_id, slots, version=V1):
    """The v1 header (256 bytes) or the v2 sector 0 (512 bytes).
    slots: two entries, each None (empty) or a dict of slot inputs."""
    prefix = header_prefix(version, file_id)
    body = prefix
    for s in slots:
        body += bytes(SLOT_SIZE) if s is None else slot(prefix, **s)
    end = HEADER_SIZE[V1] if version == V1 else SECTOR
    body += bytes(end - len(body))  # reserved 224..255 (v1) or 224..511 (v2)
    assert len(body) == end
    return body


def block(dek, file_id, index, nonce, plaintext):
    """A version 1 block: nonce (12) || AES-256-GCM(DEK) || tag."""
    assert 1 <= len(plaintext) <= BLOCK_SIZE
    aad = file_id + struct.pack("<Q", index)
    return nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)


# ---- version 2: state records, blocks, journal ----

def state_key(dek):
    return hkdf_sha256(dek, STATE_INFO, 32)


def state_record(key, file_id, seq, size, journal, holes, salts):
    """One 256-byte state record. holes: list of (first, count);
    salts: list of 12-byte salts. Checks the validity rules it writes."""
    assert seq >= 1
    nblocks = -(-size // BLOCK_SIZE)
    assert len(holes) <= STATE_HOLES and len(salts) <= STATE_SALTS
    prev_end = None
    for first, count in holes:
        assert count >= 1 and first + count <= nblocks
        assert prev_end is None or first > prev_end  # sorted, a gap between runs
        prev_end = first + count
    assert len(set(salts)) == len(salts) and all(len(s) == 12 for s in salts)
    body = struct.pack("<QQQHB", seq, size, journal, len(holes), len(salts)) + bytes(5)
    for first, count in holes:
        body += struct.pack("<QQ", first, count)
    body += bytes(16 * (STATE_HOLES - len(holes)))
    for s in salts:
        body += s
    body += bytes(12 * (STATE_SALTS - len(salts)))
    assert len(body) == 224
    rec = body + hmac_sha256(key, STATE_INFO + file_id + body)
    assert len(rec) == STATE_SIZE
    return rec


def block_v2(dek, file_id, index, nonce24, plaintext):
    """A version 2 block: salt || n (24) || XAES-256-GCM(DEK) || tag."""
    assert 1 <= len(plaintext) <= BLOCK_SIZE
    aad = file_id + struct.pack("<Q", index)
    return nonce24 + xaes_seal(dek, nonce24, plaintext, aad)


def backing_size_v2(plain):
    if plain == 0:
        return 1024
    q, r = divmod(plain, BLOCK_SIZE)
    return 1024 + q * (BLOCK_SIZE + V2_OVERHEAD) + (r + V2_OVERHEAD if r else 0)


def block_offset_v2(index):
    return 1024 + index * (BLOCK_SIZE + V2_OVERHEAD)


def journal_header(key, file_id, generation):
    body = JOURNAL_MAGIC + struct.pack("<HH", 1, 0) + file_id + struct.pack("<Q", generation)
    assert len(body) == 32
    return body + hmac_sha256(key, JOURNAL_INFO + body)


def journal_record(index, stored):
    assert 41 <= len(stored) <= BLOCK_SIZE + V2_OVERHEAD
    return struct.pack("<QI", index, len(stored)) + RECORD_MAGIC + stored


# ---- vectors a and b (version 1) ----

def vector_a():
    """A 4196-byte file: block 0 full, block 1 of 100 bytes; slot 0 in use."""
    kek, dek, file_id = seq_bytes(0x00, 32), seq_bytes(0x20, 32), seq_bytes(0x40, 16)
    slot_nonce = seq_bytes(0x50, 12)
    plain = bytes(k % 251 for k in range(BLOCK_SIZE + 100))
    hdr = header(file_id, [dict(seq=1, tenant=1, kek_version=1, kek=kek, dek=dek,
                                nonce=slot_nonce), None])
    out = [("a_kek", kek), ("a_dek", dek), ("a_file_id", file_id),
           ("a_slot_nonce", slot_nonce), ("a_header", hdr)]
    for i in range(2):
        nonce = seq_bytes(0x60 + 12 * i, 12)
        out.append(("a_block%d_nonce" % i, nonce))
        out.append(("a_block%d" % i,
                    block(dek, file_id, i, nonce, plain[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE])))
    return out


def vector_b():
    """A one-block text file whose DEK sits in slot 1 (seq 2, tenant 7,
    KEK version 3); slot 0 is empty."""
    kek, dek, file_id = seq_bytes(0x00, 32), seq_bytes(0xA0, 32), seq_bytes(0xC0, 16)
    slot_nonce, block_nonce = seq_bytes(0xD0, 12), seq_bytes(0xE0, 12)
    plain = b"ekmfs format test vector: a short last block.\n"
    hdr = header(file_id, [None, dict(seq=2, tenant=7, kek_version=3, kek=kek, dek=dek,
                                      nonce=slot_nonce)])
    return [("b_kek", kek), ("b_dek", dek), ("b_file_id", file_id),
            ("b_slot_nonce", slot_nonce), ("b_plain", plain), ("b_header", hdr),
            ("b_block0_nonce", block_nonce),
            ("b_block0", block(dek, file_id, 0, block_nonce, plain))]


# ---- vectors c, d and e (version 2) ----

def vector_c():
    """A version 2 file of 4096+100 bytes at rest: slot 0 in use (seq 1,
    tenant 1, KEK v1), two equal state records (seq 1, size 4196, journal
    0, no holes, one salt), blocks 0 and 1 sealed under that salt."""
    kek, dek, file_id = seq_bytes(0x00, 32), seq_bytes(0x20, 32), seq_bytes(0x40, 16)
    slot_nonce, salt = seq_bytes(0x50, 12), seq_bytes(0x60, 12)
    size = BLOCK_SIZE + 100
    plain = bytes(k % 251 for k in range(size))
    sector0 = header(file_id, [dict(seq=1, tenant=1, kek_version=1, kek=kek, dek=dek,
                                    nonce=slot_nonce), None], version=V2)
    skey = state_key(dek)
    rec = state_record(skey, file_id, seq=1, size=size, journal=0, holes=[], salts=[salt])
    hdr = sector0 + rec + rec
    out = [("c_kek", kek), ("c_dek", dek), ("c_file_id", file_id),
           ("c_slot_nonce", slot_nonce), ("c_salt", salt),
           ("c_xaes_key", xaes_derive(dek, salt)), ("c_state_key", skey),
           ("c_state", rec), ("c_header", hdr)]
    backing = hdr
    for i in range(2):
        nonce = salt + seq_bytes(0x70 + 12 * i, 12)
        blk = block_v2(dek, file_id, i, nonce, plain[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE])
        assert len(backing) == block_offset_v2(i)
        backing += blk
        out += [("c_block%d_nonce" % i, nonce), ("c_block%d" % i, blk)]
    assert len(backing) == backing_size_v2(size) == 1024 + 4136 + 140
    out.append(("c_file_sha256", hashlib.sha256(backing).digest()))
    return out


D_SIZE = 6 * BLOCK_SIZE + 1000                 # 7 blocks, 0..6; block 6 holds 1000
D_HOLES = [(0, 1), (2, 2), (5, 1)]             # data: blocks 1, 4 and 6


def d_inputs():
    return dict(kek=seq_bytes(0x80, 32), dek=seq_bytes(0xA0, 32),
                file_id=seq_bytes(0xC0, 16))


def d_is_hole(i):
    return any(first <= i < first + count for first, count in D_HOLES)


def vector_d():
    """A sparse version 2 file at rest: slot 0 empty, slot 1 in use (seq 2,
    tenant 7, KEK v3); both state records seq 7, size 6*4096+1000, journal
    3, holes (0,1) (2,2) (5,1), two salts; data blocks 1 and 4 under salt
    0 and block 6 (the last, 1000 bytes) under salt 1. File byte k is
    k mod 241 outside the holes (and reads as 0 inside them)."""
    kek, dek, file_id = d_inputs()["kek"], d_inputs()["dek"], d_inputs()["file_id"]
    slot_nonce = seq_bytes(0xD0, 12)
    salts = [seq_bytes(0xE0, 12), seq_bytes(0xF0, 12)]
    sector0 = header(file_id, [None, dict(seq=2, tenant=7, kek_version=3, kek=kek, dek=dek,
                                          nonce=slot_nonce)], version=V2)
    skey = state_key(dek)
    rec = state_record(skey, file_id, seq=7, size=D_SIZE, journal=3, holes=D_HOLES,
                       salts=salts)
    hdr = sector0 + rec + rec
    out = [("d_kek", kek), ("d_dek", dek), ("d_file_id", file_id),
           ("d_slot_nonce", slot_nonce), ("d_salt0", salts[0]), ("d_salt1", salts[1]),
           ("d_state_key", skey), ("d_state", rec), ("d_header", hdr)]
    nblocks = -(-D_SIZE // BLOCK_SIZE)
    assert nblocks == 7
    backing = bytearray(hdr)
    for i in range(nblocks):
        length = min(BLOCK_SIZE, D_SIZE - i * BLOCK_SIZE)
        if d_is_hole(i):   # a hole of the backing file: reads as zeros
            backing += bytes(length + V2_OVERHEAD)
            continue
        plain = bytes((i * BLOCK_SIZE + k) % 241 for k in range(length))
        nonce = salts[0 if i < 6 else 1] + seq_bytes(0x30 + 12 * i, 12)
        blk = block_v2(dek, file_id, i, nonce, plain)
        assert len(backing) == block_offset_v2(i)
        backing += blk
        out += [("d_block%d_nonce" % i, nonce), ("d_block%d" % i, blk)]
    assert len(backing) == backing_size_v2(D_SIZE)
    out.append(("d_file_sha256", hashlib.sha256(bytes(backing)).digest()))
    return out


def vector_e():
    """Journal generation 4 of vector d's file (above d's journal field 3):
    the 64-byte header and one record, a new version of block 6 (1000
    bytes, byte k = (k * 7 + 1) mod 256) sealed under a third salt."""
    dek, file_id = d_inputs()["dek"], d_inputs()["file_id"]
    skey = state_key(dek)
    jhdr = journal_header(skey, file_id, 4)
    plain = bytes((k * 7 + 1) % 256 for k in range(1000))
    nonce = seq_bytes(0x10, 12) + seq_bytes(0x1C, 12)
    stored = block_v2(dek, file_id, 6, nonce, plain)
    rec = journal_record(6, stored)
    return [("e_journal_header", jhdr), ("e_rec0_nonce", nonce), ("e_rec0", rec)]


# ---- checks of the primitives ----

def check_gcm_vectors():
    h = bytes.fromhex
    k15 = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    p15 = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
    c15 = h("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad")
    iv15 = h("cafebabefacedbaddecaf888")
    cases = [
        (bytes(32), bytes(12), b"", b"", h("530f8afbc74536b9a963b4f1c4cb738b")),
        (bytes(32), bytes(12), b"", bytes(16),
         h("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919")),
        (k15, iv15, b"", p15, c15 + h("b094dac5d93471bdec1a502270e3cc6c")),
        (k15, iv15, h("feedfacedeadbeeffeedfacedeadbeefabaddad2"), p15[:60],
         c15[:60] + h("76fc6ece0f4e1768cddf8853bb2d551b")),
    ]
    for n, (key, iv, aad, pt, expect) in enumerate(cases, start=13):
        got = AESGCM(key).encrypt(iv, pt, aad or None)
        if got != expect:
            sys.exit("GCM spec test case %d does not match: %s" % (n, got.hex()))


def check_xaes_vectors():
    """The two test vectors of https://c2sp.org/XAES-256-GCM, with their
    derived keys (one with MSB(L) = 0, one with MSB(L) = 1)."""
    nonce, pt = b"ABCDEFGHIJKLMNOPQRSTUVWX", b"XAES-256-GCM"
    cases = [
        (b"\x01" * 32, b"",
         "c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b",
         "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"),
        (b"\x03" * 32, b"c2sp.org/XAES-256-GCM",
         "e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8",
         "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"),
    ]
    for n, (key, aad, kx, ct) in enumerate(cases, start=1):
        if xaes_derive(key, nonce[:12]).hex() != kx:
            sys.exit("XAES-256-GCM vector %d: derived key differs" % n)
        got = xaes_seal(key, nonce, pt, aad)
        if got.hex() != ct:
            sys.exit("XAES-256-GCM vector %d does not match: %s" % (n, got.hex()))


def check_hkdf_vectors():
    """RFC 5869 appendix A, test cases 1 (with salt, with the library) and
    3 (no salt, no info: the by-hand path this file uses)."""
    ikm = b"\x0b" * 22
    lib = HKDF(algorithm=hashes.SHA256(), length=42, salt=seq_bytes(0, 13),
               info=seq_bytes(0xF0, 10)).derive(ikm)
    if lib.hex() != ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                     "34007208d5b887185865"):
        sys.exit("HKDF RFC 5869 test case 1 does not match")
    if hkdf_sha256(ikm, b"", 42).hex() != ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879e"
                                           "c3454e5f3c738d2d9d201395faa4b61a96c8"):
        sys.exit("HKDF RFC 5869 test case 3 does not match")


# ---- output ----

def main():
    check_gcm_vectors()
    check_xaes_vectors()
    check_hkdf_vectors()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "format_vectors.txt")
    lines = [
        "# ekmfs format test vectors, generated by gen_format_vectors.py; do not edit.",
        "# name = hex. Inputs of each vector: docs/FORMAT.md, \"Test vectors\" (c, d,",
        "# e: version 2) and \"Version 1 vectors\" (a, b), and the script itself.",
    ]
    for name, value in vector_a() + vector_b() + vector_c() + vector_d() + vector_e():
        lines.append("%s = %s" % (name, value.hex()))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
