/*
 * fuzz_journal.c - a file's journal (docs/FORMAT.md, "Journal"): its
 * 64-byte header, then records (16-byte record header, one stored block).
 *
 * Input: byte 0 flags (bit 0: keep the header's own MAC; otherwise the
 * harness computes it as FORMAT.md specifies), then the journal as stored.
 * Keys: vector d's DEK and state key (its journal is vector e, in the
 * corpus), so recorded blocks open.
 * Calls (include/ekmfs/format.h, mac.h): ekmfs_journal_header_parse,
 * _header_serialize, ekmfs_journal_rec_parse, _rec_serialize,
 * ekmfs_state_key, ekmfs_block_open, ekmfs_hmac_sha256.
 *
 * Properties: an accepted header or record header serialises back to its
 * bytes; a record's stored length is one a v2 block can have; a block
 * opens (0) or fails authentication (-EBADMSG), nothing else.
 */
#include <errno.h>
#include <string.h>

#include "ekmfs/format.h"
#include "ekmfs/mac.h"
#include "fuzz.h"

#define MAC_AT 32
#define LABEL "ekmfs-v2-journal"

static uint8_t dek[EKMFS_KEY_SIZE], skey[EKMFS_KEY_SIZE];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	for (int i = 0; i < EKMFS_KEY_SIZE; i++)
		dek[i] = (uint8_t)(0xa0 + i);   /* vector d's DEK */
	FUZZ_CHECK(ekmfs_state_key(dek, skey) == 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[EKMFS_JOURNAL_HEADER_SIZE], out[EKMFS_JOURNAL_HEADER_SIZE];
	uint8_t pt[EKMFS_BLOCK_SIZE];
	struct ekmfs_journal_header jh;
	size_t off;
	int rc;

	if (size < 1 + EKMFS_JOURNAL_HEADER_SIZE)
		return 0;
	memcpy(hdr, data + 1, sizeof(hdr));
	if (!(data[0] & 1)) {
		const struct ekmfs_mac_part parts[] = {
			{ LABEL, sizeof(LABEL) - 1 }, { hdr, MAC_AT } };

		FUZZ_CHECK(ekmfs_hmac_sha256(skey, sizeof(skey), parts, 2, hdr + MAC_AT) == 0);
	}
	rc = ekmfs_journal_header_parse(hdr, skey, &jh);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	if (rc)
		return 0;
	FUZZ_CHECK(jh.generation >= 1);
	FUZZ_CHECK(ekmfs_journal_header_serialize(&jh, skey, out) == 0);
	FUZZ_CHECK(memcmp(out, hdr, sizeof(out)) == 0);

	for (off = 1 + EKMFS_JOURNAL_HEADER_SIZE; size - off >= EKMFS_JOURNAL_REC_SIZE;) {
		uint8_t again[EKMFS_JOURNAL_REC_SIZE];
		uint64_t index;
		uint32_t len;

		rc = ekmfs_journal_rec_parse(data + off, &index, &len);
		FUZZ_CHECK(rc == 0 || rc == -ENODATA || rc == -EBADMSG);
		if (rc)
			break;
		FUZZ_CHECK(len > ekmfs_layout_v2.overhead && len <= EKMFS_CBLOCK_SIZE_V2);
		ekmfs_journal_rec_serialize(index, len, again);
		FUZZ_CHECK(memcmp(again, data + off, sizeof(again)) == 0);
		off += EKMFS_JOURNAL_REC_SIZE;
		if (size - off < len)
			break;          /* a torn last record */
		rc = ekmfs_block_open(&ekmfs_layout_v2, dek, jh.file_id, index, data + off, len,
				      pt);
		FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
		off += len;
	}
	return 0;
}
