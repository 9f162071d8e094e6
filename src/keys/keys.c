/*
 * keys.c - the key hierarchy of one volume (include/ekmfs/keys.h).
 *
 * Owns: creating a volume (descriptor + keyring with the default tenant's
 * KEK v1), opening one (providers, current KEKs), the KEK cache, and the two
 * per-file operations: a header for a new file, the DEK of an existing one.
 *
 * Divisions:
 *   1. the key manager's state and its lock
 *   2. the KEK cache: lookup, load through the provider, keyring reload
 *   3. volume init (with its refusals: not empty, secrets inside BACKING)
 *   4. open / close
 *   5. file headers
 *   6. lock / unlock (ekmfs-admin lock), the provider for volume secrets
 *   7. tenants: applying the configuration, routing, cache states
 *
 * Locking: one rwlock (k->lock) guards the keyring copy, its stamp, the
 * tenant table and the cache. Lookups that hit take it shared and hold it
 * while the caller uses the cached KEK (one AES-GCM of 32 bytes), so a KEK
 * is never copied out of secure memory and never freed under a reader.
 * A miss takes it exclusive, re-reads the keyring if it changed on disk and
 * asks the provider to unwrap the record.
 *
 * Tenants (docs/TENANTS.md): a new file's path chooses its tenant through
 * the policy last applied (ekmfs_config_route); an existing file opens under
 * whichever tenant its header names, so a rename across tenants keeps it
 * readable. A tenant in the configuration but not in the keyring is created
 * by ekmfs_keys_apply_config (at mount and on every reload).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "ekmfs/aead.h"
#include "ekmfs/audit.h"
#include "ekmfs/http.h"
#include "ekmfs/keys.h"
#include "ekmfs/provider.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define DEFAULT_TENANT_ID 1

/* ---- 1. state ---- */

/* A tenant of the open volume: its own copy of its configuration (providers
 * keep a pointer to it) and its provider. */
struct key_tenant {
	uint32_t id;
	char name[EKMFS_NAME_MAX];
	struct ekmfs_tenant_config tc;  /* the running settings and policy */
	struct ekmfs_provider *prov;
	/* What prov was opened with: providers keep a pointer to it, so it
	 * lives as long as prov (a reload may replace both, section 7). */
	struct ekmfs_tenant_config *prov_tc;
	bool locked;                    /* ekmfs_keys_lock(); under k->lock */
};

/* A KEK in the cache is served until fresh_until (CLOCK_MONOTONIC seconds),
 * then unwrapped again through the provider (key_cache_ttl). If the
 * provider is unreachable the entry keeps serving, re-asked at most every
 * OUTAGE_RETRY seconds, until valid_until (last success + ttl +
 * outage_grace). If the provider refuses, the key is wiped and the entry
 * stays as a refusal (key NULL, err) until fresh_until, so a locked-out
 * tenant does not send one KMS request per open(). */
struct cached_kek {
	uint32_t tenant_id;
	uint32_t version;
	uint8_t *key;                   /* EKMFS_KEY_SIZE bytes, secure memory; NULL: refused */
	double fresh_until;
	double valid_until;
	int err;                        /* why refused (key NULL) */
	bool outage;                    /* serving through an outage */
	/* DEK wraps/unwraps served (atomic: counted under the shared lock)
	 * and the tenant's key_cache_uses when loaded (0: no limit). */
	uint64_t uses, use_limit;
};

#define OUTAGE_RETRY 5.0

struct ekmfs_keys {
	int backing_fd;                 /* owned by the caller */
	struct ekmfs_volume vol;
	pthread_rwlock_t lock;          /* guards every field below */
	struct ekmfs_keyring kr;
	uint64_t stamp[3];              /* of the keyring file kr was read from */
	struct key_tenant **tenants;
	size_t ntenants;
	struct cached_kek *cache;
	size_t ncache;
	/* The configuration last applied (ekmfs_keys_apply_config): routing of
	 * new files. NULL until then: everything goes to the default tenant. */
	struct ekmfs_config *policy;
	ekmfs_key_event_fn event_fn;    /* audit hook; set before use */
	void *event_arg;
	/* Metrics (ekmfs_keys_stats); updated with relaxed atomics, any lock. */
	uint64_t st_hits, st_misses, st_calls, st_errors, st_ns;
};

static void backing_path(int backing_fd, char *out, size_t outlen)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", backing_fd);
	n = readlink(link, out, outlen - 1);
	if (n <= 0)
		snprintf(out, outlen, "BACKING");
	else
		out[n] = '\0';
}

static struct key_tenant *tenant_by_id(struct ekmfs_keys *k, uint32_t id)
{
	for (size_t i = 0; i < k->ntenants; i++)
		if (k->tenants[i]->id == id)
			return k->tenants[i];
	return NULL;
}

/* ---- 2. the KEK cache ---- */

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct cached_kek *cache_find(struct ekmfs_keys *k, uint32_t tenant_id,
				     uint32_t version)
{
	for (size_t i = 0; i < k->ncache; i++)
		if (k->cache[i].tenant_id == tenant_id && k->cache[i].version == version)
			return &k->cache[i];
	return NULL;
}

static void cache_drop(struct ekmfs_keys *k, size_t i)
{
	ekmfs_secure_free(k->cache[i].key, EKMFS_KEY_SIZE);
	k->cache[i] = k->cache[--k->ncache];
}

static void stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* One provider call, counted and timed for the metrics. */
static int timed_unwrap(struct ekmfs_keys *k, struct key_tenant *kt,
			const struct ekmfs_wrap_context *ctx,
			const struct ekmfs_wrapped_kek *wrapped, uint8_t *key)
{
	struct timespec t0, t1;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = kt->prov->ops->unwrap(kt->prov, ctx, wrapped, key);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	stat_add(&k->st_calls, 1);
	if (ret)
		stat_add(&k->st_errors, 1);
	stat_add(&k->st_ns, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
				       (t1.tv_nsec - t0.tv_nsec)));
	return ret;
}

/* Unwrap (tenant id, version) from the keyring into the cache. Caller holds
 * the lock exclusive. -ENOKEY when the keyring has no usable record. */
