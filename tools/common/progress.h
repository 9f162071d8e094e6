/*
 * progress.h - the progress of a long job on stderr (tools/common/).
 *
 * On a terminal: one line, drawn at the start and redrawn five times a
 * second, a bar with the count, the rate and the time left; the final
 * count and rate stay on screen at the end. Not on a terminal: a plain line every
 * five seconds (TOOL_SHOW_ALWAYS: ekmfs-rotate, whose runs land in logs),
 * or nothing (TOOL_SHOW_TTY: ekmfs-admin). Only stderr is written, never
 * stdout, so --json output and manifests stay intact. A thread of its own
 * samples a shared counter; the workers never print.
 *
 * EKMFS_PROGRESS=tty draws as on a terminal whatever stderr is (tests),
 * EKMFS_PROGRESS=off never draws.
 */
#ifndef EKMFS_TOOL_PROGRESS_H
#define EKMFS_TOOL_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum tool_progress_unit { TOOL_FILES, TOOL_BYTES };

enum tool_progress_show {
	TOOL_SHOW_NEVER,        /* -q: nothing (the tick still runs) */
	TOOL_SHOW_TTY,          /* a bar on a terminal, nothing otherwise */
	TOOL_SHOW_ALWAYS,       /* a bar on a terminal, a line every 5 s otherwise */
};

struct tool_progress_opts {
	const char *label;                  /* "verify", "re-wrap pass 1" */
	enum tool_progress_unit unit;
	uint64_t total;                     /* of unit */
	/* The counter the work advances; NULL: the progress's own, advanced
	 * with tool_progress_add(). */
	atomic_uint_fast64_t *done;
	enum tool_progress_show show;
	/* Called once at the start and then about once a second, drawn or
	 * not (ekmfs-rotate publishes its progress for the daemon's metrics). */
	void (*tick)(void *arg, uint64_t done, uint64_t total);
	void *tick_arg;
};

/* Whether progress with `show` would be drawn here (a caller can skip the
 * walk that computes a total when it would not). */
bool tool_progress_shown(enum tool_progress_show show);

/* Start; NULL when there is nothing to draw or tick (or no memory: the job
 * runs without progress). Every function below accepts NULL. */
struct tool_progress *tool_progress_start(const struct tool_progress_opts *o);
void tool_progress_add(struct tool_progress *p, uint64_t n);
/* Around a line the job prints on stdout or stderr while the bar may be
 * on the terminal: hold erases the bar and keeps it away; release lets it
 * be drawn again. */
void tool_progress_hold(struct tool_progress *p);
void tool_progress_release(struct tool_progress *p);
/* Stop; a job that showed progress also shows its final count. */
void tool_progress_stop(struct tool_progress *p);

#endif
