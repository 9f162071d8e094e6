/*
 * aws_kms.c - the "aws-kms" CMK provider: AWS KMS over its JSON 1.1 API.
 *
 * Owns: wrapping KEKs with KMS Encrypt/Decrypt under the tenant's CMK, bound
 * to (volume id, tenant, KEK version) through the EncryptionContext, so KMS
 * itself refuses a record moved to another volume, tenant or version;
 * DescribeKey for `ekmfs-admin test`; ReEncrypt for CMK changes that keep the
 * KEK inside KMS. Requests are signed with SigV4 (sigv4.c) using the
 * credential chain (aws_creds.c) and sent with libcurl (net/http.c).
 *
 * Divisions:
 *   1. pure parts: context, bodies, answers, error classes
 *   2. one signed call with retries
 *   3. provider operations
 *   4. open
 *
 * The keyring record keeps cmk_ref = the configured key (id, ARN or alias)
 * and cmk_version = the key ARN KMS reported, which Decrypt names so a later
 * change of key_id in the configuration still opens old KEKs.
 */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cloud/aws_creds.h"
#include "../cloud/cloud.h"
#include "aws_kms.h"
#include "ekmfs/aead.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/sigv4.h"
#include "ekmfs/util.h"

#define KEK_SIZE 32
#define BODY_MAX 8192
#define B64_MAX (4 * ((EKMFS_WRAPPED_MAX + 2) / 3) + 1)

struct aws_priv {
	const struct ekmfs_tenant_config *tc;
	char region[32];                /* region, else $AWS_REGION, $AWS_DEFAULT_REGION */
	char url[EKMFS_URL_MAX];
	char host[256];
	char path[256];
	struct ekmfs_http_opts http;
	struct ekmfs_aws_cred_chain *creds;
};

/* ---- 1. pure parts ---- */

int ekmfs_aws_kms_context_json(const struct ekmfs_wrap_context *ctx, char *out, size_t outlen)
{
	char vid[2 * EKMFS_VOLUME_ID_SIZE + 1];
	size_t n;

	ekmfs_hex(ctx->volume_id, EKMFS_VOLUME_ID_SIZE, vid);
	n = (size_t)snprintf(out, outlen, "{\"ekmfs:kek-version\":\"%u\",\"ekmfs:tenant\":\"",
			     ctx->kek_version);
	if (n >= outlen || ekmfs_json_escape(ctx->tenant, out, outlen))
		return -ENOSPC;
	n = strlen(out);
	if ((size_t)snprintf(out + n, outlen - n, "\",\"ekmfs:volume\":\"%s\"}", vid) >= outlen - n)
		return -ENOSPC;
	return 0;
}

/* {"KeyId":"<key>", ...rest} into out. */
static int start_body(const char *key_field, const char *key_id, char *out, size_t outlen)
{
	if ((size_t)snprintf(out, outlen, "{\"%s\":\"", key_field) >= outlen ||
	    ekmfs_json_escape(key_id, out, outlen))
		return -ENOSPC;
	return 0;
}

static int append(char *out, size_t outlen, const char *s)
{
	size_t n = strlen(out), m = strlen(s);

	if (n + m + 1 > outlen)
		return -ENOSPC;
	memcpy(out + n, s, m + 1);
	return 0;
}

/* {"KeyId":"<key_id>","<field>":"<b64>","EncryptionContext":{...}}: the
 * body of Encrypt (Plaintext) and Decrypt (CiphertextBlob). out is wiped on
 * failure (it may hold a plaintext key). */
static int key_call_body(const char *key_id, const struct ekmfs_wrap_context *ctx,
			 const char *field, const char *b64, char *out, size_t outlen)
{
	char ec[1024];
	int ret;

	ret = ekmfs_aws_kms_context_json(ctx, ec, sizeof(ec));
	if (!ret)
		ret = start_body("KeyId", key_id, out, outlen);
	if (!ret)
		ret = append(out, outlen, "\",\"") || append(out, outlen, field) ||
		      append(out, outlen, "\":\"") || append(out, outlen, b64) ||
		      append(out, outlen, "\",\"EncryptionContext\":") ||
		      append(out, outlen, ec) || append(out, outlen, "}") ? -ENOSPC : 0;
	if (ret)
		ekmfs_wipe(out, outlen);
	return ret;
}