static int kek_load(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version,
		    uint8_t **out)
{
	struct ekmfs_tenant_record *rec = ekmfs_keyring_tenant_by_id(&k->kr, tenant_id);
	struct key_tenant *kt = tenant_by_id(k, tenant_id);
	struct ekmfs_kek_record *kr;
	struct ekmfs_wrap_context ctx;
	struct cached_kek *grown;
	uint8_t *key;
	int ret;

	/* Tenant ids and KEK versions are never reused and their records are
	 * kept (destroyed ones too), so a header naming one the keyring never
	 * issued is corrupt or tampered, not merely lacking a key. */
	if (!rec) {
		ekmfs_seterr("the header names tenant id %u, which this volume's keyring never "
			     "issued (tampered header, or a keyring older than the file)", tenant_id);
		return -EBADMSG;
	}
	if (!kt) {
		ekmfs_seterr("tenant '%s' appeared in the keyring after the volume was "
			     "opened; remount to use it", rec->name);
		return -ENOKEY;
	}
	kr = ekmfs_tenant_kek(rec, version);
	if (!kr) {
		ekmfs_seterr("the header names tenant '%s' KEK v%u, which this volume's keyring "
			     "never issued (tampered header, or a keyring older than the file)",
			     rec->name, version);
		return -EBADMSG;
	}
	if (kr->state == EKMFS_KEK_DESTROYED) {
		ekmfs_seterr("tenant '%s' KEK v%u is destroyed", rec->name, version);
		return -ENOKEY;
	}
	grown = realloc(k->cache, (k->ncache + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	k->cache = grown;
	key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!key)
		return -ENOMEM;
	ctx = (struct ekmfs_wrap_context){ k->vol.volume_id, rec->name, version };
	ret = timed_unwrap(k, kt, &ctx, &kr->wrapped, key);
	if (ret) {
		ekmfs_secure_free(key, EKMFS_KEY_SIZE);
		return ret;
	}
	{
		double now = now_sec(), ttl = (double)kt->tc.key_cache_ttl;

		k->cache[k->ncache++] = (struct cached_kek){
			.tenant_id = tenant_id, .version = version, .key = key,
			.fresh_until = now + ttl,
			.valid_until = now + ttl + (double)kt->tc.outage_grace,
			.use_limit = kt->tc.key_cache_uses,
		};
	}
	*out = key;
	return 0;
}

/* Whether the keyring file differs from the one in memory. Any lock. */
static bool keyring_changed(struct ekmfs_keys *k)
{
	uint64_t stamp[3];

	if (ekmfs_keyring_stamp(k->backing_fd, stamp) < 0)
		return false;
	return memcmp(stamp, k->stamp, sizeof(stamp)) != 0;
}

/* Re-read the keyring if the file changed since we read it. Exclusive lock.
 * Providers copy what they need from their record at open, so replacing
 * k->kr leaves no provider pointing into the old one.
 * Cached KEKs whose record is gone or destroyed are dropped. */
static int keyring_refresh(struct ekmfs_keys *k)
{
	struct ekmfs_keyring fresh;
	uint64_t stamp[3];
	int ret;

	ret = ekmfs_keyring_stamp(k->backing_fd, stamp);
	if (ret)
		return 0; /* vanished or unreadable: keep serving what we have */
	if (memcmp(stamp, k->stamp, sizeof(stamp)) == 0)
		return 0;
	ret = ekmfs_keyring_read(k->backing_fd, &fresh);
	if (ret) {
		ekmfs_log(EKMFS_LOG_WARN, "keeping the keyring in memory: %s", ekmfs_lasterr());
		return 0;
	}
	ekmfs_keyring_free(&k->kr);
	k->kr = fresh;
	memcpy(k->stamp, stamp, sizeof(stamp));
	for (size_t i = k->ncache; i-- > 0;) {
		struct ekmfs_tenant_record *t = ekmfs_keyring_tenant_by_id(&k->kr,
									   k->cache[i].tenant_id);
		struct ekmfs_kek_record *r = t ? ekmfs_tenant_kek(t, k->cache[i].version) : NULL;
		if (!r || r->state == EKMFS_KEK_DESTROYED)
			cache_drop(k, i);
	}
	return 0;
}

static const char *tenant_name(struct ekmfs_keys *k, uint32_t tenant_id)
{
	struct key_tenant *kt = tenant_by_id(k, tenant_id);

	return kt ? kt->name : "?";
}

/* Tell the audit hook (if any) what the key service did. Any lock. */
static void key_event(struct ekmfs_keys *k, enum ekmfs_key_event ev, uint32_t tenant_id,
		      uint32_t version, const char *reason)
{
	struct ekmfs_tenant_record *rec;
	const char *ref = NULL;

	if (!k->event_fn)
		return;
	rec = ekmfs_keyring_tenant_by_id(&k->kr, tenant_id);
	if (rec) {
		struct ekmfs_kek_record *kr = ekmfs_tenant_kek(rec, version);

		if (kr)
			ref = kr->wrapped.cmk_ref;
	}
	k->event_fn(k->event_arg, ev, tenant_name(k, tenant_id), ref, version, reason);
}

void ekmfs_key_event_record(struct ekmfs_audit_event *ev, enum ekmfs_key_event kev,
			    const char *tenant, const char *cmk_ref, uint32_t kek_version,
			    const char *reason)
{
	static const char *const names[] = {
		[EKMFS_KEY_FETCHED] = "cache_fetch",
		[EKMFS_KEY_REFUSED] = "kms_refused",
		[EKMFS_KEY_OUTAGE] = "kms_outage_start",
		[EKMFS_KEY_RESTORED] = "kms_access_restored",
		[EKMFS_KEY_EXPIRED] = "cache_expire",
		[EKMFS_TENANT_CREATED] = "tenant_created",
		[EKMFS_CMK_SET] = "cmk_set",
		[EKMFS_TENANT_ENABLED] = "tenant_enabled",
		[EKMFS_TENANT_DISABLED] = "tenant_disabled",
	};

	ev->event = (size_t)kev < EKMFS_ARRAY_SIZE(names) && names[kev] ? names[kev] :
		    "key_event";
	ev->outcome = kev == EKMFS_KEY_REFUSED ? "refused" :
		      kev == EKMFS_KEY_OUTAGE ? "failure" : "success";
	ev->tenant = tenant;
	ev->key_ref = cmk_ref;
	ev->kek_version = kek_version;
	ev->reason = reason;
}

void ekmfs_keys_set_event_hook(struct ekmfs_keys *k, ekmfs_key_event_fn fn, void *arg)
{
	pthread_rwlock_wrlock(&k->lock);
	k->event_fn = fn;
	k->event_arg = arg;
	pthread_rwlock_unlock(&k->lock);
}

/* A cached entry served (or refused) until now: ask the provider again.
 * Exclusive lock. Success replaces the entry with a fresh one; an outage
 * keeps serving the old key until its valid_until; a refusal wipes the key
 * and leaves a refusal entry for one more key_cache_ttl. */
static int kek_revalidate(struct ekmfs_keys *k, struct cached_kek *c, double now,
			  uint8_t **out)
{
	struct cached_kek old = *c;
	struct key_tenant *kt = tenant_by_id(k, old.tenant_id);
	const char *name = tenant_name(k, old.tenant_id);
	double ttl = kt ? (double)kt->tc.key_cache_ttl : EKMFS_DEFAULT_KEY_CACHE_TTL;
	int ret;

	*c = k->cache[--k->ncache];     /* taken out; kek_load appends the fresh one */
	ret = kek_load(k, old.tenant_id, old.version, out);
	if (!ret) {
		if (!old.key || old.outage) {
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' KEK v%u: the key service answers "
				  "again; access restored", name, old.version);
			key_event(k, EKMFS_KEY_RESTORED, old.tenant_id, old.version,
				  old.outage ? "key service reachable again" : "key usable again");
		} else {
			key_event(k, EKMFS_KEY_FETCHED, old.tenant_id, old.version,
				  "cache entry expired; fetched again");
		}
		ekmfs_secure_free(old.key, EKMFS_KEY_SIZE);
		return 0;
	}
	if (ret == -ENOMEM || (ekmfs_http_is_outage(ret) && old.key && now < old.valid_until)) {
		if (!old.outage) {
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' KEK v%u: %s; serving the cached key "
				  "for up to %.0f s more (outage_grace)", name, old.version,
				  ekmfs_lasterr(), old.valid_until - now);
			key_event(k, EKMFS_KEY_OUTAGE, old.tenant_id, old.version, ekmfs_lasterr());
		}
		old.outage = true;
		old.fresh_until = now + OUTAGE_RETRY < old.valid_until ? now + OUTAGE_RETRY :
				  old.valid_until;
		k->cache[k->ncache++] = old;
		*out = old.key;
		return 0;
	}
	if (old.key) {
		ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' KEK v%u: %s; access to the tenant's files "
			  "is locked (open fails with ENOKEY) until the key is usable again",
			  name, old.version, ekmfs_lasterr());
		char why[600];

		snprintf(why, sizeof(why), "%s%s", ekmfs_http_is_outage(ret) ?
			 "unreachable beyond outage_grace: " : "", ekmfs_lasterr());
		key_event(k, EKMFS_KEY_REFUSED, old.tenant_id, old.version, why);
	}
	ekmfs_secure_free(old.key, EKMFS_KEY_SIZE);
	old.key = NULL;
	old.outage = false;
	old.err = ret;
	/* Ask again after a ttl, so re-enabling the key restores access
	 * without a remount, without a KMS request per open() meanwhile. */
	old.fresh_until = now + (ekmfs_http_is_outage(ret) ? OUTAGE_RETRY : ttl);
	k->cache[k->ncache++] = old;
	return ret;
}

