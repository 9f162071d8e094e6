/*
 * test_content.c - reads, writes, truncation, holes, durability and crash
 * recovery of one backing file (src/content/).
 *
 * Divisions:
 *   1. fixtures: a temp directory with a backing file and a journal
 *      directory, a fresh file, an in-memory model
 *   2. basics: sizes, bounds, strict loading at rest
 *   3. random operations against the model (writes, truncates, punches,
 *      syncs, close and reload)
 *   4. holes: sparse growth, punch and zero range, the run limit
 *   5. nonces and re-keying
 *   6. tampering: blocks, records, cuts and appended bytes
 *   7. faults: ENOSPC while extending, short transfers
 *   8. crash simulation: every change recorded through the I/O seam,
 *      replayed to a crash point with unsynced writes dropped or torn per
 *      512-byte sector, settled, and checked against the fsynced model
 *   9. version 1 files
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "check.h"
#include "ekmfs/aead.h"
#include "ekmfs/content.h"
#include "ekmfs/io.h"
#include "ekmfs/util.h"

/* ---- 1. fixtures ---- */

static const uint8_t test_kek[32] = { 0x10, 0x20, 0x30 };

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

struct fixture {
	char dir[64], path[96], jpath[96];
	int fd, jdir;
	uint8_t dek[32];
	struct ekmfs_header h;
	struct ekmfs_content_env env;
	struct ekmfs_content *c;
};

static void make_header(struct ekmfs_header *h, uint8_t dek[32])
{
	uint8_t id[16], nonce[12] = { 9 };

	for (int i = 0; i < 16; i++)
		id[i] = (uint8_t)rnd();
	for (int i = 0; i < 32; i++)
		dek[i] = (uint8_t)rnd();
	ekmfs_header_init(h, id);
	CHECK_EQ_INT(ekmfs_slot_wrap(h, 0, 1, 1, 1, test_kek, dek, nonce), 0);
}

static int open_dir(struct fixture *f)
{
	/* tmpfs when there is one: settling syncs, thousands of times. */
	strcpy(f->dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/ekmfs-test-content-XXXXXX"
						     : "/tmp/ekmfs-test-content-XXXXXX");
	if (!mkdtemp(f->dir)) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/file", f->dir);
	snprintf(f->jpath, sizeof(f->jpath), "%s/journal", f->dir);
	if (mkdir(f->jpath, 0700) < 0)
		return -1;
	f->jdir = open(f->jpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	f->env = (struct ekmfs_content_env){ .journal_dir = f->jdir };
	return f->jdir < 0 ? -1 : 0;
}

/* A fresh directory and a new, empty (created) file. */
static int open_fixture(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	if (open_dir(f) < 0)
		return -1;
	f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f->fd < 0)
		return -1;
	make_header(&f->h, f->dek);
	CHECK_EQ_INT(ekmfs_content_create(&f->c, f->fd, &f->h, f->dek, &f->env), 0);
	return f->c ? 0 : -1;
}

/* Close the content and load it again: as the daemon does, either before
 * the file is sealed (loading it with the seq it expects) or after a sync
 * and the seal, at random; rest: always sealed. */
static int reload_as(struct fixture *f, bool settle, bool rest)
{
	struct ekmfs_header h;
	uint64_t seal = 0;
	int rc;

	if (f->c)
		CHECK_EQ_INT(ekmfs_content_close(f->c, &seal), 0);
	f->c = NULL;
	f->env.expect_seq = 0;
	if (seal && !rest && (rnd() & 1)) {
		f->env.expect_seq = seal;
	} else if (seal) {
		CHECK_EQ_INT(ekmfs_io->fsync(f->fd), 0);
		CHECK_EQ_INT(ekmfs_content_seal(f->fd, seal), 0);
	}
	rc = ekmfs_content_read_header(f->fd, &h);
	if (rc < 0)
		return rc;
	f->env.settle = settle;
	rc = ekmfs_content_load(&f->c, f->fd, &h, f->dek, &f->env);
	f->env.settle = false;
	f->env.expect_seq = 0;
	if (rc < 0 && getenv("EKMFS_TEST_VERBOSE"))
		fprintf(stderr, "load: %s\n", ekmfs_lasterr());
	return rc;
}

static int reload(struct fixture *f, bool settle)
{
	return reload_as(f, settle, false);
}

static void rm_tree(const char *dir)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void close_fixture(struct fixture *f)
{
	if (f->c)
		ekmfs_content_free(f->c);
	f->c = NULL;
	close(f->fd);
	close(f->jdir);
	rm_tree(f->dir);
}

static uint64_t backing_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? UINT64_MAX : (uint64_t)st.st_size;
}

static unsigned count_journals(const struct fixture *f)
{
	DIR *d = opendir(f->jpath);
	struct dirent *de;
	unsigned n = 0;

	while (d && (de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i + seed) * 131 + (seed >> 3));
}

/* Read the whole file and compare with the model. */
static void check_whole(struct ekmfs_content *c, const uint8_t *model, uint64_t size)
{
	if (!c) {
		CHECK(c != NULL);
		return;
	}
	uint8_t *buf = malloc(size + 4096);
	uint64_t bad = 999;
	ssize_t n;

	CHECK_EQ_INT(ekmfs_content_size(c), size);
	n = ekmfs_content_read(c, buf, size + 4096, 0, &bad);
	if (n < 0)
		fprintf(stderr, "read of the whole file: %s\n", ekmfs_lasterr());
	CHECK_EQ_INT(n, (ssize_t)size);
	if (n == (ssize_t)size && memcmp(buf, model, size) != 0) {
		for (uint64_t i = 0; i < size; i++)
			if (buf[i] != model[i]) {
				fprintf(stderr, "first difference at %llu: %02x, model %02x\n",
					(unsigned long long)i, buf[i], model[i]);
				break;
			}
		CHECK(0);
	}
	free(buf);
}

static int flip_byte(int fd, uint64_t pos, uint8_t xor)
{
	uint8_t b;

	if (pread(fd, &b, 1, (off_t)pos) != 1)
		return -1;
	b ^= xor;
	return pwrite(fd, &b, 1, (off_t)pos) == 1 ? 0 : -1;
}

/* ---- 2. basics ---- */

