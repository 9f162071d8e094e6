/*
 * keys.h - the key hierarchy of one volume: CMK -> KEK versions -> DEKs.
 *
 * Owns: turning the keyring into usable KEKs (through the providers), the
 * in-memory KEK cache (locked memory), creating a header for a new file and
 * unwrapping the DEK of an existing one. Thread-safe: the daemon calls it from
 * every worker. The keyring is re-read when the file changes on disk, so the
 * daemon picks up keyring changes made by other tools without a restart.
 * A key service is never asked with a lock held that another tenant's open
 * needs: a slow or hung one costs only its own tenant (src/keys/cache.c).
 */
#ifndef EKMFS_KEYS_H
#define EKMFS_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "ekmfs/config.h"
#include "ekmfs/format.h"
#include "ekmfs/keyring.h"

struct ekmfs_keys;

/* Create a volume in backing_fd: descriptor, and a keyring holding the
 * default tenant with KEK version 1 wrapped by its provider (which may
 * create the local key file). -EEXIST if BACKING is already a volume,
 * -ENOTEMPTY if it holds files other than lost+found. */
int ekmfs_volume_init(int backing_fd, const struct ekmfs_config *cfg,
		      struct ekmfs_volume *out);

/* Add tenant tc to the keyring of the volume in backing_fd if it lacks it:
 * a fresh tenant id (ids are never reused), KEK v1 wrapped by the tenant's
 * CMK through its provider (self-tested), enabled as tc says. Takes the meta
 * lock. 0 when created, -EEXIST when the keyring has it already, else -errno
 * with ekmfs_lasterr(). rec_out (may be NULL) receives the id. */
int ekmfs_keys_create_tenant(int backing_fd, const struct ekmfs_volume *vol,
			     const struct ekmfs_tenant_config *tc,
			     const struct ekmfs_keyring_key *mk, uint32_t *id_out);

struct ekmfs_provider;
/* The keyring's MAC key (src/keys/keyring_key.c; docs/FORMAT.md "Keyring
 * MAC"), through prov, the default tenant's provider. make: a new random
 * key and its wrap. open: unwrap kr's and authenticate kr and the
 * descriptor vol with it (-EBADMSG with one line when they do not); for a
 * keyring of ekmfs 1 on a version-1 volume, a new key its first write will
 * store (ekmfs_keyring_check_anchor warns of it). rewrap: mk's key under
 * to (a CMK change).
 * free wipes. 0 or -errno with ekmfs_lasterr(). */
int ekmfs_keyring_key_make(const struct ekmfs_volume *vol, struct ekmfs_provider *prov,
			   struct ekmfs_keyring_key **out);
int ekmfs_keyring_key_open(int backing_fd, const struct ekmfs_volume *vol,
			   const struct ekmfs_keyring *kr, struct ekmfs_provider *prov,
			   struct ekmfs_keyring_key **out);
/* Authenticate kr, a keyring read again, with *mk; when *mk was made here
 * for a keyring of ekmfs 1 and kr has been sealed since (by this process
 * or another writer), *mk is replaced by kr's own key, unwrapped through
 * prov. 0 or -errno (-EBADMSG: kr does not authenticate). */
int ekmfs_keyring_key_follow(int backing_fd, const struct ekmfs_volume *vol,
			     const struct ekmfs_keyring *kr, struct ekmfs_provider *prov,
			     struct ekmfs_keyring_key **mk);
int ekmfs_keyring_key_rewrap(const struct ekmfs_volume *vol, const struct ekmfs_keyring_key *mk,
			     struct ekmfs_provider *to, struct ekmfs_wrapped_kek *out);
void ekmfs_keyring_key_free(struct ekmfs_keyring_key *mk);

