/*
 * main.c - the ekmfs daemon: command line, start-up, mount, session loop.
 *
 * Owns: the order in which the daemon comes up and goes down. Everything
 * that can fail because of the user's input (configuration, BACKING, the
 * keys) fails before anything is mounted, with one line on stderr and exit
 * status 1; a usage error exits 2. Once mounted, `fusermount3 -u MOUNTPOINT`
 * ends the session loop and the daemon exits 0.
 *
 * Divisions: help and version text; option parsing (-o config= is ours, the
 * rest goes to FUSE); path checks (MOUNTPOINT and BACKING must not contain
 * each other); main().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/config.h"
#include "ekmfs/holder.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "fs.h"
#include "service.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* ---- help and version ---- */

static void print_help(void)
{
	printf(
"Usage: ekmfs [-c CONFIG] [-f] [-d] [-o OPT[,OPT...]] BACKING MOUNTPOINT\n"
"       ekmfs -h | --help\n"
"       ekmfs -V | --version\n"
"\n"
"Mount the ekmfs volume stored in the directory BACKING at MOUNTPOINT.\n"
"\n"
"Files written through MOUNTPOINT are stored encrypted in BACKING: each file\n"
"has its own random data key (DEK), kept in the file's header wrapped under a\n"
"key-encryption key (KEK) of the volume's keyring, itself wrapped by the\n"
"customer master key (CMK) of the configured provider. Content is stored as\n"
"authenticated 4 KiB blocks (XAES-256-GCM), the size and holes authenticated\n"
"in the header; a block that fails authentication, or a file cut or grown\n"
"behind the mount, is reported as an I/O error (EIO), logged and audited,\n"
"never returned. After a crash (the volume was not unmounted cleanly) the\n"
"mount first settles the files changed since: fsynced data is never lost.\n"
"File names, sizes, modes, timestamps and extended attributes are not\n"
"encrypted in this release. BACKING must have been created with\n"
"'ekmfs-admin init BACKING'; its .ekmfs/ directory is hidden from the mount.\n"
"\n"
"Options:\n"
"  -c, --config=FILE   Read the configuration from FILE (default\n"
"                      " EKMFS_DEFAULT_CONFIG "; if that file does not exist\n"
"                      the built-in defaults apply). See ekmfs.ini.example.\n"
"  -f, --foreground    Stay in the foreground and log to stderr. Without -f\n"
"                      the daemon detaches once mounted and logs to syslog.\n"
"  -d, --debug         Log every FUSE request to stderr (implies -f).\n"
"  -o OPT[,OPT...]     Mount options, passed to FUSE (may be repeated):\n"
"                        allow_other    let users other than root use the\n"
"                                       mount (permissions are still checked)\n"
"                        ro             mount read-only\n"
"                        config=FILE    same as -c FILE\n"
"                        shared         shared mode: several daemons on several\n"
"                                       hosts mount the volume over a distributed\n"
"                                       file system, every one with -o shared\n"
"                                       (docs/SHARED.md). Without it a second\n"
"                                       mount of the volume exits 1.\n"
"                      and the other options of mount.fuse3(8). Always set:\n"
"                      default_permissions (the kernel checks permissions;\n"
"                      the daemon runs as root), fsname=BACKING, subtype=ekmfs.\n"
"  -h, --help          Show this help and exit.\n"
"  -V, --version       Show the version of ekmfs and of libfuse, and exit.\n"
"\n"
"Unmounting:\n"
"  fusermount3 -u MOUNTPOINT   (or umount MOUNTPOINT as root) ends the daemon\n"
"  with exit status 0. SIGINT and SIGTERM also unmount and exit. SIGHUP\n"
"  reloads the configuration ([daemon] log_level, attr_timeout, entry_timeout,\n"
"  metrics_file, metrics_interval) and keeps serving; see ekmfs(8).\n"
"\n"
"Scheduled key rotation:\n"
"  When a tenant's rotation_days have passed since its last rotation, the\n"
"  daemon runs 'ekmfs-rotate kek' at the lowest CPU and I/O priority (new KEK\n"
"  version, headers re-wrapped, content untouched), unless [daemon]\n"
"  scheduled_rotation = external. See ekmfs-rotate(8).\n"
"\n"
"Exit status:\n"
"  0  unmounted cleanly\n"
"  1  runtime error: bad configuration, BACKING is not a volume, the key is\n"
"     wrong, missing or has loose permissions, mounting failed (one line on\n"
"     stderr says which; nothing is mounted)\n"
"  2  usage error\n"
"\n"
"Examples:\n"
"  ekmfs-admin init /srv/vault\n"
"  ekmfs -o allow_other /srv/vault /mnt/vault\n"
"  ekmfs -c /etc/ekmfs/team.ini -f /srv/vault /mnt/vault\n"
"\n"
"See also: ekmfs-admin(8), fusermount3(1), mount.fuse3(8).\n");
}

