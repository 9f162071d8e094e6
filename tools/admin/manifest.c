/*
 * manifest.c - `ekmfs-admin backup-manifest`: what a backup of BACKING must
 * hold, checkable without any key.
 *
 *   backup-manifest [-o FILE] BACKING          write the manifest
 *   backup-manifest --check MANIFEST BACKING   compare a copy with one
 *
 * One line per directory, symlink and regular file of BACKING ("." for
 * BACKING itself), .ekmfs/ included (its lock file excepted: it holds no
 * data), sorted by path:
 *
 *   TYPE MODE UID:GID SIZE SHA256 FILE-ID KEY PATH     (tab-separated)
 *
 * TYPE is f, d or l; SHA256 is of the ciphertext as stored (a symlink: of
 * its target; a directory: -); FILE-ID and KEY (tenant:vN, the KEK version
 * of the header's newest slot) come from the plaintext header fields, "-"
 * for metadata files and header-less empty files, "?" for a header that does
 * not parse. PATH is last, with backslash, tab and newline escaped (\\ \t \n).
 * Nothing in it is secret: no plaintext, no key material.
 *
 * Both commands stream: the walk visits BACKING in that order (memory grows
 * with the largest directory, not the tree), the manifest is written as it
 * goes, and --check merges it line by line with the walk.
 *
 * Divisions: entries and the walk; hashing and header fields; writing;
 * reading a manifest back; the check; the command line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "progress.h"
#include "tool.h"
#include "ekmfs/content.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

#define MANIFEST_MAGIC "# ekmfs backup manifest 1"
#define FIELD_MAX 96

/* ---- entries and the walk ---- */

struct entry {
	char *path;                     /* relative to BACKING, unescaped */
	char type;                      /* 'f', 'd', 'l' */
	unsigned mode, uid, gid;
	char size[24];
	char sha[2 * 32 + 1];
	char file_id[FIELD_MAX];
	char key[FIELD_MAX];
};

/* Called for each entry of BACKING in manifest order; nonzero stops. */
typedef int (*entry_fn)(const struct entry *e, void *arg);

/* ---- hashing and header fields ---- */

static int sha256_fd(int fd, char out[65])
{
	unsigned char md[32], buf[1 << 16];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned mdlen = 0;
	ssize_t n;
	int ret = 0;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		ret = -ENOMEM;
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	ekmfs_hex(md, sizeof(md), out);
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

static void sha256_text(const char *text, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned mdlen = 0;

	EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL);
	ekmfs_hex(md, sizeof(md), out);
}

/* File id and KEY of a data file, from the header's plaintext fields. */
static void header_fields(int fd, off_t size, const struct ekmfs_keyring *kr,
			  struct entry *e)
{
	struct ekmfs_header h;
	struct ekmfs_tenant_record *t;
	int slot;

	strcpy(e->file_id, "-");
	strcpy(e->key, "-");
	if (size == 0)
		return;
	if (ekmfs_content_read_header(fd, &h) < 0 ||
	    (slot = ekmfs_header_newest_slot(&h, NULL)) < 0) {
		strcpy(e->file_id, "?");
		strcpy(e->key, "?");
		return;
	}
	ekmfs_hex(h.file_id, EKMFS_FILE_ID_SIZE, e->file_id);
	t = ekmfs_keyring_tenant_by_id((struct ekmfs_keyring *)kr, h.slot[slot].tenant_id);
	if (t)
		snprintf(e->key, sizeof(e->key), "%s:v%u", t->name, h.slot[slot].kek_version);
	else
		snprintf(e->key, sizeof(e->key), "id%u:v%u", h.slot[slot].tenant_id,
			 h.slot[slot].kek_version);
}

/*
 * The walk visits BACKING in manifest order (paths sorted by strcmp) while
 * holding only the names of the directories on the current path: each
 * directory's names are sorted with, for a subdirectory, a second key
 * "name/" standing for its subtree. Every path below it starts with that
 * key and no sibling's name contains '/', so the subtree sorts exactly
 * where strcmp puts its paths ("a", "a.x", "a/b"). Memory grows with the
 * largest directory, not with the tree.
 */
struct walk {
	const struct ekmfs_keyring *kr;
	entry_fn fn;
	void *arg;
	int rc;                         /* first error (the walk goes on) */
	bool stop;                      /* fn asked to stop */
	struct tool_progress *progress; /* on a terminal: bytes of data files hashed */
	char rel[PATH_MAX];             /* the current path relative to BACKING */
};

