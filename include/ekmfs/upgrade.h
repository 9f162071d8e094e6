/*
 * upgrade.h - moving files and volumes from format version 1 to 2.
 *
 * Owns: converting one file whose content state is loaded (the daemon, on
 * the first change of a v1 file; ekmfs-admin upgrade, for all of them):
 * its DEK is wrapped again for a v2 header, the content converted in place
 * through a crash-safe backup (content.h), its mtime kept as it was.
 */
#ifndef EKMFS_UPGRADE_H
#define EKMFS_UPGRADE_H

#include "ekmfs/content.h"
#include "ekmfs/keys.h"

/* c is loaded from fd and is version 1. 0, or -errno with the reason. */
int ekmfs_upgrade_file(struct ekmfs_keys *k, int fd, struct ekmfs_content *c);

#endif