static void test_basics(void)
{
	struct fixture f;
	struct ekmfs_header h;
	uint64_t bad;
	uint8_t buf[16];

	if (open_fixture(&f) < 0)
		return;
	CHECK_EQ_INT(backing_size(f.fd), EKMFS_HEADER_SIZE_V2);
	CHECK_EQ_INT(ekmfs_content_read_header(f.fd, &h), 0);
	CHECK_EQ_INT(h.version, 2);
	CHECK_EQ_INT(ekmfs_content_size(f.c), 0);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, sizeof(buf), 0, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_write(f.c, "hello", 5, 0, &bad), 5);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, sizeof(buf), 0, &bad), 5);
	CHECK_MEM(buf, "hello", 5);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, sizeof(buf), 3, &bad), 2);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, sizeof(buf), UINT64_MAX - 3, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_write(f.c, "x", 1, UINT64_MAX - 3, &bad), -EFBIG);
	CHECK_EQ_INT(ekmfs_content_truncate(f.c, UINT64_MAX / 2, &bad), -EFBIG);
	CHECK_EQ_INT(ekmfs_content_write(f.c, "x", 0, 1000, &bad), 0);
	CHECK_EQ_INT(backing_size(f.fd), ekmfs_backing_size(&ekmfs_layout_v2, 5));
	/* At rest both records agree and the size is exact. */
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(ekmfs_content_size(f.c), 5);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, sizeof(buf), 0, &bad), 5);
	CHECK_MEM(buf, "hello", 5);
	/* Truncate to 0 keeps the header. */
	CHECK_EQ_INT(ekmfs_content_truncate(f.c, 0, &bad), 0);
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(backing_size(f.fd), EKMFS_HEADER_SIZE_V2);
	CHECK_EQ_INT(count_journals(&f), 0);
	close_fixture(&f);
}

/* ---- 3. random operations against the model ---- */

#define MODEL_MAX (12 * EKMFS_BLOCK_SIZE + 77)

/* An offset near a block boundary most of the time, anywhere otherwise. */
static uint64_t pick_offset(uint64_t limit)
{
	if (rnd_below(4) == 0)
		return rnd_below(limit + 1);
	uint64_t b = rnd_below(limit / EKMFS_BLOCK_SIZE + 1) * EKMFS_BLOCK_SIZE;
	int64_t d = (int64_t)rnd_below(7) - 3;

	if (d < 0 && b < (uint64_t)-d)
		return 0;
	return b + (uint64_t)d > limit ? limit : b + (uint64_t)d;
}

/* The model of one file: its bytes and size. */
struct model {
	uint8_t bytes[MODEL_MAX];
	uint64_t size;
};

enum op_kind { OP_WRITE, OP_READ, OP_TRUNCATE, OP_PUNCH, OP_SYNC, OP_RELOAD };

/* One random operation on both the file and the model; returns its kind
 * and the byte range it may have changed. */
static enum op_kind random_op(struct fixture *f, struct model *m, int op, bool allow_reload,
			      uint64_t *touch_from, uint64_t *touch_to)
{
	static uint8_t data[MODEL_MAX], buf[MODEL_MAX];
	int kind = (int)rnd_below(16);
	uint64_t off, len, bad;

	*touch_from = *touch_to = 0;
	if (kind < 7) { /* write, maybe leaving a gap past the end */
		off = pick_offset(MODEL_MAX - 1);
		len = rnd_below(3) == 0 ? rnd_below(3 * EKMFS_BLOCK_SIZE) + 1
					: pick_offset(MODEL_MAX - off - 1) + 1;
		if (off + len > MODEL_MAX)
			len = MODEL_MAX - off;
		fill_pattern(data, len, (uint64_t)op);
		CHECK_EQ_INT(ekmfs_content_write(f->c, data, len, off, &bad), (ssize_t)len);
		*touch_from = off < m->size ? off : m->size;
		*touch_to = off + len;
		if (off > m->size)
			memset(m->bytes + m->size, 0, off - m->size);
		memcpy(m->bytes + off, data, len);
		if (off + len > m->size)
			m->size = off + len;
		return OP_WRITE;
	} else if (kind < 9) { /* read, possibly past the end */
		uint64_t want;

		off = pick_offset(MODEL_MAX);
		len = rnd_below(2 * EKMFS_BLOCK_SIZE + 3);
		want = off >= m->size ? 0 : (off + len > m->size ? m->size - off : len);
		CHECK_EQ_INT(ekmfs_content_read(f->c, buf, len, off, &bad), (ssize_t)want);
		if (want)
			CHECK_MEM(buf, m->bytes + off, want);
		return OP_READ;
	} else if (kind < 11) { /* truncate up or down */
		uint64_t size = pick_offset(MODEL_MAX);

		CHECK_EQ_INT(ekmfs_content_truncate(f->c, size, &bad), 0);
		*touch_from = size < m->size ? size : m->size;
		*touch_to = size < m->size ? m->size : size;
		if (size > m->size)
			memset(m->bytes + m->size, 0, size - m->size);
		m->size = size;
		return OP_TRUNCATE;
	} else if (kind < 13) { /* punch (keeps the size) or zero range (may grow) */
		bool extend = rnd_below(2);

		off = pick_offset(MODEL_MAX - 1);
		len = pick_offset(MODEL_MAX - off - 1) + 1;
		CHECK_EQ_INT(ekmfs_content_punch(f->c, off, len, extend, &bad), 0);
		if (extend && off + len > m->size) {
			memset(m->bytes + m->size, 0, off + len - m->size);
			*touch_from = off < m->size ? off : m->size;
			*touch_to = off + len;
			m->size = off + len;
		}
		if (off < m->size) {
			uint64_t end = off + len < m->size ? off + len : m->size;

			memset(m->bytes + off, 0, end - off);
			if (!*touch_to) {
				*touch_from = off;
				*touch_to = end;
			}
		}
		return OP_PUNCH;
	} else if (kind < 15 || !allow_reload) {
		CHECK_EQ_INT(ekmfs_content_sync(f->c, rnd_below(2)), 0);
		return OP_SYNC;
	}
	CHECK_EQ_INT(reload(f, false), 0);
	return OP_RELOAD;
}

