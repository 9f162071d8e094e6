/*
 * manager.c - the key manager's state (include/ekmfs/keys.h, keys_priv.h).
 *
 * Owns: opening the key hierarchy of a volume (descriptor, keyring, each
 * tenant's provider and current KEK, so a wrong or missing key fails before
 * anything is mounted) and closing it; the keyring copy and its refresh
 * when another tool changed the file; the tenant table and the
 * reference-counted providers; the audit hook; statistics.
 *
 * Divisions:
 *   1. tenants and providers
 *   2. the keyring copy
 *   3. events and statistics
 *   4. open / close
 *
 * Locking: keys_priv.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/aead.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "keys_priv.h"

/* ---- 1. tenants and providers ---- */

struct key_tenant *keys_tenant_by_id(struct ekmfs_keys *k, uint32_t id)
{
	for (size_t i = 0; i < k->ntenants; i++)
		if (k->tenants[i]->id == id)
			return k->tenants[i];
	return NULL;
}

struct key_tenant *keys_tenant_by_name(struct ekmfs_keys *k, const char *name)
{
	for (size_t i = 0; i < k->ntenants; i++)
		if (strcmp(k->tenants[i]->name, name) == 0)
			return k->tenants[i];
	return NULL;
}

const char *keys_tenant_name(struct ekmfs_keys *k, uint32_t id)
{
	struct key_tenant *kt = keys_tenant_by_id(k, id);

	return kt ? kt->name : "?";
}

int keys_provider_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
		       struct key_provider **out)
{
	struct key_provider *kp = calloc(1, sizeof(*kp));
	int ret;

	*out = NULL;
	if (!kp)
		return -ENOMEM;
	kp->tc = malloc(sizeof(*kp->tc));
	if (!kp->tc) {
		free(kp);
		return -ENOMEM;
	}
	*kp->tc = *tc;
	ret = ekmfs_provider_open(kp->tc, rec, false, &kp->prov);
	if (ret) {
		free(kp->tc);
		free(kp);
		return ret;
	}
	kp->refs = 1;
	*out = kp;
	return 0;
}

struct key_provider *keys_provider_get(struct key_provider *kp)
{
	__atomic_add_fetch(&kp->refs, 1, __ATOMIC_RELAXED);
	return kp;
}

