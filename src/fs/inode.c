/*
 * inode.c - the daemon's inode table and per-file crypto state.
 *
 * Owns: the mapping from FUSE node ids to backing objects. As in libfuse's
 * passthrough_ll, inodes are keyed by (st_dev, st_ino), so every hard link
 * of a file reaches the same inode and therefore the same crypto state, and
 * the kernel's lookup counts (nlookup, returned by forget) and our open
 * handles keep an inode alive. Unlike passthrough_ll, an inode does not
 * hold a descriptor of its backing object for its whole life: it is named
 * by its file handle (name_to_handle_at, taken when fdcache.c lets its
 * descriptor go) and opened by it (open_by_handle_at; the daemon runs as
 * root), so the number of inodes the kernel holds is bounded by memory,
 * not by RLIMIT_NOFILE. On a backing file system without file handles
 * (probed at mount: efs_table_init) every inode keeps its descriptor.
 *
 * An inode is small (struct efs_inode, ~110 bytes with its handle); what a
 * regular file needs while in use (locks, content state) is a struct
 * efs_istate attached on first use and freed when the last user is gone.
 *
 * Divisions:
 *   1. the table (hash of (dev, ino), find / add / reference counting)
 *   2. file handles: taking, comparing, opening by handle
 *   3. in-use state: attach / detach
 *   4. content state: loading a file's header, DEK and states (settling it
 *      after a crash), closing it on the last release, plaintext sizes
 *   5. paths relative to BACKING for log lines
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "ekmfs/content.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "fs.h"
#include "metrics.h"

/* statfs f_type of FUSE: its handles decode only while the kernel caches the
 * inode (unless the server supports exports, which we cannot see). */
#define FUSE_MAGIC 0x65735546

/* ---- 1. the table ---- */

#define INITIAL_BUCKETS 1024

static size_t bucket_of(const struct efs_data *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (fs->nbuckets - 1);
}

static void table_insert(struct efs_data *fs, struct efs_inode *inode)
{
	size_t b = bucket_of(fs, inode->dev, inode->ino);

	inode->hnext = fs->table[b];
	fs->table[b] = inode;
	fs->ninodes++;
}

/* Unlink inode from its chain; caller holds fs->mutex. */
static void table_remove(struct efs_data *fs, struct efs_inode *inode)
{
	struct efs_inode **pp;

	if (inode->unhashed)
		return;
	for (pp = &fs->table[bucket_of(fs, inode->dev, inode->ino)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == inode) {
			*pp = inode->hnext;
			fs->ninodes--;
			break;
		}
	}
	inode->unhashed = true;
}

/* Double the bucket array when chains grow long; failure to grow only costs
 * speed, so it is not an error. Called with fs->mutex held. */
static void table_maybe_grow(struct efs_data *fs)
{
	struct efs_inode **old = fs->table, **grown;
	size_t oldn = fs->nbuckets, i;

	if (fs->ninodes < fs->nbuckets * 2)
		return;
	grown = calloc(oldn * 2, sizeof(*grown));
	if (!grown)
		return;
	fs->table = grown;
	fs->nbuckets = oldn * 2;
	fs->ninodes = 0;
	fs->inode_bytes += oldn * sizeof(*grown);
	for (i = 0; i < oldn; i++) {
		struct efs_inode *p = old[i], *next;

		for (; p; p = next) {
			next = p->hnext;
			table_insert(fs, p);
		}
	}
	free(old);
}

/* Room for a handle in every inode: the root's size, at least 16 bytes
 * (xfs's handles grow from 8 to 12 bytes with 64-bit inode numbers), and
 * EFS_HANDLE_MAX at most. 0 when handles are not used. */
static size_t handle_room(struct efs_data *fs, int root_fd)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[MAX_HANDLE_SZ];
	} h;
	struct statfs sfs;
	int mount_id;
	size_t room;

	if (fs->cfg->inode_file_handles == EKMFS_HANDLES_NEVER) {
		errno = EOPNOTSUPP;
		return 0;
	}
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (fstatfs(root_fd, &sfs) == 0 && sfs.f_type == FUSE_MAGIC) {
		errno = EOPNOTSUPP;
		return 0;
	}
	if (name_to_handle_at(root_fd, "", &h.fh, &mount_id, AT_EMPTY_PATH) < 0)
		return 0;
	/* The handles must also open: open_by_handle_at needs
	 * CAP_DAC_READ_SEARCH. */
	{
		int fd = open_by_handle_at(fs->backing_fd, &h.fh, O_PATH | O_CLOEXEC);

		if (fd < 0)
			return 0;
		close(fd);
	}
	room = h.fh.handle_bytes < 16 ? 16 : (h.fh.handle_bytes + 7) & ~(size_t)7;
	if (room > EFS_HANDLE_MAX) {
		errno = EOVERFLOW;
		return 0;
	}
	return room;
}

