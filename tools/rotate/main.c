/*
 * main.c - ekmfs-rotate: command line, the rotate lock, the commands.
 *
 * Divisions:
 *   1. --help (the man page text) and option parsing
 *   2. the rotate lock and the descriptor limit
 *   3. the commands: status, kek / rewrap, retire, cmk (migrate: migrate.c)
 *   4. main()
 *
 * Rotation logic lives here and in the other files of tools/rotate/; the
 * core library provides the format, the keyring and the providers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "ekmfs/keys.h"
#include "ekmfs/provider.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "rotate.h"
#include "tool.h"

/* ---- 1. help and options ---- */

static const char usage_text[] =
"Usage: ekmfs-rotate [-c CONFIG] COMMAND [OPTIONS] BACKING\n"
"       ekmfs-rotate -h | --help\n"
"       ekmfs-rotate -V | --version\n"
"\n"
"Rotate the keys of an ekmfs volume by re-wrapping keys, never content: a\n"
"KEK rotation rewrites one 96-byte key slot in each file's header, a CMK\n"
"change rewrites a handful of keyring records, a migration moves files\n"
"between tenants the same way. Works while the volume is mounted and in\n"
"use; safe to interrupt at any moment (rerun to finish).\n"
"\n"
"Commands:\n"
"  status            Per tenant: the current KEK version and the CMK (and CMK\n"
"                    version) that wraps it, every KEK version with its state\n"
"                    (active, retired, destroyed), creation time and how many\n"
"                    files reference it; the last rotation and when the next\n"
"                    is due (rotation_days); the last CMK change. Also the\n"
"                    misplaced files: those whose header belongs to another\n"
"                    tenant than the one their path routes to now (renamed\n"
"                    across a tenant boundary, or written before enforce_from):\n"
"                    their count and up to 20 paths. Needs no key.\n"
"  kek               Create a new KEK version and make it current (new files,\n"
"                    also through a running mount, use it at once), re-wrap\n"
"                    every file still on an older version, then mark the older\n"
"                    versions retired. Re-scans until no file is left on an\n"
"                    older version (at most 5 passes) or says how many remain.\n"
"  rewrap            Finish an interrupted re-wrap: bring every file of the\n"
"                    tenant to its current KEK version, clear stale slots, and\n"
"                    retire older versions. Idempotent; 'kek' runs it.\n"
"  retire --version N [--destroy]\n"
"                    Mark KEK version N retired (it only unwraps, never wraps).\n"
"                    Refused while any file still references N, and for the\n"
"                    current version. With --destroy the wrapped key material\n"
"                    is wiped from the keyring: files and backups that still\n"
"                    reference N then need an older keyring copy to be read.\n"
"  cmk [--to REF] [--force]\n"
"                    Re-wrap the tenant's KEK versions under a new CMK (REF\n"
"                    as key_file or key_id would name it: the path of a new\n"
"                    key file, mode 0600, outside BACKING, made with\n"
"                    'ekmfs-admin keygen'; an AWS KMS key id, ARN or alias;\n"
"                    an Azure Key Vault key URL), or without --to under the\n"
"                    configured CMK (its\n"
"                    newest version). On AWS KMS the KEKs are re-wrapped\n"
"                    inside KMS (ReEncrypt) and never leave it. The\n"
"                    configuration must still name the old CMK; afterwards\n"
"                    point key_file (key_id) at REF and reload the mounts\n"
"                    (SIGHUP); an unlock re-reads the configuration too.\n"
"                    Refused when the last CMK change is more recent than\n"
"                    min_cmk_change_interval (default 24h) unless --force;\n"
"                    the first change of the CMK a tenant was created with\n"
"                    (e.g. right after init) is always allowed.\n"
"                    Before the tenant's enforce_from the interval does not\n"
"                    apply: its CMK may be changed freely and re-tested until\n"
"                    its files start to depend on it (the output says so).\n"
"  migrate [--tenant T]\n"
"                    Re-home every file whose header belongs to another tenant\n"
"                    than the one its path routes to now ([tenant.NAME] paths,\n"
"                    enforce_from and enabled in the configuration): its DEK is\n"
"                    re-wrapped under the routed tenant's current KEK, with\n"
"                    the same crash-safe two-slot protocol as rewrap; content\n"
"                    is never touched. Moves files to a tenant once its\n"
"                    enforce_from has passed, and back to the default tenant\n"
"                    when a tenant is disabled (enabled = false). Tenants the\n"
"                    keyring lacks are created first (KEK v1 under their CMK).\n"
"                    With --tenant T only the files that route to T or whose\n"
"                    header is T's. A tenant whose KEKs cannot be unwrapped\n"
"                    (its key service down or refusing) does not stop the\n"
"                    others: its files are skipped and listed. Passes repeat\n"
"                    until one moves nothing (at most 5).\n"
"\n"
"Options:\n"
"  -c, --config FILE  configuration file (default " EKMFS_DEFAULT_CONFIG ")\n"
"  -t, --tenant T     the tenant to act on (default: default; migrate: only\n"
"                     files that route to T or are T's, default: all)\n"
"  -n, --dry-run      report what would change; change nothing\n"
"  -j, --jobs N       worker threads for header re-wraps (default: CPUs, max 64)\n"
"      --json         print one JSON object (the summary) on stdout\n"
"  -q, --quiet        no progress and no summary (errors still print)\n"
"      --version N    retire (after COMMAND): the KEK version\n"
"      --destroy      retire: also wipe the wrapped key from the keyring\n"
"      --to REF       cmk: the new CMK (local: a key file path; cloud: key id)\n"
"      --force        cmk: ignore min_cmk_change_interval\n"
"  -h, --help         show this help\n"
"  -V, --version      (before COMMAND) show the program version\n"
"\n"
"Progress goes to stderr: a bar with rate and ETA on a terminal, a plain line\n"
"every 5 s otherwise (EKMFS_PROGRESS=off: none; =tty: the bar anyway). Files\n"
"whose header is corrupt or names an unknown or destroyed KEK are listed\n"
"('skipped PATH: REASON') and left untouched.\n"
"\n"
"Exit status:\n"
"  0  done (status: every header readable)\n"
"  1  error: nothing changed, or the part done is consistent; rerun\n"
"  2  usage error\n"
"  3  finished, but some files were skipped (listed on stderr) or remain on\n"
"     an older KEK version (migrate: remain misplaced)\n"
"  4  refused: another ekmfs-rotate holds the volume, the CMK interval has\n"
"     not passed, or the KEK version to retire is still referenced or current\n"
"\n"
"Examples:\n"
"  ekmfs-rotate status /srv/data.enc\n"
"  ekmfs-rotate kek --jobs 4 /srv/data.enc\n"
"  ekmfs-rotate retire --version 1 --destroy /srv/data.enc\n"
"  ekmfs-admin keygen > /etc/ekmfs/new.key && chmod 600 /etc/ekmfs/new.key\n"
"  ekmfs-rotate cmk --to /etc/ekmfs/new.key /srv/data.enc\n"
"  ekmfs-rotate migrate --dry-run /srv/data.enc\n"
"  ekmfs-rotate migrate --tenant acme /srv/data.enc\n"
"\n"
"See docs/ROTATION.md for the re-wrap protocol and its guarantees, and\n"
"docs/TENANTS.md for tenants and routing.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "ekmfs-rotate: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'ekmfs-rotate --help'.\n");
	return ROT_USAGE;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

