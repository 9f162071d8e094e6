/*
 * fuzz_content.c - block open as a reader does it: a whole backing file
 * (header, state records, blocks) and its journal, loaded and read through
 * the content layer.
 *
 * Input: byte 0 flags (bit 0: settle, as a mount after a crash does; bit
 * 1: in use, as ekmfs-admin verify of a mounted volume does), bytes 1..4
 * the backing file's length (u32 LE, cut to what follows), the backing
 * file, then the journal (named from its own file id and generation, as
 * the content layer looks it up). Slots open under the format vectors'
 * KEKs: the corpus holds vectors c and d as files and e as d's journal.
 * Calls (include/ekmfs/content.h, format.h): ekmfs_content_read_header,
 * ekmfs_slot_unwrap, ekmfs_content_load, ekmfs_content_size,
 * ekmfs_content_read, ekmfs_content_free.
 *
 * Properties: load returns 0 or a documented error; a loaded file reads
 * its whole size in pieces, each read returning its full length or -EIO
 * (a bad block), never a short read inside the size or bytes past it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/content.h"
#include "ekmfs/format.h"
#include "ekmfs/util.h"
#include "fuzz.h"

#define READ_MAX (1u << 20)

static uint8_t keks[2][EKMFS_KEY_SIZE];
static char file_path[PATH_MAX], jdir_path[PATH_MAX];
static int jdir = -1;
static uint8_t rbuf[3 * EKMFS_BLOCK_SIZE + 7];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char backing[PATH_MAX], meta[PATH_MAX];

	(void)argc;
	(void)argv;
	fuzz_quiet();
	for (int i = 0; i < EKMFS_KEY_SIZE; i++) {
		keks[0][i] = (uint8_t)i;
		keks[1][i] = (uint8_t)(0x80 + i);
	}
	fuzz_path(backing, "backing");
	fuzz_path(meta, "backing/.ekmfs");
	fuzz_path(jdir_path, "backing/" EKMFS_JOURNAL_DIR);
	fuzz_path(file_path, "backing/file");
	FUZZ_CHECK(mkdir(backing, 0700) == 0 && mkdir(meta, 0700) == 0 &&
		   mkdir(jdir_path, 0700) == 0);
	jdir = open(jdir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(jdir >= 0);
	return 0;
}

/* Journals an earlier input left (or the content layer made). */
static void clear_journals(void)
{
	DIR *d = fdopendir(openat(jdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *de;

	FUZZ_CHECK(d != NULL);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(jdir, de->d_name, 0);
	closedir(d);
}

static void put_journal(const uint8_t *j, size_t len)
{
	char name[2 * EKMFS_FILE_ID_SIZE + 32], hex[2 * EKMFS_FILE_ID_SIZE + 1];
	uint64_t gen = 0;
	int fd;

	if (len < EKMFS_JOURNAL_HEADER_SIZE)
		return;
	for (int i = 7; i >= 0; i--)
		gen = gen << 8 | j[24 + i];
	ekmfs_hex(j + 8, EKMFS_FILE_ID_SIZE, hex);
	snprintf(name, sizeof(name), "%s.%llu", hex, (unsigned long long)gen);
	fd = openat(jdir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, j, len) == (ssize_t)len);
	close(fd);
}

static void read_all(struct ekmfs_content *c)
{
	uint64_t size = ekmfs_content_size(c), off = 0;
	size_t step = 1000;

	while (off < size && off < READ_MAX) {
		uint64_t bad = UINT64_MAX;
		size_t want = size - off < sizeof(rbuf) ? (size_t)(size - off) : sizeof(rbuf);
		ssize_t n;

		want = want < step ? want : step;
		n = ekmfs_content_read(c, rbuf, want, off, &bad);
		FUZZ_CHECK(n == (ssize_t)want || n == -EIO);
		if (n == -EIO)
			FUZZ_CHECK(bad != UINT64_MAX);
		off += want;
		step = step * 3 % sizeof(rbuf) + 1;   /* reads of every alignment */
	}
	/* At and past the end: nothing. */
	FUZZ_CHECK(ekmfs_content_read(c, rbuf, 10, size, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ekmfs_content_env env = { .journal_dir = jdir };
	uint8_t dek[EKMFS_KEY_SIZE];
	struct ekmfs_content *c = NULL;
	struct ekmfs_header h;
	size_t flen;
	int fd, rc, opened = -1;

	if (size < 5)
		return 0;
	env.settle = data[0] & 1;
	env.in_use = data[0] & 2;
	flen = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16 |
	       (size_t)data[4] << 24;
	if (flen > size - 5)
		flen = size - 5;
	clear_journals();
	fuzz_write_file(file_path, data + 5, flen);
	put_journal(data + 5 + flen, size - 5 - flen);

	fd = open(file_path, O_RDWR | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	rc = ekmfs_content_read_header(fd, &h);
	FUZZ_CHECK(rc == 0 || rc == -ENODATA || rc == -EPROTO || rc == -EBADMSG);
	for (int k = 0; rc == 0 && k < 2 && opened < 0; k++)
		for (int idx = 0; idx < EKMFS_SLOT_COUNT && opened < 0; idx++)
			if (ekmfs_slot_unwrap(&h, idx, keks[k], dek) == 0)
				opened = idx;
	if (opened >= 0) {
		rc = ekmfs_content_load(&c, fd, &h, dek, &env);
		FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EIO || rc == -ENOSPC ||
			   rc == -EFBIG);
		if (rc == 0) {
			read_all(c);
			ekmfs_content_free(c);
		}
	}
	close(fd);
	return 0;
}
