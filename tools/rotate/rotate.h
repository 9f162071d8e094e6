/*
 * rotate.h - ekmfs-rotate's private map: the state of one run and the
 * functions each file of tools/rotate/ contributes.
 *
 *   main.c      command line, --help, the rotate lock, dispatch, exit codes
 *   keks.c      the KEK table (one tenant's, or every tenant's for migrate):
 *               unwrap them, add a version, retire, destroy, re-wrap them
 *               under a new CMK (all keyring writes)
 *   walk.c      the list of regular files below BACKING
 *   rewrap.c    the per-file header re-wrap and migrate, the worker threads
 *   passes.c    one pass over every file; passes until one changes nothing
 *   migrate.c   the migrate command: target tenants, its passes
 *   progress.c  the progress bar / periodic lines on stderr
 *   report.c    status output, the summary (text or JSON), skipped files,
 *               failures and their exit codes
 *   audit.c     the records of each command in the volume's audit trail
 *
 * Exit codes are in enum rot_exit and documented in --help and ROTATION.md.
 */
#ifndef EKMFS_ROTATE_H
#define EKMFS_ROTATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ekmfs/config.h"
#include "ekmfs/format.h"
#include "ekmfs/keyring.h"
#include "ekmfs/provider.h"

struct ekmfs_audit;

enum rot_exit {
	ROT_OK = 0,        /* done */
	ROT_ERROR = 1,     /* failed: nothing or part done, the volume is consistent */
	ROT_USAGE = 2,     /* bad command line */
	ROT_SKIPPED = 3,   /* finished, but some files were skipped or remain */
	ROT_REFUSED = 4,   /* refused: lock held, CMK interval, retire while used */
};

#define ROT_LOCK_FILE "rotate.lock"
#define ROT_PROGRESS_FILE EKMFS_ROTATE_PROGRESS_FILE
#define ROT_MAX_JOBS 64
#define ROT_MAX_PASSES 5
#define ROT_BATCH 1024

enum rot_command { CMD_STATUS, CMD_KEK, CMD_REWRAP, CMD_RETIRE, CMD_CMK, CMD_MIGRATE };

struct rot_opts {
	enum rot_command cmd;
	const char *config;          /* -c; NULL = the default path */
	const char *backing;
	const char *tenant;
	const char *to;              /* cmk --to */
	uint32_t version;            /* retire --version */
	bool dry_run, json, quiet, force, destroy;
	unsigned jobs;
};

/* One unwrapped KEK (secure memory): of the tenant being rotated, or of
 * any tenant for migrate. */
struct rot_kek {
	uint32_t tenant_id, version;
	uint8_t *key;
};

/* migrate: a tenant whose KEKs could not be unwrapped; its files are
 * skipped with this reason while the other tenants' files move. */
struct rot_load_err {
	uint32_t tenant_id;
	char msg[256];
};

/* status and migrate: at most this many misplaced paths are listed. */
#define ROT_MISPLACED_LIST 20

/* Everything a run knows about the volume. */
struct rot_ctx {
	struct rot_opts opt;
	int backing_fd;
	struct ekmfs_config cfg;
	/* The tenant acted on. migrate: the --tenant filter (trec NULL until
	 * the keyring has it), or both NULL without --tenant. */
	const struct ekmfs_tenant_config *tc;
	struct ekmfs_volume vol;
	struct ekmfs_keyring kr;     /* as last read */
	struct ekmfs_tenant_record *trec; /* in kr */
	struct ekmfs_provider *prov; /* opened by keys_load */
	struct rot_kek *keks;
	size_t nkeks;
	struct rot_load_err *load_errs; /* migrate: tenants that did not load */
	size_t nload_errs;
	time_t started;              /* also the time migrate and status route at */
	/* The default tenant's, for the audit key and the keyring's MAC key;
	 * opened for every command but status. */
	struct ekmfs_provider *audit_prov;
	struct ekmfs_keyring_key *mk; /* authenticates kr (NULL for status) */
	struct ekmfs_audit *audit;   /* NULL for status and --dry-run */
	/* results for the summary */
	uint32_t new_version;        /* kek: the version created (0: none) */
	/* cmk: the CMK reference and version before the change, for the
	 * cmk_changed record (old and new). "" when not changed. */
	char old_cmk_ref[EKMFS_REF_MAX], old_cmk_version[EKMFS_REF_MAX];
	uint32_t retired[64];
	size_t nretired;
	char created[EKMFS_MAX_TENANTS][EKMFS_NAME_MAX]; /* migrate: tenants created */
	size_t ncreated;
};

