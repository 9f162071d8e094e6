/*
 * wire.c - what the daemon reads from and writes to /dev/fuse itself.
 *
 * Owns: libfuse's custom I/O for the session (fuse_session_custom_io), used
 * for one protocol feature libfuse 3.14 (Debian 12) cannot negotiate:
 * FUSE_HANDLE_KILLPRIV_V2, and the per-request "kill suid/sgid" flags that
 * come with it; plus clearing those bits when a request asks.
 *
 * Why: without it the kernel asks the daemon for "security.capability"
 * before every write(2) (file_remove_privs), a full round trip per write -
 * most of the cost of small appends and of O_DIRECT random writes. With
 * HANDLE_KILLPRIV_V2 the kernel marks the mount SB_NOSEC and stops asking
 * (Linux commit 9d769e6aa252), and leaves the killing of the set-user-ID
 * and set-group-ID bits to the file system: it flags the write, truncate
 * or O_TRUNC open of a caller without CAP_FSETID, and we clear the bits as
 * the kernel would have. File capabilities need nothing: the mount exposes
 * only user.* xattrs, so no file on it carries one.
 *
 * How: reads pass through and are inspected (same thread that then runs
 * the handler, in libfuse's worker loop, so the flag of the request being
 * handled lives in a thread-local). The INIT reply is the one write we
 * change: when the kernel offered KILLPRIV_V2 we set it in the reply's
 * flags. Every other reply is written unchanged.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "ekmfs/io.h"
#include "ekmfs/util.h"
#include "fs.h"

static __thread bool kill_suidgid;   /* the request this thread handles asks */
static uint64_t init_unique;         /* of the kernel's INIT request */
static bool init_offers_killpriv;    /* that INIT offered HANDLE_KILLPRIV_V2 */

/* The request's own fields, after its header, when n covers them. */
static const void *request_arg(const void *buf, ssize_t n, size_t arg_size)
{
	if (n < (ssize_t)(sizeof(struct fuse_in_header) + arg_size))
		return NULL;
	return (const char *)buf + sizeof(struct fuse_in_header);
}

static ssize_t wire_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;
	const struct fuse_write_in *w;
	const struct fuse_setattr_in *sa;
	const struct fuse_open_in *op;
	const struct fuse_create_in *cr;
	const struct fuse_init_in *init;

	(void)userdata;
	kill_suidgid = false;
	/* The connection is gone. At unmount the kernel sends DESTROY and then
	 * tears the connection down; a worker that dequeued a request in
	 * between is answered ECONNABORTED rather than ENODEV (fs/fuse/dev.c,
	 * "must not put request on fpq->io queue after having been shut
	 * down"). Both mean the same here - the session ends - and libfuse
	 * ends quietly only on ENODEV; ECONNABORTED would make a clean
	 * unmount exit 1 ("session loop ended with error -103"). */
	if (n < 0 && errno == ECONNABORTED)
		errno = ENODEV;
	if (n < (ssize_t)sizeof(*in))
		return n;
	switch (in->opcode) {
	case FUSE_INIT:
		init = request_arg(buf, n, offsetof(struct fuse_init_in, flags) + 4);
		if (init) {
			__atomic_store_n(&init_unique, in->unique, __ATOMIC_RELAXED);
			__atomic_store_n(&init_offers_killpriv,
					 (init->flags & FUSE_HANDLE_KILLPRIV_V2) != 0,
					 __ATOMIC_RELAXED);
		}
		break;
	case FUSE_WRITE:
		w = request_arg(buf, n, sizeof(*w));
		kill_suidgid = w && (w->write_flags & FUSE_WRITE_KILL_SUIDGID);
		break;
	case FUSE_SETATTR:
		sa = request_arg(buf, n, sizeof(*sa));
		kill_suidgid = sa && (sa->valid & FATTR_KILL_SUIDGID);
		break;
	case FUSE_OPEN:
		op = request_arg(buf, n, sizeof(*op));
		kill_suidgid = op && (op->open_flags & FUSE_OPEN_KILL_SUIDGID);
		break;
	case FUSE_CREATE:
		cr = request_arg(buf, n, sizeof(*cr));
		kill_suidgid = cr && (cr->open_flags & FUSE_OPEN_KILL_SUIDGID);
		break;
	default:
		break;
	}
	return n;
}

static ssize_t wire_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	const struct fuse_out_header *out = iov[0].iov_base;

	(void)userdata;
	if (count >= 2 && iov[0].iov_len >= sizeof(*out) && out->error == 0 &&
	    out->unique == __atomic_load_n(&init_unique, __ATOMIC_RELAXED) &&
	    __atomic_load_n(&init_offers_killpriv, __ATOMIC_RELAXED) &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + 4) {
		struct fuse_init_out *reply = iov[1].iov_base;

		reply->flags |= FUSE_HANDLE_KILLPRIV_V2;
		__atomic_store_n(&init_offers_killpriv, false, __ATOMIC_RELAXED);
		ekmfs_log(EKMFS_LOG_DEBUG, "FUSE_HANDLE_KILLPRIV_V2 accepted: the kernel no "
			  "longer asks for security.capability before writes");
	}
	return writev(fd, iov, count);
}

int efs_wire_attach(struct fuse_session *se)
{
	static const struct fuse_custom_io io = { .read = wire_read, .writev = wire_writev };
	int ret = fuse_session_custom_io(se, &io, fuse_session_fd(se));

	if (ret)
		ekmfs_log(EKMFS_LOG_WARN, "cannot take over /dev/fuse I/O (%s): the kernel will "
			  "ask for security.capability before every write", strerror(-ret));
	return ret;
}

bool efs_wire_kill_suidgid(void)
{
	return kill_suidgid;
}

void efs_drop_suidgid(int fd)
{
	char proc[64];
	struct stat st;
	mode_t drop;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	/* As the kernel's setattr_should_drop_suidgid(): set-group-ID only
	 * with group execute (without it the bit means mandatory locking). */
	drop = S_ISUID | ((st.st_mode & S_IXGRP) ? S_ISGID : 0);
	if (!(st.st_mode & drop))
		return;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (ekmfs_io->fchmodat(AT_FDCWD, proc, st.st_mode & 07777 & ~drop, 0) != 0)
		ekmfs_log(EKMFS_LOG_WARN, "cannot clear the set-user/group-ID bits: %s",
			  strerror(errno));
}