enum { OPT_JSON = 256, OPT_VERSION, OPT_DESTROY, OPT_TO, OPT_FORCE };

/* The options before COMMAND (--version there is the program's version, as
 * for ekmfs and ekmfs-admin) and after it (--version N is retire's KEK
 * version). */
#define ROT_LONGOPTS(version_has_arg) {					\
		{ "config", required_argument, NULL, 'c' },		\
		{ "tenant", required_argument, NULL, 't' },		\
		{ "dry-run", no_argument, NULL, 'n' },			\
		{ "jobs", required_argument, NULL, 'j' },		\
		{ "json", no_argument, NULL, OPT_JSON },		\
		{ "quiet", no_argument, NULL, 'q' },			\
		{ "version", version_has_arg, NULL, OPT_VERSION },	\
		{ "destroy", no_argument, NULL, OPT_DESTROY },		\
		{ "to", required_argument, NULL, OPT_TO },		\
		{ "force", no_argument, NULL, OPT_FORCE },		\
		{ "help", no_argument, NULL, 'h' },			\
		{ NULL, 0, NULL, 0 },					\
	}

static void print_version(void)
{
	printf("ekmfs-rotate %s\n", EKMFS_VERSION);
	exit(ROT_OK);
}

/* One option of either phase. 0, or the exit status of a usage error. */
static int take_option(int ch, char **argv, struct rot_opts *o, bool *have_version)
{
	uint32_t jobs;

	switch (ch) {
	case 'c': o->config = optarg; break;
	case 't': o->tenant = optarg; break;
	case 'n': o->dry_run = true; break;
	case 'q': o->quiet = true; break;
	case OPT_JSON: o->json = true; break;
	case OPT_DESTROY: o->destroy = true; break;
	case OPT_TO: o->to = optarg; break;
	case OPT_FORCE: o->force = true; break;
	case 'j':
		if (parse_u32(optarg, 1, ROT_MAX_JOBS, &jobs))
			return usage_error("--jobs wants a number from 1 to 64, not '%s'",
					   optarg);
		o->jobs = jobs;
		break;
	case OPT_VERSION:
		if (!optarg)            /* before COMMAND */
			print_version();
		if (parse_u32(optarg, 1, UINT32_MAX, &o->version))
			return usage_error("--version wants a KEK version number, not '%s'",
					   optarg);
		*have_version = true;
		break;
	case 'h':
		fputs(usage_text, stdout);
		exit(ROT_OK);
	case 'V':
		print_version();
		break;
	case '?':
	default:
		if (optopt && optopt < 256) {
			char opt[3] = { '-', (char)optopt, '\0' };

			return usage_error("bad or incomplete option '%s'", opt);
		}
		return usage_error("bad or incomplete option '%s'", argv[optind - 1]);
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct rot_opts *o)
{
	static const struct option before_cmd[] = ROT_LONGOPTS(no_argument);
	static const struct option after_cmd[] = ROT_LONGOPTS(required_argument);
	static const char *const names[] = {
		[CMD_STATUS] = "status", [CMD_KEK] = "kek", [CMD_REWRAP] = "rewrap",
		[CMD_RETIRE] = "retire", [CMD_CMK] = "cmk", [CMD_MIGRATE] = "migrate",
	};
	bool have_version = false, found = false;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int ch, code, sub_argc;
	char **sub_argv;

	o->jobs = ncpu > 0 ? (unsigned)(ncpu > ROT_MAX_JOBS ? ROT_MAX_JOBS : ncpu) : 1;
	opterr = 0;
	/* Up to COMMAND ("+": stop at the first non-option). */
	while ((ch = getopt_long(argc, argv, "+c:t:nj:qhV", before_cmd, NULL)) != -1) {
		code = take_option(ch, argv, o, &have_version);
		if (code)
			return code;
	}
	if (optind >= argc)
		return usage_error("%s", "expected COMMAND and BACKING");
	/* After COMMAND, options may come before or after BACKING (GNU getopt
	 * permutes). The command takes argv[0]'s place in the second scan. */
	sub_argc = argc - optind;
	sub_argv = argv + optind;
	optind = 0;
	while ((ch = getopt_long(sub_argc, sub_argv, "c:t:nj:qhV", after_cmd, NULL)) != -1) {
		code = take_option(ch, sub_argv, o, &have_version);
		if (code)
			return code;
	}
	if (sub_argc - optind != 1)
		return usage_error("%s", sub_argc - optind < 1 ? "expected COMMAND and BACKING"
				   : "too many arguments (expected COMMAND BACKING)");
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(names); i++) {
		if (strcmp(sub_argv[0], names[i]) == 0) {
			o->cmd = (enum rot_command)i;
			found = true;
		}
	}
	if (!found)
		return usage_error("unknown command '%s' (status, kek, rewrap, retire, cmk, "
				   "migrate)",
				   sub_argv[0]);
	o->backing = sub_argv[optind];
	if (o->cmd == CMD_RETIRE && !have_version)
		return usage_error("%s", "retire needs --version N");
	if (o->cmd != CMD_RETIRE && (have_version || o->destroy))
		return usage_error("%s", "--version N and --destroy belong to retire");
	if (o->cmd != CMD_CMK && (o->to || o->force))
		return usage_error("%s", "--to and --force belong to cmk");
	return 0;
}

