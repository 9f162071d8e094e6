/*
 * rewrap.c - re-wrapping file headers, in parallel, crash-safe.
 *
 * Owns: what a pass does to one file (read its header, decide, write a key
 * slot; for migrate, decide which tenant it belongs to), the batches that make those writes durable with two syncfs() calls
 * per batch instead of two fsync()s per file, and the worker threads.
 *
 * Divisions:
 *   1. results (counts, skipped files, references) shared by the workers
 *   2. one file: classify its slots, decide, write the new slot (scan,
 *      re-wrap, migrate)
 *   3. a batch: phase 1 for every file, syncfs, phase 2 (clear), syncfs
 *   4. the workers and rot_pass_run()
 *
 * The protocol (docs/ROTATION.md has the argument in full): the DEK is
 * unwrapped from a slot that opens, wrapped under the target KEK into the
 * OTHER slot with seq = highest + 1, the batch is made durable, and only then
 * is the old slot cleared, and the batch made durable again. A crash at any
 * point leaves at least one slot that opens; a rerun finishes the job.
 * Nothing after the header's key slots is ever read or written, and each
 * file's mtime is put back after its slot write, under the file lock of the
 * rotation fence (fence.c), so the mount shows no change.
 *
 * Slot writes are split in two, so that every state a concurrent reader (the
 * daemon opening the file) or a crash can observe still parses:
 *   write: bytes 8..95 zeroed, then seq (bytes 0..7), then bytes 8..95
 *   clear: bytes 8..95 first, then seq
 * An in-between slot has a non-zero seq and a zero tenant id: it parses, it
 * cannot open (tenant id 0 does not exist), and readers fall back to the
 * other slot. One 96-byte write could be seen half done as "seq 0 with
 * other bytes set", which the parser rejects as a corrupt header.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/aead.h"
#include "ekmfs/content.h"
#include "ekmfs/io.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "rotate.h"

/* ---- 1. results ---- */

static void add_skip(struct rot_pass *p, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_skip(struct rot_pass *p, const char *path, const char *fmt, ...)
{
	struct rot_skip s = { .path = strdup(path) };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s.reason, sizeof(s.reason), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->mu);
	if (p->nskips == p->capskips) {
		size_t cap = p->capskips ? 2 * p->capskips : 16;
		struct rot_skip *grown = realloc(p->skips, cap * sizeof(*grown));

		if (!grown) {
			pthread_mutex_unlock(&p->mu);
			free(s.path);
			return;
		}
		p->skips = grown;
		p->capskips = cap;
	}
	p->skips[p->nskips++] = s;
	pthread_mutex_unlock(&p->mu);
}

/* Caller holds p->mu. */
static void add_ref(struct rot_pass *p, uint32_t tenant_id, uint32_t version)
{
	for (size_t i = 0; i < p->nrefs; i++) {
		if (p->refs[i].tenant_id == tenant_id && p->refs[i].version == version) {
			p->refs[i].files++;
			return;
		}
	}
	if (p->nrefs == p->caprefs) {
		size_t cap = p->caprefs ? 2 * p->caprefs : 16;
		struct rot_ref *grown = realloc(p->refs, cap * sizeof(*grown));

		if (!grown)
			return;
		p->refs = grown;
		p->caprefs = cap;
	}
	p->refs[p->nrefs++] = (struct rot_ref){ tenant_id, version, 1 };
}

uint64_t rot_pass_refs(const struct rot_pass *p, uint32_t tenant_id, uint32_t version)
{
	for (size_t i = 0; i < p->nrefs; i++)
		if (p->refs[i].tenant_id == tenant_id && p->refs[i].version == version)
			return p->refs[i].files;
	return 0;
}