static void test_random_ops(void)
{
	static struct model m;
	struct fixture f;
	uint64_t from, to;

	rng_state = 12345;
	if (open_fixture(&f) < 0)
		return;
	m.size = 0;
	for (int op = 0; op < 6000 && !check_failures && f.c; op++) {
		enum op_kind k = random_op(&f, &m, op, true, &from, &to);

		if (getenv("EKMFS_CHECK_EVERY"))
			fprintf(stderr, "op %d kind %d [%llu, %llu) size %llu\n", op, k,
				(unsigned long long)from, (unsigned long long)to,
				(unsigned long long)m.size);
		if (f.c && op % (getenv("EKMFS_CHECK_EVERY") ? 1 : 97) == 0)
			check_whole(f.c, m.bytes, m.size);
	}
	if (f.c) {
		check_whole(f.c, m.bytes, m.size);
		CHECK_EQ_INT(reload(&f, false), 0);
		check_whole(f.c, m.bytes, m.size);
		CHECK_EQ_INT(backing_size(f.fd), ekmfs_backing_size(&ekmfs_layout_v2, m.size));
		CHECK_EQ_INT(count_journals(&f), 0);
	}
	close_fixture(&f);
}

/* ---- 4. holes ---- */

static void test_sparse(void)
{
	const uint64_t big = 100ull << 30;
	uint8_t buf[3 * EKMFS_BLOCK_SIZE];
	struct fixture f;
	struct stat st;
	uint64_t bad;

	if (open_fixture(&f) < 0)
		return;
	CHECK_EQ_INT(ekmfs_content_write(f.c, "abc", 3, 0, &bad), 3);
	/* truncate -s 100G: one hole, O(1) space. */
	CHECK_EQ_INT(ekmfs_content_truncate(f.c, big, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_size(f.c), big);
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(ekmfs_content_size(f.c), big);
	CHECK_EQ_INT(fstat(f.fd, &st), 0);
	CHECK((uint64_t)st.st_blocks * 512 < (1u << 20));
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, sizeof(buf), 0, &bad), (ssize_t)sizeof(buf));
	CHECK_MEM(buf, "abc", 3);
	for (size_t i = 3; i < sizeof(buf); i++)
		CHECK(buf[i] == 0);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, 100, big - 100, &bad), 100);
	for (size_t i = 0; i < 100; i++)
		CHECK(buf[i] == 0);
	/* A write far out splits the hole; the rest still reads as zeros. */
	CHECK_EQ_INT(ekmfs_content_write(f.c, "xyz", 3, big / 2, &bad), 3);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, 10, big / 2 - 4, &bad), 10);
	CHECK_MEM(buf + 4, "xyz", 3);
	CHECK(buf[0] == 0 && buf[3] == 0 && buf[7] == 0);
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(ekmfs_content_read(f.c, buf, 3, big / 2, &bad), 3);
	CHECK_MEM(buf, "xyz", 3);
	CHECK_EQ_INT(fstat(f.fd, &st), 0);
	CHECK((uint64_t)st.st_blocks * 512 < (1u << 20));
	close_fixture(&f);
}

static void test_punch_and_run_limit(void)
{
	static struct model m;
	struct fixture f;
	struct stat st1, st2;
	uint64_t bad;

	if (open_fixture(&f) < 0)
		return;
	fill_pattern(m.bytes, MODEL_MAX, 7);
	m.size = MODEL_MAX;
	CHECK_EQ_INT(ekmfs_content_write(f.c, m.bytes, m.size, 0, &bad), (ssize_t)m.size);
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(fstat(f.fd, &st1), 0);
	/* Three blocks in one punch: the file system blocks they cover are
	 * freed (a lone 4136-byte block seldom covers a whole one). */
	CHECK_EQ_INT(ekmfs_content_punch(f.c, 2 * EKMFS_BLOCK_SIZE, 3 * EKMFS_BLOCK_SIZE, false,
					 &bad), 0);
	memset(m.bytes + 2 * EKMFS_BLOCK_SIZE, 0, 3 * EKMFS_BLOCK_SIZE);
	/* Every other block after that: more runs than a record holds; the
	 * ones that do not fit become sealed zeros. Every byte reads right. */
	for (uint64_t b = 6; b + 1 < MODEL_MAX / EKMFS_BLOCK_SIZE; b += 2) {
		CHECK_EQ_INT(ekmfs_content_punch(f.c, b * EKMFS_BLOCK_SIZE, EKMFS_BLOCK_SIZE,
						 false, &bad), 0);
		memset(m.bytes + b * EKMFS_BLOCK_SIZE, 0, EKMFS_BLOCK_SIZE);
	}
	/* A punch inside one block: zeros there, the rest kept. */
	CHECK_EQ_INT(ekmfs_content_punch(f.c, 100, 50, false, &bad), 0);
	memset(m.bytes + 100, 0, 50);
	check_whole(f.c, m.bytes, m.size);
	CHECK_EQ_INT(reload_as(&f, false, true), 0);
	check_whole(f.c, m.bytes, m.size);
	CHECK_EQ_INT(fstat(f.fd, &st2), 0);
	CHECK(st2.st_blocks < st1.st_blocks);    /* punched blocks freed */
	/* Zero range past the end grows the file. */
	CHECK_EQ_INT(ekmfs_content_punch(f.c, m.size + 10, 5000, true, &bad), 0);
	memset(m.bytes + m.size, 0, 0);
	CHECK_EQ_INT(ekmfs_content_size(f.c), m.size + 10 + 5000);
	close_fixture(&f);
}

/* ---- 5. nonces and re-keying ---- */

