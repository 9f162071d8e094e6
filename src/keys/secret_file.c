/*
 * secret_file.c - reading files that hold secrets (secret_file.h).
 *
 * Owns: the permission rule for secrets files, reading one whole into
 * secure memory, and the rule that no secret lies inside the backing
 * directory (a backup of the ciphertext must never carry the key that opens
 * it). Shared so every provider's secrets obey the same rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "secret_file.h"

/* Like ssh's safe_path(): nobody but root and us may replace the file.
 * Its directory, and every directory above it, must be owned by root or by
 * us and writable by nobody else; an ancestor may be group/world-writable
 * only with the sticky bit (/tmp), which keeps others from renaming what
 * we own inside it. Checked on the path the open fd really has, symlinks
 * resolved. 0 or -EPERM/-errno with ekmfs_lasterr(). */
static int check_dirs(int fd, const char *path, const char *what)
{
	char real[PATH_MAX], proc[64];
	struct stat st;
	bool parent = true;
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, real, sizeof(real) - 1);
	if (n > 0 && real[0] == '/') {
		real[n] = '\0';
	} else if (!realpath(path, real)) {
		ekmfs_seterr("cannot resolve %s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	for (char *slash = strrchr(real, '/'); slash; slash = strrchr(real, '/')) {
		bool root = slash == real;

		slash[root ? 1 : 0] = '\0';
		if (stat(real, &st) < 0) {
			ekmfs_seterr("cannot stat %s, a directory above %s %s: %s", real,
				     what, path, strerror(errno));
			return -errno;
		}
		if (st.st_uid != 0 && st.st_uid != geteuid()) {
			ekmfs_seterr("%s %s lies in %s, owned by uid %u (only root or uid %u "
				     "may own the directories above a secrets file)", what,
				     path, real, (unsigned)st.st_uid, (unsigned)geteuid());
			return -EPERM;
		}
		if ((st.st_mode & 022) && (parent || !(st.st_mode & S_ISVTX))) {
			ekmfs_seterr("%s %s lies in %s, which has mode %04o (others may "
				     "replace the file); chmod go-w %s", what, path, real,
				     (unsigned)(st.st_mode & 07777), real);
			return -EPERM;
		}
		parent = false;
		if (root)
			break;
	}
	return 0;
}

int ekmfs_secret_open(const char *path, const char *what, int *out)
{
	struct stat st;
	int fd, ret;

	/* O_NONBLOCK so a FIFO planted at the path cannot hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT) {
			ekmfs_seterr("%s %s does not exist", what, path);
			return -ENOKEY;
		}
		ekmfs_seterr("cannot open %s %s: %s", what, path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot stat %s %s: %s", what, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EPERM;
		ekmfs_seterr("%s %s is not a regular file", what, path);
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		ret = -EPERM;
		ekmfs_seterr("%s %s is owned by uid %u, not by uid %u that runs ekmfs; "
			     "chown %u %s", what, path, (unsigned)st.st_uid,
			     (unsigned)geteuid(), (unsigned)geteuid(), path);
		goto fail;
	}
	if (st.st_mode & 077) {
		ret = -EPERM;
		ekmfs_seterr("%s %s has mode %04o (group/other may read it); chmod 600 %s",
			     what, path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	ret = check_dirs(fd, path, what);
	if (ret)
		goto fail;
	if (fcntl(fd, F_SETFL, 0) < 0) {
		ret = -errno;
		goto fail;
	}
	*out = fd;
	return 0;
fail:
	close(fd);
	return ret;
}

int ekmfs_secret_read(const char *path, const char *what, char *buf, size_t cap,
		      size_t *len)
{
	ssize_t n;
	char extra;
	int fd = -1, ret;

	ret = ekmfs_secret_open(path, what, &fd);
	if (ret)
		return ret;
	n = ekmfs_read_full(fd, buf, cap, 0);
	if (n < 0) {
		ret = (int)n;
		ekmfs_seterr("cannot read %s %s: %s", what, path, strerror(-ret));
		goto out;
	}
	if ((size_t)n == cap && ekmfs_read_full(fd, &extra, 1, (off_t)cap) == 1) {
		ret = -EINVAL;
		ekmfs_seterr("%s %s is longer than %zu bytes", what, path, cap);
		goto out;
	}
	buf[n] = '\0';
	*len = (size_t)n;
out:
	close(fd);
	if (ret)
		ekmfs_wipe(buf, cap + 1);
	return ret;
}

/* ---- secrets outside the backing directory ---- */

/* Canonical form of path, which may not exist yet: the real path of its
 * deepest existing ancestor followed by the rest. */
static int resolve_maybe_missing(const char *path, char *out, size_t outlen)
{
	char head[PATH_MAX], real[PATH_MAX];
	const char *rest;
	char *slash;

	if (strlen(path) >= sizeof(head))
		return -ENAMETOOLONG;
	strcpy(head, path);
	for (;;) {
		if (realpath(head, real)) {
			rest = path + strlen(head);
			if (strcmp(real, "/") == 0 && *rest == '/')
				real[0] = '\0';
			if ((size_t)snprintf(out, outlen, "%s%s", real, rest) >= outlen)
				return -ENAMETOOLONG;
			return 0;
		}
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		slash = strrchr(head, '/');
		if (!slash)
			return -EINVAL;
		*(slash == head ? slash + 1 : slash) = '\0';
	}
}

static bool has_dot_component(const char *path)
{
	for (const char *p = path; (p = strchr(p, '/')); p++) {
		if (p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return true;
		if (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
			return true;
	}
	return false;
}

/* A backup of the ciphertext must never carry the key that opens it. */
static int check_secret_outside(const char *secret, const char *what, const char *backing)
{
	char real[PATH_MAX];
	size_t n = strlen(backing);
	int ret;

	if (has_dot_component(secret)) {
		ekmfs_seterr("%s %s must not contain '.' or '..' components", what, secret);
		return -EINVAL;
	}
	ret = resolve_maybe_missing(secret, real, sizeof(real));
	if (ret) {
		ekmfs_seterr("cannot resolve %s %s: %s", what, secret, strerror(-ret));
		return ret;
	}
	if (strcmp(backing, "/") == 0 ||
	    (strncmp(real, backing, n) == 0 && (real[n] == '/' || real[n] == '\0'))) {
		ekmfs_seterr("%s %s is inside the backing directory %s: a copy of the "
			     "encrypted data must never contain its key; keep it elsewhere",
			     what, secret, backing);
		return -EINVAL;
	}
	return 0;
}

int ekmfs_check_secret_outside(int backing_fd, const char *secret, const char *what)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", backing_fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		snprintf(path, sizeof(path), "BACKING");
	else
		path[n] = '\0';
	return check_secret_outside(secret, what, path);
}
