/*
 * provider.c - the table of CMK providers (include/ekmfs/provider.h).
 *
 * Owns: mapping a tenant's configured provider name to the code that opens
 * it. A new provider adds its file under providers/ and one line here; nothing
 * else in ekmfs changes.
 */
#include <errno.h>
#include <string.h>

#include "ekmfs/provider.h"
#include "ekmfs/util.h"
#include "providers/aws_kms.h"
#include "providers/azure_kv.h"
#include "providers/local.h"

typedef int (*provider_open_fn)(const struct ekmfs_tenant_config *tc,
				struct ekmfs_tenant_record *rec, bool create,
				struct ekmfs_provider **out);

static const struct {
	const char *name;
	provider_open_fn open;
} providers[] = {
	{ "local", ekmfs_local_open },
	{ "aws-kms", ekmfs_aws_kms_open },
	{ "azure-keyvault", ekmfs_azure_kv_open },
};

int ekmfs_provider_open(const struct ekmfs_tenant_config *tc,
			struct ekmfs_tenant_record *rec, bool create,
			struct ekmfs_provider **out)
{
	*out = NULL;
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(providers); i++)
		if (strcmp(tc->provider, providers[i].name) == 0)
			return providers[i].open(tc, rec, create, out);
	ekmfs_seterr("tenant '%s': unknown provider '%s' (this release has: local, aws-kms, azure-keyvault)",
		     tc->name, tc->provider);
	return -ENOPROTOOPT;
}

void ekmfs_provider_close(struct ekmfs_provider *p)
{
	if (p)
		p->ops->destroy(p);
}
