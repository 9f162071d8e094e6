/*
 * mounts.c - the ekmfs mounts of this system (include/ekmfs/mounts.h).
 *
 * A /proc/self/mountinfo line:
 *   36 35 0:45 / /mnt/vault rw,nosuid,nodev,relatime shared:1 - fuse.ekmfs /srv/vault rw,...
 *   (id parent major:minor root mountpoint options [optional...] - type source super-options)
 * Space, tab, newline and backslash in paths are octal-escaped (\040).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ekmfs/mounts.h"

/* Undo the octal escapes of the mount table, in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* One mountinfo line into *m: true for an ekmfs mount. */
static bool parse_line(char *line, struct ekmfs_mount *m)
{
	char *save = NULL, *tok, *root = NULL, *point = NULL, *type = NULL, *source = NULL;
	unsigned maj = 0, min = 0;
	int field = 0;
	bool after_dash = false;

	for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		field++;
		if (field == 3 && sscanf(tok, "%u:%u", &maj, &min) != 2)
			return false;
		else if (field == 4)
			root = tok;
		else if (field == 5)
			point = tok;
		else if (after_dash && !type)
			type = tok;
		else if (after_dash && !source)
			source = tok;
		else if (field > 6 && !after_dash && strcmp(tok, "-") == 0)
			after_dash = true;
	}
	if (!root || !point || !type || !source || strcmp(type, EKMFS_FUSE_TYPE) != 0)
		return false;
	unescape(root);
	unescape(point);
	unescape(source);
	snprintf(m->point, sizeof(m->point), "%s", point);
	/* A bind mount of a directory inside an ekmfs mount has that directory
	 * as its root. */
	if (strcmp(root, "/") == 0)
		snprintf(m->backing, sizeof(m->backing), "%s", source);
	else
		snprintf(m->backing, sizeof(m->backing), "%s%s", source, root);
	m->dev = makedev(maj, min);
	return true;
}

int ekmfs_mounts_each(int (*fn)(const struct ekmfs_mount *m, void *arg), void *arg)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	struct ekmfs_mount *m;
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;

	if (!f)
		return -errno;
	m = malloc(sizeof(*m));
	if (!m) {
		fclose(f);
		return -ENOMEM;
	}
	while (!ret && getline(&line, &cap, f) > 0)
		if (parse_line(line, m))
			ret = fn(m, arg);
	free(line);
	free(m);
	fclose(f);
	return ret;
}

/* ---- finding the mount of a path ---- */

struct find {
	dev_t dev;                  /* match by device (stat worked) ... */
	const char *text;           /* ... or by the path's text (it did not) */
	struct ekmfs_mount *out;
	bool found;
};

/* Is point the same as path, or a directory above it? */
static bool covers(const char *point, const char *path)
{
	size_t n = strlen(point);

	if (strcmp(point, "/") == 0)
		return path[0] == '/';
	return strncmp(point, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int find_one(const struct ekmfs_mount *m, void *arg)
{
	struct find *f = arg;

	/* The last match is the topmost mount. */
	if (f->text ? covers(m->point, f->text) : m->dev == f->dev) {
		*f->out = *m;
		f->found = true;
	}
	return 0;
}

/* path made absolute by its text alone (no lookups: the mount may hang or
 * be dead), with "." and duplicate or trailing slashes removed. */
static int lexical_abs(const char *path, char *out, size_t outlen)
{
	char cwd[PATH_MAX];
	size_t n = 0;
	const char *p;

	if (path[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		if ((size_t)snprintf(out, outlen, "%s/%s", cwd, path) >= outlen)
			return -ENAMETOOLONG;
	} else if ((size_t)snprintf(out, outlen, "%s", path) >= outlen) {
		return -ENAMETOOLONG;
	}
	for (p = out; *p; ) {
		size_t len;

		while (*p == '/')
			p++;
		len = strcspn(p, "/");
		if (len == 0 || (len == 1 && p[0] == '.')) {
			p += len;
			continue;
		}
		out[n++] = '/';
		memmove(out + n, p, len);
		n += len;
		p += len;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

int ekmfs_mount_of_path(const char *path, struct ekmfs_mount *m, char *inside,
			size_t insidelen)
{
	char real[PATH_MAX];
	struct find f = { .out = m };
	struct stat st;
	int ret;

	if (stat(path, &st) == 0) {
		f.dev = st.st_dev;
		if (!realpath(path, real))
			real[0] = '\0';
	} else if (errno == ENOTCONN) {
		/* The daemon is gone, the mount is still there. */
		ret = lexical_abs(path, real, sizeof(real));
		if (ret)
			return ret;
		f.text = real;
	} else {
		return 0;
	}
	ret = ekmfs_mounts_each(find_one, &f);
	if (ret < 0)
		return ret;
	if (!f.found)
		return 0;
	if (inside) {
		size_t n = strcmp(m->point, "/") == 0 ? 0 : strlen(m->point);

		snprintf(inside, insidelen, "%s", real[0] && covers(m->point, real) ?
			 real + n : "");
	}
	return 1;
}

struct at {
	const char *point;
	struct ekmfs_mount *out;
	bool found;
};

static int at_one(const struct ekmfs_mount *m, void *arg)
{
	struct at *a = arg;

	if (strcmp(m->point, a->point) == 0) {
		*a->out = *m;
		a->found = true;
	}
	return 0;
}

int ekmfs_mount_at(const char *point, struct ekmfs_mount *m)
{
	struct at a = { .point = point, .out = m };
	int ret = ekmfs_mounts_each(at_one, &a);

	return ret < 0 ? ret : a.found;
}
