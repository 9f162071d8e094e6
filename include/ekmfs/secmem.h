/*
 * secmem.h - memory for key material.
 *
 * Owns: the locked, never-dumped arena that holds every plaintext key (CMK,
 * KEK, DEK) and the process settings that keep secrets out of core dumps.
 * Built on OpenSSL's secure heap (mlock + MADV_DONTDUMP + guard pages); when
 * the arena cannot be locked (no CAP_IPC_LOCK and a small RLIMIT_MEMLOCK) we
 * warn once and fall back to ordinary memory that is still wiped on free.
 */
#ifndef EKMFS_SECMEM_H
#define EKMFS_SECMEM_H

#include <stddef.h>

/* Call once at start-up, before any key is created. 0 or -errno. */
int ekmfs_secmem_init(void);
/* Disable core dumps and ptrace attach (PR_SET_DUMPABLE 0, RLIMIT_CORE 0). */
void ekmfs_secmem_no_dumps(void);

/* Zeroed, locked allocation; NULL on failure, also when the arena exists
 * but is full (never a silent fall back to the ordinary heap; the fall back
 * is only for a process whose arena could not be set up at all). */
void *ekmfs_secure_alloc(size_t len);
/* Wipe (OPENSSL_cleanse) and release; NULL is fine. */
void ekmfs_secure_free(void *p, size_t len);
/* Wipe a buffer that is not from the arena (stack copies of keys,
 * headers). */
void ekmfs_wipe(void *p, size_t len);
/* Wipe a large buffer of file plaintext (a read reply) before it is freed:
 * explicit_bzero, which the compiler may not drop either but which runs at
 * memset speed (OPENSSL_cleanse clears byte-wise and cost 4 % of a 1 MiB
 * sequential read). */
void ekmfs_wipe_bulk(void *p, size_t len);

#endif
