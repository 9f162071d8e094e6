/*
 * benchgen.c - ekmfs-rotate-benchgen: fill a volume with many valid ekmfs
 * files quickly, for bench/rotate.sh (not installed).
 *
 * Creating 100,000 files through a FUSE mount takes minutes; this writes
 * them straight into BACKING with the core library: a real header (fresh
 * file id and DEK, wrapped under the tenant's current KEK, exactly as the
 * daemon makes it) and real encrypted content, spread over directories of
 * 1000 files. With --sparse the content region is left as a hole of the
 * right size instead (the header is still real): rotation never reads it,
 * so this measures the cost for large files without filling RAM on tmpfs;
 * such files do not pass ekmfs-admin verify.
 *
 * Usage: ekmfs-rotate-benchgen [-c CONFIG] [--sparse] BACKING COUNT SIZE
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/content.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

static int die(const char *what, int err)
{
	fprintf(stderr, "ekmfs-rotate-benchgen: %s: %s\n", what,
		ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-err));
	return 1;
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	struct ekmfs_config cfg;
	struct ekmfs_keys *keys = NULL;
	struct ekmfs_header h;
	bool sparse = false;
	unsigned long long count, size;
	uint8_t *dek, *data;
	int argi = 1, bfd, ret;

	while (argi < argc && argv[argi][0] == '-') {
		if (!strcmp(argv[argi], "-c") && argi + 1 < argc) {
			config = argv[argi + 1];
			argi += 2;
		} else if (!strcmp(argv[argi], "--sparse")) {
			sparse = true;
			argi++;
		} else {
			break;
		}
	}
	if (argc - argi != 3) {
		fprintf(stderr, "usage: ekmfs-rotate-benchgen [-c CONFIG] [--sparse] BACKING "
			"COUNT SIZE\n");
		return 2;
	}
	count = strtoull(argv[argi + 1], NULL, 10);
	size = strtoull(argv[argi + 2], NULL, 10);
	if (ekmfs_secmem_init() < 0)
		return 1;
	ret = ekmfs_config_load(config, &cfg);
	if (ret)
		return die("config", ret);
	bfd = open(argv[argi], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0)
		return die(argv[argi], -errno);
	ret = ekmfs_keys_open(bfd, &cfg, &keys);
	if (ret)
		return die("open keys", ret);
	dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	data = malloc(size ? size : 1);
	if (!dek || !data)
		return die("memory", -ENOMEM);
	for (unsigned long long i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	for (unsigned long long i = 0; i < count; i++) {
		struct ekmfs_content_env env = { .journal_dir = -1 };
		struct ekmfs_content *ct = NULL;
		char dir[64], path[96];
		uint64_t seal;
		int fd;

		snprintf(dir, sizeof(dir), "bench%04llu", i / 1000);
		snprintf(path, sizeof(path), "%s/f%06llu", dir, i);
		if (i % 1000 == 0 && mkdirat(bfd, dir, 0755) < 0 && errno != EEXIST)
			return die(dir, -errno);
		fd = openat(bfd, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return die(path, -errno);
		ret = ekmfs_keys_new_header(keys, path, &h, dek);
		if (!ret)
			ret = ekmfs_content_create(&ct, fd, &h, dek, &env);
		if (!ret && size) {
			if (sparse) {
				/* A hole of that size: valid, and nothing to write. */
				ret = ekmfs_content_truncate(ct, size, NULL);
			} else {
				ssize_t n = ekmfs_content_write(ct, data, size, 0, NULL);

				ret = n < 0 ? (int)n : 0;
			}
		}
		/* No crash to survive here: at rest at once (equal records). */
		if (!ret)
			ret = ekmfs_content_sync(ct, true);
		if (!ret)
			ret = ekmfs_content_close(ct, &seal);
		else
			ekmfs_content_free(ct);
		ekmfs_wipe(dek, EKMFS_KEY_SIZE);
		close(fd);
		if (ret)
			return die(path, ret);
	}
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
	free(data);
	ekmfs_keys_close(keys);
	close(bfd);
	return 0;
}
