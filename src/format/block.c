/*
 * block.c - the layouts of the two format versions, the arithmetic between
 * plaintext and backing sizes, and content blocks.
 *
 * Owns: docs/FORMAT.md "Backing file layout", "Size rule" and "Content
 * blocks": sealing and opening one block (v1: AES-256-GCM under the DEK,
 * 12-byte nonce; v2: XAES-256-GCM under the DEK, 24-byte nonce) and the
 * mapping plaintext size <-> backing size of each version.
 *
 * Divisions:
 *   1. layouts and size arithmetic
 *   2. block seal / open
 *
 * The AAD of a block is the file id and the block index, so a block copied
 * to another position or into another file fails authentication; the tag
 * covers the block's length implicitly (GCM authenticates the ciphertext
 * length), so a block cut short fails too.
 */
#include <errno.h>
#include <string.h>

#include "ekmfs/aead.h"
#include "ekmfs/format.h"
#include "ekmfs/secmem.h"

#define BLOCK_AAD_SIZE (EKMFS_FILE_ID_SIZE + 8)

_Static_assert(EKMFS_CBLOCK_SIZE_V1 == 4124, "a v1 stored block is 4124 bytes");
_Static_assert(EKMFS_CBLOCK_SIZE_V2 == 4136, "a v2 stored block is 4136 bytes");
_Static_assert(EKMFS_BLOCK_NONCE_V2 == EKMFS_XAES_NONCE_SIZE, "v2 blocks use XAES nonces");

/* ---- 1. layouts and size arithmetic ---- */

const struct ekmfs_layout ekmfs_layout_v1 = {
	.version = EKMFS_FORMAT_V1,
	.header_size = EKMFS_HEADER_SIZE_V1,
	.nonce_size = EKMFS_NONCE_SIZE,
	.overhead = EKMFS_NONCE_SIZE + EKMFS_TAG_SIZE,
	.cblock_size = EKMFS_CBLOCK_SIZE_V1,
};

const struct ekmfs_layout ekmfs_layout_v2 = {
	.version = EKMFS_FORMAT_V2,
	.header_size = EKMFS_HEADER_SIZE_V2,
	.nonce_size = EKMFS_BLOCK_NONCE_V2,
	.overhead = EKMFS_BLOCK_NONCE_V2 + EKMFS_TAG_SIZE,
	.cblock_size = EKMFS_CBLOCK_SIZE_V2,
};

const struct ekmfs_layout *ekmfs_layout_of(uint16_t version)
{
	switch (version) {
	case EKMFS_FORMAT_V1:
		return &ekmfs_layout_v1;
	case EKMFS_FORMAT_V2:
		return &ekmfs_layout_v2;
	default:
		return NULL;
	}
}

int ekmfs_plain_size(const struct ekmfs_layout *l, uint64_t backing_size, uint64_t *plain)
{
	uint64_t body, full, rest;

	*plain = 0;
	if (backing_size == 0)
		return 0;
	if (backing_size < l->header_size)
		return -EBADMSG;
	body = backing_size - l->header_size;
	full = body / l->cblock_size;
	rest = body % l->cblock_size;
	*plain = full * EKMFS_BLOCK_SIZE;
	if (rest == 0)
		return 0;
	if (rest <= l->overhead)
		return -EBADMSG; /* a last block too short to hold one byte */
	*plain += rest - l->overhead;
	return 0;
}

uint64_t ekmfs_backing_size(const struct ekmfs_layout *l, uint64_t plain)
{
	uint64_t full = plain / EKMFS_BLOCK_SIZE, rest = plain % EKMFS_BLOCK_SIZE;
	uint64_t size = l->header_size + full * l->cblock_size;

	if (rest)
		size += rest + l->overhead;
	return size;
}

/* ---- 2. block seal / open ---- */

static void block_aad(const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		      uint8_t aad[BLOCK_AAD_SIZE])
{
	memcpy(aad, file_id, EKMFS_FILE_ID_SIZE);
	for (int i = 0; i < 8; i++)
		aad[EKMFS_FILE_ID_SIZE + i] = (uint8_t)(index >> (8 * i));
}

