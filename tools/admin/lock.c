/*
 * lock.c - `ekmfs-admin lock|unlock [--tenant T] MOUNTPOINT`.
 *
 * Finds the daemon serving MOUNTPOINT through its control socket: the mount
 * table names the backing directory (fsname), whose volume id names the
 * socket CONTROL_DIR/<volume id>.sock ([daemon] control_dir). Sends one
 * request line and prints the daemon's one-line answer. The daemon writes
 * the audit record (with this process's uid and pid, from SO_PEERCRED).
 * The request itself goes through control_client.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

/* Undo the octal escapes of /proc/self/mountinfo (\040 for a space). */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* The backing directory of the ekmfs mount at mnt (a real path). */
static int backing_of(const char *mnt, char *out, size_t outlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok, *where = NULL, *type = NULL, *source = NULL;
		int field = 0;
		bool after_dash = false;

		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
			field++;
			if (field == 5)
				where = tok;
			if (after_dash && !type) {
				type = tok;
				continue;
			}
			if (after_dash && type && !source) {
				source = tok;
				break;
			}
			if (field > 6 && strcmp(tok, "-") == 0)
				after_dash = true;
		}
		if (!where || !type || !source || strcmp(type, "fuse.ekmfs") != 0)
			continue;
		unescape(where);
		if (strcmp(where, mnt) != 0)
			continue;
		unescape(source);
		snprintf(out, outlen, "%s", source);
		ret = 0;           /* the last (topmost) mount wins */
	}
	free(line);
	fclose(f);
	return ret;
}

int admin_lock_main(int argc, char **argv, const struct ekmfs_config *cfg)
{
	static const struct option longopts[] = {
		{ "tenant", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0], *tenant = NULL;
	char mnt[PATH_MAX], backing[PATH_MAX], sock[PATH_MAX + 64], req[128], *reply = NULL;
	struct ekmfs_volume vol;
	int opt, fd, ret, status = EXIT_FAIL;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (opt != 't')
			return EXIT_USAGE;
		tenant = optarg;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "ekmfs-admin: usage: %s [--tenant T] MOUNTPOINT\n", cmd);
		return EXIT_USAGE;
	}
	if (tenant && (strlen(tenant) > 63 || strpbrk(tenant, " \n\r"))) {
		fprintf(stderr, "ekmfs-admin: bad tenant name '%s'\n", tenant);
		return EXIT_USAGE;
	}
	if (!realpath(argv[optind], mnt)) {
		fprintf(stderr, "ekmfs-admin: %s: %s\n", argv[optind], strerror(errno));
		return EXIT_FAIL;
	}
	if (backing_of(mnt, backing, sizeof(backing)) < 0) {
		fprintf(stderr, "ekmfs-admin: %s is not an ekmfs mount\n", mnt);
		return EXIT_FAIL;
	}
	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open the backing directory %s: %s\n", backing,
			strerror(errno));
		return EXIT_FAIL;
	}
	ret = ekmfs_volume_read(fd, &vol);
	close(fd);
	if (ret) {
		fprintf(stderr, "ekmfs-admin: %s\n", ekmfs_lasterr()[0] ? ekmfs_lasterr() :
			strerror(-ret));
		return EXIT_FAIL;
	}
	snprintf(req, sizeof(req), "%s%s%s\n", cmd, tenant ? " " : "", tenant ? tenant : "");
	ret = ekmfs_volume_control_path(cfg->control_dir, &vol, sock, sizeof(sock));
	/* No timeout: unlock waits for the key service, with its own limits. */
	if (ret == 0)
		ret = admin_control_request(sock, req, 0, &reply);
	if (ret) {
		fprintf(stderr, "ekmfs-admin: cannot reach the daemon of %s at %s: %s\n", mnt,
			sock, strerror(-ret));
		goto out;
	}
	if (strncmp(reply, "ok ", 3) == 0) {
		printf("%s: %s\n", mnt, reply + 3);
		status = EXIT_OK;
		goto out;
	}
	fprintf(stderr, "ekmfs-admin: %s: %s\n", mnt,
		strncmp(reply, "error ", 6) == 0 ? reply + 6 : reply);
out:
	free(reply);
	return status;
}
