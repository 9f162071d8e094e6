/*
 * fence.c - ekmfs-rotate's side of the rotation fence (src/fs/fence.c has
 * the daemon's): a re-wrap leaves every file's mtime as the mount shows it,
 * even with writers running (docs/ROTATION.md, "Timestamps").
 *
 * Owns: asking the daemon that serves the volume, if one does, to hold the
 * fence for as long as the passes run (a 60 s lease renewed every 15 s by
 * a thread of its own, released at the end; a rotation that dies lets it
 * lapse), and the per-file side: an exclusive OFD lock on the file's first
 * byte from before its header is read until its mtime is put back.
 *
 * Divisions: the lease / one file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/holder.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"
#include "rotate.h"
#include "tool.h"

#define LEASE_SECONDS 60
#define RENEW_SECONDS 15

/* ---- the lease ---- */

static struct {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool running, stop;
	char sock[PATH_MAX];
} lease = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int ask(const char *req, char *why, size_t whylen)
{
	char *reply = NULL;
	int rc = tool_control_request(lease.sock, req, 45, &reply);

	if (rc == 0 && strncmp(reply, "ok", 2) != 0) {
		snprintf(why, whylen, "%s", reply);
		rc = -EPROTO;
	} else if (rc < 0) {
		snprintf(why, whylen, "%s", strerror(-rc));
	}
	free(reply);
	return rc;
}

static void *renewer(void *arg)
{
	char req[32], why[256];

	(void)arg;
	snprintf(req, sizeof(req), "fence %d\n", LEASE_SECONDS);
	pthread_mutex_lock(&lease.mu);
	while (!lease.stop) {
		struct timespec until;

		ekmfs_deadline_ms(&until, RENEW_SECONDS * 1000L);
		if (pthread_cond_timedwait(&lease.cv, &lease.mu, &until) == ETIMEDOUT &&
		    !lease.stop) {
			pthread_mutex_unlock(&lease.mu);
			if (ask(req, why, sizeof(why)) < 0)
				fprintf(stderr, "ekmfs-rotate: renewing the daemon's write fence "
					"failed (%s): files written from now on may show the "
					"rotation's mtime\n", why);
			pthread_mutex_lock(&lease.mu);
		}
	}
	pthread_mutex_unlock(&lease.mu);
	return NULL;
}

void rot_fence_start(struct rot_ctx *c)
{
	struct ekmfs_holder h;
	bool live = false, pending;
	char req[32], why[256];

	if (ekmfs_volume_holder(c->backing_fd, &h, &live, &pending) < 0 || !live)
		return;         /* not mounted: nobody else writes */
	if (ekmfs_volume_control_path(c->cfg.control_dir, &c->vol, lease.sock,
				      sizeof(lease.sock)) < 0) {
		snprintf(why, sizeof(why), "control socket path too long");
		goto fail;
	}
	snprintf(req, sizeof(req), "fence %d\n", LEASE_SECONDS);
	if (ask(req, why, sizeof(why)) < 0)
		goto fail;
	lease.stop = false;
	lease.running = pthread_create(&lease.thread, NULL, renewer, NULL) == 0;
	return;
fail:
	fprintf(stderr, "ekmfs-rotate: the daemon serving the volume (pid %ld on %s) could not "
		"be asked to hold its writes while key slots change (%s): files it writes "
		"during the rotation may show the rotation's mtime, and a file it empties "
		"at the moment its slot is written may be reported as tampered\n", h.pid,
		h.host, why);
}

void rot_fence_stop(void)
{
	char why[256];

	if (!lease.running)
		return;
	pthread_mutex_lock(&lease.mu);
	lease.stop = true;
	pthread_cond_signal(&lease.cv);
	pthread_mutex_unlock(&lease.mu);
	pthread_join(lease.thread, NULL);
	lease.running = false;
	(void)ask("fence 0\n", why, sizeof(why));
}

/* ---- one file ---- */

/* Bytes EKMFS_FILE_LOCK_FENCE and _LEASE (holder.h): the fence of the local
 * daemon, and in shared mode the lease of whichever daemon has the file
 * loaded (claimed: that daemon lets it go), so the slot is written only
 * while no host has the file's state in memory. */
int rot_file_hold(int fd, struct timespec *mtime)
{
	struct stat st;
	int ret = ekmfs_file_lock_claim(fd, EKMFS_FILE_LOCK_FENCE, 2);

	if (ret < 0)
		return ret;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;

		rot_file_release(fd, NULL);
		return rc;
	}
	*mtime = st.st_mtim;
	return 0;
}

void rot_file_release(int fd, const struct timespec *mtime)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
			    .l_start = EKMFS_FILE_LOCK_FENCE, .l_len = 2 };

	if (mtime) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, *mtime };

		(void)ekmfs_io->futimens(fd, tv);
	}
	(void)fcntl(fd, F_OFD_SETLK, &fl);
}
