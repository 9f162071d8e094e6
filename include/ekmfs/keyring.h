/*
 * keyring.h - volume metadata under BACKING/.ekmfs/: the volume descriptor,
 * the keyring of wrapped KEKs, and the lock that serializes their writers.
 *
 * Owns: the JSON documents volume.json and keyring.json (see docs/FORMAT.md),
 * their atomic replacement (write temp, fsync, rename, fsync dir) and the
 * advisory lock file. Knows nothing about providers: a wrapped KEK is an
 * opaque blob plus the CMK reference and version that produced it.
 */
#ifndef EKMFS_KEYRING_H
#define EKMFS_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define EKMFS_META_DIR ".ekmfs"
#define EKMFS_VOLUME_FILE "volume.json"
#define EKMFS_KEYRING_FILE "keyring.json"
#define EKMFS_LOCK_FILE "lock"
/* Written by ekmfs-rotate while a pass runs ("<pid> <done> <total> <label>"),
 * read by the daemon's metrics. */
#define EKMFS_ROTATE_PROGRESS_FILE "rotate.progress"
#define EKMFS_VOLUME_ID_SIZE 16
#define EKMFS_WRAPPED_MAX 1024
#define EKMFS_REF_MAX 256
#define EKMFS_WRAP_MAC_SIZE 32

/* volume.json versions: 1 (files of format 1, or a mix being upgraded),
 * 2 (every file is format 2: ekmfs-admin init, or a finished upgrade). */
#define EKMFS_VOLUME_VERSION 2

struct ekmfs_volume {
	uint32_t format_version;        /* volume.json "version" */
	uint8_t volume_id[EKMFS_VOLUME_ID_SIZE];
	uint32_t block_size;
	time_t created;
};

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

struct ekmfs_keyring {
	uint64_t generation;        /* +1 on every write */
	size_t ntenants;
	struct ekmfs_tenant_record *tenants;
};

/* Descriptor. read: 0, -ENOENT (no .ekmfs: not a volume), -EPROTO (foreign
 * or unsupported version), -EBADMSG (corrupt). write_new: creates .ekmfs/
 * (mode 0700) and the descriptor; -EEXIST if a volume is already there. */
int ekmfs_volume_read(int backing_fd, struct ekmfs_volume *v);
int ekmfs_volume_write_new(int backing_fd, const struct ekmfs_volume *v);
/* Replace the descriptor of an existing volume atomically (ekmfs-admin
 * upgrade: the version). 0 or -errno with ekmfs_lasterr(). */
int ekmfs_volume_rewrite(int backing_fd, const struct ekmfs_volume *v);
/* Where the daemon serving the volume listens, and ekmfs-admin calls it:
 * CONTROL_DIR/<volume id in hex>.sock. 0 or -ENAMETOOLONG. */
int ekmfs_volume_control_path(const char *control_dir, const struct ekmfs_volume *v,
			      char *out, size_t len);

/* Keyring. read fills kr (free with ekmfs_keyring_free); write replaces the
 * file atomically and durably. The caller holds the exclusive meta lock. */
int ekmfs_keyring_read(int backing_fd, struct ekmfs_keyring *kr);
int ekmfs_keyring_write(int backing_fd, const struct ekmfs_keyring *kr);
void ekmfs_keyring_free(struct ekmfs_keyring *kr);
/* An edit of a fresh keyring: 1 when it changed kr and kr is to be written,
 * 0 when there is nothing to write, or -errno. */
typedef int (*ekmfs_keyring_edit_fn)(struct ekmfs_keyring *kr, void *arg);
/* The keyring's read-modify-write, under the exclusive meta lock the caller
 * holds: read the file, let edit change it, and when edit returns 1 and
 * write is true, bump the generation and write it. With keep, a written
 * keyring is handed over there (the caller frees it); otherwise it is
 * freed. Returns edit's 1 or 0, or -errno. */
int ekmfs_keyring_update(int backing_fd, ekmfs_keyring_edit_fn edit, void *arg, bool write,
			 struct ekmfs_keyring *keep);
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

/* The .ekmfs/ store: read .ekmfs/name whole (16 MiB at most; a
 * NUL-terminated malloc'd buffer), and replace it atomically and durably
 * (name.tmp, fsync, rename, fsync of the directory). 0 or -errno (-ENOENT
 * when absent, without a message). */
int ekmfs_meta_read(int backing_fd, const char *name, char **text, size_t *len);
int ekmfs_meta_replace(int backing_fd, const char *name, const char *text);

/* flock() on .ekmfs/lock. wait=false returns -EWOULDBLOCK when held. */
int ekmfs_meta_lock(int backing_fd, bool exclusive, bool wait, int *lock_fd);
void ekmfs_meta_unlock(int lock_fd);

#endif
