/*
 * mac.h - HMAC-SHA256 and HKDF-SHA256.
 *
 * Owns: the keyed hashes of ekmfs (state records and journal headers of the
 * file format; later callers may join), so there is one place that talks to
 * OpenSSL's MAC and KDF interfaces for them. Keys and outputs are the
 * caller's; nothing is kept.
 */
#ifndef EKMFS_MAC_H
#define EKMFS_MAC_H

#include <stddef.h>
#include <stdint.h>

#define EKMFS_HMAC_SIZE 32

/* One part of a message MACed as the concatenation of its parts. */
struct ekmfs_mac_part {
	const void *data;
	size_t len;
};

/* HMAC-SHA256 of the concatenation of n parts. 0 or -EIO (out wiped). */
int ekmfs_hmac_sha256(const uint8_t *key, size_t key_len, const struct ekmfs_mac_part *parts,
		      unsigned n, uint8_t out[EKMFS_HMAC_SIZE]);
/* HKDF-SHA256 (RFC 5869) without salt. 0 or -EIO (out wiped). */
int ekmfs_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const char *info, uint8_t *out,
		      size_t out_len);

#endif
