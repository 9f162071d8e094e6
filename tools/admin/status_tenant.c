/*
 * status_tenant.c - the per-tenant part of `ekmfs-admin status [--json]`
 * (docs/TENANTS.md): what the configuration says of a tenant (enabled,
 * enforce_from and whether it is enforced now, paths, rotation schedule),
 * the CMK of its current KEK, its misplaced files, and its key cache as
 * the running daemon reports it through the control socket (`tenants`).
 *
 * A tenant may be in the keyring and the configuration (the usual case),
 * only in the configuration (the daemon creates it at the next mount or
 * reload), or only in the keyring (removed from the configuration: its
 * files stay readable, new files route elsewhere).
 *
 * Divisions: the context; cache and policy words; the daemon's inodes; text;
 * JSON.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

/* ---- the context ---- */

void admin_status_ctx_init(struct admin_status_ctx *c, const struct ekmfs_config *cfg,
			   const struct ekmfs_volume *vol, struct ekmfs_keyring *kr,
			   const struct admin_tally *tally)
{
	c->cfg = cfg;
	c->kr = kr;
	c->tally = tally;
	c->now = tally->now ? tally->now : time(NULL);
	c->no_daemon[0] = '\0';
	c->states = admin_daemon_tenants(cfg, vol, c->no_daemon, sizeof(c->no_daemon));
	c->inodes = c->states ? admin_daemon_inodes(cfg, vol) : NULL;
}

void admin_status_ctx_free(struct admin_status_ctx *c)
{
	json_object_put(c->states);
	c->states = NULL;
	json_object_put(c->inodes);
	c->inodes = NULL;
}

/* ---- cache and policy words ---- */

static const char *json_str(json_object *o, const char *key, const char *dflt)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : dflt;
}

static int64_t json_int(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

/* "cached (refetch in 287 s, 3 of 1000000 uses)", "not mounted", ... */
static void cache_text(const struct admin_status_ctx *c, const char *name, char *out,
		       size_t len)
{
	json_object *s = admin_daemon_tenant(c->states, name), *v;
	const char *state;
	char limit[32];

	if (!c->states) {
		snprintf(out, len, "%s", c->no_daemon);
		return;
	}
	if (!s) {
		snprintf(out, len, "none (the daemon has not opened this tenant; a reload "
			 "or the next mount does)");
		return;
	}
	state = json_str(s, "cache", "?");
	if (json_int(s, "use_limit"))
		snprintf(limit, sizeof(limit), "%lld", (long long)json_int(s, "use_limit"));
	else
		snprintf(limit, sizeof(limit), "unlimited");
	if ((strcmp(state, "cached") == 0 || strcmp(state, "outage") == 0) &&
	    json_object_object_get_ex(s, "expires_in", &v))
		snprintf(out, len, "%s (refetch in %.0f s, %lld of %s uses)", state,
			 json_object_get_double(v), (long long)json_int(s, "uses"), limit);
	else
		snprintf(out, len, "%s", state);
}

/* The daemon's entry without its name, or {"state": "not mounted"}. */
static json_object *cache_json(const struct admin_status_ctx *c, const char *name)
{
	json_object *s = admin_daemon_tenant(c->states, name), *o = json_object_new_object();
	static const char *const copied[] = { "expires_in", "uses", "use_limit", "enforced" };

	if (!s) {
		json_object_object_add(o, "state", json_object_new_string(
					       c->states ? "none" : c->no_daemon));
		return o;
	}
	json_object_object_add(o, "state", json_object_new_string(json_str(s, "cache", "?")));
	for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
		json_object *v;

		if (json_object_object_get_ex(s, copied[i], &v))
			json_object_object_add(o, copied[i], json_object_get(v));
	}
	return o;
}

static bool is_default(const char *name)
{
	return strcmp(name, EKMFS_DEFAULT_TENANT) == 0;
}

static void time_text(time_t t, char *out, size_t len)
{
	if (t <= 0)
		snprintf(out, len, "never");
	else
		ekmfs_time_rfc3339(t, out, len);
}

/* ---- the daemon's inodes ---- */