void keys_provider_put(struct key_provider *kp)
{
	if (!kp || __atomic_sub_fetch(&kp->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	ekmfs_provider_close(kp->prov);
	free(kp->tc);
	free(kp);
}

int keys_tenant_add(struct ekmfs_keys *k, const struct ekmfs_tenant_record *rec,
		    const struct ekmfs_tenant_config *tc, struct key_provider *kp)
{
	struct key_tenant *kt, **grown;

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
	kt->kp = kp;
	k->tenants[k->ntenants++] = kt;
	return 0;
}

struct ekmfs_provider *ekmfs_keys_provider(struct ekmfs_keys *k, const char *tenant)
{
	struct key_tenant *kt = keys_tenant_by_name(k, tenant);

	return kt ? kt->kp->prov : NULL;
}

/* ---- 2. the keyring copy ---- */

bool keys_keyring_changed(struct ekmfs_keys *k)
{
	uint64_t stamp[3];

	if (ekmfs_keyring_stamp(k->backing_fd, stamp) < 0)
		return false;
	return memcmp(stamp, k->stamp, sizeof(stamp)) != 0;
}

/* A keyring read again while open: it must authenticate, and may not be
 * older than the one held, nor unsealed when that one was sealed (a copy
 * put back from before a change: anti-rollback). 0, -EBADMSG, -ESTALE. */
static int keyring_acceptable(struct ekmfs_keys *k, const struct ekmfs_keyring *fresh)
{
	char path[PATH_MAX + 64];
	int ret;

	ekmfs_meta_path(k->backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
	ret = ekmfs_keyring_key_follow(k->backing_fd, &k->vol, fresh,
				       ekmfs_keys_provider(k, EKMFS_DEFAULT_TENANT), &k->mk);
	if (ret)
		return ret;
	if (fresh->generation < k->kr.generation ||
	    (ekmfs_keyring_sealed(&k->kr) && !ekmfs_keyring_sealed(fresh))) {
		ekmfs_seterr("%s (generation %llu) is older than the keyring this process "
			     "already read (generation %llu): it was rolled back", path,
			     (unsigned long long)fresh->generation,
			     (unsigned long long)k->kr.generation);
		return -ESTALE;
	}
	return 0;
}

/* Providers copy what they need from their record at open, and fetches copy
 * the wrapped record they send, so replacing k->kr leaves nothing pointing
 * into the old one. */
int keys_keyring_refresh(struct ekmfs_keys *k)
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
	if (!ret)
		ret = keyring_acceptable(k, &fresh);
	if (ret) {
		ekmfs_log(EKMFS_LOG_WARN, "keeping the keyring in memory: %s", ekmfs_lasterr());
		ekmfs_keyring_free(&fresh);
		/* Once per change of the file, not at every open after it. */
		memcpy(k->stamp, stamp, sizeof(stamp));
		if (ret == -EBADMSG || ret == -ESTALE)
			keys_event(k, EKMFS_KEYRING_TAMPERED, KEYS_DEFAULT_TENANT_ID, 0,
				   ekmfs_lasterr());
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
			keys_cache_drop(k, i);
	}
	return 0;
}

static int reseal_edit(struct ekmfs_keyring *kr, void *arg)
{
	(void)kr;
	(void)arg;
	return 1;       /* nothing to change: written to be sealed */
}

int ekmfs_keys_seal_keyring(struct ekmfs_keys *k)
{
	struct ekmfs_keyring fresh = { 0 };
	int lock_fd = -1, ret;

	ret = ekmfs_meta_lock(k->backing_fd, true, true, &lock_fd);
	if (ret)
		return ret;
	ret = ekmfs_keyring_update(k->backing_fd, k->mk, reseal_edit, NULL, true, &fresh);
	ekmfs_meta_unlock(lock_fd);
	if (ret < 0)
		return ret;
	pthread_rwlock_wrlock(&k->lock);
	ekmfs_keyring_free(&k->kr);
	k->kr = fresh;
	(void)ekmfs_keyring_stamp(k->backing_fd, k->stamp);
	pthread_rwlock_unlock(&k->lock);
	return 0;
}

int ekmfs_keys_check_anchor(struct ekmfs_keys *k, uint64_t least)
{
	char path[PATH_MAX + 64];
	int ret;

	ekmfs_meta_path(k->backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
	pthread_rwlock_rdlock(&k->lock);
	ret = ekmfs_keyring_check_anchor(&k->kr, least, path);
	pthread_rwlock_unlock(&k->lock);
	return ret;
}

uint64_t ekmfs_keys_sealed_generation(struct ekmfs_keys *k)
{
	uint64_t g;

	pthread_rwlock_rdlock(&k->lock);
	g = ekmfs_keyring_sealed(&k->kr) ? k->kr.generation : 0;
	pthread_rwlock_unlock(&k->lock);
	return g;
}

int ekmfs_keys_check_keks(struct ekmfs_keys *k, ekmfs_kek_check_fn fn, void *arg)
{
	uint8_t *key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	int bad = 0;

	if (!key)
		return -ENOMEM;
	pthread_rwlock_rdlock(&k->lock);
	for (size_t i = 0; i < k->kr.ntenants; i++) {
		const struct ekmfs_tenant_record *t = &k->kr.tenants[i];
		struct key_tenant *kt = keys_tenant_by_id(k, t->id);

		for (size_t j = 0; j < t->nkeks; j++) {
			const struct ekmfs_kek_record *r = &t->keks[j];
			struct ekmfs_wrap_context ctx = { k->vol.volume_id, t->name, r->version };
			int ret = 0;

			if (r->state != EKMFS_KEK_DESTROYED) {
				ekmfs_clearerr();
				ret = kt ? keys_unwrap(k, kt->kp->prov, &ctx, &r->wrapped, key) : -ENOKEY;
				if (!kt)
					ekmfs_seterr("tenant '%s' is not open", t->name);
				ekmfs_wipe(key, EKMFS_KEY_SIZE);
			}
			if (ret)
				bad++;
			fn(arg, t, r, ret, ret ? ekmfs_lasterr() : "");
		}
	}
	pthread_rwlock_unlock(&k->lock);
	ekmfs_secure_free(key, EKMFS_KEY_SIZE);
	return bad;
}

/* ---- 3. events and statistics ---- */

void keys_event(struct ekmfs_keys *k, enum ekmfs_key_event ev, uint32_t tenant_id,
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
	k->event_fn(k->event_arg, ev, keys_tenant_name(k, tenant_id), ref, version, reason);
}

void ekmfs_keys_set_event_hook(struct ekmfs_keys *k, ekmfs_key_event_fn fn, void *arg)
{
	pthread_rwlock_wrlock(&k->lock);
	k->event_fn = fn;
	k->event_arg = arg;
	pthread_rwlock_unlock(&k->lock);
}

void ekmfs_keys_set_wait_limits(struct ekmfs_keys *k, unsigned per_tenant, unsigned total)
{
	pthread_mutex_lock(&k->flight_mu);
	k->wait_per_tenant = per_tenant;
	k->wait_total = total;
	pthread_mutex_unlock(&k->flight_mu);
}

void keys_stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
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

const struct ekmfs_volume *ekmfs_keys_volume(const struct ekmfs_keys *k)
{
	return &k->vol;
}

/* ---- 4. open / close ---- */

void keys_backing_path(int backing_fd, char *out, size_t outlen)
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

/* Open rec's tenant at mount: its provider, and its current KEK into the
 * cache, so a wrong or missing key fails now, not at the first file. Nothing
 * else runs yet: no lock is needed around the provider. */
static int open_tenant(struct ekmfs_keys *k, const struct ekmfs_config *cfg,
		       struct ekmfs_tenant_record *rec)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, rec->name);
	struct ekmfs_kek_record *cur = ekmfs_tenant_kek(rec, rec->current_version);
	struct ekmfs_wrap_context ctx = { k->vol.volume_id, rec->name, rec->current_version };
	struct key_provider *kp = NULL;
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
	ret = keys_provider_open(tc, rec, &kp);
	if (ret)
		return ret;
	ret = keys_tenant_add(k, rec, tc, kp);
	if (ret) {
		keys_provider_put(kp);
		return ret;
	}
	key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!key)
		return -ENOMEM;
	ret = keys_unwrap(k, kp->prov, &ctx, &cur->wrapped, key);
	if (ret) {
		ekmfs_secure_free(key, EKMFS_KEY_SIZE);
		return ret;
	}
	return keys_cache_insert(k, tc, rec->id, rec->current_version, key);
}

