/*
 * header.c - the file header (v1: 256 bytes; v2: its sector 0, 512 bytes)
 * and its two key slots.
 *
 * Owns: parsing and serialising the header (docs/FORMAT.md, "File header"),
 * choosing the newest slot, and wrapping/unwrapping the file's DEK in a slot.
 * The v2 state records that follow in sector 1 are state.c's.
 *
 * Divisions:
 *   1. little-endian helpers
 *   2. parse / serialise / init
 *   3. slot selection, wrap, unwrap, clear
 *
 * The parser is strict on purpose: every byte of the header is either a
 * checked field, authenticated as slot AAD, or a reserved byte that must be
 * zero, so a header that parses cleanly has no room for smuggled data and a
 * future format version cannot be misread as this one.
 */
#include <errno.h>
#include <string.h>

#include "ekmfs/aead.h"
#include "ekmfs/format.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

/* Header layout (offsets in bytes). */
#define HDR_MAGIC 0
#define HDR_VERSION 4
#define HDR_SIZE 6
#define HDR_BLOCK_SIZE 8
#define HDR_FLAGS 12
#define HDR_FILE_ID 16
#define HDR_RESERVED (EKMFS_HEADER_PREFIX_SIZE + EKMFS_SLOT_COUNT * EKMFS_SLOT_SIZE)
/* End of the reserved bytes: the v1 header, or v2 sector 0. */
#define HDR_END_V1 EKMFS_HEADER_SIZE_V1
#define HDR_END_V2 EKMFS_SECTOR_SIZE

/* Slot layout, relative to the slot's start. */
#define SLOT_SEQ 0
#define SLOT_TENANT 8
#define SLOT_KEK_VERSION 12
#define SLOT_NONCE 16
#define SLOT_WRAPPED 28
#define SLOT_TAG 60
#define SLOT_RESERVED 76
#define SLOT_AAD_FIELDS 16 /* seq, tenant, KEK version */
#define SLOT_AAD_SIZE (EKMFS_HEADER_PREFIX_SIZE + SLOT_AAD_FIELDS)

_Static_assert(HDR_RESERVED == 224, "slots end at byte 224");
_Static_assert(HDR_END_V2 == EKMFS_STATE_OFFSET, "v2 state records follow sector 0");
_Static_assert(EKMFS_HEADER_PARSE_SIZE >= HDR_END_V1 && EKMFS_HEADER_PARSE_SIZE >= HDR_END_V2,
	       "a parse buffer holds either header");
_Static_assert(SLOT_RESERVED + 20 == EKMFS_SLOT_SIZE, "slot is 96 bytes");
_Static_assert(SLOT_TAG == SLOT_WRAPPED + EKMFS_KEY_SIZE, "tag follows the wrapped DEK");
_Static_assert(EKMFS_NONCE_SIZE == EKMFS_AEAD_NONCE_SIZE && EKMFS_TAG_SIZE == EKMFS_AEAD_TAG_SIZE &&
	       EKMFS_KEY_SIZE == EKMFS_AEAD_KEY_SIZE, "format and AEAD sizes agree");

/* ---- 1. little-endian helpers ---- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

/* ---- 2. parse / serialise / init ---- */

static uint16_t header_size_of(uint16_t version)
{
	const struct ekmfs_layout *l = ekmfs_layout_of(version);

	return l ? (uint16_t)l->header_size : 0;
}

static void prefix_serialize(const struct ekmfs_header *h, uint8_t out[EKMFS_HEADER_PREFIX_SIZE])
{
	memcpy(out + HDR_MAGIC, EKMFS_MAGIC, 4);
	put16(out + HDR_VERSION, h->version);
	put16(out + HDR_SIZE, header_size_of(h->version));
	put32(out + HDR_BLOCK_SIZE, h->block_size);
	put32(out + HDR_FLAGS, h->flags);
	memcpy(out + HDR_FILE_ID, h->file_id, EKMFS_FILE_ID_SIZE);
}

static void slot_serialize(const struct ekmfs_slot *s, uint8_t out[EKMFS_SLOT_SIZE])
{
	memset(out, 0, EKMFS_SLOT_SIZE);
	if (s->seq == 0)
		return; /* an empty slot is all zero, whatever the struct holds */
	put64(out + SLOT_SEQ, s->seq);
	put32(out + SLOT_TENANT, s->tenant_id);
	put32(out + SLOT_KEK_VERSION, s->kek_version);
	memcpy(out + SLOT_NONCE, s->nonce, EKMFS_NONCE_SIZE);
	memcpy(out + SLOT_WRAPPED, s->wrapped_dek, EKMFS_KEY_SIZE);
	memcpy(out + SLOT_TAG, s->tag, EKMFS_TAG_SIZE);
}

