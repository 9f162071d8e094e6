/*
 * import.c - `ekmfs-admin import-plaintext PATH...`: encrypt, in place,
 * plaintext files that were in the backing directory before it became a
 * volume (ekmfs-admin verify reports them as "not an ekmfs file").
 *
 * PATH is a file (or a directory: every plaintext file below it) inside a
 * backing directory, absolute or relative to the working directory; the
 * volume is the nearest ancestor holding .ekmfs/volume.json.
 *
 * Crash safety: the encrypted copy is written to a temporary file in the
 * same directory (.ekmfs-import.NAME), fsynced, given the original's owner,
 * mode, xattrs and times, then renamed over the original, and the
 * directory is fsynced. A crash before the rename leaves the plaintext file
 * as it was plus the temporary file, which the next import of the same file
 * removes (and `verify` names); after the rename the file is encrypted. Two
 * imports of one file are serialized by an flock on the original. Files with
 * an ekmfs header are refused, never encrypted twice. Best run while the
 * volume is not mounted (a mounted daemon would still hold the old inode of
 * an open file).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "admin.h"
#include "progress.h"
#include "tool.h"
#include "ekmfs/audit.h"
#include "ekmfs/content.h"
#include "ekmfs/io.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define CHUNK (1u << 20)
#define TMP_PREFIX ".ekmfs-import."

struct import_state {
	char root[PATH_MAX];            /* the backing directory */
	struct admin_audit a;
	uint8_t *dek;
	uint8_t *buf;
	unsigned imported, skipped, failed;
	/* Progress on a terminal: a first pass only adds up the bytes to
	 * import (counting), the second imports them. */
	bool counting;
	uint64_t total;
	struct tool_progress *progress;
};

/* The volume holding path: the nearest ancestor with .ekmfs/volume.json. */
static int find_root(const char *path, char *root, size_t len)
{
	char real[PATH_MAX], probe[PATH_MAX + 32];
	struct stat st;

	if (!realpath(path, real))
		return -errno;
	for (;;) {
		snprintf(probe, sizeof(probe), "%s/" EKMFS_META_DIR "/" EKMFS_VOLUME_FILE,
			 strcmp(real, "/") ? real : "");
		if (stat(probe, &st) == 0) {
			snprintf(root, len, "%s", real);
			return 0;
		}
		if (strcmp(real, "/") == 0)
			return -ENOENT;
		{
			char *slash = strrchr(real, '/');

			if (slash == real)
				slash[1] = '\0';
			else
				*slash = '\0';
		}
	}
}

/* Owner, mode, xattrs and times of src onto dst (times last). */
static int copy_metadata(int src, int dst, const struct stat *st, const char *rel)
{
	struct timespec times[2] = { st->st_atim, st->st_mtim };
	char *names = NULL, *val = NULL;
	ssize_t len;
	int ret = 0;

	if (ekmfs_io->fchownat(dst, "", st->st_uid, st->st_gid, AT_EMPTY_PATH) < 0 ||
	    ekmfs_io->fchmod(dst, st->st_mode & 07777) < 0)
		return -errno;
	len = flistxattr(src, NULL, 0);
	if (len > 0 && (names = malloc((size_t)len)) && (len = flistxattr(src, names, (size_t)len)) > 0) {
		for (char *n = names; n < names + len; n += strlen(n) + 1) {
			ssize_t vlen = fgetxattr(src, n, NULL, 0);

			free(val);
			val = vlen >= 0 ? malloc((size_t)vlen + 1) : NULL;
			if (!val || (vlen = fgetxattr(src, n, val, (size_t)vlen)) < 0 ||
			    ekmfs_io->fsetxattr(dst, n, val, (size_t)vlen, 0) < 0) {
				ret = -errno;
				fprintf(stderr, "ekmfs-admin: %s: cannot copy xattr %s: %s\n", rel, n,
					strerror(errno));
				goto out;
			}
		}
	}
	if (ekmfs_io->futimens(dst, times) < 0)
		ret = -errno;
out:
	free(val);
	free(names);
	return ret;
}

