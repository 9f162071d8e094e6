/*
 * fs.h - private header of the ekmfs FUSE daemon (src/fs/).
 *
 * Owns: the daemon's shared state (struct efs_data), the inode table entry
 * (struct efs_inode) with its per-file crypto state, the open-file handle
 * (struct efs_file), and the prototypes that tie main.c, inode.c and ops.c
 * together. The map of the module, grouped by file:
 *   main.c   command line, start-up order, mount, session loop, shutdown
 *   inode.c  inode table keyed by (st_dev, st_ino), lookup counts, file
 *            handles, and the per-inode content state (src/content: keys,
 *            states, journal) shared by names and opens
 *   fdcache.c  the bounded cache of inode descriptors (O_PATH)
 *   seal.c   files closed with an unsynced state: sealed after a syncfs
 *   recover.c  settling the files a crashed daemon left, at mount
 *   metrics.c  counters and the Prometheus metrics file (metrics.h)
 *   service.c  sd_notify, SIGHUP reload, housekeeping thread (service.h)
 *   ops.c    every FUSE low-level operation: do_x() returns an errno, the
 *            x() wrapper makes exactly one fuse_reply_*()
 *   rangelock.c  block-range locks of a file, and the page-cache stamp
 *   control.c  the control socket: lock / unlock of a mounted volume;
 *            control_line.c reads and parses its request line
 *   fsaudit.c  audit records of the daemon (mount, tamper, lock, reload)
 *   logsink.c  where the log goes: log_file, syslog if one listens, stderr
 *   shared.c   shared mode: the file lease held while a state is loaded
 *   shared_lock.c  shared mode: ekmfs-admin lock on one host locks all
 *
 * Lock order: an inode's content lock (ci_lock) may be held while taking
 * efs_data.mutex (the table lock), never the other way round. A block range
 * is locked only under a shared ci_lock; rl_mu, the state stripe locks
 * (st_mu) and the descriptor cache's lock are leaf locks.
 */
#ifndef EKMFS_FS_H
#define EKMFS_FS_H

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ekmfs/config.h"
#include "ekmfs/content.h"
#include "ekmfs/format.h"
#include "ekmfs/keys.h"

/* fuse_ino_t carries a pointer to our inode, as in passthrough_ll. */
_Static_assert(sizeof(fuse_ino_t) >= sizeof(uintptr_t),
	       "fuse_ino_t too small to hold uintptr_t values");

/*
 * What a regular file needs while it is in use (open, or inside an
 * operation that reads or changes its size, times or content): its locks
 * and its content state. Allocated on first use and freed when the last
 * user is gone, so an inode the kernel merely remembers (find, ls -R, a
 * backup pass over millions of files) costs only its struct efs_inode.
 */
struct efs_istate {
	/* Operations in flight that use it, plus one per open handle.
	 * Protected by the inode's state stripe lock (inode.c). */
	unsigned users;

	/*
	 * Content state of a regular file, shared by all its names and opens.
	 * ci_lock: reads take it shared; writes, truncates and loading or
	 * dropping the state take it exclusive. Every ci_ field below is
	 * protected by ci_lock.
	 */
	pthread_rwlock_t ci_lock;
	struct ekmfs_content *ci_content; /* loaded: file id, DEK, states (NULL: not) */
	unsigned ci_nopen;            /* open handles; the state is closed at 0 */
	/* 1 + the last damaged block logged while the state was loaded, so the
	 * kernel's retries (read-ahead, then page by page) log it once.
	 * Atomic: readers update it under the shared lock. */
	uint64_t ci_bad_logged;

	/*
	 * Block-range locks (rangelock.c), taken inside a shared ci_lock:
	 * reads lock their blocks shared, writes that stay inside the file
	 * lock theirs exclusively, so writes to different blocks run in
	 * parallel. rl_mu protects rl_held, and the inode's cache stamp and
	 * kernel mtime (cs_, km_ in struct efs_inode).
	 */
	pthread_mutex_t rl_mu;
	pthread_cond_t rl_cv;
	struct efs_range *rl_held;

	/* Shared mode: the descriptor + 1 holding this file's lease while
	 * ci_content is loaded (0: none). Changed under ci_lock held
	 * exclusive, with atomic stores (the recaller reads it without). */
	int sh_lease;
};

