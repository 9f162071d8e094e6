/*
 * descriptor.c - the volume descriptor .ekmfs/volume.json (volume.h).
 *
 * Owns: its strict parsing (format, version, volume id, block size,
 * creation time; docs/FORMAT.md, "Volume metadata"), creating it with the
 * .ekmfs directory, replacing it, and the control socket path derived from
 * the volume id.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/format.h"
#include "ekmfs/io.h"
#include "ekmfs/util.h"
#include "ekmfs/volume.h"
#include "volume_priv.h"

#define VOLUME_FORMAT "ekmfs-volume"

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
	struct vj_ctx c = { .path = path };
	json_object *doc = NULL;
	char *text = NULL;
	size_t len;
	uint64_t n;
	int ret;

	memset(v, 0, sizeof(*v));
	ekmfs_meta_path(backing_fd, EKMFS_VOLUME_FILE, path, sizeof(path));
	ret = ekmfs_meta_read(backing_fd, EKMFS_VOLUME_FILE, &text, &len);
	if (ret == -ENOENT)
		ekmfs_seterr("not an ekmfs volume: %s does not exist", path);
	if (ret)
		return ret;
	ret = vj_parse_json(&c, text, len, &doc);
	if (ret)
		goto out;
	if (vj_check_format(&c, doc, VOLUME_FORMAT, EKMFS_VOLUME_VERSION, &n) ||
	    vj_check_keys(&c, doc, "", volume_keys) ||
	    vj_get_str(&c, doc, "", "volume_id", false, hex, sizeof(hex)))
		goto out_err;
	v->format_version = (uint32_t)n;
	if (strlen(hex) != 2 * EKMFS_VOLUME_ID_SIZE ||
	    ekmfs_unhex(hex, v->volume_id, EKMFS_VOLUME_ID_SIZE) < 0) {
		vj_jfail(&c, -EBADMSG, "volume_id", "must be %d hex digits",
		      2 * EKMFS_VOLUME_ID_SIZE);
		goto out_err;
	}
	if (vj_get_uint(&c, doc, "", "block_size", 0, UINT32_MAX, &n))
		goto out_err;
	if (n != EKMFS_BLOCK_SIZE) {
		vj_jfail(&c, -EPROTO, "block_size", "%llu is not supported (only %d)",
		      (unsigned long long)n, EKMFS_BLOCK_SIZE);
		goto out_err;
	}
	v->block_size = (uint32_t)n;
	if (vj_get_time(&c, doc, "", "created", &v->created))
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
	if (vj_add_str(doc, "format", VOLUME_FORMAT) || vj_add_int(doc, "version", v->format_version) ||
	    vj_add_str(doc, "volume_id", hex) || vj_add_int(doc, "block_size", v->block_size) ||
	    vj_add_time(doc, "created", v->created)) {
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
		ret = vj_write_json(backing_fd, EKMFS_VOLUME_FILE, doc);
	json_object_put(doc);
	return ret;
}

int ekmfs_volume_write_new(int backing_fd, const struct ekmfs_volume *v)
{
	char path[PATH_MAX + 64];
	json_object *doc = NULL;
	int ret;

	ekmfs_meta_path(backing_fd, "", path, sizeof(path));
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
	ret = vj_write_json(backing_fd, EKMFS_VOLUME_FILE, doc);
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
