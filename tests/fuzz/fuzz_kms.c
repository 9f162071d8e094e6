/*
 * fuzz_kms.c - every answer a key service gives: the cloud providers'
 * operations through the provider interface, with the fuzz input as the
 * network (transport.c).
 *
 * Input: byte 0 picks the tenant (a provider and how it authenticates,
 * table below), byte 1 the operation (wrap, unwrap, probe, re-wrap), the
 * rest the service's responses (transport.c: "STATUS\nBODY", separated by
 * "\n~~~\n"). A new provider joins with a line in the table and seeds.
 * Calls (include/ekmfs/provider.h, config.h): ekmfs_config_defaults,
 * ekmfs_provider_open, ops->wrap/unwrap/probe/rewrap,
 * ekmfs_provider_close; through them the answer parsers
 * ekmfs_aws_kms_parse_encrypt/_decrypt/_describe, ekmfs_aws_kms_error,
 * ekmfs_azure_kv_parse_wrap/_unwrap/_key, ekmfs_azure_kv_error,
 * ekmfs_azure_parse_token, ekmfs_json_take_string (src/keys/); and
 * directly ekmfs_azure_kv_binding_mac (src/keys/providers/azure_kv.h), to
 * give the record it unwraps the MAC of the KEK the seeds answer with
 * (bytes 0..31), so the success path is reached.
 *
 * Properties: every operation returns 0 or an errno of the provider error
 * contract (provider.h) or -EPROTO / -EINVAL for an answer that makes no
 * sense, with a message; a failed unwrap leaves the KEK buffer wiped; a
 * wrap that succeeds returns a blob that fits a keyring record.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/config.h"
#include "ekmfs/provider.h"
#include "ekmfs/util.h"
#include "fuzz.h"
#include "../../src/keys/providers/azure_kv.h"
#include "transport.h"

static struct ekmfs_config cfg;   /* tenants[1..] are the table's */

static void aws(struct ekmfs_tenant_config *tc)
{
	snprintf(tc->provider, sizeof(tc->provider), "aws-kms");
	snprintf(tc->aws.key_id, sizeof(tc->aws.key_id), "alias/fuzz");
	snprintf(tc->aws.region, sizeof(tc->aws.region), "eu-west-1");
	snprintf(tc->aws.endpoint, sizeof(tc->aws.endpoint), "https://kms.fuzz.invalid/");
}

static void azure(struct ekmfs_tenant_config *tc)
{
	snprintf(tc->provider, sizeof(tc->provider), "azure-keyvault");
	snprintf(tc->azure.key_id, sizeof(tc->azure.key_id),
		 "https://fuzz.vault.azure.net/keys/kek/0123456789abcdef");
	snprintf(tc->azure.tenant_id, sizeof(tc->azure.tenant_id), "fuzz-tenant");
	snprintf(tc->azure.client_id, sizeof(tc->azure.client_id), "fuzz-client");
}

static void azure_msi(struct ekmfs_tenant_config *tc)
{
	azure(tc);
	tc->azure.use_managed_identity = true;
}

static void azure_hsm(struct ekmfs_tenant_config *tc)
{
	azure(tc);
	snprintf(tc->azure.key_id, sizeof(tc->azure.key_id),
		 "https://fuzz.managedhsm.azure.net/keys/kek");
	snprintf(tc->azure.algorithm, sizeof(tc->azure.algorithm), "A256KW");
}

