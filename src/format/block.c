/*
 * block.c - content blocks and the arithmetic between plaintext and backing
 * sizes.
 *
 * Owns: sealing and opening one content block (docs/FORMAT.md, "Content
 * blocks") and the mapping plaintext size <-> backing size.
 *
 * Divisions:
 *   1. size arithmetic
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

_Static_assert(EKMFS_CBLOCK_SIZE == 4124, "a stored block is 4124 bytes");

/* ---- 1. size arithmetic ---- */

int ekmfs_plain_size(uint64_t backing_size, uint64_t *plain)
{
	uint64_t body, full, rest;

	*plain = 0;
	if (backing_size == 0)
		return 0;
	if (backing_size < EKMFS_HEADER_SIZE)
		return -EBADMSG;
	body = backing_size - EKMFS_HEADER_SIZE;
	full = body / EKMFS_CBLOCK_SIZE;
	rest = body % EKMFS_CBLOCK_SIZE;
	*plain = full * EKMFS_BLOCK_SIZE;
	if (rest == 0)
		return 0;
	if (rest <= EKMFS_BLOCK_OVERHEAD)
		return -EBADMSG; /* a last block too short to hold one byte */
	*plain += rest - EKMFS_BLOCK_OVERHEAD;
	return 0;
}

uint64_t ekmfs_backing_size(uint64_t plain)
{
	uint64_t full = plain / EKMFS_BLOCK_SIZE, rest = plain % EKMFS_BLOCK_SIZE;
	uint64_t size = EKMFS_HEADER_SIZE + full * EKMFS_CBLOCK_SIZE;

	if (rest)
		size += rest + EKMFS_BLOCK_OVERHEAD;
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

/* Seal or open one block under dek (one-shot) or in session s (a keyed
 * session); exactly one of the two is given. */
static int block_seal(const uint8_t *dek, struct ekmfs_aead_session *s,
		      const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		      const uint8_t nonce[EKMFS_NONCE_SIZE],
		      const uint8_t *pt, size_t len, uint8_t *out)
{
	uint8_t aad[BLOCK_AAD_SIZE], *ct = out + EKMFS_NONCE_SIZE, *tag = ct + len;
	int rc;

	if (len == 0 || len > EKMFS_BLOCK_SIZE)
		return -EINVAL;
	block_aad(file_id, index, aad);
	memmove(out, nonce, EKMFS_NONCE_SIZE); /* nonce may already sit in out */
	rc = s ? ekmfs_aead_session_seal(s, nonce, aad, sizeof(aad), pt, len, ct, tag)
	       : ekmfs_aead_seal(dek, nonce, aad, sizeof(aad), pt, len, ct, tag);
	if (rc < 0) {
		ekmfs_wipe(out, len + EKMFS_BLOCK_OVERHEAD);
		return -EIO;
	}
	return 0;
}

static int block_open(const uint8_t *dek, struct ekmfs_aead_session *s,
		      const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		      const uint8_t *in, size_t in_len, uint8_t *pt)
{
	const uint8_t *ct = in + EKMFS_NONCE_SIZE;
	uint8_t aad[BLOCK_AAD_SIZE];
	size_t len;
	int rc;

	if (in_len <= EKMFS_BLOCK_OVERHEAD || in_len > EKMFS_CBLOCK_SIZE)
		return -EINVAL;
	len = in_len - EKMFS_BLOCK_OVERHEAD;
	block_aad(file_id, index, aad);
	rc = s ? ekmfs_aead_session_open(s, in, aad, sizeof(aad), ct, len, ct + len, pt)
	       : ekmfs_aead_open(dek, in, aad, sizeof(aad), ct, len, ct + len, pt);
	if (rc < 0) {
		ekmfs_wipe(pt, len); /* the AEAD wipes too; never rely on it alone */
		return rc == -EBADMSG ? -EBADMSG : -EIO;
	}
	return 0;
}

int ekmfs_block_seal(const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t nonce[EKMFS_NONCE_SIZE],
		     const uint8_t *pt, size_t len, uint8_t *out)
{
	return block_seal(dek, NULL, file_id, index, nonce, pt, len, out);
}

int ekmfs_block_open(const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t *in, size_t in_len, uint8_t *pt)
{
	return block_open(dek, NULL, file_id, index, in, in_len, pt);
}

int ekmfs_block_seal_s(struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t nonce[EKMFS_NONCE_SIZE],
		       const uint8_t *pt, size_t len, uint8_t *out)
{
	return block_seal(NULL, s, file_id, index, nonce, pt, len, out);
}

int ekmfs_block_open_s(struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t *in, size_t in_len, uint8_t *pt)
{
	return block_open(NULL, s, file_id, index, in, in_len, pt);
}
