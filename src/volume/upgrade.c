/*
 * upgrade.c - moving a file from format version 1 to 2 (upgrade.h).
 *
 * The DEK is unwrapped again from the v1 header (the content state keeps
 * its copy to itself) and wrapped under the same KEK for the v2 prefix;
 * the content layer converts the blocks through its backup. The backing
 * file's mtime is put back: as seen through the mount nothing changed.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "ekmfs/io.h"
#include "ekmfs/secmem.h"
#include "ekmfs/upgrade.h"
#include "ekmfs/util.h"

int ekmfs_upgrade_file(struct ekmfs_keys *k, int fd, struct ekmfs_content *c)
{
	uint8_t *dek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	struct ekmfs_header old, h;
	struct stat st;
	int ret;

	if (!dek)
		return -ENOMEM;
	memset(&h, 0, sizeof(h));
	ret = fstat(fd, &st) < 0 ? -errno : 0;
	if (ret == 0)
		ret = ekmfs_content_read_header(fd, &old);
	if (ret == 0 && old.version != EKMFS_FORMAT_V1)
		goto out;       /* converted meanwhile */
	if (ret == 0)
		ret = ekmfs_keys_open_header(k, &old, dek);
	if (ret == 0)
		ret = ekmfs_keys_rewrap_header(k, &old, dek, &h);
	if (ret == 0)
		ret = ekmfs_content_upgrade(c, &h);
	if (ret == 0) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, st.st_mtim };

		(void)ekmfs_io->futimens(fd, tv);
	}
out:
	ekmfs_wipe(&old, sizeof(old));
	ekmfs_wipe(&h, sizeof(h));
	ekmfs_secure_free(dek, EKMFS_KEY_SIZE);
	return ret;
}
