/*
 * log.c - where messages go, and the one-line "last error".
 *
 * Divisions: the log sink (stderr until the daemon detaches, then syslog,
 * or a log file of its own); the thread-local last-error text used by every
 * library call that returns -errno with more to say than strerror().
 *
 * Syslog is only chosen when something listens on /dev/log: glibc's
 * syslog() drops lines silently when nothing does (containers, minimal
 * installs), so without a listener the lines stay on stderr, which a
 * service manager's journal captures. A log file ([daemon] log_file) is
 * written with one write(2) per line in O_APPEND mode, so lines from many
 * threads never interleave, and reopened on request (SIGHUP, after
 * logrotate moved it away).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/util.h"

enum sink { SINK_STDERR, SINK_SYSLOG, SINK_FILE };

static _Atomic int sink = SINK_STDERR;
/* Atomic: the daemon's SIGHUP reload changes it while workers log. */
static _Atomic enum ekmfs_log_level log_level = EKMFS_LOG_INFO;
/* The log file: file_fd is replaced under file_mu (reopen), and written
 * under it, so a line never goes to a descriptor being closed. */
static pthread_mutex_t file_mu = PTHREAD_MUTEX_INITIALIZER;
static int file_fd = -1;
static char file_ident[32] = "ekmfs";

/* Whether a syslog daemon listens on /dev/log (a datagram or stream unix
 * socket that accepts a connection). */
static bool syslog_listens(void)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	struct stat st;

	if (stat(sa.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(types); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		if (fd >= 0)
			close(fd);
		if (ok)
			return true;
	}
	return false;
}

int ekmfs_log_use_syslog(const char *ident)
{
	if (!syslog_listens())
		return -ENOENT;
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	sink = SINK_SYSLOG;
	return 0;
}

int ekmfs_log_use_file(const char *ident, const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
		      O_NOCTTY, 0600);
	struct stat st;
	int old;

	if (fd < 0) {
		int err = errno;

		ekmfs_seterr("cannot open the log file %s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ekmfs_seterr("the log file %s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	pthread_mutex_lock(&file_mu);
	old = file_fd;
	file_fd = fd;
	snprintf(file_ident, sizeof(file_ident), "%s", ident);
	sink = SINK_FILE;
	pthread_mutex_unlock(&file_mu);
	if (old >= 0)
		close(old);
	return 0;
}

void ekmfs_log_set_level(enum ekmfs_log_level level)
{
	log_level = level;
}

static void write_file_line(enum ekmfs_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1200], when[32];
	struct timespec now;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s: %s\n", when,
		     now.tv_nsec / 1000000, file_ident, (int)getpid(), names[level], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	pthread_mutex_lock(&file_mu);
	if (file_fd >= 0 && write(file_fd, line, (size_t)n) < 0) {
		/* Nowhere left to say it: the line is lost. */
	}
	pthread_mutex_unlock(&file_mu);
}

void ekmfs_log(enum ekmfs_log_level level, const char *fmt, ...)
{
	static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;
	int saved = errno, to = sink;  /* one atomic load (clang refuses to switch on _Atomic) */

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	switch (to) {
	case SINK_SYSLOG:
		syslog(syslog_prio[level], "%s", line);
		break;
	case SINK_FILE:
		write_file_line(level, line);
		break;
	default:
		fprintf(stderr, "ekmfs: %s\n", line);
		break;
	}
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
