/*
 * secret_file.h - reading files that hold secrets, private to src/keys/.
 *
 * Owns: the one rule every secrets file obeys (key files, passphrase files,
 * AWS shared credentials, Azure client secrets, web identity tokens): a
 * regular file owned by the effective uid with no group/other permission
 * bits, in directories that only root or that uid own and nobody else may
 * write (an ancestor may be world-writable with the sticky bit, like /tmp),
 * opened without following a FIFO into a hang. Shared so the rule
 * cannot drift between providers.
 */
#ifndef EKMFS_KEYS_SECRET_FILE_H
#define EKMFS_KEYS_SECRET_FILE_H

#include <stddef.h>

/* Open path read-only after the checks above; what names it in messages
 * ("key file"). 0 with *fd set; -ENOKEY when it does not exist, -EPERM when
 * it breaks the rule, other -errno; ekmfs_lasterr() says which. */
int ekmfs_secret_open(const char *path, const char *what, int *fd);

/* Read the whole file into buf (capacity cap + 1, secure memory), NUL-
 * terminated, length in *len. -EINVAL when longer than cap. buf is wiped on
 * failure. */
int ekmfs_secret_read(const char *path, const char *what, char *buf, size_t cap,
		      size_t *len);

#endif