static void test_nonces_and_rekey(void)
{
	uint8_t a[EKMFS_CBLOCK_SIZE_V2], b[EKMFS_CBLOCK_SIZE_V2], data[EKMFS_BLOCK_SIZE];
	struct ekmfs_header h2, h;
	uint8_t dek2[32];
	struct fixture f;
	uint64_t bad;

	if (open_fixture(&f) < 0)
		return;
	fill_pattern(data, sizeof(data), 1);
	CHECK_EQ_INT(ekmfs_content_write(f.c, data, sizeof(data), 0, &bad), (ssize_t)sizeof(data));
	CHECK_EQ_INT(pread(f.fd, a, sizeof(a), EKMFS_HEADER_SIZE_V2), (ssize_t)sizeof(a));
	/* The same plaintext written again: another GCM nonce, same salt. */
	CHECK_EQ_INT(ekmfs_content_write(f.c, data, sizeof(data), 0, &bad), (ssize_t)sizeof(data));
	CHECK_EQ_INT(pread(f.fd, b, sizeof(b), EKMFS_HEADER_SIZE_V2), (ssize_t)sizeof(b));
	CHECK(memcmp(a + 12, b + 12, 12) != 0);
	CHECK(memcmp(a, b, 12) == 0);
	/* A reload takes a new salt (a new block shows it in place). */
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(ekmfs_content_write(f.c, data, sizeof(data), sizeof(data), &bad),
		     (ssize_t)sizeof(data));
	CHECK_EQ_INT(pread(f.fd, b, sizeof(b), EKMFS_HEADER_SIZE_V2 + EKMFS_CBLOCK_SIZE_V2),
		     (ssize_t)sizeof(b));
	CHECK(memcmp(a, b, 12) != 0);
	/* Re-key: a new file id and DEK, size 0, the old key opens nothing. */
	make_header(&h2, dek2);
	CHECK_EQ_INT(ekmfs_content_rekey(f.c, &h2, dek2), 0);
	CHECK_EQ_INT(ekmfs_content_size(f.c), 0);
	CHECK_EQ_INT(ekmfs_content_write(f.c, "new", 3, 0, &bad), 3);
	memcpy(f.dek, dek2, 32);
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(ekmfs_content_read_header(f.fd, &h), 0);
	CHECK_MEM(h.file_id, h2.file_id, 16);
	CHECK_EQ_INT(ekmfs_content_read(f.c, data, 10, 0, &bad), 3);
	CHECK_MEM(data, "new", 3);
	close_fixture(&f);
}

/* ---- 6. tampering ---- */

/* A closed file of n bytes; returns 0 and the fixture open. */
static int tamper_fixture(struct fixture *f, uint64_t n)
{
	static uint8_t data[4 * EKMFS_BLOCK_SIZE];
	uint64_t bad, seal;

	if (open_fixture(f) < 0)
		return -1;
	fill_pattern(data, n, 3);
	CHECK_EQ_INT(ekmfs_content_write(f->c, data, n, 0, &bad), (ssize_t)n);
	CHECK_EQ_INT(ekmfs_content_sync(f->c, false), 0);
	CHECK_EQ_INT(ekmfs_content_close(f->c, &seal), 0);
	CHECK_EQ_INT(seal, 0);
	f->c = NULL;
	return 0;
}

static void test_tampered_blocks(void)
{
	const struct ekmfs_layout *l = &ekmfs_layout_v2;
	uint8_t buf[4 * EKMFS_BLOCK_SIZE];
	uint8_t b0[EKMFS_CBLOCK_SIZE_V2], b1[EKMFS_CBLOCK_SIZE_V2];
	struct fixture f;
	uint64_t bad;

	/* A flipped byte in each part of a block: nonce, ciphertext, tag. */
	for (uint64_t where = 0; where < EKMFS_CBLOCK_SIZE_V2; where += 1031) {
		if (tamper_fixture(&f, 3 * EKMFS_BLOCK_SIZE) < 0)
			return;
		CHECK_EQ_INT(flip_byte(f.fd, ekmfs_block_offset(l, 1) + where, 0x40), 0);
		CHECK_EQ_INT(reload(&f, false), 0);
		bad = 99;
		CHECK_EQ_INT(ekmfs_content_read(f.c, buf, sizeof(buf), 0, &bad), -EIO);
		CHECK_EQ_INT(bad, 1);
		CHECK_EQ_INT(ekmfs_content_read(f.c, buf, EKMFS_BLOCK_SIZE, 0, &bad),
			     EKMFS_BLOCK_SIZE);
		close_fixture(&f);
	}
	/* Two blocks swapped, and a block zeroed. */
	if (tamper_fixture(&f, 3 * EKMFS_BLOCK_SIZE) < 0)
		return;
	CHECK_EQ_INT(pread(f.fd, b0, sizeof(b0), (off_t)ekmfs_block_offset(l, 0)), (ssize_t)sizeof(b0));
	CHECK_EQ_INT(pread(f.fd, b1, sizeof(b1), (off_t)ekmfs_block_offset(l, 1)), (ssize_t)sizeof(b1));
	CHECK_EQ_INT(pwrite(f.fd, b1, sizeof(b1), (off_t)ekmfs_block_offset(l, 0)), (ssize_t)sizeof(b1));
	CHECK_EQ_INT(pwrite(f.fd, b0, sizeof(b0), (off_t)ekmfs_block_offset(l, 1)), (ssize_t)sizeof(b0));
	memset(b0, 0, sizeof(b0));
	CHECK_EQ_INT(pwrite(f.fd, b0, sizeof(b0), (off_t)ekmfs_block_offset(l, 2)), (ssize_t)sizeof(b0));
	CHECK_EQ_INT(reload(&f, false), 0);
	for (uint64_t i = 0; i < 3; i++) {
		bad = 99;
		CHECK_EQ_INT(ekmfs_content_read(f.c, buf, 10, i * EKMFS_BLOCK_SIZE, &bad), -EIO);
		CHECK_EQ_INT(bad, i);
	}
	close_fixture(&f);
}

/* Each way of cutting or growing a file at rest is refused by a strict
 * load: block boundary, bare header, impossible sizes, mid-block, appended
 * bytes and appended blocks. */
static void test_cuts_and_appends(void)
{
	const struct ekmfs_layout *l = &ekmfs_layout_v2;
	const uint64_t n = 3 * EKMFS_BLOCK_SIZE + 100;
	uint64_t full = ekmfs_backing_size(l, n);
	uint64_t sizes[] = { ekmfs_block_offset(l, 1), ekmfs_block_offset(l, 3),
			     EKMFS_HEADER_SIZE_V2, EKMFS_HEADER_SIZE_V2 + 1,
			     ekmfs_block_offset(l, 2) + 20, ekmfs_block_offset(l, 2) + 500,
			     full - 1, full + 1, full + 40, full + EKMFS_CBLOCK_SIZE_V2, 700 };
	struct fixture f;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (tamper_fixture(&f, n) < 0)
			return;
		CHECK_EQ_INT(ftruncate(f.fd, (off_t)sizes[i]), 0);
		if (reload(&f, false) != -EBADMSG) {
			fprintf(stderr, "backing size %llu was not refused\n",
				(unsigned long long)sizes[i]);
			CHECK(0);
		}
		close_fixture(&f);
	}
}