struct item {
	char *key;                      /* a name, or "name/" for its subtree */
	bool subtree;
};

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->key, ((const struct item *)b)->key);
}

static void fail(struct walk *w, int rc, const char *what, const char *path)
{
	fprintf(stderr, "ekmfs-admin: %s %s: %s\n", what, path, strerror(-rc));
	if (!w->rc)
		w->rc = rc;
}

/* The entry of name in dirfd (rel: its path), handed to the visitor. */
static void visit(struct walk *w, int dirfd, const char *name, const char *rel)
{
	struct entry e;
	struct stat st;
	int fd, rc;

	/* The lock file holds no data; a restore recreates it. */
	if (strcmp(rel, EKMFS_META_DIR "/" EKMFS_LOCK_FILE) == 0)
		return;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(w, -errno, "cannot read", rel);
	memset(&e, 0, sizeof(e));
	e.path = (char *)rel;
	e.mode = st.st_mode & 07777;
	e.uid = st.st_uid;
	e.gid = st.st_gid;
	strcpy(e.sha, "-");
	strcpy(e.file_id, "-");
	strcpy(e.key, "-");
	strcpy(e.size, "-");
	if (S_ISDIR(st.st_mode)) {
		e.type = 'd';
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target));

		if (n < 0)
			return fail(w, -errno, "cannot read link", rel);
		e.type = 'l';
		snprintf(e.size, sizeof(e.size), "%zd", n);
		sha256_text(target, (size_t)n, e.sha);
	} else if (S_ISREG(st.st_mode)) {
		e.type = 'f';
		fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return fail(w, -errno, "cannot open", rel);
		if (strncmp(rel, EKMFS_META_DIR "/", sizeof(EKMFS_META_DIR)) != 0) {
			header_fields(fd, st.st_size, w->kr, &e);
			tool_progress_add(w->progress, (uint64_t)st.st_size);
		}
		rc = lseek(fd, 0, SEEK_SET) < 0 ? -errno : sha256_fd(fd, e.sha);
		if (rc == 0) {
			struct stat now;

			/* The size of what was hashed, not of the earlier stat. */
			rc = fstat(fd, &now) < 0 ? -errno : 0;
			snprintf(e.size, sizeof(e.size), "%lld", (long long)now.st_size);
		}
		close(fd);
		if (rc < 0)
			return fail(w, rc, "cannot read", rel);
	} else {
		return; /* sockets, fifos, devices: not volume content */
	}
	if (w->fn(&e, w->arg))
		w->stop = true;
}

static void free_items(struct item *it, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(it[i].key);
	free(it);
}

/* Visit the entries of directory dirfd (consumed) whose path w->rel has
 * len bytes ("" for BACKING, whose own entry is "."). */
static void walk_dir(struct walk *w, int dirfd, size_t len)
{
	struct item *it = NULL, *grown;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = fdopendir(dirfd);

	if (!d) {
		close(dirfd);
		return fail(w, -errno, "cannot read", len ? w->rel : ".");
	}
	while ((errno = 0, de = readdir(d))) {
		bool dir = de->d_type == DT_DIR;
		size_t nlen = strlen(de->d_name);
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_UNKNOWN)
			dir = fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			      S_ISDIR(st.st_mode);
		grown = ekmfs_grow(it, &cap, n + 1, sizeof(*it), 64);
		if (!grown)
			goto nomem;
		it = grown;
		if (!(it[n].key = strdup(de->d_name)))
			goto nomem;
		it[n++].subtree = false;
		if (!dir)
			continue;
		if (!(it[n].key = malloc(nlen + 2)))
			goto nomem;
		memcpy(it[n].key, de->d_name, nlen);
		memcpy(it[n].key + nlen, "/", 2);
		it[n++].subtree = true;
	}
	if (errno)
		fail(w, -errno, "cannot read", len ? w->rel : ".");
	if (!len) {             /* BACKING itself: its mode and owner are the mount root's */
		grown = ekmfs_grow(it, &cap, n, sizeof(*it), 64);
		if (!grown || !(grown[n].key = strdup(".")))
			goto nomem;
		it = grown;
		it[n++].subtree = false;
	}
	if (n)
		qsort(it, n, sizeof(*it), by_key);
	for (size_t i = 0; i < n && !w->stop; i++) {
		char *name = it[i].key;
		size_t nlen = strlen(name) - it[i].subtree;
		int fd;

		if (len + 1 + nlen >= sizeof(w->rel)) {
			fail(w, -ENAMETOOLONG, "cannot read", w->rel);
			continue;
		}
		if (len)
			w->rel[len] = '/';
		memcpy(w->rel + len + !!len, name, nlen);
		w->rel[len + !!len + nlen] = '\0';
		if (!len && !strcmp(name, ".")) {
			visit(w, dirfd, ".", ".");
		} else if (!it[i].subtree) {
			visit(w, dirfd, name, w->rel);
		} else {
			name[nlen] = '\0';
			fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				fail(w, -errno, "cannot read", w->rel);
			else
				walk_dir(w, fd, len + !!len + nlen);
		}
		w->rel[len] = '\0';
	}
	free_items(it, n);
	closedir(d);
	return;