static int slot_parse(const uint8_t in[EKMFS_SLOT_SIZE], int idx, struct ekmfs_slot *s)
{
	memset(s, 0, sizeof(*s));
	if (!all_zero(in + SLOT_RESERVED, EKMFS_SLOT_SIZE - SLOT_RESERVED)) {
		ekmfs_seterr("file header: reserved bytes of key slot %d are not zero", idx);
		return -EBADMSG;
	}
	s->seq = get64(in + SLOT_SEQ);
	if (s->seq == 0) {
		if (!all_zero(in, EKMFS_SLOT_SIZE)) {
			ekmfs_seterr("file header: key slot %d has seq 0 but is not empty", idx);
			return -EBADMSG;
		}
		return 0;
	}
	s->tenant_id = get32(in + SLOT_TENANT);
	s->kek_version = get32(in + SLOT_KEK_VERSION);
	memcpy(s->nonce, in + SLOT_NONCE, EKMFS_NONCE_SIZE);
	memcpy(s->wrapped_dek, in + SLOT_WRAPPED, EKMFS_KEY_SIZE);
	memcpy(s->tag, in + SLOT_TAG, EKMFS_TAG_SIZE);
	return 0;
}

int ekmfs_header_parse(const uint8_t *buf, size_t len, struct ekmfs_header *h)
{
	size_t end;
	int rc;

	memset(h, 0, sizeof(*h));
	if (len < 8) {
		ekmfs_seterr("file header truncated to %zu bytes", len);
		return -EBADMSG;
	}
	if (memcmp(buf + HDR_MAGIC, EKMFS_MAGIC, 4) != 0) {
		ekmfs_seterr("file header: bad magic (not an ekmfs file)");
		return -EPROTO;
	}
	h->version = get16(buf + HDR_VERSION);
	if (!ekmfs_layout_of(h->version)) {
		ekmfs_seterr("file header: unsupported format version %u (this release reads "
			     "%u and %u)", h->version, EKMFS_FORMAT_V1, EKMFS_FORMAT_V2);
		return -EPROTO;
	}
	end = h->version == EKMFS_FORMAT_V1 ? HDR_END_V1 : HDR_END_V2;
	if (len < end) {
		ekmfs_seterr("file header truncated to %zu bytes (format version %u has %u)",
			     len, h->version, header_size_of(h->version));
		return -EBADMSG;
	}
	if (get16(buf + HDR_SIZE) != header_size_of(h->version)) {
		ekmfs_seterr("file header: header size %u, expected %u",
			     get16(buf + HDR_SIZE), header_size_of(h->version));
		return -EBADMSG;
	}
	h->block_size = get32(buf + HDR_BLOCK_SIZE);
	if (h->block_size != EKMFS_BLOCK_SIZE) {
		ekmfs_seterr("file header: block size %u, expected %u",
			     h->block_size, EKMFS_BLOCK_SIZE);
		return -EBADMSG;
	}
	h->flags = get32(buf + HDR_FLAGS);
	if (h->flags != 0) {
		ekmfs_seterr("file header: unknown flags 0x%x", h->flags);
		return -EBADMSG;
	}
	memcpy(h->file_id, buf + HDR_FILE_ID, EKMFS_FILE_ID_SIZE);
	if (!all_zero(buf + HDR_RESERVED, end - HDR_RESERVED)) {
		ekmfs_seterr("file header: reserved bytes %u..%zu are not zero", HDR_RESERVED,
			     end - 1);
		return -EBADMSG;
	}
	for (int i = 0; i < EKMFS_SLOT_COUNT; i++) {
		rc = slot_parse(buf + ekmfs_slot_offset(i), i, &h->slot[i]);
		if (rc < 0)
			return rc;
	}
	if (h->slot[0].seq == 0 && h->slot[1].seq == 0) {
		ekmfs_seterr("file header: both key slots are empty");
		return -EBADMSG;
	}
	if (h->slot[0].seq == h->slot[1].seq) {
		ekmfs_seterr("file header: both key slots have seq %llu",
			     (unsigned long long)h->slot[0].seq);
		return -EBADMSG;
	}
	return 0;
}

size_t ekmfs_header_serialize(const struct ekmfs_header *h, uint8_t *buf)
{
	size_t end = h->version == EKMFS_FORMAT_V1 ? HDR_END_V1 : HDR_END_V2;

	memset(buf, 0, end);
	prefix_serialize(h, buf);
	for (int i = 0; i < EKMFS_SLOT_COUNT; i++)
		slot_serialize(&h->slot[i], buf + ekmfs_slot_offset(i));
	return end;
}

void ekmfs_header_init(struct ekmfs_header *h, const uint8_t file_id[EKMFS_FILE_ID_SIZE])
{
	memset(h, 0, sizeof(*h));
	h->version = EKMFS_FORMAT_VERSION;
	h->block_size = EKMFS_BLOCK_SIZE;
	h->flags = 0;
	memcpy(h->file_id, file_id, EKMFS_FILE_ID_SIZE);
}

