/*
 * local.h - the local provider's entry points, private to src/keys/.
 *
 * provider.c lists ekmfs_local_open in its table; the wrap primitive with a
 * caller-chosen nonce is exported so the unit tests can reproduce the worked
 * example in docs/FORMAT.md ("Volume metadata") byte for byte.
 */
#ifndef EKMFS_KEYS_LOCAL_H
#define EKMFS_KEYS_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "ekmfs/provider.h"

#define EKMFS_LOCAL_WRAP_LABEL "ekmfs-kek-wrap-v1"
#define EKMFS_LOCAL_FPR_LABEL "ekmfs-local-key-fingerprint-v1"
#define EKMFS_LOCAL_BLOB_SIZE (12 + 32 + 16)
#define EKMFS_LOCAL_FPR_HEX 16

extern const struct ekmfs_provider_desc ekmfs_local_desc;
int ekmfs_local_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
		     bool create, struct ekmfs_provider **out);

/* AES-256-GCM wrap of kek under cmk with the AAD of ctx (see FORMAT.md) and
 * the given nonce; blob receives EKMFS_LOCAL_BLOB_SIZE bytes. 0 or -errno. */
int ekmfs_local_wrap_raw(const uint8_t cmk[32], const struct ekmfs_wrap_context *ctx,
			 const uint8_t kek[32], const uint8_t nonce[12], uint8_t *blob);
/* Lower-case hex of the first 8 bytes of HMAC-SHA256(cmk, FPR_LABEL). */
int ekmfs_local_fingerprint(const uint8_t cmk[32], char out[EKMFS_LOCAL_FPR_HEX + 1]);

#endif
