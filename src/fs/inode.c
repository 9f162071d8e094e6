/*
 * inode.c - the daemon's inode table and per-file crypto state.
 *
 * Owns: the mapping from FUSE node ids to backing objects. As in libfuse's
 * passthrough_ll, each inode holds an O_PATH fd of its backing object and is
 * keyed by (st_dev, st_ino), so every hard link of a file reaches the same
 * inode and therefore the same crypto state. The kernel's lookup counts
 * (nlookup, returned by forget) and our open handles keep an inode alive.
 *
 * Divisions:
 *   1. the table (hash of (dev, ino), find / add / reference counting)
 *   2. content state: loading a file's header, DEK and states (settling it
 *      after a crash), closing it on the last release, plaintext sizes
 *   3. paths relative to BACKING for log lines
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/content.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "fs.h"
#include "metrics.h"

/* ---- 1. the table ---- */

#define INITIAL_BUCKETS 1024

static size_t bucket_of(const struct efs_data *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (fs->nbuckets - 1);
}

static void inode_init_common(struct efs_inode *inode, int fd, const struct stat *st)
{
	pthread_rwlockattr_t attr;

	inode->fd = fd;
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	inode->type = st->st_mode & S_IFMT;
	/* glibc's default prefers readers: a stream of reads would starve a
	 * writer. Nobody takes ci_lock recursively, so writers may go first. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&inode->ci_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	efs_range_init(inode);
}

static void table_insert(struct efs_data *fs, struct efs_inode *inode)
{
	size_t b = bucket_of(fs, inode->dev, inode->ino);

	inode->hnext = fs->table[b];
	fs->table[b] = inode;
	fs->ninodes++;
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
	for (i = 0; i < oldn; i++) {
		struct efs_inode *p = old[i], *next;

		for (; p; p = next) {
			next = p->hnext;
			table_insert(fs, p);
		}
	}
	free(old);
}

int efs_table_init(struct efs_data *fs, int root_fd)
{
	struct stat st;

	if (fstatat(root_fd, "", &st, AT_EMPTY_PATH) == -1)
		return -errno;
	pthread_mutex_init(&fs->mutex, NULL);
	pthread_mutex_init(&fs->files_mutex, NULL);
	fs->nbuckets = INITIAL_BUCKETS;
	fs->ninodes = 0;
	fs->table = calloc(fs->nbuckets, sizeof(*fs->table));
	if (!fs->table)
		return -ENOMEM;
	memset(&fs->root, 0, sizeof(fs->root));
	inode_init_common(&fs->root, root_fd, &st);
	/* The kernel never forgets the root: a count that cannot reach 0. */
	fs->root.refcount = UINT64_MAX / 2;
	table_insert(fs, &fs->root);
	return 0;
}

static void inode_free(struct efs_inode *inode)
{
	/* The last handle's release closed the state; a daemon stopped by a
	 * signal closed it in efs_table_destroy. */
	ekmfs_content_free(inode->ci_content);
	inode->ci_content = NULL;
	pthread_rwlock_destroy(&inode->ci_lock);
	efs_range_destroy(inode);
	close(inode->fd);
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

		fs->files = f->next;
		if (f->inode->ci_content) {
			f->inode->ci_nopen = 0;
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
			if (p != &fs->root)
				inode_free(p);
		}
	}
	free(fs->table);
	fs->table = NULL;
	pthread_rwlock_destroy(&fs->root.ci_lock);
	efs_range_destroy(&fs->root);
	close(fs->root.fd);
	pthread_mutex_destroy(&fs->mutex);
}

struct efs_inode *efs_inode_get(struct efs_data *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->root;
	return (struct efs_inode *)(uintptr_t)ino;
}

fuse_ino_t efs_inode_id(struct efs_data *fs, struct efs_inode *inode)
{
	return inode == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)inode;
}

struct efs_inode *efs_inode_find_or_add(struct efs_data *fs, const struct stat *st,
					int *fd)
{
	struct efs_inode *p, *fresh = NULL;

	pthread_mutex_lock(&fs->mutex);
	for (p = fs->table[bucket_of(fs, st->st_dev, st->st_ino)]; p; p = p->hnext) {
		if (p->ino == st->st_ino && p->dev == st->st_dev) {
			p->refcount++;
			pthread_mutex_unlock(&fs->mutex);
			return p;
		}
	}
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh) {
		pthread_mutex_unlock(&fs->mutex);
		errno = ENOMEM;
		return NULL;
	}
	inode_init_common(fresh, *fd, st);
	fresh->refcount = 1;
	*fd = -1;
	table_maybe_grow(fs);
	table_insert(fs, fresh);
	pthread_mutex_unlock(&fs->mutex);
	return fresh;
}

void efs_inode_ref(struct efs_data *fs, struct efs_inode *inode)
{
	pthread_mutex_lock(&fs->mutex);
	inode->refcount++;
	pthread_mutex_unlock(&fs->mutex);
}