int ekmfs_aws_kms_encrypt_body(const char *key_id, const struct ekmfs_wrap_context *ctx,
			       const uint8_t kek[32], char *out, size_t outlen)
{
	char pt[4 * ((KEK_SIZE + 2) / 3) + 1];
	int ret;

	ekmfs_b64_encode(kek, KEK_SIZE, pt);
	ret = key_call_body(key_id, ctx, "Plaintext", pt, out, outlen);
	ekmfs_wipe(pt, sizeof(pt));
	return ret;
}

int ekmfs_aws_kms_decrypt_body(const char *key_id, const struct ekmfs_wrap_context *ctx,
			       const struct ekmfs_wrapped_kek *in, char *out, size_t outlen)
{
	char *blob = malloc(B64_MAX);
	int ret;

	if (!blob)
		return -ENOMEM;
	ekmfs_b64_encode(in->blob, in->len, blob);
	ret = key_call_body(key_id, ctx, "CiphertextBlob", blob, out, outlen);
	free(blob);
	return ret;
}

static const struct {
	const char *type;
	enum ekmfs_kms_class cls;
	int err;
	const char *meaning;
} kms_errors[] = {
	{ "AccessDeniedException", EKMFS_KMS_KEY, -EACCES, "access to the key is denied" },
	{ "DisabledException", EKMFS_KMS_KEY, -EACCES, "the key is disabled" },
	{ "KMSInvalidStateException", EKMFS_KMS_KEY, -EACCES,
	  "the key is not usable in its state (pending deletion or import?)" },
	{ "NotFoundException", EKMFS_KMS_KEY, -ENOKEY, "the key does not exist" },
	{ "InvalidKeyUsageException", EKMFS_KMS_KEY, -EACCES,
	  "the key is not a symmetric ENCRYPT_DECRYPT key" },
	{ "KeyUnavailableException", EKMFS_KMS_RETRY, -ETIMEDOUT, "the key is unavailable" },
	{ "InvalidCiphertextException", EKMFS_KMS_REJECT, -EKEYREJECTED,
	  "the record does not open under its encryption context (tampered or moved)" },
	{ "IncorrectKeyException", EKMFS_KMS_REJECT, -EKEYREJECTED,
	  "the record was wrapped by another key" },
	{ "UnrecognizedClientException", EKMFS_KMS_AUTH, -EACCES,
	  "the access key id is not valid" },
	{ "InvalidSignatureException", EKMFS_KMS_AUTH, -EACCES,
	  "the request signature does not match (wrong secret key or region?)" },
	{ "IncompleteSignature", EKMFS_KMS_AUTH, -EACCES, "the request signature is incomplete" },
	{ "MissingAuthenticationToken", EKMFS_KMS_AUTH, -EACCES, "no credentials were sent" },
	{ "ExpiredTokenException", EKMFS_KMS_AUTH, -EACCES, "the session token has expired" },
	{ "InvalidClientTokenId", EKMFS_KMS_AUTH, -EACCES, "the security token is invalid" },
	{ "ThrottlingException", EKMFS_KMS_RETRY, -ETIMEDOUT, "throttled" },
	{ "Throttling", EKMFS_KMS_RETRY, -ETIMEDOUT, "throttled" },
	{ "KMSInternalException", EKMFS_KMS_RETRY, -ETIMEDOUT, "internal error in KMS" },
	{ "DependencyTimeoutException", EKMFS_KMS_RETRY, -ETIMEDOUT, "KMS timed out" },
	{ "ServiceUnavailable", EKMFS_KMS_RETRY, -ETIMEDOUT, "service unavailable" },
	{ "InternalFailure", EKMFS_KMS_RETRY, -ETIMEDOUT, "internal failure" },
};