static bool same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void audit_import(struct import_state *s, const char *rel, const struct ekmfs_header *h,
			 int err)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	char id[2 * EKMFS_FILE_ID_SIZE + 1];

	ev.event = "import_plaintext";
	ev.path = rel;
	ev.tenant = EKMFS_DEFAULT_TENANT;
	if (h) {
		ekmfs_hex(h->file_id, EKMFS_FILE_ID_SIZE, id);
		ev.file_id = id;
		ev.kek_version = h->slot[0].kek_version;
	}
	ev.outcome = err ? "failure" : "success";
	ev.reason = err ? strerror(-err) : NULL;
	if (admin_audit_record(&s->a, &ev) < 0)
		fprintf(stderr, "ekmfs-admin: audit: %s\n", ekmfs_lasterr());
}

/* The start / finish records of a run (finish: with counts). */
static int audit_run(struct import_state *s, const char *event, const char *first,
		     const struct import_state *counts)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	json_object *d = NULL;
	int ret;

	ev.event = event;
	ev.path = first;
	if (counts && (d = json_object_new_object())) {
		json_object_object_add(d, "imported", json_object_new_int64(counts->imported));
		json_object_object_add(d, "skipped", json_object_new_int64(counts->skipped));
		json_object_object_add(d, "failed", json_object_new_int64(counts->failed));
		ev.outcome = counts->failed ? "failure" : "success";
	}
	ev.details = d;
	ret = admin_audit_record(&s->a, &ev);
	json_object_put(d);
	return ret;
}

/* Import one regular file; rel is relative to the volume root. 0, 1 when
 * skipped (empty), or -errno (reported). */
