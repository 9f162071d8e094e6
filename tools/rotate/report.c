/*
 * report.c - what ekmfs-rotate prints: status, the summary of a run, the
 * skipped files, refusals.
 *
 * Text goes to stdout (summaries) and stderr (refusals, errors, skipped
 * files); with --json stdout carries exactly one JSON object and nothing
 * else, so scripts can parse it. -q silences the text summary, never an
 * error, a refusal or a skipped file.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/content.h"
#include "ekmfs/util.h"
#include "rotate.h"

static const char *const command_names[] = {
	[CMD_STATUS] = "status", [CMD_KEK] = "kek", [CMD_REWRAP] = "rewrap",
	[CMD_RETIRE] = "retire", [CMD_CMK] = "cmk", [CMD_MIGRATE] = "migrate",
};

static json_object *jtime(time_t t)
{
	char buf[32];

	ekmfs_time_rfc3339(t, buf, sizeof(buf));
	return json_object_new_string(buf);
}

static void jprint(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static json_object *jcommon(const struct rot_ctx *c, const char *outcome, int code)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "command", json_object_new_string(command_names[c->opt.cmd]));
	json_object_object_add(o, "backing", json_object_new_string(c->opt.backing));
	if (c->opt.cmd == CMD_MIGRATE)
		json_object_object_add(o, "tenant", c->opt.tenant ?
				       json_object_new_string(c->opt.tenant) : NULL);
	else if (c->trec)
		json_object_object_add(o, "tenant", json_object_new_string(c->trec->name));
	json_object_object_add(o, "dry_run", json_object_new_boolean(c->opt.dry_run));
	json_object_object_add(o, "outcome", json_object_new_string(outcome));
	json_object_object_add(o, "exit_code", json_object_new_int(code));
	return o;
}

/* The last words of an error or refusal line: what it did to the volume.
 * A message leads with the cause and its fix; the consequence comes last. */
static const char *consequence(const struct rot_ctx *c, int code, enum rot_then then)
{
	if (code == ROT_REFUSED)
		return " - refused, nothing was changed";
	if (code == ROT_OK || c->opt.cmd == CMD_STATUS || c->opt.dry_run)
		return "";
	switch (then) {
	case THEN_UNCHANGED:
		return " - nothing was changed";
	case THEN_CONSISTENT:
		return c->opt.cmd == CMD_MIGRATE ?
		       " - the files moved so far are consistent; run 'ekmfs-rotate migrate' "
		       "again to finish" :
		       " - the files re-wrapped so far are consistent; run 'ekmfs-rotate "
		       "rewrap' to finish";
	case THEN_NOTHING_TO_SAY:
		break;
	}
	return "";
}

static void outcome_v(const struct rot_ctx *c, const char *outcome, int code,
		      enum rot_then then, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* With --json stdout carries the JSON object only. */
	if (code != ROT_OK || !c->opt.quiet)
		fprintf(code == ROT_OK && !c->opt.json ? stdout : stderr, "ekmfs-rotate: %s%s\n",
			msg, consequence(c, code, then));
	rot_audit_outcome(c, outcome, msg);
	if (c->opt.json) {
		json_object *o = jcommon(c, outcome, code);

		json_object_object_add(o, "message", json_object_new_string(msg));
		jprint(o);
	}
}

void report_outcome(const struct rot_ctx *c, const char *outcome, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	outcome_v(c, outcome, code, THEN_NOTHING_TO_SAY, fmt, ap);
	va_end(ap);
}

static void outcome_then(const struct rot_ctx *c, const char *outcome, int code,
			 enum rot_then then, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void outcome_then(const struct rot_ctx *c, const char *outcome, int code,
			 enum rot_then then, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	outcome_v(c, outcome, code, then, fmt, ap);
	va_end(ap);
}

int report_failure_then(struct rot_ctx *c, int err, const char *what, enum rot_then then)
{
	const char *msg = ekmfs_lasterr();
	int code = err == -EWOULDBLOCK || err == -EBUSY ? ROT_REFUSED : ROT_ERROR;

	if (msg[0])
		outcome_then(c, code == ROT_REFUSED ? "refused" : "error", code, then, "%s", msg);
	else
		outcome_then(c, "error", code, then, "%s: %s", what, strerror(-err));
	return code;
}

int report_failure(struct rot_ctx *c, int err, const char *what)
{
	return report_failure_then(c, err, what, THEN_NOTHING_TO_SAY);
}

void report_skips(const struct rot_ctx *c, const struct rot_pass *p)
{
	(void)c;
	for (size_t i = 0; i < p->nskips; i++)
		fprintf(stderr, "ekmfs-rotate: skipped %s: %s\n", p->skips[i].path,
			p->skips[i].reason);
}

static json_object *jskips(const struct rot_pass *p)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < p->nskips; i++) {
		json_object *s = json_object_new_object();

		json_object_object_add(s, "path", json_object_new_string(p->skips[i].path));
		json_object_object_add(s, "reason", json_object_new_string(p->skips[i].reason));
		json_object_array_add(a, s);
	}
	return a;
}

