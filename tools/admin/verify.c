/*
 * verify.c - `ekmfs-admin verify`: authenticate every header, state and
 * block.
 *
 * Loads each file's state as the daemon would (both records equal and
 * authentic, the backing size exactly what the state says: a cut or an
 * appended byte is damage) and reads it whole through it into a scratch
 * buffer only to check every tag; the plaintext is wiped and never
 * printed. Reads a file in runs of blocks so memory stays bounded whatever
 * the file size. Reports every damaged block (up to a cap per file) rather
 * than stopping at the first, because an admin deciding what to restore
 * needs the whole picture. A volume that is mounted, or awaits recovery
 * from a crash, is checked as it is on disk, without changing it: files
 * being written may look unfinished there, so only their newest state is
 * held to the rules.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "progress.h"
#include "ekmfs/content.h"
#include "ekmfs/holder.h"
#include "ekmfs/io.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define RUN_BLOCKS 256
#define MAX_REPORTED_BLOCKS 16

struct verify_state {
	struct ekmfs_keys *keys;
	uint8_t *dek;                 /* secure memory */
	uint8_t *pbuf;                /* a run of plaintext, wiped after each file */
	uint64_t files, damaged, midwrite;
	bool in_use;                  /* mounted, or a recovery is due */
	int journal_dir;              /* .ekmfs/journal when in_use, else -1 */
	struct tool_progress *progress;   /* on a terminal: bytes checked */
	uint64_t file_bytes;              /* of the current file, added so far */
};

static void report(struct verify_state *v, const char *relpath, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct verify_state *v, const char *relpath, const char *fmt, ...)
{
	va_list ap;

	tool_progress_hold(v->progress);
	printf("DAMAGED %s: ", relpath);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	tool_progress_release(v->progress);
}

/* Why a header did not parse, in words: a file that does not even start
 * with the magic was never encrypted (or is foreign), which calls for a
 * different remedy than a damaged header. */
