/*
 * fuzz_state.c - one v2 state record (docs/FORMAT.md, "State records"),
 * then the hole arithmetic on what it states.
 *
 * Input: byte 0 flags (bit 0: keep the record's own MAC; otherwise the
 * harness computes the MAC over bytes 0..223 as FORMAT.md specifies, so the
 * fuzzer reaches the field checks behind it), bytes 1..256 the record, the
 * rest a script of hole operations (3 bytes each: op, first, count).
 * Calls (include/ekmfs/format.h, mac.h): ekmfs_state_parse, _serialize,
 * _peek, _is_hole, _add_hole, _fill_hole, _cut_holes, _has_salt,
 * _add_salt, _same; ekmfs_hmac_sha256.
 *
 * Properties: an accepted record serialises back to the same 256 bytes and
 * peeks to the same fields; after every hole operation the runs stay
 * sorted, disjoint, not touching and non-empty, -ENOSPC leaves the state
 * as it was, and (while the runs stay below MODEL_BLOCKS) every block is a
 * hole exactly when a bitmap model says so.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "ekmfs/format.h"
#include "ekmfs/mac.h"
#include "fuzz.h"

#define MODEL_BLOCKS 300
#define MAC_AT 224
#define LABEL "ekmfs-v2-state"

static const uint8_t key[EKMFS_KEY_SIZE] = "fuzz-state-key-0123456789abcdef";
static const uint8_t fid[EKMFS_FILE_ID_SIZE] = "fuzz-file-id-01";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

static void mac_record(uint8_t *rec)
{
	const struct ekmfs_mac_part parts[] = {
		{ LABEL, sizeof(LABEL) - 1 },
		{ fid, sizeof(fid) },
		{ rec, MAC_AT },
	};

	FUZZ_CHECK(ekmfs_hmac_sha256(key, sizeof(key), parts, 3, rec + MAC_AT) == 0);
}

static void check_runs(const struct ekmfs_state *st)
{
	FUZZ_CHECK(st->nholes <= EKMFS_STATE_HOLES);
	for (unsigned i = 0; i < st->nholes; i++) {
		FUZZ_CHECK(st->holes[i].count > 0);
		if (i)
			FUZZ_CHECK(st->holes[i].first >
				   st->holes[i - 1].first + st->holes[i - 1].count);
	}
}

static bool in_model(const struct ekmfs_state *st)
{
	return !st->nholes || (st->holes[st->nholes - 1].first < MODEL_BLOCKS &&
			       st->holes[st->nholes - 1].count <
				       MODEL_BLOCKS - st->holes[st->nholes - 1].first);
}

static void holes_script(struct ekmfs_state *st, const uint8_t *p, size_t n)
{
	bool model[MODEL_BLOCKS] = { false }, modeled = in_model(st);

	for (unsigned i = 0; modeled && i < st->nholes; i++)
		for (uint64_t b = 0; b < st->holes[i].count; b++)
			model[st->holes[i].first + b] = true;
	for (; n >= 3; p += 3, n -= 3) {
		struct ekmfs_state before = *st;
		uint64_t first = p[1], count = p[2] % 32;
		int rc = 0;

		switch (p[0] % 4) {
		case 0:
			rc = ekmfs_state_add_hole(st, first, count);
			break;
		case 1:
			rc = ekmfs_state_fill_hole(st, first, count);
			break;
		case 2:
			ekmfs_state_cut_holes(st, first);
			break;
		default: {
			uint8_t salt[EKMFS_STATE_SALT_SIZE] = { p[1], p[2] };

			rc = ekmfs_state_add_salt(st, salt);
			FUZZ_CHECK(rc == -ENOSPC || ekmfs_state_has_salt(st, salt));
			FUZZ_CHECK(rc == 0 || st->nsalts == EKMFS_STATE_SALTS);
			continue;
		}
		}
		FUZZ_CHECK(rc == 0 || rc == -ENOSPC);
		if (rc) {
			FUZZ_CHECK(ekmfs_state_same(&before, st));
			continue;
		}
		check_runs(st);
		if (!modeled)
			continue;
		for (uint64_t b = 0; b < MODEL_BLOCKS; b++) {
			if (p[0] % 4 == 0 && b >= first && b < first + count)
				model[b] = true;
			else if (p[0] % 4 == 1 && b >= first && b < first + count)
				model[b] = false;
			else if (p[0] % 4 == 2 && b >= first)
				model[b] = false;
			FUZZ_CHECK(ekmfs_state_is_hole(st, b) == model[b]);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t rec[EKMFS_STATE_SIZE], out[EKMFS_STATE_SIZE];
	struct ekmfs_state st, peek;
	int rc;

	if (size < 1 + EKMFS_STATE_SIZE)
		return 0;
	memcpy(rec, data + 1, EKMFS_STATE_SIZE);
	if (!(data[0] & 1))
		mac_record(rec);
	rc = ekmfs_state_parse(rec, key, fid, &st);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	if (rc)
		return 0;
	if (st.seq) {
		FUZZ_CHECK(ekmfs_state_serialize(&st, key, fid, out) == 0);
		FUZZ_CHECK(memcmp(out, rec, sizeof(out)) == 0);
		ekmfs_state_peek(rec, &peek);
		FUZZ_CHECK(peek.seq == st.seq && peek.size == st.size &&
			   peek.journal == st.journal && peek.nholes == st.nholes &&
			   memcmp(peek.holes, st.holes, sizeof(st.holes)) == 0);
		check_runs(&st);
		for (unsigned i = 0; i < st.nholes; i++)
			FUZZ_CHECK(ekmfs_state_is_hole(&st, st.holes[i].first) &&
				   ekmfs_state_is_hole(&st, st.holes[i].first +
						       st.holes[i].count - 1));
	}
	holes_script(&st, data + 1 + EKMFS_STATE_SIZE, size - 1 - EKMFS_STATE_SIZE);
	return 0;
}
