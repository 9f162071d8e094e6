/*
 * journal.c - the bytes of a file's journal (docs/FORMAT.md, "Journal").
 *
 * Owns: the 64-byte journal header (magic, version, file id, generation,
 * MAC under the file's state key) and the 16-byte record header that
 * precedes each stored block. Pure functions; the journal's I/O is
 * src/content/journal.c.
 *
 * Journal header (64 bytes):
 *   0..3   "EKMJ"      4..5 version u16 = 1     6..7 zero
 *   8..23  file id     24..31 generation u64 (>= 1)
 *   32..63 HMAC-SHA256(state key, "ekmfs-v2-journal" ‖ bytes 0..31)
 * Record header (16 bytes):
 *   0..7   block index u64    8..11 stored length u32 (41..4136)
 *   12..15 "EKMR"
 * The stored block that follows authenticates itself (its AAD is the file
 * id and the index), so the record header needs no MAC of its own: an
 * edited index or length makes the block fail.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ekmfs/format.h"
#include "ekmfs/mac.h"
#include "ekmfs/util.h"

#define J_VERSION 1
#define J_LABEL "ekmfs-v2-journal"
#define J_MAC_AT 32
#define REC_MAGIC "EKMR"

_Static_assert(J_MAC_AT + EKMFS_HMAC_SIZE == EKMFS_JOURNAL_HEADER_SIZE, "64-byte header");

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int header_mac(const uint8_t key[EKMFS_KEY_SIZE], const uint8_t *hdr,
		      uint8_t mac[EKMFS_HMAC_SIZE])
{
	const struct ekmfs_mac_part parts[] = {
		{ J_LABEL, sizeof(J_LABEL) - 1 },
		{ hdr, J_MAC_AT },
	};

	return ekmfs_hmac_sha256(key, EKMFS_KEY_SIZE, parts, 2, mac);
}

int ekmfs_journal_header_serialize(const struct ekmfs_journal_header *jh,
				   const uint8_t key[EKMFS_KEY_SIZE],
				   uint8_t out[EKMFS_JOURNAL_HEADER_SIZE])
{
	memset(out, 0, EKMFS_JOURNAL_HEADER_SIZE);
	memcpy(out, EKMFS_JOURNAL_MAGIC, 4);
	out[4] = J_VERSION;
	memcpy(out + 8, jh->file_id, EKMFS_FILE_ID_SIZE);
	put64(out + 24, jh->generation);
	return header_mac(key, out, out + J_MAC_AT);
}

int ekmfs_journal_header_parse(const uint8_t in[EKMFS_JOURNAL_HEADER_SIZE],
			       const uint8_t key[EKMFS_KEY_SIZE],
			       struct ekmfs_journal_header *jh)
{
	uint8_t mac[EKMFS_HMAC_SIZE];

	memset(jh, 0, sizeof(*jh));
	if (memcmp(in, EKMFS_JOURNAL_MAGIC, 4) != 0 || in[4] != J_VERSION || in[5] || in[6] ||
	    in[7]) {
		ekmfs_seterr("journal header: bad magic or version");
		return -EBADMSG;
	}
	if (header_mac(key, in, mac) < 0)
		return -EIO;
	if (CRYPTO_memcmp(mac, in + J_MAC_AT, sizeof(mac)) != 0) {
		ekmfs_seterr("journal header: MAC does not verify (torn, tampered or another "
			     "file's)");
		return -EBADMSG;
	}
	memcpy(jh->file_id, in + 8, EKMFS_FILE_ID_SIZE);
	jh->generation = get64(in + 24);
	if (jh->generation == 0) {
		ekmfs_seterr("journal header: generation 0");
		return -EBADMSG;
	}
	return 0;
}

void ekmfs_journal_rec_serialize(uint64_t index, uint32_t stored_len,
				 uint8_t out[EKMFS_JOURNAL_REC_SIZE])
{
	put64(out, index);
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(stored_len >> (8 * i));
	memcpy(out + 12, REC_MAGIC, 4);
}

int ekmfs_journal_rec_parse(const uint8_t in[EKMFS_JOURNAL_REC_SIZE], uint64_t *index,
			    uint32_t *stored_len)
{
	uint8_t acc = 0;

	for (int i = 0; i < EKMFS_JOURNAL_REC_SIZE; i++)
		acc |= in[i];
	if (acc == 0)
		return -ENODATA;
	*index = get64(in);
	*stored_len = (uint32_t)in[8] | (uint32_t)in[9] << 8 | (uint32_t)in[10] << 16 |
		      (uint32_t)in[11] << 24;
	if (memcmp(in + 12, REC_MAGIC, 4) != 0 ||
	    *stored_len <= ekmfs_layout_v2.overhead || *stored_len > EKMFS_CBLOCK_SIZE_V2)
		return -EBADMSG;
	return 0;
}
