/*
 * metrics.h - the daemon's counters and their Prometheus text file.
 *
 * Owns: process-wide counters bumped by the FUSE operations (one call each,
 * lock-free), and rendering them, together with the key manager's counters
 * (ekmfs_keys_stats), as a Prometheus text-format file replaced atomically.
 */
#ifndef EKMFS_FS_METRICS_H
#define EKMFS_FS_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct efs_data;

/* Called by ops.c: err is the errno the operation replies with (0 = ok),
 * bytes the amount transferred. */
void efs_metrics_read(int err, size_t bytes);
void efs_metrics_write(int err, size_t bytes);
/* A block or header that failed authentication (tampered or corrupt). */
void efs_metrics_auth_failure(void);
/* An open file handle came (+1) or went (-1). */
void efs_metrics_open_files(int delta);
/* A SIGHUP reload, applied or refused. */
void efs_metrics_reload(int ok);

/* Start of the uptime clock; called once before mounting. */
void efs_metrics_start(void);

/* Render every metric into buf (NUL-terminated). Returns the length, or
 * -ENOSPC when len is too small. */
long efs_metrics_render(struct efs_data *fs, char *buf, size_t len);

/* Write the rendered metrics to path through a temporary file in the same
 * directory and rename(), so a scraper never reads half a file. 0 or -errno
 * (ekmfs_lasterr() names the file). */
int efs_metrics_write_file(struct efs_data *fs, const char *path);

#endif