static void print_version(void)
{
	printf("ekmfs %s\nFUSE library version %s\n", EKMFS_VERSION, fuse_pkgversion());
#ifdef EKMFS_FAULT_INJECTION
	printf("fault injection: enabled (test build)\n");
#endif
}

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "ekmfs: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (try 'ekmfs --help')\n");
}

/* ---- option parsing ---- */

struct cmdline {
	const char *config;
	char *config_copy;      /* -o config=PATH owns its string */
	bool foreground;
	bool debug;
	bool shared;            /* -o shared (docs/SHARED.md) */
	char *fuse_opts;        /* comma-separated, for FUSE */
	const char *backing;
	const char *mountpoint;
};

/* Options mount(8) and fstab use for themselves (they reach us through
 * mount.fuse3 or mount.fuse.ekmfs); FUSE would refuse them. */
static bool is_mount_only_option(const char *opt)
{
	static const char *const names[] = {
		"defaults", "auto", "noauto", "user", "nouser", "users", "nofail", "_netdev",
	};
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(names); i++)
		if (strcmp(opt, names[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

/* Split one -o argument: config=PATH is ours; everything else is FUSE's. */
static int take_mount_options(struct cmdline *cl, const char *arg)
{
	char *copy = strdup(arg), *opt, *save = NULL;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (strncmp(opt, "config=", 7) == 0) {
			if (!opt[7]) {
				ret = -EINVAL;
				break;
			}
			free(cl->config_copy);
			cl->config = cl->config_copy = strdup(opt + 7);
			if (!cl->config) {
				ret = -ENOMEM;
				break;
			}
		} else if (strcmp(opt, "shared") == 0) {
			cl->shared = true;
		} else if (is_mount_only_option(opt)) {
			continue;
		} else if (fuse_opt_add_opt(&cl->fuse_opts, opt) == -1) {
			ret = -ENOMEM;
			break;
		}
	}
	free(copy);
	return ret;
}

/* 0 to run, or the exit status to return now. */
static int parse_cmdline(int argc, char **argv, struct cmdline *cl, bool *done)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*done = false;
	opterr = 0;
	/* Options may follow BACKING and MOUNTPOINT: mount.fuse3 runs
	 * "ekmfs BACKING MOUNTPOINT -o OPTS", so getopt must permute. */
	while ((c = getopt_long(argc, argv, ":c:fdo:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cl->config = optarg;
			break;
		case 'f':
			cl->foreground = true;
			break;
		case 'd':
			cl->debug = true;
			cl->foreground = true;
			break;
		case 'o':
			if (take_mount_options(cl, optarg) < 0) {
				usage_error("bad mount option list '%s'", optarg);
				*done = true;
				return EXIT_USAGE;
			}
			break;
		case 'h':
			print_help();
			*done = true;
			return 0;
		case 'V':
			print_version();
			*done = true;
			return 0;
		case ':':
			usage_error("option '%s' needs an argument", argv[optind - 1]);
			*done = true;
			return EXIT_USAGE;
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
			*done = true;
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage_error("%s", argc - optind < 2 ? "BACKING and MOUNTPOINT are required"
						   : "too many arguments");
		*done = true;
		return EXIT_USAGE;
	}
	cl->backing = argv[optind];
	cl->mountpoint = argv[optind + 1];
	return 0;
}

/* ---- path checks ---- */

static bool is_inside(const char *child, const char *parent)
{
	size_t len = strlen(parent);

	if (strcmp(parent, "/") == 0)
		return true;
	return strncmp(child, parent, len) == 0 && child[len] == '/';
}

static int check_paths(const char *backing, const char *mnt)
{
	if (strcmp(backing, mnt) == 0) {
		fprintf(stderr, "ekmfs: BACKING and MOUNTPOINT are the same directory (%s)\n",
			mnt);
		return -EINVAL;
	}
	if (is_inside(mnt, backing)) {
		fprintf(stderr, "ekmfs: mountpoint %s is inside the backing directory %s\n",
			mnt, backing);
		return -EINVAL;
	}
	if (is_inside(backing, mnt)) {
		fprintf(stderr, "ekmfs: backing directory %s is inside the mountpoint %s\n",
			backing, mnt);
		return -EINVAL;
	}
	return 0;
}

/* The real path of the directory argument `what` (BACKING, MOUNTPOINT);
 * a failure says which argument it was. */
static int resolve_dir(const char *what, const char *path, char *out)
{
	struct stat st;
	int err;

	if (!realpath(path, out) || stat(out, &st) == -1) {
		err = errno;
		fprintf(stderr, "ekmfs: %s %s: %s\n", what, path, strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ekmfs: %s %s: %s\n", what, path, strerror(ENOTDIR));
		return -ENOTDIR;
	}
	return 0;
}

static void report_failure(int err)
{
	const char *msg = ekmfs_lasterr();

	fprintf(stderr, "ekmfs: %s\n", msg && *msg ? msg : strerror(-err));
}

/* The kernel gives a FUSE mount the default read-ahead of 128 KiB whatever
 * max_readahead the daemon announces (it takes the smaller), so sequential
 * reads arrive in 128 KiB requests. The mount's bdi setting raises it;
 * measured on tmpfs: 1.3-1.7x faster cold sequential reads at 1 MiB
 * (docs/PERFORMANCE.md). Found through /proc/self/mountinfo, not stat():
 * the session loop is not running yet, so a stat of the mountpoint would
 * wait for ourselves. Best effort: not root, no sysfs, logged and ignored. */
static void set_read_ahead(const char *mnt, unsigned kb)
{
	char line[PATH_MAX + 512], dev[32] = "", path[96], point[PATH_MAX];
	unsigned maj, min;
	bool ok;
	FILE *f;

	if (!kb)
		return;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	/* "36 35 0:45 / /mnt/point rw,... - fuse.ekmfs ...": the last mount at
	 * mnt is ours (mount points with spaces are octal-escaped: no match,
	 * so no change). */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, point) == 3 &&
		    strcmp(point, mnt) == 0)
			snprintf(dev, sizeof(dev), "%u:%u", maj, min);
	fclose(f);
	if (!dev[0])
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "we");
	ok = f && fprintf(f, "%u\n", kb) > 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (ok)
		ekmfs_log(EKMFS_LOG_DEBUG, "read-ahead of %s set to %u KiB", mnt, kb);
	else
		ekmfs_log(EKMFS_LOG_DEBUG, "cannot set %s to %u: %s", path, kb, strerror(errno));
}

/* ---- detaching ----
 *
 * We fork before anything else rather than letting fuse_daemonize() fork
 * after mounting: memory locks are not inherited across fork(), so keys
 * unwrapped before a late fork would sit in unlocked memory in the daemon.
 * The parent waits on a pipe for the child's verdict and exits with it; the
 * child reports errors on the shared stderr until it is mounted, then starts
 * a new session and lets go of the terminal.
 */
static int detach_fd = -1;      /* child: write end of the verdict pipe */

static int detach_early(void)
{
	int pipefd[2];
	unsigned char verdict = EXIT_RUNTIME;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) == -1) {
		fprintf(stderr, "ekmfs: cannot create a pipe: %s\n", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid == -1) {
		fprintf(stderr, "ekmfs: cannot fork: %s\n", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		close(pipefd[0]);
		detach_fd = pipefd[1];
		return 0;
	}
	close(pipefd[1]);
	/* EOF without a verdict means the child died before mounting. */
	while (read(pipefd[0], &verdict, 1) == -1 && errno == EINTR)
		;
	_exit(verdict);
}

/* Mounted: tell the parent, leave the terminal (stderr too, unless the
 * log goes there: keep_stderr). */
static int detach_finish(bool keep_stderr)
{
	unsigned char ok = 0;
	int nullfd;

	if (detach_fd == -1)
		return 0;
	if (setsid() == -1 || chdir("/") == -1)
		return -errno;
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd != -1) {
		dup2(nullfd, STDIN_FILENO);
		dup2(nullfd, STDOUT_FILENO);
		if (!keep_stderr)
			dup2(nullfd, STDERR_FILENO);
		if (nullfd > STDERR_FILENO)
			close(nullfd);
	}
	if (write(detach_fd, &ok, 1) != 1)
		return -EPIPE;
	close(detach_fd);
	detach_fd = -1;
	return 0;
}