nomem:
	fail(w, -ENOMEM, "cannot list", len ? w->rel : ".");
	w->stop = true;
	free_items(it, n);
	closedir(d);
}

/*
 * Visit BACKING's entries in manifest order; id gets its volume id (for the
 * header). 0, or the first error (after the walk went on past it).
 */
static int describe(const char *backing, char id[2 * EKMFS_VOLUME_ID_SIZE + 1],
		    entry_fn fn, void *arg)
{
	struct ekmfs_keyring kr = { 0 };
	struct ekmfs_volume vol;
	struct walk *w;
	int fd, rc;

	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", backing, strerror(errno));
		return -errno;
	}
	rc = ekmfs_volume_read(fd, &vol);
	if (rc == 0)
		rc = ekmfs_keyring_read(fd, &kr);
	if (rc < 0) {
		close(fd);
		fprintf(stderr, "ekmfs-admin: %s\n",
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		return rc;
	}
	ekmfs_hex(vol.volume_id, sizeof(vol.volume_id), id);
	w = calloc(1, sizeof(*w));
	if (!w) {
		close(fd);
		ekmfs_keyring_free(&kr);
		return -ENOMEM;
	}
	w->kr = &kr;
	w->fn = fn;
	w->arg = arg;
	w->progress = tool_progress_start(&(struct tool_progress_opts){
		.label = "backup-manifest", .unit = TOOL_BYTES, .show = TOOL_SHOW_TTY,
		.total = tool_progress_shown(TOOL_SHOW_TTY) ? admin_bytes_below(backing) : 0 });
	walk_dir(w, fd, 0);
	tool_progress_stop(w->progress);
	rc = w->rc;
	free(w);
	ekmfs_keyring_free(&kr);
	return rc;
}

/* ---- writing ---- */

static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\t')
			fputs("\\t", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void put_entry(FILE *f, const struct entry *e)
{
	fprintf(f, "%c\t%04o\t%u:%u\t%s\t%s\t%s\t%s\t", e->type, e->mode, e->uid, e->gid,
		e->size, e->sha, e->file_id, e->key);
	put_escaped(f, e->path);
	fputc('\n', f);
}

static int put_visited(const struct entry *e, void *arg)
{
	put_entry(arg, e);
	return 0;
}

/* Entries are written as the walk visits them, so memory does not grow with
 * the number of files. The volume id heads the manifest: it is read first,
 * and the header printed by the first entry (always ".", or nothing). */
struct writer {
	FILE *f;
	const char *id;
	bool started;
};

static void put_header(struct writer *wr)
{
	char now[32];

	ekmfs_time_rfc3339(time(NULL), now, sizeof(now));
	fprintf(wr->f, "%s\n# volume-id %s\n# written %s\n", MANIFEST_MAGIC, wr->id, now);
	fprintf(wr->f, "# type mode uid:gid size sha256 file-id key path\n");
	wr->started = true;
}

static int write_visited(const struct entry *e, void *arg)
{
	struct writer *wr = arg;

	if (!wr->started)
		put_header(wr);
	return put_visited(e, wr->f);
}

static int write_manifest(const char *backing, const char *out_path)
{
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1] = "";
	struct writer wr = { .id = id };
	FILE *f = stdout;
	int status = EXIT_FAIL;

	if (out_path && !(f = fopen(out_path, "we"))) {
		fprintf(stderr, "ekmfs-admin: cannot create %s: %s\n", out_path, strerror(errno));
		f = NULL;
		goto out;
	}
	wr.f = f;
	if (describe(backing, id, write_visited, &wr) < 0)
		goto out;
	if (!wr.started)
		put_header(&wr);
	if (fflush(f) != 0 || ferror(f)) {
		fprintf(stderr, "ekmfs-admin: writing the manifest: %s\n", strerror(errno));
		goto out;
	}
	status = EXIT_OK;
out:
	if (f && f != stdout && fclose(f) != 0 && status == EXIT_OK) {
		fprintf(stderr, "ekmfs-admin: writing %s: %s\n", out_path, strerror(errno));
		status = EXIT_FAIL;
	}
	/* No half manifest left under the name asked for. */
	if (status != EXIT_OK && out_path && f)
		(void)unlink(out_path);
	return status;
}

