/*
 * test_array.c - ekmfs_grow: doubling, the first capacity, and the
 * overflow refusal that leaves the array as it was.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "ekmfs/util.h"

static void test_appends(void)
{
	int *a = NULL, *g;
	size_t n = 0, cap = 0;

	for (int i = 0; i < 100; i++) {
		g = ekmfs_grow(a, &cap, n, sizeof(*a), 4);
		CHECK(g != NULL);
		a = g;
		a[n++] = i;
		CHECK(n <= cap);
	}
	CHECK_EQ_INT(cap, 128);         /* 4, 8, ..., 128 */
	for (int i = 0; i < 100; i++)
		CHECK_EQ_INT(a[i], i);
	/* Room left: the same array, capacity unchanged. */
	CHECK(ekmfs_grow(a, &cap, n, sizeof(*a), 4) == a);
	CHECK_EQ_INT(cap, 128);
	free(a);
}

static void test_overflow_refused(void)
{
	char *a = malloc(1);
	size_t cap = SIZE_MAX / 2 + 1;

	CHECK(a != NULL);
	/* Doubling would wrap: refused, the array and its capacity kept. */
	CHECK(ekmfs_grow(a, &cap, cap, 1, 4) == NULL);
	CHECK(cap == SIZE_MAX / 2 + 1);
	cap = SIZE_MAX / 16;
	CHECK(ekmfs_grow(a, &cap, cap, 16, 4) == NULL);
	CHECK(cap == SIZE_MAX / 16);
	free(a);
}

int main(void)
{
	RUN(test_appends);
	RUN(test_overflow_refused);
	return CHECK_DONE();
}