/* ---- 2. the rotate lock, descriptors ---- */

/* One ekmfs-rotate per volume: an flock on .ekmfs/rotate.lock held for the
 * whole run (the kernel drops it if we are killed). A dry run only peeks. */
static int take_rotate_lock(struct rot_ctx *c, int *fd_out)
{
	const char *rel = EKMFS_META_DIR "/" ROT_LOCK_FILE;
	int fd, flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;

	*fd_out = -1;
	if (!c->opt.dry_run)
		flags |= O_CREAT;
	fd = ekmfs_io->openat(c->backing_fd, rel, flags, 0600);
	if (fd < 0) {
		if (c->opt.dry_run && errno == ENOENT)
			return 0; /* never locked, and a dry run creates nothing */
		ekmfs_seterr("cannot open the lock file %s/%s: %s", c->opt.backing, rel,
			     strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		close(fd);
		if (err == EWOULDBLOCK) {
			ekmfs_seterr("another ekmfs-rotate is working on %s (it holds %s/%s); "
				     "wait for it to finish", c->opt.backing, c->opt.backing, rel);
			return -EWOULDBLOCK;
		}
		ekmfs_seterr("cannot lock %s/%s: %s", c->opt.backing, rel, strerror(err));
		return -err;
	}
	*fd_out = fd;
	return 0;
}

/* Each worker keeps a batch of files open until its slots are durable. */
size_t rot_batch_size(unsigned jobs)
{
	struct rlimit rl;
	size_t batch = ROT_BATCH;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)jobs * batch + 64)
			batch = rl.rlim_cur > (rlim_t)jobs * 16 + 64 ?
				(size_t)((rl.rlim_cur - 64) / jobs) : 16;
	}
	return batch;
}

