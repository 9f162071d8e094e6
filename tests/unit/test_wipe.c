/*
 * test_wipe.c - the content layer frees no plaintext and no key unwiped.
 *
 * Linked with -Wl,--wrap=free (tests/unit/meson.build): every free() that
 * the core library and this file make goes through __wrap_free, which,
 * while armed, scans the whole block (malloc_usable_size) for the two
 * canaries: the plaintext pattern the test writes and the file's DEK. A hit
 * fails the test and names the caller's address (addr2line -e
 * build/tests/unit/test_wipe ADDR finds it). OpenSSL's own frees (its
 * secure heap, cipher contexts) are not seen: it cleanses those itself.
 *
 * Paths covered: create and write (whole blocks, a partial block, a
 * journal-backed overwrite), close, load, reads whole and in odd pieces, and
 * the error path of a reader: a block in the middle corrupted, a read
 * across it fails with -EIO after the blocks before it were opened into
 * the caller's buffer, which the caller wipes before freeing as
 * src/fs/ops.c (do_read, efs_read) does. test_detector proves a hit is
 * seen: an unwiped plaintext buffer freed is reported.
 *
 * Divisions: 1. the free hook / 2. fixture / 3. tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/content.h"
#include "ekmfs/format.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

/* ---- 1. the free hook ---- */

#define CANARY "ekmfs-PLAINTEXT!"      /* 16 bytes, repeated through the content */
#define CANARY_LEN 16

void __real_free(void *p);
void __wrap_free(void *p);

static volatile bool armed;
static uint8_t dek[EKMFS_KEY_SIZE];
static volatile unsigned hits;
static void *hit_caller;

void __wrap_free(void *p)
{
	if (p && armed) {
		size_t n = malloc_usable_size(p);

		if (memmem(p, n, CANARY, CANARY_LEN) || memmem(p, n, dek, sizeof(dek))) {
			if (!hits++)
				hit_caller = __builtin_return_address(0);
		}
	}
	__real_free(p);
}

static void arm(void)
{
	hits = 0;
	hit_caller = NULL;
	armed = true;
}

/* Disarm, and fail the current test on a hit. */
static void disarm(const char *what)
{
	armed = false;
	if (hits)
		fprintf(stderr, "%s: %u block(s) freed holding plaintext or the DEK, the "
			"first by the caller at %p\n", what, hits, hit_caller);
	CHECK_EQ_INT(hits, 0);
}

/* ---- 2. fixture ---- */

static const uint8_t kek[EKMFS_KEY_SIZE] = { 0x5a, 0xa5, 0x01 };
static char dir[64], path[96], jpath[96];

static void fill(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)CANARY[i % CANARY_LEN];
}