/* Open the hierarchy: read descriptor and keyring, open each tenant's
 * provider and unwrap its current KEK, so a wrong or missing key fails here,
 * before anything is mounted; then authenticate the keyring and descriptor
 * with the keyring's MAC key (an edited field, a record added, removed or
 * reordered, another volume's keyring: -EBADMSG). A re-read keyring must
 * authenticate too and may not be older than the one held (anti-rollback).
 * A secrets file inside BACKING is refused first
 * (ekmfs_keys_check_secrets). backing_fd stays owned by the caller. */
int ekmfs_keys_open(int backing_fd, const struct ekmfs_config *cfg,
		    struct ekmfs_keys **out);
void ekmfs_keys_close(struct ekmfs_keys *k);
/* Write the keyring again, sealed (a keyring of ekmfs 1 gets its MAC key
 * and MAC: ekmfs-admin upgrade, before volume.json goes to version 2). */
int ekmfs_keys_seal_keyring(struct ekmfs_keys *k);
/* The keyring anchor: least is the generation the audit trail recorded
 * (ekmfs_audit_keyring_generation; 0: none). The keyring held must be
 * sealed and at least that new: else -EBADMSG (MAC stripped) or -ESTALE
 * (rolled back), with one line. */
int ekmfs_keys_check_anchor(struct ekmfs_keys *k, uint64_t least);
/* The generation of the keyring held, when it is sealed (what a writer
 * notes in the audit trail: ekmfs_audit_note_keyring); 0 when unsealed. */
uint64_t ekmfs_keys_sealed_generation(struct ekmfs_keys *k);
/* Unwrap every KEK record of the keyring, current and retired, through its
 * tenant's provider (ekmfs-admin verify --keys: a backup restored with an
 * old keyring needs its retired KEKs); fn sees each record with 0 or the
 * -errno and message of its unwrap (a destroyed record: 0, not unwrapped).
 * Returns how many failed, or -ENOMEM. */
typedef void (*ekmfs_kek_check_fn)(void *arg, const struct ekmfs_tenant_record *t,
				   const struct ekmfs_kek_record *r, int err, const char *why);
int ekmfs_keys_check_keks(struct ekmfs_keys *k, ekmfs_kek_check_fn fn, void *arg);
const struct ekmfs_volume *ekmfs_keys_volume(const struct ekmfs_keys *k);

/* Counters since open, for the daemon's metrics. cache_hits/misses count KEK
 * lookups; provider_* count the provider's unwrap calls (a KMS request for
 * cloud providers), their failures and the total time spent in them. */
struct ekmfs_keys_stats {
	uint64_t cache_hits, cache_misses;
	uint64_t provider_calls, provider_errors, provider_ns;
	uint64_t keyring_generation;        /* of the keyring in memory */
};
void ekmfs_keys_stats(struct ekmfs_keys *k, struct ekmfs_keys_stats *out);

/* Header for a new file at path (relative to the volume root; chooses the
 * tenant by the policy last applied, ekmfs_config_route()): fresh random
 * file id and DEK, slot 0 with seq 1 under the tenant's current KEK. dek
 * receives EKMFS_KEY_SIZE bytes (caller's secure memory). */
int ekmfs_keys_new_header(struct ekmfs_keys *k, const char *path,
			  struct ekmfs_header *h, uint8_t *dek);

/* A version 2 header for the file of old (a v1 header whose DEK is dek):
 * the same file id and DEK, wrapped under the KEK old's owner slot names.
 * 0, -ENOKEY or -errno. */
int ekmfs_keys_rewrap_header(struct ekmfs_keys *k, const struct ekmfs_header *old,
			      const uint8_t *dek, struct ekmfs_header *h);

/* Unwrap the DEK of h from its newest slot that authenticates. 0, -ENOKEY
 * (its KEK version is unknown or destroyed, or the CMK is unavailable) or
 * -EBADMSG (no slot authenticates: tampered header). */
int ekmfs_keys_open_header(struct ekmfs_keys *k, const struct ekmfs_header *h,
			   uint8_t *dek);

