/*
 * secmem.c - locked memory for keys and the no-core-dump settings.
 *
 * OpenSSL's secure heap gives us an mlock()ed, MADV_DONTDUMP arena with
 * guard pages; every key ekmfs holds in plaintext lives there. The arena
 * size bounds how many DEKs can be open at once (64 bytes each with the
 * allocator's minimum), so it is sized for tens of thousands of open files.
 */
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/crypto.h>

#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define SECURE_ARENA_SIZE (4u << 20)
#define SECURE_MIN_ALLOC 32

int ekmfs_secmem_init(void)
{
	int rc;

	if (CRYPTO_secure_malloc_initialized())
		return 0;
	rc = CRYPTO_secure_malloc_init(SECURE_ARENA_SIZE, SECURE_MIN_ALLOC);
	if (rc == 0) {
		/* Without a locked arena keys are still wiped on free, but may
		 * reach swap: say so once, do not refuse to work. */
		ekmfs_log(EKMFS_LOG_WARN,
			  "cannot lock memory for keys (RLIMIT_MEMLOCK too small?); keys may be swapped");
		return -ENOMEM;
	}
	if (rc == 2)
		ekmfs_log(EKMFS_LOG_WARN, "key memory is allocated but could not be locked");
	return 0;
}

void ekmfs_secmem_no_dumps(void)
{
	struct rlimit none = { 0, 0 };

	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void *ekmfs_secure_alloc(size_t len)
{
	/* OPENSSL_secure_zalloc uses the ordinary heap when there is no
	 * arena (said once at start-up by ekmfs_secmem_init, or a program
	 * that never asked for one: tests, tools that hold no key). A full
	 * arena must be a failure like any other allocation's, never a key
	 * where it can be swapped and dumped without a word: OpenSSL 3.0
	 * returns NULL then, and this check keeps it so whatever the library
	 * version does (tests/unit/test_secmem.c). */
	void *p = OPENSSL_secure_zalloc(len);

	if (p && CRYPTO_secure_malloc_initialized() && !CRYPTO_secure_allocated(p)) {
		OPENSSL_clear_free(p, len);
		ekmfs_seterr("the locked key memory (%u KiB) is full", SECURE_ARENA_SIZE >> 10);
		ekmfs_log(EKMFS_LOG_ERR, "the locked key memory (%u KiB) is full: a key "
			  "allocation fails rather than land in swappable memory",
			  SECURE_ARENA_SIZE >> 10);
		return NULL;
	}
	return p;
}

void ekmfs_secure_free(void *p, size_t len)
{
	if (p)
		OPENSSL_secure_clear_free(p, len);
}

void ekmfs_wipe(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}

void ekmfs_wipe_bulk(void *p, size_t len)
{
	explicit_bzero(p, len);
}
