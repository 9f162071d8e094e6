/*
 * read.c - plaintext reads of a backing file.
 *
 * Owns: finding where each block of a request is now (a hole, the
 * journal, or in place in the file), reading them in few system calls,
 * and opening them in parallel on the crypto pool, each part under keyed
 * sessions that follow the blocks' XAES salts; and loading one block for a
 * read-modify-write.
 *
 * Divisions:
 *   1. block sources
 *   2. the opener (keyed sessions per salt)
 *   3. reading a chunk, reading a range
 *   4. one block
 *
 * Every block is read at exactly the stored length the current state
 * gives it, never "to the end of the file": a file cut or grown behind our
 * back shows up as a block that is missing or fails, never as a shorter
 * or longer file.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/aead.h"
#include "ekmfs/io.h"
#include "ekmfs/parallel.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "private.h"

/* Requests of at least this many blocks are split over the crypto pool; a
 * part below half of it costs more in hand-over than it saves. */
#define PARALLEL_MIN_BLOCKS 16

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* ---- 1. block sources ---- */

enum src_kind { SRC_HOLE, SRC_FILE, SRC_JOURNAL, SRC_STALE };

struct src {
	enum src_kind kind;
	uint32_t len;           /* stored bytes to read */
	uint64_t off;           /* in the file or the journal */
};

/* Where blocks first..first+count-1 of the current state are; *jfd is the
 * journal's descriptor when one is journaled. */
static void resolve(struct ekmfs_content *c, uint64_t first, uint64_t count, struct src *src,
		    int *jfd)
{
	bool locked = c->l->version == EKMFS_FORMAT_V2;

	if (locked)
		pthread_mutex_lock(&c->mu);
	*jfd = c->j ? c->j->fd : -1;
	for (uint64_t k = 0; k < count; k++) {
		uint64_t i = first + k, plen = ekmfs_block_len(c->cur.size, i);
		const struct jentry *e;

		if (ekmfs_state_is_hole(&c->cur, i)) {
			src[k] = (struct src){ .kind = SRC_HOLE };
		} else if ((e = journal_find(c->j, i)) != NULL) {
			/* The newest record of a block always has the length
			 * the state gives it; anything else is not ours. */
			src[k] = (struct src){ .kind = e->len == plen + c->l->overhead ? SRC_JOURNAL
											: SRC_STALE,
					       .len = e->len, .off = e->off };
		} else {
			src[k] = (struct src){ .kind = SRC_FILE,
					       .len = (uint32_t)(plen + c->l->overhead),
					       .off = ekmfs_block_offset(c->l, i) };
		}
	}
	if (locked)
		pthread_mutex_unlock(&c->mu);
}

/* ---- 2. the opener ---- */

/* Opens blocks in the calling thread with one keyed session at a time: the
 * DEK (v1) or the key derived for the current salt (v2), re-derived only
 * when a block's salt differs from the previous one. */
struct opener {
	const struct ekmfs_content *c;
	struct ekmfs_aead_session *s;
	uint8_t salt[EKMFS_XAES_SALT_SIZE];
	uint8_t key[EKMFS_KEY_SIZE];
};

static void opener_end(struct opener *o)
{
	ekmfs_aead_end(o->s);
	o->s = NULL;
	ekmfs_wipe(o->key, sizeof(o->key));
}

static int opener_open(struct opener *o, uint64_t index, const uint8_t *stored, size_t len,
		       uint8_t *pt)
{
	const struct ekmfs_content *c = o->c;

	if (!o->s || (c->l->version == EKMFS_FORMAT_V2 &&
		      memcmp(o->salt, stored, EKMFS_XAES_SALT_SIZE) != 0)) {
		opener_end(o);
		if (content_block_key(c, stored, o->key) < 0)
			return -EIO;
		if (c->l->version == EKMFS_FORMAT_V2)
			memcpy(o->salt, stored, EKMFS_XAES_SALT_SIZE);
		o->s = ekmfs_aead_begin(o->key);
		if (!o->s)
			return -EIO;
	}
	return ekmfs_block_open_s(c->l, o->s, c->file_id, index, stored, len, pt);
}

/* ---- 3. reading a chunk, reading a range ---- */

