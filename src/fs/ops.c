/*
 * ops.c - the FUSE low-level operations of the ekmfs daemon.
 *
 * Owns: the meaning of every request the kernel sends. As in libfuse's
 * passthrough_ll, an operation is split into do_x(), which does the work and
 * returns 0 or an errno, and x(), which makes exactly one fuse_reply_*() call.
 * Names, directories, links, modes and xattrs pass through to BACKING; file
 * content goes only through ekmfs_content_* (encrypted blocks), and sizes are
 * reported as plaintext sizes.
 *
 * Divisions:
 *   1. helpers: request accessors, plaintext stat, the hidden .ekmfs name,
 *      ownership of new objects, log lines for damaged blocks
 *   2. session: init, destroy
 *   3. names: lookup, forget, getattr, setattr, readlink, mknod, mkdir,
 *      symlink, link, unlink, rmdir, rename
 *   4. files: create, open, read, write, release, fsync, fallocate
 *   5. directories: opendir, readdir(plus), releasedir, fsyncdir
 *   6. volume: statfs (extended attributes are in xattr.c)
 *
 * Locking: each regular file's content lock (efs_inode.ci_lock) is taken
 * shared by read and exclusive by write, truncate, fallocate, open (loading
 * the DEK) and release. getattr and lookup take it shared around their fstat
 * so a size is never observed in the middle of a write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "ekmfs/content.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/secmem.h"
#include "ekmfs/upgrade.h"
#include "ekmfs/util.h"
#include "fs.h"
#include "metrics.h"

#define MAX_WRITE (1u << 20)

/* ---- 1. helpers ---- */

/* BACKING/.ekmfs holds the keyring: it has no name in the mounted view. */
static bool is_meta_name(fuse_ino_t parent, const char *name)
{
	return parent == FUSE_ROOT_ID && strcmp(name, EKMFS_META_DIR) == 0;
}

/* stat of the inode with the plaintext size (a loaded file's from its
 * state, whatever the backing file says); errno or 0. */
static int stat_inode(struct efs_data *fs, struct efs_inode *inode, struct stat *st)
{
	struct efs_istate *ist = NULL;
	int fd, res, saverr;

	fd = efs_inode_fd(fs, inode);
	if (fd < 0)
		return -fd;
	/* A regular file's size is read under its content lock, so it is
	 * never seen in the middle of a write or truncate. */
	if (S_ISREG(inode->type)) {
		ist = efs_istate_get(fs, inode);
		if (!ist) {
			efs_inode_fd_put(fs, inode);
			return ENOMEM;
		}
		pthread_rwlock_rdlock(&ist->ci_lock);
	}
	res = fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	saverr = errno;
	if (res == 0)
		efs_plain_stat(fs, inode, ist, fd, st);
	if (ist) {
		pthread_rwlock_unlock(&ist->ci_lock);
		efs_istate_put(fs, inode);
	}
	efs_inode_fd_put(fs, inode);
	return res == -1 ? saverr : 0;
}

static void log_bad_block(struct efs_data *fs, struct efs_inode *inode, int fd,
			  uint64_t block)
{
	char rel[PATH_MAX];

	efs_metrics_auth_failure();
	if (__atomic_exchange_n(&inode->st->ci_bad_logged, block + 1, __ATOMIC_RELAXED) ==
	    block + 1)
		return;
	efs_relpath(fs, fd, rel, sizeof(rel));
	/* The content layer's reason already starts with "block N: ". */
	if (strncmp(ekmfs_lasterr(), "block ", 6) == 0)
		ekmfs_log(EKMFS_LOG_ERR, "%s: %s", rel, ekmfs_lasterr());
	else
		ekmfs_log(EKMFS_LOG_ERR, "%s: block %" PRIu64 ": %s", rel, block,
			  *ekmfs_lasterr() ? ekmfs_lasterr()
					   : "authentication failed (tampered or corrupt)");
	efs_audit_tamper(fs, fd, inode->st->ci_content ?
			 ekmfs_content_file_id(inode->st->ci_content) : NULL, block);
}

/* Result of an ekmfs_content_* call that may have met a damaged block. */
static int content_errno(struct efs_data *fs, struct efs_inode *inode, int fd,
			 long ret, uint64_t bad_block)
{
	if (ret >= 0)
		return 0;
	if (ret == -EIO && bad_block != UINT64_MAX)
		log_bad_block(fs, inode, fd, bad_block);
	return (int)-ret;
}

/*
 * The daemon runs as root: hand a new object to the caller, as the kernel
 * would have created it. In a set-group-ID directory the inherited group is
 * kept. chown clears S_ISUID/S_ISGID on files, so a requested mode is put
 * back afterwards (not on directories: they may carry an inherited S_ISGID).
 */
