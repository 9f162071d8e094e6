/*
 * upgrade.c - `ekmfs-admin upgrade BACKING`: convert every format version
 * 1 file of a volume to version 2, then mark the volume version 2
 * (docs/FORMAT.md, "Upgrading from version 1"; docs/OPERATIONS.md).
 *
 * The volume is taken like a mount takes it (.ekmfs/mount.lock), so no
 * daemon serves it meanwhile; one that was not unmounted cleanly is
 * refused (a mount recovers it first), unless what died was an upgrade. Each file is converted by the
 * content layer through its crash-safe backup, so the command can be
 * interrupted at any point and run again: a file whose conversion was cut
 * short is finished from its backup. Only when every file is version 2
 * does volume.json say version 2; a file that cannot be converted (damaged)
 * is named and left as it is, and the command exits 1.
 *
 * Divisions: the volume / one file / the command.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "progress.h"
#include "ekmfs/audit.h"
#include "ekmfs/content.h"
#include "ekmfs/holder.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/upgrade.h"
#include "ekmfs/util.h"

/* The mountpoint of the holder record while an upgrade holds the volume. */
#define UPGRADE_HOLDER "(ekmfs-admin upgrade)"

struct upgrade_state {
	const char *backing;
	struct admin_audit a;
	int journal_dir;
	uint8_t *dek;                   /* secure memory */
	uint64_t files, converted, resumed, failed;
	struct tool_progress *progress;
};

/* ---- the volume ---- */

