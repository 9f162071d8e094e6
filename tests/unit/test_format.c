/*
 * test_format.c - the header, slot and block codec (src/format/).
 *
 * Divisions:
 *   1. the vectors of tests/vectors/format_vectors.txt (made by an
 *      independent Python implementation): the C codec must produce and
 *      open exactly those bytes
 *   2. header parse/serialise, every malformed header, every byte bound
 *   3. slot wrap/unwrap and newest-slot selection
 *   4. size arithmetic
 *   5. block seal/open failures
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ekmfs/format.h"

/* ---- 1. vectors ---- */

#define VEC_MAX 32
#define VEC_PATH "../vectors/format_vectors.txt"

static struct vec {
	char name[32];
	uint8_t *data;
	size_t len;
} vecs[VEC_MAX];
static int nvecs;

static int load_vectors(void)
{
	FILE *f = fopen(VEC_PATH, "r");
	char *line = NULL;
	size_t cap = 0;

	if (!f) {
		perror(VEC_PATH);
		return -1;
	}
	while (getline(&line, &cap, f) > 0 && nvecs < VEC_MAX) {
		char *eq = strstr(line, " = ");
		struct vec *v = &vecs[nvecs];
		size_t hexlen;

		if (line[0] == '#' || !eq || (size_t)(eq - line) >= sizeof(v->name))
			continue;
		memcpy(v->name, line, (size_t)(eq - line));
		v->name[eq - line] = 0;
		hexlen = strlen(eq + 3);
		v->data = malloc(hexlen / 2 + 1);
		if (!v->data)
			break;
		v->len = check_unhex(eq + 3, v->data, hexlen / 2 + 1);
		nvecs++;
	}
	free(line);
	fclose(f);
	return 0;
}

/* The named vector, which must have exactly len bytes (0: any length). */
static const uint8_t *vec(const char *name, size_t len)
{
	for (int i = 0; i < nvecs; i++) {
		if (strcmp(vecs[i].name, name) != 0)
			continue;
		if (len && vecs[i].len != len) {
			fprintf(stderr, "vector %s has %zu bytes, expected %zu\n", name,
				vecs[i].len, len);
			check_failures++;
		}
		return vecs[i].data;
	}
	fprintf(stderr, "vector %s missing from %s\n", name, VEC_PATH);
	check_failures++;
	return NULL;
}

static size_t vec_len(const char *name)
{
	for (int i = 0; i < nvecs; i++)
		if (strcmp(vecs[i].name, name) == 0)
			return vecs[i].len;
	return 0;
}

static void test_vector_a(void)
{
	const uint8_t *kek = vec("a_kek", 32), *dek = vec("a_dek", 32);
	const uint8_t *id = vec("a_file_id", 16), *snonce = vec("a_slot_nonce", 12);
	const uint8_t *hdr = vec("a_header", EKMFS_HEADER_SIZE);
	const uint8_t *blk[2] = { vec("a_block0", EKMFS_CBLOCK_SIZE), vec("a_block1", 128) };
	const uint8_t *bnonce[2] = { vec("a_block0_nonce", 12), vec("a_block1_nonce", 12) };
	uint8_t plain[EKMFS_BLOCK_SIZE + 100], out[EKMFS_CBLOCK_SIZE], pt[EKMFS_BLOCK_SIZE];
	uint8_t buf[EKMFS_HEADER_SIZE], got_dek[32];
	struct ekmfs_header h, p;
	int fallback;

	if (!kek || !dek || !id || !snonce || !hdr || !blk[0] || !blk[1] || !bnonce[0] ||
	    !bnonce[1])
		return;
	for (size_t k = 0; k < sizeof(plain); k++)
		plain[k] = (uint8_t)(k % 251);

	ekmfs_header_init(&h, id);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 1, 1, 1, kek, dek, snonce), 0);
	ekmfs_header_serialize(&h, buf);
	CHECK_MEM(buf, hdr, EKMFS_HEADER_SIZE);

	CHECK_EQ_INT(ekmfs_header_parse(hdr, &p), 0);
	CHECK_EQ_INT(p.version, 1);
	CHECK_EQ_INT(p.block_size, 4096);
	CHECK_MEM(p.file_id, id, 16);
	CHECK_EQ_INT(p.slot[0].seq, 1);
	CHECK_EQ_INT(p.slot[0].tenant_id, 1);
	CHECK_EQ_INT(p.slot[0].kek_version, 1);
	CHECK_EQ_INT(p.slot[1].seq, 0);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&p, &fallback), 0);
	CHECK_EQ_INT(fallback, -1);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&p, 0, kek, got_dek), 0);
	CHECK_MEM(got_dek, dek, 32);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&p, 1, kek, got_dek), -ENOKEY);

	for (int i = 0; i < 2; i++) {
		size_t len = i == 0 ? EKMFS_BLOCK_SIZE : 100;

		CHECK_EQ_INT(ekmfs_block_seal(dek, id, (uint64_t)i, bnonce[i],
					      plain + i * EKMFS_BLOCK_SIZE, len, out), 0);
		CHECK_MEM(out, blk[i], len + EKMFS_BLOCK_OVERHEAD);
		CHECK_EQ_INT(ekmfs_block_open(dek, id, (uint64_t)i, blk[i],
					      len + EKMFS_BLOCK_OVERHEAD, pt), 0);
		CHECK_MEM(pt, plain + i * EKMFS_BLOCK_SIZE, len);
	}
}

