/*
 * write.c - writes, truncation and holes of a backing file.
 *
 * Owns: turning a write, a truncate or a punch into a change: the state
 * after it (size, holes), the blocks to seal again (the data's blocks, a
 * partial last block that grows or shrinks, punched edges), sealing them
 * under the file's XAES write key, and sending each where the rules of
 * private.h put it (the journal when the durable state still needs the old
 * version, else in place), then the working state record.
 *
 * Divisions:
 *   1. the change: plaintext of a block after it
 *   2. sealing and writing a run of blocks
 *   3. applying a change (order, rollback, the new state)
 *   4. write, truncate, punch
 *
 * Order within a change, so that an error (ENOSPC, EDQUOT, EIO) leaves the
 * file as it was and a crash at any point leaves a state that settles
 * (content.c): the file is extended (new blocks, a sparse tail) first, the
 * journal records next, blocks overwritten in place after that, and the
 * working record last. A failure before the record cuts the extension and
 * the journal back.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ekmfs/aead.h"
#include "ekmfs/io.h"
#include "ekmfs/parallel.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "private.h"

#define PARALLEL_MIN_BLOCKS 16

static const uint8_t zero_block[EKMFS_BLOCK_SIZE];

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* ---- 1. the change ---- */

struct change {
	struct ekmfs_content *c;
	bool shared;                  /* only a shared lock: no state change */
	struct ekmfs_state next;      /* the state after the change */
	uint64_t old_size;
	const uint8_t *data;          /* bytes [doff, dend) (NULL: none) */
	uint64_t doff, dend;
	uint64_t zoff, zend;          /* bytes to zero (empty: none) */
	uint64_t *bad_block;
	uint8_t key[EKMFS_KEY_SIZE];  /* the write key and its salt */
	uint8_t salt[EKMFS_XAES_SALT_SIZE];
	/* journal records written by this change, mapped when it is done */
	uint64_t *jidx, *joff;
	uint32_t *jlen;
	size_t jn, jcap;
	uint64_t jstart;              /* journal end before; UINT64_MAX: no journal then */
	uint64_t old_phys;
	/* buffers of one chunk */
	uint8_t *cbuf;
	uint8_t *pt;                  /* secure: one merged block */
	uint8_t nonces[CHUNK_BLOCKS][EKMFS_BLOCK_NONCE_V2];
	bool prot[CHUNK_BLOCKS];
};

static bool covers(uint64_t a, uint64_t b, uint64_t from, uint64_t to)
{
	return a <= from && b >= to;
}

static bool overlaps(uint64_t a, uint64_t b, uint64_t from, uint64_t to)
{
	return a < to && b > from;
}

/* Whether block index (new length nl) keeps old bytes: some byte below the
 * old size, in a block that is not a hole now, that neither the data nor
 * the zero range replaces. */
static bool old_needed(const struct change *ch, uint64_t index, uint64_t nl)
{
	uint64_t bstart = index * EKMFS_BLOCK_SIZE;
	uint64_t old_end = min_u64(ch->old_size, bstart + nl);

	if (bstart >= ch->old_size || ekmfs_state_is_hole(&ch->c->cur, index))
		return false;
	if (ch->data && covers(ch->doff, ch->dend, bstart, old_end))
		return false;
	if (covers(ch->zoff, ch->zend, bstart, old_end))
		return false;
	return true;
}

/* The plaintext of block index (new length nl) when it needs no merging:
 * the data, or zeros; NULL when old bytes and new ones must be merged. */
static const uint8_t *plain_source(const struct change *ch, uint64_t index, uint64_t nl)
{
	uint64_t bstart = index * EKMFS_BLOCK_SIZE, bend = bstart + nl;

	if (ch->data && covers(ch->doff, ch->dend, bstart, bend))
		return ch->data + (bstart - ch->doff);
	if (old_needed(ch, index, nl) || (ch->data && overlaps(ch->doff, ch->dend, bstart, bend)))
		return NULL;
	return zero_block;
}

