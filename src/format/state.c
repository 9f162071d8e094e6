/*
 * state.c - the state records of a v2 file header (docs/FORMAT.md, "State
 * records" and "Holes").
 *
 * Owns: serialising, authenticating and parsing one 256-byte state record,
 * the state key it is MACed with, and the arithmetic of hole runs (which
 * blocks read as zeros without stored bytes). Pure functions.
 *
 * Divisions:
 *   1. little-endian helpers and the record layout
 *   2. the state key and the MAC
 *   3. serialise / parse
 *   4. holes
 *
 * Every byte of a record is either MACed and checked (fields, reserved
 * zeros, unused hole entries) or the MAC itself, and the MAC binds the
 * file id: a record cannot be edited, grown a hole or moved into another
 * file without failing.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ekmfs/format.h"
#include "ekmfs/mac.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

/* ---- 1. little-endian helpers and the record layout ---- */

#define ST_SEQ 0
#define ST_SIZE 8
#define ST_JOURNAL 16
#define ST_NHOLES 24            /* u16 */
#define ST_NSALTS 26            /* u8 */
#define ST_RESERVED 27          /* 5 bytes */
#define ST_HOLES 32
#define ST_HOLE_SIZE 16
#define ST_SALTS (ST_HOLES + EKMFS_STATE_HOLES * ST_HOLE_SIZE)
#define ST_MAC (ST_SALTS + EKMFS_STATE_SALTS * EKMFS_STATE_SALT_SIZE)

#define STATE_LABEL "ekmfs-v2-state"
#define STATE_KEY_INFO "ekmfs-v2-state"

_Static_assert(ST_SALTS == 176, "the salts start at byte 176");
_Static_assert(ST_MAC == 224, "the MAC starts at byte 224");
_Static_assert(ST_MAC + EKMFS_STATE_MAC_SIZE == EKMFS_STATE_SIZE, "a record is 256 bytes");
_Static_assert(EKMFS_STATE_OFFSET + EKMFS_STATE_COUNT * EKMFS_STATE_SIZE ==
	       EKMFS_HEADER_SIZE_V2, "the records fill sector 1");

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static bool all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

/* ---- 2. the state key and the MAC ---- */

int ekmfs_state_key(const uint8_t dek[EKMFS_KEY_SIZE], uint8_t out[EKMFS_KEY_SIZE])
{
	return ekmfs_hkdf_sha256(dek, EKMFS_KEY_SIZE, STATE_KEY_INFO, out, EKMFS_KEY_SIZE);
}

/* HMAC-SHA256(key, "ekmfs-v2-state" ‖ file id ‖ record bytes 0..223). */
static int state_mac(const uint8_t key[EKMFS_KEY_SIZE],
		     const uint8_t file_id[EKMFS_FILE_ID_SIZE], const uint8_t *rec,
		     uint8_t mac[EKMFS_HMAC_SIZE])
{
	const struct ekmfs_mac_part parts[] = {
		{ STATE_LABEL, sizeof(STATE_LABEL) - 1 },
		{ file_id, EKMFS_FILE_ID_SIZE },
		{ rec, ST_MAC },
	};

	return ekmfs_hmac_sha256(key, EKMFS_KEY_SIZE, parts, 3, mac);
}

/* ---- 3. serialise / parse ---- */

int ekmfs_state_serialize(const struct ekmfs_state *st,
			  const uint8_t key[EKMFS_KEY_SIZE],
			  const uint8_t file_id[EKMFS_FILE_ID_SIZE],
			  uint8_t out[EKMFS_STATE_SIZE])
{
	memset(out, 0, EKMFS_STATE_SIZE);
	if (st->seq == 0)
		return 0;
	put64(out + ST_SEQ, st->seq);
	put64(out + ST_SIZE, st->size);
	put64(out + ST_JOURNAL, st->journal);
	out[ST_NHOLES] = (uint8_t)st->nholes;
	out[ST_NHOLES + 1] = (uint8_t)(st->nholes >> 8);
	out[ST_NSALTS] = st->nsalts;
	for (unsigned i = 0; i < st->nholes && i < EKMFS_STATE_HOLES; i++) {
		put64(out + ST_HOLES + i * ST_HOLE_SIZE, st->holes[i].first);
		put64(out + ST_HOLES + i * ST_HOLE_SIZE + 8, st->holes[i].count);
	}
	for (unsigned i = 0; i < st->nsalts && i < EKMFS_STATE_SALTS; i++)
		memcpy(out + ST_SALTS + i * EKMFS_STATE_SALT_SIZE, st->salts[i],
		       EKMFS_STATE_SALT_SIZE);
	return state_mac(key, file_id, out, out + ST_MAC);
}

