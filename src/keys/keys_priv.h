/*
 * keys_priv.h - private map of the key manager (include/ekmfs/keys.h).
 *
 *   manager.c   the key manager's state: open / close, the keyring copy and
 *               its refresh, the tenant table, the event hook, statistics
 *   cache.c     the KEK cache: lookup, one fetch per (tenant, KEK version) in
 *               flight, expiry, outage and refusal; lock / unlock
 *   file_key.c  a file's DEK: a new header, a re-wrapped one, opening one
 *               by the newest-then-fallback rule (shared with ekmfs-rotate),
 *               checking every slot
 *   tenants.c   applying the configuration (new tenants, changed
 *               providers, policy), routing, per-tenant cache states
 *   init.c      a new volume, a new tenant's keyring record
 *   events.c    the audit record of a key-manager event
 *   provider.c  the provider table and what every provider shares
 *               (provider.h); providers/ one file per key service;
 *               cloud/ the HTTP call and retry loop, credentials and signing
 *               they share
 *
 * Locking (lock order: k->lock, then k->flight_mu):
 *   k->lock (rwlock) guards the keyring copy, its stamp, the tenant table,
 *   each tenant's settings, flags and provider pointer, the cache and the
 *   policy. It is never held across a call into a provider: a fetch takes
 *   what it needs under the lock (a copy of the wrapped record, a reference
 *   to the provider), drops the lock, asks the provider, and takes the lock
 *   again to install the answer. A cache hit holds it shared while the
 *   caller uses the KEK (one AES-GCM of 32 bytes), so a KEK is never copied
 *   out of secure memory nor freed under a reader.
 *   k->flight_mu guards the flights (busy, gen, ret, err) and the waiter
 *   counts; the opens waiting for a fetch sleep on its condition variable,
 *   never on k->lock, so a tenant whose key service hangs holds up only the
 *   opens that need that fetch.
 */
#ifndef EKMFS_KEYS_PRIV_H
#define EKMFS_KEYS_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ekmfs/config.h"
#include "ekmfs/keyring.h"
#include "ekmfs/keys.h"
#include "ekmfs/provider.h"

#define KEYS_DEFAULT_TENANT_ID 1
/* While a key service is unreachable (or a first fetch failed for an
 * outage), it is asked again at most this often. */
#define KEYS_OUTAGE_RETRY 5.0

/* A tenant's opened provider and the settings it was opened with (providers
 * keep a pointer to them). Reference-counted: a reload may replace it while
 * a fetch still uses the old one. */
struct key_provider {
	struct ekmfs_provider *prov;
	struct ekmfs_tenant_config *tc;
	unsigned refs;                  /* atomic */
};

/* A tenant of the open volume. */
struct key_tenant {
	uint32_t id;
	char name[EKMFS_NAME_MAX];
	struct ekmfs_tenant_config tc;  /* the running settings and policy */
	struct key_provider *kp;
	bool locked;                    /* ekmfs_keys_lock() */
	uint64_t lock_gen;              /* +1 per lock: older fetches do not install */
	unsigned waiting;               /* opens waiting for its fetches (flight_mu) */
};

/* A KEK in the cache is served until fresh_until (CLOCK_MONOTONIC seconds),
 * then unwrapped again through the provider (key_cache_ttl). If the
 * provider is unreachable the entry keeps serving, re-asked at most every
 * KEYS_OUTAGE_RETRY seconds, until valid_until (last success + ttl +
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

/* The fetch of one (tenant, KEK version) through its provider. At most one
 * is busy at a time; the opens that need it meanwhile wait for it and take
 * its result, so N opens during one miss cost one call to the key service.
 * Kept until close (one per KEK version ever fetched). */
struct kek_flight {
	uint32_t tenant_id, version;
	bool busy;
	uint64_t gen;                   /* +1 each time a fetch ends */
	int ret;                        /* what the last fetch that ended gave opens */
	char err[512];                  /* and its reason */
	pthread_cond_t done;
	struct kek_flight *next;
};

