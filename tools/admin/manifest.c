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
 * Divisions: entries and the walk; hashing and header fields; writing;
 * reading a manifest back; the check; the command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct entries {
	struct entry *e;
	size_t n, cap;
};

static int entries_add(struct entries *es, const struct entry *e)
{
	struct entry *grown = ekmfs_grow(es->e, &es->cap, es->n, sizeof(*grown), 64);

	if (!grown)
		return -ENOMEM;
	es->e = grown;
	es->e[es->n++] = *e;
	return 0;
}

static void entries_free(struct entries *es)
{
	for (size_t i = 0; i < es->n; i++)
		free(es->e[i].path);
	free(es->e);
	es->e = NULL;
	es->n = es->cap = 0;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

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

static struct {
	struct entries *es;
	const struct ekmfs_keyring *kr;
	size_t root_len;
	int rc;
	struct tool_progress *progress;  /* on a terminal: bytes of data files hashed */
} walk;

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *rel = path + walk.root_len;
	struct entry e;
	int fd, rc;

	(void)ftw;
	while (*rel == '/')
		rel++;
	if (!*rel)
		rel = ".";   /* BACKING itself: its mode and owner are the mount root's */
	/* The lock file holds no data; a restore recreates it. */
	if (strcmp(rel, EKMFS_META_DIR "/" EKMFS_LOCK_FILE) == 0)
		return 0;
	if (type == FTW_DNR || type == FTW_NS) {
		fprintf(stderr, "ekmfs-admin: cannot read %s\n", path);
		walk.rc = -EIO;
		return 0;
	}
	memset(&e, 0, sizeof(e));
	e.mode = st->st_mode & 07777;
	e.uid = st->st_uid;
	e.gid = st->st_gid;
	strcpy(e.sha, "-");
	strcpy(e.file_id, "-");
	strcpy(e.key, "-");
	strcpy(e.size, "-");
	if (S_ISDIR(st->st_mode)) {
		e.type = 'd';
	} else if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target));

		if (n < 0) {
			fprintf(stderr, "ekmfs-admin: cannot read link %s: %s\n", path,
				strerror(errno));
			walk.rc = -errno;
			return 0;
		}
		e.type = 'l';
		snprintf(e.size, sizeof(e.size), "%zd", n);
		sha256_text(target, (size_t)n, e.sha);
	} else if (S_ISREG(st->st_mode)) {
		e.type = 'f';
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", path, strerror(errno));
			walk.rc = -errno;
			return 0;
		}
		if (strncmp(rel, EKMFS_META_DIR "/", sizeof(EKMFS_META_DIR)) != 0) {
			header_fields(fd, st->st_size, walk.kr, &e);
			tool_progress_add(walk.progress, (uint64_t)st->st_size);
		}
		rc = lseek(fd, 0, SEEK_SET) < 0 ? -errno : sha256_fd(fd, e.sha);
		if (rc == 0) {
			struct stat now;

			/* The size of what was hashed, not of the earlier stat. */
			rc = fstat(fd, &now) < 0 ? -errno : 0;
			snprintf(e.size, sizeof(e.size), "%lld", (long long)now.st_size);
		}
		close(fd);
		if (rc < 0) {
			fprintf(stderr, "ekmfs-admin: cannot read %s: %s\n", path, strerror(-rc));
			walk.rc = rc;
			return 0;
		}
	} else {
		return 0; /* sockets, fifos, devices: not volume content */
	}
	e.path = strdup(rel);
	if (!e.path || entries_add(walk.es, &e) < 0) {
		free(e.path);
		walk.rc = -ENOMEM;
		return 1;
	}
	return 0;
}

