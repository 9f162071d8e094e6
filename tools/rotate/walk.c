/*
 * walk.c - the list of regular files below BACKING, for one pass.
 *
 * The whole list is made before the workers start (a pass over 100,000
 * files lists them in well under a second on tmpfs), so progress has a total
 * and the workers share a plain index. Symlinks are never followed, the
 * volume's own .ekmfs directory is skipped, and a directory that disappears
 * while we walk is not an error: the volume is online.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/keyring.h"
#include "ekmfs/util.h"
#include "rotate.h"

static int add_path(struct rot_paths *p, const char *dir, const char *name)
{
	size_t dlen = strlen(dir), nlen = strlen(name);
	char **grown = ekmfs_grow(p->path, &p->cap, p->n, sizeof(*grown), 4096);
	char *s;

	if (!grown)
		return -ENOMEM;
	p->path = grown;
	s = malloc(dlen + nlen + 2);
	if (!s)
		return -ENOMEM;
	if (dlen) {
		memcpy(s, dir, dlen);
		s[dlen] = '/';
		memcpy(s + dlen + 1, name, nlen + 1);
	} else {
		memcpy(s, name, nlen + 1);
	}
	p->path[p->n++] = s;
	return 0;
}

/* dirfd is consumed. rel is the directory's path relative to BACKING. */
static int walk_dir(int dirfd, const char *rel, struct rot_paths *out)
{
	struct dirent *de;
	DIR *d = fdopendir(dirfd);
	int ret = 0;

	if (!d) {
		ret = -errno;
		close(dirfd);
		ekmfs_seterr("cannot list %s: %s", rel[0] ? rel : ".", strerror(-ret));
		return ret;
	}
	while (!ret && (errno = 0, de = readdir(d))) {
		unsigned char type = de->d_type;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!rel[0] && !strcmp(de->d_name, EKMFS_META_DIR))
			continue; /* the volume's metadata is not a file of the volume */
		if (type == DT_UNKNOWN) {
			if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue; /* gone since readdir */
			type = S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_LNK;
		}
		if (type == DT_REG) {
			ret = add_path(out, rel, de->d_name);
		} else if (type == DT_DIR) {
			char sub[PATH_MAX];
			int fd;

			if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "",
					     de->d_name) >= sizeof(sub)) {
				ekmfs_seterr("path too long below %s", rel[0] ? rel : ".");
				ret = -ENAMETOOLONG;
				break;
			}
			fd = openat(dirfd, de->d_name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
					continue; /* removed or replaced while we walk */
				ret = -errno;
				ekmfs_seterr("cannot open directory %s: %s", sub, strerror(errno));
				break;
			}
			ret = walk_dir(fd, sub, out);
		}
	}
	if (!ret && errno != 0) {
		ret = -errno;
		ekmfs_seterr("cannot list %s: %s", rel[0] ? rel : ".", strerror(errno));
	}
	closedir(d);
	return ret;
}

int rot_walk(int backing_fd, struct rot_paths *out)
{
	int fd = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	memset(out, 0, sizeof(*out));
	if (fd < 0) {
		ret = -errno;
		ekmfs_seterr("cannot open the backing directory: %s", strerror(errno));
		return ret;
	}
	ret = walk_dir(fd, "", out);
	if (ret)
		rot_paths_free(out);
	return ret;
}

void rot_paths_free(struct rot_paths *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->path[i]);
	free(p->path);
	memset(p, 0, sizeof(*p));
}
