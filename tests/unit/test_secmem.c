/*
 * test_secmem.c - the key arena (src/crypto/secmem.c): when it is full, a
 * key allocation fails; it never lands silently on the ordinary heap,
 * where it could be swapped or dumped. (OpenSSL 3.0's own secure malloc
 * already returns NULL when full; ekmfs_secure_alloc checks it too, so
 * this test holds the property against any library or allocator change.)
 */
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "ekmfs/secmem.h"

#define CHUNK (64 * 1024)
#define MAX_CHUNKS 1024          /* 64 MiB: far past the 4 MiB arena */

static void test_full_arena_fails(void)
{
	static void *p[MAX_CHUNKS];
	size_t n = 0;

	if (ekmfs_secmem_init() < 0 || !CRYPTO_secure_malloc_initialized()) {
		printf("# no locked arena here (RLIMIT_MEMLOCK?): nothing to fill\n");
		return;
	}
	while (n < MAX_CHUNKS && (p[n] = ekmfs_secure_alloc(CHUNK)) != NULL) {
		CHECK(CRYPTO_secure_allocated(p[n]));
		n++;
	}
	/* Some fit, and then the arena said no: NULL, not ordinary memory. */
	CHECK(n > 0);
	CHECK(n < MAX_CHUNKS);
	/* A small allocation may still fit in what is left; whatever is
	 * handed out is in the arena. */
	for (int i = 0; i < 64; i++) {
		void *q = ekmfs_secure_alloc(32);

		if (!q)
			break;
		CHECK(CRYPTO_secure_allocated(q));
		ekmfs_secure_free(q, 32);
	}
	for (size_t i = 0; i < n; i++)
		ekmfs_secure_free(p[i], CHUNK);
	/* Room again once the keys are released. */
	p[0] = ekmfs_secure_alloc(CHUNK);
	CHECK(p[0] != NULL && CRYPTO_secure_allocated(p[0]));
	ekmfs_secure_free(p[0], CHUNK);
}

int main(void)
{
	RUN(test_full_arena_fails);
	return CHECK_DONE();
}