void admin_status_daemon_text(const struct admin_status_ctx *c)
{
	json_object *fc = NULL, *v;
	int64_t inodes, bytes;

	if (!c->inodes)
		return;
	inodes = json_int(c->inodes, "inodes");
	bytes = json_int(c->inodes, "inode_bytes");
	json_object_object_get_ex(c->inodes, "fd_cache", &fc);
	printf("daemon inodes:  %lld held for the kernel (%lld bytes, %s)\n",
	       (long long)inodes, (long long)bytes,
	       json_object_object_get_ex(c->inodes, "file_handles", &v) &&
	       json_object_get_boolean(v) ? "named by file handles"
					  : "one descriptor each: no file handles");
	printf("daemon fds:     %lld of %lld (inode descriptors %lld: %lld cached of %lld, "
	       "%lld kept)\n",
	       (long long)json_int(c->inodes, "descriptors"),
	       (long long)json_int(c->inodes, "descriptor_limit"), (long long)json_int(fc, "held"),
	       (long long)json_int(fc, "cached"), (long long)json_int(fc, "limit"),
	       (long long)json_int(fc, "kept"));
}

json_object *admin_status_daemon_json(const struct admin_status_ctx *c)
{
	return c->inodes ? json_object_get(c->inodes) : NULL;
}

/* ---- text ---- */

static void policy_text(const struct admin_status_ctx *c, const struct ekmfs_tenant_config *tc,
			const struct ekmfs_tenant_record *t)
{
	char when[32];
	bool enforced = ekmfs_tenant_enforced(tc, c->now);

	printf("  enabled:        %s", tc->enabled || is_default(tc->name) ? "yes" : "no");
	if (t && t->disabled == (tc->enabled || is_default(tc->name)))
		printf(" (the keyring records %s until the next mount or reload)",
		       t->disabled ? "no" : "yes");
	printf("\n");
	if (tc->enforce_from <= 0) {
		printf("  enforce from:   always (enforced now: %s)\n", enforced ? "yes" : "no");
	} else {
		ekmfs_time_rfc3339(tc->enforce_from, when, sizeof(when));
		printf("  enforce from:   %s (enforced now: %s)\n", when, enforced ? "yes" : "no");
	}
	if (is_default(tc->name)) {
		printf("  paths:          every path no other tenant's paths hold\n");
	} else {
		printf("  paths:         ");
		for (unsigned i = 0; i < tc->npaths; i++)
			printf(" %s", tc->paths[i]);
		printf("\n");
	}
}

static void misplaced_text(const struct admin_status_ctx *c, const char *name,
			   const struct ekmfs_tenant_record *t)
{
	uint64_t in = admin_tally_misplaced(c->tally, c->kr, name, NULL);
	uint64_t out = t ? admin_tally_misplaced(c->tally, c->kr, NULL, t) : 0;

	printf("  misplaced:      %llu file%s routed here under another tenant's KEK, %llu "
	       "under this tenant's KEK routed elsewhere%s\n", (unsigned long long)in,
	       in == 1 ? "" : "s", (unsigned long long)out,
	       in || out ? " (run ekmfs-rotate migrate)" : "");
}

void admin_status_tenant_text(const struct admin_status_ctx *c, struct ekmfs_tenant_record *t)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(c->cfg, t->name);
	struct ekmfs_kek_record *cur = ekmfs_tenant_kek(t, t->current_version);
	uint32_t days = ekmfs_config_rotation_days(c->cfg, t->name);
	char text[PATH_MAX + 160];

	printf("  cmk:            %s version %s (current KEK v%u)\n",
	       cur ? cur->wrapped.cmk_ref : "?", cur ? cur->wrapped.cmk_version : "?",
	       t->current_version);
	if (tc) {
		policy_text(c, tc, t);
	} else {
		printf("  configured:     no (not in %s: new files route to other tenants)\n",
		       c->cfg->path[0] ? c->cfg->path : "the built-in configuration");
		printf("  enabled:        %s (as the keyring records)\n",
		       t->disabled ? "no" : "yes");
	}
	if (days) {
		time_text(t->last_rotation + (time_t)days * 86400, text, sizeof(text));
		printf("  next rotation:  %s (every %u days)\n", text, days);
	} else {
		printf("  next rotation:  not scheduled (rotation_days = 0)\n");
	}
	misplaced_text(c, t->name, t);
	cache_text(c, t->name, text, sizeof(text));
	printf("  cache:          %s\n", text);
}

