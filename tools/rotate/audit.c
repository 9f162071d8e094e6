/*
 * audit.c - ekmfs-rotate's records in the volume's audit trail.
 *
 * Every command that can change keys (not status, not --dry-run) opens the
 * audit trail before it changes anything, and refuses to run when it cannot:
 * an enterprise key rotation nobody can prove happened is worse than one
 * that waits for the log to be fixed. Records are written synchronously
 * (the tool is not latency-bound); a record that fails after the change was
 * made is reported on stderr, since the change itself cannot be undone.
 */
#include <errno.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/audit.h"
#include "ekmfs/keys.h"
#include "ekmfs/util.h"
#include "rotate.h"

/* Caps the per-file records of one run; the finish record has the count. */
#define MAX_SKIP_RECORDS 100

int rot_audit_open(struct rot_ctx *c)
{
	const struct ekmfs_tenant_config *tc;
	struct ekmfs_tenant_record *rec;
	int ret;

	if (c->opt.cmd == CMD_STATUS)
		return 0;
	/* The audit key and the keyring's MAC key are wrapped by the default
	 * tenant's CMK. */
	tc = ekmfs_config_tenant(&c->cfg, EKMFS_DEFAULT_TENANT);
	rec = ekmfs_keyring_tenant(&c->kr, EKMFS_DEFAULT_TENANT);
	if (!tc || !rec) {
		ekmfs_seterr("the volume has no default tenant to open its audit trail with");
		return -ENOKEY;
	}
	/* No record, no change (docs/AUDIT.md): the caller says that nothing
	 * was changed, after the cause. */
	ret = ekmfs_provider_open(tc, rec, false, &c->audit_prov);
	/* The keyring and descriptor authenticate before any decision. */
	if (!ret)
		ret = ekmfs_keyring_key_open(c->backing_fd, &c->vol, &c->kr, c->audit_prov, &c->mk);
	if (!ret && !c->opt.dry_run)
		ret = ekmfs_audit_open(c->backing_fd, &c->cfg, &c->vol, c->audit_prov, &c->audit);
	if (!ret) {
		char path[PATH_MAX + 64];

		ekmfs_meta_path(c->backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
		ret = ekmfs_keyring_check_anchor(&c->kr, ekmfs_audit_keyring_generation(c->audit),
						 path);
	}
	return ret;
}

void rot_audit_close(struct rot_ctx *c)
{
	if (c->audit)
		ekmfs_audit_close(c->audit);
	if (c->audit_prov)
		ekmfs_provider_close(c->audit_prov);
	ekmfs_keyring_key_free(c->mk);
	c->mk = NULL;
	c->audit = NULL;
	c->audit_prov = NULL;
}

void rot_audit_tenant(const struct rot_ctx *c, const char *tenant, const char *event,
		      const char *outcome, uint32_t kek_version, const char *path,
		      const char *reason, struct json_object *details)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	const struct ekmfs_kek_record *k = NULL;

	if (!c->audit)
		return;
	/* The key reference: the CMK that wraps that KEK version of tenant. */
	for (size_t i = 0; tenant && kek_version && i < c->kr.ntenants; i++) {
		const struct ekmfs_tenant_record *t = &c->kr.tenants[i];

		for (size_t j = 0; strcmp(t->name, tenant) == 0 && j < t->nkeks; j++)
			if (t->keks[j].version == kek_version)
				k = &t->keks[j];
	}
	ev.event = event;
	ev.outcome = outcome;
	ev.tenant = tenant;
	ev.key_ref = k ? k->wrapped.cmk_ref : NULL;
	ev.kek_version = kek_version;
	ev.path = path;
	ev.reason = reason;
	ev.uid = (long long)getuid();
	ev.pid = (long long)getpid();
	ev.details = details;
	/* The keyring this run authenticated (and wrote) is what the chain
	 * head anchors. */
	ekmfs_audit_note_keyring(c->audit, c->kr.has_mac ? c->kr.generation : 0);
	if (ekmfs_audit_write(c->audit, &ev) < 0)
		fprintf(stderr, "ekmfs-rotate: warning: audit record '%s' not written: %s\n",
			event, ekmfs_lasterr());
}

void rot_audit(const struct rot_ctx *c, const char *event, const char *outcome,
	       uint32_t kek_version, const char *path, const char *reason,
	       struct json_object *details)
{
	rot_audit_tenant(c, c->trec ? c->trec->name : NULL, event, outcome, kek_version, path,
			 reason, details);
}

/* cmk_changed: the CMK before and after (reference and version of the
 * current KEK's wrap), NULL for any other record. */
static json_object *cmk_change_details(const struct rot_ctx *c)
{
	const struct ekmfs_kek_record *cur;
	json_object *d;

	if (c->opt.cmd != CMD_CMK || !c->old_cmk_ref[0] || !c->trec)
		return NULL;
	cur = ekmfs_tenant_kek(c->trec, c->trec->current_version);
	d = json_object_new_object();
	if (!d || !cur)
		return d;
	json_object_object_add(d, "old_cmk_ref", json_object_new_string(c->old_cmk_ref));
	json_object_object_add(d, "old_cmk_version",
			       json_object_new_string(c->old_cmk_version));
	json_object_object_add(d, "new_cmk_ref", json_object_new_string(cur->wrapped.cmk_ref));
	json_object_object_add(d, "new_cmk_version",
			       json_object_new_string(cur->wrapped.cmk_version));
	return d;
}