static size_t fh_room;          /* bytes of handle room in every inode */

int efs_table_init(struct efs_data *fs, int root_fd)
{
	int mode = fs->cfg->inode_file_handles;
	struct stat st;
	int ret;

	if (fstatat(root_fd, "", &st, AT_EMPTY_PATH) == -1)
		return -errno;
	fh_room = handle_room(fs, root_fd);
	fs->handles = fh_room > 0;
	fs->backing_dev = st.st_dev;
	if (!fs->handles && mode == EKMFS_HANDLES_MANDATORY) {
		ekmfs_seterr("the backing file system has no usable file handles (%s), and "
			     "inode_file_handles = mandatory", strerror(errno));
		return -EOPNOTSUPP;
	}
	if (!fs->handles && mode != EKMFS_HANDLES_NEVER)
		ekmfs_log(EKMFS_LOG_WARN, "the backing file system has no usable file handles "
			  "(%s): every inode the kernel holds keeps a descriptor, up to the "
			  "descriptor limit (docs/DESIGN.md, \"Inodes without descriptors\")",
			  strerror(errno));
	pthread_mutex_init(&fs->mutex, NULL);
	pthread_mutex_init(&fs->files_mutex, NULL);
	for (size_t i = 0; i < EFS_STATE_STRIPES; i++)
		pthread_mutex_init(&fs->st_mu[i], NULL);
	fs->nbuckets = INITIAL_BUCKETS;
	fs->ninodes = 0;
	fs->table = calloc(fs->nbuckets, sizeof(*fs->table));
	fs->root = calloc(1, sizeof(*fs->root) + fh_room);
	if (!fs->table || !fs->root)
		return -ENOMEM;
	fs->inode_bytes = fs->nbuckets * sizeof(*fs->table);
	fs->root->dev = st.st_dev;
	fs->root->ino = st.st_ino;
	fs->root->type = (uint16_t)(st.st_mode & S_IFMT);
	fs->root->slot = -1;
	/* The kernel never forgets the root: a count that cannot reach 0. */
	fs->root->refcount = UINT64_MAX / 2;
	ret = efs_fdcache_adopt(fs, fs->root, &root_fd);
	if (ret < 0)
		return ret;
	table_insert(fs, fs->root);
	return 0;
}

size_t efs_inode_alloc_size(void)
{
	return sizeof(struct efs_inode) + fh_room;
}

void efs_table_stats(struct efs_data *fs, struct efs_table_stats *out)
{
	pthread_mutex_lock(&fs->mutex);
	out->inodes = fs->ninodes;
	out->bytes = fs->inode_bytes;
	pthread_mutex_unlock(&fs->mutex);
	out->states = __atomic_load_n(&fs->nstates, __ATOMIC_RELAXED);
	out->inode_size = efs_inode_alloc_size();
	out->handles = fs->handles;
}

static void inode_free(struct efs_data *fs, struct efs_inode *inode)
{
	efs_fdcache_forget(fs, inode);
	free(inode);
}

void efs_table_destroy(struct efs_data *fs)
{
	size_t i;

	if (!fs->table)
		return;
	/* Handles the kernel never released (stopped by a signal): their
	 * states are closed properly, as a release would. */
	while (fs->files) {
		struct efs_file *f = fs->files;
		struct efs_istate *st = f->inode->st;

		fs->files = f->next;
		if (st && st->ci_content) {
			st->ci_nopen = 0;
			efs_crypto_close(fs, f->inode);
		}
		close(f->fd);
		free(f);
	}
	pthread_mutex_destroy(&fs->files_mutex);
	for (i = 0; i < fs->nbuckets; i++) {
		struct efs_inode *p = fs->table[i], *next;

		for (; p; p = next) {
			next = p->hnext;
			if (p->st) {
				pthread_rwlock_destroy(&p->st->ci_lock);
				efs_range_destroy(p->st);
				ekmfs_content_free(p->st->ci_content);
				efs_shared_lease_drop(p->st);
				free(p->st);
				p->st = NULL;
			}
			if (p != fs->root)
				inode_free(fs, p);
		}
	}
	free(fs->table);
	fs->table = NULL;
	if (fs->root) {
		efs_fdcache_forget(fs, fs->root);
		free(fs->root);
		fs->root = NULL;
	}
	for (i = 0; i < EFS_STATE_STRIPES; i++)
		pthread_mutex_destroy(&fs->st_mu[i]);
	pthread_mutex_destroy(&fs->mutex);
}

