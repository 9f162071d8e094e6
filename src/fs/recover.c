/*
 * recover.c - settling the files a daemon that died left behind.
 *
 * Owns: the recovery at mount after an unclean end (holder.h): every
 * regular file of BACKING changed since the dead daemon started (its ctime,
 * in the backing store's clock) is loaded in settling mode (content.h:
 * the newest state that verifies is kept, the journal folded in, the rest
 * cut off, both records made equal) before the volume is mounted, and the
 * journals left over are removed. A file whose key is not available now
 * (a KMS that does not answer) cannot be settled: the recovery stays
 * pending, and such files are settled when they are next loaded
 * (efs_content_env).
 *
 * Divisions: one file / the walk / efs_recover.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/content.h"
#include "ekmfs/holder.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "fs.h"

struct recovery {
	struct efs_data *fs;
	size_t checked, settled, damaged, unsettled;
};

/* ---- one file ---- */

static void note_settled(void *arg, const char *what)
{
	const char **ctx = arg;

	ekmfs_log(EKMFS_LOG_WARN, "%s: recovered after a crash: %s", ctx[0], what);
	ctx[1] = "settled";
}

static void settle_file(struct recovery *r, int fd, const char *rel)
{
	const char *ctx[2] = { rel, NULL };
	struct ekmfs_content_env env = { .journal_dir = r->fs->journal_fd, .settle = true,
					 .settled = note_settled, .settled_arg = ctx };
	struct ekmfs_content *c = NULL;
	struct ekmfs_header h;
	uint8_t *dek = NULL;
	uint64_t seal;
	int ret;

	ekmfs_clearerr();
	ret = ekmfs_content_read_header(fd, &h);
	if ((ret == -EPROTO || ret == -EBADMSG) && ekmfs_content_settle_header(fd) == 0) {
		note_settled(ctx, "its header never reached the disk: it is empty now");
		ret = -ENODATA;
	}
	if (ret == -ENODATA) {
		if (ctx[1])
			r->settled++;
		return;
	}
	if (ret < 0)
		goto damaged;
	dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!dek) {
		r->unsettled++;
		return;
	}
	ret = ekmfs_keys_open_header(r->fs->keys, &h, dek);
	if (ret == -ENOKEY || ret == -ENOMEM) {
		ekmfs_log(EKMFS_LOG_WARN, "%s: cannot settle it now: %s (it is settled when "
			  "next opened)", rel, *ekmfs_lasterr() ? ekmfs_lasterr() : strerror(-ret));
		r->unsettled++;
		goto out;
	}
	if (ret < 0)
		goto damaged;
	ret = ekmfs_content_load(&c, fd, &h, dek, &env);
	if (ret < 0)
		goto damaged;
	ret = ekmfs_content_close(c, &seal);
	c = NULL;
	if (ret < 0) {
		ekmfs_log(EKMFS_LOG_ERR, "%s: settling it failed: %s", rel, ekmfs_lasterr());
		r->unsettled++;
		goto out;
	}
	if (ctx[1])
		r->settled++;
	goto out;
damaged:
	/* Not a crash's doing: reported when the file is opened, as at any time. */
	ekmfs_log(EKMFS_LOG_ERR, "%s: damaged, not settled: %s", rel,
		  *ekmfs_lasterr() ? ekmfs_lasterr() : strerror(-ret));
	efs_audit_tamper(r->fs, fd, NULL, UINT64_MAX);
	r->damaged++;
out:
	ekmfs_content_free(c);
	ekmfs_wipe(&h, sizeof(h));
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
}

/* ---- the walk ---- */

/* nftw has no argument for its callback. */
static struct recovery *walk_state;

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct recovery *r = walk_state;
	const char *rel = path + r->fs->backing_len + 1;
	int fd;

	if (ftw->level == 1 && strcmp(path + ftw->base, EKMFS_META_DIR) == 0)
		return FTW_SKIP_SUBTREE;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return FTW_CONTINUE;
	if (st->st_ctim.tv_sec < r->fs->recover_since.tv_sec ||
	    (st->st_ctim.tv_sec == r->fs->recover_since.tv_sec &&
	     st->st_ctim.tv_nsec < r->fs->recover_since.tv_nsec))
		return FTW_CONTINUE;    /* untouched since the dead daemon started */
	r->checked++;
	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ekmfs_log(EKMFS_LOG_WARN, "%s: cannot open it to settle it: %s", rel,
			  strerror(errno));
		r->unsettled++;
		return FTW_CONTINUE;
	}
	settle_file(r, fd, rel);
	close(fd);
	return FTW_CONTINUE;
}

/* Journals nobody settled belong to files since removed. */
static void remove_orphan_journals(struct efs_data *fs)
{
	int dfd = openat(fs->journal_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			(void)ekmfs_io->unlinkat(fs->journal_fd, de->d_name, 0);
	closedir(d);
}

/* ---- efs_recover ---- */

int efs_recover(struct efs_data *fs)
{
	struct recovery r = { .fs = fs };
	struct timespec t0, t1;
	char why[128];
	char since[32];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ekmfs_time_rfc3339(fs->recover_since.tv_sec, since, sizeof(since));
	ekmfs_log(EKMFS_LOG_WARN, "the volume was not unmounted cleanly: settling the files "
		  "changed since %s", since);
	/* Settling while loads happen: efs_content_env settles those too. */
	__atomic_store_n(&fs->recovering, true, __ATOMIC_RELEASE);
	walk_state = &r;
	if (nftw(fs->backing, visit, 32, FTW_PHYS | FTW_ACTIONRETVAL) != 0) {
		ekmfs_log(EKMFS_LOG_ERR, "walking %s to settle it failed: %s", fs->backing,
			  strerror(errno));
		r.unsettled++;
	}
	walk_state = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ekmfs_log(EKMFS_LOG_WARN, "recovery: %zu files changed, %zu settled, %zu damaged, %zu "
		  "left for later, in %.2f s", r.checked, r.settled, r.damaged, r.unsettled,
		  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	snprintf(why, sizeof(why), "%s: %zu files changed, %zu settled, %zu damaged",
		 r.unsettled ? "incomplete" : "complete", r.checked, r.settled, r.damaged);
	efs_audit_event(fs, "recovery", why);
	if (r.unsettled)
		return -EAGAIN;
	remove_orphan_journals(fs);
	if (ekmfs_io->syncfs(fs->backing_fd) == 0 && ekmfs_volume_recovered(fs->backing_fd) == 0)
		__atomic_store_n(&fs->recovering, false, __ATOMIC_RELEASE);
	return 0;
}
