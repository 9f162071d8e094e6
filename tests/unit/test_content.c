/*
 * test_content.c - plaintext reads, writes and truncation (src/content/).
 *
 * Divisions:
 *   1. fixtures: a temp backing file with a header, an in-memory model
 *   2. header and size handling
 *   3. random operations against the model (seeded, thousands of ops)
 *   4. large requests and gaps (chunking), no holes, fresh nonces
 *   5. tampering: flipped, zeroed, swapped and cut-short blocks
 *   6. fault injection through the ekmfs_io table
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/content.h"
#include "ekmfs/io.h"

/* ---- 1. fixtures ---- */

static const uint8_t test_kek[32] = { 0x10, 0x20, 0x30 };
static uint8_t test_dek[32];

struct fixture {
	struct ekmfs_content c;
	char path[64];
};

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

static int open_fixture(struct fixture *f, int with_header)
{
	struct ekmfs_header h;
	uint8_t nonce[12] = { 9 };

	strcpy(f->path, "/tmp/ekmfs-test-content-XXXXXX");
	f->c.fd = mkstemp(f->path);
	if (f->c.fd < 0) {
		perror("mkstemp");
		return -1;
	}
	for (int i = 0; i < 16; i++)
		f->c.file_id[i] = (uint8_t)rnd();
	for (int i = 0; i < 32; i++)
		test_dek[i] = (uint8_t)(i * 7 + 1);
	f->c.dek = test_dek;
	if (!with_header)
		return 0;
	ekmfs_header_init(&h, f->c.file_id);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 1, 1, 1, test_kek, test_dek, nonce), 0);
	CHECK_EQ_INT(ekmfs_content_write_header(f->c.fd, &h), 0);
	return 0;
}

static void close_fixture(struct fixture *f)
{
	close(f->c.fd);
	unlink(f->path);
}

static uint64_t backing_size(const struct fixture *f)
{
	struct stat st;

	if (fstat(f->c.fd, &st) < 0)
		return UINT64_MAX;
	return (uint64_t)st.st_size;
}

static void fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i + seed) * 131 + (seed >> 3));
}

/* Read the whole file and compare with the model. */
static void check_whole(const struct fixture *f, const uint8_t *model, uint64_t size)
{
	uint8_t *buf = malloc(size + 4096);
	uint64_t got_size = 12345, bad = 999;
	ssize_t n;

	CHECK_EQ_INT(ekmfs_content_size(f->c.fd, &got_size), 0);
	CHECK_EQ_INT(got_size, size);
	CHECK_EQ_INT(backing_size(f), ekmfs_backing_size(size));
	n = ekmfs_content_read(&f->c, buf, size + 4096, 0, &bad);
	CHECK_EQ_INT(n, (ssize_t)size);
	if (n == (ssize_t)size)
		CHECK_MEM(buf, model, size);
	free(buf);
}

static int corrupt_byte(const struct fixture *f, uint64_t pos, uint8_t xor)
{
	uint8_t b;

	if (pread(f->c.fd, &b, 1, (off_t)pos) != 1)
		return -1;
	b ^= xor;
	return pwrite(f->c.fd, &b, 1, (off_t)pos) == 1 ? 0 : -1;
}

/* ---- 2. header and size ---- */