/* Build the merged plaintext of block index into ch->pt. */
static int merge_block(struct change *ch, uint64_t index, uint64_t nl)
{
	uint64_t bstart = index * EKMFS_BLOCK_SIZE, bend = bstart + nl, ol = 0;
	int rc;

	if (old_needed(ch, index, nl)) {
		ol = min_u64(ekmfs_block_len(ch->old_size, index), nl);
		rc = content_load_block(ch->c, index, ekmfs_block_len(ch->old_size, index),
					ch->pt, ch->bad_block);
		if (rc < 0)
			return rc;
	}
	memset(ch->pt + ol, 0, nl - ol);
	if (ch->data && overlaps(ch->doff, ch->dend, bstart, bend)) {
		uint64_t from = max_u64(ch->doff, bstart), to = min_u64(ch->dend, bend);

		memcpy(ch->pt + (from - bstart), ch->data + (from - ch->doff), to - from);
	}
	if (overlaps(ch->zoff, ch->zend, bstart, bend)) {
		uint64_t from = max_u64(ch->zoff, bstart), to = min_u64(ch->zend, bend);

		memset(ch->pt + (from - bstart), 0, to - from);
	}
	return 0;
}

/* List salt in st, the state the blocks are written for. A fifth salt
 * since the last durable state pushes the oldest out: blocks sealed under
 * it no longer count as new after a crash, so settling falls back to the
 * durable state (unsynced data is lost, never old data taken for new).
 * Such a state cannot be told apart from the older record once it is
 * durable either: the next sync writes it to both (make_durable). */
static void note_salt(struct ekmfs_content *c, struct ekmfs_state *st, const uint8_t *salt)
{
	if (ekmfs_state_add_salt(st, salt) == -ENOSPC) {
		memmove(st->salts[0], st->salts[1],
			(EKMFS_STATE_SALTS - 1) * EKMFS_STATE_SALT_SIZE);
		st->nsalts--;
		(void)ekmfs_state_add_salt(st, salt);
		c->salts_evicted = true;
	}
}

/* ---- 2. sealing and writing a run of blocks ---- */

struct seal_job {
	struct change *ch;
	uint64_t first, count;
	unsigned nparts;
	int rc[EKMFS_PARALLEL_MAX];
};

static unsigned parts_for(uint64_t nblocks)
{
	uint64_t most = nblocks / (PARALLEL_MIN_BLOCKS / 2);
	unsigned width;

	if (nblocks < PARALLEL_MIN_BLOCKS)
		return 1;
	width = ekmfs_parallel_width();
	return most < width ? (unsigned)most : width;
}

static void seal_part(void *arg, unsigned p)
{
	struct seal_job *j = arg;
	struct change *ch = j->ch;
	const struct ekmfs_layout *l = ch->c->l;
	struct ekmfs_aead_session *s = ekmfs_aead_begin(ch->key);
	uint64_t lo = j->count * p / j->nparts, hi = j->count * (p + 1) / j->nparts;

	j->rc[p] = s ? 0 : -EIO;
	for (uint64_t k = lo; k < hi && j->rc[p] == 0; k++) {
		uint64_t index = j->first + k, nl = ekmfs_block_len(ch->next.size, index);
		const uint8_t *src = plain_source(ch, index, nl);

		if (src) /* merged blocks were sealed before */
			j->rc[p] = ekmfs_block_seal_s(l, s, ch->c->file_id, index, ch->nonces[k],
						      src, nl, ch->cbuf + k * l->cblock_size);
	}
	ekmfs_aead_end(s);
}

/* Seal blocks first..first+count-1 (all in the next state, none a hole)
 * into ch->cbuf: merged ones here one by one, the rest in parallel. */
static int seal_chunk(struct change *ch, uint64_t first, uint64_t count)
{
	const struct ekmfs_layout *l = ch->c->l;
	struct seal_job j = { .ch = ch, .first = first, .count = count,
			      .nparts = parts_for(count) };
	int rc;

	for (uint64_t k = 0; k < count; k++) {
		memcpy(ch->nonces[k], ch->salt, EKMFS_XAES_SALT_SIZE);
		rc = ekmfs_random(ch->nonces[k] + EKMFS_XAES_SALT_SIZE,
				  EKMFS_BLOCK_NONCE_V2 - EKMFS_XAES_SALT_SIZE);
		if (rc < 0) {
			ekmfs_seterr("no random nonce available");
			return rc;
		}
	}
	for (uint64_t k = 0; k < count; k++) {
		uint64_t index = first + k, nl = ekmfs_block_len(ch->next.size, index);
		struct ekmfs_aead_session *s;

		if (plain_source(ch, index, nl))
			continue;
		rc = merge_block(ch, index, nl);
		if (rc == 0) {
			/* ch->key is the key derived for the salt: a session
			 * with it seals under the nonce's GCM half. */
			s = ekmfs_aead_begin(ch->key);
			rc = s ? ekmfs_block_seal_s(l, s, ch->c->file_id, index, ch->nonces[k],
						    ch->pt, nl, ch->cbuf + k * l->cblock_size)
			       : -EIO;
			ekmfs_aead_end(s);
		}
		ekmfs_wipe(ch->pt, EKMFS_BLOCK_SIZE);
		if (rc < 0)
			return rc;
	}
	ekmfs_parallel_run(seal_part, &j, j.nparts);
	for (unsigned p = 0; p < j.nparts; p++) {
		if (j.rc[p] < 0) {
			ekmfs_seterr("sealing a content block failed");
			return -EIO;
		}
	}
	return 0;
}

