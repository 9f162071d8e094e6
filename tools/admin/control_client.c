/*
 * control_client.c - the client side of the daemon's control socket
 * (src/fs/control.c owns the protocol).
 *
 * Owns: sending one request line to a volume's socket (its path, shared
 * with the daemon: ekmfs_volume_control_path) and reading the one-line
 * answer, and the `tenants` request that status uses to show each tenant's
 * key cache. lock.c and the status commands share it.
 *
 * Divisions: the request; the tenants request.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

/* A reply longer than this is not from our daemon (64 tenants fit in 20 KiB). */
#define REPLY_MAX (1024 * 1024)

/* ---- the request ---- */

int admin_control_request(const char *sock_path, const char *req, int timeout_s,
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

/* ---- the tenants request ---- */

json_object *admin_daemon_tenants(const struct ekmfs_config *cfg,
				  const struct ekmfs_volume *vol, char *why, size_t whylen)
{
	char sock[PATH_MAX + 64];
	json_object *arr = NULL;
	char *reply = NULL;
	int ret;

	ret = ekmfs_volume_control_path(cfg->control_dir, vol, sock, sizeof(sock));
	if (ret == 0)
		ret = admin_control_request(sock, "tenants\n", 5, &reply);
	/* No socket, or a stale one nobody listens on: no daemon serves the
	 * volume through this configuration's control_dir. */
	if (ret == -ENOENT || ret == -ECONNREFUSED) {
		snprintf(why, whylen, "not mounted");
		goto out;
	}
	if (ret) {
		snprintf(why, whylen, "unknown (control socket %s: %s)", sock, strerror(-ret));
		goto out;
	}
	if (strncmp(reply, "ok ", 3) != 0) {
		snprintf(why, whylen, "unknown (daemon answered: %.200s)",
			 strncmp(reply, "error ", 6) == 0 ? reply + 6 : reply);
		goto out;
	}
	arr = json_tokener_parse(reply + 3);
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		arr = NULL;
		snprintf(why, whylen, "unknown (the daemon's tenants reply is not a JSON array)");
	}
out:
	free(reply);
	return arr;
}

json_object *admin_daemon_tenant(json_object *states, const char *name)
{
	size_t n = states ? json_object_array_length(states) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(states, i), *t;

		if (json_object_object_get_ex(s, "tenant", &t) &&
		    strcmp(json_object_get_string(t), name) == 0)
			return s;
	}
	return NULL;
}
