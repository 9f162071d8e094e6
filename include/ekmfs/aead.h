/*
 * aead.h - AES-256-GCM and the random source.
 *
 * Owns: every use of the AEAD in ekmfs (file blocks, DEK slots, local KEK
 * wraps) so there is exactly one place that talks to OpenSSL's EVP cipher
 * interface. A per-thread EVP_CIPHER_CTX is reused, so no call allocates.
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

/* Cryptographically secure random bytes (OpenSSL DRBG). 0 or -EIO. */
int ekmfs_random(void *buf, size_t len);

#endif