static void test_header_and_size(void)
{
	struct fixture f;
	struct ekmfs_header h;
	uint64_t size, bad;
	uint8_t junk[100] = { 'E', 'K', 'M', 'F' }, buf[16];

	if (open_fixture(&f, 0) < 0)
		return;
	CHECK_EQ_INT(ekmfs_content_read_header(f.c.fd, &h), -ENODATA);
	CHECK_EQ_INT(ekmfs_content_size(f.c.fd, &size), 0);
	CHECK_EQ_INT(size, 0);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, "x", 1, 0, &bad), -ENODATA);
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 0, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 10, &bad), -ENODATA);
	CHECK_EQ_INT(backing_size(&f), 0);
	CHECK_EQ_INT(pwrite(f.c.fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	CHECK_EQ_INT(ekmfs_content_read_header(f.c.fd, &h), -EBADMSG);
	CHECK_EQ_INT(ekmfs_content_size(f.c.fd, &size), -EBADMSG);
	close_fixture(&f);

	if (open_fixture(&f, 1) < 0)
		return;
	CHECK_EQ_INT(ekmfs_content_read_header(f.c.fd, &h), 0);
	CHECK_MEM(h.file_id, f.c.file_id, 16);
	CHECK_EQ_INT(h.slot[0].seq, 1);
	CHECK_EQ_INT(ekmfs_content_size(f.c.fd, &size), 0);
	CHECK_EQ_INT(size, 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, sizeof(buf), 0, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, sizeof(buf), 1u << 20, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, "hello", 5, 0, &bad), 5);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, sizeof(buf), 0, &bad), 5);
	CHECK_MEM(buf, "hello", 5);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, sizeof(buf), 3, &bad), 2);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, sizeof(buf), 5, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, sizeof(buf), UINT64_MAX - 3, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, "x", 1, UINT64_MAX - 3, &bad), -EFBIG);
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, UINT64_MAX / 2, &bad), -EFBIG);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, "x", 0, 1000, &bad), 0);
	CHECK_EQ_INT(backing_size(&f), ekmfs_backing_size(5));
	/* Truncate to 0 keeps the header. */
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 0, &bad), 0);
	CHECK_EQ_INT(backing_size(&f), EKMFS_HEADER_SIZE);
	CHECK_EQ_INT(ekmfs_content_read_header(f.c.fd, &h), 0);
	close_fixture(&f);
}

/* ---- 3. random operations against the model ---- */

#define MODEL_MAX (10 * EKMFS_BLOCK_SIZE + 77)

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

static void test_random_ops(void)
{
	static uint8_t model[MODEL_MAX], buf[MODEL_MAX], data[MODEL_MAX];
	uint64_t size = 0, bad;
	struct fixture f;
	int ops[3] = { 0 };

	if (open_fixture(&f, 1) < 0)
		return;
	rng_state = 12345;
	for (int op = 0; op < 4000 && !check_failures; op++) {
		int kind = (int)rnd_below(10);
		uint64_t off, len;

		if (kind < 5) { /* write, maybe leaving a gap past the end */
			off = pick_offset(MODEL_MAX - 1);
			len = rnd_below(3) == 0 ? rnd_below(3 * EKMFS_BLOCK_SIZE) + 1
						: pick_offset(MODEL_MAX - off - 1) + 1;
			if (off + len > MODEL_MAX)
				len = MODEL_MAX - off;
			fill_pattern(data, len, (uint64_t)op);
			CHECK_EQ_INT(ekmfs_content_write(&f.c, data, len, off, &bad), (ssize_t)len);
			if (off > size)
				memset(model + size, 0, off - size);
			memcpy(model + off, data, len);
			if (off + len > size)
				size = off + len;
			ops[0]++;
		} else if (kind < 8) { /* read, possibly past the end */
			uint64_t want;

			off = pick_offset(MODEL_MAX);
			len = pick_offset(MODEL_MAX - off);
			want = off >= size ? 0 : (off + len > size ? size - off : len);
			memset(buf, 0xee, len);
			CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, len, off, &bad), (ssize_t)want);
			CHECK_MEM(buf, model + (off < size ? off : 0), want);
			ops[1]++;
		} else { /* truncate, shrinking or growing */
			uint64_t to = pick_offset(MODEL_MAX);

			CHECK_EQ_INT(ekmfs_content_truncate(&f.c, to, &bad), 0);
			if (to > size)
				memset(model + size, 0, to - size);
			size = to;
			ops[2]++;
		}
		uint64_t got = 0;
		CHECK_EQ_INT(ekmfs_content_size(f.c.fd, &got), 0);
		CHECK_EQ_INT(got, size);
		if (op % 200 == 0 || check_failures) {
			check_whole(&f, model, size);
			if (check_failures)
				fprintf(stderr, "random ops: failure at op %d\n", op);
		}
	}
	check_whole(&f, model, size);
	CHECK(ops[0] > 1000 && ops[1] > 500 && ops[2] > 400);
	close_fixture(&f);
}

