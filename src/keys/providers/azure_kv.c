/*
 * azure_kv.c - the "azure-keyvault" CMK provider: Azure Key Vault keys REST
 * API (wrapkey / unwrapkey / GET key), or Managed HSM with A256KW.
 *
 * Owns: wrapping KEKs under the vault key with RSA-OAEP-256 (or A256KW),
 * recording the *versioned* kid that wrapped each KEK (so a new key version
 * in the vault serves new wraps while old KEKs still unwrap by their kid),
 * and binding each keyring record to its context with a MAC, because
 * RSA-OAEP takes no associated data: the MAC key is derived from the KEK, so
 * only someone who can unwrap can forge it, and a record moved to another
 * volume, tenant or version slot fails the check (-EKEYREJECTED).
 *
 * Divisions:
 *   1. pure parts: key id, errors, binding MAC, answers
 *   2. one authorised call with retries
 *   3. provider operations
 *   4. open
 *
 * The algorithm is recorded in the tenant's kdf field at init ("alg=...")
 * and read back at open, so a later configuration change cannot make old
 * records unwrap with the wrong algorithm.
 */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../cloud/azure_auth.h"
#include "../cloud/cloud.h"
#include "azure_kv.h"
#include "ekmfs/aead.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define KEK_SIZE 32
#define BODY_MAX 4096
#define B64URL_MAX (4 * ((EKMFS_WRAPPED_MAX + 2) / 3) + 1)
#define HDR_MAX (EKMFS_AZURE_TOKEN_MAX + 64)

struct azure_priv {
	const struct ekmfs_tenant_config *tc;
	char base[EKMFS_URL_MAX];       /* https://VAULT */
	char name[128];
	char version[64];
	char alg[16];
	struct ekmfs_http_opts http;
	struct ekmfs_azure_auth *auth;
};

/* ---- 1. pure parts ---- */

int ekmfs_azure_kv_parse_key_id(const char *key_id, char *base, size_t blen, char *name,
				size_t nlen, char *version, size_t vlen)
{
	char origin[EKMFS_URL_MAX], host[256], path[EKMFS_URL_MAX];
	const char *p, *slash;
	size_t n;

	if (strncmp(key_id, "https://", 8) != 0 ||
	    ekmfs_url_split(key_id, origin, sizeof(origin), host, sizeof(host), path,
			    sizeof(path)) || strncmp(path, "/keys/", 6) != 0)
		return -EINVAL;
	p = path + 6;
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n >= nlen || strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					      "0123456789-") < n)
		return -EINVAL;
	snprintf(name, nlen, "%.*s", (int)n, p);
	version[0] = '\0';
	if (slash && slash[1]) {
		const char *v = slash + 1;
		size_t m = strcspn(v, "/");
		if (m >= vlen || v[m] || strspn(v, "abcdefABCDEF0123456789") != m)
			return -EINVAL;
		snprintf(version, vlen, "%s", v);
	}
	if ((size_t)snprintf(base, blen, "%s", origin) >= blen)
		return -EINVAL;
	return 0;
}

/* "https://HOST[:PORT]" lower-cased, with the default port dropped, so
 * spellings of one origin compare equal. */
static int origin_norm(const char *origin, char *out, size_t len)
{
	size_t n = strlen(origin);

	if (n >= len)
		return -EINVAL;
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)(origin[i] >= 'A' && origin[i] <= 'Z' ? origin[i] + 32 : origin[i]);
	if (n > 4 && strcmp(out + n - 4, ":443") == 0)
		out[n - 4] = '\0';
	return 0;
}

