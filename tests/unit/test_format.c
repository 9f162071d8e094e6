/*
 * test_format.c - the on-disk format codec (src/format/): layouts and size
 * arithmetic, header and key slots, state records and their hole runs,
 * content blocks, journal records; docs/FORMAT.md is the specification.
 *
 * Divisions:
 *   1. the vectors of tests/vectors/format_vectors.txt (made by an
 *      independent Python implementation from docs/FORMAT.md): the C
 *      codec must produce and open exactly those bytes (a, b: version 1;
 *      c, d, e: version 2)
 *   2. layouts and size arithmetic of both versions, the largest file
 *   3. header parse/serialise: the table of rejections in order, every
 *      byte bound (v2 sector 0 and the v1 header)
 *   4. key slots: binding, newest and owner slot
 *   5. state records: every byte bound, binding to the file id, each
 *      validity rule with a correct MAC, peek
 *   6. hole runs and salts, against a bitmap model
 *   7. content blocks: seal/open (one-shot and keyed session), tampering,
 *      impossible lengths
 *   8. journal header and record headers
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "check.h"
#include "ekmfs/aead.h"
#include "ekmfs/format.h"
#include "ekmfs/mac.h"

/* ---- 1. vectors ---- */

#define VEC_MAX 96
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
			return NULL;
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

static void sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	CHECK(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Seal (one-shot and in a keyed session) and open one block of a vector,
 * which must come out byte for byte. kx is the session's GCM key: the DEK
 * (v1) or the key derived for the block's salt (v2). */
static void check_vector_block(const struct ekmfs_layout *l, const uint8_t *dek,
			       const uint8_t *kx, const uint8_t *id, uint64_t index,
			       const uint8_t *nonce, const uint8_t *plain, size_t len,
			       const uint8_t *stored)
{
	static uint8_t out[EKMFS_CBLOCK_SIZE_MAX], pt[EKMFS_BLOCK_SIZE];
	struct ekmfs_aead_session *s;
	size_t n = len + l->overhead;

	memset(out, 0, sizeof(out));
	CHECK_EQ_INT(ekmfs_block_seal(l, dek, id, index, nonce, plain, len, out), 0);
	CHECK_MEM(out, stored, n);
	CHECK_EQ_INT(ekmfs_block_open(l, dek, id, index, stored, n, pt), 0);
	CHECK_MEM(pt, plain, len);

	s = ekmfs_aead_begin(kx);
	CHECK(s != NULL);
	if (!s)
		return;
	memset(out, 0, sizeof(out));
	CHECK_EQ_INT(ekmfs_block_seal_s(l, s, id, index, nonce, plain, len, out), 0);
	CHECK_MEM(out, stored, n);
	memset(pt, 0, sizeof(pt));
	CHECK_EQ_INT(ekmfs_block_open_s(l, s, id, index, stored, n, pt), 0);
	CHECK_MEM(pt, plain, len);
	ekmfs_aead_end(s);
}

static void test_vector_a(void)
{
	const uint8_t *kek = vec("a_kek", 32), *dek = vec("a_dek", 32);
	const uint8_t *id = vec("a_file_id", 16), *snonce = vec("a_slot_nonce", 12);
	const uint8_t *hdr = vec("a_header", EKMFS_HEADER_SIZE_V1);
	const uint8_t *blk[2] = { vec("a_block0", EKMFS_CBLOCK_SIZE_V1), vec("a_block1", 128) };
	const uint8_t *bnonce[2] = { vec("a_block0_nonce", 12), vec("a_block1_nonce", 12) };
	uint8_t plain[EKMFS_BLOCK_SIZE + 100], buf[EKMFS_HEADER_PARSE_SIZE], got_dek[32];
	struct ekmfs_header h, p;
	int fallback;

	if (!kek || !dek || !id || !snonce || !hdr || !blk[0] || !blk[1] || !bnonce[0] ||
	    !bnonce[1])
		return;
	for (size_t k = 0; k < sizeof(plain); k++)
		plain[k] = (uint8_t)(k % 251);

	ekmfs_header_init(&h, id);
	h.version = EKMFS_FORMAT_V1;
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 1, 1, 1, kek, dek, snonce), 0);
	CHECK_EQ_INT(ekmfs_header_serialize(&h, buf), EKMFS_HEADER_SIZE_V1);
	CHECK_MEM(buf, hdr, EKMFS_HEADER_SIZE_V1);

	CHECK_EQ_INT(ekmfs_header_parse(hdr, EKMFS_HEADER_SIZE_V1, &p), 0);
	CHECK_EQ_INT(p.version, 1);
	CHECK(ekmfs_header_layout(&p) == &ekmfs_layout_v1);
	CHECK_EQ_INT(p.block_size, 4096);
	CHECK_EQ_INT(p.flags, 0);
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

	for (int i = 0; i < 2; i++)
		check_vector_block(&ekmfs_layout_v1, dek, dek, id, (uint64_t)i, bnonce[i],
				   plain + i * EKMFS_BLOCK_SIZE, i == 0 ? EKMFS_BLOCK_SIZE : 100,
				   blk[i]);
}

static void test_vector_b(void)
{
	const uint8_t *kek = vec("b_kek", 32), *dek = vec("b_dek", 32);
	const uint8_t *id = vec("b_file_id", 16), *snonce = vec("b_slot_nonce", 12);
	const uint8_t *hdr = vec("b_header", EKMFS_HEADER_SIZE_V1), *plain = vec("b_plain", 0);
	const uint8_t *bnonce = vec("b_block0_nonce", 12), *blk = vec("b_block0", 0);
	size_t len = vec_len("b_plain");
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE], got_dek[32];
	struct ekmfs_header h, p;
	int fallback;

	if (!kek || !dek || !id || !snonce || !hdr || !plain || !bnonce || !blk)
		return;
	CHECK_EQ_INT(vec_len("b_block0"), len + 28);
	ekmfs_header_init(&h, id);
	h.version = EKMFS_FORMAT_V1;
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 1, 2, 7, 3, kek, dek, snonce), 0);
	CHECK_EQ_INT(ekmfs_header_serialize(&h, buf), EKMFS_HEADER_SIZE_V1);
	CHECK_MEM(buf, hdr, EKMFS_HEADER_SIZE_V1);
	CHECK_EQ_INT(ekmfs_header_parse(hdr, EKMFS_HEADER_SIZE_V1, &p), 0);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&p, &fallback), 1);
	CHECK_EQ_INT(fallback, -1);
	CHECK_EQ_INT(p.slot[1].tenant_id, 7);
	CHECK_EQ_INT(p.slot[1].kek_version, 3);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&p, 1, kek, got_dek), 0);
	CHECK_MEM(got_dek, dek, 32);
	check_vector_block(&ekmfs_layout_v1, dek, dek, id, 0, bnonce, plain, len, blk);
}

/* Vector c: a version 2 file of 4096+100 bytes at rest (slot 0; two equal
 * records: seq 1, size 4196, journal 0, no holes, one salt). */
static void test_vector_c(void)
{
	const uint8_t *kek = vec("c_kek", 32), *dek = vec("c_dek", 32);
	const uint8_t *id = vec("c_file_id", 16), *snonce = vec("c_slot_nonce", 12);
	const uint8_t *salt = vec("c_salt", 12), *kx = vec("c_xaes_key", 32);
	const uint8_t *skey = vec("c_state_key", 32), *rec = vec("c_state", EKMFS_STATE_SIZE);
	const uint8_t *hdr = vec("c_header", EKMFS_HEADER_SIZE_V2);
	const uint8_t *blk[2] = { vec("c_block0", EKMFS_CBLOCK_SIZE_V2), vec("c_block1", 140) };
	const uint8_t *bnonce[2] = { vec("c_block0_nonce", 24), vec("c_block1_nonce", 24) };
	const uint8_t *sha = vec("c_file_sha256", 32);
	const uint64_t size = EKMFS_BLOCK_SIZE + 100;
	static uint8_t file[EKMFS_HEADER_SIZE_V2 + EKMFS_CBLOCK_SIZE_V2 + 140];
	uint8_t plain[EKMFS_BLOCK_SIZE + 100], got[32], key[32], digest[32];
	struct ekmfs_header h, p;
	struct ekmfs_state st, q;
	uint64_t plain_size;
	int fallback;

	if (!kek || !dek || !id || !snonce || !salt || !kx || !skey || !rec || !hdr ||
	    !blk[0] || !blk[1] || !bnonce[0] || !bnonce[1] || !sha)
		return;
	for (size_t k = 0; k < sizeof(plain); k++)
		plain[k] = (uint8_t)(k % 251);

	/* Sector 0. */
	ekmfs_header_init(&h, id);
	CHECK_EQ_INT(h.version, 2);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 1, 1, 1, kek, dek, snonce), 0);
	CHECK_EQ_INT(ekmfs_header_serialize(&h, file), EKMFS_SECTOR_SIZE);
	CHECK_MEM(file, hdr, EKMFS_SECTOR_SIZE);
	CHECK_EQ_INT(ekmfs_header_parse(hdr, EKMFS_HEADER_SIZE_V2, &p), 0);
	CHECK_EQ_INT(ekmfs_header_parse(hdr, EKMFS_SECTOR_SIZE, &p), 0);
	CHECK_EQ_INT(p.version, 2);
	CHECK(ekmfs_header_layout(&p) == &ekmfs_layout_v2);
	CHECK_MEM(p.file_id, id, 16);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&p, &fallback), 0);
	CHECK_EQ_INT(fallback, -1);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&p, 0, kek, got), 0);
	CHECK_MEM(got, dek, 32);

	/* Sector 1: the state key, two equal records. */
	CHECK_EQ_INT(ekmfs_state_key(dek, key), 0);
	CHECK_MEM(key, skey, 32);
	memset(&st, 0, sizeof(st));
	st.seq = 1;
	st.size = size;
	st.journal = 0;
	CHECK_EQ_INT(ekmfs_state_add_salt(&st, salt), 0);
	CHECK_EQ_INT(st.nsalts, 1);
	CHECK_EQ_INT(ekmfs_state_serialize(&st, key, id, file + ekmfs_state_offset(0)), 0);
	CHECK_EQ_INT(ekmfs_state_serialize(&st, key, id, file + ekmfs_state_offset(1)), 0);
	CHECK_MEM(file + ekmfs_state_offset(0), rec, EKMFS_STATE_SIZE);
	CHECK_MEM(file, hdr, EKMFS_HEADER_SIZE_V2);
	for (int r = 0; r < EKMFS_STATE_COUNT; r++) {
		memset(&q, 0xa5, sizeof(q));
		CHECK_EQ_INT(ekmfs_state_parse(hdr + ekmfs_state_offset(r), key, id, &q), 0);
		CHECK_EQ_INT(q.seq, 1);
		CHECK_EQ_INT(q.size, size);
		CHECK_EQ_INT(q.journal, 0);
		CHECK_EQ_INT(q.nholes, 0);
		CHECK_EQ_INT(q.nsalts, 1);
		CHECK_MEM(q.salts[0], salt, 12);
		CHECK(ekmfs_state_same(&st, &q));
		CHECK(ekmfs_state_has_salt(&q, salt));
	}

	/* Blocks: XAES-256-GCM under the DEK, nonce = salt ‖ n. */
	CHECK_EQ_INT(ekmfs_xaes_derive(dek, salt, got), 0);
	CHECK_MEM(got, kx, 32);
	for (int i = 0; i < 2; i++) {
		size_t len = (size_t)ekmfs_block_len(size, (uint64_t)i);

		CHECK_MEM(bnonce[i], salt, 12);
		CHECK_EQ_INT(len, i == 0 ? 4096 : 100);
		check_vector_block(&ekmfs_layout_v2, dek, kx, id, (uint64_t)i, bnonce[i],
				   plain + i * EKMFS_BLOCK_SIZE, len, blk[i]);
		CHECK_EQ_INT(ekmfs_block_seal(&ekmfs_layout_v2, dek, id, (uint64_t)i, bnonce[i],
					      plain + i * EKMFS_BLOCK_SIZE, len,
					      file + ekmfs_block_offset(&ekmfs_layout_v2,
									(uint64_t)i)), 0);
	}

	/* The whole backing file, laid out by the C arithmetic. */
	CHECK_EQ_INT(ekmfs_backing_size(&ekmfs_layout_v2, size), sizeof(file));
	CHECK_EQ_INT(ekmfs_plain_size(&ekmfs_layout_v2, sizeof(file), &plain_size), 0);
	CHECK_EQ_INT(plain_size, size);
	sha256(file, sizeof(file), digest);
	CHECK_MEM(digest, sha, 32);
}