/* ---- 3. commands ---- */

/* One pass in mode over the files, for the tenant being rotated. */
static int one_pass(struct rot_ctx *c, struct rot_pass *p, enum rot_mode mode,
		    uint32_t target, const char *label, struct rot_paths *paths)
{
	struct rot_pass goal = { .tenant_id = c->trec->id, .target = target };

	return rot_one_pass(c, &goal, mode, label, p, paths);
}

static int cmd_status(struct rot_ctx *c)
{
	struct rot_paths paths;
	struct rot_pass p;
	int ret, code;

	ret = one_pass(c, &p, MODE_SCAN, 0, "scan", &paths);
	if (ret) {
		rot_paths_free(&paths);
		rot_pass_free(&p);
		return report_failure(c, ret, "scan");
	}
	code = report_status(c, &p);
	rot_paths_free(&paths);
	rot_pass_free(&p);
	return code;
}

/* Re-wrap passes until one finds nothing to write (files created with an
 * older version while we ran are caught by the next pass), then retire the
 * older versions. */
static int rewrap_all(struct rot_ctx *c)
{
	struct rot_pass goal = { .tenant_id = c->trec->id, .target = c->trec->current_version };
	struct rot_run run;
	int ret, code;

	if (c->opt.dry_run && c->opt.cmd == CMD_KEK) {
		/* The version kek would create: nothing has it, so every file counts. */
		for (size_t i = 0; i < c->trec->nkeks; i++)
			if (c->trec->keks[i].version >= goal.target)
				goal.target = c->trec->keks[i].version;
		c->new_version = ++goal.target;
	}
	rot_audit(c, "rewrap_start", "success", goal.target, NULL,
		  "re-wrapping the tenant's file headers to its current KEK version", NULL);
	ret = rot_run_passes(c, &goal, "re-wrap", &run);
	if (!ret && !c->opt.dry_run)
		ret = keys_retire_old(c);
	if (ret) {
		code = report_failure_then(c, ret, "re-wrap", THEN_CONSISTENT);
		goto out;
	}
	code = report_rewrap(c, &run.last, &run.total, run.remaining, run.passes, run.seconds);
	rot_audit_rewrap(c, &run.last, &run.total, run.remaining, run.passes);
out:
	rot_run_free(&run);
	return code;
}

