/*
 * status_json.c - `ekmfs-admin status [--json] BACKING`: the command line of
 * status, and its machine-readable form.
 *
 * The JSON carries what the text form shows (volume, tenants, KEK versions
 * with their file counts, file totals) plus what scripts ask for: the mounts
 * of this volume, and per tenant the files still on a KEK version older than
 * the current one (the progress of a rotation), and the per-tenant policy,
 * misplaced files and key cache of status_tenant.c. Needs no key.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "ekmfs/mounts.h"
#include "tool.h"
#include "ekmfs/content.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

json_object *admin_json_time(time_t t)
{
	char text[32];

	if (t <= 0)
		return NULL;
	ekmfs_time_rfc3339(t, text, sizeof(text));
	return json_object_new_string(text);
}

/* Mountpoints of this volume: the daemon sets fsname to BACKING's real path. */
struct mounts_of {
	const char *real;
	json_object *arr;
};

static int mounts_of_one(const struct ekmfs_mount *m, void *arg)
{
	struct mounts_of *f = arg;

	if (strcmp(m->backing, f->real) == 0)
		json_object_array_add(f->arr, json_object_new_string(m->point));
	return 0;
}

static json_object *mounts_of(const char *backing)
{
	char real[PATH_MAX];
	struct mounts_of f = { real, json_object_new_array() };

	if (realpath(backing, real))
		(void)ekmfs_mounts_each(mounts_of_one, &f);
	return f.arr;
}

static json_object *tenant_json(struct ekmfs_tenant_record *t, const struct admin_tally *tally)
{
	json_object *o = json_object_new_object(), *keks = json_object_new_array();
	uint64_t older = 0;

	json_object_object_add(o, "name", json_object_new_string(t->name));
	json_object_object_add(o, "id", json_object_new_int64(t->id));
	json_object_object_add(o, "provider", json_object_new_string(t->provider));
	json_object_object_add(o, "current_kek_version", json_object_new_int64(t->current_version));
	json_object_object_add(o, "last_rotation", admin_json_time(t->last_rotation));
	json_object_object_add(o, "last_cmk_change", admin_json_time(t->last_cmk_change));
	json_object_object_add(o, "cmk_changed",
			       json_object_new_boolean(ekmfs_tenant_cmk_changed(t)));
	for (size_t j = 0; j < t->nkeks; j++) {
		struct ekmfs_kek_record *k = &t->keks[j];
		json_object *ko = json_object_new_object();
		uint64_t files = admin_tally_files(tally, t->id, k->version);

		if (k->version != t->current_version)
			older += files;
		json_object_object_add(ko, "version", json_object_new_int64(k->version));
		json_object_object_add(ko, "state",
				       json_object_new_string(ekmfs_kek_state_name(k->state)));
		json_object_object_add(ko, "created", admin_json_time(k->created));
		json_object_object_add(ko, "cmk_ref", json_object_new_string(k->wrapped.cmk_ref));
		json_object_object_add(ko, "cmk_version",
				       json_object_new_string(k->wrapped.cmk_version));
		json_object_object_add(ko, "files", json_object_new_int64((int64_t)files));
		json_object_array_add(keks, ko);
	}
	json_object_object_add(o, "keks", keks);
	json_object_object_add(o, "files_on_older_keks", json_object_new_int64((int64_t)older));
	return o;
}

static int status_json(const char *backing, const struct ekmfs_config *cfg)
{
	struct admin_tally tally = { .cfg = cfg, .now = time(NULL) };
	struct admin_status_ctx ctx = { 0 };
	struct ekmfs_keyring kr = { 0 };
	struct ekmfs_volume vol;
	json_object *root = NULL, *tenants, *unknown, *files;
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];
	int status = EXIT_FAIL;

	if (admin_volume_load(backing, &vol, &kr, &tally) < 0)
		goto out;
	admin_status_ctx_init(&ctx, cfg, &vol, &kr, &tally);
	ekmfs_hex(vol.volume_id, sizeof(vol.volume_id), id);
	root = json_object_new_object();
	json_object_object_add(root, "volume", json_object_new_string(backing));
	json_object_object_add(root, "volume_id", json_object_new_string(id));
	json_object_object_add(root, "format_version", json_object_new_int64(vol.format_version));
	json_object_object_add(root, "block_size", json_object_new_int64(vol.block_size));
	json_object_object_add(root, "created", admin_json_time(vol.created));
	json_object_object_add(root, "keyring_generation",
			       json_object_new_int64((int64_t)kr.generation));
	json_object_object_add(root, "mounted_at", mounts_of(backing));
	admin_status_holder_json(backing, root);
	tenants = json_object_new_array();
	for (size_t i = 0; i < kr.ntenants; i++) {
		json_object *o = tenant_json(&kr.tenants[i], &tally);

		admin_status_tenant_json(&ctx, &kr.tenants[i], o);
		json_object_array_add(tenants, o);
	}
	admin_status_new_tenants_json(&ctx, tenants);
	json_object_object_add(root, "tenants", tenants);
	/* Headers naming a tenant or KEK version the keyring does not know. */
	unknown = json_object_new_array();
	for (size_t i = 0; i < tally.ncounts; i++) {
		struct ekmfs_tenant_record *t = ekmfs_keyring_tenant_by_id(&kr, tally.counts[i].tenant_id);
		json_object *u;

		if (t && ekmfs_tenant_kek(t, tally.counts[i].version))
			continue;
		u = json_object_new_object();
		json_object_object_add(u, "tenant_id", json_object_new_int64(tally.counts[i].tenant_id));
		json_object_object_add(u, "kek_version", json_object_new_int64(tally.counts[i].version));
		json_object_object_add(u, "files", json_object_new_int64((int64_t)tally.counts[i].files));
		json_object_array_add(unknown, u);
	}
	json_object_object_add(root, "unknown_keks", unknown);
	files = json_object_new_object();
	json_object_object_add(files, "total", json_object_new_int64((int64_t)tally.files));
	json_object_object_add(files, "empty", json_object_new_int64((int64_t)tally.empty));
	json_object_object_add(files, "bad_header",
			       json_object_new_int64((int64_t)tally.bad_header));
	json_object_object_add(files, "unreadable",
			       json_object_new_int64((int64_t)tally.unreadable));
	json_object_object_add(root, "files", files);
	json_object_object_add(root, "misplaced_files", json_object_new_int64(
				       (int64_t)admin_tally_misplaced(&tally, &kr, NULL, NULL)));
	json_object_object_add(root, "daemon", admin_status_daemon_json(&ctx));
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	status = EXIT_OK;
out:
	admin_status_ctx_free(&ctx);
	json_object_put(root);
	admin_tally_free(&tally);
	ekmfs_keyring_free(&kr);
	return status;
}

int admin_status_main(int argc, char **argv, const struct ekmfs_config *cfg)
{
	const char *backing = NULL;
	bool json = false;

	/* status needs no key; the configuration gives the tenants' policy */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "ekmfs-admin: status: unknown option '%s'\n", argv[i]);
			return EXIT_USAGE;
		} else if (!backing) {
			backing = argv[i];
		} else {
			backing = NULL;
			break;
		}
	}
	if (!backing) {
		fprintf(stderr, "ekmfs-admin: status needs exactly one argument: BACKING\n");
		return EXIT_USAGE;
	}
	if (tool_refuse_mount_path(backing, TOOL_BACKING))
		return EXIT_FAIL;
	return json ? status_json(backing, cfg) : admin_status(backing, cfg);
}