static int remember_journaled(struct change *ch, uint64_t index, uint64_t off, uint32_t len)
{
	if (ch->jn == ch->jcap) {
		size_t cap = ch->jcap ? 2 * ch->jcap : 64;
		uint64_t *a = realloc(ch->jidx, cap * sizeof(*a));
		uint64_t *b = a ? realloc(ch->joff, cap * sizeof(*b)) : NULL;
		uint32_t *d = b ? realloc(ch->jlen, cap * sizeof(*d)) : NULL;

		if (a)
			ch->jidx = a;
		if (b)
			ch->joff = b;
		if (!d)
			return -ENOMEM;
		ch->jlen = d;
		ch->jcap = cap;
	}
	ch->jidx[ch->jn] = index;
	ch->joff[ch->jn] = off;
	ch->jlen[ch->jn++] = len;
	return 0;
}

/* Write the sealed chunk: protected blocks to the journal (one append),
 * the others in place, runs of consecutive blocks in one transfer. */
static int write_chunk(struct change *ch, uint64_t first, uint64_t count)
{
	struct ekmfs_content *c = ch->c;
	const struct ekmfs_layout *l = c->l;
	struct ekmfs_io_vec v[CHUNK_BLOCKS];
	uint64_t idx[CHUNK_BLOCKS], offs[CHUNK_BLOCKS];
	uint32_t len[CHUNK_BLOCKS];
	const uint8_t *bufs[CHUNK_BLOCKS];
	unsigned nv = 0, nj = 0;
	int rc;

	for (uint64_t k = 0; k < count; k++) {
		uint64_t index = first + k;
		uint32_t stored = (uint32_t)(ekmfs_block_len(ch->next.size, index) + l->overhead);
		uint8_t *b = ch->cbuf + k * l->cblock_size;

		if (ch->prot[k]) {
			idx[nj] = index;
			len[nj] = stored;
			bufs[nj++] = b;
		} else if (nv && v[nv - 1].off + (off_t)v[nv - 1].len ==
					 (off_t)ekmfs_block_offset(l, index) &&
			   (uint8_t *)v[nv - 1].buf + v[nv - 1].len == b) {
			v[nv - 1].len += stored;
		} else {
			v[nv++] = (struct ekmfs_io_vec){ .buf = b, .len = stored,
							 .off = (off_t)ekmfs_block_offset(l, index) };
		}
	}
	if (getenv("EKMFS_DEBUG_WRITE")) {
		fprintf(stderr, "DBG write_chunk first %llu count %llu nv %u nj %u:", (unsigned long long)first,
			(unsigned long long)count, nv, nj);
		for (uint64_t k = 0; k < count; k++)
			fprintf(stderr, " %llu%s", (unsigned long long)(first + k), ch->prot[k] ? "J" : "");
		fprintf(stderr, "\n");
	}
	if (nj) {
		rc = journal_append(c, idx, len, bufs, nj, offs);
		for (unsigned i = 0; rc == 0 && i < nj; i++)
			rc = remember_journaled(ch, idx[i], offs[i], len[i]);
		if (rc < 0)
			return rc;
	}
	if (nv) {
		rc = ekmfs_io_batch_full(c->fd, true, v, nv);
		if (rc < 0) {
			ekmfs_seterr("writing backing file: %s", strerror(-rc));
			return rc;
		}
		for (unsigned i = 0; i < nv; i++)
			if ((uint64_t)v[i].off + v[i].len > c->phys)
				c->phys = (uint64_t)v[i].off + v[i].len;
	}
	return 0;
}

