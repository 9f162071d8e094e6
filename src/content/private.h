/*
 * private.h - private header of the content layer (src/content/).
 *
 * Owns: struct ekmfs_content (one open backing file: its layout, keys,
 * states, journal and write key) and the prototypes that tie the files of
 * the module together. The map of the module, grouped by file:
 *   content.c  lifecycle: create, load (strict or settling after a crash),
 *              rekey, durability points (sync), close, the header I/O
 *   read.c     plaintext reads: where each block is (hole, journal, in
 *              place), reading and opening them in parallel
 *   write.c    writes, truncation, holes: which blocks change, sealing
 *              them, where they go (journal or in place), the new state
 *   journal.c  the journal file: create, append, scan, the overlay map of
 *              journaled blocks, folding it into the file
 *   upgrade.c  converting a v1 file to v2 in place, crash-safe, and
 *              finishing a conversion a crash interrupted
 *
 * The rules every file keeps (docs/DESIGN.md, "Format v2: crash
 * atomicity", argues them):
 *   - dur is the state a power cut falls back to; its data blocks are never
 *     overwritten in place, trimmed or punched while it is dur. New
 *     versions of them go to the journal (a "protected" block, see
 *     content_protected()).
 *   - cur is the state the file is in; whenever it differs from dur it is
 *     on disk in slot 1 - dur_slot (the "working" record), written after
 *     the blocks it describes.
 *   - A block that has a journal record stays journaled until the journal
 *     is folded in (the newest record of a block always wins).
 *
 * Locking: the caller serialises calls that change the state (write with a
 * size or hole change, truncate, punch, sync, close, rekey) against
 * everything else on the file; reads, and writes that change no state
 * (ekmfs_content_write_in_place_ok), may run concurrently with each other
 * (the caller keeps two writers off the same block). mu protects the write
 * key and the journal (its end, its map) for those concurrent writers.
 */
#ifndef EKMFS_CONTENT_PRIVATE_H
#define EKMFS_CONTENT_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ekmfs/aead.h"
#include "ekmfs/content.h"
#include "ekmfs/format.h"

/* Blocks sealed under one XAES salt before the next (docs/FORMAT.md,
 * "Nonces"): 2^17 keeps 2^48 block writes per DEK below 2^-32. */
#define CONTENT_SALT_BLOCKS (1u << 17)
/* A journal is folded into its file at a sync once it holds this much. */
#define CONTENT_JOURNAL_FOLD (64u << 20)
/* Blocks per read or write submission (1 MiB of plaintext plus one block
 * for misalignment). */
#define CHUNK_BLOCKS 257

/* Secure memory of one file: the DEK, the state key, the write key. */
struct content_keys {
	uint8_t dek[EKMFS_KEY_SIZE];
	uint8_t state[EKMFS_KEY_SIZE];
	uint8_t write[EKMFS_KEY_SIZE];   /* XAES key derived for wsalt */
};

/* One journaled block: where its newest record's stored block is. */
struct jentry {
	uint64_t index;         /* UINT64_MAX: free slot */
	uint64_t off;           /* of the stored block in the journal file */
	uint32_t len;           /* stored length */
};

struct content_journal {
	int fd;
	uint64_t gen;
	uint64_t end;           /* append offset */
	bool dirty;             /* appended since the last sync */
	bool new_entry;         /* its directory entry is not synced yet */
	struct jentry *map;     /* open addressing, cap a power of two */
	size_t cap, n;
	/* Loaded after a crash: every record, sorted by block index and then
	 * in the order written, so settling can take the newest version of a
	 * block that fits the state it keeps (journal_fit). */
	struct jentry *all;
	size_t nall, capall;
};

struct ekmfs_content {
	int fd;                          /* backing file, O_RDWR (O_RDONLY: reads only) */
	const struct ekmfs_layout *l;
	uint8_t file_id[EKMFS_FILE_ID_SIZE];
	struct content_keys *k;          /* secure memory */
	struct ekmfs_content_env env;
	/* v2 states (v1: only cur.size is used) */
	struct ekmfs_state dur, cur;
	int dur_slot;                    /* record slot holding dur */
	bool unequal;                    /* the two records differ on disk */
	/* A salt was pushed out of the working state's list (note_salt): it
	 * no longer verifies against the older record beside it, so once it
	 * is durable it must replace that one too (make_durable). */
	bool salts_evicted;
	uint64_t seq;                    /* highest record seq written or read */
	uint64_t phys;                   /* backing length now (>= layout of cur) */
	bool punch_pending;              /* holes of cur may still hold old bytes */
	struct content_journal *j;       /* NULL: no journal */
	/* write key (v2) */
	pthread_mutex_t mu;
	uint8_t wsalt[EKMFS_XAES_SALT_SIZE];
	uint64_t wcount;                 /* blocks sealed under wsalt; UINT64_MAX: none yet */
	/* The next working state lists only salts used from now on: cur is
	 * durable (or at rest), and its salts belong to the state before. */
	bool salts_reset;
};

