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
 *   2. the passes
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
		ret = ekmfs_keys_create_tenant(c->backing_fd, &c->vol, tc, &id);
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

/* ---- 2. the passes ---- */

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int migrate_pass(struct rot_ctx *c, struct rot_pass *p, enum rot_mode mode,
			const char *label, struct rot_paths *paths)
{
	int ret;

	memset(p, 0, sizeof(*p));
	ret = rot_walk(c->backing_fd, paths);
	if (ret)
		return ret;
	p->ctx = c;
	p->mode = mode;
	p->migrate = true;
	p->filter = c->opt.tenant;
	p->paths = paths;
	p->jobs = c->opt.jobs;
	p->batch = rot_batch_size(c->opt.jobs);
	p->label = label;
	return rot_pass_run(p);
}

static int migrate_fail(struct rot_ctx *c, int err, const char *what)
{
	const char *msg = ekmfs_lasterr();
	int code = err == -EWOULDBLOCK || err == -EBUSY ? ROT_REFUSED : ROT_ERROR;

	if (msg[0])
		report_outcome(c, code == ROT_REFUSED ? "refused" : "error", code, "%s", msg);
	else
		report_outcome(c, "error", code, "%s: %s", what, strerror(-err));
	return code;
}

int cmd_migrate(struct rot_ctx *c)
{
	struct rot_counts total = { 0 };
	struct rot_paths paths = { 0 };
	struct rot_pass p = { 0 };
	uint64_t moved_to[EKMFS_MAX_TENANTS] = { 0 };
	uint64_t remaining = 0;
	unsigned passes = 0;
	double t0 = now_seconds();
	char label[64];
	bool clean = false;
	int ret, code;

	/* A typo in paths would leave files silently on the wrong tenant: the
	 * same check that refuses a mount (docs/TENANTS.md). */
	ret = ekmfs_config_check_paths(&c->cfg, c->backing_fd);
	if (ret)
		return migrate_fail(c, ret, "tenant paths");
	if (!c->opt.dry_run) {
		ret = create_targets(c);
		if (ret)
			return migrate_fail(c, ret, "creating a tenant");
	}
	ret = keys_load_all(c);
	if (ret)
		return migrate_fail(c, ret, "loading the KEKs");
	for (size_t i = 0; i < c->nload_errs; i++)
		fprintf(stderr, "ekmfs-rotate: warning: %s; its files are skipped\n",
			c->load_errs[i].msg);
	rot_audit_tenant(c, c->opt.tenant, "migrate_start", "success", 0, NULL,
			 c->opt.tenant ? "re-homing the files that route to this tenant or are "
			 "its own" : "re-homing every file to the tenant its path routes to",
			 NULL);
	while (!clean && passes < (c->opt.dry_run ? 1u : ROT_MAX_PASSES)) {
		if (passes) {
			rot_paths_free(&paths);
			rot_pass_free(&p);
		}
		passes++;
		snprintf(label, sizeof(label), "%s pass %u", c->opt.dry_run ? "dry run" :
			 "migrate", passes);
		ret = migrate_pass(c, &p, c->opt.dry_run ? MODE_DRYRUN : MODE_REWRAP, label,
				   &paths);
		total.rewrapped += p.counts.rewrapped;
		total.cleared += p.counts.cleared;
		for (unsigned i = 0; i < c->cfg.ntenants; i++)
			moved_to[i] += p.moved_to[i];
		if (ret)
			break;
		/* Files renamed across a boundary while we ran are caught by the
		 * next pass. */
		clean = p.counts.rewrapped == 0 && p.counts.cleared == 0;
	}
	if (!ret && !clean && !c->opt.dry_run) {
		struct rot_pass q;
		struct rot_paths qp;

		ret = migrate_pass(c, &q, MODE_DRYRUN, "counting what remains", &qp);
		remaining = q.counts.rewrapped + q.counts.cleared;
		rot_paths_free(&qp);
		rot_pass_free(&q);
	}
	if (ret) {
		code = migrate_fail(c, ret, "migrate");
		goto out;
	}
	/* The summary counts moves over every pass, per target. */
	memcpy(p.moved_to, moved_to, sizeof(moved_to));
	code = report_migrate(c, &p, &total, remaining, passes, now_seconds() - t0);
	rot_audit_migrate(c, &p, &total, remaining, passes);
out:
	rot_paths_free(&paths);
	rot_pass_free(&p);
	return code;
}
