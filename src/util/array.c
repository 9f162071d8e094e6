/*
 * array.c - growing arrays (ekmfs/util.h).
 *
 * Owns: the one doubling step behind every "append to a list of unknown
 * length" in the project, with the size overflow checked once here.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ekmfs/util.h"

void *ekmfs_grow(void *items, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t want;
	void *grown;

	if (n < *cap)
		return items;
	want = *cap ? 2 * *cap : first;
	if (want < *cap || want > SIZE_MAX / size)
		return NULL;
	grown = realloc(items, want * size);
	if (grown)
		*cap = want;
	return grown;
}
