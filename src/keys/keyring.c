/*
 * keyring.c - volume metadata under BACKING/.ekmfs/ (include/ekmfs/keyring.h).
 *
 * Owns: the JSON of volume.json and keyring.json (docs/FORMAT.md, "Volume
 * metadata"), their strict parsing, their atomic durable replacement and the
 * advisory lock that serializes writers.
 *
 * Divisions:
 *   1. paths, bounded file reading, atomic replacement
 *   2. strict JSON field access (every failure names the file and field)
 *   3. the volume descriptor
 *   4. the keyring: parse, serialize, read, write, update, stamp
 *   5. in-memory keyring helpers
 *   6. the meta lock
 *
 * Generation: ekmfs_keyring_write() stores kr->generation exactly as given.
 * ekmfs_keyring_update(), under the exclusive meta lock, reads the keyring,
 * lets the caller change it, increments generation and writes it, so every
 * successful write carries a generation one above the one it replaced (1
 * for a new volume).
 *
 * Nothing here knows about providers: a wrapped KEK is an opaque blob.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/format.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

#define META_FILE_MAX (16u << 20)   /* larger metadata is refused unread */
#define VOLUME_FORMAT "ekmfs-volume"
#define KEYRING_FORMAT "ekmfs-keyring"
#define MAX_TENANTS 1024
#define MAX_KEKS 4096               /* per tenant */
#define JSON_DEPTH 16

/* ---- 1. paths, reading, atomic replacement ---- */