static void fmt_duration(int64_t secs, char *out, size_t len)
{
	int64_t a = secs < 0 ? -secs : secs;

	if (a >= 2 * 86400)
		snprintf(out, len, "%lld days", (long long)(a / 86400));
	else if (a >= 2 * 3600)
		snprintf(out, len, "%lld hours", (long long)(a / 3600));
	else if (a >= 120)
		snprintf(out, len, "%lld minutes", (long long)(a / 60));
	else
		snprintf(out, len, "%lld seconds", (long long)a);
}

/* The tenant a misplaced file's path routes to, and the one its header
 * names (read again: the scan keeps only the paths). */
static void misplaced_tenants(struct rot_ctx *c, const char *path, const char **route,
			      const char **header)
{
	struct ekmfs_header h;
	struct ekmfs_tenant_record *t = NULL;
	int fd, owner;

	*route = ekmfs_config_route(&c->cfg, path, c->started)->name;
	*header = "?";
	fd = openat(c->backing_fd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	if (ekmfs_content_read_header(fd, &h) == 0) {
		owner = ekmfs_header_owner_slot(&h);
		if (owner >= 0)
			t = ekmfs_keyring_tenant_by_id(&c->kr, h.slot[owner].tenant_id);
	}
	close(fd);
	if (t)
		*header = t->name;
}

static json_object *jmisplaced(struct rot_ctx *c, const struct rot_pass *scan)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < scan->nmisplaced; i++) {
		json_object *o = json_object_new_object();
		const char *route, *header;

		misplaced_tenants(c, scan->misplaced[i], &route, &header);
		json_object_object_add(o, "path", json_object_new_string(scan->misplaced[i]));
		json_object_object_add(o, "tenant", json_object_new_string(header));
		json_object_object_add(o, "routes_to", json_object_new_string(route));
		json_object_array_add(a, o);
	}
	return a;
}

static void print_misplaced(struct rot_ctx *c, const struct rot_pass *scan)
{
	if (!scan->counts.misplaced)
		return;
	printf("misplaced files: %llu (their header's tenant is not the one their path "
	       "routes to now); run 'ekmfs-rotate migrate %s'\n",
	       (unsigned long long)scan->counts.misplaced, c->opt.backing);
	for (size_t i = 0; i < scan->nmisplaced; i++) {
		const char *route, *header;

		misplaced_tenants(c, scan->misplaced[i], &route, &header);
		printf("  /%s  (tenant %s, routes to %s)\n", scan->misplaced[i], header, route);
	}
	if (scan->counts.misplaced > scan->nmisplaced)
		printf("  ... and %llu more\n",
		       (unsigned long long)(scan->counts.misplaced - scan->nmisplaced));
}

