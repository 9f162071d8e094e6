/*
 * content.c - plaintext reads, writes and truncation of one backing file.
 *
 * Owns: turning a plaintext byte range into header and block I/O on the
 * backing file (docs/FORMAT.md gives the layout). All data I/O goes through
 * the ekmfs_io seam (ekmfs_read_full / ekmfs_write_full / ekmfs_io->ftruncate)
 * so the tests can inject short transfers and errors.
 *
 * Divisions:
 *   1. header and size
 *   2. parallel block crypto (splitting a request over the crypto pool)
 *   3. read
 *   4. rewriting a range of blocks (shared by write and growing truncate)
 *   5. write
 *   6. truncate
 *
 * Invariants kept by every successful call: the backing size is a valid
 * ekmfs_backing_size() of the plaintext size, and every block up to it is
 * sealed. A file is never extended with holes: gaps become sealed zero
 * blocks, because a hole (or an attacker's run of zeros) must read back as
 * an authentication failure, never as plaintext zeros.
 *
 * Memory is bounded per call: reads and writes move at most CHUNK_BLOCKS
 * blocks per submission, however large the request or the gap.
 *
 * Speed: the blocks of a chunk are sealed or opened by the crypto pool
 * (parallel.h) in a few contiguous parts, each under one keyed AEAD session
 * (one key schedule per part, no allocation per block); the I/O goes
 * through the io_uring batch interface (io.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ekmfs/aead.h"
#include "ekmfs/content.h"
#include "ekmfs/io.h"
#include "ekmfs/parallel.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

/* 1 MiB of plaintext (a full FUSE request, plus one block for misalignment)
 * per system call. */
#define CHUNK_BLOCKS 257

/* Largest plaintext size whose backing size still fits in off_t. */
#define MAX_PLAIN \
	((uint64_t)((INT64_MAX - EKMFS_HEADER_SIZE) / EKMFS_CBLOCK_SIZE) * EKMFS_BLOCK_SIZE)

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static void report_bad_block(const struct ekmfs_content *c, uint64_t index,
			     uint64_t *bad_block, const char *what)
{
	char id[2 * EKMFS_FILE_ID_SIZE + 1];

	ekmfs_hex(c->file_id, EKMFS_FILE_ID_SIZE, id);
	ekmfs_seterr("file %s: block %llu %s", id, (unsigned long long)index, what);
	if (bad_block)
		*bad_block = index;
}

/* ---- 1. header and size ---- */

int ekmfs_content_read_header(int fd, struct ekmfs_header *h)
{
	uint8_t buf[EKMFS_HEADER_SIZE];
	ssize_t n;

	n = ekmfs_read_full(fd, buf, sizeof(buf), 0);
	if (n < 0) {
		ekmfs_seterr("reading the file header: %s", strerror((int)-n));
		return (int)n;
	}
	if (n == 0)
		return -ENODATA;
	if (n < EKMFS_HEADER_SIZE) {
		ekmfs_seterr("file header truncated to %zd bytes", n);
		return -EBADMSG;
	}
	return ekmfs_header_parse(buf, h);
}

int ekmfs_content_write_header(int fd, const struct ekmfs_header *h)
{
	uint8_t buf[EKMFS_HEADER_SIZE];
	int rc;

	ekmfs_header_serialize(h, buf);
	rc = ekmfs_write_full(fd, buf, sizeof(buf), 0);
	if (rc < 0)
		ekmfs_seterr("writing the file header: %s", strerror(-rc));
	return rc;
}

static int backing_sizes(int fd, uint64_t *backing, uint64_t *plain)
{
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0) {
		rc = -errno;
		ekmfs_seterr("fstat of backing file: %s", strerror(errno));
		return rc;
	}
	*backing = (uint64_t)st.st_size;
	rc = ekmfs_plain_size(*backing, plain);
	if (rc < 0)
		ekmfs_seterr("backing file has an impossible size %llu (cut short)",
			     (unsigned long long)*backing);
	return rc;
}

int ekmfs_content_size(int fd, uint64_t *size)
{
	uint64_t backing;

	return backing_sizes(fd, &backing, size);
}

/* Sizes for a write or truncate: the file must have its header, and a file
 * cut short is refused (its damaged last block is reported as bad). */