static int cmd_kek(struct rot_ctx *c)
{
	int ret = keys_load(c);

	if (ret)
		return report_failure_then(c, ret, "loading the KEKs", THEN_UNCHANGED);
	if (!c->opt.dry_run) {
		ret = keys_new_version(c);
		if (ret)
			return report_failure_then(c, ret, "creating a KEK version",
						   THEN_UNCHANGED);
		rot_audit(c, "kek_created", "success", c->new_version, NULL,
			  "new KEK version, current for new files", NULL);
		if (!c->opt.quiet)
			fprintf(c->opt.json ? stderr : stdout,
				"ekmfs-rotate: KEK v%u of tenant '%s' is now current (new files "
				"use it at once); re-wrapping older files\n", c->new_version,
				c->trec->name);
	}
	return rewrap_all(c);
}

static int cmd_rewrap(struct rot_ctx *c)
{
	int ret = keys_load(c);

	if (ret)
		return report_failure_then(c, ret, "loading the KEKs", THEN_UNCHANGED);
	return rewrap_all(c);
}

static int cmd_retire(struct rot_ctx *c)
{
	struct ekmfs_kek_record *k = ekmfs_tenant_kek(c->trec, c->opt.version);
	struct rot_paths paths;
	struct rot_pass p;
	uint64_t refs;
	int ret;

	if (!k) {
		report_outcome(c, "error", ROT_ERROR, "tenant '%s' has no KEK version %u",
			       c->trec->name, c->opt.version);
		return ROT_ERROR;
	}
	if (k->version == c->trec->current_version) {
		report_outcome(c, "refused", ROT_REFUSED, "KEK v%u is the current version of "
			       "tenant '%s'; rotate first (ekmfs-rotate kek)", k->version,
			       c->trec->name);
		return ROT_REFUSED;
	}
	if (k->state == EKMFS_KEK_DESTROYED) {
		report_outcome(c, "done", ROT_OK, "KEK v%u of tenant '%s' is already destroyed",
			       k->version, c->trec->name);
		return ROT_OK;
	}
	ret = one_pass(c, &p, MODE_SCAN, 0, "checking references", &paths);
	refs = rot_pass_refs(&p, c->trec->id, c->opt.version);
	if (!ret && p.nskips) {
		/* A header we cannot read might reference the version. */
		report_skips(c, &p);
		report_outcome(c, "refused", ROT_REFUSED, "%zu files have unreadable headers "
			       "and might reference KEK v%u; fix or remove them first",
			       p.nskips, c->opt.version);
		ret = 1;
	}
	rot_paths_free(&paths);
	rot_pass_free(&p);
	if (ret < 0)
		return report_failure_then(c, ret, "scan", THEN_UNCHANGED);
	if (ret > 0)
		return ROT_REFUSED;
	if (refs) {
		report_outcome(c, "refused", ROT_REFUSED, "%llu files still reference KEK v%u of "
			       "tenant '%s'; run 'ekmfs-rotate rewrap %s' first",
			       (unsigned long long)refs, c->opt.version, c->trec->name,
			       c->opt.backing);
		return ROT_REFUSED;
	}
	ret = keys_set_state(c, c->opt.version, c->opt.destroy);
	if (ret)
		return report_failure_then(c, ret, "retire", THEN_UNCHANGED);
	if (c->opt.destroy)
		report_outcome(c, "done", ROT_OK, "%sKEK v%u of tenant '%s' destroyed: its "
			       "wrapped key is wiped from the keyring. Backups taken before "
			       "the re-wrap that reference v%u can only be read with their "
			       "own (older) keyring copy and the CMK that wrapped it",
			       c->opt.dry_run ? "dry run: would be " : "", c->opt.version,
			       c->trec->name, c->opt.version);
	else
		report_outcome(c, "done", ROT_OK, "%sKEK v%u of tenant '%s' retired",
			       c->opt.dry_run ? "dry run: would be " : "", c->opt.version,
			       c->trec->name);
	return ROT_OK;
}