/* A child that never got as far as mounting passes its exit status on. */
static void detach_report(int status)
{
	unsigned char verdict = (unsigned char)(status ? status : EXIT_RUNTIME);

	if (detach_fd == -1)
		return;
	if (write(detach_fd, &verdict, 1) != 1)
		return;
	close(detach_fd);
	detach_fd = -1;
}

/* BACKING/.ekmfs/journal (0700), made when missing (a volume of the
 * previous release has none). */
static int open_journal_dir(int backing_fd, int *out)
{
	const char *rel = EKMFS_JOURNAL_DIR;

	if (ekmfs_io->mkdirat(backing_fd, rel, 0700) < 0 && errno != EEXIST)
		return -errno;
	*out = openat(backing_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return *out < 0 ? -errno : 0;
}

/* ---- descriptors ---- */

/*
 * The daemon holds a descriptor per open file and directory, and a bounded
 * cache of inode descriptors (fdcache.c): raise the soft RLIMIT_NOFILE to
 * the hard limit, so the kernel's opens are what limits it. The cache takes
 * half of that, at most 65536 (fd_cache sets it), so opens keep the rest.
 * Without file handles every inode keeps a descriptor: they may take all
 * but a quarter (at least 64), kept for opens, journals and the like.
 */
static void raise_nofile(const struct ekmfs_config *cfg, size_t *cache, size_t *budget)
{
	struct rlimit rl;
	rlim_t was = 0, limit;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		was = rl.rlim_cur;
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				rl.rlim_cur = was;
		}
	} else {
		rl.rlim_cur = 1024;
	}
	limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)1 << 30 ?
		(rlim_t)1 << 30 : rl.rlim_cur;
	*cache = cfg->fd_cache;
	if (!*cache) {
		*cache = (size_t)limit / 2;
		if (*cache > 65536)
			*cache = 65536;
		if (*cache < 64)
			*cache = 64;
	}
	*budget = limit > 256 ? (size_t)(limit - (limit / 4 > 64 ? limit / 4 : 64)) : 64;
	ekmfs_log(EKMFS_LOG_DEBUG, "descriptor limit %llu (was %llu), inode descriptor cache "
		  "%zu, budget without file handles %zu", (unsigned long long)rl.rlim_cur,
		  (unsigned long long)was, *cache, *budget);
}

