/*
 * control_client.c - the client side of the daemon's control socket
 * (src/fs/control.c owns the protocol).
 *
 * Owns: the `tenants` request that status uses to show each tenant's key
 * cache, and the `inodes` request for the daemon's inode table and
 * descriptors (the request itself: tools/common/control.c).
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
#include "tool.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"


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
		ret = tool_control_request(sock, "tenants\n", 5, &reply);
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

/* ---- the inodes request ---- */

json_object *admin_daemon_inodes(const struct ekmfs_config *cfg, const struct ekmfs_volume *vol)
{
	char sock[PATH_MAX + 64];
	json_object *o = NULL;
	char *reply = NULL;

	if (ekmfs_volume_control_path(cfg->control_dir, vol, sock, sizeof(sock)) == 0 &&
	    tool_control_request(sock, "inodes\n", 5, &reply) == 0 &&
	    strncmp(reply, "ok ", 3) == 0) {
		o = json_tokener_parse(reply + 3);
		if (o && !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			o = NULL;
		}
	}
	free(reply);
	return o;
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
