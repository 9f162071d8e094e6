/*
 * content.h - plaintext reads, writes and truncation of one backing file.
 *
 * Owns: the translation between a plaintext byte range and the header and
 * encrypted blocks of a backing file: read-modify-write of partial blocks,
 * filling gaps with encrypted zero blocks (there are no unauthenticated
 * holes), truncation at any offset. Uses the I/O seam; knows nothing about
 * FUSE or key management. The caller provides the locking: reads may run
 * concurrently, a write or truncate must exclude everything else on the file.
 */
#ifndef EKMFS_CONTENT_H
#define EKMFS_CONTENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ekmfs/format.h"

struct ekmfs_content {
	int fd;                                  /* backing file, O_RDWR */
	uint8_t file_id[EKMFS_FILE_ID_SIZE];
	const uint8_t *dek;                      /* EKMFS_KEY_SIZE bytes */
};

/* Read and parse the header. 0, -ENODATA (0-byte file: no header yet),
 * -EPROTO / -EBADMSG (see ekmfs_header_parse), -EIO. */
int ekmfs_content_read_header(int fd, struct ekmfs_header *h);
/* Write the whole header at offset 0. 0 or -errno. */
int ekmfs_content_write_header(int fd, const struct ekmfs_header *h);

/* Plaintext size from the backing file's size. 0 or -errno; -EBADMSG for an
 * impossible size (then *size is the intact prefix). */
int ekmfs_content_size(int fd, uint64_t *size);

/* Read up to len plaintext bytes at off. Returns bytes read (short only at
 * end of file) or -EIO when a block fails authentication; *bad_block then
 * names the first bad block (may be NULL). */
ssize_t ekmfs_content_read(const struct ekmfs_content *c, void *buf, size_t len,
			   uint64_t off, uint64_t *bad_block);
/* Write len bytes at off, extending the file (encrypted zeros fill any gap).
 * Returns len or -errno (-EIO also when a block to be merged fails
 * authentication, with *bad_block set). */
ssize_t ekmfs_content_write(const struct ekmfs_content *c, const void *buf,
			    size_t len, uint64_t off, uint64_t *bad_block);
/* Set the plaintext size. 0 or -errno. */
int ekmfs_content_truncate(const struct ekmfs_content *c, uint64_t size,
			   uint64_t *bad_block);

#endif