struct ekmfs_keys {
	int backing_fd;                 /* owned by the caller */
	struct ekmfs_volume vol;
	pthread_rwlock_t lock;          /* guards every field below but the flights */
	struct ekmfs_keyring kr;
	uint64_t stamp[3];              /* of the keyring file kr was read from */
	struct ekmfs_keyring_key *mk;   /* authenticates kr and its re-reads */
	struct key_tenant **tenants;
	size_t ntenants;
	struct cached_kek *cache;
	size_t ncache;
	/* The configuration last applied (ekmfs_keys_apply_config): routing of
	 * new files. NULL until then: everything goes to the default tenant. */
	struct ekmfs_config *policy;
	ekmfs_key_event_fn event_fn;    /* audit hook; set before use */
	void *event_arg;
	/* Flights and waiters (under flight_mu). */
	pthread_mutex_t flight_mu;
	struct kek_flight *flights;
	unsigned waiting;               /* opens waiting for any fetch */
	unsigned wait_per_tenant, wait_total;   /* limits; 0: none */
	/* Metrics (ekmfs_keys_stats); updated with relaxed atomics, any lock. */
	uint64_t st_hits, st_misses, st_calls, st_errors, st_ns;
};

/* manager.c */
struct key_tenant *keys_tenant_by_id(struct ekmfs_keys *k, uint32_t id);
struct key_tenant *keys_tenant_by_name(struct ekmfs_keys *k, const char *name);
const char *keys_tenant_name(struct ekmfs_keys *k, uint32_t id);
/* Re-read the keyring if the file changed since we read it; cached KEKs
 * whose record is gone or destroyed are dropped. Exclusive lock. */
int keys_keyring_refresh(struct ekmfs_keys *k);
/* Whether the keyring file differs from the one in memory. Any lock. */
bool keys_keyring_changed(struct ekmfs_keys *k);
/* tenants.c: whether new files in tc's paths go to tc now: its
 * enforce_from has come and it is enabled, as the keyring records it (the
 * volume's record, kept by every host; tc's own when the keyring has no
 * record of it yet). Caller holds k->lock. */
bool keys_tenant_enforced(struct ekmfs_keys *k, const struct ekmfs_tenant_config *tc,
			  time_t now);
/* Tell the audit hook (if any). Either lock mode, or none before use. */
void keys_event(struct ekmfs_keys *k, enum ekmfs_key_event ev, uint32_t tenant_id,
		uint32_t version, const char *reason);
void keys_stat_add(uint64_t *counter, uint64_t n);
/* A provider reference (refs 1) for tc opened on rec; put drops one and
 * closes the provider with the last. */
int keys_provider_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
		       struct key_provider **out);
struct key_provider *keys_provider_get(struct key_provider *kp);
void keys_provider_put(struct key_provider *kp);
/* Add an opened tenant to the table (takes kp). Exclusive lock. */
int keys_tenant_add(struct ekmfs_keys *k, const struct ekmfs_tenant_record *rec,
		    const struct ekmfs_tenant_config *tc, struct key_provider *kp);

/* cache.c */
double keys_now(void);
struct cached_kek *keys_cache_find(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version);
void keys_cache_drop(struct ekmfs_keys *k, size_t i);
/* Put a freshly unwrapped KEK (secure memory, taken) into the cache for a
 * tenant whose settings are tc. Exclusive lock. 0 or -ENOMEM (key freed). */
int keys_cache_insert(struct ekmfs_keys *k, const struct ekmfs_tenant_config *tc,
		      uint32_t tenant_id, uint32_t version, uint8_t *key);
/* Unwrap (tenant, version) through prov, counted and timed. No lock. */
int keys_unwrap(struct ekmfs_keys *k, struct ekmfs_provider *prov,
		const struct ekmfs_wrap_context *ctx, const struct ekmfs_wrapped_kek *wrapped,
		uint8_t *key);
/* The usable record of (tenant, version) in the keyring copy: -EBADMSG for
 * one the keyring never issued, -ENOKEY for a destroyed one or a tenant
 * opened after the volume (messages set). Any lock. */
int keys_record(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version,
		struct ekmfs_tenant_record **trec, struct ekmfs_kek_record **krec);
/* Find the KEK and return with k->lock held (shared or exclusive): the
 * caller uses *key, then unlocks. On failure the lock is not held: -ENOKEY
 * (unavailable: locked, refused, unreachable), -EBADMSG (the header names
 * what the keyring never issued) or -ENOMEM. */
int keys_kek_acquire(struct ekmfs_keys *k, uint32_t tenant_id, uint32_t version,
		     uint8_t **key);
void keys_flights_free(struct ekmfs_keys *k);

/* manager.c: the path of BACKING for messages ("BACKING" when unknown). */
void keys_backing_path(int backing_fd, char *out, size_t outlen);

#endif
