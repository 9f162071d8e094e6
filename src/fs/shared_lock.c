/*
 * shared_lock.c - `ekmfs-admin lock` is volume-wide in shared mode.
 *
 * Owns: the lock marks .ekmfs/locked (every tenant) and .ekmfs/locked.TENANT
 * in the backing store, and the thread that applies other daemons' marks
 * here. The control socket reaches one daemon only (the one on the host,
 * for the volume); in shared mode that daemon, once locked, writes the mark
 * (atomically, durably: ekmfs_meta_replace), and every daemon of the volume
 * polls the marks every EFS_SHARED_POLL_MS: a new mark locks it (keys
 * dropped, open files' DEKs wiped: control.c), a mark gone unlocks it
 * (keys fetched again; when the mark of every tenant goes, only the
 * tenants without a mark of their own: unlocking one tenant while all are
 * locked leaves marks for the others, split_all_mark). So a lock on any
 * host makes opens fail with ENOKEY on all within one poll interval plus
 * the backing store's metadata delay
 * (none on a GlusterFS volume set up as docs/SHARED.md says): 2 s stated.
 * The lock is audited once, by the daemon that was asked; the others log it.
 *
 * Divisions: the marks; applying them; the thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/keyring.h"
#include "ekmfs/util.h"
#include "fs.h"

#define MARK "locked"
#define SCOPES_MAX 64
#define SCOPE_LEN 128

static struct {
	pthread_mutex_t mu;     /* the applied scopes; one tick or mark at a time */
	pthread_cond_t cv;
	pthread_t thread;
	bool running, stop;
	struct efs_data *fs;
	/* Scopes this daemon is locked for by a mark ("" = every tenant). */
	char applied[SCOPES_MAX][SCOPE_LEN];
	size_t napplied;
} sl = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* ---- the marks ---- */

static bool scope_ok(const char *tenant)
{
	return !tenant || (tenant[0] && tenant[0] != '.' && !strchr(tenant, '/') &&
			   strlen(tenant) < SCOPE_LEN);
}

static void mark_name(const char *scope, char *name, size_t len)
{
	if (scope && scope[0])
		snprintf(name, len, MARK ".%.*s", SCOPE_LEN - 1, scope);  /* scope_ok */
	else
		snprintf(name, len, MARK);
}

static int mark_remove(int backing_fd, const char *name)
{
	char rel[SCOPE_LEN + 32];

	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, name);
	return unlinkat(backing_fd, rel, 0) < 0 && errno != ENOENT ? -errno : 0;
}

static bool applied_has(const char *scope)
{
	for (size_t i = 0; i < sl.napplied; i++)
		if (strcmp(sl.applied[i], scope) == 0)
			return true;
	return false;
}

static void applied_add(const char *scope)
{
	size_t n = strnlen(scope, SCOPE_LEN);

	/* A scope that does not fit was never a mark's name (release -O3
	 * warns about a snprintf here that it cannot bound). */
	if (applied_has(scope) || sl.napplied == SCOPES_MAX || n == SCOPE_LEN)
		return;
	memcpy(sl.applied[sl.napplied], scope, n);
	sl.applied[sl.napplied++][n] = '\0';
}

static void applied_del(const char *scope)
{
	for (size_t i = 0; i < sl.napplied; i++) {
		if (strcmp(sl.applied[i], scope) == 0) {
			memcpy(sl.applied[i], sl.applied[--sl.napplied], SCOPE_LEN);
			return;
		}
	}
}

/* The tenants of the volume, for marks of their own. */
static size_t tenant_names(struct efs_data *fs, struct ekmfs_tenant_state *t)
{
	size_t n = ekmfs_keys_tenant_states(fs->keys, t, EKMFS_MAX_TENANTS);

	return n < EKMFS_MAX_TENANTS ? n : EKMFS_MAX_TENANTS;
}

static int mark_write(struct efs_data *fs, const char *name)
{
	char text[512], host[256] = "";

	(void)gethostname(host, sizeof(host) - 1);
	snprintf(text, sizeof(text), "{ \"format\": \"ekmfs-lock\", \"version\": 1, "
		 "\"host\": \"%s\", \"pid\": %ld, \"time\": %lld }\n", host,
		 (long)getpid(), (long long)time(NULL));
	return ekmfs_meta_replace(fs->backing_fd, name, text);
}