/* ekmfs_keys_lock() set the flag and emptied the tenant's cache entries under
 * the exclusive lock, so checking it where entries are added (exclusive) is
 * enough: the shared fast path can no longer find one. */
static bool tenant_is_locked(struct ekmfs_keys *k, uint32_t tenant_id)
{
	struct key_tenant *kt = tenant_by_id(k, tenant_id);

	if (!kt || !kt->locked)
		return false;
	ekmfs_seterr("tenant '%s' is locked (ekmfs-admin lock); its keys are unavailable "
		     "until ekmfs-admin unlock", kt->name);
	return true;
}

/* Find the KEK and return with k->lock held (shared or exclusive); the caller
 * uses *key, then unlocks. On failure the lock is not held. */
static int kek_acquire(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version,
		       uint8_t **key)
{
	struct cached_kek *c;
	double now = now_sec();
	int ret;

	pthread_rwlock_rdlock(&k->lock);
	c = cache_find(k, tenant_id, version);
	if (c && c->key && now < c->fresh_until &&
	    (!c->use_limit || __atomic_add_fetch(&c->uses, 1, __ATOMIC_RELAXED) <= c->use_limit)) {
		stat_add(&k->st_hits, 1);
		*key = c->key;
		return 0;
	}
	pthread_rwlock_unlock(&k->lock);

	pthread_rwlock_wrlock(&k->lock);
	if (tenant_is_locked(k, tenant_id)) {
		pthread_rwlock_unlock(&k->lock);
		return -ENOKEY;
	}
	keyring_refresh(k);
	c = cache_find(k, tenant_id, version);
	if (c && c->key && c->use_limit && c->uses >= c->use_limit) {
		/* Served its key_cache_uses: fetch again through the provider
		 * even within the TTL (the count can overshoot by the readers
		 * that raced past the limit; none of them used the key). */
		key_event(k, EKMFS_KEY_EXPIRED, tenant_id, version, "use limit reached "
			  "(key_cache_uses)");
		c->fresh_until = now;
	} else if (c && c->key && now >= c->fresh_until && !c->outage) {
		key_event(k, EKMFS_KEY_EXPIRED, tenant_id, version, "key_cache_ttl passed");
	}
	if (c && now < c->fresh_until) {
		if (c->key) {
			stat_add(&k->st_hits, 1);
			*key = c->key;
			return 0;
		}
		ekmfs_seterr("tenant '%s' KEK v%u: the key service refused it (%s); access is "
			     "locked until the key is usable again", tenant_name(k, tenant_id),
			     version, strerror(-c->err));
		pthread_rwlock_unlock(&k->lock);
		return -ENOKEY;
	}
	stat_add(&k->st_misses, 1);
	ret = c ? kek_revalidate(k, c, now, key) : kek_load(k, tenant_id, version, key);
	if (!c && !ret)
		key_event(k, EKMFS_KEY_FETCHED, tenant_id, version, "fetched into the key cache");
	else if (!c && ret != -ENOMEM && ret != -EBADMSG && ret != -ENOKEY)
		key_event(k, EKMFS_KEY_REFUSED, tenant_id, version, ekmfs_lasterr());
	if (ret)
		pthread_rwlock_unlock(&k->lock);
	/* Whatever the provider said (refused, unreachable past the grace),
	 * for a file it means one thing: its key is unavailable. Corruption
	 * stays -EBADMSG. */
	if (ret && ret != -ENOMEM && ret != -EBADMSG)
		ret = -ENOKEY;
	return ret;
}

/* ---- 3. volume init ---- */

static int check_empty(int backing_fd, const char *path)
{
	struct dirent *de;
	DIR *dir;
	int fd, ret = 0;

	fd = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		ekmfs_seterr("cannot list %s: %s", path, strerror(-ret));
		return ret;
	}
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "lost+found"))
			continue;
		ekmfs_seterr("%s is not empty; ekmfs-admin init needs an empty directory", path);
		ret = -ENOTEMPTY;
		break;
	}
	closedir(dir);
	return ret;
}

/* Canonical form of path, which may not exist yet: the real path of its
 * deepest existing ancestor followed by the rest. */
static int resolve_maybe_missing(const char *path, char *out, size_t outlen)
{
	char head[PATH_MAX], real[PATH_MAX];
	const char *rest;
	char *slash;

	if (strlen(path) >= sizeof(head))
		return -ENAMETOOLONG;
	strcpy(head, path);
	for (;;) {
		if (realpath(head, real)) {
			rest = path + strlen(head);
			if (strcmp(real, "/") == 0 && *rest == '/')
				real[0] = '\0';
			if ((size_t)snprintf(out, outlen, "%s%s", real, rest) >= outlen)
				return -ENAMETOOLONG;
			return 0;
		}
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		slash = strrchr(head, '/');
		if (!slash)
			return -EINVAL;
		*(slash == head ? slash + 1 : slash) = '\0';
	}
}