static void test_vector_b(void)
{
	const uint8_t *kek = vec("b_kek", 32), *dek = vec("b_dek", 32);
	const uint8_t *id = vec("b_file_id", 16), *snonce = vec("b_slot_nonce", 12);
	const uint8_t *hdr = vec("b_header", EKMFS_HEADER_SIZE), *plain = vec("b_plain", 0);
	const uint8_t *bnonce = vec("b_block0_nonce", 12), *blk = vec("b_block0", 0);
	size_t len = vec_len("b_plain");
	uint8_t buf[EKMFS_HEADER_SIZE], got_dek[32], out[EKMFS_CBLOCK_SIZE], pt[EKMFS_BLOCK_SIZE];
	struct ekmfs_header h, p;
	int fallback;

	if (!kek || !dek || !id || !snonce || !hdr || !plain || !bnonce || !blk)
		return;
	CHECK_EQ_INT(vec_len("b_block0"), len + EKMFS_BLOCK_OVERHEAD);
	ekmfs_header_init(&h, id);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 1, 2, 7, 3, kek, dek, snonce), 0);
	ekmfs_header_serialize(&h, buf);
	CHECK_MEM(buf, hdr, EKMFS_HEADER_SIZE);
	CHECK_EQ_INT(ekmfs_header_parse(hdr, &p), 0);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&p, &fallback), 1);
	CHECK_EQ_INT(fallback, -1);
	CHECK_EQ_INT(p.slot[1].tenant_id, 7);
	CHECK_EQ_INT(p.slot[1].kek_version, 3);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&p, 1, kek, got_dek), 0);
	CHECK_MEM(got_dek, dek, 32);
	CHECK_EQ_INT(ekmfs_block_seal(dek, id, 0, bnonce, plain, len, out), 0);
	CHECK_MEM(out, blk, len + EKMFS_BLOCK_OVERHEAD);
	CHECK_EQ_INT(ekmfs_block_open(dek, id, 0, blk, len + EKMFS_BLOCK_OVERHEAD, pt), 0);
	CHECK_MEM(pt, plain, len);
}

/* ---- 2. header parse / serialise ---- */

static const uint8_t kek1[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t kek2[32] = { 0xf0, 0xe1, 0xd2, 0xc3 };
static const uint8_t dek1[32] = { 0x55, 0x66, 0x77, 0x88, 0x99 };
static const uint8_t nonce1[12] = { 0xaa, 0xbb, 0xcc };
static const uint8_t nonce2[12] = { 0x11, 0x22, 0x33, 0x44 };
static const uint8_t id1[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

/* A header with slot 0 (seq 5, tenant 3, v9, kek1) and, when two_slots,
 * slot 1 (seq 6, tenant 3, v10, kek2), serialised into buf. */
static void make_header(uint8_t buf[EKMFS_HEADER_SIZE], int two_slots)
{
	struct ekmfs_header h;

	ekmfs_header_init(&h, id1);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 5, 3, 9, kek1, dek1, nonce1), 0);
	if (two_slots)
		CHECK_EQ_INT(ekmfs_slot_wrap(&h, 1, 6, 3, 10, kek2, dek1, nonce2), 0);
	ekmfs_header_serialize(&h, buf);
}