/* ---- reading a manifest ---- */

static int unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (*s != '\\') {
			*out++ = *s;
			continue;
		}
		s++;
		if (*s == '\\')
			*out++ = '\\';
		else if (*s == 't')
			*out++ = '\t';
		else if (*s == 'n')
			*out++ = '\n';
		else
			return -EINVAL;
	}
	*out = '\0';
	return 0;
}

static int copy_field(char *dst, size_t cap, const char *src)
{
	if (strlen(src) >= cap)
		return -EINVAL;
	strcpy(dst, src);
	return 0;
}

static int parse_line(char *line, struct entry *e)
{
	char *field[8], *p = line, *type;
	int n = 0;

	/* strtok would merge empty fields; split on every tab by hand. */
	while (n < 7) {
		char *tab = strchr(p, '\t');

		if (!tab)
			return -EINVAL;
		*tab = '\0';
		field[n++] = p;
		p = tab + 1;
	}
	field[7] = p;
	memset(e, 0, sizeof(*e));
	type = field[0];
	if (strlen(type) != 1 || !strchr("fdl", type[0]))
		return -EINVAL;
	e->type = type[0];
	if (sscanf(field[1], "%o", &e->mode) != 1 ||
	    sscanf(field[2], "%u:%u", &e->uid, &e->gid) != 2)
		return -EINVAL;
	if (copy_field(e->size, sizeof(e->size), field[3]) ||
	    copy_field(e->sha, sizeof(e->sha), field[4]) ||
	    copy_field(e->file_id, sizeof(e->file_id), field[5]) ||
	    copy_field(e->key, sizeof(e->key), field[6]) || unescape(field[7]) || !*field[7])
		return -EINVAL;
	e->path = strdup(field[7]);
	return e->path ? 0 : -ENOMEM;
}

/* A manifest read line by line: its entries come sorted by path. */
struct reader {
	const char *path;
	FILE *f;
	char *line;
	size_t cap;
	int lineno;
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];
	struct entry e;                 /* the current entry (e.path: NULL at the end) */
};

static void reader_close(struct reader *r)
{
	free(r->e.path);
	r->e.path = NULL;
	free(r->line);
	r->line = NULL;
	if (r->f)
		fclose(r->f);
	r->f = NULL;
}

/* The next entry into r->e (r->e.path NULL at the end). 0 or -errno. */
static int reader_next(struct reader *r)
{
	ssize_t len;
	char *prev = r->e.path;
	int rc = 0;

	r->e.path = NULL;
	while ((len = getline(&r->line, &r->cap, r->f)) >= 0) {
		r->lineno++;
		if (len > 0 && r->line[len - 1] == '\n')
			r->line[--len] = '\0';
		if (r->lineno == 1 && strcmp(r->line, MANIFEST_MAGIC) != 0) {
			fprintf(stderr, "ekmfs-admin: %s is not an ekmfs backup manifest "
				"(first line is not '%s')\n", r->path, MANIFEST_MAGIC);
			rc = -EINVAL;
			break;
		}
		if (r->line[0] == '#') {
			if (strncmp(r->line, "# volume-id ", 12) == 0)
				snprintf(r->id, sizeof(r->id), "%s", r->line + 12);
			continue;
		}
		if (!r->line[0])
			continue;
		rc = parse_line(r->line, &r->e);
		if (rc < 0) {
			fprintf(stderr, "ekmfs-admin: %s:%d: malformed manifest line\n", r->path,
				r->lineno);
		} else if (prev && strcmp(prev, r->e.path) >= 0) {
			fprintf(stderr, "ekmfs-admin: %s:%d: not sorted by path (a manifest is "
				"written sorted)\n", r->path, r->lineno);
			rc = -EINVAL;
		}
		break;
	}
	if (rc == 0 && r->lineno == 0) {
		fprintf(stderr, "ekmfs-admin: %s is empty\n", r->path);
		rc = -EINVAL;
	}
	free(prev);
	return rc;
}

