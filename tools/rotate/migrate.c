/*
 * migrate.c - ekmfs-rotate migrate: re-home files between tenants.
 *
 * Owns: the migrate command - creating the target tenants the keyring
 * lacks, loading every tenant's KEKs, the passes, and what remains. The
 * per-file decision is migrate_file() in rewrap.c (it shares the two-slot
 * protocol with the KEK re-wrap); the summary is report_migrate() in
 * report.c and the records rot_audit_migrate() in audit.c.
 *
 * Divisions:
 *   1. target tenants missing from the keyring
 *   2. the command (its passes run in passes.c)
 *
 * Every file routes by ekmfs_config_route(cfg, path, started): one instant
 * for the whole run, so a tenant whose enforce_from falls during the run
 * does not split it in two, and a rerun sees the same policy the daemon
 * applies to new files by then.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ekmfs/keys.h"
#include "ekmfs/util.h"
#include "rotate.h"

/* ---- 1. target tenants ---- */

/* A configured tenant that routes new files to itself now (enabled, past
 * its enforce_from) is a possible target; the daemon creates its keyring
 * record at mount, but migrate may run on a volume no daemon has mounted
 * since the configuration changed. */
static int create_targets(struct rot_ctx *c)
{
	for (unsigned i = 1; i < c->cfg.ntenants; i++) {
		const struct ekmfs_tenant_config *tc = &c->cfg.tenants[i];
		uint32_t id = 0;
		int ret;

		if (c->opt.tenant && strcmp(tc->name, c->opt.tenant) != 0)
			continue;
		if (!ekmfs_tenant_enforced(tc, c->started) ||
		    ekmfs_keyring_tenant(&c->kr, tc->name))
			continue;
		ret = ekmfs_keys_create_tenant(c->backing_fd, &c->vol, tc, c->mk, &id);
		if (ret == -EEXIST)
			continue; /* a daemon made it meanwhile */
		if (ret)
			return ret;
		ret = keys_reread(c);
		if (ret)
			return ret;
		if (c->ncreated < EKMFS_ARRAY_SIZE(c->created))
			memcpy(c->created[c->ncreated++], tc->name, sizeof(c->created[0]));
		/* The same pair of records the daemon writes when it creates one. */
		rot_audit_tenant(c, tc->name, "tenant_created", "success", 1, NULL,
				 "configured tenant missing from the keyring: record and KEK v1 "
				 "made by ekmfs-rotate migrate", NULL);
		rot_audit_tenant(c, tc->name, "cmk_set", "success", 1, NULL,
				 "the tenant's CMK wraps its KEK v1", NULL);
		if (!c->opt.quiet)
			fprintf(c->opt.json ? stderr : stdout, "ekmfs-rotate: tenant '%s' created "
				"in the keyring (id %u, KEK v1 under its CMK)\n", tc->name, id);
	}
	return 0;
}

/* ---- 2. the command ---- */

int cmd_migrate(struct rot_ctx *c)
{
	struct rot_pass goal = { .migrate = true, .filter = c->opt.tenant };
	struct rot_run run;
	int ret, code;

	/* A typo in paths would leave files silently on the wrong tenant: the
	 * same check that refuses a mount (docs/TENANTS.md). */
	ret = ekmfs_config_check_paths(&c->cfg, c->backing_fd);
	if (ret)
		return report_failure_then(c, ret, "tenant paths", THEN_UNCHANGED);
	if (!c->opt.dry_run) {
		ret = create_targets(c);
		if (ret)
			return report_failure_then(c, ret, "creating a tenant", c->ncreated ?
						   THEN_NOTHING_TO_SAY : THEN_UNCHANGED);
	}
	ret = keys_load_all(c);
	if (ret)
		return report_failure_then(c, ret, "loading the KEKs", c->ncreated ?
					   THEN_NOTHING_TO_SAY : THEN_UNCHANGED);
	for (size_t i = 0; i < c->nload_errs; i++)
		fprintf(stderr, "ekmfs-rotate: warning: %s; its files are skipped\n",
			c->load_errs[i].msg);
	rot_audit_tenant(c, c->opt.tenant, "migrate_start", "success", 0, NULL,
			 c->opt.tenant ? "re-homing the files that route to this tenant or are "
			 "its own" : "re-homing every file to the tenant its path routes to",
			 NULL);
	/* Files renamed across a boundary while we run are caught by the next
	 * pass. */
	ret = rot_run_passes(c, &goal, "migrate", &run);
	if (ret) {
		code = report_failure_then(c, ret, "migrate", THEN_CONSISTENT);
		goto out;
	}
	code = report_migrate(c, &run.last, &run.total, run.remaining, run.passes, run.seconds);
	rot_audit_migrate(c, &run.last, &run.total, run.remaining, run.passes);
out:
	rot_run_free(&run);
	return code;
}