static void test_round_trip(void)
{
	uint8_t buf[EKMFS_HEADER_SIZE], again[EKMFS_HEADER_SIZE];
	struct ekmfs_header h;

	for (int two = 0; two <= 1; two++) {
		make_header(buf, two);
		CHECK_EQ_INT(ekmfs_header_parse(buf, &h), 0);
		ekmfs_header_serialize(&h, again);
		CHECK_MEM(again, buf, EKMFS_HEADER_SIZE);
		CHECK_MEM(buf, EKMFS_MAGIC, 4);
		CHECK_EQ_INT(h.slot[0].seq, 5);
		CHECK_EQ_INT(h.slot[0].tenant_id, 3);
		CHECK_EQ_INT(h.slot[0].kek_version, 9);
		CHECK_EQ_INT(h.slot[1].seq, two ? 6 : 0);
		CHECK_EQ_INT(h.slot[1].kek_version, two ? 10 : 0);
	}
}

static int parse_with(const uint8_t base[EKMFS_HEADER_SIZE], int pos, uint8_t xor)
{
	uint8_t buf[EKMFS_HEADER_SIZE];
	struct ekmfs_header h;

	memcpy(buf, base, sizeof(buf));
	buf[pos] ^= xor;
	return ekmfs_header_parse(buf, &h);
}

static void test_malformed(void)
{
	uint8_t one[EKMFS_HEADER_SIZE], two[EKMFS_HEADER_SIZE], buf[EKMFS_HEADER_SIZE];
	struct ekmfs_header h;

	make_header(one, 0);
	make_header(two, 1);
	for (int pos = 0; pos < 4; pos++)                 /* magic */
		CHECK_EQ_INT(parse_with(one, pos, 0x20), -EPROTO);
	CHECK_EQ_INT(parse_with(one, 4, 0x01), -EPROTO);  /* version 0 */
	CHECK_EQ_INT(parse_with(one, 4, 0x03), -EPROTO);  /* version 2 */
	CHECK_EQ_INT(parse_with(one, 5, 0x01), -EPROTO);  /* version 257 */
	for (int pos = 6; pos < 16; pos++) {              /* sizes, flags */
		CHECK_EQ_INT(parse_with(one, pos, 0x01), -EBADMSG);
		CHECK_EQ_INT(parse_with(one, pos, 0x80), -EBADMSG);
	}
	for (int pos = 224; pos < 256; pos++)             /* header reserved */
		CHECK_EQ_INT(parse_with(two, pos, 0x01), -EBADMSG);
	for (int s = 0; s < 2; s++)                       /* slot reserved */
		for (int pos = 76; pos < 96; pos++)
			CHECK_EQ_INT(parse_with(two, (int)ekmfs_slot_offset(s) + pos, 0x40),
				     -EBADMSG);
	/* The empty slot 1 of `one`: anything but its seq set is malformed. */
	for (int pos = 8; pos < 96; pos++)
		CHECK_EQ_INT(parse_with(one, (int)ekmfs_slot_offset(1) + pos, 0x01), -EBADMSG);
	/* Both slots empty. */
	memcpy(buf, one, sizeof(buf));
	memset(buf + ekmfs_slot_offset(0), 0, EKMFS_SLOT_SIZE);
	CHECK_EQ_INT(ekmfs_header_parse(buf, &h), -EBADMSG);
	/* Two slots with the same seq (5 and 6 -> 6 and 6). */
	CHECK_EQ_INT(parse_with(two, (int)ekmfs_slot_offset(0), 5 ^ 6), -EBADMSG);
	/* Not an ekmfs file at all. */
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(ekmfs_header_parse(buf, &h), -EPROTO);
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ_INT(ekmfs_header_parse(buf, &h), -EPROTO);
}

