/*
 * cache.c - the KEK cache of the key manager (keys_priv.h).
 *
 * Owns: finding a tenant's KEK for a file (a hit, in locked memory); the
 * fetch through the tenant's provider on a miss or at expiry, one at a
 * time per (tenant, KEK version) with every open that needs it meanwhile
 * waiting for its answer; what the answer does to the entry (fresh, served
 * through an outage for outage_grace, or a refusal remembered for a TTL);
 * lock and unlock (ekmfs-admin lock).
 *
 * Divisions:
 *   1. entries, records, the timed provider call
 *   2. installing the answer of a fetch
 *   3. acquire: hit, wait for a fetch in flight, or fetch
 *   4. lock / unlock
 *
 * Fault isolation (docs/DESIGN.md): no lock is held while a provider is
 * asked, so a key service that hangs delays only the opens that need its
 * answer, for at most its own timeouts; other tenants' hits and misses go
 * on. While a cached KEK is being fetched again after its TTL, opens keep
 * using it (within outage_grace) instead of waiting. The opens that must
 * wait (nothing cached) are bounded per tenant and in total
 * (ekmfs_keys_set_wait_limits), so one stuck key service cannot take every
 * worker thread of the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ekmfs/aead.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "keys_priv.h"

/* ---- 1. entries, records, the provider call ---- */

double keys_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct cached_kek *keys_cache_find(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version)
{
	for (size_t i = 0; i < k->ncache; i++)
		if (k->cache[i].tenant_id == tenant_id && k->cache[i].version == version)
			return &k->cache[i];
	return NULL;
}

void keys_cache_drop(struct ekmfs_keys *k, size_t i)
{
	ekmfs_secure_free(k->cache[i].key, EKMFS_KEY_SIZE);
	k->cache[i] = k->cache[--k->ncache];
}

static struct cached_kek *cache_append(struct ekmfs_keys *k, uint32_t tenant_id,
				       uint32_t version)
{
	struct cached_kek *grown = realloc(k->cache, (k->ncache + 1) * sizeof(*grown));

	if (!grown)
		return NULL;
	k->cache = grown;
	grown = &k->cache[k->ncache++];
	*grown = (struct cached_kek){ .tenant_id = tenant_id, .version = version };
	return grown;
}

/* A fresh entry for key (taken) under the tenant's settings tc. */
static void entry_fill(struct cached_kek *c, const struct ekmfs_tenant_config *tc,
		       uint8_t *key, double now)
{
	double ttl = (double)tc->key_cache_ttl;

	ekmfs_secure_free(c->key, EKMFS_KEY_SIZE);
	c->key = key;
	c->fresh_until = now + ttl;
	c->valid_until = now + ttl + (double)tc->outage_grace;
	c->err = 0;
	c->outage = false;
	c->uses = 0;
	c->use_limit = tc->key_cache_uses;
}

int keys_cache_insert(struct ekmfs_keys *k, const struct ekmfs_tenant_config *tc,
		      uint32_t tenant_id, uint32_t version, uint8_t *key)
{
	struct cached_kek *c = keys_cache_find(k, tenant_id, version);

	if (!c)
		c = cache_append(k, tenant_id, version);
	if (!c) {
		ekmfs_secure_free(key, EKMFS_KEY_SIZE);
		return -ENOMEM;
	}
	entry_fill(c, tc, key, keys_now());
	return 0;
}

int keys_unwrap(struct ekmfs_keys *k, struct ekmfs_provider *prov,
		const struct ekmfs_wrap_context *ctx, const struct ekmfs_wrapped_kek *wrapped,
		uint8_t *key)
{
	struct timespec t0, t1;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = prov->ops->unwrap(prov, ctx, wrapped, key);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	keys_stat_add(&k->st_calls, 1);
	if (ret)
		keys_stat_add(&k->st_errors, 1);
	keys_stat_add(&k->st_ns, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
					    (t1.tv_nsec - t0.tv_nsec)));
	return ret;
}