/* "BACKING/.ekmfs/name" for messages, from the fd's /proc link. */
static void meta_path(int backing_fd, const char *name, char *out, size_t outlen)
{
	char link[64], dir[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", backing_fd);
	n = readlink(link, dir, sizeof(dir) - 1);
	if (n <= 0) {
		snprintf(out, outlen, "%s/%s", EKMFS_META_DIR, name);
		return;
	}
	dir[n] = '\0';
	snprintf(out, outlen, "%s/%s/%s", strcmp(dir, "/") ? dir : "", EKMFS_META_DIR, name);
}

/* Read .ekmfs/name whole into a NUL-terminated malloc'd buffer. */
static int read_meta(int backing_fd, const char *name, const char *path,
		     char **out, size_t *out_len);

int ekmfs_meta_read(int backing_fd, const char *name, char **text, size_t *len)
{
	char path[PATH_MAX + 64];

	meta_path(backing_fd, name, path, sizeof(path));
	return read_meta(backing_fd, name, path, text, len);
}

static int read_meta(int backing_fd, const char *name, const char *path,
		     char **out, size_t *out_len)
{
	char rel[64];
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd, ret = 0;

	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, name);
	fd = openat(backing_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT)
			ekmfs_seterr("cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EBADMSG;
		ekmfs_seterr("%s is not a regular file", path);
		goto out;
	}
	if (st.st_size > META_FILE_MAX) {
		ret = -EBADMSG;
		ekmfs_seterr("%s is %lld bytes, more than the %u allowed", path,
			     (long long)st.st_size, META_FILE_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	n = ekmfs_read_full(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		ret = (int)n;
		ekmfs_seterr("cannot read %s: %s", path, strerror(-ret));
		goto out;
	}
	buf[n] = '\0';
	if ((size_t)n != strlen(buf)) {
		ret = -EBADMSG;
		ekmfs_seterr("%s contains a NUL byte", path);
		goto out;
	}
	*out = buf;
	*out_len = (size_t)n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

static int fsync_meta_dir(int backing_fd, const char *path)
{
	int dfd, ret = 0;

	dfd = openat(backing_fd, EKMFS_META_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || ekmfs_io->fsync(dfd) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot sync the directory of %s: %s", path, strerror(errno));
	}
	if (dfd >= 0)
		close(dfd);
	return ret;
}

/* Replace .ekmfs/name with text: write name.tmp (fresh, 0600), fsync, rename
 * over name, fsync the directory. A crash leaves either the old or the new
 * file, plus at worst a stale name.tmp that the next write removes. */
static int replace_meta(int backing_fd, const char *name, const char *text)
{
	char rel[64], tmp[64], path[PATH_MAX + 64];
	int fd = -1, ret;

	meta_path(backing_fd, name, path, sizeof(path));
	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, name);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", EKMFS_META_DIR, name);

	if (ekmfs_io->unlinkat(backing_fd, tmp, 0) < 0 && errno != ENOENT) {
		ret = -errno;
		ekmfs_seterr("cannot remove stale %s.tmp: %s", path, strerror(errno));
		return ret;
	}
	fd = ekmfs_io->openat(backing_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			      0600);
	if (fd < 0) {
		ret = -errno;
		ekmfs_seterr("cannot create %s.tmp: %s", path, strerror(errno));
		return ret;
	}
	ret = ekmfs_write_full(fd, text, strlen(text), 0);
	if (ret < 0) {
		ekmfs_seterr("cannot write %s.tmp: %s", path, strerror(-ret));
		goto out_unlink;
	}
	if (ekmfs_io->fsync(fd) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot sync %s.tmp: %s", path, strerror(errno));
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		ekmfs_seterr("cannot write %s.tmp: %s", path, strerror(errno));
		goto out_unlink;
	}
	fd = -1;
	if (ekmfs_io->renameat2(backing_fd, tmp, backing_fd, rel, 0) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot rename %s.tmp to %s: %s", path, name, strerror(errno));
		goto out_unlink;
	}
	return fsync_meta_dir(backing_fd, path);

out_unlink:
	if (fd >= 0)
		close(fd);
	ekmfs_io->unlinkat(backing_fd, tmp, 0);
	return ret;
}

int ekmfs_meta_replace(int backing_fd, const char *name, const char *text)
{
	return replace_meta(backing_fd, name, text);
}

/* ---- 2. strict JSON access ---- */

/* Parse context: the file for messages, and the first error. */
struct jctx {
	const char *path;
	int err;
};

static int jfail(struct jctx *c, int err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int jfail(struct jctx *c, int err, const char *field, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!c->err) {
		c->err = err;
		ekmfs_seterr("%s: field '%s': %s", c->path, field, why);
	}
	return err;
}

/* Parse text as exactly one JSON value (trailing whitespace only). */
static int parse_json(struct jctx *c, const char *text, size_t len, json_object **out)
{
	json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	json_object *obj;
	size_t end;
	int ret = 0;

	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		ret = -EBADMSG;
		ekmfs_seterr("%s: not valid JSON: %s", c->path,
			     e == json_tokener_continue ? "unexpected end of file"
							 : json_tokener_error_desc(e));
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!strchr(" \t\r\n", text[end])) {
			ret = -EBADMSG;
			ekmfs_seterr("%s: not valid JSON: data after the document at byte %zu",
				     c->path, end);
			goto out;
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		ret = -EBADMSG;
		ekmfs_seterr("%s: not a JSON object", c->path);
		goto out;
	}
	*out = obj;
	obj = NULL;
out:
	json_object_put(obj);
	json_tokener_free(tok);
	return ret;
}

/* Every key of obj must be one of allowed (NULL-terminated). */
static int check_keys(struct jctx *c, json_object *obj, const char *where,
		      const char *const *allowed)
{
	json_object_object_foreach(obj, key, val) {
		const char *const *a;
		(void)val;
		for (a = allowed; *a; a++)
			if (strcmp(key, *a) == 0)
				break;
		if (!*a) {
			char field[160];
			snprintf(field, sizeof(field), "%s%s", where, key);
			return jfail(c, -EBADMSG, field, "unknown field");
		}
	}
	return 0;
}

static json_object *get_typed(struct jctx *c, json_object *obj, const char *where,
			      const char *key, json_type type, const char *type_name)
{
	json_object *val;
	char field[160];

	snprintf(field, sizeof(field), "%s%s", where, key);
	if (!json_object_object_get_ex(obj, key, &val)) {
		jfail(c, -EBADMSG, field, "missing");
		return NULL;
	}
	if (!json_object_is_type(val, type)) {
		jfail(c, -EBADMSG, field, "must be %s", type_name);
		return NULL;
	}
	return val;
}

static int get_uint(struct jctx *c, json_object *obj, const char *where, const char *key,
		    uint64_t min, uint64_t max, uint64_t *out)
{
	json_object *val = get_typed(c, obj, where, key, json_type_int, "an integer");
	char field[160];
	int64_t n;

	if (!val)
		return c->err;
	n = json_object_get_int64(val);
	/* json-c saturates out-of-range numbers: refuse anything near the edge. */
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max || n == INT64_MAX) {
		snprintf(field, sizeof(field), "%s%s", where, key);
		return jfail(c, -EBADMSG, field, "%lld is out of range %llu..%llu",
			     (long long)n, (unsigned long long)min, (unsigned long long)max);
	}
	*out = (uint64_t)n;
	return 0;
}