struct efs_inode *efs_inode_get(struct efs_data *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return fs->root;
	return (struct efs_inode *)(uintptr_t)ino;
}

fuse_ino_t efs_inode_id(struct efs_data *fs, struct efs_inode *inode)
{
	return inode == fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)inode;
}

/* The hashed inode of (dev, ino); caller holds fs->mutex. */
static struct efs_inode *table_find(struct efs_data *fs, dev_t dev, ino_t ino)
{
	struct efs_inode *p;

	for (p = fs->table[bucket_of(fs, dev, ino)]; p; p = p->hnext)
		if (p->ino == ino && p->dev == dev)
			return p;
	return NULL;
}

struct efs_inode *efs_inode_find(struct efs_data *fs, dev_t dev, ino_t ino)
{
	struct efs_inode *p;

	pthread_mutex_lock(&fs->mutex);
	p = table_find(fs, dev, ino);
	if (p)
		p->refcount++;
	pthread_mutex_unlock(&fs->mutex);
	return p;
}

/*
 * Whether the inode found for a fresh descriptor fd is really fd's object.
 * An inode that holds a descriptor pins its backing object, so its number
 * cannot have been given to another one; an inode named only by its handle
 * may have lost its object behind the mount (deleted from the backing
 * directory), and the number been reused: the handles then differ (they
 * carry a generation).
 */
static bool still_same(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	if (__atomic_load_n(&inode->slot, __ATOMIC_RELAXED) >= 0 ||
	    !__atomic_load_n(&inode->fh_len, __ATOMIC_ACQUIRE))
		return true;
	return efs_inode_same_handle(fs, inode, fd) != 0;
}

struct efs_inode *efs_inode_find_or_add(struct efs_data *fs, const struct stat *st,
					int *fd, bool *fresh)
{
	struct efs_inode *p, *made = NULL;
	size_t size = efs_inode_alloc_size();
	int ret;

	*fresh = false;
	pthread_mutex_lock(&fs->mutex);
	p = table_find(fs, st->st_dev, st->st_ino);
	if (p)
		p->refcount++;
	pthread_mutex_unlock(&fs->mutex);
	if (p && !still_same(fs, p, *fd)) {
		/* Its object is gone: the kernel keeps the old inode until it
		 * forgets it (operations on it fail with ESTALE); the number
		 * now names the object of fd, a new inode. */
		pthread_mutex_lock(&fs->mutex);
		table_remove(fs, p);
		pthread_mutex_unlock(&fs->mutex);
		efs_inode_unref(fs, p, 1);
		p = NULL;
	}
	if (p) {
		(void)efs_fdcache_adopt(fs, p, fd);  /* saves the next use a reopen */
		return p;
	}

	made = calloc(1, size);
	if (!made) {
		errno = ENOMEM;
		return NULL;
	}
	made->dev = st->st_dev;
	made->ino = st->st_ino;
	made->type = (uint16_t)(st->st_mode & S_IFMT);
	made->slot = -1;
	made->refcount = 1;
	/* Its descriptor first: once in the table, others may use it. */
	ret = efs_fdcache_adopt(fs, made, fd);
	if (ret < 0) {
		free(made);
		errno = -ret;
		return NULL;
	}
	pthread_mutex_lock(&fs->mutex);
	p = table_find(fs, st->st_dev, st->st_ino);
	if (p) {
		/* Added by another lookup meanwhile: that one stands. */
		p->refcount++;
		pthread_mutex_unlock(&fs->mutex);
		inode_free(fs, made);
		return p;
	}
	table_maybe_grow(fs);
	table_insert(fs, made);
	fs->inode_bytes += malloc_usable_size(made);
	pthread_mutex_unlock(&fs->mutex);
	*fresh = true;
	return made;
}

void efs_inode_ref(struct efs_data *fs, struct efs_inode *inode)
{
	pthread_mutex_lock(&fs->mutex);
	inode->refcount++;
	pthread_mutex_unlock(&fs->mutex);
}