/* The structural rules of a record whose MAC checked out. */
static int state_check(const struct ekmfs_state *st, const uint8_t *in)
{
	uint64_t nblocks = ekmfs_nblocks(st->size), prev_end = 0;

	if (st->size > EKMFS_MAX_PLAIN) {
		ekmfs_seterr("state record: size %llu beyond the largest file",
			     (unsigned long long)st->size);
		return -EBADMSG;
	}
	if (!all_zero(in + ST_RESERVED, ST_HOLES - ST_RESERVED)) {
		ekmfs_seterr("state record: reserved bytes are not zero");
		return -EBADMSG;
	}
	if (st->nholes > EKMFS_STATE_HOLES) {
		ekmfs_seterr("state record: %u holes (at most %u)", st->nholes,
			     EKMFS_STATE_HOLES);
		return -EBADMSG;
	}
	for (unsigned i = 0; i < st->nholes; i++) {
		const struct ekmfs_hole *h = &st->holes[i];

		if (h->count == 0 || h->first > nblocks || h->count > nblocks - h->first ||
		    (i > 0 && h->first <= prev_end)) {
			ekmfs_seterr("state record: hole %u (blocks %llu+%llu) is empty, out of "
				     "order, adjacent to another or beyond the size", i,
				     (unsigned long long)h->first, (unsigned long long)h->count);
			return -EBADMSG;
		}
		prev_end = h->first + h->count;
	}
	if (!all_zero(in + ST_HOLES + st->nholes * ST_HOLE_SIZE,
		      (EKMFS_STATE_HOLES - st->nholes) * ST_HOLE_SIZE)) {
		ekmfs_seterr("state record: unused hole entries are not zero");
		return -EBADMSG;
	}
	if (st->nsalts > EKMFS_STATE_SALTS ||
	    !all_zero(in + ST_SALTS + st->nsalts * EKMFS_STATE_SALT_SIZE,
		      (EKMFS_STATE_SALTS - st->nsalts) * EKMFS_STATE_SALT_SIZE)) {
		ekmfs_seterr("state record: %u salts, or unused salt entries not zero",
			     st->nsalts);
		return -EBADMSG;
	}
	for (unsigned i = 0; i < st->nsalts; i++)
		for (unsigned k = 0; k < i; k++)
			if (memcmp(st->salts[i], st->salts[k], EKMFS_STATE_SALT_SIZE) == 0) {
				ekmfs_seterr("state record: salt %u repeats salt %u", i, k);
				return -EBADMSG;
			}
	return 0;
}

void ekmfs_state_peek(const uint8_t in[EKMFS_STATE_SIZE], struct ekmfs_state *st)
{
	memset(st, 0, sizeof(*st));
	st->seq = get64(in + ST_SEQ);
	st->size = get64(in + ST_SIZE);
	st->journal = get64(in + ST_JOURNAL);
	st->nholes = (uint16_t)(in[ST_NHOLES] | in[ST_NHOLES + 1] << 8);
	if (st->nholes > EKMFS_STATE_HOLES)
		st->nholes = EKMFS_STATE_HOLES;
	for (unsigned i = 0; i < st->nholes; i++) {
		st->holes[i].first = get64(in + ST_HOLES + i * ST_HOLE_SIZE);
		st->holes[i].count = get64(in + ST_HOLES + i * ST_HOLE_SIZE + 8);
	}
}

int ekmfs_state_parse(const uint8_t in[EKMFS_STATE_SIZE],
		      const uint8_t key[EKMFS_KEY_SIZE],
		      const uint8_t file_id[EKMFS_FILE_ID_SIZE], struct ekmfs_state *st)
{
	uint8_t mac[EKMFS_HMAC_SIZE];
	int rc;

	memset(st, 0, sizeof(*st));
	if (all_zero(in, EKMFS_STATE_SIZE))
		return 0;    /* an empty record */
	rc = state_mac(key, file_id, in, mac);
	if (rc < 0)
		return -EIO;
	if (CRYPTO_memcmp(mac, in + ST_MAC, sizeof(mac)) != 0) {
		ekmfs_seterr("state record: MAC does not verify (tampered, torn or from "
			     "another file)");
		return -EBADMSG;
	}
	st->seq = get64(in + ST_SEQ);
	st->size = get64(in + ST_SIZE);
	st->journal = get64(in + ST_JOURNAL);
	st->nholes = (uint16_t)(in[ST_NHOLES] | in[ST_NHOLES + 1] << 8);
	st->nsalts = in[ST_NSALTS];
	for (unsigned i = 0; i < st->nsalts && i < EKMFS_STATE_SALTS; i++)
		memcpy(st->salts[i], in + ST_SALTS + i * EKMFS_STATE_SALT_SIZE,
		       EKMFS_STATE_SALT_SIZE);
	if (st->seq == 0) {
		ekmfs_seterr("state record: seq 0 in a record that is not empty");
		rc = -EBADMSG;
		goto fail;
	}
	for (unsigned i = 0; i < st->nholes && i < EKMFS_STATE_HOLES; i++) {
		st->holes[i].first = get64(in + ST_HOLES + i * ST_HOLE_SIZE);
		st->holes[i].count = get64(in + ST_HOLES + i * ST_HOLE_SIZE + 8);
	}
	rc = state_check(st, in);
	if (rc == 0)
		return 0;
fail:
	memset(st, 0, sizeof(*st));
	return rc;
}

