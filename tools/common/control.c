/*
 * control.c - the client side of the daemon's control socket (src/fs/control.c
 * owns the protocol), for ekmfs-admin (lock, unlock, status) and ekmfs-rotate
 * (the rotation fence).
 *
 * Owns: sending one request line to a volume's socket (its path, shared with
 * the daemon: ekmfs_volume_control_path) and reading the one-line answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "tool.h"

/* A reply longer than this is not from our daemon (64 tenants fit in 20 KiB). */
#define REPLY_MAX (1024 * 1024)

/* ---- the request ---- */

int tool_control_request(const char *sock_path, const char *req, int timeout_s,
			 char **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	size_t got = 0, cap = 0;
	char *buf = NULL;
	ssize_t n;
	int fd, ret = 0;

	*reply = NULL;
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (timeout_s > 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	/* MSG_NOSIGNAL: a daemon that closes first must not kill us with SIGPIPE. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		ret = -errno;
		goto out;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		if (cap - got < 4096) {
			char *grown;

			if (cap >= REPLY_MAX) {
				ret = -EMSGSIZE;
				goto out;
			}
			cap = cap ? 2 * cap : 4096;
			grown = realloc(buf, cap + 1);
			if (!grown) {
				ret = -ENOMEM;
				goto out;
			}
			buf = grown;
		}
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (!buf) {
		ret = -ECONNRESET;      /* closed without a word */
		goto out;
	}
	buf[got] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	*reply = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}