int ekmfs_aws_kms_error(long status, const char *body, enum ekmfs_kms_class *cls,
			char *type, size_t tlen, char *message, size_t mlen)
{
	json_object *doc = body ? json_tokener_parse(body) : NULL, *v;
	const char *t = NULL, *hash;
	int ret;

	type[0] = message[0] = '\0';
	if (doc && json_object_is_type(doc, json_type_object)) {
		if (json_object_object_get_ex(doc, "__type", &v) &&
		    json_object_is_type(v, json_type_string))
			t = json_object_get_string(v);
		if ((json_object_object_get_ex(doc, "message", &v) ||
		     json_object_object_get_ex(doc, "Message", &v)) &&
		    json_object_is_type(v, json_type_string))
			snprintf(message, mlen, "%s", json_object_get_string(v));
	}
	if (t) {
		/* "com.amazonaws.kms#DisabledException" -> "DisabledException" */
		hash = strrchr(t, '#');
		snprintf(type, tlen, "%s", hash ? hash + 1 : t);
		type[strcspn(type, ":")] = '\0';
	}
	json_object_put(doc);
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(kms_errors); i++) {
		if (strcmp(type, kms_errors[i].type) == 0) {
			*cls = kms_errors[i].cls;
			if (!message[0])
				snprintf(message, mlen, "%s", kms_errors[i].meaning);
			return kms_errors[i].err;
		}
	}
	if (status == 429 || status >= 500) {
		*cls = EKMFS_KMS_RETRY;
		ret = -ETIMEDOUT;
	} else if (status == 401 || status == 403) {
		*cls = EKMFS_KMS_AUTH;
		ret = -EACCES;
	} else {
		*cls = EKMFS_KMS_OTHER;
		ret = t ? -EINVAL : -EPROTO;
	}
	if (!type[0])
		snprintf(type, tlen, "HTTP %ld", status);
	return ret;
}