/* Vector d: a sparse file, DEK in slot 1; records seq 7, size 6*4096+1000,
 * journal 3, holes (0,1) (2,2) (5,1), two salts; data blocks 1, 4, 6. */
#define D_SIZE (6 * EKMFS_BLOCK_SIZE + 1000)

static void test_vector_d(void)
{
	static const struct ekmfs_hole holes[3] = { { 0, 1 }, { 2, 2 }, { 5, 1 } };
	static const int data_blocks[3] = { 1, 4, 6 };
	static uint8_t file[EKMFS_HEADER_SIZE_V2 + 6 * EKMFS_CBLOCK_SIZE_V2 + 1040];
	static uint8_t plain[D_SIZE];
	const uint8_t *kek = vec("d_kek", 32), *dek = vec("d_dek", 32);
	const uint8_t *id = vec("d_file_id", 16), *snonce = vec("d_slot_nonce", 12);
	const uint8_t *salt[2] = { vec("d_salt0", 12), vec("d_salt1", 12) };
	const uint8_t *skey = vec("d_state_key", 32), *rec = vec("d_state", EKMFS_STATE_SIZE);
	const uint8_t *hdr = vec("d_header", EKMFS_HEADER_SIZE_V2);
	const uint8_t *sha = vec("d_file_sha256", 32);
	uint8_t got[32], key[32], digest[32], out[EKMFS_STATE_SIZE];
	struct ekmfs_header h, p;
	struct ekmfs_state st, q;
	int fallback;

	if (!kek || !dek || !id || !snonce || !salt[0] || !salt[1] || !skey || !rec || !hdr ||
	    !sha)
		return;

	ekmfs_header_init(&h, id);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 1, 2, 7, 3, kek, dek, snonce), 0);
	memset(file, 0, sizeof(file));
	CHECK_EQ_INT(ekmfs_header_serialize(&h, file), EKMFS_SECTOR_SIZE);
	CHECK_MEM(file, hdr, EKMFS_SECTOR_SIZE);
	CHECK_EQ_INT(ekmfs_header_parse(hdr, EKMFS_HEADER_SIZE_V2, &p), 0);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&p, &fallback), 1);
	CHECK_EQ_INT(fallback, -1);
	CHECK_EQ_INT(ekmfs_header_owner_slot(&p), 1);
	CHECK_EQ_INT(p.slot[1].seq, 2);
	CHECK_EQ_INT(p.slot[1].tenant_id, 7);
	CHECK_EQ_INT(p.slot[1].kek_version, 3);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&p, 0, kek, got), -ENOKEY);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&p, 1, kek, got), 0);
	CHECK_MEM(got, dek, 32);

	CHECK_EQ_INT(ekmfs_state_key(dek, key), 0);
	CHECK_MEM(key, skey, 32);

	/* The record, built through the hole and salt calls. */
	memset(&st, 0, sizeof(st));
	st.seq = 7;
	st.size = D_SIZE;
	st.journal = 3;
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 5, 1), 0);
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 0, 1), 0);
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 2, 2), 0);
	CHECK_EQ_INT(ekmfs_state_add_salt(&st, salt[0]), 0);
	CHECK_EQ_INT(ekmfs_state_add_salt(&st, salt[1]), 0);
	CHECK_EQ_INT(st.nholes, 3);
	CHECK_EQ_INT(ekmfs_state_serialize(&st, key, id, out), 0);
	CHECK_MEM(out, rec, EKMFS_STATE_SIZE);
	CHECK_MEM(hdr + ekmfs_state_offset(0), rec, EKMFS_STATE_SIZE);
	CHECK_MEM(hdr + ekmfs_state_offset(1), rec, EKMFS_STATE_SIZE);
	memcpy(file + ekmfs_state_offset(0), out, EKMFS_STATE_SIZE);
	memcpy(file + ekmfs_state_offset(1), out, EKMFS_STATE_SIZE);

	CHECK_EQ_INT(ekmfs_state_parse(rec, key, id, &q), 0);
	CHECK_EQ_INT(q.seq, 7);
	CHECK_EQ_INT(q.size, D_SIZE);
	CHECK_EQ_INT(q.journal, 3);
	CHECK_EQ_INT(q.nholes, 3);
	CHECK_EQ_INT(q.nsalts, 2);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(q.holes[i].first, holes[i].first);
		CHECK_EQ_INT(q.holes[i].count, holes[i].count);
	}
	CHECK_MEM(q.salts[0], salt[0], 12);
	CHECK_MEM(q.salts[1], salt[1], 12);
	CHECK(ekmfs_state_same(&st, &q));
	for (uint64_t i = 0; i < 8; i++)
		CHECK_EQ_INT(ekmfs_state_is_hole(&q, i), i == 0 || i == 2 || i == 3 || i == 5);

	/* The data blocks; file byte k is k mod 241 outside the holes. */
	CHECK_EQ_INT(ekmfs_nblocks(D_SIZE), 7);
	for (size_t k = 0; k < sizeof(plain); k++)
		plain[k] = (uint8_t)(k % 241);
	for (int j = 0; j < 3; j++) {
		int i = data_blocks[j];
		char name[32];
		const uint8_t *nonce, *blk;
		size_t len = (size_t)ekmfs_block_len(D_SIZE, (uint64_t)i);

		snprintf(name, sizeof(name), "d_block%d_nonce", i);
		nonce = vec(name, 24);
		snprintf(name, sizeof(name), "d_block%d", i);
		blk = vec(name, len + 40);
		if (!nonce || !blk)
			return;
		CHECK_MEM(nonce, salt[i == 6], 12);
		CHECK(ekmfs_state_has_salt(&q, nonce));
		CHECK_EQ_INT(ekmfs_xaes_derive(dek, nonce, got), 0);
		check_vector_block(&ekmfs_layout_v2, dek, got, id, (uint64_t)i, nonce,
				   plain + (size_t)i * EKMFS_BLOCK_SIZE, len, blk);
		memcpy(file + ekmfs_block_offset(&ekmfs_layout_v2, (uint64_t)i), blk, len + 40);
	}
	/* The backing file, its holes reading as zeros. */
	CHECK_EQ_INT(ekmfs_backing_size(&ekmfs_layout_v2, D_SIZE), sizeof(file));
	sha256(file, sizeof(file), digest);
	CHECK_MEM(digest, sha, 32);
}

/* Vector e: journal generation 4 of vector d's file, one record (block 6). */
static void test_vector_e(void)
{
	const uint8_t *dek = vec("d_dek", 32), *id = vec("d_file_id", 16);
	const uint8_t *skey = vec("d_state_key", 32);
	const uint8_t *jhdr = vec("e_journal_header", EKMFS_JOURNAL_HEADER_SIZE);
	const uint8_t *nonce = vec("e_rec0_nonce", 24);
	const uint8_t *rec = vec("e_rec0", EKMFS_JOURNAL_REC_SIZE + 1040);
	uint8_t out[EKMFS_JOURNAL_HEADER_SIZE], plain[1000], kx[32], pt[1000];
	struct ekmfs_journal_header jh, jp;
	uint64_t index;
	uint32_t stored_len;

	if (!dek || !id || !skey || !jhdr || !nonce || !rec)
		return;
	memcpy(jh.file_id, id, 16);
	jh.generation = 4;
	CHECK_EQ_INT(ekmfs_journal_header_serialize(&jh, skey, out), 0);
	CHECK_MEM(out, jhdr, EKMFS_JOURNAL_HEADER_SIZE);
	memset(&jp, 0xa5, sizeof(jp));
	CHECK_EQ_INT(ekmfs_journal_header_parse(jhdr, skey, &jp), 0);
	CHECK_MEM(jp.file_id, id, 16);
	CHECK_EQ_INT(jp.generation, 4);

	ekmfs_journal_rec_serialize(6, 1040, out);
	CHECK_MEM(out, rec, EKMFS_JOURNAL_REC_SIZE);
	CHECK_EQ_INT(ekmfs_journal_rec_parse(rec, &index, &stored_len), 0);
	CHECK_EQ_INT(index, 6);
	CHECK_EQ_INT(stored_len, 1040);

	for (size_t k = 0; k < sizeof(plain); k++)
		plain[k] = (uint8_t)(k * 7 + 1);
	CHECK_EQ_INT(ekmfs_xaes_derive(dek, nonce, kx), 0);
	check_vector_block(&ekmfs_layout_v2, dek, kx, id, 6, nonce, plain, sizeof(plain),
			   rec + EKMFS_JOURNAL_REC_SIZE);
	/* The record header has no MAC: an edited index makes the block fail. */
	CHECK_EQ_INT(ekmfs_block_open(&ekmfs_layout_v2, dek, id, 5,
				      rec + EKMFS_JOURNAL_REC_SIZE, 1040, pt), -EBADMSG);
}