static void test_tampered_records(void)
{
	uint8_t rec[EKMFS_STATE_SIZE];
	struct fixture f;

	/* Any byte of either record. */
	for (int slot = 0; slot < 2; slot++)
		for (unsigned at = 0; at < EKMFS_STATE_SIZE; at += 37) {
			if (tamper_fixture(&f, 5000) < 0)
				return;
			CHECK_EQ_INT(flip_byte(f.fd, ekmfs_state_offset(slot) + at, 1), 0);
			CHECK_EQ_INT(reload(&f, false), -EBADMSG);
			close_fixture(&f);
		}
	/* One record zeroed (a rollback to the other needs it gone). */
	if (tamper_fixture(&f, 5000) < 0)
		return;
	memset(rec, 0, sizeof(rec));
	CHECK_EQ_INT(pwrite(f.fd, rec, sizeof(rec), (off_t)ekmfs_state_offset(1)), (ssize_t)sizeof(rec));
	CHECK_EQ_INT(reload(&f, false), -EBADMSG);
	close_fixture(&f);
	/* A record from another file with the same key does not verify: the
	 * file id is bound in. */
	if (tamper_fixture(&f, 5000) < 0)
		return;
	CHECK_EQ_INT(pread(f.fd, rec, sizeof(rec), (off_t)ekmfs_state_offset(0)), (ssize_t)sizeof(rec));
	close_fixture(&f);
	{
		struct fixture g;

		if (tamper_fixture(&g, 5000) < 0)
			return;
		CHECK_EQ_INT(pwrite(g.fd, rec, sizeof(rec), (off_t)ekmfs_state_offset(0)),
			     (ssize_t)sizeof(rec));
		CHECK_EQ_INT(reload(&g, false), -EBADMSG);
		close_fixture(&g);
	}
}

/* ---- 7. faults ---- */

static long fault_write_budget = -1;     /* bytes writable before ENOSPC; < 0: all */
static size_t fault_max_write, fault_max_read;

static ssize_t fault_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (fault_max_write && len > fault_max_write)
		len = fault_max_write;
	if (fault_write_budget >= 0) {
		if (fault_write_budget == 0) {
			errno = ENOSPC;
			return -1;
		}
		if ((long)len > fault_write_budget)
			len = (size_t)fault_write_budget;
		fault_write_budget -= (long)len;
	}
	return pwrite(fd, buf, len, off);
}

static ssize_t fault_pread(int fd, void *buf, size_t len, off_t off)
{
	if (fault_max_read && len > fault_max_read)
		len = fault_max_read;
	return pread(fd, buf, len, off);
}

static struct ekmfs_io_ops fault_io;

static void faults_reset(void)
{
	fault_io = ekmfs_io_system;
	fault_io.pread = fault_pread;
	fault_io.pwrite = fault_pwrite;
	fault_io.batch = NULL;
	fault_write_budget = -1;
	fault_max_write = fault_max_read = 0;
}

/* A slot write cut at any of its pwrites (the process killed between
 * them) leaves the slot as it was, as the new one, or in between (tenant
 * id 0: a known interrupted write) - never a new seq over the older wrap
 * the slot still held (docs/ROTATION.md, "Split slot writes"). */
static void test_slot_write_cut(void)
{
	static const long cuts[] = { 0, 8, 88, 96, 184, -1 };
	uint8_t old[EKMFS_SLOT_SIZE], want[EKMFS_HEADER_PARSE_SIZE], got[EKMFS_SLOT_SIZE];
	struct ekmfs_header h;
	char path[] = "/tmp/ekmfs-slot-XXXXXX";
	off_t off = (off_t)ekmfs_slot_offset(0);
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	unlink(path);
	/* The slot holds an older wrap: seq 5, tenant 0xabababab. */
	memset(old, 0xab, sizeof(old));
	memset(old, 0, 8);
	old[0] = 5;
	memset(&h, 0, sizeof(h));
	h.version = EKMFS_FORMAT_V2;
	h.block_size = EKMFS_BLOCK_SIZE;
	h.slot[0].seq = 6;
	h.slot[0].tenant_id = 1;
	h.slot[0].kek_version = 2;
	memset(h.slot[0].wrapped_dek, 0x5a, sizeof(h.slot[0].wrapped_dek));
	ekmfs_header_serialize(&h, want);
	faults_reset();
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(cuts); i++) {
		uint32_t tenant;
		bool as_old, as_new, between;

		CHECK_EQ_INT(ekmfs_write_full(fd, old, sizeof(old), off), 0);
		fault_write_budget = cuts[i];
		ekmfs_io = &fault_io;
		(void)ekmfs_content_write_slot(fd, &h, 0);
		ekmfs_io = &ekmfs_io_system;
		CHECK_EQ_INT(pread(fd, got, sizeof(got), off), (ssize_t)sizeof(got));
		memcpy(&tenant, got + 8, sizeof(tenant));
		as_old = memcmp(got, old, sizeof(got)) == 0;
		as_new = memcmp(got, want + off, sizeof(got)) == 0;
		between = tenant == 0;
		CHECK(as_old || as_new || between);
		if (cuts[i] < 0)
			CHECK(as_new);
	}
	faults_reset();
	close(fd);
}

static void test_faults(void)
{
	static uint8_t model[6 * EKMFS_BLOCK_SIZE];
	const uint64_t size = 2 * EKMFS_BLOCK_SIZE + 300;
	struct fixture f;
	uint64_t bad;

	if (open_fixture(&f) < 0)
		return;
	faults_reset();
	ekmfs_io = &fault_io;
	/* Short transfers everywhere: the same bytes. */
	fault_max_write = 777;
	fault_max_read = 1000;
	fill_pattern(model, sizeof(model), 11);
	CHECK_EQ_INT(ekmfs_content_write(f.c, model, size, 0, &bad), (ssize_t)size);
	check_whole(f.c, model, size);
	CHECK_EQ_INT(ekmfs_content_sync(f.c, false), 0);
	/* ENOSPC while extending, for every failure point: the error comes
	 * back and the file keeps its old size and content. */
	for (long budget = 0; budget < 3 * EKMFS_CBLOCK_SIZE_V2; budget += 1031) {
		faults_reset();
		fault_write_budget = budget;
		CHECK_EQ_INT(ekmfs_content_write(f.c, model + 5000, 9000, size + 3000, &bad),
			     -ENOSPC);
		faults_reset();
		check_whole(f.c, model, size);
	}
	ekmfs_io = &ekmfs_io_system;
	CHECK_EQ_INT(reload(&f, false), 0);
	check_whole(f.c, model, size);
	close_fixture(&f);
}