/* A string field copied into out (capacity outlen); empty allowed if asked. */
static int get_str(struct jctx *c, json_object *obj, const char *where, const char *key,
		   bool empty_ok, char *out, size_t outlen)
{
	json_object *val = get_typed(c, obj, where, key, json_type_string, "a string");
	char field[160];
	const char *s;
	size_t len;

	if (!val)
		return c->err;
	s = json_object_get_string(val);
	len = (size_t)json_object_get_string_len(val);
	snprintf(field, sizeof(field), "%s%s", where, key);
	if (len != strlen(s))
		return jfail(c, -EBADMSG, field, "contains a NUL character");
	if (len >= outlen)
		return jfail(c, -EBADMSG, field, "longer than %zu bytes", outlen - 1);
	if (len == 0 && !empty_ok)
		return jfail(c, -EBADMSG, field, "must not be empty");
	memcpy(out, s, len + 1);
	return 0;
}

static int get_time(struct jctx *c, json_object *obj, const char *where, const char *key,
		    time_t *out)
{
	char s[64], field[160];

	if (get_str(c, obj, where, key, false, s, sizeof(s)))
		return c->err;
	if (ekmfs_time_parse_rfc3339(s, out) < 0) {
		snprintf(field, sizeof(field), "%s%s", where, key);
		return jfail(c, -EBADMSG, field, "'%s' is not an RFC 3339 UTC time", s);
	}
	return 0;
}

/* "format" and "version" say whose document this is: a mismatch is -EPROTO.
 * Versions 1..max are read; *version (may be NULL) receives it. */
static int check_format(struct jctx *c, json_object *obj, const char *format, uint64_t max,
			uint64_t *version)
{
	char s[64];
	uint64_t v;

	if (get_str(c, obj, "", "format", false, s, sizeof(s)))
		return c->err;
	if (strcmp(s, format) != 0)
		return jfail(c, -EPROTO, "format", "'%s' is not '%s'", s, format);
	if (get_uint(c, obj, "", "version", 0, UINT32_MAX, &v))
		return c->err;
	if (v < 1 || v > max)
		return jfail(c, -EPROTO, "version",
			     "version %llu is not supported (this ekmfs reads 1 to %llu)",
			     (unsigned long long)v, (unsigned long long)max);
	if (version)
		*version = v;
	return 0;
}

static int add_str(json_object *obj, const char *key, const char *val)
{
	json_object *s = json_object_new_string(val);
	if (!s || json_object_object_add(obj, key, s) < 0) {
		json_object_put(s);
		return -ENOMEM;
	}
	return 0;
}

static int add_int(json_object *obj, const char *key, int64_t val)
{
	json_object *n = json_object_new_int64(val);
	if (!n || json_object_object_add(obj, key, n) < 0) {
		json_object_put(n);
		return -ENOMEM;
	}
	return 0;
}

static int add_time(json_object *obj, const char *key, time_t t)
{
	char s[64];

	ekmfs_time_rfc3339(t, s, sizeof(s));
	return add_str(obj, key, s);
}

static int write_json(int backing_fd, const char *name, json_object *doc)
{
	const char *text;
	char *line;
	int ret;

	text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
						   JSON_C_TO_STRING_SPACED |
						   JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return -ENOMEM;
	if (asprintf(&line, "%s\n", text) < 0)
		return -ENOMEM;
	ret = replace_meta(backing_fd, name, line);
	free(line);
	return ret;
}

/* ---- 3. the volume descriptor ---- */