/* ---- 2. layouts and size arithmetic ---- */

static const struct ekmfs_layout *const layouts[2] = { &ekmfs_layout_v1, &ekmfs_layout_v2 };

/* The largest plaintext size whose layout fits in a signed 64-bit offset,
 * computed from FORMAT.md's size rule: (INT64_MAX - 1024) = f*4136 + 4087,
 * and a last block of 4087 stored bytes holds 4047. */
#define V2_LARGEST_BY_RULE 9134171146749796303ull

static void test_layouts(void)
{
	CHECK(ekmfs_layout_of(1) == &ekmfs_layout_v1);
	CHECK(ekmfs_layout_of(2) == &ekmfs_layout_v2);
	CHECK(ekmfs_layout_of(0) == NULL);
	CHECK(ekmfs_layout_of(3) == NULL);
	CHECK(ekmfs_layout_of(0x0102) == NULL);
	CHECK_EQ_INT(ekmfs_layout_v1.version, 1);
	CHECK_EQ_INT(ekmfs_layout_v1.header_size, 256);
	CHECK_EQ_INT(ekmfs_layout_v1.nonce_size, 12);
	CHECK_EQ_INT(ekmfs_layout_v1.overhead, 28);
	CHECK_EQ_INT(ekmfs_layout_v1.cblock_size, 4124);
	CHECK_EQ_INT(ekmfs_layout_v2.version, 2);
	CHECK_EQ_INT(ekmfs_layout_v2.header_size, 1024);
	CHECK_EQ_INT(ekmfs_layout_v2.nonce_size, 24);
	CHECK_EQ_INT(ekmfs_layout_v2.overhead, 40);
	CHECK_EQ_INT(ekmfs_layout_v2.cblock_size, 4136);
}

static void test_sizes(void)
{
	for (int v = 0; v < 2; v++) {
		const struct ekmfs_layout *l = layouts[v];
		uint64_t hs = l->header_size, cb = l->cblock_size, ov = l->overhead, plain;

		CHECK_EQ_INT(ekmfs_backing_size(l, 0), hs);
		CHECK_EQ_INT(ekmfs_backing_size(l, 1), hs + ov + 1);
		CHECK_EQ_INT(ekmfs_backing_size(l, 4096), hs + cb);
		CHECK_EQ_INT(ekmfs_backing_size(l, 4097), hs + cb + ov + 1);
		CHECK_EQ_INT(ekmfs_plain_size(l, 0, &plain), 0);   /* no header yet */
		CHECK_EQ_INT(plain, 0);
		for (uint64_t b = 1; b < hs; b++) {               /* truncated header */
			plain = 99;
			CHECK_EQ_INT(ekmfs_plain_size(l, b, &plain), -EBADMSG);
			CHECK_EQ_INT(plain, 0);
		}
		CHECK_EQ_INT(ekmfs_plain_size(l, hs, &plain), 0);
		CHECK_EQ_INT(plain, 0);

		/* Round trip around many block boundaries, and the impossible
		 * sizes between one block's end and the next one's first byte. */
		for (uint64_t blocks = 0; blocks < 3000; blocks += (blocks < 20 ? 1 : 997)) {
			uint64_t base = blocks * EKMFS_BLOCK_SIZE, bbase = hs + blocks * cb;

			for (int64_t d = -2; d <= 2; d++) {
				uint64_t p = base + (uint64_t)d;

				if (d < 0 && base == 0)
					continue;
				CHECK_EQ_INT(ekmfs_plain_size(l, ekmfs_backing_size(l, p), &plain),
					     0);
				CHECK_EQ_INT(plain, p);
			}
			CHECK_EQ_INT(ekmfs_backing_size(l, base), bbase);
			CHECK_EQ_INT(ekmfs_block_offset(l, blocks), bbase);
			for (uint64_t r = 1; r <= ov; r++) {
				plain = 99;
				CHECK_EQ_INT(ekmfs_plain_size(l, bbase + r, &plain), -EBADMSG);
				CHECK_EQ_INT(plain, base);
			}
			CHECK_EQ_INT(ekmfs_plain_size(l, bbase + ov + 1, &plain), 0);
			CHECK_EQ_INT(plain, base + 1);
			CHECK_EQ_INT(ekmfs_plain_size(l, bbase + cb - 1, &plain), 0);
			CHECK_EQ_INT(plain, base + 4095);
		}
		/* Large sizes do not overflow. */
		uint64_t big = (uint64_t)1 << 50;
		CHECK_EQ_INT(ekmfs_plain_size(l, ekmfs_backing_size(l, big + 7), &plain), 0);
		CHECK_EQ_INT(plain, big + 7);
		CHECK_EQ_INT(ekmfs_block_offset(l, 0), hs);
		CHECK_EQ_INT(ekmfs_block_offset(l, 3), hs + 3 * cb);
		/* The largest file fits in off_t in both layouts. */
		CHECK(ekmfs_backing_size(l, EKMFS_MAX_PLAIN) <= (uint64_t)INT64_MAX);
		CHECK_EQ_INT(ekmfs_plain_size(l, ekmfs_backing_size(l, EKMFS_MAX_PLAIN), &plain),
			     0);
		CHECK(plain == EKMFS_MAX_PLAIN);
	}

	/* Version 2: one more full block would not fit; the size rule maps
	 * the largest backing size to V2_LARGEST_BY_RULE. */
	uint64_t plain;
	CHECK(EKMFS_MAX_PLAIN % EKMFS_BLOCK_SIZE == 0);
	CHECK(ekmfs_backing_size(&ekmfs_layout_v2, EKMFS_MAX_PLAIN) + EKMFS_CBLOCK_SIZE_V2 >
	      (uint64_t)INT64_MAX);
	CHECK_EQ_INT(ekmfs_plain_size(&ekmfs_layout_v2, (uint64_t)INT64_MAX, &plain), 0);
	CHECK(plain == V2_LARGEST_BY_RULE);
	CHECK(ekmfs_backing_size(&ekmfs_layout_v2, V2_LARGEST_BY_RULE) == (uint64_t)INT64_MAX);

	/* Blocks of a size. */
	CHECK_EQ_INT(ekmfs_nblocks(0), 0);
	CHECK_EQ_INT(ekmfs_nblocks(1), 1);
	CHECK_EQ_INT(ekmfs_nblocks(4096), 1);
	CHECK_EQ_INT(ekmfs_nblocks(4097), 2);
	CHECK(ekmfs_nblocks(EKMFS_MAX_PLAIN) == EKMFS_MAX_PLAIN / 4096);
	CHECK_EQ_INT(ekmfs_block_len(0, 0), 0);
	CHECK_EQ_INT(ekmfs_block_len(1, 0), 1);
	CHECK_EQ_INT(ekmfs_block_len(4096, 0), 4096);
	CHECK_EQ_INT(ekmfs_block_len(4096, 1), 0);
	CHECK_EQ_INT(ekmfs_block_len(4097, 0), 4096);
	CHECK_EQ_INT(ekmfs_block_len(4097, 1), 1);
	CHECK_EQ_INT(ekmfs_block_len(4097, 2), 0);
	CHECK_EQ_INT(ekmfs_block_len(D_SIZE, 6), 1000);
	CHECK_EQ_INT(ekmfs_block_len(EKMFS_MAX_PLAIN, EKMFS_MAX_PLAIN / 4096 - 1), 4096);
	CHECK_EQ_INT(ekmfs_block_len(EKMFS_MAX_PLAIN, EKMFS_MAX_PLAIN / 4096), 0);
}

/* ---- 3. header parse / serialise ---- */

static const uint8_t kek1[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t kek2[32] = { 0xf0, 0xe1, 0xd2, 0xc3 };
static const uint8_t dek1[32] = { 0x55, 0x66, 0x77, 0x88, 0x99 };
static const uint8_t dek2[32] = { 0x56, 0x66, 0x77, 0x88, 0x99 };
static const uint8_t nonce1[24] = { 0xaa, 0xbb, 0xcc, [12] = 0x12, [23] = 0x34 };
static const uint8_t nonce2[12] = { 0x11, 0x22, 0x33, 0x44 };
static const uint8_t id1[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
static const uint8_t id2[16] = { 0xdf, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

/* A header of version v with slot 0 (seq 5, tenant 3, v9, kek1) and, when
 * two_slots, slot 1 (seq 6, tenant 3, v10, kek2), serialised into buf
 * (EKMFS_HEADER_PARSE_SIZE bytes; past a v1 header, 0xee). */
static void make_header(uint8_t buf[EKMFS_HEADER_PARSE_SIZE], int v, int two_slots)
{
	struct ekmfs_header h;

	ekmfs_header_init(&h, id1);
	h.version = (uint16_t)v;
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 5, 3, 9, kek1, dek1, nonce1), 0);
	if (two_slots)
		CHECK_EQ_INT(ekmfs_slot_wrap(&h, 1, 6, 3, 10, kek2, dek1, nonce2), 0);
	memset(buf, 0xee, EKMFS_HEADER_PARSE_SIZE);
	CHECK_EQ_INT(ekmfs_header_serialize(&h, buf), v == 1 ? 256 : 512);
}

static size_t header_len(int v)
{
	return v == 1 ? EKMFS_HEADER_SIZE_V1 : EKMFS_SECTOR_SIZE;
}

static void test_round_trip(void)
{
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE], again[EKMFS_HEADER_PARSE_SIZE];
	struct ekmfs_header h;

	for (int v = 1; v <= 2; v++)
		for (int two = 0; two <= 1; two++) {
			make_header(buf, v, two);
			CHECK_EQ_INT(ekmfs_header_parse(buf, header_len(v), &h), 0);
			CHECK_EQ_INT(h.version, v);
			CHECK_EQ_INT(ekmfs_header_serialize(&h, again), header_len(v));
			CHECK_MEM(again, buf, header_len(v));
			CHECK_MEM(buf, EKMFS_MAGIC, 4);
			CHECK_EQ_INT(buf[4], v);
			CHECK_EQ_INT(h.slot[0].seq, 5);
			CHECK_EQ_INT(h.slot[0].tenant_id, 3);
			CHECK_EQ_INT(h.slot[0].kek_version, 9);
			CHECK_EQ_INT(h.slot[1].seq, two ? 6 : 0);
			CHECK_EQ_INT(h.slot[1].kek_version, two ? 10 : 0);
			/* A v2 sector 0 ends with 288 zero bytes. */
			if (v == 2)
				CHECK(all_zero(buf + 224, 288));
		}
}

