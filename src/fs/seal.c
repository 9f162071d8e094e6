/*
 * seal.c - files closed with a state that is not durable yet.
 *
 * Owns: the list of files whose last release left their working state
 * record unsynced (ekmfs_content_close's seal seq), and sealing them once a
 * syncfs of BACKING has made that record durable: both records equal, the
 * backing file trimmed to its size (ekmfs_content_seal). Until then a file
 * reopened here is loaded expecting that seq (efs_seal_take).
 *
 * Why: writing both records at close would overwrite the durable record
 * before the data the new one describes is on disk, so a power cut could
 * leave no state that holds together. Syncing every file at close would
 * cost a disk flush per file (untar, cp -r). One syncfs per pass seals
 * thousands of files (docs/DESIGN.md, "Format v2: crash atomicity").
 *
 * A file is found again by its file handle (name_to_handle_at; the daemon
 * runs as root for open_by_handle_at), so the list holds no descriptors.
 * On a backing file system without file handles the file is synced and
 * sealed at once, at close.
 *
 * Divisions: the list (a hash by inode number) / add, take / the pass.
 *
 * Locking: mu protects the list; it is taken inside an inode's ci_lock
 * (take, at load; add, at close), and the pass holds it only around each
 * seal, never across syncfs. The count n changes under mu, atomically,
 * because efs_seal_size (every lookup and getattr) reads it without mu to
 * skip the lock when the list is empty (ThreadSanitizer: a plain write
 * against that atomic read is a data race).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/content.h"
#include "ekmfs/io.h"
#include "ekmfs/util.h"
#include "fs.h"

#define HANDLE_MAX 128

struct seal_entry {
	struct seal_entry *next;
	dev_t dev;
	ino_t ino;
	uint64_t seq;
	uint64_t size;                  /* plaintext size of that record */
	uint64_t pass;                  /* added before pass number ... began */
	struct file_handle fh;          /* followed by its bytes */
};

struct efs_seal_list {
	pthread_mutex_t mu;
	struct seal_entry **table;
	size_t nbuckets, n;
	uint64_t pass;                  /* passes begun */
	pthread_mutex_t run_mu;         /* one pass at a time */
};

/* ---- the list ---- */

static size_t bucket(const struct efs_seal_list *l, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (l->nbuckets - 1);
}

int efs_seal_init(struct efs_data *fs)
{
	struct efs_seal_list *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->nbuckets = 4096;
	l->table = calloc(l->nbuckets, sizeof(*l->table));
	if (!l->table) {
		free(l);
		return -ENOMEM;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->run_mu, NULL);
	fs->seals = l;
	return 0;
}

/* Unlink and return the entry of (dev, ino); caller holds mu. */
static struct seal_entry *unlink_entry(struct efs_seal_list *l, dev_t dev, ino_t ino)
{
	struct seal_entry **pp = &l->table[bucket(l, dev, ino)];

	for (; *pp; pp = &(*pp)->next) {
		struct seal_entry *e = *pp;

		if (e->dev == dev && e->ino == ino) {
			*pp = e->next;
			__atomic_fetch_sub(&l->n, 1, __ATOMIC_RELAXED);
			return e;
		}
	}
	return NULL;
}

/* Whether e is still the file fd (a descriptor of the inode) is: an inode
 * number may come back for a new file once the old one is gone; its handle
 * has another generation. */
static bool same_file(const struct seal_entry *e, int fd)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[HANDLE_MAX];
	} now;
	int mount_id;

	now.fh.handle_bytes = HANDLE_MAX;
	if (name_to_handle_at(fd, "", &now.fh, &mount_id, AT_EMPTY_PATH) < 0)
		return false;
	return now.fh.handle_type == e->fh.handle_type &&
	       now.fh.handle_bytes == e->fh.handle_bytes &&
	       memcmp(now.fh.f_handle, e->fh.f_handle, e->fh.handle_bytes) == 0;
}

/* ---- add, take ---- */

/* No file handles here: make the state durable now and seal it. */
static void seal_now(struct efs_data *fs, int fd, uint64_t seq)
{
	char rel[PATH_MAX], proc[64];
	struct efs_fence fence;
	int rc = -1, sfd;

	/* Its own descriptor, as the pass opens one: O_NOATIME, so reading the
	 * state does not move the atime the user may have just set (the
	 * release that seals runs after close(2) has returned). */
	proc_path(fd, proc, sizeof(proc));
	sfd = open(proc, O_RDWR | O_CLOEXEC | O_NOATIME);
	if (sfd < 0)
		sfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	efs_fence_enter(fs, NULL, sfd, &fence);
	if (sfd >= 0 && ekmfs_io->fdatasync(sfd) == 0)
		rc = ekmfs_content_seal(sfd, seq);
	efs_fence_leave(fs, &fence);
	if (sfd >= 0)
		close(sfd);
	if (rc == 0)
		return;
	efs_relpath(fs, fd, rel, sizeof(rel));
	ekmfs_log(EKMFS_LOG_WARN, "%s: cannot seal its state now (%s): a crash before its "
		  "next close will be recovered at the next mount", rel, strerror(errno));
}