static int import_one(struct import_state *s, const char *rel, bool explicit)
{
	char dirpart[PATH_MAX], namepart[PATH_MAX], tmp[PATH_MAX + 32];
	struct ekmfs_content_env env = { .journal_dir = -1 };
	struct ekmfs_header h;
	struct ekmfs_content *c = NULL;
	struct stat st, st2;
	uint64_t seal = 0;
	uint8_t magic[4];
	uint64_t off = 0, bad;
	int src = -1, dst = -1, dirfd = -1, ret;
	bool have_header = false;

	{
		const char *slash = strrchr(rel, '/');

		snprintf(namepart, sizeof(namepart), "%s", slash ? slash + 1 : rel);
		snprintf(dirpart, sizeof(dirpart), "%.*s", slash ? (int)(slash - rel) : 1,
			 slash ? rel : ".");
	}
	dirfd = openat(s->a.fd, dirpart, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		ret = -errno;
		goto out;
	}
	src = openat(dirfd, namepart, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0 || fstat(src, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		fprintf(stderr, "ekmfs-admin: %s: not a regular file\n", rel);
		goto out_quiet;
	}
	if (flock(src, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		fprintf(stderr, "ekmfs-admin: %s: another import holds it\n", rel);
		goto out_quiet;
	}
	if (st.st_size == 0) {
		ret = 1;   /* a 0-byte file is already a valid (empty) ekmfs file */
		goto out_quiet;
	}
	if (st.st_size >= 4 && ekmfs_read_full(src, magic, 4, 0) == 4 &&
	    memcmp(magic, EKMFS_MAGIC, 4) == 0) {
		if (explicit)
			fprintf(stderr, "ekmfs-admin: %s: refused: it already has an ekmfs header\n",
				rel);
		ret = explicit ? -EEXIST : 1;
		goto out_quiet;
	}

	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%s", namepart);
	if (strlen(tmp) > NAME_MAX) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	/* Our own leftover from an interrupted import of this file. */
	if (ekmfs_io->unlinkat(dirfd, tmp, 0) == 0)
		fprintf(stderr, "ekmfs-admin: %s: removed %s left by an interrupted import\n",
			rel, tmp);
	dst = ekmfs_io->openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0) {
		ret = -errno;
		goto out;
	}
	ekmfs_clearerr();
	ret = ekmfs_keys_new_header(s->a.keys, rel, &h, s->dek);
	if (ret)
		goto out_unlink;
	have_header = true;
	/* A new file: every write lands past its durable end, no journal. */
	ret = ekmfs_content_create(&c, dst, &h, s->dek, &env);
	if (ret)
		goto out_unlink;
	for (;;) {
		ssize_t n = ekmfs_read_full(src, s->buf, CHUNK, (off_t)off);
		ssize_t w;

		if (n < 0) {
			ret = (int)n;
			goto out_unlink;
		}
		if (n == 0)
			break;
		w = ekmfs_content_write(c, s->buf, (size_t)n, off, &bad);
		if (w < 0) {
			ret = (int)w;
			goto out_unlink;
		}
		off += (uint64_t)n;
	}
	ekmfs_wipe(s->buf, CHUNK);
	/* Durable, then both state records equal: at rest before the rename. */
	ret = ekmfs_content_sync(c, false);
	if (ret == 0)
		ret = ekmfs_content_close(c, &seal);
	c = NULL;
	if (ret)
		goto out_unlink;
	ret = copy_metadata(src, dst, &st, rel);
	if (ret)
		goto out_unlink;
	if (fstat(src, &st2) < 0 || !same_file_state(&st, &st2) || off != (uint64_t)st.st_size) {
		ret = -EAGAIN;
		fprintf(stderr, "ekmfs-admin: %s: changed while it was being imported; "
			"run again\n", rel);
		goto out_unlink;
	}
	if (ekmfs_io->fsync(dst) < 0 || ekmfs_io->renameat2(dirfd, tmp, dirfd, namepart, 0) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	if (ekmfs_io->fsync(dirfd) < 0) {
		ret = -errno;
		goto out;
	}
	audit_import(s, rel, &h, 0);
	tool_progress_hold(s->progress);
	printf("imported %s (%llu bytes)\n", rel, (unsigned long long)st.st_size);
	tool_progress_release(s->progress);
	ret = 0;
	goto out_quiet;

out_unlink:
	ekmfs_io->unlinkat(dirfd, tmp, 0);
out:
	if (ret < 0) {
		tool_progress_hold(s->progress);
		fprintf(stderr, "ekmfs-admin: %s: %s\n", rel,
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-ret));
		tool_progress_release(s->progress);
		if (have_header)
			audit_import(s, rel, &h, ret);
	}
out_quiet:
	ekmfs_content_free(c);
	ekmfs_wipe(&h, sizeof(h));
	if (dst >= 0)
		close(dst);
	if (src >= 0)
		close(src);
	if (dirfd >= 0)
		close(dirfd);
	return ret;
}

static void count(struct import_state *s, int ret)
{
	if (ret == 0)
		s->imported++;
	else if (ret > 0)
		s->skipped++;
	else
		s->failed++;
}

/* One file of the job: counted (first pass) or imported, its bytes then
 * added to the progress whatever the outcome. */
static void import_file(struct import_state *s, const char *rel, bool explicit)
{
	struct stat st;
	uint64_t size = fstatat(s->a.fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;

	if (s->counting) {
		s->total += size;
		return;
	}
	count(s, import_one(s, rel, explicit));
	tool_progress_add(s->progress, size);
}

/* Every regular file below rel (a directory), .ekmfs and temp files aside. */
static void import_tree(struct import_state *s, const char *rel)
{
	struct dirent *de;
	DIR *d;
	int fd = openat(s->a.fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (!s->counting) {
			fprintf(stderr, "ekmfs-admin: %s: %s\n", rel, strerror(errno));
			s->failed++;
		}
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char child[PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    (!strcmp(rel, ".") && !strcmp(de->d_name, EKMFS_META_DIR)) ||
		    !strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)))
			continue;
		snprintf(child, sizeof(child), "%s/%s", rel, de->d_name);
		if (!strcmp(rel, "."))
			snprintf(child, sizeof(child), "%s", de->d_name);
		if (de->d_type == DT_DIR)
			import_tree(s, child);
		else if (de->d_type == DT_REG)
			import_file(s, child, false);
	}
	closedir(d);
}