/* ---- 8. crash simulation ---- */

/* Every change the content layer makes goes through the seam; the
 * recorder keeps them in order with their bytes. Files are the backing
 * file (id 0) and journal files (by name). */
enum rop { R_WRITE, R_TRUNC, R_PUNCH, R_SYNC, R_CREATE, R_UNLINK };

struct rrec {
	enum rop op;
	int file;
	uint64_t off, len;
	uint8_t *data;
};

#define MAX_FILES 64
static struct {
	struct rrec *r;
	size_t n, cap;
	ino_t ino[MAX_FILES];
	char name[MAX_FILES][80];
	int nfiles;
	int jdir;
} rec;

static int file_of_fd(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	/* Newest first: an unlinked journal's inode number may come back. */
	for (int i = rec.nfiles - 1; i >= 0; i--)
		if (rec.ino[i] == st.st_ino)
			return i;
	return -1;
}

static void record(enum rop op, int file, uint64_t off, uint64_t len, const void *data)
{
	if (file < 0)
		return;
	if (rec.n == rec.cap) {
		rec.cap = rec.cap ? 2 * rec.cap : 1024;
		rec.r = realloc(rec.r, rec.cap * sizeof(*rec.r));
	}
	rec.r[rec.n] = (struct rrec){ .op = op, .file = file, .off = off, .len = len };
	if (data) {
		rec.r[rec.n].data = malloc(len);
		memcpy(rec.r[rec.n].data, data, len);
	}
	rec.n++;
}

static ssize_t rec_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (n > 0)
		record(R_WRITE, file_of_fd(fd), (uint64_t)off, (uint64_t)n, buf);
	return n;
}

static int rec_ftruncate(int fd, off_t len)
{
	int rc = ftruncate(fd, len);

	if (rc == 0)
		record(R_TRUNC, file_of_fd(fd), (uint64_t)len, 0, NULL);
	return rc;
}

static int rec_fallocate(int fd, int mode, off_t off, off_t len)
{
	int rc = fallocate(fd, mode, off, len);

	if (rc == 0 && (mode & FALLOC_FL_PUNCH_HOLE))
		record(R_PUNCH, file_of_fd(fd), (uint64_t)off, (uint64_t)len, NULL);
	return rc;
}

static int rec_fsync(int fd)
{
	int rc = fsync(fd);

	if (rc == 0)
		record(R_SYNC, file_of_fd(fd), 0, 0, NULL);
	return rc;
}

static int rec_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	int fd = openat(dirfd, name, flags, mode);
	struct stat st;

	if (fd >= 0 && dirfd == rec.jdir && rec.nfiles < MAX_FILES && fstat(fd, &st) == 0) {
		int i = rec.nfiles++;

		rec.ino[i] = st.st_ino;
		snprintf(rec.name[i], sizeof(rec.name[i]), "%s", name);
		record(R_CREATE, i, 0, 0, NULL);
		if (flags & O_TRUNC)
			record(R_TRUNC, i, 0, 0, NULL);
	}
	return fd;
}

static int rec_unlinkat(int dirfd, const char *name, int flags)
{
	int rc = unlinkat(dirfd, name, flags);

	if (rc == 0 && dirfd == rec.jdir)
		for (int i = rec.nfiles - 1; i >= 0; i--)
			if (strcmp(rec.name[i], name) == 0 && rec.ino[i]) {
				record(R_UNLINK, i, 0, 0, NULL);
				rec.ino[i] = 0;
				break;
			}
	return rc;
}

static struct ekmfs_io_ops rec_io;

/* A replayed file: its current bytes and what a sync made durable. */
struct rfile {
	uint8_t *cur, *dur;
	uint64_t cur_len, dur_len, cap;
	bool exists;
};

static void rf_resize(struct rfile *f, uint64_t len)
{
	if (len > f->cap) {
		uint64_t cap = len * 2 + 4096;

		f->cur = realloc(f->cur, cap);
		f->dur = realloc(f->dur, cap);
		memset(f->cur + f->cap, 0, cap - f->cap);
		memset(f->dur + f->cap, 0, cap - f->cap);
		f->cap = cap;
	}
	if (len > f->cur_len)
		memset(f->cur + f->cur_len, 0, len - f->cur_len);
	f->cur_len = len;
}

/* Apply records [0, k) and write the crash image into dir: mode 0 kill
 * (the page cache survives: current bytes), 1 power cut (each file's size
 * is its durable or current one, each 512-byte sector where they differ
 * is one or the other, at random). */