/* Seal and write blocks from..to (inclusive; none a hole in next). */
static int rewrite_blocks(struct change *ch, uint64_t from, uint64_t to)
{
	for (uint64_t b = from; b <= to; b += CHUNK_BLOCKS) {
		uint64_t count = min_u64(to - b + 1, CHUNK_BLOCKS);
		int rc;

		pthread_mutex_lock(&ch->c->mu);
		for (uint64_t k = 0; k < count; k++)
			ch->prot[k] = content_protected(ch->c, b + k);
		pthread_mutex_unlock(&ch->c->mu);
		rc = content_write_key(ch->c, count, !ch->shared, ch->key, ch->salt);
		if (rc == 0 && !ch->shared)
			note_salt(ch->c, &ch->next, ch->salt);
		if (rc == 0)
			rc = seal_chunk(ch, b, count);
		if (rc == 0)
			rc = write_chunk(ch, b, count);
		if (rc < 0)
			return rc;
		if (to - b < CHUNK_BLOCKS)
			break;
	}
	return 0;
}

/* ---- 3. applying a change ---- */

/* The runs of blocks a change rewrites, each [first, last]: at most the
 * old last block, the data (or a punch's two edges) and a fallback run. */
#define MAX_RUNS 4
struct runs {
	uint64_t first[MAX_RUNS], last[MAX_RUNS];
	unsigned n;
};

static void runs_add(struct runs *r, uint64_t first, uint64_t last)
{
	for (unsigned i = 0; i < r->n; i++) {
		/* merge with an overlapping or adjacent run */
		if (first <= r->last[i] + 1 && last + 1 >= r->first[i]) {
			r->first[i] = min_u64(r->first[i], first);
			r->last[i] = max_u64(r->last[i], last);
			return;
		}
	}
	if (r->n < MAX_RUNS) {
		r->first[r->n] = first;
		r->last[r->n++] = last;
	}
}

static int change_begin(struct change *ch, struct ekmfs_content *c, uint64_t nblocks,
			uint64_t *bad_block)
{
	memset(ch, 0, offsetof(struct change, nonces));
	ch->c = c;
	ch->next = c->cur;
	if (c->salts_reset) {
		ch->next.nsalts = 0;
		memset(ch->next.salts, 0, sizeof(ch->next.salts));
	}
	ch->old_size = c->cur.size;
	ch->bad_block = bad_block;
	ch->old_phys = c->phys;
	ch->zoff = ch->zend = 0;
	pthread_mutex_lock(&c->mu);
	ch->jstart = c->j ? c->j->end : UINT64_MAX;
	pthread_mutex_unlock(&c->mu);
	/* Fallback zero runs may need more than nblocks: a full chunk then. */
	(void)nblocks;
	ch->cbuf = malloc((size_t)CHUNK_BLOCKS * c->l->cblock_size);
	ch->pt = ekmfs_secure_alloc(EKMFS_BLOCK_SIZE);
	if (!ch->cbuf || !ch->pt)
		return -ENOMEM;
	return 0;
}

static void change_end(struct change *ch)
{
	ekmfs_wipe(ch->key, sizeof(ch->key));
	ekmfs_secure_free(ch->pt, EKMFS_BLOCK_SIZE);
	free(ch->cbuf);
	free(ch->jidx);
	free(ch->joff);
	free(ch->jlen);
}

/* Undo what a failed change left: the extension and its journal records. */
static void change_rollback(struct change *ch, bool shared)
{
	struct ekmfs_content *c = ch->c;
	struct stat st;

	/* A write that failed part way may have extended the file without
	 * phys knowing: ask the file. */
	if (fstat(c->fd, &st) == 0 && (uint64_t)st.st_size > ch->old_phys &&
	    ekmfs_io->ftruncate(c->fd, (off_t)ch->old_phys) == 0)
		c->phys = ch->old_phys;
	if (shared || !c->j)
		return; /* others may have appended since (a one-chunk change) */
	if (ch->jstart == UINT64_MAX) {
		journal_close(c, true);
	} else if (c->j->end > ch->jstart &&
		   ekmfs_io->ftruncate(c->j->fd, (off_t)ch->jstart) == 0) {
		c->j->end = ch->jstart;
	}
}

/*
 * Rewrite the runs, make the file as long as next needs, write the working
 * record if the state changes, and map the journal records. shared: the
 * caller holds only a shared lock (a write that changes no state).
 */
