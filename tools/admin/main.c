/*
 * main.c - ekmfs-admin: command line, dispatch, and the small commands
 * (init, keygen). status and verify have files of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "tool.h"
#include "ekmfs/aead.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/keys.h"
#include "ekmfs/provider.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

static const char usage_text[] =
"Usage: ekmfs-admin [-c CONFIG] COMMAND [ARGS]\n"
"\n"
"Manage ekmfs encrypted volumes.\n"
"\n"
"Commands:\n"
"  init BACKING     Create a new volume in the empty directory BACKING (created\n"
"                   if missing): a volume descriptor and a keyring holding the\n"
"                   default tenant's first key-encryption key (KEK v1), wrapped\n"
"                   by the tenant's customer master key (CMK). With the local\n"
"                   provider the CMK is a key file, created (mode 0600) if it\n"
"                   does not exist, or is derived from a passphrase with scrypt.\n"
"  status [--json] BACKING\n"
"                   Print the volume id, format version, tenants, their KEK\n"
"                   versions and how many files use each. Per tenant also its\n"
"                   CMK, policy (enabled, enforce_from, paths), next rotation,\n"
"                   misplaced files, and the key cache state the running\n"
"                   daemon reports, or 'not mounted'. Needs no key.\n"
"                   --json: one JSON object, also listing the mountpoints of\n"
"                   the volume and the files still on older KEK versions.\n"
"  verify [--keys] BACKING\n"
"                   Check every file header and every block's authentication\n"
"                   tag without printing any plaintext. Each damaged file is\n"
"                   listed as 'DAMAGED <path>: <what>'; the last line counts\n"
"                   the files checked and damaged. Needs the CMK. First, and\n"
"                   always, the keyring and volume.json must authenticate\n"
"                   under the keyring MAC (an edited field, a record added,\n"
"                   removed or reordered, another volume's keyring: refused).\n"
"                   --keys: instead of the files, unwrap every KEK record,\n"
"                   current and retired, through its CMK ('KEK T vN ...:\n"
"                   opens' or 'BAD KEK ...: why'), so a backup that needs a\n"
"                   retired KEK is known to open before it is needed.\n"
"  upgrade BACKING  Convert every file of a volume of the first release (format\n"
"                   version 1) to version 2, then mark the volume version 2.\n"
"                   The volume must not be mounted. Crash-safe: interrupted,\n"
"                   it can be run again, and finishes any file it was cutting\n"
"                   over. A file that cannot be converted is named 'FAILED\n"
"                   <path>: <why>' and kept as it is; the volume then stays\n"
"                   version 1 and the exit status is 1. Without it, a mounted\n"
"                   version 1 volume converts each file at its first change.\n"
"                   Needs the CMK.\n"
"  backup-manifest [-o FILE] BACKING\n"
"                   List every file, directory and symlink of BACKING (.ekmfs/\n"
"                   included) with its SHA-256 of the ciphertext, size, mode,\n"
"                   owner, file id and key version: a record of a backup that\n"
"                   can be checked without keys. No plaintext, no key.\n"
"  backup-manifest --check MANIFEST BACKING\n"
"                   Compare BACKING (e.g. a restored copy) with MANIFEST: one\n"
"                   MISSING, EXTRA or DIFFERS line per mismatch, then a count.\n"
"                   Exit 0 when everything matches. Needs no key.\n"
"  test [--tenant T] [--json] BACKING\n"
"                   Test the tenant's key before relying on it: one line per\n"
"                   check (configuration, endpoint reachable, authentication,\n"
"                   key state, encrypt, decrypt round-trip, wrong-context\n"
"                   rejection, and the keyring's current KEK when BACKING is a\n"
"                   volume) with ok, FAILED or skipped and the reason. Exit 0\n"
"                   only when all pass. Writes nothing. --json: one object.\n"
"                   BACKING must be an existing directory; one that is not a\n"
"                   volume yet (before init) is tested with a random volume\n"
"                   id. A missing BACKING or an unreadable volume: exit 1.\n"
"  audit verify [--log FILE]... BACKING\n"
"                   Check the audit log's MAC chain and its head in the volume:\n"
"                   exit 1 naming the first bad seq if a record was edited,\n"
"                   reordered, inserted or deleted, or the log truncated.\n"
"                   Rotated logs: pass each with --log, oldest first. Needs\n"
"                   the CMK (the audit key is wrapped by it).\n"
"  audit show [--since TIME] [--event E] [--tenant T] [--json] [--log FILE] BACKING\n"
"                   Print the audit records that match (no key needed; does\n"
"                   not verify: use audit verify). TIME is a date YYYY-MM-DD\n"
"                   (00:00 UTC) or an RFC 3339 time (2026-12-04T10:00:00Z,\n"
"                   2026-12-04T10:00:00.5+02:00); records from TIME on. E is\n"
"                   one of the event names (docs/AUDIT.md):\n"
;

static const char usage_tail[] =
"  lock [--tenant T] MOUNTPOINT\n"
"                   Make the running daemon drop its cached keys and every\n"
"                   open file's key at once; reads and writes of open files\n"
"                   and new opens fail with ENOKEY until unlock. Root only\n"
"                   (control socket [daemon] control_dir/<volume id>.sock).\n"
"  unlock [--tenant T] MOUNTPOINT\n"
"                   Fetch the keys again through the provider; allow access.\n"
"                   When the keyring is wrapped by another CMK than the one\n"
"                   the daemon uses (after ekmfs-rotate cmk), the daemon\n"
"                   re-reads its configuration (key_file, key_id) first.\n"
"  import-plaintext PATH...\n"
"                   Encrypt in place plaintext files (or every plaintext file\n"
"                   below a directory) of a backing directory, keeping owner,\n"
"                   mode, times and xattrs; crash-safe (temp file, fsync,\n"
"                   rename). Files already encrypted are refused. Best run\n"
"                   while the volume is not mounted.\n"
"  keygen           Print a fresh random 256-bit key in base64 (one line), for\n"
"                   use as a local key file.\n"
"\n"
"Options:\n"
"  -c, --config FILE   configuration file (default " EKMFS_DEFAULT_CONFIG ";\n"
"                      when that file is absent the built-in defaults apply:\n"
"                      local key file " EKMFS_DEFAULT_KEY_FILE ")\n"
"  -h, --help          show this help\n"
"  -V, --version       show the version\n"
"\n"
"Progress: on a terminal, verify, upgrade, import-plaintext and backup-manifest\n"
"show a bar with the bytes done, the rate and the time left on stderr; not on\n"
"a terminal they print nothing extra. EKMFS_PROGRESS=off hides the bar,\n"
"EKMFS_PROGRESS=tty draws it whatever stderr is. stdout never carries it.\n"
"\n"
"Exit status:\n"
"  0  success (verify: no damage found)\n"
"  1  failure, or verify found damage\n"
"  2  usage error\n"
"\n"
"Examples:\n"
"  ekmfs-admin init /srv/data.enc\n"
"  ekmfs /srv/data.enc /srv/data\n"
"  ekmfs-admin verify /srv/data.enc\n"
"\n"
"See ekmfs(8) and ekmfs.ini.example for the configuration keys.\n";

static int fail(const char *what, int err)
{
	const char *msg = ekmfs_lasterr();

	if (msg[0])
		fprintf(stderr, "ekmfs-admin: %s\n", msg);
	else
		fprintf(stderr, "ekmfs-admin: %s: %s\n", what, strerror(-err));
	return EXIT_FAIL;
}

static int cmd_keygen(void)
{
	uint8_t key[32];
	char text[64];
	int rc = ekmfs_random(key, sizeof(key));

	if (rc < 0)
		return fail("random", rc);
	ekmfs_b64_encode(key, sizeof(key), text);
	ekmfs_wipe(key, sizeof(key));
	printf("%s\n", text);
	ekmfs_wipe(text, sizeof(text));
	return EXIT_OK;
}

static int cmd_init(const char *backing, const struct ekmfs_config *cfg)
{
	struct ekmfs_volume vol;
	bool made_dir = false;
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];
	int fd, rc;

	/* The first audit record must be writable before anything exists. */
	rc = admin_audit_preflight(cfg);
	if (rc < 0)
		return fail("audit log", rc);
	if (ekmfs_io->mkdirat(AT_FDCWD, backing, 0700) == 0)
		made_dir = true;
	else if (errno != EEXIST)
		return fail(backing, -errno);
	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		ekmfs_seterr("cannot open backing directory %s: %s", backing, strerror(errno));
		goto out;
	}
	rc = ekmfs_volume_init(fd, cfg, &vol);
	close(fd);
	if (rc < 0)
		goto out;
	ekmfs_hex(vol.volume_id, sizeof(vol.volume_id), id);
	printf("created ekmfs volume %s in %s\n", id, backing);
	{
		const struct ekmfs_provider_desc *d = ekmfs_provider_of(&cfg->tenants[0]);
		const char *ref = ekmfs_provider_ref(&cfg->tenants[0]);

		if (d->caps & EKMFS_PROV_REMOTE)
			printf("  tenant default: KEK v1 wrapped by %s %s\n", d->what, ref);
		else
			printf("  tenant default: KEK v1 wrapped by the %s (%s)\n", d->what,
			       ref[0] ? ref : "passphrase");
	}
	printf("  mount it with: ekmfs%s%s %s MOUNTPOINT\n", cfg->path[0] ? " -c " : "",
	       cfg->path, backing);
	/* Creates the audit key and the chain head, and records the init. */
	rc = admin_audit_init_record(backing, cfg);
	if (rc < 0) {
		made_dir = false;       /* the volume exists: keep it */
		fprintf(stderr, "ekmfs-admin: the volume was created, but its audit record "
			"could not be written\n");
	}