static int give_to_caller(fuse_req_t req, int dirfd, const char *name, int fd,
			  mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat dir;
	gid_t gid = ctx->gid;
	int res;

	if (fstatat(dirfd, "", &dir, AT_EMPTY_PATH) == -1)
		return errno;
	if (dir.st_mode & S_ISGID)
		gid = (gid_t)-1;
	if (fd >= 0)
		res = ekmfs_io->fchownat(fd, "", ctx->uid, gid, AT_EMPTY_PATH);
	else
		res = ekmfs_io->fchownat(dirfd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
	if (res == -1)
		return errno;
	if (S_ISDIR(mode) || S_ISLNK(mode) || !(mode & (S_ISUID | S_ISGID)))
		return 0;
	if (fd >= 0)
		res = ekmfs_io->fchmod(fd, mode & 07777);
	else
		res = ekmfs_io->fchmodat(dirfd, name, mode & 07777, 0);
	return res == -1 ? errno : 0;
}

static void fill_entry_timeouts(struct efs_data *fs, struct fuse_entry_param *e)
{
	e->attr_timeout = fs->attr_timeout;
	e->entry_timeout = fs->entry_timeout;
}

/* ---- 2. session ---- */

static void efs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct efs_data *fs = userdata;

	/* Writeback caching: the kernel keeps size and mtime while it holds
	 * dirty pages and sends them in large writes (512-byte appends become
	 * 1 MiB writes). Its rules are kept here: backing files are always
	 * opened read-write (the kernel reads pages around partial writes,
	 * even on write-only handles), O_APPEND is then the kernel's business
	 * (do_write ignores it), and mtime comes back through setattr. */
	fs->writeback = fs->cfg->writeback_cache && !fs->shared &&
			(conn->capable & FUSE_CAP_WRITEBACK_CACHE);
	if (fs->writeback)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* libfuse clamps max_write to its buffer size (1 MiB by default) and
	 * derives the kernel's max_pages (256) from it. */
	conn->max_write = MAX_WRITE;
	/* The kernel keeps the smaller of this and the mount's read-ahead,
	 * which main.c raised to read_ahead_kb before this reply. */
	conn->max_readahead = fs->cfg->read_ahead_kb > MAX_WRITE / 1024 ?
			      fs->cfg->read_ahead_kb * 1024 : MAX_WRITE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static void efs_destroy(void *userdata)
{
	efs_table_destroy(userdata);
}

/* ---- 3. names ---- */

static int do_lookup(fuse_req_t req, fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct efs_data *fs = efs_data(req);
	struct efs_inode *dir = efs_inode(req, parent), *inode;
	struct stat st;
	int dirfd, fd, saverr;
	bool fresh;

	memset(e, 0, sizeof(*e));
	fill_entry_timeouts(fs, e);
	if (is_meta_name(parent, name))
		return ENOENT;

	dirfd = efs_inode_fd(fs, dir);
	if (dirfd < 0)
		return -dirfd;
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	saverr = errno;
	efs_inode_fd_put(fs, dir);
	if (fd == -1)
		return saverr;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
		saverr = errno;
		close(fd);
		return saverr;
	}
	/* For a new inode: nothing of ours can be changing the file yet, so
	 * the stat just taken is its attributes. */
	e->attr = st;
	efs_plain_stat(fs, NULL, NULL, fd, &e->attr);
	inode = efs_inode_find_or_add(fs, &st, &fd, &fresh);
	saverr = errno;
	if (fd >= 0)
		close(fd);              /* the inode has a descriptor already */
	if (!inode)
		return saverr;
	if (!fresh) {
		/* Known already: its size is read under its content lock. */
		saverr = stat_inode(fs, inode, &e->attr);
		if (saverr) {
			efs_inode_unref(fs, inode, 1);
			return saverr;
		}
	}
	e->ino = efs_inode_id(fs, inode);
	return 0;
}

static void efs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = do_lookup(req, parent, name, &e);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void efs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	efs_inode_unref(efs_data(req), efs_inode(req, ino), nlookup);
	fuse_reply_none(req);
}

static void efs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		efs_inode_unref(efs_data(req), efs_inode(req, forgets[i].ino),
				forgets[i].nlookup);
	fuse_reply_none(req);
}

static void efs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int err;

	(void)fi;
	err = stat_inode(efs_data(req), efs_inode(req, ino), &st);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, efs_data(req)->attr_timeout);
}

/* Empty the file under a fresh DEK and file id (O_TRUNC, truncate to 0):
 * a new key starts a new nonce budget, and the old key opens nothing new.
 * Caller holds ci_lock exclusively; the state is loaded. */
static int rekey(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	uint8_t *dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	struct ekmfs_header h;
	char rel[PATH_MAX];
	int ret = -ENOMEM;

	if (!dek)
		return -ENOMEM;
	ekmfs_clearerr();
	ret = efs_route_path(fs, inode, fd, rel, sizeof(rel));
	if (ret == 0)
		ret = ekmfs_keys_new_header(fs->keys, rel, &h, dek);
	if (ret == 0)
		ret = ekmfs_content_rekey(inode->st->ci_content, &h, dek);
	if (ret < 0)
		ekmfs_log(EKMFS_LOG_ERR, "%s: emptying it under a new key: %s", rel,
			  *ekmfs_lasterr() ? ekmfs_lasterr() : strerror(-ret));
	else
		inode->ci_format = EKMFS_FORMAT_V2;
	ekmfs_wipe(&h, sizeof(h));
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
	return ret;
}

/* A version 1 file is converted before it is changed (docs/FORMAT.md,
 * "Upgrading from version 1"). Caller holds ci_lock exclusively. */
static int writable_state(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	char rel[PATH_MAX];
	int ret;

	if (ekmfs_content_version(inode->st->ci_content) == EKMFS_FORMAT_V2)
		return 0;
	efs_relpath(fs, fd, rel, sizeof(rel));
	ekmfs_clearerr();
	ret = ekmfs_upgrade_file(fs->keys, fd, inode->st->ci_content);
	if (ret < 0) {
		ekmfs_log(EKMFS_LOG_ERR, "%s: converting it to format 2 before the change: %s",
			  rel, *ekmfs_lasterr() ? ekmfs_lasterr() : strerror(-ret));
		return ret == -ENOKEY ? ret : -EIO;
	}
	inode->ci_format = EKMFS_FORMAT_V2;
	ekmfs_log(EKMFS_LOG_INFO, "%s: converted to format 2", rel);
	return 0;
}

/* Set the plaintext size; without a handle the backing file is opened here
 * and the content state loaded only for the duration of the call. The
 * caller holds a use of the inode's state. */
static int do_truncate(struct efs_data *fs, struct efs_inode *inode,
		       struct fuse_file_info *fi, off_t size)
{
	struct efs_istate *ist = inode->st;
	uint64_t bad = UINT64_MAX;
	int fd, ret, err = 0;

	if (!S_ISREG(inode->type))
		return S_ISDIR(inode->type) ? EISDIR : EINVAL;
	if (size < 0)
		return EINVAL;
	if (fi) {
		fd = efs_file(fi)->fd;
	} else {
		fd = efs_inode_open(fs, inode, O_RDWR);
		if (fd < 0)
			return -fd;
	}

