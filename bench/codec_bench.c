/*
 * codec_bench.c - MB/s of sealing and opening content blocks on one core.
 *
 * Owns: the codec micro-benchmark of bench/run.sh. For 4, 16 and 256 KiB of
 * plaintext per call (1, 4 and 64 blocks) it measures, on the calling
 * thread only, the format 2 block codec as the content layer drives it
 * (XAES-256-GCM: the key derived for the file's salt once per request and
 * a keyed session with it, a nonce and an AAD per block), the one-shot
 * ekmfs_block_seal/open calls (a derivation and a key schedule per block),
 * and the format 1 codec (AES-256-GCM under the DEK, a keyed session) for
 * the cost of the new nonces, so the figures compare per core with
 * `openssl speed -evp aes-256-gcm -bytes N`.
 * Not installed; built with the project (meson target codec_bench).
 *
 * Usage: codec_bench [SECONDS]   prints "name bytes MB/s" lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ekmfs/aead.h"
#include "ekmfs/format.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum mode { SEAL_SESSION, OPEN_SESSION, SEAL_ONESHOT, OPEN_ONESHOT, SEAL_V1, OPEN_V1 };

static const char *mode_name[] = { "seal", "open", "seal-oneshot", "open-oneshot",
				   "seal-v1", "open-v1" };

static uint8_t key[EKMFS_KEY_SIZE], file_id[EKMFS_FILE_ID_SIZE];
static uint8_t nonce[EKMFS_BLOCK_NONCE_V2];

/* One "request" of nblocks blocks; returns 0 or -1. ct holds v2 blocks
 * (cblock_size apart) or, for the v1 modes, v1 blocks. */
static int request(enum mode m, unsigned nblocks, uint8_t *pt, uint8_t *ct)
{
	const struct ekmfs_layout *l = m >= SEAL_V1 ? &ekmfs_layout_v1 : &ekmfs_layout_v2;
	struct ekmfs_aead_session *s = NULL;
	uint8_t kx[EKMFS_KEY_SIZE];
	int rc = 0;

	if (m == SEAL_SESSION || m == OPEN_SESSION) {
		/* What a request costs the content layer: the key of the
		 * file's current salt, then a session with it. */
		if (ekmfs_xaes_derive(key, nonce, kx) < 0)
			return -1;
		s = ekmfs_aead_begin(kx);
	} else if (m == SEAL_V1 || m == OPEN_V1) {
		s = ekmfs_aead_begin(key);
	}
	if ((m != SEAL_ONESHOT && m != OPEN_ONESHOT) && !s)
		return -1;
	for (unsigned b = 0; b < nblocks && rc == 0; b++) {
		uint8_t *p = pt + (size_t)b * EKMFS_BLOCK_SIZE;
		uint8_t *c = ct + (size_t)b * l->cblock_size;

		switch (m) {
		case SEAL_SESSION:
		case SEAL_V1:
			rc = ekmfs_block_seal_s(l, s, file_id, b, nonce, p, EKMFS_BLOCK_SIZE, c);
			break;
		case OPEN_SESSION:
		case OPEN_V1:
			rc = ekmfs_block_open_s(l, s, file_id, b, c, l->cblock_size, p);
			break;
		case SEAL_ONESHOT:
			rc = ekmfs_block_seal(l, key, file_id, b, nonce, p, EKMFS_BLOCK_SIZE, c);
			break;
		case OPEN_ONESHOT:
			rc = ekmfs_block_open(l, key, file_id, b, c, l->cblock_size, p);
			break;
		}
	}
	ekmfs_aead_end(s);
	memset(kx, 0, sizeof(kx));
	return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	static const unsigned sizes[] = { 1, 4, 64 };   /* blocks per request */
	uint8_t *pt = malloc(64 * EKMFS_BLOCK_SIZE), *ct = malloc(64 * EKMFS_CBLOCK_SIZE_V2);
	uint8_t *ct1 = malloc(64 * EKMFS_CBLOCK_SIZE_V1);

	if (!pt || !ct || !ct1 || ekmfs_random(key, sizeof(key)) ||
	    ekmfs_random(nonce, sizeof(nonce)))
		return 1;
	memset(pt, 0x5a, 64 * EKMFS_BLOCK_SIZE);
	/* Warm up (CPU clock, caches, OpenSSL's lazy set-up) for a quarter of
	 * the measuring time, so the first figure is not the cold one. */
	for (double t0 = now(); now() - t0 < seconds / 4;)
		if (request(SEAL_SESSION, 4, pt, ct) < 0)
			return 1;
	for (unsigned si = 0; si < 3; si++) {
		unsigned nb = sizes[si];

		/* valid blocks to open */
		if (request(SEAL_SESSION, nb, pt, ct) < 0 || request(SEAL_V1, nb, pt, ct1) < 0)
			return 1;
		for (int m = 0; m < 6; m++) {
			double t0 = now(), t;
			unsigned long n = 0;

			do {
				for (int i = 0; i < 64; i++)
					if (request((enum mode)m, nb, pt,
						    m >= SEAL_V1 ? ct1 : ct) < 0) {
						fprintf(stderr, "codec_bench: %s failed\n",
							mode_name[m]);
						return 1;
					}
				n += 64;
				t = now() - t0;
			} while (t < seconds);
			printf("%s %u %.0f\n", mode_name[m], nb * EKMFS_BLOCK_SIZE,
			       (double)n * nb * EKMFS_BLOCK_SIZE / t / 1e6);
		}
	}
	free(pt);
	free(ct);
	free(ct1);
	return 0;
}