int keys_record(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version,
		struct ekmfs_tenant_record **trec, struct ekmfs_kek_record **krec)
{
	struct ekmfs_tenant_record *rec = ekmfs_keyring_tenant_by_id(&k->kr, tenant_id);
	struct ekmfs_kek_record *kr;

	/* Tenant ids and KEK versions are never reused and their records are
	 * kept (destroyed ones too), so a header naming one the keyring never
	 * issued is corrupt or tampered, not merely lacking a key. */
	if (!rec) {
		ekmfs_seterr("the header names tenant id %u, which this volume's keyring never "
			     "issued (tampered header, or a keyring older than the file)", tenant_id);
		return -EBADMSG;
	}
	if (!keys_tenant_by_id(k, tenant_id)) {
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
	if (trec)
		*trec = rec;
	if (krec)
		*krec = kr;
	return 0;
}

/* ---- 2. installing an answer ---- */

/* What a fetch takes with it when it drops the lock. */
struct fetch {
	uint32_t tenant_id, version;
	char tenant[EKMFS_NAME_MAX];
	struct ekmfs_wrapped_kek wrapped;
	struct key_provider *kp;
	uint64_t lock_gen;
};

/* A refusal (or an outage with nothing left to serve) is remembered for a
 * while, so a locked-out tenant sends no KMS request per open(). */
static void entry_refuse(struct cached_kek *c, int err, double ttl, double now)
{
	ekmfs_secure_free(c->key, EKMFS_KEY_SIZE);
	c->key = NULL;
	c->outage = false;
	c->err = err;
	/* Ask again after a TTL, so re-enabling the key restores access
	 * without a remount (sooner after an outage). */
	c->fresh_until = now + (ekmfs_http_is_outage(err) ? KEYS_OUTAGE_RETRY : ttl);
}

/*
 * The provider's answer ret for f (key holds the KEK when ret is 0; taken
 * either way), under the exclusive lock. Returns 0 with *out pointing at
 * the KEK to use (fresh, or the cached one through an outage), or the
 * error with its reason set.
 */
static int fetch_install(struct ekmfs_keys *k, const struct fetch *f, int ret, uint8_t *key,
			 uint8_t **out)
{
	struct key_tenant *kt = keys_tenant_by_id(k, f->tenant_id);
	struct cached_kek *c;
	double now = keys_now(), ttl;
	char why[600];
	int rr;

	if (!kt || kt->locked || kt->lock_gen != f->lock_gen) {
		ekmfs_secure_free(key, EKMFS_KEY_SIZE);
		ekmfs_seterr("tenant '%s' was locked (ekmfs-admin lock) while its key was "
			     "fetched", f->tenant);
		return -ENOKEY;
	}
	/* The keyring may have changed meanwhile (a version destroyed). */
	rr = keys_record(k, f->tenant_id, f->version, NULL, NULL);
	if (rr) {
		ekmfs_secure_free(key, EKMFS_KEY_SIZE);
		return rr;
	}
	ttl = (double)kt->tc.key_cache_ttl;
	c = keys_cache_find(k, f->tenant_id, f->version);
	if (!ret) {
		bool restored = c && (!c->key || c->outage), was_outage = c && c->outage;

		if (!c)
			c = cache_append(k, f->tenant_id, f->version);
		if (!c) {
			ekmfs_secure_free(key, EKMFS_KEY_SIZE);
			return -ENOMEM;
		}
		if (restored) {
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' KEK v%u: the key service answers "
				  "again; access restored", f->tenant, f->version);
			keys_event(k, EKMFS_KEY_RESTORED, f->tenant_id, f->version,
				   was_outage ? "key service reachable again" : "key usable again");
		} else {
			keys_event(k, EKMFS_KEY_FETCHED, f->tenant_id, f->version,
				   c->key ? "cache entry expired; fetched again" :
				   "fetched into the key cache");
		}
		entry_fill(c, &kt->tc, key, now);
		*out = c->key;
		return 0;
	}
	ekmfs_secure_free(key, EKMFS_KEY_SIZE);
	if (c && c->key && (ret == -ENOMEM || (ekmfs_http_is_outage(ret) && now < c->valid_until))) {
		if (!c->outage) {
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' KEK v%u: %s; serving the cached key "
				  "for up to %.0f s more (outage_grace)", f->tenant, f->version,
				  ekmfs_lasterr(), c->valid_until - now);
			keys_event(k, EKMFS_KEY_OUTAGE, f->tenant_id, f->version, ekmfs_lasterr());
		}
		c->outage = true;
		c->fresh_until = now + KEYS_OUTAGE_RETRY < c->valid_until ? now + KEYS_OUTAGE_RETRY
									  : c->valid_until;
		*out = c->key;
		return 0;
	}
	if (ret == -ENOMEM)
		return ret;
	snprintf(why, sizeof(why), "%s%s", c && c->key && ekmfs_http_is_outage(ret) ?
		 "unreachable beyond outage_grace: " : "", ekmfs_lasterr());
	if (ret == -EREMOTE) {
		/* A keyring record pointing at another key service: nobody was
		 * asked; whoever edited the keyring gets nothing. */
		ekmfs_log(EKMFS_LOG_ERR, "tenant '%s' KEK v%u: %s", f->tenant, f->version, why);
		keys_event(k, EKMFS_KEYRING_TAMPERED, f->tenant_id, f->version, why);
	} else if (c && c->key) {
		ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' KEK v%u: %s; access to the tenant's files "
			  "is locked (open fails with ENOKEY) until the key is usable again",
			  f->tenant, f->version, ekmfs_lasterr());
		keys_event(k, EKMFS_KEY_REFUSED, f->tenant_id, f->version, why);
	} else if (!c) {
		ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' KEK v%u: %s", f->tenant, f->version, why);
		keys_event(k, EKMFS_KEY_REFUSED, f->tenant_id, f->version, why);
	}
	if (!c)
		c = cache_append(k, f->tenant_id, f->version);
	if (c)
		entry_refuse(c, ret, ttl, now);
	ekmfs_seterr("%s", why);
	return ret;
}

