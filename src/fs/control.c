/*
 * control.c - the daemon's control socket and the volume lock.
 *
 * Owns: the unix socket CONTROL_DIR/<volume id>.sock (directory 0700, socket
 * 0600, root only: the peer's uid is checked with SO_PEERCRED as well), its
 * one-line protocol, what `lock` and `unlock` do to the running daemon, and
 * the per-tenant key cache states it reports (`tenants`).
 *
 * Protocol: the client sends one line, the daemon answers one line and
 * closes the connection (the line is read and parsed by control_line.c,
 * strictly: one space between words, tenant names as the configuration
 * allows them, seconds without sign or leading zeros).
 *   lock [TENANT]     ->  ok locked ...      | error ERRNO-NAME message
 *   unlock [TENANT]   ->  ok unlocked ...    | error ...
 *   status            ->  ok locked|unlocked
 *   tenants           ->  ok [{"tenant":"default","id":1,"current_version":1,
 *                            "cache":"cached","expires_in":287.5,"uses":3,
 *                            "use_limit":1000000,"enforced":true},...]
 *                         (one line of JSON, any length; ekmfs-admin status)
 *   fence SECONDS     ->  ok fenced for N s | ok fence released (0)
 *                         (ekmfs-rotate while it re-wraps: fence.c)
 *   inodes            ->  ok {"inodes":N,"inode_states":N,"inode_bytes":N,
 *                            "inode_size":N,"file_handles":true,
 *                            "descriptors":N,"descriptor_limit":N,
 *                            "fd_cache":{"held":N,"cached":N,"pinned":N,
 *                            "kept":N,"limit":N,"hits":N,"misses":N,
 *                            "evictions":N,"budget":N,"refused":N}}
 *                         (ekmfs-admin status)
 * cache is one of locked, cached, outage, refused, expired, empty (keys.h);
 * expires_in is the seconds until the KEK is fetched again.
 *
 * Lock: the key manager drops the tenant's cached KEKs and refuses them
 * (ENOKEY) until unlock; then every open file's DEK is wiped (each inode's
 * ci_lock taken in turn, so no read or write is using it meanwhile) and the
 * kernel's cached pages of those files are invalidated, so an open handle's
 * next read or write has to unwrap the DEK again and fails with ENOKEY. A
 * DEK unwrapped concurrently with the lock is caught by the lock generation
 * (efs_data.lock_gen): the loader re-checks it after installing the DEK.
 * Files of other tenants simply unwrap their DEK again on next use. Unlock
 * re-fetches the current KEKs through the provider and lets opens, and the
 * handles opened before the lock, work again.
 *
 * Divisions: lock and unlock; tenant states; inodes and descriptors; the socket (path, listen); the
 * thread and the protocol; start and stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ekmfs/audit.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "control_line.h"
#include "fs.h"
#include "service.h"

static struct {
	int sock, wake_rd, wake_wr;
	pthread_t thread;
	bool running;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct efs_data *fs;
} ctl = { .sock = -1, .wake_rd = -1, .wake_wr = -1 };

/* ---- lock and unlock ---- */

int efs_control_lock(struct efs_data *fs, const char *tenant, char *msg, size_t len)
{
	int ret;

	ekmfs_clearerr();
	ret = ekmfs_keys_lock(fs->keys, tenant);
	if (ret)
		return ret;
	__atomic_fetch_add(&fs->lock_gen, 1, __ATOMIC_SEQ_CST);
	/* A state is loaded only while a handle is open (or inside one
	 * operation, which the lock generation catches). */
	(void)efs_close_open_states(fs, false, NULL);
	snprintf(msg, len, "locked %s: cached keys and open files' keys dropped",
		 tenant ? tenant : "every tenant");
	return 0;
}

/* Unlock fetches the current KEKs again. When the keyring is wrapped by
 * another CMK than the running configuration gives (EKEYREJECTED: after
 * ekmfs-rotate cmk, with key_file or key_id pointed at the new key in the
 * file), the configuration is re-read as SIGHUP does, and unlock tried
 * once more. */
