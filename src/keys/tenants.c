/*
 * tenants.c - bringing the key manager in line with the configuration
 * (include/ekmfs/keys.h, docs/TENANTS.md).
 *
 * Owns: ekmfs_keys_apply_config at mount and on every reload (tenants the
 * keyring lacks are created, tenants the keyring gained are opened,
 * changed provider settings are checked and put in place, `enabled` is
 * recorded, policy and cache limits adopted) and the per-tenant cache
 * states for status. `enabled` is the volume's, in the keyring: the
 * configuration records it at mount and whenever a reload changes it, and
 * the keyring's record decides routing (so a tenant disabled through one
 * host of a shared volume is disabled on all at their next keyring read).
 *
 * Divisions:
 *   1. policy and provider settings
 *   2. apply: create, prepare (asks key services, no lock), install
 *   3. cache states
 *
 * A reload applies all or nothing: every provider it needs is opened and
 * has unwrapped its tenant's current KEK before anything is replaced. The
 * key services are asked with no lock held, so a slow one delays the reload
 * and nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ekmfs/aead.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "keys_priv.h"

/* ---- 1. policy and provider settings ---- */

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
	struct ekmfs_tenant_config *x = malloc(sizeof(*x));
	bool differ = true;

	if (x) {
		*x = *a;
		copy_policy(x, b);
		differ = memcmp(x, b, sizeof(*x)) != 0;
		free(x);
	}
	return differ;
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

bool keys_tenant_enforced(struct ekmfs_keys *k, const struct ekmfs_tenant_config *tc,
			  time_t now)
{
	const struct ekmfs_tenant_record *rec;

	if (strcmp(tc->name, EKMFS_DEFAULT_TENANT) == 0)
		return true;
	if (now < tc->enforce_from)
		return false;
	rec = ekmfs_keyring_tenant(&k->kr, tc->name);
	return rec ? !rec->disabled : tc->enabled;
}

/* Whether this process's configuration changed tc's `enabled` (or names
 * the tenant for the first time here, at mount): then the keyring records
 * it. Otherwise a keyring that differs was changed by another process (a
 * daemon on another host of a shared volume), and its record stands. */
static bool enabled_changed_here(struct ekmfs_keys *k, const struct ekmfs_tenant_config *tc)
{
	const struct ekmfs_config *prev = k->policy;

	if (!prev)
		return true;
	for (unsigned i = 0; i < prev->ntenants; i++)
		if (strcmp(prev->tenants[i].name, tc->name) == 0)
			return prev->tenants[i].enabled != tc->enabled;
	return true;
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
	ret = ekmfs_keyring_update(k->backing_fd, k->mk, set_enabled, (void *)tc, true, NULL);
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
	keys_keyring_refresh(k);
	rec = ekmfs_keyring_tenant(&k->kr, tc->name);
	same = rec && rec->disabled == !tc->enabled;
	pthread_rwlock_unlock(&k->lock);
	return same;
}

/* ---- 2. apply ---- */

/* A tenant the reload opens (new in the keyring) or whose provider it
 * replaces (changed settings): the provider, opened and proven on the
 * tenant's current KEK, and that KEK. */
struct prepared {
	uint32_t id;
	bool is_new;
	bool created;                   /* made by this apply (audited) */
	struct ekmfs_tenant_record rec; /* name, kdf, ...; keks: just cur */
	struct ekmfs_kek_record cur;
	struct ekmfs_tenant_config *tc;
	struct key_provider *kp;
	uint8_t *key;
};

static void prepared_free(struct prepared *p)
{
	keys_provider_put(p->kp);
	ekmfs_secure_free(p->key, EKMFS_KEY_SIZE);
	free(p->tc);
	memset(p, 0, sizeof(*p));
}

/* Open p's provider and unwrap the current KEK with it. No lock: this is
 * where the key services are asked. */
static int prepare(struct ekmfs_keys *k, struct prepared *p)
{
	struct ekmfs_wrap_context ctx = { k->vol.volume_id, p->rec.name, p->cur.version };
	char why[600];
	int ret;

	p->key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!p->key)
		return -ENOMEM;
	ekmfs_clearerr();
	ret = keys_provider_open(p->tc, &p->rec, &p->kp);
	if (!ret)
		ret = keys_unwrap(k, p->kp->prov, &ctx, &p->cur.wrapped, p->key);
	if (ret && !p->is_new) {
		/* Settings that cannot unwrap the current KEK (the key file changed
		 * before 'ekmfs-rotate cmk' moved the keyring to it) are refused
		 * instead of locking the tenant out when its cached KEK expires. */
		snprintf(why, sizeof(why), "%s", ekmfs_lasterr()[0] ? ekmfs_lasterr() :
			 strerror(-ret));
		ekmfs_seterr("tenant '%s': the changed provider settings cannot unwrap its KEK "
			     "v%u: %s", p->rec.name, p->cur.version, why);
	}
	return ret;
}

