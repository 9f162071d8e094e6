/*
 * format.h - the on-disk file format: header, key slots, state records,
 * content blocks, journal records, and the arithmetic between plaintext and
 * backing offsets.
 *
 * Owns: every byte of a backing file and of its journal (docs/FORMAT.md is
 * the specification; keep the two in step). Pure functions: no I/O, no key
 * management. Keys and nonces come from the caller so the unit tests can
 * reproduce the test vectors of the independent Python generator exactly.
 *
 * Two versions are read; version 2 is the only one written:
 *
 *   v1: header (256)  ‖ block 0 ‖ block 1 ‖ …   block = nonce (12) ‖ GCM(DEK) ‖ tag (16)
 *   v2: header (1024) ‖ block 0 ‖ block 1 ‖ …   block = nonce (24) ‖ XAES(DEK) ‖ tag (16)
 *
 * A v2 header is sector 0 (magic, version, sizes, flags, file id, two key
 * slots, zeros) and sector 1 (two state records: the authenticated size,
 * the holes, the journal generation). Every block but the last carries
 * EKMFS_BLOCK_SIZE plaintext bytes; the last carries 1..EKMFS_BLOCK_SIZE. A
 * backing file of 0 bytes is an empty file whose header has not been
 * written yet (both versions).
 *
 * Divisions: layouts and size arithmetic / header and key slots / state
 * records (v2) / content blocks / journal records (v2).
 */
#ifndef EKMFS_FORMAT_H
#define EKMFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EKMFS_MAGIC "EKMF"
#define EKMFS_FORMAT_V1 1
#define EKMFS_FORMAT_V2 2
#define EKMFS_FORMAT_VERSION EKMFS_FORMAT_V2 /* the version this release writes */
#define EKMFS_HEADER_PREFIX_SIZE 32 /* magic..file id: bound into every slot */
#define EKMFS_SLOT_SIZE 96
#define EKMFS_SLOT_COUNT 2
#define EKMFS_FILE_ID_SIZE 16
#define EKMFS_KEY_SIZE 32
#define EKMFS_NONCE_SIZE 12         /* key slots (both versions), v1 blocks */
#define EKMFS_TAG_SIZE 16
#define EKMFS_BLOCK_SIZE 4096
#define EKMFS_SECTOR_SIZE 512       /* the unit a power cut writes whole or not at all */

/* ---- layouts and size arithmetic ---- */

#define EKMFS_HEADER_SIZE_V1 256
#define EKMFS_HEADER_SIZE_V2 1024
#define EKMFS_HEADER_SIZE_MAX EKMFS_HEADER_SIZE_V2
#define EKMFS_BLOCK_NONCE_V2 24     /* XAES-256-GCM */
#define EKMFS_CBLOCK_SIZE_V1 (EKMFS_BLOCK_SIZE + EKMFS_NONCE_SIZE + EKMFS_TAG_SIZE)
#define EKMFS_CBLOCK_SIZE_V2 (EKMFS_BLOCK_SIZE + EKMFS_BLOCK_NONCE_V2 + EKMFS_TAG_SIZE)
#define EKMFS_CBLOCK_SIZE_MAX EKMFS_CBLOCK_SIZE_V2

/* The geometry of one format version. */
struct ekmfs_layout {
	uint16_t version;
	uint32_t header_size;   /* bytes before block 0 */
	uint32_t nonce_size;    /* per block */
	uint32_t overhead;      /* nonce + tag per block */
	uint32_t cblock_size;   /* a full stored block */
};

extern const struct ekmfs_layout ekmfs_layout_v1, ekmfs_layout_v2;
/* The layout of a format version; NULL for an unknown one. */
const struct ekmfs_layout *ekmfs_layout_of(uint16_t version);

/* Plaintext size for a backing size. 0 or -EBADMSG when the backing size is
 * impossible (1..header_size-1, or a last block of 1..overhead bytes);
 * *plain is then the size of the intact prefix. */
