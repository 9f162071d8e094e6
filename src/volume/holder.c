/*
 * holder.c - the mount lock and the holder record of a volume (holder.h).
 *
 * Divisions:
 *   1. the holder record (JSON in .ekmfs/holder) and the recovery mark
 *   2. the lock (an OFD lock on .ekmfs/mount.lock)
 *   3. shared holders
 *   4. take, recovered, release, look
 *   5. the lock bytes of a backing file (claim, wanted)
 *
 * The lock is an OFD (open file description) lock: it belongs to the
 * daemon's descriptor, not to a thread or a forked child, works across
 * processes and, through POSIX locks, across the hosts of a distributed
 * file system that supports them (NFSv4, GlusterFS, CephFS). The holder
 * record says who holds it, for the refusal message and ekmfs-admin
 * status; it is written after the lock is taken and removed before it is
 * released, so a record without a lock holder means a daemon died.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
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
	int fd;                 /* mount.lock: write lock, or read lock when shared */
	bool shared;
	int rec_fd;             /* shared: our record, write-locked while we live */
	char name[256];         /* our record in .ekmfs */
};

/* ---- 1. the holder record and the recovery mark ---- */

#define HOLDER_FORMAT "ekmfs-holder"

static int holder_read(int backing_fd, const char *name, struct ekmfs_holder *h)
{
	char rel[PATH_MAX], *text = NULL;
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

/* Byte at of fd's file: 1 when locked by someone else (another open file
 * description), 0 when free, -errno. */
static int byte_held(int fd, off_t at)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at,
			    .l_len = 1 };

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

/* ---- 3. shared holders ----
 *
 * In shared mode (docs/SHARED.md) every daemon holds a read lock on
 * mount.lock, so exclusive and shared mounts exclude each other, and writes
 * its own record .ekmfs/holder.HOST.PID, on which it keeps a write lock:
 * a record whose lock nobody holds is a shared daemon that died. */

#define SHARED_PREFIX EKMFS_HOLDER_FILE "."

static void shared_name(const struct ekmfs_holder *h, char *name, size_t len)
{
	snprintf(name, len, SHARED_PREFIX "%.200s.%ld", h->host, h->pid);
}

/* Calls fn for every shared holder record; stops at fn's nonzero. */
int ekmfs_volume_shared_each(int backing_fd, int (*fn)(const struct ekmfs_holder *h,
						       const char *name, bool live, void *arg),
			     void *arg)
{
	int dfd = openat(backing_fd, EKMFS_META_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;
	int ret = 0;

	if (dfd < 0)
		return -errno;
	dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return -errno;
	}
	while (!ret && (d = readdir(dir))) {
		struct ekmfs_holder h;
		int fd;
		bool live = false;

		if (strncmp(d->d_name, SHARED_PREFIX, strlen(SHARED_PREFIX)) != 0 ||
		    strstr(d->d_name, ".tmp"))
			continue;
		if (holder_read(backing_fd, d->d_name, &h) < 0)
			continue;
		fd = openat(dfd, d->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

			live = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
			close(fd);
		}
		ret = fn(&h, d->d_name, live, arg);
	}
	closedir(dir);
	return ret;
}

struct dead_scan {
	int backing_fd;
	bool found;
	struct timespec since;
	struct ekmfs_holder live;       /* a live one, for messages */
	bool any_live;
	size_t nlive;
};

static int scan_one(const struct ekmfs_holder *h, const char *name, bool live, void *arg)
{
	struct dead_scan *s = arg;

	(void)name;
	if (live) {
		if (!s->any_live)
			s->live = *h;
		s->any_live = true;
		s->nlive++;
		return 0;
	}
	if (!s->found || h->since.tv_sec < s->since.tv_sec)
		s->since = h->since;
	s->found = true;
	return 0;
}

static int remove_dead(const struct ekmfs_holder *h, const char *name, bool live, void *arg)
{
	(void)h;
	if (!live)
		(void)ekmfs_meta_remove(*(int *)arg, name);
	return 0;
}

/* ---- 4. take, recovered, release, look ---- */