/* The PATH arguments: files, or trees of files, of one volume. */
static void import_args(struct import_state *s, int argc, char **argv)
{
	char real[PATH_MAX];
	struct stat st;

	for (int i = 1; i < argc; i++) {
		char other[PATH_MAX];
		const char *rel;
		size_t n = strlen(s->root);

		if (!realpath(argv[i], real) || find_root(argv[i], other, sizeof(other)) ||
		    strcmp(other, s->root) != 0) {
			if (!s->counting) {
				fprintf(stderr, "ekmfs-admin: %s: not in the volume %s\n", argv[i],
					s->root);
				s->failed++;
			}
			continue;
		}
		rel = real[n] == '/' ? real + n + 1 : ".";
		if (!strcmp(rel, EKMFS_META_DIR) || !strncmp(rel, EKMFS_META_DIR "/", 7)) {
			if (!s->counting) {
				fprintf(stderr, "ekmfs-admin: %s: the volume's metadata is not "
					"imported\n", argv[i]);
				s->failed++;
			}
			continue;
		}
		if (lstat(real, &st) == 0 && S_ISDIR(st.st_mode))
			import_tree(s, rel);
		else
			import_file(s, rel, true);
	}
}

int admin_import_main(int argc, char **argv, const struct ekmfs_config *cfg)
{
	struct import_state s = { 0 };
	int ret, status = EXIT_FAIL;

	s.a.fd = -1;
	if (argc < 2) {
		fprintf(stderr, "ekmfs-admin: usage: import-plaintext PATH...\n");
		return EXIT_USAGE;
	}
	for (int i = 1; i < argc; i++)
		if (tool_refuse_mount_path(argv[i], TOOL_IN_BACKING))
			return EXIT_FAIL;
	ret = find_root(argv[1], s.root, sizeof(s.root));
	if (ret) {
		fprintf(stderr, "ekmfs-admin: %s is not inside an ekmfs backing directory\n",
			argv[1]);
		return EXIT_FAIL;
	}
	ret = admin_audit_open(s.root, cfg, false, &s.a);
	if (!ret)   /* a file in a tenant's paths is imported under its CMK */
		ret = ekmfs_keys_apply_config(s.a.keys, cfg);
	if (ret) {
		fprintf(stderr, "ekmfs-admin: %s\n", ekmfs_lasterr()[0] ? ekmfs_lasterr() :
			strerror(-ret));
		return EXIT_FAIL;
	}
	s.dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	s.buf = malloc(CHUNK);
	if (!s.dek || !s.buf)
		goto out;
	/* No data changes unless the audit log takes records. */
	ret = audit_run(&s, "import_plaintext_start", argv[1], NULL);
	if (ret) {
		fprintf(stderr, "ekmfs-admin: audit log: %s\n", ekmfs_lasterr()[0] ?
			ekmfs_lasterr() : strerror(-ret));
		goto out;
	}
	/* On a terminal: add up the bytes first, for the bar's total. */
	if (tool_progress_shown(TOOL_SHOW_TTY)) {
		s.counting = true;
		import_args(&s, argc, argv);
		s.counting = false;
	}
	s.progress = tool_progress_start(&(struct tool_progress_opts){
		.label = "import-plaintext", .unit = TOOL_BYTES, .total = s.total,
		.show = TOOL_SHOW_TTY });
	import_args(&s, argc, argv);
	tool_progress_stop(s.progress);
	printf("import-plaintext: %u imported, %u skipped (empty or already encrypted), "
	       "%u failed\n", s.imported, s.skipped, s.failed);
	if (audit_run(&s, "import_plaintext_finish", argv[1], &s) < 0) {
		fprintf(stderr, "ekmfs-admin: audit log: %s\n", ekmfs_lasterr());
		s.failed++;
	}
	status = s.failed ? EXIT_FAIL : EXIT_OK;
out:
	ekmfs_secure_free(s.dek, EKMFS_KEY_SIZE);
	free(s.buf);
	admin_audit_close(&s.a);
	return status;
}