int ekmfs_plain_size(const struct ekmfs_layout *l, uint64_t backing_size, uint64_t *plain);
/* Backing size that holds plain bytes (with header). */
uint64_t ekmfs_backing_size(const struct ekmfs_layout *l, uint64_t plain);
static inline uint64_t ekmfs_block_offset(const struct ekmfs_layout *l, uint64_t index)
{
	return l->header_size + index * (uint64_t)l->cblock_size;
}
/* Number of blocks of a file of plain bytes, and the plaintext length of
 * block index in it (0 beyond the end). */
static inline uint64_t ekmfs_nblocks(uint64_t plain)
{
	return (plain + EKMFS_BLOCK_SIZE - 1) / EKMFS_BLOCK_SIZE;
}
static inline uint64_t ekmfs_block_len(uint64_t plain, uint64_t index)
{
	uint64_t start = index * EKMFS_BLOCK_SIZE;

	if (start >= plain)
		return 0;
	return plain - start < EKMFS_BLOCK_SIZE ? plain - start : EKMFS_BLOCK_SIZE;
}
/* Largest plaintext size whose backing size fits in off_t (v2 bound, the
 * smaller of the two). */
#define EKMFS_MAX_PLAIN                                                                 \
	((uint64_t)((INT64_MAX - EKMFS_HEADER_SIZE_MAX) / EKMFS_CBLOCK_SIZE_MAX) *       \
	 EKMFS_BLOCK_SIZE)

/* ---- header and key slots ---- */

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
	uint16_t version;       /* EKMFS_FORMAT_V1 or _V2 */
	uint32_t block_size;    /* EKMFS_BLOCK_SIZE */
	uint32_t flags;         /* 0; reserved */
	uint8_t file_id[EKMFS_FILE_ID_SIZE];
	struct ekmfs_slot slot[EKMFS_SLOT_COUNT];
};

/* How many bytes ekmfs_header_parse needs: the v2 sector 0 (512), which
 * also covers a v1 header (256). */
#define EKMFS_HEADER_PARSE_SIZE EKMFS_SECTOR_SIZE

/* Parse a header from the first len bytes of a backing file (len < the
 * version's header size is a truncated header). Checks magic, version,
 * sizes, that reserved bytes are zero and that at least one slot is in
 * use; the v2 state records are parsed apart (ekmfs_state_parse). 0,
 * -EPROTO (not an ekmfs header or an unsupported version) or -EBADMSG
 * (malformed or truncated). */
int ekmfs_header_parse(const uint8_t *buf, size_t len, struct ekmfs_header *h);
/* The header's own bytes (v1: 256; v2: sector 0, 512 bytes, without the
 * state records); buf must hold EKMFS_HEADER_PARSE_SIZE bytes. Returns the
 * number of bytes serialised. */
size_t ekmfs_header_serialize(const struct ekmfs_header *h, uint8_t *buf);
/* Initialise h for a new v2 file (file id given), both slots empty. */
void ekmfs_header_init(struct ekmfs_header *h, const uint8_t file_id[EKMFS_FILE_ID_SIZE]);
static inline const struct ekmfs_layout *ekmfs_header_layout(const struct ekmfs_header *h)
{
	return ekmfs_layout_of(h->version);
}

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

/* ---- state records (v2) ----
 *
 * Two 256-byte records in header sector 1 (bytes 512..767 and 768..1023),
 * each authenticated with HMAC-SHA256 under the file's state key (derived
 * from the DEK, ekmfs_state_key). The valid record with the highest seq
 * states the file's plaintext size, its holes, the newest journal
 * generation already folded into the file, and the XAES salts of the
 * blocks written since the state before it became durable (what tells a
 * new block from an old one that also authenticates, after a crash). At
 * rest both records are equal. */

#define EKMFS_STATE_OFFSET EKMFS_SECTOR_SIZE
#define EKMFS_STATE_SIZE 256
#define EKMFS_STATE_COUNT 2
#define EKMFS_STATE_HOLES 9
#define EKMFS_STATE_SALTS 4
#define EKMFS_STATE_SALT_SIZE 12
#define EKMFS_STATE_MAC_SIZE 32

