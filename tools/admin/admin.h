/*
 * admin.h - ekmfs-admin's commands and the helpers they share.
 *
 * main.c parses the command line and dispatches; each command lives in its
 * own file and returns the process exit status (0 ok, 1 failure or damage
 * found, 2 usage).
 */
#ifndef EKMFS_ADMIN_H
#define EKMFS_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "ekmfs/config.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Called for every regular file of a volume (the .ekmfs directory is
 * skipped); relpath is relative to the backing directory. Returns 0 to go on. */
typedef int (*admin_file_fn)(const char *path, const char *relpath,
			     const struct stat *st, void *arg);
/* Walk the backing directory without following symlinks. 0 or -errno. */
int admin_walk_files(const char *backing, admin_file_fn fn, void *arg);
/* The bytes of those files (best effort: a progress bar's total). */
uint64_t admin_bytes_below(const char *backing);

/* status.c: how many files each (tenant, KEK version) protects, from the
 * plaintext slot fields of every header (no key needed). */
struct admin_kek_count {
	uint32_t tenant_id, version;
	uint64_t files;
};
/* Files by (the tenant the configuration routes their path to, the tenant
 * id of their header): a file is misplaced when the two differ. */
struct admin_route_count {
	const struct ekmfs_tenant_config *route;
	uint32_t tenant_id;
	uint64_t files;
};
struct admin_tally {
	struct admin_kek_count *counts;
	size_t ncounts, cap;
	uint64_t files, empty, bad_header, unreadable;
	/* Set cfg (and now) before the walk to count routes too. */
	const struct ekmfs_config *cfg;
	time_t now;
	struct admin_route_count *routes;
	size_t nroutes, routes_cap;
};
int admin_tally_volume(const char *backing, struct admin_tally *t);
/* Descriptor, keyring and tally of a volume (no key needed); prints the
 * one-line error itself. 0 or -errno; the caller frees kr and tally. */
struct ekmfs_volume;
struct ekmfs_keyring;
int admin_volume_load(const char *backing, struct ekmfs_volume *vol,
		      struct ekmfs_keyring *kr, struct admin_tally *tally);
uint64_t admin_tally_files(const struct admin_tally *t, uint32_t tenant_id, uint32_t version);
/* Misplaced files (header tenant != routed tenant; kr maps names to ids):
 * those routed to routed_to (NULL: any) and wrapped by wrapped_by (NULL:
 * any tenant, known or not). */
struct ekmfs_tenant_record;
uint64_t admin_tally_misplaced(const struct admin_tally *t, struct ekmfs_keyring *kr,
			       const char *routed_to, const struct ekmfs_tenant_record *wrapped_by);
void admin_tally_free(struct admin_tally *t);
/* status.c */
int admin_status(const char *backing, const struct ekmfs_config *cfg);
/* status_tenant.c: the per-tenant policy, misplaced files and key cache of
 * status (docs/TENANTS.md); the cache state comes from the running daemon. */
struct json_object;
struct admin_status_ctx {
	const struct ekmfs_config *cfg;
	struct ekmfs_keyring *kr;
	const struct admin_tally *tally;
	struct json_object *states;     /* the daemon's `tenants` answer, or NULL */
	struct json_object *inodes;     /* the daemon's `inodes` answer, or NULL */
	char no_daemon[PATH_MAX + 128]; /* why states is NULL: "not mounted", ... */
	time_t now;
};
void admin_status_ctx_init(struct admin_status_ctx *c, const struct ekmfs_config *cfg,
			   const struct ekmfs_volume *vol, struct ekmfs_keyring *kr,
			   const struct admin_tally *tally);
void admin_status_ctx_free(struct admin_status_ctx *c);
/* The lines / JSON members of one keyring tenant, after its KEK lines. */
void admin_status_tenant_text(const struct admin_status_ctx *c, struct ekmfs_tenant_record *t);
void admin_status_tenant_json(const struct admin_status_ctx *c, struct ekmfs_tenant_record *t,
			      struct json_object *o);
