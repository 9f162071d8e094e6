/*
 * mac.c - HMAC-SHA256 and HKDF-SHA256 through OpenSSL (mac.h).
 *
 * Divisions: HMAC / HKDF.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "ekmfs/mac.h"
#include "ekmfs/secmem.h"

/* ---- HMAC ---- */

/* Fetched once: a fetch looks the algorithm up in the providers each time,
 * and state records are MACed on every size change. */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
	hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

int ekmfs_hmac_sha256(const uint8_t *key, size_t key_len, const struct ekmfs_mac_part *parts,
		      unsigned n, uint8_t out[EKMFS_HMAC_SIZE])
{
	EVP_MAC_CTX *ctx;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	size_t outl = 0;
	int ret = -EIO;

	pthread_once(&hmac_once, hmac_fetch);
	ctx = hmac_alg ? EVP_MAC_CTX_new(hmac_alg) : NULL;
	if (!ctx || EVP_MAC_init(ctx, key, key_len, params) != 1)
		goto out;
	for (unsigned i = 0; i < n; i++)
		if (parts[i].len && EVP_MAC_update(ctx, parts[i].data, parts[i].len) != 1)
			goto out;
	if (EVP_MAC_final(ctx, out, &outl, EKMFS_HMAC_SIZE) != 1 || outl != EKMFS_HMAC_SIZE)
		goto out;
	ret = 0;
out:
	EVP_MAC_CTX_free(ctx);
	if (ret < 0)
		ekmfs_wipe(out, EKMFS_HMAC_SIZE);
	return ret;
}

/* ---- HKDF ---- */

int ekmfs_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const char *info, uint8_t *out,
		      size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
						  strlen(info)),
		OSSL_PARAM_construct_end(),
	};
	int ret = -EIO;

	if (ctx && EVP_KDF_derive(ctx, out, out_len, params) == 1)
		ret = 0;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	if (ret < 0)
		ekmfs_wipe(out, out_len);
	return ret;
}
