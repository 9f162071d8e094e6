/*
 * events.c - the names of the audit events (include/ekmfs/audit.h).
 *
 * Owns: the one list of every event name an ekmfs program writes into the
 * audit log, in the order of docs/AUDIT.md's table. `ekmfs-admin audit
 * show --event` accepts exactly these and its --help lists them; every
 * record written is checked against the list (build_body in audit.c), so a
 * writer with a new event name must add it here, and to docs/AUDIT.md.
 */
#include <string.h>

#include "ekmfs/audit.h"
#include "ekmfs/util.h"

static const char *const event_names[] = {
	/* ekmfs-admin init */
	"volume_init",
	/* daemon */
	"mount", "unmount",
	"recovery",
	"decrypt_failed",
	"lock", "unlock",
	"config_reload",
	/* ekmfs-admin upgrade */
	"upgrade_start", "upgrade_finish",
	/* ekmfs-admin import-plaintext */
	"import_plaintext_start", "import_plaintext", "import_plaintext_finish",
	/* daemon: the audit queue and the key cache */
	"audit_events_dropped",
	/* any writer: the log back on after [audit] enabled = false */
	"audit_resumed",
	"cache_fetch", "cache_expire",
	/* daemon, import-plaintext, ekmfs-rotate migrate: tenants */
	"tenant_created", "cmk_set",
	"tenant_enabled", "tenant_disabled",
	/* daemon: the key service */
	"kms_refused", "kms_outage_start", "kms_access_restored",
	"keyring_tampered",
	"scheduled_rotation_start", "scheduled_rotation_finish",
	/* ekmfs-rotate */
	"kek_created", "kek_rotated",
	"rewrap_start", "rewrap_finish", "rewrap_skipped_file",
	"kek_retired", "kek_destroyed",
	"cmk_changed", "cmk_change_refused",
	"migrate_start", "migrate_finish", "migrate_skipped_file",
	"kek_retire_refused", "rewrap_refused", "kek_rotate_refused", "migrate_refused",
};

const char *ekmfs_audit_event_name(size_t i)
{
	return i < EKMFS_ARRAY_SIZE(event_names) ? event_names[i] : NULL;
}

bool ekmfs_audit_event_known(const char *name)
{
	for (size_t i = 0; name && i < EKMFS_ARRAY_SIZE(event_names); i++)
		if (strcmp(name, event_names[i]) == 0)
			return true;
	return false;
}
