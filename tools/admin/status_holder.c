/*
 * status_holder.c - who holds a volume, for `ekmfs-admin status`.
 *
 * Reads .ekmfs/holder and asks the kernel (or the distributed file
 * system's lock manager) whether its lock on .ekmfs/mount.lock is held
 * (holder.h): a record whose lock nobody holds is a daemon that died, and
 * the next mount recovers. No key, no daemon needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "ekmfs/holder.h"
#include "ekmfs/util.h"

struct holder_view {
	struct ekmfs_holder h;
	bool found, live, pending;
};

static void holder_look(const char *backing, struct holder_view *v)
{
	int fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	memset(v, 0, sizeof(*v));
	if (fd < 0)
		return;
	v->found = ekmfs_volume_holder(fd, &v->h, &v->live, &v->pending) == 0;
	if (!v->found) {
		bool live;
		struct ekmfs_holder none;

		/* No holder record: a recovery may still be unfinished. */
		(void)ekmfs_volume_holder(fd, &none, &live, &v->pending);
	}
	close(fd);
}

/* When the holder took the volume: its own clock, else the record's mtime. */
static time_t holder_since(const struct ekmfs_holder *h)
{
	return h->started > 0 ? h->started : h->since.tv_sec;
}

void admin_status_holder_text(const char *backing)
{
	struct holder_view v;
	char when[32];

	holder_look(backing, &v);
	if (v.found && v.live) {
		ekmfs_time_rfc3339(holder_since(&v.h), when, sizeof(when));
		printf("mounted by:     %s pid %ld at %s since %s%s\n", v.h.host, v.h.pid,
		       v.h.mountpoint[0] ? v.h.mountpoint : "(unknown)", when,
		       v.h.shared ? " (shared)" : "");
	} else if (v.found) {
		printf("mounted by:     not mounted (the last holder, %s pid %ld, died: the next "
		       "mount recovers)\n", v.h.host, v.h.pid);
	} else {
		printf("mounted by:     not mounted%s\n",
		       v.pending ? " (a recovery is unfinished: the next mount completes it)" : "");
	}
}

void admin_status_holder_json(const char *backing, json_object *root)
{
	struct holder_view v;
	json_object *o = NULL;

	holder_look(backing, &v);
	if (v.found) {
		o = json_object_new_object();
		json_object_object_add(o, "host", json_object_new_string(v.h.host));
		json_object_object_add(o, "pid", json_object_new_int64(v.h.pid));
		json_object_object_add(o, "mountpoint", v.h.mountpoint[0]
				       ? json_object_new_string(v.h.mountpoint) : NULL);
		json_object_object_add(o, "since", admin_json_time(holder_since(&v.h)));
		json_object_object_add(o, "mode",
				       json_object_new_string(v.h.shared ? "shared" : "exclusive"));
		/* false: the daemon died holding it (its lock is gone) */
		json_object_object_add(o, "live", json_object_new_boolean(v.live));
	}
	json_object_object_add(root, "holder", o);
	json_object_object_add(root, "recovery_pending", json_object_new_boolean(v.pending));
}
