/*
 * test_dataplane.c - unit tests of the fast data path (issue 5).
 *
 * Divisions:
 *   1. keyed AEAD sessions agree with the one-shot calls
 *   2. the batch interface: io_uring transfers, short transfers, errors
 *   3. the crypto pool runs every part exactly once, from many callers
 *   4. content: large requests split over the pool, and the first damaged
 *      block of a parallel read is the one reported
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/aead.h"
#include "ekmfs/content.h"
#include "ekmfs/format.h"
#include "ekmfs/io.h"
#include "ekmfs/parallel.h"

static int temp_file(void)
{
	char path[] = "/tmp/ekmfs-dataplane-XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	return fd;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* ---- 1. keyed sessions ---- */

static void test_session_matches_oneshot(void)
{
	uint8_t key[32], nonce[12], aad[24], pt[5000], ct1[5000], ct2[5000];
	uint8_t tag1[16], tag2[16], back[5000];
	struct ekmfs_aead_session *s;

	fill(key, sizeof(key), 1);
	fill(nonce, sizeof(nonce), 2);
	fill(aad, sizeof(aad), 3);
	fill(pt, sizeof(pt), 4);
	CHECK_EQ_INT(ekmfs_aead_seal(key, nonce, aad, sizeof(aad), pt, sizeof(pt), ct1, tag1), 0);
	s = ekmfs_aead_begin(key);
	CHECK(s != NULL);
	if (!s)
		return;
	/* Alternate directions under one key schedule. */
	for (int round = 0; round < 3; round++) {
		CHECK_EQ_INT(ekmfs_aead_session_seal(s, nonce, aad, sizeof(aad), pt, sizeof(pt),
						     ct2, tag2), 0);
		CHECK_MEM(ct2, ct1, sizeof(ct1));
		CHECK_MEM(tag2, tag1, sizeof(tag1));
		memset(back, 0, sizeof(back));
		CHECK_EQ_INT(ekmfs_aead_session_open(s, nonce, aad, sizeof(aad), ct1, sizeof(ct1),
						     tag1, back), 0);
		CHECK_MEM(back, pt, sizeof(pt));
	}
	/* A one-shot call in between does not disturb the session. */
	CHECK_EQ_INT(ekmfs_aead_seal(pt + 100, nonce, NULL, 0, pt, 10, ct2, tag2), 0);
	ct1[100] ^= 1;
	memset(back, 0x77, sizeof(back));
	CHECK_EQ_INT(ekmfs_aead_session_open(s, nonce, aad, sizeof(aad), ct1, sizeof(ct1), tag1,
					     back), -EBADMSG);
	for (size_t i = 0; i < sizeof(back); i++)
		if (back[i]) {
			CHECK(!"plaintext left behind after a failed open");
			break;
		}
	ct1[100] ^= 1;
	CHECK_EQ_INT(ekmfs_aead_session_open(s, nonce, aad, sizeof(aad), ct1, sizeof(ct1), tag1,
					     back), 0);
	CHECK_MEM(back, pt, sizeof(pt));
	ekmfs_aead_end(s);
}

/* ---- 2. batches ---- */

static long short_max;           /* >0: each transfer moves at most this */
static int fail_from_vec = -1;   /* >=0: vectors at or after this index fail */

static void shortening_batch(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	struct ekmfs_io_vec go[EKMFS_IO_MAX_VEC];

	for (unsigned i = 0; i < n; i++) {
		go[i] = v[i];
		if (short_max > 0 && go[i].len > (size_t)short_max)
			go[i].len = (size_t)short_max;
	}
	ekmfs_uring_batch(fd, write, go, n);
	for (unsigned i = 0; i < n; i++) {
		v[i].res = go[i].res;
		if (fail_from_vec >= 0 && i >= (unsigned)fail_from_vec)
			v[i].res = -ENOSPC;
	}
}

/* The system table with shortening batches (set up in test_batches). */
static struct ekmfs_io_ops shortening_io;

