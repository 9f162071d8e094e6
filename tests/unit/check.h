/*
 * check.h - the unit tests' minimal harness.
 *
 * A test file defines test functions and lists them in main() with RUN().
 * CHECK() records a failure with file and line and carries on, so one run
 * shows every broken expectation. The exit status is the number of failed
 * tests (0 = pass), which is what meson test reads.
 */
#ifndef EKMFS_TEST_CHECK_H
#define EKMFS_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;   /* in the current test */
static int check_failed_tests;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			check_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                   \
	do {                                                                 \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
		if (check_a_ != check_b_) {                                  \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
				__FILE__, __LINE__, #a, check_a_, #b, check_b_); \
			check_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_MEM(a, b, n)                                                   \
	do {                                                                 \
		if (memcmp((a), (b), (n)) != 0) {                            \
			fprintf(stderr, "%s:%d: %s differs from %s (%zu bytes)\n", \
				__FILE__, __LINE__, #a, #b, (size_t)(n));    \
			check_failures++;                                    \
		}                                                            \
	} while (0)

/* EKMFS_CHECK_ONLY=test_name runs that test alone (while developing). */
#define RUN(fn)                                                              \
	do {                                                                 \
		const char *only_ = getenv("EKMFS_CHECK_ONLY");              \
		if (only_ && *only_ && strcmp(only_, #fn) != 0)              \
			break;                                               \
		check_failures = 0;                                          \
		fn();                                                        \
		printf("%s %s\n", check_failures ? "not ok" : "ok", #fn);    \
		if (check_failures)                                          \
			check_failed_tests++;                                \
	} while (0)

#define CHECK_DONE() (check_failed_tests ? 1 : 0)

/* Parse hex text (whitespace ignored) into out; returns the byte count. */
static inline size_t check_unhex(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;
	for (; *hex && n < cap; hex++) {
		int v;
		if (*hex >= '0' && *hex <= '9') v = *hex - '0';
		else if (*hex >= 'a' && *hex <= 'f') v = *hex - 'a' + 10;
		else if (*hex >= 'A' && *hex <= 'F') v = *hex - 'A' + 10;
		else continue;
		if (hi < 0) hi = v;
		else { out[n++] = (unsigned char)(hi << 4 | v); hi = -1; }
	}
	return n;
}

#endif