/* The longest file handle kept in an inode; a longer one (no common file
 * system has one) makes the inode keep a descriptor instead. */
#define EFS_HANDLE_MAX 40

/*
 * One inode of the mounted view. Kept small (about 100 bytes: it exists
 * for every inode the kernel has looked up): the backing object is named
 * by its file handle, and a descriptor of it is held only in the bounded
 * descriptor cache (fdcache.c) or while it is in use.
 */
struct efs_inode {
	struct efs_inode *hnext;      /* hash chain; protected by efs_data.mutex */
	struct efs_istate *st;        /* in use (NULL: idle); the stripe lock */
	/* Kernel lookups plus open file handles; the inode is freed when it
	 * drops to zero. Protected by efs_data.mutex. */
	uint64_t refcount;
	ino_t ino;
	dev_t dev;
	/* The backing file's ctime (ns) and size after the daemon's last
	 * change (or at the last open): an open may let the kernel keep its
	 * page cache only if the backing file still matches, i.e. nobody
	 * changed it behind the mount (keep_cache). Under st->rl_mu. */
	int64_t cs_ctime_ns, cs_size;
	/* Under the writeback cache the kernel owns mtime and sends it by
	 * setattr, possibly before the writes it covers reach us: the last
	 * mtime it set (ns), which our writes put back. Under st->rl_mu. */
	int64_t km_mtime_ns;
	int32_t slot;                 /* fdcache.c: slot of its descriptor, -1: none */
	int32_t fh_type;              /* file handle type (name_to_handle_at) */
	uint16_t type;                /* S_IFMT bits; fixed for life */
	uint8_t fh_len;               /* handle bytes; 0: none, the descriptor stays */
	uint8_t ci_format;            /* format version of the file; 0: not known yet */
	bool cs_valid;                /* cs_ holds a stamp (under st->rl_mu) */
	bool km_valid;                /* km_ holds the kernel's mtime (atomic) */
	bool unhashed;                /* its (dev, ino) names another file now */
	unsigned char fh[];           /* fh_len bytes of file handle */
};

/* One held block range [first, last]; lives on the holder's stack. */
struct efs_range {
	uint64_t first, last;
	bool excl;
	struct efs_range *next;
};

struct efs_seal_list;
struct efs_fdcache;

/* Stripes of the locks that attach and detach an inode's efs_istate. */
#define EFS_STATE_STRIPES 64

struct efs_data {
	pthread_mutex_t mutex;        /* the inode table */
	/* Every open handle, so a daemon stopped by a signal (the kernel then
	 * sends no RELEASE) still closes and frees them. */
	pthread_mutex_t files_mutex;
	struct efs_file *files;
	struct efs_inode *root;       /* never freed; not counted */
	struct efs_inode **table;     /* hash buckets of (dev, ino) */
	size_t nbuckets;
	size_t ninodes;
	size_t inode_bytes;           /* heap bytes of the inodes and buckets (mutex) */
	pthread_mutex_t st_mu[EFS_STATE_STRIPES];  /* efs_istate attach/detach */
	size_t nstates;               /* states allocated (atomic) */

	/* Inodes are named by file handles (inode.c), decoded against
	 * backing_fd; false on a backing file system without them, or with
	 * inode_file_handles = never: each inode then keeps a descriptor. */
	bool handles;
	dev_t backing_dev;            /* st_dev of BACKING: handles only there */
	struct efs_fdcache *fdc;      /* fdcache.c */

	struct ekmfs_keys *keys;
	const struct ekmfs_config *cfg;
	int backing_fd;               /* BACKING, O_RDONLY|O_DIRECTORY */
	int journal_fd;               /* BACKING/.ekmfs/journal */
	uint32_t volume_version;      /* volume.json "version": 2 = every file v2 */
	struct efs_seal_list *seals;  /* seal.c */
	/* Recovering from a crash: files changed since then are settled
	 * when loaded (recover.c). Atomic: cleared once all are. */
	bool recovering;
	struct timespec recover_since;
	char backing[PATH_MAX];       /* realpath of BACKING, for log paths */
	size_t backing_len;
	/* Atomic: a SIGHUP reload (service.c) changes them while workers read. */
	_Atomic double attr_timeout;
	_Atomic double entry_timeout;
	bool debug;
	bool writeback;               /* the kernel caches writes (set in init) */
	bool shared;                  /* several daemons serve the volume (shared.c) */
	struct fuse_session *se;      /* for cache invalidation on lock */
	struct ekmfs_audit *audit;    /* NULL when the audit log is unusable */
	/* +1 on every ekmfs-admin lock (control.c): a DEK unwrapped while it
	 * changed is discarded instead of installed. Atomic. */
	uint64_t lock_gen;
	/* The rotation fence (fence.c): until when (CLOCK_MONOTONIC ns) file
	 * writes take the shared lock, and how many run without it. Atomic. */
	int64_t fence_until;
	long fence_unfenced;
};

