/*
 * test_encoding.c - hex, base64 (RFC 4648 section 10 vectors), RFC 3339,
 * and the deadlines of timed waits (ekmfs_deadline_ms).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "ekmfs/util.h"

static void test_hex(void)
{
	uint8_t in[] = { 0x00, 0x7f, 0xab, 0xff }, out[4];
	char text[9];

	ekmfs_hex(in, sizeof(in), text);
	CHECK(strcmp(text, "007fabff") == 0);
	CHECK_EQ_INT(ekmfs_unhex("007FABff", out, 4), 0);
	CHECK_MEM(out, in, 4);
	CHECK_EQ_INT(ekmfs_unhex("007fab", out, 4), -EINVAL);
	CHECK_EQ_INT(ekmfs_unhex("007fabfg", out, 4), -EINVAL);
}

/* RFC 4648, section 10 test vectors. */
static void test_base64_rfc4648(void)
{
	static const char *plain[] = { "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *enc[] = { "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	char text[16];
	uint8_t out[16];

	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(plain); i++) {
		ekmfs_b64_encode((const uint8_t *)plain[i], strlen(plain[i]), text);
		CHECK(strcmp(text, enc[i]) == 0);
		CHECK_EQ_INT(ekmfs_b64_decode(enc[i], out, sizeof(out)), (long)strlen(plain[i]));
		CHECK_MEM(out, plain[i], strlen(plain[i]));
	}
	CHECK_EQ_INT(ekmfs_b64_decode("  Zm9v\n", out, sizeof(out)), 3);
	CHECK_EQ_INT(ekmfs_b64_decode("Zm9", out, sizeof(out)), -EINVAL);
	CHECK_EQ_INT(ekmfs_b64_decode("Zm=v", out, sizeof(out)), -EINVAL);
	CHECK_EQ_INT(ekmfs_b64_decode("Z===", out, sizeof(out)), -EINVAL);
	CHECK_EQ_INT(ekmfs_b64_decode("Zm9*", out, sizeof(out)), -EINVAL);
	CHECK_EQ_INT(ekmfs_b64_decode("", out, sizeof(out)), -EINVAL);
	CHECK_EQ_INT(ekmfs_b64_decode("Zm9vYmFy", out, 5), -EINVAL); /* too long for buffer */
}

static void test_rfc3339(void)
{
	char text[32];
	time_t t;

	ekmfs_time_rfc3339(0, text, sizeof(text));
	CHECK(strcmp(text, "1970-01-01T00:00:00Z") == 0);
	ekmfs_time_rfc3339(1795388471, text, sizeof(text));
	CHECK(strcmp(text, "2026-11-22T23:01:11Z") == 0);
	CHECK_EQ_INT(ekmfs_time_parse_rfc3339("2026-11-22T23:01:11Z", &t), 0);
	CHECK_EQ_INT(t, 1795388471);
	/* no zone: refused */
	CHECK_EQ_INT(ekmfs_time_parse_rfc3339("2026-11-22 23:01:11", &t), -EINVAL);
	/* an offset is applied */
	CHECK_EQ_INT(ekmfs_time_parse_rfc3339("2026-11-23T01:01:11+02:00", &t), 0);
	CHECK_EQ_INT(t, 1795388471);
	/* an impossible date is refused, not read as 2 March */
	CHECK_EQ_INT(ekmfs_time_parse_rfc3339("2026-02-30T00:00:00Z", &t), -EINVAL);
	/* a date alone is not a stored timestamp */
	CHECK_EQ_INT(ekmfs_time_parse_rfc3339("2026-11-22", &t), -EINVAL);
}

/* ekmfs_time_parse: the one parser of config dates, --since and records. */
static time_t parsed(const char *s, unsigned flags, int expect)
{
	const char *why = NULL;
	time_t t = 12345;
	int rc = ekmfs_time_parse(s, flags, &t, &why);

	if (rc != expect)
		fprintf(stderr, "ekmfs_time_parse(\"%s\", %u) = %d, expected %d (%s)\n", s, flags,
			rc, expect, why ? why : "-");
	CHECK_EQ_INT(rc, expect);
	if (rc)
		CHECK(why != NULL && why[0]);
	return rc ? -1 : t;
}

static const char *why_of(const char *s, unsigned flags)
{
	const char *why = NULL;
	time_t t;

	CHECK_EQ_INT(ekmfs_time_parse(s, flags, &t, &why), -EINVAL);
	return why ? why : "";
}