/* ---- walk.c ---- */
struct rot_paths {
	char **path;                 /* relative to BACKING */
	size_t n, cap;
};
int rot_walk(int backing_fd, struct rot_paths *out);
void rot_paths_free(struct rot_paths *p);

/* ---- rewrap.c ---- */
enum rot_mode { MODE_SCAN, MODE_DRYRUN, MODE_REWRAP };

struct rot_skip {
	char *path;
	char reason[200];
};

struct rot_ref {
	uint32_t tenant_id, version;
	uint64_t files;
};

struct rot_counts {
	uint64_t files;              /* examined */
	uint64_t empty;              /* 0 bytes: no header, nothing to wrap */
	uint64_t current;            /* already only on the target version (migrate:
					 already on the tenant it routes to) */
	uint64_t rewrapped;          /* new slot written, old slot cleared (migrate:
					 moved to another tenant) */
	uint64_t cleared;            /* only a stale slot cleared */
	uint64_t other_tenant;       /* another tenant's file: left alone (migrate:
					 not selected by --tenant) */
	uint64_t vanished;           /* deleted or replaced since the walk */
	uint64_t unreadable_headers; /* scan: corrupt or foreign */
	uint64_t misplaced;          /* scan: header tenant != the route of its path */
};

struct rot_pass {
	/* input */
	struct rot_ctx *ctx;
	enum rot_mode mode;
	/* rewrap: the tenant and its target version. migrate: the target is
	 * chosen per file (ekmfs_config_route at ctx->started); filter is the
	 * --tenant name or NULL. */
	bool migrate;
	const char *filter;
	uint32_t tenant_id, target;
	const struct rot_paths *paths;
	unsigned jobs;
	size_t batch;
	const char *label;           /* "re-wrap pass 1", for progress lines */
	/* shared while running */
	atomic_size_t next;
	atomic_uint_fast64_t done;
	pthread_mutex_t mu;          /* guards everything below */
	struct rot_counts counts;
	struct rot_skip *skips;
	size_t nskips, capskips;
	struct rot_ref *refs;        /* scan: files per (tenant, version) */
	size_t nrefs, caprefs;
	/* migrate: files moved (dry run: to move) per target, indexed like
	 * ctx->cfg.tenants */
	uint64_t moved_to[EKMFS_MAX_TENANTS];
	/* scan: the first misplaced paths in sort order (strdup'd) */
	char *misplaced[ROT_MISPLACED_LIST];
	size_t nmisplaced;
	int fatal;                   /* -errno: stop (syncfs failed, ...) */
	char fatal_msg[256];
};

/* Run one pass over paths with opt.jobs threads. 0 or -errno (fatal). */
int rot_pass_run(struct rot_pass *p);
void rot_pass_free(struct rot_pass *p);
uint64_t rot_pass_refs(const struct rot_pass *p, uint32_t tenant_id, uint32_t version);
/* main.c: how many files a worker keeps open at once (RLIMIT_NOFILE). */
size_t rot_batch_size(unsigned jobs);

/* ---- passes.c ---- */
/* One pass of mode over every file of BACKING with goal's tenant_id,
 * target, migrate and filter (its other fields are not read). The caller
 * frees p and paths, also on error. 0 or -errno. */
int rot_one_pass(struct rot_ctx *c, const struct rot_pass *goal, enum rot_mode mode,
		 const char *label, struct rot_pass *p, struct rot_paths *paths);
/* Passes until one changes nothing (at most ROT_MAX_PASSES; one for a dry
 * run), then, if the last still had work, a counting pass. */
struct rot_run {
	struct rot_pass last;        /* the last pass; its moved_to sums every pass */
	struct rot_paths paths;
	struct rot_counts total;     /* rewrapped, cleared and files over the passes */
	uint64_t moved_to[EKMFS_MAX_TENANTS];
	uint64_t remaining;          /* files still to do after the last pass */
	unsigned passes;
	double seconds;
};
/* ---- fence.c ---- */
/* Ask the daemon serving the volume (if any) to fence its writes while the
 * passes run; a warning when it cannot. stop releases it. */
void rot_fence_start(struct rot_ctx *c);
void rot_fence_stop(void);
/* Lock one file against the daemon's writes and note its mtime; release
 * puts mtime back (NULL: nothing was written) and unlocks. */
int rot_file_hold(int fd, struct timespec *mtime);
void rot_file_release(int fd, const struct timespec *mtime);

int rot_run_passes(struct rot_ctx *c, const struct rot_pass *goal, const char *verb,
		   struct rot_run *run);
void rot_run_free(struct rot_run *run);
double rot_now(void);               /* CLOCK_MONOTONIC seconds */