/* Configured tenants the keyring lacks yet (the daemon creates them at the
 * next mount or reload): printed whole / appended to the array. */
void admin_status_new_tenants_text(const struct admin_status_ctx *c);
void admin_status_new_tenants_json(const struct admin_status_ctx *c, struct json_object *arr);
/* status_holder.c: who holds the volume (holder.h): a 'mounted by:' line /
 * the "holder" and "recovery_pending" members. */
void admin_status_holder_text(const char *backing);
void admin_status_holder_json(const char *backing, struct json_object *root);
/* status_json.c: `status [--json] BACKING` (argv[0] is "status") */
int admin_status_main(int argc, char **argv, const struct ekmfs_config *cfg);
/* An RFC 3339 UTC string for t, or NULL (JSON null) when t is unset. */
struct json_object;
struct json_object *admin_json_time(time_t t);
/* manifest.c: `backup-manifest ...` (argv[0] is "backup-manifest"); no key */
int admin_backup_manifest(int argc, char **argv);
/* test.c: `test [--tenant T] [--json] BACKING`, argv[0] is "test" */
int admin_test_main(int argc, char **argv, const struct ekmfs_config *cfg);
/* verify.c */
int admin_verify(const char *backing, const struct ekmfs_config *cfg, bool keys_only);
/* upgrade.c: every version 1 file to version 2, then the volume. */
int admin_upgrade(const char *backing, const struct ekmfs_config *cfg);

/* audit.c: the audit trail of one command (fd, keys and audit log open). */
struct ekmfs_keys;
struct ekmfs_audit;
struct ekmfs_audit_event;
struct admin_audit {
	int fd;
	struct ekmfs_keys *keys;
	struct ekmfs_audit *audit;
};
/* Open the volume's keys and audit trail (fails closed, audit.h);
 * to_verify: only for `audit verify` (ekmfs_audit_open_to_verify). With
 * [audit] enabled = false, out->audit is NULL and records are no-ops. */
int admin_audit_open(const char *backing, const struct ekmfs_config *cfg, bool to_verify,
		     struct admin_audit *out);
void admin_audit_close(struct admin_audit *a);
/* Write ev now with this process's uid and pid. 0 or -errno. */
int admin_audit_record(struct admin_audit *a, struct ekmfs_audit_event *ev);
int admin_audit_preflight(const struct ekmfs_config *cfg);
int admin_audit_init_record(const char *backing, const struct ekmfs_config *cfg);
/* `audit verify|show ...` (argv[0] is "audit") */
int admin_audit_main(int argc, char **argv, const struct ekmfs_config *cfg);
/* The audit event names ("a, b, c"), indented, wrapped before column width
 * (0: one line), ending in a newline. */
void admin_print_audit_events(FILE *f, int indent, int width);
/* The daemon's per-tenant cache states (a JSON array, caller puts it), or
 * NULL with why = "not mounted" or "unknown (...)". */
struct json_object *admin_daemon_tenants(const struct ekmfs_config *cfg,
					 const struct ekmfs_volume *vol, char *why, size_t whylen);
/* The daemon's inode table and descriptors (a JSON object, caller puts
 * it), or NULL (not mounted, or a daemon without the request). */
struct json_object *admin_daemon_inodes(const struct ekmfs_config *cfg,
					const struct ekmfs_volume *vol);
/* status_tenant.c: the daemon's inodes line / JSON member */
void admin_status_daemon_text(const struct admin_status_ctx *c);
struct json_object *admin_status_daemon_json(const struct admin_status_ctx *c);
/* The entry of tenant name in states (borrowed), or NULL. */
struct json_object *admin_daemon_tenant(struct json_object *states, const char *name);
/* lock.c: `lock [--tenant T] MOUNTPOINT`, `unlock [--tenant T] MOUNTPOINT` */
int admin_lock_main(int argc, char **argv, const struct ekmfs_config *cfg);
/* import.c: `import-plaintext [--backing BACKING] PATH...` */
int admin_import_main(int argc, char **argv, const struct ekmfs_config *cfg);

#endif
