/*
 * passes.c - running passes over every file of the volume.
 *
 * Owns: one pass (walk BACKING, run the workers of rewrap.c with the
 * caller's goal) and the repeat-until-clean loop that kek, rewrap and
 * migrate share. A file that a running daemon creates, or renames across a
 * tenant boundary, during a pass is caught by the next one; when a pass
 * still had work after ROT_MAX_PASSES (one for a dry run), a counting pass
 * that changes nothing says how many files are left.
 */
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "ekmfs/util.h"
#include "rotate.h"

double rot_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int rot_one_pass(struct rot_ctx *c, const struct rot_pass *goal, enum rot_mode mode,
		 const char *label, struct rot_pass *p, struct rot_paths *paths)
{
	int ret;

	memset(p, 0, sizeof(*p));
	ret = rot_walk(c->backing_fd, paths);
	if (ret)
		return ret;
	p->ctx = c;
	p->mode = mode;
	p->tenant_id = goal->tenant_id;
	p->target = goal->target;
	p->migrate = goal->migrate;
	p->filter = goal->filter;
	p->paths = paths;
	p->jobs = c->opt.jobs;
	p->batch = rot_batch_size(c->opt.jobs);
	p->label = label;
	return rot_pass_run(p);
}

int rot_run_passes(struct rot_ctx *c, const struct rot_pass *goal, const char *verb,
		   struct rot_run *run)
{
	unsigned max = c->opt.dry_run ? 1 : ROT_MAX_PASSES;
	double t0 = rot_now();
	bool clean = false;
	char label[64];
	int ret = 0;

	memset(run, 0, sizeof(*run));
	if (!c->opt.dry_run)
		rot_fence_start(c);
	while (!clean && run->passes < max) {
		struct rot_pass *p = &run->last;

		if (run->passes) {
			rot_paths_free(&run->paths);
			rot_pass_free(p);
		}
		run->passes++;
		snprintf(label, sizeof(label), "%s pass %u", c->opt.dry_run ? "dry run" : verb,
			 run->passes);
		ret = rot_one_pass(c, goal, c->opt.dry_run ? MODE_DRYRUN : MODE_REWRAP, label, p,
				   &run->paths);
		run->total.rewrapped += p->counts.rewrapped;
		run->total.cleared += p->counts.cleared;
		run->total.files += p->counts.files;
		for (size_t i = 0; i < EKMFS_ARRAY_SIZE(run->moved_to); i++)
			run->moved_to[i] += p->moved_to[i];
		if (ret)
			break;
		clean = p->counts.rewrapped == 0 && p->counts.cleared == 0;
	}
	if (!ret && !clean && !c->opt.dry_run) {
		struct rot_paths qp = { 0 };
		struct rot_pass q;

		ret = rot_one_pass(c, goal, MODE_DRYRUN, "counting what remains", &q, &qp);
		run->remaining = q.counts.rewrapped + q.counts.cleared;
		rot_paths_free(&qp);
		rot_pass_free(&q);
	}
	if (!c->opt.dry_run)
		rot_fence_stop();
	/* The summaries report moves over every pass, per target tenant. */
	memcpy(run->last.moved_to, run->moved_to, sizeof(run->moved_to));
	run->seconds = rot_now() - t0;
	return ret;
}

void rot_run_free(struct rot_run *run)
{
	rot_paths_free(&run->paths);
	rot_pass_free(&run->last);
}
