/*
 * fuzz_header.c - a backing file's first bytes: the header and its key
 * slots (both versions), then, for a slot that opens, the v2 state records
 * and the first blocks.
 *
 * Input: the start of a backing file. Calls (include/ekmfs/format.h):
 * ekmfs_header_parse, _serialize, _newest_slot, _owner_slot,
 * ekmfs_slot_unwrap, ekmfs_state_key, ekmfs_state_parse, ekmfs_state_peek,
 * ekmfs_plain_size, ekmfs_block_open.
 *
 * Properties: the parser is strict (every byte checked, authenticated or
 * reserved zero), so an accepted header serialises back to exactly the
 * bytes it was read from, and parses again to the same struct; newest and
 * owner slots are consistent with the seqs; unwrap, state and block calls
 * return only their documented errors. The corpus holds the format test
 * vectors, whose slots open under the two vector KEKs used here, so the
 * state and block code is reached with real keys.
 */
#include <errno.h>
#include <string.h>

#include "ekmfs/format.h"
#include "fuzz.h"

/* The KEKs of docs/FORMAT.md's test vectors (a, b, c: 00..1f; d: 80..9f). */
static uint8_t keks[2][EKMFS_KEY_SIZE];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	for (int i = 0; i < EKMFS_KEY_SIZE; i++) {
		keks[0][i] = (uint8_t)i;
		keks[1][i] = (uint8_t)(0x80 + i);
	}
	return 0;
}

static void check_slots(const struct ekmfs_header *h)
{
	int fallback, newest = ekmfs_header_newest_slot(h, &fallback);
	int owner = ekmfs_header_owner_slot(h);

	/* The parser refuses two empty slots and equal seqs. */
	FUZZ_CHECK(newest == 0 || newest == 1);
	FUZZ_CHECK(h->slot[newest].seq > 0);
	if (fallback >= 0)
		FUZZ_CHECK(fallback == 1 - newest && h->slot[fallback].seq > 0 &&
			   h->slot[fallback].seq < h->slot[newest].seq);
	else
		FUZZ_CHECK(h->slot[1 - newest].seq == 0);
	FUZZ_CHECK(owner == -1 || owner == newest || owner == fallback);
	if (owner >= 0)
		FUZZ_CHECK(h->slot[owner].seq > 0);
}

/* What a reader does once the DEK is known: the state records (v2), the
 * size, and the first blocks. */
static void open_content(const struct ekmfs_header *h, const uint8_t *dek,
			 const uint8_t *data, size_t size)
{
	const struct ekmfs_layout *l = ekmfs_header_layout(h);
	uint8_t skey[EKMFS_KEY_SIZE], pt[EKMFS_BLOCK_SIZE];
	uint64_t plain;
	int rc;

	FUZZ_CHECK(l != NULL);
	if (l->version == EKMFS_FORMAT_V2 && size >= EKMFS_HEADER_SIZE_V2) {
		FUZZ_CHECK(ekmfs_state_key(dek, skey) == 0);
		for (int i = 0; i < EKMFS_STATE_COUNT; i++) {
			struct ekmfs_state st, peek;

			rc = ekmfs_state_parse(data + ekmfs_state_offset(i), skey, h->file_id, &st);
			FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
			ekmfs_state_peek(data + ekmfs_state_offset(i), &peek);
			if (rc == 0 && st.seq)
				FUZZ_CHECK(peek.seq == st.seq && peek.size == st.size &&
					   peek.journal == st.journal && peek.nholes == st.nholes);
		}
	}
	rc = ekmfs_plain_size(l, size, &plain);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	for (uint64_t i = 0; i < 3; i++) {
		uint64_t off = ekmfs_block_offset(l, i);
		size_t len;

		if (off >= size)
			break;
		len = size - off < l->cblock_size ? (size_t)(size - off) : l->cblock_size;
		rc = ekmfs_block_open(l, dek, h->file_id, i, data + off, len, pt);
		FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EINVAL);
		FUZZ_CHECK(rc != -EINVAL || len <= l->overhead);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[EKMFS_HEADER_PARSE_SIZE], dek[EKMFS_KEY_SIZE];
	struct ekmfs_header h, again;
	size_t n;
	int rc;

	rc = ekmfs_header_parse(data, size, &h);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EBADMSG);
	if (rc)
		return 0;
	n = ekmfs_header_serialize(&h, out);
	FUZZ_CHECK(n <= size && memcmp(out, data, n) == 0);
	FUZZ_CHECK(ekmfs_header_parse(out, sizeof(out), &again) == 0);
	FUZZ_CHECK(memcmp(&h, &again, sizeof(h)) == 0);
	check_slots(&h);

	for (int k = 0; k < 2; k++) {
		for (int idx = 0; idx < EKMFS_SLOT_COUNT; idx++) {
			rc = ekmfs_slot_unwrap(&h, idx, keks[k], dek);
			FUZZ_CHECK(rc == 0 || rc == -ENOKEY || rc == -EBADMSG);
			if (rc == 0)
				open_content(&h, dek, data, size);
		}
	}
	return 0;
}
