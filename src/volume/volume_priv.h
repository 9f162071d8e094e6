/*
 * volume_priv.h - private map of src/volume/.
 *
 *   store.c       the one store of .ekmfs/: bounded read, atomic replace,
 *                 removal, the meta lock (volume.h)
 *   json.c        strict JSON of the .ekmfs/ documents (below)
 *   descriptor.c  volume.json (volume.h)
 *   keyring.c     keyring.json and the in-memory keyring (keyring.h)
 *   walk.c        the walk over the volume's regular files (volume.h)
 *   holder.c      mount.lock, holder, recovery mark (holder.h)
 *   upgrade.c     one file from format 1 to 2 (upgrade.h)
 */
#ifndef EKMFS_VOLUME_PRIV_H
#define EKMFS_VOLUME_PRIV_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* json.c */
/* Parse context: the file for messages, and the first error. */
struct vj_ctx {
	const char *path;
	int err;
};

/* Record the first error ("PATH: field 'F': why") and return err. */
int vj_jfail(struct vj_ctx *c, int err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* text as exactly one JSON object (trailing whitespace only). */
int vj_parse_json(struct vj_ctx *c, const char *text, size_t len, json_object **out);
/* Every key of obj must be one of allowed (NULL-terminated). */
int vj_check_keys(struct vj_ctx *c, json_object *obj, const char *where,
		  const char *const *allowed);
json_object *vj_get_typed(struct vj_ctx *c, json_object *obj, const char *where,
			  const char *key, json_type type, const char *type_name);
int vj_get_uint(struct vj_ctx *c, json_object *obj, const char *where, const char *key,
		uint64_t min, uint64_t max, uint64_t *out);
int vj_get_str(struct vj_ctx *c, json_object *obj, const char *where, const char *key,
	       bool empty_ok, char *out, size_t outlen);
int vj_get_time(struct vj_ctx *c, json_object *obj, const char *where, const char *key,
		time_t *out);
/* "format" must be format, "version" 1..max (-EPROTO otherwise). */
int vj_check_format(struct vj_ctx *c, json_object *obj, const char *format, uint64_t max,
		    uint64_t *version);
int vj_add_str(json_object *obj, const char *key, const char *val);
int vj_add_int(json_object *obj, const char *key, int64_t val);
int vj_add_time(json_object *obj, const char *key, time_t t);
/* Pretty-print doc into .ekmfs/name through the store. */
int vj_write_json(int backing_fd, const char *name, json_object *doc);

#endif