static int parse_with(const uint8_t *base, size_t len, int pos, uint8_t xor)
{
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE];
	struct ekmfs_header h;

	memcpy(buf, base, sizeof(buf));
	if (pos >= 0)
		buf[pos] ^= xor;
	return ekmfs_header_parse(buf, len, &h);
}

/* FORMAT.md, "Parsing rules": the table of rejections, in order. The
 * -EPROTO rows (magic, version) come before every -EBADMSG row, the
 * length included; the -EBADMSG rows cannot be told apart by their
 * result, so each is checked alone. */
static void test_parse_rejections(void)
{
	uint8_t one[EKMFS_HEADER_PARSE_SIZE], two[EKMFS_HEADER_PARSE_SIZE];
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE];
	struct ekmfs_header h;

	for (int v = 1; v <= 2; v++) {
		size_t len = header_len(v);

		make_header(one, v, 0);
		make_header(two, v, 1);
		CHECK_EQ_INT(parse_with(one, len, -1, 0), 0);
		CHECK_EQ_INT(parse_with(two, len, -1, 0), 0);
		CHECK_EQ_INT(parse_with(two, EKMFS_HEADER_PARSE_SIZE, -1, 0), 0);

		/* 1. magic: -EPROTO, also when the buffer is short. */
		for (int pos = 0; pos < 4; pos++) {
			CHECK_EQ_INT(parse_with(one, len, pos, 0x20), -EPROTO);
			CHECK_EQ_INT(parse_with(one, 10, pos, 0x20), -EPROTO);
		}
		/* 2. version not 1 or 2: -EPROTO, also when short. */
		CHECK_EQ_INT(parse_with(one, len, 4, (uint8_t)v), -EPROTO);         /* 0 */
		CHECK_EQ_INT(parse_with(one, len, 4, (uint8_t)(v ^ 3)), -EPROTO);   /* 3 */
		CHECK_EQ_INT(parse_with(one, len, 5, 0x01), -EPROTO);               /* 257, 258 */
		CHECK_EQ_INT(parse_with(one, 8, 4, (uint8_t)(v ^ 3)), -EPROTO);
		/* ... and before the -EBADMSG rows below. */
		memcpy(buf, two, sizeof(buf));
		buf[4] = 7;
		buf[12] = 1;                    /* flags */
		buf[230] = 1;                   /* reserved */
		CHECK_EQ_INT(ekmfs_header_parse(buf, len, &h), -EPROTO);
		/* Fewer than the 6 bytes of magic and version: the first row
		 * of the table, -EBADMSG, whatever the magic. */
		for (size_t n = 0; n < 6; n++) {
			CHECK_EQ_INT(parse_with(one, n, -1, 0), -EBADMSG);
			CHECK_EQ_INT(parse_with(one, n, 0, 0x20), -EBADMSG);
		}
		/* 3. fewer bytes than the version's header. */
		CHECK_EQ_INT(parse_with(one, len - 1, -1, 0), -EBADMSG);
		CHECK_EQ_INT(parse_with(one, 32, -1, 0), -EBADMSG);
		CHECK_EQ_INT(parse_with(one, 6, -1, 0), -EBADMSG);
		/* 4. header size (each version its own), block size, flags. */
		for (int pos = 6; pos < 16; pos++) {
			CHECK_EQ_INT(parse_with(one, len, pos, 0x01), -EBADMSG);
			CHECK_EQ_INT(parse_with(one, len, pos, 0x80), -EBADMSG);
		}
		memcpy(buf, one, sizeof(buf));          /* the other version's size */
		buf[6] = 0x00;
		buf[7] = v == 1 ? 0x04 : 0x01;
		CHECK_EQ_INT(ekmfs_header_parse(buf, len, &h), -EBADMSG);
		/* 5. reserved bytes of the header. */
		for (int pos = 224; pos < (int)len; pos++)
			CHECK_EQ_INT(parse_with(two, len, pos, 0x01), -EBADMSG);
		/* 6. a slot's reserved bytes. */
		for (int s = 0; s < 2; s++)
			for (int pos = 76; pos < 96; pos++)
				CHECK_EQ_INT(parse_with(two, len, (int)ekmfs_slot_offset(s) + pos,
							0x40), -EBADMSG);
		/* 7. an empty slot (seq 0) with any nonzero byte. */
		for (int pos = 8; pos < 96; pos++)
			CHECK_EQ_INT(parse_with(one, len, (int)ekmfs_slot_offset(1) + pos, 0x01),
				     -EBADMSG);
		memcpy(buf, two, sizeof(buf));          /* an in-use slot's seq cleared */
		memset(buf + ekmfs_slot_offset(0), 0, 8);
		CHECK_EQ_INT(ekmfs_header_parse(buf, len, &h), -EBADMSG);
		/* 8. both slots empty. */
		memcpy(buf, one, sizeof(buf));
		memset(buf + ekmfs_slot_offset(0), 0, EKMFS_SLOT_SIZE);
		CHECK_EQ_INT(ekmfs_header_parse(buf, len, &h), -EBADMSG);
		/* 9. both in use with the same seq (5 and 6 -> 6 and 6). */
		CHECK_EQ_INT(parse_with(two, len, (int)ekmfs_slot_offset(0), 5 ^ 6), -EBADMSG);
		/* A slot caught between its two writes (seq, tenant 0) parses. */
		memcpy(buf, one, sizeof(buf));
		buf[ekmfs_slot_offset(1)] = 9;
		CHECK_EQ_INT(ekmfs_header_parse(buf, len, &h), 0);
		CHECK_EQ_INT(h.slot[1].seq, 9);
		CHECK_EQ_INT(ekmfs_header_owner_slot(&h), 0);
	}
	/* Version 1: the bytes after its 256 are not its header. */
	make_header(one, 1, 0);
	memset(one + 256, 0x5a, 256);
	CHECK_EQ_INT(ekmfs_header_parse(one, EKMFS_HEADER_PARSE_SIZE, &h), 0);
	/* A v1 header claiming version 2 is a truncated v2 header. */
	CHECK_EQ_INT(parse_with(one, 256, 4, 1 ^ 2), -EBADMSG);
	/* Not an ekmfs file at all. */
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(ekmfs_header_parse(buf, sizeof(buf), &h), -EPROTO);
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ_INT(ekmfs_header_parse(buf, sizeof(buf), &h), -EPROTO);
}

/* Alter one byte of a header three ways: parsing must fail, or some slot
 * in use must fail to unwrap with its KEK (a slot that was empty, with any
 * KEK). Returns whether the alteration was caught; *which_ok counts the
 * slots that still unwrap. */
static bool altered_caught(const uint8_t *base, int v, int pos, uint8_t xor,
			   const uint8_t *const keks[2], int *which_ok)
{
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE], dek[32];
	struct ekmfs_header h;
	bool caught = false;
	int rc;

	memcpy(buf, base, sizeof(buf));
	buf[pos] ^= xor;
	*which_ok = 0;
	rc = ekmfs_header_parse(buf, header_len(v), &h);
	if (rc < 0) {
		CHECK(rc == -EBADMSG || rc == -EPROTO);
		return true;
	}
	for (int s = 0; s < 2; s++) {
		if (h.slot[s].seq == 0)
			continue;
		rc = ekmfs_slot_unwrap(&h, s, keks[s] ? keks[s] : kek1, dek);
		if (rc == 0)
			(*which_ok)++;
		else
			caught = true;
	}
	return caught;
}

/* Every byte of the header is checked by the parser or authenticated by
 * the slots: altering any one byte fails to parse or fails an unwrap. A
 * byte of a slot fails that slot only; a byte of the prefix fails both. */
static void test_every_byte_bound(void)
{
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	const uint8_t *const two_keks[2] = { kek1, kek2 }, *const one_kek[2] = { kek1, NULL };
	uint8_t base[EKMFS_HEADER_PARSE_SIZE];

	for (int v = 1; v <= 2; v++)
		for (int two = 0; two <= 1; two++) {
			make_header(base, v, two);
			for (int pos = 0; pos < (int)header_len(v); pos++)
				for (size_t f = 0; f < sizeof(flips); f++) {
					int ok;
					bool caught = altered_caught(base, v, pos, flips[f],
								     two ? two_keks : one_kek, &ok);

					if (!caught)
						fprintf(stderr, "v%d%s: byte %d ^ %#x not caught\n",
							v, two ? " two slots" : "", pos, flips[f]);
					CHECK(caught);
					if (pos < EKMFS_HEADER_PREFIX_SIZE)
						CHECK_EQ_INT(ok, 0);
					else if (two)
						CHECK(ok <= 1);
				}
		}
}

/* ---- 4. key slots ---- */

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
	CHECK(all_zero(dek, 32));                                   /* wiped */

	t = h;
	t.file_id[15] ^= 1;
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.version = EKMFS_FORMAT_V1;    /* the version is in the prefix */
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), -EBADMSG);
	t = h;
	t.flags = 1;
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

	/* A version 1 slot does not open under the version 2 prefix: the
	 * upgrade wraps the slots again. */
	t = h;
	t.version = EKMFS_FORMAT_V1;
	CHECK_EQ_INT(ekmfs_slot_wrap(&t, 0, 5, 3, 9, kek1, dek1, nonce1), 0);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&t, 0, kek1, dek), 0);
	t.version = EKMFS_FORMAT_V2;
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
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE], dek[32];
	struct ekmfs_header h;
	int fallback;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fallback = 99;
		ekmfs_header_init(&h, id1);
		h.slot[0].seq = cases[i].s0;
		h.slot[1].seq = cases[i].s1;
		CHECK_EQ_INT(ekmfs_header_newest_slot(&h, &fallback), cases[i].newest);
		CHECK_EQ_INT(fallback, cases[i].fallback);
	}

	/* Rotation in the header: slot 1 gets seq 6 under kek2 and becomes
	 * the newest; slot 0 remains the fallback until cleared. */
	make_header(buf, 2, 1);
	CHECK_EQ_INT(ekmfs_header_parse(buf, sizeof(buf), &h), 0);
	CHECK_EQ_INT(ekmfs_header_newest_slot(&h, &fallback), 1);
	CHECK_EQ_INT(fallback, 0);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&h, 1, kek2, dek), 0);
	CHECK_MEM(dek, dek1, 32);
	CHECK_EQ_INT(ekmfs_slot_unwrap(&h, 0, kek1, dek), 0);
	CHECK_MEM(dek, dek1, 32);
	ekmfs_slot_clear(&h, 0);
	ekmfs_header_serialize(&h, buf);
	CHECK_EQ_INT(ekmfs_header_parse(buf, sizeof(buf), &h), 0);
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