/* Every header byte checked: whether each key slot in use whose KEK is at
 * hand authenticates, the one that did not open the file too (room where
 * data could be hidden, or a tampered re-wrap). 0, or -EBADMSG naming the
 * slot. A slot whose KEK is unavailable is not judged. */
int ekmfs_keys_check_slots(struct ekmfs_keys *k, const struct ekmfs_header *h);

/* The rule ekmfs_volume_init applies to secrets files, for tools that name a
 * new one later (ekmfs-rotate cmk --to): secret (a key or passphrase file,
 * which may not exist yet) must lie outside the backing directory and have no
 * '.' or '..' components. what names it in the message ("key file").
 * 0 or -EINVAL with ekmfs_lasterr() saying why. */
int ekmfs_check_secret_outside(int backing_fd, const char *secret, const char *what);

/* The daemon's bound on the opens that may wait for a key service at
 * once (0: none): per tenant, and in all. An open beyond it fails with
 * ENOKEY at once instead of taking a worker thread, so one stuck key service
 * cannot stall the others' tenants. Opens waiting for the same fetch share
 * its answer. */
void ekmfs_keys_set_wait_limits(struct ekmfs_keys *k, unsigned per_tenant, unsigned total);

/* The rule every reader of a file header follows (the key manager,
 * ekmfs-rotate): open the newest key slot that names a tenant, then the
 * other one (a re-wrap cut short leaves the older valid; a slot naming
 * tenant 0 is a slot write cut short and is skipped). open_slot unwraps
 * slot idx of h into dek (0, or -errno with ekmfs_lasterr()). Returns the
 * index of the slot that opened, with first_err (may be NULL) holding the
 * newer slot's reason when the older one opened; or the first slot's error
 * with its reason, dek wiped (-EBADMSG when no slot is in use). */
typedef int (*ekmfs_slot_open_fn)(void *arg, const struct ekmfs_header *h, int idx,
				  uint8_t *dek);
int ekmfs_header_open_dek(const struct ekmfs_header *h, ekmfs_slot_open_fn open_slot,
			  void *arg, uint8_t *dek, char *first_err, size_t errlen);
/* The same rule for every secrets file a tenant of cfg names (key file,
 * passphrase file, Azure client secret file): ekmfs_keys_open and
 * ekmfs_keys_apply_config apply it, and the tools that read keys without
 * them (ekmfs-rotate, ekmfs-admin test). A key inside BACKING, also through
 * a symlink or inside .ekmfs/, would travel with every copy of the
 * ciphertext. 0 or -EINVAL with ekmfs_lasterr() saying which file. */
int ekmfs_keys_check_secrets(int backing_fd, const struct ekmfs_config *cfg);

/* Lock (ekmfs-admin lock): drop the cached KEKs of tenant (NULL: every
 * tenant) and refuse them (-ENOKEY) until ekmfs_keys_unlock(), which clears
 * the flag and unwraps each current KEK again through the provider (its
 * error, if the service refuses, is returned; the tenant stays unlocked and
 * later uses retry). -ENOENT for an unknown tenant. */
int ekmfs_keys_lock(struct ekmfs_keys *k, const char *tenant);
int ekmfs_keys_unlock(struct ekmfs_keys *k, const char *tenant);
/* Whether tenant (NULL: any tenant) is locked. */
bool ekmfs_keys_locked(struct ekmfs_keys *k, const char *tenant);

struct ekmfs_provider;
/* The opened provider of tenant, for volume secrets that are not KEKs (the
 * audit key, docs/AUDIT.md). Use it before the volume is served or from one
 * thread: the key manager does not serialize these calls. NULL if unknown. */
struct ekmfs_provider *ekmfs_keys_provider(struct ekmfs_keys *k, const char *tenant);

/* What the key manager observes of a tenant's key service, for the audit
 * trail: a KEK fetched through the provider (a cache miss or expiry), the
 * service refusing it (access locked), an outage starting (the cached key
 * keeps serving for outage_grace), and access restored after either. */
