/*
 * sigv4.h - AWS Signature Version 4 (header signing), as pure functions.
 *
 * Owns: the canonical request, the string to sign, the signing key chain and
 * the signature, exactly as the AWS SigV4 test suite specifies them (the
 * unit tests check them byte for byte against its vectors), plus the
 * Authorization header built from them. No I/O, no clock: the caller passes
 * the time, so every result is reproducible.
 */
#ifndef EKMFS_SIGV4_H
#define EKMFS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>

#define EKMFS_SIGV4_HEX 65          /* 64 hex digits + NUL */

struct ekmfs_sigv4_header {
	const char *name;               /* any case; lower-cased when signed */
	const char *value;              /* raw; trimmed and space-collapsed when signed */
};

struct ekmfs_sigv4_request {
	const char *method;             /* "POST" */
	const char *path;               /* the path as sent, not yet URI-encoded: "/" */
	const char *query;              /* after '?', possibly encoded; NULL or "" for none */
	const struct ekmfs_sigv4_header *headers; /* every header to sign, incl. host
						   * and x-amz-date (repeats allowed) */
	size_t nheaders;
	const char *payload_hash;       /* lower-case hex SHA-256 of the body */
	bool normalize;                 /* remove dot segments and empty segments */
};

/* Lower-case hex SHA-256 of data. */
void ekmfs_sigv4_sha256_hex(const void *data, size_t len, char hex[EKMFS_SIGV4_HEX]);

/* The canonical request and the ';'-joined signed header names, both
 * malloc'd (caller frees). 0, -ENOMEM or -EINVAL (a header name repeats with
 * different case only, or has no name). */
int ekmfs_sigv4_canonical_request(const struct ekmfs_sigv4_request *r, char **canonical,
				  char **signed_headers);

/* "AWS4-HMAC-SHA256\n" amz_date "\n" scope "\n" hex(SHA-256(canonical)).
 * scope is "20150830/us-east-1/service/aws4_request". Malloc'd, or NULL. */
char *ekmfs_sigv4_string_to_sign(const char *amz_date, const char *scope,
				 const char *canonical);

/* hex(HMAC(kSigning, string_to_sign)) with kSigning derived from the secret
 * key, date (YYYYMMDD), region and service. 0 or -EIO. Intermediate keys are
 * wiped. */
int ekmfs_sigv4_signature(const char *secret_key, const char *date, const char *region,
			  const char *service, const char *string_to_sign,
			  char hex[EKMFS_SIGV4_HEX]);

/* Sign r (whose headers must include host and x-amz-date = amz_date) and
 * return the Authorization header value, malloc'd:
 * "AWS4-HMAC-SHA256 Credential=AKID/scope, SignedHeaders=..., Signature=...".
 * amz_date is "YYYYMMDDTHHMMSSZ". 0, -ENOMEM, -EINVAL or -EIO. */
int ekmfs_sigv4_authorization(const struct ekmfs_sigv4_request *r, const char *access_key,
			      const char *secret_key, const char *region, const char *service,
			      const char *amz_date, char **authorization);

#endif