static void busy_message(int backing_fd, struct ekmfs_holder *other)
{
	struct dead_scan s = { .backing_fd = backing_fd };

	if (holder_read(backing_fd, EKMFS_HOLDER_FILE, other) == 0) {
		ekmfs_seterr("the volume is already mounted by %s (pid %ld)%s%s: one daemon "
			     "at a time (or -o shared on every host)", other->host,
			     other->pid, other->mountpoint[0] ? " at " : "", other->mountpoint);
		return;
	}
	(void)ekmfs_volume_shared_each(backing_fd, scan_one, &s);
	if (s.any_live) {
		*other = s.live;
		ekmfs_seterr("the volume is mounted in shared mode by %s (pid %ld)%s%s%s: "
			     "mount it with -o shared too, or unmount those first",
			     other->host, other->pid, other->mountpoint[0] ? " at " : "",
			     other->mountpoint, s.nlive > 1 ? " and others" : "");
		return;
	}
	snprintf(other->host, sizeof(other->host), "unknown host");
	ekmfs_seterr("the volume is already mounted by another daemon (no holder record "
		     "yet): one daemon at a time (or -o shared on every host)");
}

static int take(int backing_fd, const char *mountpoint, bool shared,
		struct ekmfs_mount_lock **out, bool *recover, struct timespec *since,
		struct ekmfs_holder *other)
{
	struct flock fl = whole_first_byte(F_WRLCK);
	struct ekmfs_holder me = { 0 }, mark;
	struct ekmfs_mount_lock *lock;
	struct dead_scan dead = { .backing_fd = backing_fd };
	bool alone = true;
	char name[256];
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
	ret = fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
	/* Shared: other shared daemons hold read locks; join them. The first
	 * one takes the write lock, so that it recovers alone (ekmfs_volume_share
	 * turns it into a read lock once the recovery is done). */
	if (shared && (ret == -EAGAIN || ret == -EACCES)) {
		fl = whole_first_byte(F_RDLCK);
		ret = fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
		alone = false;
	}
	if (ret < 0) {
		ret = ret == -EAGAIN || ret == -EACCES ? -EBUSY : ret;
		if (ret == -EBUSY)
			busy_message(backing_fd, other);
		else
			ekmfs_seterr("cannot lock .ekmfs/%s: %s", EKMFS_MOUNT_LOCK_FILE,
				     strerror(-ret));
		close(fd);
		return ret;
	}
	if (!alone)
		goto record;
	/* Locked alone. A record left behind, or an unfinished recovery, means
	 * the last holder died: its files need settling from when it started. */
	if (holder_read(backing_fd, EKMFS_RECOVERY_FILE, &mark) == 0) {
		*recover = true;
		*since = mark.since;
	}
	(void)ekmfs_volume_shared_each(backing_fd, scan_one, &dead);
	if (dead.found) {
		if (!*recover || dead.since.tv_sec < since->tv_sec)
			*since = dead.since;
		*recover = true;
	}
	if (holder_read(backing_fd, EKMFS_HOLDER_FILE, other) == 0) {
		if (!*recover || other->since.tv_sec < since->tv_sec)
			*since = other->since;
		*recover = true;
	}
	if (*recover) {
		mark = *other;
		if (!mark.host[0])
			snprintf(mark.host, sizeof(mark.host), "shared daemons");
		mark.since = *since;
		ret = holder_write(backing_fd, EKMFS_RECOVERY_FILE, &mark, true);
		if (ret < 0) {
			ekmfs_seterr("cannot write the recovery mark .ekmfs/%s: %s",
				     EKMFS_RECOVERY_FILE, strerror(-ret));
			close(fd);
			return ret;
		}
		/* The mark stands for the dead ones now. */
		(void)ekmfs_volume_shared_each(backing_fd, remove_dead, &backing_fd);
		if (shared)
			(void)ekmfs_meta_remove(backing_fd, EKMFS_HOLDER_FILE);
	}
record:
	if (gethostname(me.host, sizeof(me.host) - 1) < 0)
		snprintf(me.host, sizeof(me.host), "localhost");
	me.pid = (long)getpid();
	snprintf(me.mountpoint, sizeof(me.mountpoint), "%s", mountpoint ? mountpoint : "");
	me.started = time(NULL);
	me.shared = shared;
	if (shared)
		shared_name(&me, name, sizeof(name));
	else
		snprintf(name, sizeof(name), "%s", EKMFS_HOLDER_FILE);
	ret = holder_write(backing_fd, name, &me, false);
	if (ret < 0) {
		ekmfs_seterr("cannot write the holder record .ekmfs/%s: %s", name,
			     strerror(-ret));
		close(fd);
		return ret;
	}
	lock = calloc(1, sizeof(*lock));
	if (!lock) {
		(void)ekmfs_meta_remove(backing_fd, name);
		close(fd);
		return -ENOMEM;
	}
	lock->fd = fd;
	lock->rec_fd = -1;
	lock->shared = shared;
	snprintf(lock->name, sizeof(lock->name), "%s", name);
	if (shared) {
		/* Our record's own lock says we are alive. */
		char rel[320];
		struct flock rl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

		snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, name);
		lock->rec_fd = openat(backing_fd, rel, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (lock->rec_fd < 0 || fcntl(lock->rec_fd, F_OFD_SETLK, &rl) < 0) {
			ret = -errno;
			ekmfs_seterr("cannot lock the holder record .ekmfs/%s: %s", name,
				     strerror(errno));
			ekmfs_volume_release(backing_fd, lock);
			return ret;
		}
	}
	*out = lock;
	return 0;
}

