/*
 * admin.h - ekmfs-admin's commands and the helpers they share.
 *
 * main.c parses the command line and dispatches; each command lives in its
 * own file and returns the process exit status (0 ok, 1 failure or damage
 * found, 2 usage).
 */
#ifndef EKMFS_ADMIN_H
#define EKMFS_ADMIN_H

#include <stdint.h>
#include <sys/stat.h>

#include "ekmfs/config.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Called for every regular file of a volume (the .ekmfs directory is
 * skipped); relpath is relative to the backing directory. Returns 0 to go on. */
typedef int (*admin_file_fn)(const char *path, const char *relpath,
			     const struct stat *st, void *arg);
/* Walk the backing directory without following symlinks. 0 or -errno. */
int admin_walk_files(const char *backing, admin_file_fn fn, void *arg);

/* status.c */
int admin_status(const char *backing);
/* verify.c */
int admin_verify(const char *backing, const struct ekmfs_config *cfg);

#endif