static int sizes_for_update(const struct ekmfs_content *c, uint64_t *backing,
			    uint64_t *plain, uint64_t *bad_block)
{
	int rc = backing_sizes(c->fd, backing, plain);

	if (rc == -EBADMSG) {
		report_bad_block(c, *plain / EKMFS_BLOCK_SIZE, bad_block,
				 "is cut short (impossible backing size)");
		return -EIO;
	}
	if (rc < 0)
		return rc;
	if (*backing == 0) {
		ekmfs_seterr("backing file has no header yet");
		return -ENODATA;
	}
	return 0;
}

/* ---- 2. parallel block crypto ---- */

/* Requests of at least this many blocks are split over the crypto pool; a
 * part below half of it costs more in hand-over than it saves. */
#define PARALLEL_MIN_BLOCKS 16

static const uint8_t zero_block[EKMFS_BLOCK_SIZE];

static unsigned parts_for(uint64_t nblocks)
{
	uint64_t most = nblocks / (PARALLEL_MIN_BLOCKS / 2);
	unsigned width;

	if (nblocks < PARALLEL_MIN_BLOCKS)
		return 1;
	width = ekmfs_parallel_width();
	return most < width ? (unsigned)most : width;
}

/* Blocks [*lo, *hi) of count are part p of n. */
static void part_range(uint64_t count, unsigned n, unsigned p, uint64_t *lo, uint64_t *hi)
{
	*lo = count * p / n;
	*hi = count * (p + 1) / n;
}

/* ---- 3. read ---- */

/* Opening the blocks of one chunk, split into parts. */
struct open_job {
	const struct ekmfs_content *c;
	const uint8_t *cbuf;    /* the stored blocks, cbuf block 0 = block first */
	uint64_t first, count;  /* blocks to open (all overlap the request) */
	uint64_t last_stored;   /* stored bytes of block first+count-1 */
	uint8_t *buf;           /* receives plaintext [off, off+len) */
	uint64_t off, len;
	unsigned nparts;
	uint64_t bad[EKMFS_PARALLEL_MAX];   /* per part: first bad block */
	int rc[EKMFS_PARALLEL_MAX];
};

static void open_part(void *arg, unsigned p)
{
	struct open_job *j = arg;
	struct ekmfs_aead_session *s = ekmfs_aead_begin(j->c->dek);
	uint8_t blockbuf[EKMFS_BLOCK_SIZE];
	uint64_t lo, hi;

	part_range(j->count, j->nparts, p, &lo, &hi);
	j->rc[p] = 0;
	j->bad[p] = UINT64_MAX;
	if (!s) {
		j->rc[p] = -EIO;
		return;
	}
	for (uint64_t i = lo; i < hi; i++) {
		uint64_t index = j->first + i, bstart = index * EKMFS_BLOCK_SIZE;
		uint64_t stored = i + 1 == j->count ? j->last_stored : EKMFS_CBLOCK_SIZE;
		uint64_t pt_len = stored - EKMFS_BLOCK_OVERHEAD;
		uint64_t from = max_u64(j->off, bstart), to = min_u64(j->off + j->len, bstart + pt_len);
		/* Open straight into the caller's buffer when the block is wanted
		 * whole; otherwise through blockbuf, to copy out a slice. */
		uint8_t *pt = (from == bstart && to == bstart + pt_len) ? j->buf + (from - j->off)
									: blockbuf;

		if (ekmfs_block_open_s(s, j->c->file_id, index, j->cbuf + i * EKMFS_CBLOCK_SIZE,
				       stored, pt) < 0) {
			j->rc[p] = -EIO;
			j->bad[p] = index;
			break;
		}
		if (pt == blockbuf) {
			memcpy(j->buf + (from - j->off), blockbuf + (from - bstart), to - from);
			ekmfs_wipe(blockbuf, pt_len);
		}
	}
	ekmfs_aead_end(s);
}

/* Read and open the blocks first..first+count-1 (fewer at end of file) and
 * copy the part of [off, off+len) they hold into buf. Returns the plaintext
 * bytes copied, or -EIO / -errno. *at_eof is set when the file ended inside
 * this chunk. */
