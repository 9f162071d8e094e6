/*
 * fuzz_block.c - sealing and opening one content block, both versions,
 * one-shot and in a keyed session.
 *
 * Input: byte 0 mode (bit 0: v2, else v1; bit 1: seal plaintext instead of
 * opening a stored block), bytes 1..8 the block index, then the stored
 * block to open, or nonce and plaintext to seal (then one more byte picks
 * a bit of the sealed block to flip).
 * Calls (include/ekmfs/format.h, aead.h): ekmfs_block_open, _seal,
 * _open_s, ekmfs_aead_begin/_end, ekmfs_xaes_derive.
 *
 * Properties: opening returns 0, -EBADMSG or, for an impossible length,
 * -EINVAL; a failed open leaves the plaintext buffer wiped; the session
 * open agrees with the one-shot open; a sealed block opens to its
 * plaintext at its index and at no other, and with any one bit flipped it
 * never opens.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "ekmfs/aead.h"
#include "ekmfs/format.h"
#include "fuzz.h"

/* The DEK and file id of format vectors a and c (20..3f, 40..4f): their
 * blocks, in the corpus, open. */
static uint8_t dek[EKMFS_KEY_SIZE], fid[EKMFS_FILE_ID_SIZE];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	for (int i = 0; i < EKMFS_KEY_SIZE; i++)
		dek[i] = (uint8_t)(0x20 + i);
	for (int i = 0; i < EKMFS_FILE_ID_SIZE; i++)
		fid[i] = (uint8_t)(0x40 + i);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* Open in a session keyed as the content layer keys it: v1 the DEK, v2 the
 * key derived for the stored block's salt. */
static int open_session(const struct ekmfs_layout *l, uint64_t index, const uint8_t *in,
			size_t len, uint8_t *pt)
{
	struct ekmfs_aead_session *s;
	uint8_t k[EKMFS_KEY_SIZE];
	int rc;

	if (len <= l->overhead || len > l->cblock_size)
		return -EINVAL;
	if (l->version == EKMFS_FORMAT_V2)
		FUZZ_CHECK(ekmfs_xaes_derive(dek, in, k) == 0);
	else
		memcpy(k, dek, sizeof(k));
	s = ekmfs_aead_begin(k);
	FUZZ_CHECK(s != NULL);
	rc = ekmfs_block_open_s(l, s, fid, index, in, len, pt);
	ekmfs_aead_end(s);
	return rc;
}

static void open_stored(const struct ekmfs_layout *l, uint64_t index, const uint8_t *in,
			size_t len)
{
	static uint8_t pt[EKMFS_BLOCK_SIZE], pt_s[EKMFS_BLOCK_SIZE];
	size_t plen = len > l->overhead ? len - l->overhead : 0;
	int rc, rc_s;

	memset(pt, 0xaa, sizeof(pt));
	rc = ekmfs_block_open(l, dek, fid, index, in, len, pt);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EINVAL);
	FUZZ_CHECK((rc == -EINVAL) == (len <= l->overhead || len > l->cblock_size));
	if (rc == -EBADMSG)
		FUZZ_CHECK(all_zero(pt, plen));
	rc_s = open_session(l, index, in, len, pt_s);
	FUZZ_CHECK(rc_s == rc);
	if (rc == 0)
		FUZZ_CHECK(memcmp(pt, pt_s, plen) == 0);
}

static void seal_and_open(const struct ekmfs_layout *l, uint64_t index, const uint8_t *p,
			  size_t n)
{
	static uint8_t blk[EKMFS_CBLOCK_SIZE_MAX], pt[EKMFS_BLOCK_SIZE];
	size_t len, stored, bit;

	if (n < l->nonce_size + 2)
		return;
	len = n - l->nonce_size - 1;
	if (len > EKMFS_BLOCK_SIZE)
		len = EKMFS_BLOCK_SIZE;
	stored = len + l->overhead;
	FUZZ_CHECK(ekmfs_block_seal(l, dek, fid, index, p, p + l->nonce_size, len, blk) == 0);
	FUZZ_CHECK(ekmfs_block_open(l, dek, fid, index, blk, stored, pt) == 0);
	FUZZ_CHECK(memcmp(pt, p + l->nonce_size, len) == 0);
	FUZZ_CHECK(ekmfs_block_open(l, dek, fid, index + 1, blk, stored, pt) == -EBADMSG);
	bit = p[n - 1] * 131u % (stored * 8);
	blk[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	FUZZ_CHECK(ekmfs_block_open(l, dek, fid, index, blk, stored, pt) == -EBADMSG);
	FUZZ_CHECK(all_zero(pt, len));
	open_stored(l, index, blk, stored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ekmfs_layout *l;
	uint64_t index = 0;

	if (size < 9)
		return 0;
	l = data[0] & 1 ? &ekmfs_layout_v2 : &ekmfs_layout_v1;
	for (int i = 0; i < 8; i++)
		index |= (uint64_t)data[1 + i] << (8 * i);
	if (data[0] & 2)
		seal_and_open(l, index, data + 9, size - 9);
	else
		open_stored(l, index, data + 9, size - 9);
	return 0;
}