/* Every byte of the header is checked by the parser or authenticated by the
 * slot it would change: altering any single byte either fails to parse or
 * makes every in-use slot fail to unwrap (or, for the other slot's bytes,
 * leaves this slot's unwrap intact but breaks that slot). */
static void test_every_byte_bound(void)
{
	uint8_t base[EKMFS_HEADER_SIZE], buf[EKMFS_HEADER_SIZE], dek[32];
	const uint8_t *keks[2] = { kek1, kek2 };
	struct ekmfs_header h;

	make_header(base, 1);
	for (int pos = 0; pos < EKMFS_HEADER_SIZE; pos++) {
		static const uint8_t flips[] = { 0x01, 0x80, 0xff };

		for (size_t f = 0; f < sizeof(flips); f++) {
			int rc, intact = 0;

			memcpy(buf, base, sizeof(buf));
			buf[pos] ^= flips[f];
			rc = ekmfs_header_parse(buf, &h);
			if (rc < 0) {
				CHECK(rc == -EBADMSG || rc == -EPROTO);
				continue;
			}
			for (int s = 0; s < 2; s++) {
				int in_slot = pos >= (int)ekmfs_slot_offset(s) &&
					      pos < (int)ekmfs_slot_offset(s) + EKMFS_SLOT_SIZE;
				int in_prefix = pos < EKMFS_HEADER_PREFIX_SIZE;

				rc = ekmfs_slot_unwrap(&h, s, keks[s], dek);
				if (in_slot || in_prefix) {
					if (rc != -EBADMSG)
						fprintf(stderr, "byte %d ^ %#x: slot %d unwraps\n",
							pos, flips[f], s);
					CHECK_EQ_INT(rc, -EBADMSG);
				} else {
					intact += rc == 0;
				}
			}
			CHECK(pos < EKMFS_HEADER_PREFIX_SIZE || intact == 1);
		}
	}
}

/* ---- 3. slots ---- */

static void test_slot_binding(void)
{
	struct ekmfs_header h, t;
	uint8_t dek[32];

	ekmfs_header_init(&h, id1);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 5, 3, 9, kek1, dek1, nonce1), 0);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&h, 0, kek1, dek), 0);
	CHECK_MEM(dek, dek1, 32);

	memset(dek, 0x77, sizeof(dek));
	CHECK_EQ_INT(ekmfs_slot_unwrap(&h, 0, kek2, dek), -EBADMSG); /* wrong KEK */
	for (int i = 0; i < 32; i++)
		CHECK_EQ_INT(dek[i], 0); /* wiped on failure */

	t = h;
	t.file_id[15] ^= 1;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.slot[0].tenant_id = 4;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.slot[0].kek_version = 8;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.slot[0].seq = 6;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.slot[0].wrapped_dek[0] ^= 1;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.slot[0].tag[15] ^= 1;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.slot[0].nonce[0] ^= 1;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);

	/* A slot moved to the other position still unwraps: the position is
	 * not part of the AAD, which lets a re-wrap use either slot. */
	t = h;
	t.slot[1] = t.slot[0];
	ekmfs_slot_clear(&t, 0);
	CHECK_EQ_INT(t.slot[0].seq, 0);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -ENOKEY);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 1, kek1, dek), 0);
	CHECK_MEM(dek, dek1, 32);

	/* Invalid arguments. */
	CHECK_EQ_INT(ekmfs_slot_wrap(&t, 2, 1, 1, 1, kek1, dek1, nonce1), -EINVAL);
	CHECK_EQ_INT(ekmfs_slot_wrap(&t, 0, 0, 1, 1, kek1, dek1, nonce1), -EINVAL);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, -1, kek1, dek), -EINVAL);
}