out:
	if (rc < 0) {
		if (made_dir)
			rmdir(backing);
		return fail("init", rc);
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ekmfs_config cfg;
	const char *config_path = NULL, *cmd;
	bool keys_only = false;
	int opt, rc;

	tool_init("ekmfs-admin", argc, argv);
	while ((opt = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			admin_print_audit_events(stdout, 19, 79);
			fputs(usage_tail, stdout);
			return EXIT_OK;
		case 'V':
			printf("ekmfs-admin %s\n", EKMFS_VERSION);
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'ekmfs-admin --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ekmfs-admin: missing command; try 'ekmfs-admin --help'\n");
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	ekmfs_secmem_init();
	ekmfs_secmem_no_dumps();
#ifdef EKMFS_FAULT_INJECTION
	rc = ekmfs_io_record_from_env();   /* test builds only */
	if (rc < 0)
		return fail("crash log", rc);
#endif

	if (strcmp(cmd, "keygen") == 0) {
		if (optind != argc) {
			fprintf(stderr, "ekmfs-admin: keygen takes no arguments\n");
			return EXIT_USAGE;
		}
		return cmd_keygen();
	}
	if (strcmp(cmd, "backup-manifest") == 0)
		return admin_backup_manifest(argc - optind + 1, argv + optind - 1);
	if (strcmp(cmd, "audit") == 0 || strcmp(cmd, "lock") == 0 ||
	    strcmp(cmd, "unlock") == 0 || strcmp(cmd, "import-plaintext") == 0) {
		rc = ekmfs_config_load(config_path, &cfg);
		if (rc < 0)
			return fail("config", rc);
		ekmfs_log_set_level(cfg.log_level);
		if (strcmp(cmd, "audit") == 0)
			return admin_audit_main(argc - optind + 1, argv + optind - 1, &cfg);
		if (strcmp(cmd, "import-plaintext") == 0)
			return admin_import_main(argc - optind + 1, argv + optind - 1, &cfg);
		return admin_lock_main(argc - optind + 1, argv + optind - 1, &cfg);
	}
	if (strcmp(cmd, "init") != 0 && strcmp(cmd, "status") != 0 &&
	    strcmp(cmd, "verify") != 0 && strcmp(cmd, "test") != 0 &&
	    strcmp(cmd, "upgrade") != 0) {
		fprintf(stderr, "ekmfs-admin: unknown command '%s'; try 'ekmfs-admin --help'\n", cmd);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "verify") == 0 && optind < argc && strcmp(argv[optind], "--keys") == 0) {
		keys_only = true;
		optind++;
	}
	if (strcmp(cmd, "status") != 0 && strcmp(cmd, "test") != 0 && argc - optind != 1) {
		fprintf(stderr, "ekmfs-admin: %s needs exactly one argument: BACKING\n", cmd);
		return EXIT_USAGE;
	}
	rc = ekmfs_config_load(config_path, &cfg);
	if (rc < 0)
		return fail("config", rc);
	ekmfs_log_set_level(cfg.log_level);

	if (strcmp(cmd, "init") == 0)
		return tool_refuse_mount_path(argv[optind], TOOL_NEW_BACKING) ? EXIT_FAIL :
		       cmd_init(argv[optind], &cfg);
	if (strcmp(cmd, "test") == 0)
		return admin_test_main(argc - optind + 1, argv + optind - 1, &cfg);
	if (strcmp(cmd, "status") == 0)
		return admin_status_main(argc - optind + 1, argv + optind - 1, &cfg);
	if (tool_refuse_mount_path(argv[optind], TOOL_BACKING))
		return EXIT_FAIL;
	if (strcmp(cmd, "upgrade") == 0)
		return admin_upgrade(argv[optind], &cfg);
	return admin_verify(argv[optind], &cfg, keys_only);
}

/* ---- the tree walk shared by status, verify and upgrade ---- */

struct admin_walk {
	const char *backing;
	admin_file_fn fn;
	void *arg;
	int rc;
};

static int walk_one(const char *rel, const struct stat *st, void *arg)
{
	struct admin_walk *w = arg;
	char path[PATH_MAX];

	if (!st) {
		fprintf(stderr, "ekmfs-admin: %s\n", ekmfs_lasterr());
		w->rc = -EIO;
		return 0;       /* the rest of the volume is still checked */
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", w->backing, rel) >= sizeof(path)) {
		fprintf(stderr, "ekmfs-admin: cannot read %s/%s: path too long\n", w->backing, rel);
		w->rc = -EIO;
		return 0;
	}
	return w->fn(path, rel, st, w->arg) ? 1 : 0;
}

int admin_walk_files(const char *backing, admin_file_fn fn, void *arg)
{
	struct admin_walk w = { backing, fn, arg, 0 };
	int fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = ekmfs_volume_walk(fd, walk_one, &w);
	close(fd);
	if (rc < 0)
		return rc;
	return w.rc;
}

/* ---- the size of a volume's files, for progress totals ---- */

static uint64_t bytes_sum;

static int add_bytes(const char *path, const char *relpath, const struct stat *st, void *arg)
{
	(void)path;
	(void)relpath;
	(void)arg;
	bytes_sum += (uint64_t)st->st_size;
	return 0;
}

uint64_t admin_bytes_below(const char *backing)
{
	bytes_sum = 0;
	(void)admin_walk_files(backing, add_bytes, NULL);  /* a total for a bar: best effort */
	return bytes_sum;
}