/* ---- 3. acquire ---- */

/* The flight of (tenant, version), made on first use. Exclusive lock. */
static struct kek_flight *flight_get(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version)
{
	struct kek_flight *f;

	for (f = k->flights; f; f = f->next)
		if (f->tenant_id == tenant_id && f->version == version)
			return f;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->tenant_id = tenant_id;
	f->version = version;
	pthread_cond_init(&f->done, NULL);
	pthread_mutex_lock(&k->flight_mu);
	f->next = k->flights;
	k->flights = f;
	pthread_mutex_unlock(&k->flight_mu);
	return f;
}

void keys_flights_free(struct ekmfs_keys *k)
{
	while (k->flights) {
		struct kek_flight *f = k->flights;

		k->flights = f->next;
		pthread_cond_destroy(&f->done);
		free(f);
	}
}

/* Whether a cached entry is fit to serve now without asking anyone. */
static bool entry_fresh(struct cached_kek *c, double now, bool *used_up)
{
	*used_up = c && c->key && c->use_limit &&
		   __atomic_load_n(&c->uses, __ATOMIC_RELAXED) >= c->use_limit;
	return c && now < c->fresh_until && !*used_up;
}

static int refused(struct ekmfs_keys *k, const struct cached_kek *c)
{
	const char *name = keys_tenant_name(k, c->tenant_id);

	if (ekmfs_http_is_outage(c->err))
		ekmfs_seterr("tenant '%s' KEK v%u: the key service is unreachable (%s); asked "
			     "again within %.0f s", name, c->version, strerror(-c->err),
			     KEYS_OUTAGE_RETRY);
	else
		ekmfs_seterr("tenant '%s' KEK v%u: the key service refused it (%s); access is "
			     "locked until the key is usable again", name, c->version,
			     strerror(-c->err));
	return -ENOKEY;
}