static void set_fatal(struct rot_pass *p, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_fatal(struct rot_pass *p, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&p->mu);
	if (!p->fatal) {
		p->fatal = err;
		va_start(ap, fmt);
		vsnprintf(p->fatal_msg, sizeof(p->fatal_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&p->mu);
}

/* ---- 2. one file ---- */

enum outcome { OUT_EMPTY, OUT_CURRENT, OUT_REWRAP, OUT_CLEAR, OUT_OTHER, OUT_VANISHED,
	       OUT_SKIPPED, OUT_SCANNED, OUT_BADHDR };

/* A file waiting for phase 2: its fd and the slot to clear. */
struct pending {
	int fd;
	int clear_idx;
	const char *path;
	/* What phase 2 expects to find: the daemon may have emptied the file
	 * (O_TRUNC: a new header, file id and DEK) in between. */
	uint8_t file_id[EKMFS_FILE_ID_SIZE];
	uint64_t keep_seq;              /* of the slot that stays */
};

static const char *parse_problem(int rc, const uint8_t *buf, ssize_t n)
{
	if (n < EKMFS_HEADER_SIZE_V1)
		return "truncated header (file shorter than 256 bytes)";
	if (memcmp(buf, EKMFS_MAGIC, 4) != 0)
		return "not an ekmfs file (no EKMF magic)";
	if (rc == -EPROTO)
		return "unsupported format version";
	return "malformed header";
}

/* Read and parse the header of fd: OUT_SCANNED when h holds it, OUT_EMPTY
 * for a 0-byte file, else the file is reported (bad) and skipped. */
static enum outcome read_header(struct rot_pass *p, int fd, const char *path,
				struct ekmfs_header *h, enum outcome bad)
{
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE];
	ssize_t n;
	int rc;

	n = ekmfs_read_full(fd, buf, sizeof(buf), 0);
	if (n == 0)
		return OUT_EMPTY;
	if (n < 0) {
		add_skip(p, path, "cannot read the header: %s", strerror((int)-n));
		return bad;
	}
	rc = ekmfs_header_parse(buf, (size_t)n, h);
	if (rc) {
		add_skip(p, path, "%s", parse_problem(rc, buf, n));
		return bad;
	}
	return OUT_SCANNED;
}

/* The tenant id of the slot a reader tries first: the newest one, unless
 * that is a write cut short (tenant id 0). 0 when there is none. */
static uint32_t header_tenant(const struct ekmfs_header *h)
{
	int owner = ekmfs_header_owner_slot(h);

	return owner >= 0 ? h->slot[owner].tenant_id : 0;
}

/* Caller holds p->mu. Keeps the ROT_MISPLACED_LIST smallest paths, sorted,
 * so the list does not depend on which worker got there first. */
static void misplaced_add(struct rot_pass *p, const char *path)
{
	size_t n = p->nmisplaced, i;
	char *dup;

	if (n == ROT_MISPLACED_LIST && strcmp(path, p->misplaced[n - 1]) >= 0)
		return;
	dup = strdup(path);
	if (!dup)
		return;
	if (n == ROT_MISPLACED_LIST)
		free(p->misplaced[--n]);
	for (i = n; i > 0 && strcmp(p->misplaced[i - 1], path) > 0; i--)
		p->misplaced[i] = p->misplaced[i - 1];
	p->misplaced[i] = dup;
	p->nmisplaced = n + 1;
}

/* Scan: count which (tenant, version) pairs the header's slots name, and
 * whether the file is misplaced (its header's tenant is not the one its
 * path routes to now, e.g. renamed across a tenant boundary). */
static enum outcome scan_file(struct rot_pass *p, int fd, const char *path)
{
	struct rot_ctx *c = p->ctx;
	const struct ekmfs_tenant_config *route;
	struct ekmfs_tenant_record *t;
	struct ekmfs_header h;
	enum outcome o;

	o = read_header(p, fd, path, &h, OUT_BADHDR);
	if (o != OUT_SCANNED)
		return o;
	route = ekmfs_config_route(&c->cfg, path, c->started);
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < EKMFS_SLOT_COUNT; i++) {
		const struct ekmfs_slot *s = &h.slot[i];

		if (!s->seq || !s->tenant_id)
			continue;
		if (i == 1 && h.slot[0].seq && h.slot[0].tenant_id == s->tenant_id &&
		    h.slot[0].kek_version == s->kek_version)
			continue; /* one file, counted once */
		add_ref(p, s->tenant_id, s->kek_version);
	}
	/* A header naming a tenant the keyring lacks cannot be opened at all:
	 * that is for 'verify' to report, not a question of placement. */
	t = ekmfs_keyring_tenant_by_id(&c->kr, header_tenant(&h));
	if (t && strcmp(t->name, route->name) != 0) {
		p->counts.misplaced++;
		misplaced_add(p, path);
	}
	pthread_mutex_unlock(&p->mu);
	return OUT_SCANNED;
}

