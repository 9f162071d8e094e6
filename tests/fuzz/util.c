/*
 * util.c - the scratch directory, file writing and quiet logging the
 * harnesses share (fuzz.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/util.h"
#include "fuzz.h"

static char tmpdir[PATH_MAX];

void fuzz_debug(const char *fmt, ...)
{
	static int on = -1;
	va_list ap;

	if (on < 0)
		on = getenv("EKMFS_FUZZ_DEBUG") != NULL;
	if (!on)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void fuzz_quiet(void)
{
	const char *v = getenv("EKMFS_FUZZ_VERBOSE");
	char log[PATH_MAX];

	if (v && v[0] && strcmp(v, "0") != 0)
		return;
	/* Errors only, into the scratch directory (the log sink takes
	 * regular files only). */
	fuzz_path(log, "ekmfs.log");
	FUZZ_CHECK(ekmfs_log_use_file("fuzz", log) == 0);
	ekmfs_log_set_level(EKMFS_LOG_ERR);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmpdir(void)
{
	if (!tmpdir[0]) {
		struct stat st;
		const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
				   access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
				   getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

		FUZZ_CHECK(snprintf(tmpdir, sizeof(tmpdir), "%s/ekmfs-fuzz-XXXXXX", base) <
			   (int)sizeof(tmpdir) - 64);
		FUZZ_CHECK(mkdtemp(tmpdir) != NULL);
		atexit(rm_tmpdir);
	}
	return tmpdir;
}

void fuzz_path(char *out, const char *name)
{
	FUZZ_CHECK(snprintf(out, PATH_MAX, "%s/%s", fuzz_tmpdir(), name) < PATH_MAX);
}

void fuzz_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t done = 0;

	FUZZ_CHECK(fd >= 0);
	while (done < len) {
		ssize_t n = write(fd, (const char *)data + done, len - done);

		FUZZ_CHECK(n > 0);
		done += (size_t)n;
	}
	FUZZ_CHECK(close(fd) == 0);
}

static char copy_dst[PATH_MAX];
static size_t copy_src_len;

static int copy_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char to[PATH_MAX];

	(void)ftw;
	FUZZ_CHECK(snprintf(to, sizeof(to), "%s%s", copy_dst, path + copy_src_len) <
		   (int)sizeof(to));
	if (flag == FTW_D) {
		FUZZ_CHECK(mkdir(to, 0700) == 0 || errno == EEXIST);
	} else if (flag == FTW_F) {
		char *buf = malloc((size_t)st->st_size + 1);
		FILE *f = fopen(path, "rb");

		FUZZ_CHECK(buf && f);
		FUZZ_CHECK(fread(buf, 1, (size_t)st->st_size, f) == (size_t)st->st_size);
		fclose(f);
		fuzz_write_file(to, buf, (size_t)st->st_size);
		free(buf);
	}
	return 0;
}

void fuzz_copy_tree(const char *src, const char *dst)
{
	snprintf(copy_dst, sizeof(copy_dst), "%s", dst);
	copy_src_len = strlen(src);
	FUZZ_CHECK(nftw(src, copy_one, 16, FTW_PHYS) == 0);
}

const char *fuzz_srcdir(void)
{
	const char *v = getenv("EKMFS_FUZZ_SRCDIR");

	return v && v[0] ? v : EKMFS_FUZZ_SRCDIR;
}