/* Whether one more open may wait for kt's key service (flight_mu held). */
static bool may_wait(struct ekmfs_keys *k, const struct key_tenant *kt)
{
	if (k->wait_per_tenant && kt->waiting >= k->wait_per_tenant)
		return false;
	return !k->wait_total || k->waiting < k->wait_total;
}

/* The provider's failures mean one thing to a file: its key is
 * unavailable. Corruption stays -EBADMSG. */
static int for_files(int ret)
{
	return ret && ret != -ENOMEM && ret != -EBADMSG ? -ENOKEY : ret;
}

/* Wait (exclusive lock held, released here) for the fetch fl in flight and
 * take its result: 0 when it installed a KEK (look again), or its error. */
static int wait_for_fetch(struct ekmfs_keys *k, struct key_tenant *kt, struct kek_flight *fl)
{
	uint64_t gen;
	int ret;

	/* Under flight_mu from the check to the wait: the fetch publishes its
	 * end under it, so its broadcast cannot be missed. */
	pthread_mutex_lock(&k->flight_mu);
	if (!fl->busy) {
		pthread_mutex_unlock(&k->flight_mu);
		pthread_rwlock_unlock(&k->lock);
		return 0;
	}
	if (!may_wait(k, kt)) {
		unsigned n = kt->waiting;

		pthread_mutex_unlock(&k->flight_mu);
		pthread_rwlock_unlock(&k->lock);
		ekmfs_seterr("tenant '%s': %u opens already wait for its key service; this one "
			     "is refused rather than hold a worker thread", kt->name, n);
		return -ENOKEY;
	}
	gen = fl->gen;
	kt->waiting++;
	k->waiting++;
	pthread_rwlock_unlock(&k->lock);
	while (fl->gen == gen)
		pthread_cond_wait(&fl->done, &k->flight_mu);
	kt->waiting--;
	k->waiting--;
	ret = fl->ret;
	if (ret)
		ekmfs_seterr("%s", fl->err);
	pthread_mutex_unlock(&k->flight_mu);
	return ret;
}

/* Fetch (tenant, version) through the provider: called with the exclusive
 * lock held and fl marked busy; returns with the lock held on success (the
 * KEK in *key), released on failure. The lock is dropped around the call. */
static int fetch(struct ekmfs_keys *k, struct key_tenant *kt, struct kek_flight *fl,
		 const struct ekmfs_kek_record *krec, uint8_t **key)
{
	struct fetch *f = malloc(sizeof(*f));
	struct ekmfs_wrap_context ctx;
	uint8_t *fresh = NULL;
	int ret;

	if (f) {
		f->tenant_id = kt->id;
		f->version = krec->version;
		snprintf(f->tenant, sizeof(f->tenant), "%s", kt->name);
		f->wrapped = krec->wrapped;
		f->kp = keys_provider_get(kt->kp);
		f->lock_gen = kt->lock_gen;
	}
	keys_stat_add(&k->st_misses, 1);
	pthread_rwlock_unlock(&k->lock);

	/* No lock held: other tenants' opens, and hits, go on meanwhile. */
	if (f)
		fresh = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!f || !fresh) {
		ret = -ENOMEM;
	} else {
		ctx = (struct ekmfs_wrap_context){ k->vol.volume_id, f->tenant, f->version };
		ekmfs_clearerr();
		ret = keys_unwrap(k, f->kp->prov, &ctx, &f->wrapped, fresh);
	}

	pthread_rwlock_wrlock(&k->lock);
	if (f)
		ret = fetch_install(k, f, ret, fresh, key);
	else
		ekmfs_secure_free(fresh, EKMFS_KEY_SIZE);
	pthread_mutex_lock(&k->flight_mu);
	fl->busy = false;
	fl->ret = for_files(ret);
	snprintf(fl->err, sizeof(fl->err), "%s", ret ? ekmfs_lasterr() : "");
	fl->gen++;
	pthread_cond_broadcast(&fl->done);
	pthread_mutex_unlock(&k->flight_mu);
	if (ret)
		pthread_rwlock_unlock(&k->lock);
	if (f)
		keys_provider_put(f->kp);
	free(f);
	return for_files(ret);
}