	pthread_rwlock_wrlock(&ist->ci_lock);
	ret = efs_crypto_load(fs, inode, fd, size > 0);
	if (ret == -ENODATA) {
		ret = 0;         /* empty without a header, and staying empty */
	} else if (ret == 0 && size == 0) {
		ret = rekey(fs, inode, fd);
		efs_cache_stamp(inode, fd);
	} else if (ret == 0) {
		ret = writable_state(fs, inode, fd);
		if (ret == 0) {
			ret = ekmfs_content_truncate(ist->ci_content, (uint64_t)size, &bad);
			err = content_errno(fs, inode, fd, ret, bad);
			ret = 0;
		}
		efs_cache_stamp(inode, fd);
	}
	if (ret < 0)
		err = -ret;
	efs_crypto_drop_if_unused(fs, inode);
	pthread_rwlock_unlock(&ist->ci_lock);

	if (!fi)
		close(fd);
	return err;
}

/* The work of setattr on pathfd, an O_PATH descriptor of the inode; the
 * caller holds a use of its state. */
static int do_setattr(struct efs_data *fs, struct efs_inode *inode, int pathfd,
		      struct stat *attr, int valid, struct fuse_file_info *fi)
{
	char proc[64];
	bool changed = valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
				FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE);
	bool times_changed;
	int res, err;

	proc_path(pathfd, proc, sizeof(proc));
	if (valid & FUSE_SET_ATTR_MODE) {
		if (fi)
			res = ekmfs_io->fchmod(efs_file(fi)->fd, attr->st_mode & 07777);
		else
			res = ekmfs_io->fchmodat(AT_FDCWD, proc, attr->st_mode & 07777, 0);
		if (res == -1)
			return errno;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (ekmfs_io->fchownat(pathfd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
			return errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		err = do_truncate(fs, inode, fi, attr->st_size);
		if (err)
			return err;
		if (efs_wire_kill_suidgid())
			efs_drop_suidgid(pathfd);
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = {
			{ .tv_sec = 0, .tv_nsec = UTIME_OMIT },
			{ .tv_sec = 0, .tv_nsec = UTIME_OMIT },
		};

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		res = efs_mtime_set(inode, fi ? efs_file(fi)->fd : -1, pathfd, tv,
				    fs->writeback && S_ISREG(inode->type),
				    &times_changed);
		if (res == -1)
			return errno;
		changed |= times_changed;
	}
	/* A change made through the mount: the kernel's cache stays valid.
	 * (Nothing changed: the stamp stays as it was, so a change made behind
	 * the mount since is still noticed at the next open.) */
	if (changed && S_ISREG(inode->type))
		efs_cache_stamp(inode, pathfd);
	return stat_inode(fs, inode, attr);
}

static void efs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int valid, struct fuse_file_info *fi)
{
	struct efs_data *fs = efs_data(req);
	struct efs_inode *inode = efs_inode(req, ino);
	bool writes = S_ISREG(inode->type) &&
		      (valid & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME));
	struct efs_fence fence;
	int pathfd, err = ENOMEM;

	pathfd = efs_inode_fd(fs, inode);
	if (pathfd < 0)
		return (void)fuse_reply_err(req, -pathfd);
	if (!efs_istate_get(fs, inode))
		goto out;
	if (writes)
		efs_fence_enter(fs, inode, fi ? efs_file(fi)->fd : -1, &fence);
	err = do_setattr(fs, inode, pathfd, attr, valid, fi);
	if (writes)
		efs_fence_leave(fs, &fence);
	efs_istate_put(fs, inode);
out:
	efs_inode_fd_put(fs, inode);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, attr, fs->attr_timeout);
}

static void efs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct efs_data *fs = efs_data(req);
	struct efs_inode *inode = efs_inode(req, ino);
	char buf[PATH_MAX + 1];
	ssize_t res;
	int fd = efs_inode_fd(fs, inode), saverr;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	res = readlinkat(fd, "", buf, sizeof(buf));
	saverr = errno;
	efs_inode_fd_put(fs, inode);
	if (res == -1)
		return (void)fuse_reply_err(req, saverr);
	if (res == (ssize_t)sizeof(buf))
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[res] = '\0';
	fuse_reply_readlink(req, buf);
}

/* mknod, mkdir and symlink: each creates its kind of node (make_*), then
 * node_created hands it to the caller and looks it up, removing it again if
 * either fails. Three creators rather than one with a mode switch: symlink's
 * target is the only argument that one kind needs, and a shared creator
 * would pass it as NULL for the others. */
static int node_created(fuse_req_t req, fuse_ino_t parent, int dirfd, const char *name,
			mode_t mode, struct fuse_entry_param *e)
{
	int err;

	err = give_to_caller(req, dirfd, name, -1, mode);
	if (!err)
		err = do_lookup(req, parent, name, e);
	if (err)
		(void)ekmfs_io->unlinkat(dirfd, name, S_ISDIR(mode) ? AT_REMOVEDIR : 0);
	return err;
}

/* The descriptor of directory parent for a make_*(), pinned; -errno. */
static int parent_fd(fuse_req_t req, fuse_ino_t parent)
{
	return efs_inode_fd(efs_data(req), efs_inode(req, parent));
}

static void parent_fd_put(fuse_req_t req, fuse_ino_t parent)
{
	efs_inode_fd_put(efs_data(req), efs_inode(req, parent));
}

static int make_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev, struct fuse_entry_param *e)
{
	int dirfd, err;

	if (is_meta_name(parent, name))
		return EPERM;
	dirfd = parent_fd(req, parent);
	if (dirfd < 0)
		return -dirfd;
	if (ekmfs_io->mknodat(dirfd, name, mode, rdev) == -1)
		err = errno;
	else
		err = node_created(req, parent, dirfd, name, mode, e);
	parent_fd_put(req, parent);
	return err;
}

static int make_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_entry_param *e)
{
	int dirfd, err;

	if (is_meta_name(parent, name))
		return EPERM;
	dirfd = parent_fd(req, parent);
	if (dirfd < 0)
		return -dirfd;
	if (ekmfs_io->mkdirat(dirfd, name, mode & 07777) == -1)
		err = errno;
	else
		err = node_created(req, parent, dirfd, name, S_IFDIR | mode, e);
	parent_fd_put(req, parent);
	return err;
}

static int make_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name, struct fuse_entry_param *e)
{
	int dirfd, err;

	if (is_meta_name(parent, name))
		return EPERM;
	dirfd = parent_fd(req, parent);
	if (dirfd < 0)
		return -dirfd;
	if (ekmfs_io->symlinkat(link, dirfd, name) == -1)
		err = errno;
	else
		err = node_created(req, parent, dirfd, name, S_IFLNK | 0777, e);
	parent_fd_put(req, parent);
	return err;
}

