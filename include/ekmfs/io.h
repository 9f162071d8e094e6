/*
 * io.h - the seam between ekmfs and the system calls that move file data.
 *
 * Owns: one table of functions through which every read, write, sync and
 * truncate of a backing file goes, so tests can replace entries to inject
 * short transfers, EIO and ENOSPC (as SQLite's aSyscall[] does), plus the
 * loops that turn short transfers into complete ones.
 */
#ifndef EKMFS_IO_H
#define EKMFS_IO_H

#include <stddef.h>
#include <sys/types.h>

struct ekmfs_io_ops {
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	int (*fsync)(int fd);
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
};

/* The table in use; tests may point it elsewhere. */
extern const struct ekmfs_io_ops *ekmfs_io;
extern const struct ekmfs_io_ops ekmfs_io_system;

/* Read up to len bytes, retrying short reads; returns bytes read (fewer only
 * at end of file) or -errno. */
ssize_t ekmfs_read_full(int fd, void *buf, size_t len, off_t off);
/* Write all len bytes, retrying short writes; 0 or -errno. */
int ekmfs_write_full(int fd, const void *buf, size_t len, off_t off);

#endif
