/*
 * shared.c - the file lease of shared mode (docs/SHARED.md).
 *
 * Owns: in shared mode (-o shared, [daemon] shared = true), several daemons
 * on several hosts serve one volume. A daemon holds a file's content state
 * (DEK, state records, journal) only while it holds the file's lease: an
 * OFD write lock on byte EKMFS_FILE_LOCK_LEASE of the backing file, taken
 * before the state is read from the backing store and let go after the
 * state is written back and sealed (efs_crypto_load / efs_crypto_close).
 * So no two hosts ever read or write state records or blocks of one file
 * from different views of it, and every operation sees everything every
 * host did to the file before the lease came to it.
 *
 * The lease is kept from the operation that loads the state until the
 * file's last release here, unless another host asks for it: whoever
 * waits for a lease read-locks byte EKMFS_FILE_LOCK_WANT meanwhile
 * (ekmfs_file_lock_claim), and this file's recaller thread looks for such
 * a waiter on every lease it holds every EFS_LEASE_POLL_MS (half a
 * millisecond per leased open file when more, so that the lock service
 * gets at most 2,000 look-ups a second). A lease
 * wanted is recalled: the kernel's cached pages of the file are dropped,
 * the state closed as at a last release (folded, sealed, durable) and the
 * lease let go; the next operation here claims it again and reloads. So a
 * file open on one host (a writer that never closes, fsx) is read and
 * written through another host too, handed over operation by operation.
 * The pages are dropped once more after the lease is gone, by the
 * invalidator thread: a read that began meanwhile may be waiting for the
 * lease, holding its pages locked, and the recaller must not wait on it
 * (two hosts recalling from each other would deadlock).
 *
 * A shared daemon that dies lets its leases go with its descriptors, and
 * may leave a file caught mid-write (records unequal, a journal): the
 * next daemon to load it, on any host, finds the strict checks fail and
 * that a daemon of the volume died (its holder record unlocked), and
 * settles the file as a recovery would (efs_shared_peer_died, inode.c).
 *
 * The lock is taken through a descriptor of its own, so the byte-0 locks of
 * the rotation fence (fence.c, ekmfs-rotate) are independent of it;
 * ekmfs-rotate claims bytes 0 and 1, which recalls the lease too. On a
 * distributed file system the lock is held by its lock service
 * (GlusterFS: the bricks' locks translator), and dropped when this daemon
 * dies or loses its connection.
 *
 * Divisions: the lease / the recaller / the invalidator.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/holder.h"
#include "ekmfs/util.h"
#include "fs.h"

/* ---- the lease ---- */

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
	ret = ekmfs_file_lock_claim(lfd, EKMFS_FILE_LOCK_LEASE, 1);
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
	__atomic_store_n(&ist->sh_lease, lfd + 1, __ATOMIC_RELEASE);
	return 0;
}

void efs_shared_lease_adopt(struct efs_istate *ist, int lfd)
{
	if (lfd < 0)
		return;
	if (ist->sh_lease)
		close(lfd);
	else
		__atomic_store_n(&ist->sh_lease, lfd + 1, __ATOMIC_RELEASE);
}

void efs_shared_lease_drop(struct efs_istate *ist)
{
	if (!ist->sh_lease)
		return;
	close(ist->sh_lease - 1);       /* the lock goes with the descriptor */
	__atomic_store_n(&ist->sh_lease, 0, __ATOMIC_RELEASE);
}

bool efs_shared_lease_held(struct efs_istate *ist)
{
	return __atomic_load_n(&ist->sh_lease, __ATOMIC_ACQUIRE) != 0;
}

bool efs_shared_lease_wanted(struct efs_istate *ist)
{
	return ist->sh_lease && ekmfs_file_lease_wanted(ist->sh_lease - 1) > 0;
}

/* A shared daemon of the volume died (its holder record's lock is free):
 * what it was writing may be caught mid-write. */
static int dead_one(const struct ekmfs_holder *h, const char *name, bool live, void *arg)
{
	(void)h;
	(void)name;
	(void)arg;
	return !live;
}

