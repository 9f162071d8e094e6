/*
 * progress.c - progress of a pass on stderr.
 *
 * On a terminal: one line redrawn five times a second, a bar with the count,
 * the rate and the time left. Otherwise (a log, a pipe, cron): a plain line
 * every five seconds, so a long run leaves a readable trace and a short one
 * none. A thread of its own samples the workers' shared counter; the workers
 * never print.
 *
 * The same thread publishes the progress of a run that changes something
 * (not --dry-run) in .ekmfs/rotate.progress once a second, whether or not
 * it prints: the daemon's metrics file exposes it (ekmfs_rotation_*), so a
 * monitoring system sees a scheduled or manual rotation move. One line:
 * "<pid> <done> <total> <label>"; removed when the pass ends.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "rotate.h"

struct rot_progress {
	const struct rot_pass *pass;
	uint64_t total;
	bool print;                  /* not -q */
	bool publish;                /* write ROT_PROGRESS_FILE */
	bool tty;
	bool drawn;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct timespec start;
};

static double elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void draw(struct rot_progress *pr, bool final)
{
	uint64_t done = atomic_load(&pr->pass->done);
	double secs = elapsed(&pr->start);
	double rate = secs > 0 ? (double)done / secs : 0;
	double eta = rate > 0 ? (double)(pr->total - done) / rate : 0;
	unsigned pct = pr->total ? (unsigned)(100 * done / pr->total) : 100;

	if (pr->tty) {
		char bar[31];
		unsigned fill = pct * 30 / 100;

		memset(bar, '#', fill);
		memset(bar + fill, '.', 30 - fill);
		bar[30] = '\0';
		fprintf(stderr, "\r%s [%s] %3u%% %llu/%llu files, %.0f files/s, ETA %.0fs \033[K",
			pr->pass->label, bar, pct, (unsigned long long)done,
			(unsigned long long)pr->total, rate, final ? 0.0 : eta);
		if (final)
			fputc('\n', stderr);
		pr->drawn = true;
	} else {
		fprintf(stderr, "ekmfs-rotate: %s: %llu/%llu files (%u%%), %.0f files/s, "
			"ETA %.0fs\n", pr->pass->label, (unsigned long long)done,
			(unsigned long long)pr->total, pct, rate, final ? 0.0 : eta);
		pr->drawn = true;
	}
	fflush(stderr);
}

/* Replace .ekmfs/rotate.progress atomically; best effort (it is only
 * for monitoring). */
static void publish(struct rot_progress *pr)
{
	int dirfd = pr->pass->ctx->backing_fd, fd;
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "%ld %llu %llu %s\n", (long)getpid(),
		     (unsigned long long)atomic_load(&pr->pass->done),
		     (unsigned long long)pr->total, pr->pass->label);
	fd = ekmfs_io->openat(dirfd, EKMFS_META_DIR "/" ROT_PROGRESS_FILE ".tmp",
			      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (ekmfs_write_full(fd, line, (size_t)n, 0) == 0)
		(void)ekmfs_io->renameat2(dirfd, EKMFS_META_DIR "/" ROT_PROGRESS_FILE ".tmp",
					  dirfd, EKMFS_META_DIR "/" ROT_PROGRESS_FILE, 0);
	close(fd);
}

static void *progress_thread(void *arg)
{
	struct rot_progress *pr = arg;
	long period_ms = pr->tty ? 200 : 1000;
	unsigned ticks = 0;

	pthread_mutex_lock(&pr->mu);
	if (pr->publish)
		publish(pr);
	while (!pr->stop) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (period_ms % 1000) * 1000000L;
		until.tv_sec += period_ms / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&pr->cv, &pr->mu, &until);
		if (pr->stop)
			break;
		ticks++;
		if (pr->publish && (pr->tty ? ticks % 5 == 0 : true))
			publish(pr);
		/* a line every 5 s when not on a terminal */
		if (pr->print && (pr->tty || ticks % 5 == 0))
			draw(pr, false);
	}
	pthread_mutex_unlock(&pr->mu);
	return NULL;
}

struct rot_progress *progress_start(const struct rot_pass *p, uint64_t total, bool quiet)
{
	struct rot_progress *pr;
	bool publish = !p->ctx->opt.dry_run;

	if (quiet && !publish)
		return NULL;
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return NULL;
	pr->pass = p;
	pr->total = total;
	pr->print = !quiet;
	pr->publish = publish;
	pr->tty = isatty(STDERR_FILENO);
	pthread_mutex_init(&pr->mu, NULL);
	pthread_cond_init(&pr->cv, NULL);
	clock_gettime(CLOCK_MONOTONIC, &pr->start);
	if (pthread_create(&pr->thread, NULL, progress_thread, pr) != 0) {
		free(pr);
		return NULL;
	}
	return pr;
}

void progress_stop(struct rot_progress *pr)
{
	if (!pr)
		return;
	pthread_mutex_lock(&pr->mu);
	pr->stop = true;
	pthread_cond_signal(&pr->cv);
	pthread_mutex_unlock(&pr->mu);
	pthread_join(pr->thread, NULL);
	if (pr->publish)
		(void)ekmfs_io->unlinkat(pr->pass->ctx->backing_fd, EKMFS_META_DIR "/" ROT_PROGRESS_FILE, 0);
	if (pr->drawn)
		draw(pr, true); /* a run that showed progress also shows its end */
	pthread_mutex_destroy(&pr->mu);
	pthread_cond_destroy(&pr->cv);
	free(pr);
}
