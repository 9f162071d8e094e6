/*
 * journal.c - a file's journal: new versions of protected blocks until
 * they are folded into the file (docs/FORMAT.md, "Journal").
 *
 * Owns: the journal file BACKING/.ekmfs/journal/<file id>.<generation>
 * (creating it, appending records, scanning it back after a crash,
 * removing it), the overlay map from block index to its newest record, and
 * copying those records into the file. The bytes are format/journal.c's.
 *
 * Divisions:
 *   1. names and the directory
 *   2. the overlay map
 *   3. create, append
 *   4. load (scan after a crash)
 *   5. fold in, close
 *
 * Concurrency: every access to c->j and its map happens under c->mu, so
 * writers that change no state (the caller's shared lock) may append while
 * readers look blocks up.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "private.h"

/* ---- 1. names and the directory ---- */

#define NAME_MAX_LEN (2 * EKMFS_FILE_ID_SIZE + 1 + 20 + 1)

static void jname(char *buf, const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t gen)
{
	char hex[2 * EKMFS_FILE_ID_SIZE + 1];

	ekmfs_hex(file_id, EKMFS_FILE_ID_SIZE, hex);
	snprintf(buf, NAME_MAX_LEN, "%s.%" PRIu64, hex, gen);
}

/* Calls fn for every journal of file_id in the directory. */
static void each_journal(const struct ekmfs_content_env *env,
			 const uint8_t file_id[EKMFS_FILE_ID_SIZE],
			 void (*fn)(const struct ekmfs_content_env *env, const char *name,
				    uint64_t gen, void *arg),
			 void *arg)
{
	char hex[2 * EKMFS_FILE_ID_SIZE + 1];
	struct dirent *de;
	DIR *d;
	int fd;

	if (env->journal_dir < 0)
		return;
	fd = openat(env->journal_dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	ekmfs_hex(file_id, EKMFS_FILE_ID_SIZE, hex);
	while ((de = readdir(d)) != NULL) {
		char *end;
		uint64_t gen;

		if (strncmp(de->d_name, hex, 2 * EKMFS_FILE_ID_SIZE) != 0 ||
		    de->d_name[2 * EKMFS_FILE_ID_SIZE] != '.')
			continue;
		errno = 0;
		gen = strtoull(de->d_name + 2 * EKMFS_FILE_ID_SIZE + 1, &end, 10);
		if (errno || *end || gen == 0)
			continue;
		fn(env, de->d_name, gen, arg);
	}
	closedir(d);
}

static void remove_if_upto(const struct ekmfs_content_env *env, const char *name, uint64_t gen,
			   void *arg)
{
	if (gen <= *(uint64_t *)arg)
		(void)ekmfs_io->unlinkat(env->journal_dir, name, 0);
}

void journal_remove_stale(const struct ekmfs_content_env *env,
			  const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t upto)
{
	each_journal(env, file_id, remove_if_upto, &upto);
}

struct newest {
	uint64_t after, best;
};

static void note_newest(const struct ekmfs_content_env *env, const char *name, uint64_t gen,
			void *arg)
{
	struct newest *n = arg;

	(void)env;
	(void)name;
	if (gen > n->after && gen > n->best)
		n->best = gen;
}

uint64_t journal_newest(const struct ekmfs_content_env *env,
			const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t after)
{
	struct newest n = { .after = after };

	each_journal(env, file_id, note_newest, &n);
	return n.best;
}

/* ---- 2. the overlay map ---- */

static size_t slot_of(uint64_t index, size_t cap)
{
	uint64_t h = index * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h ^ (h >> 31)) & (cap - 1);
}

static int map_grow(struct content_journal *j)
{
	size_t cap = j->cap ? 2 * j->cap : 64;
	struct jentry *m = malloc(cap * sizeof(*m));

	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		m[i].index = UINT64_MAX;
	for (size_t i = 0; i < j->cap; i++) {
		size_t s;

		if (j->map[i].index == UINT64_MAX)
			continue;
		for (s = slot_of(j->map[i].index, cap); m[s].index != UINT64_MAX;
		     s = (s + 1) & (cap - 1))
			;
		m[s] = j->map[i];
	}
	free(j->map);
	j->map = m;
	j->cap = cap;
	return 0;
}