static void fmt_interval(uint64_t s, char *out, size_t len)
{
	if (s % 86400 == 0 && s)
		snprintf(out, len, "%llud", (unsigned long long)(s / 86400));
	else if (s % 3600 == 0 && s)
		snprintf(out, len, "%lluh", (unsigned long long)(s / 3600));
	else
		snprintf(out, len, "%llus", (unsigned long long)s);
}

static int cmd_cmk(struct rot_ctx *c)
{
	struct ekmfs_tenant_config new_tc;
	char last[32], next[32], iv[32], fpr[EKMFS_REF_MAX] = "";
	time_t now = time(NULL);
	time_t allowed = c->trec->last_cmk_change + (time_t)c->tc->min_cmk_change_interval;
	/* Until enforce_from no file depends on the tenant's CMK yet (its paths
	 * still route to the default tenant): it may be changed and re-tested
	 * freely (docs/TENANTS.md). */
	bool before_enforcement = c->tc->enforce_from && now < c->tc->enforce_from;
	/* The interval spaces out changes of a key in use; the CMK the tenant
	 * was created with has not been changed yet, and replacing it (a fresh
	 * volume moved to its real key, say) is the first change. */
	bool first_change = !ekmfs_tenant_cmk_changed(c->trec);
	const struct ekmfs_provider_desc *desc = ekmfs_provider_of(c->tc);
	char why_free[384] = "";
	size_t n = 0;
	int ret;

	if (before_enforcement && now < allowed) {
		ekmfs_time_rfc3339(c->tc->enforce_from, next, sizeof(next));
		fmt_interval(c->tc->min_cmk_change_interval, iv, sizeof(iv));
		snprintf(why_free, sizeof(why_free), "; min_cmk_change_interval (%s) not "
			 "applied: tenant '%s' is not enforced until %s, and before "
			 "enforcement its CMK may be changed freely and re-tested", iv,
			 c->trec->name, next);
	} else if (first_change && now < allowed) {
		fmt_interval(c->tc->min_cmk_change_interval, iv, sizeof(iv));
		snprintf(why_free, sizeof(why_free), "; min_cmk_change_interval (%s) not "
			 "applied: this is the first change of the CMK tenant '%s' was "
			 "created with", iv, c->trec->name);
	}
	if (now < allowed && !c->opt.force && !before_enforcement && !first_change) {
		ekmfs_time_rfc3339(c->trec->last_cmk_change, last, sizeof(last));
		ekmfs_time_rfc3339(allowed, next, sizeof(next));
		fmt_interval(c->tc->min_cmk_change_interval, iv, sizeof(iv));
		report_outcome(c, "refused", ROT_REFUSED, "the CMK of tenant '%s' was changed "
			       "at %s, less than min_cmk_change_interval (%s) ago; the next "
			       "change is allowed from %s (or use --force)", c->trec->name, last,
			       iv, next);
		return ROT_REFUSED;
	}
	ret = keys_load(c);
	if (ret)
		return report_failure_then(c, ret, "loading the KEKs", THEN_UNCHANGED);
	if (c->opt.to && (desc->caps & EKMFS_PROV_CMK_REF)) {
		/* A key service's CMK: REF is the new key's reference
		 * (desc->ref_format), in the same service and account. */
		char *dst;
		size_t cap;

		new_tc = *c->tc;
		dst = desc->ref(&new_tc, &cap);
		if (strlen(c->opt.to) >= cap) {
			report_outcome(c, "error", ROT_ERROR, "--to: key id too long");
			return ROT_ERROR;
		}
		snprintf(dst, cap, "%s", c->opt.to);
	} else if (c->opt.to) {
		struct stat st;

		if (!(desc->caps & EKMFS_PROV_CMK_FILE) || !ekmfs_provider_ref(c->tc)[0]) {
			report_outcome(c, "error", ROT_ERROR, "--to needs a tenant whose CMK is a "
				       "local key file; a passphrase tenant changes its CMK by "
				       "re-initialising (not supported in this release)");
			return ROT_ERROR;
		}
		if (c->opt.to[0] != '/') {
			report_outcome(c, "error", ROT_ERROR, "--to %s: give the absolute path of "
				       "the new key file", c->opt.to);
			return ROT_ERROR;
		}
		if (stat(c->opt.to, &st) < 0 || !S_ISREG(st.st_mode)) {
			report_outcome(c, "error", ROT_ERROR, "--to %s: not an existing key file "
				       "(make one with: ekmfs-admin keygen > FILE; chmod 600 FILE)",
				       c->opt.to);
			return ROT_ERROR;
		}
		ret = ekmfs_check_secret_outside(c->backing_fd, c->opt.to, "key file");
		if (ret)
			return report_failure_then(c, ret, "--to", THEN_UNCHANGED);
		new_tc = *c->tc;
		if (strlen(c->opt.to) >= sizeof(new_tc.key_file)) {
			report_outcome(c, "error", ROT_ERROR, "--to: path too long");
			return ROT_ERROR;
		}
		snprintf(new_tc.key_file, sizeof(new_tc.key_file), "%s", c->opt.to);
	}
	{
		const struct ekmfs_kek_record *cur = ekmfs_tenant_kek(c->trec,
								      c->trec->current_version);

		if (cur && !c->opt.dry_run) {
			snprintf(c->old_cmk_ref, sizeof(c->old_cmk_ref), "%s", cur->wrapped.cmk_ref);
			snprintf(c->old_cmk_version, sizeof(c->old_cmk_version), "%s",
				 cur->wrapped.cmk_version);
		}
	}
	ret = keys_rewrap_cmk(c, c->opt.to ? &new_tc : NULL, &n, fpr, sizeof(fpr));
	if (ret)
		c->old_cmk_ref[0] = '\0';
	if (ret)
		return report_failure_then(c, ret, "re-wrapping the KEKs", THEN_UNCHANGED);
	if (c->opt.to) {
		bool local = desc->caps & EKMFS_PROV_CMK_FILE;

		report_outcome(c, "done", ROT_OK, "%s%zu KEK versions of tenant '%s' %s under "
			       "the %s %s (%s %s)%s%s. Now set '%s = %s' in [tenant.%s] of %s and "
			       "reload the ekmfs mounts of this volume (SIGHUP, or systemctl reload; "
			       "ekmfs-admin unlock also re-reads it); keep the old %s while "
			       "any backup needs it (older keyring copies are wrapped by it)",
			       c->opt.dry_run ? "dry run: " : "", n, c->trec->name,
			       c->opt.dry_run ? "would be re-wrapped" : "re-wrapped",
			       local ? "key file" : "key", c->opt.to,
			       local ? "fingerprint" : "version", fpr,
			       c->opt.force ? " (--force)" : "", why_free,
			       desc->ref_key,
			       c->opt.to, c->trec->name,
			       c->cfg.path[0] ? c->cfg.path : EKMFS_DEFAULT_CONFIG,
			       local ? "key file" : "key");
	} else {
		report_outcome(c, "done", ROT_OK, "%s%zu KEK versions of tenant '%s' %s under "
			       "the configured CMK (fingerprint %s)%s%s", c->opt.dry_run ?
			       "dry run: " : "", n, c->trec->name, c->opt.dry_run ?
			       "would be re-wrapped" : "re-wrapped", fpr,
			       c->opt.force ? " (--force)" : "", why_free);
	}
	return ROT_OK;
}