/* One open regular file (fi->fh). */
struct efs_file {
	int fd;                       /* backing file: O_RDWR, or O_RDONLY fallback */
	bool append;                  /* O_APPEND: writes go to the plaintext end */
	bool writable;
	struct efs_inode *inode;      /* pinned by one reference */
	struct efs_file *prev, *next; /* efs_data.files */
};

/* inode.c */
int efs_table_init(struct efs_data *fs, int root_fd);
void efs_table_destroy(struct efs_data *fs);
struct efs_inode *efs_inode_get(struct efs_data *fs, fuse_ino_t ino);
fuse_ino_t efs_inode_id(struct efs_data *fs, struct efs_inode *inode);
/* Find the inode of st (taking a reference) or make one (*fresh) for the
 * object that fd (O_PATH) is a descriptor of; *fd is set to -1 when the
 * descriptor cache took it. NULL with errno on failure. */
struct efs_inode *efs_inode_find_or_add(struct efs_data *fs, const struct stat *st,
					int *fd, bool *fresh);
/* The inode of (dev, ino) if the table has it, with a reference; or NULL. */
struct efs_inode *efs_inode_find(struct efs_data *fs, dev_t dev, ino_t ino);
void efs_inode_ref(struct efs_data *fs, struct efs_inode *inode);
void efs_inode_unref(struct efs_data *fs, struct efs_inode *inode, uint64_t n);
/* Bytes allocated for one inode (with its handle room). */
size_t efs_inode_alloc_size(void);
struct efs_table_stats {
	size_t inodes;      /* in the table (the kernel holds them), the root too */
	size_t states;      /* of them with an in-use state attached */
	size_t bytes;       /* heap bytes of the inodes and the hash buckets */
	size_t inode_size;  /* bytes allocated for one inode */
	bool handles;       /* inodes are named by file handles */
};
void efs_table_stats(struct efs_data *fs, struct efs_table_stats *out);
/* Record the file handle of fd (a descriptor of inode's object) in inode.
 * 0 or -errno (EOPNOTSUPP: no handles here; EOVERFLOW: too long). */
int efs_inode_take_handle(struct efs_data *fs, struct efs_inode *inode, int fd);
/* 1 when fd's handle is inode's, 0 when not, -1 when either has none. */
int efs_inode_same_handle(struct efs_data *fs, struct efs_inode *inode, int fd);
/* Open inode's backing object with flags (O_CLOEXEC added): by its handle,
 * or through its descriptor. A descriptor or -errno (ESTALE: it is gone). */
int efs_inode_open(struct efs_data *fs, struct efs_inode *inode, int flags);
/* The in-use state of inode, attached (allocated) if it has none; every get
 * is paired with a put, which frees it after the last user. NULL: ENOMEM. */
struct efs_istate *efs_istate_get(struct efs_data *fs, struct efs_inode *inode);
void efs_istate_put(struct efs_data *fs, struct efs_inode *inode);
/* Content state; the caller holds a state use and ci_lock exclusively.
 * load: 0 when loaded, -ENODATA for a 0-byte file (with create: it gets
 * its header). */
int efs_crypto_load(struct efs_data *fs, struct efs_inode *inode, int fd,
		    bool create);
/* Close the state (folding, sealing). */
void efs_crypto_close(struct efs_data *fs, struct efs_inode *inode);
void efs_crypto_drop_if_unused(struct efs_data *fs, struct efs_inode *inode);
/* Close the content state of open files as at a last release, and drop
 * the kernel's cached pages of them, so the next operation loads again:
 * every open file (ekmfs-admin lock), or with wanted_only the files whose
 * lease another host waits for (shared mode's recall). How many closed;
 * *looked (may be NULL): how many open files were looked at. */
