/*
 * test_rotate_config.c - the configuration key ekmfs-rotate adds:
 * min_cmk_change_interval in [tenant.default] (default, every accepted
 * form, every refusal with its exact FILE:LINE message).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/config.h"
#include "ekmfs/util.h"

static char dir[] = "/tmp/ekmfs-test-rotcfg-XXXXXX";
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

static void expect_refused(const char *value, const char *reason)
{
	char text[256], want[512];

	snprintf(text, sizeof(text), "[tenant.default]\nmin_cmk_change_interval = %s\n",
		 value);
	snprintf(want, sizeof(want), "%s:2: bad value '%s' for key "
		 "'min_cmk_change_interval' in [tenant.default]: %s", ini, value, reason);
	CHECK_EQ_INT(load_text(text), -EINVAL);
	if (strcmp(ekmfs_lasterr(), want) != 0) {
		fprintf(stderr, "  got:  %s\n  want: %s\n", ekmfs_lasterr(), want);
		check_failures++;
	}
	/* A refused file leaves the defaults, not half its values. */
	CHECK(cfg.tenants[0].min_cmk_change_interval == 24 * 3600);
}

static void test_default(void)
{
	ekmfs_config_defaults(&cfg);
	CHECK(cfg.tenants[0].min_cmk_change_interval == 24 * 3600);
	CHECK_EQ_INT(load_text("[tenant.default]\nrotation_days = 30\n"), 0);
	CHECK(cfg.tenants[0].min_cmk_change_interval == 24 * 3600);
}

static void test_forms(void)
{
	CHECK(interval_of("0") == 0);
	CHECK(interval_of("90") == 90);
	CHECK(interval_of("90s") == 90);
	CHECK(interval_of("15m") == 900);
	CHECK(interval_of("36h") == 36 * 3600);
	CHECK(interval_of("2d") == 2 * 86400);
	CHECK(interval_of("3650d") == 3650ULL * 86400);
	CHECK(interval_of("315360000") == 315360000ULL);
}

static void test_refusals(void)
{
	const char *dur = "not a duration (seconds, or a number with suffix s, m, h or d)";

	expect_refused("-1", dur);
	expect_refused("1w", dur);
	expect_refused("h", dur);
	expect_refused("12hh", dur);
	expect_refused("1.5h", dur);
	expect_refused("3651d", "must be at most 3650 days");
	expect_refused("315360001", "must be at most 3650 days");
	expect_refused("99999999999999999999999", dur);
	/* The key belongs to a tenant, not to the daemon. */
	CHECK_EQ_INT(load_text("[daemon]\nmin_cmk_change_interval = 1h\n"), -EINVAL);
	CHECK(strstr(ekmfs_lasterr(), "unknown key 'min_cmk_change_interval' in [daemon]"));
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(ini, sizeof(ini), "%s/ekmfs.ini", dir);
	RUN(test_default);
	RUN(test_forms);
	RUN(test_refusals);
	unlink(ini);
	rmdir(dir);
	return CHECK_DONE();
}