static bool has_dot_component(const char *path)
{
	for (const char *p = path; (p = strchr(p, '/')); p++) {
		if (p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return true;
		if (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
			return true;
	}
	return false;
}

/* A backup of the ciphertext must never carry the key that opens it. */
static int check_secret_outside(const char *secret, const char *what, const char *backing)
{
	char real[PATH_MAX];
	size_t n = strlen(backing);
	int ret;

	if (has_dot_component(secret)) {
		ekmfs_seterr("%s %s must not contain '.' or '..' components", what, secret);
		return -EINVAL;
	}
	ret = resolve_maybe_missing(secret, real, sizeof(real));
	if (ret) {
		ekmfs_seterr("cannot resolve %s %s: %s", what, secret, strerror(-ret));
		return ret;
	}
	if (strcmp(backing, "/") == 0 ||
	    (strncmp(real, backing, n) == 0 && (real[n] == '/' || real[n] == '\0'))) {
		ekmfs_seterr("%s %s is inside the backing directory %s: a copy of the "
			     "encrypted data must never contain its key; keep it elsewhere",
			     what, secret, backing);
		return -EINVAL;
	}
	return 0;
}

static int check_tenant_secrets(const struct ekmfs_tenant_config *tc, const char *path);

int ekmfs_check_secret_outside(int backing_fd, const char *secret, const char *what)
{
	char path[PATH_MAX];

	backing_path(backing_fd, path, sizeof(path));
	return check_secret_outside(secret, what, path);
}

int ekmfs_keys_check_secrets(int backing_fd, const struct ekmfs_config *cfg)
{
	char path[PATH_MAX];
	int ret;

	backing_path(backing_fd, path, sizeof(path));
	for (unsigned i = 0; i < cfg->ntenants; i++) {
		ret = check_tenant_secrets(&cfg->tenants[i], path);
		if (ret)
			return ret;
	}
	return 0;
}

/* Undo a half-written volume so a failed init leaves BACKING as it was. */
static void remove_meta(int backing_fd)
{
	static const char *const files[] = {
		EKMFS_KEYRING_FILE, EKMFS_KEYRING_FILE ".tmp", EKMFS_VOLUME_FILE,
		EKMFS_VOLUME_FILE ".tmp", EKMFS_LOCK_FILE,
	};
	char rel[64];

	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(files); i++) {
		snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, files[i]);
		ekmfs_io->unlinkat(backing_fd, rel, 0);
	}
	ekmfs_io->unlinkat(backing_fd, EKMFS_META_DIR, AT_REMOVEDIR);
}

/* The secrets a tenant's provider reads must lie outside BACKING (path). */
static int check_tenant_secrets(const struct ekmfs_tenant_config *tc, const char *path)
{
	if (strcmp(tc->provider, "azure-keyvault") == 0 && tc->azure.client_secret_file[0])
		return check_secret_outside(tc->azure.client_secret_file, "client secret file",
					    path);
	if (strcmp(tc->provider, "local") != 0)
		return 0; /* the CMK lives in the KMS */
	if (tc->local_source == EKMFS_LOCAL_KEY_FILE)
		return check_secret_outside(tc->key_file, "key file", path);
	if (tc->local_source == EKMFS_LOCAL_PASSPHRASE_FILE)
		return check_secret_outside(tc->passphrase_file, "passphrase file", path);
	return 0;
}

/* KEK v1 of a new tenant record: random, wrapped by the tenant's CMK (which
 * the provider may create, e.g. the local key file), self-tested. Fills
 * krec and the provider's part of rec (kdf). Before any write, so a wrong
 * key or an unreachable KMS changes nothing. */
static int first_kek(const struct ekmfs_tenant_config *tc, const uint8_t *volume_id,
		     struct ekmfs_tenant_record *rec, struct ekmfs_kek_record *krec)
{
	struct ekmfs_provider *prov = NULL;
	struct ekmfs_wrap_context ctx;
	uint8_t *kek = NULL;
	int ret;

	ret = ekmfs_provider_open(tc, rec, true, &prov);
	if (ret)
		return ret;
	kek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!kek) {
		ret = -ENOMEM;
		goto out;
	}
	ctx = (struct ekmfs_wrap_context){ volume_id, rec->name, 1 };
	ret = ekmfs_random(kek, EKMFS_KEY_SIZE);
	if (!ret)
		ret = prov->ops->wrap(prov, &ctx, kek, &krec->wrapped);
	if (!ret)
		ret = prov->ops->self_test(prov, &ctx);
	rec->keks = krec;
	rec->nkeks = 1;
out:
	ekmfs_secure_free(kek, EKMFS_KEY_SIZE);
	ekmfs_provider_close(prov);
	return ret;
}