/* A run of blocks that are holes: they read as zeros and have no stored
 * bytes that count (docs/FORMAT.md, "Holes"). */
struct ekmfs_hole {
	uint64_t first;         /* first block index */
	uint64_t count;         /* number of blocks, >= 1 */
};

struct ekmfs_state {
	uint64_t seq;           /* 0 = empty record */
	uint64_t size;          /* plaintext bytes */
	uint64_t journal;       /* journal generations <= this are folded in */
	uint16_t nholes;
	uint8_t nsalts;
	struct ekmfs_hole holes[EKMFS_STATE_HOLES];  /* sorted, disjoint, not adjacent */
	uint8_t salts[EKMFS_STATE_SALTS][EKMFS_STATE_SALT_SIZE];  /* distinct */
};

static inline uint64_t ekmfs_state_offset(int idx)
{
	return EKMFS_STATE_OFFSET + (uint64_t)idx * EKMFS_STATE_SIZE;
}

/* The state MAC key: HKDF-SHA256(IKM = DEK, salt none, info
 * "ekmfs-v2-state", 32 bytes). 0 or -EIO (out wiped). */
int ekmfs_state_key(const uint8_t dek[EKMFS_KEY_SIZE], uint8_t out[EKMFS_KEY_SIZE]);
/* Serialise st with its MAC (file id bound in). An empty record (seq 0) is
 * all zero. 0 or -EIO. */
int ekmfs_state_serialize(const struct ekmfs_state *st,
			  const uint8_t key[EKMFS_KEY_SIZE],
			  const uint8_t file_id[EKMFS_FILE_ID_SIZE],
			  uint8_t out[EKMFS_STATE_SIZE]);
/* Parse and authenticate one record. 0 (st filled; seq 0 = empty record),
 * -EBADMSG (MAC wrong, or fields malformed: holes unsorted, overlapping,
 * adjacent, beyond the size, more than EKMFS_STATE_HOLES, reserved bytes
 * set). st is zeroed on failure. */
int ekmfs_state_parse(const uint8_t in[EKMFS_STATE_SIZE],
		      const uint8_t key[EKMFS_KEY_SIZE],
		      const uint8_t file_id[EKMFS_FILE_ID_SIZE], struct ekmfs_state *st);
/* seq, size, journal and the hole runs (at most EKMFS_STATE_HOLES) of a
 * record as written, without checking its MAC; the salts are not filled
 * in (sealing a file without its key; never to decide what data means). */
void ekmfs_state_peek(const uint8_t in[EKMFS_STATE_SIZE], struct ekmfs_state *st);
/* Whether block index is inside a hole of st. */
bool ekmfs_state_is_hole(const struct ekmfs_state *st, uint64_t index);
/* Make blocks [first, first+count) holes (merging); -ENOSPC when that would
 * need more than EKMFS_STATE_HOLES runs (st unchanged). */
int ekmfs_state_add_hole(struct ekmfs_state *st, uint64_t first, uint64_t count);
/* Make blocks [first, first+count) data again (splitting runs); -ENOSPC as
 * above. */
int ekmfs_state_fill_hole(struct ekmfs_state *st, uint64_t first, uint64_t count);
/* Drop holes at or beyond block index nblocks (after a shrink). */
void ekmfs_state_cut_holes(struct ekmfs_state *st, uint64_t nblocks);
/* Whether two states say the same thing (seq and MAC aside). */
bool ekmfs_state_same(const struct ekmfs_state *a, const struct ekmfs_state *b);
/* Whether salt is one of st's; add it (-ENOSPC when st has
 * EKMFS_STATE_SALTS already). */
bool ekmfs_state_has_salt(const struct ekmfs_state *st, const uint8_t *salt);
int ekmfs_state_add_salt(struct ekmfs_state *st, const uint8_t *salt);