static void reply_entry_or_err(fuse_req_t req, int err, struct fuse_entry_param *e)
{
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, e);
}

static void efs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	struct fuse_entry_param e;

	/* A regular file made by mknod is 0 bytes: an empty file whose
	 * header is written by its first writer. */
	reply_entry_or_err(req, make_mknod(req, parent, name, mode, rdev, &e), &e);
}

static void efs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuse_entry_param e;

	reply_entry_or_err(req, make_mkdir(req, parent, name, mode, &e), &e);
}

static void efs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	struct fuse_entry_param e;

	reply_entry_or_err(req, make_symlink(req, link, parent, name, &e), &e);
}

static int do_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		   const char *name, struct fuse_entry_param *e)
{
	struct efs_data *fs = efs_data(req);
	struct efs_inode *inode = efs_inode(req, ino);
	char proc[64];
	int fd, dirfd, err = 0;

	memset(e, 0, sizeof(*e));
	fill_entry_timeouts(fs, e);
	if (is_meta_name(parent, name))
		return EPERM;
	fd = efs_inode_fd(fs, inode);
	if (fd < 0)
		return -fd;
	dirfd = parent_fd(req, parent);
	if (dirfd < 0) {
		efs_inode_fd_put(fs, inode);
		return -dirfd;
	}
	proc_path(fd, proc, sizeof(proc));
	if (ekmfs_io->linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == -1)
		err = errno;
	parent_fd_put(req, parent);
	efs_inode_fd_put(fs, inode);
	if (err)
		return err;
	err = stat_inode(fs, inode, &e->attr);
	if (err)
		return err;
	efs_inode_ref(fs, inode);
	e->ino = efs_inode_id(fs, inode);
	return 0;
}

static void efs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		     const char *name)
{
	struct fuse_entry_param e;
	int err = do_link(req, ino, parent, name, &e);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/*
 * name in dirfd is about to go (unlink, rmdir, rename over it). If that is
 * its object's last name and the kernel holds its inode, the inode keeps a
 * descriptor of it until the kernel forgets it: afterwards nothing else
 * reaches a deleted object (its handle no longer opens on most file
 * systems), and the kernel may still use it (a process's working
 * directory, the time flush the writeback cache sends after an unlink).
 * While the descriptor cache has never evicted, every inode has its
 * descriptor (an eviction keeps one whose object has no name left), so
 * nothing needs doing and an unlink costs no extra stat.
 */
static void keep_if_last_name(struct efs_data *fs, int dirfd, const char *name)
{
	struct efs_inode *victim;
	struct stat st;

	if (!fs->handles || !efs_fdcache_evicted(fs) ||
	    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    (!S_ISDIR(st.st_mode) && st.st_nlink > 1))
		return;
	victim = efs_inode_find(fs, st.st_dev, st.st_ino);
	if (!victim)
		return;
	(void)efs_fdcache_keep(fs, victim);
	efs_inode_unref(fs, victim, 1);
}

/* unlink and rmdir */
static int do_remove(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct efs_data *fs = efs_data(req);
	int dirfd, err = 0;

	if (is_meta_name(parent, name))
		return ENOENT;
	dirfd = parent_fd(req, parent);
	if (dirfd < 0)
		return -dirfd;
	keep_if_last_name(fs, dirfd, name);
	if (ekmfs_io->unlinkat(dirfd, name, flags) == -1)
		err = errno;
	parent_fd_put(req, parent);
	return err;
}

static void efs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, do_remove(req, parent, name, 0));
}

static void efs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, do_remove(req, parent, name, AT_REMOVEDIR));
}

static int do_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		     fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct efs_data *fs = efs_data(req);
	int olddirfd, newdirfd, err = 0;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return EINVAL;
	if (is_meta_name(parent, name))
		return ENOENT;
	if (is_meta_name(newparent, newname))
		return EPERM;
	olddirfd = parent_fd(req, parent);
	if (olddirfd < 0)
		return -olddirfd;
	newdirfd = parent_fd(req, newparent);
	if (newdirfd < 0) {
		parent_fd_put(req, parent);
		return -newdirfd;
	}
	/* A rename over an existing name removes that name's object. */
	if (!(flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)))
		keep_if_last_name(fs, newdirfd, newname);
	if (ekmfs_io->renameat2(olddirfd, name, newdirfd, newname, flags) == -1)
		err = errno;
	parent_fd_put(req, newparent);
	parent_fd_put(req, parent);
	return err;
}

static void efs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	fuse_reply_err(req, do_rename(req, parent, name, newparent, newname, flags));
}

/* ---- 4. files ---- */

/* Flags of the user's open that may reach the backing open: the access mode
 * is always O_RDWR (read-modify-write needs reads), and O_APPEND, O_TRUNC,
 * O_CREAT and O_EXCL are ours to implement. */
static int backing_flags(int user_flags)
{
	return O_RDWR | O_CLOEXEC | (user_flags & (O_SYNC | O_DSYNC | O_NOATIME));
}

/* A handle for fd; it holds a use of the inode's state until discarded. */
static struct efs_file *file_new(struct efs_data *fs, struct efs_inode *inode, int fd,
				 int user_flags, bool fd_rw)
{
	struct efs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	if (!efs_istate_get(fs, inode)) {
		free(f);
		return NULL;
	}
	f->fd = fd;
	f->inode = inode;
	f->append = (user_flags & O_APPEND) != 0;
	f->writable = fd_rw;
	pthread_mutex_lock(&fs->files_mutex);
	f->next = fs->files;
	if (fs->files)
		fs->files->prev = f;
	fs->files = f;
	pthread_mutex_unlock(&fs->files_mutex);
	efs_metrics_open_files(1);
	return f;
}

/* Forget a handle struct (its fd is the caller's business); NULL is fine. */
static void file_discard(struct efs_data *fs, struct efs_file *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&fs->files_mutex);
	if (f->prev)
		f->prev->next = f->next;
	else
		fs->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&fs->files_mutex);
	efs_istate_put(fs, f->inode);
	free(f);
	efs_metrics_open_files(-1);
}