void admin_status_new_tenants_text(const struct admin_status_ctx *c)
{
	char text[PATH_MAX + 160];

	for (unsigned i = 0; i < c->cfg->ntenants; i++) {
		const struct ekmfs_tenant_config *tc = &c->cfg->tenants[i];

		if (ekmfs_keyring_tenant(c->kr, tc->name))
			continue;
		printf("tenant %s (provider %s): not in the keyring yet (created at the next "
		       "mount or reload)\n", tc->name, tc->provider);
		policy_text(c, tc, NULL);
		misplaced_text(c, tc->name, NULL);
		cache_text(c, tc->name, text, sizeof(text));
		printf("  cache:          %s\n", text);
	}
}

/* ---- JSON ---- */

static void policy_json(const struct admin_status_ctx *c, const struct ekmfs_tenant_config *tc,
			json_object *o)
{
	json_object *paths = json_object_new_array();

	json_object_object_add(o, "configured", json_object_new_boolean(true));
	json_object_object_add(o, "enabled",
			       json_object_new_boolean(tc->enabled || is_default(tc->name)));
	json_object_object_add(o, "enforce_from", tc->enforce_from > 0 ?
			       admin_json_time(tc->enforce_from) : json_object_new_string("always"));
	json_object_object_add(o, "enforced",
			       json_object_new_boolean(ekmfs_tenant_enforced(tc, c->now)));
	for (unsigned i = 0; i < tc->npaths; i++)
		json_object_array_add(paths, json_object_new_string(tc->paths[i]));
	json_object_object_add(o, "paths", paths);
}

void admin_status_tenant_json(const struct admin_status_ctx *c, struct ekmfs_tenant_record *t,
			      json_object *o)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(c->cfg, t->name);
	struct ekmfs_kek_record *cur = ekmfs_tenant_kek(t, t->current_version);
	uint32_t days = ekmfs_config_rotation_days(c->cfg, t->name);

	json_object_object_add(o, "in_keyring", json_object_new_boolean(true));
	json_object_object_add(o, "cmk_ref", cur ? json_object_new_string(cur->wrapped.cmk_ref) :
			       NULL);
	if (tc) {
		policy_json(c, tc, o);
	} else {
		json_object_object_add(o, "configured", json_object_new_boolean(false));
		json_object_object_add(o, "enabled", json_object_new_boolean(!t->disabled));
		json_object_object_add(o, "enforce_from", NULL);
		json_object_object_add(o, "enforced", json_object_new_boolean(false));
		json_object_object_add(o, "paths", json_object_new_array());
	}
	json_object_object_add(o, "keyring_enabled", json_object_new_boolean(!t->disabled));
	json_object_object_add(o, "rotation_days", json_object_new_int64(days));
	json_object_object_add(o, "next_rotation",
			       days ? admin_json_time(t->last_rotation + (time_t)days * 86400) : NULL);
	json_object_object_add(o, "misplaced_files", json_object_new_int64(
				       (int64_t)admin_tally_misplaced(c->tally, c->kr, t->name, NULL)));
	json_object_object_add(o, "misplaced_away", json_object_new_int64(
				       (int64_t)admin_tally_misplaced(c->tally, c->kr, NULL, t)));
	json_object_object_add(o, "cache", cache_json(c, t->name));
}

void admin_status_new_tenants_json(const struct admin_status_ctx *c, json_object *arr)
{
	for (unsigned i = 0; i < c->cfg->ntenants; i++) {
		const struct ekmfs_tenant_config *tc = &c->cfg->tenants[i];
		json_object *o;

		if (ekmfs_keyring_tenant(c->kr, tc->name))
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(tc->name));
		json_object_object_add(o, "id", NULL);
		json_object_object_add(o, "provider", json_object_new_string(tc->provider));
		json_object_object_add(o, "in_keyring", json_object_new_boolean(false));
		json_object_object_add(o, "keks", json_object_new_array());
		policy_json(c, tc, o);
		json_object_object_add(o, "rotation_days", json_object_new_int64(tc->rotation_days));
		json_object_object_add(o, "misplaced_files", json_object_new_int64(
					       (int64_t)admin_tally_misplaced(c->tally, c->kr,
									      tc->name, NULL)));
		json_object_object_add(o, "misplaced_away", json_object_new_int64(0));
		json_object_object_add(o, "cache", cache_json(c, tc->name));
		json_object_array_add(arr, o);
	}
}