int ekmfs_azure_kv_check_kid(const char *key_id, const char *kid, char *version, size_t vlen)
{
	char cb[EKMFS_URL_MAX], cn[128], cv[64], kb[EKMFS_URL_MAX], kn[128];
	char co[EKMFS_URL_MAX], ko[EKMFS_URL_MAX];

	version[0] = '\0';
	if (ekmfs_azure_kv_parse_key_id(key_id, cb, sizeof(cb), cn, sizeof(cn), cv, sizeof(cv)) ||
	    origin_norm(cb, co, sizeof(co))) {
		ekmfs_seterr("the configured key_id '%s' is not https://VAULT/keys/NAME", key_id);
		return -EINVAL;
	}
	if (ekmfs_azure_kv_parse_key_id(kid, kb, sizeof(kb), kn, sizeof(kn), version, vlen) ||
	    !version[0] || origin_norm(kb, ko, sizeof(ko))) {
		ekmfs_seterr("the key version '%.300s' is not https://VAULT/keys/NAME/VERSION",
			     kid);
		version[0] = '\0';
		return -EREMOTE;
	}
	/* Key Vault host and key names are case-insensitive. */
	if (strcmp(co, ko) != 0 || strcasecmp(cn, kn) != 0) {
		ekmfs_seterr("the key version '%.300s' names another key than the configured "
			     "'%.300s' (another vault, port or key name): refused without "
			     "connecting, as a tampered keyring record", kid, key_id);
		version[0] = '\0';
		return -EREMOTE;
	}
	return 0;
}

/* The token audience of a vault: the vault's DNS suffix for the public and
 * sovereign clouds ("v.vault.azure.cn" -> "https://vault.azure.cn",
 * "h.managedhsm.usgovcloudapi.net" -> "https://managedhsm.usgovcloudapi.net");
 * for a vault host of another shape (a private endpoint, an emulator), the
 * cloud of the authority host. */
int ekmfs_azure_kv_resource(const char *base, const char *authority_host, char *out,
			    size_t len)
{
	static const struct { const char *authority, *resource; } clouds[] = {
		{ "login.microsoftonline.com", "https://vault.azure.net" },
		{ "login.chinacloudapi.cn", "https://vault.azure.cn" },
		{ "login.microsoftonline.us", "https://vault.usgovcloudapi.net" },
		{ "login.microsoftonline.de", "https://vault.microsoftazure.de" },
	};
	char origin[EKMFS_URL_MAX], host[256], path[EKMFS_URL_MAX];
	const char *dot, *colon;
	size_t hlen;

	if (ekmfs_url_split(base, origin, sizeof(origin), host, sizeof(host), path,
			    sizeof(path)) == 0) {
		colon = strchr(host, ':');
		hlen = colon ? (size_t)(colon - host) : strlen(host);
		host[hlen] = '\0';
		for (size_t i = 0; i < hlen; i++)
			if (host[i] >= 'A' && host[i] <= 'Z')
				host[i] = (char)(host[i] + 32);
		dot = strchr(host, '.');
		if (dot && (strncmp(dot + 1, "vault.", 6) == 0 ||
			    strncmp(dot + 1, "managedhsm.", 11) == 0) &&
		    strchr(strchr(dot + 1, '.') + 1, '.')) {
			if ((size_t)snprintf(out, len, "https://%s", dot + 1) >= len)
				return -EINVAL;
			return 0;
		}
	}
	if (ekmfs_url_split(authority_host, origin, sizeof(origin), host, sizeof(host), path,
			    sizeof(path)) == 0) {
		for (size_t i = 0; i < EKMFS_ARRAY_SIZE(clouds); i++)
			if (strcasecmp(host, clouds[i].authority) == 0) {
				snprintf(out, len, "%s", clouds[i].resource);
				return 0;
			}
	}
	snprintf(out, len, "%s", clouds[0].resource);
	return 0;
}

