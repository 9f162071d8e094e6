/*
 * json.c - strict JSON for the documents of .ekmfs/ (volume_priv.h).
 *
 * Owns: parsing a document as exactly one JSON object, typed field access
 * whose every failure names the file and the field, the "format" and
 * "version" check, and writing a document through the store. The
 * descriptor and the keyring share it, so both refuse the same things.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/util.h"
#include "ekmfs/volume.h"
#include "volume_priv.h"

#define JSON_DEPTH 16

int vj_jfail(struct vj_ctx *c, int err, const char *field, const char *fmt, ...)
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
int vj_parse_json(struct vj_ctx *c, const char *text, size_t len, json_object **out)
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
int vj_check_keys(struct vj_ctx *c, json_object *obj, const char *where,
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
			return vj_jfail(c, -EBADMSG, field, "unknown field");
		}
	}
	return 0;
}

json_object *vj_get_typed(struct vj_ctx *c, json_object *obj, const char *where,
			  const char *key, json_type type, const char *type_name)
{
	json_object *val;
	char field[160];

	snprintf(field, sizeof(field), "%s%s", where, key);
	if (!json_object_object_get_ex(obj, key, &val)) {
		vj_jfail(c, -EBADMSG, field, "missing");
		return NULL;
	}
	if (!json_object_is_type(val, type)) {
		vj_jfail(c, -EBADMSG, field, "must be %s", type_name);
		return NULL;
	}
	return val;
}

int vj_get_uint(struct vj_ctx *c, json_object *obj, const char *where, const char *key,
		uint64_t min, uint64_t max, uint64_t *out)
{
	json_object *val = vj_get_typed(c, obj, where, key, json_type_int, "an integer");
	char field[160];
	int64_t n;

	if (!val)
		return c->err;
	n = json_object_get_int64(val);
	/* json-c saturates out-of-range numbers: refuse anything near the edge. */
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max || n == INT64_MAX) {
		snprintf(field, sizeof(field), "%s%s", where, key);
		return vj_jfail(c, -EBADMSG, field, "%lld is out of range %llu..%llu",
			     (long long)n, (unsigned long long)min, (unsigned long long)max);
	}
	*out = (uint64_t)n;
	return 0;
}

/* A string field copied into out (capacity outlen); empty allowed if asked. */
int vj_get_str(struct vj_ctx *c, json_object *obj, const char *where, const char *key,
	       bool empty_ok, char *out, size_t outlen)
{
	json_object *val = vj_get_typed(c, obj, where, key, json_type_string, "a string");
	char field[160];
	const char *s;
	size_t len;

	if (!val)
		return c->err;
	s = json_object_get_string(val);
	len = (size_t)json_object_get_string_len(val);
	snprintf(field, sizeof(field), "%s%s", where, key);
	if (len != strlen(s))
		return vj_jfail(c, -EBADMSG, field, "contains a NUL character");
	if (len >= outlen)
		return vj_jfail(c, -EBADMSG, field, "longer than %zu bytes", outlen - 1);
	if (len == 0 && !empty_ok)
		return vj_jfail(c, -EBADMSG, field, "must not be empty");
	memcpy(out, s, len + 1);
	return 0;
}

int vj_get_time(struct vj_ctx *c, json_object *obj, const char *where, const char *key,
		time_t *out)
{
	char s[64], field[160];

	if (vj_get_str(c, obj, where, key, false, s, sizeof(s)))
		return c->err;
	if (ekmfs_time_parse_rfc3339(s, out) < 0) {
		snprintf(field, sizeof(field), "%s%s", where, key);
		return vj_jfail(c, -EBADMSG, field, "'%s' is not an RFC 3339 UTC time", s);
	}
	return 0;
}

/* "format" and "version" say whose document this is: a mismatch is -EPROTO.
 * Versions 1..max are read; *version (may be NULL) receives it. */
int vj_check_format(struct vj_ctx *c, json_object *obj, const char *format, uint64_t max,
		    uint64_t *version)
{
	char s[64];
	uint64_t v;

	if (vj_get_str(c, obj, "", "format", false, s, sizeof(s)))
		return c->err;
	if (strcmp(s, format) != 0)
		return vj_jfail(c, -EPROTO, "format", "'%s' is not '%s'", s, format);
	if (vj_get_uint(c, obj, "", "version", 0, UINT32_MAX, &v))
		return c->err;
	if (v < 1 || v > max)
		return vj_jfail(c, -EPROTO, "version",
			     "version %llu is not supported (this ekmfs reads 1 to %llu)",
			     (unsigned long long)v, (unsigned long long)max);
	if (version)
		*version = v;
	return 0;
}

int vj_add_str(json_object *obj, const char *key, const char *val)
{
	json_object *s = json_object_new_string(val);
	if (!s || json_object_object_add(obj, key, s) < 0) {
		json_object_put(s);
		return -ENOMEM;
	}
	return 0;
}

int vj_add_int(json_object *obj, const char *key, int64_t val)
{
	json_object *n = json_object_new_int64(val);
	if (!n || json_object_object_add(obj, key, n) < 0) {
		json_object_put(n);
		return -ENOMEM;
	}
	return 0;
}

int vj_add_time(json_object *obj, const char *key, time_t t)
{
	char s[64];

	ekmfs_time_rfc3339(t, s, sizeof(s));
	return vj_add_str(obj, key, s);
}

int vj_write_json(int backing_fd, const char *name, json_object *doc)
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
	ret = ekmfs_meta_replace(backing_fd, name, line);
	free(line);
	return ret;
}