static int map_put(struct content_journal *j, uint64_t index, uint64_t off, uint32_t len)
{
	size_t s;

	if ((j->n + 1) * 2 > j->cap && map_grow(j) < 0)
		return -ENOMEM;
	for (s = slot_of(index, j->cap); j->map[s].index != UINT64_MAX; s = (s + 1) & (j->cap - 1))
		if (j->map[s].index == index)
			break;
	if (j->map[s].index == UINT64_MAX)
		j->n++;
	j->map[s] = (struct jentry){ .index = index, .off = off, .len = len };
	return 0;
}

int journal_map(struct ekmfs_content *c, uint64_t index, uint64_t off, uint32_t len)
{
	return c->j ? map_put(c->j, index, off, len) : -EIO;
}

const struct jentry *journal_find(const struct content_journal *j, uint64_t index)
{
	if (!j || !j->cap)
		return NULL;
	for (size_t s = slot_of(index, j->cap); j->map[s].index != UINT64_MAX;
	     s = (s + 1) & (j->cap - 1))
		if (j->map[s].index == index)
			return &j->map[s];
	return NULL;
}

/* ---- 3. create, append ---- */

static struct content_journal *journal_alloc(int fd, uint64_t gen)
{
	struct content_journal *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->fd = fd;
	j->gen = gen;
	j->end = EKMFS_JOURNAL_HEADER_SIZE;
	return j;
}

/* Caller holds c->mu. */
int journal_open_new(struct ekmfs_content *c)
{
	struct ekmfs_journal_header jh = { .generation = c->cur.journal + 1 };
	uint8_t hdr[EKMFS_JOURNAL_HEADER_SIZE];
	char name[NAME_MAX_LEN];
	int fd, rc;

	if (c->env.journal_dir < 0) {
		ekmfs_seterr("no journal directory: this file cannot be overwritten here");
		return -EROFS;
	}
	memcpy(jh.file_id, c->file_id, EKMFS_FILE_ID_SIZE);
	jname(name, c->file_id, jh.generation);
	fd = ekmfs_io->openat(c->env.journal_dir, name,
			      O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		ekmfs_seterr("cannot create the journal %s: %s", name, strerror(errno));
		return rc;
	}
	rc = ekmfs_journal_header_serialize(&jh, c->k->state, hdr);
	if (rc == 0)
		rc = ekmfs_write_full(fd, hdr, sizeof(hdr), 0);
	if (rc == 0) {
		c->j = journal_alloc(fd, jh.generation);
		if (!c->j)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		ekmfs_seterr("cannot write the journal %s: %s", name, strerror(-rc));
		close(fd);
		(void)ekmfs_io->unlinkat(c->env.journal_dir, name, 0);
		return rc;
	}
	c->j->dirty = true;
	c->j->new_entry = true;
	return 0;
}