/* ---- main ---- */

/* Large (one entry per possible tenant): not on the stack. */
static struct ekmfs_config cfg;

int main(int argc, char **argv)
{
	struct cmdline cl = { 0 };
	struct efs_data fs = { .backing_fd = -1, .journal_fd = -1 };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop_cfg = NULL;
	struct ekmfs_mount_lock *mount_lock = NULL;
	struct ekmfs_holder other;
	char mnt[PATH_MAX], *fsname = NULL, *opts = NULL;
	int backing_fd = -1, root_fd = -1, status = EXIT_RUNTIME, ret;
	size_t fd_cache, fd_budget;
	bool done, mounted = false, handlers = false, recover = false;

	ret = parse_cmdline(argc, argv, &cl, &done);
	if (done) {
		free(cl.fuse_opts);
		free(cl.config_copy);
		return ret;
	}
	if (!cl.foreground && detach_early() < 0)
		return EXIT_RUNTIME;

	(void)ekmfs_secmem_init();   /* warns itself when memory cannot be locked */
	ekmfs_secmem_no_dumps();
	umask(0);                    /* the kernel has applied the caller's umask */

	ekmfs_clearerr();
	ret = ekmfs_config_load(cl.config, &cfg);
	if (ret < 0) {
		report_failure(ret);
		goto out;
	}
	ekmfs_log_set_level(cl.debug ? EKMFS_LOG_DEBUG : (enum ekmfs_log_level)cfg.log_level);
#ifdef EKMFS_FAULT_INJECTION
	/* Test builds only; the recorder wraps the fault table. */
	(void)ekmfs_io_faults_from_env();
	ekmfs_clearerr();
	ret = ekmfs_io_record_from_env();
	if (ret < 0) {
		report_failure(ret);
		goto out;
	}
#endif
	if (efs_service_prepare(cl.config) < 0)
		goto out;

	if (resolve_dir("BACKING", cl.backing, fs.backing) < 0 ||
	    resolve_dir("MOUNTPOINT", cl.mountpoint, mnt) < 0)
		goto out;
	if (check_paths(fs.backing, mnt) < 0)
		goto out;
	ekmfs_clearerr();
	ret = efs_log_start(fs.backing, mnt, cfg.log_file);
	if (ret < 0) {
		report_failure(ret);
		goto out;
	}
	fs.backing_len = strlen(fs.backing);
	backing_fd = open(fs.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (backing_fd == -1) {
		fprintf(stderr, "ekmfs: BACKING %s: %s\n", cl.backing, strerror(errno));
		goto out;
	}
	ekmfs_clearerr();
	ret = ekmfs_keys_open(backing_fd, &cfg, &fs.keys);
	if (ret < 0) {
		report_failure(ret);
		goto out;
	}
	fs.backing_fd = backing_fd;
	fs.volume_version = ekmfs_keys_volume(fs.keys)->format_version;
	/* Opens waiting for a key service hold worker threads: at most half
	 * of them per tenant and three quarters in all, so a stuck key service
	 * leaves the other tenants threads to run on (docs/BYOK.md). */
	ekmfs_keys_set_wait_limits(fs.keys, cfg.max_threads / 2 ? cfg.max_threads / 2 : 1,
				   cfg.max_threads * 3 / 4 ? cfg.max_threads * 3 / 4 : 1);
	/* The audit trail fails closed (docs/AUDIT.md): before the volume is
	 * taken, so a refusal leaves nothing to recover. */
	ret = efs_audit_open(&fs, &cfg, backing_fd);
	if (ret < 0) {
		fprintf(stderr, "ekmfs: %s; not mounted (docs/AUDIT.md: [audit] enabled = false "
			"mounts without an audit log)\n", ekmfs_lasterr());
		goto out;
	}
	/* The keyring anchor: not older than the one the trail recorded. */
	ekmfs_clearerr();
	ret = efs_audit_check_keyring(&fs);
	if (ret < 0) {
		report_failure(ret);
		goto out;
	}
	/* Shared mode: the kernel caches neither data past a close nor
	 * attributes and names (docs/SHARED.md). */
	fs.shared = cl.shared || cfg.shared;
	if (fs.shared) {
		cfg.shared = true;
		cfg.writeback_cache = false;
		cfg.attr_timeout = cfg.entry_timeout = 0;
	}
	/* One daemon per volume: the lock on the backing store itself, so a
	 * second mount on this or another host is refused, nothing mounted.
	 * Shared daemons share it, and exclude exclusive ones. */
	ekmfs_clearerr();
	ret = (fs.shared ? ekmfs_volume_take_shared : ekmfs_volume_take)(
		backing_fd, mnt, &mount_lock, &recover, &fs.recover_since, &other);
	if (ret < 0) {
		report_failure(ret);
		goto out;
	}
	ret = open_journal_dir(backing_fd, &fs.journal_fd);
	if (ret == 0)
		ret = efs_seal_init(&fs);
	if (ret < 0) {
		fprintf(stderr, "ekmfs: %s/.ekmfs/journal: %s\n", cl.backing, strerror(-ret));
		goto out;
	}

	root_fd = open(fs.backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd == -1) {
		fprintf(stderr, "ekmfs: BACKING %s: %s\n", cl.backing, strerror(errno));
		goto out;
	}
	fs.cfg = &cfg;
	raise_nofile(&cfg, &fd_cache, &fd_budget);
	ret = efs_fdcache_init(&fs, fd_cache, fd_budget);
	if (ret == 0) {
		ekmfs_clearerr();
		ret = efs_table_init(&fs, root_fd);
	}
	if (ret < 0) {
		fprintf(stderr, "ekmfs: BACKING %s: %s\n", cl.backing,
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-ret));
		goto out;
	}
	root_fd = -1;                /* owned by the table's root inode now */
	fs.attr_timeout = cfg.attr_timeout;
	fs.entry_timeout = cfg.entry_timeout;
	fs.debug = cl.debug;
	/* A daemon died with the volume mounted: settle what it left before
	 * anyone sees it. Files whose key is not at hand now are settled when
	 * first loaded (logged). */
	if (recover)
		(void)efs_recover(&fs);
	/* Shared: the first daemon recovered alone; now others may join. */
	ret = fs.shared ? ekmfs_volume_share(mount_lock) : 0;
	if (ret < 0) {
		fprintf(stderr, "ekmfs: cannot share the mount lock: %s\n", strerror(-ret));
		goto out;
	}
	/* Tenants: create the keys of new ones, adopt paths and dates. A path
	 * that is not in the volume, or a tenant whose CMK cannot be used,
	 * refuses the mount: its customer's files must not land elsewhere. */
	ekmfs_clearerr();
	ret = ekmfs_keys_apply_config(fs.keys, &cfg);
	if (ret < 0) {
		report_failure(ret);
		goto out;
	}
	/* What the trail's head anchors from the next record on (mount). */
	efs_audit_note_keyring(&fs);

	/* FUSE arguments: our fixed options first, the user's after them. */
	if (asprintf(&fsname, "fsname=%s", fs.backing) < 0)
		goto out_nomem;
	if (fuse_opt_add_arg(&args, argv[0]) == -1 ||
	    (cl.debug && fuse_opt_add_arg(&args, "-d") == -1) ||
	    fuse_opt_add_opt(&opts, "default_permissions") == -1 ||
	    fuse_opt_add_opt_escaped(&opts, fsname) == -1 ||
	    fuse_opt_add_opt(&opts, "subtype=ekmfs") == -1 ||
	    (cl.fuse_opts && fuse_opt_add_opt(&opts, cl.fuse_opts) == -1) ||
	    fuse_opt_add_arg(&args, "-o") == -1 || fuse_opt_add_arg(&args, opts) == -1)
		goto out_nomem;

	se = fuse_session_new(&args, &efs_ops, sizeof(efs_ops), &fs);
	if (!se) {
		/* libfuse has said which option it did not understand. */
		status = EXIT_USAGE;
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "ekmfs: cannot install signal handlers\n");
		goto out;
	}
	handlers = true;
	fs.se = se;
	/* The control socket before the mount, so that once the mount is
	 * visible, ekmfs-admin lock and status can reach the daemon at once.
	 * Without it lock is unavailable: logged, serving anyway. */
	(void)efs_control_start(&fs);
	/* Shared: lock marks of other hosts apply here too (before serving). */
	if (efs_shared_start(&fs) < 0)
		goto out;
	if (fuse_session_mount(se, mnt) != 0)
		goto out;        /* libfuse has printed why */
	mounted = true;
	/* Shared: leases other hosts wait for are let go (needs the mount:
	 * it drops the kernel's pages). */
	if (efs_shared_lease_start(&fs) < 0)
		goto out;
	(void)efs_wire_attach(se);      /* logged; libfuse's own I/O otherwise */
	set_read_ahead(mnt, cfg.read_ahead_kb);

	if (!cl.foreground && detach_finish(efs_log_detach()) < 0)
		goto out;
	ekmfs_log(EKMFS_LOG_INFO, "mounted %s at %s", fs.backing, mnt);
	efs_audit_event(&fs, "mount", mnt);
	if (efs_service_start(&fs, &cfg, cl.debug) < 0)
		goto out;

	loop_cfg = fuse_loop_cfg_create();
	if (!loop_cfg)
		goto out_nomem;
	fuse_loop_cfg_set_clone_fd(loop_cfg, 0);
	fuse_loop_cfg_set_max_threads(loop_cfg, cfg.max_threads);
	fuse_loop_cfg_set_idle_threads(loop_cfg, cfg.max_threads);
	ret = fuse_session_loop_mt(se, loop_cfg);
	/* libfuse returns the number of the signal that ended the loop: a
	 * requested shutdown, not a failure. */
	if (ret == 0 || ret == SIGINT || ret == SIGTERM || ret == SIGHUP) {
		status = 0;
	} else {
		status = EXIT_RUNTIME;
		ekmfs_log(EKMFS_LOG_ERR, "session loop ended with error %d", ret);
	}
	goto out;

