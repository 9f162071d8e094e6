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
#include <time.h>

#define EKMFS_DEFAULT_CONFIG "/etc/ekmfs/ekmfs.ini"
#define EKMFS_DEFAULT_KEY_FILE "/var/lib/ekmfs/local.key"
#define EKMFS_DEFAULT_TENANT "default"
#define EKMFS_NAME_MAX 64
#define EKMFS_MAX_TENANTS 64
#define EKMFS_DEFAULT_MIN_CMK_CHANGE_INTERVAL (24 * 3600)
#define EKMFS_DEFAULT_CONTROL_DIR "/run/ekmfs"
#define EKMFS_TENANT_PATHS_MAX 16
#define EKMFS_TENANT_PATH_LEN 256
#define EKMFS_DEFAULT_KEY_CACHE_USES 1000000
#define EKMFS_DEFAULT_ROTATION_DAYS 60

/* How the local provider obtains its CMK. */
enum ekmfs_local_source {
	EKMFS_LOCAL_KEY_FILE,        /* 32 random bytes, base64, in key_file */
	EKMFS_LOCAL_PASSPHRASE_FILE, /* scrypt(passphrase in passphrase_file) */
	EKMFS_LOCAL_PASSPHRASE_PROMPT, /* scrypt(passphrase typed on the tty) */
};

#define EKMFS_URL_MAX 512
#define EKMFS_DEFAULT_KEY_CACHE_TTL 300
#define EKMFS_DEFAULT_OUTAGE_GRACE 3600

/* The AWS KMS provider's settings (providers/aws_kms.c; ekmfs.ini.example). */
struct ekmfs_aws_config {
	char key_id[EKMFS_URL_MAX];         /* key id, key ARN, alias/NAME or alias ARN */
	char region[32];
	char endpoint[EKMFS_URL_MAX];       /* "" = https://kms.REGION.amazonaws.com */
	char profile[EKMFS_NAME_MAX];       /* "" = $AWS_PROFILE, else "default" */
};

/* The Azure Key Vault provider's settings (providers/azure_kv.c). */
struct ekmfs_azure_config {
	char key_id[EKMFS_URL_MAX];         /* https://VAULT/keys/NAME[/VERSION] */
	char tenant_id[64];
	char client_id[64];
	char client_secret_file[PATH_MAX];  /* "" = $AZURE_CLIENT_SECRET */
	char authority_host[EKMFS_URL_MAX];
	bool use_managed_identity;
	char imds_endpoint[EKMFS_URL_MAX];
	char api_version[16];
	char algorithm[16];                 /* RSA-OAEP-256 or A256KW */
};

struct ekmfs_tenant_config {
	char name[EKMFS_NAME_MAX];
	char provider[32];                  /* a name in the provider table (provider.h) */
	/* KEK cache: re-unwrap through the provider after key_cache_ttl
	 * seconds; while the provider is unreachable keep serving a cached
	 * KEK for outage_grace seconds past its expiry. */
	uint64_t key_cache_ttl;
	uint64_t outage_grace;
	/* Cloud providers: network limits and an extra trust anchor. */
	double connect_timeout;             /* seconds */
	double timeout;                     /* seconds, whole request */
	unsigned max_retries;
	char ca_file[PATH_MAX];             /* "" = system trust store */
	struct ekmfs_aws_config aws;
	struct ekmfs_azure_config azure;
	enum ekmfs_local_source local_source;
	char key_file[PATH_MAX];
	char passphrase_file[PATH_MAX];
	uint64_t scrypt_n;                  /* used when a volume is created */
	uint32_t rotation_days;             /* scheduled KEK rotation period */
	uint64_t min_cmk_change_interval;   /* seconds between CMK changes (ekmfs-rotate cmk) */
	/* A cached KEK is fetched again after key_cache_uses DEK wraps and
	 * unwraps, even within its TTL (0: no use limit). */
	uint64_t key_cache_uses;
	/* Policy (docs/TENANTS.md); the default tenant has no paths and is
	 * always enabled and enforced. paths are volume subtrees in canonical
	 * form ("/bots/acme": absolute, no trailing '/', no '.', '..' or '//'). */
	unsigned npaths;
	char paths[EKMFS_TENANT_PATHS_MAX][EKMFS_TENANT_PATH_LEN];
	int paths_line;                     /* line of `paths` in the file (0: none) */
	time_t enforce_from;                /* new files use this tenant from then on (0: always) */
	bool enabled;                       /* false: BYOK switched off, files go to default */
};