static ssize_t read_chunk(const struct ekmfs_content *c, uint8_t *cbuf,
			  uint64_t first, uint64_t count, uint8_t *buf, uint64_t off,
			  uint64_t len, int *at_eof, uint64_t *bad_block)
{
	uint64_t want = count * EKMFS_CBLOCK_SIZE, copied = 0, n = 0, last_stored = 0;
	struct open_job *j;
	ssize_t got;
	int rc = 0;

	got = ekmfs_read_full(c->fd, cbuf, want, (off_t)ekmfs_block_offset(first));
	if (got < 0) {
		ekmfs_seterr("reading backing file: %s", strerror((int)-got));
		return got;
	}
	*at_eof = (uint64_t)got < want;
	/* Which blocks hold wanted bytes, and is any cut short? */
	for (uint64_t i = 0; i < count && i * EKMFS_CBLOCK_SIZE < (uint64_t)got; i++) {
		uint64_t index = first + i, stored, pt_len, bstart, from, to;

		stored = min_u64((uint64_t)got - i * EKMFS_CBLOCK_SIZE, EKMFS_CBLOCK_SIZE);
		if (stored <= EKMFS_BLOCK_OVERHEAD) {
			report_bad_block(c, index, bad_block, "is cut short");
			return -EIO;
		}
		pt_len = stored - EKMFS_BLOCK_OVERHEAD;
		bstart = index * EKMFS_BLOCK_SIZE;
		from = max_u64(off, bstart);
		to = min_u64(off + len, bstart + pt_len);
		if (from >= to)
			break; /* the request starts beyond the last byte */
		n++;
		last_stored = stored;
		copied += to - from;
		if (pt_len < EKMFS_BLOCK_SIZE) {
			*at_eof = 1;
			break;
		}
	}
	if (n == 0)
		return 0;
	j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct open_job){ .c = c, .cbuf = cbuf, .first = first, .count = n,
				.last_stored = last_stored, .buf = buf, .off = off,
				.len = len, .nparts = parts_for(n) };
	ekmfs_parallel_run(open_part, j, j->nparts);
	for (unsigned p = 0; p < j->nparts && rc == 0; p++) {
		rc = j->rc[p];
		if (rc < 0 && j->bad[p] != UINT64_MAX)
			report_bad_block(c, j->bad[p], bad_block, "fails authentication");
		else if (rc < 0)
			ekmfs_seterr("no AES-GCM context available");
	}
	free(j);
	return rc < 0 ? rc : (ssize_t)copied;
}

ssize_t ekmfs_content_read(const struct ekmfs_content *c, void *buf, size_t len,
			   uint64_t off, uint64_t *bad_block)
{
	uint8_t *cbuf = NULL;
	uint64_t first, last, done = 0;
	ssize_t ret = 0;
	int at_eof = 0;

	if (len == 0 || off >= MAX_PLAIN)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	len = (size_t)min_u64(len, MAX_PLAIN - off);
	first = off / EKMFS_BLOCK_SIZE;
	last = (off + len - 1) / EKMFS_BLOCK_SIZE;
	cbuf = malloc((size_t)min_u64(last - first + 1, CHUNK_BLOCKS) * EKMFS_CBLOCK_SIZE);
	if (!cbuf)
		return -ENOMEM;
	for (uint64_t b = first; b <= last && !at_eof; b += CHUNK_BLOCKS) {
		uint64_t count = min_u64(last - b + 1, CHUNK_BLOCKS);
		uint64_t coff = max_u64(off, b * EKMFS_BLOCK_SIZE);
		uint64_t cend = min_u64(off + len, (b + count) * EKMFS_BLOCK_SIZE);
		ssize_t n = read_chunk(c, cbuf, b, count, (uint8_t *)buf + (coff - off),
				       coff, cend - coff, &at_eof, bad_block);

		if (n < 0) {
			ret = n;
			goto out;
		}
		done += (uint64_t)n;
	}
	ret = (ssize_t)done;
out:
	free(cbuf);
	return ret;
}

/* ---- 4. rewriting a range of blocks ---- */

/* One rewrite of the plaintext range [start, new_size ∩ blocks): the bytes
 * in [off, end) come from data, those below old_size outside it keep their
 * old value, everything else is zero. */
struct rewrite {
	const struct ekmfs_content *c;
	uint64_t old_size, new_size;
	const uint8_t *data;  /* NULL when [off, end) is empty */
	uint64_t off, end;
	uint64_t *bad_block;
	uint8_t *cbuf;        /* CHUNK_BLOCKS sealed blocks */
	uint8_t *stored;      /* one old block as stored, being merged */
	uint8_t *pt;          /* one plaintext block being merged */
	uint8_t nonces[CHUNK_BLOCKS * EKMFS_NONCE_SIZE];
};

