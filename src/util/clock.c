/*
 * clock.c - deadlines for timed waits (ekmfs/util.h).
 *
 * Owns: turning "ms from now" into the absolute CLOCK_REALTIME time that
 * pthread_cond_timedwait takes (a condition variable's default clock), for
 * every thread that wakes periodically or waits with a bound.
 */
#include <time.h>

#include "ekmfs/util.h"

void ekmfs_deadline_ms(struct timespec *until, long ms)
{
	clock_gettime(CLOCK_REALTIME, until);
	until->tv_nsec += ms % 1000 * 1000000L;
	until->tv_sec += ms / 1000 + until->tv_nsec / 1000000000L;
	until->tv_nsec %= 1000000000L;
}
