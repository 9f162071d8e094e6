/*
 * audit.c - ekmfs-admin's side of the audit log: opening it for a command,
 * the volume_init record, and `audit verify` / `audit show`.
 *
 * Failure policy (docs/AUDIT.md): a command that changes keys or data
 * (init, lock, unlock, import-plaintext) fails when its audit record cannot
 * be written; verify and show only read.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "tool.h"
#include "ekmfs/audit.h"
#include "ekmfs/keys.h"
#include "ekmfs/util.h"

#define MAX_LOGS 64

static int say(int rc)
{
	const char *msg = ekmfs_lasterr();

	fprintf(stderr, "ekmfs-admin: %s\n", msg[0] ? msg : strerror(-rc));
	return EXIT_FAIL;
}

/* Key-manager events of a command (tenants created by import-plaintext,
 * say): written at once, the command being single-threaded. */
static void key_event_hook(void *arg, enum ekmfs_key_event kev, const char *tenant,
			   const char *cmk_ref, uint32_t kek_version, const char *reason)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;

	ekmfs_key_event_record(&ev, kev, tenant, cmk_ref, kek_version, reason);
	if (admin_audit_record(arg, &ev) < 0)
		fprintf(stderr, "ekmfs-admin: audit log: %s\n", ekmfs_lasterr());
}

int admin_audit_open(const char *backing, const struct ekmfs_config *cfg, bool to_verify,
		     struct admin_audit *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (out->fd < 0) {
		rc = -errno;
		ekmfs_seterr("cannot open %s: %s", backing, strerror(errno));
		return rc;
	}
	ekmfs_clearerr();
	rc = ekmfs_keys_open(out->fd, cfg, &out->keys);
	if (!rc)
		rc = (to_verify ? ekmfs_audit_open_to_verify : ekmfs_audit_open)(
			out->fd, cfg, ekmfs_keys_volume(out->keys),
			ekmfs_keys_provider(out->keys, EKMFS_DEFAULT_TENANT), &out->audit);
	/* The keyring anchor (docs/AUDIT.md); not for audit verify, which
	 * must be able to look at a volume whatever is wrong with it. */
	if (!rc && !to_verify)
		rc = ekmfs_keys_check_anchor(out->keys, ekmfs_audit_keyring_generation(out->audit));
	if (!rc)
		ekmfs_keys_set_event_hook(out->keys, key_event_hook, out);
	if (rc)
		admin_audit_close(out);
	return rc;
}

void admin_audit_close(struct admin_audit *a)
{
	ekmfs_audit_close(a->audit);
	if (a->keys)
		ekmfs_keys_close(a->keys);
	if (a->fd >= 0)
		close(a->fd);
	memset(a, 0, sizeof(*a));
	a->fd = -1;
}

int admin_audit_record(struct admin_audit *a, struct ekmfs_audit_event *ev)
{
	ev->uid = (long long)getuid();
	ev->pid = (long long)getpid();
	ekmfs_audit_note_keyring(a->audit, ekmfs_keys_sealed_generation(a->keys));
	return ekmfs_audit_write(a->audit, ev);
}

/* Before init writes anything: the log directory must be usable, or the
 * volume would be created without its first record. */
int admin_audit_preflight(const struct ekmfs_config *cfg)
{
	char dir[PATH_MAX], *slash;

	snprintf(dir, sizeof(dir), "%s", cfg->audit_file[0] ? cfg->audit_file :
		 EKMFS_AUDIT_DEFAULT_DIR "/x");
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ekmfs_seterr("cannot create the audit log directory %s: %s (set [audit] file)",
			     dir, strerror(errno));
		return -errno;
	}
	if (access(dir, W_OK) < 0) {
		ekmfs_seterr("cannot write the audit log directory %s: %s (set [audit] file)",
			     dir, strerror(errno));
		return -errno;
	}
	return 0;
}

int admin_audit_init_record(const char *backing, const struct ekmfs_config *cfg)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	struct ekmfs_keyring kr = { 0 };
	struct admin_audit a;
	int rc = admin_audit_open(backing, cfg, false, &a);

	if (rc)
		return rc;
	ev.event = "volume_init";
	ev.tenant = EKMFS_DEFAULT_TENANT;
	ev.kek_version = 1;
	if (ekmfs_keyring_read(a.fd, &kr) == 0 && kr.ntenants && kr.tenants[0].nkeks)
		ev.key_ref = kr.tenants[0].keks[0].wrapped.cmk_ref;
	rc = admin_audit_record(&a, &ev);
	ekmfs_keyring_free(&kr);
	if (!rc)
		printf("  audit log: %s\n", a.audit ? ekmfs_audit_path(a.audit)
					  : "off ([audit] enabled = false)");
	admin_audit_close(&a);
	return rc;
}

/* ---- audit verify ---- */