/* ---- 5. state records ---- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The MAC of a record by FORMAT.md's layout, computed here with the MAC
 * primitive: HMAC-SHA256(state key, "ekmfs-v2-state" ‖ file id ‖ bytes
 * 0..223), into bytes 224..255. Records built with it have a correct MAC,
 * so what the parser rejects it rejects for its rules. */
static void remac(uint8_t rec[EKMFS_STATE_SIZE], const uint8_t key[32], const uint8_t id[16])
{
	struct ekmfs_mac_part parts[3] = {
		{ "ekmfs-v2-state", 14 }, { id, 16 }, { rec, 224 },
	};

	CHECK_EQ_INT(ekmfs_hmac_sha256(key, 32, parts, 3, rec + 224), 0);
}

/* A raw record: the fields at FORMAT.md's offsets, nholes runs and nsalts
 * salts stored as given (counts as given, too), then the MAC. */
static void raw_record(uint8_t rec[EKMFS_STATE_SIZE], const uint8_t key[32],
		       const uint8_t id[16], uint64_t seq, uint64_t size, uint64_t journal,
		       const struct ekmfs_hole *holes, unsigned nholes,
		       const uint8_t *salts, unsigned nsalts)
{
	memset(rec, 0, EKMFS_STATE_SIZE);
	put_le(rec, seq, 8);
	put_le(rec + 8, size, 8);
	put_le(rec + 16, journal, 8);
	put_le(rec + 24, nholes, 2);
	rec[26] = (uint8_t)nsalts;
	for (unsigned i = 0; i < nholes && i < EKMFS_STATE_HOLES; i++) {
		put_le(rec + 32 + 16 * i, holes[i].first, 8);
		put_le(rec + 40 + 16 * i, holes[i].count, 8);
	}
	for (unsigned i = 0; i < nsalts && i < EKMFS_STATE_SALTS; i++)
		memcpy(rec + 176 + 12 * i, salts + 12 * i, 12);
	remac(rec, key, id);
}

static const uint8_t skey1[32] = { 0x5e, 0xc7, 0x01 };
static const uint8_t salts4[4 * 12] = { 1, [12] = 2, [24] = 3, [36] = 4, [47] = 0xff };

static int parse_raw(const uint8_t rec[EKMFS_STATE_SIZE])
{
	struct ekmfs_state st;
	int rc;

	memset(&st, 0xa5, sizeof(st));
	rc = ekmfs_state_parse(rec, skey1, id1, &st);
	if (rc < 0) {           /* st is zeroed on failure */
		CHECK_EQ_INT(st.seq, 0);
		CHECK_EQ_INT(st.size, 0);
		CHECK_EQ_INT(st.nholes, 0);
		CHECK_EQ_INT(st.nsalts, 0);
	}
	return rc;
}

/* The layout written out by hand gives the vectors' records. */
static void test_state_layout(void)
{
	static const struct ekmfs_hole d_holes[3] = { { 0, 1 }, { 2, 2 }, { 5, 1 } };
	const uint8_t *c_id = vec("c_file_id", 16), *c_key = vec("c_state_key", 32);
	const uint8_t *c_salt = vec("c_salt", 12), *c_rec = vec("c_state", 256);
	const uint8_t *d_id = vec("d_file_id", 16), *d_key = vec("d_state_key", 32);
	const uint8_t *d_salt0 = vec("d_salt0", 12), *d_salt1 = vec("d_salt1", 12);
	const uint8_t *d_rec = vec("d_state", 256);
	uint8_t rec[EKMFS_STATE_SIZE], salts[24];
	struct ekmfs_state st;

	if (!c_id || !c_key || !c_salt || !c_rec || !d_id || !d_key || !d_salt0 || !d_salt1 ||
	    !d_rec)
		return;
	raw_record(rec, c_key, c_id, 1, 4196, 0, NULL, 0, c_salt, 1);
	CHECK_MEM(rec, c_rec, EKMFS_STATE_SIZE);
	memcpy(salts, d_salt0, 12);
	memcpy(salts + 12, d_salt1, 12);
	raw_record(rec, d_key, d_id, 7, D_SIZE, 3, d_holes, 3, salts, 2);
	CHECK_MEM(rec, d_rec, EKMFS_STATE_SIZE);

	/* An empty record is 256 zero bytes, both ways. */
	memset(&st, 0, sizeof(st));
	memset(rec, 0xee, sizeof(rec));
	CHECK_EQ_INT(ekmfs_state_serialize(&st, skey1, id1, rec), 0);
	CHECK(all_zero(rec, sizeof(rec)));
	memset(&st, 0xa5, sizeof(st));
	CHECK_EQ_INT(ekmfs_state_parse(rec, skey1, id1, &st), 0);
	CHECK_EQ_INT(st.seq, 0);
	CHECK_EQ_INT(st.size, 0);
	CHECK_EQ_INT(st.nholes, 0);
}

/* A full record: 9 runs, 4 salts, every field nonzero. */
static void full_state(struct ekmfs_state *st)
{
	memset(st, 0, sizeof(*st));
	st->seq = 0x0102030405060708ull;
	st->size = 40 * (uint64_t)EKMFS_BLOCK_SIZE + 17;   /* 41 blocks */
	st->journal = 0x1112131415161718ull;
	for (int i = 0; i < EKMFS_STATE_HOLES; i++)
		CHECK_EQ_INT(ekmfs_state_add_hole(st, 1 + 4 * (uint64_t)i, 1 + (uint64_t)(i % 3)),
			     0);
	for (int i = 0; i < EKMFS_STATE_SALTS; i++)
		CHECK_EQ_INT(ekmfs_state_add_salt(st, salts4 + 12 * i), 0);
}

/* Every byte of a record is checked or the MAC. */
static void test_state_every_byte(void)
{
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	const uint8_t *recs[3] = { vec("c_state", 256), vec("d_state", 256), NULL };
	const uint8_t *keys[3] = { vec("c_state_key", 32), vec("d_state_key", 32), skey1 };
	const uint8_t *ids[3] = { vec("c_file_id", 16), vec("d_file_id", 16), id1 };
	uint8_t full[EKMFS_STATE_SIZE], buf[EKMFS_STATE_SIZE];
	struct ekmfs_state st;

	full_state(&st);
	CHECK_EQ_INT(st.nholes, 9);
	CHECK_EQ_INT(ekmfs_state_serialize(&st, skey1, id1, full), 0);
	recs[2] = full;
	for (int r = 0; r < 3; r++) {
		if (!recs[r] || !keys[r] || !ids[r])
			continue;
		CHECK_EQ_INT(ekmfs_state_parse(recs[r], keys[r], ids[r], &st), 0);
		for (int pos = 0; pos < EKMFS_STATE_SIZE; pos++)
			for (size_t f = 0; f < sizeof(flips); f++) {
				int rc;

				memcpy(buf, recs[r], sizeof(buf));
				buf[pos] ^= flips[f];
				memset(&st, 0xa5, sizeof(st));
				rc = ekmfs_state_parse(buf, keys[r], ids[r], &st);
				if (rc != -EBADMSG)
					fprintf(stderr, "record %d: byte %d ^ %#x: %d\n", r, pos,
						flips[f], rc);
				CHECK_EQ_INT(rc, -EBADMSG);
				CHECK_EQ_INT(st.seq, 0);
				CHECK_EQ_INT(st.size, 0);
			}
	}
}

/* The MAC binds the file id and the key: a record moved into another file,
 * or read with another DEK's key, does not verify. */
static void test_state_binding(void)
{
	uint8_t rec[EKMFS_STATE_SIZE], key1[32], key2[32];
	struct ekmfs_state st, q;

	CHECK_EQ_INT(ekmfs_state_key(dek1, key1), 0);
	CHECK_EQ_INT(ekmfs_state_key(dek2, key2), 0);
	CHECK(memcmp(key1, key2, 32) != 0);
	CHECK(memcmp(key1, dek1, 32) != 0);
	full_state(&st);
	CHECK_EQ_INT(ekmfs_state_serialize(&st, key1, id1, rec), 0);
	CHECK_EQ_INT(ekmfs_state_parse(rec, key1, id1, &q), 0);
	CHECK(ekmfs_state_same(&st, &q));
	CHECK_EQ_INT(q.seq, st.seq);
	CHECK_EQ_INT(ekmfs_state_parse(rec, key1, id2, &q), -EBADMSG);
	CHECK_EQ_INT(ekmfs_state_parse(rec, key2, id1, &q), -EBADMSG);
	CHECK_EQ_INT(ekmfs_state_parse(rec, dek1, id1, &q), -EBADMSG);

	const uint8_t *c_rec = vec("c_state", 256), *c_key = vec("c_state_key", 32);
	const uint8_t *d_id = vec("d_file_id", 16);
	if (c_rec && c_key && d_id)
		CHECK_EQ_INT(ekmfs_state_parse(c_rec, c_key, d_id, &q), -EBADMSG);
}

/* FORMAT.md's validity rules, each broken alone in a record whose MAC is
 * correct: the parser must check the rules, not only the MAC. */
