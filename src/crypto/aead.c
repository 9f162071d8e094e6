/*
 * aead.c - AES-256-GCM through OpenSSL's EVP interface, and randomness.
 *
 * Each thread keeps one EVP_CIPHER_CTX and reuses it, and the cipher is
 * fetched once per process, so sealing or opening a block allocates nothing
 * (the FUSE workers call this for every 4 KiB block). OpenSSL picks the
 * AES-NI/VAES implementation itself. Keyed sessions (a second per-thread
 * context) set the key once for all the blocks of a request; XAES key
 * derivation uses a third (AES-256-ECB, three blocks per derivation).
 *
 * Divisions: contexts / AES-256-GCM one-shot / keyed sessions /
 * XAES-256-GCM / randomness.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ekmfs/aead.h"
#include "ekmfs/secmem.h"

static EVP_CIPHER *gcm_cipher;
static EVP_CIPHER *ecb_cipher;      /* XAES key derivation */
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
static pthread_key_t session_key;   /* keyed sessions: a context of their own */
static pthread_key_t ecb_key;

static void ctx_free(void *ctx)
{
	EVP_CIPHER_CTX_free(ctx);
}

static void gcm_init(void)
{
	gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	ecb_cipher = EVP_CIPHER_fetch(NULL, "AES-256-ECB", NULL);
	pthread_key_create(&ctx_key, ctx_free);
	pthread_key_create(&session_key, ctx_free);
	pthread_key_create(&ecb_key, ctx_free);
}

/* The calling thread's context under key, created on first use; NULL on
 * failure. */
static EVP_CIPHER_CTX *keyed_ctx(pthread_key_t *key)
{
	EVP_CIPHER_CTX *ctx;

	pthread_once(&gcm_once, gcm_init);
	if (!gcm_cipher)
		return NULL;
	ctx = pthread_getspecific(*key);
	if (!ctx) {
		ctx = EVP_CIPHER_CTX_new();
		if (ctx && pthread_setspecific(*key, ctx) != 0) {
			EVP_CIPHER_CTX_free(ctx);
			ctx = NULL;
		}
	}
	return ctx;
}

static EVP_CIPHER_CTX *thread_ctx(void)
{
	return keyed_ctx(&ctx_key);
}

/* One GCM seal on ctx. cipher and key are NULL for a keyed session (the
 * context keeps its key schedule; only the nonce changes). */
static int gcm_seal(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const uint8_t *key,
		    const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
		    const uint8_t *pt, size_t len, uint8_t *ct, uint8_t *tag)
{
	int outl;

	if (len > INT32_MAX || aad_len > INT32_MAX)
		return -EIO;
	if (EVP_EncryptInit_ex2(ctx, cipher, key, nonce, NULL) != 1)
		return -EIO;
	if (aad_len && EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
		return -EIO;
	if (len && EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)len) != 1)
		return -EIO;
	if (EVP_EncryptFinal_ex(ctx, ct + len, &outl) != 1)
		return -EIO;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, EKMFS_AEAD_TAG_SIZE, tag) != 1)
		return -EIO;
	return 0;
}

/* One GCM open on ctx (cipher/key as for gcm_seal). On failure pt is wiped,
 * so callers never see unauthenticated plaintext. */
static int gcm_open(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const uint8_t *key,
		    const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
		    const uint8_t *ct, size_t len, const uint8_t *tag, uint8_t *pt)
{
	uint8_t tagcopy[EKMFS_AEAD_TAG_SIZE];
	int outl, ret = -EIO;

	if (len > INT32_MAX || aad_len > INT32_MAX)
		goto fail;
	memcpy(tagcopy, tag, sizeof(tagcopy));
	if (EVP_DecryptInit_ex2(ctx, cipher, key, nonce, NULL) != 1)
		goto fail;
	if (aad_len && EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
		goto fail;
	if (len && EVP_DecryptUpdate(ctx, pt, &outl, ct, (int)len) != 1)
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, EKMFS_AEAD_TAG_SIZE, tagcopy) != 1)
		goto fail;
	if (EVP_DecryptFinal_ex(ctx, pt + len, &outl) != 1) {
		ret = -EBADMSG;
		goto fail;
	}
	return 0;
fail:
	if (len)
		ekmfs_wipe(pt, len);
	return ret;
}

int ekmfs_aead_seal(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *pt, size_t len,
		    uint8_t *ct, uint8_t tag[EKMFS_AEAD_TAG_SIZE])
{
	EVP_CIPHER_CTX *ctx = thread_ctx();
	int ret;

	if (!ctx)
		return -EIO;
	ret = gcm_seal(ctx, gcm_cipher, key, nonce, aad, aad_len, pt, len, ct, tag);
	/* Drop the key schedule from the context between calls. */
	EVP_CIPHER_CTX_reset(ctx);
	return ret;
}

int ekmfs_aead_open(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *ct, size_t len,
		    const uint8_t tag[EKMFS_AEAD_TAG_SIZE], uint8_t *pt)
{
	EVP_CIPHER_CTX *ctx = thread_ctx();
	int ret;

	if (!ctx) {
		if (len)
			ekmfs_wipe(pt, len);
		return -EIO;
	}
	ret = gcm_open(ctx, gcm_cipher, key, nonce, aad, aad_len, ct, len, tag, pt);
	EVP_CIPHER_CTX_reset(ctx);
	return ret;
}

/* ---- keyed sessions ----
 *
 * OpenSSL keeps the key schedule (and GCM's hash key) when an init call
 * passes only a nonce, so a session pays for them once instead of once per
 * 4 KiB block; that was a third of the time of sealing a block. The key is
 * set together with the first nonce (one init call, as a one-shot seal
 * makes), so a one-block request costs no more than the one-shot call.
 * The session is the thread's second context plus the key to set. */