static void test_batches(void)
{
	enum { N = 20, LEN = 10000 };
	static uint8_t data[N * LEN], back[N * LEN + 100];
	struct ekmfs_io_vec v[N];
	int fd = temp_file();

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	shortening_io = ekmfs_io_system;
	shortening_io.batch = shortening_batch;
	fill(data, sizeof(data), 9);
	(void)ekmfs_uring_available();   /* either engine must give the same */
	for (int pass = 0; pass < 2; pass++) {
		ekmfs_io = pass ? &shortening_io : &ekmfs_io_system;
		short_max = pass ? 777 : 0;
		CHECK_EQ_INT(ftruncate(fd, 0), 0);
		/* Written back to front, in one batch of more than a ring. */
		for (int i = 0; i < N; i++)
			v[i] = (struct ekmfs_io_vec){ .buf = data + (N - 1 - i) * LEN, .len = LEN,
						      .off = (N - 1 - i) * LEN };
		CHECK_EQ_INT(ekmfs_io_batch_full(fd, true, v, N), 0);
		for (int i = 0; i < N; i++)
			CHECK_EQ_INT(v[i].res, LEN);
		/* Reads: the last runs past the end of the file. */
		for (int i = 0; i < N; i++)
			v[i] = (struct ekmfs_io_vec){ .buf = back + i * LEN,
						      .len = i == N - 1 ? LEN + 100 : LEN,
						      .off = i * LEN };
		CHECK_EQ_INT(ekmfs_io_batch_full(fd, false, v, N), 0);
		CHECK_EQ_INT(v[N - 1].res, LEN);
		CHECK_MEM(back, data, sizeof(data));
	}
	/* An error in one vector is returned, the others still complete. */
	fail_from_vec = 3;
	short_max = 0;
	for (int i = 0; i < 5; i++)
		v[i] = (struct ekmfs_io_vec){ .buf = data, .len = 10, .off = i * 10 };
	CHECK_EQ_INT(ekmfs_io_batch_full(fd, true, v, 5), -ENOSPC);
	CHECK_EQ_INT(v[2].res, 10);
	CHECK_EQ_INT(v[3].res, -ENOSPC);
	fail_from_vec = -1;
	ekmfs_io = &ekmfs_io_system;
	close(fd);
}

/* ---- 3. the crypto pool ---- */

struct count_job {
	unsigned hits[64];
};

static void count_part(void *arg, unsigned part)
{
	struct count_job *j = arg;

	__atomic_add_fetch(&j->hits[part], 1, __ATOMIC_RELAXED);
}

static void *pool_caller(void *arg)
{
	int *bad = arg;

	for (int round = 0; round < 500; round++) {
		struct count_job j = { { 0 } };
		unsigned n = 1 + (unsigned)round % 64;

		ekmfs_parallel_run(count_part, &j, n);
		for (unsigned p = 0; p < 64; p++)
			if (j.hits[p] != (p < n ? 1u : 0u))
				(*bad)++;
	}
	return NULL;
}

static void test_pool(void)
{
	pthread_t t[6];
	int bad[6] = { 0 };

	CHECK(ekmfs_parallel_width() >= 1);
	for (int i = 0; i < 6; i++)
		pthread_create(&t[i], NULL, pool_caller, &bad[i]);
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(bad[i], 0);
	}
}

/* ---- 4. content ---- */

static void test_large_parallel_content(void)
{
	enum { SIZE = 3 * 1024 * 1024 + 12345 };
	uint8_t dek[32], *model = malloc(SIZE), *back = malloc(SIZE);
	struct ekmfs_header h;
	struct ekmfs_content c = { .dek = dek };
	uint64_t bad = UINT64_MAX;
	uint8_t byte;
	int fd = temp_file();

	CHECK(fd >= 0 && model && back);
	if (fd < 0 || !model || !back)
		goto out;
	fill(dek, sizeof(dek), 5);
	fill(c.file_id, sizeof(c.file_id), 6);
	fill(model, SIZE, 7);
	ekmfs_header_init(&h, c.file_id);
	h.slot[0].seq = 1;     /* header content does not matter to content */
	c.fd = fd;
	CHECK_EQ_INT(ekmfs_content_write_header(fd, &h), 0);
	/* 1 MiB requests, unaligned, as the kernel sends them. */
	for (size_t off = 0; off < SIZE; off += 1024 * 1024 - 100) {
		size_t n = SIZE - off < 1024 * 1024 - 100 ? SIZE - off : 1024 * 1024 - 100;

		CHECK_EQ_INT(ekmfs_content_write(&c, model + off, n, off, &bad), (ssize_t)n);
	}
	CHECK_EQ_INT(ekmfs_content_read(&c, back, SIZE, 0, &bad), SIZE);
	CHECK_MEM(back, model, SIZE);
	/* Rewrite the middle in place (both edges partial). */
	fill(model + 5000, 2 * 1024 * 1024, 8);
	CHECK_EQ_INT(ekmfs_content_write(&c, model + 5000, 2 * 1024 * 1024, 5000, &bad),
		     2 * 1024 * 1024);
	CHECK_EQ_INT(ekmfs_content_read(&c, back, SIZE, 0, &bad), SIZE);
	CHECK_MEM(back, model, SIZE);
	/* Damage blocks 200 and 40 of one 1 MiB read: 40 is reported. */
	for (int i = 0; i < 2; i++) {
		off_t at = (off_t)ekmfs_block_offset(i ? 40 : 200) + 30;

		CHECK_EQ_INT(pread(fd, &byte, 1, at), 1);
		byte ^= 0x80;
		CHECK_EQ_INT(pwrite(fd, &byte, 1, at), 1);
	}
	bad = UINT64_MAX;
	CHECK_EQ_INT(ekmfs_content_read(&c, back, 1024 * 1024, 0, &bad), -EIO);
	CHECK_EQ_INT(bad, 40);
out:
	if (fd >= 0)
		close(fd);
	free(model);
	free(back);
}

int main(void)
{
	RUN(test_session_matches_oneshot);
	RUN(test_batches);
	RUN(test_pool);
	RUN(test_large_parallel_content);
	return CHECK_DONE();
}