/* One tenant is unlocked while every tenant was: the others stay locked on
 * every host, by marks of their own, and the mark of every tenant goes.
 * Caller holds sl.mu. */
static int split_all_mark(struct efs_data *fs, const char *unlocked)
{
	static struct ekmfs_tenant_state t[EKMFS_MAX_TENANTS];
	char name[SCOPE_LEN + 16];
	size_t n = tenant_names(fs, t);
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		if (strcmp(t[i].name, unlocked) == 0 || !scope_ok(t[i].name) ||
		    !ekmfs_keys_locked(fs->keys, t[i].name))
			continue;
		mark_name(t[i].name, name, sizeof(name));
		ret = mark_write(fs, name);
		if (ret == 0)
			applied_add(t[i].name);
	}
	if (ret == 0)
		ret = mark_remove(fs->backing_fd, MARK);
	if (ret == 0)
		applied_del("");
	return ret;
}

void efs_shared_mark_lock(struct efs_data *fs, const char *tenant, bool locked, char *msg,
			  size_t len)
{
	char name[SCOPE_LEN + 16];
	size_t used = strlen(msg);
	int ret = 0;

	if (!fs->shared)
		return;
	if (!scope_ok(tenant)) {
		snprintf(msg + used, len - used, " (on this host only: the tenant name cannot "
			 "name a lock mark)");
		return;
	}
	mark_name(tenant, name, sizeof(name));
	pthread_mutex_lock(&sl.mu);
	if (locked) {
		ret = mark_write(fs, name);
		if (ret == 0)
			applied_add(tenant ? tenant : "");
	} else if (!tenant) {
		/* Every tenant: every mark goes. */
		for (size_t i = sl.napplied; i-- > 0;) {
			mark_name(sl.applied[i], name, sizeof(name));
			if (mark_remove(fs->backing_fd, name) < 0)
				ret = -errno;
		}
		mark_name(NULL, name, sizeof(name));
		if (mark_remove(fs->backing_fd, name) < 0)
			ret = -errno;
		sl.napplied = 0;
	} else {
		if (applied_has(""))
			ret = split_all_mark(fs, tenant);
		if (ret == 0)
			ret = mark_remove(fs->backing_fd, name);
		applied_del(tenant);
	}
	pthread_mutex_unlock(&sl.mu);
	if (ret < 0) {
		ekmfs_log(EKMFS_LOG_ERR, "shared mode: cannot %s the lock mark .ekmfs/%s: %s",
			  locked ? "write" : "remove", name, strerror(-ret));
		snprintf(msg + used, len - used, " (on this host only: the lock mark .ekmfs/%s "
			 "could not be %s: %s)", name, locked ? "written" : "removed",
			 strerror(-ret));
	} else {
		snprintf(msg + used, len - used, locked ? " (every mount of the volume within "
			 "%d s)" : " (every mount of the volume)", 2 * EFS_SHARED_POLL_MS / 1000);
	}
}

/* ---- applying them ---- */

/* The scopes marked now; *n = SIZE_MAX when the directory cannot be read. */
static void marks_read(int backing_fd, char scopes[][SCOPE_LEN], size_t *n)
{
	int dfd = openat(backing_fd, EKMFS_META_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;

	*n = SIZE_MAX;
	if (dfd < 0)
		return;
	dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return;
	}
	*n = 0;
	while ((d = readdir(dir)) && *n < SCOPES_MAX) {
		if (strcmp(d->d_name, MARK) == 0)
			scopes[(*n)++][0] = '\0';
		else if (strncmp(d->d_name, MARK ".", strlen(MARK) + 1) == 0 &&
			 !strstr(d->d_name, ".tmp") &&
			 strlen(d->d_name + strlen(MARK) + 1) < SCOPE_LEN)
			snprintf(scopes[(*n)++], SCOPE_LEN, "%s", d->d_name + strlen(MARK) + 1);
	}
	closedir(dir);
}

/* A mark gone: unlock its scope here. The mark of every tenant unlocks
 * only the tenants without a mark of their own (marked: the n scopes). */
