/*
 * record.c - the crash simulator's recorder, for test builds only.
 *
 * Owns: a seam table that performs every call that changes the backing
 * store and appends one record describing the change to the log named by
 * $EKMFS_CRASH_LOG, so that the log is the total order in which the changes
 * took effect, across the threads and processes (the daemon, ekmfs-rotate,
 * ekmfs-admin) that share it. tests/crash/crashsim.py replays a prefix of
 * the log to build the backing directory a crash would leave behind
 * (docs/CRASH.md). Compiled only with -Dfault_injection=true, like fault.c.
 *
 * Divisions:
 *   1. the log: opened once per process, locked, sequence numbers, append
 *   2. record text: a JSON line builder
 *   3. identities: inode numbers of fds and of (dirfd, name)
 *   4. data, size and durability entries
 *   5. name entries
 *   6. attribute entries
 *   7. arming
 *
 * Ordering: a recorded call runs, together with the append of its record,
 * under a process mutex and an exclusive flock() of the log (the mutex
 * because flock() locks belong to the open file description, which the
 * threads of a process share; the log is opened again after a fork for the
 * same reason). So the log order is the order in which the calls took
 * effect, and a reader holding a shared flock sees only whole records of
 * finished calls: tests read "how many records now" that way.
 *
 * With fault.c: arm the recorder after the fault table. It wraps whatever
 * table is in use when armed, so a failed or shortened transfer is recorded
 * as what it did. Only calls that succeed are recorded (a failed call
 * changed nothing); a write records the bytes it really moved. Batched
 * writes are done one pwrite at a time, in vector order, each its own
 * record. If a change cannot be recorded (the log cannot be written, a
 * changed object cannot be identified) the process aborts: a log with a
 * hole would make the simulator check a state that never existed.
 *
 * The format: one JSON object per line, appended with one write(2) to the
 * log opened O_APPEND. Every record has
 *   "seq"  1, 2, ... in log order, across all the processes of the log
 *   "pid"  the process that made the call
 *   "op"   what changed (below)
 *   "dev"  st_dev of the object (for names: of the directory)
 * Inodes ("ino", "dir", "olddir", ...) are st_ino numbers on that device.
 * Names and symlink targets are byte strings: every byte outside printable
 * ASCII, and '"' and '\', is written \u00XX, so the string's code points
 * are the bytes (Python: s.encode("latin-1")). Data is base64.
 *   write       ino off data             pwrite, batched writes
 *   truncate    ino size                 ftruncate; openat(O_TRUNC) of an
 *                                        existing file (size 0)
 *   fallocate   ino mode off len
 *   fsync       ino                      also "fdatasync"
 *   syncfs                               every file of dev
 *   create      dir name ino mode        openat(O_CREAT) that made a file
 *   mkdir       dir name ino mode
 *   mknod       dir name ino mode rdev   mode with its S_IFMT bits
 *   symlink     dir name ino target
 *   link        dir name ino             a new name for ino
 *   unlink      dir name ino rmdir       ino: what the name referred to
 *   rename      olddir oldname newdir newname flags ino replaced
 *               ino: what oldname referred to; replaced: what newname
 *               referred to before (0: nothing); RENAME_EXCHANGE swaps them
 *   chmod       ino mode                 the mode after the call (07777)
 *   chown       ino uid gid              as passed (-1: unchanged)
 *   utimes      ino atime mtime          [sec, nsec] as passed, or null
 *   setxattr    ino name value flags
 *   removexattr ino name
 * "mode" of create/mkdir is the permission bits the object got.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "ekmfs/util.h"

/* ---- 1. the log ---- */