/* ---- 4. main ---- */

int main(int argc, char **argv)
{
	struct rot_ctx *c = calloc(1, sizeof(*c));
	int lock_fd = -1, code, ret;
	char *why;

	if (!c) {
		fprintf(stderr, "ekmfs-rotate: out of memory\n");
		return ROT_ERROR;
	}
	c->backing_fd = -1;
	c->started = time(NULL);
	tool_init("ekmfs-rotate", argc, argv);
	code = parse_args(argc, argv, &c->opt);
	if (code)
		goto out;
	why = tool_mount_path_problem(c->opt.backing, TOOL_BACKING);
	if (why) {
		report_outcome(c, "error", ROT_ERROR, "%s", why);
		free(why);
		code = ROT_ERROR;
		goto out;
	}
	ekmfs_secmem_no_dumps();
	if (ekmfs_secmem_init() < 0) {
		fprintf(stderr, "ekmfs-rotate: cannot set up locked memory for keys\n");
		code = ROT_ERROR;
		goto out;
	}
#ifdef EKMFS_FAULT_INJECTION
	ret = ekmfs_io_record_from_env();   /* test builds only */
	if (ret < 0) {
		code = report_failure(c, ret, "crash log");
		goto out;
	}
#endif
	ret = keys_setup(c);
	if (ret) {
		code = report_failure_then(c, ret, c->opt.backing, THEN_UNCHANGED);
		goto out;
	}
	if (c->opt.cmd != CMD_STATUS) {
		ret = take_rotate_lock(c, &lock_fd);
		if (ret) {
			code = report_failure_then(c, ret, "lock", THEN_UNCHANGED);
			goto out;
		}
		/* The keyring may have changed while we waited for nothing: re-read
		 * it under our lock, so every decision uses what is on disk. */
		ret = keys_reread(c);
		if (ret) {
			code = report_failure_then(c, ret, "keyring", THEN_UNCHANGED);
			goto out;
		}
		ret = rot_audit_open(c);
		if (ret) {
			code = report_failure_then(c, ret, "audit log", THEN_UNCHANGED);
			goto out;
		}
	}
	switch (c->opt.cmd) {
	case CMD_STATUS: code = cmd_status(c); break;
	case CMD_KEK: code = cmd_kek(c); break;
	case CMD_REWRAP: code = cmd_rewrap(c); break;
	case CMD_RETIRE: code = cmd_retire(c); break;
	case CMD_CMK: code = cmd_cmk(c); break;
	case CMD_MIGRATE: code = cmd_migrate(c); break;
	}
out:
	rot_audit_close(c);
	keys_close(c);
	if (lock_fd >= 0)
		close(lock_fd);
	free(c);
	fflush(stdout);
	return code;
}