bool efs_shared_peer_died(struct efs_data *fs)
{
	return fs->shared && ekmfs_volume_shared_each(fs->backing_fd, dead_one, NULL) > 0;
}

/* ---- the recaller ---- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t recaller, invalidator;
	bool running, stop;
	/* Inodes whose pages to drop again (the invalidator's queue). */
	fuse_ino_t *inval;
	size_t ninval, cap;
	/* Leases recalled (ekmfs_lease_recalls_total). */
	uint64_t recalls;
} rc = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static bool wait_tick(long ms)
{
	struct timespec until;

	ekmfs_deadline_ms(&until, ms);
	pthread_mutex_lock(&rc.mu);
	if (!rc.stop)
		pthread_cond_timedwait(&rc.cv, &rc.mu, &until);
	pthread_mutex_unlock(&rc.mu);
	return !__atomic_load_n(&rc.stop, __ATOMIC_ACQUIRE);
}

static void *recaller(void *arg)
{
	struct efs_data *fs = arg;
	long ms = EFS_LEASE_POLL_MS;

	/* One GETLK per leased open file per pass (a round trip to the
	 * backing store's lock service): with many files open, passes are
	 * spaced out so that they stay at 2,000 a second at most. */
	while (wait_tick(ms)) {
		size_t looked, n = efs_close_open_states(fs, true, &looked);

		if (n)
			__atomic_add_fetch(&rc.recalls, n, __ATOMIC_RELAXED);
		ms = (long)(looked * EFS_LEASE_POLL_US_PER_FILE / 1000);
		if (ms < EFS_LEASE_POLL_MS)
			ms = EFS_LEASE_POLL_MS;
	}
	return NULL;
}

uint64_t efs_shared_recalls(void)
{
	return __atomic_load_n(&rc.recalls, __ATOMIC_RELAXED);
}

/* ---- the invalidator ---- */

void efs_shared_inval_later(struct efs_data *fs, fuse_ino_t ino)
{
	fuse_ino_t *grown;

	if (!fs->se)
		return;
	pthread_mutex_lock(&rc.mu);
	grown = ekmfs_grow(rc.inval, &rc.cap, rc.ninval, sizeof(*rc.inval), 16);
	if (grown) {
		rc.inval = grown;
		rc.inval[rc.ninval++] = ino;
		pthread_cond_broadcast(&rc.cv);
	}
	pthread_mutex_unlock(&rc.mu);
}

static void *invalidator(void *arg)
{
	struct efs_data *fs = arg;

	pthread_mutex_lock(&rc.mu);
	while (!rc.stop) {
		if (!rc.ninval) {
			pthread_cond_wait(&rc.cv, &rc.mu);
			continue;
		}
		fuse_ino_t ino = rc.inval[--rc.ninval];

		pthread_mutex_unlock(&rc.mu);
		/* An inode gone meanwhile: the kernel answers ENOENT. */
		(void)fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
		pthread_mutex_lock(&rc.mu);
	}
	pthread_mutex_unlock(&rc.mu);
	return NULL;
}

int efs_shared_lease_start(struct efs_data *fs)
{
	int ret;

	if (!fs->shared)
		return 0;
	rc.stop = false;
	ret = pthread_create(&rc.recaller, NULL, recaller, fs);
	if (ret == 0) {
		ret = pthread_create(&rc.invalidator, NULL, invalidator, fs);
		if (ret) {
			__atomic_store_n(&rc.stop, true, __ATOMIC_RELEASE);
			pthread_join(rc.recaller, NULL);
		}
	}
	if (ret) {
		ekmfs_log(EKMFS_LOG_ERR, "shared mode: cannot start the lease recaller: %s",
			  strerror(ret));
		return -ret;
	}
	rc.running = true;
	return 0;
}

void efs_shared_lease_stop(void)
{
	if (!rc.running)
		return;
	pthread_mutex_lock(&rc.mu);
	__atomic_store_n(&rc.stop, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rc.cv);
	pthread_mutex_unlock(&rc.mu);
	pthread_join(rc.recaller, NULL);
	pthread_join(rc.invalidator, NULL);
	rc.running = false;
	free(rc.inval);
	rc.inval = NULL;
	rc.ninval = rc.cap = 0;
}