static int setup(int *jdir)
{
	strcpy(dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/ekmfs-test-wipe-XXXXXX"
						  : "/tmp/ekmfs-test-wipe-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/file", dir);
	snprintf(jpath, sizeof(jpath), "%s/journal", dir);
	if (mkdir(jpath, 0700) < 0)
		return -1;
	*jdir = open(jpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *jdir < 0 ? -1 : 0;
}

static void teardown(int jdir)
{
	char cmd[128];

	close(jdir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

/* Read [off, off+len) into a heap buffer freed as ops.c frees its reply
 * buffer: wiped whatever the outcome. */
static ssize_t read_as_daemon(struct ekmfs_content *c, size_t len, uint64_t off,
			     uint64_t *bad)
{
	uint8_t *buf = malloc(len ? len : 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = ekmfs_content_read(c, buf, len, off, bad);
	ekmfs_wipe_bulk(buf, len);
	free(buf);
	return n;
}

/* ---- 3. tests ---- */

#define NBLOCKS 6

static void test_write_read_and_bad_block(void)
{
	struct ekmfs_content_env env = { 0 };
	struct ekmfs_content *c = NULL;
	struct ekmfs_header h;
	uint8_t id[EKMFS_FILE_ID_SIZE] = { 1, 2, 3 }, nonce[12] = { 7 };
	size_t size = NBLOCKS * EKMFS_BLOCK_SIZE + 1000;
	uint8_t *pt = malloc(size), flip;
	uint64_t seal = 0, bad = UINT64_MAX;
	int fd, jdir = -1;

	CHECK(pt != NULL);
	if (!pt || setup(&jdir) < 0) {
		fprintf(stderr, "test_wipe: cannot set up %s\n", dir);
		check_failures++;
		free(pt);
		return;
	}
	env.journal_dir = jdir;
	fill(pt, size);
	for (size_t i = 0; i < sizeof(dek); i++)
		dek[i] = (uint8_t)(0xc3 ^ (i * 37));
	ekmfs_header_init(&h, id);
	CHECK_EQ_INT(ekmfs_slot_wrap(&h, 0, 1, 1, 1, kek, dek, nonce), 0);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);

	arm();
	/* Write: whole blocks, then a partial block, then an overwrite of the
	 * middle (a journal-backed update of blocks that exist). */
	CHECK_EQ_INT(ekmfs_content_create(&c, fd, &h, dek, &env), 0);
	CHECK_EQ_INT(ekmfs_content_write(c, pt, size - 1000, 0, NULL), (ssize_t)(size - 1000));
	CHECK_EQ_INT(ekmfs_content_write(c, pt, 1000, size - 1000, NULL), 1000);
	CHECK_EQ_INT(ekmfs_content_write(c, pt + 100, 2 * EKMFS_BLOCK_SIZE, 3000, NULL),
		     2 * EKMFS_BLOCK_SIZE);
	CHECK_EQ_INT(ekmfs_content_close(c, &seal), 0);
	c = NULL;
	disarm("write");
	/* At rest, as the daemon leaves it: synced and sealed. */
	CHECK_EQ_INT(fsync(fd), 0);
	if (seal)
		CHECK_EQ_INT(ekmfs_content_seal(fd, seal), 0);
	CHECK_EQ_INT(ekmfs_content_read_header(fd, &h), 0);

	/* Read back: whole and in odd pieces. */
	arm();
	CHECK_EQ_INT(ekmfs_content_load(&c, fd, &h, dek, &env), 0);
	if (c) {
		CHECK_EQ_INT(read_as_daemon(c, size, 0, NULL), (ssize_t)size);
		for (uint64_t off = 0; off < size; off += 7001)
			CHECK(read_as_daemon(c, 5003, off, NULL) > 0);
	}
	disarm("read");

	/* A bad block in the middle: a read from block 0 across it opens the
	 * blocks before it into the buffer, then fails. */
	if (c) {
		const struct ekmfs_layout *l = ekmfs_header_layout(&h);
		uint64_t pos = ekmfs_block_offset(l, 4) + 40;

		CHECK_EQ_INT(pread(fd, &flip, 1, (off_t)pos), 1);
		flip ^= 0x10;
		CHECK_EQ_INT(pwrite(fd, &flip, 1, (off_t)pos), 1);
		ekmfs_content_free(c);
		c = NULL;
		arm();
		CHECK_EQ_INT(ekmfs_content_load(&c, fd, &h, dek, &env), 0);
		if (c) {
			CHECK_EQ_INT(read_as_daemon(c, size, 0, &bad), -EIO);
			CHECK_EQ_INT(bad, 4);
			CHECK_EQ_INT(read_as_daemon(c, 3 * EKMFS_BLOCK_SIZE, 2 * EKMFS_BLOCK_SIZE,
						    NULL), -EIO);
			ekmfs_content_free(c);
			c = NULL;
		}
		disarm("read across a bad block");
	}
	if (c)
		ekmfs_content_free(c);
	close(fd);
	teardown(jdir);
	ekmfs_wipe_bulk(pt, size);
	free(pt);
}

/* The hook must see what it is there to see, or the test above cannot
 * fail: a plaintext buffer freed unwiped, and one holding the DEK. */
static void test_detector(void)
{
	uint8_t *a = malloc(3 * EKMFS_BLOCK_SIZE), *b = malloc(100);

	CHECK(a && b);
	if (!a || !b) {
		free(a);
		free(b);
		return;
	}
	fill(a, 3 * EKMFS_BLOCK_SIZE);
	memset(b, 0, 100);
	memcpy(b + 50, dek, sizeof(dek));
	/* The stores must reach memory: the compiler drops stores to a block
	 * that is freed next (why ekmfs_wipe cannot be a memset). */
	__asm__ __volatile__("" : : "r"(a), "r"(b) : "memory");
	arm();
	free(a);
	free(b);
	armed = false;
	CHECK_EQ_INT(hits, 2);
	hits = 0;
}

int main(void)
{
	RUN(test_write_read_and_bad_block);
	RUN(test_detector);
	return CHECK_DONE();
}
