/*
 * verify.c - `ekmfs-admin verify`: authenticate every header and block.
 *
 * Decrypts each block into a scratch buffer only to check its tag; the
 * plaintext is wiped and never printed. Reads a file in runs of blocks so
 * memory stays bounded whatever the file size. Reports every damaged block
 * (up to a cap per file) rather than stopping at the first, because an
 * admin deciding what to restore needs the whole picture.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "progress.h"
#include "ekmfs/content.h"
#include "ekmfs/io.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define RUN_BLOCKS 256
#define MAX_REPORTED_BLOCKS 16

struct verify_state {
	struct ekmfs_keys *keys;
	uint8_t *dek;                 /* secure memory */
	uint8_t *cbuf, *pbuf;
	uint64_t files, damaged;
	struct tool_progress *progress;   /* on a terminal: bytes checked */
	uint64_t file_bytes;              /* of the current file, added so far */
};

static void report(struct verify_state *v, const char *relpath, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct verify_state *v, const char *relpath, const char *fmt, ...)
{
	va_list ap;

	tool_progress_hold(v->progress);
	printf("DAMAGED %s: ", relpath);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	tool_progress_release(v->progress);
}

/* Why a header did not parse, in words: a file that does not even start
 * with the magic was never encrypted (or is foreign), which calls for a
 * different remedy than a damaged header. */