/* Whether the KEK a slot names is unusable (unknown, destroyed, or not
 * unwrapped); if so the file is reported. Never "fixed" by guessing. */
static bool kek_unusable(struct rot_pass *p, const char *path, int idx,
			 struct ekmfs_tenant_record *t, uint32_t version)
{
	struct ekmfs_kek_record *k = ekmfs_tenant_kek(t, version);
	const char *why;

	if (!k) {
		add_skip(p, path, "key slot %d names KEK v%u of tenant '%s', which the "
			 "keyring does not have", idx, version, t->name);
		return true;
	}
	if (k->state == EKMFS_KEK_DESTROYED) {
		add_skip(p, path, "key slot %d names KEK v%u of tenant '%s', which is "
			 "destroyed", idx, version, t->name);
		return true;
	}
	if (keys_find(p->ctx, t->id, version))
		return false;
	why = keys_load_error(p->ctx, t->id);
	if (why)
		add_skip(p, path, "%s", why);
	else
		add_skip(p, path, "key slot %d names KEK v%u of tenant '%s', which the "
			 "keyring does not have", idx, version, t->name);
	return true;
}

/* Unwrap slot idx with the KEK this run loaded: ekmfs_slot_open_fn. */
static int open_slot(void *arg, const struct ekmfs_header *h, int idx, uint8_t *dek)
{
	struct rot_pass *p = arg;
	const uint8_t *kek = keys_find(p->ctx, h->slot[idx].tenant_id,
				       h->slot[idx].kek_version);

	if (!kek) {
		ekmfs_seterr("key slot %d names a KEK this run does not hold", idx);
		return -ENOKEY;
	}
	return ekmfs_slot_unwrap(h, idx, kek, dek);
}

/* Unwrap the DEK by the rule every reader follows (the newest slot, else
 * the other one: the state an interrupted run leaves; keys.h,
 * ekmfs_header_open_dek). The index of the slot that opened, or -1
 * (reported). */
static int open_dek(struct rot_pass *p, const struct ekmfs_header *h, const char *path,
		    uint8_t *dek)
{
	int i = ekmfs_header_open_dek(h, open_slot, p, dek, NULL, 0);

	if (i >= 0)
		return i;
	add_skip(p, path, "no key slot authenticates (tampered or corrupt header)");
	return -1;
}

/* Phase 1 of a move: wrap dek under kek (tenant_id, version) into the slot
 * that did not open, seq above both, and write it; phase 2 then clears the
 * slot that opened. dek and h are wiped. */
static enum outcome write_other_slot(struct rot_pass *p, int fd, const char *path,
				     struct ekmfs_header *h, int opened, uint32_t tenant_id,
				     uint32_t version, const uint8_t *kek, uint8_t *dek,
				     struct pending *pend)
{
	uint8_t nonce[EKMFS_NONCE_SIZE];
	uint64_t seq;
	int rc;