/* [daemon] inode_file_handles */
enum ekmfs_handles {
	EKMFS_HANDLES_PREFER,       /* file handles where the backing store has them */
	EKMFS_HANDLES_MANDATORY,    /* refuse to mount without them */
	EKMFS_HANDLES_NEVER,        /* one descriptor per inode, as passthrough_ll */
};

struct ekmfs_config {
	char path[PATH_MAX];                /* "" when the embedded defaults apply */
	/* [daemon] */
	double attr_timeout;
	double entry_timeout;
	unsigned max_threads;
	bool writeback_cache;               /* kernel write-back caching of file data */
	bool shared;                        /* several daemons mount the volume (docs/SHARED.md) */
	unsigned read_ahead_kb;             /* the mount's kernel read-ahead (0: kernel default) */
	/* Inodes named by file handles (docs/DESIGN.md): enum ekmfs_handles. */
	int inode_file_handles;
	unsigned fd_cache;                  /* idle inode descriptors kept (0: automatic) */
	int log_level;                      /* enum ekmfs_log_level */
	char log_file[PATH_MAX];            /* the daemon's own log file; "" = syslog/stderr */
	char metrics_file[PATH_MAX];        /* Prometheus text file; "" = none */
	unsigned metrics_interval;          /* seconds between metrics writes */
	/* Scheduled KEK rotation (rotation_days): run by the daemon itself
	 * (rotate_program at low CPU and I/O priority) or left to an external
	 * ekmfs-rotate run (the daemon then only says it is due). */
	bool rotation_by_daemon;
	char rotate_program[PATH_MAX];      /* "" = ekmfs-rotate beside ekmfs, or on PATH */
	unsigned rotation_check_interval;   /* seconds between checks */
	/* Directory of the control socket <volume id>.sock (ekmfs-admin lock). */
	char control_dir[PATH_MAX];
	/* [audit] (docs/AUDIT.md): log file ("" = /var/log/ekmfs/<volume id>.log)
	 * and whether each record also goes to syslog (LOG_AUTHPRIV). */
	char audit_file[PATH_MAX];
	bool audit_syslog;
	/* enabled = false: no records at all; every writer leaves the mark
	 * .ekmfs/audit.off, and the first writer with the log back on records
	 * the gap (audit_resumed). Default true. */
	bool audit_enabled;
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
/* The KEK rotation period of the keyring's tenant name: its rotation_days,
 * or the default for a tenant the configuration no longer names. */
uint32_t ekmfs_config_rotation_days(const struct ekmfs_config *cfg, const char *name);

/* Tenant routing (docs/TENANTS.md). path is relative to the volume root,
 * with or without a leading '/' ("bots/acme/a.txt").
 * owner: the tenant whose paths hold path, whatever its dates (NULL: none,
 * the default tenant's ground).
 * route: the tenant whose KEK wraps a new file at path at time now: the
 * owner if it is enabled and now >= its enforce_from, else the default
 * tenant. Never NULL. */
const struct ekmfs_tenant_config *ekmfs_config_owner(const struct ekmfs_config *cfg,
						      const char *path);
const struct ekmfs_tenant_config *ekmfs_config_route(const struct ekmfs_config *cfg,
						      const char *path, time_t now);
/* Whether tc's policy puts new files under it at time now. */
bool ekmfs_tenant_enforced(const struct ekmfs_tenant_config *tc, time_t now);
/* Check every tenant path against the volume in backing_fd: each must be an
 * existing directory (not a symlink). 0, or -ENOENT / -ENOTDIR with
 * ekmfs_lasterr() like "ekmfs.ini:14: key 'paths' in [tenant.acme]: ...". */
int ekmfs_config_check_paths(const struct ekmfs_config *cfg, int backing_fd);

#endif