/* The GCM half of a stored block's nonce (v2: after the XAES salt). */
static const uint8_t *gcm_nonce(const struct ekmfs_layout *l, const uint8_t *nonce)
{
	return l->nonce_size == EKMFS_XAES_NONCE_SIZE ? nonce + EKMFS_XAES_SALT_SIZE : nonce;
}

/* Seal or open one block under dek (one-shot) or in session s (a keyed
 * session of the block's GCM key); exactly one of the two is given. */
static int block_seal(const struct ekmfs_layout *l, const uint8_t *dek,
		      struct ekmfs_aead_session *s, const uint8_t file_id[EKMFS_FILE_ID_SIZE],
		      uint64_t index, const uint8_t *nonce, const uint8_t *pt, size_t len,
		      uint8_t *out)
{
	uint8_t aad[BLOCK_AAD_SIZE], *ct = out + l->nonce_size, *tag = ct + len;
	bool xaes = l->nonce_size == EKMFS_XAES_NONCE_SIZE;
	int rc;

	if (len == 0 || len > EKMFS_BLOCK_SIZE)
		return -EINVAL;
	block_aad(file_id, index, aad);
	memmove(out, nonce, l->nonce_size); /* nonce may already sit in out */
	if (s)
		rc = ekmfs_aead_session_seal(s, gcm_nonce(l, out), aad, sizeof(aad), pt, len,
					     ct, tag);
	else if (xaes)
		rc = ekmfs_xaes_seal(dek, out, aad, sizeof(aad), pt, len, ct, tag);
	else
		rc = ekmfs_aead_seal(dek, out, aad, sizeof(aad), pt, len, ct, tag);
	if (rc < 0) {
		ekmfs_wipe(out, len + l->overhead);
		return -EIO;
	}
	return 0;
}

static int block_open(const struct ekmfs_layout *l, const uint8_t *dek,
		      struct ekmfs_aead_session *s, const uint8_t file_id[EKMFS_FILE_ID_SIZE],
		      uint64_t index, const uint8_t *in, size_t in_len, uint8_t *pt)
{
	const uint8_t *ct = in + l->nonce_size;
	bool xaes = l->nonce_size == EKMFS_XAES_NONCE_SIZE;
	uint8_t aad[BLOCK_AAD_SIZE];
	size_t len;
	int rc;

	if (in_len <= l->overhead || in_len > l->cblock_size)
		return -EINVAL;
	len = in_len - l->overhead;
	block_aad(file_id, index, aad);
	if (s)
		rc = ekmfs_aead_session_open(s, gcm_nonce(l, in), aad, sizeof(aad), ct, len,
					     ct + len, pt);
	else if (xaes)
		rc = ekmfs_xaes_open(dek, in, aad, sizeof(aad), ct, len, ct + len, pt);
	else
		rc = ekmfs_aead_open(dek, in, aad, sizeof(aad), ct, len, ct + len, pt);
	if (rc < 0) {
		ekmfs_wipe(pt, len); /* the AEAD wipes too; never rely on it alone */
		return rc == -EBADMSG ? -EBADMSG : -EIO;
	}
	return 0;
}

int ekmfs_block_seal(const struct ekmfs_layout *l, const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t *nonce, const uint8_t *pt, size_t len, uint8_t *out)
{
	return block_seal(l, dek, NULL, file_id, index, nonce, pt, len, out);
}

int ekmfs_block_open(const struct ekmfs_layout *l, const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t *in, size_t in_len, uint8_t *pt)
{
	return block_open(l, dek, NULL, file_id, index, in, in_len, pt);
}

int ekmfs_block_seal_s(const struct ekmfs_layout *l, struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t *nonce, const uint8_t *pt, size_t len, uint8_t *out)
{
	return block_seal(l, NULL, s, file_id, index, nonce, pt, len, out);
}

int ekmfs_block_open_s(const struct ekmfs_layout *l, struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t *in, size_t in_len, uint8_t *pt)
{
	return block_open(l, NULL, s, file_id, index, in, in_len, pt);
}