	seq = (h->slot[0].seq > h->slot[1].seq ? h->slot[0].seq : h->slot[1].seq) + 1;
	rc = ekmfs_random(nonce, sizeof(nonce));
	if (!rc)
		rc = ekmfs_slot_wrap(h, 1 - opened, seq, tenant_id, version, kek, dek, nonce);
	ekmfs_wipe(dek, EKMFS_KEY_SIZE);
	if (rc) {
		ekmfs_wipe(h, sizeof(*h));
		add_skip(p, path, "wrapping the DEK failed");
		return OUT_SKIPPED;
	}
	rc = ekmfs_content_write_slot(fd, h, 1 - opened);
	ekmfs_wipe(h, sizeof(*h));
	pend->clear_idx = opened;
	pend->keep_seq = seq;
	if (rc) {
		add_skip(p, path, "writing the new key slot failed: %s", strerror(-rc));
		return OUT_SKIPPED;
	}
	return OUT_REWRAP;
}

/* Every slot in use must name a KEK the keyring knows and we hold: a slot
 * for an unknown or destroyed version is reported, never overwritten. A
 * slot with tenant id 0 is one of our own writes cut short (see the top).
 * With only_tenant, a slot of another tenant makes the file OUT_OTHER.
 * OUT_SCANNED when the file may be re-wrapped. */
static enum outcome check_slots(struct rot_pass *p, const struct ekmfs_header *h,
				const char *path, uint32_t only_tenant)
{
	for (int i = 0; i < EKMFS_SLOT_COUNT; i++) {
		const struct ekmfs_slot *s = &h->slot[i];
		struct ekmfs_tenant_record *t;

		if (!s->seq || !s->tenant_id)
			continue;
		t = ekmfs_keyring_tenant_by_id(&p->ctx->kr, s->tenant_id);
		if (!t) {
			add_skip(p, path, "key slot %d names tenant id %u, which the keyring "
				 "does not have", i, s->tenant_id);
			return OUT_SKIPPED;
		}
		if (only_tenant && s->tenant_id != only_tenant)
			return OUT_OTHER;
		if (kek_unusable(p, path, i, t, s->kek_version))
			return OUT_SKIPPED;
	}
	return OUT_SCANNED;
}

/* Everything before the decision: the slots check out (check_slots with
 * only_tenant), the DEK is unwrapped into dek, and the file is recorded in
 * pend with its stale slot (the one that did not open) to clear. The index
 * of the slot that opened, or -1 with *o saying why not. */
static int open_for_rewrap(struct rot_pass *p, int fd, const char *path,
			   const struct ekmfs_header *h, uint32_t only_tenant,
			   struct pending *pend, uint8_t *dek, enum outcome *o)
{
	int opened;

	*o = check_slots(p, h, path, only_tenant);
	if (*o != OUT_SCANNED)
		return -1;
	opened = open_dek(p, h, path, dek);
	if (opened < 0) {
		*o = OUT_SKIPPED;
		return -1;
	}
	pend->fd = fd;
	pend->path = path;
	pend->clear_idx = 1 - opened;
	pend->keep_seq = h->slot[opened].seq;
	memcpy(pend->file_id, h->file_id, EKMFS_FILE_ID_SIZE);
	return opened;
}

/* The file is where it belongs: only a stale slot, if any, to clear. */
static enum outcome at_home(const struct ekmfs_header *h, int opened, uint8_t *dek)
{
	ekmfs_wipe(dek, EKMFS_KEY_SIZE);
	return h->slot[1 - opened].seq ? OUT_CLEAR : OUT_CURRENT;
}

/*
 * Decide and do phase 1 for one file. On OUT_REWRAP / OUT_CLEAR the file is
 * left open in *pend for phase 2; otherwise fd is closed by the caller.
 */
static enum outcome rewrap_file(struct rot_pass *p, int fd, const char *path,
				struct pending *pend, uint8_t *dek)
{
	struct rot_ctx *c = p->ctx;
	struct ekmfs_header h;
	enum outcome o;
	int opened;