static int audit_verify(int argc, char **argv, const struct ekmfs_config *cfg)
{
	static const struct option longopts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *logs[MAX_LOGS];
	struct ekmfs_audit_report rep;
	struct admin_audit a;
	size_t nlogs = 0;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (opt != 'l' || nlogs == MAX_LOGS) {
			fprintf(stderr, "ekmfs-admin: usage: audit verify [--log FILE]... BACKING\n");
			return EXIT_USAGE;
		}
		logs[nlogs++] = optarg;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "ekmfs-admin: usage: audit verify [--log FILE]... BACKING\n");
		return EXIT_USAGE;
	}
	if (tool_refuse_mount_path(argv[optind], TOOL_BACKING))
		return EXIT_FAIL;
	rc = admin_audit_open(argv[optind], cfg, true, &a);
	if (rc)
		return say(rc);
	ekmfs_clearerr();
	rc = ekmfs_audit_verify(a.audit, logs, nlogs, &rep);
	if (rc == -EBADMSG) {
		if (rep.bad_seq)
			printf("audit: BAD at seq %llu: %s\n", (unsigned long long)rep.bad_seq,
			       rep.why);
		else
			printf("audit: BAD: %s\n", rep.why);
		printf("audit: %llu records verified before the problem\n",
		       (unsigned long long)rep.records);
		rc = EXIT_FAIL;
	} else if (rc) {
		rc = say(rc);
	} else {
		printf("audit: %llu records verified, chain head at seq %llu (%s)\n",
		       (unsigned long long)rep.records, (unsigned long long)rep.head_seq,
		       nlogs ? logs[nlogs - 1] : ekmfs_audit_path(a.audit));
		rc = EXIT_OK;
	}
	admin_audit_close(&a);
	return rc;
}

/* ---- audit show ---- */

static const char *get_str(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v))
		return NULL;
	return json_object_get_string(v);
}

static void show_text(json_object *o)
{
	static const char *const extra[] = { "tenant", "key_ref", "kek_version", "path",
					     "file_id", "uid", "pid", "reason", "details" };

	printf("%s  #%s  %s  %s", get_str(o, "time") ? get_str(o, "time") : "?",
	       get_str(o, "seq") ? get_str(o, "seq") : "?",
	       get_str(o, "event") ? get_str(o, "event") : "?",
	       get_str(o, "outcome") ? get_str(o, "outcome") : "?");
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(extra); i++) {
		const char *v = get_str(o, extra[i]);

		if (v)
			printf("  %s=%s", extra[i], v);
	}
	printf("\n");
}

void admin_print_audit_events(FILE *f, int indent, int width)
{
	const char *name;
	int col = indent;

	fprintf(f, "%*s", indent, "");
	for (size_t i = 0; (name = ekmfs_audit_event_name(i)); i++) {
		int len = (int)strlen(name) + (ekmfs_audit_event_name(i + 1) ? 1 : 0);

		if (i && width && col + 1 + len > width) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (i) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%s%s", name, ekmfs_audit_event_name(i + 1) ? "," : "");
		col += len;
	}
	fputc('\n', f);
}

static int audit_show(int argc, char **argv, const struct ekmfs_config *cfg)
{
	static const struct option longopts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "event", required_argument, NULL, 'e' },
		{ "tenant", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "log", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *event = NULL, *tenant = NULL, *log = NULL, *why;
	char path[PATH_MAX], *line = NULL;
	struct ekmfs_volume vol;
	time_t since = 0;
	bool json = false;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int opt, fd, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (ekmfs_time_parse(optarg, EKMFS_TIME_DATE, &since, &why) < 0) {
				fprintf(stderr, "ekmfs-admin: --since %s: %s (give a date "
					"YYYY-MM-DD, meaning 00:00 UTC, or an RFC 3339 time "
					"such as 2026-12-04T10:00:00+02:00)\n", optarg, why);
				return EXIT_USAGE;
			}
			break;
		case 'e':
			if (!ekmfs_audit_event_known(optarg)) {
				fprintf(stderr, "ekmfs-admin: --event %s: no such audit event; the "
					"events are: ", optarg);
				admin_print_audit_events(stderr, 0, 0);
				return EXIT_USAGE;
			}
			event = optarg;
			break;
		case 't':
			tenant = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'l':
			log = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "ekmfs-admin: usage: audit show [--since TIME] [--event E] "
			"[--tenant T] [--json] [--log FILE] BACKING\n");
		return EXIT_USAGE;
	}
	if (tool_refuse_mount_path(argv[optind], TOOL_BACKING))
		return EXIT_FAIL;
	/* Reading needs no key: only the volume id, for the default log path. */
	fd = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", argv[optind], strerror(errno));
		return EXIT_FAIL;
	}
	rc = ekmfs_volume_read(fd, &vol);
	close(fd);
	if (rc)
		return say(rc);
	if (log)
		snprintf(path, sizeof(path), "%s", log);
	else
		ekmfs_audit_log_path(cfg, &vol, path, sizeof(path));
	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "ekmfs-admin: cannot read the audit log %s: %s\n", path,
			strerror(errno));
		return EXIT_FAIL;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		json_object *o = json_tokener_parse(line);
		const char *s;
		time_t t = 0;

		if (!o) {
			fprintf(stderr, "ekmfs-admin: %s: a line is not JSON (run audit verify)\n",
				path);
			continue;
		}
		if ((event && (!(s = get_str(o, "event")) || strcmp(s, event) != 0)) ||
		    (tenant && (!(s = get_str(o, "tenant")) || strcmp(s, tenant) != 0)) ||
		    (since && (!(s = get_str(o, "time")) ||
			       ekmfs_time_parse_rfc3339(s, &t) < 0 || t < since))) {
			json_object_put(o);
			continue;
		}
		if (json)
			fputs(line, stdout);
		else
			show_text(o);
		json_object_put(o);
	}
	free(line);
	fclose(f);
	return EXIT_OK;
}

int admin_audit_main(int argc, char **argv, const struct ekmfs_config *cfg)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return audit_verify(argc - 1, argv + 1, cfg);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return audit_show(argc - 1, argv + 1, cfg);
	fprintf(stderr, "ekmfs-admin: audit needs a subcommand: verify or show\n");
	return EXIT_USAGE;
}
