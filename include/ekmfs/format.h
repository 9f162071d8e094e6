/*
 * format.h - the on-disk file format: header, key slots, content blocks and
 * the arithmetic between plaintext and backing offsets.
 *
 * Owns: every byte of a backing file (docs/FORMAT.md is the specification;
 * keep the two in step). Pure functions: no I/O, no key management. Keys and
 * nonces come from the caller so the unit tests can reproduce the published
 * test vectors exactly.
 *
 * Backing file = header (EKMFS_HEADER_SIZE bytes)
 *              ‖ block 0 ‖ block 1 ‖ … ‖ block n-1
 * block i      = nonce (12) ‖ AES-256-GCM(DEK, plaintext i) ‖ tag (16)
 * Every block but the last carries EKMFS_BLOCK_SIZE plaintext bytes; the last
 * carries 1..EKMFS_BLOCK_SIZE. A backing file of 0 bytes is an empty file whose
 * header has not been written yet.
 */
#ifndef EKMFS_FORMAT_H
#define EKMFS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define EKMFS_MAGIC "EKMF"
#define EKMFS_FORMAT_VERSION 1
#define EKMFS_HEADER_SIZE 256
#define EKMFS_HEADER_PREFIX_SIZE 32 /* magic..file id: bound into every slot */
#define EKMFS_SLOT_SIZE 96
#define EKMFS_SLOT_COUNT 2
#define EKMFS_FILE_ID_SIZE 16
#define EKMFS_KEY_SIZE 32
#define EKMFS_NONCE_SIZE 12
#define EKMFS_TAG_SIZE 16
#define EKMFS_BLOCK_SIZE 4096
#define EKMFS_BLOCK_OVERHEAD (EKMFS_NONCE_SIZE + EKMFS_TAG_SIZE)
#define EKMFS_CBLOCK_SIZE (EKMFS_BLOCK_SIZE + EKMFS_BLOCK_OVERHEAD)

/* One key slot: the file's DEK wrapped under one KEK version of one tenant. */
struct ekmfs_slot {
	uint64_t seq;           /* 0 = empty slot; higher = newer */
	uint32_t tenant_id;     /* keyring tenant id */
	uint32_t kek_version;   /* KEK version within that tenant */
	uint8_t nonce[EKMFS_NONCE_SIZE];
	uint8_t wrapped_dek[EKMFS_KEY_SIZE];
	uint8_t tag[EKMFS_TAG_SIZE];
};

struct ekmfs_header {
	uint16_t version;       /* EKMFS_FORMAT_VERSION */
	uint32_t block_size;    /* EKMFS_BLOCK_SIZE */
	uint32_t flags;         /* 0; reserved */
	uint8_t file_id[EKMFS_FILE_ID_SIZE];
	struct ekmfs_slot slot[EKMFS_SLOT_COUNT];
};

/* Parse a header. Checks magic, version, sizes, that reserved bytes are zero
 * and that at least one slot is in use. 0, -EPROTO (not an ekmfs header or an
 * unsupported version) or -EBADMSG (malformed). */
int ekmfs_header_parse(const uint8_t buf[EKMFS_HEADER_SIZE], struct ekmfs_header *h);
void ekmfs_header_serialize(const struct ekmfs_header *h, uint8_t buf[EKMFS_HEADER_SIZE]);
/* Initialise h for a new file (version, block size, file id), both slots empty. */
void ekmfs_header_init(struct ekmfs_header *h, const uint8_t file_id[EKMFS_FILE_ID_SIZE]);

/* Index of the non-empty slot with the highest seq, the other non-empty one
 * as *fallback (-1 if none). Returns -ENOKEY when both slots are empty. */
int ekmfs_header_newest_slot(const struct ekmfs_header *h, int *fallback);
/* The slot whose tenant owns the file: the newest, unless that is a slot
 * write cut short (a seq but tenant id 0, docs/ROTATION.md), then the
 * other one. -1 when there is none. */
int ekmfs_header_owner_slot(const struct ekmfs_header *h);

/* Fill slot idx: wrap dek under kek with AAD = header prefix ‖ seq ‖ tenant ‖
 * version (see FORMAT.md). 0 or -EIO. */
int ekmfs_slot_wrap(struct ekmfs_header *h, int idx, uint64_t seq,
		    uint32_t tenant_id, uint32_t kek_version,
		    const uint8_t kek[EKMFS_KEY_SIZE], const uint8_t dek[EKMFS_KEY_SIZE],
		    const uint8_t nonce[EKMFS_NONCE_SIZE]);
/* Unwrap slot idx. 0, -ENOKEY (empty slot) or -EBADMSG (wrong KEK or tampered
 * header); dek is wiped on failure. */
int ekmfs_slot_unwrap(const struct ekmfs_header *h, int idx,
		      const uint8_t kek[EKMFS_KEY_SIZE], uint8_t dek[EKMFS_KEY_SIZE]);
/* Erase slot idx (all zero). */
void ekmfs_slot_clear(struct ekmfs_header *h, int idx);

/* Byte offset of slot idx within the header (for in-place slot writes). */
static inline uint64_t ekmfs_slot_offset(int idx)
{
	return EKMFS_HEADER_PREFIX_SIZE + (uint64_t)idx * EKMFS_SLOT_SIZE;
}

/* ---- size arithmetic ---- */
/* Plaintext size for a backing size. 0 or -EBADMSG when the backing size is
 * impossible (1..HEADER_SIZE-1, or a last block of 1..BLOCK_OVERHEAD bytes);
 * *plain is then the size of the intact prefix. */
int ekmfs_plain_size(uint64_t backing_size, uint64_t *plain);
/* Backing size that holds plain bytes (with header). */
uint64_t ekmfs_backing_size(uint64_t plain);
static inline uint64_t ekmfs_block_offset(uint64_t index)
{
	return EKMFS_HEADER_SIZE + index * (uint64_t)EKMFS_CBLOCK_SIZE;
}

/* ---- content blocks ---- */
/* Seal len (1..BLOCK_SIZE) plaintext bytes of block index into out, which
 * receives len + BLOCK_OVERHEAD bytes (nonce ‖ ciphertext ‖ tag). 0 or -EIO. */
int ekmfs_block_seal(const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t nonce[EKMFS_NONCE_SIZE],
		     const uint8_t *pt, size_t len, uint8_t *out);
/* Open a stored block of in_len bytes (BLOCK_OVERHEAD+1 .. CBLOCK_SIZE) into
 * pt (in_len - BLOCK_OVERHEAD bytes). 0, -EBADMSG (tag mismatch: tampered,
 * moved or corrupt; pt wiped) or -EINVAL (impossible length). */
int ekmfs_block_open(const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t *in, size_t in_len, uint8_t *pt);

/* The same, with the DEK already set up in a keyed AEAD session of the
 * calling thread (ekmfs_aead_begin): for the many blocks of one request. */
struct ekmfs_aead_session;
int ekmfs_block_seal_s(struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t nonce[EKMFS_NONCE_SIZE],
		       const uint8_t *pt, size_t len, uint8_t *out);
int ekmfs_block_open_s(struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t *in, size_t in_len, uint8_t *pt);

#endif