/* ---- audit.c: the command's records in the volume's audit trail ---- */
struct json_object;
int rot_audit_open(struct rot_ctx *c);
void rot_audit_close(struct rot_ctx *c);
void rot_audit(const struct rot_ctx *c, const char *event, const char *outcome,
	       uint32_t kek_version, const char *path, const char *reason,
	       struct json_object *details);
/* The same for a record about tenant (NULL: none) rather than c->trec. */
void rot_audit_tenant(const struct rot_ctx *c, const char *tenant, const char *event,
		      const char *outcome, uint32_t kek_version, const char *path,
		      const char *reason, struct json_object *details);
void rot_audit_outcome(const struct rot_ctx *c, const char *outcome, const char *msg);
void rot_audit_rewrap(const struct rot_ctx *c, const struct rot_pass *last,
		      const struct rot_counts *total, uint64_t remaining, unsigned passes);
void rot_audit_migrate(const struct rot_ctx *c, const struct rot_pass *last,
		       const struct rot_counts *total, uint64_t remaining, unsigned passes);

/* ---- keks.c ---- */
/* Read config, descriptor and keyring; pick the tenant. 0 or -errno. */
int keys_setup(struct rot_ctx *c);
/* Open the tenant's provider and unwrap every KEK that is not destroyed. */
int keys_load(struct rot_ctx *c);
/* migrate: unwrap every KEK of every tenant in the keyring (each through
 * its own provider, closed again). A tenant that fails is recorded in
 * c->load_errs, not fatal. 0 or -ENOMEM. */
int keys_load_all(struct rot_ctx *c);
/* Why tenant_id's KEKs are missing (a load error), or NULL. */
const char *keys_load_error(const struct rot_ctx *c, uint32_t tenant_id);
const uint8_t *keys_find(const struct rot_ctx *c, uint32_t tenant_id, uint32_t version);
/* Re-read the keyring into c->kr (after a write, or another writer's). */
int keys_reread(struct rot_ctx *c);
/* kek: make a new KEK version current. 0 or -errno. */
int keys_new_version(struct rot_ctx *c);
/* Mark every active version but the current one retired (records them in
 * c->retired). 0 or -errno. */
int keys_retire_old(struct rot_ctx *c);
/* retire: set version's state (retired, or destroyed with its wrapped key
 * wiped). 0 or -errno. */
int keys_set_state(struct rot_ctx *c, uint32_t version, bool destroy);
/* cmk: re-wrap the tenant's KEKs under the provider newp (or the configured
 * one). n_out receives how many records were re-wrapped. 0 or -errno. */
int keys_rewrap_cmk(struct rot_ctx *c, const struct ekmfs_tenant_config *new_tc,
		    size_t *n_out, char *fingerprint, size_t fplen);
void keys_close(struct rot_ctx *c);

/* ---- progress.c ---- */
struct rot_progress;
struct rot_progress *progress_start(const struct rot_pass *p, uint64_t total, bool quiet);
void progress_stop(struct rot_progress *pr);

/* ---- migrate.c ---- */
int cmd_migrate(struct rot_ctx *c);

/* ---- report.c ---- */
int report_status(struct rot_ctx *c, const struct rot_pass *scan);
/* Summary of a migrate run; returns the exit code it implies. */
int report_migrate(struct rot_ctx *c, const struct rot_pass *last,
		   const struct rot_counts *total, uint64_t remaining, unsigned passes,
		   double seconds);
/* Summary of a kek / rewrap run; returns the exit code it implies. */
int report_rewrap(struct rot_ctx *c, const struct rot_pass *last, const struct rot_counts *total,
		  uint64_t remaining, unsigned passes, double seconds);
void report_skips(const struct rot_ctx *c, const struct rot_pass *p);
/* Print msg (text) or {"outcome": ..} (json) for a result, a refusal or a
 * failure. A message leads with the cause and its fix; the text line ends
 * with the consequence: a refusal with " - refused, nothing was changed". */
void report_outcome(const struct rot_ctx *c, const char *outcome, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* What a failure did to the volume, said after its cause (not for status
 * or a dry run, which change nothing anyway). */
enum rot_then {
	THEN_NOTHING_TO_SAY,
	THEN_UNCHANGED,         /* failed before writing anything */
	THEN_CONSISTENT,        /* failed in a re-wrap pass: rerun to finish */
};
/* Report a failure (err -errno; what names the step when ekmfs_lasterr() is
 * empty) and return its exit code: ROT_REFUSED for a held lock, else
 * ROT_ERROR. */
int report_failure(struct rot_ctx *c, int err, const char *what);
int report_failure_then(struct rot_ctx *c, int err, const char *what, enum rot_then then);

#endif
