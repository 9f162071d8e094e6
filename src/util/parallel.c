/*
 * parallel.c - a small fixed pool of threads for block crypto.
 *
 * Owns: the pool threads and the queue of jobs they share. A job is split
 * into parts; pool threads and the job's own caller take parts from the head
 * of the queue until none is left, and the caller waits for the last part
 * to finish. One mutex protects the queue and every job's counters; a part
 * is a few hundred microseconds of AES, so the lock is never contended for
 * long. The pool is started on first use (after the daemon has forked) and
 * lives until the process exits.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include "ekmfs/parallel.h"
#include "ekmfs/util.h"

struct job {
	void (*fn)(void *arg, unsigned part);
	void *arg;
	unsigned nparts;
	unsigned next;          /* next part to hand out */
	unsigned done;          /* parts finished */
	struct job *qnext;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;  /* a job was queued */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;  /* a job finished */
static struct job *head, *tail;                            /* protected by mu */
static unsigned nworkers;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* Take the next part of the head job; called with mu held. */
static struct job *take_part(unsigned *part)
{
	struct job *j = head;

	if (!j)
		return NULL;
	*part = j->next++;
	if (j->next == j->nparts) {
		head = j->qnext;
		if (!head)
			tail = NULL;
	}
	return j;
}

static void finish_part(struct job *j)
{
	if (++j->done == j->nparts)
		pthread_cond_broadcast(&done_cv);
}

static void *worker(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&mu);
	for (;;) {
		struct job *j;
		unsigned part;

		while (!(j = take_part(&part)))
			pthread_cond_wait(&work_cv, &mu);
		pthread_mutex_unlock(&mu);
		j->fn(j->arg, part);
		pthread_mutex_lock(&mu);
		finish_part(j);
	}
	return NULL;
}

static void pool_start(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = cpus < 1 ? 0 : (unsigned)cpus - 1;
	sigset_t all, old;
	pthread_attr_t attr;

	if (want > EKMFS_PARALLEL_MAX - 1)
		want = EKMFS_PARALLEL_MAX - 1;
	/* Signals belong to the session loop, never to a pool thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (unsigned i = 0; i < want; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, worker, NULL) != 0) {
			ekmfs_log(EKMFS_LOG_WARN, "crypto pool: started %u of %u threads", i,
				  want);
			break;
		}
		nworkers++;
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

unsigned ekmfs_parallel_width(void)
{
	pthread_once(&pool_once, pool_start);
	return nworkers + 1;
}

void ekmfs_parallel_run(void (*fn)(void *arg, unsigned part), void *arg,
			unsigned nparts)
{
	struct job j = { .fn = fn, .arg = arg, .nparts = nparts };
	struct job *got;
	unsigned part;

	if (nparts == 0)
		return;
	if (nparts == 1 || ekmfs_parallel_width() == 1) {
		for (part = 0; part < nparts; part++)
			fn(arg, part);
		return;
	}
	pthread_mutex_lock(&mu);
	if (tail)
		tail->qnext = &j;
	else
		head = &j;
	tail = &j;
	if (nparts - 1 >= nworkers)
		pthread_cond_broadcast(&work_cv);
	else
		for (part = 1; part < nparts; part++)
			pthread_cond_signal(&work_cv);
	/* Work on our own job (only ours: another job's caller will do its
	 * own parts, and we must not sleep on it). */
	while (j.next < j.nparts) {
		if (head == &j) {
			got = take_part(&part);
		} else {
			/* Our job is further down the queue: take a part out of
			 * order, leaving the queue as it is. */
			part = j.next++;
			got = &j;
			if (j.next == j.nparts) {
				struct job **pp = &head, *prev = NULL;

				for (; *pp != &j; prev = *pp, pp = &(*pp)->qnext)
					;
				*pp = j.qnext;
				if (tail == &j)
					tail = prev;
			}
		}
		pthread_mutex_unlock(&mu);
		got->fn(got->arg, part);
		pthread_mutex_lock(&mu);
		finish_part(got);
	}
	while (j.done < j.nparts)
		pthread_cond_wait(&done_cv, &mu);
	pthread_mutex_unlock(&mu);
}