static json_object *parse_object(const char *body, const char *what)
{
	json_object *doc = json_tokener_parse(body);

	if (!doc || !json_object_is_type(doc, json_type_object)) {
		json_object_put(doc);
		ekmfs_seterr("AWS KMS %s answer is not a JSON object", what);
		return NULL;
	}
	return doc;
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int ekmfs_aws_kms_parse_encrypt(char *body, struct ekmfs_wrapped_kek *out)
{
	json_object *doc = parse_object(body, "Encrypt");
	const char *blob, *arn;
	long n;
	int ret = -EPROTO;

	if (!doc)
		return -EPROTO;
	blob = member_str(doc, "CiphertextBlob");
	arn = member_str(doc, "KeyId");
	if (!blob || !arn || !arn[0]) {
		ekmfs_seterr("AWS KMS Encrypt answer lacks CiphertextBlob or KeyId");
		goto out;
	}
	n = ekmfs_b64_decode(blob, out->blob, sizeof(out->blob));
	if (n <= 0) {
		ekmfs_seterr("AWS KMS Encrypt answer: CiphertextBlob is not base64 of 1..%d bytes",
			     EKMFS_WRAPPED_MAX);
		goto out;
	}
	if (strlen(arn) >= sizeof(out->cmk_version)) {
		ekmfs_seterr("AWS KMS Encrypt answer: KeyId longer than %d bytes",
			     EKMFS_REF_MAX - 1);
		goto out;
	}
	out->len = (size_t)n;
	snprintf(out->cmk_version, sizeof(out->cmk_version), "%s", arn);
	out->mac_len = 0;
	ret = 0;
out:
	json_object_put(doc);
	return ret;
}

int ekmfs_aws_kms_parse_decrypt(char *body, uint8_t kek[32], char *key_arn, size_t alen)
{
	char pt[128];
	json_object *doc = NULL;
	const char *arn;
	long n;
	int ret = -EPROTO;

	/* Take the plaintext out first: json-c never sees it. */
	ret = ekmfs_json_take_string(body, "Plaintext", pt, sizeof(pt));
	if (ret) {
		ekmfs_seterr("AWS KMS Decrypt answer has no Plaintext string");
		ret = -EPROTO;
		goto out;
	}
	ret = -EPROTO;
	n = ekmfs_b64_decode(pt, kek, KEK_SIZE);
	if (n != KEK_SIZE) {
		ekmfs_seterr("AWS KMS Decrypt answer: Plaintext is not base64 of %d bytes",
			     KEK_SIZE);
		goto out;
	}
	doc = parse_object(body, "Decrypt");
	if (!doc)
		goto out;
	arn = member_str(doc, "KeyId");
	if (!arn) {
		ekmfs_seterr("AWS KMS Decrypt answer lacks KeyId");
		goto out;
	}
	snprintf(key_arn, alen, "%s", arn);
	ret = 0;
out:
	ekmfs_wipe(pt, sizeof(pt));
	if (ret)
		ekmfs_wipe(kek, KEK_SIZE);
	json_object_put(doc);
	return ret;
}

int ekmfs_aws_kms_parse_describe(const char *body, char *state, size_t slen, char *arn,
				 size_t alen)
{
	json_object *doc = parse_object(body, "DescribeKey"), *md;
	const char *s, *a;
	int ret = -EPROTO;

	if (!doc)
		return -EPROTO;
	if (!json_object_object_get_ex(doc, "KeyMetadata", &md) ||
	    !json_object_is_type(md, json_type_object) || !(s = member_str(md, "KeyState")) ||
	    !(a = member_str(md, "Arn"))) {
		ekmfs_seterr("AWS KMS DescribeKey answer lacks KeyMetadata.KeyState or .Arn");
		goto out;
	}
	snprintf(state, slen, "%s", s);
	snprintf(arn, alen, "%s", a);
	ret = 0;
out:
	json_object_put(doc);
	return ret;
}

/* ---- 2. one signed call ---- */

static int sign_and_send(struct aws_priv *ap, const char *op, const char *body,
			 struct ekmfs_aws_creds *cr, struct ekmfs_http_response *resp)
{
	char target[64], date[17], hash[EKMFS_SIGV4_HEX], *auth = NULL;
	char h_host[300], h_date[40], h_target[80], *h_token = NULL, *h_auth = NULL;
	const char *hdrs[7];
	struct ekmfs_sigv4_header sh[5];
	size_t nh = 0, tlen = 0;
	int ret;

	snprintf(target, sizeof(target), "TrentService.%s", op);
	ekmfs_amz_date(time(NULL), date);
	ekmfs_sigv4_sha256_hex(body, strlen(body), hash);
	sh[nh++] = (struct ekmfs_sigv4_header){ "Content-Type", "application/x-amz-json-1.1" };
	sh[nh++] = (struct ekmfs_sigv4_header){ "Host", ap->host };
	sh[nh++] = (struct ekmfs_sigv4_header){ "X-Amz-Date", date };
	sh[nh++] = (struct ekmfs_sigv4_header){ "X-Amz-Target", target };
	if (cr->session_token[0])
		sh[nh++] = (struct ekmfs_sigv4_header){ "X-Amz-Security-Token",
							cr->session_token };
	struct ekmfs_sigv4_request r = { "POST", ap->path, NULL, sh, nh, hash, true };
	ret = ekmfs_sigv4_authorization(&r, cr->access_key, cr->secret_key, ap->region,
					"kms", date, &auth);
	if (ret)
		return ret;
	snprintf(h_host, sizeof(h_host), "Host: %s", ap->host);
	snprintf(h_date, sizeof(h_date), "X-Amz-Date: %s", date);
	snprintf(h_target, sizeof(h_target), "X-Amz-Target: %s", target);
	h_auth = malloc(strlen(auth) + 32);
	if (cr->session_token[0]) {
		tlen = strlen(cr->session_token) + 32;
		h_token = ekmfs_secure_alloc(tlen);
	}
	if (!h_auth || (cr->session_token[0] && !h_token)) {
		ret = -ENOMEM;
		goto out;
	}
	sprintf(h_auth, "Authorization: %s", auth);
	nh = 0;
	hdrs[nh++] = "Content-Type: application/x-amz-json-1.1";
	hdrs[nh++] = h_host;
	hdrs[nh++] = h_date;
	hdrs[nh++] = h_target;
	hdrs[nh++] = h_auth;
	if (h_token) {
		snprintf(h_token, tlen, "X-Amz-Security-Token: %s", cr->session_token);
		hdrs[nh++] = h_token;
	}
	hdrs[nh] = NULL;
	ret = ekmfs_http_request("POST", ap->url, hdrs, body, strlen(body), &ap->http, resp);
out:
	free(auth);
	free(h_auth);
	ekmfs_secure_free(h_token, tlen);
	return ret;
}

/* One KMS operation through the shared call loop (cloud.h). */
struct kms_attempt {
	struct aws_priv *ap;
	const char *op, *body;
	struct ekmfs_aws_creds *cr;
};

static int kms_auth(void *arg, bool fresh)
{
	struct kms_attempt *a = arg;

	(void)fresh;
	return ekmfs_aws_creds_get(a->ap->creds, a->cr);
}

static int kms_send(void *arg, struct ekmfs_http_response *resp)
{
	struct kms_attempt *a = arg;

	return sign_and_send(a->ap, a->op, a->body, a->cr, resp);
}

static int kms_error(void *arg, const struct ekmfs_http_response *resp,
		     enum ekmfs_kms_class *cls)
{
	struct kms_attempt *a = arg;
	char type[96], msg[256];
	int ret = ekmfs_aws_kms_error(resp->status, resp->body, cls, type, sizeof(type), msg,
				      sizeof(msg));

	ekmfs_seterr("AWS KMS %s with key %s: %s: %s", a->op, a->ap->tc->aws.key_id, type, msg);
	return ret;
}

/* 0 with res->resp holding a 200 answer; otherwise -errno with the message
 * set and res->cls telling what kind of refusal it was. */
static int kms_call(struct aws_priv *ap, const char *op, const char *body,
		    struct ekmfs_cloud_result *res)
{
	struct kms_attempt a = { ap, op, body, ekmfs_secure_alloc(sizeof(*a.cr)) };
	struct ekmfs_cloud_call call = { kms_auth, kms_send, kms_error, &a,
					 ap->tc->max_retries, false };
	int ret;

	if (!a.cr) {
		memset(res, 0, sizeof(*res));
		return -ENOMEM;
	}
	ret = ekmfs_cloud_call(&call, res);
	ekmfs_secure_free(a.cr, sizeof(*a.cr));
	return ret;
}

/* ---- 3. provider operations ---- */

static struct aws_priv *priv(struct ekmfs_provider *p)
{
	return p->priv;
}

static int aws_wrap(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		    const uint8_t kek[32], struct ekmfs_wrapped_kek *out)
{
	struct aws_priv *ap = priv(p);
	char *body = ekmfs_secure_alloc(BODY_MAX);
	struct ekmfs_cloud_result res;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!body)
		return -ENOMEM;
	ret = ekmfs_aws_kms_encrypt_body(ap->tc->aws.key_id, ctx, kek, body, BODY_MAX);
	if (!ret)
		ret = kms_call(ap, "Encrypt", body, &res);
	if (!ret) {
		ret = ekmfs_aws_kms_parse_encrypt(res.resp.body, out);
		ekmfs_http_response_free(&res.resp);
	}
	if (!ret)
		snprintf(out->cmk_ref, sizeof(out->cmk_ref), "%.255s", ap->tc->aws.key_id);
	ekmfs_secure_free(body, BODY_MAX);
	return ret;
}

