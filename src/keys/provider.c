/*
 * provider.c - the table of CMK providers (include/ekmfs/provider.h).
 *
 * Owns: the table of provider descriptors (provider.h), looking one up by
 * the name a tenant configures, and what every provider shares (the round
 * trip self-test). A new provider adds its file under providers/, declaring
 * its descriptor, and one line here; nothing else in ekmfs changes (the
 * test tests/lint/provider_names.py checks that no provider name is used
 * anywhere else).
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

/* The table: one line per provider; the first is the default. */
static const struct ekmfs_provider_desc *const providers[] = {
	&ekmfs_local_desc,
	&ekmfs_aws_kms_desc,
	&ekmfs_azure_kv_desc,
};

const struct ekmfs_provider_desc *ekmfs_provider_at(size_t i)
{
	return i < EKMFS_ARRAY_SIZE(providers) ? providers[i] : NULL;
}

const struct ekmfs_provider_desc *ekmfs_provider_find(const char *name)
{
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(providers); i++)
		if (strcmp(name, providers[i]->name) == 0)
			return providers[i];
	return NULL;
}

const struct ekmfs_provider_desc *ekmfs_provider_of(const struct ekmfs_tenant_config *tc)
{
	const struct ekmfs_provider_desc *d = ekmfs_provider_find(tc->provider);

	return d ? d : providers[0];
}

bool ekmfs_provider_takes(const struct ekmfs_provider_desc *d, const char *key)
{
	for (const char *const *k = d->keys; k && *k; k++)
		if (strcmp(*k, key) == 0)
			return true;
	return false;
}

void ekmfs_provider_names(const char *key, char *out, size_t len)
{
	const char *names[EKMFS_ARRAY_SIZE(providers)];
	size_t n = 0, used = 0;

	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(providers); i++)
		if (!key || ekmfs_provider_takes(providers[i], key))
			names[n++] = providers[i]->name;
	out[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s",
					 i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
}

const char *ekmfs_provider_ref(const struct ekmfs_tenant_config *tc)
{
	const struct ekmfs_provider_desc *d = ekmfs_provider_of(tc);

	/* ref() takes a writable config for ekmfs-rotate; it writes nothing. */
	return d->ref ? d->ref((struct ekmfs_tenant_config *)tc, NULL) : "";
}

int ekmfs_provider_open(const struct ekmfs_tenant_config *tc,
			struct ekmfs_tenant_record *rec, bool create,
			struct ekmfs_provider **out)
{
	const struct ekmfs_provider_desc *d = ekmfs_provider_find(tc->provider);
	char names[160];

	*out = NULL;
	if (d)
		return d->open(tc, rec, create, out);
	ekmfs_provider_names(NULL, names, sizeof(names));
	ekmfs_seterr("tenant '%s': unknown provider '%s' (this release has: %s)",
		     tc->name, tc->provider, names);
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
