/*
 * io.c - the system-call seam for backing-file data, and full transfers.
 *
 * Every data read, write, sync and truncate of a backing file goes through
 * the ekmfs_io table so tests can swap it for one that injects short
 * transfers and errors (SQLite's aSyscall[] is the model).
 */
#include <errno.h>
#include <unistd.h>

#include "ekmfs/io.h"

static ssize_t sys_pread(int fd, void *buf, size_t len, off_t off)
{
	return pread(fd, buf, len, off);
}

static ssize_t sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

const struct ekmfs_io_ops ekmfs_io_system = {
	.pread = sys_pread,
	.pwrite = sys_pwrite,
	.fsync = fsync,
	.fdatasync = fdatasync,
	.ftruncate = ftruncate,
};

const struct ekmfs_io_ops *ekmfs_io = &ekmfs_io_system;

ssize_t ekmfs_read_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = ekmfs_io->pread(fd, (char *)buf + done, len - done,
					    off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int ekmfs_write_full(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = ekmfs_io->pwrite(fd, (const char *)buf + done, len - done,
					     off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* no progress: never spin */
		done += (size_t)n;
	}
	return 0;
}
