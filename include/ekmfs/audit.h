/*
 * audit.h - the tamper-evident audit log of a volume.
 *
 * Owns: the audit record (one JSON object per line), the MAC chain that
 * links every record to the one before it, the chain head kept in the volume
 * (.ekmfs/audit.head) that makes truncation visible, the audit key
 * (.ekmfs/audit.key.json, wrapped by the default tenant's CMK), appending
 * under an flock shared by every writer (daemon, ekmfs-admin, ekmfs-rotate),
 * an asynchronous, rate-limited queue for the daemon, and verification.
 * Format and reasoning: docs/AUDIT.md.
 *
 * Only a holder of the audit key can extend the chain, and the audit key is
 * only reachable through the CMK, so appending and verifying both need the
 * default tenant's provider (opened by the caller).
 */
#ifndef EKMFS_AUDIT_H
#define EKMFS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ekmfs/config.h"
#include "ekmfs/keyring.h"
#include "ekmfs/provider.h"

#define EKMFS_AUDIT_KEY_FILE "audit.key.json"
#define EKMFS_AUDIT_HEAD_FILE "audit.head"
/* Left by a writer while [audit] enabled = false; docs/AUDIT.md. */
#define EKMFS_AUDIT_OFF_FILE "audit.off"
#define EKMFS_AUDIT_DEFAULT_DIR "/var/log/ekmfs"
#define EKMFS_AUDIT_MAC_SIZE 32
/* A record line never exceeds this (paths are at most PATH_MAX). */
#define EKMFS_AUDIT_LINE_MAX 16384

struct ekmfs_audit;
struct json_object;

/* One event. Only event is required; NULL / 0 / -1 fields are left out of
 * the record. details (may be NULL) is copied into the record as "details";
 * the caller keeps ownership. */
struct ekmfs_audit_event {
	const char *event;          /* "volume_init", "kek_rotated", ... */
	const char *outcome;        /* "success" (default), "failure", "refused" */
	const char *tenant;
	const char *key_ref;        /* CMK reference */
	uint32_t kek_version;       /* 0: none */
	const char *reason;
	const char *file_id;        /* hex */
	const char *path;           /* relative to BACKING */
	long long uid, pid;         /* -1: unknown; use EKMFS_AUDIT_EVENT_INIT */
	struct json_object *details;
};
#define EKMFS_AUDIT_EVENT_INIT { .uid = -1, .pid = -1 }

/* The event names (events.c): the i-th known name, NULL past the last one;
 * and whether name is one of them. Every record's event must be. */
const char *ekmfs_audit_event_name(size_t i);
bool ekmfs_audit_event_known(const char *name);

/* The log file of a volume: cfg's [audit] file, or
 * /var/log/ekmfs/<volume id>.log. */
void ekmfs_audit_log_path(const struct ekmfs_config *cfg, const struct ekmfs_volume *vol,
			  char *out, size_t outlen);

/* Open the audit trail of the volume in backing_fd (kept by the caller).
 * prov is the default tenant's provider: it unwraps the audit key, or,
 * when the volume has none yet, a new one is created, wrapped by it, and the
 * head initialised (under the meta lock) - only when there is no trace of
 * a chain (a key gone while its head or records remain is -EBADMSG). The
 * log file is opened (created 0600 in a 0700 directory if missing) so an
 * unwritable log fails here; the head must authenticate and agree with the
 * log's last record (a rolled-back head, records cut from the log, another
 * chain's log: -EBADMSG). Fails closed: the caller must not go on without
 * its trail. 0 or -errno with ekmfs_lasterr(). */
int ekmfs_audit_open(int backing_fd, const struct ekmfs_config *cfg,
		     const struct ekmfs_volume *vol, struct ekmfs_provider *prov,
		     struct ekmfs_audit **out);
/* For ekmfs_audit_verify only: unwraps the key (never creates one) and
 * checks nothing, so that verify can report what is wrong; whatever
 * [audit] enabled says. Never write through it. */
int ekmfs_audit_open_to_verify(int backing_fd, const struct ekmfs_config *cfg,
			       const struct ekmfs_volume *vol, struct ekmfs_provider *prov,
			       struct ekmfs_audit **out);
/* With [audit] enabled = false, ekmfs_audit_open sets *out to NULL (every
 * call below takes a NULL trail and does nothing) and leaves this mark:
 * .ekmfs/audit.off saying since when and by whom (who: the program), kept
 * from the first writer on; the first open with the log on again records
 * it (audit_resumed) and removes it. 0 or -errno. */
int ekmfs_audit_mark_off(int backing_fd, const char *who);
/* The keyring anchor (docs/AUDIT.md "Keyring anchor"): the chain head
 * records the highest keyring generation a writer had authenticated.
 * keyring_generation: what the head said at open (0: none, or a NULL
 * trail). note: this process authenticated generation; its next append
 * writes it into the head (never lowering it). */
uint64_t ekmfs_audit_keyring_generation(const struct ekmfs_audit *a);
void ekmfs_audit_note_keyring(struct ekmfs_audit *a, uint64_t generation);
/* Stops the asynchronous writer (writing what is queued) and wipes the key. */
void ekmfs_audit_close(struct ekmfs_audit *a);
const char *ekmfs_audit_path(const struct ekmfs_audit *a);

/* Append one record now: flock the log, read the head, write the line,
 * fsync, replace the head. 0 or -errno with ekmfs_lasterr(). */
int ekmfs_audit_write(struct ekmfs_audit *a, const struct ekmfs_audit_event *ev);

/* The daemon's way: a writer thread and a bounded queue. post never blocks
 * on I/O or on another writer's flock; it drops the event (counted, and
 * reported by an "audit_events_dropped" record later) when the queue is
 * full or more than `rate` events per second arrive (burst 5*rate).
 * Write failures are logged once per distinct error. */
int ekmfs_audit_start_async(struct ekmfs_audit *a, unsigned rate);
void ekmfs_audit_post(struct ekmfs_audit *a, const struct ekmfs_audit_event *ev);
/* Wait until everything posted so far is written (tests, shutdown). */
void ekmfs_audit_flush(struct ekmfs_audit *a);

/* Check the chain of the log files (in order: rotated files first) against
 * the head. 0 when intact; -EBADMSG with *bad_seq (0 when not about one
 * record) and why (one line) at the first problem; other -errno for I/O. */
struct ekmfs_audit_report {
	uint64_t records;           /* records that verified */
	uint64_t head_seq;
	uint64_t bad_seq;
	char why[512];
};
int ekmfs_audit_verify(struct ekmfs_audit *a, const char *const *logs, size_t nlogs,
		       struct ekmfs_audit_report *rep);

/* Re-wrap the audit key from the provider `from` to `to` (a CMK change).
 * keep_from: keep the wraps `from` opens as well, so a crash before the
 * keyring write leaves an audit key that whichever CMK the keyring ends up
 * with still opens; call again with keep_from false once the keyring is
 * written. A volume without an audit key: 0, nothing done. */
int ekmfs_audit_key_rewrap(int backing_fd, const struct ekmfs_volume *vol,
			   struct ekmfs_provider *from, struct ekmfs_provider *to,
			   bool keep_from);

#endif
