/*
 * provider.h - the interface every CMK provider implements.
 *
 * Owns: the contract between the key hierarchy and a key service. A provider
 * wraps and unwraps one KEK at a time under the tenant's CMK and binds each
 * wrap to its context (volume id, tenant, KEK version) so keyring records
 * cannot be swapped. The local provider is in providers/local.c; cloud and
 * HSM providers add a file there and a line to the table in provider.c,
 * without touching the filesystem code.
 *
 * Error contract (callers rely on it to tell refusal from outage):
 *   -EKEYREJECTED  the CMK does not open this blob (wrong key or context)
 *   -ENOKEY        the CMK is not available (missing key file, deleted key)
 *   -EACCES        the service refused us (disabled key, revoked access)
 *   -ETIMEDOUT, -EHOSTUNREACH, -ECONNREFUSED, -ECONNRESET
 *                  the service is unreachable, or kept failing (throttling,
 *                  5xx) after the configured retries: an outage
 *   -EPERM         a secrets file has loose permissions
 *   -EREMOTE       the keyring record names another key service or key than
 *                  the configured one: refused before any connection (a
 *                  tampered record; the key manager audits it as
 *                  keyring_tampered and files see ENOKEY)
 * with ekmfs_lasterr() naming the cause in one line.
 */
#ifndef EKMFS_PROVIDER_H
#define EKMFS_PROVIDER_H

#include <stdbool.h>
#include <stdint.h>

#include "ekmfs/config.h"
#include "ekmfs/keyring.h"

struct ekmfs_wrap_context {
	const uint8_t *volume_id;   /* EKMFS_VOLUME_ID_SIZE bytes */
	const char *tenant;
	uint32_t kek_version;
};

struct ekmfs_provider;

/* What `ekmfs-admin test` learns from a remote key service before it wraps
 * anything: the first step that failed (0 none), its errno and one-line
 * reason, and what the service said about the key. */
enum ekmfs_probe_step {
	EKMFS_PROBE_OK = 0,
	EKMFS_PROBE_REACH,              /* DNS, TCP, TLS */
	EKMFS_PROBE_AUTH,               /* credentials, token, signature */
	EKMFS_PROBE_KEY,                /* key missing, disabled, pending deletion */
};

struct ekmfs_provider_probe {
	enum ekmfs_probe_step failed;
	int err;
	char reason[512];
	char endpoint[EKMFS_REF_MAX];   /* the service contacted */
	char identity[EKMFS_REF_MAX];   /* who we authenticated as, if known */
	char key_state[64];             /* "Enabled", "Disabled", "PendingDeletion" */
	char key_version[EKMFS_REF_MAX];/* ARN, versioned kid */
};

struct ekmfs_provider_ops {
	const char *name;
	int (*wrap)(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		    const uint8_t kek[32], struct ekmfs_wrapped_kek *out);
	/* kek is wiped on failure. */
	int (*unwrap)(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		      const struct ekmfs_wrapped_kek *in, uint8_t kek[32]);
	/* Reachability, key state, round trip, wrong-context rejection. */
	int (*self_test)(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx);
	/* Optional (NULL for local keys): contact the service and describe the
	 * key. 0 when reachable, authenticated and the key is usable. */
	int (*probe)(struct ekmfs_provider *p, struct ekmfs_provider_probe *out);
	/* Optional: re-wrap in (made by this provider, possibly under another
	 * CMK) under this provider's CMK inside the service, so the KEK never
	 * leaves it (AWS ReEncrypt). NULL: callers unwrap and wrap. */
	int (*rewrap)(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		      const struct ekmfs_wrapped_kek *in, struct ekmfs_wrapped_kek *out);
	void (*destroy)(struct ekmfs_provider *p);
};

struct ekmfs_provider {
	const struct ekmfs_provider_ops *ops;
	const struct ekmfs_tenant_config *cfg;
	void *priv;
};