static void test_newest_slot(void)
{
	static const struct { uint64_t s0, s1; int newest, fallback; } cases[] = {
		{ 0, 0, -ENOKEY, -1 }, { 1, 0, 0, -1 }, { 0, 1, 1, -1 }, { 1, 2, 1, 0 },
		{ 2, 1, 0, 1 }, { UINT64_MAX, 1, 0, 1 }, { 7, UINT64_MAX, 1, 0 },
	};
	struct ekmfs_header h;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fallback = 99;

		ekmfs_header_init(&h, id1);
		h.slot[0].seq = cases[i].s0;
		h.slot[1].seq = cases[i].s1;
		CHECK_EQ_INT(ekmfs_header_newest_slot(&h, &fallback), cases[i].newest);
		CHECK_EQ_INT(fallback, cases[i].fallback);
	}

	/* Rotation in the header: slot 1 gets seq 6 under kek2 and becomes
	 * the newest; slot 0 remains the fallback until cleared. */
	uint8_t buf[EKMFS_HEADER_SIZE], dek[32];
	int fallback;

	make_header(buf, 1);
	CHECK_EQ_INT(ekmfs_header_parse(buf, &h), 0);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&h, &fallback), 1);
	CHECK_EQ_INT(fallback, 0);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&h, 1, kek2, dek), 0);
	CHECK_MEM(dek, dek1, 32);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&h, 0, kek1, dek), 0);
	CHECK_MEM(dek, dek1, 32);
	ekmfs_slot_clear(&h, 0);
	ekmfs_header_serialize(&h, buf);
	CHECK_EQ_INT(ekmfs_header_parse(buf, &h), 0);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&h, &fallback), 1);
	CHECK_EQ_INT(fallback, -1);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&h, NULL), 1);
}

/* The owner: the newest slot, passing over a write cut short (tenant 0). */
static void test_owner_slot(void)
{
	static const struct { uint64_t s0, s1; uint32_t t0, t1; int owner; } cases[] = {
		{ 0, 0, 0, 0, -1 },     /* no slot */
		{ 5, 0, 3, 0, 0 },      /* one slot */
		{ 5, 6, 3, 4, 1 },      /* newest */
		{ 5, 6, 3, 0, 0 },      /* newest cut short: the other */
		{ 6, 5, 0, 3, 1 },
		{ 0, 6, 0, 0, -1 },     /* only a cut-short slot: none */
	};
	struct ekmfs_header h;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ekmfs_header_init(&h, id1);
		h.slot[0].seq = cases[i].s0;
		h.slot[1].seq = cases[i].s1;
		h.slot[0].tenant_id = cases[i].t0;
		h.slot[1].tenant_id = cases[i].t1;
		CHECK_EQ_INT(ekmfs_header_owner_slot(&h), cases[i].owner);
	}
}

/* ---- 4. size arithmetic ---- */

static void test_sizes(void)
{
	uint64_t plain;

	CHECK_EQ_INT(ekmfs_backing_size(0), 256);
	CHECK_EQ_INT(ekmfs_backing_size(1), 256 + 29);
	CHECK_EQ_INT(ekmfs_backing_size(4096), 256 + 4124);
	CHECK_EQ_INT(ekmfs_backing_size(4097), 256 + 4124 + 29);
	CHECK_EQ_INT(ekmfs_plain_size(0, &plain), 0);
	CHECK_EQ_INT(plain, 0);
	for (uint64_t b = 1; b < 256; b++) {
		plain = 99;
		CHECK_EQ_INT(ekmfs_plain_size(b, &plain), -EBADMSG);
		CHECK_EQ_INT(plain, 0);
	}
	CHECK_EQ_INT(ekmfs_plain_size(256, &plain), 0);
	CHECK_EQ_INT(plain, 0);

	/* Round trip around many block boundaries, and the impossible sizes
	 * between one block's end and the next one's first byte. */
	for (uint64_t blocks = 0; blocks < 3000; blocks += (blocks < 20 ? 1 : 997)) {
		uint64_t base = blocks * EKMFS_BLOCK_SIZE;
		uint64_t bbase = 256 + blocks * EKMFS_CBLOCK_SIZE;

		for (int64_t d = -2; d <= 2; d++) {
			uint64_t p = base + (uint64_t)d;

			if (d < 0 && base == 0)
				continue;
			CHECK_EQ_INT(ekmfs_plain_size(ekmfs_backing_size(p), &plain), 0);
			CHECK_EQ_INT(plain, p);
		}
		CHECK_EQ_INT(ekmfs_backing_size(base), bbase);
		for (uint64_t r = 1; r <= EKMFS_BLOCK_OVERHEAD; r++) {
			plain = 99;
			CHECK_EQ_INT(ekmfs_plain_size(bbase + r, &plain), -EBADMSG);
			CHECK_EQ_INT(plain, base);
		}
		CHECK_EQ_INT(ekmfs_plain_size(bbase + 29, &plain), 0);
		CHECK_EQ_INT(plain, base + 1);
		CHECK_EQ_INT(ekmfs_plain_size(bbase + EKMFS_CBLOCK_SIZE - 1, &plain), 0);
		CHECK_EQ_INT(plain, base + 4095);
	}
	/* Large sizes do not overflow. */
	uint64_t big = (uint64_t)1 << 50;
	CHECK_EQ_INT(ekmfs_plain_size(ekmfs_backing_size(big + 7), &plain), 0);
	CHECK_EQ_INT(plain, big + 7);
	CHECK_EQ_INT(ekmfs_block_offset(0), 256);
	CHECK_EQ_INT(ekmfs_block_offset(3), 256 + 3 * 4124);
}