size_t efs_close_open_states(struct efs_data *fs, bool wanted_only, size_t *looked);
/* The environment content loads use (journal directory, settling). */
void efs_content_env(struct efs_data *fs, const struct stat *st,
		     struct ekmfs_content_env *env);
/* st (of fd, a descriptor of inode) with the plaintext size: from ist's
 * loaded state if any (ist: the caller's use of the state, or NULL; inode
 * NULL: a lookup's object, not in the table yet). */
void efs_plain_stat(struct efs_data *fs, struct efs_inode *inode, struct efs_istate *ist,
		    int fd, struct stat *st);
/* Path of fd relative to BACKING, for log lines. */
void efs_relpath(struct efs_data *fs, int fd, char *buf, size_t len);
/* Path of inode's object (fd: a descriptor of it) relative to BACKING, for
 * the tenant of a new header: 0, or -ESTALE when no descriptor at hand
 * names it by a path (opened by handle after the backing file system
 * dropped its dentry; the kernel's retry looks it up again). */
int efs_route_path(struct efs_data *fs, struct efs_inode *inode, int fd, char *buf,
		   size_t len);

/* fdcache.c: the bounded cache of inode descriptors (see there). */
/* limit: idle descriptors cached; budget: descriptors inodes without a
 * handle may keep (past it their lookups fail with ENFILE). */
int efs_fdcache_init(struct efs_data *fs, size_t limit, size_t budget);
void efs_fdcache_destroy(struct efs_data *fs);
/* An O_PATH descriptor of inode's object, held until efs_inode_fd_put:
 * the cached one, or opened by its handle. A descriptor or -errno. */
int efs_inode_fd(struct efs_data *fs, struct efs_inode *inode);
void efs_inode_fd_put(struct efs_data *fs, struct efs_inode *inode);
/* Cache *fd (O_PATH, of inode's object) for inode: *fd is then -1, or the
 * idle descriptor it replaced (the caller closes it; a busy one stays and
 * *fd is untouched). 0, or -ENOMEM, or -ENFILE past the budget. */
int efs_fdcache_adopt(struct efs_data *fs, struct efs_inode *inode, int *fd);
/* inode's object is about to lose its last name while the kernel may still
 * use it: hold a descriptor of it until the inode is freed. 0 or -errno. */
int efs_fdcache_keep(struct efs_data *fs, struct efs_inode *inode);
/* Whether any descriptor was ever evicted (until then every inode has one). */
bool efs_fdcache_evicted(struct efs_data *fs);
/* inode is being freed: its descriptor goes. */
void efs_fdcache_forget(struct efs_data *fs, struct efs_inode *inode);
struct efs_fdcache_stats {
	size_t held;        /* descriptors held for inodes */
	size_t cached;      /* of them idle in the LRU list */
	size_t pinned;      /* in use by operations */
	size_t kept;        /* kept for good (no handle, or deleted while held) */
	size_t limit;       /* the LRU list's limit */
	size_t budget;      /* for kept descriptors of inodes without handles */
	size_t slot_bytes;  /* heap bytes of the slot array */
	uint64_t hits, misses, evictions, keep_failures, refused;
};
void efs_fdcache_stats(struct efs_data *fs, struct efs_fdcache_stats *out);
/* Descriptors the process holds now (/proc/self/fd), and its soft
 * RLIMIT_NOFILE; -1 when unknown. */
long efs_fd_count(void);
long efs_fd_limit(void);

/* rangelock.c: the caller holds a use of the inode's state (efs_istate_get,
 * or an open handle). */
void efs_range_init(struct efs_istate *st);
void efs_range_destroy(struct efs_istate *st);
void efs_range_lock(struct efs_inode *inode, struct efs_range *r, uint64_t first,
		    uint64_t last, bool excl);
void efs_range_unlock(struct efs_inode *inode, struct efs_range *r);
/* Record the backing file's state after a change made through the mount. */
void efs_cache_stamp(struct efs_inode *inode, int fd);
/* At open: may the kernel keep its cached pages? Records the state too. */
bool efs_cache_still_valid(struct efs_inode *inode, int fd);
/* Writeback cache: a write must not move the mtime the kernel owns. saved
 * is the backing mtime taken before the write. */
