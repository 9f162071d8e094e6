/*
 * store.c - the one store of BACKING/.ekmfs/ (include/ekmfs/volume.h).
 *
 * Owns: bounded, strict reads of a metadata file; its atomic, durable
 * replacement; durable removal; the meta lock. The keyring, the descriptor,
 * the holder record and the audit chain's head and key all go through
 * here, so they share one strictness and one crash protocol, and every
 * change passes the I/O seam (the crash simulator records it).
 *
 * Divisions:
 *   1. paths
 *   2. bounded reading
 *   3. atomic replacement, removal
 *   4. the meta lock
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "ekmfs/util.h"
#include "ekmfs/volume.h"

/* ---- 1. paths ---- */

void ekmfs_meta_path(int backing_fd, const char *name, char *out, size_t outlen)
{
	char link[64], dir[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", backing_fd);
	n = readlink(link, dir, sizeof(dir) - 1);
	if (n <= 0) {
		snprintf(out, outlen, "%s/%s", EKMFS_META_DIR, name);
		return;
	}
	dir[n] = '\0';
	snprintf(out, outlen, "%s/%s/%s", strcmp(dir, "/") ? dir : "", EKMFS_META_DIR, name);
}

static int rel_path(const char *name, const char *suffix, char *out, size_t outlen)
{
	if ((size_t)snprintf(out, outlen, "%s/%s%s", EKMFS_META_DIR, name, suffix) >= outlen) {
		ekmfs_seterr("metadata file name %s too long", name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- 2. reading ---- */

int ekmfs_meta_read_max(int backing_fd, const char *name, size_t max, char **out,
			size_t *out_len)
{
	char rel[128], path[PATH_MAX + 128];
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd, ret;

	*out = NULL;
	if (!max || max > EKMFS_META_FILE_MAX)
		max = EKMFS_META_FILE_MAX;
	ret = rel_path(name, "", rel, sizeof(rel));
	if (ret)
		return ret;
	ekmfs_meta_path(backing_fd, name, path, sizeof(path));
	fd = openat(backing_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT)
			ekmfs_seterr("cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EBADMSG;
		ekmfs_seterr("%s is not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -EBADMSG;
		ekmfs_seterr("%s is %lld bytes, more than the %zu allowed", path,
			     (long long)st.st_size, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	n = ekmfs_read_full(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		ret = (int)n;
		ekmfs_seterr("cannot read %s: %s", path, strerror(-ret));
		goto out;
	}
	buf[n] = '\0';
	if ((size_t)n != strlen(buf)) {
		ret = -EBADMSG;
		ekmfs_seterr("%s contains a NUL byte", path);
		goto out;
	}
	*out = buf;
	*out_len = (size_t)n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

int ekmfs_meta_read(int backing_fd, const char *name, char **text, size_t *len)
{
	return ekmfs_meta_read_max(backing_fd, name, 0, text, len);
}

/* ---- 3. replacement, removal ---- */

static int fsync_meta_dir(int backing_fd, const char *path)
{
	int dfd, ret = 0;

	dfd = openat(backing_fd, EKMFS_META_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || ekmfs_io->fsync(dfd) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot sync the directory of %s: %s", path, strerror(errno));
	}
	if (dfd >= 0)
		close(dfd);
	return ret;
}

/* Write name.tmp (fresh, 0600), fsync, rename over name, fsync the
 * directory. */
int ekmfs_meta_replace(int backing_fd, const char *name, const char *text)
{
	char rel[128], tmp[128], path[PATH_MAX + 128];
	int fd = -1, ret;

	ret = rel_path(name, "", rel, sizeof(rel));
	if (!ret)
		ret = rel_path(name, ".tmp", tmp, sizeof(tmp));
	if (ret)
		return ret;
	ekmfs_meta_path(backing_fd, name, path, sizeof(path));
	if (ekmfs_io->unlinkat(backing_fd, tmp, 0) < 0 && errno != ENOENT) {
		ret = -errno;
		ekmfs_seterr("cannot remove stale %s.tmp: %s", path, strerror(errno));
		return ret;
	}
	fd = ekmfs_io->openat(backing_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			      0600);
	if (fd < 0) {
		ret = -errno;
		ekmfs_seterr("cannot create %s.tmp: %s", path, strerror(errno));
		return ret;
	}
	ret = ekmfs_write_full(fd, text, strlen(text), 0);
	if (ret < 0) {
		ekmfs_seterr("cannot write %s.tmp: %s", path, strerror(-ret));
		goto out_unlink;
	}
	if (ekmfs_io->fsync(fd) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot sync %s.tmp: %s", path, strerror(errno));
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		ekmfs_seterr("cannot write %s.tmp: %s", path, strerror(errno));
		goto out_unlink;
	}
	fd = -1;
	if (ekmfs_io->renameat2(backing_fd, tmp, backing_fd, rel, 0) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot rename %s.tmp to %s: %s", path, name, strerror(errno));
		goto out_unlink;
	}
	return fsync_meta_dir(backing_fd, path);

out_unlink:
	if (fd >= 0)
		close(fd);
	ekmfs_io->unlinkat(backing_fd, tmp, 0);
	return ret;
}

int ekmfs_meta_remove(int backing_fd, const char *name)
{
	char rel[128], path[PATH_MAX + 128];
	int ret;

	ret = rel_path(name, "", rel, sizeof(rel));
	if (ret)
		return ret;
	ekmfs_meta_path(backing_fd, name, path, sizeof(path));
	if (ekmfs_io->unlinkat(backing_fd, rel, 0) < 0 && errno != ENOENT) {
		ret = -errno;
		ekmfs_seterr("cannot remove %s: %s", path, strerror(errno));
		return ret;
	}
	return fsync_meta_dir(backing_fd, path);
}

/* ---- 4. the meta lock ---- */

int ekmfs_meta_lock(int backing_fd, bool exclusive, bool wait, int *lock_fd)
{
	const char *rel = EKMFS_META_DIR "/" EKMFS_LOCK_FILE;
	int fd, ret;

	*lock_fd = -1;
	fd = ekmfs_io->openat(backing_fd, rel, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && (errno == EROFS || errno == EACCES) && !exclusive)
		fd = openat(backing_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		ekmfs_seterr("cannot open the lock file %s: %s", rel, strerror(errno));
		return ret;
	}
	while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		ret = -errno;
		if (ret == -EWOULDBLOCK)
			ekmfs_seterr("the volume metadata is locked by another process "
				     "(ekmfs or ekmfs-admin)");
		else
			ekmfs_seterr("cannot lock %s: %s", rel, strerror(errno));
		close(fd);
		return ret;
	}
	*lock_fd = fd;
	return 0;
}

void ekmfs_meta_unlock(int lock_fd)
{
	if (lock_fd >= 0)
		close(lock_fd); /* closing the only descriptor drops the flock */
}