/* ---- 5. blocks ---- */

static void test_block_failures(void)
{
	uint8_t pt[EKMFS_BLOCK_SIZE], out[EKMFS_CBLOCK_SIZE], back[EKMFS_BLOCK_SIZE];
	uint8_t id2[16];
	size_t lens[] = { 1, 2, 100, 4095, 4096 };

	memcpy(id2, id1, 16);
	id2[0] ^= 1;
	for (size_t k = 0; k < sizeof(pt); k++)
		pt[k] = (uint8_t)(k * 13 + 5);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		size_t len = lens[l], stored = len + EKMFS_BLOCK_OVERHEAD;

		CHECK_EQ_INT(ekmfs_block_seal(dek1, id1, 42, nonce1, pt, len, out), 0);
		CHECK_MEM(out, nonce1, 12);
		CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 42, out, stored, back), 0);
		CHECK_MEM(back, pt, len);
		CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 41, out, stored, back), -EBADMSG);
		for (int bit = 0; bit < 64; bit++) /* every bit of the index counts */
			CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 42 ^ (1ull << bit), out, stored,
						      back), -EBADMSG);
		CHECK_EQ_INT(ekmfs_block_open(dek1, id2, 42, out, stored, back), -EBADMSG);
		CHECK_EQ_INT(ekmfs_block_open(kek1, id1, 42, out, stored, back), -EBADMSG);
		for (size_t pos = 0; pos < stored; pos += (stored > 64 ? 61 : 1)) {
			out[pos] ^= 0x04;
			memset(back, 0x5a, sizeof(back));
			CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 42, out, stored, back), -EBADMSG);
			for (size_t k = 0; k < len; k++)
				if (back[k] != 0) {
					CHECK(back[k] == 0); /* wiped on failure */
					break;
				}
			out[pos] ^= 0x04;
		}
		if (len > 1) /* a block cut short is not the shorter block */
			CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 42, out, stored - 1, back),
				     -EBADMSG);
	}
	CHECK_EQ_INT(ekmfs_block_seal(dek1, id1, 0, nonce1, pt, 0, out), -EINVAL);
	CHECK_EQ_INT(ekmfs_block_seal(dek1, id1, 0, nonce1, pt, 4097, out), -EINVAL);
	CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 0, out, 28, back), -EINVAL);
	CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 0, out, 0, back), -EINVAL);
	CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 0, out, EKMFS_CBLOCK_SIZE + 1, back), -EINVAL);
	/* All-zero storage (a hole) never opens. */
	memset(out, 0, sizeof(out));
	CHECK_EQ_INT(ekmfs_block_open(dek1, id1, 0, out, EKMFS_CBLOCK_SIZE, back), -EBADMSG);
}

int main(void)
{
	if (load_vectors() < 0)
		return 1;
	RUN(test_vector_a);
	RUN(test_vector_b);
	RUN(test_round_trip);
	RUN(test_malformed);
	RUN(test_every_byte_bound);
	RUN(test_slot_binding);
	RUN(test_newest_slot);
	RUN(test_owner_slot);
	RUN(test_sizes);
	RUN(test_block_failures);
	for (int i = 0; i < nvecs; i++)
		free(vecs[i].data);
	return CHECK_DONE();
}
