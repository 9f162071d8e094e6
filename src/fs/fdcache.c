/*
 * fdcache.c - the descriptors the daemon keeps of its inodes: a bounded
 * cache.
 *
 * Owns: which inodes hold an O_PATH descriptor of their backing object. In
 * libfuse's passthrough_ll every inode the kernel has looked up holds one,
 * so a `find` over a large tree ends in EMFILE (19,985 files in one
 * directory at a limit of 20,000). Here an inode is named by its file
 * handle (inode.c) and a descriptor is kept only
 *   - in a least-recently-used list of at most `limit` descriptors, for
 *     speed: the working set (directories being walked, files just looked
 *     up or created) is served without a system call;
 *   - while an operation uses it (pinned: efs_inode_fd .. efs_inode_fd_put);
 *   - for good ("kept") when the inode cannot be named by a handle: the
 *     backing file system has none (the fallback: one descriptor per inode,
 *     as before), or the object is losing its last name while the kernel
 *     still holds it (efs_fdcache_keep: a deleted file or directory can only
 *     be reached through a descriptor taken before).
 * So the descriptors held are at most limit + the operations in flight +
 * the kept ones; open files hold their own (ops.c).
 *
 * The handle of an inode is taken when its descriptor is evicted (one
 * name_to_handle_at), not at lookup: a workload that fits the cache pays
 * nothing for it. Eviction runs outside the lock: the evicted slot is
 * pinned by the evictor while it takes the handle, and given up only if
 * nobody pinned it meanwhile.
 *
 * Divisions: slots and the list / init, destroy, stats (and the process's
 * descriptor count) / eviction / get, put / adopt, keep, forget.
 *
 * Locking: mu protects every slot and the inodes' slot fields; it is a leaf
 * lock (nothing else is taken under it, no system call is made under it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/util.h"
#include "fs.h"

struct fdslot {
	int fd;
	int32_t prev, next;             /* the LRU list, or the free list (next) */
	uint32_t pins;
	bool kept;                      /* never evicted */
	bool listed;                    /* on the LRU list */
	struct efs_inode *inode;
};

struct efs_fdcache {
	pthread_mutex_t mu;
	pthread_cond_t evicted;         /* an evictor let go of its pin */
	struct fdslot *slot;
	size_t nslots;                  /* allocated */
	int32_t free;                   /* free slots, through next */
	int32_t head, tail;             /* LRU: head most recent */
	size_t listed, held, kept, limit;
	size_t budget;                  /* descriptors new kept inodes may take */
	uint64_t hits, misses, evictions, keep_failures, refused;
};

/* ---- slots and the list ---- */

static void list_remove(struct efs_fdcache *c, int32_t i)
{
	struct fdslot *s = &c->slot[i];

	if (!s->listed)
		return;
	if (s->prev >= 0)
		c->slot[s->prev].next = s->next;
	else
		c->head = s->next;
	if (s->next >= 0)
		c->slot[s->next].prev = s->prev;
	else
		c->tail = s->prev;
	s->listed = false;
	c->listed--;
}

static void list_push(struct efs_fdcache *c, int32_t i)
{
	struct fdslot *s = &c->slot[i];

	s->prev = -1;
	s->next = c->head;
	if (c->head >= 0)
		c->slot[c->head].prev = i;
	c->head = i;
	if (c->tail < 0)
		c->tail = i;
	s->listed = true;
	c->listed++;
}

/* A free slot, the array grown when none is left; -1 without memory. */
static int32_t slot_alloc(struct efs_fdcache *c)
{
	int32_t i;

	if (c->free < 0) {
		size_t n = c->nslots ? c->nslots * 2 : 1024;
		struct fdslot *grown;

		if (n > INT32_MAX)
			return -1;
		grown = realloc(c->slot, n * sizeof(*grown));
		if (!grown)
			return -1;
		c->slot = grown;
		for (size_t k = c->nslots; k < n; k++) {
			grown[k].next = k + 1 < n ? (int32_t)(k + 1) : -1;
			grown[k].listed = false;
			grown[k].inode = NULL;
			grown[k].fd = -1;
		}
		c->free = (int32_t)c->nslots;
		c->nslots = n;
	}
	i = c->free;
	c->free = c->slot[i].next;
	memset(&c->slot[i], 0, sizeof(c->slot[i]));
	c->slot[i].prev = c->slot[i].next = -1;
	c->held++;
	return i;
}

static void slot_free(struct efs_fdcache *c, int32_t i)
{
	struct fdslot *s = &c->slot[i];

	list_remove(c, i);
	if (s->kept)
		c->kept--;
	s->inode = NULL;
	s->fd = -1;
	s->next = c->free;
	c->free = i;
	c->held--;
}