/* The end of a handle: on release, or when the kernel never got it. */
static void file_close(struct efs_data *fs, struct efs_file *f)
{
	struct efs_inode *inode = f->inode;
	struct efs_istate *ist = inode->st;

	pthread_rwlock_wrlock(&ist->ci_lock);
	if (ist->ci_nopen)
		ist->ci_nopen--;
	efs_crypto_drop_if_unused(fs, inode);
	pthread_rwlock_unlock(&ist->ci_lock);
	close(f->fd);
	file_discard(fs, f);
	efs_inode_unref(fs, inode, 1);
}

static void reply_open_settings(struct fuse_file_info *fi, struct efs_file *f)
{
	fi->fh = (uintptr_t)f;
	/* Page cache on so that mmap works; do_open lets the kernel keep it
	 * when the file was not changed behind the mount (keep_cache). */
	fi->direct_io = 0;
	fi->keep_cache = 0;
}

static int do_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, struct fuse_file_info *fi,
		     struct fuse_entry_param *e)
{
	struct efs_data *fs = efs_data(req);
	struct efs_inode *dir = efs_inode(req, parent), *inode = NULL;
	struct efs_istate *ist;
	struct efs_file *f = NULL;
	struct ekmfs_content *c = NULL;
	struct ekmfs_content_env env;
	struct ekmfs_header h;
	uint8_t *dek = NULL;
	char rel[PATH_MAX];
	uint64_t gen = __atomic_load_n(&fs->lock_gen, __ATOMIC_SEQ_CST);
	int dirfd, fd, ret, err, lease = -1;

	memset(&h, 0, sizeof(h));
	if (is_meta_name(parent, name))
		return EPERM;
	dirfd = efs_inode_fd(fs, dir);
	if (dirfd < 0)
		return -dirfd;
	fd = ekmfs_io->openat(dirfd, name, backing_flags(fi->flags) | O_CREAT | O_EXCL | O_NOFOLLOW,
		    mode & 07777);
	if (fd == -1) {
		err = errno;
		efs_inode_fd_put(fs, dir);
		return err;
	}

	err = give_to_caller(req, dirfd, name, fd, mode);
	if (err)
		goto out_unlink;
	lease = efs_shared_lease_fd(fs, fd);    /* shared mode: before the header */
	if (lease < -1) {
		err = -lease;
		goto out_unlink;
	}

	err = ENOMEM;
	dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!dek)
		goto out_unlink;
	efs_relpath(fs, fd, rel, sizeof(rel));
	ekmfs_clearerr();
	ret = ekmfs_keys_new_header(fs->keys, rel, &h, dek);
	efs_content_env(fs, NULL, &env);
	if (ret == 0) {
		struct efs_fence fence;

		efs_fence_enter(fs, NULL, fd, &fence);
		ret = ekmfs_content_create(&c, fd, &h, dek, &env);
		efs_fence_leave(fs, &fence);
	}
	if (ret < 0) {
		ekmfs_log(EKMFS_LOG_ERR, "%s: cannot create header: %s", rel,
			  *ekmfs_lasterr() ? ekmfs_lasterr() : strerror(-ret));
		err = -ret;
		goto out_unlink;
	}

	err = do_lookup(req, parent, name, e);
	if (err)
		goto out_unlink;
	inode = efs_inode_get(fs, e->ino);

	err = ENOMEM;
	f = file_new(fs, inode, fd, fi->flags, true);
	if (!f)
		goto out_unlink;
	ist = inode->st;
	pthread_rwlock_wrlock(&ist->ci_lock);
	if (!ist->ci_content) {
		ist->ci_content = c;
		inode->ci_format = EKMFS_FORMAT_V2;
		c = NULL;
		efs_shared_lease_adopt(ist, lease);
		lease = -1;
	}
	/* A lock during the create: the next use unwraps again (and fails). */
	if (__atomic_load_n(&fs->lock_gen, __ATOMIC_SEQ_CST) != gen)
		efs_crypto_close(fs, inode);
	ist->ci_nopen++;
	efs_cache_stamp(inode, fd);
	pthread_rwlock_unlock(&ist->ci_lock);
	efs_inode_ref(fs, inode);      /* the handle's reference */
	reply_open_settings(fi, f);
	err = 0;
	goto out;

out_unlink:
	/* Nothing half-made stays behind: no headerless file the user did
	 * not ask for. */
	(void)ekmfs_io->unlinkat(dirfd, name, 0);
	close(fd);
	file_discard(fs, f);
	if (inode)
		efs_inode_unref(fs, inode, 1);
out:
	efs_inode_fd_put(fs, dir);
	ekmfs_content_free(c);
	if (lease >= 0)
		close(lease);
	ekmfs_wipe(&h, sizeof(h));
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
	return err;
}

static void efs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int err = do_create(req, parent, name, mode, fi, &e);

	if (err) {
		fuse_reply_err(req, err);
	} else if (fuse_reply_create(req, &e, fi) != 0) {
		/* Interrupted: the kernel has neither the entry nor the handle. */
		struct efs_data *fs = efs_data(req);
		struct efs_inode *inode = efs_file(fi)->inode;

		file_close(fs, efs_file(fi));
		efs_inode_unref(fs, inode, 1);
	}
}

