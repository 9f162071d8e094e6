/*
 * parallel.h - a small fixed pool of threads for block crypto.
 *
 * Owns: spreading the independent parts of one request (ranges of blocks to
 * seal or open) over the CPUs. The pool has one thread per online CPU but
 * one (at most EKMFS_PARALLEL_MAX - 1), started on first use; the calling
 * thread always works on its own job too, so a job completes even when every
 * pool thread is busy with other requests. Pool threads block all signals.
 */
#ifndef EKMFS_PARALLEL_H
#define EKMFS_PARALLEL_H

#define EKMFS_PARALLEL_MAX 8

/* How many threads may work on one job: the pool plus the caller (>= 1). */
unsigned ekmfs_parallel_width(void);

/* Call fn(arg, part) once for every part in [0, nparts), on the pool and the
 * calling thread; returns when all calls have returned. fn must not block
 * on other jobs. */
void ekmfs_parallel_run(void (*fn)(void *arg, unsigned part), void *arg,
			unsigned nparts);

#endif
