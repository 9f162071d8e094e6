/*
 * fsaudit.c - the daemon's audit records (docs/AUDIT.md).
 *
 * Owns: opening the volume's audit log at mount and the records the daemon
 * writes: mount, unmount, config_reload, decrypt_failed (a block or header
 * that fails authentication: file, block), lock and unlock (control.c).
 *
 * Nothing here may stall or fail a FUSE request: records are posted to the
 * audit module's writer thread, which is rate-limited (RATE per second,
 * bursts of 5 * RATE; the excess is counted and reported in the chain as
 * audit_events_dropped), so an attacker who corrupts many blocks cannot
 * make the daemon wait on the log. The trail fails closed: when it cannot
 * be opened at mount (key or head missing or not authenticating, a head
 * rolled back against the log, an unwritable log), the volume is not
 * mounted; only [audit] enabled = false serves without it (and leaves
 * .ekmfs/audit.off, recorded when the log is turned back on).
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/audit.h"
#include "ekmfs/util.h"
#include "fs.h"

#define RATE 20

/* Key-service events from the key manager (called under its lock: post
 * only, never block). */
static void key_event_hook(void *arg, enum ekmfs_key_event kev, const char *tenant,
			   const char *cmk_ref, uint32_t kek_version, const char *reason)
{
	struct efs_data *fs = arg;
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;

	ekmfs_key_event_record(&ev, kev, tenant, cmk_ref, kek_version, reason);
	ekmfs_audit_post(fs->audit, &ev);
}

int efs_audit_open(struct efs_data *fs, const struct ekmfs_config *cfg, int backing_fd)
{
	int ret;

	ekmfs_clearerr();
	ret = ekmfs_audit_open(backing_fd, cfg, ekmfs_keys_volume(fs->keys),
			       ekmfs_keys_provider(fs->keys, EKMFS_DEFAULT_TENANT), &fs->audit);
	if (!ret && !fs->audit) {
		ekmfs_log(EKMFS_LOG_WARN, "audit log off ([audit] enabled = false): nothing is "
			  "recorded until it is turned back on");
		return 0;
	}
	if (!ret)
		ret = ekmfs_audit_start_async(fs->audit, RATE);
	if (!ret)
		ekmfs_keys_set_event_hook(fs->keys, key_event_hook, fs);
	if (ret) {
		if (!ekmfs_lasterr()[0])
			ekmfs_seterr("cannot start the audit writer: %s", strerror(-ret));
		ekmfs_audit_close(fs->audit);
		fs->audit = NULL;
	}
	return ret;
}

int efs_audit_check_keyring(struct efs_data *fs)
{
	return ekmfs_keys_check_anchor(fs->keys, ekmfs_audit_keyring_generation(fs->audit));
}

void efs_audit_note_keyring(struct efs_data *fs)
{
	ekmfs_audit_note_keyring(fs->audit, ekmfs_keys_sealed_generation(fs->keys));
}

void efs_audit_event(struct efs_data *fs, const char *event, const char *reason)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;

	ev.event = event;
	ev.reason = reason;
	ev.uid = (long long)getuid();
	ev.pid = (long long)getpid();
	ekmfs_audit_post(fs->audit, &ev);
}

void efs_audit_tamper(struct efs_data *fs, int fd, const uint8_t *file_id, uint64_t block)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	char rel[PATH_MAX], id[2 * EKMFS_FILE_ID_SIZE + 1];
	json_object *d;

	if (!fs->audit)
		return;
	efs_relpath(fs, fd, rel, sizeof(rel));
	ev.event = "decrypt_failed";
	ev.outcome = "failure";
	/* The content layer's reason when it gave one: "backing file is ...
	 * (cut short)", "state record 0 does not authenticate", ... */
	ev.reason = *ekmfs_lasterr() ? ekmfs_lasterr()
		    : block == UINT64_MAX ? "file header does not authenticate (tampered or corrupt)"
		    : "block authentication failed (tampered or corrupt)";
	ev.path = rel;
	if (file_id) {
		ekmfs_hex(file_id, EKMFS_FILE_ID_SIZE, id);
		ev.file_id = id;
	}
	d = json_object_new_object();
	if (d) {
		if (block == UINT64_MAX)
			json_object_object_add(d, "part", json_object_new_string("header"));
		else
			json_object_object_add(d, "block", json_object_new_int64((int64_t)block));
	}
	ev.details = d;
	ekmfs_audit_post(fs->audit, &ev);
	json_object_put(d);
}

void efs_audit_close(struct efs_data *fs)
{
	if (fs->audit && fs->keys)
		ekmfs_keys_set_event_hook(fs->keys, NULL, NULL);
	ekmfs_audit_close(fs->audit);   /* writes what is queued */
	fs->audit = NULL;
}