static const struct {
	void (*setup)(struct ekmfs_tenant_config *tc);
	const char *kdf;                /* the keyring record's provider parameters */
	const char *cmk_version;        /* what a wrap recorded */
} tenants[] = {
	{ aws, "", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" },
	{ azure, "alg=RSA-OAEP-256", "https://fuzz.vault.azure.net/keys/kek/0123456789abcdef" },
	{ azure_msi, "alg=RSA-OAEP-256", "https://fuzz.vault.azure.net/keys/kek/0123456789abcdef" },
	{ azure_hsm, "alg=A256KW", "https://fuzz.managedhsm.azure.net/keys/kek/v2" },
};
#define NTENANTS (sizeof(tenants) / sizeof(tenants[0]))

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	/* Credentials that need no request: the environment's. */
	setenv("AWS_ACCESS_KEY_ID", "AKIDFUZZFUZZFUZZFUZZ", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "fuzz/secret/key/fuzz/secret/key/fuzz1234", 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	setenv("AZURE_CLIENT_SECRET", "fuzz-client-secret", 1);
	ekmfs_config_defaults(&cfg);
	for (size_t i = 0; i < NTENANTS; i++) {
		struct ekmfs_tenant_config *tc = &cfg.tenants[1 + i];

		*tc = cfg.tenants[0];
		snprintf(tc->name, sizeof(tc->name), "t%zu", i + 1);
		tc->max_retries = 2;
		tenants[i].setup(tc);
	}
	cfg.ntenants = 1 + NTENANTS;
	return 0;
}

/* The provider contract's errors (include/ekmfs/provider.h). */
static bool contract_errno(int rc)
{
	return rc == -EKEYREJECTED || rc == -ENOKEY || rc == -EACCES || rc == -ETIMEDOUT ||
	       rc == -EHOSTUNREACH || rc == -ECONNREFUSED || rc == -ECONNRESET ||
	       rc == -EPERM || rc == -EPROTO || rc == -EINVAL || rc == -EREMOTE;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t vid[16] = "fuzz-volume-id!";
	struct ekmfs_tenant_record rec = { .id = 2, .current_version = 1 };
	struct ekmfs_wrapped_kek in = { .len = 48, .mac_len = 32 }, out;
	struct ekmfs_wrap_context ctx;
	struct ekmfs_provider_probe probe;
	struct ekmfs_provider *p;
	uint8_t kek[32];
	size_t t;
	int rc;

	if (size < 2)
		return 0;
	t = data[0] % NTENANTS;
	snprintf(rec.name, sizeof(rec.name), "%s", cfg.tenants[1 + t].name);
	snprintf(rec.provider, sizeof(rec.provider), "%s", cfg.tenants[1 + t].provider);
	snprintf(rec.kdf, sizeof(rec.kdf), "%s", tenants[t].kdf);
	ctx = (struct ekmfs_wrap_context){ vid, rec.name, 1 };
	memset(in.blob, 0x5c, in.len);
	snprintf(in.cmk_ref, sizeof(in.cmk_ref), "%s", "alias/fuzz");
	snprintf(in.cmk_version, sizeof(in.cmk_version), "%s", tenants[t].cmk_version);
	for (int i = 0; i < 32; i++)
		kek[i] = (uint8_t)i;
	FUZZ_CHECK(ekmfs_azure_kv_binding_mac(kek, &ctx, &in, in.mac) == 0);

	rc = ekmfs_provider_open(&cfg.tenants[1 + t], &rec, false, &p);
	FUZZ_CHECK(rc == 0);
	fuzz_transport_set(data + 2, size - 2);
	ekmfs_clearerr();
	switch (data[1] % 4) {
	case 0:
		memset(kek, 0x11, sizeof(kek));
		rc = p->ops->wrap(p, &ctx, kek, &out);
		if (rc == 0)
			FUZZ_CHECK(out.len > 0 && out.len <= EKMFS_WRAPPED_MAX);
		break;
	case 1:
		memset(kek, 0x77, sizeof(kek));
		rc = p->ops->unwrap(p, &ctx, &in, kek);
		if (rc)
			FUZZ_CHECK(all_zero(kek, sizeof(kek)));
		break;
	case 2:
		rc = p->ops->probe ? p->ops->probe(p, &probe) : 0;
		if (rc)
			FUZZ_CHECK(probe.failed != EKMFS_PROBE_OK && probe.err == rc);
		break;
	default:
		rc = p->ops->rewrap ? p->ops->rewrap(p, &ctx, &in, &out) : 0;
		if (rc == 0 && p->ops->rewrap)
			FUZZ_CHECK(out.len > 0 && out.len <= EKMFS_WRAPPED_MAX);
		break;
	}
	fuzz_debug("tenant %zu op %d: %d %s (%u requests)", t, data[1] % 4, rc,
		   ekmfs_lasterr(), fuzz_transport_requests());
	FUZZ_CHECK(rc == 0 || contract_errno(rc));
	FUZZ_CHECK(rc == 0 || ekmfs_lasterr()[0]);
	ekmfs_provider_close(p);
	return 0;
}