int ekmfs_keys_open(int backing_fd, const struct ekmfs_config *cfg, struct ekmfs_keys **out)
{
	struct ekmfs_keys *k = calloc(1, sizeof(*k));
	struct ekmfs_tenant_record *dflt;
	char path[PATH_MAX];
	int ret;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	k->backing_fd = backing_fd;
	pthread_rwlock_init(&k->lock, NULL);
	pthread_mutex_init(&k->flight_mu, NULL);
	/* Before any key is read: a key kept in BACKING is refused at every
	 * mount and by every tool, not only by init. */
	ret = ekmfs_keys_check_secrets(backing_fd, cfg);
	if (ret)
		goto fail;
	ret = ekmfs_volume_read(backing_fd, &k->vol);
	if (ret == -ENOENT) {
		keys_backing_path(backing_fd, path, sizeof(path));
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
	/* The default tenant first: its CMK opens the keyring's MAC key, and
	 * the keyring and descriptor authenticate before any other record is
	 * acted on. */
	dflt = ekmfs_keyring_tenant(&k->kr, EKMFS_DEFAULT_TENANT);
	if (!dflt) {
		keys_backing_path(backing_fd, path, sizeof(path));
		ekmfs_seterr("%s/%s/%s has no tenant 'default'", path, EKMFS_META_DIR,
			     EKMFS_KEYRING_FILE);
		ret = -EBADMSG;
		goto fail;
	}
	ret = open_tenant(k, cfg, dflt);
	if (!ret)
		ret = ekmfs_keyring_key_open(backing_fd, &k->vol, &k->kr,
					     ekmfs_keys_provider(k, EKMFS_DEFAULT_TENANT), &k->mk);
	for (size_t i = 0; i < k->kr.ntenants && !ret; i++)
		if (&k->kr.tenants[i] != dflt)
			ret = open_tenant(k, cfg, &k->kr.tenants[i]);
	if (ret)
		goto fail;
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
		keys_provider_put(k->tenants[i]->kp);
		free(k->tenants[i]);
	}
	free(k->tenants);
	free(k->policy);
	ekmfs_keyring_key_free(k->mk);
	keys_flights_free(k);
	ekmfs_keyring_free(&k->kr);
	pthread_mutex_destroy(&k->flight_mu);
	pthread_rwlock_destroy(&k->lock);
	free(k);
}