int keys_kek_acquire(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version,
		     uint8_t **key)
{
	for (;;) {
		struct ekmfs_kek_record *krec;
		struct cached_kek *c;
		struct kek_flight *fl;
		struct key_tenant *kt;
		double now = keys_now();
		bool used_up, busy;
		int ret;

		pthread_rwlock_rdlock(&k->lock);
		c = keys_cache_find(k, tenant_id, version);
		if (c && c->key && now < c->fresh_until &&
		    (!c->use_limit ||
		     __atomic_add_fetch(&c->uses, 1, __ATOMIC_RELAXED) <= c->use_limit)) {
			keys_stat_add(&k->st_hits, 1);
			*key = c->key;
			return 0;
		}
		pthread_rwlock_unlock(&k->lock);

		pthread_rwlock_wrlock(&k->lock);
		kt = keys_tenant_by_id(k, tenant_id);
		/* ekmfs_keys_lock() set the flag and emptied the tenant's
		 * entries under this lock: the shared path finds none. */
		if (kt && kt->locked) {
			ekmfs_seterr("tenant '%s' is locked (ekmfs-admin lock); its keys are "
				     "unavailable until ekmfs-admin unlock", kt->name);
			pthread_rwlock_unlock(&k->lock);
			return -ENOKEY;
		}
		keys_keyring_refresh(k);
		ret = keys_record(k, tenant_id, version, NULL, &krec);
		if (ret) {
			pthread_rwlock_unlock(&k->lock);
			return ret;
		}
		now = keys_now();
		c = keys_cache_find(k, tenant_id, version);
		if (entry_fresh(c, now, &used_up)) {
			if (!c->key) {
				ret = refused(k, c);
				pthread_rwlock_unlock(&k->lock);
				return ret;
			}
			keys_stat_add(&k->st_hits, 1);
			*key = c->key;
			return 0;
		}
		fl = flight_get(k, tenant_id, version);
		if (!fl) {
			pthread_rwlock_unlock(&k->lock);
			return -ENOMEM;
		}
		pthread_mutex_lock(&k->flight_mu);
		busy = fl->busy;
		if (!busy)
			fl->busy = true;
		pthread_mutex_unlock(&k->flight_mu);
		if (busy) {
			/* Being fetched again after its TTL: the cached KEK serves
			 * meanwhile, as it would through an outage. */
			if (c && c->key && !used_up && now < c->valid_until) {
				__atomic_add_fetch(&c->uses, 1, __ATOMIC_RELAXED);
				keys_stat_add(&k->st_hits, 1);
				*key = c->key;
				return 0;
			}
			ret = wait_for_fetch(k, kt, fl);
			if (ret)
				return ret;
			continue;
		}
		if (used_up) {
			/* Served its key_cache_uses: fetch again even within the
			 * TTL (the count can overshoot by the readers that raced
			 * past the limit; none of them used the key). */
			keys_event(k, EKMFS_KEY_EXPIRED, tenant_id, version,
				   "use limit reached (key_cache_uses)");
			c->fresh_until = now;
		} else if (c && c->key && !c->outage) {
			keys_event(k, EKMFS_KEY_EXPIRED, tenant_id, version, "key_cache_ttl passed");
		}
		return fetch(k, kt, fl, krec, key);
	}
}

/* ---- 4. lock / unlock ---- */