void efs_inode_unref(struct efs_data *fs, struct efs_inode *inode, uint64_t n)
{
	if (inode == fs->root)
		return;
	pthread_mutex_lock(&fs->mutex);
	if (inode->refcount < n) {
		/* A kernel/daemon disagreement; keep going rather than crash. */
		ekmfs_log(EKMFS_LOG_WARN, "inode %llu: forget of %llu with count %llu",
			  (unsigned long long)inode->ino, (unsigned long long)n,
			  (unsigned long long)inode->refcount);
		n = inode->refcount;
	}
	inode->refcount -= n;
	if (inode->refcount) {
		pthread_mutex_unlock(&fs->mutex);
		return;
	}
	table_remove(fs, inode);
	fs->inode_bytes -= malloc_usable_size(inode);
	pthread_mutex_unlock(&fs->mutex);
	inode_free(fs, inode);
}

/* ---- 2. file handles ---- */

struct handle_buf {
	struct file_handle fh;
	unsigned char bytes[MAX_HANDLE_SZ];
};

static int handle_of(int fd, struct handle_buf *h)
{
	int mount_id;

	h->fh.handle_bytes = MAX_HANDLE_SZ;
	return name_to_handle_at(fd, "", &h->fh, &mount_id, AT_EMPTY_PATH) < 0 ? -errno : 0;
}

int efs_inode_take_handle(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	struct handle_buf h;
	int ret;

	if (!fs->handles || inode->dev != fs->backing_dev)
		return -EOPNOTSUPP;
	ret = handle_of(fd, &h);
	if (ret < 0)
		return ret;
	if (h.fh.handle_bytes > fh_room || h.fh.handle_bytes == 0)
		return -EOVERFLOW;
	memcpy(inode->fh, h.fh.f_handle, h.fh.handle_bytes);
	inode->fh_type = h.fh.handle_type;
	/* Published last: readers that see fh_len see the bytes. */
	__atomic_store_n(&inode->fh_len, (uint8_t)h.fh.handle_bytes, __ATOMIC_RELEASE);
	return 0;
}

int efs_inode_same_handle(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	struct handle_buf h;
	uint8_t len = __atomic_load_n(&inode->fh_len, __ATOMIC_ACQUIRE);

	(void)fs;
	if (!len || handle_of(fd, &h) < 0)
		return -1;
	return h.fh.handle_bytes == len && h.fh.handle_type == inode->fh_type &&
	       memcmp(h.fh.f_handle, inode->fh, len) == 0;
}

int efs_inode_open(struct efs_data *fs, struct efs_inode *inode, int flags)
{
	uint8_t len = __atomic_load_n(&inode->fh_len, __ATOMIC_ACQUIRE);
	struct handle_buf h;
	char proc[64];
	int fd, pathfd;

	flags |= O_CLOEXEC;
	/* A cached descriptor was opened by the last lookup, by name: a
	 * reopen through it keeps the file's path (efs_route_path). */
	if (!(flags & O_PATH) && __atomic_load_n(&inode->slot, __ATOMIC_RELAXED) >= 0)
		len = 0;
	if (len) {
		h.fh.handle_bytes = len;
		h.fh.handle_type = inode->fh_type;
		memcpy(h.fh.f_handle, inode->fh, len);
		fd = open_by_handle_at(fs->backing_fd, &h.fh, flags);
		if (fd >= 0 || errno != ESTALE || (flags & O_PATH))
			return fd < 0 ? -errno : fd;
		/* A deleted object still held by a kept descriptor (some file
		 * systems do not decode the handle of an unlinked inode). */
	} else if (flags & O_PATH) {
		return -ESTALE;         /* no handle and no descriptor: gone */
	}
	pathfd = efs_inode_fd(fs, inode);
	if (pathfd < 0)
		return pathfd;
	proc_path(pathfd, proc, sizeof(proc));
	fd = open(proc, flags);
	if (fd < 0)
		fd = -errno;
	efs_inode_fd_put(fs, inode);
	return fd;
}

/* ---- 3. in-use state ---- */

static pthread_mutex_t *stripe_of(struct efs_data *fs, struct efs_inode *inode)
{
	uintptr_t h = (uintptr_t)inode;

	return &fs->st_mu[(h >> 7 ^ h >> 13) % EFS_STATE_STRIPES];
}

static struct efs_istate *istate_new(void)
{
	struct efs_istate *st = calloc(1, sizeof(*st));
	pthread_rwlockattr_t attr;

