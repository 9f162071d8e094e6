/*
 * replay.c - run a fuzz harness over files without libFuzzer.
 *
 * Builds without -Dfuzzing link each harness with this main(): meson test
 * runs it over the harness's committed corpus (tests/fuzz/corpus/NAME), so
 * every build keeps the harnesses compiling and every seed passing, under
 * the sanitizers too (build-asan/). Also the way to re-run one crash input
 * found by a long run: build/tests/fuzz/fuzz_NAME crash-FILE.
 *
 * Arguments: files, or directories whose regular files are run in name
 * order. Exit 0 when every input ran (a harness check aborts), 1 when there
 * was nothing to run: an empty corpus tests nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t ran;

static void run_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	/* An exact-size heap copy, as libFuzzer passes it: a read one byte
	 * past the input is an ASan report here too. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		exit(2);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			fprintf(stderr, "replay: %s: short read\n", path);
			exit(2);
		}
		got += (size_t)n;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	ran++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct dirent **names;
		struct stat st;
		int n;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 2;
		}
		if (!S_ISDIR(st.st_mode)) {
			run_file(argv[i]);
			continue;
		}
		n = scandir(argv[i], &names, NULL, by_name);
		if (n < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 2;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];

			snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				run_file(path);
			free(names[k]);
		}
		free(names);
	}
	printf("%s: %zu inputs, no failure\n", argv[0], ran);
	return ran ? 0 : 1;
}