	o = read_header(p, fd, path, &h, OUT_SKIPPED);
	if (o != OUT_SCANNED)
		return o;

	opened = open_for_rewrap(p, fd, path, &h, p->tenant_id, pend, dek, &o);
	if (opened < 0)
		return o;
	if (h.slot[opened].kek_version == p->target)
		return at_home(&h, opened, dek);
	if (p->mode == MODE_DRYRUN) {
		ekmfs_wipe(dek, EKMFS_KEY_SIZE);
		return OUT_REWRAP;
	}
	return write_other_slot(p, fd, path, &h, opened, p->tenant_id, p->target,
				keys_find(c, p->tenant_id, p->target), dek, pend);
}

/*
 * Migrate one file: re-home its DEK under the current KEK of the tenant its
 * path routes to now (ekmfs_config_route at the start of the run). The same
 * two phases as a re-wrap; a file already at home has at most a stale slot
 * (an interrupted move) to clear. The KEK version of a file at home is
 * rewrap's business, not ours.
 */
static enum outcome migrate_file(struct rot_pass *p, int fd, const char *path,
				 struct pending *pend, uint8_t *dek)
{
	struct rot_ctx *c = p->ctx;
	const struct ekmfs_tenant_config *route;
	struct ekmfs_tenant_record *target;
	const uint8_t *kek = NULL;
	struct ekmfs_header h;
	uint32_t target_id;
	enum outcome o;
	int opened, used = 0, only = -1;
	bool selected;

	o = read_header(p, fd, path, &h, OUT_SKIPPED);
	if (o != OUT_SCANNED)
		return o;
	route = ekmfs_config_route(&c->cfg, path, c->started);
	target = ekmfs_keyring_tenant(&c->kr, route->name);
	target_id = target ? target->id : 0; /* 0: dry run, tenant not made yet */

	/* --tenant T: the files that route to T, and T's files routed elsewhere. */
	selected = !p->filter || strcmp(route->name, p->filter) == 0;
	for (int i = 0; i < EKMFS_SLOT_COUNT; i++) {
		struct ekmfs_tenant_record *t;

		if (!h.slot[i].seq)
			continue;
		used++;
		only = i;
		t = ekmfs_keyring_tenant_by_id(&c->kr, h.slot[i].tenant_id);
		if (t && p->filter && strcmp(t->name, p->filter) == 0)
			selected = true;
	}
	if (!selected)
		return OUT_OTHER;
	if (used == 1 && target_id && h.slot[only].tenant_id == target_id)
		return OUT_CURRENT; /* at home, one slot: no key needed */

	opened = open_for_rewrap(p, fd, path, &h, 0, pend, dek, &o);
	if (opened < 0)
		return o;
	if (target_id && h.slot[opened].tenant_id == target_id)
		return at_home(&h, opened, dek);
	if (target)
		kek = keys_find(c, target_id, target->current_version);
	if (p->mode == MODE_DRYRUN) {
		ekmfs_wipe(dek, EKMFS_KEY_SIZE);
		o = OUT_REWRAP;
	} else if (!kek) {
		const char *why = target ? keys_load_error(c, target_id) : NULL;

		ekmfs_wipe(dek, EKMFS_KEY_SIZE);
		if (why)
			add_skip(p, path, "it routes to tenant '%s', but %s", route->name, why);
		else if (target)
			add_skip(p, path, "it routes to tenant '%s', whose current KEK v%u is "
				 "not available", route->name, target->current_version);
		else
			add_skip(p, path, "it routes to tenant '%s', which the keyring does "
				 "not have", route->name);
		return OUT_SKIPPED;
	} else {
		o = write_other_slot(p, fd, path, &h, opened, target_id,
				     target->current_version, kek, dek, pend);
	}
	if (o == OUT_REWRAP) {
		pthread_mutex_lock(&p->mu);
		p->moved_to[route - c->cfg.tenants]++;
		pthread_mutex_unlock(&p->mu);
	}
	return o;
}

