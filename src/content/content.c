/*
 * content.c - the lifecycle of an open backing file: create, load (strict,
 * or settling a file a crash left), rekey, durability points and close.
 *
 * Owns: the header I/O (sector 0 and its key slots, the state records of
 * sector 1), the keys of one file (DEK, state key, XAES write key), which
 * blocks are protected (private.h states the rules), and bringing the
 * backing file's length and holes in line once a state is durable.
 *
 * Divisions:
 *   1. keys, the write key, errors
 *   2. header and key-slot I/O
 *   3. state records
 *   4. create, load, settle
 *   5. rekey, sync, close
 *   6. sizes
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "ekmfs/aead.h"
#include "ekmfs/io.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "private.h"

/* ---- 1. keys, the write key, errors ---- */

static int keys_set(struct ekmfs_content *c, const uint8_t dek[EKMFS_KEY_SIZE])
{
	if (!c->k) {
		c->k = ekmfs_secure_alloc(sizeof(*c->k));
		if (!c->k)
			return -ENOMEM;
	}
	memcpy(c->k->dek, dek, EKMFS_KEY_SIZE);
	c->wcount = UINT64_MAX;          /* no write key yet */
	c->salts_reset = true;
	if (c->l->version == EKMFS_FORMAT_V1)
		return 0;
	if (ekmfs_state_key(dek, c->k->state) < 0) {
		ekmfs_seterr("deriving the state key failed");
		return -EIO;
	}
	return 0;
}

int content_write_key(struct ekmfs_content *c, uint64_t n, bool may_rotate,
		      uint8_t key[EKMFS_KEY_SIZE], uint8_t salt[EKMFS_XAES_SALT_SIZE])
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (c->wcount == UINT64_MAX || c->wcount + n > CONTENT_SALT_BLOCKS) {
		if (!may_rotate) {
			pthread_mutex_unlock(&c->mu);
			return -EAGAIN;
		}
		rc = ekmfs_random(c->wsalt, sizeof(c->wsalt));
		if (rc == 0)
			rc = ekmfs_xaes_derive(c->k->dek, c->wsalt, c->k->write);
		c->wcount = rc == 0 ? 0 : UINT64_MAX;
	}
	if (rc == 0) {
		c->wcount += n;
		memcpy(key, c->k->write, EKMFS_KEY_SIZE);
		memcpy(salt, c->wsalt, EKMFS_XAES_SALT_SIZE);
	}
	pthread_mutex_unlock(&c->mu);
	if (rc < 0)
		ekmfs_seterr("no random salt or derived key for sealing blocks");
	return rc;
}

bool content_salt_ready(struct ekmfs_content *c, uint64_t n)
{
	bool ready;

	pthread_mutex_lock(&c->mu);
	ready = c->wcount != UINT64_MAX && c->wcount + n <= CONTENT_SALT_BLOCKS &&
		ekmfs_state_has_salt(&c->cur, c->wsalt);
	pthread_mutex_unlock(&c->mu);
	return ready;
}

void content_salts_fresh(struct ekmfs_content *c)
{
	pthread_mutex_lock(&c->mu);
	c->wcount = UINT64_MAX;
	pthread_mutex_unlock(&c->mu);
	c->salts_reset = true;
}

int content_block_key(const struct ekmfs_content *c, const uint8_t *stored,
		      uint8_t key[EKMFS_KEY_SIZE])
{
	if (c->l->version == EKMFS_FORMAT_V1) {
		memcpy(key, c->k->dek, EKMFS_KEY_SIZE);
		return 0;
	}
	return ekmfs_xaes_derive(c->k->dek, stored, key);
}

void content_report_bad(uint64_t index, uint64_t *bad_block,
			const char *what)
{
	ekmfs_seterr("block %llu: %s", (unsigned long long)index, what);
	if (bad_block)
		*bad_block = index;
}

bool content_protected(const struct ekmfs_content *c, uint64_t index)
{
	if (c->j && journal_find(c->j, index))
		return true;
	return index < ekmfs_nblocks(c->dur.size) && !ekmfs_state_is_hole(&c->dur, index);
}

/* ---- 2. header and key-slot I/O ---- */

int ekmfs_content_read_header(int fd, struct ekmfs_header *h)
{
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE];
	ssize_t n;

	n = ekmfs_read_full(fd, buf, sizeof(buf), 0);
	if (n < 0) {
		ekmfs_seterr("reading the file header: %s", strerror((int)-n));
		return (int)n;
	}
	if (n == 0)
		return -ENODATA;
	return ekmfs_header_parse(buf, (size_t)n, h);
}