int report_status(struct rot_ctx *c, const struct rot_pass *scan)
{
	json_object *jo = NULL, *jt = NULL, *jk = NULL;
	char vid[2 * EKMFS_VOLUME_ID_SIZE + 1], t1[32], t2[32], d[32];
	time_t now = time(NULL);

	ekmfs_hex(c->vol.volume_id, sizeof(c->vol.volume_id), vid);
	if (c->opt.json) {
		jo = jcommon(c, scan->nskips ? "skipped" : "done",
			     scan->nskips ? ROT_SKIPPED : ROT_OK);
		json_object_object_del(jo, "tenant");
		json_object_object_add(jo, "volume_id", json_object_new_string(vid));
		json_object_object_add(jo, "keyring_generation",
				       json_object_new_int64((int64_t)c->kr.generation));
		json_object_object_add(jo, "files", json_object_new_int64((int64_t)scan->counts.files));
		json_object_object_add(jo, "empty_files",
				       json_object_new_int64((int64_t)scan->counts.empty));
		json_object_object_add(jo, "unreadable_headers",
				       json_object_new_int64((int64_t)scan->counts.unreadable_headers));
		json_object_object_add(jo, "unreadable", jskips(scan));
		json_object_object_add(jo, "misplaced_files",
				       json_object_new_int64((int64_t)scan->counts.misplaced));
		json_object_object_add(jo, "misplaced", jmisplaced(c, scan));
		jt = json_object_new_array();
		json_object_object_add(jo, "tenants", jt);
	} else {
		printf("volume %s (id %s), keyring generation %llu\n", c->opt.backing, vid,
		       (unsigned long long)c->kr.generation);
	}
	for (size_t i = 0; i < c->kr.ntenants; i++) {
		struct ekmfs_tenant_record *t = &c->kr.tenants[i];
		const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(&c->cfg, t->name);
		struct ekmfs_kek_record *cur = ekmfs_tenant_kek(t, t->current_version);
		uint32_t days = ekmfs_config_rotation_days(&c->cfg, t->name);
		uint64_t interval = tc ? tc->min_cmk_change_interval :
				    EKMFS_DEFAULT_MIN_CMK_CHANGE_INTERVAL;
		time_t due = t->last_rotation + (time_t)days * 86400;
		bool cmk_changed = ekmfs_tenant_cmk_changed(t);
		/* The first change of the CMK set at creation is not held back. */
		time_t cmk_next = cmk_changed ? t->last_cmk_change + (time_t)interval :
				  t->last_cmk_change;

		if (jo) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "name", json_object_new_string(t->name));
			json_object_object_add(o, "id", json_object_new_int64(t->id));
			json_object_object_add(o, "provider", json_object_new_string(t->provider));
			json_object_object_add(o, "current_version",
					       json_object_new_int64(t->current_version));
			json_object_object_add(o, "cmk_ref", json_object_new_string(
						       cur ? cur->wrapped.cmk_ref : ""));
			json_object_object_add(o, "cmk_version", json_object_new_string(
						       cur ? cur->wrapped.cmk_version : ""));
			json_object_object_add(o, "last_rotation", jtime(t->last_rotation));
			json_object_object_add(o, "rotation_days", json_object_new_int64(days));
			json_object_object_add(o, "next_rotation_due", jtime(due));
			json_object_object_add(o, "rotation_overdue", json_object_new_boolean(due <= now));
			json_object_object_add(o, "last_cmk_change", jtime(t->last_cmk_change));
			json_object_object_add(o, "cmk_changed", json_object_new_boolean(cmk_changed));
			json_object_object_add(o, "next_cmk_change_allowed", jtime(cmk_next));
			jk = json_object_new_array();
			json_object_object_add(o, "keks", jk);
			json_object_array_add(jt, o);
		} else {
			printf("tenant %s (id %u, provider %s)\n", t->name, t->id, t->provider);
			printf("  current KEK:     v%u, wrapped by CMK %s version %s\n",
			       t->current_version, cur ? cur->wrapped.cmk_ref : "?",
			       cur ? cur->wrapped.cmk_version : "?");
			ekmfs_time_rfc3339(t->last_rotation, t1, sizeof(t1));
			ekmfs_time_rfc3339(due, t2, sizeof(t2));
			fmt_duration((int64_t)(due - now), d, sizeof(d));
			printf("  last rotation:   %s; next due %s (%s %s, every %u days)\n", t1, t2,
			       due > now ? "in" : "OVERDUE by", d, days);
			ekmfs_time_rfc3339(t->last_cmk_change, t1, sizeof(t1));
			ekmfs_time_rfc3339(cmk_next, t2, sizeof(t2));
			if (cmk_changed)
				printf("  last CMK change: %s; next allowed %s\n", t1,
				       cmk_next > now ? t2 : "now");
			else
				printf("  last CMK change: none (the CMK set at creation, %s); "
				       "a change is allowed now\n", t1);
			printf("  KEK versions:\n");
		}
		for (size_t j = 0; j < t->nkeks; j++) {
			struct ekmfs_kek_record *k = &t->keks[j];
			uint64_t files = rot_pass_refs(scan, t->id, k->version);

			if (jk) {
				json_object *o = json_object_new_object();

				json_object_object_add(o, "version", json_object_new_int64(k->version));
				json_object_object_add(o, "state", json_object_new_string(
							       ekmfs_kek_state_name(k->state)));
				json_object_object_add(o, "created", jtime(k->created));
				json_object_object_add(o, "cmk_ref",
						       json_object_new_string(k->wrapped.cmk_ref));
				json_object_object_add(o, "cmk_version",
						       json_object_new_string(k->wrapped.cmk_version));
				json_object_object_add(o, "files", json_object_new_int64((int64_t)files));
				json_object_array_add(jk, o);
			} else {
				ekmfs_time_rfc3339(k->created, t1, sizeof(t1));
				printf("    v%-5u %-9s created %s  CMK %s/%s  %llu files%s\n",
				       k->version, ekmfs_kek_state_name(k->state), t1,
				       k->wrapped.cmk_ref[0] ? k->wrapped.cmk_ref : "-",
				       k->wrapped.cmk_version[0] ? k->wrapped.cmk_version : "-",
				       (unsigned long long)files,
				       k->version == t->current_version ? "  (current)" : "");
			}
		}
	}
	if (jo) {
		jprint(jo);
	} else {
		printf("files: %llu (%llu empty, %llu with an unreadable header)\n",
		       (unsigned long long)scan->counts.files,
		       (unsigned long long)scan->counts.empty,
		       (unsigned long long)scan->counts.unreadable_headers);
		print_misplaced(c, scan);
	}
	report_skips(c, scan);
	return scan->nskips ? ROT_SKIPPED : ROT_OK;
}