out_nomem:
	fprintf(stderr, "ekmfs: %s\n", strerror(ENOMEM));
out:
	efs_service_stop();             /* STOPPING=1 before the unmount */
	efs_control_stop();
	efs_shared_stop();
	efs_shared_lease_stop();
	if (mounted)
		efs_audit_event(&fs, "unmount", mnt);
	efs_audit_close(&fs);           /* writes what is queued */
	if (loop_cfg)
		fuse_loop_cfg_destroy(loop_cfg);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);       /* calls .destroy if initialised */
	efs_table_destroy(&fs);                 /* no-op after .destroy */
	efs_fdcache_destroy(&fs);
	/* Every state closed: one syncfs, then both records of each file
	 * closed unsynced are made equal. A clean end only after that. */
	efs_seal_run(&fs);
	efs_seal_destroy(&fs);
	if (mount_lock && ekmfs_io->syncfs(backing_fd) == 0)
		ekmfs_volume_release(backing_fd, mount_lock);
	else if (mount_lock)
		ekmfs_log(EKMFS_LOG_ERR, "syncfs of %s failed: the next mount will recover",
			  fs.backing);
	if (fs.journal_fd > 0)
		close(fs.journal_fd);
	if (fs.keys)
		ekmfs_keys_close(fs.keys);      /* wipes the KEKs */
	if (root_fd != -1)
		close(root_fd);
	if (backing_fd != -1)
		close(backing_fd);
	fuse_opt_free_args(&args);
	free(opts);
	free(fsname);
	free(cl.fuse_opts);
	free(cl.config_copy);
	detach_report(status);
	return status;
}