/* content.c */
int content_write_state(struct ekmfs_content *c, bool both);
void content_report_bad(uint64_t index, uint64_t *bad_block,
			const char *what);
bool content_protected(const struct ekmfs_content *c, uint64_t index);
/* The key and salt to seal n blocks with; a new salt when the current one
 * is used up or none is taken yet, unless !may_rotate (-EAGAIN then: the
 * caller holds only a shared lock and cannot list a new salt in the state).
 * 0, -EAGAIN or -EIO. key/salt are the caller's (wipe them). */
int content_write_key(struct ekmfs_content *c, uint64_t n, bool may_rotate,
		      uint8_t key[EKMFS_KEY_SIZE], uint8_t salt[EKMFS_XAES_SALT_SIZE]);
/* Whether the current salt may seal n more blocks without rotating, and
 * cur lists it (a write that changes no state may use it). */
bool content_salt_ready(struct ekmfs_content *c, uint64_t n);
/* After a durability point: the next change starts a new salt list. */
void content_salts_fresh(struct ekmfs_content *c);
/* The GCM key of a stored block: v1 the DEK, v2 derived for its salt. */
int content_block_key(const struct ekmfs_content *c, const uint8_t *stored,
		      uint8_t key[EKMFS_KEY_SIZE]);
/* Bring the backing file's length and holes in line with cur where dur no
 * longer needs more (after a durability point). */
void content_physical(struct ekmfs_content *c);

/* read.c */
/* Read and open the current version of block index (plaintext length len)
 * into pt. 0, -EIO (bad; reported) or -errno. */
int content_load_block(struct ekmfs_content *c, uint64_t index, uint64_t len, uint8_t *pt,
		       uint64_t *bad_block);

/* upgrade.c: finish an upgrade a crash interrupted (its backup exists):
 * 1 when c is now the converted v2 file at rest, 0 when there is none. */
int content_upgrade_resume(struct ekmfs_content *c);

/* journal.c */
int journal_open_new(struct ekmfs_content *c);
/* Append n sealed blocks (indexes idx[i], stored lengths len[i], bytes at
 * bufs[i]); offs[i] receives where each stored block landed. The records
 * are not mapped (journal_map) until the caller's change is complete. A
 * failed append leaves the journal as it was. 0 or -errno. */
int journal_append(struct ekmfs_content *c, const uint64_t *idx, const uint32_t *len,
		   const uint8_t *const *bufs, unsigned n, uint64_t *offs);
/* Make a record the newest version of its block. Caller holds c->mu. */
int journal_map(struct ekmfs_content *c, uint64_t index, uint64_t off, uint32_t len);
const struct jentry *journal_find(const struct content_journal *j, uint64_t index);
/* The newest record of block index whose stored length is len (and, with
 * salts, whose block was sealed under one of salts' salts): after a crash,
 * from every record; otherwise the newest record if it fits. */
const struct jentry *journal_fit(const struct content_journal *j, uint64_t index, uint32_t len,
				 const struct ekmfs_state *salts);
/* Scan journal gen of this file (settling): map its valid records. */
int journal_load(struct ekmfs_content *c, uint64_t gen);
/* Copy the newest version of every journaled block that cur still has as
 * data into the file. 0 or -errno. */
int journal_copy_in(struct ekmfs_content *c);
int journal_refit(struct ekmfs_content *c);
void journal_close(struct ekmfs_content *c, bool remove);
/* Remove journal files of this file with a generation <= upto (or all). */
void journal_remove_stale(const struct ekmfs_content_env *env,
			  const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t upto);
/* The newest generation > after of this file's journals; 0 when none. */
uint64_t journal_newest(const struct ekmfs_content_env *env,
			const uint8_t file_id[EKMFS_FILE_ID_SIZE], uint64_t after);

#endif
