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
 *   -ETIMEDOUT, -EHOSTUNREACH, -ECONNREFUSED   the service is unreachable
 *   -EPERM         a secrets file has loose permissions
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

struct ekmfs_provider_ops {
	const char *name;
	int (*wrap)(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		    const uint8_t kek[32], struct ekmfs_wrapped_kek *out);
	/* kek is wiped on failure. */
	int (*unwrap)(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		      const struct ekmfs_wrapped_kek *in, uint8_t kek[32]);
	/* Reachability, key state, round trip, wrong-context rejection. */
	int (*self_test)(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx);
	void (*destroy)(struct ekmfs_provider *p);
};

struct ekmfs_provider {
	const struct ekmfs_provider_ops *ops;
	const struct ekmfs_tenant_config *cfg;
	void *priv;
};

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

#endif