int ekmfs_keys_lock(struct ekmfs_keys *k, const char *tenant)
{
	int found = 0;

	pthread_rwlock_wrlock(&k->lock);
	for (size_t i = 0; i < k->ntenants; i++) {
		struct key_tenant *kt = k->tenants[i];

		if (tenant && strcmp(kt->name, tenant) != 0)
			continue;
		found = 1;
		kt->locked = true;
		kt->lock_gen++;
		for (size_t j = k->ncache; j-- > 0;)
			if (k->cache[j].tenant_id == kt->id)
				keys_cache_drop(k, j);
	}
	pthread_rwlock_unlock(&k->lock);
	if (!found) {
		ekmfs_seterr("the volume has no tenant '%s'", tenant);
		return -ENOENT;
	}
	return 0;
}

/* Unlock one tenant (index i): its current KEK is fetched through the
 * provider now, so a key the service no longer gives out is reported here,
 * and the tenant stays locked until it is fetched. */
static int unlock_one(struct ekmfs_keys *k, size_t i)
{
	struct ekmfs_tenant_record *rec;
	struct ekmfs_kek_record *cur;
	struct ekmfs_wrap_context ctx;
	struct key_tenant *kt;
	struct cached_kek *c;
	struct fetch f;
	uint8_t *key;
	int ret;

	pthread_rwlock_wrlock(&k->lock);
	kt = k->tenants[i];
	keys_keyring_refresh(k);
	rec = ekmfs_keyring_tenant_by_id(&k->kr, kt->id);
	c = rec ? keys_cache_find(k, kt->id, rec->current_version) : NULL;
	cur = rec ? ekmfs_tenant_kek(rec, rec->current_version) : NULL;
	if (!rec || !cur || (c && c->key)) {
		kt->locked = false;
		pthread_rwlock_unlock(&k->lock);
		return 0;
	}
	f.tenant_id = kt->id;
	f.version = cur->version;
	snprintf(f.tenant, sizeof(f.tenant), "%s", kt->name);
	f.wrapped = cur->wrapped;
	f.kp = keys_provider_get(kt->kp);
	pthread_rwlock_unlock(&k->lock);

	key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!key) {
		ret = -ENOMEM;
	} else {
		ctx = (struct ekmfs_wrap_context){ k->vol.volume_id, f.tenant, f.version };
		ret = keys_unwrap(k, f.kp->prov, &ctx, &f.wrapped, key);
	}
	keys_provider_put(f.kp);
	if (ret) {
		ekmfs_secure_free(key, EKMFS_KEY_SIZE);
		return ret;
	}
	pthread_rwlock_wrlock(&k->lock);
	ret = keys_record(k, f.tenant_id, f.version, NULL, NULL);
	if (!ret)
		ret = keys_cache_insert(k, &kt->tc, f.tenant_id, f.version, key);
	else
		ekmfs_secure_free(key, EKMFS_KEY_SIZE);
	if (!ret)
		kt->locked = false;
	pthread_rwlock_unlock(&k->lock);
	return ret;
}

int ekmfs_keys_unlock(struct ekmfs_keys *k, const char *tenant)
{
	size_t n;
	int found = 0, ret = 0;

	pthread_rwlock_rdlock(&k->lock);
	n = k->ntenants;
	pthread_rwlock_unlock(&k->lock);
	/* Tenants are only ever added, at the end: indexes below n stay. */
	for (size_t i = 0; i < n; i++) {
		int r;

		pthread_rwlock_rdlock(&k->lock);
		r = !tenant || strcmp(k->tenants[i]->name, tenant) == 0;
		pthread_rwlock_unlock(&k->lock);
		if (!r)
			continue;
		found = 1;
		r = unlock_one(k, i);
		if (r && !ret)
			ret = r;
	}
	if (!found) {
		ekmfs_seterr("the volume has no tenant '%s'", tenant);
		return -ENOENT;
	}
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
