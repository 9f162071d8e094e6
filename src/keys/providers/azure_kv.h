/*
 * azure_kv.h - the Azure Key Vault provider's entry point and its pure
 * parts, private to src/keys/ (tests/unit/test_kms_parse.c checks them).
 */
#ifndef EKMFS_KEYS_AZURE_KV_H
#define EKMFS_KEYS_AZURE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../cloud/cloud.h"
#include "ekmfs/provider.h"

#define EKMFS_AZURE_BIND_LABEL "ekmfs-kek-binding-v1"

extern const struct ekmfs_provider_desc ekmfs_azure_kv_desc;
int ekmfs_azure_kv_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
			bool create, struct ekmfs_provider **out);

/* "https://VAULT/keys/NAME[/VERSION]" -> base "https://VAULT", name,
 * version ("" when absent). -EINVAL otherwise. */
int ekmfs_azure_kv_parse_key_id(const char *key_id, char *base, size_t blen, char *name,
				size_t nlen, char *version, size_t vlen);

/* Whether kid, a versioned key id from a keyring record or a wrapkey
 * answer, names the configured key_id: the same scheme, host
 * (case-insensitive), port (443 when absent) and key name, with a version,
 * which is copied to version. 0, -EREMOTE (another key or not a versioned
 * key id: nothing may be sent for it) or -EINVAL (key_id itself is bad). */
int ekmfs_azure_kv_check_kid(const char *key_id, const char *kid, char *version, size_t vlen);

/* The token resource (audience) for the vault at base: its cloud's vault
 * suffix, from the host, else from authority_host, else the public cloud. */
int ekmfs_azure_kv_resource(const char *base, const char *authority_host, char *out,
			    size_t len);

/* Classify an error answer: {"error":{"code":..,"message":..,"innererror":
 * {"code":..}}}. code receives "Forbidden/KeyDisabled" style text. */
int ekmfs_azure_kv_error(long status, const char *body, enum ekmfs_kms_class *cls,
			 char *code, size_t clen, char *message, size_t mlen);

/*
 * The binding MAC of a keyring record, for RSA-OAEP (no associated data):
 *   mac_key = HKDF-SHA256(ikm = KEK, salt = "", info = LABEL, 32 bytes)
 *   MAC     = HMAC-SHA256(mac_key, LABEL ‖ VID ‖ u32le len(T) ‖ T ‖ u32le V
 *                          ‖ u32le len(cmk_version) ‖ cmk_version
 *                          ‖ u32le len(blob) ‖ blob)
 * with LABEL the 20 ASCII bytes "ekmfs-kek-binding-v1" (docs/FORMAT.md).
 */
int ekmfs_azure_kv_binding_mac(const uint8_t kek[32], const struct ekmfs_wrap_context *ctx,
			       const struct ekmfs_wrapped_kek *w, uint8_t mac[32]);

/* wrapkey answer: kid (versioned) into out->cmk_version, value into blob. */
int ekmfs_azure_kv_parse_wrap(char *body, struct ekmfs_wrapped_kek *out);
/* unwrapkey answer: the 32-byte KEK (taken out of body; wiped on failure). */
int ekmfs_azure_kv_parse_unwrap(char *body, uint8_t kek[32]);
/* GET key answer: key.kid and attributes.enabled. */
int ekmfs_azure_kv_parse_key(const char *body, char *kid, size_t klen, bool *enabled);

#endif