/* Open the manifest and read up to its first entry (the header lines
 * before it give the volume id). */
static int reader_open(struct reader *r, const char *path)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
	r->f = fopen(path, "re");
	if (!r->f) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	return reader_next(r);
}

/* ---- the check ---- */

/* What differs between two entries of the same path, "" when nothing. */
static void differences(const struct entry *want, const struct entry *got, char *out,
			size_t len)
{
	out[0] = '\0';
#define DIFF(cond, what) \
	if (cond) \
		snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? ", " : "", what)
	DIFF(want->type != got->type, "type");
	DIFF(want->mode != got->mode, "mode");
	DIFF(want->uid != got->uid || want->gid != got->gid, "owner");
	DIFF(strcmp(want->size, got->size) != 0, "size");
	DIFF(strcmp(want->sha, got->sha) != 0, "content (sha256)");
	DIFF(strcmp(want->file_id, got->file_id) != 0, "file id");
	DIFF(strcmp(want->key, got->key) != 0, "key version");
#undef DIFF
}

static void print_path(const char *label, const char *path, const char *what)
{
	printf("%s ", label);
	put_escaped(stdout, path);
	if (what)
		printf(": %s", what);
	printf("\n");
}

/* The merge of the manifest's entries (want) with BACKING's (got, as the
 * walk visits them): both come sorted by path, so nothing is held. */
struct check {
	struct reader want;
	const char *backing;
	const char *got_id;             /* BACKING's volume id (read before any entry) */
	bool started;
	int rc;                         /* the manifest's first error */
	unsigned long long match, missing, differ, extra;
};

static int check_visited(const struct entry *got, void *arg)
{
	struct check *c = arg;
	char what[160];
	int cmp;

	if (!c->started) {
		c->started = true;
		if (c->want.id[0] && strcmp(c->want.id, c->got_id) != 0)
			printf("VOLUME %s has volume id %s, the manifest %s\n", c->backing,
			       c->got_id, c->want.id);
	}
	for (;;) {
		cmp = c->want.e.path ? strcmp(c->want.e.path, got->path) : 1;
		if (cmp >= 0)
			break;
		print_path("MISSING", c->want.e.path, NULL);
		c->missing++;
		c->rc = reader_next(&c->want);
		if (c->rc < 0)
			return 1;
	}
	if (cmp > 0) {
		print_path("EXTRA", got->path, NULL);
		c->extra++;
		return 0;
	}
	differences(&c->want.e, got, what, sizeof(what));
	if (what[0]) {
		print_path("DIFFERS", got->path, what);
		c->differ++;
	} else {
		c->match++;
	}
	c->rc = reader_next(&c->want);
	return c->rc < 0;
}

static int check_manifest(const char *manifest, const char *backing)
{
	char got_id[2 * EKMFS_VOLUME_ID_SIZE + 1] = "";
	struct check c = { .backing = backing, .got_id = got_id };
	int status = EXIT_FAIL;

	if (reader_open(&c.want, manifest) < 0)
		goto out;
	if (describe(backing, got_id, check_visited, &c) < 0 || c.rc < 0)
		goto out;
	while (c.want.e.path) {
		print_path("MISSING", c.want.e.path, NULL);
		c.missing++;
		if (reader_next(&c.want) < 0)
			goto out;
	}
	printf("check: %llu match, %llu missing, %llu differ, %llu extra\n", c.match,
	       c.missing, c.differ, c.extra);
	if (!c.missing && !c.differ && !c.extra &&
	    (!c.want.id[0] || strcmp(c.want.id, got_id) == 0))
		status = EXIT_OK;
out:
	reader_close(&c.want);
	return status;
}

/* ---- the command line ---- */

int admin_backup_manifest(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *check = NULL, *output = NULL;
	int opt;

	optind = 0;   /* glibc: 0 re-initialises getopt after main()'s own parse */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":o:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			check = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case ':':
			fprintf(stderr, "ekmfs-admin: backup-manifest: option '%s' needs an "
				"argument\n", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "ekmfs-admin: backup-manifest: unknown option '%s'\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1 || (check && output)) {
		fprintf(stderr, "ekmfs-admin: usage: backup-manifest [-o FILE] BACKING | "
			"backup-manifest --check MANIFEST BACKING\n");
		return EXIT_USAGE;
	}
	if (tool_refuse_mount_path(argv[optind], TOOL_BACKING))
		return EXIT_FAIL;
	return check ? check_manifest(check, argv[optind]) : write_manifest(argv[optind], output);
}
