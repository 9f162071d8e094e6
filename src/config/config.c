/*
 * config.c - reading ekmfs.ini (include/ekmfs/config.h).
 *
 * Owns: the embedded defaults, the parser callbacks that check every section,
 * key and value, the FILE:LINE error messages, and tenant routing (which
 * tenant a path belongs to, docs/TENANTS.md).
 *
 * Divisions:
 *   1. defaults, tenant lookup and routing
 *   2. value parsers (number, path, enum) - each returns a reason on failure
 *   3. [daemon], [audit] and [tenant.NAME] keys; whole-file checks
 *   4. the line-counting reader and ekmfs_config_load()
 *
 * Debian's inih is built without INI_HANDLER_LINENO, so the handler does not
 * learn the line it is called for. We feed inih through ini_parse_stream()
 * with our own reader, which counts physical lines: when the handler runs, the
 * last line the reader returned is the line being handled. The reader also
 * checks section headers itself, because inih never calls the handler for a
 * section without keys and "[tenant.other]" alone must still be refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ekmfs/config.h"
#include "ekmfs/provider.h"
#include "ekmfs/util.h"

#define TENANT_PREFIX "tenant."
#define EKMFS_META_DIR_NAME ".ekmfs" /* keyring.h's EKMFS_META_DIR; config knows no keyring */

/* ---- 1. defaults and tenant lookup ---- */

static void tenant_defaults(struct ekmfs_tenant_config *tc, const char *name)
{
	memset(tc, 0, sizeof(*tc));
	snprintf(tc->name, sizeof(tc->name), "%s", name);
	snprintf(tc->provider, sizeof(tc->provider), "%s", ekmfs_provider_at(0)->name);
	tc->local_source = EKMFS_LOCAL_KEY_FILE;
	snprintf(tc->key_file, sizeof(tc->key_file), "%s", EKMFS_DEFAULT_KEY_FILE);
	tc->scrypt_n = 65536;
	tc->rotation_days = EKMFS_DEFAULT_ROTATION_DAYS;
	tc->min_cmk_change_interval = EKMFS_DEFAULT_MIN_CMK_CHANGE_INTERVAL;
	tc->key_cache_ttl = EKMFS_DEFAULT_KEY_CACHE_TTL;
	tc->outage_grace = EKMFS_DEFAULT_OUTAGE_GRACE;
	tc->key_cache_uses = EKMFS_DEFAULT_KEY_CACHE_USES;
	tc->enabled = true;
	tc->connect_timeout = 5.0;
	tc->timeout = 15.0;
	tc->max_retries = 3;
	snprintf(tc->azure.authority_host, sizeof(tc->azure.authority_host),
		 "https://login.microsoftonline.com");
	snprintf(tc->azure.imds_endpoint, sizeof(tc->azure.imds_endpoint),
		 "http://169.254.169.254");
	snprintf(tc->azure.api_version, sizeof(tc->azure.api_version), "7.4");
	snprintf(tc->azure.algorithm, sizeof(tc->azure.algorithm), "RSA-OAEP-256");
}

void ekmfs_config_defaults(struct ekmfs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->attr_timeout = 1.0;
	cfg->entry_timeout = 1.0;
	cfg->max_threads = 16;
	cfg->writeback_cache = true;
	cfg->read_ahead_kb = 1024;
	cfg->log_level = EKMFS_LOG_INFO;
	cfg->metrics_interval = 15;
	cfg->rotation_by_daemon = true;
	cfg->audit_enabled = true;
	cfg->rotation_check_interval = 3600;
	snprintf(cfg->control_dir, sizeof(cfg->control_dir), "%s", EKMFS_DEFAULT_CONTROL_DIR);
	cfg->ntenants = 1;
	tenant_defaults(&cfg->tenants[0], EKMFS_DEFAULT_TENANT);
}

const struct ekmfs_tenant_config *ekmfs_config_tenant(const struct ekmfs_config *cfg,
						       const char *name)
{
	for (unsigned i = 0; i < cfg->ntenants; i++)
		if (strcmp(cfg->tenants[i].name, name) == 0)
			return &cfg->tenants[i];
	return NULL;
}

uint32_t ekmfs_config_rotation_days(const struct ekmfs_config *cfg, const char *name)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, name);

	return tc ? tc->rotation_days : EKMFS_DEFAULT_ROTATION_DAYS;
}

/* Whether path (canonical, no leading '/') lies in subtree (canonical, with
 * its leading '/'). */