static int change_apply(struct change *ch, struct runs *r, bool shared)
{
	struct ekmfs_content *c = ch->c;
	uint64_t want = ekmfs_backing_size(c->l, ch->next.size);
	struct ekmfs_state old = c->cur;
	int rc = 0;

	if (getenv("EKMFS_DEBUG_WRITE"))
		for (unsigned i = 0; i < r->n; i++)
			fprintf(stderr, "DBG run %u: [%llu, %llu] old_size %llu next %llu holes %u\n", i,
				(unsigned long long)r->first[i], (unsigned long long)r->last[i],
				(unsigned long long)ch->old_size, (unsigned long long)ch->next.size,
				ch->next.nholes);
	/* Runs beyond the old end first (the extension), then the others. */
	for (int pass = 0; pass < 2 && rc == 0; pass++)
		for (unsigned i = 0; i < r->n && rc == 0; i++) {
			bool beyond = r->first[i] * EKMFS_BLOCK_SIZE >= ch->old_size;

			if (beyond == (pass == 0))
				rc = rewrite_blocks(ch, r->first[i], r->last[i]);
		}
	if (rc == 0 && c->phys < want) {
		/* A sparse tail (the last blocks are holes). */
		if (ekmfs_io->ftruncate(c->fd, (off_t)want) < 0) {
			rc = -errno;
			ekmfs_seterr("extending the backing file: %s", strerror(errno));
		} else {
			c->phys = want;
		}
	}
	if (rc == 0 && !shared && !ekmfs_state_same(&ch->next, &old)) {
		c->cur = ch->next;
		rc = content_write_state(c, false);
		if (rc < 0)
			c->cur = old;
		else
			c->salts_reset = false;
	}
	if (rc < 0) {
		change_rollback(ch, shared);
		return rc;
	}
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < ch->jn && rc == 0; i++)
		rc = journal_map(c, ch->jidx[i], ch->joff[i], ch->jlen[i]);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* Make blocks [first, last] data in next; when that would split a hole
 * into one run too many, the rest of that hole on the right is rewritten
 * as zeros instead (it joins the rewritten run). */
static int make_data(struct change *ch, struct runs *r, uint64_t first, uint64_t last)
{
	struct ekmfs_state *st = &ch->next;

	if (ekmfs_state_fill_hole(st, first, last - first + 1) == 0)
		return 0;
	for (unsigned i = 0; i < st->nholes; i++) {
		const struct ekmfs_hole *h = &st->holes[i];
		uint64_t end = h->first + h->count;

		if (h->first <= last && end > last + 1) {
			last = end - 1;
			break;
		}
	}
	runs_add(r, first, last);
	return ekmfs_state_fill_hole(st, first, last - first + 1);
}

/* Make blocks [first, last] holes in next; when the record has no room for
 * another run they are rewritten as zeros instead. */
static void make_hole(struct change *ch, struct runs *r, uint64_t first, uint64_t last)
{
	if (first > last)
		return;
	if (ekmfs_state_add_hole(&ch->next, first, last - first + 1) == 0) {
		ch->c->punch_pending = true;
		return;
	}
	runs_add(r, first, last);
}

/* ---- 4. write, truncate, punch ---- */

bool ekmfs_content_write_in_place_ok(struct ekmfs_content *c, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (len == 0 || off >= c->cur.size || len > c->cur.size - off ||
	    c->l->version != EKMFS_FORMAT_V2 || c->salts_reset)
		return false;
	first = off / EKMFS_BLOCK_SIZE;
	last = (off + len - 1) / EKMFS_BLOCK_SIZE;
	if (!content_salt_ready(c, last - first + 1))
		return false;
	for (unsigned i = 0; i < c->cur.nholes; i++)
		if (c->cur.holes[i].first <= last &&
		    c->cur.holes[i].first + c->cur.holes[i].count > first)
			return false;
	return true;
}

/* The growth of a change to new_size from the old size: the old last
 * block, if partial and data, is sealed again at its new length (a hole
 * stays one, its run grows); whole blocks from the old end up to
 * from_block become a hole. */
static void grow(struct change *ch, struct runs *r, uint64_t new_size, uint64_t from_block)
{
	uint64_t ob = ekmfs_nblocks(ch->old_size);

	ch->next.size = new_size;
	if (ch->old_size % EKMFS_BLOCK_SIZE && !ekmfs_state_is_hole(&ch->c->cur, ob - 1))
		runs_add(r, ob - 1, ob - 1);
	if (from_block > ob)
		make_hole(ch, r, ob, from_block - 1);
}