int report_rewrap(struct rot_ctx *c, const struct rot_pass *last, const struct rot_counts *total,
		  uint64_t remaining, unsigned passes, double seconds)
{
	int code = (last->nskips || remaining) ? ROT_SKIPPED : ROT_OK;
	/* Files of the volume per second of the whole run (all passes). */
	double rate = seconds > 0 ? (double)last->counts.files / seconds : 0;

	report_skips(c, last);
	if (c->opt.json) {
		json_object *o = jcommon(c, code == ROT_OK ? "done" : "skipped", code);
		json_object *r = json_object_new_array();

		if (c->new_version)
			json_object_object_add(o, "new_version",
					       json_object_new_int64(c->new_version));
		json_object_object_add(o, "target_version",
				       json_object_new_int64(c->trec->current_version));
		json_object_object_add(o, "passes", json_object_new_int(passes));
		json_object_object_add(o, "files", json_object_new_int64((int64_t)last->counts.files));
		json_object_object_add(o, "rewrapped", json_object_new_int64((int64_t)total->rewrapped));
		json_object_object_add(o, "stale_slots_cleared",
				       json_object_new_int64((int64_t)total->cleared));
		json_object_object_add(o, "already_current",
				       json_object_new_int64((int64_t)last->counts.current));
		json_object_object_add(o, "empty", json_object_new_int64((int64_t)last->counts.empty));
		json_object_object_add(o, "other_tenant",
				       json_object_new_int64((int64_t)last->counts.other_tenant));
		json_object_object_add(o, "remaining_on_old_versions",
				       json_object_new_int64((int64_t)remaining));
		json_object_object_add(o, "skipped", jskips(last));
		for (size_t i = 0; i < c->nretired; i++)
			json_object_array_add(r, json_object_new_int64(c->retired[i]));
		json_object_object_add(o, "retired_versions", r);
		json_object_object_add(o, "seconds", json_object_new_double(seconds));
		json_object_object_add(o, "files_per_second", json_object_new_double(rate));
		jprint(o);
	}
	if (!c->opt.quiet) {
		FILE *out = c->opt.json ? stderr : stdout;

		if (c->opt.dry_run) {
			fprintf(out, "ekmfs-rotate: dry run: %llu files would be re-wrapped to "
				"KEK v%u of tenant '%s', %llu stale slots cleared; %llu already "
				"current, %llu empty, %zu would be skipped; nothing was changed\n",
				(unsigned long long)total->rewrapped,
				c->new_version ? c->new_version : c->trec->current_version,
				c->trec->name, (unsigned long long)total->cleared,
				(unsigned long long)last->counts.current,
				(unsigned long long)last->counts.empty, last->nskips);
		} else {
			fprintf(out, "ekmfs-rotate: tenant '%s' now on KEK v%u: %llu files "
				"re-wrapped, %llu stale slots cleared, %llu empty, %zu skipped, "
				"%llu left on older versions (%u passes, %.2f s, %.0f files/s)\n",
				c->trec->name, c->trec->current_version,
				(unsigned long long)total->rewrapped,
				(unsigned long long)total->cleared,
				(unsigned long long)last->counts.empty, last->nskips,
				(unsigned long long)remaining, passes, seconds, rate);
			for (size_t i = 0; i < c->nretired; i++)
				fprintf(out, "ekmfs-rotate: KEK v%u of tenant '%s' retired (it still "
					"opens old backups; 'retire --destroy' removes it)\n",
					c->retired[i], c->trec->name);
		}
	}
	if (code != ROT_OK && !c->opt.dry_run)
		fprintf(stderr, "ekmfs-rotate: finished with %zu files skipped and %llu left on "
			"older KEK versions; fix or restore them and run 'ekmfs-rotate rewrap'\n",
			last->nskips, (unsigned long long)remaining);
	return code;
}