/* ---- 4. large requests and gaps ---- */

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_large_and_gaps(void)
{
	const size_t big = 3 * 1024 * 1024 + 1234;
	const uint64_t far = 5 * 1024 * 1024 + 17;
	uint8_t *data = malloc(big), *buf = malloc(far + big), *stored = malloc(EKMFS_CBLOCK_SIZE);
	uint8_t first[EKMFS_CBLOCK_SIZE], again[EKMFS_CBLOCK_SIZE];
	struct fixture f;
	uint64_t bad;

	if (!data || !buf || !stored || open_fixture(&f, 1) < 0)
		goto out;
	fill_pattern(data, big, 77);
	/* More than one chunk in one write and one read. */
	CHECK_EQ_INT(ekmfs_content_write(&f.c, data, big, 100, &bad), (ssize_t)big);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, big + 100, 0, &bad), (ssize_t)(big + 100));
	CHECK(all_zero(buf, 100));
	CHECK_MEM(buf + 100, data, big);
	/* A gap of several chunks, then data. */
	CHECK_EQ_INT(ekmfs_content_write(&f.c, data, 5000, far, &bad), 5000);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, far + 6000, 0, &bad), (ssize_t)(far + 5000));
	CHECK_MEM(buf + 100, data, big);
	CHECK(all_zero(buf + 100 + big, far - 100 - big));
	CHECK_MEM(buf + far, data, 5000);
	/* The gap is sealed: stored blocks there are not zeros (no holes). */
	uint64_t gap_block = (100 + big) / EKMFS_BLOCK_SIZE + 3;
	CHECK_EQ_INT(pread(f.c.fd, stored, EKMFS_CBLOCK_SIZE, (off_t)ekmfs_block_offset(gap_block)),
		     EKMFS_CBLOCK_SIZE);
	CHECK(!all_zero(stored, EKMFS_CBLOCK_SIZE));
	/* Growing truncate across chunks, reading back zeros. */
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, far + big, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, big, far, &bad), (ssize_t)big);
	CHECK_MEM(buf, data, 5000);
	CHECK(all_zero(buf + 5000, big - 5000));

	/* Every write of a block uses a fresh nonce: same data, other bytes. */
	CHECK_EQ_INT(pread(f.c.fd, first, sizeof(first), (off_t)ekmfs_block_offset(0)),
		     (ssize_t)sizeof(first));
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, EKMFS_BLOCK_SIZE, 0, &bad), EKMFS_BLOCK_SIZE);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, buf, EKMFS_BLOCK_SIZE, 0, &bad), EKMFS_BLOCK_SIZE);
	CHECK_EQ_INT(pread(f.c.fd, again, sizeof(again), (off_t)ekmfs_block_offset(0)),
		     (ssize_t)sizeof(again));
	CHECK(memcmp(first, again, EKMFS_NONCE_SIZE) != 0);
	CHECK(memcmp(first, again, sizeof(first)) != 0);
	close_fixture(&f);
out:
	free(data);
	free(buf);
	free(stored);
}

/* ---- 5. tampering ---- */

#define TAMPER_SIZE (5 * EKMFS_BLOCK_SIZE + 300) /* blocks 0..5, last partial */

static void tamper_setup(struct fixture *f, uint8_t *model)
{
	uint64_t bad;

	fill_pattern(model, TAMPER_SIZE, 5);
	CHECK_EQ_INT(open_fixture(f, 1), 0);
	CHECK_EQ_INT(ekmfs_content_write(&f->c, model, TAMPER_SIZE, 0, &bad), TAMPER_SIZE);
}