static int write_vecs(int fd, struct ekmfs_io_vec *v, unsigned n)
{
	int rc = ekmfs_io_batch_full(fd, true, v, n);

	if (rc < 0)
		ekmfs_seterr("writing backing file: %s", strerror(-rc));
	return rc;
}

/* Read and open block index as it is now (old_size) into rw->pt. */
static int load_old_block(struct rewrite *rw, struct ekmfs_aead_session *s, uint64_t index)
{
	uint64_t pt_len = min_u64(rw->old_size - index * EKMFS_BLOCK_SIZE, EKMFS_BLOCK_SIZE);
	uint8_t *stored = rw->stored;
	ssize_t got;
	int rc;

	got = ekmfs_read_full(rw->c->fd, stored, pt_len + EKMFS_BLOCK_OVERHEAD,
			      (off_t)ekmfs_block_offset(index));
	if (got < 0) {
		ekmfs_seterr("reading backing file: %s", strerror((int)-got));
		return (int)got;
	}
	if ((uint64_t)got != pt_len + EKMFS_BLOCK_OVERHEAD) {
		report_bad_block(rw->c, index, rw->bad_block, "is cut short");
		return -EIO;
	}
	rc = ekmfs_block_open_s(s, rw->c->file_id, index, stored, (size_t)got, rw->pt);
	if (rc < 0) {
		report_bad_block(rw->c, index, rw->bad_block, "fails authentication");
		return -EIO;
	}
	return 0;
}

/* The plaintext of block index when it needs no merging: the caller's data
 * (the block is wholly new) or zeros (a gap); NULL when old bytes or a part
 * of the data must be merged into it first. */
static const uint8_t *plain_source(const struct rewrite *rw, uint64_t index, uint64_t pt_len)
{
	uint64_t bstart = index * EKMFS_BLOCK_SIZE, bend = bstart + pt_len;
	uint64_t old_end = min_u64(rw->old_size, bend);
	bool old_needed, has_data;

	if (rw->data && rw->off <= bstart && rw->end >= bend)
		return rw->data + (bstart - rw->off);
	old_needed = bstart < rw->old_size && !(rw->off <= bstart && rw->end >= old_end);
	has_data = rw->data && rw->off < bend && rw->end > bstart;
	return !old_needed && !has_data ? zero_block : NULL;
}

/* Seal block index (its plaintext length is pt_len) into out, merging old
 * bytes, new data and zeros as the rewrite says. */
static int seal_block(struct rewrite *rw, uint64_t index, uint64_t pt_len,
		      const uint8_t *nonce, uint8_t *out)
{
	uint64_t bstart = index * EKMFS_BLOCK_SIZE, bend = bstart + pt_len;
	uint64_t old_end = min_u64(rw->old_size, bend);
	const uint8_t *src = plain_source(rw, index, pt_len);
	struct ekmfs_aead_session *s = ekmfs_aead_begin(rw->c->dek);
	int rc = 0;

	if (!s) {
		ekmfs_seterr("no AES-GCM context available");
		return -EIO;
	}
	if (!src) {
		int old_needed = bstart < rw->old_size &&
				 !(rw->off <= bstart && rw->end >= old_end);

		if (old_needed) {
			rc = load_old_block(rw, s, index);
			if (rc < 0)
				goto out;
		}
		/* Old bytes beyond old_size (none) and the gap stay zero. */
		if (!old_needed)
			memset(rw->pt, 0, pt_len);
		else if (old_end - bstart < pt_len)
			memset(rw->pt + (old_end - bstart), 0, pt_len - (old_end - bstart));
		if (rw->data && rw->off < bend && rw->end > bstart) {
			uint64_t from = max_u64(rw->off, bstart), to = min_u64(rw->end, bend);

			memcpy(rw->pt + (from - bstart), rw->data + (from - rw->off), to - from);
		}
		src = rw->pt;
	}
	rc = ekmfs_block_seal_s(s, rw->c->file_id, index, nonce, src, pt_len, out);
	if (src == rw->pt)
		ekmfs_wipe(rw->pt, pt_len);
	if (rc < 0)
		ekmfs_seterr("sealing a content block failed");
out:
	ekmfs_aead_end(s);
	return rc;
}