static void materialize(size_t k, int mode, const char *dir, const char *jdir)
{
	static struct rfile files[MAX_FILES];
	char path[256];

	for (int i = 0; i < MAX_FILES; i++) {
		free(files[i].cur);
		free(files[i].dur);
		memset(&files[i], 0, sizeof(files[i]));
	}
	files[0].exists = true;
	for (size_t i = 0; i < k; i++) {
		struct rrec *r = &rec.r[i];
		struct rfile *f = &files[r->file];

		switch (r->op) {
		case R_CREATE:
			rf_resize(f, 0);
			f->cur_len = f->dur_len = 0;
			f->exists = true;
			break;
		case R_UNLINK:
			f->exists = false;
			break;
		case R_WRITE:
			if (r->off + r->len > f->cur_len)
				rf_resize(f, r->off + r->len);
			memcpy(f->cur + r->off, r->data, r->len);
			break;
		case R_TRUNC:
			rf_resize(f, r->off);
			break;
		case R_PUNCH:
			if (r->off < f->cur_len)
				memset(f->cur + r->off, 0,
				       r->off + r->len > f->cur_len ? f->cur_len - r->off : r->len);
			break;
		case R_SYNC:
			rf_resize(f, f->cur_len);
			memcpy(f->dur, f->cur, f->cur_len);
			if (f->dur_len > f->cur_len)
				memset(f->dur + f->cur_len, 0, f->dur_len - f->cur_len);
			f->dur_len = f->cur_len;
			break;
		}
	}
	for (int i = 0; i < rec.nfiles || i == 0; i++) {
		struct rfile *f = &files[i];
		uint64_t len = f->cur_len;
		uint8_t *img;
		int fd;

		if (!f->exists)
			continue;
		if (i == 0)
			snprintf(path, sizeof(path), "%s/file", dir);
		else
			snprintf(path, sizeof(path), "%s/%s", jdir, rec.name[i]);
		if (mode == 1 && rnd_below(2))
			len = f->dur_len;
		img = calloc(1, len + 1);
		for (uint64_t s = 0; s < len; s += EKMFS_SECTOR_SIZE) {
			uint64_t n = len - s < EKMFS_SECTOR_SIZE ? len - s : EKMFS_SECTOR_SIZE;
			bool old = mode == 1 && rnd_below(2);

			if (!old && s < f->cur_len)
				memcpy(img + s, f->cur + s, s + n <= f->cur_len ? n : f->cur_len - s);
			else if (old && s < f->dur_len)
				memcpy(img + s, f->dur + s, s + n <= f->dur_len ? n : f->dur_len - s);
		}
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			CHECK_EQ_INT(pwrite(fd, img, len, 0), (ssize_t)len);
			close(fd);
		}
		free(img);
	}
}

/* Empty the image directories (no shell: thousands of crash points). */
static void clear_image(const char *dir, const char *jdir)
{
	char path[512];
	struct dirent *de;
	DIR *d;

	mkdir(dir, 0700);
	mkdir(jdir, 0700);
	snprintf(path, sizeof(path), "%s/file", dir);
	unlink(path);
	d = opendir(jdir);
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", jdir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
}

/* The workload's view: the model at each completed sync, and the bytes
 * touched since by operations that had started. */
struct syncpoint {
	size_t log_end;           /* records when the sync returned */
	struct model m;
};

struct touch {
	size_t log_start;         /* records when the operation started */
	uint64_t from, to;
};

static void print_settled(void *arg, const char *what)
{
	(void)arg;
	if (getenv("EKMFS_TEST_VERBOSE"))
		fprintf(stderr, "settled: %s\n", what);
}

