/*
 * events.c - the audit records of the key manager's events (keys.h).
 *
 * Owns: which audit event (docs/AUDIT.md, src/audit/events.c) and outcome
 * each enum ekmfs_key_event becomes. The daemon's hook (src/fs/fsaudit.c)
 * fills the record with it and posts it.
 */
#include "ekmfs/audit.h"
#include "ekmfs/keys.h"
#include "ekmfs/util.h"

void ekmfs_key_event_record(struct ekmfs_audit_event *ev, enum ekmfs_key_event kev,
			    const char *tenant, const char *cmk_ref, uint32_t kek_version,
			    const char *reason)
{
	static const char *const names[] = {
		[EKMFS_KEY_FETCHED] = "cache_fetch",
		[EKMFS_KEY_REFUSED] = "kms_refused",
		[EKMFS_KEY_OUTAGE] = "kms_outage_start",
		[EKMFS_KEY_RESTORED] = "kms_access_restored",
		[EKMFS_KEY_EXPIRED] = "cache_expire",
		[EKMFS_TENANT_CREATED] = "tenant_created",
		[EKMFS_CMK_SET] = "cmk_set",
		[EKMFS_TENANT_ENABLED] = "tenant_enabled",
		[EKMFS_TENANT_DISABLED] = "tenant_disabled",
		[EKMFS_KEYRING_TAMPERED] = "keyring_tampered",
	};

	ev->event = (size_t)kev < EKMFS_ARRAY_SIZE(names) && names[kev] ? names[kev] :
		    "key_event";
	ev->outcome = kev == EKMFS_KEY_REFUSED || kev == EKMFS_KEYRING_TAMPERED ? "refused" :
		      kev == EKMFS_KEY_OUTAGE ? "failure" : "success";
	ev->tenant = tenant;
	ev->key_ref = cmk_ref;
	ev->kek_version = kek_version;
	ev->reason = reason;
}
