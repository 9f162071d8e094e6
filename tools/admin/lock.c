/*
 * lock.c - `ekmfs-admin lock|unlock [--tenant T] MOUNTPOINT`.
 *
 * Finds the daemon serving MOUNTPOINT through its control socket: the mount
 * table names the backing directory (fsname), whose volume id names the
 * socket CONTROL_DIR/<volume id>.sock ([daemon] control_dir). Sends one
 * request line and prints the daemon's one-line answer. The daemon writes
 * the audit record (with this process's uid and pid, from SO_PEERCRED).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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

static int request(const char *sock_path, const char *req, char *reply, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t got = 0;
	ssize_t n;
	int fd, ret = 0;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		ret = -errno;
		goto out;
	}
	shutdown(fd, SHUT_WR);
	while (got + 1 < len && (n = read(fd, reply + got, len - 1 - got)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
out:
	close(fd);
	return ret;
}

int admin_lock_main(int argc, char **argv, const struct ekmfs_config *cfg)
{
	static const struct option longopts[] = {
		{ "tenant", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0], *tenant = NULL;
	char mnt[PATH_MAX], backing[PATH_MAX], sock[PATH_MAX + 64], req[128], reply[1024];
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];
	struct ekmfs_volume vol;
	int opt, fd, ret;

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
	ekmfs_hex(vol.volume_id, EKMFS_VOLUME_ID_SIZE, id);
	snprintf(sock, sizeof(sock), "%s/%s.sock", cfg->control_dir, id);
	snprintf(req, sizeof(req), "%s%s%s\n", cmd, tenant ? " " : "", tenant ? tenant : "");
	ret = request(sock, req, reply, sizeof(reply));
	if (ret) {
		fprintf(stderr, "ekmfs-admin: cannot reach the daemon of %s at %s: %s\n", mnt,
			sock, strerror(-ret));
		return EXIT_FAIL;
	}
	if (strncmp(reply, "ok ", 3) == 0) {
		printf("%s: %s\n", mnt, reply + 3);
		return EXIT_OK;
	}
	fprintf(stderr, "ekmfs-admin: %s: %s\n", mnt,
		strncmp(reply, "error ", 6) == 0 ? reply + 6 : reply);
	return EXIT_FAIL;
}