/* ---- 3. a batch ---- */

static void count(struct rot_counts *k, enum outcome o)
{
	k->files++;
	switch (o) {
	case OUT_EMPTY: k->empty++; break;
	case OUT_CURRENT: k->current++; break;
	case OUT_REWRAP: k->rewrapped++; break;
	case OUT_CLEAR: k->cleared++; break;
	case OUT_OTHER: k->other_tenant++; break;
	case OUT_VANISHED: k->vanished++; break;
	case OUT_BADHDR: k->unreadable_headers++; break;
	case OUT_SKIPPED: case OUT_SCANNED: break;
	}
}

static int sync_backing(struct rot_pass *p, const char *when)
{
	if (ekmfs_io->syncfs(p->ctx->backing_fd) == 0)
		return 0;
	set_fatal(p, -errno, "syncfs of the backing directory failed %s: %s", when,
		  strerror(errno));
	return -1;
}

/* Phase 2, under the file lock: the header is still the one phase 1 saw
 * (same file id, and the slot that stays is the one it left). */
static bool still_ours(const struct pending *pend)
{
	uint8_t buf[EKMFS_HEADER_PARSE_SIZE];
	struct ekmfs_header h;
	ssize_t n = ekmfs_read_full(pend->fd, buf, sizeof(buf), 0);
	bool same;

	same = n > 0 && ekmfs_header_parse(buf, (size_t)n, &h) == 0 &&
	       memcmp(h.file_id, pend->file_id, EKMFS_FILE_ID_SIZE) == 0 &&
	       h.slot[1 - pend->clear_idx].seq == pend->keep_seq;
	ekmfs_wipe(&h, sizeof(h));
	return same;
}

static void run_batch(struct rot_pass *p, size_t first, size_t end, struct pending *pend,
		      uint8_t *dek)
{
	struct rot_counts local = { 0 };
	size_t npend = 0;
	bool wrote = false;
	int flags = p->mode == MODE_REWRAP ? O_RDWR : O_RDONLY;

	for (size_t i = first; i < end; i++) {
		const char *path = p->paths->path[i];
		struct timespec mtime;
		enum outcome o;
		int fd, rc;

		fd = openat(p->ctx->backing_fd, path,
			    flags | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
		if (fd < 0 && errno == EPERM)
			fd = openat(p->ctx->backing_fd, path,
				    flags | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT || errno == ELOOP || errno == ENXIO)
				o = OUT_VANISHED; /* removed or replaced by a symlink/fifo */
			else {
				add_skip(p, path, "cannot open: %s", strerror(errno));
				o = OUT_SKIPPED;
			}
		} else if (p->mode == MODE_SCAN) {
			o = scan_file(p, fd, path);
		} else if (p->mode != MODE_REWRAP) {
			o = p->migrate ? migrate_file(p, fd, path, &pend[npend], dek)
				       : rewrap_file(p, fd, path, &pend[npend], dek);
		} else if ((rc = rot_file_hold(fd, &mtime)) < 0) {
			add_skip(p, path, "cannot lock it: %s", strerror(-rc));
			o = OUT_SKIPPED;
		} else {
			/* Held from reading the header to putting its mtime
			 * back: the daemon writes it before or after (fence.c). */
			o = p->migrate ? migrate_file(p, fd, path, &pend[npend], dek)
				       : rewrap_file(p, fd, path, &pend[npend], dek);
			rot_file_release(fd, o == OUT_REWRAP ? &mtime : NULL);
		}
		if (fd >= 0) {
			if ((o == OUT_REWRAP || o == OUT_CLEAR) && p->mode == MODE_REWRAP) {
				wrote |= o == OUT_REWRAP;
				npend++;
			} else {
				close(fd);
			}
		}
		count(&local, o);
		atomic_fetch_add(&p->done, 1);
	}

	/* The new slots must be durable before any old slot goes. */
	if (npend && wrote && sync_backing(p, "after writing new key slots") < 0) {
		for (size_t i = 0; i < npend; i++)
			close(pend[i].fd);
		npend = 0;
	}
	for (size_t i = 0; i < npend; i++) {
		struct timespec mtime;
		int rc = rot_file_hold(pend[i].fd, &mtime);

		if (rc == 0 && !still_ours(&pend[i])) {
			/* Emptied and given a new header meanwhile: nothing
			 * of ours to clear (the next pass looks at it anew). */
			rot_file_release(pend[i].fd, NULL);
			continue;
		}
		if (rc == 0) {
			rc = ekmfs_content_clear_slot(pend[i].fd, pend[i].clear_idx);
			rot_file_release(pend[i].fd, rc == 0 ? &mtime : NULL);
		}

		if (rc)
			add_skip(p, pend[i].path, "clearing the old key slot failed: %s "
				 "(the file opens with its new slot; rerun to clear it)",
				 strerror(-rc));
	}
	if (npend)
		sync_backing(p, "after clearing old key slots");
	for (size_t i = 0; i < npend; i++)
		close(pend[i].fd);

	pthread_mutex_lock(&p->mu);
	p->counts.files += local.files;
	p->counts.empty += local.empty;
	p->counts.current += local.current;
	p->counts.rewrapped += local.rewrapped;
	p->counts.cleared += local.cleared;
	p->counts.other_tenant += local.other_tenant;
	p->counts.vanished += local.vanished;
	p->counts.unreadable_headers += local.unreadable_headers;
	pthread_mutex_unlock(&p->mu);
}