static void check_crash_image(const char *dir, const char *jdir, const uint8_t dek[32],
			      const struct syncpoint *sp, const struct touch *t, size_t nt,
			      size_t k, int mode)
{
	static uint8_t buf[MODEL_MAX + 8192];
	struct ekmfs_content_env env = { .settle = true, .settled = print_settled };
	struct ekmfs_content *c = NULL;
	struct ekmfs_header h;
	char path[256];
	uint64_t bad = UINT64_MAX, size, seal;
	ssize_t n;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	env.journal_dir = open(jdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = ekmfs_content_read_header(fd, &h);
	if (rc < 0 && rc != -ENODATA && ekmfs_content_settle_header(fd) == 0)
		rc = -ENODATA;
	if (rc == -ENODATA && sp->m.size == 0) {
		size = 0;              /* never got its header: empty, fine */
		goto done;
	}
	if (rc == 0)
		rc = ekmfs_content_load(&c, fd, &h, dek, &env);
	if (rc < 0) {
		fprintf(stderr, "crash point %zu mode %d: the file does not open (%d: %s)\n", k,
			mode, rc, ekmfs_lasterr());
		for (size_t i = 0; i < k; i++)
			fprintf(stderr, "  record %zu: op %d file %d off %llu len %llu\n", i,
				rec.r[i].op, rec.r[i].file, (unsigned long long)rec.r[i].off,
				(unsigned long long)rec.r[i].len);
		CHECK(0);
		goto done;
	}
	size = ekmfs_content_size(c);
	n = ekmfs_content_read(c, buf, sizeof(buf), 0, &bad);
	if (n != (ssize_t)size) {
		fprintf(stderr, "crash point %zu mode %d: read %zd of %llu (%s)\n", k, mode, n,
			(unsigned long long)size, ekmfs_lasterr());
		CHECK(0);
		goto done;
	}
	/* Every fsynced byte that nothing touched since is there. */
	for (uint64_t p = 0; p < sp->m.size; p++) {
		bool touched = false;

		for (size_t i = 0; i < nt && !touched; i++)
			touched = t[i].log_start < k && p >= t[i].from && p < t[i].to;
		if (touched)
			continue;
		if (p >= size || buf[p] != sp->m.bytes[p]) {
			fprintf(stderr, "crash point %zu mode %d: fsynced byte %llu lost "
				"(size %llu, synced size %llu)\n", k, mode,
				(unsigned long long)p, (unsigned long long)size,
				(unsigned long long)sp->m.size);
			for (size_t i = 0; i < k; i++)
				fprintf(stderr, "  record %zu: op %d file %d off %llu len %llu%s%llu\n", i,
					rec.r[i].op, rec.r[i].file,
					(unsigned long long)rec.r[i].off,
					(unsigned long long)rec.r[i].len,
					rec.r[i].len == 16 ? " index " : "",
					rec.r[i].len == 16 ? (unsigned long long)rec.r[i].data[0] : 0ull);
			CHECK(0);
			break;
		}
	}
	/* Settled: a strict load now passes. */
	CHECK_EQ_INT(ekmfs_content_close(c, &seal), 0);
	CHECK_EQ_INT(seal, 0);
	c = NULL;
	env.settle = false;
	if (ekmfs_content_read_header(fd, &h) == 0) {
		CHECK_EQ_INT(ekmfs_content_load(&c, fd, &h, dek, &env), 0);
	}
done:
	ekmfs_content_free(c);
	close(env.journal_dir);
	close(fd);
}

static void test_crash_points(void)
{
	static struct syncpoint sps[800];
	static struct touch touches[2000];
	static struct model m;
	size_t nsp = 0, nt = 0, points = 0;
	struct fixture f;
	char img[96], imgj[128];
	uint64_t from, to;
	struct stat st;
	const char *env_ops = getenv("EKMFS_CRASH_UNIT_OPS");
	const char *env_seed = getenv("EKMFS_CRASH_UNIT_SEED");
	int nops = env_ops ? atoi(env_ops) : 400;

	rng_state = env_seed ? strtoull(env_seed, NULL, 0) : 777;
	memset(&rec, 0, sizeof(rec));
	if (open_dir(&f) < 0)
		return;
	f.fd = open(f.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f.fd < 0 || fstat(f.fd, &st) < 0)
		return;
	rec.nfiles = 1;
	rec.jdir = f.jdir;
	rec.ino[0] = st.st_ino;
	rec_io = ekmfs_io_system;
	rec_io.pwrite = rec_pwrite;
	rec_io.batch = NULL;
	rec_io.ftruncate = rec_ftruncate;
	rec_io.fallocate = rec_fallocate;
	rec_io.fsync = rec_fsync;
	rec_io.fdatasync = rec_fsync;
	rec_io.openat = rec_openat;
	rec_io.unlinkat = rec_unlinkat;
	ekmfs_io = &rec_io;
	make_header(&f.h, f.dek);
	CHECK_EQ_INT(ekmfs_content_create(&f.c, f.fd, &f.h, f.dek, &f.env), 0);
	CHECK_EQ_INT(ekmfs_content_sync(f.c, false), 0);
	m.size = 0;
	sps[nsp++] = (struct syncpoint){ .log_end = rec.n, .m = m };
	for (int op = 0; op < nops && nt < 2000 && nsp < 800 && f.c; op++) {
		size_t start = rec.n;
		enum op_kind kind = random_op(&f, &m, op, true, &from, &to);

		if (getenv("EKMFS_TEST_VERBOSE"))
			fprintf(stderr, "op %d kind %d records %zu..%zu touched [%llu, %llu) size %llu\n",
				op, kind, start, rec.n, (unsigned long long)from,
				(unsigned long long)to, (unsigned long long)m.size);
		if (kind == OP_SYNC)
			sps[nsp++] = (struct syncpoint){ .log_end = rec.n, .m = m };
		if (to > from)
			touches[nt++] = (struct touch){ .log_start = start, .from = from, .to = to };
	}
	ekmfs_io = &ekmfs_io_system;
	ekmfs_content_free(f.c);
	f.c = NULL;
	/* Crash after every record, in both modes (a power cut three times,
	 * with other sectors each time); check against the last sync that had
	 * completed, sparing the bytes of operations that had started since. */
	snprintf(img, sizeof(img), "%s/img", f.dir);
	snprintf(imgj, sizeof(imgj), "%s/img/journal", f.dir);
	for (size_t k = 1; k <= rec.n && !check_failures; k++) {
		size_t s = 0, t0 = 0, t1 = 0;

		while (s + 1 < nsp && sps[s + 1].log_end <= k)
			s++;
		while (t0 < nt && touches[t0].log_start < sps[s].log_end)
			t0++;
		for (t1 = t0; t1 < nt && touches[t1].log_start < k; t1++)
			;
		for (int mode = 0; mode < 2 && !check_failures; mode++) {
			for (int rep = 0; rep < (mode ? 3 : 1) && !check_failures; rep++) {
				clear_image(img, imgj);
				materialize(k, mode, img, imgj);
				check_crash_image(img, imgj, f.dek, &sps[s], touches + t0, t1 - t0,
						  k, mode);
				points++;
			}
		}
	}
	printf("# crash simulation: %zu records, %zu crash points checked\n", rec.n, points);
	for (size_t i = 0; i < rec.n; i++)
		free(rec.r[i].data);
	free(rec.r);
	close_fixture(&f);
}

/* ---- 9. version 1 files ---- */

static void test_v1_read(void)
{
	const struct ekmfs_layout *l = &ekmfs_layout_v1;
	uint8_t hdr[EKMFS_HEADER_PARSE_SIZE], data[5000], stored[EKMFS_CBLOCK_SIZE_V1];
	uint8_t nonce[12] = { 5 }, back[6000];
	struct ekmfs_header h;
	struct fixture f;
	uint64_t bad;

	memset(&f, 0, sizeof(f));
	if (open_dir(&f) < 0)
		return;
	f.fd = open(f.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	make_header(&h, f.dek);
	h.version = EKMFS_FORMAT_V1;
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 1, 1, 1, test_kek, f.dek, nonce), 0);
	CHECK_EQ_INT(ekmfs_header_serialize(&h, hdr), EKMFS_HEADER_SIZE_V1);
	CHECK_EQ_INT(pwrite(f.fd, hdr, EKMFS_HEADER_SIZE_V1, 0), EKMFS_HEADER_SIZE_V1);
	fill_pattern(data, sizeof(data), 4);
	for (uint64_t i = 0; i < 2; i++) {
		size_t len = i ? sizeof(data) - EKMFS_BLOCK_SIZE : EKMFS_BLOCK_SIZE;

		nonce[0] = (uint8_t)(i + 1);
		CHECK_EQ_INT(ekmfs_block_seal(l, f.dek, h.file_id, i, nonce,
					      data + i * EKMFS_BLOCK_SIZE, len, stored), 0);
		CHECK_EQ_INT(pwrite(f.fd, stored, len + l->overhead,
				    (off_t)ekmfs_block_offset(l, i)), (ssize_t)(len + l->overhead));
	}
	CHECK_EQ_INT(reload(&f, false), 0);
	CHECK_EQ_INT(ekmfs_content_version(f.c), 1);
	CHECK_EQ_INT(ekmfs_content_size(f.c), sizeof(data));
	CHECK_EQ_INT(ekmfs_content_read(f.c, back, sizeof(back), 0, &bad), (ssize_t)sizeof(data));
	CHECK_MEM(back, data, sizeof(data));
	CHECK_EQ_INT(ekmfs_content_write(f.c, "x", 1, 0, &bad), -EROFS);
	close_fixture(&f);
}

int main(void)
{
	RUN(test_basics);
	RUN(test_random_ops);
	RUN(test_sparse);
	RUN(test_punch_and_run_limit);
	RUN(test_nonces_and_rekey);
	RUN(test_tampered_blocks);
	RUN(test_cuts_and_appends);
	RUN(test_tampered_records);
	RUN(test_faults);
	RUN(test_slot_write_cut);
	RUN(test_crash_points);
	RUN(test_v1_read);
	return CHECK_DONE();
}
