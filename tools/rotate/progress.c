/*
 * progress.c - the progress of a pass: drawn by the tools' shared progress
 * bar (tools/common/progress.c), published for the daemon's metrics here.
 *
 * On a terminal the bar is redrawn five times a second; otherwise (a log, a
 * pipe, cron) a plain line every five seconds, so a long run leaves a
 * readable trace and a short one none. -q draws nothing.
 *
 * A run that changes something (not --dry-run) publishes its progress in
 * .ekmfs/rotate.progress once a second, whether or not it prints: the
 * daemon's metrics file exposes it (ekmfs_rotation_*), so a monitoring
 * system sees a scheduled or manual rotation move. One line:
 * "<pid> <done> <total> <label>"; removed when the pass ends.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "progress.h"
#include "rotate.h"

struct rot_progress {
	const struct rot_pass *pass;
	struct tool_progress *shown;
	bool publish;
};

/* Replace .ekmfs/rotate.progress atomically; best effort (it is only
 * for monitoring). */
static void publish(void *arg, uint64_t done, uint64_t total)
{
	const struct rot_progress *pr = arg;
	int dirfd = pr->pass->ctx->backing_fd, fd;
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "%ld %llu %llu %s\n", (long)getpid(),
		     (unsigned long long)done, (unsigned long long)total, pr->pass->label);
	fd = ekmfs_io->openat(dirfd, EKMFS_META_DIR "/" ROT_PROGRESS_FILE ".tmp",
			      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (ekmfs_write_full(fd, line, (size_t)n, 0) == 0)
		(void)ekmfs_io->renameat2(dirfd, EKMFS_META_DIR "/" ROT_PROGRESS_FILE ".tmp",
					  dirfd, EKMFS_META_DIR "/" ROT_PROGRESS_FILE, 0);
	close(fd);
}

struct rot_progress *progress_start(const struct rot_pass *p, uint64_t total, bool quiet)
{
	struct rot_progress *pr = calloc(1, sizeof(*pr));
	struct tool_progress_opts o = {
		.label = p->label, .unit = TOOL_FILES, .total = total,
		/* the workers' counter; only read here */
		.done = (atomic_uint_fast64_t *)&p->done,
		.show = quiet ? TOOL_SHOW_NEVER : TOOL_SHOW_ALWAYS,
	};

	if (!pr)
		return NULL;
	pr->pass = p;
	pr->publish = !p->ctx->opt.dry_run;
	if (pr->publish) {
		o.tick = publish;
		o.tick_arg = pr;
	}
	pr->shown = tool_progress_start(&o);
	if (!pr->shown) {
		free(pr);
		return NULL;
	}
	return pr;
}

void progress_stop(struct rot_progress *pr)
{
	if (!pr)
		return;
	tool_progress_stop(pr->shown);
	if (pr->publish)
		(void)ekmfs_io->unlinkat(pr->pass->ctx->backing_fd,
					 EKMFS_META_DIR "/" ROT_PROGRESS_FILE, 0);
	free(pr);
}