int ekmfs_azure_kv_error(long status, const char *body, enum ekmfs_kms_class *cls,
			 char *code, size_t clen, char *message, size_t mlen)
{
	json_object *doc = body ? json_tokener_parse(body) : NULL, *e, *v, *inner;
	char outer[64] = "", in[64] = "";
	int ret;

	message[0] = '\0';
	if (doc && json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, "error", &e) &&
	    json_object_is_type(e, json_type_object)) {
		if (json_object_object_get_ex(e, "code", &v) && json_object_is_type(v, json_type_string))
			snprintf(outer, sizeof(outer), "%s", json_object_get_string(v));
		if (json_object_object_get_ex(e, "message", &v) &&
		    json_object_is_type(v, json_type_string))
			snprintf(message, mlen, "%s", json_object_get_string(v));
		if (json_object_object_get_ex(e, "innererror", &inner) &&
		    json_object_is_type(inner, json_type_object) &&
		    json_object_object_get_ex(inner, "code", &v) &&
		    json_object_is_type(v, json_type_string))
			snprintf(in, sizeof(in), "%s", json_object_get_string(v));
	}
	json_object_put(doc);
	if (outer[0])
		snprintf(code, clen, "%s%s%s", outer, in[0] ? "/" : "", in);
	else
		snprintf(code, clen, "HTTP %ld", status);
	if (status == 429 || status >= 500 || strcmp(outer, "Throttled") == 0) {
		*cls = EKMFS_KMS_RETRY;
		ret = -ETIMEDOUT;
	} else if (status == 401) {
		*cls = EKMFS_KMS_AUTH;
		ret = -EACCES;
	} else if (status == 403) {
		*cls = EKMFS_KMS_KEY;       /* disabled key, or access revoked */
		ret = -EACCES;
	} else if (status == 404) {
		*cls = EKMFS_KMS_KEY;
		ret = -ENOKEY;
	} else if (status == 400 && strcmp(outer, "BadParameter") == 0) {
		/* what unwrapkey answers when the blob does not decrypt */
		*cls = EKMFS_KMS_REJECT;
		ret = -EKEYREJECTED;
	} else {
		*cls = EKMFS_KMS_OTHER;
		ret = outer[0] ? -EINVAL : -EPROTO;
	}
	if (!message[0])
		snprintf(message, mlen, "%s", ret == -ETIMEDOUT ? "throttled or unavailable" :
			 "no message");
	return ret;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static int hkdf(const uint8_t kek[32], uint8_t out[32])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)kek, KEK_SIZE),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						  (void *)EKMFS_AZURE_BIND_LABEL,
						  sizeof(EKMFS_AZURE_BIND_LABEL) - 1),
		OSSL_PARAM_construct_end(),
	};
	int ret = 0;

	if (!kctx || EVP_KDF_derive(kctx, out, 32, params) != 1) {
		ekmfs_seterr("HKDF-SHA256 failed while deriving the binding key");
		ekmfs_wipe(out, 32);
		ret = -EIO;
	}
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ret;
}