static const char *header_problem(int fd, int rc)
{
	char magic[4];

	if (rc == -EPROTO || rc == -EBADMSG) {
		if (ekmfs_read_full(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
		    memcmp(magic, EKMFS_MAGIC, sizeof(magic)) != 0)
			return "not an ekmfs file (plaintext or foreign format); to encrypt a "
			       "plaintext file in place: ekmfs-admin import-plaintext PATH";
		return rc == -EPROTO ? "unsupported format version" : "malformed or truncated";
	}
	return strerror(-rc);
}

/* Read the whole file through its state, a run of blocks at a time; a bad
 * block is reported and the check goes on after it. Returns the number of
 * bad blocks (or -errno). */
static long verify_blocks(struct verify_state *v, struct ekmfs_content *c, const char *relpath)
{
	uint64_t size = ekmfs_content_size(c), off = 0;
	size_t run = RUN_BLOCKS * (size_t)EKMFS_BLOCK_SIZE;
	long bad = 0;

	while (off < size) {
		uint64_t block = UINT64_MAX;
		ssize_t n;

		ekmfs_clearerr();
		n = ekmfs_content_read(c, v->pbuf, run, off, &block);
		if (n > 0) {
			off += (uint64_t)n;
			tool_progress_add(v->progress, (uint64_t)n);
			v->file_bytes += (uint64_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (n != -EIO || block == UINT64_MAX)
			return n;
		if (bad < MAX_REPORTED_BLOCKS) {
			const char *why = strstr(ekmfs_lasterr(), "block ");

			report(v, relpath, "%s", why ? why : "a block fails authentication");
		}
		bad++;
		off = (block + 1) * EKMFS_BLOCK_SIZE;
	}
	ekmfs_wipe_bulk(v->pbuf, run);
	if (bad > MAX_REPORTED_BLOCKS)
		report(v, relpath, "%ld more damaged blocks", bad - MAX_REPORTED_BLOCKS);
	return bad;
}

struct midwrite_arg {
	struct verify_state *v;
	const char *relpath;
};

/* A file a recovery would change (in_use): not damage, but said. */
static void note_midwrite(void *arg, const char *what)
{
	struct midwrite_arg *m = arg;

	printf("MIDWRITE %s: %s\n", m->relpath, what);
	m->v->midwrite++;
}

static int verify_one(const char *path, const char *relpath, const struct stat *st,
		      struct verify_state *v)
{
	struct midwrite_arg m = { v, relpath };
	struct ekmfs_content_env env = { .journal_dir = v->journal_dir, .in_use = v->in_use,
					 .settled = note_midwrite, .settled_arg = &m };
	struct ekmfs_content *c = NULL;
	struct ekmfs_header h;
	bool damaged = false;
	long bad;
	int fd, rc;

	v->files++;
	{
		const char *base = strrchr(relpath, '/');

		base = base ? base + 1 : relpath;
		if (strncmp(base, ".ekmfs-import.", 14) == 0) {
			report(v, relpath, "temporary file of an interrupted import-plaintext "
			       "(the original is intact): rerun import-plaintext on the "
			       "original, which removes it, or delete it");
			v->damaged++;
			return 0;
		}
	}
	if (st->st_size == 0)
		return 0; /* an empty file whose header was never written */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		report(v, relpath, "cannot open: %s", strerror(errno));
		v->damaged++;
		return 0;
	}
	rc = ekmfs_content_read_header(fd, &h);
	if (rc < 0 && v->in_use && ekmfs_content_header_unwritten(fd) == 0) {
		note_midwrite(&m, "its header was never written (it was being created): a "
			      "recovery empties it");
		goto out;
	}
	if (rc < 0) {
		report(v, relpath, "header: %s", header_problem(fd, rc));
		damaged = true;
		goto out;
	}
	ekmfs_clearerr();
	rc = ekmfs_keys_open_header(v->keys, &h, v->dek);
	if (rc < 0) {
		report(v, relpath, "header: %s", rc == -EBADMSG ?
		       "no key slot authenticates (tampered header)" :
		       ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		damaged = true;
		goto out;
	}
	if (h.slot[0].seq && h.slot[1].seq && ekmfs_keys_check_slots(v->keys, &h) < 0) {
		report(v, relpath, "header: %s", ekmfs_lasterr());
		damaged = true;
	}
	ekmfs_clearerr();
	rc = ekmfs_content_load(&c, fd, &h, v->dek, &env);
	ekmfs_wipe(v->dek, EKMFS_KEY_SIZE);
	if (rc < 0) {
		report(v, relpath, "%s", ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		damaged = true;
		goto out;
	}
	bad = verify_blocks(v, c, relpath);
	if (bad < 0) {
		report(v, relpath, "read error: %s", strerror((int)-bad));
		damaged = true;
	} else if (bad > 0) {
		damaged = true;
	}
out:
	ekmfs_content_free(c);
	ekmfs_wipe(v->dek, EKMFS_KEY_SIZE);
	ekmfs_wipe(&h, sizeof(h));
	close(fd);
	if (damaged)
		v->damaged++;
	return 0;
}

/* One file; whatever its fate, its bytes count as checked. */
static int verify_file(const char *path, const char *relpath, const struct stat *st, void *arg)
{
	struct verify_state *v = arg;
	int rc;

	v->file_bytes = 0;
	rc = verify_one(path, relpath, st, v);
	if ((uint64_t)st->st_size > v->file_bytes)
		tool_progress_add(v->progress, (uint64_t)st->st_size - v->file_bytes);
	return rc;
}

static void print_kek(void *arg, const struct ekmfs_tenant_record *t,
		      const struct ekmfs_kek_record *r, int err, const char *why)
{
	(void)arg;
	if (r->state == EKMFS_KEK_DESTROYED)
		printf("KEK %s v%u: destroyed (nothing to check)\n", t->name, r->version);
	else if (err)
		printf("BAD KEK %s v%u (%s, CMK %s %s): %s\n", t->name, r->version,
		       ekmfs_kek_state_name(r->state), r->wrapped.cmk_ref, r->wrapped.cmk_version,
		       why[0] ? why : strerror(-err));
	else
		printf("KEK %s v%u (%s, CMK %s %s): opens\n", t->name, r->version,
		       ekmfs_kek_state_name(r->state), r->wrapped.cmk_ref, r->wrapped.cmk_version);
}

/* --keys: the keyring and descriptor authenticated (ekmfs_keys_open), then
 * every KEK record unwrapped through its CMK; no file is read. */
static int verify_keys(struct ekmfs_keys *keys)
{
	struct ekmfs_keys_stats st;
	int bad;

	ekmfs_keys_stats(keys, &st);
	printf("keyring: authenticated with volume.json (generation %llu)\n",
	       (unsigned long long)st.keyring_generation);
	bad = ekmfs_keys_check_keks(keys, print_kek, NULL);
	if (bad < 0) {
		fprintf(stderr, "ekmfs-admin: %s\n", strerror(-bad));
		return EXIT_FAIL;
	}
	printf("verify --keys: %d KEK record%s failed\n", bad, bad == 1 ? "" : "s");
	return bad ? EXIT_FAIL : EXIT_OK;
}

int admin_verify(const char *backing, const struct ekmfs_config *cfg, bool keys_only)
{
	struct verify_state v = { .journal_dir = -1 };
	int fd, rc, status = EXIT_FAIL;

	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", backing, strerror(errno));
		return EXIT_FAIL;
	}
	rc = ekmfs_keys_open(fd, cfg, &v.keys);
	if (rc < 0) {
		fprintf(stderr, "ekmfs-admin: %s\n",
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		goto out;
	}
	if (keys_only) {
		status = verify_keys(v.keys);
		goto out;
	}
	v.dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	v.pbuf = malloc(RUN_BLOCKS * (size_t)EKMFS_BLOCK_SIZE);
	if (!v.dek || !v.pbuf) {
		fprintf(stderr, "ekmfs-admin: out of memory\n");
		goto out;
	}
	{
		struct ekmfs_holder holder;
		bool live, pending;

		if (ekmfs_volume_holder(fd, &holder, &live, &pending) == 0 || pending) {
			v.in_use = true;
			v.journal_dir = openat(fd, EKMFS_JOURNAL_DIR,
					       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			fprintf(stderr, "ekmfs-admin: %s: files being written are checked as they "
				"are on disk, without changing them\n", live ?
				"the volume is mounted" : "the volume awaits recovery from a crash "
				"(mount it to recover)");
		}
	}
	v.progress = tool_progress_start(&(struct tool_progress_opts){
		.label = "verify", .unit = TOOL_BYTES, .show = TOOL_SHOW_TTY,
		.total = tool_progress_shown(TOOL_SHOW_TTY) ? admin_bytes_below(backing) : 0 });
	rc = admin_walk_files(backing, verify_file, &v);
	tool_progress_stop(v.progress);
	if (rc < 0)
		fprintf(stderr, "ekmfs-admin: walking %s: %s\n", backing, strerror(-rc));
	if (v.midwrite)
		printf("verify: %llu files were caught mid-write (MIDWRITE): not damage; "
		       "mounting the volume settles them as after a crash\n",
		       (unsigned long long)v.midwrite);
	printf("verify: %llu files checked, %llu damaged\n", (unsigned long long)v.files,
	       (unsigned long long)v.damaged);
	status = (rc == 0 && v.damaged == 0) ? EXIT_OK : EXIT_FAIL;
out:
	ekmfs_secure_free(v.dek, EKMFS_KEY_SIZE);
	free(v.pbuf);
	if (v.journal_dir >= 0)
		close(v.journal_dir);
	if (v.keys)
		ekmfs_keys_close(v.keys);
	close(fd);
	return status;
}
