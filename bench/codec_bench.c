/*
 * codec_bench.c - MB/s of sealing and opening content blocks on one core.
 *
 * Owns: the codec micro-benchmark of bench/run.sh. For 4, 16 and 256 KiB of
 * plaintext per call (1, 4 and 64 blocks) it measures, on the calling
 * thread only, the block codec as the content layer drives it (one keyed
 * session per request, a nonce and an AAD per block) and the one-shot
 * ekmfs_block_seal/open calls (a key schedule per block), so the figures
 * compare per core with `openssl speed -evp aes-256-gcm -bytes N`.
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

enum mode { SEAL_SESSION, OPEN_SESSION, SEAL_ONESHOT, OPEN_ONESHOT };

static const char *mode_name[] = { "seal", "open", "seal-oneshot", "open-oneshot" };

static uint8_t key[EKMFS_KEY_SIZE], file_id[EKMFS_FILE_ID_SIZE];
static uint8_t nonce[EKMFS_NONCE_SIZE];

/* One "request" of nblocks blocks; returns 0 or -1. */
static int request(enum mode m, unsigned nblocks, uint8_t *pt, uint8_t *ct)
{
	struct ekmfs_aead_session *s = NULL;
	int rc = 0;

	if (m == SEAL_SESSION || m == OPEN_SESSION) {
		s = ekmfs_aead_begin(key);
		if (!s)
			return -1;
	}
	for (unsigned b = 0; b < nblocks && rc == 0; b++) {
		uint8_t *p = pt + (size_t)b * EKMFS_BLOCK_SIZE;
		uint8_t *c = ct + (size_t)b * EKMFS_CBLOCK_SIZE;

		switch (m) {
		case SEAL_SESSION:
			rc = ekmfs_block_seal_s(s, file_id, b, nonce, p, EKMFS_BLOCK_SIZE, c);
			break;
		case OPEN_SESSION:
			rc = ekmfs_block_open_s(s, file_id, b, c, EKMFS_CBLOCK_SIZE, p);
			break;
		case SEAL_ONESHOT:
			rc = ekmfs_block_seal(key, file_id, b, nonce, p, EKMFS_BLOCK_SIZE, c);
			break;
		case OPEN_ONESHOT:
			rc = ekmfs_block_open(key, file_id, b, c, EKMFS_CBLOCK_SIZE, p);
			break;
		}
	}
	ekmfs_aead_end(s);
	return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	static const unsigned sizes[] = { 1, 4, 64 };   /* blocks per request */
	uint8_t *pt = malloc(64 * EKMFS_BLOCK_SIZE), *ct = malloc(64 * EKMFS_CBLOCK_SIZE);

	if (!pt || !ct || ekmfs_random(key, sizeof(key)) || ekmfs_random(nonce, sizeof(nonce)))
		return 1;
	memset(pt, 0x5a, 64 * EKMFS_BLOCK_SIZE);
	/* Warm up (CPU clock, caches, OpenSSL's lazy set-up) for a quarter of
	 * the measuring time, so the first figure is not the cold one. */
	for (double t0 = now(); now() - t0 < seconds / 4;)
		if (request(SEAL_SESSION, 4, pt, ct) < 0)
			return 1;
	for (unsigned si = 0; si < 3; si++) {
		unsigned nb = sizes[si];

		if (request(SEAL_SESSION, nb, pt, ct) < 0)   /* valid blocks to open */
			return 1;
		for (int m = 0; m < 4; m++) {
			double t0 = now(), t;
			unsigned long n = 0;

			do {
				for (int i = 0; i < 64; i++)
					if (request((enum mode)m, nb, pt, ct) < 0) {
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
	return 0;
}
