/*
 * fence.c - keeping ekmfs-rotate's header writes apart from the daemon's
 * writes of the same file, while a rotation runs.
 *
 * Owns: the rotation fence (docs/ROTATION.md, "Timestamps"). A re-wrap
 * writes a key slot into a backing file and puts the file's mtime back, so
 * that the mount shows no change; if the daemon wrote the file in between
 * (a write, truncate, fallocate, close, seal), putting the mtime back would
 * roll the daemon's change of it back, and a header re-written by the
 * daemon (O_TRUNC) would be overwritten by a slot of the old file id.
 *
 * So, while a rotation holds the fence (`fence SECONDS` on the control
 * socket, renewed by ekmfs-rotate, a lease so a rotation that dies lets it
 * go), every daemon operation that writes a regular backing file holds a
 * shared OFD lock on the file's first byte, and ekmfs-rotate holds an
 * exclusive one from reading a header to putting its mtime back. Without a
 * rotation an operation costs two atomic updates and a clock read: locks
 * (a few microseconds each) are taken only while fenced.
 *
 * Starting the fence waits for the operations that began unfenced to end,
 * so when `fence` answers, every daemon write of a file takes the lock.
 * Operations nest (a write loads the file, a release closes it): only the
 * outermost of a thread takes the lock.
 *
 * Divisions: the lease / enter, leave.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

static _Thread_local unsigned depth;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the lease ---- */

int efs_fence_set(struct efs_data *fs, unsigned seconds)
{
	int64_t until = seconds ? now_ns() + (int64_t)seconds * 1000000000 : 0;

	__atomic_store_n(&fs->fence_until, until, __ATOMIC_SEQ_CST);
	if (!seconds)
		return 0;
	/* Operations that saw no fence before it was set end first. */
	for (int i = 0; __atomic_load_n(&fs->fence_unfenced, __ATOMIC_SEQ_CST) > 0; i++) {
		if (i == 30000)         /* 30 s: something is stuck */
			return -ETIMEDOUT;
		usleep(1000);
	}
	return 0;
}

/* ---- enter, leave ---- */

void efs_fence_enter(struct efs_data *fs, struct efs_inode *inode, int fd, struct efs_fence *t)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	t->fd = -1;
	t->counted = t->own = false;
	if (depth++)
		return;
	__atomic_add_fetch(&fs->fence_unfenced, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&fs->fence_until, __ATOMIC_SEQ_CST) <= now_ns()) {
		t->counted = true;
		return;
	}
	__atomic_sub_fetch(&fs->fence_unfenced, 1, __ATOMIC_SEQ_CST);
	if (fd < 0 && inode) {
		fd = efs_inode_open(fs, inode, O_RDONLY);
		t->own = fd >= 0;
	}
	/* A descriptor open for reading takes a read lock; a rotation holds
	 * its write lock for a few system calls. */
	while (fd >= 0 && fcntl(fd, F_OFD_SETLKW, &fl) < 0 && errno == EINTR)
		;
	t->fd = fd;
}

void efs_fence_leave(struct efs_data *fs, struct efs_fence *t)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	if (--depth)
		return;
	if (t->counted)
		__atomic_sub_fetch(&fs->fence_unfenced, 1, __ATOMIC_SEQ_CST);
	else if (t->fd >= 0)
		(void)fcntl(t->fd, F_OFD_SETLK, &fl);
	if (t->own)
		close(t->fd);
}
