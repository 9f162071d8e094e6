/*
 * holder.h - who has a volume mounted, and whether it was let go cleanly.
 *
 * Owns: .ekmfs/mount.lock (an OFD write lock on its first byte, held by the
 * mounting daemon for as long as the volume is mounted; the kernel, or the
 * distributed file system's lock recovery, drops it when the daemon dies)
 * and .ekmfs/holder (who holds it: host, pid, mountpoint, since when),
 * removed on a clean unmount. A holder record whose lock nobody holds is
 * the mark of a daemon that died with the volume mounted: the next mount
 * recovers (settles the files changed since it started, docs/DESIGN.md).
 * .ekmfs/recovery keeps that mark until the recovery is complete.
 */
#ifndef EKMFS_HOLDER_H
#define EKMFS_HOLDER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#define EKMFS_HOLDER_FILE "holder"
#define EKMFS_MOUNT_LOCK_FILE "mount.lock"
#define EKMFS_RECOVERY_FILE "recovery"

/* Bytes of a backing file that OFD locks stand for (never data: locks only).
 * FENCE: the daemon's writes (read lock) against ekmfs-rotate's header
 * writes (write lock) while a rotation fences. LEASE: in shared mode the
 * daemon that holds a file's content state (write lock, src/fs/shared.c);
 * ekmfs-rotate locks both. WANT: read-locked by whoever waits for LEASE,
 * so the daemon holding it lets it go (a recall, src/fs/shared.c). */
#define EKMFS_FILE_LOCK_FENCE 0
#define EKMFS_FILE_LOCK_LEASE 1
#define EKMFS_FILE_LOCK_WANT 2

struct ekmfs_holder {
	char host[256];
	long pid;
	char mountpoint[PATH_MAX];
	bool shared;                    /* mounted with -o shared ("mode") */
	time_t started;                 /* as the holder's clock says */
	struct timespec since;          /* the record's mtime, the backing store's clock */
};

struct ekmfs_mount_lock;

/* Write-lock bytes [start, start + len) of a backing file through fd (an
 * OFD lock), waiting while another holds them; while it waits, it holds a
 * read lock on EKMFS_FILE_LOCK_WANT, which asks a shared daemon holding
 * the lease to let it go. 0 or -errno. */
int ekmfs_file_lock_claim(int fd, off_t start, off_t len);
/* Whether anyone (another open file description) waits for the lease of
 * the file whose lease fd holds: 1, 0, or -errno. */
int ekmfs_file_lease_wanted(int fd);

/*
 * Take the volume in backing_fd for a mount at mountpoint. -EBUSY when a
 * live daemon holds it (*other describes it; the message names it).
 * Otherwise 0 and, when the last holder did not let go cleanly (or a
 * recovery is unfinished), *recover is set and *since is the time from
 * which files may need settling (the backing store's clock).
 */
int ekmfs_volume_take(int backing_fd, const char *mountpoint, struct ekmfs_mount_lock **out,
		      bool *recover, struct timespec *since, struct ekmfs_holder *other);
/* The same for a daemon mounting in shared mode (docs/SHARED.md): joins
 * other shared daemons (a read lock on mount.lock and its own record
 * .ekmfs/holder.HOST.PID, write-locked while it lives); -EBUSY when an
 * exclusive daemon holds the volume. The first shared daemon holds the
 * write lock (and recovers, *recover) until ekmfs_volume_share. */
int ekmfs_volume_take_shared(int backing_fd, const char *mountpoint,
			     struct ekmfs_mount_lock **out, bool *recover,
			     struct timespec *since, struct ekmfs_holder *other);
/* Shared: the recovery is done, let other shared daemons join. */
int ekmfs_volume_share(struct ekmfs_mount_lock *lock);
/* Every shared holder record: fn(holder, record name, live, arg); a
 * nonzero return stops the walk and is returned. */
int ekmfs_volume_shared_each(int backing_fd, int (*fn)(const struct ekmfs_holder *h,
						       const char *name, bool live, void *arg),
			     void *arg);
/* The recovery is complete: drop the mark. */
int ekmfs_volume_recovered(int backing_fd);
/* A clean unmount: remove the holder record (durably), release the lock. */
void ekmfs_volume_release(int backing_fd, struct ekmfs_mount_lock *lock);

/* For tools: the current holder. 0 and *live (its lock is held), -ENOENT
 * when none. *pending: a recovery is due (a dead holder, or unfinished). */
int ekmfs_volume_holder(int backing_fd, struct ekmfs_holder *h, bool *live, bool *pending);

#endif