void efs_inode_unref(struct efs_data *fs, struct efs_inode *inode, uint64_t n)
{
	struct efs_inode **pp;

	if (inode == &fs->root)
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
	for (pp = &fs->table[bucket_of(fs, inode->dev, inode->ino)]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == inode) {
			*pp = inode->hnext;
			fs->ninodes--;
			break;
		}
	}
	pthread_mutex_unlock(&fs->mutex);
	inode_free(inode);
}

/* ---- 2. content state ---- */

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

	efs_relpath(fs, fd, rel, sizeof(rel));
	if (!dek)
		goto out;
	ret = ekmfs_keys_new_header(fs->keys, rel, &h, dek);
	if (ret < 0)
		goto out;
	efs_content_env(fs, NULL, &env);
	ret = ekmfs_content_create(&inode->ci_content, fd, &h, dek, &env);
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
	int ret;

	if (inode->ci_content)
		return 0;
	/* Shared mode: read the state only under the file's lease. */
	ret = efs_shared_lease_take(fs, inode);
	if (ret == 0)
		ret = crypto_load(fs, inode, fd, create);
	if (!inode->ci_content)
		efs_shared_lease_drop(inode);
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

	if (inode->ci_content)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	efs_content_env(fs, &st, &env);
	ekmfs_clearerr();
	ret = ekmfs_content_read_header(fd, &h);
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
	env.expect_seq = efs_seal_take(fs, inode);
	ekmfs_clearerr();
	ret = ekmfs_content_load(&inode->ci_content, fd, &h, dek, &env);
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

	if (!inode->ci_content)
		return;
	size = ekmfs_content_size(inode->ci_content);
	/* Kept open past the close, for the seal list and the log. */
	fd = fcntl(ekmfs_content_fd(inode->ci_content), F_DUPFD_CLOEXEC, 0);
	ekmfs_clearerr();
	efs_fence_enter(fs, NULL, fd, &fence);
	if (ekmfs_content_close(inode->ci_content, &seal) < 0) {
		efs_relpath(fs, fd, rel, sizeof(rel));
		ekmfs_log(EKMFS_LOG_ERR, "%s: closing: %s", rel, ekmfs_lasterr());
	}
	efs_fence_leave(fs, &fence);
	inode->ci_content = NULL;
	if (seal)
		efs_seal_add(fs, inode, fd, seal, size);
	if (fd >= 0)
		close(fd);
	efs_shared_lease_drop(inode);   /* sealed: shared mode seals at once */
}

/* On the last release the keys leave memory; the next open unwraps again,
 * which also picks up a header re-wrapped by ekmfs-rotate meanwhile. */
void efs_crypto_drop_if_unused(struct efs_data *fs, struct efs_inode *inode)
{
	if (!inode->ci_nopen)
		efs_crypto_close(fs, inode);
}

/* The format version of a file on a volume that may still hold v1 files
 * (volume.json version 1): from its header, once. */
static uint16_t format_of(struct efs_data *fs, struct efs_inode *inode)
{
	uint8_t hdr[8];
	char proc[64];
	int fd;

	if (fs->volume_version >= 2)
		return EKMFS_FORMAT_V2;
	if (inode->ci_format)
		return inode->ci_format;
	proc_path(inode->fd, proc, sizeof(proc));
	fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0)
		fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    memcmp(hdr, EKMFS_MAGIC, 4) == 0 && ekmfs_layout_of((uint16_t)(hdr[4] | hdr[5] << 8)))
		__atomic_store_n(&inode->ci_format, hdr[4], __ATOMIC_RELAXED);
	if (fd >= 0)
		close(fd);
	return inode->ci_format ? inode->ci_format : EKMFS_FORMAT_V2;
}

void efs_plain_stat(struct efs_data *fs, struct efs_inode *inode, struct stat *st)
{
	uint64_t plain = 0;

	if (!S_ISREG(st->st_mode))
		return;
	if (inode && inode->ci_content) {
		st->st_size = (off_t)ekmfs_content_size(inode->ci_content);
		return;
	}
	if (inode && efs_seal_size(fs, inode, &plain)) {
		st->st_size = (off_t)plain;
		return;
	}
	/* At rest the backing size is the layout of the plaintext size; an
	 * impossible one yields its intact prefix (opening it says why). */
	(void)ekmfs_content_plain_size(inode ? format_of(fs, inode) : EKMFS_FORMAT_V2,
				       (uint64_t)st->st_size, &plain);
	st->st_size = (off_t)plain;
}

/* ---- 3. paths relative to BACKING ---- */

void efs_relpath(struct efs_data *fs, int fd, char *buf, size_t len)
{
	char proc[64], target[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(buf, len, "<fd %d>", fd);
		return;
	}
	target[n] = '\0';
	if (strncmp(target, fs->backing, fs->backing_len) == 0 &&
	    target[fs->backing_len] == '/')
		snprintf(buf, len, "%s", target + fs->backing_len + 1);
	else if (strcmp(target, fs->backing) == 0)
		snprintf(buf, len, ".");
	else
		snprintf(buf, len, "%s", target);
}