int ekmfs_content_header_unwritten(int fd)
{
	uint8_t buf[EKMFS_SECTOR_SIZE];
	ssize_t n = ekmfs_read_full(fd, buf, sizeof(buf), 0);

	if (n < 0)
		return (int)n;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i])
			return -EBADMSG;
	return 0;
}

int ekmfs_content_settle_header(int fd)
{
	int rc = ekmfs_content_header_unwritten(fd);

	if (rc < 0)
		return rc;
	if (ekmfs_io->ftruncate(fd, 0) < 0)
		return -errno;
	return 0;
}

/* The slot protocol of docs/ROTATION.md: every state a concurrent reader
 * or a crash can observe parses. write: 8..95 zeroed, then seq (bytes
 * 0..7), then 8..95; clear: 8..95 first, then seq. An in-between slot has a
 * seq and tenant id 0: it parses, cannot open, and readers use the other
 * slot. The zeroing matters when the slot still holds an older wrap (a
 * rotation killed before its clear): a new seq written over those bytes
 * would make a slot that claims to be the newest and does not authenticate
 * (verify: DAMAGED), where a tenant-0 slot is a known interrupted write. */
int ekmfs_content_write_slot(int fd, const struct ekmfs_header *h, int idx)
{
	static const uint8_t zero[EKMFS_SLOT_SIZE];
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE];
	off_t off = (off_t)ekmfs_slot_offset(idx);
	int ret;

	ekmfs_header_serialize(h, buf);
	ret = ekmfs_write_full(fd, zero, EKMFS_SLOT_SIZE - 8, off + 8);
	if (!ret)
		ret = ekmfs_write_full(fd, buf + off, 8, off);
	if (!ret)
		ret = ekmfs_write_full(fd, buf + off + 8, EKMFS_SLOT_SIZE - 8, off + 8);
	ekmfs_wipe(buf, sizeof(buf));
	return ret;
}

int ekmfs_content_clear_slot(int fd, int idx)
{
	static const uint8_t zero[EKMFS_SLOT_SIZE];
	off_t off = (off_t)ekmfs_slot_offset(idx);
	int ret;

	ret = ekmfs_write_full(fd, zero, EKMFS_SLOT_SIZE - 8, off + 8);
	if (!ret)
		ret = ekmfs_write_full(fd, zero, 8, off);
	return ret;
}

/* ---- 3. state records ---- */

/* Write cur as a new record: into the working slot (1 - dur_slot), or into
 * both (at rest: then dur becomes cur). */
int content_write_state(struct ekmfs_content *c, bool both)
{
	uint8_t rec[2 * EKMFS_STATE_SIZE];
	int slot = 1 - c->dur_slot, rc;

	c->cur.seq = ++c->seq;
	rc = ekmfs_state_serialize(&c->cur, c->k->state, c->file_id, rec);
	if (rc == 0 && both) {
		memcpy(rec + EKMFS_STATE_SIZE, rec, EKMFS_STATE_SIZE);
		rc = ekmfs_write_full(c->fd, rec, sizeof(rec), (off_t)ekmfs_state_offset(0));
	} else if (rc == 0) {
		rc = ekmfs_write_full(c->fd, rec, EKMFS_STATE_SIZE,
				      (off_t)ekmfs_state_offset(slot));
	}
	ekmfs_wipe(rec, sizeof(rec));
	if (rc < 0) {
		ekmfs_seterr("writing a state record: %s", strerror(-rc));
		return rc;
	}
	if (both) {
		c->dur = c->cur;
		c->dur_slot = 0;
		c->unequal = false;
		c->salts_evicted = false;
	} else {
		c->unequal = true;
	}
	return 0;
}

static int read_records(int fd, uint8_t rec[2 * EKMFS_STATE_SIZE])
{
	ssize_t n = ekmfs_read_full(fd, rec, 2 * EKMFS_STATE_SIZE, EKMFS_STATE_OFFSET);

	if (n < 0)
		return (int)n;
	if (n < 2 * EKMFS_STATE_SIZE)
		memset(rec + n, 0, (size_t)(2 * EKMFS_STATE_SIZE - n));
	return 0;
}

/* Whether dur has no data in blocks [first, end): they are beyond its size
 * or inside one of its holes. */