int ekmfs_volume_control_path(const char *control_dir, const struct ekmfs_volume *v,
			      char *out, size_t len)
{
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];

	ekmfs_hex(v->volume_id, EKMFS_VOLUME_ID_SIZE, id);
	if ((size_t)snprintf(out, len, "%s/%s.sock", control_dir, id) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static const char *const volume_keys[] = {
	"format", "version", "volume_id", "block_size", "created", NULL
};

int ekmfs_volume_read(int backing_fd, struct ekmfs_volume *v)
{
	char path[PATH_MAX + 64], hex[2 * EKMFS_VOLUME_ID_SIZE + 2];
	struct jctx c = { .path = path };
	json_object *doc = NULL;
	char *text = NULL;
	size_t len;
	uint64_t n;
	int ret;

	memset(v, 0, sizeof(*v));
	meta_path(backing_fd, EKMFS_VOLUME_FILE, path, sizeof(path));
	ret = read_meta(backing_fd, EKMFS_VOLUME_FILE, path, &text, &len);
	if (ret == -ENOENT)
		ekmfs_seterr("not an ekmfs volume: %s does not exist", path);
	if (ret)
		return ret;
	ret = parse_json(&c, text, len, &doc);
	if (ret)
		goto out;
	if (check_format(&c, doc, VOLUME_FORMAT, EKMFS_VOLUME_VERSION, &n) ||
	    check_keys(&c, doc, "", volume_keys) ||
	    get_str(&c, doc, "", "volume_id", false, hex, sizeof(hex)))
		goto out_err;
	v->format_version = (uint32_t)n;
	if (strlen(hex) != 2 * EKMFS_VOLUME_ID_SIZE ||
	    ekmfs_unhex(hex, v->volume_id, EKMFS_VOLUME_ID_SIZE) < 0) {
		jfail(&c, -EBADMSG, "volume_id", "must be %d hex digits",
		      2 * EKMFS_VOLUME_ID_SIZE);
		goto out_err;
	}
	if (get_uint(&c, doc, "", "block_size", 0, UINT32_MAX, &n))
		goto out_err;
	if (n != EKMFS_BLOCK_SIZE) {
		jfail(&c, -EPROTO, "block_size", "%llu is not supported (only %d)",
		      (unsigned long long)n, EKMFS_BLOCK_SIZE);
		goto out_err;
	}
	v->block_size = (uint32_t)n;
	if (get_time(&c, doc, "", "created", &v->created))
		goto out_err;
	goto out;
out_err:
	ret = c.err;
out:
	json_object_put(doc);
	free(text);
	return ret;
}

static int volume_serialize(const struct ekmfs_volume *v, json_object **out)
{
	char hex[2 * EKMFS_VOLUME_ID_SIZE + 1];
	json_object *doc = json_object_new_object();

	if (!doc)
		return -ENOMEM;
	ekmfs_hex(v->volume_id, EKMFS_VOLUME_ID_SIZE, hex);
	if (add_str(doc, "format", VOLUME_FORMAT) || add_int(doc, "version", v->format_version) ||
	    add_str(doc, "volume_id", hex) || add_int(doc, "block_size", v->block_size) ||
	    add_time(doc, "created", v->created)) {
		json_object_put(doc);
		return -ENOMEM;
	}
	*out = doc;
	return 0;
}

int ekmfs_volume_rewrite(int backing_fd, const struct ekmfs_volume *v)
{
	json_object *doc = NULL;
	int ret = volume_serialize(v, &doc);

	if (ret == 0)
		ret = write_json(backing_fd, EKMFS_VOLUME_FILE, doc);
	json_object_put(doc);
	return ret;
}

int ekmfs_volume_write_new(int backing_fd, const struct ekmfs_volume *v)
{
	char path[PATH_MAX + 64];
	json_object *doc = NULL;
	int ret;

	meta_path(backing_fd, "", path, sizeof(path));
	path[strlen(path) - 1] = '\0'; /* "BACKING/.ekmfs" */
	if (ekmfs_io->mkdirat(backing_fd, EKMFS_META_DIR, 0700) < 0) {
		ret = -errno;
		if (ret == -EEXIST)
			ekmfs_seterr("%s exists: already an ekmfs volume", path);
		else
			ekmfs_seterr("cannot create %s: %s", path, strerror(errno));
		return ret;
	}
	ret = volume_serialize(v, &doc);
	if (ret)
		goto out_rmdir;
	ret = write_json(backing_fd, EKMFS_VOLUME_FILE, doc);
	if (ret)
		goto out_rmdir;
	/* Make the new .ekmfs entry itself durable. */
	if (ekmfs_io->fsync(backing_fd) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot sync the backing directory: %s", strerror(errno));
		ekmfs_io->unlinkat(backing_fd, EKMFS_META_DIR "/" EKMFS_VOLUME_FILE, 0);
		goto out_rmdir;
	}
	json_object_put(doc);
	return 0;

out_rmdir:
	json_object_put(doc);
	ekmfs_io->unlinkat(backing_fd, EKMFS_META_DIR, AT_REMOVEDIR);
	return ret;
}

/* ---- 4. the keyring ---- */

static const char *const keyring_keys[] = {
	"format", "version", "generation", "tenants", NULL
};
static const char *const tenant_keys[] = {
	"name", "id", "provider", "kdf", "current_version", "last_rotation",
	"last_cmk_change", "keks",
	"enabled",                      /* optional: false once BYOK is switched off */
	NULL
};
static const char *const kek_keys[] = {
	"version", "state", "created", "cmk_ref", "cmk_version", "wrapped",
	"mac",                          /* optional: only binding-MAC providers */
	NULL
};

static const char *const state_names[] = {
	[EKMFS_KEK_ACTIVE] = "active",
	[EKMFS_KEK_RETIRED] = "retired",
	[EKMFS_KEK_DESTROYED] = "destroyed",
};

const char *ekmfs_kek_state_name(enum ekmfs_kek_state s)
{
	if ((unsigned)s < EKMFS_ARRAY_SIZE(state_names))
		return state_names[s];
	return "unknown";
}

static bool valid_name(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static int parse_kek(struct jctx *c, json_object *obj, const char *where,
		     struct ekmfs_kek_record *k)
{
	char state[16], field[160];
	char *b64 = NULL;
	uint64_t n;
	long dec;
	size_t i;

	if (!json_object_is_type(obj, json_type_object))
		return jfail(c, -EBADMSG, where, "must be an object");
	if (check_keys(c, obj, where, kek_keys) ||
	    get_uint(c, obj, where, "version", 1, UINT32_MAX, &n))
		return c->err;
	k->version = (uint32_t)n;
	if (get_str(c, obj, where, "state", false, state, sizeof(state)))
		return c->err;
	for (i = 0; i < EKMFS_ARRAY_SIZE(state_names); i++)
		if (strcmp(state, state_names[i]) == 0)
			break;
	snprintf(field, sizeof(field), "%sstate", where);
	if (i == EKMFS_ARRAY_SIZE(state_names))
		return jfail(c, -EBADMSG, field,
			     "'%s' is not active, retired or destroyed", state);
	k->state = (enum ekmfs_kek_state)i;
	if (get_time(c, obj, where, "created", &k->created) ||
	    get_str(c, obj, where, "cmk_ref", true, k->wrapped.cmk_ref,
		    sizeof(k->wrapped.cmk_ref)) ||
	    get_str(c, obj, where, "cmk_version", true, k->wrapped.cmk_version,
		    sizeof(k->wrapped.cmk_version)))
		return c->err;

	b64 = malloc(4 * ((EKMFS_WRAPPED_MAX + 2) / 3) + 1);
	if (!b64)
		return -ENOMEM;
	snprintf(field, sizeof(field), "%swrapped", where);
	if (get_str(c, obj, where, "wrapped", true, b64, 4 * ((EKMFS_WRAPPED_MAX + 2) / 3) + 1))
		goto out;
	if (k->state == EKMFS_KEK_DESTROYED) {
		if (b64[0])
			jfail(c, -EBADMSG, field, "a destroyed KEK keeps no wrapped key");
		k->wrapped.len = 0;
		goto out;
	}
	if (!b64[0]) {
		jfail(c, -EBADMSG, field, "must not be empty for a %s KEK", state);
		goto out;
	}
	dec = ekmfs_b64_decode(b64, k->wrapped.blob, sizeof(k->wrapped.blob));
	if (dec <= 0) {
		jfail(c, -EBADMSG, field, "not valid base64");
		goto out;
	}
	k->wrapped.len = (size_t)dec;
	if (json_object_object_get_ex(obj, "mac", NULL)) {
		snprintf(field, sizeof(field), "%smac", where);
		if (get_str(c, obj, where, "mac", false, b64, 4 * ((EKMFS_WRAPPED_MAX + 2) / 3) + 1))
			goto out;
		dec = ekmfs_b64_decode(b64, k->wrapped.mac, sizeof(k->wrapped.mac));
		if (dec != EKMFS_WRAP_MAC_SIZE) {
			jfail(c, -EBADMSG, field, "must be base64 of %d bytes", EKMFS_WRAP_MAC_SIZE);
			goto out;
		}
		k->wrapped.mac_len = (size_t)dec;
	}
out:
	free(b64);
	return c->err;
}

static int parse_tenant(struct jctx *c, json_object *obj, const char *where,
			struct ekmfs_tenant_record *t)
{
	char kwhere[128], field[160];
	json_object *keks;
	uint64_t n;
	size_t count;

	if (!json_object_is_type(obj, json_type_object))
		return jfail(c, -EBADMSG, where, "must be an object");
	if (check_keys(c, obj, where, tenant_keys) ||
	    get_str(c, obj, where, "name", false, t->name, sizeof(t->name)))
		return c->err;
	snprintf(field, sizeof(field), "%sname", where);
	if (!valid_name(t->name))
		return jfail(c, -EBADMSG, field, "'%s' may hold only letters, digits, '-', "
			     "'_' and '.'", t->name);
	if (get_uint(c, obj, where, "id", 1, UINT32_MAX, &n))
		return c->err;
	t->id = (uint32_t)n;
	if (get_str(c, obj, where, "provider", false, t->provider, sizeof(t->provider)) ||
	    get_str(c, obj, where, "kdf", true, t->kdf, sizeof(t->kdf)) ||
	    get_uint(c, obj, where, "current_version", 1, UINT32_MAX, &n))
		return c->err;
	t->current_version = (uint32_t)n;
	if (get_time(c, obj, where, "last_rotation", &t->last_rotation) ||
	    get_time(c, obj, where, "last_cmk_change", &t->last_cmk_change))
		return c->err;
	{
		json_object *en;

		if (json_object_object_get_ex(obj, "enabled", &en)) {
			snprintf(field, sizeof(field), "%senabled", where);
			if (!json_object_is_type(en, json_type_boolean))
				return jfail(c, -EBADMSG, field, "must be true or false");
			t->disabled = !json_object_get_boolean(en);
		}
	}
	keks = get_typed(c, obj, where, "keks", json_type_array, "an array");
	if (!keks)
		return c->err;
	count = json_object_array_length(keks);
	snprintf(field, sizeof(field), "%skeks", where);
	if (count == 0 || count > MAX_KEKS)
		return jfail(c, -EBADMSG, field, "must hold 1..%d KEK records", MAX_KEKS);
	t->keks = calloc(count, sizeof(*t->keks));
	if (!t->keks)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		snprintf(kwhere, sizeof(kwhere), "%skeks[%zu].", where, i);
		if (parse_kek(c, json_object_array_get_idx(keks, i), kwhere, &t->keks[i]))
			return c->err ? c->err : -ENOMEM;
		t->nkeks = i + 1;
		for (size_t j = 0; j < i; j++) {
			if (t->keks[j].version == t->keks[i].version) {
				snprintf(field, sizeof(field), "%sversion", kwhere);
				return jfail(c, -EBADMSG, field, "duplicate KEK version %u",
					     t->keks[i].version);
			}
		}
	}
	snprintf(field, sizeof(field), "%scurrent_version", where);
	struct ekmfs_kek_record *cur = ekmfs_tenant_kek(t, t->current_version);
	if (!cur)
		return jfail(c, -EBADMSG, field, "KEK version %u is not in keks",
			     t->current_version);
	if (cur->state != EKMFS_KEK_ACTIVE)
		return jfail(c, -EBADMSG, field, "KEK version %u is %s, not active",
			     t->current_version, ekmfs_kek_state_name(cur->state));
	return 0;
}

static int keyring_parse(struct jctx *c, json_object *doc, struct ekmfs_keyring *kr)
{
	char where[64], field[160];
	json_object *tenants;
	size_t count;

	if (check_format(c, doc, KEYRING_FORMAT, 1, NULL) || check_keys(c, doc, "", keyring_keys) ||
	    get_uint(c, doc, "", "generation", 0, INT64_MAX - 1, &kr->generation))
		return c->err;
	tenants = get_typed(c, doc, "", "tenants", json_type_array, "an array");
	if (!tenants)
		return c->err;
	count = json_object_array_length(tenants);
	if (count == 0 || count > MAX_TENANTS)
		return jfail(c, -EBADMSG, "tenants", "must hold 1..%d tenants", MAX_TENANTS);
	kr->tenants = calloc(count, sizeof(*kr->tenants));
	if (!kr->tenants)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		struct ekmfs_tenant_record *t = &kr->tenants[i];
		int ret;

		snprintf(where, sizeof(where), "tenants[%zu].", i);
		kr->ntenants = i + 1;
		ret = parse_tenant(c, json_object_array_get_idx(tenants, i), where, t);
		if (ret)
			return ret;
		for (size_t j = 0; j < i; j++) {
			if (kr->tenants[j].id == t->id) {
				snprintf(field, sizeof(field), "%sid", where);
				return jfail(c, -EBADMSG, field, "duplicate tenant id %u", t->id);
			}
			if (strcmp(kr->tenants[j].name, t->name) == 0) {
				snprintf(field, sizeof(field), "%sname", where);
				return jfail(c, -EBADMSG, field, "duplicate tenant '%s'", t->name);
			}
		}
	}
	return 0;
}

