/*
 * aead.h - AES-256-GCM and the random source.
 *
 * Owns: every use of the AEAD in ekmfs (file blocks, DEK slots, local KEK
 * wraps) so there is exactly one place that talks to OpenSSL's EVP cipher
 * interface: AES-256-GCM, and XAES-256-GCM (C2SP), its extended-nonce form
 * for content blocks. Per-thread EVP_CIPHER_CTXs are reused, so no call
 * allocates.
 */
#ifndef EKMFS_AEAD_H
#define EKMFS_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define EKMFS_AEAD_KEY_SIZE 32
#define EKMFS_AEAD_NONCE_SIZE 12
#define EKMFS_AEAD_TAG_SIZE 16

/* Encrypt len bytes of pt into ct (may alias pt) and produce tag.
 * 0 or -EIO (library failure). */
int ekmfs_aead_seal(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *pt, size_t len,
		    uint8_t *ct, uint8_t tag[EKMFS_AEAD_TAG_SIZE]);

/* Decrypt and verify. On failure returns -EBADMSG (tag mismatch) or -EIO and
 * wipes pt, so callers never see unauthenticated plaintext. */
int ekmfs_aead_open(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *ct, size_t len,
		    const uint8_t tag[EKMFS_AEAD_TAG_SIZE], uint8_t *pt);

/*
 * Keyed sessions, for many blocks under one key: the key schedule is computed
 * once, with the first block of the session, in the calling thread's session
 * context (a second per-thread context, so the one-shot calls above may still
 * be used meanwhile); each further block only sets its nonce. key must stay
 * valid until ekmfs_aead_end(), which drops the schedule. A session belongs
 * to the thread that began it.
 */
struct ekmfs_aead_session;

/* NULL on library failure. */
struct ekmfs_aead_session *ekmfs_aead_begin(const uint8_t key[EKMFS_AEAD_KEY_SIZE]);
void ekmfs_aead_end(struct ekmfs_aead_session *s);
int ekmfs_aead_session_seal(struct ekmfs_aead_session *s,
			    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *pt, size_t len,
			    uint8_t *ct, uint8_t tag[EKMFS_AEAD_TAG_SIZE]);
/* As ekmfs_aead_open (pt wiped on failure). */
int ekmfs_aead_session_open(struct ekmfs_aead_session *s,
			    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *ct, size_t len,
			    const uint8_t tag[EKMFS_AEAD_TAG_SIZE], uint8_t *pt);

/*
 * XAES-256-GCM (https://c2sp.org/XAES-256-GCM): a 192-bit nonce whose first
 * 12 bytes (the salt) select a key derived from the main key with AES-256
 * in CMAC-based counter mode (NIST SP 800-108r1), and whose last 12 bytes
 * are the AES-256-GCM nonce under that derived key. Random nonces are then
 * safe for far more messages than AES-256-GCM's 2^32: callers that keep a
 * derived key for a run of messages (one salt, many GCM nonces) use
 * ekmfs_xaes_derive once and a keyed session with it (docs/FORMAT.md says
 * how content blocks do this).
 */
#define EKMFS_XAES_NONCE_SIZE 24
#define EKMFS_XAES_SALT_SIZE 12

/* The AES-256-GCM key for salt (nonce bytes 0..11) under key. 0 or -EIO;
 * out is wiped on failure. */
int ekmfs_xaes_derive(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		      const uint8_t salt[EKMFS_XAES_SALT_SIZE],
		      uint8_t out[EKMFS_AEAD_KEY_SIZE]);
/* One-shot XAES-256-GCM; as ekmfs_aead_seal / ekmfs_aead_open. */
int ekmfs_xaes_seal(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_XAES_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *pt, size_t len,
		    uint8_t *ct, uint8_t tag[EKMFS_AEAD_TAG_SIZE]);
int ekmfs_xaes_open(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_XAES_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *ct, size_t len,
		    const uint8_t tag[EKMFS_AEAD_TAG_SIZE], uint8_t *pt);

/* Cryptographically secure random bytes (OpenSSL DRBG). 0 or -EIO. */
int ekmfs_random(void *buf, size_t len);

#endif