static const char *header_problem(int fd, int rc)
{
	char magic[4];

	if (rc == -EPROTO || rc == -EBADMSG) {
		if (ekmfs_read_full(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
		    memcmp(magic, EKMFS_MAGIC, sizeof(magic)) != 0)
			return "not an ekmfs file (plaintext or foreign format); to encrypt a "
			       "plaintext file in place: ekmfs-admin import-plaintext PATH";
		return rc == -EPROTO ? "unsupported format version" : "malformed or truncated";
	}
	return strerror(-rc);
}

/* Check every block; returns the number of bad blocks (or -errno). */
static long verify_blocks(struct verify_state *v, int fd, const uint8_t *file_id,
			  const char *relpath, uint64_t backing_size)
{
	uint64_t index = 0, off = EKMFS_HEADER_SIZE;
	long bad = 0;

	while (off < backing_size) {
		size_t want = RUN_BLOCKS * (size_t)EKMFS_CBLOCK_SIZE;
		ssize_t got;

		if (backing_size - off < want)
			want = (size_t)(backing_size - off);
		got = ekmfs_read_full(fd, v->cbuf, want, (off_t)off);
		if (got < 0)
			return got;
		if ((size_t)got < want)
			want = (size_t)got;
		for (size_t pos = 0; pos < want; index++) {
			size_t len = want - pos < EKMFS_CBLOCK_SIZE ? want - pos : EKMFS_CBLOCK_SIZE;
			int rc = ekmfs_block_open(v->dek, file_id, index, v->cbuf + pos, len, v->pbuf);

			if (rc < 0) {
				if (bad < MAX_REPORTED_BLOCKS)
					report(v, relpath, "block %llu: %s", (unsigned long long)index,
					       rc == -EINVAL ? "truncated (impossible length)" :
					       "authentication failed (tampered or corrupt)");
				bad++;
			}
			pos += len;
		}
		ekmfs_wipe(v->pbuf, EKMFS_BLOCK_SIZE);
		if (want == 0)
			break;
		off += want;
		tool_progress_add(v->progress, want);
		v->file_bytes += want;
	}
	if (bad > MAX_REPORTED_BLOCKS)
		report(v, relpath, "%ld more damaged blocks", bad - MAX_REPORTED_BLOCKS);
	return bad;
}

static int verify_one(const char *path, const char *relpath, const struct stat *st,
		      struct verify_state *v)
{
	struct ekmfs_header h;
	uint64_t plain;
	bool damaged = false;
	long bad;
	int fd, rc;

	v->files++;
	{
		const char *base = strrchr(relpath, '/');

		base = base ? base + 1 : relpath;
		if (strncmp(base, ".ekmfs-import.", 14) == 0) {
			report(v, relpath, "temporary file of an interrupted import-plaintext "
			       "(the original is intact): rerun import-plaintext on the "
			       "original, which removes it, or delete it");
			v->damaged++;
			return 0;
		}
	}
	if (st->st_size == 0)
		return 0; /* an empty file whose header was never written */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		report(v, relpath, "cannot open: %s", strerror(errno));
		v->damaged++;
		return 0;
	}
	rc = ekmfs_content_read_header(fd, &h);
	if (rc < 0) {
		report(v, relpath, "header: %s", header_problem(fd, rc));
		damaged = true;
		goto out;
	}
	ekmfs_clearerr();
	rc = ekmfs_keys_open_header(v->keys, &h, v->dek);
	if (rc < 0) {
		report(v, relpath, "header: %s", rc == -EBADMSG ?
		       "no key slot authenticates (tampered header)" :
		       ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		damaged = true;
		goto out;
	}
	if (ekmfs_plain_size((uint64_t)st->st_size, &plain) < 0) {
		report(v, relpath, "size %lld is impossible (truncated inside a block)",
		       (long long)st->st_size);
		damaged = true;
	}
	bad = verify_blocks(v, fd, h.file_id, relpath, (uint64_t)st->st_size);
	if (bad < 0) {
		report(v, relpath, "read error: %s", strerror((int)-bad));
		damaged = true;
	} else if (bad > 0) {
		damaged = true;
	}
out:
	ekmfs_wipe(v->dek, EKMFS_KEY_SIZE);
	close(fd);
	if (damaged)
		v->damaged++;
	return 0;
}

/* One file; whatever its fate, its bytes count as checked. */
static int verify_file(const char *path, const char *relpath, const struct stat *st, void *arg)
{
	struct verify_state *v = arg;
	int rc;

	v->file_bytes = 0;
	rc = verify_one(path, relpath, st, v);
	if ((uint64_t)st->st_size > v->file_bytes)
		tool_progress_add(v->progress, (uint64_t)st->st_size - v->file_bytes);
	return rc;
}

int admin_verify(const char *backing, const struct ekmfs_config *cfg)
{
	struct verify_state v = { 0 };
	int fd, rc, status = EXIT_FAIL;

	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", backing, strerror(errno));
		return EXIT_FAIL;
	}
	rc = ekmfs_keys_open(fd, cfg, &v.keys);
	if (rc < 0) {
		fprintf(stderr, "ekmfs-admin: %s\n",
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		goto out;
	}
	v.dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	v.cbuf = malloc(RUN_BLOCKS * (size_t)EKMFS_CBLOCK_SIZE);
	v.pbuf = malloc(EKMFS_BLOCK_SIZE);
	if (!v.dek || !v.cbuf || !v.pbuf) {
		fprintf(stderr, "ekmfs-admin: out of memory\n");
		goto out;
	}
	v.progress = tool_progress_start(&(struct tool_progress_opts){
		.label = "verify", .unit = TOOL_BYTES, .show = TOOL_SHOW_TTY,
		.total = tool_progress_shown(TOOL_SHOW_TTY) ? admin_bytes_below(backing) : 0 });
	rc = admin_walk_files(backing, verify_file, &v);
	tool_progress_stop(v.progress);
	if (rc < 0)
		fprintf(stderr, "ekmfs-admin: walking %s: %s\n", backing, strerror(-rc));
	printf("verify: %llu files checked, %llu damaged\n", (unsigned long long)v.files,
	       (unsigned long long)v.damaged);
	status = (rc == 0 && v.damaged == 0) ? EXIT_OK : EXIT_FAIL;
out:
	ekmfs_secure_free(v.dek, EKMFS_KEY_SIZE);
	free(v.cbuf);
	if (v.pbuf)
		ekmfs_wipe(v.pbuf, EKMFS_BLOCK_SIZE);
	free(v.pbuf);
	if (v.keys)
		ekmfs_keys_close(v.keys);
	close(fd);
	return status;
}
