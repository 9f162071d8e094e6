/*
 * logsink.c - where the daemon's log lines go (fs.h).
 *
 * Owns the choice, made once the volume is mounted: [daemon] log_file when
 * set (reopened on SIGHUP, for log rotation); else, when the daemon
 * detaches, syslog if a syslog daemon listens on /dev/log; else stderr,
 * which stays open across the detach when it leads somewhere that keeps
 * lines (a journal stream socket or a regular file) and goes to /dev/null
 * otherwise (a terminal the daemon leaves, or a pipe whose reader waits for
 * its end), with a warning before it does. In the foreground (-f) the
 * lines go to stderr: a service manager's journal.
 *
 * A log file inside the backing directory would be a plaintext file in the
 * volume, and one under the mountpoint would be written through the daemon
 * itself: both are refused.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/util.h"
#include "fs.h"

static struct {
	char backing[PATH_MAX], mnt[PATH_MAX];
	char path[PATH_MAX];        /* the log file in use, "" = none */
} ls;

static bool is_under(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	return strcmp(dir, "/") == 0 ||
	       (strncmp(path, dir, len) == 0 && (path[len] == '/' || path[len] == '\0'));
}

/* path with its directory resolved (the file itself may not exist yet). */
static int real_log_path(const char *path, char *out)
{
	char dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	if (!realpath(dirname(dir), real)) {
		int err = errno;

		ekmfs_seterr("log_file %s: its directory: %s", path, strerror(err));
		return -err;
	}
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(real, "/") ? real : "",
			     basename(base)) >= PATH_MAX) {
		ekmfs_seterr("log_file %s: path too long", path);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int open_log_file(const char *path)
{
	char real[PATH_MAX];
	int ret = real_log_path(path, real);

	if (ret)
		return ret;
	if (is_under(real, ls.backing)) {
		ekmfs_seterr("log_file %s is inside the backing directory %s: the log would "
			     "be a plaintext file in the volume; put it elsewhere", path,
			     ls.backing);
		return -EINVAL;
	}
	if (is_under(real, ls.mnt)) {
		ekmfs_seterr("log_file %s is under the mountpoint %s: the daemon would write "
			     "its log through itself; put it elsewhere", path, ls.mnt);
		return -EINVAL;
	}
	ret = ekmfs_log_use_file("ekmfs", path);
	if (!ret)
		snprintf(ls.path, sizeof(ls.path), "%s", path);
	return ret;
}

int efs_log_start(const char *backing, const char *mnt, const char *log_file)
{
	snprintf(ls.backing, sizeof(ls.backing), "%s", backing);
	snprintf(ls.mnt, sizeof(ls.mnt), "%s", mnt);
	ls.path[0] = '\0';
	return log_file[0] ? open_log_file(log_file) : 0;
}

bool efs_log_detach(void)
{
	struct stat st;

	if (ls.path[0])
		return false;
	if (ekmfs_log_use_syslog("ekmfs") == 0)
		return false;
	if (fstat(STDERR_FILENO, &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISREG(st.st_mode))) {
		ekmfs_log(EKMFS_LOG_INFO, "no syslog daemon listens on /dev/log: logging to "
			  "stderr");
		return true;
	}
	ekmfs_log(EKMFS_LOG_WARN, "no syslog daemon listens on /dev/log and stderr is not a "
		  "file or a journal: the log is lost once the daemon detaches; set [daemon] "
		  "log_file, or run with -f under a service manager");
	return false;
}

void efs_log_reload(const char *log_file)
{
	char old[PATH_MAX];

	snprintf(old, sizeof(old), "%s", ls.path);
	if (!log_file)
		log_file = old;         /* the configuration did not load */
	if (!log_file[0]) {
		if (old[0])
			ekmfs_log(EKMFS_LOG_WARN, "reload: log_file removed; the log stays in %s "
				  "until the next mount", old);
		log_file = old;
		if (!old[0])
			return;
	}
	/* The same path too: logrotate moved the file away and wants a new one. */
	ekmfs_clearerr();
	if (open_log_file(log_file) < 0)
		ekmfs_log(EKMFS_LOG_ERR, "reload: %s; the log stays %s%s", ekmfs_lasterr(),
			  old[0] ? "in " : "where it was", old);
	else if (strcmp(old, log_file) != 0)
		ekmfs_log(EKMFS_LOG_INFO, "reload: logging to %s (was %s)", log_file,
			  old[0] ? old : "syslog or stderr");
}