int ekmfs_volume_init(int backing_fd, const struct ekmfs_config *cfg,
		      struct ekmfs_volume *out)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, EKMFS_DEFAULT_TENANT);
	char path[PATH_MAX];
	struct ekmfs_volume vol = { .format_version = EKMFS_VOLUME_VERSION,
				    .block_size = EKMFS_BLOCK_SIZE };
	struct ekmfs_tenant_record rec = { .id = DEFAULT_TENANT_ID, .current_version = 1 };
	struct ekmfs_kek_record krec = { .version = 1, .state = EKMFS_KEK_ACTIVE };
	struct ekmfs_keyring kr = { .generation = 1, .ntenants = 1, .tenants = &rec };
	struct stat st;
	int lock_fd = -1, ret;

	backing_path(backing_fd, path, sizeof(path));
	if (!tc) {
		ekmfs_seterr("the configuration has no default tenant");
		return -EINVAL;
	}
	if (fstat(backing_fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		ekmfs_seterr("%s is not a directory", path);
		return -ENOTDIR;
	}
	if (fstatat(backing_fd, EKMFS_META_DIR, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		ekmfs_seterr("%s is already an ekmfs volume (%s/%s exists)", path, path,
			     EKMFS_META_DIR);
		return -EEXIST;
	}
	ret = check_empty(backing_fd, path);
	if (!ret)
		ret = check_tenant_secrets(tc, path);
	if (ret)
		return ret;

	/* Everything that can fail for want of a key happens before any write. */
	vol.created = time(NULL);
	ret = ekmfs_random(vol.volume_id, sizeof(vol.volume_id));
	if (ret)
		return ret;
	snprintf(rec.name, sizeof(rec.name), "%s", EKMFS_DEFAULT_TENANT);
	snprintf(rec.provider, sizeof(rec.provider), "%s", tc->provider);
	rec.last_rotation = rec.last_cmk_change = krec.created = vol.created;
	ret = first_kek(tc, vol.volume_id, &rec, &krec);
	if (ret)
		return ret;

	ret = ekmfs_volume_write_new(backing_fd, &vol);
	if (ret)
		return ret;
	ret = ekmfs_meta_lock(backing_fd, true, false, &lock_fd);
	if (!ret)
		ret = ekmfs_keyring_write(backing_fd, &kr);
	ekmfs_meta_unlock(lock_fd);
	if (ret) {
		remove_meta(backing_fd);
		return ret;
	}
	if (out)
		*out = vol;
	return 0;
}

struct new_tenant {
	const struct ekmfs_volume *vol;
	const struct ekmfs_tenant_config *tc;
	const char *path;                        /* of the volume, for messages */
	struct ekmfs_kek_record krec;
	uint32_t id;
};

static int add_new_tenant(struct ekmfs_keyring *kr, void *arg)
{
	struct new_tenant *nt = arg;
	struct ekmfs_tenant_record rec = { .current_version = 1 }, *have;
	int ret;

	have = ekmfs_keyring_tenant(kr, nt->tc->name);
	if (have) {
		nt->id = have->id;
		return -EEXIST;
	}
	ret = check_tenant_secrets(nt->tc, nt->path);
	if (ret)
		return ret;
	/* Ids are never reused: a header naming a removed tenant's id must not
	 * open under a newcomer's key. Records are never removed, so max + 1. */
	for (size_t i = 0; i < kr->ntenants; i++)
		if (kr->tenants[i].id > rec.id)
			rec.id = kr->tenants[i].id;
	rec.id++;
	snprintf(rec.name, sizeof(rec.name), "%s", nt->tc->name);
	snprintf(rec.provider, sizeof(rec.provider), "%s", nt->tc->provider);
	rec.last_rotation = rec.last_cmk_change = nt->krec.created = time(NULL);
	rec.disabled = !nt->tc->enabled;
	ret = first_kek(nt->tc, nt->vol->volume_id, &rec, &nt->krec);
	if (ret)
		return ret;
	ret = ekmfs_keyring_add_tenant(kr, &rec);
	if (ret)
		return ret;
	nt->id = rec.id;
	return 1;
}

int ekmfs_keys_create_tenant(int backing_fd, const struct ekmfs_volume *vol,
			     const struct ekmfs_tenant_config *tc, uint32_t *id_out)
{
	struct new_tenant nt = {
		.vol = vol, .tc = tc,
		.krec = { .version = 1, .state = EKMFS_KEK_ACTIVE },
	};
	char path[PATH_MAX];
	int lock_fd = -1, ret;

	backing_path(backing_fd, path, sizeof(path));
	nt.path = path;
	ret = ekmfs_meta_lock(backing_fd, true, true, &lock_fd);
	if (ret) {
		ekmfs_seterr("cannot lock the keyring of %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = ekmfs_keyring_update(backing_fd, add_new_tenant, &nt, true, NULL);
	/* The id: of the tenant made, or of the one already there (-EEXIST). */
	if ((ret == 1 || ret == -EEXIST) && id_out)
		*id_out = nt.id;
	if (ret == 1)
		ret = 0;
	ekmfs_wipe(&nt.krec, sizeof(nt.krec));
	ekmfs_meta_unlock(lock_fd);
	return ret;
}

/* ---- 4. open / close ---- */

static int open_tenant(struct ekmfs_keys *k, const struct ekmfs_config *cfg,
		       struct ekmfs_tenant_record *rec)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, rec->name);
	struct key_tenant *kt, **grown;
	uint8_t *key;
	int ret;

	if (!tc) {
		ekmfs_seterr("the keyring has tenant '%s', which the configuration lacks "
			     "([tenant.%s])", rec->name, rec->name);
		return -ENOKEY;
	}
	if (strcmp(tc->provider, rec->provider) != 0) {
		ekmfs_seterr("tenant '%s' uses provider '%s' in the keyring but '%s' in the "
			     "configuration", rec->name, rec->provider, tc->provider);
		return -EINVAL;
	}
	grown = realloc(k->tenants, (k->ntenants + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	k->tenants = grown;
	kt = calloc(1, sizeof(*kt));
	if (!kt)
		return -ENOMEM;
	kt->id = rec->id;
	snprintf(kt->name, sizeof(kt->name), "%s", rec->name);
	kt->tc = *tc;
	kt->prov_tc = malloc(sizeof(*kt->prov_tc));
	if (!kt->prov_tc) {
		free(kt);
		return -ENOMEM;
	}
	*kt->prov_tc = *tc;
	ret = ekmfs_provider_open(kt->prov_tc, rec, false, &kt->prov);
	if (ret) {
		free(kt->prov_tc);
		free(kt);
		return ret;
	}
	k->tenants[k->ntenants++] = kt;
	/* A wrong or missing key must fail now, not at the first file. */
	return kek_load(k, rec->id, rec->current_version, &key);
}

int ekmfs_keys_open(int backing_fd, const struct ekmfs_config *cfg, struct ekmfs_keys **out)
{
	struct ekmfs_keys *k = calloc(1, sizeof(*k));
	char path[PATH_MAX];
	int ret;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	k->backing_fd = backing_fd;
	pthread_rwlock_init(&k->lock, NULL);
	/* Before any key is read: a key kept in BACKING is refused at every
	 * mount and by every tool, not only by init. */
	ret = ekmfs_keys_check_secrets(backing_fd, cfg);
	if (ret)
		goto fail;
	ret = ekmfs_volume_read(backing_fd, &k->vol);
	if (ret == -ENOENT) {
		backing_path(backing_fd, path, sizeof(path));
		ekmfs_seterr("%s is not an ekmfs volume (no %s/%s); create one with: "
			     "ekmfs-admin init %s", path, EKMFS_META_DIR, EKMFS_VOLUME_FILE, path);
	}
	if (ret)
		goto fail;
	/* Stamp before reading: a change racing the read then forces a re-read. */
	ret = ekmfs_keyring_stamp(backing_fd, k->stamp);
	if (!ret)
		ret = ekmfs_keyring_read(backing_fd, &k->kr);
	else
		ekmfs_keyring_read(backing_fd, &k->kr); /* for its message */
	if (ret)
		goto fail;
	for (size_t i = 0; i < k->kr.ntenants; i++) {
		ret = open_tenant(k, cfg, &k->kr.tenants[i]);
		if (ret)
			goto fail;
	}
	*out = k;
	return 0;
fail:
	ekmfs_keys_close(k);
	return ret;
}

void ekmfs_keys_close(struct ekmfs_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->ncache; i++)
		ekmfs_secure_free(k->cache[i].key, EKMFS_KEY_SIZE);
	free(k->cache);
	for (size_t i = 0; i < k->ntenants; i++) {
		ekmfs_provider_close(k->tenants[i]->prov);
		free(k->tenants[i]->prov_tc);
		free(k->tenants[i]);
	}
	free(k->tenants);
	free(k->policy);
	ekmfs_keyring_free(&k->kr);
	pthread_rwlock_destroy(&k->lock);
	free(k);
}

const struct ekmfs_volume *ekmfs_keys_volume(const struct ekmfs_keys *k)
{
	return &k->vol;
}

void ekmfs_keys_stats(struct ekmfs_keys *k, struct ekmfs_keys_stats *out)
{
	out->cache_hits = __atomic_load_n(&k->st_hits, __ATOMIC_RELAXED);
	out->cache_misses = __atomic_load_n(&k->st_misses, __ATOMIC_RELAXED);
	out->provider_calls = __atomic_load_n(&k->st_calls, __ATOMIC_RELAXED);
	out->provider_errors = __atomic_load_n(&k->st_errors, __ATOMIC_RELAXED);
	out->provider_ns = __atomic_load_n(&k->st_ns, __ATOMIC_RELAXED);
	pthread_rwlock_rdlock(&k->lock);
	out->keyring_generation = k->kr.generation;
	pthread_rwlock_unlock(&k->lock);
}

/* ---- 5. file headers ---- */

/* Name of the tenant a new file at path goes to now. Any lock. */
static const char *route(struct ekmfs_keys *k, const char *path)
{
	if (!k->policy || !path)
		return EKMFS_DEFAULT_TENANT;
	return ekmfs_config_route(k->policy, path, time(NULL))->name;
}

int ekmfs_keys_new_header(struct ekmfs_keys *k, const char *path, struct ekmfs_header *h,
			  uint8_t *dek)
{
	uint8_t file_id[EKMFS_FILE_ID_SIZE], nonce[EKMFS_NONCE_SIZE];
	struct ekmfs_tenant_record *rec;
	uint32_t tenant_id = 0, version = 0;
	uint8_t *kek;
	int ret;

	char tenant[EKMFS_NAME_MAX];

	/* Pick up a rotation (new current version) made by another tool; the
	 * exclusive lock only when the keyring file actually changed. */
	pthread_rwlock_rdlock(&k->lock);
	if (keyring_changed(k)) {
		pthread_rwlock_unlock(&k->lock);
		pthread_rwlock_wrlock(&k->lock);
		keyring_refresh(k);
	}
	snprintf(tenant, sizeof(tenant), "%s", route(k, path));
	rec = ekmfs_keyring_tenant(&k->kr, tenant);
	if (rec) {
		tenant_id = rec->id;
		version = rec->current_version;
	}
	pthread_rwlock_unlock(&k->lock);
	if (!rec) {
		/* Never fall back to another tenant's key: the customer asked
		 * for theirs. */
		ekmfs_seterr("new files in %s belong to tenant '%s', which has no keys in the "
			     "keyring (its creation failed: see the log)", path ? path : "/",
			     tenant);
		return -ENOKEY;
	}

	ret = ekmfs_random(file_id, sizeof(file_id));
	if (!ret)
		ret = ekmfs_random(nonce, sizeof(nonce));
	if (!ret)
		ret = ekmfs_random(dek, EKMFS_KEY_SIZE);
	if (ret)
		goto out;
	ret = kek_acquire(k, tenant_id, version, &kek);
	if (ret)
		goto out;
	ekmfs_header_init(h, file_id);
	ret = ekmfs_slot_wrap(h, 0, 1, tenant_id, version, kek, dek, nonce);
	pthread_rwlock_unlock(&k->lock);
out:
	if (ret)
		ekmfs_wipe(dek, EKMFS_KEY_SIZE);
	return ret;
}

int ekmfs_keys_rewrap_header(struct ekmfs_keys *k, const struct ekmfs_header *old,
			      const uint8_t *dek, struct ekmfs_header *h)
{
	uint8_t nonce[EKMFS_NONCE_SIZE];
	int owner = ekmfs_header_owner_slot(old), ret;
	const struct ekmfs_slot *s;
	uint8_t *kek;

	if (owner < 0) {
		ekmfs_seterr("file header has no key slot in use");
		return -EBADMSG;
	}
	s = &old->slot[owner];
	ret = ekmfs_random(nonce, sizeof(nonce));
	if (ret)
		return ret;
	ret = kek_acquire(k, s->tenant_id, s->kek_version, &kek);
	if (ret)
		return (ret == -ENOMEM || ret == -EBADMSG) ? ret : -ENOKEY;
	ekmfs_header_init(h, old->file_id);
	ret = ekmfs_slot_wrap(h, 0, 1, s->tenant_id, s->kek_version, kek, dek, nonce);
	pthread_rwlock_unlock(&k->lock);
	return ret;
}

static int open_slot(struct ekmfs_keys *k, const struct ekmfs_header *h, int idx,
		     uint8_t *dek)
{
	const struct ekmfs_slot *s = &h->slot[idx];
	char id[2 * EKMFS_FILE_ID_SIZE + 1];
	uint8_t *kek;
	int ret;

	ret = kek_acquire(k, s->tenant_id, s->kek_version, &kek);
	if (ret)
		/* corruption stays -EBADMSG; provider failures: key unavailable */
		return (ret == -ENOMEM || ret == -EBADMSG) ? ret : -ENOKEY;
	ret = ekmfs_slot_unwrap(h, idx, kek, dek);
	pthread_rwlock_unlock(&k->lock);
	if (ret == -EBADMSG) {
		ekmfs_hex(h->file_id, EKMFS_FILE_ID_SIZE, id);
		ekmfs_seterr("file %s: key slot %d (tenant id %u, KEK v%u) does not "
			     "authenticate: the header is tampered or corrupt", id, idx,
			     s->tenant_id, s->kek_version);
	}
	return ret;
}

int ekmfs_keys_open_header(struct ekmfs_keys *k, const struct ekmfs_header *h, uint8_t *dek)
{
	char first_err[512];
	int newest, fallback, ret, ret2;

	newest = ekmfs_header_newest_slot(h, &fallback);
	if (newest < 0) {
		ekmfs_seterr("file header has no key slot in use");
		return -EBADMSG;
	}
	ret = open_slot(k, h, newest, dek);
	if (!ret || fallback < 0)
		return ret;
	/* A re-wrap interrupted between its two steps leaves the older slot valid. */
	snprintf(first_err, sizeof(first_err), "%s", ekmfs_lasterr());
	ret2 = open_slot(k, h, fallback, dek);
	if (!ret2) {
		ekmfs_log(EKMFS_LOG_WARN, "%s; the other key slot opened the file", first_err);
		return 0;
	}
	ekmfs_seterr("%s", first_err);
	return ret;
}

int ekmfs_keys_check_slots(struct ekmfs_keys *k, const struct ekmfs_header *h)
{
	uint8_t dek[EKMFS_KEY_SIZE];
	int ret = 0;

	for (int i = 0; i < EKMFS_SLOT_COUNT && ret == 0; i++) {
		const struct ekmfs_slot *s = &h->slot[i];

		/* Tenant id 0: a rotation's slot write cut short (ROTATION.md). */
		if (!s->seq || !s->tenant_id)
			continue;
		if (open_slot(k, h, i, dek) == -EBADMSG)
			ret = -EBADMSG;   /* open_slot said which and why */
		ekmfs_wipe(dek, sizeof(dek));
	}
	return ret;
}

/* ---- 6. lock / unlock, and the provider for volume secrets ---- */

/* Tenant named name, or every tenant when name is NULL; -ENOENT if none. */
static int for_tenants(struct ekmfs_keys *k, const char *name, bool lock)
{
	int found = 0, ret = 0;

	for (size_t i = 0; i < k->ntenants; i++) {
		struct key_tenant *kt = k->tenants[i];
		struct ekmfs_tenant_record *rec;
		uint8_t *key;

		if (name && strcmp(kt->name, name) != 0)
			continue;
		found = 1;
		if (lock) {
			kt->locked = true;
			for (size_t j = k->ncache; j-- > 0;)
				if (k->cache[j].tenant_id == kt->id)
					cache_drop(k, j);
			continue;
		}
		/* Unlock re-fetches the current KEK through the provider now,
		 * so a key the service no longer gives out is reported here,
		 * and the tenant stays locked until it is fetched. */
		keyring_refresh(k);
		rec = ekmfs_keyring_tenant_by_id(&k->kr, kt->id);
		if (rec && !cache_find(k, kt->id, rec->current_version)) {
			int r = kek_load(k, kt->id, rec->current_version, &key);

			if (r) {
				if (!ret)
					ret = r;
				continue;
			}
		}
		kt->locked = false;
	}
	if (!found) {
		ekmfs_seterr("the volume has no tenant '%s'", name);
		return -ENOENT;
	}
	return ret;
}

int ekmfs_keys_lock(struct ekmfs_keys *k, const char *tenant)
{
	int ret;

	pthread_rwlock_wrlock(&k->lock);
	ret = for_tenants(k, tenant, true);
	pthread_rwlock_unlock(&k->lock);
	return ret;
}

int ekmfs_keys_unlock(struct ekmfs_keys *k, const char *tenant)
{
	int ret;

	pthread_rwlock_wrlock(&k->lock);
	ret = for_tenants(k, tenant, false);
	pthread_rwlock_unlock(&k->lock);
	return ret;
}

bool ekmfs_keys_locked(struct ekmfs_keys *k, const char *tenant)
{
	bool locked = false;

	pthread_rwlock_rdlock(&k->lock);
	for (size_t i = 0; i < k->ntenants; i++)
		if ((!tenant || strcmp(k->tenants[i]->name, tenant) == 0) &&
		    k->tenants[i]->locked)
			locked = true;
	pthread_rwlock_unlock(&k->lock);
	return locked;
}

struct ekmfs_provider *ekmfs_keys_provider(struct ekmfs_keys *k, const char *tenant)
{
	for (size_t i = 0; i < k->ntenants; i++)
		if (strcmp(k->tenants[i]->name, tenant) == 0)
			return k->tenants[i]->prov;
	return NULL;
}

/* ---- 7. tenants: applying the configuration, routing, cache states ---- */

/* The policy and cache limits of a tenant: what a reload applies at once.
 * The rest belongs to its provider and waits for the next mount. */
static void copy_policy(struct ekmfs_tenant_config *dst, const struct ekmfs_tenant_config *src)
{
	dst->key_cache_ttl = src->key_cache_ttl;
	dst->key_cache_uses = src->key_cache_uses;
	dst->outage_grace = src->outage_grace;
	dst->rotation_days = src->rotation_days;
	dst->min_cmk_change_interval = src->min_cmk_change_interval;
	dst->npaths = src->npaths;
	memcpy(dst->paths, src->paths, sizeof(dst->paths));
	dst->paths_line = src->paths_line;
	dst->enforce_from = src->enforce_from;
	dst->enabled = src->enabled;
}

/* Whether a and b differ in what the provider uses. */
static bool provider_settings_differ(const struct ekmfs_tenant_config *a,
				     const struct ekmfs_tenant_config *b)
{
	struct ekmfs_tenant_config x = *a;

	copy_policy(&x, b);
	return memcmp(&x, b, sizeof(x)) != 0;
}

/* A provider opened with changed settings (a new key_file after
 * ekmfs-rotate cmk, say), not yet in use. */
struct new_provider {
	struct key_tenant *kt;
	struct ekmfs_tenant_config *tc;
	struct ekmfs_provider *prov;
};

/* Open tc's provider for kt's keyring record and check that it unwraps
 * the tenant's current KEK: settings that cannot (the key file changed
 * before 'ekmfs-rotate cmk' moved the keyring to it) are refused instead
 * of locking the tenant out when its cached KEK expires. Exclusive lock.
 * 0 and *np, or -errno with the reason. */
static int prepare_provider(struct ekmfs_keys *k, struct key_tenant *kt,
			    const struct ekmfs_tenant_config *tc, struct new_provider *np)
{
	struct ekmfs_tenant_record *rec = ekmfs_keyring_tenant_by_id(&k->kr, kt->id);
	struct ekmfs_kek_record *cur = rec ? ekmfs_tenant_kek(rec, rec->current_version) : NULL;
	struct ekmfs_wrap_context ctx;
	char why[600];
	uint8_t *key;
	int ret;

	memset(np, 0, sizeof(*np));
	if (!cur)
		return 0;       /* cannot happen for an open tenant; keep the old */
	np->kt = kt;
	np->tc = malloc(sizeof(*np->tc));
	key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!np->tc || !key) {
		ret = -ENOMEM;
		goto fail;
	}
	*np->tc = *tc;
	ekmfs_clearerr();
	ret = ekmfs_provider_open(np->tc, rec, false, &np->prov);
	if (!ret) {
		ctx = (struct ekmfs_wrap_context){ k->vol.volume_id, rec->name,
						   rec->current_version };
		ret = np->prov->ops->unwrap(np->prov, &ctx, &cur->wrapped, key);
	}
	if (ret) {
		snprintf(why, sizeof(why), "%s", ekmfs_lasterr()[0] ? ekmfs_lasterr() :
			 strerror(-ret));
		ekmfs_seterr("tenant '%s': the changed provider settings cannot unwrap its KEK "
			     "v%u: %s", kt->name, rec->current_version, why);
		goto fail;
	}
	ekmfs_secure_free(key, EKMFS_KEY_SIZE);
	return 0;
fail:
	ekmfs_secure_free(key, EKMFS_KEY_SIZE);
	if (np->prov)
		ekmfs_provider_close(np->prov);
	free(np->tc);
	memset(np, 0, sizeof(*np));
	return ret;
}

/* Put a prepared provider in place of the tenant's running one. The
 * cached KEKs stay: they are the same keys, only their wrapping moved. */
static void install_provider(struct new_provider *np)
{
	struct key_tenant *kt = np->kt;

	ekmfs_provider_close(kt->prov);
	free(kt->prov_tc);
	kt->prov = np->prov;
	kt->prov_tc = np->tc;
	kt->tc = *np->tc;
	ekmfs_log(EKMFS_LOG_INFO, "tenant '%s': provider settings changed; now in use",
		  kt->name);
}

static int set_enabled(struct ekmfs_keyring *kr, void *arg)
{
	const struct ekmfs_tenant_config *tc = arg;
	struct ekmfs_tenant_record *rec = ekmfs_keyring_tenant(kr, tc->name);

	if (!rec || rec->disabled == !tc->enabled)
		return 0;
	rec->disabled = !tc->enabled;
	return 1;
}

/* Record tc's `enabled` in the keyring when it differs (under the meta
 * lock, on a fresh copy), so the change is audited once, whichever process
 * sees it first. 1 if changed, 0 if not, -errno. */
static int record_enabled(struct ekmfs_keys *k, const struct ekmfs_tenant_config *tc)
{
	int lock_fd = -1, ret;

	ret = ekmfs_meta_lock(k->backing_fd, true, true, &lock_fd);
	if (ret)
		return ret;
	ret = ekmfs_keyring_update(k->backing_fd, set_enabled, (void *)tc, true, NULL);
	ekmfs_meta_unlock(lock_fd);
	return ret;
}

/* Whether the keyring in memory (re-read if the file changed) already has
 * tc, with its `enabled`: then neither creating nor recording is needed,
 * and the keyring file is not locked and parsed again for it. */
static bool tenant_up_to_date(struct ekmfs_keys *k, const struct ekmfs_tenant_config *tc)
{
	struct ekmfs_tenant_record *rec;
	bool same;

	pthread_rwlock_wrlock(&k->lock);
	keyring_refresh(k);
	rec = ekmfs_keyring_tenant(&k->kr, tc->name);
	same = rec && rec->disabled == !tc->enabled;
	pthread_rwlock_unlock(&k->lock);
	return same;
}

int ekmfs_keys_apply_config(struct ekmfs_keys *k, const struct ekmfs_config *cfg)
{
	struct ekmfs_config *policy = malloc(sizeof(*policy));
	bool created[EKMFS_MAX_TENANTS] = { false };
	struct new_provider *fresh_provs;
	size_t nfresh = 0;
	int ret;

	if (!policy)
		return -ENOMEM;
	*policy = *cfg;
	ret = ekmfs_config_check_paths(cfg, k->backing_fd);
	if (!ret)
		ret = ekmfs_keys_check_secrets(k->backing_fd, cfg);
	if (ret)
		goto out;
	/* New tenants first, outside k->lock: creating one asks its KMS. */
	for (unsigned i = 0; i < cfg->ntenants; i++) {
		const struct ekmfs_tenant_config *tc = &cfg->tenants[i];
		uint32_t id = 0;

		if (tenant_up_to_date(k, tc))
			continue;
		ret = ekmfs_keys_create_tenant(k->backing_fd, &k->vol, tc, &id);
		if (ret == -EEXIST) {
			ret = record_enabled(k, tc);
			if (ret < 0)
				goto out;
			if (ret > 0) {
				pthread_rwlock_rdlock(&k->lock);
				key_event(k, tc->enabled ? EKMFS_TENANT_ENABLED :
					  EKMFS_TENANT_DISABLED, id, 0, tc->enabled ?
					  "enabled = true: new files in its paths use its CMK" :
					  "enabled = false: new files in its paths use the default "
					  "tenant; ekmfs-rotate migrate moves existing ones back");
				pthread_rwlock_unlock(&k->lock);
			}
			ret = 0;
			continue;
		}
		if (ret) {
			char why[600];

			snprintf(why, sizeof(why), "%s", ekmfs_lasterr());
			ekmfs_seterr("tenant '%s': cannot create its keys: %s", tc->name, why);
			goto out;
		}
		ekmfs_log(EKMFS_LOG_INFO, "tenant '%s': created (id %u, KEK v1 under its %s CMK)",
			  tc->name, id, tc->provider);
		created[i] = true;
	}

	pthread_rwlock_wrlock(&k->lock);
	keyring_refresh(k);
	/* Changed provider settings (a new key file or key id after
	 * ekmfs-rotate cmk): every new provider is opened and checked before
	 * any replaces its running one, so a reload applies all or none. */
	fresh_provs = calloc(k->ntenants ? k->ntenants : 1, sizeof(*fresh_provs));
	if (!fresh_provs)
		ret = -ENOMEM;
	for (size_t i = 0; i < k->ntenants && !ret; i++) {
		struct key_tenant *kt = k->tenants[i];
		const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, kt->name);

		if (tc && strcmp(tc->provider, kt->tc.provider) == 0 &&
		    provider_settings_differ(&kt->tc, tc))
			ret = prepare_provider(k, kt, tc, &fresh_provs[nfresh++]);
	}
	for (size_t i = 0; i < nfresh; i++) {
		if (!fresh_provs[i].prov)
			continue;
		if (ret) {
			ekmfs_provider_close(fresh_provs[i].prov);
			free(fresh_provs[i].tc);
		} else {
			install_provider(&fresh_provs[i]);
		}
	}
	free(fresh_provs);
	for (size_t i = 0; i < k->kr.ntenants && !ret; i++) {
		struct ekmfs_tenant_record *rec = &k->kr.tenants[i];
		const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, rec->name);
		struct key_tenant *kt = tenant_by_id(k, rec->id);

		if (!kt) {
			ret = open_tenant(k, cfg, rec);
			if (!ret && tc && created[tc - cfg->tenants]) {
				key_event(k, EKMFS_TENANT_CREATED, rec->id, rec->current_version,
					  "tenant added to the configuration; KEK v1 created "
					  "under its CMK");
				key_event(k, EKMFS_CMK_SET, rec->id, rec->current_version,
					  "the tenant's first CMK wraps its KEK v1");
			}
			continue;
		}
		if (!tc) {
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' is no longer in the configuration: its "
				  "files stay readable until the next mount, which will refuse",
				  rec->name);
			continue;
		}
		/* (Changed settings of the same provider were applied above.) */
		if (strcmp(tc->provider, kt->tc.provider) != 0)
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s': provider changed from %s to %s; "
				  "the keys in use stay, the next mount checks it against the "
				  "keyring", rec->name, kt->tc.provider, tc->provider);
		copy_policy(&kt->tc, tc);
	}
	if (!ret) {
		free(k->policy);
		k->policy = policy;
		policy = NULL;
	}
	pthread_rwlock_unlock(&k->lock);