/* Attach fd to inode (which has no slot) in a new slot, pinned or listed.
 * false without memory. Caller holds mu. */
static bool attach(struct efs_fdcache *c, struct efs_inode *inode, int fd, bool pin,
		   bool kept)
{
	int32_t i = slot_alloc(c);

	if (i < 0)
		return false;
	c->slot[i].fd = fd;
	c->slot[i].inode = inode;
	c->slot[i].pins = pin;
	c->slot[i].kept = kept;
	if (kept)
		c->kept++;
	if (!pin && !kept)
		list_push(c, i);
	inode->slot = i;
	return true;
}

/* ---- init, destroy, stats ---- */

int efs_fdcache_init(struct efs_data *fs, size_t limit, size_t budget)
{
	struct efs_fdcache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->evicted, NULL);
	c->free = c->head = c->tail = -1;
	c->limit = limit ? limit : 1;
	c->budget = budget;
	fs->fdc = c;
	return 0;
}

void efs_fdcache_destroy(struct efs_data *fs)
{
	struct efs_fdcache *c = fs->fdc;

	if (!c)
		return;
	for (size_t i = 0; i < c->nslots; i++)
		if (c->slot[i].inode && c->slot[i].fd >= 0)
			close(c->slot[i].fd);
	free(c->slot);
	pthread_cond_destroy(&c->evicted);
	pthread_mutex_destroy(&c->mu);
	free(c);
	fs->fdc = NULL;
}

void efs_fdcache_stats(struct efs_data *fs, struct efs_fdcache_stats *out)
{
	struct efs_fdcache *c = fs->fdc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	out->held = c->held;
	out->cached = c->listed;
	out->kept = c->kept;
	out->pinned = c->held - c->listed - c->kept;
	out->limit = c->limit;
	out->hits = c->hits;
	out->misses = c->misses;
	out->evictions = c->evictions;
	out->keep_failures = c->keep_failures;
	out->refused = c->refused;
	out->budget = c->budget;
	out->slot_bytes = c->nslots * sizeof(struct fdslot);
	pthread_mutex_unlock(&c->mu);
}

long efs_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;           /* not the one opendir holds */
}

long efs_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}

/* ---- eviction ---- */

/*
 * Bring the cache back to its limit: evict the least recently used
 * descriptors. Each is pinned while its handle is taken (outside the lock)
 * and closed only if nobody used it meanwhile. Called without mu.
 */
static void shrink(struct efs_data *fs)
{
	struct efs_fdcache *c = fs->fdc;

	for (int rounds = 0; rounds < 64; rounds++) {
		struct efs_inode *inode;
		struct stat st;
		int32_t i;
		int fd;
		bool named;

		pthread_mutex_lock(&c->mu);
		if (c->listed <= c->limit || c->tail < 0) {
			pthread_mutex_unlock(&c->mu);
			return;
		}
		i = c->tail;
		list_remove(c, i);
		c->slot[i].pins++;
		inode = c->slot[i].inode;
		fd = c->slot[i].fd;
		pthread_mutex_unlock(&c->mu);

		/* A deleted object the kernel still holds (its inode not
		 * forgotten yet) is reachable only through this descriptor. */
		named = fstat(fd, &st) == 0 && st.st_nlink > 0;
		/* Only the evictor writes an inode's handle, and only while it
		 * pins the inode's one slot: readers use the descriptor then. */
		named = named && (inode->fh_len || efs_inode_take_handle(fs, inode, fd) == 0);

		pthread_mutex_lock(&c->mu);
		c->slot[i].pins--;
		pthread_cond_broadcast(&c->evicted);
		if (!named && !c->slot[i].kept) {
			/* Deleted, or no handle for it: it keeps its descriptor. */
			c->slot[i].kept = true;
			c->kept++;
			c->keep_failures += !inode->fh_len;
		}
		if (c->slot[i].pins || c->slot[i].kept) {
			/* In use again (its user lists it when done), or kept. */
			pthread_mutex_unlock(&c->mu);
			continue;
		}
		inode->slot = -1;
		slot_free(c, i);
		__atomic_fetch_add(&c->evictions, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->mu);
		close(fd);
	}
}

/* ---- get, put ---- */

