/*
 * shared.c - the file lease of shared mode (docs/SHARED.md).
 *
 * Owns: in shared mode (-o shared, [daemon] shared = true), several daemons
 * on several hosts serve one volume. A daemon holds a file's content state
 * (DEK, state records, journal) only while it holds the file's lease: an
 * OFD write lock on byte EKMFS_FILE_LOCK_LEASE of the backing file, taken
 * before the state is read from the backing store and let go after the
 * state is written back and sealed (efs_crypto_load / efs_crypto_close).
 * The state is loaded from the first open of the file on this host to its
 * last release, so while a host has a file open no other host can read or
 * write it: each open sees everything written and closed before it,
 * everywhere (close-to-open, as NFS), and no two hosts ever write state
 * records or blocks of one file from different views of it. An open on
 * another host waits until the lease is free.
 *
 * The lock is taken through a descriptor of its own, so the byte-0 locks of
 * the rotation fence (fence.c, ekmfs-rotate) are independent of it; and
 * ekmfs-rotate locks bytes 0 and 1, so in shared mode it re-wraps a file
 * only while no host has it open. On a distributed file system the lock is
 * held by its lock service (GlusterFS: the bricks' locks translator), and
 * dropped when this daemon dies or loses its connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/holder.h"
#include "ekmfs/util.h"
#include "fs.h"

static int lease_lock(int fd, short type, int cmd)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = EKMFS_FILE_LOCK_LEASE, .l_len = 1 };

	while (fcntl(fd, cmd, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int efs_shared_lease_fd(struct efs_data *fs, int fd)
{
	char proc[64];
	int lfd, ret;

	if (!fs->shared)
		return -1;
	proc_path(fd, proc, sizeof(proc));
	lfd = open(proc, O_RDWR | O_CLOEXEC);
	if (lfd < 0)
		return -errno;
	ret = lease_lock(lfd, F_WRLCK, F_OFD_SETLKW);
	if (ret < 0) {
		close(lfd);
		return ret;
	}
	return lfd;
}

int efs_shared_lease_take(struct efs_data *fs, struct efs_istate *ist, int fd)
{
	int lfd;

	if (!fs->shared || ist->sh_lease)
		return 0;
	lfd = efs_shared_lease_fd(fs, fd);
	if (lfd < 0) {
		char rel[PATH_MAX];

		efs_relpath(fs, fd, rel, sizeof(rel));
		ekmfs_log(EKMFS_LOG_ERR, "%s: cannot take its lease (shared mode): %s", rel,
			  strerror(-lfd));
		return lfd;
	}
	ist->sh_lease = lfd + 1;
	return 0;
}

void efs_shared_lease_adopt(struct efs_istate *ist, int lfd)
{
	if (lfd < 0)
		return;
	if (ist->sh_lease)
		close(lfd);
	else
		ist->sh_lease = lfd + 1;
}

void efs_shared_lease_drop(struct efs_istate *ist)
{
	if (!ist->sh_lease)
		return;
	close(ist->sh_lease - 1);       /* the lock goes with the descriptor */
	ist->sh_lease = 0;
}