/* Describe BACKING: its volume id (for the header) and its sorted entries. */
static int describe(const char *backing, char id[2 * EKMFS_VOLUME_ID_SIZE + 1],
		    struct entries *es)
{
	struct ekmfs_keyring kr = { 0 };
	struct ekmfs_volume vol;
	int fd, rc;

	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", backing, strerror(errno));
		return -errno;
	}
	rc = ekmfs_volume_read(fd, &vol);
	if (rc == 0)
		rc = ekmfs_keyring_read(fd, &kr);
	close(fd);
	if (rc < 0) {
		fprintf(stderr, "ekmfs-admin: %s\n",
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		return rc;
	}
	ekmfs_hex(vol.volume_id, sizeof(vol.volume_id), id);
	walk.es = es;
	walk.kr = &kr;
	walk.root_len = strlen(backing);
	walk.rc = 0;
	walk.progress = tool_progress_start(&(struct tool_progress_opts){
		.label = "backup-manifest", .unit = TOOL_BYTES, .show = TOOL_SHOW_TTY,
		.total = tool_progress_shown(TOOL_SHOW_TTY) ? admin_bytes_below(backing) : 0 });
	if (nftw(backing, walk_one, 32, FTW_PHYS) < 0 && !walk.rc)
		walk.rc = -errno;
	tool_progress_stop(walk.progress);
	walk.progress = NULL;
	ekmfs_keyring_free(&kr);
	if (walk.rc < 0)
		return walk.rc;
	qsort(es->e, es->n, sizeof(es->e[0]), by_path);
	return 0;
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

static int write_manifest(const char *backing, const char *out_path)
{
	struct entries es = { 0 };
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1], now[32];
	FILE *f = stdout;
	int status = EXIT_FAIL;

	if (describe(backing, id, &es) < 0)
		goto out;
	if (out_path && !(f = fopen(out_path, "we"))) {
		fprintf(stderr, "ekmfs-admin: cannot create %s: %s\n", out_path, strerror(errno));
		f = NULL;
		goto out;
	}
	ekmfs_time_rfc3339(time(NULL), now, sizeof(now));
	fprintf(f, "%s\n# volume-id %s\n# written %s\n", MANIFEST_MAGIC, id, now);
	fprintf(f, "# type mode uid:gid size sha256 file-id key path\n");
	for (size_t i = 0; i < es.n; i++)
		put_entry(f, &es.e[i]);
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
	entries_free(&es);
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

static int read_manifest(const char *path, char id[2 * EKMFS_VOLUME_ID_SIZE + 1],
			 struct entries *es)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;
	FILE *f = fopen(path, "re");

	id[0] = '\0';
	if (!f) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		struct entry e;

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (lineno == 1 && strcmp(line, MANIFEST_MAGIC) != 0) {
			fprintf(stderr, "ekmfs-admin: %s is not an ekmfs backup manifest "
				"(first line is not '%s')\n", path, MANIFEST_MAGIC);
			rc = -EINVAL;
			break;
		}
		if (line[0] == '#') {
			if (strncmp(line, "# volume-id ", 12) == 0)
				snprintf(id, 2 * EKMFS_VOLUME_ID_SIZE + 1, "%s", line + 12);
			continue;
		}
		if (!line[0])
			continue;
		rc = parse_line(line, &e);
		if (rc == 0)
			rc = entries_add(es, &e);
		if (rc < 0) {
			fprintf(stderr, "ekmfs-admin: %s:%d: malformed manifest line\n", path, lineno);
			break;
		}
	}
	if (lineno == 0 && rc == 0) {
		fprintf(stderr, "ekmfs-admin: %s is empty\n", path);
		rc = -EINVAL;
	}
	free(line);
	fclose(f);
	if (rc == 0)
		qsort(es->e, es->n, sizeof(es->e[0]), by_path);
	return rc;
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

static int check_manifest(const char *manifest, const char *backing)
{
	struct entries want = { 0 }, got = { 0 };
	char want_id[2 * EKMFS_VOLUME_ID_SIZE + 1], got_id[2 * EKMFS_VOLUME_ID_SIZE + 1];
	char what[160];
	unsigned long long match = 0, missing = 0, differ = 0, extra = 0;
	size_t i = 0, j = 0;
	int status = EXIT_FAIL;

	if (read_manifest(manifest, want_id, &want) < 0 || describe(backing, got_id, &got) < 0)
		goto out;
	if (want_id[0] && strcmp(want_id, got_id) != 0)
		printf("VOLUME %s has volume id %s, the manifest %s\n", backing, got_id, want_id);
	while (i < want.n || j < got.n) {
		int cmp = i == want.n ? 1 : j == got.n ? -1 : strcmp(want.e[i].path, got.e[j].path);

		if (cmp < 0) {
			print_path("MISSING", want.e[i++].path, NULL);
			missing++;
		} else if (cmp > 0) {
			print_path("EXTRA", got.e[j++].path, NULL);
			extra++;
		} else {
			differences(&want.e[i], &got.e[j], what, sizeof(what));
			if (what[0]) {
				print_path("DIFFERS", want.e[i].path, what);
				differ++;
			} else {
				match++;
			}
			i++;
			j++;
		}
	}
	printf("check: %llu match, %llu missing, %llu differ, %llu extra\n", match, missing,
	       differ, extra);
	if (!missing && !differ && !extra && (!want_id[0] || strcmp(want_id, got_id) == 0))
		status = EXIT_OK;
out:
	entries_free(&want);
	entries_free(&got);
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