/* ---- 4. holes ---- */

bool ekmfs_state_is_hole(const struct ekmfs_state *st, uint64_t index)
{
	for (unsigned i = 0; i < st->nholes; i++) {
		if (index < st->holes[i].first)
			return false;
		if (index - st->holes[i].first < st->holes[i].count)
			return true;
	}
	return false;
}

/* Add [first, end) to st's runs, merging runs it overlaps or touches. Built
 * in a scratch list first, so st is untouched on -ENOSPC. */
static int holes_add(struct ekmfs_state *st, uint64_t first, uint64_t end)
{
	struct ekmfs_hole out[EKMFS_STATE_HOLES + 1];
	unsigned n = 0;
	bool placed = false;

	for (unsigned i = 0; i < st->nholes; i++) {
		uint64_t cs = st->holes[i].first, ce = cs + st->holes[i].count;

		if (ce < first) {
			out[n++] = st->holes[i];
		} else if (cs > end) {
			if (!placed)
				out[n++] = (struct ekmfs_hole){ first, end - first };
			placed = true;
			out[n++] = st->holes[i];
		} else {
			first = cs < first ? cs : first;
			end = ce > end ? ce : end;
		}
	}
	if (!placed)
		out[n++] = (struct ekmfs_hole){ first, end - first };
	if (n > EKMFS_STATE_HOLES)
		return -ENOSPC;
	memcpy(st->holes, out, n * sizeof(out[0]));
	memset(st->holes + n, 0, (EKMFS_STATE_HOLES - n) * sizeof(out[0]));
	st->nholes = (uint16_t)n;
	return 0;
}

/* Remove [first, end) from st's runs, splitting a run it falls inside;
 * -ENOSPC (st untouched) when that needs one run too many. */
static int holes_remove(struct ekmfs_state *st, uint64_t first, uint64_t end)
{
	struct ekmfs_hole out[EKMFS_STATE_HOLES + 1];
	unsigned n = 0;

	for (unsigned i = 0; i < st->nholes; i++) {
		uint64_t cs = st->holes[i].first, ce = cs + st->holes[i].count;

		if (ce <= first || cs >= end) {
			out[n++] = st->holes[i];
			continue;
		}
		if (cs < first)
			out[n++] = (struct ekmfs_hole){ cs, first - cs };
		if (ce > end) {
			if (n == EKMFS_STATE_HOLES + 1)
				return -ENOSPC;
			out[n++] = (struct ekmfs_hole){ end, ce - end };
		}
	}
	if (n > EKMFS_STATE_HOLES)
		return -ENOSPC;
	memcpy(st->holes, out, n * sizeof(out[0]));
	memset(st->holes + n, 0, (EKMFS_STATE_HOLES - n) * sizeof(out[0]));
	st->nholes = (uint16_t)n;
	return 0;
}

int ekmfs_state_add_hole(struct ekmfs_state *st, uint64_t first, uint64_t count)
{
	if (count == 0)
		return 0;
	return holes_add(st, first, first + count);
}

int ekmfs_state_fill_hole(struct ekmfs_state *st, uint64_t first, uint64_t count)
{
	if (count == 0)
		return 0;
	return holes_remove(st, first, first + count);
}

void ekmfs_state_cut_holes(struct ekmfs_state *st, uint64_t nblocks)
{
	if (st->nholes == 0)
		return;
	(void)holes_remove(st, nblocks, UINT64_MAX); /* never splits: no ENOSPC */
}

bool ekmfs_state_has_salt(const struct ekmfs_state *st, const uint8_t *salt)
{
	for (unsigned i = 0; i < st->nsalts; i++)
		if (memcmp(st->salts[i], salt, EKMFS_STATE_SALT_SIZE) == 0)
			return true;
	return false;
}

int ekmfs_state_add_salt(struct ekmfs_state *st, const uint8_t *salt)
{
	if (ekmfs_state_has_salt(st, salt))
		return 0;
	if (st->nsalts >= EKMFS_STATE_SALTS)
		return -ENOSPC;
	memcpy(st->salts[st->nsalts++], salt, EKMFS_STATE_SALT_SIZE);
	return 0;
}

bool ekmfs_state_same(const struct ekmfs_state *a, const struct ekmfs_state *b)
{
	if (a->size != b->size || a->journal != b->journal || a->nholes != b->nholes ||
	    a->nsalts != b->nsalts ||
	    memcmp(a->salts, b->salts, (size_t)a->nsalts * EKMFS_STATE_SALT_SIZE) != 0)
		return false;
	for (unsigned i = 0; i < a->nholes && i < EKMFS_STATE_HOLES; i++)
		if (a->holes[i].first != b->holes[i].first ||
		    a->holes[i].count != b->holes[i].count)
			return false;
	return true;
}