/* Under the exclusive lock: the tenants to prepare. A keyring tenant not
 * open yet is new (its configuration must have it, with the same provider);
 * an open one whose provider settings changed gets a new provider. */
static int collect(struct ekmfs_keys *k, const struct ekmfs_config *cfg, const bool *created,
		   struct prepared *out, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < k->kr.ntenants; i++) {
		struct ekmfs_tenant_record *rec = &k->kr.tenants[i];
		const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, rec->name);
		struct key_tenant *kt = keys_tenant_by_id(k, rec->id);
		struct ekmfs_kek_record *cur = ekmfs_tenant_kek(rec, rec->current_version);
		struct prepared *p = &out[*n];

		if (kt && (!tc || strcmp(tc->provider, kt->tc.provider) != 0 ||
			   !provider_settings_differ(&kt->tc, tc)))
			continue;
		if (!kt && !tc) {
			ekmfs_seterr("the keyring has tenant '%s', which the configuration lacks "
				     "([tenant.%s])", rec->name, rec->name);
			return -ENOKEY;
		}
		if (!kt && strcmp(tc->provider, rec->provider) != 0) {
			ekmfs_seterr("tenant '%s' uses provider '%s' in the keyring but '%s' in the "
				     "configuration", rec->name, rec->provider, tc->provider);
			return -EINVAL;
		}
		if (!cur)
			continue;       /* cannot happen for a parsed keyring */
		memset(p, 0, sizeof(*p));
		p->id = rec->id;
		p->is_new = !kt;
		p->created = created[tc - cfg->tenants];
		p->rec = *rec;
		p->cur = *cur;
		p->rec.keks = &p->cur;
		p->rec.nkeks = 1;
		p->tc = malloc(sizeof(*p->tc));
		if (!p->tc)
			return -ENOMEM;
		*p->tc = *tc;
		(*n)++;
	}
	return 0;
}

/* Under the exclusive lock: put every prepared tenant in place. */
static int install(struct ekmfs_keys *k, struct prepared *ps, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		struct prepared *p = &ps[i];
		struct key_tenant *kt = keys_tenant_by_id(k, p->id);

		if (p->is_new && !kt) {
			ret = keys_tenant_add(k, &p->rec, p->tc, p->kp);
			if (ret)
				break;
			p->kp = NULL;
			kt = keys_tenant_by_id(k, p->id);
			if (p->created) {
				keys_event(k, EKMFS_TENANT_CREATED, p->id, p->cur.version,
					   "tenant added to the configuration; KEK v1 created "
					   "under its CMK");
				keys_event(k, EKMFS_CMK_SET, p->id, p->cur.version,
					   "the tenant's first CMK wraps its KEK v1");
			}
		} else if (kt) {
			/* The cached KEKs stay: the same keys, only their wrapping
			 * moved. */
			struct key_provider *old = kt->kp;

			kt->kp = p->kp;
			p->kp = NULL;
			keys_provider_put(old);
			kt->tc = *p->tc;
			ekmfs_log(EKMFS_LOG_INFO, "tenant '%s': provider settings changed; now in use",
				  kt->name);
		}
		if (kt && !keys_cache_find(k, p->id, p->cur.version) &&
		    keys_record(k, p->id, p->cur.version, NULL, NULL) == 0) {
			ret = keys_cache_insert(k, &kt->tc, p->id, p->cur.version, p->key);
			p->key = NULL;
		}
	}
	return ret;
}

