/*
 * secret_file.c - reading files that hold secrets (secret_file.h).
 *
 * Owns: the permission rule for secrets files and reading one whole into
 * secure memory. Moved here from the local provider so the cloud providers'
 * credential files obey the same rule.
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