struct open_job {
	const struct ekmfs_content *c;
	const uint8_t *cbuf;    /* stored blocks, one slot of cblock_size each */
	const struct src *src;
	uint64_t first, count;
	uint8_t *buf;           /* receives plaintext [off, off+len) */
	uint64_t off, len;
	unsigned nparts;
	uint64_t bad[EKMFS_PARALLEL_MAX];   /* per part: first bad block */
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

static void open_part(void *arg, unsigned p)
{
	struct open_job *j = arg;
	struct opener o = { .c = j->c };
	uint8_t blockbuf[EKMFS_BLOCK_SIZE];
	uint64_t lo = j->count * p / j->nparts, hi = j->count * (p + 1) / j->nparts;

	j->rc[p] = 0;
	j->bad[p] = UINT64_MAX;
	for (uint64_t k = lo; k < hi; k++) {
		uint64_t index = j->first + k, bstart = index * EKMFS_BLOCK_SIZE;
		uint64_t pt_len = ekmfs_block_len(j->c->cur.size, index);
		uint64_t from = max_u64(j->off, bstart), to = min_u64(j->off + j->len, bstart + pt_len);
		/* Open straight into the caller's buffer when the block is wanted
		 * whole; otherwise through blockbuf, to copy out a slice. */
		uint8_t *pt = (from == bstart && to == bstart + pt_len) ? j->buf + (from - j->off)
									: blockbuf;

		if (j->src[k].kind == SRC_HOLE) {
			memset(j->buf + (from - j->off), 0, to - from);
			continue;
		}
		if (opener_open(&o, index, j->cbuf + k * j->c->l->cblock_size, j->src[k].len,
				pt) < 0) {
			j->rc[p] = -EIO;
			j->bad[p] = index;
			break;
		}
		if (pt == blockbuf) {
			memcpy(j->buf + (from - j->off), blockbuf + (from - bstart), to - from);
			ekmfs_wipe(blockbuf, pt_len);
		}
	}
	opener_end(&o);
}

/* Read the stored blocks of src into cbuf: runs of consecutive in-place
 * blocks in one transfer each, journaled ones one by one. The first
 * missing or stale block, or -errno. */
/* The index of the first block a read of fetch lands in cbuf. */
static uint64_t block_at(const uint8_t *cbuf, size_t cbs, uint64_t first,
			 const struct ekmfs_io_vec *v)
{
	return first + (uint64_t)((const uint8_t *)v->buf - cbuf) / cbs;
}

static int fetch(struct ekmfs_content *c, uint8_t *cbuf, uint64_t first, uint64_t count,
		 const struct src *src, int jfd, uint64_t *missing)
{
	struct ekmfs_io_vec v[CHUNK_BLOCKS], jv[CHUNK_BLOCKS];
	unsigned nv = 0, nj = 0;
	size_t cbs = c->l->cblock_size;
	int rc;

	*missing = UINT64_MAX;
	for (uint64_t k = 0; k < count; k++) {
		if (src[k].kind == SRC_STALE) {
			*missing = first + k;
			return 0;
		}
		if (src[k].kind == SRC_JOURNAL) {
			jv[nj] = (struct ekmfs_io_vec){ .buf = cbuf + k * cbs, .len = src[k].len,
							.off = (off_t)src[k].off };
			nj++;
		} else if (src[k].kind == SRC_FILE) {
			/* Extends the previous run when it was a full block
			 * right before this one. */
			if (nv && block_at(cbuf, cbs, first, &v[nv - 1]) + v[nv - 1].len / cbs ==
					  first + k &&
			    v[nv - 1].len % cbs == 0) {
				v[nv - 1].len += src[k].len;
			} else {
				v[nv] = (struct ekmfs_io_vec){ .buf = cbuf + k * cbs,
							       .len = src[k].len,
							       .off = (off_t)src[k].off };
				nv++;
			}
		}
	}
	rc = nv ? ekmfs_io_batch_full(c->fd, false, v, nv) : 0;
	if (rc == 0 && nj)
		rc = ekmfs_io_batch_full(jfd, false, jv, nj);
	if (rc < 0) {
		ekmfs_seterr("reading backing file: %s", strerror(-rc));
		return rc;
	}
	for (unsigned i = 0; i < nv; i++)
		if ((size_t)v[i].res != v[i].len) {
			*missing = block_at(cbuf, cbs, first, &v[i]) + (uint64_t)v[i].res / cbs;
			return 0;
		}
	for (unsigned i = 0; i < nj; i++)
		if ((size_t)jv[i].res != jv[i].len) {
			*missing = block_at(cbuf, cbs, first, &jv[i]);
			return 0;
		}
	return 0;
}

static int read_chunk(struct ekmfs_content *c, uint8_t *cbuf, struct src *src, uint64_t first,
		      uint64_t count, uint8_t *buf, uint64_t off, uint64_t len,
		      uint64_t *bad_block)
{
	struct open_job *j;
	uint64_t missing;
	int jfd, rc;

	resolve(c, first, count, src, &jfd);
	rc = fetch(c, cbuf, first, count, src, jfd, &missing);
	if (rc < 0)
		return rc;
	if (missing != UINT64_MAX) {
		content_report_bad(missing, bad_block,
				   "missing (the backing file was cut short or changed)");
		return -EIO;
	}
	j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct open_job){ .c = c, .cbuf = cbuf, .src = src, .first = first,
				.count = count, .buf = buf, .off = off, .len = len,
				.nparts = parts_for(count) };
	ekmfs_parallel_run(open_part, j, j->nparts);
	for (unsigned p = 0; p < j->nparts && rc == 0; p++) {
		rc = j->rc[p];
		if (rc < 0 && j->bad[p] != UINT64_MAX)
			content_report_bad(j->bad[p], bad_block, "authentication failed (tampered or corrupt)");
		else if (rc < 0)
			ekmfs_seterr("no AES-GCM context available");
	}
	free(j);
	return rc;
}

