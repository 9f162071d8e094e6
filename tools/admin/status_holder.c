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

static json_object *holder_json(const struct ekmfs_holder *h, bool live)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "host", json_object_new_string(h->host));
	json_object_object_add(o, "pid", json_object_new_int64(h->pid));
	json_object_object_add(o, "mountpoint", h->mountpoint[0]
			       ? json_object_new_string(h->mountpoint) : NULL);
	json_object_object_add(o, "since", admin_json_time(holder_since(h)));
	json_object_object_add(o, "mode", json_object_new_string(h->shared ? "shared"
									   : "exclusive"));
	/* false: the daemon died holding it (its lock is gone) */
	json_object_object_add(o, "live", json_object_new_boolean(live));
	return o;
}

static void holder_line(const struct ekmfs_holder *h, bool live)
{
	char when[32];

	if (!live) {
		printf("mounted by:     not mounted (the last holder, %s pid %ld, died: the next "
		       "mount recovers)\n", h->host, h->pid);
		return;
	}
	ekmfs_time_rfc3339(holder_since(h), when, sizeof(when));
	printf("mounted by:     %s pid %ld at %s since %s%s\n", h->host, h->pid,
	       h->mountpoint[0] ? h->mountpoint : "(unknown)", when,
	       h->shared ? " (shared)" : "");
}

struct shared_walk {
	size_t n;
	json_object *arr;       /* NULL: print */
};

static int shared_one(const struct ekmfs_holder *h, const char *name, bool live, void *arg)
{
	struct shared_walk *w = arg;

	(void)name;
	w->n++;
	if (w->arr)
		json_object_array_add(w->arr, holder_json(h, live));
	else if (live)
		holder_line(h, true);
	else
		printf("mounted by:     %s pid %ld died (shared): the next mount recovers\n",
		       h->host, h->pid);
	return 0;
}

static size_t shared_walk(const char *backing, json_object *arr)
{
	struct shared_walk w = { 0, arr };
	int fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	(void)ekmfs_volume_shared_each(fd, shared_one, &w);
	close(fd);
	return w.n;
}

void admin_status_holder_text(const char *backing)
{
	struct holder_view v;

	holder_look(backing, &v);
	if (v.found) {
		holder_line(&v.h, v.live);
		return;
	}
	if (shared_walk(backing, NULL))
		return;
	printf("mounted by:     not mounted%s\n",
	       v.pending ? " (a recovery is unfinished: the next mount completes it)" : "");
}

void admin_status_holder_json(const char *backing, json_object *root)
{
	struct holder_view v;
	json_object *shared = json_object_new_array();

	holder_look(backing, &v);
	json_object_object_add(root, "holder", v.found ? holder_json(&v.h, v.live) : NULL);
	(void)shared_walk(backing, shared);
	json_object_object_add(root, "shared_holders", shared);
	json_object_object_add(root, "recovery_pending", json_object_new_boolean(v.pending));
}
