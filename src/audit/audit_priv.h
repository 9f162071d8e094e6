/*
 * audit_priv.h - private map of src/audit/.
 *
 *   audit.c      records, the MAC chain, the head, appending, the async
 *                writer, verification (the head and the key are stored in
 *                .ekmfs/ through the volume's store, volume.h)
 *   audit_key.c  .ekmfs/audit.key.json: create, unwrap, re-wrap
 *   events.c     the names of the events (the one list)
 */
#ifndef EKMFS_AUDIT_PRIV_H
#define EKMFS_AUDIT_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "ekmfs/audit.h"
#include "ekmfs/keyring.h"
#include "ekmfs/provider.h"

/* The audit key is wrapped with KEK version 0 in its binding context: KEK
 * versions start at 1 (FORMAT.md), so an audit key blob can never pass for
 * a KEK record of the keyring, nor a KEK record for the audit key. */
#define AUDIT_KEY_CTX_VERSION 0

/* audit.c */
/* Write a fresh head (seq 0) for key. 0 or -errno. */
int audit_head_init(int backing_fd, const uint8_t *vid, const uint8_t *key);

/* audit_key.c */
/* Unwrap the audit key into key (EKMFS_AUDIT_MAC_SIZE bytes, secure memory).
 * -ENOENT when the volume has no audit key yet. */
int audit_key_load(int backing_fd, const struct ekmfs_volume *vol,
		   struct ekmfs_provider *prov, uint8_t *key);
/* Load, or create key + head under the meta lock when there is none. */
int audit_key_load_or_create(int backing_fd, const struct ekmfs_volume *vol,
			     struct ekmfs_provider *prov, uint8_t *key);

#endif