static int unlock_scope(struct efs_data *fs, const char *scope, char marked[][SCOPE_LEN],
			size_t n, char *msg, size_t len)
{
	static struct ekmfs_tenant_state t[EKMFS_MAX_TENANTS];
	size_t nt;
	int ret = 0;

	if (scope[0])
		return efs_control_unlock(fs, scope, msg, len);
	nt = tenant_names(fs, t);
	for (size_t i = 0; i < nt; i++) {
		bool own = false;
		int r;

		for (size_t j = 0; j < n && !own; j++)
			own = strcmp(marked[j], t[i].name) == 0;
		if (own)
			continue;
		r = efs_control_unlock(fs, t[i].name, msg, len);
		if (r && !ret)
			ret = r;
	}
	if (ret == 0)
		snprintf(msg, len, "unlocked every tenant without a lock mark of its own");
	return ret;
}

static void tick(struct efs_data *fs)
{
	static char now[SCOPES_MAX][SCOPE_LEN];
	char msg[400];
	size_t n;

	pthread_mutex_lock(&sl.mu);
	marks_read(fs->backing_fd, now, &n);
	if (n == SIZE_MAX)
		goto out;       /* unreadable now: change nothing */
	for (size_t i = 0; i < n; i++) {
		const char *scope = now[i];

		if (applied_has(scope))
			continue;
		msg[0] = '\0';
		if (efs_control_lock(fs, scope[0] ? scope : NULL, msg, sizeof(msg)) == 0) {
			applied_add(scope);
			ekmfs_log(EKMFS_LOG_WARN, "shared mode: the volume was locked on another "
				  "host (.ekmfs/%s%s%s): %s", MARK, scope[0] ? "." : "", scope, msg);
		}
	}
	for (size_t i = sl.napplied; i-- > 0;) {
		char scope[SCOPE_LEN];
		bool marked = false;

		for (size_t j = 0; j < n && !marked; j++)
			marked = strcmp(now[j], sl.applied[i]) == 0;
		if (marked)
			continue;
		snprintf(scope, sizeof(scope), "%s", sl.applied[i]);
		msg[0] = '\0';
		if (unlock_scope(fs, scope, now, n, msg, sizeof(msg)) == 0) {
			applied_del(scope);
			ekmfs_log(EKMFS_LOG_WARN, "shared mode: the volume was unlocked on another "
				  "host: %s", msg);
		} else {
			ekmfs_log(EKMFS_LOG_ERR, "shared mode: unlocked on another host, but not "
				  "here: %s", ekmfs_lasterr());
		}
	}
out:
	pthread_mutex_unlock(&sl.mu);
}

/* ---- the thread ---- */

static void *poller(void *arg)
{
	struct efs_data *fs = arg;

	pthread_mutex_lock(&sl.mu);
	while (!sl.stop) {
		struct timespec until;

		ekmfs_deadline_ms(&until, EFS_SHARED_POLL_MS);
		pthread_cond_timedwait(&sl.cv, &sl.mu, &until);
		if (sl.stop)
			break;
		pthread_mutex_unlock(&sl.mu);
		tick(fs);
		pthread_mutex_lock(&sl.mu);
	}
	pthread_mutex_unlock(&sl.mu);
	return NULL;
}

int efs_shared_start(struct efs_data *fs)
{
	int ret;

	if (!fs->shared)
		return 0;
	sl.fs = fs;
	sl.stop = false;
	tick(fs);               /* a volume locked elsewhere is locked from the start */
	ret = pthread_create(&sl.thread, NULL, poller, fs);
	if (ret) {
		ekmfs_log(EKMFS_LOG_ERR, "shared mode: cannot start the lock poller: %s",
			  strerror(ret));
		return -ret;
	}
	sl.running = true;
	return 0;
}

void efs_shared_stop(void)
{
	if (!sl.running)
		return;
	pthread_mutex_lock(&sl.mu);
	sl.stop = true;
	pthread_cond_signal(&sl.cv);
	pthread_mutex_unlock(&sl.mu);
	pthread_join(sl.thread, NULL);
	sl.running = false;
}