/* ---- 4. workers ---- */

static void *worker(void *arg)
{
	struct rot_pass *p = arg;
	struct pending *pend = calloc(p->batch, sizeof(*pend));
	uint8_t *dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);

	if (!pend || !dek) {
		set_fatal(p, -ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		size_t first = atomic_fetch_add(&p->next, p->batch);
		size_t end;

		if (first >= p->paths->n)
			break;
		pthread_mutex_lock(&p->mu);
		if (p->fatal) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		pthread_mutex_unlock(&p->mu);
		end = first + p->batch < p->paths->n ? first + p->batch : p->paths->n;
		run_batch(p, first, end, pend, dek);
	}
out:
	free(pend);
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
	return NULL;
}

int rot_pass_run(struct rot_pass *p)
{
	pthread_t tid[ROT_MAX_JOBS];
	unsigned started = 0, jobs = p->jobs ? p->jobs : 1;
	struct rot_progress *pr;

	if (jobs > ROT_MAX_JOBS)
		jobs = ROT_MAX_JOBS;
	if (!p->batch)
		p->batch = ROT_BATCH;
	/* Few files: spread them so every thread gets some. */
	if (p->paths->n / jobs < p->batch)
		p->batch = p->paths->n / jobs + 1;
	pthread_mutex_init(&p->mu, NULL);
	atomic_init(&p->next, 0);
	atomic_init(&p->done, 0);
	pr = progress_start(p, p->paths->n, p->ctx->opt.quiet);
	for (unsigned i = 0; i < jobs; i++) {
		if (pthread_create(&tid[i], NULL, worker, p) != 0)
			break;
		started++;
	}
	if (!started)
		worker(p);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	progress_stop(pr);
	if (p->fatal)
		ekmfs_seterr("%s", p->fatal_msg);
	return p->fatal;
}

void rot_pass_free(struct rot_pass *p)
{
	for (size_t i = 0; i < p->nskips; i++)
		free(p->skips[i].path);
	free(p->skips);
	free(p->refs);
	for (size_t i = 0; i < p->nmisplaced; i++)
		free(p->misplaced[i]);
	p->nmisplaced = 0;
	pthread_mutex_destroy(&p->mu);
	p->skips = NULL;
	p->refs = NULL;
	p->nskips = p->nrefs = 0;
}