int journal_append(struct ekmfs_content *c, const uint64_t *idx, const uint32_t *len,
		   const uint8_t *const *bufs, unsigned n, uint64_t *offs)
{
	uint8_t (*hdr)[EKMFS_JOURNAL_REC_SIZE] = NULL;
	struct ekmfs_io_vec *v = NULL;
	uint64_t off, at;
	int rc = -ENOMEM;

	pthread_mutex_lock(&c->mu);
	if (!c->j) {
		rc = journal_open_new(c);
		if (rc < 0)
			goto out;
	}
	hdr = malloc((size_t)n * sizeof(*hdr));
	v = malloc(2 * (size_t)n * sizeof(*v));
	if (!hdr || !v) {
		rc = -ENOMEM;
		goto out;
	}
	off = at = c->j->end;
	for (unsigned i = 0; i < n; i++) {
		ekmfs_journal_rec_serialize(idx[i], len[i], hdr[i]);
		v[2 * i] = (struct ekmfs_io_vec){ .buf = hdr[i], .len = EKMFS_JOURNAL_REC_SIZE,
						  .off = (off_t)at };
		v[2 * i + 1] = (struct ekmfs_io_vec){ .buf = (void *)bufs[i], .len = len[i],
						      .off = (off_t)(at + EKMFS_JOURNAL_REC_SIZE) };
		offs[i] = at + EKMFS_JOURNAL_REC_SIZE;
		at += EKMFS_JOURNAL_REC_SIZE + len[i];
	}
	rc = ekmfs_io_batch_full(c->j->fd, true, v, 2 * n);
	if (rc < 0) {
		/* Nothing after a record that is not whole: the next append
		 * starts where this one did. */
		(void)ekmfs_io->ftruncate(c->j->fd, (off_t)off);
		ekmfs_seterr("writing the journal: %s", strerror(-rc));
		goto out;
	}
	c->j->end = at;
	c->j->dirty = true;
out:
	pthread_mutex_unlock(&c->mu);
	free(hdr);
	free(v);
	return rc;
}

/* ---- 4. load (scan after a crash) ---- */

static int all_add(struct content_journal *j, uint64_t index, uint64_t off, uint32_t len)
{
	if (j->nall == j->capall) {
		size_t cap = j->capall ? 2 * j->capall : 64;
		struct jentry *a = realloc(j->all, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		j->all = a;
		j->capall = cap;
	}
	j->all[j->nall++] = (struct jentry){ .index = index, .off = off, .len = len };
	return 0;
}

/* By block index, then by offset (the order written). */
static int cmp_entry(const void *a, const void *b)
{
	const struct jentry *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Whether the stored block at e was sealed under one of st's salts. */
static bool salt_of(const struct content_journal *j, const struct jentry *e,
		    const struct ekmfs_state *st)
{
	uint8_t salt[EKMFS_XAES_SALT_SIZE];

	return ekmfs_read_full(j->fd, salt, sizeof(salt), (off_t)e->off) == (ssize_t)sizeof(salt) &&
	       ekmfs_state_has_salt(st, salt);
}

const struct jentry *journal_fit(const struct content_journal *j, uint64_t index, uint32_t len,
				 const struct ekmfs_state *salts)
{
	const struct jentry *e;
	size_t lo = 0, hi;

	if (!j)
		return NULL;
	if (!j->all) {
		e = journal_find(j, index);
		return e && e->len == len && (!salts || salt_of(j, e, salts)) ? e : NULL;
	}
	/* The first record after index's run, then backwards. */
	hi = j->nall;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (j->all[mid].index <= index)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo > 0 && j->all[lo - 1].index == index) {
		lo--;
		if (j->all[lo].len == len && (!salts || salt_of(j, &j->all[lo], salts)))
			return &j->all[lo];
	}
	return NULL;
}

/* Map every record from the start up to the first one that is not whole
 * and authentic: later ones were never synced (a sync covers all earlier
 * records). */
static int scan_records(struct ekmfs_content *c)
{
	struct content_journal *j = c->j;
	uint8_t rec[EKMFS_JOURNAL_REC_SIZE];
	uint8_t *stored = malloc(EKMFS_CBLOCK_SIZE_V2);
	uint8_t *pt = ekmfs_secure_alloc(EKMFS_BLOCK_SIZE);
	uint64_t at = EKMFS_JOURNAL_HEADER_SIZE;
	int rc = 0;

	if (!stored || !pt) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		uint64_t index;
		uint32_t len;

		if (ekmfs_read_full(j->fd, rec, sizeof(rec), (off_t)at) != (ssize_t)sizeof(rec) ||
		    ekmfs_journal_rec_parse(rec, &index, &len) < 0)
			break;
		if (ekmfs_read_full(j->fd, stored, len, (off_t)(at + sizeof(rec))) != (ssize_t)len ||
		    ekmfs_block_open(c->l, c->k->dek, c->file_id, index, stored, len, pt) < 0)
			break;
		rc = map_put(j, index, at + sizeof(rec), len);
		if (rc == 0)
			rc = all_add(j, index, at + sizeof(rec), len);
		if (rc < 0)
			break;
		at += sizeof(rec) + len;
	}
	j->end = at;
	if (j->all)
		qsort(j->all, j->nall, sizeof(*j->all), cmp_entry);
out:
	free(stored);
	ekmfs_secure_free(pt, EKMFS_BLOCK_SIZE);
	return rc;
}