static void test_state_rules(void)
{
	const uint64_t size21 = 20 * (uint64_t)EKMFS_BLOCK_SIZE + 7;   /* 21 blocks */
	struct ekmfs_hole h2[2] = { { 1, 2 }, { 5, 1 } }, h10[10];
	uint8_t rec[EKMFS_STATE_SIZE], salts[4 * 12];
	struct ekmfs_state st;

	/* The base record is valid. */
	raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), 0);

	/* Holes: unsorted, overlapping, adjacent. */
	struct ekmfs_hole unsorted[2] = { { 5, 1 }, { 1, 2 } };
	struct ekmfs_hole overlap[2] = { { 1, 3 }, { 3, 2 } };
	struct ekmfs_hole same[2] = { { 1, 2 }, { 1, 2 } };
	struct ekmfs_hole adjacent[2] = { { 1, 2 }, { 3, 1 } };
	struct ekmfs_hole gap1[2] = { { 1, 2 }, { 4, 1 } };
	raw_record(rec, skey1, id1, 5, size21, 2, unsorted, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, overlap, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, same, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, adjacent, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, gap1, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), 0);

	/* Beyond the size: first + count <= ceil(size / 4096). */
	struct ekmfs_hole last[1] = { { 20, 1 } }, beyond[1] = { { 20, 2 } };
	struct ekmfs_hole past[1] = { { 21, 1 } }, all[1] = { { 0, 21 } };
	struct ekmfs_hole wrap[1] = { { UINT64_MAX - 1, 3 } }, zero_run[1] = { { 0, 1 } };
	raw_record(rec, skey1, id1, 5, size21, 2, last, 1, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), 0);        /* the partial last block may be a hole */
	raw_record(rec, skey1, id1, 5, size21, 2, all, 1, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), 0);
	raw_record(rec, skey1, id1, 5, size21, 2, beyond, 1, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, past, 1, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, 20 * (uint64_t)EKMFS_BLOCK_SIZE, 2, last, 1, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);  /* size a multiple: 20 blocks */
	raw_record(rec, skey1, id1, 5, EKMFS_MAX_PLAIN, 2, wrap, 1, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);  /* first + count wraps around */
	raw_record(rec, skey1, id1, 5, 0, 2, zero_run, 1, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);  /* an empty file has no blocks */

	/* Count 0; more than 9 runs; nholes above the runs written. */
	struct ekmfs_hole count0[2] = { { 1, 2 }, { 5, 0 } };
	raw_record(rec, skey1, id1, 5, size21, 2, count0, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	for (int i = 0; i < 10; i++)
		h10[i] = (struct ekmfs_hole){ 2 * (uint64_t)i, 1 };
	raw_record(rec, skey1, id1, 5, size21, 2, h10, 9, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), 0);        /* 9 runs: the most */
	raw_record(rec, skey1, id1, 5, size21, 2, h10, 10, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, h10, 0xffff, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts4, 2);
	put_le(rec + 24, 3, 2);                 /* nholes 3, third run zero */
	remac(rec, skey1, id1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);

	/* Unused runs must be zero: any byte of runs 2..8. */
	for (int pos = 32 + 2 * 16; pos < 176; pos += 5) {
		raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts4, 2);
		rec[pos] = 1;
		remac(rec, skey1, id1);
		CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	}

	/* Salts: repeated, more than 4, unused ones nonzero. */
	memcpy(salts, salts4, sizeof(salts));
	memcpy(salts + 24, salts, 12);          /* salt 2 = salt 0 */
	raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts, 3);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts4, 4);
	CHECK_EQ_INT(parse_raw(rec), 0);        /* 4 salts: the most */
	raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts4, 4);
	rec[26] = 5;
	remac(rec, skey1, id1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	rec[26] = 0xff;
	remac(rec, skey1, id1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	for (int pos = 176 + 2 * 12; pos < 224; pos += 3) {
		raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts4, 2);
		rec[pos] = 0x40;
		remac(rec, skey1, id1);
		CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	}

	/* Reserved bytes 27..31. */
	for (int pos = 27; pos < 32; pos++) {
		raw_record(rec, skey1, id1, 5, size21, 2, h2, 2, salts4, 2);
		rec[pos] = 0x01;
		remac(rec, skey1, id1);
		CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	}

	/* Seq 0 is an empty record: all 256 bytes zero, the MAC included. */
	raw_record(rec, skey1, id1, 0, size21, 2, h2, 2, salts4, 2);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 0, 0, 0, NULL, 0, NULL, 0);
	CHECK(!all_zero(rec + 224, 32));        /* zero fields, a correct MAC */
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	memset(rec, 0, sizeof(rec));
	rec[255] = 1;                           /* one byte of MAC */
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);

	/* The size: at most 9134171146749792256 (FORMAT.md: the largest
	 * whole-block size whose layout fits in off_t); the sizes the size
	 * rule reaches above it, up to V2_LARGEST_BY_RULE, are refused. */
	CHECK(EKMFS_MAX_PLAIN == 9134171146749792256ull);
	raw_record(rec, skey1, id1, 5, EKMFS_MAX_PLAIN, 2, NULL, 0, salts4, 1);
	CHECK_EQ_INT(parse_raw(rec), 0);
	raw_record(rec, skey1, id1, 5, EKMFS_MAX_PLAIN + 1, 2, NULL, 0, salts4, 1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, V2_LARGEST_BY_RULE, 2, NULL, 0, salts4, 1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, UINT64_MAX, 2, NULL, 0, salts4, 1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, (uint64_t)INT64_MAX, 2, NULL, 0, salts4, 1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);
	raw_record(rec, skey1, id1, 5, V2_LARGEST_BY_RULE + 1, 2, NULL, 0, salts4, 1);
	CHECK_EQ_INT(parse_raw(rec), -EBADMSG);

	/* Valid extremes. */
	raw_record(rec, skey1, id1, UINT64_MAX, 0, UINT64_MAX, NULL, 0, NULL, 0);
	CHECK_EQ_INT(parse_raw(rec), 0);
	memset(&st, 0, sizeof(st));
	CHECK_EQ_INT(ekmfs_state_parse(rec, skey1, id1, &st), 0);
	CHECK(st.seq == UINT64_MAX && st.journal == UINT64_MAX && st.size == 0);
}

static void test_state_peek(void)
{
	const uint8_t *d_rec = vec("d_state", 256);
	uint8_t rec[EKMFS_STATE_SIZE];
	struct ekmfs_state st;

	if (!d_rec)
		return;
	/* Without the key, and even with a wrong MAC: the fields as written. */
	memcpy(rec, d_rec, sizeof(rec));
	rec[255] ^= 1;
	memset(&st, 0xa5, sizeof(st));
	ekmfs_state_peek(rec, &st);
	CHECK_EQ_INT(st.seq, 7);
	CHECK_EQ_INT(st.size, D_SIZE);
	CHECK_EQ_INT(st.journal, 3);
	CHECK_EQ_INT(st.nholes, 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(st.holes[i].first, i == 0 ? 0 : i == 1 ? 2 : 5);
		CHECK_EQ_INT(st.holes[i].count, i == 1 ? 2 : 1);
	}
	for (int i = 3; i < EKMFS_STATE_HOLES; i++)
		CHECK(st.holes[i].first == 0 && st.holes[i].count == 0);
	/* (The salts are not peeked: its caller, sealing without the key,
	 * needs the seq, the size and the holes.) */
	memset(rec, 0, sizeof(rec));
	ekmfs_state_peek(rec, &st);
	CHECK_EQ_INT(st.seq, 0);
	CHECK_EQ_INT(st.size, 0);
	CHECK_EQ_INT(st.nholes, 0);
	/* An impossible run count is not passed on as such. */
	memcpy(rec, d_rec, sizeof(rec));
	put_le(rec + 24, 0xffff, 2);
	ekmfs_state_peek(rec, &st);
	CHECK(st.nholes <= EKMFS_STATE_HOLES);
}

/* ---- 6. hole runs and salts ---- */

/* Field by field, every run and salt slot included (not memcmp: padding). */
static bool state_equal(const struct ekmfs_state *a, const struct ekmfs_state *b)
{
	if (a->seq != b->seq || a->size != b->size || a->journal != b->journal ||
	    a->nholes != b->nholes || a->nsalts != b->nsalts)
		return false;
	for (int i = 0; i < EKMFS_STATE_HOLES; i++)
		if (a->holes[i].first != b->holes[i].first || a->holes[i].count != b->holes[i].count)
			return false;
	return memcmp(a->salts, b->salts, sizeof(a->salts)) == 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

#define MODEL_BLOCKS 160

static int model_runs(const bool *m)
{
	int runs = 0;

	for (int i = 0; i < MODEL_BLOCKS; i++)
		runs += m[i] && (i == 0 || !m[i - 1]);
	return runs;
}

/* The state's runs say exactly what the bitmap says, in canonical form
 * (sorted, a gap between runs, nothing unused set), and serialise into a
 * valid record. */
static void check_against_model(const struct ekmfs_state *st, const bool *m)
{
	uint8_t rec[EKMFS_STATE_SIZE];
	struct ekmfs_state q;

	CHECK_EQ_INT(st->nholes, model_runs(m));
	for (int i = 0; i < MODEL_BLOCKS + 3; i++)
		if (ekmfs_state_is_hole(st, (uint64_t)i) != (i < MODEL_BLOCKS && m[i])) {
			fprintf(stderr, "block %d: is_hole %d, model %d\n", i,
				ekmfs_state_is_hole(st, (uint64_t)i), i < MODEL_BLOCKS && m[i]);
			CHECK(0);
			break;
		}
	for (int i = st->nholes; i < EKMFS_STATE_HOLES; i++)
		CHECK(st->holes[i].first == 0 && st->holes[i].count == 0);
	CHECK_EQ_INT(ekmfs_state_serialize(st, skey1, id1, rec), 0);
	CHECK_EQ_INT(ekmfs_state_parse(rec, skey1, id1, &q), 0);
	CHECK(ekmfs_state_same(st, &q));
}

/* Thousands of random add/fill/cut operations against a bitmap: each call
 * does what the bitmap does, or returns -ENOSPC exactly when the result
 * would need a tenth run, and then leaves the state as it was. */
static void test_hole_model(void)
{
	bool m[MODEL_BLOCKS], next[MODEL_BLOCKS];
	struct ekmfs_state st, before;
	int nospc = 0, done = 0;

	memset(m, 0, sizeof(m));
	memset(&st, 0, sizeof(st));
	st.seq = 1;
	st.size = MODEL_BLOCKS * (uint64_t)EKMFS_BLOCK_SIZE - 100;
	for (int op = 0; op < 20000; op++) {
		uint64_t r = rnd(), first = r % MODEL_BLOCKS, count;
		int kind = (int)((r >> 32) % 16), rc;

		count = (r >> 40) % 8 ? 1 + (r >> 48) % 6 : 1 + (r >> 48) % 60;
		if (first + count > MODEL_BLOCKS)
			count = MODEL_BLOCKS - first;
		memcpy(next, m, sizeof(m));
		before = st;
		if (kind == 15) {
			uint64_t n = (r >> 20) % (MODEL_BLOCKS + 1);

			ekmfs_state_cut_holes(&st, n);
			for (uint64_t i = n; i < MODEL_BLOCKS; i++)
				m[i] = false;
			check_against_model(&st, m);
			continue;
		}
		for (uint64_t i = first; i < first + count; i++)
			next[i] = kind < 8;
		if (kind < 8)
			rc = ekmfs_state_add_hole(&st, first, count);
		else
			rc = ekmfs_state_fill_hole(&st, first, count);
		if (model_runs(next) > EKMFS_STATE_HOLES) {
			CHECK_EQ_INT(rc, -ENOSPC);
			CHECK(state_equal(&st, &before));
			nospc++;
		} else {
			CHECK_EQ_INT(rc, 0);
			memcpy(m, next, sizeof(m));
			done++;
		}
		check_against_model(&st, m);
		if (check_failures > 20) {
			fprintf(stderr, "stopping after op %d (%s %llu+%llu)\n", op,
				kind < 8 ? "add" : "fill", (unsigned long long)first,
				(unsigned long long)count);
			return;
		}
	}
	CHECK(nospc > 500);
	CHECK(done > 5000);
}

static void test_hole_edges(void)
{
	struct ekmfs_state st, before;

	/* Nine runs 0,2,..,16; a tenth is -ENOSPC, a merge is not. */
	memset(&st, 0, sizeof(st));
	st.seq = 1;
	st.size = 100 * (uint64_t)EKMFS_BLOCK_SIZE;
	for (uint64_t i = 0; i < 9; i++)
		CHECK_EQ_INT(ekmfs_state_add_hole(&st, 2 * i, 1), 0);
	CHECK_EQ_INT(st.nholes, 9);
	before = st;
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 20, 5), -ENOSPC);
	CHECK(state_equal(&st, &before));
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 18, 1), -ENOSPC);
	CHECK(state_equal(&st, &before));
	CHECK_EQ_INT(ekmfs_state_fill_hole(&st, 20, 5), 0);  /* nothing to fill */
	CHECK(state_equal(&st, &before));
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 17, 1), 0);   /* 16 and 17 merge */
	CHECK_EQ_INT(st.nholes, 9);
	CHECK_EQ_INT(st.holes[8].first, 16);
	CHECK_EQ_INT(st.holes[8].count, 2);
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 1, 1), 0);    /* 0, 1, 2 merge */
	CHECK_EQ_INT(st.nholes, 8);
	CHECK_EQ_INT(st.holes[0].first, 0);
	CHECK_EQ_INT(st.holes[0].count, 3);
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 30, 10), 0);
	CHECK_EQ_INT(st.nholes, 9);
	before = st;
	CHECK_EQ_INT(ekmfs_state_fill_hole(&st, 35, 1), -ENOSPC); /* a split */
	CHECK(state_equal(&st, &before));
	CHECK_EQ_INT(ekmfs_state_fill_hole(&st, 39, 1), 0);   /* a trim */
	CHECK_EQ_INT(st.holes[8].count, 9);
	CHECK_EQ_INT(ekmfs_state_fill_hole(&st, 0, 100), 0);
	CHECK_EQ_INT(st.nholes, 0);

	/* Cutting: runs at or past the end go, a run across it is shortened. */
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 2, 3), 0);
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 10, 10), 0);
	CHECK_EQ_INT(ekmfs_state_add_hole(&st, 30, 1), 0);
	ekmfs_state_cut_holes(&st, 15);
	CHECK_EQ_INT(st.nholes, 2);
	CHECK_EQ_INT(st.holes[1].first, 10);
	CHECK_EQ_INT(st.holes[1].count, 5);
	CHECK(st.holes[2].first == 0 && st.holes[2].count == 0);
	ekmfs_state_cut_holes(&st, 10);
	CHECK_EQ_INT(st.nholes, 1);
	CHECK(st.holes[1].first == 0 && st.holes[1].count == 0);
	ekmfs_state_cut_holes(&st, 0);
	CHECK_EQ_INT(st.nholes, 0);
	CHECK(!ekmfs_state_is_hole(&st, 2));
}