/* Sealing the blocks of one chunk that need no merge, split into parts. */
struct seal_job {
	struct rewrite *rw;
	uint64_t first, count;
	unsigned nparts;
	int rc[EKMFS_PARALLEL_MAX];
};

static uint64_t block_len(const struct rewrite *rw, uint64_t index)
{
	return min_u64(rw->new_size - index * EKMFS_BLOCK_SIZE, EKMFS_BLOCK_SIZE);
}

static void seal_part(void *arg, unsigned p)
{
	struct seal_job *j = arg;
	struct rewrite *rw = j->rw;
	struct ekmfs_aead_session *s = ekmfs_aead_begin(rw->c->dek);
	uint64_t lo, hi;

	part_range(j->count, j->nparts, p, &lo, &hi);
	j->rc[p] = s ? 0 : -EIO;
	for (uint64_t k = lo; k < hi && j->rc[p] == 0; k++) {
		uint64_t index = j->first + k, pt_len = block_len(rw, index);
		const uint8_t *src = plain_source(rw, index, pt_len);

		if (src) /* merged blocks were sealed before */
			j->rc[p] = ekmfs_block_seal_s(s, rw->c->file_id, index,
						      rw->nonces + k * EKMFS_NONCE_SIZE, src,
						      pt_len, rw->cbuf + k * EKMFS_CBLOCK_SIZE);
	}
	ekmfs_aead_end(s);
}

/* Seal blocks first..first+count-1 into rw->cbuf; *bytes = their size. The
 * blocks that need a merge (at most the two edges of the data and the old
 * last block) are done here one by one, the others in parallel. */
