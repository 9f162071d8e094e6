/*
 * test_config.c - ekmfs.ini parsing: defaults, every key, and every error
 * with the exact FILE:LINE message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/config.h"
#include "ekmfs/util.h"

static char dir[] = "/tmp/ekmfs-test-config-XXXXXX";
static char ini[sizeof(dir) + 16];
static struct ekmfs_config cfg; /* large: keep it off the stack */

static int load_text(const char *text)
{
	FILE *f = fopen(ini, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	fclose(f);
	return ekmfs_config_load(ini, &cfg);
}

/* Load text and expect -EINVAL with "INI:line: msg". */
static void expect_error(const char *text, int line, const char *msg)
{
	char want[1024];
	int rc = load_text(text);

	snprintf(want, sizeof(want), "%s:%d: %s", ini, line, msg);
	CHECK_EQ_INT(rc, -EINVAL);
	if (strcmp(ekmfs_lasterr(), want) != 0) {
		fprintf(stderr, "  got:  %s\n  want: %s\n", ekmfs_lasterr(), want);
		check_failures++;
	}
	/* A refused file must not leave half its values behind. */
	CHECK_EQ_INT(cfg.max_threads, 16);
	CHECK(strcmp(cfg.tenants[0].key_file, EKMFS_DEFAULT_KEY_FILE) == 0);
}

static void test_defaults(void)
{
	const struct ekmfs_tenant_config *tc;

	ekmfs_config_defaults(&cfg);
	CHECK(cfg.attr_timeout == 1.0);
	CHECK(cfg.entry_timeout == 1.0);
	CHECK_EQ_INT(cfg.max_threads, 16);
	CHECK_EQ_INT(cfg.log_level, EKMFS_LOG_INFO);
	CHECK_EQ_INT(cfg.ntenants, 1);
	CHECK(strcmp(cfg.path, "") == 0);
	tc = ekmfs_config_tenant(&cfg, "default");
	CHECK(tc == &cfg.tenants[0]);
	CHECK(ekmfs_config_tenant(&cfg, "other") == NULL);
	if (!tc)
		return;
	CHECK(strcmp(tc->provider, "local") == 0);
	CHECK_EQ_INT(tc->local_source, EKMFS_LOCAL_KEY_FILE);
	CHECK(strcmp(tc->key_file, EKMFS_DEFAULT_KEY_FILE) == 0);
	CHECK(strcmp(tc->passphrase_file, "") == 0);
	CHECK_EQ_INT(tc->scrypt_n, 65536);
	CHECK_EQ_INT(tc->rotation_days, 60);

	/* An empty file and a comments-only file change nothing. */
	CHECK_EQ_INT(load_text(""), 0);
	CHECK_EQ_INT(cfg.max_threads, 16);
	CHECK(strcmp(cfg.path, ini) == 0);
	CHECK_EQ_INT(load_text("; comment\n# other\n\n[daemon]\n"), 0);
	CHECK(cfg.attr_timeout == 1.0);
}

static void test_every_key(void)
{
	const char *text =
		"[daemon]\n"
		"attr_timeout = 2.5\n"
		"entry_timeout = 0\n"
		"max_threads = 256\n"
		"log_level = debug\n"
		"\n"
		"[tenant.default]\n"
		"provider = local\n"
		"key_file = /srv/keys/vol.key\n"
		"scrypt_n = 16384\n"
		"rotation_days = 3650\n";

	CHECK_EQ_INT(load_text(text), 0);
	CHECK(cfg.attr_timeout == 2.5);
	CHECK(cfg.entry_timeout == 0.0);
	CHECK_EQ_INT(cfg.max_threads, 256);
	CHECK_EQ_INT(cfg.log_level, EKMFS_LOG_DEBUG);
	CHECK_EQ_INT(cfg.tenants[0].local_source, EKMFS_LOCAL_KEY_FILE);
	CHECK(strcmp(cfg.tenants[0].key_file, "/srv/keys/vol.key") == 0);
	CHECK_EQ_INT(cfg.tenants[0].scrypt_n, 16384);
	CHECK_EQ_INT(cfg.tenants[0].rotation_days, 3650);

	CHECK_EQ_INT(load_text("[tenant.default]\npassphrase_file = /etc/ekmfs/pass\n"
			       "[daemon]\nlog_level = err\nmax_threads = 1\n"), 0);
	CHECK_EQ_INT(cfg.tenants[0].local_source, EKMFS_LOCAL_PASSPHRASE_FILE);
	CHECK(strcmp(cfg.tenants[0].passphrase_file, "/etc/ekmfs/pass") == 0);
	CHECK_EQ_INT(cfg.log_level, EKMFS_LOG_ERR);
	CHECK_EQ_INT(cfg.max_threads, 1);

	CHECK_EQ_INT(load_text("[tenant.default]\npassphrase = prompt\nscrypt_n = 1048576\n"), 0);
	CHECK_EQ_INT(cfg.tenants[0].local_source, EKMFS_LOCAL_PASSPHRASE_PROMPT);
	CHECK_EQ_INT(cfg.tenants[0].scrypt_n, 1048576);

	CHECK_EQ_INT(load_text("[daemon]\nlog_level = warn\n"), 0);
	CHECK_EQ_INT(cfg.log_level, EKMFS_LOG_WARN);
	CHECK(cfg.rotation_by_daemon);
	CHECK_EQ_INT(cfg.rotation_check_interval, 3600);
	CHECK_EQ_INT(load_text("[daemon]\nscheduled_rotation = external\n"
			       "rotate_program = /opt/ekmfs/bin/ekmfs-rotate\n"
			       "rotation_check_interval = 60\n"), 0);
	CHECK(!cfg.rotation_by_daemon);
	CHECK(strcmp(cfg.rotate_program, "/opt/ekmfs/bin/ekmfs-rotate") == 0);
	CHECK_EQ_INT(cfg.rotation_check_interval, 60);
	CHECK_EQ_INT(load_text("[daemon]\nlog_level = info\n"), 0);
	CHECK_EQ_INT(cfg.log_level, EKMFS_LOG_INFO);
	CHECK(cfg.log_file[0] == '\0');                /* default: syslog / stderr */
	CHECK_EQ_INT(load_text("[daemon]\nlog_file = /var/log/ekmfs/vault.log\n"), 0);
	CHECK(strcmp(cfg.log_file, "/var/log/ekmfs/vault.log") == 0);
}

static void test_errors(void)
{
	expect_error("[daemon]\nmax_threads = 4\nfoo = 1\n", 3, "unknown key 'foo' in [daemon]");
	expect_error("[daemon]\nlog_file = vault.log\n", 2, "bad value 'vault.log' for key "
		     "'log_file' in [daemon]: must be an absolute path");
	expect_error("; c\n[tenant.default]\n\nkeyfile = /x\n", 4,
		     "unknown key 'keyfile' in [tenant.default]");
	/* Sections are refused even when empty (inih never reports those). */
	expect_error("[daemon]\n[fuse]\n", 2, "unknown section [fuse]");
	expect_error("\n\n[tenant.payroll]\nkey_file = /k\n", 3,
		     "[tenant.payroll] needs paths = /SUBTREE[, ...]: the parts of the volume "
		     "whose new files its CMK protects");
	expect_error("[tenant.payroll]\n", 1,
		     "[tenant.payroll] needs paths = /SUBTREE[, ...]: the parts of the volume "
		     "whose new files its CMK protects");
	expect_error("[tenant.pay/roll]\n", 1,
		     "bad tenant name 'pay/roll': 1..63 letters, digits, '.', '_' or '-'");
	expect_error("max_threads = 3\n", 1,
		     "key outside any section (start with [daemon] or [tenant.default])");

	expect_error("[daemon]\nscheduled_rotation = cron\n", 2,
		     "bad value 'cron' for key 'scheduled_rotation' in [daemon]: "
		     "must be daemon or external");
	expect_error("[daemon]\nrotation_check_interval = 0\n", 2,
		     "bad value '0' for key 'rotation_check_interval' in [daemon]: "
		     "must be between 1 and 86400");
	expect_error("[daemon]\nmax_threads = 0\n", 2,
		     "bad value '0' for key 'max_threads' in [daemon]: must be between 1 and 256");
	expect_error("[daemon]\nmax_threads = 257\n", 2,
		     "bad value '257' for key 'max_threads' in [daemon]: must be between 1 and 256");
	expect_error("[daemon]\nmax_threads = 4x\n", 2,
		     "bad value '4x' for key 'max_threads' in [daemon]: not a whole number");
	expect_error("[daemon]\nmax_threads = -1\n", 2,
		     "bad value '-1' for key 'max_threads' in [daemon]: not a whole number");
	expect_error("[daemon]\nattr_timeout = -1\n", 2,
		     "bad value '-1' for key 'attr_timeout' in [daemon]: must be >= 0");
	expect_error("[daemon]\nentry_timeout = soon\n", 2,
		     "bad value 'soon' for key 'entry_timeout' in [daemon]: not a number of seconds");
	expect_error("[daemon]\nlog_level = verbose\n", 2,
		     "bad value 'verbose' for key 'log_level' in [daemon]: must be one of err, "
		     "warn, info, debug");
	expect_error("[tenant.default]\nprovider = aws\n", 2,
		     "bad value 'aws' for key 'provider' in [tenant.default]: must be local, "
		     "aws-kms or azure-keyvault");
	expect_error("[tenant.default]\nkey_file = keys/local.key\n", 2,
		     "bad value 'keys/local.key' for key 'key_file' in [tenant.default]: must "
		     "be an absolute path");
	expect_error("[tenant.default]\npassphrase_file = pass\n", 2,
		     "bad value 'pass' for key 'passphrase_file' in [tenant.default]: must be "
		     "an absolute path");
	expect_error("[tenant.default]\npassphrase = hunter2\n", 2,
		     "bad value 'hunter2' for key 'passphrase' in [tenant.default]: the only "
		     "accepted value is 'prompt' (a passphrase never belongs in this file: use "
		     "passphrase_file)");
	expect_error("[tenant.default]\nscrypt_n = 20000\n", 2,
		     "bad value '20000' for key 'scrypt_n' in [tenant.default]: must be a power "
		     "of two");
	expect_error("[tenant.default]\nscrypt_n = 8192\n", 2,
		     "bad value '8192' for key 'scrypt_n' in [tenant.default]: must be between "
		     "16384 and 1048576");
	expect_error("[tenant.default]\nrotation_days = 0\n", 2,
		     "bad value '0' for key 'rotation_days' in [tenant.default]: must be "
		     "between 1 and 3650");
	expect_error("[tenant.default]\nkey_file = /k\n\npassphrase_file = /p\n", 4,
		     "key_file, passphrase_file and passphrase=prompt exclude one another in "
		     "[tenant.default]: set only one");
	expect_error("[tenant.default]\npassphrase = prompt\npassphrase_file = /p\n", 3,
		     "key_file, passphrase_file and passphrase=prompt exclude one another in "
		     "[tenant.default]: set only one");
	expect_error("[daemon]\nmax_threads = 2\nthis line is nonsense\n", 3,
		     "syntax error (expected [section] or key = value)");
	expect_error("[daemon\n", 1, "syntax error (expected [section] or key = value)");

	/* The first error wins when a file has several. */
	expect_error("[daemon]\nbogus = 1\n[nope]\n", 2, "unknown key 'bogus' in [daemon]");

	/* An overlong line is refused, not split into two lines. */
	{
		char text[600];
		int n = snprintf(text, sizeof(text), "[tenant.default]\nkey_file = /");
		memset(text + n, 'a', 400);
		strcpy(text + n + 400, "\n");
		CHECK_EQ_INT(load_text(text), -EINVAL);
		CHECK(strstr(ekmfs_lasterr(), ":2: line longer than") != NULL);
	}
}

static void test_paths(void)
{
	char missing[sizeof(dir) + 32], want[256];
	int rc;

	/* The default path may be absent: then the embedded defaults apply. */
	if (access(EKMFS_DEFAULT_CONFIG, F_OK) != 0) {
		cfg.max_threads = 99;
		CHECK_EQ_INT(ekmfs_config_load(NULL, &cfg), 0);
		CHECK_EQ_INT(cfg.max_threads, 16);
		CHECK(strcmp(cfg.path, "") == 0);
	}
	/* An explicit path must exist. */
	snprintf(missing, sizeof(missing), "%s/absent.ini", dir);
	rc = ekmfs_config_load(missing, &cfg);
	CHECK_EQ_INT(rc, -ENOENT);
	snprintf(want, sizeof(want), "cannot read config %s: %s", missing, strerror(ENOENT));
	CHECK(strcmp(ekmfs_lasterr(), want) == 0);
	/* A directory is not a config file. */
	rc = ekmfs_config_load(dir, &cfg);
	CHECK_EQ_INT(rc, -EISDIR);
}

/* provider = aws-kms / azure-keyvault and their keys (issue 4). */
/* min_cmk_change_interval (ekmfs-rotate cmk): default, every accepted
 * duration form, every refusal with its exact FILE:LINE message. */
static uint64_t interval_of(const char *value)
{
	char text[256];

	snprintf(text, sizeof(text), "[tenant.default]\nmin_cmk_change_interval = %s\n",
		 value);
	if (load_text(text) != 0) {
		fprintf(stderr, "  '%s' refused: %s\n", value, ekmfs_lasterr());
		return UINT64_MAX;
	}
	return cfg.tenants[0].min_cmk_change_interval;
}

static void expect_interval_refused(const char *value, const char *reason)
{
	char text[256], msg[512];

	snprintf(text, sizeof(text), "[tenant.default]\nmin_cmk_change_interval = %s\n",
		 value);
	snprintf(msg, sizeof(msg), "bad value '%s' for key 'min_cmk_change_interval' in "
		 "[tenant.default]: %s", value, reason);
	expect_error(text, 2, msg);
	/* A refused file leaves the defaults, not half its values. */
	CHECK(cfg.tenants[0].min_cmk_change_interval == 24 * 3600);
}

static void test_cmk_change_interval(void)
{
	const char *dur = "not a duration (seconds, or a number with suffix s, m, h or d)";

	ekmfs_config_defaults(&cfg);
	CHECK(cfg.tenants[0].min_cmk_change_interval == 24 * 3600);
	CHECK_EQ_INT(load_text("[tenant.default]\nrotation_days = 30\n"), 0);
	CHECK(cfg.tenants[0].min_cmk_change_interval == 24 * 3600);

	CHECK(interval_of("0") == 0);
	CHECK(interval_of("90") == 90);
	CHECK(interval_of("90s") == 90);
	CHECK(interval_of("15m") == 900);
	CHECK(interval_of("36h") == 36 * 3600);
	CHECK(interval_of("2d") == 2 * 86400);
	CHECK(interval_of("3650d") == 3650ULL * 86400);
	CHECK(interval_of("315360000") == 315360000ULL);

	expect_interval_refused("-1", dur);
	expect_interval_refused("1w", dur);
	expect_interval_refused("h", dur);
	expect_interval_refused("12hh", dur);
	expect_interval_refused("1.5h", dur);
	expect_interval_refused("3651d", "must be at most 3650 days");
	expect_interval_refused("315360001", "must be at most 3650 days");
	expect_interval_refused("99999999999999999999999", dur);
	/* The key belongs to a tenant, not to the daemon. */
	CHECK_EQ_INT(load_text("[daemon]\nmin_cmk_change_interval = 1h\n"), -EINVAL);
	CHECK(strstr(ekmfs_lasterr(), "unknown key 'min_cmk_change_interval' in [daemon]"));
}

/* [tenant.NAME]: paths, enforce_from, enabled, key_cache_uses, routing. */
static void test_tenants(void)
{
	const struct ekmfs_tenant_config *acme, *beta;
	time_t t2027 = 1798761600; /* 2027-01-01T00:00:00Z */

	CHECK_EQ_INT(load_text("[tenant.acme]\nprovider = local\nkey_file = /etc/ekmfs/acme.key\n"
			       "paths = /bots/acme, /apps/acme-prod\n"
			       "enforce_from = 2027-01-01\nkey_cache_uses = 10\n"
			       "key_cache_ttl = 1m\n"
			       "[tenant.beta]\npaths = /bots/beta\n    /bots/beta2\n"
			       "enabled = false\nenforce_from = 2026-12-31T23:30:00-01:00\n"), 0);
	CHECK_EQ_INT(cfg.ntenants, 3);
	acme = ekmfs_config_tenant(&cfg, "acme");
	beta = ekmfs_config_tenant(&cfg, "beta");
	CHECK(acme && beta);
	if (!acme || !beta)
		return;
	CHECK_EQ_INT(acme->npaths, 2);
	CHECK(strcmp(acme->paths[1], "/apps/acme-prod") == 0);
	CHECK_EQ_INT(acme->paths_line, 4);
	CHECK(acme->enforce_from == t2027);
	CHECK(acme->enabled);
	CHECK_EQ_INT(acme->key_cache_uses, 10);
	CHECK_EQ_INT(acme->key_cache_ttl, 60);
	CHECK_EQ_INT(cfg.tenants[0].key_cache_uses, EKMFS_DEFAULT_KEY_CACHE_USES);
	/* a continuation line adds paths; the offset is applied */
	CHECK_EQ_INT(beta->npaths, 2);
	CHECK(strcmp(beta->paths[1], "/bots/beta2") == 0);
	CHECK(!beta->enabled);
	CHECK(beta->enforce_from == t2027 - 1800 + 3600);

	/* routing: owner ignores dates, route honours them */
	CHECK(ekmfs_config_owner(&cfg, "bots/acme/x/y") == acme);
	CHECK(ekmfs_config_owner(&cfg, "/bots/acme") == acme);
	CHECK(ekmfs_config_owner(&cfg, "bots/acmexyz/a") == NULL);
	CHECK(ekmfs_config_owner(&cfg, "bots") == NULL);
	CHECK(ekmfs_config_route(&cfg, "bots/acme/a", t2027 - 1) == &cfg.tenants[0]);
	CHECK(ekmfs_config_route(&cfg, "bots/acme/a", t2027) == acme);
	CHECK(ekmfs_config_route(&cfg, "apps/acme-prod/db", t2027 + 5) == acme);
	CHECK(ekmfs_config_route(&cfg, "bots/beta/a", t2027 + 5) == &cfg.tenants[0]);
	CHECK(ekmfs_config_route(&cfg, "other/a", t2027 + 5) == &cfg.tenants[0]);
	CHECK(ekmfs_tenant_enforced(&cfg.tenants[0], 0));

	/* errors name file, line and key */
	expect_error("[tenant.a]\npaths = /bots/a\n[tenant.b]\n\npaths = /x, /bots/a/deep\n", 5,
		     "key 'paths' in [tenant.b]: /bots/a/deep overlaps /bots/a of [tenant.a] "
		     "(line 2): a file must have one tenant");
	expect_error("[tenant.a]\npaths = /bots/a /bots/a\n", 2,
		     "key 'paths' in [tenant.a]: /bots/a overlaps /bots/a of [tenant.a] "
		     "(line 2): a file must have one tenant");
	expect_error("[tenant.a]\npaths = bots/a\n", 2,
		     "bad value 'bots/a' for key 'paths' in [tenant.a]: each path must be "
		     "absolute within the volume, like /bots/acme");
	expect_error("[tenant.a]\npaths = /bots/../etc\n", 2,
		     "bad value '/bots/../etc' for key 'paths' in [tenant.a]: '..' components "
		     "are not allowed");
	expect_error("[tenant.a]\npaths = /\n", 2,
		     "bad value '/' for key 'paths' in [tenant.a]: / is the whole volume: that "
		     "is the default tenant's");
	expect_error("[tenant.a]\npaths = /.ekmfs/x\n", 2,
		     "bad value '/.ekmfs/x' for key 'paths' in [tenant.a]: /.ekmfs is the "
		     "volume's metadata, not data");
	expect_error("[tenant.a]\npaths = /a/\n", 2,
		     "bad value '/a/' for key 'paths' in [tenant.a]: no trailing '/' please");
	expect_error("[tenant.default]\npaths = /a\n", 2,
		     "bad value '/a' for key 'paths' in [tenant.default]: the default tenant "
		     "covers every path no other tenant names; it takes no paths");
	expect_error("[tenant.default]\nenabled = false\n", 2,
		     "bad value 'false' for key 'enabled' in [tenant.default]: the default "
		     "tenant is always enabled and enforced");
	expect_error("[tenant.a]\npaths = /a\nenforce_from = 2027-02-29\n", 3,
		     "bad value '2027-02-29' for key 'enforce_from' in [tenant.a]: no such "
		     "date or time");
	expect_error("[tenant.a]\npaths = /a\nenforce_from = next week\n", 3,
		     "bad value 'next week' for key 'enforce_from' in [tenant.a]: not a date "
		     "YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS] with Z or +HH:MM");
	expect_error("[tenant.a]\npaths = /a\nenforce_from = 2027-01-01T10:00\n", 3,
		     "bad value '2027-01-01T10:00' for key 'enforce_from' in [tenant.a]: a time "
		     "needs its zone: end it with Z or +HH:MM");
	expect_error("[tenant.a]\npaths = /a\nenabled = maybe\n", 3,
		     "bad value 'maybe' for key 'enabled' in [tenant.a]: must be true or false");
	expect_error("[tenant.a]\npaths = /a\nkey_cache_uses = lots\n", 3,
		     "bad value 'lots' for key 'key_cache_uses' in [tenant.a]: not a whole number");
	expect_error("[tenant.a]\npaths = /a\nregion = eu-west-1\n", 3,
		     "key 'region' in [tenant.a] needs provider = aws-kms (the provider is local)");
	expect_error("[tenant.a]\npaths = /a\nprovider = aws-kms\n", 3,
		     "provider aws-kms in [tenant.a] needs key_id and region");
	expect_error("[tenant.a]\npaths = /a\nkey_file = /k\npassphrase = prompt\n", 4,
		     "key_file, passphrase_file and passphrase=prompt exclude one another in "
		     "[tenant.a]: set only one");
	expect_error("[tenant.a]\npaths = /a\nbogus = 1\n", 3,
		     "unknown key 'bogus' in [tenant.a]");
}

static void test_cloud_providers(void)
{
	const struct ekmfs_tenant_config *tc = &cfg.tenants[0];

	CHECK_EQ_INT(load_text("[tenant.default]\nkey_id = alias/x\nregion = eu-west-1\n"
			       "provider = aws-kms\nendpoint = https://127.0.0.1:9/\n"
			       "profile = p\nkey_cache_ttl = 2m\noutage_grace = 1h\n"
			       "connect_timeout = 0.5\ntimeout = 3\nmax_retries = 0\n"
			       "ca_file = /etc/ca.pem\n"), 0);
	CHECK(strcmp(tc->provider, "aws-kms") == 0 && strcmp(tc->aws.key_id, "alias/x") == 0);
	CHECK(strcmp(tc->aws.region, "eu-west-1") == 0 && strcmp(tc->aws.profile, "p") == 0);
	CHECK(strcmp(tc->aws.endpoint, "https://127.0.0.1:9/") == 0);
	CHECK_EQ_INT(tc->key_cache_ttl, 120);
	CHECK_EQ_INT(tc->outage_grace, 3600);
	CHECK(tc->connect_timeout == 0.5 && tc->timeout == 3.0);
	CHECK_EQ_INT(tc->max_retries, 0);
	CHECK(strcmp(tc->ca_file, "/etc/ca.pem") == 0);

	CHECK_EQ_INT(load_text("[tenant.default]\nprovider = azure-keyvault\n"
			       "key_id = https://v.vault.azure.net/keys/k\n"
			       "use_managed_identity = true\nalgorithm = A256KW\n"
			       "api_version = 7.5\nimds_endpoint = http://127.0.0.1:1\n"), 0);
	CHECK(tc->azure.use_managed_identity && strcmp(tc->azure.algorithm, "A256KW") == 0);
	CHECK(strcmp(tc->azure.api_version, "7.5") == 0);
	CHECK(strcmp(tc->azure.authority_host, "https://login.microsoftonline.com") == 0);
	CHECK_EQ_INT(tc->key_cache_ttl, EKMFS_DEFAULT_KEY_CACHE_TTL);

	/* A key of another provider, a missing key, a bad value: refused. */
	expect_error("[tenant.default]\nprovider = aws-kms\nkey_id = k\nregion = r1\n"
		     "key_file = /k\n", 5, "key 'key_file' in [tenant.default] needs provider = "
		     "local (the provider is aws-kms)");
	expect_error("[tenant.default]\nregion = eu-west-1\n", 2, "key 'region' in "
		     "[tenant.default] needs provider = aws-kms (the provider is local)");
	expect_error("[tenant.default]\nkey_id = k\n", 2, "key 'key_id' in [tenant.default] "
		     "needs provider = aws-kms or azure-keyvault (the provider is local)");
	expect_error("[tenant.default]\nprovider = aws-kms\nkey_id = k\n", 2,
		     "provider aws-kms in [tenant.default] needs key_id and region");
	expect_error("[tenant.default]\nprovider = azure-keyvault\nkey_id = k\n", 3,
		     "provider azure-keyvault in [tenant.default] needs key_id = "
		     "https://VAULT/keys/NAME[/VERSION]");
	expect_error("[tenant.default]\nprovider = azure-keyvault\n"
		     "key_id = https://v/keys/k\n", 2, "provider azure-keyvault in "
		     "[tenant.default] needs tenant_id and client_id (with client_secret_file), "
		     "or use_managed_identity = true");
	expect_error("[tenant.default]\nkey_cache_ttl = 0\n", 2, "bad value '0' for key "
		     "'key_cache_ttl' in [tenant.default]: must be at least 1 second");
	expect_error("[tenant.default]\nprovider = azure-keyvault\nalgorithm = RSA1_5\n", 3,
		     "bad value 'RSA1_5' for key 'algorithm' in [tenant.default]: must be "
		     "RSA-OAEP-256 or A256KW (Managed HSM)");
	expect_error("[tenant.default]\nprovider = aws-kms\nendpoint = kms.local\n", 3,
		     "bad value 'kms.local' for key 'endpoint' in [tenant.default]: must be an "
		     "http:// or https:// URL");
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(ini, sizeof(ini), "%s/ekmfs.ini", dir);
	RUN(test_defaults);
	RUN(test_every_key);
	RUN(test_errors);
	RUN(test_tenants);
	RUN(test_cmk_change_interval);
	RUN(test_paths);
	RUN(test_cloud_providers);
	unlink(ini);
	rmdir(dir);
	return CHECK_DONE();
}