/* ---- 3. slot selection, wrap, unwrap, clear ---- */

int ekmfs_header_newest_slot(const struct ekmfs_header *h, int *fallback)
{
	uint64_t s0 = h->slot[0].seq, s1 = h->slot[1].seq;

	if (fallback)
		*fallback = -1;
	if (s0 == 0 && s1 == 0)
		return -ENOKEY;
	if (s0 == 0)
		return 1;
	if (s1 == 0)
		return 0;
	if (fallback)
		*fallback = s0 > s1 ? 1 : 0;
	return s0 > s1 ? 0 : 1;
}

int ekmfs_header_owner_slot(const struct ekmfs_header *h)
{
	int fallback, newest = ekmfs_header_newest_slot(h, &fallback);

	if (newest >= 0 && !h->slot[newest].tenant_id)
		newest = fallback;
	return newest >= 0 ? newest : -1;
}

/* AAD = header bytes 0..31 ‖ slot bytes 0..15: the slot is bound to this
 * file (id), this format (magic, version, sizes, flags) and its own seq,
 * tenant and KEK version, so no field can be edited or the slot moved to
 * another file without the unwrap failing. */
static void slot_aad(const struct ekmfs_header *h, uint64_t seq, uint32_t tenant_id,
		     uint32_t kek_version, uint8_t aad[SLOT_AAD_SIZE])
{
	prefix_serialize(h, aad);
	put64(aad + EKMFS_HEADER_PREFIX_SIZE + SLOT_SEQ, seq);
	put32(aad + EKMFS_HEADER_PREFIX_SIZE + SLOT_TENANT, tenant_id);
	put32(aad + EKMFS_HEADER_PREFIX_SIZE + SLOT_KEK_VERSION, kek_version);
}

int ekmfs_slot_wrap(struct ekmfs_header *h, int idx, uint64_t seq,
		    uint32_t tenant_id, uint32_t kek_version,
		    const uint8_t kek[EKMFS_KEY_SIZE], const uint8_t dek[EKMFS_KEY_SIZE],
		    const uint8_t nonce[EKMFS_NONCE_SIZE])
{
	uint8_t aad[SLOT_AAD_SIZE];
	struct ekmfs_slot *s;
	int rc;

	if (idx < 0 || idx >= EKMFS_SLOT_COUNT || seq == 0) {
		ekmfs_seterr("key slot wrap: invalid slot %d or seq 0", idx);
		return -EINVAL;
	}
	s = &h->slot[idx];
	slot_aad(h, seq, tenant_id, kek_version, aad);
	rc = ekmfs_aead_seal(kek, nonce, aad, sizeof(aad), dek, EKMFS_KEY_SIZE,
			     s->wrapped_dek, s->tag);
	if (rc < 0) {
		ekmfs_slot_clear(h, idx);
		ekmfs_seterr("key slot %d: wrapping the DEK failed", idx);
		return -EIO;
	}
	s->seq = seq;
	s->tenant_id = tenant_id;
	s->kek_version = kek_version;
	memcpy(s->nonce, nonce, EKMFS_NONCE_SIZE);
	return 0;
}

int ekmfs_slot_unwrap(const struct ekmfs_header *h, int idx,
		      const uint8_t kek[EKMFS_KEY_SIZE], uint8_t dek[EKMFS_KEY_SIZE])
{
	uint8_t aad[SLOT_AAD_SIZE];
	const struct ekmfs_slot *s;
	int rc;

	if (idx < 0 || idx >= EKMFS_SLOT_COUNT) {
		rc = -EINVAL;
		goto fail;
	}
	s = &h->slot[idx];
	if (s->seq == 0) {
		rc = -ENOKEY;
		goto fail;
	}
	slot_aad(h, s->seq, s->tenant_id, s->kek_version, aad);
	rc = ekmfs_aead_open(kek, s->nonce, aad, sizeof(aad), s->wrapped_dek,
			     EKMFS_KEY_SIZE, s->tag, dek);
	if (rc == 0)
		return 0;
	ekmfs_seterr("key slot %d (tenant %u, KEK version %u): DEK does not unwrap "
		     "(wrong KEK or tampered header)", idx, s->tenant_id, s->kek_version);
	rc = rc == -EBADMSG ? -EBADMSG : -EIO;
fail:
	ekmfs_wipe(dek, EKMFS_KEY_SIZE);
	return rc;
}

void ekmfs_slot_clear(struct ekmfs_header *h, int idx)
{
	if (idx < 0 || idx >= EKMFS_SLOT_COUNT)
		return;
	ekmfs_wipe(&h->slot[idx], sizeof(h->slot[idx]));
}