static int seal_chunk(struct rewrite *rw, uint64_t first, uint64_t count, uint64_t *bytes)
{
	struct seal_job j = { .rw = rw, .first = first, .count = count,
			      .nparts = parts_for(count) };
	int rc;

	*bytes = 0;
	rc = ekmfs_random(rw->nonces, count * EKMFS_NONCE_SIZE);
	if (rc < 0) {
		ekmfs_seterr("no random nonce available");
		return rc;
	}
	for (uint64_t k = 0; k < count; k++) {
		uint64_t index = first + k, pt_len = block_len(rw, index);

		if (!plain_source(rw, index, pt_len)) {
			rc = seal_block(rw, index, pt_len, rw->nonces + k * EKMFS_NONCE_SIZE,
					rw->cbuf + k * EKMFS_CBLOCK_SIZE);
			if (rc < 0)
				return rc;
		}
		*bytes += pt_len + EKMFS_BLOCK_OVERHEAD;
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

/* Seal and write blocks from..to (inclusive), CHUNK_BLOCKS per write; extra
 * (may be NULL) is submitted together with the last chunk's write. */
static int rewrite_blocks(struct rewrite *rw, uint64_t from, uint64_t to,
			  const struct ekmfs_io_vec *extra)
{
	for (uint64_t b = from; b <= to; b += CHUNK_BLOCKS) {
		uint64_t count = min_u64(to - b + 1, CHUNK_BLOCKS), bytes;
		struct ekmfs_io_vec v[2];
		unsigned nv = 1;
		int rc;

		rc = seal_chunk(rw, b, count, &bytes);
		if (rc < 0)
			return rc;
		v[0] = (struct ekmfs_io_vec){ .buf = rw->cbuf, .len = bytes,
					      .off = (off_t)ekmfs_block_offset(b) };
		if (extra && b + count > to)
			v[nv++] = *extra;
		rc = write_vecs(rw->c->fd, v, nv);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Rewrite every block that [min(off, old_size), max(end, old_size)) touches.
 *
 * A growing rewrite first writes everything at or beyond the old end of the
 * backing file (the extension, and the new tail of a re-sealed old last
 * block: one submission), and only then overwrites bytes below it; any
 * failure cuts the file back to its old size. A failure while the file needs
 * new space (ENOSPC, EDQUOT) therefore leaves the old content intact: the
 * old last block is not replaced before its successor and the extension are
 * safely on disk. */
static int rewrite_range(const struct ekmfs_content *c, uint64_t old_size,
			 uint64_t old_backing, const uint8_t *data, uint64_t off,
			 uint64_t end, uint64_t *bad_block)
{
	struct rewrite *rw;
	uint64_t start = min_u64(off, old_size), new_size = max_u64(end, old_size);
	uint64_t first = start / EKMFS_BLOCK_SIZE, last = (new_size - 1) / EKMFS_BLOCK_SIZE;
	uint64_t old_blocks = (old_size + EKMFS_BLOCK_SIZE - 1) / EKMFS_BLOCK_SIZE;
	uint64_t in_place_end; /* blocks first..in_place_end-1 are overwritten */
	uint64_t tail = 0, tail_len = 0, old_len = 0;
	int grows = new_size > old_size;
	int resealed_tail = grows && old_size % EKMFS_BLOCK_SIZE != 0;
	uint8_t *tail_block = NULL, nonce[EKMFS_NONCE_SIZE];
	struct ekmfs_io_vec tail_new = { 0 }, tail_old = { 0 };
	int rc = -ENOMEM;

	if (!grows) /* blocks after the data's last one are untouched */
		last = (end - 1) / EKMFS_BLOCK_SIZE;
	in_place_end = min_u64(last + 1, old_blocks);
	rw = calloc(1, sizeof(*rw));
	if (!rw)
		return -ENOMEM;
	rw->c = c;
	rw->old_size = old_size;
	rw->new_size = new_size;
	rw->data = off < end ? data : NULL;
	rw->off = off;
	rw->end = end;
	rw->bad_block = bad_block;
	rw->cbuf = malloc((size_t)min_u64(last - first + 1, CHUNK_BLOCKS) * EKMFS_CBLOCK_SIZE);
	rw->stored = malloc(EKMFS_CBLOCK_SIZE);
	rw->pt = malloc(EKMFS_BLOCK_SIZE);
	tail_block = malloc(EKMFS_CBLOCK_SIZE);
	if (!rw->cbuf || !rw->stored || !rw->pt || !tail_block)
		goto out;
	if (resealed_tail) {
		/* The old last block (partial, and always in range when the
		 * file grows) is sealed once and written in two pieces: the
		 * new tail with the extension, the head after the in-place
		 * blocks. */
		tail = old_blocks - 1;
		in_place_end = tail;
		old_len = old_size - tail * EKMFS_BLOCK_SIZE + EKMFS_BLOCK_OVERHEAD;
		tail_len = min_u64(new_size - tail * EKMFS_BLOCK_SIZE, EKMFS_BLOCK_SIZE) +
			   EKMFS_BLOCK_OVERHEAD;
		rc = ekmfs_random(nonce, sizeof(nonce));
		if (rc == 0)
			rc = seal_block(rw, tail, tail_len - EKMFS_BLOCK_OVERHEAD, nonce, tail_block);
		if (rc < 0)
			goto undo;
		tail_new = (struct ekmfs_io_vec){
			.buf = tail_block + old_len, .len = tail_len - old_len,
			.off = (off_t)(ekmfs_block_offset(tail) + old_len) };
		tail_old = (struct ekmfs_io_vec){
			.buf = tail_block, .len = old_len, .off = (off_t)ekmfs_block_offset(tail) };
	}
	if (last >= old_blocks)
		rc = rewrite_blocks(rw, max_u64(first, old_blocks), last,
				    resealed_tail ? &tail_new : NULL);
	else if (resealed_tail)
		rc = write_vecs(c->fd, &tail_new, 1);
	else
		rc = 0;
	if (rc < 0)
		goto undo;
	if (first < in_place_end)
		rc = rewrite_blocks(rw, first, in_place_end - 1, NULL);
	if (rc == 0 && resealed_tail)
		rc = write_vecs(c->fd, &tail_old, 1);
undo:
	if (rc < 0 && grows && ekmfs_io->ftruncate(c->fd, (off_t)old_backing) < 0)
		ekmfs_log(EKMFS_LOG_WARN, "could not cut a failed extension back: %s",
			  strerror(errno));
out:
	if (rw->pt)
		ekmfs_wipe(rw->pt, EKMFS_BLOCK_SIZE);
	free(tail_block);
	free(rw->pt);
	free(rw->stored);
	free(rw->cbuf);
	free(rw);
	return rc;
}

/* ---- 5. write ---- */

ssize_t ekmfs_content_write(const struct ekmfs_content *c, const void *buf,
			    size_t len, uint64_t off, uint64_t *bad_block)
{
	uint64_t backing, size;
	int rc;

	if (len == 0)
		return 0;
	if (len > SSIZE_MAX || off >= MAX_PLAIN || len > MAX_PLAIN - off) {
		ekmfs_seterr("write beyond the largest possible file");
		return -EFBIG;
	}
	rc = sizes_for_update(c, &backing, &size, bad_block);
	if (rc < 0)
		return rc;
	rc = rewrite_range(c, size, backing, buf, off, off + len, bad_block);
	return rc < 0 ? rc : (ssize_t)len;
}

/* ---- 6. truncate ---- */

static int cut_backing(const struct ekmfs_content *c, uint64_t size)
{
	uint64_t backing = ekmfs_backing_size(size);

	if (ekmfs_io->ftruncate(c->fd, (off_t)backing) < 0) {
		int rc = -errno;

		ekmfs_seterr("truncating backing file to %llu bytes: %s",
			     (unsigned long long)backing, strerror(errno));
		return rc;
	}
	return 0;
}

/* Shrink to size, which ends inside block index: that block is re-sealed at
 * its new length before the rest is cut off. */
static int shrink_mid_block(const struct ekmfs_content *c, uint64_t old_size, uint64_t size,
			    uint64_t *bad_block)
{
	uint64_t index = size / EKMFS_BLOCK_SIZE, bstart = index * EKMFS_BLOCK_SIZE;
	uint64_t old_len = min_u64(old_size - bstart, EKMFS_BLOCK_SIZE), new_len = size - bstart;
	uint8_t cblock[EKMFS_CBLOCK_SIZE], pt[EKMFS_BLOCK_SIZE], nonce[EKMFS_NONCE_SIZE];
	ssize_t got;
	int rc;

	got = ekmfs_read_full(c->fd, cblock, old_len + EKMFS_BLOCK_OVERHEAD,
			      (off_t)ekmfs_block_offset(index));
	if (got < 0) {
		rc = (int)got;
		ekmfs_seterr("reading backing file: %s", strerror(-rc));
		goto out;
	}
	if ((uint64_t)got != old_len + EKMFS_BLOCK_OVERHEAD) {
		report_bad_block(c, index, bad_block, "is cut short");
		rc = -EIO;
		goto out;
	}
	rc = ekmfs_block_open(c->dek, c->file_id, index, cblock, (size_t)got, pt);
	if (rc < 0) {
		report_bad_block(c, index, bad_block, "fails authentication");
		rc = -EIO;
		goto out;
	}
	rc = ekmfs_random(nonce, sizeof(nonce));
	if (rc < 0)
		goto out;
	rc = ekmfs_block_seal(c->dek, c->file_id, index, nonce, pt, new_len, cblock);
	if (rc < 0)
		goto out;
	rc = ekmfs_write_full(c->fd, cblock, new_len + EKMFS_BLOCK_OVERHEAD,
			      (off_t)ekmfs_block_offset(index));
	if (rc < 0) {
		ekmfs_seterr("writing backing file: %s", strerror(-rc));
		goto out;
	}
	rc = cut_backing(c, size);
out:
	ekmfs_wipe(pt, sizeof(pt));
	return rc;
}

int ekmfs_content_truncate(const struct ekmfs_content *c, uint64_t size,
			   uint64_t *bad_block)
{
	uint64_t backing, old_size;
	int rc;

	if (size > MAX_PLAIN) {
		ekmfs_seterr("truncate beyond the largest possible file");
		return -EFBIG;
	}
	rc = backing_sizes(c->fd, &backing, &old_size);
	if (rc == -EBADMSG && backing >= EKMFS_HEADER_SIZE && size <= old_size) {
		/* A file cut short mid-block can be repaired by cutting it to
		 * (at most) its intact prefix; anything else would need the
		 * damaged block. */
		rc = 0;
		if (size % EKMFS_BLOCK_SIZE == 0)
			return cut_backing(c, size);
	} else if (rc == -EBADMSG) {
		report_bad_block(c, old_size / EKMFS_BLOCK_SIZE, bad_block,
				 "is cut short (impossible backing size)");
		return -EIO;
	}
	if (rc < 0)
		return rc;
	if (backing == 0) {
		if (size == 0)
			return 0;
		ekmfs_seterr("backing file has no header yet");
		return -ENODATA;
	}
	if (size == old_size)
		return 0;
	if (size > old_size)
		return rewrite_range(c, old_size, backing, NULL, size, size, bad_block);
	if (size % EKMFS_BLOCK_SIZE == 0)
		return cut_backing(c, size);
	return shrink_mid_block(c, old_size, size, bad_block);
}