/* ---- content blocks ----
 *
 * AAD = file id ‖ block index (u64 LE) in both versions. v1 seals with
 * AES-256-GCM under the DEK and a 12-byte nonce; v2 with XAES-256-GCM under
 * the DEK and a 24-byte nonce, whose first 12 bytes (the salt) select the
 * derived GCM key: callers that seal many blocks with one salt derive it
 * once (ekmfs_xaes_derive) and use the _s calls with a keyed session of
 * that derived key and the GCM half of the nonce. */

/* Seal len (1..BLOCK_SIZE) plaintext bytes of block index into out, which
 * receives len + overhead bytes (nonce ‖ ciphertext ‖ tag). 0 or -EIO. */
int ekmfs_block_seal(const struct ekmfs_layout *l, const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t *nonce, const uint8_t *pt, size_t len, uint8_t *out);
/* Open a stored block of in_len bytes (overhead+1 .. cblock_size) into pt
 * (in_len - overhead bytes). 0, -EBADMSG (tag mismatch: tampered, moved or
 * corrupt; pt wiped) or -EINVAL (impossible length). */
int ekmfs_block_open(const struct ekmfs_layout *l, const uint8_t dek[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		     const uint8_t *in, size_t in_len, uint8_t *pt);

/* The same, with the GCM key (v1: the DEK; v2: the key derived for the
 * block's salt) already set up in a keyed AEAD session of the calling
 * thread (ekmfs_aead_begin): for the many blocks of one request. The
 * stored block still begins with its full nonce. v2: the salt bytes of
 * the nonce are not read here; the caller derives the session's key from
 * the stored block's own salt (bytes 0..11), or the block is not bound to
 * its salt. */
struct ekmfs_aead_session;
int ekmfs_block_seal_s(const struct ekmfs_layout *l, struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t *nonce, const uint8_t *pt, size_t len, uint8_t *out);
int ekmfs_block_open_s(const struct ekmfs_layout *l, struct ekmfs_aead_session *s,
		       const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t index,
		       const uint8_t *in, size_t in_len, uint8_t *pt);

/* ---- journal records (v2) ----
 *
 * A file's journal (BACKING/.ekmfs/journal/<file id>.<generation>) holds
 * new versions of blocks that the file's durable state still needs, until
 * they are copied into the file (docs/FORMAT.md, "Journal"). It starts with
 * a 64-byte header; each record is a 16-byte record header followed by one
 * stored block (v2 block format, its own AAD). */

#define EKMFS_JOURNAL_MAGIC "EKMJ"
#define EKMFS_JOURNAL_HEADER_SIZE 64
#define EKMFS_JOURNAL_REC_SIZE 16

struct ekmfs_journal_header {
	uint8_t file_id[EKMFS_FILE_ID_SIZE];
	uint64_t generation;    /* >= 1 */
};

/* Serialise/parse the journal header (its MAC uses the state key). 0 or
 * -EIO / -EBADMSG. */
int ekmfs_journal_header_serialize(const struct ekmfs_journal_header *jh,
				   const uint8_t key[EKMFS_KEY_SIZE],
				   uint8_t out[EKMFS_JOURNAL_HEADER_SIZE]);
int ekmfs_journal_header_parse(const uint8_t in[EKMFS_JOURNAL_HEADER_SIZE],
			       const uint8_t key[EKMFS_KEY_SIZE],
			       struct ekmfs_journal_header *jh);
/* A record header: the block index and the stored length that follows.
 * parse: 0, or -ENODATA for an all-zero header (the end), -EBADMSG for an
 * impossible one. */
void ekmfs_journal_rec_serialize(uint64_t index, uint32_t stored_len,
				 uint8_t out[EKMFS_JOURNAL_REC_SIZE]);
int ekmfs_journal_rec_parse(const uint8_t in[EKMFS_JOURNAL_REC_SIZE], uint64_t *index,
			    uint32_t *stored_len);

#endif