static void test_salts(void)
{
	struct ekmfs_state st, before;
	uint8_t other[12] = { 9, 9, 9 };

	memset(&st, 0, sizeof(st));
	for (int i = 0; i < EKMFS_STATE_SALTS; i++) {
		CHECK(!ekmfs_state_has_salt(&st, salts4 + 12 * i));
		CHECK_EQ_INT(ekmfs_state_add_salt(&st, salts4 + 12 * i), 0);
		CHECK(ekmfs_state_has_salt(&st, salts4 + 12 * i));
		CHECK_EQ_INT(st.nsalts, i + 1);
		/* Adding a salt it has keeps the salts distinct. */
		CHECK_EQ_INT(ekmfs_state_add_salt(&st, salts4), 0);
		CHECK_EQ_INT(st.nsalts, i + 1);
	}
	CHECK(!ekmfs_state_has_salt(&st, other));
	before = st;
	CHECK_EQ_INT(ekmfs_state_add_salt(&st, other), -ENOSPC);
	CHECK(state_equal(&st, &before));
	CHECK(!ekmfs_state_has_salt(&st, other));
	for (int i = 0; i < EKMFS_STATE_SALTS; i++)
		CHECK_MEM(st.salts[i], salts4 + 12 * i, 12);
}

static void test_state_same(void)
{
	struct ekmfs_state a, b;

	full_state(&a);
	b = a;
	CHECK(ekmfs_state_same(&a, &b));
	b.seq++;
	CHECK(ekmfs_state_same(&a, &b));        /* seq aside */
	b = a;
	b.size--;
	CHECK(!ekmfs_state_same(&a, &b));
	b = a;
	b.holes[3].count++;
	CHECK(!ekmfs_state_same(&a, &b));
	b = a;
	CHECK_EQ_INT(ekmfs_state_fill_hole(&b, 1, 1), 0);
	CHECK(!ekmfs_state_same(&a, &b));
	b = a;
	b.journal++;
	CHECK(!ekmfs_state_same(&a, &b));
	b = a;
	b.salts[3][0] ^= 1;
	CHECK(!ekmfs_state_same(&a, &b));
}

/* ---- 7. content blocks ---- */

/* Round trips of both versions, one-shot and in a keyed session (nonce1:
 * 24 bytes; a v1 block takes its first 12). */
static void test_block_round_trip(void)
{
	static uint8_t pt[EKMFS_BLOCK_SIZE], out[EKMFS_CBLOCK_SIZE_MAX], back[EKMFS_BLOCK_SIZE];
	static const size_t lens[] = { 1, 2, 100, 4095, 4096 };
	uint8_t kx[32];

	for (size_t k = 0; k < sizeof(pt); k++)
		pt[k] = (uint8_t)(k * 13 + 5);
	CHECK_EQ_INT(ekmfs_xaes_derive(dek1, nonce1, kx), 0);
	for (int v = 0; v < 2; v++) {
		const struct ekmfs_layout *l = layouts[v];
		struct ekmfs_aead_session *s = ekmfs_aead_begin(v == 0 ? dek1 : kx);

		CHECK(s != NULL);
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			size_t len = lens[i], stored = len + l->overhead;

			memset(out, 0, sizeof(out));
			CHECK_EQ_INT(ekmfs_block_seal(l, dek1, id1, 42, nonce1, pt, len, out), 0);
			CHECK_MEM(out, nonce1, l->nonce_size);  /* the full nonce leads */
			CHECK(all_zero(out + stored, sizeof(out) - stored));
			CHECK_EQ_INT(ekmfs_block_open(l, dek1, id1, 42, out, stored, back), 0);
			CHECK_MEM(back, pt, len);
			if (!s)
				continue;
			memset(back, 0, sizeof(back));
			CHECK_EQ_INT(ekmfs_block_open_s(l, s, id1, 42, out, stored, back), 0);
			CHECK_MEM(back, pt, len);
			CHECK_EQ_INT(ekmfs_block_seal_s(l, s, id1, 43, nonce1, pt, len, out), 0);
			CHECK_EQ_INT(ekmfs_block_open(l, dek1, id1, 43, out, stored, back), 0);
			CHECK_MEM(back, pt, len);
		}
		ekmfs_aead_end(s);
	}
}

/* Open a block that must fail with -EBADMSG and leave pt wiped. */
static void expect_badmsg(const struct ekmfs_layout *l, struct ekmfs_aead_session *s,
			  const uint8_t *dek, const uint8_t *id, uint64_t index,
			  const uint8_t *in, size_t in_len, const char *what, size_t pos)
{
	static uint8_t pt[EKMFS_BLOCK_SIZE];
	size_t n = in_len > l->overhead ? in_len - l->overhead : 0;
	int rc;

	memset(pt, 0x5a, sizeof(pt));
	rc = s ? ekmfs_block_open_s(l, s, id, index, in, in_len, pt)
	       : ekmfs_block_open(l, dek, id, index, in, in_len, pt);
	if (rc != -EBADMSG)
		fprintf(stderr, "v%u %s %s at %zu: %d\n", l->version, s ? "session" : "one-shot",
			what, pos, rc);
	CHECK_EQ_INT(rc, -EBADMSG);
	CHECK(all_zero(pt, n));
}

/* Tampering with any region (salt, n, ciphertext, tag), another index,
 * another file id, another DEK, a cut or an extension: -EBADMSG, output
 * wiped. A session open takes its key from the caller, who derives it from
 * the stored salt: so a changed salt is checked with the key it selects. */
