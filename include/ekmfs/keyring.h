/*
 * keyring.h - the keyring of wrapped KEKs, .ekmfs/keyring.json
 * (src/volume/keyring.c).
 *
 * Owns: the keyring document (see docs/FORMAT.md), its strict parsing, its
 * read-modify-write under the meta lock, and the in-memory records. Stored
 * through the volume's one metadata store (volume.h, which this header
 * includes). Knows nothing about providers: a wrapped KEK is an opaque blob
 * plus the CMK reference and version that produced it.
 */
#ifndef EKMFS_KEYRING_H
#define EKMFS_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ekmfs/volume.h"

#define EKMFS_KEYRING_FILE "keyring.json"
#define EKMFS_WRAPPED_MAX 1024
#define EKMFS_REF_MAX 256
#define EKMFS_WRAP_MAC_SIZE 32
/* The keyring MAC's key (random, wrapped by the default tenant's CMK) and
 * the MAC (HMAC-SHA256). */
#define EKMFS_KEYRING_KEY_SIZE 32
#define EKMFS_KEYRING_MAC_SIZE 32

/* A KEK as stored: wrapped by a CMK, with the reference and key version of
 * that CMK (an ARN and version id, a Key Vault kid, a local key fingerprint). */
struct ekmfs_wrapped_kek {
	uint8_t blob[EKMFS_WRAPPED_MAX];
	size_t len;
	char cmk_ref[EKMFS_REF_MAX];
	char cmk_version[EKMFS_REF_MAX];
	/* Binding MAC of the record, for providers whose wrap takes no
	 * associated data (Azure RSA-OAEP): mac_len 0 when absent. */
	uint8_t mac[EKMFS_WRAP_MAC_SIZE];
	size_t mac_len;
};

enum ekmfs_kek_state { EKMFS_KEK_ACTIVE, EKMFS_KEK_RETIRED, EKMFS_KEK_DESTROYED };

struct ekmfs_kek_record {
	uint32_t version;
	enum ekmfs_kek_state state;
	time_t created;
	struct ekmfs_wrapped_kek wrapped; /* len 0 once destroyed */
};

struct ekmfs_tenant_record {
	char name[64];
	uint32_t id;                /* stored in file headers; never reused */
	char provider[32];
	char kdf[EKMFS_REF_MAX];    /* provider parameters, e.g. scrypt salt */
	uint32_t current_version;   /* KEK version for new files */
	time_t last_rotation;
	time_t last_cmk_change;
	bool disabled;              /* "enabled": false recorded (docs/TENANTS.md) */
	size_t nkeks;
	struct ekmfs_kek_record *keks;
};

/* The unwrapped MAC key (in secure memory: src/keys/keyring_key.c makes
 * and frees it) and its wrap as the keyring keeps it. */
struct ekmfs_keyring_key {
	uint8_t key[EKMFS_KEYRING_KEY_SIZE];
	struct ekmfs_wrapped_kek wrapped;
	/* Made by this process for a keyring of ekmfs 1 and maybe not stored:
	 * another writer may seal the keyring first, with its own key. */
	bool made;
};

struct ekmfs_keyring {
	uint64_t generation;        /* +1 on every write */
	size_t ntenants;
	struct ekmfs_tenant_record *tenants;
	/* The MAC key, wrapped (len 0: none, a keyring of ekmfs 1), and the
	 * MAC over this keyring and the descriptor (keyring_mac.c). */
	struct ekmfs_wrapped_kek mac_key;
	uint8_t mac[EKMFS_KEYRING_MAC_SIZE];
	bool has_mac;
};

/* Keyring. read fills kr (free with ekmfs_keyring_free) and authenticates
 * nothing: see ekmfs_keyring_check. write seals kr under mk (a keyring of
 * ekmfs 1 gets mk's wrap as its mac_key; the descriptor is read from
 * backing_fd) and replaces the file atomically and durably. The caller
 * holds the exclusive meta lock. */
int ekmfs_keyring_read(int backing_fd, struct ekmfs_keyring *kr);
int ekmfs_keyring_write(int backing_fd, struct ekmfs_keyring *kr,
			const struct ekmfs_keyring_key *mk);