	if (!st)
		return NULL;
	/* glibc's default prefers readers: a stream of reads would starve a
	 * writer. Nobody takes ci_lock recursively, so writers may go first. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->ci_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	efs_range_init(st);
	return st;
}

struct efs_istate *efs_istate_get(struct efs_data *fs, struct efs_inode *inode)
{
	pthread_mutex_t *mu = stripe_of(fs, inode);
	struct efs_istate *st;

	pthread_mutex_lock(mu);
	st = inode->st;
	if (!st) {
		st = istate_new();
		if (!st) {
			pthread_mutex_unlock(mu);
			return NULL;
		}
		inode->st = st;
		__atomic_add_fetch(&fs->nstates, 1, __ATOMIC_RELAXED);
	}
	st->users++;
	pthread_mutex_unlock(mu);
	return st;
}

void efs_istate_put(struct efs_data *fs, struct efs_inode *inode)
{
	pthread_mutex_t *mu = stripe_of(fs, inode);
	struct efs_istate *st;

	pthread_mutex_lock(mu);
	st = inode->st;
	if (--st->users) {
		pthread_mutex_unlock(mu);
		return;
	}
	/* Nobody uses it: no handle is open (each holds a use), so its
	 * content state was closed at the last release. */
	inode->st = NULL;
	pthread_mutex_unlock(mu);
	__atomic_sub_fetch(&fs->nstates, 1, __ATOMIC_RELAXED);
	ekmfs_content_free(st->ci_content);
	efs_shared_lease_drop(st);
	pthread_rwlock_destroy(&st->ci_lock);
	efs_range_destroy(st);
	free(st);
}

/* ---- 4. content state ---- */

static bool ctime_since(const struct stat *st, const struct timespec *since)
{
	return st->st_ctim.tv_sec > since->tv_sec ||
	       (st->st_ctim.tv_sec == since->tv_sec && st->st_ctim.tv_nsec >= since->tv_nsec);
}

static void log_settled(void *arg, const char *what)
{
	const char *rel = arg;

	ekmfs_log(EKMFS_LOG_WARN, "%s: recovered after a crash: %s", rel, what);
}

void efs_content_env(struct efs_data *fs, const struct stat *st,
		     struct ekmfs_content_env *env)
{
	memset(env, 0, sizeof(*env));
	env->journal_dir = fs->journal_fd;
	env->settled = log_settled;
	env->upgrading = fs->volume_version < 2;
	if (st && __atomic_load_n(&fs->recovering, __ATOMIC_ACQUIRE) &&
	    ctime_since(st, &fs->recover_since))
		env->settle = true;
}

static void log_header_problem(struct efs_data *fs, int fd, int err)
{
	char rel[PATH_MAX];
	const char *why = ekmfs_lasterr();

	efs_relpath(fs, fd, rel, sizeof(rel));
	if (!why || !*why) {
		switch (err) {
		case -EPROTO:
			why = "not an ekmfs file header, or an unsupported format version";
			break;
		case -EBADMSG:
			why = "malformed or truncated header";
			break;
		default:
			why = strerror(-err);
			break;
		}
	}
	ekmfs_log(EKMFS_LOG_ERR, "%s: header: %s", rel, why);
}

/* Give a 0-byte file its header now (it is being written to). */
static int write_fresh_header(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	struct ekmfs_content_env env;
	struct ekmfs_header h;
	uint8_t *dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	char rel[PATH_MAX];
	int ret = -ENOMEM;

	if (!dek)
		goto out;
	ret = efs_route_path(fs, inode, fd, rel, sizeof(rel));
	if (ret < 0)
		goto out;
	ret = ekmfs_keys_new_header(fs->keys, rel, &h, dek);
	if (ret < 0)
		goto out;
	efs_content_env(fs, NULL, &env);
	ret = ekmfs_content_create(&inode->st->ci_content, fd, &h, dek, &env);
	if (ret == 0)
		inode->ci_format = EKMFS_FORMAT_V2;
out:
	if (ret < 0)
		ekmfs_log(EKMFS_LOG_ERR, "%s: cannot create header: %s", rel,
			  *ekmfs_lasterr() ? ekmfs_lasterr() : strerror(-ret));
	ekmfs_wipe(&h, sizeof(h));
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
	return ret;
}