static void test_block_tamper(void)
{
	static uint8_t pt[EKMFS_BLOCK_SIZE], out[EKMFS_CBLOCK_SIZE_MAX + 1];
	static uint8_t back[EKMFS_BLOCK_SIZE];
	static const size_t lens[] = { 1, 37, 4095, 4096 };

	for (size_t k = 0; k < sizeof(pt); k++)
		pt[k] = (uint8_t)(k * 7 + 3);
	for (int v = 0; v < 2; v++) {
		const struct ekmfs_layout *l = layouts[v];

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			size_t len = lens[i], stored = len + l->overhead;
			size_t step = stored > 200 ? 97 : 1;

			CHECK_EQ_INT(ekmfs_block_seal(l, dek1, id1, 42, nonce1, pt, len, out), 0);
			expect_badmsg(l, NULL, dek1, id1, 41, out, stored, "index 41", 0);
			for (int bit = 0; bit < 64; bit++)
				expect_badmsg(l, NULL, dek1, id1, 42 ^ (1ull << bit), out, stored,
					      "index bit", (size_t)bit);
			expect_badmsg(l, NULL, dek1, id2, 42, out, stored, "file id", 0);
			expect_badmsg(l, NULL, dek2, id1, 42, out, stored, "DEK", 0);
			if (len > 1)    /* a block cut short is not the shorter block */
				expect_badmsg(l, NULL, dek1, id1, 42, out, stored - 1, "cut", 0);
			if (len < EKMFS_BLOCK_SIZE) {
				out[stored] = 0;
				expect_badmsg(l, NULL, dek1, id1, 42, out, stored + 1, "grown", 0);
			}
			for (size_t pos = 0; pos < stored; pos++) {
				/* every byte of the nonce and tag, a sample of the rest */
				if (pos >= l->nonce_size && pos < stored - 16 && pos % step)
					continue;
				for (int x = 0; x < 2; x++) {
					uint8_t flip = x ? 0xff : 0x04, kx[32];
					struct ekmfs_aead_session *s;

					out[pos] ^= flip;
					expect_badmsg(l, NULL, dek1, id1, 42, out, stored, "byte",
						      pos);
					if (v == 0)
						s = ekmfs_aead_begin(dek1);
					else if (ekmfs_xaes_derive(dek1, out, kx) == 0)
						s = ekmfs_aead_begin(kx);
					else
						s = NULL;
					CHECK(s != NULL);
					if (s)
						expect_badmsg(l, s, dek1, id1, 42, out, stored,
							      "byte", pos);
					if (s)
						ekmfs_aead_end(s);
					out[pos] ^= flip;
				}
			}
			CHECK_EQ_INT(ekmfs_block_open(l, dek1, id1, 42, out, stored, back), 0);
			CHECK_MEM(back, pt, len);
		}
		/* All-zero storage (a hole) never opens. */
		memset(out, 0, sizeof(out));
		expect_badmsg(l, NULL, dek1, id1, 0, out, l->cblock_size, "zeros", 0);
	}
	/* A v1 block is not a v2 block, nor the reverse. */
	CHECK_EQ_INT(ekmfs_block_seal(&ekmfs_layout_v1, dek1, id1, 0, nonce1, pt, 100, out), 0);
	expect_badmsg(&ekmfs_layout_v2, NULL, dek1, id1, 0, out, 128, "v1 as v2", 0);
	CHECK_EQ_INT(ekmfs_block_seal(&ekmfs_layout_v2, dek1, id1, 0, nonce1, pt, 100, out), 0);
	expect_badmsg(&ekmfs_layout_v1, NULL, dek1, id1, 0, out, 140, "v2 as v1", 0);
}

static void test_block_lengths(void)
{
	static uint8_t pt[EKMFS_BLOCK_SIZE + 1], out[EKMFS_CBLOCK_SIZE_MAX + 1];
	uint8_t kx[32];

	CHECK_EQ_INT(ekmfs_xaes_derive(dek1, nonce1, kx), 0);
	for (int v = 0; v < 2; v++) {
		const struct ekmfs_layout *l = layouts[v];
		struct ekmfs_aead_session *s = ekmfs_aead_begin(v == 0 ? dek1 : kx);
		static const size_t bad_in[] = { 0, 1, 28, 40, 4125, 4136, 4137 };

		CHECK(s != NULL);
		CHECK_EQ_INT(ekmfs_block_seal(l, dek1, id1, 0, nonce1, pt, 0, out), -EINVAL);
		CHECK_EQ_INT(ekmfs_block_seal(l, dek1, id1, 0, nonce1, pt, 4097, out), -EINVAL);
		CHECK_EQ_INT(ekmfs_block_seal_s(l, s, id1, 0, nonce1, pt, 0, out), -EINVAL);
		CHECK_EQ_INT(ekmfs_block_seal_s(l, s, id1, 0, nonce1, pt, 4097, out), -EINVAL);
		for (size_t i = 0; i < sizeof(bad_in) / sizeof(bad_in[0]); i++) {
			size_t n = bad_in[i];

			if (n > l->overhead && n <= l->cblock_size)
				continue;       /* a possible length for this version */
			CHECK_EQ_INT(ekmfs_block_open(l, dek1, id1, 0, out, n, pt), -EINVAL);
			CHECK_EQ_INT(ekmfs_block_open_s(l, s, id1, 0, out, n, pt), -EINVAL);
		}
		CHECK_EQ_INT(ekmfs_block_open(l, dek1, id1, 0, out, l->overhead, pt), -EINVAL);
		CHECK_EQ_INT(ekmfs_block_open(l, dek1, id1, 0, out, l->cblock_size + 1, pt),
			     -EINVAL);
		ekmfs_aead_end(s);
	}
}

/* ---- 8. journal ---- */

/* A journal header by FORMAT.md's layout with its correct MAC. */
static void raw_journal_header(uint8_t out[64], const uint8_t key[32], const char magic[4],
			       uint16_t version, uint16_t zero, const uint8_t id[16],
			       uint64_t generation)
{
	struct ekmfs_mac_part parts[2] = { { "ekmfs-v2-journal", 16 }, { out, 32 } };

	memcpy(out, magic, 4);
	put_le(out + 4, version, 2);
	put_le(out + 6, zero, 2);
	memcpy(out + 8, id, 16);
	put_le(out + 24, generation, 8);
	CHECK_EQ_INT(ekmfs_hmac_sha256(key, 32, parts, 2, out + 32), 0);
}

static void test_journal_header(void)
{
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	const uint8_t *e_hdr = vec("e_journal_header", 64), *d_id = vec("d_file_id", 16);
	const uint8_t *d_key = vec("d_state_key", 32);
	struct ekmfs_journal_header jh, jp;
	uint8_t buf[64], raw[64];

	if (e_hdr && d_id && d_key) {
		raw_journal_header(raw, d_key, "EKMJ", 1, 0, d_id, 4);
		CHECK_MEM(raw, e_hdr, 64);
	}
	memcpy(jh.file_id, id1, 16);
	for (uint64_t g = 1; g; g = g < 5 ? g + 1 : (g == 5 ? UINT64_MAX : 0)) {
		jh.generation = g;
		CHECK_EQ_INT(ekmfs_journal_header_serialize(&jh, skey1, buf), 0);
		raw_journal_header(raw, skey1, "EKMJ", 1, 0, id1, g);
		CHECK_MEM(buf, raw, 64);
		CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), 0);
		CHECK(jp.generation == g);
		CHECK_MEM(jp.file_id, id1, 16);
	}

	/* Every byte bound, and the wrong key. */
	jh.generation = 3;
	CHECK_EQ_INT(ekmfs_journal_header_serialize(&jh, skey1, raw), 0);
	for (int pos = 0; pos < 64; pos++)
		for (size_t f = 0; f < sizeof(flips); f++) {
			memcpy(buf, raw, 64);
			buf[pos] ^= flips[f];
			CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), -EBADMSG);
		}
	CHECK_EQ_INT(ekmfs_journal_header_parse(raw, dek1, &jp), -EBADMSG);

	/* Rejected with a correct MAC: magic, version, the zero field,
	 * generation 0. */
	raw_journal_header(buf, skey1, "EKMF", 1, 0, id1, 3);
	CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), -EBADMSG);
	raw_journal_header(buf, skey1, "EKMJ", 2, 0, id1, 3);
	CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), -EBADMSG);
	raw_journal_header(buf, skey1, "EKMJ", 0, 0, id1, 3);
	CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), -EBADMSG);
	raw_journal_header(buf, skey1, "EKMJ", 1, 1, id1, 3);
	CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), -EBADMSG);
	raw_journal_header(buf, skey1, "EKMJ", 1, 0, id1, 0);
	CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), -EBADMSG);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(ekmfs_journal_header_parse(buf, skey1, &jp), -EBADMSG);
}

static void test_journal_record(void)
{
	static const struct { uint64_t index; uint32_t len; } ok[] = {
		{ 0, 41 }, { 6, 1040 }, { 7, 4136 }, { 123456789, 4095 + 40 },
		{ UINT64_MAX / 4096, 4136 },
	};
	uint8_t buf[EKMFS_JOURNAL_REC_SIZE], good[EKMFS_JOURNAL_REC_SIZE];
	uint64_t index;
	uint32_t len;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ekmfs_journal_rec_serialize(ok[i].index, ok[i].len, buf);
		CHECK(memcmp(buf + 12, "EKMR", 4) == 0);
		CHECK(buf[0] == (uint8_t)ok[i].index && buf[8] == (uint8_t)ok[i].len);
		CHECK_EQ_INT(ekmfs_journal_rec_parse(buf, &index, &len), 0);
		CHECK(index == ok[i].index);
		CHECK_EQ_INT(len, ok[i].len);
	}
	/* The end: an all-zero record header. */
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(ekmfs_journal_rec_parse(buf, &index, &len), -ENODATA);
	/* Impossible lengths, a wrong magic, a torn header. */
	static const uint32_t bad_len[] = { 0, 1, 40, 4137, 8192, UINT32_MAX };
	for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
		ekmfs_journal_rec_serialize(6, 1040, buf);
		put_le(buf + 8, bad_len[i], 4);
		CHECK_EQ_INT(ekmfs_journal_rec_parse(buf, &index, &len), -EBADMSG);
	}
	ekmfs_journal_rec_serialize(6, 1040, good);
	for (int pos = 12; pos < 16; pos++) {
		memcpy(buf, good, sizeof(buf));
		buf[pos] ^= 0x20;
		CHECK_EQ_INT(ekmfs_journal_rec_parse(buf, &index, &len), -EBADMSG);
	}
	memset(buf, 0, sizeof(buf));
	buf[0] = 6;                             /* an index and nothing else */
	CHECK_EQ_INT(ekmfs_journal_rec_parse(buf, &index, &len), -EBADMSG);
	memset(buf, 0, sizeof(buf));
	memcpy(buf + 12, "EKMR", 4);            /* magic, length 0 */
	CHECK_EQ_INT(ekmfs_journal_rec_parse(buf, &index, &len), -EBADMSG);
}

int main(void)
{
	if (load_vectors() < 0)
		return 1;
	RUN(test_vector_a);
	RUN(test_vector_b);
	RUN(test_vector_c);
	RUN(test_vector_d);
	RUN(test_vector_e);
	RUN(test_layouts);
	RUN(test_sizes);
	RUN(test_round_trip);
	RUN(test_parse_rejections);
	RUN(test_every_byte_bound);
	RUN(test_slot_binding);
	RUN(test_newest_slot);
	RUN(test_owner_slot);
	RUN(test_state_layout);
	RUN(test_state_every_byte);
	RUN(test_state_binding);
	RUN(test_state_rules);
	RUN(test_state_peek);
	RUN(test_hole_model);
	RUN(test_hole_edges);
	RUN(test_salts);
	RUN(test_state_same);
	RUN(test_block_round_trip);
	RUN(test_block_tamper);
	RUN(test_block_lengths);
	RUN(test_journal_header);
	RUN(test_journal_record);
	for (int i = 0; i < nvecs; i++)
		free(vecs[i].data);
	return CHECK_DONE();
}