/* Lock order: mu, then the flock of fd. */
static struct {
	pthread_mutex_t mu;
	const char *path;
	const struct ekmfs_io_ops *inner;  /* the table the recorder wraps */
	int fd;                            /* O_APPEND, opened by pid */
	pid_t pid;
	off_t seen;                        /* log bytes already counted */
	unsigned long long count;          /* records in those bytes */
} rl = { .mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

static void fatal(const char *what, int err) __attribute__((noreturn));

static void fatal(const char *what, int err)
{
	ekmfs_log(EKMFS_LOG_ERR, "crash log %s: %s: %s; a log with a hole is useless, aborting",
		  rl.path, what, strerror(err));
	abort();
}

static void log_open(void)
{
	if (rl.pid == getpid())
		return;
	if (rl.fd >= 0)
		close(rl.fd);
	rl.fd = open(rl.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (rl.fd < 0)
		fatal("cannot open", errno);
	rl.pid = getpid();
	rl.seen = 0;
	rl.count = 0;
}

/* Count the records other processes appended since we last looked. */
static void log_catch_up(void)
{
	char buf[65536];
	struct stat st;
	int rfd;

	if (fstat(rl.fd, &st) < 0)
		fatal("fstat", errno);
	if (st.st_size == rl.seen)
		return;
	if (st.st_size < rl.seen) {   /* replaced or cut: count afresh */
		rl.seen = 0;
		rl.count = 0;
	}
	rfd = open(rl.path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		fatal("cannot open for reading", errno);
	while (rl.seen < st.st_size) {
		size_t want = (size_t)(st.st_size - rl.seen) < sizeof(buf)
			      ? (size_t)(st.st_size - rl.seen) : sizeof(buf);
		ssize_t n = pread(rfd, buf, want, rl.seen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("reading", n < 0 ? errno : EIO);
		for (ssize_t i = 0; i < n; i++)
			rl.count += buf[i] == '\n';
		rl.seen += n;
	}
	close(rfd);
}

static void log_lock(void)
{
	pthread_mutex_lock(&rl.mu);
	log_open();
	while (flock(rl.fd, LOCK_EX) < 0) {
		if (errno != EINTR)
			fatal("flock", errno);
	}
	log_catch_up();
}

static void log_unlock(void)
{
	(void)flock(rl.fd, LOCK_UN);
	pthread_mutex_unlock(&rl.mu);
}

static void log_append(const char *line, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(rl.fd, line + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("cannot append a record", n < 0 ? errno : EIO);
		done += (size_t)n;
	}
	rl.seen += (off_t)len;
	rl.count++;
}

/* ---- 2. record text ---- */

/* One record being built while the log is locked. */
struct rec {
	char *buf;
	size_t len, cap;
	const char *problem;  /* why it cannot be completed, or NULL */
	int err;
};

static void rec_reserve(struct rec *r, size_t more)
{
	char *p;
	size_t cap = r->cap ? r->cap : 256;

	if (r->len + more + 1 <= r->cap)
		return;
	while (cap < r->len + more + 1)
		cap *= 2;
	p = realloc(r->buf, cap);
	if (!p)
		fatal("building a record", ENOMEM);
	r->buf = p;
	r->cap = cap;
}

static void rec_printf(struct rec *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void rec_printf(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	rec_reserve(r, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(r->buf + r->len, r->cap - r->len, fmt, ap);
	va_end(ap);
	r->len += (size_t)n;
}

/* ,"key":"s" with every byte outside printable ASCII as \u00XX. */
static void rec_str(struct rec *r, const char *key, const char *s)
{
	rec_printf(r, ",\"%s\":\"", key);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
			rec_printf(r, "\\u%04x", *p);
		else
			rec_printf(r, "%c", *p);
	}
	rec_printf(r, "\"");
}

static void rec_b64(struct rec *r, const char *key, const void *data, size_t len)
{
	rec_printf(r, ",\"%s\":\"", key);
	rec_reserve(r, 4 * ((len + 2) / 3) + 2);
	ekmfs_b64_encode(data, len, r->buf + r->len);
	r->len += strlen(r->buf + r->len);
	rec_printf(r, "\"");
}

/* Lock the log: the call to record is made next. */
static void rec_start(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	log_lock();
}

/* Begin the record of a call that succeeded and changed something: op, and
 * the next seq. The fields follow. */
static void rec_begin(struct rec *r, const char *op)
{
	rec_printf(r, "{\"seq\":%llu,\"pid\":%ld,\"op\":\"%s\"", rl.count + 1, (long)getpid(), op);
}

static void rec_fail(struct rec *r, const char *problem, int err)
{
	if (!r->problem) {
		r->problem = problem;
		r->err = err;
	}
}

/* Append the record: the call it describes has succeeded. */
static void rec_commit(struct rec *r)
{
	if (r->problem)
		fatal(r->problem, r->err);
	rec_printf(r, "}\n");
	log_append(r->buf, r->len);
}

/* Unlock the log (after rec_commit, or instead of it when the call failed
 * or changed nothing). Keeps errno. */
static void rec_end(struct rec *r)
{
	int saved = errno;

	log_unlock();
	free(r->buf);
	errno = saved;
}

/* ---- 3. identities ---- */

static void rec_id(struct rec *r, const char *key, const struct stat *st)
{
	rec_printf(r, ",\"%s\":%llu", key, (unsigned long long)st->st_ino);
}

static void rec_dev(struct rec *r, const struct stat *st)
{
	rec_printf(r, ",\"dev\":%llu", (unsigned long long)st->st_dev);
}

/* ,"dev":D,"ino":I of an open file. */
static void rec_fd(struct rec *r, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		rec_fail(r, "fstat of a changed file", errno);
		return;
	}
	rec_dev(r, &st);
	rec_id(r, "ino", &st);
}

/* stat of dirfd/name ("" or NULL: dirfd itself), following a final
 * symlink only when follow. 0 or -errno. */
static int stat_at(int dirfd, const char *name, bool follow, struct stat *st)
{
	if (!name || !*name)
		return (dirfd == AT_FDCWD ? stat(".", st) : fstat(dirfd, st)) < 0 ? -errno : 0;
	return fstatat(dirfd, name, st, follow ? 0 : AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* The directory holding dirfd/name and the name's last component. */
struct parent {
	struct stat st;
	const char *base;
	int rc;
};

static void parent_of(int dirfd, const char *name, struct parent *p)
{
	const char *slash = strrchr(name, '/');
	char dir[PATH_MAX];

	p->base = slash ? slash + 1 : name;
	if (!slash) {
		p->rc = stat_at(dirfd, NULL, true, &p->st);
		return;
	}
	if ((size_t)(slash - name) >= sizeof(dir)) {
		p->rc = -ENAMETOOLONG;
		return;
	}
	if (slash == name) {
		strcpy(dir, "/");
	} else {
		memcpy(dir, name, (size_t)(slash - name));
		dir[slash - name] = '\0';
	}
	p->rc = stat_at(dirfd, dir, true, &p->st);
}

/* ,"dev":D,"<dirkey>":DIR,"<namekey>":"base" */
static void rec_parent(struct rec *r, const struct parent *p, const char *dirkey,
		       const char *namekey, bool with_dev)
{
	if (p->rc < 0) {
		rec_fail(r, "stat of the directory of a changed name", -p->rc);
		return;
	}
	if (with_dev)
		rec_dev(r, &p->st);
	rec_id(r, dirkey, &p->st);
	rec_str(r, namekey, p->base);
}

/* ,"ino":I of dirfd/name as it is now. */
static void rec_named(struct rec *r, const char *key, int dirfd, const char *name, bool follow)
{
	struct stat st;
	int rc = stat_at(dirfd, name, follow, &st);

	if (rc < 0)
		rec_fail(r, "stat of a changed name", -rc);
	else
		rec_id(r, key, &st);
}

/* ,"dev":D,"ino":I of dirfd/name (a chmod/chown/utimes/xattr target). */
static void rec_target(struct rec *r, int dirfd, const char *name, bool follow)
{
	struct stat st;
	int rc = stat_at(dirfd, name, follow, &st);

	if (rc < 0) {
		rec_fail(r, "stat of a changed file", -rc);
		return;
	}
	rec_dev(r, &st);
	rec_id(r, "ino", &st);
}

/* ---- 4. data, size and durability ---- */

static ssize_t rec_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct rec r;
	ssize_t n;

	rec_start(&r);
	n = rl.inner->pwrite(fd, buf, len, off);
	if (n > 0) {
		rec_begin(&r, "write");
		rec_fd(&r, fd);
		rec_printf(&r, ",\"off\":%lld", (long long)off);
		rec_b64(&r, "data", buf, (size_t)n);
		rec_commit(&r);
	}
	rec_end(&r);
	return n;
}

static ssize_t rec_pread(int fd, void *buf, size_t len, off_t off)
{
	return rl.inner->pread(fd, buf, len, off);
}

/* Reads go to the wrapped table's batch; writes are one recorded pwrite
 * at a time, in vector order. */
static void rec_batch(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	if (!write && rl.inner->batch) {
		rl.inner->batch(fd, false, v, n);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		ssize_t res;

		do {
			res = write ? rec_pwrite(fd, v[i].buf, v[i].len, v[i].off)
				    : rl.inner->pread(fd, v[i].buf, v[i].len, v[i].off);
		} while (res < 0 && errno == EINTR);
		v[i].res = res < 0 ? -errno : res;
	}
}

static int rec_ftruncate(int fd, off_t len)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->ftruncate(fd, len);
	if (rc == 0) {
		rec_begin(&r, "truncate");
		rec_fd(&r, fd);
		rec_printf(&r, ",\"size\":%lld", (long long)len);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_fallocate(int fd, int mode, off_t off, off_t len)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->fallocate(fd, mode, off, len);
	if (rc == 0) {
		rec_begin(&r, "fallocate");
		rec_fd(&r, fd);
		rec_printf(&r, ",\"mode\":%d,\"off\":%lld,\"len\":%lld", mode, (long long)off,
			   (long long)len);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_sync(int fd, bool data)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = data ? rl.inner->fdatasync(fd) : rl.inner->fsync(fd);
	if (rc == 0) {
		rec_begin(&r, data ? "fdatasync" : "fsync");
		rec_fd(&r, fd);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_fsync(int fd)
{
	return rec_sync(fd, false);
}

static int rec_fdatasync(int fd)
{
	return rec_sync(fd, true);
}

static int rec_syncfs(int fd)
{
	struct stat st;
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->syncfs(fd);
	if (rc == 0) {
		rec_begin(&r, "syncfs");
		if (fstat(fd, &st) < 0)
			rec_fail(&r, "fstat of a synced file system", errno);
		else
			rec_dev(&r, &st);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

/* ---- 5. names ---- */

/* An open that neither creates nor truncates changes nothing: not
 * recorded. One that opens an existing file with O_TRUNC is a truncate. */
static int rec_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	struct parent p;
	struct stat pre, st;
	bool existed;
	struct rec r;
	int fd;

	if (!(flags & (O_CREAT | O_TRUNC)))
		return rl.inner->openat(dirfd, name, flags, mode);
	rec_start(&r);
	existed = stat_at(dirfd, name, !(flags & O_NOFOLLOW), &pre) == 0;
	fd = rl.inner->openat(dirfd, name, flags, mode);
	if (fd >= 0 && !existed) {
		rec_begin(&r, "create");
		parent_of(dirfd, name, &p);
		rec_parent(&r, &p, "dir", "name", true);
		if (fstat(fd, &st) < 0) {
			rec_fail(&r, "fstat of a created file", errno);
		} else {
			rec_id(&r, "ino", &st);
			rec_printf(&r, ",\"mode\":%u", (unsigned)(st.st_mode & 07777));
		}
		rec_commit(&r);
	} else if (fd >= 0 && (flags & O_TRUNC)) {
		rec_begin(&r, "truncate");
		rec_fd(&r, fd);
		rec_printf(&r, ",\"size\":0");
		rec_commit(&r);
	}
	rec_end(&r);
	return fd;
}

/* mkdirat, mknodat, symlinkat: the name refers to a new object, whose
 * stat fills *st. */
static void rec_made(struct rec *r, int dirfd, const char *name, struct stat *st)
{
	struct parent p;
	int rc;

	parent_of(dirfd, name, &p);
	rec_parent(r, &p, "dir", "name", true);
	rc = stat_at(dirfd, name, false, st);
	if (rc < 0) {
		rec_fail(r, "stat of a made name", -rc);
		memset(st, 0, sizeof(*st));
		return;
	}
	rec_id(r, "ino", st);
}

static int rec_mkdirat(int dirfd, const char *name, mode_t mode)
{
	struct stat st;
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->mkdirat(dirfd, name, mode);
	if (rc == 0) {
		rec_begin(&r, "mkdir");
		rec_made(&r, dirfd, name, &st);
		rec_printf(&r, ",\"mode\":%u", (unsigned)(st.st_mode & 07777));
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_mknodat(int dirfd, const char *name, mode_t mode, dev_t dev)
{
	struct stat st;
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->mknodat(dirfd, name, mode, dev);
	if (rc == 0) {
		rec_begin(&r, "mknod");
		rec_made(&r, dirfd, name, &st);
		rec_printf(&r, ",\"mode\":%u,\"rdev\":%llu", (unsigned)st.st_mode,
			   (unsigned long long)dev);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_symlinkat(const char *target, int dirfd, const char *name)
{
	struct stat st;
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->symlinkat(target, dirfd, name);
	if (rc == 0) {
		rec_begin(&r, "symlink");
		rec_made(&r, dirfd, name, &st);
		rec_str(&r, "target", target);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

/* The daemon links with linkat(AT_FDCWD, "/proc/self/fd/N", ...,
 * AT_SYMLINK_FOLLOW): the new name is stat'ed, which names the source
 * inode whatever the old path was. */
static int rec_linkat(int olddirfd, const char *oldname, int newdirfd, const char *newname,
		      int flags)
{
	struct parent p;
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->linkat(olddirfd, oldname, newdirfd, newname, flags);
	if (rc == 0) {
		rec_begin(&r, "link");
		parent_of(newdirfd, newname, &p);
		rec_parent(&r, &p, "dir", "name", true);
		rec_named(&r, "ino", newdirfd, newname, false);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_unlinkat(int dirfd, const char *name, int flags)
{
	struct parent p;
	struct stat pre;
	struct rec r;
	int pre_rc, rc;

	rec_start(&r);
	parent_of(dirfd, name, &p);
	pre_rc = stat_at(dirfd, name, false, &pre);
	rc = rl.inner->unlinkat(dirfd, name, flags);
	if (rc == 0) {
		rec_begin(&r, "unlink");
		rec_parent(&r, &p, "dir", "name", true);
		if (pre_rc < 0)
			rec_fail(&r, "stat of an unlinked name", -pre_rc);
		else
			rec_id(&r, "ino", &pre);
		rec_printf(&r, ",\"rmdir\":%d", (flags & AT_REMOVEDIR) ? 1 : 0);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_renameat2(int olddirfd, const char *oldname, int newdirfd,
			 const char *newname, unsigned int flags)
{
	struct parent po, pn;
	struct stat moved, replaced;
	struct rec r;
	int moved_rc, replaced_rc, rc;

	rec_start(&r);
	parent_of(olddirfd, oldname, &po);
	parent_of(newdirfd, newname, &pn);
	moved_rc = stat_at(olddirfd, oldname, false, &moved);
	replaced_rc = stat_at(newdirfd, newname, false, &replaced);
	rc = rl.inner->renameat2(olddirfd, oldname, newdirfd, newname, flags);
	if (rc == 0) {
		rec_begin(&r, "rename");
		rec_parent(&r, &po, "olddir", "oldname", true);
		rec_parent(&r, &pn, "newdir", "newname", false);
		rec_printf(&r, ",\"flags\":%u", flags);
		if (moved_rc < 0)
			rec_fail(&r, "stat of a renamed name", -moved_rc);
		else
			rec_id(&r, "ino", &moved);
		if (replaced_rc == 0)
			rec_id(&r, "replaced", &replaced);
		else
			rec_printf(&r, ",\"replaced\":0");
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

/* ---- 6. attributes ---- */

/* ,"dev":D,"ino":I,"mode":M of dirfd/name after a chmod. */
static void rec_chmodded(struct rec *r, int dirfd, const char *name, bool follow)
{
	struct stat st;
	int rc = stat_at(dirfd, name, follow, &st);

	if (rc < 0) {
		rec_fail(r, "stat of a chmod target", -rc);
		return;
	}
	rec_dev(r, &st);
	rec_id(r, "ino", &st);
	rec_printf(r, ",\"mode\":%u", (unsigned)(st.st_mode & 07777));
}

/* The daemon changes modes with fchmodat(AT_FDCWD, "/proc/self/fd/N"):
 * following the link names the file. */
static int rec_fchmodat(int dirfd, const char *name, mode_t mode, int flags)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->fchmodat(dirfd, name, mode, flags);
	if (rc == 0) {
		rec_begin(&r, "chmod");
		rec_chmodded(&r, dirfd, name, !(flags & AT_SYMLINK_NOFOLLOW));
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_fchmod(int fd, mode_t mode)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->fchmod(fd, mode);
	if (rc == 0) {
		rec_begin(&r, "chmod");
		rec_chmodded(&r, fd, NULL, true);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_fchownat(int dirfd, const char *name, uid_t uid, gid_t gid, int flags)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->fchownat(dirfd, name, uid, gid, flags);
	if (rc == 0) {
		rec_begin(&r, "chown");
		rec_target(&r, dirfd, name, !(flags & AT_SYMLINK_NOFOLLOW));
		rec_printf(&r, ",\"uid\":%ld,\"gid\":%ld", uid == (uid_t)-1 ? -1L : (long)uid,
			   gid == (gid_t)-1 ? -1L : (long)gid);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static void rec_times(struct rec *r, const struct timespec tv[2])
{
	if (!tv) {
		rec_printf(r, ",\"atime\":null,\"mtime\":null");
		return;
	}
	rec_printf(r, ",\"atime\":[%lld,%ld],\"mtime\":[%lld,%ld]", (long long)tv[0].tv_sec,
		   tv[0].tv_nsec, (long long)tv[1].tv_sec, tv[1].tv_nsec);
}

static int rec_utimensat(int dirfd, const char *name, const struct timespec tv[2], int flags)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->utimensat(dirfd, name, tv, flags);
	if (rc == 0) {
		rec_begin(&r, "utimes");
		rec_target(&r, dirfd, name, !(flags & AT_SYMLINK_NOFOLLOW));
		rec_times(&r, tv);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_futimens(int fd, const struct timespec tv[2])
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->futimens(fd, tv);
	if (rc == 0) {
		rec_begin(&r, "utimes");
		rec_fd(&r, fd);
		rec_times(&r, tv);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static void rec_xattr(struct rec *r, const char *name, const void *value, size_t size,
		      int flags)
{
	rec_str(r, "name", name);
	rec_b64(r, "value", value, size);
	rec_printf(r, ",\"flags\":%d", flags);
}

static int rec_setxattr(const char *path, const char *name, const void *value, size_t size,
			int flags)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->setxattr(path, name, value, size, flags);
	if (rc == 0) {
		rec_begin(&r, "setxattr");
		rec_target(&r, AT_FDCWD, path, true);
		rec_xattr(&r, name, value, size, flags);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->fsetxattr(fd, name, value, size, flags);
	if (rc == 0) {
		rec_begin(&r, "setxattr");
		rec_fd(&r, fd);
		rec_xattr(&r, name, value, size, flags);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

static int rec_removexattr(const char *path, const char *name)
{
	struct rec r;
	int rc;

	rec_start(&r);
	rc = rl.inner->removexattr(path, name);
	if (rc == 0) {
		rec_begin(&r, "removexattr");
		rec_target(&r, AT_FDCWD, path, true);
		rec_str(&r, "name", name);
		rec_commit(&r);
	}
	rec_end(&r);
	return rc;
}

/* ---- 7. arming ---- */

/* Every entry of the seam is wrapped: an entry added to io.h without its
 * recorder would be NULL here, and a change made through it missing from
 * the log. */
_Static_assert(sizeof(struct ekmfs_io_ops) == 23 * sizeof(void (*)(void)),
	       "a new ekmfs_io entry needs its recording wrapper in record.c");

static const struct ekmfs_io_ops record_io = {
	.pread = rec_pread,
	.pwrite = rec_pwrite,
	.fsync = rec_fsync,
	.fdatasync = rec_fdatasync,
	.ftruncate = rec_ftruncate,
	.fallocate = rec_fallocate,
	.syncfs = rec_syncfs,
	.batch = rec_batch,
	.openat = rec_openat,
	.mkdirat = rec_mkdirat,
	.mknodat = rec_mknodat,
	.symlinkat = rec_symlinkat,
	.linkat = rec_linkat,
	.unlinkat = rec_unlinkat,
	.renameat2 = rec_renameat2,
	.fchmodat = rec_fchmodat,
	.fchmod = rec_fchmod,
	.fchownat = rec_fchownat,
	.utimensat = rec_utimensat,
	.futimens = rec_futimens,
	.setxattr = rec_setxattr,
	.fsetxattr = rec_fsetxattr,
	.removexattr = rec_removexattr,
};

int ekmfs_io_record_from_env(void)
{
	const char *path = getenv("EKMFS_CRASH_LOG");
	int fd;

	if (!path || !*path)
		return 0;
	if (ekmfs_io == &record_io)
		return 1;
	/* Fail now, not at the first change, when the log is unusable. */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int rc = -errno;

		ekmfs_seterr("crash log %s: %s", path, strerror(errno));
		return rc;
	}
	close(fd);
	rl.path = path;
	rl.inner = ekmfs_io;
	ekmfs_io = &record_io;
	ekmfs_log(EKMFS_LOG_WARN, "crash recording armed: log %s", path);
	return 1;
}