out:
	free(policy);
	return ret;
}

const char *ekmfs_keys_route(struct ekmfs_keys *k, const char *path)
{
	const char *name;

	pthread_rwlock_rdlock(&k->lock);
	name = route(k, path);
	/* Stable while k is open: the tenant table's copy of the name. */
	for (size_t i = 0; i < k->ntenants; i++)
		if (strcmp(k->tenants[i]->name, name) == 0)
			name = k->tenants[i]->name;
	pthread_rwlock_unlock(&k->lock);
	return name;
}

size_t ekmfs_keys_tenant_states(struct ekmfs_keys *k, struct ekmfs_tenant_state *out,
				size_t max)
{
	double now = now_sec();
	time_t wall = time(NULL);
	size_t n;

	pthread_rwlock_rdlock(&k->lock);
	n = k->ntenants;
	for (size_t i = 0; i < n && i < max; i++) {
		struct key_tenant *kt = k->tenants[i];
		struct ekmfs_tenant_record *rec = ekmfs_keyring_tenant_by_id(&k->kr, kt->id);
		struct ekmfs_tenant_state *o = &out[i];
		struct cached_kek *c;

		memset(o, 0, sizeof(*o));
		snprintf(o->name, sizeof(o->name), "%s", kt->name);
		o->id = kt->id;
		o->current_version = rec ? rec->current_version : 0;
		o->enforced = ekmfs_tenant_enforced(&kt->tc, wall);
		o->use_limit = kt->tc.key_cache_uses;
		c = cache_find(k, kt->id, o->current_version);
		if (kt->locked)
			o->cache = "locked";
		else if (!c)
			o->cache = "empty";
		else if (!c->key)
			o->cache = "refused";
		else if (c->outage && now < c->valid_until)
			o->cache = "outage";
		else if (now >= c->fresh_until ||
			 (c->use_limit && __atomic_load_n(&c->uses, __ATOMIC_RELAXED) >= c->use_limit))
			o->cache = "expired";
		else
			o->cache = "cached";
		if (c) {
			o->uses = __atomic_load_n(&c->uses, __ATOMIC_RELAXED);
			o->expires_in = c->fresh_until > now ? c->fresh_until - now : 0;
		}
	}
	pthread_rwlock_unlock(&k->lock);
	return n;
}
