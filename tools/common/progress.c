/*
 * progress.c - the progress of a long job on stderr (progress.h).
 *
 * Moved here from ekmfs-rotate so that ekmfs-admin's long commands (verify,
 * import-plaintext, backup-manifest) show the same bar. The drawing thread
 * and whoever prints (tool_progress_hold) share mu, so a line the job
 * prints never lands in the middle of the bar.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/util.h"
#include "progress.h"
#include "tool.h"

struct tool_progress {
	struct tool_progress_opts o;
	atomic_uint_fast64_t own;    /* the counter when o.done was NULL */
	bool draw;                   /* shown at all */
	bool tty;                    /* as a redrawn bar */
	bool drawn;                  /* something was printed */
	bool on_screen;              /* the bar is on the terminal line now */
	bool held;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct timespec start;
};

static const char *force(void)
{
	const char *e = getenv("EKMFS_PROGRESS");

	return e ? e : "";
}

static bool as_tty(void)
{
	return strcmp(force(), "tty") == 0 ||
	       (strcmp(force(), "off") != 0 && isatty(STDERR_FILENO));
}

bool tool_progress_shown(enum tool_progress_show show)
{
	if (show == TOOL_SHOW_NEVER || strcmp(force(), "off") == 0)
		return false;
	return show == TOOL_SHOW_ALWAYS || as_tty();
}

static double elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* n in the progress's unit, for humans: "12" files or "1.5 GiB". */
static void amount(const struct tool_progress *p, double n, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	size_t u = 0;

	if (p->o.unit == TOOL_FILES) {
		snprintf(out, len, "%.0f", n);
		return;
	}
	while (n >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		n /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", n, units[u]);
}

static uint64_t done_now(const struct tool_progress *p)
{
	return atomic_load(p->o.done);
}

/* With mu held. */
static void draw(struct tool_progress *p, bool final)
{
	uint64_t done = done_now(p), total = p->o.total;
	double secs = elapsed(&p->start);
	double rate = secs > 0 ? (double)done / secs : 0;
	double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
	unsigned pct = total ? (unsigned)(100 * (done < total ? done : total) / total) : 100;
	const char *what = p->o.unit == TOOL_FILES ? " files" : "";
	char d[32], t[32], r[32];

	amount(p, (double)done, d, sizeof(d));
	amount(p, (double)total, t, sizeof(t));
	amount(p, rate, r, sizeof(r));
	if (p->tty) {
		char bar[31];
		unsigned fill = pct * 30 / 100;

		memset(bar, '#', fill);
		memset(bar + fill, '.', 30 - fill);
		bar[30] = '\0';
		fprintf(stderr, "\r%s [%s] %3u%% %s/%s%s, %s%s/s, ETA %.0fs \033[K",
			p->o.label, bar, pct, d, t, what, r, what, final ? 0.0 : eta);
		p->on_screen = !final;
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "%s: %s: %s/%s%s (%u%%), %s%s/s, ETA %.0fs\n", tool_prog(),
			p->o.label, d, t, what, pct, r, what, final ? 0.0 : eta);
	}
	p->drawn = true;
	fflush(stderr);
}

static void *progress_thread(void *arg)
{
	struct tool_progress *p = arg;
	long period_ms = p->draw && p->tty ? 200 : 1000;
	unsigned ticks = 0;

	pthread_mutex_lock(&p->mu);
	if (p->o.tick)
		p->o.tick(p->o.tick_arg, done_now(p), p->o.total);
	/* On a terminal the bar is there from the start, so that even a
	 * short job ends with its count and rate. */
	if (p->draw && p->tty && !p->held)
		draw(p, false);
	while (!p->stop) {
		struct timespec until;

		ekmfs_deadline_ms(&until, period_ms);
		pthread_cond_timedwait(&p->cv, &p->mu, &until);
		if (p->stop)
			break;
		ticks++;
		if (p->o.tick && (period_ms == 1000 || ticks % 5 == 0))
			p->o.tick(p->o.tick_arg, done_now(p), p->o.total);
		/* a plain line every 5 s when not on a terminal */
		if (p->draw && !p->held && (p->tty || ticks % 5 == 0))
			draw(p, false);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct tool_progress *tool_progress_start(const struct tool_progress_opts *o)
{
	struct tool_progress *p;
	bool draw = tool_progress_shown(o->show);

	if (!draw && !o->tick)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->o = *o;
	if (!p->o.done)
		p->o.done = &p->own;
	p->draw = draw;
	p->tty = as_tty();
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	if (pthread_create(&p->thread, NULL, progress_thread, p) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
		return NULL;
	}
	return p;
}

void tool_progress_add(struct tool_progress *p, uint64_t n)
{
	if (p)
		atomic_fetch_add(p->o.done, n);
}

void tool_progress_hold(struct tool_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->on_screen) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->on_screen = false;
	}
	p->held = true;
	pthread_mutex_unlock(&p->mu);
	fflush(stdout);
}

void tool_progress_release(struct tool_progress *p)
{
	if (!p)
		return;
	fflush(stdout);
	fflush(stderr);
	pthread_mutex_lock(&p->mu);
	p->held = false;
	pthread_mutex_unlock(&p->mu);
}

void tool_progress_stop(struct tool_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	if (p->drawn)
		draw(p, true); /* a run that showed progress also shows its end */
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
