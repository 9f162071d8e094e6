/*
 * walk.c - the walk over a volume's regular files (volume.h).
 *
 * Owns: the one tree walk ekmfs-admin (status, verify, upgrade) and
 * ekmfs-rotate (its passes) share: depth first from the backing directory
 * through directory descriptors (openat, so a rename while we walk cannot
 * send us elsewhere and no path is ever longer than one name), symlinks
 * never followed, the volume's own .ekmfs directory skipped, and entries
 * that vanish while the volume is in use ignored. It keeps no state
 * between calls (no globals), so callers may walk from several threads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/util.h"
#include "ekmfs/volume.h"

struct walk {
	ekmfs_walk_fn fn;
	void *arg;
	char rel[PATH_MAX];             /* of the directory being listed; "" = root */
};

/* A directory that cannot be read: tell fn, with errno saying why. */
static int unreadable(struct walk *w, const char *what, int err)
{
	ekmfs_seterr("cannot %s %s: %s", what, w->rel[0] ? w->rel : ".", strerror(err));
	errno = err;
	return w->fn(w->rel, NULL, w->arg);
}

/* dirfd is consumed. */
static int walk_dir(struct walk *w, int dirfd)
{
	size_t base = strlen(w->rel);
	struct dirent *de;
	DIR *d = fdopendir(dirfd);
	int ret = 0;

	if (!d) {
		int err = errno;

		close(dirfd);
		return unreadable(w, "list", err);
	}
	while (!ret && (errno = 0, de = readdir(d))) {
		struct stat st;
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!base && !strcmp(de->d_name, EKMFS_META_DIR))
			continue;       /* the volume's metadata is not a file of it */
		if (de->d_type != DT_UNKNOWN && de->d_type != DT_REG && de->d_type != DT_DIR)
			continue;       /* symlinks, devices, FIFOs, sockets */
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;       /* gone since readdir */
		if ((size_t)snprintf(w->rel + base, sizeof(w->rel) - base, "%s%s",
				     base ? "/" : "", de->d_name) >= sizeof(w->rel) - base) {
			w->rel[base] = '\0';
			ekmfs_seterr("path too long below %s", base ? w->rel : ".");
			ret = -ENAMETOOLONG;
			break;
		}
		if (S_ISREG(st.st_mode)) {
			ret = w->fn(w->rel, &st, w->arg);
		} else if (S_ISDIR(st.st_mode)) {
			fd = openat(dirfd, de->d_name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				ret = walk_dir(w, fd);
			} else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
				/* (the others: removed or replaced while we walk) */
				ret = unreadable(w, "open directory", errno);
			}
		}
		w->rel[base] = '\0';
	}
	if (!ret && errno != 0)
		ret = unreadable(w, "list", errno);
	closedir(d);
	return ret;
}

int ekmfs_volume_walk(int backing_fd, ekmfs_walk_fn fn, void *arg)
{
	struct walk w = { .fn = fn, .arg = arg };
	int fd = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return unreadable(&w, "open the backing directory", errno);
	return walk_dir(&w, fd);
}