int report_migrate(struct rot_ctx *c, const struct rot_pass *last,
		   const struct rot_counts *total, uint64_t remaining, unsigned passes,
		   double seconds)
{
	int code = (last->nskips || remaining) ? ROT_SKIPPED : ROT_OK;
	FILE *out = c->opt.json ? stderr : stdout;
	char to[512] = "";
	size_t len = 0;

	for (unsigned i = 0; i < c->cfg.ntenants && len < sizeof(to); i++)
		if (last->moved_to[i])
			len += (size_t)snprintf(to + len, sizeof(to) - len, "%s%llu to '%s'",
						len ? ", " : "",
						(unsigned long long)last->moved_to[i],
						c->cfg.tenants[i].name);
	report_skips(c, last);
	if (c->opt.json) {
		json_object *o = jcommon(c, code == ROT_OK ? "done" : "skipped", code);
		json_object *jt = json_object_new_object();
		json_object *jc = json_object_new_array();

		for (unsigned i = 0; i < c->cfg.ntenants; i++)
			if (last->moved_to[i])
				json_object_object_add(jt, c->cfg.tenants[i].name,
						       json_object_new_int64((int64_t)
									     last->moved_to[i]));
		for (size_t i = 0; i < c->ncreated; i++)
			json_object_array_add(jc, json_object_new_string(c->created[i]));
		json_object_object_add(o, "passes", json_object_new_int((int)passes));
		json_object_object_add(o, "files", json_object_new_int64((int64_t)last->counts.files));
		json_object_object_add(o, "migrated", json_object_new_int64((int64_t)total->rewrapped));
		json_object_object_add(o, "migrated_to", jt);
		json_object_object_add(o, "stale_slots_cleared",
				       json_object_new_int64((int64_t)total->cleared));
		/* after the run (the last pass): every file at home */
		json_object_object_add(o, "in_place",
				       json_object_new_int64((int64_t)last->counts.current));
		json_object_object_add(o, "not_selected",
				       json_object_new_int64((int64_t)last->counts.other_tenant));
		json_object_object_add(o, "empty", json_object_new_int64((int64_t)last->counts.empty));
		json_object_object_add(o, "remaining_misplaced",
				       json_object_new_int64((int64_t)remaining));
		json_object_object_add(o, "tenants_created", jc);
		json_object_object_add(o, "skipped", jskips(last));
		json_object_object_add(o, "seconds", json_object_new_double(seconds));
		jprint(o);
	}
	if (!c->opt.quiet) {
		if (c->opt.dry_run)
			fprintf(out, "ekmfs-rotate: dry run: %llu files would move to another "
				"tenant%s%s%s, %llu stale slots cleared; %llu already in place, "
				"%llu empty, %llu not selected, %zu would be skipped; nothing was "
				"changed\n", (unsigned long long)total->rewrapped, len ? " (" : "",
				to, len ? ")" : "", (unsigned long long)total->cleared,
				(unsigned long long)last->counts.current,
				(unsigned long long)last->counts.empty,
				(unsigned long long)last->counts.other_tenant, last->nskips);
		else
			fprintf(out, "ekmfs-rotate: migrate%s%s: %llu files moved%s%s%s, %llu stale "
				"slots cleared; now %llu in place, %llu empty, %llu not "
				"selected, %zu skipped, %llu left misplaced (%u passes, %.2f s)\n",
				c->opt.tenant ? " --tenant " : "", c->opt.tenant ? c->opt.tenant : "",
				(unsigned long long)total->rewrapped, len ? " (" : "", to,
				len ? ")" : "", (unsigned long long)total->cleared,
				(unsigned long long)last->counts.current,
				(unsigned long long)last->counts.empty,
				(unsigned long long)last->counts.other_tenant, last->nskips,
				(unsigned long long)remaining, passes, seconds);
	}
	if (code != ROT_OK && !c->opt.dry_run)
		fprintf(stderr, "ekmfs-rotate: finished with %zu files skipped and %llu left "
			"misplaced; fix the causes above and run 'ekmfs-rotate migrate' again\n",
			last->nskips, (unsigned long long)remaining);
	return code;
}