int ekmfs_azure_kv_binding_mac(const uint8_t kek[32], const struct ekmfs_wrap_context *ctx,
			       const struct ekmfs_wrapped_kek *w, uint8_t mac[32])
{
	size_t label = sizeof(EKMFS_AZURE_BIND_LABEL) - 1, tlen = strlen(ctx->tenant);
	size_t vlen = strlen(w->cmk_version), n = 0;
	size_t cap = label + EKMFS_VOLUME_ID_SIZE + 16 + tlen + vlen + w->len;
	uint8_t *key = ekmfs_secure_alloc(32), *msg = malloc(cap);
	unsigned mlen = 0;
	int ret;

	if (!key || !msg) {
		ret = -ENOMEM;
		goto out;
	}
	ret = hkdf(kek, key);
	if (ret)
		goto out;
	memcpy(msg + n, EKMFS_AZURE_BIND_LABEL, label);
	n += label;
	memcpy(msg + n, ctx->volume_id, EKMFS_VOLUME_ID_SIZE);
	n += EKMFS_VOLUME_ID_SIZE;
	put_le32(msg + n, (uint32_t)tlen);
	memcpy(msg + n + 4, ctx->tenant, tlen);
	n += 4 + tlen;
	put_le32(msg + n, ctx->kek_version);
	n += 4;
	put_le32(msg + n, (uint32_t)vlen);
	memcpy(msg + n + 4, w->cmk_version, vlen);
	n += 4 + vlen;
	put_le32(msg + n, (uint32_t)w->len);
	memcpy(msg + n + 4, w->blob, w->len);
	n += 4 + w->len;
	if (!HMAC(EVP_sha256(), key, 32, msg, n, mac, &mlen) || mlen != 32) {
		ekmfs_seterr("HMAC-SHA256 failed while binding a keyring record");
		ret = -EIO;
	}
out:
	free(msg);
	ekmfs_secure_free(key, 32);
	return ret;
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int ekmfs_azure_kv_parse_wrap(char *body, struct ekmfs_wrapped_kek *out)
{
	json_object *doc = json_tokener_parse(body);
	const char *kid, *value;
	long n;
	int ret = -EPROTO;

	if (!doc || !json_object_is_type(doc, json_type_object)) {
		ekmfs_seterr("Key Vault wrapkey answer is not a JSON object");
		goto out;
	}
	kid = member_str(doc, "kid");
	value = member_str(doc, "value");
	if (!kid || !value || strlen(kid) >= sizeof(out->cmk_version) ||
	    strncmp(kid, "https://", 8) != 0) {
		ekmfs_seterr("Key Vault wrapkey answer lacks a kid or value");
		goto out;
	}
	n = ekmfs_b64url_decode(value, out->blob, sizeof(out->blob));
	if (n <= 0) {
		ekmfs_seterr("Key Vault wrapkey answer: value is not base64url of 1..%d bytes",
			     EKMFS_WRAPPED_MAX);
		goto out;
	}
	out->len = (size_t)n;
	snprintf(out->cmk_version, sizeof(out->cmk_version), "%s", kid);
	ret = 0;
out:
	json_object_put(doc);
	return ret;
}

int ekmfs_azure_kv_parse_unwrap(char *body, uint8_t kek[32])
{
	char value[128];
	int ret = -EPROTO;

	if (ekmfs_json_take_string(body, "value", value, sizeof(value)) != 0) {
		ekmfs_seterr("Key Vault unwrapkey answer has no value string");
		goto out;
	}
	if (ekmfs_b64url_decode(value, kek, KEK_SIZE) != KEK_SIZE) {
		ekmfs_seterr("Key Vault unwrapkey answer: value is not %d bytes", KEK_SIZE);
		goto out;
	}
	ret = 0;
out:
	ekmfs_wipe(value, sizeof(value));
	if (ret)
		ekmfs_wipe(kek, KEK_SIZE);
	return ret;
}

int ekmfs_azure_kv_parse_key(const char *body, char *kid, size_t klen, bool *enabled)
{
	json_object *doc = json_tokener_parse(body), *key, *attr, *en;
	const char *k;
	int ret = -EPROTO;

	if (!doc || !json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "key", &key) || !(k = member_str(key, "kid")) ||
	    !json_object_object_get_ex(doc, "attributes", &attr) ||
	    !json_object_object_get_ex(attr, "enabled", &en) ||
	    !json_object_is_type(en, json_type_boolean)) {
		ekmfs_seterr("Key Vault key answer lacks key.kid or attributes.enabled");
		goto out;
	}
	snprintf(kid, klen, "%s", k);
	*enabled = json_object_get_boolean(en);
	ret = 0;
out:
	json_object_put(doc);
	return ret;
}

/* ---- 2. one authorised call ---- */

/* method + url (already with api-version) + JSON body, through the shared
 * call loop (cloud.h): a 401 refreshes the token once; throttling, 5xx and
 * outages are retried with backoff. */
struct kv_attempt {
	struct azure_priv *ap;
	const char *method, *url, *body, *what;
	char *auth;                     /* the header, secure memory, HDR_MAX */
};

static int kv_auth(void *arg, bool fresh)
{
	struct kv_attempt *a = arg;

	return ekmfs_azure_auth_header(a->ap->auth, fresh, a->auth, HDR_MAX);
}

static int kv_send(void *arg, struct ekmfs_http_response *resp)
{
	struct kv_attempt *a = arg;
	const char *hdrs[] = { a->auth, "Content-Type: application/json",
			       "Accept: application/json", NULL };

	return ekmfs_http_request(a->method, a->url, hdrs, a->body,
				  a->body ? strlen(a->body) : 0, &a->ap->http, resp);
}

static int kv_error(void *arg, const struct ekmfs_http_response *resp,
		    enum ekmfs_kms_class *cls)
{
	struct kv_attempt *a = arg;
	char code[128], msg[300];
	int ret = ekmfs_azure_kv_error(resp->status, resp->body, cls, code, sizeof(code), msg,
				       sizeof(msg));

	ekmfs_seterr("Azure Key Vault %s of %s: %s: %s", a->what, a->ap->tc->azure.key_id, code,
		     msg);
	return ret;
}

