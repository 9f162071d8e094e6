/*
 * mounts.h - the ekmfs mounts of this system, from /proc/self/mountinfo.
 *
 * Owns: reading the mount table for mounts of type fuse.ekmfs and what
 * each says about itself: where it is mounted and which backing directory
 * it serves (the daemon mounts with fsname=BACKING, its real path, so the
 * mount's source field names it). Used by ekmfs-admin (lock, status) and by
 * the tools' check that a BACKING argument is not a mountpoint.
 */
#ifndef EKMFS_MOUNTS_H
#define EKMFS_MOUNTS_H

#include <limits.h>
#include <sys/types.h>

#define EKMFS_FUSE_TYPE "fuse.ekmfs"

struct ekmfs_mount {
	char point[PATH_MAX];       /* the mountpoint */
	char backing[PATH_MAX];     /* its backing directory (source + mount root) */
	dev_t dev;                  /* st_dev of every file of the mount */
};

/* Call fn for every ekmfs mount, in table order (a later mount at the same
 * point is on top). fn returns 0 to go on; its nonzero value stops the walk
 * and is returned. 0, fn's value, or -errno when the table cannot be read. */
int ekmfs_mounts_each(int (*fn)(const struct ekmfs_mount *m, void *arg), void *arg);

/* The ekmfs mount that path is on (the mountpoint itself or anything below
 * it; symlinks followed): 1 and *m, with *inside the part of path below the
 * mountpoint ("" for the mountpoint itself, else starting with '/');
 * 0 when path is not on an ekmfs mount or does not exist; -errno when the
 * mount table cannot be read. A mount whose daemon is gone (ENOTCONN) is
 * recognised by the path's text. */
int ekmfs_mount_of_path(const char *path, struct ekmfs_mount *m, char *inside,
			size_t insidelen);

/* The topmost ekmfs mount whose mountpoint is exactly point (a real path):
 * 1 and *m, 0 when none, -errno. */
int ekmfs_mount_at(const char *point, struct ekmfs_mount *m);

#endif
