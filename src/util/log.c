/*
 * log.c - where messages go, and the one-line "last error".
 *
 * Divisions: the log sink (stderr until the daemon detaches, then syslog);
 * the thread-local last-error text used by every library call that returns
 * -errno with more to say than strerror().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "ekmfs/util.h"

static bool log_to_syslog;
/* Atomic: the daemon's SIGHUP reload changes it while workers log. */
static _Atomic enum ekmfs_log_level log_level = EKMFS_LOG_INFO;

void ekmfs_log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_to_syslog = true;
}

void ekmfs_log_set_level(enum ekmfs_log_level level)
{
	log_level = level;
}

void ekmfs_log(enum ekmfs_log_level level, const char *fmt, ...)
{
	static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;
	int saved = errno;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_to_syslog)
		syslog(syslog_prio[level], "%s", line);
	else
		fprintf(stderr, "ekmfs: %s\n", line);
	errno = saved;
}

/* ---- last error ---- */

static __thread char last_error[512];

void ekmfs_seterr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *ekmfs_lasterr(void)
{
	return last_error;
}

void ekmfs_clearerr(void)
{
	last_error[0] = '\0';
}
