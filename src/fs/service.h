/*
 * service.h - the daemon under a service manager: readiness, reload, and
 * the housekeeping thread.
 *
 * Owns: sd_notify messages (READY, RELOADING, STOPPING, STATUS), the SIGHUP
 * handler (reload the configuration instead of exiting), and the thread that
 * applies reloads and writes the metrics file every metrics_interval.
 */
#ifndef EKMFS_FS_SERVICE_H
#define EKMFS_FS_SERVICE_H

#include <stdbool.h>

#include "ekmfs/config.h"

struct efs_data;

/* Before mounting, while the working directory is still the caller's:
 * remember the configuration file to reload (NULL = the default path) as an
 * absolute path. 0 or -errno (message printed). */
int efs_service_prepare(const char *config_path);

/* Once mounted (and detached): take over SIGHUP, start the housekeeping
 * thread, write the first metrics file and tell the service manager we are
 * ready. cfg is the running configuration (its daemon keys are updated on a
 * reload); keep_debug leaves the log level alone (-d). 0 or -errno. */
int efs_service_start(struct efs_data *fs, struct ekmfs_config *cfg, bool keep_debug);

/* Re-read the configuration file now, as SIGHUP does (serialised with it).
 * 0, or -errno with the reason in ekmfs_lasterr() (nothing changed). For
 * the control thread; -EAGAIN before efs_service_start(). */
int efs_service_reload(void);

/* The session loop has ended: say STOPPING, stop the thread, write the last
 * metrics. Safe to call when efs_service_start() was never called. */
void efs_service_stop(void);

#endif