/* A header or state that does not hold together: logged and audited. */
static int report_damage(struct efs_data *fs, int fd, const uint8_t *file_id, int err)
{
	efs_metrics_auth_failure();
	log_header_problem(fs, fd, err);
	efs_audit_tamper(fs, fd, file_id, UINT64_MAX);
	return -EIO;
}

/*
 * Load the inode's content state. Returns 0 when loaded, -ENODATA for a
 * 0-byte file with no header (when create is false: an empty file), -EIO
 * for a damaged header or state (logged, audited), -ENOKEY when the key is
 * unavailable.
 */
static int crypto_load(struct efs_data *fs, struct efs_inode *inode, int fd, bool create);

int efs_crypto_load(struct efs_data *fs, struct efs_inode *inode, int fd, bool create)
{
	struct efs_istate *ist = inode->st;
	int ret;

	if (ist->ci_content)
		return 0;
	/* Shared mode: read the state only under the file's lease. */
	ret = efs_shared_lease_take(fs, ist, fd);
	if (ret == 0)
		ret = crypto_load(fs, inode, fd, create);
	if (!ist->ci_content)
		efs_shared_lease_drop(ist);
	return ret;
}

static int crypto_load(struct efs_data *fs, struct efs_inode *inode, int fd, bool create)
{
	struct ekmfs_content_env env;
	struct ekmfs_header h;
	uint64_t gen = __atomic_load_n(&fs->lock_gen, __ATOMIC_SEQ_CST);
	uint8_t *dek = NULL;
	char rel[PATH_MAX];
	struct stat st;
	int ret;

	if (inode->st->ci_content)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	efs_content_env(fs, &st, &env);
	ekmfs_clearerr();
	ret = ekmfs_content_read_header(fd, &h);
	if ((ret == -EPROTO || ret == -EBADMSG) && !env.settle && efs_shared_peer_died(fs))
		env.settle = true;      /* a shared daemon died creating it? */
	if ((ret == -EPROTO || ret == -EBADMSG) && env.settle &&
	    ekmfs_content_settle_header(fd) == 0) {
		efs_relpath(fs, fd, rel, sizeof(rel));
		log_settled(rel, "its header never reached the disk: it is empty now");
		ret = -ENODATA;
	}
	if (ret == -ENODATA)
		return create ? write_fresh_header(fs, inode, fd) : -ENODATA;
	if (ret == -EPROTO || ret == -EBADMSG)
		return report_damage(fs, fd, NULL, ret);
	if (ret < 0)
		return ret;

	dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!dek)
		return -ENOMEM;
	ret = ekmfs_keys_open_header(fs->keys, &h, dek);
	if (ret == -EBADMSG) {
		efs_metrics_auth_failure();
		efs_relpath(fs, fd, rel, sizeof(rel));
		ekmfs_log(EKMFS_LOG_ERR,
			  "%s: header: no key slot authenticates (tampered or corrupt)", rel);
		efs_audit_tamper(fs, fd, h.file_id, UINT64_MAX);
		ret = -EIO;
		goto out;
	}
	if (ret == -ENOKEY) {
		efs_relpath(fs, fd, rel, sizeof(rel));
		ekmfs_log(EKMFS_LOG_WARN, "%s: header: key unavailable: %s", rel,
			  *ekmfs_lasterr() ? ekmfs_lasterr() : strerror(ENOKEY));
		goto out;
	}
	if (ret < 0) {
		ret = -EIO;
		goto out;
	}
	efs_relpath(fs, fd, rel, sizeof(rel));
	/* The slot that did not open the file must authenticate too. */
	if (h.slot[0].seq && h.slot[1].seq && ekmfs_keys_check_slots(fs->keys, &h) < 0) {
		efs_metrics_auth_failure();
		ekmfs_log(EKMFS_LOG_ERR, "%s: header: %s", rel, ekmfs_lasterr());
		efs_audit_tamper(fs, fd, h.file_id, UINT64_MAX);
	}
	env.settled_arg = rel;
	env.expect_seq = efs_seal_take(fs, inode, fd);
	ekmfs_clearerr();
	ret = ekmfs_content_load(&inode->st->ci_content, fd, &h, dek, &env);
	if (ret == -EBADMSG && !env.settle && efs_shared_peer_died(fs)) {
		/* Shared mode: a daemon that died writing it left it between
		 * states; settled as a recovery would (docs/SHARED.md). */
		env.settle = true;
		ekmfs_clearerr();
		ret = ekmfs_content_load(&inode->st->ci_content, fd, &h, dek, &env);
	}
	if (ret == -EBADMSG || ret == -EPROTO)
		ret = report_damage(fs, fd, h.file_id, ret);
	if (ret == 0)
		inode->ci_format = (uint8_t)h.version;
	/* ekmfs-admin lock ran while we unwrapped: this DEK must not stay. */
	if (ret == 0 && __atomic_load_n(&fs->lock_gen, __ATOMIC_SEQ_CST) != gen) {
		efs_crypto_close(fs, inode);
		ekmfs_seterr("the volume was locked (ekmfs-admin lock)");
		ret = -ENOKEY;
	}
