/*
 * content.h - plaintext reads, writes, truncation and holes of one backing
 * file, crash-safe.
 *
 * Owns: the translation between a plaintext byte range and the header,
 * state records, encrypted blocks and journal of a backing file
 * (docs/FORMAT.md): read-modify-write of partial blocks, holes (sparse
 * files), the authenticated size, the journal that keeps every fsynced
 * byte through a power cut, and settling a file left by a crash. Uses the
 * I/O seam; knows nothing about FUSE or key management (the caller
 * unwraps the DEK). Version 1 files are read; writing one converts it to
 * version 2 first (ekmfs_content_upgrade).
 *
 * Divisions: environment / header I/O / lifecycle / sizes / data /
 * durability.
 */
#ifndef EKMFS_CONTENT_H
#define EKMFS_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ekmfs/format.h"

/* ---- environment ---- */

/* Where a file's journal lives, and how strictly a file is loaded. */
/* The journals' directory, relative to BACKING (docs/FORMAT.md, "Journal"). */
#define EKMFS_JOURNAL_DIR ".ekmfs/journal"

struct ekmfs_content_env {
	/* BACKING/.ekmfs/journal, O_RDONLY|O_DIRECTORY; -1: no journal
	 * directory (read-only users: writes that need a journal fail). */
	int journal_dir;
	/* The volume is recovering from an unclean shutdown: a file whose
	 * records differ, whose backing size is off, or that has a journal
	 * is settled (the newest state that fully verifies is kept) instead
	 * of being refused as damaged. */
	bool settle;
	/* Called once when settling changed a file (NULL: silent). */
	void (*settled)(void *arg, const char *what);
	void *settled_arg;
	/* Not 0: the file was closed by this process with its working record
	 * of this seq not yet sealed (ekmfs_content_close); its two records
	 * may differ, the newer must carry this seq. */
	uint64_t expect_seq;
	/* The volume may hold version 1 files: an upgrade of this file that a
	 * crash interrupted is finished first (ekmfs_content_upgrade). */
	bool upgrading;
	/* Checking a volume that is mounted, or awaits recovery, without
	 * changing it (ekmfs-admin verify): the file is settled as a recovery
	 * would settle it (the newest state that verifies, with the journal
	 * records that fit it, read from journal_dir), but nothing is written:
	 * reads return what the recovery would keep. */
	bool in_use;
};

struct ekmfs_content;

/* ---- header I/O ---- */

/* Read and parse the header. 0, -ENODATA (0-byte file: no header yet),
 * -EPROTO / -EBADMSG (see ekmfs_header_parse), -EIO. */
int ekmfs_content_read_header(int fd, struct ekmfs_header *h);
/* Settling after a crash: a file whose header never reached the disk (its
 * first sector, or all of a shorter file, is zeros) was being created; it
 * is cut to 0 bytes, an empty file. 0 when it was, -EBADMSG when the file
 * holds something else (a header that is there but bad is damage). */
int ekmfs_content_settle_header(int fd);
/* The same test without changing anything: 0 when the first sector (or
 * all of a shorter file) is zeros, -EBADMSG when it is not. */
int ekmfs_content_header_unwritten(int fd);
/* Key-slot bytes of fd's header only (in-place slot updates: rotation). */
int ekmfs_content_write_slot(int fd, const struct ekmfs_header *h, int idx);
int ekmfs_content_clear_slot(int fd, int idx);

/* ---- lifecycle ---- */

/* A new file: fd is empty (0 bytes); write header h (v2, slots filled)
 * and two empty-file state records. c keeps a duplicate of fd (here and
 * in load): the caller's may be closed while c lives. */
int ekmfs_content_create(struct ekmfs_content **out, int fd, const struct ekmfs_header *h,
			 const uint8_t dek[EKMFS_KEY_SIZE], const struct ekmfs_content_env *env);
/* An existing file whose header h was read from fd and whose DEK is known.
 * -EBADMSG when the file does not hold together (records, size, a file
 * cut or grown behind our back; the message says which) and env->settle
 * is not set or settling found no state that verifies. */