ssize_t ekmfs_content_write(struct ekmfs_content *c, const void *buf, size_t len,
			    uint64_t off, uint64_t *bad_block)
{
	struct change ch;
	struct runs r = { .n = 0 };
	uint64_t end = off + len, first, last;
	bool shared;
	int rc;

	if (len == 0)
		return 0;
	if (len > SSIZE_MAX || off >= EKMFS_MAX_PLAIN || len > EKMFS_MAX_PLAIN - off) {
		ekmfs_seterr("write beyond the largest possible file");
		return -EFBIG;
	}
	if (c->l->version != EKMFS_FORMAT_V2) {
		ekmfs_seterr("format version %u files are read-only until upgraded",
			     c->l->version);
		return -EROFS;
	}
	shared = ekmfs_content_write_in_place_ok(c, off, len);
	first = off / EKMFS_BLOCK_SIZE;
	last = (end - 1) / EKMFS_BLOCK_SIZE;
	rc = change_begin(&ch, c, last - first + 2, bad_block);
	ch.shared = shared;
	if (rc < 0)
		goto out;
	ch.data = buf;
	ch.doff = off;
	ch.dend = end;
	if (end > c->cur.size)
		grow(&ch, &r, end, first);
	rc = make_data(&ch, &r, first, last);
	if (rc == 0) {
		runs_add(&r, first, last);
		rc = change_apply(&ch, &r, shared);
	}
out:
	change_end(&ch);
	return rc < 0 ? rc : (ssize_t)len;
}

int ekmfs_content_truncate(struct ekmfs_content *c, uint64_t size, uint64_t *bad_block)
{
	struct change ch;
	struct runs r = { .n = 0 };
	uint64_t nb = ekmfs_nblocks(size);
	int rc;

	if (size > EKMFS_MAX_PLAIN) {
		ekmfs_seterr("truncate beyond the largest possible file");
		return -EFBIG;
	}
	if (size == c->cur.size)
		return 0;
	if (c->l->version != EKMFS_FORMAT_V2) {
		ekmfs_seterr("format version %u files are read-only until upgraded",
			     c->l->version);
		return -EROFS;
	}
	rc = change_begin(&ch, c, 2, bad_block);
	if (rc < 0)
		goto out;
	if (size > c->cur.size) {
		grow(&ch, &r, size, nb);
	} else {
		ch.next.size = size;
		ekmfs_state_cut_holes(&ch.next, nb);
		/* The new last block, if partial and data, at its new length. */
		if (size % EKMFS_BLOCK_SIZE && !ekmfs_state_is_hole(&c->cur, nb - 1))
			runs_add(&r, nb - 1, nb - 1);
	}
	rc = change_apply(&ch, &r, false);
out:
	change_end(&ch);
	return rc;
}

int ekmfs_content_punch(struct ekmfs_content *c, uint64_t off, uint64_t len, bool extend,
			uint64_t *bad_block)
{
	struct change ch;
	struct runs r = { .n = 0 };
	uint64_t end, first_whole, end_whole;
	int rc;

	if (len == 0)
		return 0;
	if (off >= EKMFS_MAX_PLAIN || len > EKMFS_MAX_PLAIN - off)
		return -EFBIG;
	if (c->l->version != EKMFS_FORMAT_V2) {
		ekmfs_seterr("format version %u files are read-only until upgraded",
			     c->l->version);
		return -EROFS;
	}
	end = off + len;
	rc = change_begin(&ch, c, 2, bad_block);
	if (rc < 0)
		goto out;
	if (extend && end > c->cur.size)
		grow(&ch, &r, end, ekmfs_nblocks(end));
	end = min_u64(end, ch.next.size);
	if (off >= end) {
		rc = change_apply(&ch, &r, false);
		goto out;
	}
	ch.zoff = off;
	ch.zend = end;
	first_whole = (off + EKMFS_BLOCK_SIZE - 1) / EKMFS_BLOCK_SIZE;
	/* The last block counts whole when the range reaches the end of file. */
	end_whole = end == ch.next.size ? ekmfs_nblocks(end) : end / EKMFS_BLOCK_SIZE;
	if (off % EKMFS_BLOCK_SIZE && !ekmfs_state_is_hole(&ch.next, off / EKMFS_BLOCK_SIZE))
		runs_add(&r, off / EKMFS_BLOCK_SIZE, off / EKMFS_BLOCK_SIZE);
	if (end_whole < ekmfs_nblocks(end) && !ekmfs_state_is_hole(&ch.next, end_whole) &&
	    end_whole >= first_whole)
		runs_add(&r, end_whole, end_whole);
	if (end_whole > first_whole)
		make_hole(&ch, &r, first_whole, end_whole - 1);
	rc = change_apply(&ch, &r, false);
out:
	change_end(&ch);
	return rc;
}
