/*
 * config.h - the ekmfs.ini configuration file (parsed with inih).
 *
 * Owns: the meaning of every configuration key and its default. Every key is
 * documented in ekmfs.ini.example; an unknown section or key, or a bad value,
 * is an error naming file, line and key. With no file at the default path the
 * embedded defaults apply (the local platform key), so ekmfs works with no
 * configuration at all.
 */
#ifndef EKMFS_CONFIG_H
#define EKMFS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define EKMFS_DEFAULT_CONFIG "/etc/ekmfs/ekmfs.ini"
#define EKMFS_DEFAULT_KEY_FILE "/var/lib/ekmfs/local.key"
#define EKMFS_DEFAULT_TENANT "default"
#define EKMFS_NAME_MAX 64
#define EKMFS_MAX_TENANTS 64
#define EKMFS_DEFAULT_MIN_CMK_CHANGE_INTERVAL (24 * 3600)

/* How the local provider obtains its CMK. */
enum ekmfs_local_source {
	EKMFS_LOCAL_KEY_FILE,        /* 32 random bytes, base64, in key_file */
	EKMFS_LOCAL_PASSPHRASE_FILE, /* scrypt(passphrase in passphrase_file) */
	EKMFS_LOCAL_PASSPHRASE_PROMPT, /* scrypt(passphrase typed on the tty) */
};

struct ekmfs_tenant_config {
	char name[EKMFS_NAME_MAX];
	char provider[32];                  /* "local" */
	enum ekmfs_local_source local_source;
	char key_file[PATH_MAX];
	char passphrase_file[PATH_MAX];
	uint64_t scrypt_n;                  /* used when a volume is created */
	uint32_t rotation_days;             /* recorded; rotation lands with ekmfs-rotate */
	uint64_t min_cmk_change_interval;   /* seconds between CMK changes (ekmfs-rotate cmk) */
};

struct ekmfs_config {
	char path[PATH_MAX];                /* "" when the embedded defaults apply */
	/* [daemon] */
	double attr_timeout;
	double entry_timeout;
	unsigned max_threads;
	int log_level;                      /* enum ekmfs_log_level */
	/* [tenant.NAME] sections; tenants[0] is always "default". */
	unsigned ntenants;
	struct ekmfs_tenant_config tenants[EKMFS_MAX_TENANTS];
};

/* Fill cfg with the embedded defaults. */
void ekmfs_config_defaults(struct ekmfs_config *cfg);
/* Load path over the defaults. path NULL means EKMFS_DEFAULT_CONFIG, which
 * may be absent (defaults apply); an explicit path must exist. 0 or -errno
 * with ekmfs_lasterr() like "ekmfs.ini:12: unknown key 'foo' in [daemon]". */
int ekmfs_config_load(const char *path, struct ekmfs_config *cfg);
const struct ekmfs_tenant_config *ekmfs_config_tenant(const struct ekmfs_config *cfg,
						       const char *name);

#endif