static void test_tampered_block(void)
{
	static uint8_t model[TAMPER_SIZE], buf[TAMPER_SIZE];
	struct fixture f;
	uint64_t bad = 999;

	tamper_setup(&f, model);
	CHECK_EQ_INT(corrupt_byte(&f, ekmfs_block_offset(2) + 500, 0x01), 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, TAMPER_SIZE, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 2);
	bad = 999;
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, 2 * EKMFS_BLOCK_SIZE, EKMFS_BLOCK_SIZE + 10,
					&bad), -EIO);
	CHECK_EQ_INT(bad, 2);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, 1, 2 * EKMFS_BLOCK_SIZE + 4095, NULL), -EIO);
	/* The other blocks still read. */
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, 2 * EKMFS_BLOCK_SIZE, 0, &bad),
		     2 * EKMFS_BLOCK_SIZE);
	CHECK_MEM(buf, model, 2 * EKMFS_BLOCK_SIZE);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, TAMPER_SIZE, 3 * EKMFS_BLOCK_SIZE, &bad),
		     TAMPER_SIZE - 3 * EKMFS_BLOCK_SIZE);
	CHECK_MEM(buf, model + 3 * EKMFS_BLOCK_SIZE, TAMPER_SIZE - 3 * EKMFS_BLOCK_SIZE);
	/* A partial write into the bad block must not launder it... */
	bad = 999;
	CHECK_EQ_INT(ekmfs_content_write(&f.c, "abc", 3, 2 * EKMFS_BLOCK_SIZE + 7, &bad), -EIO);
	CHECK_EQ_INT(bad, 2);
	/* ...nor a truncate inside it; a truncate at its start drops it. */
	bad = 999;
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 2 * EKMFS_BLOCK_SIZE + 5, &bad), -EIO);
	CHECK_EQ_INT(bad, 2);
	/* A write covering the whole block replaces it. */
	CHECK_EQ_INT(ekmfs_content_write(&f.c, model + 2 * EKMFS_BLOCK_SIZE, EKMFS_BLOCK_SIZE,
					 2 * EKMFS_BLOCK_SIZE, &bad), EKMFS_BLOCK_SIZE);
	check_whole(&f, model, TAMPER_SIZE);
	close_fixture(&f);
}

static void test_zeroed_and_moved_blocks(void)
{
	static uint8_t model[TAMPER_SIZE], buf[TAMPER_SIZE];
	uint8_t zeros[EKMFS_CBLOCK_SIZE] = { 0 }, b1[EKMFS_CBLOCK_SIZE], b3[EKMFS_CBLOCK_SIZE];
	struct fixture f, g;
	uint64_t bad = 999;

	/* A block zeroed on disk (a hole punched by an attacker) fails. */
	tamper_setup(&f, model);
	CHECK_EQ_INT(pwrite(f.c.fd, zeros, sizeof(zeros), (off_t)ekmfs_block_offset(4)),
		     (ssize_t)sizeof(zeros));
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, TAMPER_SIZE, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 4);
	close_fixture(&f);

	/* Two blocks swapped: both fail, the first one is reported. */
	tamper_setup(&f, model);
	CHECK_EQ_INT(pread(f.c.fd, b1, sizeof(b1), (off_t)ekmfs_block_offset(1)), (ssize_t)sizeof(b1));
	CHECK_EQ_INT(pread(f.c.fd, b3, sizeof(b3), (off_t)ekmfs_block_offset(3)), (ssize_t)sizeof(b3));
	CHECK_EQ_INT(pwrite(f.c.fd, b3, sizeof(b3), (off_t)ekmfs_block_offset(1)), (ssize_t)sizeof(b3));
	CHECK_EQ_INT(pwrite(f.c.fd, b1, sizeof(b1), (off_t)ekmfs_block_offset(3)), (ssize_t)sizeof(b1));
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, TAMPER_SIZE, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 1);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, EKMFS_BLOCK_SIZE, 3 * EKMFS_BLOCK_SIZE, &bad),
		     -EIO);
	CHECK_EQ_INT(bad, 3);

	/* A block copied from another file with the same DEK and index fails
	 * (the file id is in the AAD). */
	tamper_setup(&g, model);
	CHECK_EQ_INT(pread(g.c.fd, b1, sizeof(b1), (off_t)ekmfs_block_offset(0)), (ssize_t)sizeof(b1));
	CHECK_EQ_INT(pwrite(f.c.fd, b1, sizeof(b1), (off_t)ekmfs_block_offset(0)), (ssize_t)sizeof(b1));
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, 10, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 0);
	close_fixture(&g);
	close_fixture(&f);
}