out:
	ekmfs_wipe(&h, sizeof(h));
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
	return ret;
}

/* The state leaves memory; a state not yet durable is sealed later. */
void efs_crypto_close(struct efs_data *fs, struct efs_inode *inode)
{
	uint64_t seal = 0, size;
	struct efs_fence fence;
	char rel[PATH_MAX];
	int fd;

	if (!inode->st->ci_content)
		return;
	size = ekmfs_content_size(inode->st->ci_content);
	/* Kept open past the close, for the seal list and the log. */
	fd = fcntl(ekmfs_content_fd(inode->st->ci_content), F_DUPFD_CLOEXEC, 0);
	ekmfs_clearerr();
	efs_fence_enter(fs, NULL, fd, &fence);
	if (ekmfs_content_close(inode->st->ci_content, &seal) < 0) {
		efs_relpath(fs, fd, rel, sizeof(rel));
		ekmfs_log(EKMFS_LOG_ERR, "%s: closing: %s", rel, ekmfs_lasterr());
	}
	efs_fence_leave(fs, &fence);
	inode->st->ci_content = NULL;
	if (seal)
		efs_seal_add(fs, inode, fd, seal, size);
	if (fd >= 0)
		close(fd);
	efs_shared_lease_drop(inode->st);       /* sealed: shared mode seals at once */
}

/* The files open now, each pinned (an inode reference and a state use). */
static struct efs_inode **open_inodes(struct efs_data *fs, bool leased_only, size_t *n)
{
	struct efs_inode **list = NULL, **grown;
	size_t cap = 0;

	*n = 0;
	pthread_mutex_lock(&fs->files_mutex);
	for (struct efs_file *f = fs->files; f; f = f->next) {
		/* A handle holds a use of its state: f->inode->st is set. */
		if (leased_only && !efs_shared_lease_held(f->inode->st))
			continue;
		grown = ekmfs_grow(list, &cap, *n, sizeof(*list), 64);
		if (!grown)
			break;
		list = grown;
		efs_inode_ref(fs, f->inode);    /* kept alive until we are done */
		if (!efs_istate_get(fs, f->inode)) {
			efs_inode_unref(fs, f->inode, 1);
			continue;
		}
		list[(*n)++] = f->inode;
	}
	pthread_mutex_unlock(&fs->files_mutex);
	return list;
}

size_t efs_close_open_states(struct efs_data *fs, bool wanted_only, size_t *looked)
{
	size_t n, closed = 0;
	struct efs_inode **list = open_inodes(fs, wanted_only, &n);

	if (looked)
		*looked = n;
	for (size_t i = 0; i < n; i++) {
		struct efs_inode *inode = list[i];
		struct efs_istate *ist = inode->st;
		fuse_ino_t id = efs_inode_id(fs, inode);
		bool had = false;

		if (wanted_only) {
			pthread_rwlock_rdlock(&ist->ci_lock);
			had = ist->ci_content && efs_shared_lease_wanted(ist);
			pthread_rwlock_unlock(&ist->ci_lock);
			if (!had)
				goto next;
			/* Dropped while the lease is still ours: a read
			 * holding pages locked completes here, unwaited. */
			if (fs->se)
				fuse_lowlevel_notify_inval_inode(fs->se, id, 0, 0);
			had = false;
		}
		pthread_rwlock_wrlock(&ist->ci_lock);
		if (ist->ci_content) {
			/* Closed as at a last release (its journal folded in
			 * with the keys still at hand), then gone. */
			efs_crypto_close(fs, inode);
			had = true;
		}
		pthread_rwlock_unlock(&ist->ci_lock);
		if (had) {
			closed++;
			/* Cached plaintext pages would still answer reads. */
			if (wanted_only)
				efs_shared_inval_later(fs, id);
			else if (fs->se)
				fuse_lowlevel_notify_inval_inode(fs->se, id, 0, 0);
		}
next:
		efs_istate_put(fs, inode);
		efs_inode_unref(fs, inode, 1);
	}
	free(list);
	return closed;
}