static int kv_call(struct azure_priv *ap, const char *method, const char *url,
		   const char *body, const char *what, struct ekmfs_cloud_result *res)
{
	struct kv_attempt a = { ap, method, url, body, what, ekmfs_secure_alloc(HDR_MAX) };
	struct ekmfs_cloud_call call = { kv_auth, kv_send, kv_error, &a, ap->tc->max_retries,
					 true };
	int ret;

	if (!a.auth) {
		memset(res, 0, sizeof(*res));
		return -ENOMEM;
	}
	ret = ekmfs_cloud_call(&call, res);
	ekmfs_secure_free(a.auth, HDR_MAX);
	return ret;
}

/* ---- 3. provider operations ---- */

static struct azure_priv *priv(struct ekmfs_provider *p)
{
	return p->priv;
}

/* The URL of an operation on the configured key: always the configured
 * vault and key name; version NULL for the configured one (or none). A
 * keyring record only ever contributes a version checked by
 * ekmfs_azure_kv_check_kid, so no record can send the token elsewhere. */
static void op_url(struct azure_priv *ap, const char *version, const char *op, char *url,
		   size_t len)
{
	if (!version)
		version = ap->version;
	snprintf(url, len, "%s/keys/%s%s%s%s%s?api-version=%s", ap->base, ap->name,
		 version[0] ? "/" : "", version, op ? "/" : "", op ? op : "",
		 ap->tc->azure.api_version);
}

static int az_wrap(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		   const uint8_t kek[32], struct ekmfs_wrapped_kek *out)
{
	struct azure_priv *ap = priv(p);
	char *body = ekmfs_secure_alloc(BODY_MAX), url[2048];
	char value[4 * ((KEK_SIZE + 2) / 3) + 1], kver[64];
	struct ekmfs_cloud_result res;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!body)
		return -ENOMEM;
	ekmfs_b64url_encode(kek, KEK_SIZE, value);
	snprintf(body, BODY_MAX, "{\"alg\":\"%s\",\"value\":\"%s\"}", ap->alg, value);
	ekmfs_wipe(value, sizeof(value));
	op_url(ap, NULL, "wrapkey", url, sizeof(url));
	ret = kv_call(ap, "POST", url, body, "wrapkey", &res);
	if (!ret) {
		ret = ekmfs_azure_kv_parse_wrap(res.resp.body, out);
		ekmfs_http_response_free(&res.resp);
	}
	if (!ret && ekmfs_azure_kv_check_kid(ap->tc->azure.key_id, out->cmk_version, kver,
					     sizeof(kver))) {
		ekmfs_seterr("Azure Key Vault wrapkey of %s answered with key version '%.300s', "
			     "not a version of the configured key", ap->tc->azure.key_id,
			     out->cmk_version);
		ret = -EPROTO;
	}
	if (!ret) {
		snprintf(out->cmk_ref, sizeof(out->cmk_ref), "%.255s", ap->tc->azure.key_id);
		ret = ekmfs_azure_kv_binding_mac(kek, ctx, out, out->mac);
		out->mac_len = ret ? 0 : EKMFS_WRAP_MAC_SIZE;
	}
	ekmfs_secure_free(body, BODY_MAX);
	return ret;
}