static bool dur_lacks(const struct ekmfs_content *c, uint64_t first, uint64_t end)
{
	if (first >= ekmfs_nblocks(c->dur.size))
		return true;
	for (unsigned i = 0; i < c->dur.nholes; i++)
		if (c->dur.holes[i].first <= first &&
		    c->dur.holes[i].first + c->dur.holes[i].count >= end)
			return true;
	return false;
}

/* Free what neither the current state nor the durable one needs: bytes
 * beyond both their ends, and holes of the current state where the
 * durable one has no data. What the durable state still needs waits for
 * the next durability point (then dur is cur). */
void content_physical(struct ekmfs_content *c)
{
	uint64_t want = ekmfs_backing_size(c->l, c->cur.size);
	uint64_t dwant = ekmfs_backing_size(c->l, c->dur.size);
	bool left = false;

	if (dwant > want)
		want = dwant;
	if (c->phys > want && ekmfs_io->ftruncate(c->fd, (off_t)want) == 0)
		c->phys = want;
	if (!c->punch_pending)
		return;
	for (unsigned i = 0; i < c->cur.nholes; i++) {
		uint64_t first = c->cur.holes[i].first, end = first + c->cur.holes[i].count;
		uint64_t from = ekmfs_block_offset(c->l, first), to = ekmfs_block_offset(c->l, end);

		if (!dur_lacks(c, first, end)) {
			left = true;
			continue;
		}
		if (to > c->phys)
			to = c->phys;
		/* Best effort: a file system without punch keeps the old
		 * bytes, which nothing reads (the record says hole). */
		if (from < to)
			(void)ekmfs_io->fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						  (off_t)from, (off_t)(to - from));
	}
	c->punch_pending = left;
}

/* What ekmfs writes to keep a file consistent (records, trims, punches,
 * folding the journal) is not a change of the file as its users see it:
 * its mtime is put back as it was before. */
static struct timespec mtime_save(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return (struct timespec){ .tv_nsec = UTIME_OMIT };
	return st.st_mtim;
}

static void mtime_put_back(int fd, struct timespec saved)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, saved };

	if (saved.tv_nsec != UTIME_OMIT)
		(void)ekmfs_io->futimens(fd, tv);
}

/* ---- 4. create, load, settle ---- */