static int aws_unwrap(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		      const struct ekmfs_wrapped_kek *in, uint8_t kek[32])
{
	struct aws_priv *ap = priv(p);
	char *body = malloc(BODY_MAX), arn[EKMFS_REF_MAX];
	const char *key = in->cmk_version[0] ? in->cmk_version : in->cmk_ref;
	struct ekmfs_cloud_result res;
	int ret;

	if (!body) {
		ret = -ENOMEM;
		goto out;
	}
	ret = ekmfs_aws_kms_decrypt_body(key, ctx, in, body, BODY_MAX);
	if (!ret)
		ret = kms_call(ap, "Decrypt", body, &res);
	if (!ret) {
		ret = ekmfs_aws_kms_parse_decrypt(res.resp.body, kek, arn, sizeof(arn));
		ekmfs_http_response_free(&res.resp);
	} else if (ret == -EKEYREJECTED) {
		ekmfs_seterr("keyring record for tenant %s KEK v%u does not authenticate: AWS "
			     "KMS refuses it under its encryption context (tampered or moved)",
			     ctx->tenant, ctx->kek_version);
	}
out:
	free(body);
	if (ret)
		ekmfs_wipe(kek, KEK_SIZE);
	return ret;
}

static int aws_rewrap(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		      const struct ekmfs_wrapped_kek *in, struct ekmfs_wrapped_kek *out)
{
	struct aws_priv *ap = priv(p);
	char *body = malloc(BODY_MAX), *blob = malloc(B64_MAX), ec[1024];
	struct ekmfs_cloud_result res;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!body || !blob) {
		ret = -ENOMEM;
		goto out;
	}
	ekmfs_b64_encode(in->blob, in->len, blob);
	ret = ekmfs_aws_kms_context_json(ctx, ec, sizeof(ec));
	if (!ret)
		ret = start_body("SourceKeyId", in->cmk_version[0] ? in->cmk_version :
				 in->cmk_ref, body, BODY_MAX);
	if (!ret)
		ret = append(body, BODY_MAX, "\",\"DestinationKeyId\":\"") ||
		      ekmfs_json_escape(ap->tc->aws.key_id, body, BODY_MAX) ||
		      append(body, BODY_MAX, "\",\"CiphertextBlob\":\"") ||
		      append(body, BODY_MAX, blob) ||
		      append(body, BODY_MAX, "\",\"SourceEncryptionContext\":") ||
		      append(body, BODY_MAX, ec) ||
		      append(body, BODY_MAX, ",\"DestinationEncryptionContext\":") ||
		      append(body, BODY_MAX, ec) || append(body, BODY_MAX, "}") ? -ENOSPC : 0;
	if (!ret)
		ret = kms_call(ap, "ReEncrypt", body, &res);
	if (!ret) {
		ret = ekmfs_aws_kms_parse_encrypt(res.resp.body, out);
		ekmfs_http_response_free(&res.resp);
	}
	if (!ret)
		snprintf(out->cmk_ref, sizeof(out->cmk_ref), "%.255s", ap->tc->aws.key_id);
