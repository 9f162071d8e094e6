/*
 * test_encoding.c - hex, base64 (RFC 4648 section 10 vectors) and RFC 3339.
 */
#include <errno.h>
#include <string.h>

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
	CHECK_EQ_INT(ekmfs_time_parse_rfc3339("2026-11-22 23:01:11", &t), -EINVAL);
	CHECK_EQ_INT(ekmfs_time_parse_rfc3339("2026-11-22T23:01:11+02:00", &t), -EINVAL);
}

int main(void)
{
	RUN(test_hex);
	RUN(test_base64_rfc4648);
	RUN(test_rfc3339);
	return CHECK_DONE();
}