int ekmfs_volume_take(int backing_fd, const char *mountpoint, struct ekmfs_mount_lock **out,
		      bool *recover, struct timespec *since, struct ekmfs_holder *other)
{
	return take(backing_fd, mountpoint, false, out, recover, since, other);
}

int ekmfs_volume_take_shared(int backing_fd, const char *mountpoint,
			     struct ekmfs_mount_lock **out, bool *recover,
			     struct timespec *since, struct ekmfs_holder *other)
{
	return take(backing_fd, mountpoint, true, out, recover, since, other);
}

int ekmfs_volume_share(struct ekmfs_mount_lock *lock)
{
	struct flock fl = whole_first_byte(F_RDLCK);

	if (!lock->shared)
		return 0;
	return fcntl(lock->fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

int ekmfs_volume_recovered(int backing_fd)
{
	return ekmfs_meta_remove(backing_fd, EKMFS_RECOVERY_FILE);
}

void ekmfs_volume_release(int backing_fd, struct ekmfs_mount_lock *lock)
{
	if (!lock)
		return;
	if (ekmfs_meta_remove(backing_fd, lock->name) < 0)
		ekmfs_log(EKMFS_LOG_WARN, "cannot remove the holder record: the next mount "
			  "will check the files changed since this one started");
	if (lock->rec_fd >= 0)
		close(lock->rec_fd);
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
		*live = byte_held(fd, 0) == 1;
		close(fd);
	}
	if (!*live)
		*pending = true;
	return 0;
}

/* ---- 5. the lock bytes of a backing file ---- */

static int file_lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start,
			    .l_len = len };

	while (fcntl(fd, cmd, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int ekmfs_file_lock_claim(int fd, off_t start, off_t len)
{
	int ret = file_lock(fd, F_OFD_SETLK, F_WRLCK, start, len);

	if (ret != -EAGAIN && ret != -EACCES)
		return ret;
	/* Held: say we wait (a shared daemon polls for it), then wait. */
	ret = file_lock(fd, F_OFD_SETLKW, F_RDLCK, EKMFS_FILE_LOCK_WANT, 1);
	if (ret < 0)
		return ret;
	ret = file_lock(fd, F_OFD_SETLKW, F_WRLCK, start, len);
	(void)file_lock(fd, F_OFD_SETLK, F_UNLCK, EKMFS_FILE_LOCK_WANT, 1);
	return ret;
}

int ekmfs_file_lease_wanted(int fd)
{
	return byte_held(fd, EKMFS_FILE_LOCK_WANT);
}
