/*
 * schedule.c - scheduled KEK rotation run by the daemon.
 *
 * Owns: deciding when a tenant's rotation is due (rotation_days since its
 * last rotation, from the keyring the key manager holds - re-read when the
 * file changed, so a rotation made by hand counts too, and authenticated,
 * so an edited last_rotation postpones nothing) and running it. The rotation itself is ekmfs-rotate's job: the
 * daemon starts "ekmfs-rotate kek" as a child at the lowest CPU and I/O
 * priority rather than re-implementing it, so there is one re-wrap protocol,
 * one lock (a concurrent manual run just makes the scheduled one wait for
 * the next check) and one set of audit records. The child is not tied to
 * the mount: unmounting leaves a running rotation to finish, which is safe
 * by design (rotation is online and crash-safe).
 *
 * Called from the housekeeping thread only, so it needs no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/keys.h"
#include "ekmfs/util.h"
#include "fs.h"

#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_WHO_PROCESS 1
#define DUE_LOG_INTERVAL 86400

static struct {
	pid_t child;                 /* running ekmfs-rotate, or 0 */
	char child_tenant[EKMFS_NAME_MAX];
	time_t next_check;
	time_t last_due_log;
} sched;

/* ekmfs-rotate: configured, else installed beside this ekmfs, else PATH. */
static void rotate_program(const struct ekmfs_config *cfg, char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;

	if (cfg->rotate_program[0]) {
		snprintf(out, len, "%s", cfg->rotate_program);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(out, len, "%s/ekmfs-rotate", dirname(self));
		if (access(out, X_OK) == 0)
			return;
	}
	snprintf(out, len, "ekmfs-rotate");
}

static void reap(struct efs_data *fs)
{
	char why[128];
	int status;

	if (sched.child <= 0 || waitpid(sched.child, &status, WNOHANG) != sched.child)
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		ekmfs_log(EKMFS_LOG_INFO, "scheduled KEK rotation of tenant '%s' finished",
			  sched.child_tenant);
		snprintf(why, sizeof(why), "tenant %s: done", sched.child_tenant);
	} else {
		/* 4 = refused (e.g. a manual run holds the lock): the next check
		 * tries again; anything else is worth an admin's look. */
		ekmfs_log(EKMFS_LOG_WARN, "scheduled KEK rotation of tenant '%s' ended with "
			  "%s %d; see ekmfs-rotate status and the audit log", sched.child_tenant,
			  WIFEXITED(status) ? "exit status" : "signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		snprintf(why, sizeof(why), "tenant %s: ended with %s %d", sched.child_tenant,
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	}
	efs_audit_event(fs, "scheduled_rotation_finish", why);
	sched.child = 0;
}

static void start_rotation(struct efs_data *fs, const struct ekmfs_config *cfg,
			   const char *config_path, const char *tenant)
{
	char prog[PATH_MAX], why[128];
	char *argv[10];
	int argc = 0;
	pid_t pid;

	rotate_program(cfg, prog, sizeof(prog));
	argv[argc++] = prog;
	if (config_path && config_path[0]) {
		argv[argc++] = "-c";
		argv[argc++] = (char *)config_path;
	}
	argv[argc++] = "kek";
	argv[argc++] = "-q";
	argv[argc++] = "--tenant";
	argv[argc++] = (char *)tenant;
	argv[argc++] = fs->backing;
	argv[argc] = NULL;

	pid = fork();
	if (pid < 0) {
		ekmfs_log(EKMFS_LOG_WARN, "cannot start the scheduled KEK rotation: %s",
			  strerror(errno));
		return;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls between fork and exec. */
		setpriority(PRIO_PROCESS, 0, 19);
		syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0,
			IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
		close_range(3, ~0U, 0);
		if (strchr(prog, '/'))
			execv(prog, argv);
		else
			execvp(prog, argv);
		_exit(127);
	}
	sched.child = pid;
	snprintf(sched.child_tenant, sizeof(sched.child_tenant), "%s", tenant);
	ekmfs_log(EKMFS_LOG_INFO, "KEK rotation of tenant '%s' is due: running %s (pid %d) "
		  "at low priority", tenant, prog, (int)pid);
	snprintf(why, sizeof(why), "tenant %s: rotation_days elapsed; pid %d", tenant, (int)pid);
	efs_audit_event(fs, "scheduled_rotation_start", why);
}

void efs_schedule_tick(struct efs_data *fs, const struct ekmfs_config *cfg,
		       const char *config_path)
{
	struct ekmfs_tenant_state *st;
	time_t now = time(NULL);
	size_t n;

	reap(fs);
	if (now < sched.next_check || sched.child > 0)
		return;
	sched.next_check = now + cfg->rotation_check_interval;
	/* The keyring the key manager holds: authenticated (an edited
	 * last_rotation must not postpone a rotation), re-read if changed. */
	st = calloc(EKMFS_MAX_TENANTS, sizeof(*st));
	if (!st)
		return;
	ekmfs_keys_refresh(fs->keys);
	n = ekmfs_keys_tenant_states(fs->keys, st, EKMFS_MAX_TENANTS);
	if (n > EKMFS_MAX_TENANTS)
		n = EKMFS_MAX_TENANTS;
	for (size_t i = 0; i < n && sched.child <= 0; i++) {
		const struct ekmfs_tenant_state *t = &st[i];
		uint32_t days = ekmfs_config_rotation_days(cfg, t->name);
		time_t due = t->last_rotation + (time_t)days * 86400;
		char when[32];

		if (!days || now < due)
			continue;
		if (cfg->rotation_by_daemon) {
			start_rotation(fs, cfg, config_path, t->name);
		} else if (now >= sched.last_due_log + DUE_LOG_INTERVAL) {
			ekmfs_time_rfc3339(due, when, sizeof(when));
			ekmfs_log(EKMFS_LOG_WARN, "KEK rotation of tenant '%s' is due since %s "
				  "(rotation_days = %u); scheduled_rotation = external: run "
				  "'ekmfs-rotate kek %s'", t->name, when, days, fs->backing);
			sched.last_due_log = now;
		}
	}
	free(st);
}

void efs_schedule_stop(void)
{
	int status;

	if (sched.child > 0 && waitpid(sched.child, &status, WNOHANG) == 0)
		ekmfs_log(EKMFS_LOG_INFO, "the scheduled KEK rotation (pid %d) goes on after "
			  "unmount; it is safe to interrupt and 'ekmfs-rotate rewrap' finishes it",
			  (int)sched.child);
	sched.child = 0;
}