static int do_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct efs_data *fs = efs_data(req);
	struct efs_inode *inode = efs_inode(req, ino);
	bool want_write = (fi->flags & O_ACCMODE) != O_RDONLY;
	bool fd_rw = true;
	struct efs_fence fence;
	struct efs_istate *ist;
	struct efs_file *f;
	int fd, ret;
	bool keep;

	if (!S_ISREG(inode->type))
		return S_ISDIR(inode->type) ? EISDIR : ENXIO;
	fd = efs_inode_open(fs, inode, backing_flags(fi->flags));
	if (fd < 0 && !want_write && (fd == -EACCES || fd == -EROFS || fd == -EPERM)) {
		fd = efs_inode_open(fs, inode, O_RDONLY);
		fd_rw = false;
	}
	if (fd < 0)
		return -fd;
	f = file_new(fs, inode, fd, fi->flags, fd_rw);
	if (!f) {
		close(fd);
		return ENOMEM;
	}
	ist = inode->st;

	/* Opening for writing may write a first header, or a new one (O_TRUNC). */
	if (want_write)
		efs_fence_enter(fs, inode, fd, &fence);
	pthread_rwlock_wrlock(&ist->ci_lock);
	ret = efs_crypto_load(fs, inode, fd, want_write && fd_rw);
	if (ret == -ENODATA)
		ret = 0;         /* empty file, read-only open: nothing to load */
	/* Decided before O_TRUNC: a truncate through the mount reaches the
	 * page cache, a change behind the mount must empty it. */
	keep = ret == 0 && efs_cache_still_valid(inode, fd);
	if (ret == 0 && (fi->flags & O_TRUNC) && ist->ci_content && fd_rw) {
		ret = rekey(fs, inode, fd);
		if (ret == 0 && efs_wire_kill_suidgid())
			efs_drop_suidgid(fd);
		efs_cache_stamp(inode, fd);
	}
	if (ret == 0)
		ist->ci_nopen++;
	else
		efs_crypto_drop_if_unused(fs, inode);
	pthread_rwlock_unlock(&ist->ci_lock);
	if (want_write)
		efs_fence_leave(fs, &fence);

	if (ret < 0) {
		close(fd);
		file_discard(fs, f);
		return -ret;
	}
	efs_inode_ref(fs, inode);
	reply_open_settings(fi, f);
	fi->keep_cache = keep && !fs->shared;  /* shared: another host may have written */
	return 0;
}

static void efs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int err = do_open(req, ino, fi);

	if (err)
		fuse_reply_err(req, err);
	else if (fuse_reply_open(req, fi) != 0)
		file_close(efs_data(req), efs_file(fi));   /* interrupted */
}

/* Read under the shared lock; a file opened while still empty (no header)
 * loads its state under the exclusive lock if a writer has given it one. */
static int do_read(fuse_req_t req, size_t size, off_t off,
		   struct fuse_file_info *fi, void **out, size_t *outlen)
{
	struct efs_data *fs = efs_data(req);
	struct efs_file *f = efs_file(fi);
	struct efs_inode *inode = f->inode;
	uint64_t bad = UINT64_MAX;
	struct efs_range range;
	bool shared = true;
	ssize_t n;
	void *buf;
	int ret, err;

	*out = NULL;
	*outlen = 0;
	if (off < 0)
		return EINVAL;
	pthread_rwlock_rdlock(&inode->st->ci_lock);
	if (!inode->st->ci_content) {
		pthread_rwlock_unlock(&inode->st->ci_lock);
		pthread_rwlock_wrlock(&inode->st->ci_lock);
		shared = false;
		ret = efs_crypto_load(fs, inode, f->fd, false);
		if (ret < 0) {
			pthread_rwlock_unlock(&inode->st->ci_lock);
			return ret == -ENODATA ? 0 : -ret;
		}
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		pthread_rwlock_unlock(&inode->st->ci_lock);
		return ENOMEM;
	}
	/* Under the shared lock, in-place writers may be at work: never read
	 * a block while one is being rewritten. */
	if (shared && size)
		efs_range_lock(inode, &range, (uint64_t)off / EKMFS_BLOCK_SIZE,
			       ((uint64_t)off + size - 1) / EKMFS_BLOCK_SIZE, false);
	n = ekmfs_content_read(inode->st->ci_content, buf, size, (uint64_t)off, &bad);
	err = content_errno(fs, inode, f->fd, n, bad);
	if (shared && size)
		efs_range_unlock(inode, &range);
	pthread_rwlock_unlock(&inode->st->ci_lock);
	if (err) {
		/* Blocks before the bad one were opened into buf. */
		ekmfs_wipe_bulk(buf, size);
		free(buf);
		return err;
	}
	*out = buf;
	*outlen = (size_t)n;
	return 0;
}

static void efs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	void *buf;
	size_t len;
	int err;

	(void)ino;
	err = do_read(req, size, off, fi, &buf, &len);
	efs_metrics_read(err, len);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, len);
	if (buf) {
		/* All of it: do_read allocated size bytes, a read that ends
		 * at end of file fills only len. */
		ekmfs_wipe_bulk(buf, size);
		free(buf);
	}
}

/* A write that changes no state of the file (no size, hole or salt change,
 * ekmfs_content_write_in_place_ok): under the shared lock, with its blocks
 * locked exclusively, so writers of different blocks run at once. false
 * when it must take the exclusive path; true when done (*err: 0 or an
 * errno). */
static bool write_in_place(struct efs_data *fs, struct efs_file *f, const char *buf,
			   size_t size, uint64_t pos, size_t *written, int *err)
{
	struct efs_inode *inode = f->inode;
	struct efs_range range;
	uint64_t bad = UINT64_MAX;
	bool done = false;
	ssize_t n;

	if (size == 0)
		return false;
	pthread_rwlock_rdlock(&inode->st->ci_lock);
	if (inode->st->ci_content && ekmfs_content_write_in_place_ok(inode->st->ci_content, pos, size)) {
		efs_range_lock(inode, &range, pos / EKMFS_BLOCK_SIZE,
			       (pos + size - 1) / EKMFS_BLOCK_SIZE, true);
		n = ekmfs_content_write(inode->st->ci_content, buf, size, pos, &bad);
		efs_range_unlock(inode, &range);
		done = n != -EAGAIN;   /* -EAGAIN: its salt ran out meanwhile */
		if (done) {
			*err = content_errno(fs, inode, f->fd, n, bad);
			if (!*err)
				*written = (size_t)n;
			if (!fs->writeback)    /* else efs_mtime_restore stamps */
				efs_cache_stamp(inode, f->fd);
		}
	}
	pthread_rwlock_unlock(&inode->st->ci_lock);
	return done;
}

