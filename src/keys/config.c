/*
 * config.c - reading ekmfs.ini (include/ekmfs/config.h).
 *
 * Owns: the embedded defaults, the parser callbacks that check every section,
 * key and value, and the FILE:LINE error messages.
 *
 * Divisions:
 *   1. defaults and tenant lookup
 *   2. value parsers (number, path, enum) - each returns a reason on failure
 *   3. [daemon] and [tenant.NAME] keys
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
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ekmfs/config.h"
#include "ekmfs/util.h"

#define TENANT_PREFIX "tenant."

/* ---- 1. defaults and tenant lookup ---- */

static void tenant_defaults(struct ekmfs_tenant_config *tc, const char *name)
{
	memset(tc, 0, sizeof(*tc));
	snprintf(tc->name, sizeof(tc->name), "%s", name);
	snprintf(tc->provider, sizeof(tc->provider), "local");
	tc->local_source = EKMFS_LOCAL_KEY_FILE;
	snprintf(tc->key_file, sizeof(tc->key_file), "%s", EKMFS_DEFAULT_KEY_FILE);
	tc->scrypt_n = 65536;
	tc->rotation_days = 60;
	tc->min_cmk_change_interval = EKMFS_DEFAULT_MIN_CMK_CHANGE_INTERVAL;
}

void ekmfs_config_defaults(struct ekmfs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->attr_timeout = 1.0;
	cfg->entry_timeout = 1.0;
	cfg->max_threads = 16;
	cfg->log_level = EKMFS_LOG_INFO;
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
	/* Which of the three CMK sources the default tenant set explicitly. */
	bool set_key_file, set_passphrase_file, set_prompt;
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
	} else if (strcmp(name, "log_level") == 0) {
		why = parse_log_level(value, &cfg->log_level);
	} else {
		fail(st, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	return why ? bad_value(st, section, name, value, why) : 1;
}

/* The three ways to obtain the CMK exclude one another; say which clash. */
static int check_one_source(struct load_state *st)
{
	int n = st->set_key_file + st->set_passphrase_file + st->set_prompt;

	if (n > 1) {
		fail(st, "key_file, passphrase_file and passphrase=prompt exclude one "
		     "another in [tenant.%s]: set only one", EKMFS_DEFAULT_TENANT);
		return 0;
	}
	return 1;
}

static int tenant_key(struct load_state *st, const char *section, const char *name,
		      const char *value)
{
	struct ekmfs_tenant_config *tc = &st->cfg->tenants[0];
	const char *why = NULL;
	char reason[64];
	uint64_t n;

	if (strcmp(name, "provider") == 0) {
		if (strcmp(value, "local") != 0)
			why = "only the 'local' provider exists in this release";
		else
			snprintf(tc->provider, sizeof(tc->provider), "%s", value);
	} else if (strcmp(name, "key_file") == 0) {
		why = parse_path(value, tc->key_file, sizeof(tc->key_file));
		if (!why) {
			st->set_key_file = true;
			tc->local_source = EKMFS_LOCAL_KEY_FILE;
			return check_one_source(st);
		}
	} else if (strcmp(name, "passphrase_file") == 0) {
		why = parse_path(value, tc->passphrase_file, sizeof(tc->passphrase_file));
		if (!why) {
			st->set_passphrase_file = true;
			tc->local_source = EKMFS_LOCAL_PASSPHRASE_FILE;
			return check_one_source(st);
		}
	} else if (strcmp(name, "passphrase") == 0) {
		if (strcmp(value, "prompt") != 0) {
			why = "the only accepted value is 'prompt' (a passphrase "
			      "never belongs in this file: use passphrase_file)";
		} else {
			st->set_prompt = true;
			tc->local_source = EKMFS_LOCAL_PASSPHRASE_PROMPT;
			return check_one_source(st);
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
	} else {
		fail(st, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	return why ? bad_value(st, section, name, value, why) : 1;
}

/* 1 if section is one we know, else records the error and returns 0. */
static int check_section(struct load_state *st, const char *section)
{
	if (strcmp(section, "daemon") == 0)
		return 1;
	if (strncmp(section, TENANT_PREFIX, strlen(TENANT_PREFIX)) == 0) {
		const char *tenant = section + strlen(TENANT_PREFIX);
		if (strcmp(tenant, EKMFS_DEFAULT_TENANT) == 0)
			return 1;
		fail(st, "tenant '%s': only the default tenant is supported in this release",
		     tenant);
		return 0;
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