/* New tenants first, outside k->lock: creating one asks its KMS. */
static int create_missing(struct ekmfs_keys *k, const struct ekmfs_config *cfg, bool *created)
{
	int ret;

	for (unsigned i = 0; i < cfg->ntenants; i++) {
		const struct ekmfs_tenant_config *tc = &cfg->tenants[i];
		uint32_t id = 0;

		if (tenant_up_to_date(k, tc))
			continue;
		ret = ekmfs_keys_create_tenant(k->backing_fd, &k->vol, tc, k->mk, &id);
		if (ret == -EEXIST) {
			if (!enabled_changed_here(k, tc)) {
				ekmfs_log(EKMFS_LOG_INFO, "tenant '%s': the keyring says enabled = "
					  "%s (changed by another host or tool); this configuration "
					  "still says %s: the keyring's record applies",
					  tc->name, tc->enabled ? "false" : "true",
					  tc->enabled ? "true" : "false");
				continue;
			}
			ret = record_enabled(k, tc);
			if (ret < 0)
				return ret;
			if (ret > 0) {
				pthread_rwlock_rdlock(&k->lock);
				keys_event(k, tc->enabled ? EKMFS_TENANT_ENABLED :
					   EKMFS_TENANT_DISABLED, id, 0, tc->enabled ?
					   "enabled = true: new files in its paths use its CMK" :
					   "enabled = false: new files in its paths use the default "
					   "tenant; ekmfs-rotate migrate moves existing ones back");
				pthread_rwlock_unlock(&k->lock);
			}
			continue;
		}
		if (ret) {
			char why[600];

			snprintf(why, sizeof(why), "%s", ekmfs_lasterr());
			ekmfs_seterr("tenant '%s': cannot create its keys: %s", tc->name, why);
			return ret;
		}
		ekmfs_log(EKMFS_LOG_INFO, "tenant '%s': created (id %u, KEK v1 under its %s CMK)",
			  tc->name, id, tc->provider);
		created[i] = true;
	}
	return 0;
}

int ekmfs_keys_apply_config(struct ekmfs_keys *k, const struct ekmfs_config *cfg)
{
	struct ekmfs_config *policy = malloc(sizeof(*policy));
	bool created[EKMFS_MAX_TENANTS] = { false };
	struct prepared *ps = NULL;
	size_t n = 0;
	int ret;

	if (!policy)
		return -ENOMEM;
	*policy = *cfg;
	ret = ekmfs_config_check_paths(cfg, k->backing_fd);
	if (!ret)
		ret = ekmfs_keys_check_secrets(k->backing_fd, cfg);
	if (!ret)
		ret = create_missing(k, cfg, created);
	if (ret)
		goto out;

	pthread_rwlock_wrlock(&k->lock);
	keys_keyring_refresh(k);
	ps = calloc(k->kr.ntenants ? k->kr.ntenants : 1, sizeof(*ps));
	ret = ps ? collect(k, cfg, created, ps, &n) : -ENOMEM;
	pthread_rwlock_unlock(&k->lock);

	for (size_t i = 0; i < n && !ret; i++)
		ret = prepare(k, &ps[i]);

	pthread_rwlock_wrlock(&k->lock);
	if (!ret)
		ret = install(k, ps, n);
	for (size_t i = 0; i < k->ntenants && !ret; i++) {
		struct key_tenant *kt = k->tenants[i];
		const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, kt->name);

		if (!tc) {
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s' is no longer in the configuration: its "
				  "files stay readable until the next mount, which will refuse",
				  kt->name);
			continue;
		}
		/* (Changed settings of the same provider were applied above.) */
		if (strcmp(tc->provider, kt->tc.provider) != 0)
			ekmfs_log(EKMFS_LOG_WARN, "tenant '%s': provider changed from %s to %s; "
				  "the keys in use stay, the next mount checks it against the "
				  "keyring", kt->name, kt->tc.provider, tc->provider);
		copy_policy(&kt->tc, tc);
	}
	if (!ret) {
		free(k->policy);
		k->policy = policy;
		policy = NULL;
	}
	pthread_rwlock_unlock(&k->lock);
out:
	for (size_t i = 0; i < n; i++)
		prepared_free(&ps[i]);
	free(ps);
	free(policy);
	return ret;
}

/* ---- 3. cache states ---- */

void ekmfs_keys_refresh(struct ekmfs_keys *k)
{
	pthread_rwlock_wrlock(&k->lock);
	keys_keyring_refresh(k);
	pthread_rwlock_unlock(&k->lock);
}

size_t ekmfs_keys_tenant_states(struct ekmfs_keys *k, struct ekmfs_tenant_state *out,
				size_t max)
{
	double now = keys_now();
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
		o->last_rotation = rec ? rec->last_rotation : 0;
		o->enforced = keys_tenant_enforced(k, &kt->tc, wall);
		o->use_limit = kt->tc.key_cache_uses;
		c = keys_cache_find(k, kt->id, o->current_version);
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
