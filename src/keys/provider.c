/*
 * provider.c - the table of CMK providers (include/ekmfs/provider.h).
 *
 * Owns: mapping a tenant's configured provider name to the code that opens
 * it. A new provider adds its file under providers/ and one line here; nothing
 * else in ekmfs changes.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ekmfs/aead.h"
#include "ekmfs/provider.h"
#include "ekmfs/secmem.h"
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

int ekmfs_provider_round_trip_test(struct ekmfs_provider *p,
				   const struct ekmfs_wrap_context *ctx, const char *who)
{
	uint8_t *kek = ekmfs_secure_alloc(32), *back = ekmfs_secure_alloc(32);
	struct ekmfs_wrap_context moved = *ctx;
	struct ekmfs_wrapped_kek w;
	int ret;

	if (!kek || !back) {
		ret = -ENOMEM;
		goto out;
	}
	ret = ekmfs_random(kek, 32);
	if (!ret)
		ret = p->ops->wrap(p, ctx, kek, &w);
	if (!ret)
		ret = p->ops->unwrap(p, ctx, &w, back);
	if (ret)
		goto out;
	if (CRYPTO_memcmp(kek, back, 32) != 0) {
		ekmfs_seterr("%s self-test: the round trip returned another key", who);
		ret = -EIO;
		goto out;
	}
	moved.kek_version = ctx->kek_version + 1;
	ret = p->ops->unwrap(p, &moved, &w, back);
	if (ret != -EKEYREJECTED) {
		ekmfs_seterr("%s self-test: a wrap opened under another context (%s)", who,
			     ret ? strerror(-ret) : "it succeeded");
		ret = -EIO;
		goto out;
	}
	ret = 0;
	ekmfs_clearerr();
out:
	ekmfs_secure_free(kek, 32);
	ekmfs_secure_free(back, 32);
	return ret;
}