static int az_unwrap(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		     const struct ekmfs_wrapped_kek *in, uint8_t kek[32])
{
	struct azure_priv *ap = priv(p);
	char *body = malloc(BODY_MAX), *value = malloc(B64URL_MAX), url[2048], kver[64];
	uint8_t mac[32];
	struct ekmfs_cloud_result res;
	int ret;

	if (!body || !value) {
		ret = -ENOMEM;
		goto out;
	}
	if (in->mac_len != EKMFS_WRAP_MAC_SIZE) {
		ekmfs_seterr("keyring record for tenant %s KEK v%u has no binding MAC "
			     "(tampered, or not made by azure-keyvault)",
			     ctx->tenant, ctx->kek_version);
		ret = -EKEYREJECTED;
		goto out;
	}
	/* The record is not trusted (anyone who can write the backing store
	 * can edit it): it may name a key version, never where the token goes. */
	ret = ekmfs_azure_kv_check_kid(ap->tc->azure.key_id, in->cmk_version, kver,
				       sizeof(kver));
	if (ret) {
		char why[700];

		snprintf(why, sizeof(why), "keyring record for tenant %s KEK v%u: %s",
			 ctx->tenant, ctx->kek_version, ekmfs_lasterr());
		ekmfs_seterr("%s", why);
		goto out;
	}
	ekmfs_b64url_encode(in->blob, in->len, value);
	snprintf(body, BODY_MAX, "{\"alg\":\"%s\",\"value\":\"%s\"}", ap->alg, value);
	/* Unwrap with the version that wrapped, whatever is current now. */
	op_url(ap, kver, "unwrapkey", url, sizeof(url));
	ret = kv_call(ap, "POST", url, body, "unwrapkey", &res);
	if (!ret) {
		ret = ekmfs_azure_kv_parse_unwrap(res.resp.body, kek);
		ekmfs_http_response_free(&res.resp);
	}
	if (!ret)
		ret = ekmfs_azure_kv_binding_mac(kek, ctx, in, mac);
	if (!ret && CRYPTO_memcmp(mac, in->mac, sizeof(mac)) != 0) {
		ekmfs_seterr("keyring record for tenant %s KEK v%u does not authenticate: its "
			     "binding MAC is wrong (tampered or moved)", ctx->tenant,
			     ctx->kek_version);
		ret = -EKEYREJECTED;
	} else if (ret == -EKEYREJECTED) {
		ekmfs_seterr("keyring record for tenant %s KEK v%u does not unwrap under %s "
			     "(tampered, or another key)", ctx->tenant, ctx->kek_version,
			     in->cmk_version);
	}
out:
	free(body);
	free(value);
	if (ret)
		ekmfs_wipe(kek, KEK_SIZE);
	return ret;
}

static int az_probe(struct ekmfs_provider *p, struct ekmfs_provider_probe *pr)
{
	struct azure_priv *ap = priv(p);
	char url[2048];
	struct ekmfs_cloud_result res;
	bool enabled = false;
	int ret;

	memset(pr, 0, sizeof(*pr));
	snprintf(pr->endpoint, sizeof(pr->endpoint), "%.200s", ap->base);
	snprintf(pr->identity, sizeof(pr->identity), "%s",
		 ap->tc->azure.use_managed_identity ? "managed identity" : "client credentials");
	op_url(ap, NULL, NULL, url, sizeof(url));
	ret = kv_call(ap, "GET", url, NULL, "get key", &res);
	if (ret) {
		pr->err = ret;
		snprintf(pr->reason, sizeof(pr->reason), "%s", ekmfs_lasterr());
		if (res.auth_failed)
			pr->failed = ekmfs_http_is_outage(ret) ? EKMFS_PROBE_REACH : EKMFS_PROBE_AUTH;
		else if (!res.answered || res.cls == EKMFS_KMS_RETRY)
			pr->failed = EKMFS_PROBE_REACH;
		else if (res.cls == EKMFS_KMS_AUTH)
			pr->failed = EKMFS_PROBE_AUTH;
		else
			pr->failed = EKMFS_PROBE_KEY;
		return ret;
	}
	ret = ekmfs_azure_kv_parse_key(res.resp.body, pr->key_version, sizeof(pr->key_version),
				       &enabled);
	ekmfs_http_response_free(&res.resp);
	if (!ret && !enabled) {
		ekmfs_seterr("key %s is disabled", pr->key_version);
		ret = -EACCES;
	}
	snprintf(pr->key_state, sizeof(pr->key_state), "%s", enabled ? "Enabled" : "Disabled");
	if (ret) {
		pr->failed = EKMFS_PROBE_KEY;
		pr->err = ret;
		snprintf(pr->reason, sizeof(pr->reason), "%s", ekmfs_lasterr());
	}
	return ret;
}

static int az_self_test(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx)
{
	return ekmfs_provider_round_trip_test(p, ctx, "Key Vault");
}

static void az_destroy(struct ekmfs_provider *p)
{
	struct azure_priv *ap = priv(p);

	if (ap) {
		ekmfs_azure_auth_close(ap->auth);
		free(ap);
	}
	free(p);
}

static const struct ekmfs_provider_ops azure_ops = {
	.name = "azure-keyvault",
	.wrap = az_wrap,
	.unwrap = az_unwrap,
	.self_test = az_self_test,
	.probe = az_probe,
	.destroy = az_destroy,
};

/* ---- 4. open ---- */