/* On the last release the keys leave memory; the next open unwraps again,
 * which also picks up a header re-wrapped by ekmfs-rotate meanwhile. */
void efs_crypto_drop_if_unused(struct efs_data *fs, struct efs_inode *inode)
{
	if (!inode->st->ci_nopen)
		efs_crypto_close(fs, inode);
}

/* The format version of a file on a volume that may still hold v1 files
 * (volume.json version 1): from its header (fd: a descriptor of it), once
 * per inode (NULL: a lookup's, not in the table yet). */
static uint16_t format_of(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	uint8_t hdr[8], format = 0;
	char proc[64];
	int rfd;

	if (fs->volume_version >= 2)
		return EKMFS_FORMAT_V2;
	if (inode && inode->ci_format)
		return inode->ci_format;
	proc_path(fd, proc, sizeof(proc));
	rfd = open(proc, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (rfd < 0)
		rfd = open(proc, O_RDONLY | O_CLOEXEC);
	if (rfd >= 0 && pread(rfd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    memcmp(hdr, EKMFS_MAGIC, 4) == 0 && ekmfs_layout_of((uint16_t)(hdr[4] | hdr[5] << 8)))
		format = hdr[4];
	if (rfd >= 0)
		close(rfd);
	if (inode && format)
		__atomic_store_n(&inode->ci_format, format, __ATOMIC_RELAXED);
	return format ? format : EKMFS_FORMAT_V2;
}

void efs_plain_stat(struct efs_data *fs, struct efs_inode *inode, struct efs_istate *ist,
		    int fd, struct stat *st)
{
	uint64_t plain = 0;

	if (!S_ISREG(st->st_mode))
		return;
	if (ist && ist->ci_content) {
		st->st_size = (off_t)ekmfs_content_size(ist->ci_content);
		return;
	}
	if (efs_seal_size(fs, st->st_dev, st->st_ino, fd, &plain)) {
		st->st_size = (off_t)plain;
		return;
	}
	/* At rest the backing size is the layout of the plaintext size; an
	 * impossible one yields its intact prefix (opening it says why). */
	(void)ekmfs_content_plain_size(format_of(fs, inode, fd), (uint64_t)st->st_size, &plain);
	st->st_size = (off_t)plain;
}

/* ---- 5. paths relative to BACKING ---- */

/* The path of fd relative to BACKING in buf; false when fd's path is not
 * below BACKING (then buf holds what the kernel says). */
static bool relpath(struct efs_data *fs, int fd, char *buf, size_t len)
{
	char proc[64], target[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(buf, len, "<fd %d>", fd);
		return false;
	}
	target[n] = '\0';
	if (strncmp(target, fs->backing, fs->backing_len) == 0 &&
	    target[fs->backing_len] == '/') {
		snprintf(buf, len, "%s", target + fs->backing_len + 1);
		return true;
	}
	if (strcmp(target, fs->backing) == 0) {
		snprintf(buf, len, ".");
		return true;
	}
	snprintf(buf, len, "%s", target);
	return false;
}

void efs_relpath(struct efs_data *fs, int fd, char *buf, size_t len)
{
	(void)relpath(fs, fd, buf, len);
}

/*
 * A descriptor opened by handle (open_by_handle_at) names a regular file by
 * a disconnected dentry once the backing file system has dropped the
 * file's dentry from its cache: /proc then says "/", and a header made
 * with that path would take the wrong tenant's key. The inode's cached
 * descriptor is the one its last lookup opened by name (efs_fdcache_adopt
 * keeps the newest), so it is tried next; without one, -ESTALE, which makes
 * the kernel look the name up again and retry the open.
 */
int efs_route_path(struct efs_data *fs, struct efs_inode *inode, int fd, char *buf,
		   size_t len)
{
	bool known;
	int pfd;

	if (relpath(fs, fd, buf, len))
		return 0;
	pfd = efs_inode_fd(fs, inode);
	known = pfd >= 0 && relpath(fs, pfd, buf, len);
	if (pfd >= 0)
		efs_inode_fd_put(fs, inode);
	if (known)
		return 0;
	ekmfs_seterr("the backing file's path is not known (opened by its handle after the "
		     "backing file system dropped its name from its cache), so neither is its "
		     "tenant: retry");
	return -ESTALE;
}