void ekmfs_keyring_free(struct ekmfs_keyring *kr);
/* An edit of a fresh keyring: 1 when it changed kr and kr is to be written,
 * 0 when there is nothing to write, or -errno. */
typedef int (*ekmfs_keyring_edit_fn)(struct ekmfs_keyring *kr, void *arg);
/* The keyring's read-modify-write, under the exclusive meta lock the caller
 * holds: read the file and authenticate it under key (an edit never
 * launders a tampered keyring), let edit change it, and when edit returns
 * 1 and write is true, bump the generation, seal and write it. With keep,
 * a written keyring is handed over there (the caller frees it); otherwise
 * it is freed. Returns edit's 1 or 0, or -errno. */
int ekmfs_keyring_update(int backing_fd, const struct ekmfs_keyring_key *mk,
			 ekmfs_keyring_edit_fn edit, void *arg, bool write,
			 struct ekmfs_keyring *keep);

/* The MAC (src/volume/keyring_mac.c, docs/FORMAT.md "Keyring MAC"): over
 * a canonical encoding of every field of kr and of the descriptor v, under
 * key (EKMFS_KEYRING_KEY_SIZE bytes). seal sets kr->mac. check: 0, or
 * -EBADMSG with one line naming path (no MAC, or it does not verify). The
 * one keyring without a MAC that passes is one of ekmfs 1 (no mac_key
 * either) on a volume still at version 1: ekmfs_keyring_sealed says which. */
int ekmfs_keyring_mac(const struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
		      const uint8_t *key, uint8_t out[EKMFS_KEYRING_MAC_SIZE]);
int ekmfs_keyring_seal(struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
		       const uint8_t *key);
int ekmfs_keyring_check(const struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
			const uint8_t *key, const char *path);
bool ekmfs_keyring_sealed(const struct ekmfs_keyring *kr);
/* Anti-rollback against an anchor: least is the keyring generation the
 * audit trail recorded (0: none). kr must be sealed and at least that
 * new: else -EBADMSG (MAC stripped) or -ESTALE (rolled back), one line
 * naming path. With no anchor, an unsealed keyring (ekmfs 1's) passes
 * with a warning logged. */
int ekmfs_keyring_check_anchor(const struct ekmfs_keyring *kr, uint64_t least,
			       const char *path);
/* Identity of the keyring file (inode, mtime, size) for cheap change checks. */
int ekmfs_keyring_stamp(int backing_fd, uint64_t stamp[3]);

struct ekmfs_tenant_record *ekmfs_keyring_tenant(struct ekmfs_keyring *kr, const char *name);
struct ekmfs_tenant_record *ekmfs_keyring_tenant_by_id(struct ekmfs_keyring *kr, uint32_t id);
struct ekmfs_kek_record *ekmfs_tenant_kek(struct ekmfs_tenant_record *t, uint32_t version);
/* Whether the tenant's CMK was ever changed (ekmfs-rotate cmk) after the
 * tenant was created with it. Creation records last_cmk_change equal to
 * the creation time of the tenant's first KEK; a change records a later
 * time (ekmfs_tenant_cmk_change_time). docs/FORMAT.md. */
bool ekmfs_tenant_cmk_changed(const struct ekmfs_tenant_record *t);
/* The last_cmk_change to record for a CMK change at now: now, but at least
 * one second after the first KEK's creation, so that a change in the same
 * second as the creation still counts as a change. */
time_t ekmfs_tenant_cmk_change_time(const struct ekmfs_tenant_record *t, time_t now);
/* Append a tenant / KEK record (copies *rec; takes no ownership). 0 or -ENOMEM. */
int ekmfs_keyring_add_tenant(struct ekmfs_keyring *kr, const struct ekmfs_tenant_record *rec);
int ekmfs_tenant_add_kek(struct ekmfs_tenant_record *t, const struct ekmfs_kek_record *rec);
const char *ekmfs_kek_state_name(enum ekmfs_kek_state s);

#endif
