/*
 * holder.c - the mount lock and the holder record of a volume (holder.h).
 *
 * Divisions:
 *   1. the holder record (JSON in .ekmfs/holder) and the recovery mark
 *   2. the lock (an OFD lock on .ekmfs/mount.lock)
 *   3. take, recovered, release, look
 *
 * The lock is an OFD (open file description) lock: it belongs to the
 * daemon's descriptor, not to a thread or a forked child, works across
 * processes and, through POSIX locks, across the hosts of a distributed
 * file system that supports them (NFSv4, GlusterFS, CephFS). The holder
 * record says who holds it, for the refusal message and ekmfs-admin
 * status; it is written after the lock is taken and removed before it is
 * released, so a record without a lock holder means a daemon died.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/holder.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

struct ekmfs_mount_lock {
	int fd;
};

/* ---- 1. the holder record and the recovery mark ---- */

#define HOLDER_FORMAT "ekmfs-holder"

static int holder_read(int backing_fd, const char *name, struct ekmfs_holder *h)
{
	char rel[64], *text = NULL;
	json_object *doc = NULL, *v;
	struct stat st;
	size_t len;
	int ret;

	memset(h, 0, sizeof(*h));
	ret = ekmfs_meta_read(backing_fd, name, &text, &len);
	if (ret < 0)
		return ret;
	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, name);
	if (fstatat(backing_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
		h->since = st.st_mtim;
	doc = json_tokener_parse(text);
	/* A record cut short by a crash still says a daemon was there: its
	 * fields are only for messages. */
	if (doc && json_object_object_get_ex(doc, "host", &v))
		snprintf(h->host, sizeof(h->host), "%s", json_object_get_string(v));
	if (doc && json_object_object_get_ex(doc, "pid", &v))
		h->pid = (long)json_object_get_int64(v);
	if (doc && json_object_object_get_ex(doc, "mountpoint", &v))
		snprintf(h->mountpoint, sizeof(h->mountpoint), "%s", json_object_get_string(v));
	if (doc && json_object_object_get_ex(doc, "mode", &v))
		h->shared = strcmp(json_object_get_string(v), "shared") == 0;
	if (doc && json_object_object_get_ex(doc, "started", &v))
		(void)ekmfs_time_parse_rfc3339(json_object_get_string(v), &h->started);
	/* The recovery mark carries the time its holder started, in the
	 * backing store's clock (its own mtime is when it was written). */
	if (doc && json_object_object_get_ex(doc, "since_sec", &v)) {
		h->since.tv_sec = (time_t)json_object_get_int64(v);
		h->since.tv_nsec = json_object_object_get_ex(doc, "since_nsec", &v)
					   ? (long)json_object_get_int64(v) : 0;
	}
	if (!h->host[0])
		snprintf(h->host, sizeof(h->host), "unknown host");
	json_object_put(doc);
	free(text);
	return 0;
}

static int holder_write(int backing_fd, const char *name, const struct ekmfs_holder *h,
			bool with_since)
{
	json_object *doc = json_object_new_object();
	char when[32];
	int ret = -ENOMEM;

	if (!doc)
		return -ENOMEM;
	ekmfs_time_rfc3339(h->started, when, sizeof(when));
	if (json_object_object_add(doc, "format", json_object_new_string(HOLDER_FORMAT)) == 0 &&
	    json_object_object_add(doc, "version", json_object_new_int(1)) == 0 &&
	    json_object_object_add(doc, "host", json_object_new_string(h->host)) == 0 &&
	    json_object_object_add(doc, "pid", json_object_new_int64(h->pid)) == 0 &&
	    json_object_object_add(doc, "mountpoint", json_object_new_string(h->mountpoint)) == 0 &&
	    json_object_object_add(doc, "mode", json_object_new_string(h->shared ? "shared"
										: "exclusive")) == 0 &&
	    json_object_object_add(doc, "started", json_object_new_string(when)) == 0 &&
	    (!with_since ||
	     (json_object_object_add(doc, "since_sec", json_object_new_int64(h->since.tv_sec)) == 0 &&
	      json_object_object_add(doc, "since_nsec",
				     json_object_new_int64(h->since.tv_nsec)) == 0))) {
		const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY);
		char *line = NULL;

		if (asprintf(&line, "%s\n", text) >= 0) {
			ret = ekmfs_meta_replace(backing_fd, name, line);
			free(line);
		}
	}
	json_object_put(doc);
	return ret;
}

static int remove_meta(int backing_fd, const char *name)
{
	char rel[64];
	int dfd, ret = 0;

	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, name);
	if (ekmfs_io->unlinkat(backing_fd, rel, 0) < 0 && errno != ENOENT)
		return -errno;
	dfd = openat(backing_fd, EKMFS_META_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || ekmfs_io->fsync(dfd) < 0)
		ret = -errno;
	if (dfd >= 0)
		close(dfd);
	return ret;
}

/* ---- 2. the lock ---- */