int efs_inode_fd(struct efs_data *fs, struct efs_inode *inode)
{
	struct efs_fdcache *c = fs->fdc;
	int fd;

	pthread_mutex_lock(&c->mu);
	if (inode->slot >= 0) {
		struct fdslot *s = &c->slot[inode->slot];

		list_remove(c, inode->slot);
		s->pins++;
		fd = s->fd;
		c->hits++;
		pthread_mutex_unlock(&c->mu);
		return fd;
	}
	c->misses++;
	pthread_mutex_unlock(&c->mu);

	fd = efs_inode_open(fs, inode, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&c->mu);
	if (inode->slot >= 0) {
		/* Another thread brought one meanwhile: use it. */
		int mine = fd;

		list_remove(c, inode->slot);
		c->slot[inode->slot].pins++;
		fd = c->slot[inode->slot].fd;
		pthread_mutex_unlock(&c->mu);
		close(mine);
		return fd;
	}
	if (!attach(c, inode, fd, true, false)) {
		pthread_mutex_unlock(&c->mu);
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_unlock(&c->mu);
	return fd;
}

void efs_inode_fd_put(struct efs_data *fs, struct efs_inode *inode)
{
	struct efs_fdcache *c = fs->fdc;
	struct fdslot *s;
	bool over;

	pthread_mutex_lock(&c->mu);
	s = &c->slot[inode->slot];
	if (--s->pins == 0 && !s->kept)
		list_push(c, inode->slot);
	over = c->listed > c->limit;
	pthread_mutex_unlock(&c->mu);
	if (over)
		shrink(fs);
}

/* ---- adopt, keep, forget ---- */

int efs_fdcache_adopt(struct efs_data *fs, struct efs_inode *inode, int *fd)
{
	struct efs_fdcache *c = fs->fdc;
	/* Without a way to name it again, the descriptor is all we have. */
	bool kept = !fs->handles || inode->dev != fs->backing_dev;
	bool over;

	pthread_mutex_lock(&c->mu);
	if (inode->slot >= 0) {
		struct fdslot *s = &c->slot[inode->slot];

		/* Known already: an idle descriptor is swapped for the fresh
		 * one (the caller closes the old). A descriptor opened by a
		 * lookup names the object by its path; one opened by its handle
		 * may not (a disconnected dentry, once the backing file system
		 * dropped it from its cache), and the path picks the tenant of
		 * a new header (efs_route_path). */
		if (!s->pins && !s->kept) {
			int old = s->fd;

			s->fd = *fd;
			*fd = old;
			list_remove(c, inode->slot);
			list_push(c, inode->slot);
		}
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	/* Without handles, every inode the kernel holds keeps a descriptor:
	 * past the budget a new one is refused (ENFILE), so the descriptors
	 * left stay for opens, journals and the control socket. */
	if (kept && c->held >= c->budget) {
		bool first = c->refused++ == 0;

		pthread_mutex_unlock(&c->mu);
		if (first)
			ekmfs_log(EKMFS_LOG_ERR, "%zu inodes held, each with a descriptor (no file "
				  "handles): new ones are refused (ENFILE) until the kernel "
				  "forgets some (docs/DESIGN.md, \"Inodes without descriptors\")",
				  c->budget);
		return -ENFILE;
	}
	if (!attach(c, inode, *fd, false, kept)) {
		pthread_mutex_unlock(&c->mu);
		return -ENOMEM;
	}
	*fd = -1;
	over = c->listed > c->limit;
	pthread_mutex_unlock(&c->mu);
	if (over)
		shrink(fs);
	return 0;
}

bool efs_fdcache_evicted(struct efs_data *fs)
{
	return __atomic_load_n(&fs->fdc->evictions, __ATOMIC_RELAXED) > 0;
}

int efs_fdcache_keep(struct efs_data *fs, struct efs_inode *inode)
{
	struct efs_fdcache *c = fs->fdc;
	int fd;

	/* Pinned (opened by its handle if need be), then kept. */
	fd = efs_inode_fd(fs, inode);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&c->mu);
	if (!c->slot[inode->slot].kept) {
		c->slot[inode->slot].kept = true;
		c->kept++;
	}
	pthread_mutex_unlock(&c->mu);
	efs_inode_fd_put(fs, inode);
	return 0;
}

void efs_fdcache_forget(struct efs_data *fs, struct efs_inode *inode)
{
	struct efs_fdcache *c = fs->fdc;
	int fd = -1;

	pthread_mutex_lock(&c->mu);
	/* Unreferenced: only an evictor taking its handle can pin it now, for
	 * a system call's time; it must be done with the inode first. */
	while (inode->slot >= 0 && c->slot[inode->slot].pins)
		pthread_cond_wait(&c->evicted, &c->mu);
	if (inode->slot >= 0) {
		fd = c->slot[inode->slot].fd;
		slot_free(c, inode->slot);
		inode->slot = -1;
	}
	pthread_mutex_unlock(&c->mu);
	if (fd >= 0)
		close(fd);
}
