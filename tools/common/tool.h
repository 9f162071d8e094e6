/*
 * tool.h - what ekmfs-admin and ekmfs-rotate share (tools/common/).
 *
 *   args.c      the command line as typed, and the refusal of a BACKING (or
 *               a path in a volume) that is on an ekmfs mount instead
 *   progress.c  the progress bar of long jobs on stderr (progress.h)
 *
 * Both tools call tool_init() first thing in main().
 */
#ifndef EKMFS_TOOL_H
#define EKMFS_TOOL_H

#include <stdbool.h>

/* Remember the program name (for messages) and the command line as typed,
 * before getopt permutes it. */
void tool_init(const char *prog, int argc, char **argv);
const char *tool_prog(void);

/* The argument arg (a pointer into the argv given to tool_init) names a
 * volume's backing directory, a path inside one, or where a new volume is
 * to be made. When it is an ekmfs mountpoint or a path inside such a mount,
 * print one line
 *   PROG: /mnt/vault is an ekmfs mountpoint; give its backing directory:
 *   PROG COMMAND ... /srv/vault
 * (the command as typed with arg replaced: by the backing directory, or for
 * a path inside a volume by the same path in the backing directory; for a
 * new volume, that it needs a directory off the mount) and return true:
 * the caller exits 1. False otherwise, also when the mount table cannot be
 * read (the command's own checks then apply). */
enum tool_path_kind {
	TOOL_BACKING,           /* a volume's backing directory */
	TOOL_IN_BACKING,        /* a path inside a backing directory */
	TOOL_NEW_BACKING,       /* where init is to create a volume */
};
bool tool_refuse_mount_path(const char *arg, enum tool_path_kind kind);
/* The same explanation without "PROG: " (malloc'd; the caller frees), or
 * NULL when arg is not on an ekmfs mount: for tools that report errors
 * their own way (ekmfs-rotate --json). */
char *tool_mount_path_problem(const char *arg, enum tool_path_kind kind);

/* control.c: the daemon's control socket (ekmfs_volume_control_path). One
 * request: send req (one line), *reply = the answer's first line (malloc'd).
 * timeout_s 0: wait as long as the daemon takes. 0 or -errno (-ENOENT or
 * -ECONNREFUSED: no daemon listens). */
int tool_control_request(const char *sock_path, const char *req, int timeout_s,
			 char **reply);

#endif