int efs_control_unlock(struct efs_data *fs, const char *tenant, char *msg, size_t len)
{
	char why[600];
	int ret;

	ekmfs_clearerr();
	ret = ekmfs_keys_unlock(fs->keys, tenant);
	if (ret == -EKEYREJECTED) {
		ekmfs_log(EKMFS_LOG_INFO, "unlock: %s; re-reading the configuration",
			  ekmfs_lasterr());
		ekmfs_clearerr();
		ret = efs_service_reload();
		if (ret) {
			snprintf(why, sizeof(why), "%s", ekmfs_lasterr());
			ekmfs_seterr("%s - still locked (the configuration file was re-read "
				     "and refused)", why);
			return ret;
		}
		ekmfs_clearerr();
		ret = ekmfs_keys_unlock(fs->keys, tenant);
		if (ret) {
			snprintf(why, sizeof(why), "%s", ekmfs_lasterr()[0] ? ekmfs_lasterr() :
				 strerror(-ret));
			ekmfs_seterr("%s - still locked (the configuration file was re-read)",
				     why);
			return ret;
		}
		snprintf(msg, len, "unlocked %s: keys fetched again (the configuration was "
			 "re-read: the keyring is wrapped by another CMK)",
			 tenant ? tenant : "every tenant");
		return 0;
	}
	if (ret)
		return ret;
	snprintf(msg, len, "unlocked %s: keys fetched again", tenant ? tenant : "every tenant");
	return 0;
}

/* ---- tenant states ---- */

/* The `tenants` answer: "ok <JSON array>\n" in *out (malloc'd). */
static int tenants_reply(struct efs_data *fs, char **out, size_t *count)
{
	struct ekmfs_tenant_state *st = NULL;
	json_object *arr = NULL;
	size_t n = 0, max = EKMFS_MAX_TENANTS;
	int ret = -ENOMEM;

	ekmfs_clearerr();       /* an error here is only ENOMEM: no stale message */
	/* Tenants may be added (a reload) between the two calls: ask again. */
	for (;;) {
		struct ekmfs_tenant_state *grown = realloc(st, max * sizeof(*st));

		if (!grown)
			goto out;
		st = grown;
		n = ekmfs_keys_tenant_states(fs->keys, st, max);
		if (n <= max)
			break;
		max = n;
	}
	arr = json_object_new_array();
	if (!arr)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();
		char secs[32];

		if (!o || json_object_array_add(arr, o) < 0) {
			json_object_put(o);
			goto out;
		}
		json_object_object_add(o, "tenant", json_object_new_string(st[i].name));
		json_object_object_add(o, "id", json_object_new_int64(st[i].id));
		json_object_object_add(o, "current_version",
				       json_object_new_int64(st[i].current_version));
		json_object_object_add(o, "cache", json_object_new_string(st[i].cache));
		/* Tenths of a second are plenty for a human or a script. */
		snprintf(secs, sizeof(secs), "%.1f", st[i].expires_in);
		json_object_object_add(o, "expires_in",
				       json_object_new_double_s(st[i].expires_in, secs));
		json_object_object_add(o, "uses", json_object_new_int64((int64_t)st[i].uses));
		json_object_object_add(o, "use_limit",
				       json_object_new_int64((int64_t)st[i].use_limit));
		json_object_object_add(o, "enforced", json_object_new_boolean(st[i].enforced));
	}
	/* PLAIN: no newline inside, so the answer stays one line. */
	if (asprintf(out, "ok %s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
					JSON_C_TO_STRING_NOSLASHESCAPE)) < 0) {
		*out = NULL;
		goto out;
	}
	*count = n;
	ret = 0;
out:
	json_object_put(arr);
	free(st);
	return ret;
}

/* ---- the socket ---- */