static int do_write(fuse_req_t req, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi, size_t *written)
{
	struct efs_data *fs = efs_data(req);
	struct efs_file *f = efs_file(fi);
	struct efs_inode *inode = f->inode;
	uint64_t bad = UINT64_MAX, pos = (uint64_t)off;
	ssize_t n = 0;
	int ret, err = 0;
	bool append;

	*written = 0;
	if (off < 0)
		return EINVAL;
	if (!f->writable)
		return EBADF;
	/* Under the writeback cache the kernel resolves O_APPEND itself. */
	append = f->append && !fs->writeback;
	if (!append && write_in_place(fs, f, buf, size, pos, written, &err))
		return err;
	pthread_rwlock_wrlock(&inode->st->ci_lock);
	ret = efs_crypto_load(fs, inode, f->fd, true);
	if (ret == 0)
		ret = writable_state(fs, inode, f->fd);
	if (ret < 0) {
		err = -ret;
		goto out;
	}
	/* O_APPEND: the end is taken under the exclusive lock, so two
	 * appenders never write to the same place. */
	if (append)
		pos = ekmfs_content_size(inode->st->ci_content);
	n = ekmfs_content_write(inode->st->ci_content, buf, size, pos, &bad);
	err = content_errno(fs, inode, f->fd, n, bad);
	if (!err) {
		*written = (size_t)n;
		/* A write may have replaced a damaged block: its next failure
		 * is news again. */
		__atomic_store_n(&inode->st->ci_bad_logged, 0, __ATOMIC_RELAXED);
	}
	if (!fs->writeback)            /* else efs_mtime_restore stamps */
		efs_cache_stamp(inode, f->fd);
out:
	pthread_rwlock_unlock(&inode->st->ci_lock);
	return err;
}

static void efs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		      off_t off, struct fuse_file_info *fi)
{
	struct efs_file *f = efs_file(fi);
	struct timespec mtime = { .tv_nsec = UTIME_OMIT };
	bool writeback = efs_data(req)->writeback;
	struct efs_fence fence;
	struct stat st;
	size_t written;
	int err;

	(void)ino;
	/* The mtime to put back: the kernel's, once it has sent one, else the
	 * one the backing file has before this write. */
	efs_fence_enter(efs_data(req), f->inode, f->fd, &fence);
	if (writeback && !efs_mtime_known(f->inode) && fstat(f->fd, &st) == 0)
		mtime = st.st_mtim;
	err = do_write(req, buf, size, off, fi, &written);
	if (!err && efs_wire_kill_suidgid())
		efs_drop_suidgid(f->fd);
	if (writeback)
		efs_mtime_restore(f->inode, f->fd, &mtime);
	efs_fence_leave(efs_data(req), &fence);
	efs_metrics_write(err, written);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, written);
}

/* No flush handler. Every close(2) would cost a FLUSH round trip, and the
 * daemon has nothing to do then: writes are synchronous here, the kernel
 * writes its dirty pages back and reports their errors before it would
 * send FLUSH, and locks are the kernel's (no lock handlers), so FLUSH's
 * lock owner is not needed. libfuse answers the first FLUSH with ENOSYS
 * and the kernel sends no more. */
static void efs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct efs_fence fence;

	(void)ino;
	/* The last close folds a journal in, writes records, trims. */
	efs_fence_enter(efs_data(req), efs_file(fi)->inode, efs_file(fi)->fd, &fence);
	file_close(efs_data(req), efs_file(fi));
	efs_fence_leave(efs_data(req), &fence);
	fuse_reply_err(req, 0);
}

/* A durability point of the file: its journal and blocks, then the state
 * that describes them becomes the one a power cut falls back to. */
static int do_fsync(struct efs_data *fs, struct efs_file *f, int datasync)
{
	struct efs_inode *inode = f->inode;
	int ret;

	pthread_rwlock_wrlock(&inode->st->ci_lock);
	if (inode->st->ci_content)
		ret = ekmfs_content_sync(inode->st->ci_content, datasync);
	else
		ret = (datasync ? ekmfs_io->fdatasync(f->fd) : ekmfs_io->fsync(f->fd)) < 0 ? -errno
											: 0;
	if (ret < 0 && *ekmfs_lasterr()) {
		char rel[PATH_MAX];

		efs_relpath(fs, f->fd, rel, sizeof(rel));
		ekmfs_log(EKMFS_LOG_ERR, "%s: fsync: %s", rel, ekmfs_lasterr());
	}
	pthread_rwlock_unlock(&inode->st->ci_lock);
	return -ret;
}

static void efs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	struct efs_fence fence;
	int err;

	(void)ino;
	ekmfs_clearerr();
	efs_fence_enter(efs_data(req), efs_file(fi)->inode, efs_file(fi)->fd, &fence);
	err = do_fsync(efs_data(req), efs_file(fi), datasync);
	efs_fence_leave(efs_data(req), &fence);
	fuse_reply_err(req, err);
}

/*
 * fallocate: mode 0 grows the file (a hole: ekmfs stores no zeros, so the
 * space is not reserved); KEEP_SIZE alone has nothing to do; PUNCH_HOLE
 * (always with KEEP_SIZE) and ZERO_RANGE zero a range, whole blocks
 * becoming holes; ZERO_RANGE without KEEP_SIZE grows the file to its end.
 */
static int do_fallocate(fuse_req_t req, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	struct efs_data *fs = efs_data(req);
	struct efs_file *f = efs_file(fi);
	struct efs_inode *inode = f->inode;
	uint64_t bad = UINT64_MAX, end;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	int ret, err = 0;

	if (off < 0 || len <= 0)
		return EINVAL;
	if ((uint64_t)off > (uint64_t)INT64_MAX - (uint64_t)len)
		return EFBIG;
	switch (mode & ~FALLOC_FL_KEEP_SIZE) {
	case 0:
		if (keep)
			return 0;        /* blocks are allocated when written */
		break;
	case FALLOC_FL_PUNCH_HOLE:
		if (!keep)
			return EOPNOTSUPP;   /* Linux: punching needs KEEP_SIZE */
		break;
	case FALLOC_FL_ZERO_RANGE:
		break;
	default:
		return EOPNOTSUPP;
	}
	if (!f->writable)
		return EBADF;
	end = (uint64_t)off + (uint64_t)len;

	pthread_rwlock_wrlock(&inode->st->ci_lock);
	ret = efs_crypto_load(fs, inode, f->fd, true);
	if (ret == 0)
		ret = writable_state(fs, inode, f->fd);
	if (ret < 0) {
		err = -ret;
		goto out;
	}
	if ((mode & ~FALLOC_FL_KEEP_SIZE) == 0) {
		if (end > ekmfs_content_size(inode->st->ci_content))
			ret = ekmfs_content_truncate(inode->st->ci_content, end, &bad);
	} else {
		ret = ekmfs_content_punch(inode->st->ci_content, (uint64_t)off, (uint64_t)len, !keep,
					  &bad);
	}
	err = content_errno(fs, inode, f->fd, ret, bad);
	efs_cache_stamp(inode, f->fd);
out:
	pthread_rwlock_unlock(&inode->st->ci_lock);
	return err;
}

