/*
 * keys.h - the key hierarchy of one volume: CMK -> KEK versions -> DEKs.
 *
 * Owns: turning the keyring into usable KEKs (through the providers), the
 * in-memory KEK cache (locked memory), creating a header for a new file and
 * unwrapping the DEK of an existing one. Thread-safe: the daemon calls it from
 * every worker. The keyring is re-read when the file changes on disk, so the
 * daemon picks up keyring changes made by other tools without a restart.
 */
#ifndef EKMFS_KEYS_H
#define EKMFS_KEYS_H

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

/* Open the hierarchy: read descriptor and keyring, open each tenant's
 * provider and unwrap its current KEK, so a wrong or missing key fails here,
 * before anything is mounted. backing_fd stays owned by the caller. */
int ekmfs_keys_open(int backing_fd, const struct ekmfs_config *cfg,
		    struct ekmfs_keys **out);
void ekmfs_keys_close(struct ekmfs_keys *k);
const struct ekmfs_volume *ekmfs_keys_volume(const struct ekmfs_keys *k);

/* Header for a new file at path (relative to the volume root; chooses the
 * tenant): fresh random file id and DEK, slot 0 with seq 1 under the tenant's
 * current KEK. dek receives EKMFS_KEY_SIZE bytes (caller's secure memory). */
int ekmfs_keys_new_header(struct ekmfs_keys *k, const char *path,
			  struct ekmfs_header *h, uint8_t *dek);

/* Unwrap the DEK of h from its newest slot that authenticates. 0, -ENOKEY
 * (its KEK version is unknown or destroyed, or the CMK is unavailable) or
 * -EBADMSG (no slot authenticates: tampered header). */
int ekmfs_keys_open_header(struct ekmfs_keys *k, const struct ekmfs_header *h,
			   uint8_t *dek);

/* The rule ekmfs_volume_init applies to secrets files, for tools that name a
 * new one later (ekmfs-rotate cmk --to): secret (a key or passphrase file,
 * which may not exist yet) must lie outside the backing directory and have no
 * '.' or '..' components. what names it in the message ("key file").
 * 0 or -EINVAL with ekmfs_lasterr() saying why. */
int ekmfs_check_secret_outside(int backing_fd, const char *secret, const char *what);

#endif