int ekmfs_content_load(struct ekmfs_content **out, int fd, const struct ekmfs_header *h,
		       const uint8_t dek[EKMFS_KEY_SIZE], const struct ekmfs_content_env *env);
/* The last user is done: fold the journal in, make both state records
 * equal when the current state is durable, trim and punch what is left
 * over. When it is not durable (written since the last sync), *seal_seq
 * receives the seq of its working record: the caller seals the file
 * (ekmfs_content_seal) once a sync of the backing store has made it
 * durable, and loads it with env->expect_seq = *seal_seq until then.
 * Frees c (keys wiped) even on error. */
int ekmfs_content_close(struct ekmfs_content *c, uint64_t *seal_seq);
/* Seal a closed file whose working record (seq) is durable now: copy it
 * over the other record, so both are equal at rest. Needs no key. 0,
 * -ESTALE (the newer record does not carry seq: changed since, or
 * rolled back behind our back), -errno. */
int ekmfs_content_seal(int fd, uint64_t seq);
/* Drop c without writing anything (the file is gone, or a failed open). */
void ekmfs_content_free(struct ekmfs_content *c);
/* Truncate to 0 under a fresh DEK and file id: h (slots filled) and dek
 * are the new ones. */
int ekmfs_content_rekey(struct ekmfs_content *c, const struct ekmfs_header *h,
			const uint8_t dek[EKMFS_KEY_SIZE]);
/* Convert a v1 file to v2 (the same DEK and file id; h carries slots
 * wrapped for the v2 prefix). Crash-safe through a copy of the v1 bytes
 * in env->journal_dir. */
int ekmfs_content_upgrade(struct ekmfs_content *c, const struct ekmfs_header *h);

/* ---- sizes ---- */

uint64_t ekmfs_content_size(const struct ekmfs_content *c);
uint16_t ekmfs_content_version(const struct ekmfs_content *c);
const uint8_t *ekmfs_content_file_id(const struct ekmfs_content *c);
/* The backing file, as c holds it (its own descriptor, O_RDWR when the
 * file was opened so). */
int ekmfs_content_fd(const struct ekmfs_content *c);
/* Plaintext size from a backing size alone (stat of a file nobody has
 * loaded; at rest the backing size is the layout size exactly). */
int ekmfs_content_plain_size(uint16_t version, uint64_t backing, uint64_t *plain);

/* ---- data ---- */

/* Read up to len plaintext bytes at off. Returns bytes read (short only at
 * end of file) or -EIO when a block fails authentication or is missing;
 * *bad_block then names the first bad block (may be NULL). */
ssize_t ekmfs_content_read(struct ekmfs_content *c, void *buf, size_t len, uint64_t off,
			   uint64_t *bad_block);
/* Whether writing [off, off+len) changes no state (no size, hole or salt
 * change): such writes may run concurrently under the caller's shared
 * lock, on different blocks. A write that changes state needs the
 * caller's exclusive lock. */
bool ekmfs_content_write_in_place_ok(struct ekmfs_content *c, uint64_t off, uint64_t len);
/* Write len bytes at off, extending the file (a gap becomes a hole).
 * Returns len or -errno (-EIO also when a block to be merged fails
 * authentication, with *bad_block set). */
ssize_t ekmfs_content_write(struct ekmfs_content *c, const void *buf, size_t len,
			    uint64_t off, uint64_t *bad_block);
/* Set the plaintext size (growing adds a hole). 0 or -errno. */
int ekmfs_content_truncate(struct ekmfs_content *c, uint64_t size, uint64_t *bad_block);
/* Zero [off, off+len): whole blocks become holes. extend: the size grows
 * to off+len if smaller (fallocate ZERO_RANGE without KEEP_SIZE). */
int ekmfs_content_punch(struct ekmfs_content *c, uint64_t off, uint64_t len, bool extend,
			uint64_t *bad_block);

/* ---- durability ---- */

/* Make everything written so far durable (fsync / fdatasync). */
int ekmfs_content_sync(struct ekmfs_content *c, bool datasync);

#endif
