/*
 * rangelock.c - block-range locks of one file, and its page-cache stamp.
 *
 * Owns: letting reads and writes of different blocks of one file run at
 * once. The inode's ci_lock is taken shared by both; inside it a read locks
 * its block range shared and a write that neither grows nor shrinks the
 * file locks its range exclusively (a partial block's read-modify-write is
 * inside that range, so two writers of one block serialize while writers
 * of other blocks go on). Size changes still take ci_lock exclusively.
 * Held ranges are a short list (one entry per request in flight on this
 * file, bounded by the FUSE worker count), so a linear scan is cheapest.
 *
 * Also the cache stamp behind keep_cache: the backing file's ctime and size
 * as the daemon last left them. Every change made through the mount reaches
 * the kernel's page cache as well, so only a change made behind the mount
 * (another writer of the backing directory, an attacker, a restore) makes
 * the cached pages stale, and such a change moves ctime.
 *
 * And the mtime rule of the writeback cache: the kernel stamps mtime when
 * the application writes and sends it by setattr when it flushes, which can
 * overtake the flushed writes themselves; our writes therefore put back the
 * mtime the kernel set last (or the one before the write), under rl_mu so a
 * setattr and a write's restore never interleave.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "ekmfs/io.h"
#include "fs.h"

void efs_range_init(struct efs_istate *st)
{
	pthread_mutex_init(&st->rl_mu, NULL);
	pthread_cond_init(&st->rl_cv, NULL);
	st->rl_held = NULL;
}

void efs_range_destroy(struct efs_istate *st)
{
	pthread_cond_destroy(&st->rl_cv);
	pthread_mutex_destroy(&st->rl_mu);
}

static bool conflicts(const struct efs_range *held, const struct efs_range *r)
{
	for (; held; held = held->next)
		if ((held->excl || r->excl) && held->first <= r->last && r->first <= held->last)
			return true;
	return false;
}

void efs_range_lock(struct efs_inode *inode, struct efs_range *r, uint64_t first,
		    uint64_t last, bool excl)
{
	struct efs_istate *st = inode->st;

	r->first = first;
	r->last = last;
	r->excl = excl;
	pthread_mutex_lock(&st->rl_mu);
	while (conflicts(st->rl_held, r))
		pthread_cond_wait(&st->rl_cv, &st->rl_mu);
	r->next = st->rl_held;
	st->rl_held = r;
	pthread_mutex_unlock(&st->rl_mu);
}

void efs_range_unlock(struct efs_inode *inode, struct efs_range *r)
{
	struct efs_istate *st = inode->st;
	struct efs_range **pp;

	pthread_mutex_lock(&st->rl_mu);
	for (pp = &st->rl_held; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	pthread_cond_broadcast(&st->rl_cv);
	pthread_mutex_unlock(&st->rl_mu);
}

static int64_t ns_of(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

/* Caller holds rl_mu. */
static void stamp(struct efs_inode *inode, const struct stat *st)
{
	inode->cs_valid = true;
	inode->cs_ctime_ns = ns_of(&st->st_ctim);
	inode->cs_size = st->st_size;
}

void efs_cache_stamp(struct efs_inode *inode, int fd)
{
	struct stat st;
	bool ok = fstat(fd, &st) == 0;

	pthread_mutex_lock(&inode->st->rl_mu);
	if (ok)
		stamp(inode, &st);
	else
		inode->cs_valid = false;
	pthread_mutex_unlock(&inode->st->rl_mu);
}

bool efs_cache_still_valid(struct efs_inode *inode, int fd)
{
	struct stat st;
	bool same;

	if (fstat(fd, &st) != 0)
		return false;
	pthread_mutex_lock(&inode->st->rl_mu);
	same = inode->cs_valid && inode->cs_size == st.st_size &&
	       inode->cs_ctime_ns == ns_of(&st.st_ctim);
	stamp(inode, &st);
	pthread_mutex_unlock(&inode->st->rl_mu);
	return same;
}

bool efs_mtime_known(struct efs_inode *inode)
{
	/* Set once under rl_mu and never cleared, so a true read here is
	 * still true when efs_mtime_restore takes the lock. */
	return __atomic_load_n(&inode->km_valid, __ATOMIC_ACQUIRE);
}

void efs_mtime_restore(struct efs_inode *inode, int fd, const struct timespec *saved)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, *saved };
	struct stat st;

	pthread_mutex_lock(&inode->st->rl_mu);
	if (inode->km_valid)
		tv[1] = ts_of(inode->km_mtime_ns);
	(void)ekmfs_io->futimens(fd, tv);  /* best effort: the data is written */
	/* That moved ctime: a change of ours, so the cache stamp follows. */
	if (fstat(fd, &st) == 0)
		stamp(inode, &st);
	pthread_mutex_unlock(&inode->st->rl_mu);
}

/* With the writeback cache the kernel flushes a regular file's times after
 * every unlink of it (its ctime moved), synchronously, inside unlink(2):
 * one of the four round trips of each file of an rm -rf. When the backing
 * file is gone (no links left) and already has that mtime, the utimensat
 * would only move the ctime of an inode nobody can reach by name, so it is
 * skipped and the request costs one fstat. A file that still has a name
 * gets the utimensat, and with it the ctime change POSIX asks of it.
 * pathfd: an O_PATH descriptor of the inode's object. */
static bool flush_of_unlinked(int pathfd, const struct timespec tv[2], struct stat *st)
{
	return tv[0].tv_nsec == UTIME_OMIT && tv[1].tv_nsec != UTIME_OMIT &&
	       tv[1].tv_nsec != UTIME_NOW &&
	       fstatat(pathfd, "", st, AT_EMPTY_PATH) == 0 && st->st_nlink == 0 &&
	       st->st_mtim.tv_sec == tv[1].tv_sec && st->st_mtim.tv_nsec == tv[1].tv_nsec;
}

int efs_mtime_set(struct efs_inode *inode, int fd, int pathfd, const struct timespec tv[2],
		  bool writeback, bool *changed)
{
	struct stat st;
	char proc[64];
	int res = 0;

	pthread_mutex_lock(&inode->st->rl_mu);
	*changed = !flush_of_unlinked(pathfd, tv, &st);
	if (*changed) {
		proc_path(pathfd, proc, sizeof(proc));
		res = fd >= 0 ? ekmfs_io->futimens(fd, tv)
			      : ekmfs_io->utimensat(AT_FDCWD, proc, tv, 0);
	}
	if (res == 0 && writeback && tv[1].tv_nsec != UTIME_OMIT &&
	    (!*changed || fstatat(pathfd, "", &st, AT_EMPTY_PATH) == 0)) {
		inode->km_mtime_ns = ns_of(&st.st_mtim);
		__atomic_store_n(&inode->km_valid, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&inode->st->rl_mu);
	return res;
}