static bool path_in(const char *path, const char *subtree)
{
	size_t n = strlen(subtree + 1);

	return strncmp(path, subtree + 1, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

const struct ekmfs_tenant_config *ekmfs_config_owner(const struct ekmfs_config *cfg,
						      const char *path)
{
	while (*path == '/')
		path++;
	for (unsigned i = 0; i < cfg->ntenants; i++)
		for (unsigned j = 0; j < cfg->tenants[i].npaths; j++)
			if (path_in(path, cfg->tenants[i].paths[j]))
				return &cfg->tenants[i];
	return NULL;
}

bool ekmfs_tenant_enforced(const struct ekmfs_tenant_config *tc, time_t now)
{
	if (strcmp(tc->name, EKMFS_DEFAULT_TENANT) == 0)
		return true;
	return tc->enabled && now >= tc->enforce_from;
}

const struct ekmfs_tenant_config *ekmfs_config_route(const struct ekmfs_config *cfg,
						      const char *path, time_t now)
{
	const struct ekmfs_tenant_config *owner = ekmfs_config_owner(cfg, path);

	if (owner && ekmfs_tenant_enforced(owner, now))
		return owner;
	return &cfg->tenants[0];
}

int ekmfs_config_check_paths(const struct ekmfs_config *cfg, int backing_fd)
{
	const char *file = cfg->path[0] ? cfg->path : EKMFS_DEFAULT_CONFIG;

	for (unsigned i = 0; i < cfg->ntenants; i++) {
		const struct ekmfs_tenant_config *tc = &cfg->tenants[i];

		for (unsigned j = 0; j < tc->npaths; j++) {
			struct stat st;

			if (fstatat(backing_fd, tc->paths[j] + 1, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				int err = errno;

				ekmfs_seterr("%s:%d: key 'paths' in [tenant.%s]: %s: %s%s", file,
					     tc->paths_line, tc->name, tc->paths[j], strerror(err),
					     err == ENOENT ? " in the volume (create the directory "
					     "first)" : "");
				return -err;
			}
			if (!S_ISDIR(st.st_mode)) {
				ekmfs_seterr("%s:%d: key 'paths' in [tenant.%s]: %s is not a "
					     "directory in the volume", file, tc->paths_line,
					     tc->name, tc->paths[j]);
				return -ENOTDIR;
			}
		}
	}
	return 0;
}

/* ---- 2. value parsers ---- */

/* Each parser returns NULL on success or the reason the value is bad. */

static const char *parse_seconds(const char *v, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (end == v || *end != '\0' || errno != 0 || !isfinite(d))
		return "not a number of seconds";
	if (d < 0)
		return "must be >= 0";
	if (d > 86400.0 * 365)
		return "must be at most one year";
	*out = d;
	return NULL;
}

/* reason receives the range text when the number is out of range. */
static const char *parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *out,
			      char reason[64])
{
	char *end;
	unsigned long long n;

	if (*v < '0' || *v > '9')
		return "not a whole number";
	errno = 0;
	n = strtoull(v, &end, 10);
	if (*end != '\0' || errno != 0)
		return "not a whole number";
	if (n < min || n > max) {
		snprintf(reason, 64, "must be between %llu and %llu",
			 (unsigned long long)min, (unsigned long long)max);
		return reason;
	}
	*out = n;
	return NULL;
}

/* A duration in whole seconds, or with one suffix s, m, h or d ("36h"),
 * 0 .. 3650 days. */
static const char *parse_duration(const char *v, uint64_t *out)
{
	static const struct { char suffix; uint64_t seconds; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	const uint64_t max = 3650ULL * 86400;
	uint64_t mult = 1;
	unsigned long long n;
	char *end;

	if (*v < '0' || *v > '9')
		return "not a duration (seconds, or a number with suffix s, m, h or d)";
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0)
		return "not a duration (seconds, or a number with suffix s, m, h or d)";
	if (*end != '\0') {
		size_t i;

		for (i = 0; i < EKMFS_ARRAY_SIZE(units); i++)
			if (end[0] == units[i].suffix && end[1] == '\0')
				break;
		if (i == EKMFS_ARRAY_SIZE(units))
			return "not a duration (seconds, or a number with suffix s, m, h or d)";
		mult = units[i].seconds;
	}
	if (n > max / mult)
		return "must be at most 3650 days";
	*out = (uint64_t)n * mult;
	return NULL;
}

static const char *parse_path(const char *v, char *out, size_t outlen)
{
	if (v[0] != '/')
		return "must be an absolute path";
	if (strlen(v) >= outlen)
		return "path too long";
	snprintf(out, outlen, "%s", v);
	return NULL;
}

/* A date (UTC midnight) or an RFC 3339 time: ekmfs_time_parse. */
static const char *parse_when(const char *v, time_t *out)
{
	const char *why;

	return ekmfs_time_parse(v, EKMFS_TIME_DATE, out, &why) ? why : NULL;
}

/* One subtree of `paths`: canonical, absolute, not the root nor .ekmfs. */
static const char *parse_subtree(const char *v, size_t len, char *out)
{
	if (len == 0 || v[0] != '/')
		return "each path must be absolute within the volume, like /bots/acme";
	if (len == 1)
		return "/ is the whole volume: that is the default tenant's";
	if (len >= EKMFS_TENANT_PATH_LEN)
		return "path too long";
	if (v[len - 1] == '/')
		return "no trailing '/' please";
	for (size_t i = 0; i < len; i++) {
		if (v[i] != '/')
			continue;
		if (v[i + 1] == '/')
			return "empty path component ('//')";
		if (v[i + 1] == '.' && (i + 2 == len || v[i + 2] == '/'))
			return "'.' components are not allowed";
		if (v[i + 1] == '.' && v[i + 2] == '.' && (i + 3 == len || v[i + 3] == '/'))
			return "'..' components are not allowed";
	}
	if (strncmp(v, "/" EKMFS_META_DIR_NAME, strlen(EKMFS_META_DIR_NAME) + 1) == 0 &&
	    (len == strlen(EKMFS_META_DIR_NAME) + 1 || v[strlen(EKMFS_META_DIR_NAME) + 1] == '/'))
		return "/.ekmfs is the volume's metadata, not data";
	memcpy(out, v, len);
	out[len] = '\0';
	return NULL;
}

static const char *parse_log_level(const char *v, int *out)
{
	static const char *const names[] = {
		[EKMFS_LOG_ERR] = "err", [EKMFS_LOG_WARN] = "warn",
		[EKMFS_LOG_INFO] = "info", [EKMFS_LOG_DEBUG] = "debug",
	};
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(names); i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = (int)i;
			return NULL;
		}
	}
	return "must be one of err, warn, info, debug";
}