static void test_cut_short(void)
{
	static uint8_t model[TAMPER_SIZE], buf[TAMPER_SIZE];
	struct fixture f;
	uint64_t size, bad = 999;

	/* The last block cut to 20 bytes: an impossible size. */
	tamper_setup(&f, model);
	CHECK_EQ_INT(ftruncate(f.c.fd, (off_t)ekmfs_block_offset(5) + 20), 0);
	CHECK_EQ_INT(ekmfs_content_size(f.c.fd, &size), -EBADMSG);
	CHECK_EQ_INT(size, 5 * EKMFS_BLOCK_SIZE);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, TAMPER_SIZE, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 5);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, 100, 0, &bad), 100);
	bad = 999;
	CHECK_EQ_INT(ekmfs_content_write(&f.c, "z", 1, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 5);
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, TAMPER_SIZE, &bad), -EIO);
	/* Cutting to the intact prefix (or inside it) repairs the file. */
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 4 * EKMFS_BLOCK_SIZE + 9, &bad), 0);
	check_whole(&f, model, 4 * EKMFS_BLOCK_SIZE + 9);
	close_fixture(&f);

	/* The last block cut by some bytes (still a possible size): fails. */
	tamper_setup(&f, model);
	CHECK_EQ_INT(ftruncate(f.c.fd, (off_t)ekmfs_block_offset(5) + 300 + 28 - 50), 0);
	CHECK_EQ_INT(ekmfs_content_size(f.c.fd, &size), 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, TAMPER_SIZE, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 5);
	/* A full block cut short (the last byte of a middle block missing). */
	CHECK_EQ_INT(ftruncate(f.c.fd, (off_t)ekmfs_block_offset(3) - 1), 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, TAMPER_SIZE, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 2);
	close_fixture(&f);
}

/* ---- 6. fault injection ---- */

static int fault_max_write = 0;    /* > 0: pwrite moves at most this much */
static int fault_max_read = 0;     /* > 0: pread moves at most this much */
static long fault_write_budget = -1; /* >= 0: bytes until pwrite fails */
static int fault_write_errno = ENOSPC;
static int fault_read_errno = 0;   /* != 0: every pread fails so */
static int fault_ftruncate_errno = 0;

static ssize_t fault_pread(int fd, void *buf, size_t len, off_t off)
{
	if (fault_read_errno) {
		errno = fault_read_errno;
		return -1;
	}
	if (fault_max_read > 0 && len > (size_t)fault_max_read)
		len = (size_t)fault_max_read;
	return pread(fd, buf, len, off);
}

static ssize_t fault_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n;

	if (fault_max_write > 0 && len > (size_t)fault_max_write)
		len = (size_t)fault_max_write;
	if (fault_write_budget >= 0) {
		if (fault_write_budget == 0) {
			errno = fault_write_errno;
			return -1;
		}
		if ((long)len > fault_write_budget)
			len = (size_t)fault_write_budget; /* short, then failing */
	}
	n = pwrite(fd, buf, len, off);
	if (n > 0 && fault_write_budget >= 0)
		fault_write_budget -= n;
	return n;
}

static int fault_ftruncate(int fd, off_t len)
{
	if (fault_ftruncate_errno) {
		errno = fault_ftruncate_errno;
		return -1;
	}
	return ftruncate(fd, len);
}

/* The system table with faulty transfers and truncates (faults_reset). */
static struct ekmfs_io_ops fault_io;

