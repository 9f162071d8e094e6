/*
 * service.c - the daemon under a service manager (service.h).
 *
 * Divisions: sd_notify (libsystemd when built with it); the SIGHUP handler
 * and the wake-up pipe; the reload (what may change at run time, and what
 * waits for the next mount); the housekeeping thread; start and stop.
 *
 * Why a thread and a pipe: a signal handler may only do async-signal-safe
 * things, and parsing a file, logging or writing the metrics are not. The
 * handler writes one byte to a pipe; the housekeeping thread, which also
 * wakes every metrics_interval to write the metrics file, does the work.
 *
 * What a reload changes (SIGHUP, or `systemctl reload`, or an unlock that
 * finds the keyring wrapped by another CMK: efs_service_reload): [daemon]
 * log_level, attr_timeout, entry_timeout, metrics_file and metrics_interval;
 * tenants (ekmfs_keys_apply_config): new [tenant.NAME] sections get their
 * keys, paths, enforce_from, enabled and the cache limits apply at once,
 * and changed provider settings (key_file or key_id after ekmfs-rotate
 * cmk) replace the running provider once they unwrap the tenant's current
 * KEK. max_threads and a change of provider type belong to the mount: a
 * reload logs that they wait for the next mount. A file that does not
 * parse, or tenants that cannot be applied (a path not in the volume, a
 * CMK that does not answer, a key file that does not open the keyring),
 * change nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "ekmfs/util.h"
#include "fs.h"
#include "metrics.h"
#include "service.h"

#define WAKE_RELOAD 'H'
#define WAKE_QUIT 'Q'

static struct {
	char config_path[PATH_MAX];      /* "" = the default path */
	int pipe_rd, pipe_wr;
	pthread_t thread;
	bool running;
	struct efs_data *fs;
	struct ekmfs_config *cfg;        /* owned by main.c; daemon keys updated here */
	bool keep_debug;
	int last_metrics_err;            /* log a failing metrics file once per cause */
} svc = { .pipe_rd = -1, .pipe_wr = -1 };

/* Too large for the housekeeping thread's stack. */
static struct ekmfs_config fresh;

/* ---- sd_notify ---- */

static void notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	int ret = sd_notify(0, state);

	if (ret < 0)
		ekmfs_log(EKMFS_LOG_WARN, "cannot notify the service manager: %s",
			  strerror(-ret));
#else
	(void)state;
#endif
}

/* ---- SIGHUP ---- */

static void on_sighup(int sig)
{
	char c = WAKE_RELOAD;
	int saved = errno;

	(void)sig;
	/* Non-blocking: if the pipe is full a reload is pending anyway. */
	if (write(svc.pipe_wr, &c, 1) < 0) {
		/* nothing to do in a signal handler */
	}
	errno = saved;
}

static int set_sighup(void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGHUP, &sa, NULL) < 0 ? -errno : 0;
}

/* ---- reload ---- */

/* Serialises reloads: SIGHUP (housekeeping thread) and unlock (control
 * thread, efs_service_reload). */
static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;

/* 0, or -errno with the reason in ekmfs_lasterr(). Holds reload_mu. */
static int reload(void)
{
	struct ekmfs_config *cfg = svc.cfg;
	const char *path = svc.config_path[0] ? svc.config_path : NULL;
	char why[600];
	int ret;

	notify("RELOADING=1");
	ekmfs_clearerr();
	ret = ekmfs_config_load(path, &fresh);
	snprintf(why, sizeof(why), "%s", ekmfs_lasterr());
	/* The log file is reopened on every SIGHUP (logrotate's signal), even
	 * when the rest of the reload is refused. */
	efs_log_reload(ret ? NULL : fresh.log_file);
	ekmfs_seterr("%s", why);
	/* Tenants first: a reload that cannot apply them changes nothing. */
	if (!ret)
		ret = ekmfs_keys_apply_config(svc.fs->keys, &fresh);
	if (ret < 0) {
		snprintf(why, sizeof(why), "%s", ekmfs_lasterr()[0] ? ekmfs_lasterr() :
			 strerror(-ret));
		ekmfs_log(EKMFS_LOG_ERR, "reload refused, the running configuration stays: %s",
			  why);
		efs_metrics_reload(0);
		notify("READY=1\nSTATUS=reload refused (see the log); serving");
		ekmfs_seterr("%s", why);
		return ret;
	}
	efs_audit_note_keyring(svc.fs);
	cfg->ntenants = fresh.ntenants;
	memcpy(cfg->tenants, fresh.tenants, sizeof(cfg->tenants));
	if (!svc.keep_debug)
		ekmfs_log_set_level((enum ekmfs_log_level)fresh.log_level);
	cfg->log_level = fresh.log_level;
	svc.fs->attr_timeout = fresh.attr_timeout;
	svc.fs->entry_timeout = fresh.entry_timeout;
	cfg->attr_timeout = fresh.attr_timeout;
	cfg->entry_timeout = fresh.entry_timeout;
	if (svc.fs->shared)             /* docs/SHARED.md: the kernel keeps nothing */
		svc.fs->attr_timeout = svc.fs->entry_timeout = 0;
	if (strcmp(cfg->metrics_file, fresh.metrics_file) != 0)
		svc.last_metrics_err = 0;
	memcpy(cfg->metrics_file, fresh.metrics_file, sizeof(cfg->metrics_file));
	cfg->metrics_interval = fresh.metrics_interval;
	if (fresh.max_threads != cfg->max_threads)
		ekmfs_log(EKMFS_LOG_WARN, "reload: max_threads %u takes effect at the next "
			  "mount (now %u)", fresh.max_threads, cfg->max_threads);
	ekmfs_log(EKMFS_LOG_INFO, "configuration reloaded from %s",
		  path ? path : EKMFS_DEFAULT_CONFIG);
	efs_audit_event(svc.fs, "config_reload", path ? path : EKMFS_DEFAULT_CONFIG);
	efs_metrics_reload(1);
	notify("READY=1\nSTATUS=serving");
	return 0;
}