static void test_time_parse(void)
{
	const unsigned D = EKMFS_TIME_DATE;
	const time_t dec4 = 1796342400;         /* 2026-12-04T00:00:00Z */

	/* a date alone is 00:00 UTC, with EKMFS_TIME_DATE only */
	CHECK_EQ_INT(parsed("2026-12-04", D, 0), dec4);
	parsed("2026-12-04", 0, -EINVAL);
	/* RFC 3339 with Z, offsets, fractions, minutes only, t/z/space */
	CHECK_EQ_INT(parsed("2026-12-04T00:00:00Z", 0, 0), dec4);
	CHECK_EQ_INT(parsed("2026-12-04T10:00:00+02:00", D, 0), dec4 + 8 * 3600);
	CHECK_EQ_INT(parsed("2026-12-03T22:30:00-01:30", D, 0), dec4);
	CHECK_EQ_INT(parsed("2026-12-04T00:00:00+00:00", 0, 0), dec4);
	CHECK_EQ_INT(parsed("2026-12-04T00:00:00.999999Z", 0, 0), dec4);
	CHECK_EQ_INT(parsed("2026-12-04T00:00:59.5+00:00", 0, 0), dec4 + 59);
	CHECK_EQ_INT(parsed("2026-12-04T00:01Z", 0, 0), dec4 + 60);
	CHECK_EQ_INT(parsed("2026-12-04t00:00:00z", 0, 0), dec4);
	CHECK_EQ_INT(parsed("2026-12-04 00:00:00Z", 0, 0), dec4);
	CHECK_EQ_INT(parsed("1970-01-01T00:00:00Z", 0, 0), 0);
	/* leap years: 2028 and 2000 have 29 February, 2027 and 2100 do not */
	CHECK_EQ_INT(parsed("2028-02-29", D, 0), 1835395200);
	CHECK_EQ_INT(parsed("2000-02-29T12:00:00Z", 0, 0), 951825600);
	parsed("2027-02-29", D, -EINVAL);
	parsed("2100-02-29", D, -EINVAL);
	CHECK(strcmp(why_of("2027-02-29", D), "no such date or time") == 0);
	/* impossible dates and times are refused, not normalised */
	CHECK(strcmp(why_of("2026-02-30", D), "no such date or time") == 0);
	parsed("2026-04-31", D, -EINVAL);
	parsed("2026-13-01", D, -EINVAL);
	parsed("2026-00-10", D, -EINVAL);
	parsed("2026-12-00", D, -EINVAL);
	parsed("2026-12-04T24:00:00Z", 0, -EINVAL);
	parsed("2026-12-04T23:60:00Z", 0, -EINVAL);
	parsed("2026-12-04T23:59:61Z", 0, -EINVAL);
	parsed("2026-12-04T10:00:00+24:00", 0, -EINVAL);
	parsed("1969-12-31T23:59:59Z", 0, -EINVAL);
	/* malformed */
	CHECK(strstr(why_of("2026-12-04T10:00:00", 0), "needs its zone") != NULL);
	parsed("next week", D, -EINVAL);
	parsed("", D, -EINVAL);
	parsed("2026-12-4", D, -EINVAL);
	parsed("2026-12-04T10:00:00.Z", 0, -EINVAL);
	parsed("2026-12-04T10:00:00Zjunk", 0, -EINVAL);
	parsed("2026-12-04T10:00:00+0200", 0, -EINVAL);
	parsed("2026-12-04 ", D, -EINVAL);
}

/* Nanoseconds from a to b. */
static long long ns_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

static void test_deadline(void)
{
	static const long ms[] = { 0, 1, 20, 999, 1000, 1500, 61001 };

	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		struct timespec before, until, after;

		clock_gettime(CLOCK_REALTIME, &before);
		ekmfs_deadline_ms(&until, ms[i]);
		clock_gettime(CLOCK_REALTIME, &after);
		/* Normalised, and ms after a moment between before and after. */
		CHECK(until.tv_nsec >= 0 && until.tv_nsec < 1000000000L);
		CHECK(ns_between(&before, &until) >= ms[i] * 1000000LL);
		CHECK(ns_between(&after, &until) <= ms[i] * 1000000LL);
	}
}

int main(void)
{
	RUN(test_hex);
	RUN(test_base64_rfc4648);
	RUN(test_rfc3339);
	RUN(test_time_parse);
	RUN(test_deadline);
	return CHECK_DONE();
}