int ekmfs_keyring_read(int backing_fd, struct ekmfs_keyring *kr)
{
	char path[PATH_MAX + 64];
	struct jctx c = { .path = path };
	json_object *doc = NULL;
	char *text = NULL;
	size_t len;
	int ret;

	memset(kr, 0, sizeof(*kr));
	meta_path(backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
	ret = read_meta(backing_fd, EKMFS_KEYRING_FILE, path, &text, &len);
	if (ret == -ENOENT)
		ekmfs_seterr("%s is missing", path);
	if (ret)
		return ret;
	ret = parse_json(&c, text, len, &doc);
	if (!ret)
		ret = keyring_parse(&c, doc, kr);
	if (ret)
		ekmfs_keyring_free(kr);
	json_object_put(doc);
	free(text);
	return ret;
}

static json_object *kek_serialize(const struct ekmfs_kek_record *k)
{
	json_object *o = json_object_new_object();
	char *b64;
	int ret;

	if (!o)
		return NULL;
	b64 = malloc(4 * ((k->wrapped.len + 2) / 3) + 1);
	if (!b64)
		goto fail;
	ekmfs_b64_encode(k->wrapped.blob, k->wrapped.len, b64);
	ret = add_int(o, "version", k->version) ||
	      add_str(o, "state", ekmfs_kek_state_name(k->state)) ||
	      add_time(o, "created", k->created) ||
	      add_str(o, "cmk_ref", k->wrapped.cmk_ref) ||
	      add_str(o, "cmk_version", k->wrapped.cmk_version) ||
	      add_str(o, "wrapped", k->state == EKMFS_KEK_DESTROYED ? "" : b64);
	if (!ret && k->wrapped.mac_len && k->state != EKMFS_KEK_DESTROYED) {
		char mac[4 * ((EKMFS_WRAP_MAC_SIZE + 2) / 3) + 1];
		ekmfs_b64_encode(k->wrapped.mac, k->wrapped.mac_len, mac);
		ret = add_str(o, "mac", mac);
	}
	free(b64);
	if (ret)
		goto fail;
	return o;
fail:
	json_object_put(o);
	return NULL;
}

static json_object *tenant_serialize(const struct ekmfs_tenant_record *t)
{
	json_object *o = json_object_new_object(), *keks = json_object_new_array();

	if (!o || !keks)
		goto fail;
	for (size_t i = 0; i < t->nkeks; i++) {
		json_object *k = kek_serialize(&t->keks[i]);
		if (!k || json_object_array_add(keks, k) < 0) {
			json_object_put(k);
			goto fail;
		}
	}
	if (add_str(o, "name", t->name) || add_int(o, "id", t->id) ||
	    add_str(o, "provider", t->provider) || add_str(o, "kdf", t->kdf) ||
	    add_int(o, "current_version", t->current_version) ||
	    add_time(o, "last_rotation", t->last_rotation) ||
	    add_time(o, "last_cmk_change", t->last_cmk_change))
		goto fail;
	if (t->disabled &&
	    json_object_object_add(o, "enabled", json_object_new_boolean(0)) < 0)
		goto fail;
	if (json_object_object_add(o, "keks", keks) < 0)
		goto fail;
	return o;
fail:
	json_object_put(keks);
	json_object_put(o);
	return NULL;
}

int ekmfs_keyring_write(int backing_fd, const struct ekmfs_keyring *kr)
{
	json_object *doc = json_object_new_object(), *tenants = json_object_new_array();
	int ret = -ENOMEM;

	if (!doc || !tenants)
		goto out;
	for (size_t i = 0; i < kr->ntenants; i++) {
		json_object *t = tenant_serialize(&kr->tenants[i]);
		if (!t || json_object_array_add(tenants, t) < 0) {
			json_object_put(t);
			goto out;
		}
	}
	if (add_str(doc, "format", KEYRING_FORMAT) || add_int(doc, "version", 1) ||
	    add_int(doc, "generation", (int64_t)kr->generation))
		goto out;
	if (json_object_object_add(doc, "tenants", tenants) < 0)
		goto out;
	tenants = NULL;
	ret = write_json(backing_fd, EKMFS_KEYRING_FILE, doc);
out:
	json_object_put(tenants);
	json_object_put(doc);
	return ret;
}

int ekmfs_keyring_stamp(int backing_fd, uint64_t stamp[3])
{
	struct stat st;

	if (fstatat(backing_fd, EKMFS_META_DIR "/" EKMFS_KEYRING_FILE, &st,
		    AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	stamp[0] = (uint64_t)st.st_ino;
	stamp[1] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	stamp[2] = (uint64_t)st.st_size;
	return 0;
}

int ekmfs_keyring_update(int backing_fd, ekmfs_keyring_edit_fn edit, void *arg, bool write,
			 struct ekmfs_keyring *keep)
{
	struct ekmfs_keyring fresh = { 0 };
	int ret, edited;

	ret = ekmfs_keyring_read(backing_fd, &fresh);
	if (ret)
		goto out;
	ret = edited = edit(&fresh, arg);
	if (edited <= 0 || !write)
		goto out;
	fresh.generation++;
	ret = ekmfs_keyring_write(backing_fd, &fresh);
	if (ret)
		goto out;
	ret = edited;
	if (keep) {
		*keep = fresh;
		memset(&fresh, 0, sizeof(fresh));
	}
out:
	ekmfs_keyring_free(&fresh);
	return ret;
}

/* ---- 5. in-memory helpers ---- */

void ekmfs_keyring_free(struct ekmfs_keyring *kr)
{
	if (!kr)
		return;
	for (size_t i = 0; i < kr->ntenants; i++)
		free(kr->tenants[i].keks);
	free(kr->tenants);
	memset(kr, 0, sizeof(*kr));
}

struct ekmfs_tenant_record *ekmfs_keyring_tenant(struct ekmfs_keyring *kr, const char *name)
{
	for (size_t i = 0; i < kr->ntenants; i++)
		if (strcmp(kr->tenants[i].name, name) == 0)
			return &kr->tenants[i];
	return NULL;
}

struct ekmfs_tenant_record *ekmfs_keyring_tenant_by_id(struct ekmfs_keyring *kr, uint32_t id)
{
	for (size_t i = 0; i < kr->ntenants; i++)
		if (kr->tenants[i].id == id)
			return &kr->tenants[i];
	return NULL;
}

struct ekmfs_kek_record *ekmfs_tenant_kek(struct ekmfs_tenant_record *t, uint32_t version)
{
	for (size_t i = 0; i < t->nkeks; i++)
		if (t->keks[i].version == version)
			return &t->keks[i];
	return NULL;
}

/* The tenant's first KEK (the lowest version: records are never removed,
 * a destroyed one keeps its creation time). */
static const struct ekmfs_kek_record *first_kek(const struct ekmfs_tenant_record *t)
{
	const struct ekmfs_kek_record *first = NULL;

	for (size_t i = 0; i < t->nkeks; i++)
		if (!first || t->keks[i].version < first->version)
			first = &t->keks[i];
	return first;
}

bool ekmfs_tenant_cmk_changed(const struct ekmfs_tenant_record *t)
{
	const struct ekmfs_kek_record *first = first_kek(t);

	return !first || t->last_cmk_change != first->created;
}

time_t ekmfs_tenant_cmk_change_time(const struct ekmfs_tenant_record *t, time_t now)
{
	const struct ekmfs_kek_record *first = first_kek(t);

	return first && now <= first->created ? first->created + 1 : now;
}

int ekmfs_keyring_add_tenant(struct ekmfs_keyring *kr, const struct ekmfs_tenant_record *rec)
{
	struct ekmfs_tenant_record *t;

	t = realloc(kr->tenants, (kr->ntenants + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	kr->tenants = t;
	t = &kr->tenants[kr->ntenants];
	*t = *rec;
	t->keks = NULL;
	t->nkeks = 0;
	if (rec->nkeks) {
		t->keks = malloc(rec->nkeks * sizeof(*t->keks));
		if (!t->keks)
			return -ENOMEM;
		memcpy(t->keks, rec->keks, rec->nkeks * sizeof(*t->keks));
		t->nkeks = rec->nkeks;
	}
	kr->ntenants++;
	return 0;
}

int ekmfs_tenant_add_kek(struct ekmfs_tenant_record *t, const struct ekmfs_kek_record *rec)
{
	struct ekmfs_kek_record *k;

	k = realloc(t->keks, (t->nkeks + 1) * sizeof(*k));
	if (!k)
		return -ENOMEM;
	t->keks = k;
	t->keks[t->nkeks++] = *rec;
	return 0;
}

/* ---- 6. the meta lock ---- */

int ekmfs_meta_lock(int backing_fd, bool exclusive, bool wait, int *lock_fd)
{
	const char *rel = EKMFS_META_DIR "/" EKMFS_LOCK_FILE;
	int fd, ret;

	*lock_fd = -1;
	fd = ekmfs_io->openat(backing_fd, rel, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && (errno == EROFS || errno == EACCES) && !exclusive)
		fd = openat(backing_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		ekmfs_seterr("cannot open the lock file %s: %s", rel, strerror(errno));
		return ret;
	}
	while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		ret = -errno;
		if (ret == -EWOULDBLOCK)
			ekmfs_seterr("the volume metadata is locked by another process "
				     "(ekmfs or ekmfs-admin)");
		else
			ekmfs_seterr("cannot lock %s: %s", rel, strerror(errno));
		close(fd);
		return ret;
	}
	*lock_fd = fd;
	return 0;
}

void ekmfs_meta_unlock(int lock_fd)
{
	if (lock_fd >= 0)
		close(lock_fd); /* closing the only descriptor drops the flock */
}