int journal_load(struct ekmfs_content *c, uint64_t gen)
{
	uint8_t hdr[EKMFS_JOURNAL_HEADER_SIZE];
	struct ekmfs_journal_header jh;
	char name[NAME_MAX_LEN];
	int fd, rc;

	jname(name, c->file_id, gen);
	fd = openat(c->env.journal_dir, name,
		    (c->env.in_use ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -EBADMSG : -errno;
	if (ekmfs_read_full(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    ekmfs_journal_header_parse(hdr, c->k->state, &jh) < 0 ||
	    memcmp(jh.file_id, c->file_id, EKMFS_FILE_ID_SIZE) != 0 || jh.generation != gen) {
		close(fd);
		return -EBADMSG;
	}
	c->j = journal_alloc(fd, gen);
	if (!c->j) {
		close(fd);
		return -ENOMEM;
	}
	rc = scan_records(c);
	if (rc < 0)
		journal_close(c, false);
	return rc;
}

/* ---- 5. fold in, close ---- */

int journal_copy_in(struct ekmfs_content *c)
{
	struct content_journal *j = c->j;
	uint8_t *buf = malloc(EKMFS_CBLOCK_SIZE_V2);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t s = 0; s < j->cap && rc == 0; s++) {
		const struct jentry *e = &j->map[s];
		uint64_t want;

		if (e->index == UINT64_MAX || ekmfs_state_is_hole(&c->cur, e->index))
			continue;
		want = ekmfs_block_len(c->cur.size, e->index);
		if (!want)
			continue;   /* cut off since */
		e = journal_fit(j, e->index, (uint32_t)(want + c->l->overhead), NULL);
		if (!e)
			continue;   /* written for another size: the file's own one fits */
		if (ekmfs_read_full(j->fd, buf, e->len, (off_t)e->off) != (ssize_t)e->len)
			rc = -EIO;
		else
			rc = ekmfs_write_full(c->fd, buf, e->len,
					      (off_t)ekmfs_block_offset(c->l, e->index));
	}
	free(buf);
	return rc;
}

/* Reading without folding in (a settle that writes nothing): the map gets,
 * for each block, the record journal_copy_in would copy, and loses the
 * blocks it would leave to the file. */
int journal_refit(struct ekmfs_content *c)
{
	struct content_journal *j = c->j;
	struct jentry *old = j->map;
	size_t cap = j->cap;
	int rc = 0;

	if (!j->all)
		return 0;   /* not loaded from disk: the map is what it is */
	j->map = NULL;
	j->cap = j->n = 0;
	for (size_t s = 0; s < cap && rc == 0; s++) {
		const struct jentry *e = &old[s];
		uint64_t want;

		if (e->index == UINT64_MAX || ekmfs_state_is_hole(&c->cur, e->index))
			continue;
		want = ekmfs_block_len(c->cur.size, e->index);
		if (want)
			e = journal_fit(j, e->index, (uint32_t)(want + c->l->overhead), NULL);
		if (want && e)
			rc = map_put(j, e->index, e->off, e->len);
	}
	free(old);
	return rc;
}

void journal_close(struct ekmfs_content *c, bool remove)
{
	struct content_journal *j = c->j;
	char name[NAME_MAX_LEN];

	if (!j)
		return;
	close(j->fd);
	if (remove) {
		jname(name, c->file_id, j->gen);
		(void)ekmfs_io->unlinkat(c->env.journal_dir, name, 0);
	}
	free(j->map);
	free(j->all);
	free(j);
	c->j = NULL;
}