int ekmfs_azure_kv_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
			bool create, struct ekmfs_provider **out)
{
	struct ekmfs_provider *p = calloc(1, sizeof(*p));
	struct azure_priv *ap = calloc(1, sizeof(*ap));
	char resource[128];
	int ret;

	*out = NULL;
	if (!p || !ap) {
		ret = -ENOMEM;
		goto fail;
	}
	ap->tc = tc;
	if (ekmfs_azure_kv_parse_key_id(tc->azure.key_id, ap->base, sizeof(ap->base), ap->name,
					sizeof(ap->name), ap->version, sizeof(ap->version))) {
		ekmfs_seterr("tenant '%s': key_id '%s' is not https://VAULT/keys/NAME[/VERSION]",
			     tc->name, tc->azure.key_id);
		ret = -EINVAL;
		goto fail;
	}
	if (create) {
		snprintf(rec->kdf, sizeof(rec->kdf), "alg=%s", tc->azure.algorithm);
	} else if (strncmp(rec->kdf, "alg=", 4) != 0 ||
		   (strcmp(rec->kdf + 4, "RSA-OAEP-256") != 0 &&
		    strcmp(rec->kdf + 4, "A256KW") != 0)) {
		/* ekmfs-admin test on a directory that is not a volume yet */
		if (rec->kdf[0]) {
			ekmfs_seterr("keyring: tenant '%s' has kdf '%s', expected alg=RSA-OAEP-256 "
				     "or alg=A256KW", rec->name, rec->kdf);
			ret = -EBADMSG;
			goto fail;
		}
	}
	snprintf(ap->alg, sizeof(ap->alg), "%s",
		 strncmp(rec->kdf, "alg=", 4) == 0 ? rec->kdf + 4 : tc->azure.algorithm);
	ekmfs_azure_kv_resource(ap->base, tc->azure.authority_host, resource, sizeof(resource));
	ekmfs_cloud_http_opts(tc, &ap->http);
	ret = ekmfs_azure_auth_open(tc, resource, &ap->auth);
	if (ret)
		goto fail;
	p->ops = &azure_ops;
	p->cfg = tc;
	p->priv = ap;
	*out = p;
	return 0;
fail:
	free(ap);
	free(p);
	return ret;
}

/* ---- the descriptor (provider.h) ---- */

static const char *const azure_keys[] = {
	"key_id", "tenant_id", "client_id", "client_secret_file", "authority_host",
	"use_managed_identity", "imds_endpoint", "api_version", "algorithm", NULL,
};

static char *az_ref(struct ekmfs_tenant_config *tc, size_t *cap)
{
	if (cap)
		*cap = sizeof(tc->azure.key_id);
	return tc->azure.key_id;
}

static size_t az_secrets(const struct ekmfs_tenant_config *tc, const char **path,
			 const char **what, size_t n)
{
	if (n == 0 || !tc->azure.client_secret_file[0])
		return 0;
	*path = tc->azure.client_secret_file;
	*what = "client secret file";
	return 1;
}

static const char *az_check(const struct ekmfs_tenant_config *tc, const char **key)
{
	*key = NULL;
	if (strncmp(tc->azure.key_id, "https://", 8) != 0 || !strstr(tc->azure.key_id + 8, "/keys/")) {
		*key = "key_id";
		return "needs key_id = https://VAULT/keys/NAME[/VERSION]";
	}
	if (!tc->azure.use_managed_identity &&
	    (!ekmfs_azure_id(tc->azure.tenant_id, "AZURE_TENANT_ID")[0] ||
	     !ekmfs_azure_id(tc->azure.client_id, "AZURE_CLIENT_ID")[0]))
		return "needs tenant_id and client_id (with client_secret_file), or "
		       "use_managed_identity = true";
	return NULL;
}

const struct ekmfs_provider_desc ekmfs_azure_kv_desc = {
	.name = "azure-keyvault",
	.what = "Azure Key Vault key",
	.keys = azure_keys,
	.ref_key = "key_id",
	.ref_format = "https://VAULT/keys/NAME[/VERSION]",
	.caps = EKMFS_PROV_REMOTE | EKMFS_PROV_CMK_REF,
	.ref = az_ref,
	.secrets = az_secrets,
	.check = az_check,
	.open = ekmfs_azure_kv_open,
};