void efs_mtime_restore(struct efs_inode *inode, int fd, const struct timespec *saved);
/* The kernel has set this file's mtime since it was loaded: a write need
 * not save the backing mtime first. */
bool efs_mtime_known(struct efs_inode *inode);
/* setattr of times: through fd >= 0, or pathfd (an O_PATH descriptor of
 * the inode, also used to stat it); records the kernel's mtime. 0/-1.
 * *changed: false when the time flush of an unlinked file was skipped. */
int efs_mtime_set(struct efs_inode *inode, int fd, int pathfd, const struct timespec tv[2],
		  bool writeback, bool *changed);

/* shared.c: the file lease of shared mode (no-ops otherwise), kept in the
 * file's in-use state (efs_istate.sh_lease, under its ci_lock held
 * exclusive). take: before a state is loaded through fd (waits while
 * another host holds it, asking it to let go); drop: after it is closed.
 * lease_fd: a lease on fd for a file whose inode is not known yet (-1 when
 * not shared, -errno), adopt: the in-use state takes it. held: without
 * ci_lock (a hint); wanted: another host waits for it (ci_lock held).
 * start/stop: the recaller, which every EFS_LEASE_POLL_MS (or
 * EFS_LEASE_POLL_US_PER_FILE per leased open file, when more) lets go the
 * leases others wait for (efs_close_open_states), and the invalidator,
 * which drops the kernel's pages of a recalled file (inval_later). */
#define EFS_LEASE_POLL_MS 20
#define EFS_LEASE_POLL_US_PER_FILE 500
int efs_shared_lease_take(struct efs_data *fs, struct efs_istate *ist, int fd);
void efs_shared_lease_drop(struct efs_istate *ist);
int efs_shared_lease_fd(struct efs_data *fs, int fd);
void efs_shared_lease_adopt(struct efs_istate *ist, int lfd);
bool efs_shared_lease_held(struct efs_istate *ist);
bool efs_shared_lease_wanted(struct efs_istate *ist);
/* Whether a shared daemon of the volume died (its record left unlocked):
 * a file that fails the strict checks is then settled, not refused. */
bool efs_shared_peer_died(struct efs_data *fs);
void efs_shared_inval_later(struct efs_data *fs, fuse_ino_t ino);
int efs_shared_lease_start(struct efs_data *fs);
void efs_shared_lease_stop(void);
uint64_t efs_shared_recalls(void);
/* shared_lock.c: the volume-wide lock of shared mode. mark: a lock or
 * unlock made here is written to (removed from) .ekmfs/locked[.TENANT]
 * for the other daemons (a note is appended to msg when that fails);
 * start/stop: the thread that applies the marks of the others, polled
 * every EFS_SHARED_POLL_MS (no-ops unless shared). */
#define EFS_SHARED_POLL_MS 1000
void efs_shared_mark_lock(struct efs_data *fs, const char *tenant, bool locked, char *msg,
			  size_t len);
int efs_shared_start(struct efs_data *fs);
void efs_shared_stop(void);

/* wire.c: /dev/fuse I/O through libfuse's custom I/O, to negotiate
 * FUSE_HANDLE_KILLPRIV_V2 (see there). attach after fuse_session_mount;
 * 0 or -errno (then libfuse does the I/O and nothing changes). */
int efs_wire_attach(struct fuse_session *se);
/* Whether the request this thread is handling asks to kill S_ISUID/S_ISGID
 * (a write, truncate or O_TRUNC open by a caller without CAP_FSETID). */
bool efs_wire_kill_suidgid(void);
/* Clear S_ISUID, and S_ISGID if group-executable, of the file behind fd. */
void efs_drop_suidgid(int fd);

/* seal.c */
int efs_seal_init(struct efs_data *fs);
/* inode's state was closed with its working record seq (of plaintext size
 * size) unsynced. */
void efs_seal_add(struct efs_data *fs, struct efs_inode *inode, int fd, uint64_t seq,
		  uint64_t size);
/* The size of a file waiting to be sealed (its backing file may still be
 * longer: the trim waits for the seal). */
bool efs_seal_size(struct efs_data *fs, dev_t dev, ino_t ino, int fd, uint64_t *size);
/* The seq a load of inode (fd: a descriptor of it) must expect (the entry
 * is taken); 0: none. */