static struct ekmfs_content *content_new(int fd, const struct ekmfs_header *h,
					 const struct ekmfs_content_env *env)
{
	struct ekmfs_content *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	/* Its own descriptor: the handle it came through may close first. */
	c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (c->fd < 0) {
		free(c);
		return NULL;
	}
	c->l = ekmfs_header_layout(h);
	memcpy(c->file_id, h->file_id, EKMFS_FILE_ID_SIZE);
	if (env)
		c->env = *env;
	else
		c->env.journal_dir = -1;
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void ekmfs_content_free(struct ekmfs_content *c)
{
	if (!c)
		return;
	if (c->j)
		journal_close(c, false);
	if (c->k)
		ekmfs_secure_free(c->k, sizeof(*c->k));
	close(c->fd);
	pthread_mutex_destroy(&c->mu);
	ekmfs_wipe(c, sizeof(*c));
	free(c);
}

/* Write header h and two records of an empty file at offset 0 (one write
 * of both sectors). */
static int write_fresh(struct ekmfs_content *c, const struct ekmfs_header *h)
{
	uint8_t buf[EKMFS_HEADER_SIZE_V2];
	int rc;

	memset(&c->cur, 0, sizeof(c->cur));
	c->cur.seq = ++c->seq;
	ekmfs_header_serialize(h, buf);
	rc = ekmfs_state_serialize(&c->cur, c->k->state, c->file_id,
				   buf + ekmfs_state_offset(0));
	if (rc == 0) {
		memcpy(buf + ekmfs_state_offset(1), buf + ekmfs_state_offset(0),
		       EKMFS_STATE_SIZE);
		rc = ekmfs_write_full(c->fd, buf, sizeof(buf), 0);
		if (rc < 0)
			ekmfs_seterr("writing the file header: %s", strerror(-rc));
	}
	ekmfs_wipe(buf, sizeof(buf));
	if (rc < 0)
		return rc;
	c->dur = c->cur;
	c->dur_slot = 0;
	c->unequal = false;
	c->phys = sizeof(buf);
	return 0;
}

int ekmfs_content_create(struct ekmfs_content **out, int fd, const struct ekmfs_header *h,
			 const uint8_t dek[EKMFS_KEY_SIZE], const struct ekmfs_content_env *env)
{
	struct ekmfs_content *c;
	int rc;

	*out = NULL;
	if (h->version != EKMFS_FORMAT_V2) {
		ekmfs_seterr("new files are format version %u", EKMFS_FORMAT_V2);
		return -EINVAL;
	}
	c = content_new(fd, h, env);
	if (!c)
		return -ENOMEM;
	rc = keys_set(c, dek);
	if (rc == 0)
		rc = write_fresh(c, h);
	if (rc < 0) {
		ekmfs_content_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Open block index of candidate state st from wherever it may be: the
 * newest journal record that fits st, else in place. salts: the block must
 * have been sealed since the state before st (its salt is one of st's),
 * else it may be an older version that also authenticates; NULL: any. */
static bool block_verifies(struct ekmfs_content *c, const struct ekmfs_state *st,
			   const struct ekmfs_state *salts, uint64_t index, uint8_t *stored,
			   uint8_t *pt)
{
	uint64_t len = ekmfs_block_len(st->size, index) + c->l->overhead;
	const struct jentry *e = journal_fit(c->j, index, (uint32_t)len, salts);
	bool ok = false;

	for (int pass = 0; pass < 2 && !ok; pass++) {
		int fd = pass == 0 ? (e ? c->j->fd : -1) : c->fd;
		off_t off = pass == 0 ? (off_t)(e ? e->off : 0)
				      : (off_t)ekmfs_block_offset(c->l, index);

		if (fd < 0 || ekmfs_read_full(fd, stored, len, off) != (ssize_t)len)
			continue;
		if (salts && !ekmfs_state_has_salt(salts, stored))
			continue;
		if (ekmfs_block_open(c->l, c->k->dek, c->file_id, index, stored, len, pt) == 0)
			ok = true;
	}
	ekmfs_wipe(pt, EKMFS_BLOCK_SIZE);
	return ok;
}

/* Whether candidate st holds together: the backing file is long enough,
 * and every block that may have been written since other (the older valid
 * record; NULL: none) opens. A block other did not have as data, or had
 * at another length, must be one written since (its salt is st's); a
 * journaled block other also had may be any version that fits. Blocks
 * other had as data and nothing journaled were protected while it was
 * durable and are not read. */
static bool state_verifies(struct ekmfs_content *c, const struct ekmfs_state *st,
			   const struct ekmfs_state *other, uint8_t *stored, uint8_t *pt)
{
	uint64_t n = ekmfs_nblocks(st->size);

	if (c->phys < ekmfs_backing_size(c->l, st->size))
		return false;
	for (uint64_t i = 0; i < n; i++) {
		bool structural, journaled;

		if (ekmfs_state_is_hole(st, i))
			continue;
		structural = other && (i >= ekmfs_nblocks(other->size) ||
				       ekmfs_state_is_hole(other, i) ||
				       ekmfs_block_len(other->size, i) !=
					       ekmfs_block_len(st->size, i));
		journaled = c->j && journal_find(c->j, i);
		if ((structural || journaled) &&
		    !block_verifies(c, st, structural ? st : NULL, i, stored, pt))
			return false;
	}
	return true;
}

static void settled(struct ekmfs_content *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void settled(struct ekmfs_content *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!c->env.settled)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->env.settled(c->env.settled_arg, msg);
}

/*
 * A file a crash may have left between states (docs/DESIGN.md, "Format v2:
 * crash atomicity"): keep the newest state record that fully verifies,
 * fold in the journal records that fit it, cut off what lies beyond it,
 * and write it to both records. No valid record at all means the file was
 * being created or emptied under a new key: it is empty.
 */
static int settle(struct ekmfs_content *c, struct ekmfs_state p[2], bool valid[2])
{
	struct ekmfs_state *cand[2] = { NULL, NULL }, *chosen = NULL;
	struct timespec mtime = mtime_save(c->fd);
	uint8_t *stored = NULL, *pt = NULL;
	uint64_t gen, trimmed = 0;
	bool changed;
	int rc = 0, n = 0;

	for (int i = 0; i < 2; i++)
		if (valid[i] && p[i].seq)
			cand[n++] = &p[i];
	if (n == 2 && cand[1]->seq > cand[0]->seq) {
		struct ekmfs_state *t = cand[0];

		cand[0] = cand[1];
		cand[1] = t;
	}
	if (n == 2 && cand[0]->seq == cand[1]->seq)
		n = 1;
	if (n == 0) {
		/* Created or re-keyed, and the records never made it. */
		memset(&c->cur, 0, sizeof(c->cur));
		c->dur = c->cur;
		if (c->env.in_use) {
			settled(c, "no state record is complete (the file was being created "
				"or emptied): a recovery empties it");
			return 0;
		}
		rc = content_write_state(c, true);
		if (rc == 0 && ekmfs_io->ftruncate(c->fd, EKMFS_HEADER_SIZE_V2) == 0)
			c->phys = EKMFS_HEADER_SIZE_V2;
		journal_remove_stale(&c->env, c->file_id, UINT64_MAX);
		mtime_put_back(c->fd, mtime);
		settled(c, "no state record was complete (the file was being created or "
			"emptied): it is empty now");
		return rc;
	}
	stored = malloc(EKMFS_CBLOCK_SIZE_MAX);
	pt = ekmfs_secure_alloc(EKMFS_BLOCK_SIZE);
	if (!stored || !pt) {
		rc = -ENOMEM;
		goto out;
	}
	/* Both candidates name the same folded generation (a fold writes both
	 * records); only a newer journal can hold blocks they lack. */
	gen = journal_newest(&c->env, c->file_id, cand[0]->journal);
	if (gen) {
		rc = journal_load(c, gen);
		if (rc == -EBADMSG)     /* its header never made it: no journal */
			rc = 0;
		if (rc < 0)
			goto out;
	}
	for (int i = 0; i < n && !chosen; i++)
		if (state_verifies(c, cand[i], i + 1 < n ? cand[i + 1] : NULL, stored, pt))
			chosen = cand[i];
	if (!chosen && c->phys < ekmfs_backing_size(c->l, cand[n - 1]->size)) {
		ekmfs_seterr("backing file is %llu bytes, but even its oldest authenticated "
			     "size %llu needs %llu (cut short)", (unsigned long long)c->phys,
			     (unsigned long long)cand[n - 1]->size,
			     (unsigned long long)ekmfs_backing_size(c->l, cand[n - 1]->size));
		rc = -EBADMSG;
		goto out;
	}
	if (!chosen) {
		ekmfs_seterr("no state record of the file verifies (blocks missing or not "
			     "authentic): damaged, not a crash");
		rc = -EBADMSG;
		goto out;
	}
	c->seq = cand[0]->seq;
	c->cur = *chosen;
	c->dur = *chosen;
	if (c->phys > ekmfs_backing_size(c->l, chosen->size))
		trimmed = c->phys - ekmfs_backing_size(c->l, chosen->size);
	changed = !(valid[0] && valid[1] && p[0].seq == p[1].seq) || chosen != cand[0] ||
		  c->j || trimmed;
	if (c->env.in_use) {
		/* Only looking: reads see what settling would leave. */
		if (c->j)
			rc = journal_refit(c);
		if (changed)
			settled(c, "caught mid-write: a recovery keeps state %llu (%llu bytes)"
				"%s%s, cuts %llu bytes after it",
				(unsigned long long)chosen->seq,
				(unsigned long long)chosen->size,
				chosen != cand[0] ? ", drops an unsynced newer one" : "",
				c->j ? ", folds in the journal" : "",
				(unsigned long long)trimmed);
		goto out;
	}
	if (c->j) {
		rc = journal_copy_in(c);
		if (rc == 0 && ekmfs_io->fsync(c->fd) < 0)
			rc = -errno;
		if (rc < 0)
			goto out;
		c->cur.journal = c->j->gen;
	}
	rc = content_write_state(c, true);
	if (rc < 0)
		goto out;
	c->punch_pending = c->cur.nholes > 0;
	content_physical(c);
	if (ekmfs_io->fsync(c->fd) < 0) {
		rc = -errno;
		goto out;
	}
	if (changed)
		settled(c, "kept state %llu (%llu bytes)%s%s, cut %llu bytes after it",
			(unsigned long long)chosen->seq, (unsigned long long)chosen->size,
			chosen != cand[0] ? ", dropped an unsynced newer one" : "",
			c->j ? ", folded in the journal" : "", (unsigned long long)trimmed);
	if (c->j)
		journal_close(c, true);
	journal_remove_stale(&c->env, c->file_id, UINT64_MAX);
out:
	if (!c->env.in_use)
		mtime_put_back(c->fd, mtime);
	free(stored);
	ekmfs_secure_free(pt, EKMFS_BLOCK_SIZE);
	return rc;
}

/* The strict checks of a file at rest: both records valid and equal, the
 * backing file exactly as long as the size says. A file this process
 * closed unsealed (env->expect_seq) may have two records, the newer with
 * that seq: it is the working one, the older is durable. */
static int load_strict(struct ekmfs_content *c, struct ekmfs_state p[2], bool valid[2])
{
	uint64_t want, expect = c->env.expect_seq;
	int newest = p[1].seq > p[0].seq;

	for (int i = 0; i < 2; i++) {
		if (!valid[i] || !p[i].seq) {
			ekmfs_seterr("state record %d %s", i,
				     valid[i] ? "is empty" : "does not authenticate (tampered)");
			return -EBADMSG;
		}
	}
	if (expect && p[newest].seq != expect) {
		ekmfs_seterr("the newer state record has seq %llu, not the %llu written last: "
			     "the file was changed or rolled back behind ekmfs",
			     (unsigned long long)p[newest].seq, (unsigned long long)expect);
		return -EBADMSG;
	}
	if (!expect && (p[0].seq != p[1].seq || !ekmfs_state_same(&p[0], &p[1]))) {
		ekmfs_seterr("the two state records differ (seq %llu and %llu): the file was "
			     "left mid-write by a crash, or was edited",
			     (unsigned long long)p[0].seq, (unsigned long long)p[1].seq);
		return -EBADMSG;
	}
	want = ekmfs_backing_size(c->l, p[newest].size);
	if (c->phys < want || (!expect && c->phys != want)) {
		ekmfs_seterr("backing file is %llu bytes, but its authenticated size %llu needs "
			     "%llu (%s)", (unsigned long long)c->phys,
			     (unsigned long long)p[newest].size, (unsigned long long)want,
			     c->phys < want ? "cut short" : "bytes appended");
		return -EBADMSG;
	}
	c->cur = p[newest];
	c->dur = p[1 - newest];
	c->dur_slot = 1 - newest;
	c->unequal = p[0].seq != p[1].seq;
	if (!c->unequal)
		c->dur_slot = 0;
	/* A full salt list may have pushed salts out in an earlier session. */
	c->salts_evicted = c->unequal && c->cur.nsalts == EKMFS_STATE_SALTS;
	/* A working record not yet durable goes on listing its salts. */
	c->salts_reset = !c->unequal;
	c->seq = p[newest].seq;
	return 0;
}

int ekmfs_content_load(struct ekmfs_content **out, int fd, const struct ekmfs_header *h,
		       const uint8_t dek[EKMFS_KEY_SIZE], const struct ekmfs_content_env *env)
{
	uint8_t rec[2 * EKMFS_STATE_SIZE];
	struct ekmfs_state p[2];
	bool valid[2];
	struct ekmfs_content *c;
	struct stat st;
	int rc;

	*out = NULL;
	c = content_new(fd, h, env);
	if (!c)
		return -ENOMEM;
	if (!c->l) {
		rc = -EPROTO;
		goto fail;
	}
	rc = keys_set(c, dek);
	if (rc < 0)
		goto fail;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		ekmfs_seterr("fstat of backing file: %s", strerror(errno));
		goto fail;
	}
	c->phys = (uint64_t)st.st_size;
	if (c->env.upgrading) {
		rc = content_upgrade_resume(c);
		if (rc < 0)
			goto fail;
		if (rc == 1) {
			*out = c;
			return 0;
		}
	}
	if (c->l->version == EKMFS_FORMAT_V1) {
		/* v1: the size is the backing size; no records, no journal. */
		rc = ekmfs_plain_size(c->l, c->phys, &c->cur.size);
		if (rc < 0)
			ekmfs_seterr("backing file has an impossible size %llu (cut short)",
				     (unsigned long long)c->phys);
		c->dur = c->cur;
		if (rc < 0)
			goto fail;
		*out = c;
		return 0;
	}
	rc = read_records(fd, rec);
	if (rc < 0) {
		ekmfs_seterr("reading the state records: %s", strerror(-rc));
		goto fail;
	}
	for (int i = 0; i < 2; i++)
		valid[i] = ekmfs_state_parse(rec + i * EKMFS_STATE_SIZE, c->k->state, c->file_id,
					     &p[i]) == 0;
	ekmfs_clearerr();
	rc = c->env.settle || c->env.in_use ? settle(c, p, valid) : load_strict(c, p, valid);
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	ekmfs_content_free(c);
	return rc;
}

/* ---- 5. rekey, sync, close ---- */

int ekmfs_content_rekey(struct ekmfs_content *c, const struct ekmfs_header *h,
			const uint8_t dek[EKMFS_KEY_SIZE])
{
	uint8_t old_id[EKMFS_FILE_ID_SIZE];
	/* The old content a crash may fall back to (its durable state, or
	 * a journal holding it) stays intact until the new header is
	 * durable: only then is it cut or overwritten. */
	bool protect = c->dur.size > 0 || c->j;
	int rc;

	if (h->version != EKMFS_FORMAT_V2)
		return -EINVAL;
	memcpy(old_id, c->file_id, EKMFS_FILE_ID_SIZE);
	if (c->j)
		journal_close(c, false);
	c->l = &ekmfs_layout_v2;
	memcpy(c->file_id, h->file_id, EKMFS_FILE_ID_SIZE);
	rc = keys_set(c, dek);
	if (rc < 0)
		return rc;
	c->seq = 0;
	c->salts_evicted = false;
	rc = write_fresh(c, h);
	if (rc < 0)
		return rc;
	if (protect && ekmfs_io->fdatasync(c->fd) < 0) {
		rc = -errno;
		ekmfs_seterr("sync of the new header: %s", strerror(errno));
		return rc;
	}
	journal_remove_stale(&c->env, old_id, UINT64_MAX);
	if (ekmfs_io->ftruncate(c->fd, EKMFS_HEADER_SIZE_V2) < 0) {
		rc = -errno;
		ekmfs_seterr("cutting the backing file to its new header: %s", strerror(errno));
		return rc;
	}
	c->phys = EKMFS_HEADER_SIZE_V2;
	c->punch_pending = false;
	return 0;
}

/* A durability point: the journal (and its directory entry), then the
 * file. The working state becomes the durable one. */
static int make_durable(struct ekmfs_content *c, bool datasync)
{
	int rc = 0;

	if (c->j && c->j->dirty) {
		if (ekmfs_io->fdatasync(c->j->fd) < 0 ||
		    (c->j->new_entry && ekmfs_io->fsync(c->env.journal_dir) < 0))
			rc = -errno;
		else
			c->j->dirty = c->j->new_entry = false;
	}
	if (rc == 0 && (datasync ? ekmfs_io->fdatasync(c->fd) : ekmfs_io->fsync(c->fd)) < 0)
		rc = -errno;
	if (rc < 0) {
		ekmfs_seterr("sync of the backing file: %s", strerror(-rc));
		return rc;
	}
	if (c->l->version == EKMFS_FORMAT_V1)
		return 0;
	if (c->cur.seq != c->dur.seq) {
		/* The working record is durable now: it is the state a power
		 * cut falls back to, and the old one's slot takes the next. */
		c->dur = c->cur;
		c->dur_slot = 1 - c->dur_slot;
	}
	if (c->salts_evicted) {
		/* It lost salts, so settling would not take it over the
		 * older record beside it: it replaces that one too. */
		rc = content_write_state(c, true);
		if (rc == 0 && ekmfs_io->fdatasync(c->fd) < 0)
			rc = -errno;
		if (rc < 0) {
			ekmfs_seterr("sync of the backing file: %s", strerror(-rc));
			return rc;
		}
		c->salts_evicted = false;
	}
	/* Blocks written from now on must be told from those before. */
	content_salts_fresh(c);
	content_physical(c);
	return 0;
}

/*
 * Fold the journal into the file. The current state is made durable first
 * (its journal records too): the copies overwrite in place the versions
 * the durable state had until then. The copies are made durable before the
 * records say the journal is folded in.
 */
static int checkpoint(struct ekmfs_content *c)
{
	int rc = make_durable(c, true);

	if (rc == 0)
		rc = journal_copy_in(c);
	if (rc == 0 && ekmfs_io->fsync(c->fd) < 0)
		rc = -errno;
	if (rc == 0) {
		c->cur.journal = c->j->gen;
		rc = content_write_state(c, true);
	}
	/* The records saying the journal is folded in are durable before the
	 * journal goes: a power cut must never find records that still count
	 * on a journal that was removed. */
	if (rc == 0 && ekmfs_io->fdatasync(c->fd) < 0)
		rc = -errno;
	if (rc < 0) {
		ekmfs_seterr("folding the journal into the file: %s", strerror(-rc));
		return rc;
	}
	content_physical(c);
	journal_close(c, true);
	return 0;
}

int ekmfs_content_sync(struct ekmfs_content *c, bool datasync)
{
	struct timespec mtime = mtime_save(c->fd);
	int rc = make_durable(c, datasync);

	if (rc == 0 && c->j && c->j->end > CONTENT_JOURNAL_FOLD)
		rc = checkpoint(c);
	mtime_put_back(c->fd, mtime);
	return rc;
}

/*
 * At rest both records are equal. A state that is durable (nothing written
 * since the last sync, or just folded in with the journal) is written to
 * both now. One that is not must not overwrite the durable record before
 * it is durable itself: the caller seals it after its next sync.
 */
int ekmfs_content_close(struct ekmfs_content *c, uint64_t *seal_seq)
{
	struct timespec mtime;
	struct stat st;
	int rc = 0;

	*seal_seq = 0;
	if (!c)
		return 0;
	if (c->l->version == EKMFS_FORMAT_V2 && (c->j || c->unequal || c->cur.seq != c->dur.seq)) {
		mtime = mtime_save(c->fd);
		if (fstat(c->fd, &st) == 0 && st.st_nlink == 0) {
			/* Gone: nothing to keep consistent. */
			if (c->j)
				journal_close(c, true);
		} else if (c->j) {
			rc = checkpoint(c);
		} else if (c->cur.seq == c->dur.seq) {
			rc = content_write_state(c, true);
			if (rc == 0)
				content_physical(c);
		} else {
			/* What the durable state does not need goes now. */
			content_physical(c);
			*seal_seq = c->cur.seq;
		}
		mtime_put_back(c->fd, mtime);
	}
	ekmfs_content_free(c);
	return rc;
}

int ekmfs_content_seal(int fd, uint64_t seq)
{
	const struct ekmfs_layout *l = &ekmfs_layout_v2;
	uint8_t rec[2 * EKMFS_STATE_SIZE];
	struct ekmfs_state p[2];
	uint64_t want, nb;
	struct timespec mtime;
	struct stat st;
	int newest, rc;

	rc = read_records(fd, rec);
	if (rc < 0)
		return rc;
	for (int i = 0; i < 2; i++)
		ekmfs_state_peek(rec + i * EKMFS_STATE_SIZE, &p[i]);
	newest = p[1].seq > p[0].seq;
	if (p[newest].seq != seq) {
		ekmfs_seterr("state record seq %llu, expected %llu",
			     (unsigned long long)p[newest].seq, (unsigned long long)seq);
		return -ESTALE;
	}
	mtime = mtime_save(fd);
	if (p[0].seq != p[1].seq) {
		memcpy(rec + (1 - newest) * EKMFS_STATE_SIZE, rec + newest * EKMFS_STATE_SIZE,
		       EKMFS_STATE_SIZE);
		rc = ekmfs_write_full(fd, rec, sizeof(rec), EKMFS_STATE_OFFSET);
		if (rc < 0)
			return rc;
	}
	/* The durable state no longer needs what lies beyond this one, nor
	 * what its holes cover (content_physical, without the key: the fields
	 * are read as written; the MAC is checked when the file is loaded). */
	want = ekmfs_backing_size(l, p[newest].size);
	nb = ekmfs_nblocks(p[newest].size);
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > want)
		(void)ekmfs_io->ftruncate(fd, (off_t)want);
	for (unsigned i = 0; i < p[newest].nholes; i++) {
		const struct ekmfs_hole *h = &p[newest].holes[i];

		if (h->count && h->first < nb && h->count <= nb - h->first)
			(void)ekmfs_io->fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						  (off_t)ekmfs_block_offset(l, h->first),
						  (off_t)(h->count * l->cblock_size));
	}
	mtime_put_back(fd, mtime);
	return 0;
}

/* ---- 6. sizes ---- */

uint64_t ekmfs_content_size(const struct ekmfs_content *c)
{
	return c->cur.size;
}

uint16_t ekmfs_content_version(const struct ekmfs_content *c)
{
	return c->l->version;
}

const uint8_t *ekmfs_content_file_id(const struct ekmfs_content *c)
{
	return c->file_id;
}

int ekmfs_content_fd(const struct ekmfs_content *c)
{
	return c->fd;
}

int ekmfs_content_plain_size(uint16_t version, uint64_t backing, uint64_t *plain)
{
	const struct ekmfs_layout *l = ekmfs_layout_of(version);

	if (!l) {
		*plain = 0;
		return -EPROTO;
	}
	return ekmfs_plain_size(l, backing, plain);
}
