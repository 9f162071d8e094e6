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
#include "tool.h"
#include "ekmfs/keyring.h"
#include "ekmfs/mounts.h"
#include "ekmfs/util.h"

/* The mountpoint of an ekmfs mount of the volume in backing (a real
 * path), for the reverse mistake: BACKING given where MOUNTPOINT is wanted. */
struct mounted_from {
	const char *backing;
	char point[PATH_MAX];
};

static int mounted_from_one(const struct ekmfs_mount *m, void *arg)
{
	struct mounted_from *f = arg;

	if (strcmp(m->backing, f->backing) == 0)
		snprintf(f->point, sizeof(f->point), "%s", m->point);
	return 0;
}

int admin_lock_main(int argc, char **argv, const struct ekmfs_config *cfg)
{
	static const struct option longopts[] = {
		{ "tenant", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0], *tenant = NULL;
	char mnt[PATH_MAX], sock[PATH_MAX + 64], req[128], *reply = NULL;
	struct ekmfs_volume vol;
	struct ekmfs_mount m;
	struct mounted_from from = { .point = "" };
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
	if (ekmfs_mount_at(mnt, &m) != 1) {
		from.backing = mnt;
		(void)ekmfs_mounts_each(mounted_from_one, &from);
		if (from.point[0])
			fprintf(stderr, "ekmfs-admin: %s is the backing directory of the ekmfs "
				"mount %s; give the mountpoint: ekmfs-admin %s %s\n", mnt,
				from.point, cmd, from.point);
		else
			fprintf(stderr, "ekmfs-admin: %s is not an ekmfs mount\n", mnt);
		return EXIT_FAIL;
	}
	fd = open(m.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open the backing directory %s: %s\n",
			m.backing, strerror(errno));
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
		ret = tool_control_request(sock, req, 0, &reply);
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
	/* "error ENAME message": the message alone (the errno name is for
	 * scripts talking to the socket). */
	if (strncmp(reply, "error ", 6) == 0) {
		const char *m = reply + 6;

		if (m[0] == 'E' && strchr(m, ' '))
			m = strchr(m, ' ') + 1;
		fprintf(stderr, "ekmfs-admin: %s: %s\n", mnt, m);
	} else {
		fprintf(stderr, "ekmfs-admin: %s: %s\n", mnt, reply);
	}
out:
	free(reply);
	return status;
}