uint64_t efs_seal_take(struct efs_data *fs, struct efs_inode *inode, int fd);
/* syncfs BACKING, then seal every file closed before it. */
void efs_seal_run(struct efs_data *fs);
/* Files waiting (for the housekeeping thread's decision and metrics). */
size_t efs_seal_pending(struct efs_data *fs);
void efs_seal_destroy(struct efs_data *fs);

/* recover.c: settle what a crashed daemon left (before mounting). 0, or
 * -errno when files could not be settled (recovery continues lazily). */
int efs_recover(struct efs_data *fs);

/* ops.c */
extern const struct fuse_lowlevel_ops efs_ops;

/* control.c: the control socket (ekmfs-admin lock / unlock) */
int efs_control_start(struct efs_data *fs);
void efs_control_stop(void);
/* Lock / unlock this daemon (tenant NULL: every tenant); msg says what was
 * done. 0 or -errno with ekmfs_lasterr(). */
int efs_control_lock(struct efs_data *fs, const char *tenant, char *msg, size_t len);
int efs_control_unlock(struct efs_data *fs, const char *tenant, char *msg, size_t len);

/* Request accessors shared by the operation files. */
static inline struct efs_data *efs_data(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct efs_inode *efs_inode(fuse_req_t req, fuse_ino_t ino)
{
	return efs_inode_get(efs_data(req), ino);
}

static inline struct efs_file *efs_file(const struct fuse_file_info *fi)
{
	return (struct efs_file *)(uintptr_t)fi->fh;
}

/* The path through which *at()-less calls reach an O_PATH fd. */
static inline void proc_path(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* xattr.c: user.* extended attributes */
void efs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		  size_t size, int flags);
void efs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void efs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void efs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* schedule.c: scheduled KEK rotation (housekeeping thread only) */
void efs_schedule_tick(struct efs_data *fs, const struct ekmfs_config *cfg,
		       const char *config_path);
void efs_schedule_stop(void);

/* logsink.c: the daemon's log destination. start: remember BACKING and
 * MOUNTPOINT (real paths) and open [daemon] log_file if set (refused inside
 * either); 0 or -errno with ekmfs_lasterr(). detach: choose syslog or
 * stderr for a daemon about to detach; true when stderr must stay open.
 * reload (SIGHUP): reopen the log file (rotation), or move to the new
 * log_file of the configuration (NULL: it did not load, reopen). */
int efs_log_start(const char *backing, const char *mnt, const char *log_file);
bool efs_log_detach(void);
void efs_log_reload(const char *log_file);

/* fsaudit.c: the daemon's audit records (never block, never fail a request).
 * open: 0 (fs->audit NULL when [audit] enabled = false) or -errno with
 * ekmfs_lasterr(): the volume must not be mounted. */
int efs_audit_open(struct efs_data *fs, const struct ekmfs_config *cfg, int backing_fd);
void efs_audit_event(struct efs_data *fs, const char *event, const char *reason);
/* The keyring anchor (docs/AUDIT.md): check refuses a keyring older than
 * the one the trail recorded, or unsealed after a sealed one (-ESTALE,
 * -EBADMSG, one line); note has the trail record the keyring now held. */
int efs_audit_check_keyring(struct efs_data *fs);
void efs_audit_note_keyring(struct efs_data *fs);
/* A file failed authentication: block UINT64_MAX means its header. */
void efs_audit_tamper(struct efs_data *fs, int fd, const uint8_t *file_id, uint64_t block);

/* fence.c: an operation that writes a regular backing file (its bytes or
 * times) runs between enter and leave; fd is a descriptor of that file
 * open for reading, or -1 to open one from inode when a lock is needed. */
struct efs_fence {
	int fd;
	bool counted, own;
};
void efs_fence_enter(struct efs_data *fs, struct efs_inode *inode, int fd, struct efs_fence *t);
void efs_fence_leave(struct efs_data *fs, struct efs_fence *t);
/* Hold the fence for seconds (0: let it go); waits for the operations that
 * began unfenced. 0 or -ETIMEDOUT. */
int efs_fence_set(struct efs_data *fs, unsigned seconds);
void efs_audit_close(struct efs_data *fs);

#endif
