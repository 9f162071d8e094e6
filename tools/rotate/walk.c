/*
 * walk.c - the list of regular files below BACKING, for one pass.
 *
 * The whole list is made before the workers start (a pass over 100,000
 * files lists them in well under a second on tmpfs), so progress has a total
 * and the workers share a plain index. The walk is the volume's own
 * (ekmfs_volume_walk, src/volume/walk.c): symlinks are never followed, the
 * volume's .ekmfs directory is skipped, and a directory that disappears
 * while we walk is not an error: the volume is online.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/volume.h"
#include "ekmfs/util.h"
#include "rotate.h"

static int add_path(struct rot_paths *p, const char *rel)
{
	char **grown = ekmfs_grow(p->path, &p->cap, p->n, sizeof(*grown), 4096);
	char *s;

	if (!grown)
		return -ENOMEM;
	p->path = grown;
	s = strdup(rel);
	if (!s)
		return -ENOMEM;
	p->path[p->n++] = s;
	return 0;
}

static int add_file(const char *rel, const struct stat *st, void *arg)
{
	if (!st)
		return -errno;          /* a directory we cannot list fails the pass */
	return add_path(arg, rel);
}

int rot_walk(int backing_fd, struct rot_paths *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	ret = ekmfs_volume_walk(backing_fd, add_file, out);
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