int efs_service_reload(void)
{
	int ret;

	if (!svc.running) {
		ekmfs_seterr("the daemon is not serving yet: cannot re-read its configuration");
		return -EAGAIN;
	}
	pthread_mutex_lock(&reload_mu);
	ret = reload();
	pthread_mutex_unlock(&reload_mu);
	return ret;
}

/* ---- housekeeping thread ---- */

static void write_metrics(bool due_only)
{
	static struct timespec last;
	struct timespec now;
	int ret;

	if (!svc.cfg->metrics_file[0])
		return;
	/* The loop wakes more often than metrics_interval (sealing). */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (due_only && last.tv_sec && now.tv_sec - last.tv_sec < (time_t)svc.cfg->metrics_interval)
		return;
	last = now;
	ekmfs_clearerr();
	ret = efs_metrics_write_file(svc.fs, svc.cfg->metrics_file);
	if (ret < 0 && ret != svc.last_metrics_err)
		ekmfs_log(EKMFS_LOG_WARN, "%s", ekmfs_lasterr()[0] ? ekmfs_lasterr() :
			  strerror(-ret));
	else if (ret == 0 && svc.last_metrics_err)
		ekmfs_log(EKMFS_LOG_INFO, "metrics file %s written again", svc.cfg->metrics_file);
	svc.last_metrics_err = ret;
}

/* Files closed with an unsynced state are sealed this often (seal.c). */
#define SEAL_INTERVAL 2

static void *housekeeping(void *arg)
{
	struct pollfd pfd = { .fd = svc.pipe_rd, .events = POLLIN };

	(void)arg;
	for (;;) {
		/* Wake for the metrics file, the rotation check and sealing. */
		unsigned secs = svc.cfg->rotation_check_interval;
		char c;
		int n;

		if (svc.cfg->metrics_file[0] && svc.cfg->metrics_interval < secs)
			secs = svc.cfg->metrics_interval;
		if (efs_seal_pending(svc.fs))
			efs_seal_run(svc.fs);
		if (secs > SEAL_INTERVAL)
			secs = SEAL_INTERVAL;
		efs_schedule_tick(svc.fs, svc.cfg, svc.config_path);
		n = poll(&pfd, 1, (int)secs * 1000);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0) {
			write_metrics(true);
			continue;
		}
		if (read(svc.pipe_rd, &c, 1) != 1)
			continue;
		if (c == WAKE_QUIT)
			break;
		pthread_mutex_lock(&reload_mu);
		(void)reload();         /* logged */
		pthread_mutex_unlock(&reload_mu);
		write_metrics(false);
	}
	return NULL;
}

/* ---- start and stop ---- */

int efs_service_prepare(const char *config_path)
{
	int fds[2];

	svc.config_path[0] = '\0';
	if (config_path && !realpath(config_path, svc.config_path)) {
		fprintf(stderr, "ekmfs: %s: %s\n", config_path, strerror(errno));
		return -errno;
	}
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "ekmfs: cannot create a pipe: %s\n", strerror(errno));
		return -errno;
	}
	svc.pipe_rd = fds[0];
	svc.pipe_wr = fds[1];
	efs_metrics_start();
#ifndef HAVE_LIBSYSTEMD
	if (getenv("NOTIFY_SOCKET"))
		ekmfs_log(EKMFS_LOG_WARN, "built without libsystemd: cannot tell the service "
			  "manager when the volume is mounted (use Type=simple)");
#endif
	return 0;
}

int efs_service_start(struct efs_data *fs, struct ekmfs_config *cfg, bool keep_debug)
{
	int ret;

	svc.fs = fs;
	svc.cfg = cfg;
	svc.keep_debug = keep_debug;
	write_metrics(false);
	/* After fuse_set_signal_handlers(), whose SIGHUP would end the session. */
	ret = set_sighup(on_sighup);
	if (ret < 0) {
		ekmfs_log(EKMFS_LOG_ERR, "cannot install the SIGHUP handler: %s", strerror(-ret));
		return ret;
	}
	ret = pthread_create(&svc.thread, NULL, housekeeping, NULL);
	if (ret) {
		set_sighup(SIG_IGN);
		ekmfs_log(EKMFS_LOG_ERR, "cannot start the housekeeping thread: %s",
			  strerror(ret));
		return -ret;
	}
	svc.running = true;
	notify("READY=1\nSTATUS=serving");
	return 0;
}

void efs_service_stop(void)
{
	char c = WAKE_QUIT;

	if (svc.running) {
		notify("STOPPING=1\nSTATUS=unmounting");
		/* A SIGHUP from now on is ignored: the daemon is going down. */
		set_sighup(SIG_IGN);
		/* EAGAIN: a pipe full of pending reloads; the thread drains it. */
		while (write(svc.pipe_wr, &c, 1) < 0 && (errno == EINTR || errno == EAGAIN))
			usleep(1000);
		pthread_join(svc.thread, NULL);
		svc.running = false;
		efs_schedule_stop();
		write_metrics(false);
	}
	if (svc.pipe_rd >= 0)
		close(svc.pipe_rd);
	if (svc.pipe_wr >= 0)
		close(svc.pipe_wr);
	svc.pipe_rd = svc.pipe_wr = -1;
}