/* BACKING/.ekmfs/journal, made when missing (a first-release volume). */
static int open_journal_dir(int backing_fd)
{
	int fd;

	if (ekmfs_io->mkdirat(backing_fd, EKMFS_JOURNAL_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(backing_fd, EKMFS_JOURNAL_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Whether a conversion of the file with this id was interrupted. */
static bool backup_left(const struct upgrade_state *s, const uint8_t file_id[EKMFS_FILE_ID_SIZE])
{
	char name[2 * EKMFS_FILE_ID_SIZE + 8];

	ekmfs_hex(file_id, EKMFS_FILE_ID_SIZE, name);
	strcat(name, ".v1");
	return faccessat(s->journal_dir, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Whether the volume's last holder was an upgrade that died (and no
 * daemon's recovery is pending): the upgrade itself picks up its work. */
static bool upgrade_crashed(int backing_fd)
{
	struct ekmfs_holder h;
	bool live, pending;

	return ekmfs_volume_holder(backing_fd, &h, &live, &pending) == 0 && !live &&
	       strcmp(h.mountpoint, UPGRADE_HOLDER) == 0 &&
	       faccessat(backing_fd, EKMFS_META_DIR "/" EKMFS_RECOVERY_FILE, F_OK,
			 AT_SYMLINK_NOFOLLOW) != 0;
}

/* ---- one file ---- */

static void failed(struct upgrade_state *s, const char *relpath, const char *what, int err)
{
	const char *why = ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-err);

	tool_progress_hold(s->progress);
	printf("FAILED %s: %s: %s\n", relpath, what, why);
	tool_progress_release(s->progress);
	s->failed++;
}

static int upgrade_file(const char *path, const char *relpath, const struct stat *st, void *arg)
{
	struct upgrade_state *s = arg;
	struct ekmfs_content_env env = { .journal_dir = s->journal_dir, .upgrading = true };
	struct ekmfs_content *c = NULL;
	struct ekmfs_header h;
	uint64_t seal = 0;
	int fd, rc;

	s->files++;
	tool_progress_add(s->progress, (uint64_t)st->st_size);
	if (st->st_size == 0)
		return 0;       /* no header yet: written as version 2 when first used */
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		failed(s, relpath, "cannot open", -errno);
		return 0;
	}
	ekmfs_clearerr();
	rc = ekmfs_content_read_header(fd, &h);
	if (rc < 0) {
		failed(s, relpath, "header", rc);
		goto out;
	}
	if (h.version != EKMFS_FORMAT_V1 && !backup_left(s, h.file_id))
		goto out;       /* version 2 already */
	rc = ekmfs_keys_open_header(s->a.keys, &h, s->dek);
	if (rc < 0) {
		failed(s, relpath, "header", rc);
		goto out;
	}
	/* Loading finishes a conversion a crash interrupted. */
	rc = ekmfs_content_load(&c, fd, &h, s->dek, &env);
	ekmfs_wipe(s->dek, EKMFS_KEY_SIZE);
	if (rc < 0) {
		failed(s, relpath, "cannot load", rc);
		goto out;
	}
	if (h.version != EKMFS_FORMAT_V1) {
		s->resumed++;
		goto out;
	}
	ekmfs_clearerr();
	rc = ekmfs_upgrade_file(s->a.keys, fd, c);
	if (rc < 0)
		failed(s, relpath, "not converted (the file is unchanged)", rc);
	else
		s->converted++;
out:
	if (c && ekmfs_content_close(c, &seal) < 0)
		failed(s, relpath, "closing", -EIO);
	ekmfs_wipe(&h, sizeof(h));
	close(fd);
	return 0;
}

/* ---- the command ---- */

static int audit_run(struct upgrade_state *s, const char *event, bool counts)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	json_object *d = NULL;
	int ret;

	ev.event = event;
	if (counts && (d = json_object_new_object())) {
		json_object_object_add(d, "files", json_object_new_int64((int64_t)s->files));
		json_object_object_add(d, "converted", json_object_new_int64((int64_t)s->converted));
		json_object_object_add(d, "resumed", json_object_new_int64((int64_t)s->resumed));
		json_object_object_add(d, "failed", json_object_new_int64((int64_t)s->failed));
		ev.outcome = s->failed ? "failure" : "success";
	}
	ev.details = d;
	ret = admin_audit_record(&s->a, &ev);
	json_object_put(d);
	return ret;
}

int admin_upgrade(const char *backing, const struct ekmfs_config *cfg)
{
	struct upgrade_state s = { .backing = backing, .journal_dir = -1,
				   .a = { .fd = -1 } };
	struct ekmfs_mount_lock *lock = NULL;
	struct ekmfs_holder other;
	struct ekmfs_volume vol;
	struct timespec since;
	bool recover, resuming;
	int rc, status = EXIT_FAIL;

	rc = admin_audit_open(backing, cfg, false, &s.a);
	if (rc < 0) {
		fprintf(stderr, "ekmfs-admin: %s\n",
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		return EXIT_FAIL;
	}
	vol = *ekmfs_keys_volume(s.a.keys);
	if (vol.format_version >= 2) {
		printf("upgrade: %s is already version 2 (every file is format version 2); "
		       "nothing to do\n", backing);
		status = EXIT_OK;
		goto out;
	}
	resuming = upgrade_crashed(s.a.fd);
	rc = ekmfs_volume_take(s.a.fd, UPGRADE_HOLDER, &lock, &recover, &since, &other);
	if (rc == -EBUSY) {
		fprintf(stderr, "ekmfs-admin: %s is in use by %s (pid %ld)%s%s: unmount it first "
			"(a mounted volume converts each file at its first change)\n", backing,
			other.host, other.pid, other.mountpoint[0] ? " at " : "", other.mountpoint);
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "ekmfs-admin: %s\n", ekmfs_lasterr());
		goto out;
	}
	if (recover && !resuming) {
		fprintf(stderr, "ekmfs-admin: %s was not unmounted cleanly: mount it once (the "
			"mount recovers it) and unmount it, then run upgrade again\n", backing);
		goto out;
	}
	s.journal_dir = open_journal_dir(s.a.fd);
	s.dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (s.journal_dir < 0 || !s.dek) {
		fprintf(stderr, "ekmfs-admin: %s/%s: %s\n", backing, EKMFS_JOURNAL_DIR,
			strerror(s.journal_dir < 0 ? -s.journal_dir : ENOMEM));
		goto out;
	}
	if (audit_run(&s, "upgrade_start", false) < 0) {
		fprintf(stderr, "ekmfs-admin: audit: %s; nothing was changed\n", ekmfs_lasterr());
		goto out;
	}
	s.progress = tool_progress_start(&(struct tool_progress_opts){
		.label = "upgrade", .unit = TOOL_BYTES, .show = TOOL_SHOW_TTY,
		.total = tool_progress_shown(TOOL_SHOW_TTY) ? admin_bytes_below(backing) : 0 });
	rc = admin_walk_files(backing, upgrade_file, &s);
	tool_progress_stop(s.progress);
	if (rc < 0) {
		fprintf(stderr, "ekmfs-admin: walking %s: %s\n", backing, strerror(-rc));
		s.failed++;
	}
	/* A crashed upgrade needs no other recovery than the one just done
	 * (every backup it left has been finished): its mark goes. */
	if (resuming && rc == 0 && (ekmfs_io->syncfs(s.a.fd) < 0 ||
				    ekmfs_volume_recovered(s.a.fd) < 0)) {
		fprintf(stderr, "ekmfs-admin: clearing the recovery mark of the interrupted "
			"upgrade: %s\n", strerror(errno));
		s.failed++;
	}
	if (s.failed == 0 && ekmfs_io->syncfs(s.a.fd) < 0) {
		fprintf(stderr, "ekmfs-admin: syncing %s: %s\n", backing, strerror(errno));
		s.failed++;
	}
	/* The keyring sealed while the volume is still version 1: a MAC made at
	 * 1 passes at 2 (FORMAT.md), so a crash between the two writes leaves
	 * a volume that opens either way. */
	if (s.failed == 0 && ekmfs_keys_seal_keyring(s.a.keys) < 0) {
		fprintf(stderr, "ekmfs-admin: every file is version 2, but the keyring could not "
			"be sealed: %s; run upgrade again\n", ekmfs_lasterr());
		s.failed++;
	}
	if (s.failed == 0) {
		vol.format_version = EKMFS_VOLUME_VERSION;
		rc = ekmfs_volume_rewrite(s.a.fd, &vol);
		if (rc < 0) {
			fprintf(stderr, "ekmfs-admin: every file is version 2, but %s/.ekmfs/%s "
				"could not be rewritten: %s; run upgrade again\n", backing,
				EKMFS_VOLUME_FILE, ekmfs_lasterr());
			s.failed++;
		}
	}
	if (audit_run(&s, "upgrade_finish", true) < 0)
		fprintf(stderr, "ekmfs-admin: audit: %s\n", ekmfs_lasterr());
	printf("upgrade: %llu files, %llu converted, %llu finished after an interruption, "
	       "%llu failed\n", (unsigned long long)s.files, (unsigned long long)s.converted,
	       (unsigned long long)s.resumed, (unsigned long long)s.failed);
	if (s.failed)
		printf("upgrade: the volume stays version 1 (its version 2 files are served as "
		       "they are); repair or remove the files named FAILED and run it again\n");
	else
		printf("upgrade: %s is version 2\n", backing);
	status = s.failed ? EXIT_FAIL : EXIT_OK;
out:
	if (lock)
		ekmfs_volume_release(s.a.fd, lock);
	if (s.journal_dir >= 0)
		close(s.journal_dir);
	ekmfs_secure_free(s.dek, EKMFS_KEY_SIZE);
	admin_audit_close(&s.a);
	return status;
}
