/*
 * aws_kms.h - the AWS KMS provider's entry point and its pure parts,
 * private to src/keys/.
 *
 * provider.c lists ekmfs_aws_kms_open; the request builders and answer
 * parsers are exported so tests/unit/test_kms_parse.c can check them
 * without a network.
 */
#ifndef EKMFS_KEYS_AWS_KMS_H
#define EKMFS_KEYS_AWS_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../cloud/cloud.h"
#include "ekmfs/provider.h"

extern const struct ekmfs_provider_desc ekmfs_aws_kms_desc;
int ekmfs_aws_kms_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
		       bool create, struct ekmfs_provider **out);

/* Classify an answer with status != 200. type/message receive the error
 * code (namespace stripped) and message ("" when absent). Returns the
 * errno the provider reports once retries (if any) are exhausted. */
int ekmfs_aws_kms_error(long status, const char *body, enum ekmfs_kms_class *cls,
			char *type, size_t tlen, char *message, size_t mlen);

/* The EncryptionContext object of ctx, e.g.
 * {"ekmfs:kek-version":"1","ekmfs:tenant":"default","ekmfs:volume":"00ff..."}.
 * -ENOSPC when out is too small. */
int ekmfs_aws_kms_context_json(const struct ekmfs_wrap_context *ctx, char *out, size_t outlen);

/* Request bodies, built in the caller's (secure) buffer. */
int ekmfs_aws_kms_encrypt_body(const char *key_id, const struct ekmfs_wrap_context *ctx,
			       const uint8_t kek[32], char *out, size_t outlen);
int ekmfs_aws_kms_decrypt_body(const char *key_id, const struct ekmfs_wrap_context *ctx,
			       const struct ekmfs_wrapped_kek *in, char *out, size_t outlen);

/* Answers. body is modified (secrets overwritten before json-c sees it).
 * Encrypt: blob and key ARN into out. Decrypt: 32-byte plaintext into kek
 * (wiped on failure) and the ARN that decrypted it. -EPROTO on a malformed
 * answer, with ekmfs_lasterr() saying what was wrong. */
int ekmfs_aws_kms_parse_encrypt(char *body, struct ekmfs_wrapped_kek *out);
int ekmfs_aws_kms_parse_decrypt(char *body, uint8_t kek[32], char *key_arn, size_t alen);
/* DescribeKey: KeyMetadata.KeyState and .Arn. */
int ekmfs_aws_kms_parse_describe(const char *body, char *state, size_t slen, char *arn,
				 size_t alen);

#endif