void efs_seal_add(struct efs_data *fs, struct efs_inode *inode, int fd, uint64_t seq,
		  uint64_t size)
{
	struct efs_seal_list *l = fs->seals;
	struct seal_entry *e = calloc(1, sizeof(*e) + HANDLE_MAX), *old;
	int mount_id;

	/* Shared mode: another host may load the file as soon as its lease
	 * is let go, so the state is made durable and sealed before that. */
	if (!l || !e || fs->shared || !fs->handles || inode->dev != fs->backing_dev) {
		free(e);
		seal_now(fs, fd, seq);
		return;
	}
	e->fh.handle_bytes = HANDLE_MAX;
	if (name_to_handle_at(fd, "", &e->fh, &mount_id, AT_EMPTY_PATH) < 0) {
		free(e);
		seal_now(fs, fd, seq);
		return;
	}
	e->dev = inode->dev;
	e->ino = inode->ino;
	e->seq = seq;
	e->size = size;
	pthread_mutex_lock(&l->mu);
	old = unlink_entry(l, e->dev, e->ino);
	e->pass = l->pass;
	e->next = l->table[bucket(l, e->dev, e->ino)];
	l->table[bucket(l, e->dev, e->ino)] = e;
	__atomic_fetch_add(&l->n, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&l->mu);
	free(old);
}

uint64_t efs_seal_take(struct efs_data *fs, struct efs_inode *inode, int fd)
{
	struct efs_seal_list *l = fs->seals;
	struct seal_entry *e;
	uint64_t seq = 0;

	if (!l)
		return 0;
	pthread_mutex_lock(&l->mu);
	e = l->n ? unlink_entry(l, inode->dev, inode->ino) : NULL;
	pthread_mutex_unlock(&l->mu);
	if (e && same_file(e, fd))
		seq = e->seq;
	free(e);
	return seq;
}

bool efs_seal_size(struct efs_data *fs, dev_t dev, ino_t ino, int fd, uint64_t *size)
{
	struct efs_seal_list *l = fs->seals;
	struct seal_entry *e = NULL;

	if (!l || !__atomic_load_n(&l->n, __ATOMIC_RELAXED))
		return false;
	pthread_mutex_lock(&l->mu);
	for (e = l->table[bucket(l, dev, ino)]; e; e = e->next)
		if (e->dev == dev && e->ino == ino)
			break;
	if (e && same_file(e, fd))
		*size = e->size;
	else
		e = NULL;
	pthread_mutex_unlock(&l->mu);
	return e != NULL;
}

size_t efs_seal_pending(struct efs_data *fs)
{
	size_t n;

	if (!fs->seals)
		return 0;
	pthread_mutex_lock(&fs->seals->mu);
	n = fs->seals->n;
	pthread_mutex_unlock(&fs->seals->mu);
	return n;
}

/* ---- the pass ---- */

/* Seal one entry (added before the syncfs of this pass); caller holds mu,
 * so no load of the file can take it meanwhile. */
static void seal_entry(struct efs_data *fs, struct seal_entry *e)
{
	int fd = open_by_handle_at(fs->backing_fd, &e->fh, O_RDWR | O_CLOEXEC | O_NOATIME);
	struct efs_fence fence;
	int rc;

	if (fd < 0 && errno == EPERM)
		fd = open_by_handle_at(fs->backing_fd, &e->fh, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		/* ESTALE: removed since; nothing to keep consistent. */
		if (errno != ESTALE)
			ekmfs_log(EKMFS_LOG_WARN, "inode %llu: cannot reopen it to seal its state: "
				  "%s", (unsigned long long)e->ino, strerror(errno));
		return;
	}
	efs_fence_enter(fs, NULL, fd, &fence);
	rc = ekmfs_content_seal(fd, e->seq);
	efs_fence_leave(fs, &fence);
	if (rc == -ESTALE) {
		char rel[PATH_MAX];

		efs_relpath(fs, fd, rel, sizeof(rel));
		ekmfs_log(EKMFS_LOG_ERR, "%s: its state record changed behind ekmfs before it "
			  "was sealed (%s)", rel, ekmfs_lasterr());
		efs_audit_tamper(fs, fd, NULL, UINT64_MAX);
	} else if (rc < 0) {
		ekmfs_log(EKMFS_LOG_WARN, "inode %llu: sealing its state failed: %s",
			  (unsigned long long)e->ino, strerror(-rc));
	}
	close(fd);
}

void efs_seal_run(struct efs_data *fs)
{
	struct efs_seal_list *l = fs->seals;
	uint64_t pass;

	if (!l)
		return;
	pthread_mutex_lock(&l->run_mu);
	pthread_mutex_lock(&l->mu);
	pass = ++l->pass;
	pthread_mutex_unlock(&l->mu);
	/* Everything closed before this point is durable after it. */
	if (ekmfs_io->syncfs(fs->backing_fd) < 0) {
		ekmfs_log(EKMFS_LOG_WARN, "syncfs of the backing store failed: %s",
			  strerror(errno));
		goto out;
	}
	for (size_t b = 0; b < l->nbuckets; b++) {
		pthread_mutex_lock(&l->mu);
		for (struct seal_entry **pp = &l->table[b]; *pp;) {
			struct seal_entry *e = *pp;

			if (e->pass >= pass) {      /* closed after the syncfs began */
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			__atomic_fetch_sub(&l->n, 1, __ATOMIC_RELAXED);
			seal_entry(fs, e);
			free(e);
		}
		pthread_mutex_unlock(&l->mu);
	}
out:
	pthread_mutex_unlock(&l->run_mu);
}

void efs_seal_destroy(struct efs_data *fs)
{
	struct efs_seal_list *l = fs->seals;

	if (!l)
		return;
	for (size_t b = 0; b < l->nbuckets; b++)
		while (l->table[b]) {
			struct seal_entry *e = l->table[b];

			l->table[b] = e->next;
			free(e);
		}
	free(l->table);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->run_mu);
	free(l);
	fs->seals = NULL;
}