struct ekmfs_aead_session {
	EVP_CIPHER_CTX *ctx;
	const uint8_t *key;             /* caller's; NULL once the context has it */
};

static __thread struct ekmfs_aead_session thread_session;

struct ekmfs_aead_session *ekmfs_aead_begin(const uint8_t key[EKMFS_AEAD_KEY_SIZE])
{
	struct ekmfs_aead_session *s = &thread_session;

	s->ctx = keyed_ctx(&session_key);
	if (!s->ctx)
		return NULL;
	s->key = key;
	return s;
}

void ekmfs_aead_end(struct ekmfs_aead_session *s)
{
	if (!s)
		return;
	if (!s->key)    /* keyed: drop the schedule */
		EVP_CIPHER_CTX_reset(s->ctx);
	s->key = NULL;
	s->ctx = NULL;
}

int ekmfs_aead_session_seal(struct ekmfs_aead_session *s,
			    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *pt, size_t len,
			    uint8_t *ct, uint8_t tag[EKMFS_AEAD_TAG_SIZE])
{
	const uint8_t *key = s->key;

	s->key = NULL;
	return gcm_seal(s->ctx, key ? gcm_cipher : NULL, key, nonce, aad, aad_len, pt, len,
			ct, tag);
}

int ekmfs_aead_session_open(struct ekmfs_aead_session *s,
			    const uint8_t nonce[EKMFS_AEAD_NONCE_SIZE],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *ct, size_t len,
			    const uint8_t tag[EKMFS_AEAD_TAG_SIZE], uint8_t *pt)
{
	const uint8_t *key = s->key;

	s->key = NULL;
	return gcm_open(s->ctx, key ? gcm_cipher : NULL, key, nonce, aad, aad_len, ct, len,
			tag, pt);
}

/* ---- XAES-256-GCM ----
 *
 * C2SP XAES-256-GCM, "Key derivation": with L = AES-256_K(0^128) and K1 the
 * CMAC subkey of L (L << 1, xor 0x87 into the last byte when the top bit of
 * L was set), M1 = 00 01 'X' 00 ‖ salt and M2 = 00 02 'X' 00 ‖ salt, the
 * derived key is AES-256_K(M1 xor K1) ‖ AES-256_K(M2 xor K1). */

int ekmfs_xaes_derive(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		      const uint8_t salt[EKMFS_XAES_SALT_SIZE],
		      uint8_t out[EKMFS_AEAD_KEY_SIZE])
{
	EVP_CIPHER_CTX *ctx = keyed_ctx(&ecb_key);
	uint8_t l[16], k1[16], m[32];
	int outl, ret = -EIO;

	if (!ctx || !ecb_cipher)
		goto out;
	memset(l, 0, sizeof(l));
	if (EVP_EncryptInit_ex2(ctx, ecb_cipher, key, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
	    EVP_EncryptUpdate(ctx, l, &outl, l, 16) != 1 || outl != 16)
		goto out;
	for (int i = 0; i < 16; i++)
		k1[i] = (uint8_t)(l[i] << 1 | (i < 15 ? l[i + 1] >> 7 : 0));
	if (l[0] & 0x80)
		k1[15] ^= 0x87;
	for (int j = 0; j < 2; j++) {
		uint8_t *b = m + 16 * j;

		b[0] = 0x00;
		b[1] = (uint8_t)(j + 1);
		b[2] = 'X';
		b[3] = 0x00;
		memcpy(b + 4, salt, EKMFS_XAES_SALT_SIZE);
		for (int i = 0; i < 16; i++)
			b[i] ^= k1[i];
	}
	if (EVP_EncryptUpdate(ctx, out, &outl, m, sizeof(m)) != 1 || outl != (int)sizeof(m))
		goto out;
	ret = 0;
out:
	if (ctx)
		EVP_CIPHER_CTX_reset(ctx);
	ekmfs_wipe(l, sizeof(l));
	ekmfs_wipe(k1, sizeof(k1));
	ekmfs_wipe(m, sizeof(m));
	if (ret < 0)
		ekmfs_wipe(out, EKMFS_AEAD_KEY_SIZE);
	return ret;
}

int ekmfs_xaes_seal(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_XAES_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *pt, size_t len,
		    uint8_t *ct, uint8_t tag[EKMFS_AEAD_TAG_SIZE])
{
	uint8_t kx[EKMFS_AEAD_KEY_SIZE];
	int ret = ekmfs_xaes_derive(key, nonce, kx);

	if (ret == 0)
		ret = ekmfs_aead_seal(kx, nonce + EKMFS_XAES_SALT_SIZE, aad, aad_len, pt, len,
				      ct, tag);
	ekmfs_wipe(kx, sizeof(kx));
	return ret;
}

int ekmfs_xaes_open(const uint8_t key[EKMFS_AEAD_KEY_SIZE],
		    const uint8_t nonce[EKMFS_XAES_NONCE_SIZE],
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *ct, size_t len,
		    const uint8_t tag[EKMFS_AEAD_TAG_SIZE], uint8_t *pt)
{
	uint8_t kx[EKMFS_AEAD_KEY_SIZE];
	int ret = ekmfs_xaes_derive(key, nonce, kx);

	if (ret == 0)
		ret = ekmfs_aead_open(kx, nonce + EKMFS_XAES_SALT_SIZE, aad, aad_len, ct, len,
				      tag, pt);
	else if (len)
		ekmfs_wipe(pt, len);
	ekmfs_wipe(kx, sizeof(kx));
	return ret;
}

/* ---- randomness ---- */

int ekmfs_random(void *buf, size_t len)
{
	if (len > INT32_MAX || RAND_bytes(buf, (int)len) != 1)
		return -EIO;
	return 0;
}
