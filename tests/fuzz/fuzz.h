/*
 * fuzz.h - what the fuzz harnesses share (tests/fuzz/README.md).
 *
 * Each harness is one file, fuzz_NAME.c, that defines
 * LLVMFuzzerTestOneInput and, when it needs a scratch directory or a
 * fixture, LLVMFuzzerInitialize. Built with -Dfuzzing=true (clang) it is a
 * libFuzzer program; otherwise replay.c runs it over its committed corpus
 * (corpus/NAME/) as a unit test.
 *
 * A harness checks more than "no crash": FUZZ_CHECK states a property the
 * code must keep for every input (a strict parser's output serialises back
 * to the input bytes, an error is one the header documents, a tampered
 * block never opens). A failed check aborts, which libFuzzer reports as a
 * crash with the input saved, and the replay test as a failure.
 */
#ifndef EKMFS_FUZZ_H
#define EKMFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n",     \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Keep ekmfs_log() off stderr (EKMFS_FUZZ_VERBOSE=1 keeps it there):
 * errors only, to a file in the scratch directory. The code under test
 * logs, and a log line per input slows the run and buries libFuzzer's own
 * output. */
void fuzz_quiet(void);
/* With EKMFS_FUZZ_DEBUG set, one line on stderr per call: what a seed
 * reached (writing seeds: is this one accepted, or refused and why?). */
void fuzz_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A scratch directory of this process on a RAM file system when there is
 * one (/dev/shm), created at the first call and removed at exit. */
const char *fuzz_tmpdir(void);
/* "<tmpdir>/name" into out (PATH_MAX bytes). */
void fuzz_path(char *out, const char *name);
/* Replace the file at path with len bytes of data (mode 0600). Aborts on
 * failure: a harness that cannot write its input tests nothing. */
void fuzz_write_file(const char *path, const void *data, size_t len);
/* Copy the directory tree src (a fixture in the source tree) to dst. */
void fuzz_copy_tree(const char *src, const char *dst);
/* The source tree's tests/fuzz directory (fixtures), from
 * $EKMFS_FUZZ_SRCDIR or the path compiled in. */
const char *fuzz_srcdir(void);

#endif
