/*
 * io.c - the system-call seam for backing-file data, and full transfers.
 *
 * Every change to the backing store (data, sizes, syncs, names, attributes)
 * goes through the ekmfs_io table so tests can swap it for one that injects
 * short transfers and errors, or records every change for the crash
 * simulator (SQLite's aSyscall[] is the model). The system table moves data
 * through io_uring (uring.c) in batches; a table without a batch entry (the
 * unit tests' fault tables) gets one pread/pwrite per transfer.
 *
 * Divisions: the system table / batches / single full transfers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ekmfs/io.h"

/* ---- the system table ---- */

static ssize_t sys_pread(int fd, void *buf, size_t len, off_t off)
{
	return pread(fd, buf, len, off);
}

static ssize_t sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

static int sys_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	return openat(dirfd, name, flags, mode);
}

static int sys_renameat2(int olddirfd, const char *oldname, int newdirfd,
			 const char *newname, unsigned int flags)
{
	return renameat2(olddirfd, oldname, newdirfd, newname, flags);
}

const struct ekmfs_io_ops ekmfs_io_system = {
	.pread = sys_pread,
	.pwrite = sys_pwrite,
	.fsync = fsync,
	.fdatasync = fdatasync,
	.ftruncate = ftruncate,
	.fallocate = fallocate,
	.syncfs = syncfs,
	.batch = ekmfs_uring_batch,
	.openat = sys_openat,
	.mkdirat = mkdirat,
	.mknodat = mknodat,
	.symlinkat = symlinkat,
	.linkat = linkat,
	.unlinkat = unlinkat,
	.renameat2 = sys_renameat2,
	.fchmodat = fchmodat,
	.fchmod = fchmod,
	.fchownat = fchownat,
	.utimensat = utimensat,
	.futimens = futimens,
	.setxattr = setxattr,
	.fsetxattr = fsetxattr,
	.removexattr = removexattr,
};

const struct ekmfs_io_ops *ekmfs_io = &ekmfs_io_system;

/* ---- batches ---- */

/* One pread/pwrite per transfer, through the table (no batch entry). */
static void batch_one_by_one(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		ssize_t r;

		do {
			r = write ? ekmfs_io->pwrite(fd, v[i].buf, v[i].len, v[i].off)
				  : ekmfs_io->pread(fd, v[i].buf, v[i].len, v[i].off);
		} while (r < 0 && errno == EINTR);
		v[i].res = r < 0 ? -errno : r;
	}
}

static void batch_submit(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	if (ekmfs_io->batch)
		ekmfs_io->batch(fd, write, v, n);
	else
		batch_one_by_one(fd, write, v, n);
}

/*
 * Submit up to EKMFS_IO_MAX_VEC transfers, then resubmit the unfinished
 * remainders (short transfers) together until every transfer is complete,
 * has failed, or (reads) has met the end of the file.
 */
static int batch_group(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	struct ekmfs_io_vec rest[EKMFS_IO_MAX_VEC];
	unsigned idx[EKMFS_IO_MAX_VEC], m;
	int ret = 0;

	for (unsigned i = 0; i < n; i++) {
		rest[i] = v[i];
		idx[i] = i;
		v[i].res = 0;
	}
	m = n;
	while (m) {
		unsigned k = 0;

		batch_submit(fd, write, rest, m);
		for (unsigned j = 0; j < m; j++) {
			struct ekmfs_io_vec *out = &v[idx[j]];
			ssize_t r = rest[j].res;

			if (r < 0) {
				out->res = r;   /* the bytes moved before are lost */
				continue;
			}
			if (r == 0) {
				/* End of file (read), or a write that made no
				 * progress: never spin on it. */
				if (write)
					out->res = -EIO;
				continue;
			}
			out->res += r;
			if ((size_t)r < rest[j].len) {
				rest[k].buf = (char *)rest[j].buf + r;
				rest[k].len = rest[j].len - (size_t)r;
				rest[k].off = rest[j].off + (off_t)r;
				idx[k] = idx[j];
				k++;
			}
		}
		m = k;
	}
	for (unsigned i = 0; i < n; i++) {
		if (v[i].res < 0) {
			ret = (int)v[i].res;
			break;
		}
	}
	return ret;
}

int ekmfs_io_batch_full(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	int ret = 0;

	for (unsigned i = 0; i < n; i += EKMFS_IO_MAX_VEC) {
		unsigned g = n - i < EKMFS_IO_MAX_VEC ? n - i : EKMFS_IO_MAX_VEC;
		int rc = batch_group(fd, write, v + i, g);

		if (rc < 0 && ret == 0)
			ret = rc;
	}
	return ret;
}

/* ---- single full transfers ---- */

ssize_t ekmfs_read_full(int fd, void *buf, size_t len, off_t off)
{
	struct ekmfs_io_vec v = { .buf = buf, .len = len, .off = off };
	int rc;

	if (len == 0)
		return 0;
	rc = ekmfs_io_batch_full(fd, false, &v, 1);
	return rc < 0 ? rc : v.res;
}

int ekmfs_write_full(int fd, const void *buf, size_t len, off_t off)
{
	struct ekmfs_io_vec v = { .buf = (void *)buf, .len = len, .off = off };

	if (len == 0)
		return 0;
	return ekmfs_io_batch_full(fd, true, &v, 1);
}