static int lock_open(int backing_fd, bool create)
{
	char rel[64];
	int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;

	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, EKMFS_MOUNT_LOCK_FILE);
	if (create)
		return ekmfs_io->openat(backing_fd, rel, flags | O_CREAT, 0600);
	return openat(backing_fd, rel, flags);
}

static struct flock whole_first_byte(short type)
{
	return (struct flock){ .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
}

/* 1: held by someone else, 0: free, -errno. */
static int lock_held(int fd)
{
	struct flock fl = whole_first_byte(F_WRLCK);

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

/* ---- 3. take, recovered, release, look ---- */

int ekmfs_volume_take(int backing_fd, const char *mountpoint, struct ekmfs_mount_lock **out,
		      bool *recover, struct timespec *since, struct ekmfs_holder *other)
{
	struct flock fl = whole_first_byte(F_WRLCK);
	struct ekmfs_holder me = { 0 }, mark;
	struct ekmfs_mount_lock *lock;
	int fd, ret;

	*out = NULL;
	*recover = false;
	memset(since, 0, sizeof(*since));
	memset(other, 0, sizeof(*other));
	fd = lock_open(backing_fd, true);
	if (fd < 0) {
		ret = -errno;
		ekmfs_seterr("cannot open the mount lock .ekmfs/%s: %s", EKMFS_MOUNT_LOCK_FILE,
			     strerror(errno));
		return ret;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		ret = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
		if (ret == -EBUSY) {
			(void)holder_read(backing_fd, EKMFS_HOLDER_FILE, other);
			ekmfs_seterr("the volume is already mounted by %s (pid %ld)%s%s: one daemon "
				     "at a time (or -o shared on every host)", other->host,
				     other->pid, other->mountpoint[0] ? " at " : "",
				     other->mountpoint);
		} else {
			ekmfs_seterr("cannot lock .ekmfs/%s: %s", EKMFS_MOUNT_LOCK_FILE,
				     strerror(-ret));
		}
		close(fd);
		return ret;
	}
	/* Locked. A record left behind, or an unfinished recovery, means the
	 * last holder died: its files need settling from when it started. */
	if (holder_read(backing_fd, EKMFS_RECOVERY_FILE, &mark) == 0) {
		*recover = true;
		*since = mark.since;
	}
	if (holder_read(backing_fd, EKMFS_HOLDER_FILE, other) == 0) {
		if (!*recover || other->since.tv_sec < since->tv_sec)
			*since = other->since;
		*recover = true;
		mark = *other;
		mark.since = *since;
		ret = holder_write(backing_fd, EKMFS_RECOVERY_FILE, &mark, true);
		if (ret < 0) {
			ekmfs_seterr("cannot write the recovery mark .ekmfs/%s: %s",
				     EKMFS_RECOVERY_FILE, strerror(-ret));
			close(fd);
			return ret;
		}
	}
	if (gethostname(me.host, sizeof(me.host) - 1) < 0)
		snprintf(me.host, sizeof(me.host), "localhost");
	me.pid = (long)getpid();
	snprintf(me.mountpoint, sizeof(me.mountpoint), "%s", mountpoint ? mountpoint : "");
	me.started = time(NULL);
	ret = holder_write(backing_fd, EKMFS_HOLDER_FILE, &me, false);
	if (ret < 0) {
		ekmfs_seterr("cannot write the holder record .ekmfs/%s: %s", EKMFS_HOLDER_FILE,
			     strerror(-ret));
		close(fd);
		return ret;
	}
	lock = calloc(1, sizeof(*lock));
	if (!lock) {
		(void)remove_meta(backing_fd, EKMFS_HOLDER_FILE);
		close(fd);
		return -ENOMEM;
	}
	lock->fd = fd;
	*out = lock;
	return 0;
}

int ekmfs_volume_recovered(int backing_fd)
{
	return remove_meta(backing_fd, EKMFS_RECOVERY_FILE);
}

void ekmfs_volume_release(int backing_fd, struct ekmfs_mount_lock *lock)
{
	if (!lock)
		return;
	if (remove_meta(backing_fd, EKMFS_HOLDER_FILE) < 0)
		ekmfs_log(EKMFS_LOG_WARN, "cannot remove the holder record: the next mount "
			  "will check the files changed since this one started");
	close(lock->fd);       /* releases the lock */
	free(lock);
}

int ekmfs_volume_holder(int backing_fd, struct ekmfs_holder *h, bool *live, bool *pending)
{
	struct ekmfs_holder mark;
	int fd, ret;

	*live = false;
	*pending = holder_read(backing_fd, EKMFS_RECOVERY_FILE, &mark) == 0;
	ret = holder_read(backing_fd, EKMFS_HOLDER_FILE, h);
	if (ret < 0)
		return ret;
	fd = lock_open(backing_fd, false);
	if (fd >= 0) {
		*live = lock_held(fd) == 1;
		close(fd);
	}
	if (!*live)
		*pending = true;
	return 0;
}
