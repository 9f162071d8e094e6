/*
 * volume.h - the volume's metadata directory BACKING/.ekmfs/: the one store
 * every writer of it uses, the volume descriptor, and the walk over the
 * volume's files.
 *
 * Owns: reading a file of .ekmfs/ whole with a size bound and the same
 * strictness for every caller (a regular file, no NUL byte); replacing one
 * atomically and durably (name.tmp, fsync, rename, fsync of the directory,
 * every change through the I/O seam so the crash simulator sees it);
 * removing one durably; the advisory lock .ekmfs/lock that serializes the
 * writers of the keyring; the descriptor volume.json (docs/FORMAT.md); and
 * the list of the volume's regular files that ekmfs-admin and ekmfs-rotate
 * walk. The keyring (keyring.h) and the audit log (audit.h) keep their
 * documents here through these calls.
 */
#ifndef EKMFS_VOLUME_H
#define EKMFS_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define EKMFS_META_DIR ".ekmfs"
#define EKMFS_VOLUME_FILE "volume.json"
#define EKMFS_LOCK_FILE "lock"
/* Written by ekmfs-rotate while a pass runs ("<pid> <done> <total> <label>"),
 * read by the daemon's metrics. */
#define EKMFS_ROTATE_PROGRESS_FILE "rotate.progress"
#define EKMFS_VOLUME_ID_SIZE 16
/* The largest file of .ekmfs/ any reader accepts (the keyring of a volume
 * with thousands of KEK versions stays far below it). */
#define EKMFS_META_FILE_MAX (16u << 20)

/* volume.json versions: 1 (files of format 1, or a mix being upgraded),
 * 2 (every file is format 2: ekmfs-admin init, or a finished upgrade). */
#define EKMFS_VOLUME_VERSION 2

struct ekmfs_volume {
	uint32_t format_version;        /* volume.json "version" */
	uint8_t volume_id[EKMFS_VOLUME_ID_SIZE];
	uint32_t block_size;
	time_t created;
};

/* ---- the store (src/volume/store.c) ---- */

/* Read .ekmfs/name whole into a NUL-terminated malloc'd buffer. max bounds
 * the size (a larger file is refused unread, -EBADMSG; 0 means
 * EKMFS_META_FILE_MAX). 0 or -errno with ekmfs_lasterr() naming the file
 * (-ENOENT when absent, without a message). */
int ekmfs_meta_read_max(int backing_fd, const char *name, size_t max, char **text,
			size_t *len);
int ekmfs_meta_read(int backing_fd, const char *name, char **text, size_t *len);
/* Replace .ekmfs/name with text atomically and durably. A crash leaves the
 * old or the new file, plus at worst a stale name.tmp the next write removes. */
int ekmfs_meta_replace(int backing_fd, const char *name, const char *text);
/* Remove .ekmfs/name (absent is fine) and make that durable. */
int ekmfs_meta_remove(int backing_fd, const char *name);
/* "BACKING/.ekmfs/name" for messages. */
void ekmfs_meta_path(int backing_fd, const char *name, char *out, size_t outlen);

/* flock() on .ekmfs/lock. wait=false returns -EWOULDBLOCK when held. */
int ekmfs_meta_lock(int backing_fd, bool exclusive, bool wait, int *lock_fd);
void ekmfs_meta_unlock(int lock_fd);

/* ---- the descriptor (src/volume/descriptor.c) ---- */

/* read: 0, -ENOENT (no .ekmfs: not a volume), -EPROTO (foreign or
 * unsupported version), -EBADMSG (corrupt). write_new: creates .ekmfs/
 * (mode 0700) and the descriptor; -EEXIST if a volume is already there. */
int ekmfs_volume_read(int backing_fd, struct ekmfs_volume *v);
int ekmfs_volume_write_new(int backing_fd, const struct ekmfs_volume *v);
/* Replace the descriptor of an existing volume atomically (ekmfs-admin
 * upgrade: the version). 0 or -errno with ekmfs_lasterr(). */
int ekmfs_volume_rewrite(int backing_fd, const struct ekmfs_volume *v);
/* Where the daemon serving the volume listens, and ekmfs-admin calls it:
 * CONTROL_DIR/<volume id in hex>.sock. 0 or -ENAMETOOLONG. */
int ekmfs_volume_control_path(const char *control_dir, const struct ekmfs_volume *v,
			      char *out, size_t len);

/* ---- the walk (src/volume/walk.c) ---- */

/* Called for every regular file of the volume, .ekmfs/ excepted, with its
 * path relative to BACKING ("dir/file") and its lstat; and with st NULL for
 * a directory that cannot be read (errno and ekmfs_lasterr() say why). Non-zero
 * stops the walk and is what ekmfs_volume_walk returns. */
typedef int (*ekmfs_walk_fn)(const char *rel, const struct stat *st, void *arg);

/* Walk the tree below backing_fd (kept by the caller) depth first, never
 * following a symlink. A directory or file that disappears while the walk
 * runs is not an error: the volume may be mounted and in use. 0, fn's
 * non-zero value, or -errno (out of memory, a path too long). */
int ekmfs_volume_walk(int backing_fd, ekmfs_walk_fn fn, void *arg);

#endif