static void efs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			  off_t len, struct fuse_file_info *fi)
{
	struct efs_fence fence;
	int err;

	efs_fence_enter(efs_data(req), efs_file(fi)->inode, efs_file(fi)->fd, &fence);
	err = do_fallocate(req, mode, off, len, fi);
	efs_fence_leave(efs_data(req), &fence);

	(void)ino;
	/* Under FUSE_HANDLE_KILLPRIV_V2 (wire.c) the kernel leaves the
	 * set-user/group-ID bits of a modified file to us, and fallocate
	 * carries no kill flag: clear them as for a write by a caller without
	 * CAP_FSETID, which for us is anyone but root. */
	if (!err && fuse_req_ctx(req)->uid != 0)
		efs_drop_suidgid(efs_file(fi)->fd);
	fuse_reply_err(req, err);
}

/* ---- 5. directories ---- */

struct efs_dir {
	DIR *dp;
	struct dirent *entry;   /* read but not yet returned */
	off_t offset;
};

static struct efs_dir *efs_dir(const struct fuse_file_info *fi)
{
	return (struct efs_dir *)(uintptr_t)fi->fh;
}

static int do_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct efs_dir *d;
	int fd, saverr;

	d = calloc(1, sizeof(*d));
	if (!d)
		return ENOMEM;
	fd = efs_inode_open(efs_data(req), efs_inode(req, ino), O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		errno = -fd;
		fd = -1;
		goto out_err;
	}
	d->dp = fdopendir(fd);
	if (!d->dp)
		goto out_err;
	fi->fh = (uintptr_t)d;
	return 0;

out_err:
	saverr = errno;
	if (fd != -1)
		close(fd);
	free(d);
	return saverr;
}

static void efs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int err = do_opendir(req, ino, fi);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_open(req, fi);
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi, bool plus)
{
	struct efs_dir *d = efs_dir(fi);
	char *buf, *p;
	size_t rem = size;
	int err = 0;

	buf = calloc(1, size ? size : 1);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	p = buf;
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		struct fuse_entry_param e;
		fuse_ino_t entry_ino = 0;
		const char *name;
		size_t entsize;
		off_t nextoff;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;
				break;
			}
		}
		nextoff = d->entry->d_off;
		name = d->entry->d_name;
		if (is_meta_name(ino, name))
			goto next;
		if (plus) {
			if (is_dot_or_dotdot(name)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->entry->d_ino;
				e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			} else {
				err = do_lookup(req, ino, name, &e);
				if (err == ENOENT) {   /* removed meanwhile */
					err = 0;
					goto next;
				}
				if (err)
					break;
				entry_ino = e.ino;
			}
			entsize = fuse_add_direntry_plus(req, p, rem, name, &e, nextoff);
		} else {
			struct stat st = {
				.st_ino = d->entry->d_ino,
				.st_mode = (mode_t)d->entry->d_type << 12,
			};

			entsize = fuse_add_direntry(req, p, rem, name, &st, nextoff);
		}
		if (entsize > rem) {
			if (entry_ino)
				efs_inode_unref(efs_data(req), efs_inode(req, entry_ino), 1);
			break;
		}
		p += entsize;
		rem -= entsize;
next:
		d->entry = NULL;
		d->offset = nextoff;
	}
	/* An error can only be reported before any entry was stored; after
	 * that, lookup counts of returned entries would be wrong. */
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void efs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, false);
}

static void efs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, true);
}

static void efs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct efs_dir *d = efs_dir(fi);

	(void)ino;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void efs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	int fd = dirfd(efs_dir(fi)->dp);
	int res;

	(void)ino;
	res = datasync ? ekmfs_io->fdatasync(fd) : ekmfs_io->fsync(fd);
	fuse_reply_err(req, res == -1 ? errno : 0);
}

/* ---- 6. volume ---- */

static void efs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct efs_data *fs = efs_data(req);
	struct efs_inode *inode = efs_inode(req, ino);
	struct statvfs st;
	int fd = efs_inode_fd(fs, inode), res, saverr;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	res = fstatvfs(fd, &st);
	saverr = errno;
	efs_inode_fd_put(fs, inode);
	if (res == -1)
		fuse_reply_err(req, saverr);
	else
		fuse_reply_statfs(req, &st);
}

/* No getlk/setlk/flock: the kernel then keeps POSIX and BSD locks locally,
 * which is correct for a single mount. */
const struct fuse_lowlevel_ops efs_ops = {
	.init = efs_init,
	.destroy = efs_destroy,
	.lookup = efs_lookup,
	.forget = efs_forget,
	.forget_multi = efs_forget_multi,
	.getattr = efs_getattr,
	.setattr = efs_setattr,
	.readlink = efs_readlink,
	.mknod = efs_mknod,
	.mkdir = efs_mkdir,
	.unlink = efs_unlink,
	.rmdir = efs_rmdir,
	.symlink = efs_symlink,
	.rename = efs_rename,
	.link = efs_link,
	.open = efs_open,
	.read = efs_read,
	.write = efs_write,
	.release = efs_release,
	.fsync = efs_fsync,
	.opendir = efs_opendir,
	.readdir = efs_readdir,
	.readdirplus = efs_readdirplus,
	.releasedir = efs_releasedir,
	.fsyncdir = efs_fsyncdir,
	.statfs = efs_statfs,
	.setxattr = efs_setxattr,
	.getxattr = efs_getxattr,
	.listxattr = efs_listxattr,
	.removexattr = efs_removexattr,
	.create = efs_create,
	.fallocate = efs_fallocate,
};