/*
 * What the rest of ekmfs knows about a provider, declared by the provider's
 * own file (providers/NAME.c) and listed once in the table (provider.c):
 * configuration, secrets, messages and ekmfs-rotate ask the descriptor, so
 * no provider name is compared anywhere else. A new key service is its file
 * and one table line.
 */
enum {
	EKMFS_PROV_REMOTE = 1 << 0,     /* a network key service: timeouts, retries,
					   ca_file apply; ekmfs-admin test probes it */
	EKMFS_PROV_CMK_REF = 1 << 1,    /* ekmfs-rotate cmk --to REF: another key of the
					   same service, written to ref_key */
	EKMFS_PROV_CMK_FILE = 1 << 2,   /* ekmfs-rotate cmk --to FILE: a new key file */
};

struct ekmfs_provider_desc {
	const char *name;               /* provider = NAME in [tenant.X] */
	const char *what;               /* the CMK in messages: "AWS KMS key" */
	const char *const *keys;        /* the [tenant.X] keys only it reads (NULL-ended) */
	const char *ref_key;            /* the key naming the CMK: "key_id", "key_file" */
	const char *ref_format;         /* what ref_key holds, for messages */
	unsigned caps;                  /* EKMFS_PROV_* */
	/* The CMK reference in tc ("" when there is none: a passphrase), with
	 * its capacity in *cap when cap is not NULL (ekmfs-rotate cmk --to). */
	char *(*ref)(struct ekmfs_tenant_config *tc, size_t *cap);
	/* The secret files tc names, which must lie outside BACKING: fills at
	 * most n (path, what) pairs and returns how many. */
	size_t (*secrets)(const struct ekmfs_tenant_config *tc, const char **path,
			  const char **what, size_t n);
	/* NULL when a section using it has what it needs; else the message
	 * ("needs key_id and region"), with *key naming the key whose line to
	 * report (NULL: the provider line). Optional. */
	const char *(*check)(const struct ekmfs_tenant_config *tc, const char **key);
	int (*open)(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
		    bool create, struct ekmfs_provider **out);
};

/* The provider called name, or NULL. */
const struct ekmfs_provider_desc *ekmfs_provider_find(const char *name);
/* The i-th provider of the table (NULL past the end); 0 is the default. */
const struct ekmfs_provider_desc *ekmfs_provider_at(size_t i);
/* The descriptor of tc's provider (the default one if unknown). */
const struct ekmfs_provider_desc *ekmfs_provider_of(const struct ekmfs_tenant_config *tc);
/* Whether provider d reads [tenant.X] key name. */
bool ekmfs_provider_takes(const struct ekmfs_provider_desc *d, const char *key);
/* "a, b or c": the names of the providers that read key (NULL: of all). */
void ekmfs_provider_names(const char *key, char *out, size_t len);
/* The CMK reference of tc, read-only ("" when none). */
const char *ekmfs_provider_ref(const struct ekmfs_tenant_config *tc);

/*
 * Open the provider configured for a tenant. rec is the tenant's keyring
 * record: providers keep their parameters in rec->kdf (e.g. the scrypt salt).
 * With create=true (volume init) a provider may create its key material
 * (the local key file, a fresh salt written into rec->kdf).
 */
int ekmfs_provider_open(const struct ekmfs_tenant_config *tc,
			struct ekmfs_tenant_record *rec, bool create,
			struct ekmfs_provider **out);
void ekmfs_provider_close(struct ekmfs_provider *p);

/* The self-test every provider shares: wrap a random key under ctx, unwrap
 * it (it must come back equal), and check that the same blob is rejected
 * (-EKEYREJECTED) under another KEK version. who names the provider in
 * the one-line error. 0 or -errno. */
int ekmfs_provider_round_trip_test(struct ekmfs_provider *p,
				   const struct ekmfs_wrap_context *ctx, const char *who);

#endif