static int listen_socket(struct efs_data *fs)
{
	const struct ekmfs_volume *vol = ekmfs_keys_volume(fs->keys);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, probe;

	if (ekmfs_volume_control_path(fs->cfg->control_dir, vol, ctl.path, sizeof(ctl.path))) {
		ekmfs_log(EKMFS_LOG_ERR, "control socket: directory %s: path too long",
			  fs->cfg->control_dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(fs->cfg->control_dir, 0700) < 0 && errno != EEXIST) {
		ekmfs_log(EKMFS_LOG_ERR, "control socket: cannot create %s: %s",
			  fs->cfg->control_dir, strerror(errno));
		return -errno;
	}
	memcpy(sa.sun_path, ctl.path, strlen(ctl.path) + 1);
	/* Another daemon serving the same volume keeps its socket. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(probe);
		ekmfs_log(EKMFS_LOG_WARN, "control socket %s is served by another ekmfs; "
			  "ekmfs-admin lock reaches that one", ctl.path);
		ctl.path[0] = '\0';
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	unlink(ctl.path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(ctl.path, 0600) < 0 || listen(fd, 8) < 0) {
		int err = errno;

		ekmfs_log(EKMFS_LOG_ERR, "control socket %s: %s", ctl.path, strerror(err));
		if (fd >= 0)
			close(fd);
		unlink(ctl.path);
		ctl.path[0] = '\0';
		return -err;
	}
	return fd;
}

/* ---- inodes and descriptors ---- */

/* The `inodes` answer: the inode table and the descriptors it costs. */
static int inodes_reply(struct efs_data *fs, char **out)
{
	struct efs_table_stats ts;
	struct efs_fdcache_stats fc;

	efs_table_stats(fs, &ts);
	efs_fdcache_stats(fs, &fc);
	if (asprintf(out, "ok {\"inodes\":%zu,\"inode_states\":%zu,\"inode_bytes\":%zu,"
		     "\"inode_size\":%zu,\"file_handles\":%s,\"descriptors\":%ld,"
		     "\"descriptor_limit\":%ld,\"fd_cache\":{\"held\":%zu,\"cached\":%zu,"
		     "\"pinned\":%zu,\"kept\":%zu,\"limit\":%zu,\"hits\":%llu,"
		     "\"misses\":%llu,\"evictions\":%llu,\"budget\":%zu,\"refused\":%llu}}\n",
		     ts.inodes, ts.states, ts.bytes, ts.inode_size, ts.handles ? "true" : "false",
		     efs_fd_count(), efs_fd_limit(), fc.held, fc.cached, fc.pinned, fc.kept,
		     fc.limit, (unsigned long long)fc.hits, (unsigned long long)fc.misses,
		     (unsigned long long)fc.evictions, fc.budget,
		     (unsigned long long)fc.refused) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- the thread and the protocol ---- */

static void audit_control(struct efs_data *fs, const char *event, const char *tenant,
			  const struct ucred *cr, int ret)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;

	ev.event = event;
	ev.tenant = tenant;
	ev.outcome = ret ? "failure" : "success";
	ev.reason = ret ? (ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-ret)) : NULL;
	ev.uid = cr->uid;
	ev.pid = cr->pid;
	ekmfs_audit_post(fs->audit, &ev);
}

static void handle(struct efs_data *fs, int c)
{
	struct timeval tv = { .tv_sec = 5 };
	char req[EFS_CTL_REQUEST_MAX + 1], reply[600], msg[400] = "", *long_reply = NULL;
	struct efs_ctl_request r;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	bool quiet = false;
	int ret = -EINVAL;

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		snprintf(reply, sizeof(reply), "error EPERM only root may use this socket\n");
		goto out;
	}
	efs_control_read_line(c, req);
	if (efs_control_parse(req, &r, reply, sizeof(reply)) < 0)
		goto out;
	switch (r.verb) {
	case EFS_CTL_LOCK:
		ret = efs_control_lock(fs, r.tenant, msg, sizeof(msg));
		if (ret == 0)           /* shared mode: every daemon of the volume */
			efs_shared_mark_lock(fs, r.tenant, true, msg, sizeof(msg));
		audit_control(fs, "lock", r.tenant, &cr, ret);
		break;
	case EFS_CTL_UNLOCK:
		ret = efs_control_unlock(fs, r.tenant, msg, sizeof(msg));
		if (ret == 0)
			efs_shared_mark_lock(fs, r.tenant, false, msg, sizeof(msg));
		audit_control(fs, "unlock", r.tenant, &cr, ret);
		break;
	case EFS_CTL_STATUS:
		ret = 0;
		snprintf(msg, sizeof(msg), "%s",
			 ekmfs_keys_locked(fs->keys, NULL) ? "locked" : "unlocked");
		break;
	case EFS_CTL_TENANTS: {
		size_t n = 0;

		ret = tenants_reply(fs, &long_reply, &n);
		/* What the log shows; the client gets long_reply. */
		snprintf(msg, sizeof(msg), "states of %zu tenant%s", n, n == 1 ? "" : "s");
		break;
	}
	case EFS_CTL_INODES:
		ret = inodes_reply(fs, &long_reply);
		quiet = true;           /* monitoring may poll it */
		snprintf(msg, sizeof(msg), "inode table and descriptors");
		break;
	case EFS_CTL_FENCE:
		ret = efs_fence_set(fs, r.fence_seconds);
		quiet = true;           /* renewed every few seconds */
		if (r.fence_seconds)
			snprintf(msg, sizeof(msg), "fenced for %u s", r.fence_seconds);
		else
			snprintf(msg, sizeof(msg), "fence released");
		break;
	}
	if (ret)
		snprintf(reply, sizeof(reply), "error %s %s\n", strerrorname_np(-ret) ?
			 strerrorname_np(-ret) : "EIO",
			 ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-ret));
	else
		snprintf(reply, sizeof(reply), "ok %s\n", msg);
	/* Monitoring may poll `tenants`; only what changes state is worth INFO. */
	ekmfs_log(long_reply || quiet ? EKMFS_LOG_DEBUG : EKMFS_LOG_INFO,
		  "control: '%s' from uid %u pid %d: %.*s", req,
		  (unsigned)cr.uid, (int)cr.pid, (int)strcspn(reply, "\n"), reply);
out:
	if (long_reply) {
		/* The answer may exceed the socket buffer: write it all. */
		for (size_t off = 0, len = strlen(long_reply); off < len;) {
			ssize_t w = write(c, long_reply + off, len - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;  /* the client went away or timed out */
			off += (size_t)w;
		}
	} else if (write(c, reply, strlen(reply)) < 0) {
		/* the client went away; nothing to tell it */
	}
	free(long_reply);
}

static void *control_main(void *arg)
{
	struct pollfd pfd[2] = { { .fd = ctl.sock, .events = POLLIN },
				 { .fd = ctl.wake_rd, .events = POLLIN } };

	(void)arg;
	for (;;) {
		int c;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		c = accept4(ctl.sock, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		handle(ctl.fs, c);
		close(c);
	}
	return NULL;
}

/* ---- start and stop ---- */

int efs_control_start(struct efs_data *fs)
{
	int fds[2], ret;

	ctl.fs = fs;
	ret = listen_socket(fs);
	if (ret < 0)
		return ret;
	ctl.sock = ret;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		ret = -errno;
		goto fail;
	}
	ctl.wake_rd = fds[0];
	ctl.wake_wr = fds[1];
	ret = -pthread_create(&ctl.thread, NULL, control_main, NULL);
	if (ret)
		goto fail;
	ctl.running = true;
	return 0;
fail:
	ekmfs_log(EKMFS_LOG_ERR, "control socket: %s", strerror(-ret));
	efs_control_stop();
	return ret;
}

void efs_control_stop(void)
{
	if (ctl.running) {
		if (write(ctl.wake_wr, "Q", 1) < 0) {
			/* the thread polls the pipe; a full pipe wakes it too */
		}
		pthread_join(ctl.thread, NULL);
		ctl.running = false;
	}
	if (ctl.sock >= 0)
		close(ctl.sock);
	if (ctl.path[0])
		unlink(ctl.path);
	if (ctl.wake_rd >= 0)
		close(ctl.wake_rd);
	if (ctl.wake_wr >= 0)
		close(ctl.wake_wr);
	ctl.sock = ctl.wake_rd = ctl.wake_wr = -1;
	ctl.path[0] = '\0';
}