out:
	free(body);
	free(blob);
	return ret;
}

static int aws_probe(struct ekmfs_provider *p, struct ekmfs_provider_probe *pr)
{
	struct aws_priv *ap = priv(p);
	char body[1024], arn[EKMFS_REF_MAX];
	struct ekmfs_cloud_result res;
	int ret;

	memset(pr, 0, sizeof(*pr));
	snprintf(pr->endpoint, sizeof(pr->endpoint), "%.200s (region %s)", ap->url,
		 ap->region);
	ret = start_body("KeyId", ap->tc->aws.key_id, body, sizeof(body));
	if (!ret)
		ret = append(body, sizeof(body), "\"}");
	if (ret)
		return ret;
	ret = kms_call(ap, "DescribeKey", body, &res);
	if (ret) {
		pr->err = ret;
		snprintf(pr->reason, sizeof(pr->reason), "%s", ekmfs_lasterr());
		if (!res.answered && res.cls != EKMFS_KMS_AUTH)
			pr->failed = EKMFS_PROBE_REACH;
		else if (res.cls == EKMFS_KMS_AUTH)
			pr->failed = EKMFS_PROBE_AUTH;
		else if (res.cls == EKMFS_KMS_RETRY)
			pr->failed = EKMFS_PROBE_REACH;
		else
			pr->failed = EKMFS_PROBE_KEY;
		return ret;
	}
	ret = ekmfs_aws_kms_parse_describe(res.resp.body, pr->key_state, sizeof(pr->key_state),
					   arn, sizeof(arn));
	ekmfs_http_response_free(&res.resp);
	if (ret) {
		pr->failed = EKMFS_PROBE_KEY;
		pr->err = ret;
		snprintf(pr->reason, sizeof(pr->reason), "%s", ekmfs_lasterr());
		return ret;
	}
	snprintf(pr->key_version, sizeof(pr->key_version), "%s", arn);
	if (strcmp(pr->key_state, "Enabled") != 0) {
		pr->failed = EKMFS_PROBE_KEY;
		pr->err = -EACCES;
		snprintf(pr->reason, sizeof(pr->reason), "key %s is %s", arn, pr->key_state);
		ekmfs_seterr("%s", pr->reason);
		return -EACCES;
	}
	return 0;
}