static void faults_reset(void)
{
	fault_io = ekmfs_io_system;
	fault_io.pread = fault_pread;
	fault_io.pwrite = fault_pwrite;
	fault_io.ftruncate = fault_ftruncate;
	fault_io.batch = NULL;
	fault_max_write = fault_max_read = 0;
	fault_write_budget = -1;
	fault_write_errno = ENOSPC;
	fault_read_errno = fault_ftruncate_errno = 0;
}

static void test_short_transfers(void)
{
	static uint8_t model[MODEL_MAX], buf[MODEL_MAX];
	struct fixture f;
	uint64_t bad;

	if (open_fixture(&f, 1) < 0)
		return;
	ekmfs_io = &fault_io;
	faults_reset();
	fault_max_write = 777;
	fault_max_read = 1000;
	fill_pattern(model, MODEL_MAX, 3);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, model, 3 * EKMFS_BLOCK_SIZE + 5, 0, &bad),
		     3 * EKMFS_BLOCK_SIZE + 5);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, model + 7000, MODEL_MAX - 7000, 7000, &bad),
		     MODEL_MAX - 7000);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, MODEL_MAX, 0, &bad), MODEL_MAX);
	CHECK_MEM(buf, model, MODEL_MAX);
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 12345, &bad), 0);
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, MODEL_MAX, 0, &bad), 12345);
	CHECK_MEM(buf, model, 12345);
	ekmfs_io = &ekmfs_io_system;
	check_whole(&f, model, 12345);
	close_fixture(&f);
}

static void test_errors_returned(void)
{
	static uint8_t model[MODEL_MAX], buf[MODEL_MAX];
	const uint64_t size = 2 * EKMFS_BLOCK_SIZE + 100;
	struct fixture f;
	uint64_t bad;

	if (open_fixture(&f, 1) < 0)
		return;
	fill_pattern(model, MODEL_MAX, 11);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, model, size, 0, &bad), (ssize_t)size);
	ekmfs_io = &fault_io;

	/* ENOSPC while extending, for every failure point: the error comes
	 * back and the file keeps its old size and content. */
	for (long budget = 0; budget < 3 * EKMFS_CBLOCK_SIZE; budget += 1031) {
		faults_reset();
		fault_write_budget = budget;
		CHECK_EQ_INT(ekmfs_content_write(&f.c, model + 5000, 9000, size + 3000, &bad),
			     -ENOSPC);
		faults_reset();
		check_whole(&f, model, size);
	}
	/* ENOSPC on a growing truncate, EIO on an overwrite. */
	faults_reset();
	fault_write_budget = 100;
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 10 * EKMFS_BLOCK_SIZE, &bad), -ENOSPC);
	faults_reset();
	check_whole(&f, model, size);
	fault_write_budget = 0;
	fault_write_errno = EIO;
	CHECK_EQ_INT(ekmfs_content_write(&f.c, model, 10, 0, &bad), -EIO);
	faults_reset();
	check_whole(&f, model, size);

	/* Read errors and failing ftruncate. */
	fault_read_errno = EIO;
	CHECK_EQ_INT(ekmfs_content_read(&f.c, buf, 10, 0, &bad), -EIO);
	CHECK_EQ_INT(ekmfs_content_write(&f.c, model, 10, 5, &bad), -EIO); /* needs a merge */
	faults_reset();
	fault_ftruncate_errno = EPERM;
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, EKMFS_BLOCK_SIZE, &bad), -EPERM);
	CHECK_EQ_INT(ekmfs_content_truncate(&f.c, 0, &bad), -EPERM);
	faults_reset();
	ekmfs_io = &ekmfs_io_system;
	check_whole(&f, model, size);
	close_fixture(&f);
}

int main(void)
{
	RUN(test_header_and_size);
	RUN(test_random_ops);
	RUN(test_large_and_gaps);
	RUN(test_tampered_block);
	RUN(test_zeroed_and_moved_blocks);
	RUN(test_cut_short);
	RUN(test_short_transfers);
	RUN(test_errors_returned);
	return CHECK_DONE();
}