/* The record that closes a command, named after what it did. */
void rot_audit_outcome(const struct rot_ctx *c, const char *outcome, const char *msg)
{
	static const char *const done_names[] = {
		[CMD_STATUS] = NULL, [CMD_KEK] = "kek_rotated", [CMD_REWRAP] = "rewrap_finish",
		[CMD_RETIRE] = "kek_retired", [CMD_CMK] = "cmk_changed",
		[CMD_MIGRATE] = "migrate_finish",
	};
	static const char *const refused_names[] = {
		[CMD_STATUS] = NULL, [CMD_KEK] = "kek_rotate_refused",
		[CMD_REWRAP] = "rewrap_refused", [CMD_RETIRE] = "kek_retire_refused",
		[CMD_CMK] = "cmk_change_refused", [CMD_MIGRATE] = "migrate_refused",
	};
	const char *name;
	bool refused = strcmp(outcome, "refused") == 0;
	json_object *details;

	if (c->opt.cmd == CMD_RETIRE && c->opt.destroy && !refused)
		name = "kek_destroyed";
	else
		name = refused ? refused_names[c->opt.cmd] : done_names[c->opt.cmd];
	if (!name)
		return;
	details = refused ? NULL : cmk_change_details(c);
	rot_audit_tenant(c, c->trec ? c->trec->name : c->opt.tenant, name,
			 refused ? "refused" : strcmp(outcome, "done") == 0 ? "success" :
			 "failure", c->opt.cmd == CMD_RETIRE ? c->opt.version :
			 c->trec && c->opt.cmd != CMD_MIGRATE ? c->trec->current_version : 0,
			 NULL, msg, details);
	json_object_put(details);
}

void rot_audit_rewrap(const struct rot_ctx *c, const struct rot_pass *last,
		      const struct rot_counts *total, uint64_t remaining, unsigned passes)
{
	json_object *d = json_object_new_object();
	size_t n = last->nskips < MAX_SKIP_RECORDS ? last->nskips : MAX_SKIP_RECORDS;

	for (size_t i = 0; i < n; i++)
		rot_audit(c, "rewrap_skipped_file", "failure", 0, last->skips[i].path,
			  last->skips[i].reason, NULL);
	if (d) {
		json_object_object_add(d, "files", json_object_new_int64((int64_t)last->counts.files));
		json_object_object_add(d, "rewrapped", json_object_new_int64((int64_t)total->rewrapped));
		json_object_object_add(d, "stale_slots_cleared",
				       json_object_new_int64((int64_t)total->cleared));
		json_object_object_add(d, "skipped", json_object_new_int64((int64_t)last->nskips));
		json_object_object_add(d, "remaining_on_old_versions",
				       json_object_new_int64((int64_t)remaining));
		json_object_object_add(d, "passes", json_object_new_int((int)passes));
	}
	rot_audit(c, "rewrap_finish", last->nskips || remaining ? "failure" : "success",
		  c->trec->current_version, NULL, last->nskips || remaining ?
		  "finished with files skipped or left on older versions" : "all files re-wrapped",
		  d);
	json_object_put(d);
	for (size_t i = 0; i < c->nretired; i++)
		rot_audit(c, "kek_retired", "success", c->retired[i], NULL,
			  "no file references it any more", NULL);
}

/* Counts of a migrate run: per target tenant, and what is left. */
void rot_audit_migrate(const struct rot_ctx *c, const struct rot_pass *last,
		       const struct rot_counts *total, uint64_t remaining, unsigned passes)
{
	json_object *d = json_object_new_object();
	json_object *to = json_object_new_object();
	size_t n = last->nskips < MAX_SKIP_RECORDS ? last->nskips : MAX_SKIP_RECORDS;
	bool failed = last->nskips || remaining;

	for (size_t i = 0; i < n; i++)
		rot_audit_tenant(c, c->opt.tenant, "migrate_skipped_file", "failure", 0,
				 last->skips[i].path, last->skips[i].reason, NULL);
	for (unsigned i = 0; to && i < c->cfg.ntenants; i++)
		if (last->moved_to[i])
			json_object_object_add(to, c->cfg.tenants[i].name,
					       json_object_new_int64((int64_t)last->moved_to[i]));
	if (d) {
		json_object_object_add(d, "files", json_object_new_int64((int64_t)last->counts.files));
		json_object_object_add(d, "migrated", json_object_new_int64((int64_t)total->rewrapped));
		json_object_object_add(d, "migrated_to", to);
		to = NULL;
		json_object_object_add(d, "stale_slots_cleared",
				       json_object_new_int64((int64_t)total->cleared));
		json_object_object_add(d, "skipped", json_object_new_int64((int64_t)last->nskips));
		json_object_object_add(d, "remaining_misplaced",
				       json_object_new_int64((int64_t)remaining));
		json_object_object_add(d, "passes", json_object_new_int((int)passes));
	}
	json_object_put(to);
	rot_audit_tenant(c, c->opt.tenant, "migrate_finish", failed ? "failure" : "success", 0,
			 NULL, failed ? "finished with files skipped or left misplaced" :
			 "every file is under the tenant its path routes to", d);
	json_object_put(d);
}
