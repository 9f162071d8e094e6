/*
 * xattr.c - extended attributes of the mounted view.
 *
 * Owns: which attributes pass through to the backing files. Only the
 * "user." namespace does: the others carry meaning (ACLs, capabilities,
 * security labels) that the daemon, running as root, must not let a user set
 * on the backing files, so every call on them fails with EOPNOTSUPP. Values
 * are stored in plaintext (docs/DESIGN.md).
 * Every operation goes through /proc/self/fd/N of the inode's O_PATH fd
 * (fdcache.c), as in libfuse's passthrough_ll.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "ekmfs/io.h"
#include "fs.h"

#define XATTR_USER_PREFIX "user."

static bool is_user_xattr(const char *name)
{
	return strncmp(name, XATTR_USER_PREFIX, sizeof(XATTR_USER_PREFIX) - 1) == 0;
}

/* /proc/self/fd/N of the inode's descriptor, pinned until proc_put; 0 or
 * an errno. */
static int proc_get(fuse_req_t req, fuse_ino_t ino, char proc[64])
{
	int fd = efs_inode_fd(efs_data(req), efs_inode(req, ino));

	if (fd < 0)
		return -fd;
	proc_path(fd, proc, 64);
	return 0;
}

static void proc_put(fuse_req_t req, fuse_ino_t ino)
{
	efs_inode_fd_put(efs_data(req), efs_inode(req, ino));
}

void efs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		  size_t size, int flags)
{
	char proc[64];
	int err;

	if (!is_user_xattr(name))
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	err = proc_get(req, ino, proc);
	if (err)
		return (void)fuse_reply_err(req, err);
	err = ekmfs_io->setxattr(proc, name, value, size, flags) == -1 ? errno : 0;
	proc_put(req, ino);
	fuse_reply_err(req, err);
}

void efs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char proc[64];
	int err;

	if (!is_user_xattr(name))
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	err = proc_get(req, ino, proc);
	if (err)
		return (void)fuse_reply_err(req, err);
	err = ekmfs_io->removexattr(proc, name) == -1 ? errno : 0;
	proc_put(req, ino);
	fuse_reply_err(req, err);
}

static int do_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		       size_t size, void **out, ssize_t *outlen)
{
	char proc[64];
	ssize_t n;
	int err;

	*out = NULL;
	/* "Not supported" rather than "no such attribute": that is what the
	 * namespace is here, and tools take it as such - ls -l stops asking
	 * every file of the mount for its SELinux label and POSIX ACL after
	 * the first answer (two round trips per file of an ls -lR). */
	if (!is_user_xattr(name))
		return EOPNOTSUPP;
	if (size) {
		*out = malloc(size);
		if (!*out)
			return ENOMEM;
	}
	err = proc_get(req, ino, proc);
	if (err)
		goto out;
	n = getxattr(proc, name, *out, size);
	err = n == -1 ? errno : 0;
	proc_put(req, ino);
	if (!err)
		*outlen = n;
out:
	if (err) {
		free(*out);
		*out = NULL;
	}
	return err;
}

void efs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	void *value;
	ssize_t len = 0;
	int err = do_getxattr(req, ino, name, size, &value, &len);

	if (err)
		fuse_reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else
		fuse_reply_buf(req, value, (size_t)len);
	free(value);
}

/* The backing list filtered to user.* names. */
static int do_listxattr(fuse_req_t req, fuse_ino_t ino, char **out, size_t *outlen)
{
	char proc[64], *all = NULL, *kept = NULL, *p;
	ssize_t n = 0;
	size_t klen = 0;
	int tries, saverr;

	*out = NULL;
	*outlen = 0;
	n = proc_get(req, ino, proc);
	if (n)
		return (int)n;
	/* The list may grow between sizing and reading it: retry a few times. */
	for (tries = 0; tries < 5; tries++) {
		n = listxattr(proc, NULL, 0);
		if (n <= 0)
			break;
		free(all);
		all = malloc((size_t)n);
		if (!all) {
			proc_put(req, ino);
			return ENOMEM;
		}
		n = listxattr(proc, all, (size_t)n);
		if (n >= 0 || errno != ERANGE)
			break;
	}
	saverr = errno;
	proc_put(req, ino);
	if (n < 0) {
		free(all);
		return saverr;
	}
	kept = malloc(n > 0 ? (size_t)n : 1);
	if (!kept) {
		free(all);
		return ENOMEM;
	}
	for (p = all; p && p < all + n; p += strlen(p) + 1) {
		size_t len = strnlen(p, (size_t)(all + n - p));

		if (is_user_xattr(p)) {
			memcpy(kept + klen, p, len);
			kept[klen + len] = '\0';
			klen += len + 1;
		}
	}
	free(all);
	*out = kept;
	*outlen = klen;
	return 0;
}

void efs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *list;
	size_t len;
	int err = do_listxattr(req, ino, &list, &len);

	if (err)
		fuse_reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
	free(list);
}