enum ekmfs_key_event {
	EKMFS_KEY_FETCHED,
	EKMFS_KEY_REFUSED,
	EKMFS_KEY_OUTAGE,
	EKMFS_KEY_RESTORED,
	EKMFS_KEY_EXPIRED,        /* dropped from the cache: TTL or use limit */
	/* ekmfs_keys_apply_config(): */
	EKMFS_TENANT_CREATED,     /* keyring record and KEK v1 made */
	EKMFS_CMK_SET,            /* ... under this CMK (follows TENANT_CREATED) */
	EKMFS_TENANT_ENABLED,     /* enabled = true recorded (BYOK on) */
	EKMFS_TENANT_DISABLED,    /* enabled = false recorded (BYOK off) */
	/* A keyring record the provider refused before asking anyone: it names
	 * another key service than the configured one (-EREMOTE). */
	EKMFS_KEYRING_TAMPERED,
};
/* The audit record of a key-manager event (docs/AUDIT.md): fills ev's
 * event name ("cache_fetch", "tenant_created", ...), outcome, tenant,
 * key_ref, kek_version and reason; the strings are borrowed. */
struct ekmfs_audit_event;
void ekmfs_key_event_record(struct ekmfs_audit_event *ev, enum ekmfs_key_event kev,
			    const char *tenant, const char *cmk_ref, uint32_t kek_version,
			    const char *reason);
/* Called with the key manager's lock held (never during a call to a key
 * service): it must not block or call back into the key manager (queue the
 * event and return). */
typedef void (*ekmfs_key_event_fn)(void *arg, enum ekmfs_key_event ev, const char *tenant,
				   const char *cmk_ref, uint32_t kek_version, const char *reason);
void ekmfs_keys_set_event_hook(struct ekmfs_keys *k, ekmfs_key_event_fn fn, void *arg);

/* Bring the open key manager in line with cfg, at mount and on every
 * reload: creates the keyring record of each configured tenant the keyring
 * lacks (ekmfs_keys_create_tenant) and opens its provider; records a change
 * of `enabled` in the keyring; adopts each tenant's policy (paths,
 * enforce_from, enabled) and cache limits (key_cache_ttl, key_cache_uses,
 * outage_grace). Provider settings of a tenant already open change at the
 * next mount (a warning says so). Changes are reported through the event
 * hook. 0 or -errno with ekmfs_lasterr(); on error nothing is adopted. */
int ekmfs_keys_apply_config(struct ekmfs_keys *k, const struct ekmfs_config *cfg);

/* The tenant a new file at path goes to now (its name, stable while k is
 * open). */
const char *ekmfs_keys_route(struct ekmfs_keys *k, const char *path);

/* Per-tenant cache state, for status (ekmfs-admin status through the
 * control socket): "locked" (ekmfs-admin lock), "cached" (current KEK
 * fresh), "outage" (served through outage_grace), "refused" (the service
 * refused it), "expired" (TTL or use limit passed; fetched again on next
 * use), "empty" (never fetched or dropped). */
struct ekmfs_tenant_state {
	char name[EKMFS_NAME_MAX];
	uint32_t id, current_version;
	const char *cache;              /* one of the words above */
	double expires_in;              /* seconds until refetch (cached/outage) */
	uint64_t uses, use_limit;       /* of the current KEK's entry */
	bool enforced;                  /* new files in its paths go to it now */
	time_t last_rotation;           /* of the keyring held (authenticated) */
};
/* Fills up to max entries; returns how many tenants there are. */
size_t ekmfs_keys_tenant_states(struct ekmfs_keys *k, struct ekmfs_tenant_state *out,
				size_t max);
/* Re-read the keyring if the file changed; like every re-read it must
 * authenticate and not be older (else the one held stays, the refusal
 * is logged and audited). */
void ekmfs_keys_refresh(struct ekmfs_keys *k);

#endif