ssize_t ekmfs_content_read(struct ekmfs_content *c, void *buf, size_t len, uint64_t off,
			   uint64_t *bad_block)
{
	uint64_t size = c->cur.size, first, last;
	uint8_t *cbuf = NULL;
	struct src *src = NULL;
	ssize_t ret;

	if (len == 0 || off >= size)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	len = (size_t)min_u64(len, size - off);
	first = off / EKMFS_BLOCK_SIZE;
	last = (off + len - 1) / EKMFS_BLOCK_SIZE;
	cbuf = malloc((size_t)min_u64(last - first + 1, CHUNK_BLOCKS) * c->l->cblock_size);
	src = malloc(CHUNK_BLOCKS * sizeof(*src));
	if (!cbuf || !src) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t b = first; b <= last; b += CHUNK_BLOCKS) {
		uint64_t count = min_u64(last - b + 1, CHUNK_BLOCKS);
		uint64_t coff = max_u64(off, b * EKMFS_BLOCK_SIZE);
		uint64_t cend = min_u64(off + len, (b + count) * EKMFS_BLOCK_SIZE);
		int rc = read_chunk(c, cbuf, src, b, count, (uint8_t *)buf + (coff - off), coff,
				    cend - coff, bad_block);

		if (rc < 0) {
			ekmfs_wipe_bulk(buf, len);
			ret = rc;
			goto out;
		}
	}
	ret = (ssize_t)len;
out:
	free(src);
	free(cbuf);
	return ret;
}

/* ---- 4. one block ---- */

int content_load_block(struct ekmfs_content *c, uint64_t index, uint64_t len, uint8_t *pt,
		       uint64_t *bad_block)
{
	uint8_t *stored = malloc(EKMFS_CBLOCK_SIZE_MAX);
	struct opener o = { .c = c };
	struct src src;
	uint64_t missing;
	int jfd, rc;

	if (!stored)
		return -ENOMEM;
	resolve(c, index, 1, &src, &jfd);
	if (src.kind == SRC_HOLE) {
		memset(pt, 0, len);
		rc = 0;
		goto out;
	}
	rc = fetch(c, stored, index, 1, &src, jfd, &missing);
	if (rc < 0)
		goto out;
	if (missing != UINT64_MAX) {
		content_report_bad(index, bad_block,
				   "missing (the backing file was cut short or changed)");
		rc = -EIO;
		goto out;
	}
	if (src.len != len + c->l->overhead || opener_open(&o, index, stored, src.len, pt) < 0) {
		content_report_bad(index, bad_block, "authentication failed (tampered or corrupt)");
		rc = -EIO;
	}
	opener_end(&o);
out:
	free(stored);
	return rc;
}