/* ---- 3. keys ---- */

/* Parser state shared by the reader and the handler. */
struct load_state {
	struct ekmfs_config *cfg;
	const char *file;
	FILE *fp;
	int lineno;           /* physical line last returned by the reader */
	int err;              /* first error (-errno), message in err_msg */
	int err_line;
	char err_msg[512];
	/* Per [tenant.NAME] section, indexed like cfg->tenants. */
	struct section_state {
		/* Which of the three CMK sources the section set explicitly. */
		bool set_key_file, set_passphrase_file, set_prompt;
		/* The provider keys the section set (first line of each, in
		 * order), for the check that the provider chosen takes them
		 * (in any order in the section). */
		struct { const char *key; int line; } pk[24];
		unsigned npk;
		int provider_line;
		int header_line;              /* of the [tenant.NAME] line */
		int enforce_line, enabled_line;
		int path_lines[EKMFS_TENANT_PATHS_MAX];
	} ts[EKMFS_MAX_TENANTS];
};

static void fail(struct load_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(struct load_state *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (st->err)
		return; /* keep the first error: later ones are often its echoes */
	st->err = -EINVAL;
	st->err_line = st->lineno;
	n = snprintf(st->err_msg, sizeof(st->err_msg), "%s:%d: ", st->file, st->lineno);
	va_start(ap, fmt);
	vsnprintf(st->err_msg + n, sizeof(st->err_msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

static int bad_value(struct load_state *st, const char *section, const char *name,
		     const char *value, const char *reason)
{
	fail(st, "bad value '%s' for key '%s' in [%s]: %s", value, name, section, reason);
	return 0;
}

static int daemon_key(struct load_state *st, const char *section, const char *name,
		      const char *value)
{
	struct ekmfs_config *cfg = st->cfg;
	const char *why;
	char reason[64];
	uint64_t n;

	if (strcmp(name, "attr_timeout") == 0) {
		why = parse_seconds(value, &cfg->attr_timeout);
	} else if (strcmp(name, "entry_timeout") == 0) {
		why = parse_seconds(value, &cfg->entry_timeout);
	} else if (strcmp(name, "max_threads") == 0) {
		why = parse_uint(value, 1, 256, &n, reason);
		if (!why)
			cfg->max_threads = (unsigned)n;
	} else if (strcmp(name, "writeback_cache") == 0) {
		why = NULL;
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
			cfg->writeback_cache = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
			cfg->writeback_cache = false;
		else
			why = "must be true or false";
	} else if (strcmp(name, "shared") == 0) {
		why = NULL;
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
			cfg->shared = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
			cfg->shared = false;
		else
			why = "must be true or false";
	} else if (strcmp(name, "read_ahead_kb") == 0) {
		why = parse_uint(value, 0, 65536, &n, reason);
		if (!why)
			cfg->read_ahead_kb = (unsigned)n;
	} else if (strcmp(name, "inode_file_handles") == 0) {
		why = NULL;
		if (strcmp(value, "prefer") == 0)
			cfg->inode_file_handles = EKMFS_HANDLES_PREFER;
		else if (strcmp(value, "mandatory") == 0)
			cfg->inode_file_handles = EKMFS_HANDLES_MANDATORY;
		else if (strcmp(value, "never") == 0)
			cfg->inode_file_handles = EKMFS_HANDLES_NEVER;
		else
			why = "must be prefer, mandatory or never";
	} else if (strcmp(name, "fd_cache") == 0) {
		why = parse_uint(value, 0, 1u << 24, &n, reason);
		if (!why)
			cfg->fd_cache = (unsigned)n;
	} else if (strcmp(name, "log_level") == 0) {
		why = parse_log_level(value, &cfg->log_level);
	} else if (strcmp(name, "log_file") == 0) {
		why = parse_path(value, cfg->log_file, sizeof(cfg->log_file));
	} else if (strcmp(name, "metrics_file") == 0) {
		why = parse_path(value, cfg->metrics_file, sizeof(cfg->metrics_file));
	} else if (strcmp(name, "metrics_interval") == 0) {
		why = parse_uint(value, 1, 3600, &n, reason);
		if (!why)
			cfg->metrics_interval = (unsigned)n;
	} else if (strcmp(name, "control_dir") == 0) {
		why = parse_path(value, cfg->control_dir, sizeof(cfg->control_dir));
	} else if (strcmp(name, "scheduled_rotation") == 0) {
		why = NULL;
		if (strcmp(value, "daemon") == 0)
			cfg->rotation_by_daemon = true;
		else if (strcmp(value, "external") == 0)
			cfg->rotation_by_daemon = false;
		else
			why = "must be daemon or external";
	} else if (strcmp(name, "rotate_program") == 0) {
		why = parse_path(value, cfg->rotate_program, sizeof(cfg->rotate_program));
	} else if (strcmp(name, "rotation_check_interval") == 0) {
		why = parse_uint(value, 1, 86400, &n, reason);
		if (!why)
			cfg->rotation_check_interval = (unsigned)n;
	} else {
		fail(st, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	return why ? bad_value(st, section, name, value, why) : 1;
}

/* [audit]: where the audit log goes (docs/AUDIT.md). */
static int audit_key(struct load_state *st, const char *section, const char *name,
		     const char *value)
{
	struct ekmfs_config *cfg = st->cfg;
	const char *why = NULL;

	if (strcmp(name, "file") == 0) {
		why = parse_path(value, cfg->audit_file, sizeof(cfg->audit_file));
	} else if (strcmp(name, "syslog") == 0 || strcmp(name, "enabled") == 0) {
		bool *to = strcmp(name, "syslog") == 0 ? &cfg->audit_syslog : &cfg->audit_enabled;

		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
			*to = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
			*to = false;
		else
			why = "must be true or false";
	} else {
		fail(st, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	return why ? bad_value(st, section, name, value, why) : 1;
}

/* The three ways to obtain the CMK exclude one another; say which clash. */
static int check_one_source(struct load_state *st, struct section_state *ss,
			    const char *tenant)
{
	int n = ss->set_key_file + ss->set_passphrase_file + ss->set_prompt;

	if (n > 1) {
		fail(st, "key_file, passphrase_file and passphrase=prompt exclude one "
		     "another in [tenant.%s]: set only one", tenant);
		return 0;
	}
	return 1;
}

/* The keys of the cloud providers. Returns 1 when name is one of them (with
 * *why set if the value is bad), 0 when it is not. key_id means the AWS or
 * the Azure key depending on the provider, which may come later in the
 * section: it is stored in both, and ekmfs_config_load() checks the rest. */
static int cloud_key(struct ekmfs_tenant_config *tc, const char *name, const char *value,
		     const char **why)
{
	static char reason[64];
	uint64_t n;

	*why = NULL;
	if (strcmp(name, "key_cache_ttl") == 0) {
		*why = parse_duration(value, &tc->key_cache_ttl);
		if (!*why && tc->key_cache_ttl == 0)
			*why = "must be at least 1 second";
	} else if (strcmp(name, "outage_grace") == 0) {
		*why = parse_duration(value, &tc->outage_grace);
	} else if (strcmp(name, "connect_timeout") == 0 || strcmp(name, "timeout") == 0) {
		double *d = name[0] == 'c' ? &tc->connect_timeout : &tc->timeout;
		*why = parse_seconds(value, d);
		if (!*why && (*d < 0.001 || *d > 600))
			*why = "must be between 0.001 and 600 seconds";
	} else if (strcmp(name, "max_retries") == 0) {
		*why = parse_uint(value, 0, 10, &n, reason);
		if (!*why)
			tc->max_retries = (unsigned)n;
	} else if (strcmp(name, "ca_file") == 0) {
		*why = parse_path(value, tc->ca_file, sizeof(tc->ca_file));
	} else if (strcmp(name, "key_id") == 0) {
		/* it is recorded in the keyring's cmk_ref (255 bytes at most) */
		if (strlen(value) > 255 || !value[0])
			*why = "must be 1..255 characters";
		else {
			snprintf(tc->aws.key_id, sizeof(tc->aws.key_id), "%s", value);
			snprintf(tc->azure.key_id, sizeof(tc->azure.key_id), "%s", value);
		}
	} else if (strcmp(name, "region") == 0 || strcmp(name, "endpoint") == 0 ||
		   strcmp(name, "profile") == 0) {
		if (name[0] == 'r') {
			if (!value[0] || strlen(value) >= sizeof(tc->aws.region) ||
			    strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(value))
				*why = "not a region name like eu-west-1";
			else
				snprintf(tc->aws.region, sizeof(tc->aws.region), "%s", value);
		} else if (name[0] == 'e') {
			if (strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0)
				*why = "must be an http:// or https:// URL";
			else if (strlen(value) >= sizeof(tc->aws.endpoint))
				*why = "URL too long";
			else
				snprintf(tc->aws.endpoint, sizeof(tc->aws.endpoint), "%s", value);
		} else {
			if (!value[0] || strlen(value) >= sizeof(tc->aws.profile))
				*why = "must be 1..63 characters";
			else
				snprintf(tc->aws.profile, sizeof(tc->aws.profile), "%s", value);
		}
	} else if (strcmp(name, "tenant_id") == 0 || strcmp(name, "client_id") == 0) {
		char *out = name[0] == 't' ? tc->azure.tenant_id : tc->azure.client_id;
		if (!value[0] || strlen(value) >= sizeof(tc->azure.tenant_id) ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789-._") != strlen(value))
			*why = "must be 1..63 characters of [A-Za-z0-9._-] (a GUID or domain)";
		else
			snprintf(out, sizeof(tc->azure.tenant_id), "%s", value);
	} else if (strcmp(name, "client_secret_file") == 0) {
		*why = parse_path(value, tc->azure.client_secret_file,
				  sizeof(tc->azure.client_secret_file));
	} else if (strcmp(name, "authority_host") == 0 || strcmp(name, "imds_endpoint") == 0) {
		char *out = name[0] == 'a' ? tc->azure.authority_host : tc->azure.imds_endpoint;
		if (name[0] == 'a' && strncmp(value, "https://", 8) != 0)
			*why = "must be an https:// URL";
		else if (strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0)
			*why = "must be an http:// or https:// URL";
		else if (strlen(value) >= EKMFS_URL_MAX)
			*why = "URL too long";
		else
			snprintf(out, EKMFS_URL_MAX, "%s", value);
	} else if (strcmp(name, "use_managed_identity") == 0) {
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
			tc->azure.use_managed_identity = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
			tc->azure.use_managed_identity = false;
		else
			*why = "must be true or false";
	} else if (strcmp(name, "api_version") == 0) {
		if (!value[0] || strlen(value) >= sizeof(tc->azure.api_version) ||
		    strspn(value, "0123456789.-preview") != strlen(value))
			*why = "not an API version like 7.4";
		else
			snprintf(tc->azure.api_version, sizeof(tc->azure.api_version), "%s", value);
	} else if (strcmp(name, "algorithm") == 0) {
		if (strcmp(value, "RSA-OAEP-256") != 0 && strcmp(value, "A256KW") != 0)
			*why = "must be RSA-OAEP-256 or A256KW (Managed HSM)";
		else
			snprintf(tc->azure.algorithm, sizeof(tc->azure.algorithm), "%s", value);
	} else {
		return 0;
	}
	return 1;
}

static unsigned tenant_index(struct load_state *st, const char *name);

/* paths: one or more subtrees, separated by commas or blanks; a
 * continuation line (inih's multi-line values) adds more. */
static const char *tenant_paths(struct load_state *st, struct section_state *ss,
				struct ekmfs_tenant_config *tc, const char *value)
{
	const char *p = value, *why;

	if (strcmp(tc->name, EKMFS_DEFAULT_TENANT) == 0)
		return "the default tenant covers every path no other tenant names; "
		       "it takes no paths";
	if (!tc->paths_line)
		tc->paths_line = st->lineno;
	for (;;) {
		size_t len;

		p += strspn(p, ", \t");
		if (!*p)
			break;
		len = strcspn(p, ", \t");
		if (tc->npaths == EKMFS_TENANT_PATHS_MAX)
			return "too many paths (at most 16 per tenant)";
		why = parse_subtree(p, len, tc->paths[tc->npaths]);
		if (why)
			return why;
		ss->path_lines[tc->npaths++] = st->lineno;
		p += len;
	}
	if (!tc->npaths)
		return "needs at least one path, like /bots/acme";
	return NULL;
}

/* enforce_from, enabled: policy keys no default tenant has. */
static const char *tenant_policy(struct load_state *st, struct section_state *ss,
				 struct ekmfs_tenant_config *tc, const char *name,
				 const char *value)
{
	if (strcmp(tc->name, EKMFS_DEFAULT_TENANT) == 0)
		return "the default tenant is always enabled and enforced";
	if (name[1] == 'n' && name[2] == 'f') {   /* enforce_from */
		ss->enforce_line = st->lineno;
		return parse_when(value, &tc->enforce_from);
	}
	ss->enabled_line = st->lineno;
	if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
		tc->enabled = true;
	else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
		tc->enabled = false;
	else
		return "must be true or false";
	return NULL;
}

/* Remember the first line of a key some provider takes (key_file,
 * region, ...), for check_provider_keys(). */
static void note_provider_key(struct section_state *ss, const char *name, int lineno)
{
	const struct ekmfs_provider_desc *d;
	bool taken = false;

	for (size_t i = 0; (d = ekmfs_provider_at(i)); i++)
		for (const char *const *k = d->keys; k && *k && !taken; k++)
			if (strcmp(*k, name) == 0) {
				name = *k;      /* static storage */
				taken = true;
			}
	if (!taken || ss->npk == EKMFS_ARRAY_SIZE(ss->pk))
		return;
	for (unsigned i = 0; i < ss->npk; i++)
		if (ss->pk[i].key == name)
			return;
	ss->pk[ss->npk].key = name;
	ss->pk[ss->npk++].line = lineno;
}

static int tenant_key(struct load_state *st, const char *section, const char *name,
		      const char *value)
{
	unsigned idx = tenant_index(st, section + strlen(TENANT_PREFIX));
	struct ekmfs_tenant_config *tc = &st->cfg->tenants[idx];
	struct section_state *ss = &st->ts[idx];
	const char *why = NULL;
	char reason[64], names[160], must[180];
	uint64_t n;

	note_provider_key(ss, name, st->lineno);
	if (strcmp(name, "provider") == 0) {
		if (!ekmfs_provider_find(value)) {
			ekmfs_provider_names(NULL, names, sizeof(names));
			snprintf(must, sizeof(must), "must be %s", names);
			why = must;
		} else {
			snprintf(tc->provider, sizeof(tc->provider), "%s", value);
			ss->provider_line = st->lineno;
		}
	} else if (cloud_key(tc, name, value, &why)) {
		/* parsed there (or refused with why) */
	} else if (strcmp(name, "key_file") == 0) {
		why = parse_path(value, tc->key_file, sizeof(tc->key_file));
		if (!why) {
			ss->set_key_file = true;
			tc->local_source = EKMFS_LOCAL_KEY_FILE;
			return check_one_source(st, ss, tc->name);
		}
	} else if (strcmp(name, "passphrase_file") == 0) {
		why = parse_path(value, tc->passphrase_file, sizeof(tc->passphrase_file));
		if (!why) {
			ss->set_passphrase_file = true;
			tc->local_source = EKMFS_LOCAL_PASSPHRASE_FILE;
			return check_one_source(st, ss, tc->name);
		}
	} else if (strcmp(name, "passphrase") == 0) {
		if (strcmp(value, "prompt") != 0) {
			why = "the only accepted value is 'prompt' (a passphrase "
			      "never belongs in this file: use passphrase_file)";
		} else {
			ss->set_prompt = true;
			tc->local_source = EKMFS_LOCAL_PASSPHRASE_PROMPT;
			return check_one_source(st, ss, tc->name);
		}
	} else if (strcmp(name, "scrypt_n") == 0) {
		why = parse_uint(value, 16384, 1048576, &n, reason);
		if (!why && (n & (n - 1)) != 0)
			why = "must be a power of two";
		if (!why)
			tc->scrypt_n = n;
	} else if (strcmp(name, "rotation_days") == 0) {
		why = parse_uint(value, 1, 3650, &n, reason);
		if (!why)
			tc->rotation_days = (uint32_t)n;
	} else if (strcmp(name, "min_cmk_change_interval") == 0) {
		why = parse_duration(value, &tc->min_cmk_change_interval);
	} else if (strcmp(name, "key_cache_uses") == 0) {
		why = parse_uint(value, 0, UINT64_MAX / 2, &tc->key_cache_uses, reason);
	} else if (strcmp(name, "paths") == 0) {
		why = tenant_paths(st, ss, tc, value);
	} else if (strcmp(name, "enforce_from") == 0 || strcmp(name, "enabled") == 0) {
		why = tenant_policy(st, ss, tc, name, value);
	} else {
		fail(st, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	return why ? bad_value(st, section, name, value, why) : 1;
}

/* After the whole file: the keys given must belong to the provider chosen,
 * and that provider must have what it needs. Errors name the line of the
 * offending key, or of the provider line for a missing one. */
static void check_provider_keys(struct load_state *st, unsigned idx)
{
	const struct ekmfs_tenant_config *tc = &st->cfg->tenants[idx];
	const struct section_state *ss = &st->ts[idx];
	const struct ekmfs_provider_desc *d = ekmfs_provider_of(tc);
	const char *why, *key = NULL;
	char needs[160];

	for (unsigned i = 0; i < ss->npk; i++) {
		if (ekmfs_provider_takes(d, ss->pk[i].key))
			continue;
		ekmfs_provider_names(ss->pk[i].key, needs, sizeof(needs));
		st->lineno = ss->pk[i].line;
		fail(st, "key '%s' in [tenant.%s] needs provider = %s (the provider is %s)",
		     ss->pk[i].key, tc->name, needs, d->name);
		return;
	}
	st->lineno = ss->provider_line ? ss->provider_line : ss->header_line;
	why = d->check ? d->check(tc, &key) : NULL;
	if (!why)
		return;
	for (unsigned i = 0; key && i < ss->npk; i++)
		if (strcmp(ss->pk[i].key, key) == 0)
			st->lineno = ss->pk[i].line;
	fail(st, "provider %s in [tenant.%s] %s", d->name, tc->name, why);
}

/* Whether subtrees a and b overlap: equal, or one inside the other. */
static bool subtrees_overlap(const char *a, const char *b)
{
	return path_in(a + 1, b) || path_in(b + 1, a);
}

/* After the whole file: every tenant but default names its paths, and no
 * two paths (of one tenant or two) overlap: a new file must have exactly
 * one home. The error names the later of the two. */
static void check_policies(struct load_state *st)
{
	struct ekmfs_config *cfg = st->cfg;

	for (unsigned i = 1; i < cfg->ntenants && !st->err; i++) {
		const struct ekmfs_tenant_config *tc = &cfg->tenants[i];

		if (!tc->npaths) {
			st->lineno = st->ts[i].header_line;
			fail(st, "[tenant.%s] needs paths = /SUBTREE[, ...]: the parts of the "
			     "volume whose new files its CMK protects", tc->name);
			return;
		}
		for (unsigned j = 0; j < tc->npaths; j++) {
			for (unsigned oi = 1; oi <= i; oi++) {
				const struct ekmfs_tenant_config *o = &cfg->tenants[oi];
				unsigned end = oi == i ? j : o->npaths;

				for (unsigned oj = 0; oj < end; oj++) {
					if (!subtrees_overlap(tc->paths[j], o->paths[oj]))
						continue;
					st->lineno = st->ts[i].path_lines[j];
					fail(st, "key 'paths' in [tenant.%s]: %s overlaps %s of "
					     "[tenant.%s] (line %d): a file must have one tenant",
					     tc->name, tc->paths[j], o->paths[oj], o->name,
					     st->ts[oi].path_lines[oj]);
					return;
				}
			}
		}
	}
}

static bool valid_tenant_name(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n < EKMFS_NAME_MAX &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-") == n;
}

/* Index of tenant name in cfg->tenants, added (with the defaults) if new;
 * the caller has checked the name. */
static unsigned tenant_index(struct load_state *st, const char *name)
{
	struct ekmfs_config *cfg = st->cfg;

	for (unsigned i = 0; i < cfg->ntenants; i++)
		if (strcmp(cfg->tenants[i].name, name) == 0)
			return i;
	tenant_defaults(&cfg->tenants[cfg->ntenants], name);
	st->ts[cfg->ntenants].header_line = st->lineno;
	return cfg->ntenants++;
}

/* 1 if section is one we know, else records the error and returns 0. */
static int check_section(struct load_state *st, const char *section)
{
	if (strcmp(section, "daemon") == 0 || strcmp(section, "audit") == 0)
		return 1;
	if (strncmp(section, TENANT_PREFIX, strlen(TENANT_PREFIX)) == 0) {
		const char *tenant = section + strlen(TENANT_PREFIX);

		if (!valid_tenant_name(tenant)) {
			fail(st, "bad tenant name '%s': 1..63 letters, digits, '.', '_' or '-'",
			     tenant);
			return 0;
		}
		if (!ekmfs_config_tenant(st->cfg, tenant) &&
		    st->cfg->ntenants == EKMFS_MAX_TENANTS) {
			fail(st, "too many tenants (at most %d)", EKMFS_MAX_TENANTS);
			return 0;
		}
		tenant_index(st, tenant);
		return 1;
	}
	if (section[0] == '\0')
		fail(st, "key outside any section (start with [daemon] or [tenant.default])");
	else
		fail(st, "unknown section [%s]", section);
	return 0;
}

static int handle_key(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;

	if (st->err)
		return 0;
	if (!check_section(st, section))
		return 0;
	if (strcmp(section, "daemon") == 0)
		return daemon_key(st, section, name, value);
	if (strcmp(section, "audit") == 0)
		return audit_key(st, section, name, value);
	return tenant_key(st, section, name, value);
}

/* ---- 4. reader and load ---- */

/* Called by the reader for a line that opens a section: "[name]". */
static void reader_section(struct load_state *st, const char *line)
{
	const char *p = line, *end;
	char name[128];

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '[')
		return;
	end = strchr(p, ']');
	if (!end)
		return; /* inih reports the syntax error for this line */
	if ((size_t)(end - p - 1) >= sizeof(name)) {
		fail(st, "section name too long");
		return;
	}
	memcpy(name, p + 1, (size_t)(end - p - 1));
	name[end - p - 1] = '\0';
	check_section(st, name);
}

/* fgets-style reader for ini_parse_stream: counts lines, refuses overlong
 * ones (inih would otherwise split them and parse the tail as a new line),
 * and checks section headers. Returning NULL ends the parse. */
static char *reader(char *buf, int size, void *user)
{
	struct load_state *st = user;
	size_t len;

	if (st->err)
		return NULL;
	if (!fgets(buf, size, st->fp))
		return NULL;
	st->lineno++;
	len = strlen(buf);
	if (len == (size_t)size - 1 && buf[len - 1] != '\n') {
		int c = getc(st->fp);
		if (c != EOF) {
			fail(st, "line longer than %d characters", size - 2);
			return NULL;
		}
	}
	reader_section(st, buf);
	return st->err ? NULL : buf;
}

int ekmfs_config_load(const char *path, struct ekmfs_config *cfg)
{
	struct load_state st = { .cfg = cfg };
	const char *file = path ? path : EKMFS_DEFAULT_CONFIG;
	struct stat sb;
	int rc, ret = 0;

	ekmfs_config_defaults(cfg);
	st.file = file;
	st.fp = fopen(file, "re");
	if (!st.fp) {
		ret = -errno;
		if (!path && ret == -ENOENT)
			return 0; /* no configuration: the embedded defaults apply */
		ekmfs_seterr("cannot read config %s: %s", file, strerror(-ret));
		return ret;
	}
	if (fstat(fileno(st.fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		ret = -EISDIR;
		ekmfs_seterr("cannot read config %s: %s", file, strerror(EISDIR));
		goto out;
	}
	if (strlen(file) >= sizeof(cfg->path)) {
		ret = -ENAMETOOLONG;
		ekmfs_seterr("cannot read config %s: %s", file, strerror(ENAMETOOLONG));
		goto out;
	}

	rc = ini_parse_stream(reader, &st, handle_key, &st);
	if (ferror(st.fp)) {
		ret = -EIO;
		ekmfs_seterr("cannot read config %s: %s", file, strerror(EIO));
		goto out;
	}
	if (rc > 0 && (!st.err || rc < st.err_line)) {
		/* inih found a line that is neither [section], key = value nor a
		 * comment before any error of ours. */
		ret = -EINVAL;
		ekmfs_seterr("%s:%d: syntax error (expected [section] or key = value)",
			     file, rc);
		goto out;
	}
	if (rc < 0) {
		ret = rc == -2 ? -ENOMEM : -EIO;
		ekmfs_seterr("cannot read config %s: %s", file, strerror(-ret));
		goto out;
	}
	for (unsigned i = 0; i < cfg->ntenants && !st.err; i++)
		check_provider_keys(&st, i);
	if (!st.err)
		check_policies(&st);
	if (st.err) {
		ret = st.err;
		ekmfs_seterr("%s", st.err_msg);
		goto out;
	}
	snprintf(cfg->path, sizeof(cfg->path), "%s", file);
out:
	fclose(st.fp);
	if (ret)
		ekmfs_config_defaults(cfg); /* never leave a half-applied file */
	return ret;
}