static int aws_self_test(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx)
{
	return ekmfs_provider_round_trip_test(p, ctx, "AWS KMS");
}

static void aws_destroy(struct ekmfs_provider *p)
{
	struct aws_priv *ap = priv(p);

	if (ap) {
		ekmfs_aws_creds_close(ap->creds);
		free(ap);
	}
	free(p);
}

static const struct ekmfs_provider_ops aws_ops = {
	.name = "aws-kms",
	.wrap = aws_wrap,
	.unwrap = aws_unwrap,
	.self_test = aws_self_test,
	.probe = aws_probe,
	.rewrap = aws_rewrap,
	.destroy = aws_destroy,
};

/* ---- 4. open ---- */

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && v[0] ? v : dflt;
}

int ekmfs_aws_kms_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
		       bool create, struct ekmfs_provider **out)
{
	struct ekmfs_provider *p = calloc(1, sizeof(*p));
	struct aws_priv *ap = calloc(1, sizeof(*ap));
	char origin[EKMFS_URL_MAX];
	const char *region, *endpoint;
	int ret;

	*out = NULL;
	if (!p || !ap) {
		ret = -ENOMEM;
		goto fail;
	}
	if (create)
		rec->kdf[0] = '\0';
	ap->tc = tc;
	region = ekmfs_aws_region(tc);
	if (!region[0] || strlen(region) >= sizeof(ap->region) ||
	    strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region)) {
		ekmfs_seterr("tenant '%s': no usable AWS region ('%s'): set region, or "
			     "AWS_REGION / AWS_DEFAULT_REGION", tc->name, region);
		ret = -EINVAL;
		goto fail;
	}
	snprintf(ap->region, sizeof(ap->region), "%s", region);
	/* The configured endpoint, else the SDKs' variables for KMS. */
	endpoint = tc->aws.endpoint;
	if (!endpoint[0])
		endpoint = env_or("AWS_ENDPOINT_URL_KMS", env_or("AWS_ENDPOINT_URL", ""));
	if (endpoint[0])
		snprintf(ap->url, sizeof(ap->url), "%s", endpoint);
	else
		snprintf(ap->url, sizeof(ap->url), "https://kms.%s.amazonaws.com/", ap->region);
	if (ekmfs_url_split(ap->url, origin, sizeof(origin), ap->host, sizeof(ap->host),
			    ap->path, sizeof(ap->path))) {
		ekmfs_seterr("tenant '%s': AWS KMS endpoint '%s' is not an http(s) URL",
			     tc->name, ap->url);
		ret = -EINVAL;
		goto fail;
	}
	ekmfs_cloud_http_opts(tc, &ap->http);
	ret = ekmfs_aws_creds_open(tc, &ap->creds);
	if (ret)
		goto fail;
	p->ops = &aws_ops;
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

static const char *const aws_keys[] = {
	"key_id", "region", "endpoint", "profile", NULL,
};

static char *aws_ref(struct ekmfs_tenant_config *tc, size_t *cap)
{
	if (cap)
		*cap = sizeof(tc->aws.key_id);
	return tc->aws.key_id;
}

static const char *aws_check(const struct ekmfs_tenant_config *tc, const char **key)
{
	*key = NULL;
	return tc->aws.key_id[0] && ekmfs_aws_region(tc)[0] ? NULL : "needs key_id and region";
}

const struct ekmfs_provider_desc ekmfs_aws_kms_desc = {
	.name = "aws-kms",
	.what = "AWS KMS key",
	.keys = aws_keys,
	.ref_key = "key_id",
	.ref_format = "a key id, key ARN, alias/NAME or alias ARN",
	.caps = EKMFS_PROV_REMOTE | EKMFS_PROV_CMK_REF,
	.ref = aws_ref,
	.check = aws_check,
	.open = ekmfs_aws_kms_open,
};
