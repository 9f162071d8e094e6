/*
 * test_kms_parse.c - the cloud providers' pure parts, without a network:
 * request bodies (AWS EncryptionContext), answer parsing, error
 * classification, malformed JSON, and the helpers that take secrets out of
 * answers before json-c sees them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/keys/cloud/cloud.h"
#include "../../src/keys/providers/aws_kms.h"
#include "../../src/keys/providers/azure_kv.h"
#include "check.h"
#include "ekmfs/http.h"
#include "ekmfs/util.h"

static const uint8_t vid[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
				 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };

static void test_aws_context_and_bodies(void)
{
	struct ekmfs_wrap_context ctx = { vid, "default", 7 };
	struct ekmfs_wrapped_kek w = { .len = 3, .blob = { 1, 2, 3 } };
	uint8_t kek[32];
	char out[2048];

	CHECK_EQ_INT(ekmfs_aws_kms_context_json(&ctx, out, sizeof(out)), 0);
	CHECK(strcmp(out, "{\"ekmfs:kek-version\":\"7\",\"ekmfs:tenant\":\"default\","
		     "\"ekmfs:volume\":\"00112233445566778899aabbccddeeff\"}") == 0);
	CHECK_EQ_INT(ekmfs_aws_kms_context_json(&ctx, out, 40), -ENOSPC);

	memset(kek, 0xab, sizeof(kek));
	CHECK_EQ_INT(ekmfs_aws_kms_encrypt_body("alias/x\"y", &ctx, kek, out, sizeof(out)), 0);
	CHECK(strncmp(out, "{\"KeyId\":\"alias/x\\\"y\",\"Plaintext\":\"q6ur", 38) == 0);
	CHECK(strstr(out, "\"EncryptionContext\":{\"ekmfs:kek-version\":\"7\"") != NULL);
	CHECK_EQ_INT(ekmfs_aws_kms_encrypt_body("k", &ctx, kek, out, 60), -ENOSPC);
	CHECK_EQ_INT(ekmfs_aws_kms_decrypt_body("arn:k", &ctx, &w, out, sizeof(out)), 0);
	CHECK(strncmp(out, "{\"KeyId\":\"arn:k\",\"CiphertextBlob\":\"AQID\",", 41) == 0);
}

static void test_aws_answers(void)
{
	struct ekmfs_wrapped_kek w;
	uint8_t kek[32], want[32];
	char arn[256], state[64];
	char body[512];

	snprintf(body, sizeof(body), "{\"CiphertextBlob\":\"AQIDBA==\",\"KeyId\":\"arn:aws:kms:"
		 "us-east-1:1:key/k\",\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_encrypt(body, &w), 0);
	CHECK_EQ_INT(w.len, 4);
	CHECK(strcmp(w.cmk_version, "arn:aws:kms:us-east-1:1:key/k") == 0);
	snprintf(body, sizeof(body), "{\"CiphertextBlob\":\"not base64!\",\"KeyId\":\"a\"}");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_encrypt(body, &w), -EPROTO);
	snprintf(body, sizeof(body), "{\"KeyId\":\"a\"}");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_encrypt(body, &w), -EPROTO);

	/* Decrypt: the plaintext is taken out of the text before json-c reads it. */
	memset(want, 0x5a, sizeof(want));
	snprintf(body, sizeof(body), "{\"KeyId\":\"arn:k\",\"Plaintext\":"
		 "\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=\"}");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_decrypt(body, kek, arn, sizeof(arn)), 0);
	CHECK_MEM(kek, want, 32);
	CHECK(strcmp(arn, "arn:k") == 0);
	CHECK(strstr(body, "WlpaWl") == NULL);
	CHECK(strstr(body, "\"Plaintext\":\"xxxxxxxx") != NULL);
	/* Wrong length, missing, not JSON, truncated: refused, key wiped. */
	snprintf(body, sizeof(body), "{\"KeyId\":\"arn:k\",\"Plaintext\":\"AAAA\"}");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_decrypt(body, kek, arn, sizeof(arn)), -EPROTO);
	CHECK(kek[0] == 0 && kek[31] == 0);
	snprintf(body, sizeof(body), "{\"KeyId\":\"arn:k\"}");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_decrypt(body, kek, arn, sizeof(arn)), -EPROTO);
	snprintf(body, sizeof(body), "<html>502 Bad Gateway</html>");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_decrypt(body, kek, arn, sizeof(arn)), -EPROTO);
	snprintf(body, sizeof(body), "{\"Plaintext\":\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_decrypt(body, kek, arn, sizeof(arn)), -EPROTO);

	snprintf(body, sizeof(body), "{\"KeyMetadata\":{\"KeyState\":\"PendingDeletion\","
		 "\"Arn\":\"arn:x\",\"Enabled\":false}}");
	CHECK_EQ_INT(ekmfs_aws_kms_parse_describe(body, state, sizeof(state), arn,
						  sizeof(arn)), 0);
	CHECK(strcmp(state, "PendingDeletion") == 0 && strcmp(arn, "arn:x") == 0);
	CHECK_EQ_INT(ekmfs_aws_kms_parse_describe("{\"KeyMetadata\":[]}", state, sizeof(state),
						  arn, sizeof(arn)), -EPROTO);
	CHECK_EQ_INT(ekmfs_aws_kms_parse_describe("", state, sizeof(state), arn, sizeof(arn)),
		     -EPROTO);
}

static void test_aws_errors(void)
{
	static const struct {
		long status;
		const char *body;
		int err;
		enum ekmfs_kms_class cls;
		const char *type;
	} cases[] = {
		{ 400, "{\"__type\":\"DisabledException\",\"message\":\"k is disabled.\"}",
		  -EACCES, EKMFS_KMS_KEY, "DisabledException" },
		{ 400, "{\"__type\":\"com.amazonaws.kms#NotFoundException\",\"Message\":\"no\"}",
		  -ENOKEY, EKMFS_KMS_KEY, "NotFoundException" },
		{ 400, "{\"__type\":\"AccessDeniedException\"}", -EACCES, EKMFS_KMS_KEY,
		  "AccessDeniedException" },
		{ 400, "{\"__type\":\"KMSInvalidStateException\"}", -EACCES, EKMFS_KMS_KEY,
		  "KMSInvalidStateException" },
		{ 400, "{\"__type\":\"InvalidCiphertextException\"}", -EKEYREJECTED,
		  EKMFS_KMS_REJECT, "InvalidCiphertextException" },
		{ 400, "{\"__type\":\"InvalidSignatureException\"}", -EACCES, EKMFS_KMS_AUTH,
		  "InvalidSignatureException" },
		{ 400, "{\"__type\":\"UnrecognizedClientException\"}", -EACCES, EKMFS_KMS_AUTH,
		  "UnrecognizedClientException" },
		{ 400, "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}",
		  -ETIMEDOUT, EKMFS_KMS_RETRY, "ThrottlingException" },
		{ 500, "{\"__type\":\"KMSInternalException\"}", -ETIMEDOUT, EKMFS_KMS_RETRY,
		  "KMSInternalException" },
		{ 503, "<html>Service Unavailable</html>", -ETIMEDOUT, EKMFS_KMS_RETRY, "HTTP 503" },
		{ 429, "", -ETIMEDOUT, EKMFS_KMS_RETRY, "HTTP 429" },
		{ 403, "{}", -EACCES, EKMFS_KMS_AUTH, "HTTP 403" },
		{ 400, "{\"__type\":\"ValidationException\"}", -EINVAL, EKMFS_KMS_OTHER,
		  "ValidationException" },
		{ 400, "not json", -EPROTO, EKMFS_KMS_OTHER, "HTTP 400" },
		{ 400, "{\"__type\":42}", -EPROTO, EKMFS_KMS_OTHER, "HTTP 400" },
	};
	char type[96], msg[256];

	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(cases); i++) {
		enum ekmfs_kms_class cls = EKMFS_KMS_OTHER;
		int err = ekmfs_aws_kms_error(cases[i].status, cases[i].body, &cls, type,
					      sizeof(type), msg, sizeof(msg));
		if (err != cases[i].err || cls != cases[i].cls || strcmp(type, cases[i].type)) {
			fprintf(stderr, "case %zu: err %d cls %d type '%s'\n", i, err, cls, type);
			check_failures++;
		}
	}
	ekmfs_aws_kms_error(400, "{\"__type\":\"DisabledException\"}", &(enum ekmfs_kms_class){ 0 },
			    type, sizeof(type), msg, sizeof(msg));
	CHECK(strcmp(msg, "the key is disabled") == 0); /* a default when AWS sends none */
}

static void test_json_take_string(void)
{
	char text[256], out[64];

	snprintf(text, sizeof(text), "{\"a\":{\"Plaintext\":\"inner\"},\"Plaintext\":\"ab\\/c\\u0041\"}");
	CHECK_EQ_INT(ekmfs_json_take_string(text, "Plaintext", out, sizeof(out)), 0);
	CHECK(strcmp(out, "ab/cA") == 0);               /* top level only, unescaped */
	CHECK(strstr(text, "inner") != NULL);
	CHECK(strstr(text, "\"Plaintext\":\"xxxxxxxxxxx\"") != NULL);
	snprintf(text, sizeof(text), "{\"k\":[\"Plaintext\",\"v\"],\"x\":1}");
	CHECK_EQ_INT(ekmfs_json_take_string(text, "Plaintext", out, sizeof(out)), -ENOENT);
	snprintf(text, sizeof(text), "{\"Plaintext\":42}");
	CHECK_EQ_INT(ekmfs_json_take_string(text, "Plaintext", out, sizeof(out)), -ENOENT);
	snprintf(text, sizeof(text), "[\"Plaintext\",\"v\"]");
	CHECK_EQ_INT(ekmfs_json_take_string(text, "Plaintext", out, sizeof(out)), -EBADMSG);
	snprintf(text, sizeof(text), "{\"Plaintext\":\"unterminated");
	CHECK_EQ_INT(ekmfs_json_take_string(text, "Plaintext", out, sizeof(out)), -EBADMSG);
	snprintf(text, sizeof(text), "{\"Plaintext\":\"0123456789\"}");
	CHECK_EQ_INT(ekmfs_json_take_string(text, "Plaintext", out, 5), -ENOSPC);
	snprintf(text, sizeof(text), "{\"Plaintext\":\"\\u00e9\"}");
	CHECK_EQ_INT(ekmfs_json_take_string(text, "Plaintext", out, sizeof(out)), -EBADMSG);
}

static void test_b64url_and_urls(void)
{
	uint8_t in[5] = { 0xfb, 0xff, 0xbf, 0x01, 0x02 }, back[8];
	char out[16], origin[128], host[128], path[128];

	ekmfs_b64url_encode(in, 5, out);
	CHECK(strcmp(out, "-_-_AQI") == 0);
	CHECK_EQ_INT(ekmfs_b64url_decode(out, back, sizeof(back)), 5);
	CHECK_MEM(back, in, 5);
	CHECK_EQ_INT(ekmfs_b64url_decode("-_-_AQJ", back, sizeof(back)), -EINVAL); /* bits */
	CHECK_EQ_INT(ekmfs_b64url_decode("a", back, sizeof(back)), -EINVAL);
	CHECK_EQ_INT(ekmfs_b64url_decode("-_-_AQI", back, 4), -EINVAL);

	CHECK_EQ_INT(ekmfs_url_split("https://127.0.0.1:8443/keys/k/v?x=1", origin,
				     sizeof(origin), host, sizeof(host), path, sizeof(path)), 0);
	CHECK(strcmp(origin, "https://127.0.0.1:8443") == 0);
	CHECK(strcmp(host, "127.0.0.1:8443") == 0);
	CHECK(strcmp(path, "/keys/k/v") == 0);
	CHECK_EQ_INT(ekmfs_url_split("https://kms.eu-west-1.amazonaws.com", origin,
				     sizeof(origin), host, sizeof(host), path, sizeof(path)), 0);
	CHECK(strcmp(path, "/") == 0 && strcmp(host, "kms.eu-west-1.amazonaws.com") == 0);
	CHECK_EQ_INT(ekmfs_url_split("ftp://x/", origin, sizeof(origin), host, sizeof(host),
				     path, sizeof(path)), -EINVAL);
	CHECK_EQ_INT(ekmfs_url_split("https://user@x/", origin, sizeof(origin), host,
				     sizeof(host), path, sizeof(path)), -EINVAL);
	CHECK_EQ_INT(ekmfs_url_encode("a b/c~", out, sizeof(out)), 0);
	CHECK(strcmp(out, "a%20b%2Fc~") == 0);
}

static void test_backoff(void)
{
	unsigned max1 = 0, max5 = 0;

	for (int i = 0; i < 2000; i++) {
		unsigned a = ekmfs_http_backoff_ms(1, 100, 5000);
		unsigned b = ekmfs_http_backoff_ms(5, 100, 5000);
		unsigned c = ekmfs_http_backoff_ms(30, 100, 5000);
		CHECK(a <= 100 && b <= 1600 && c <= 5000);
		max1 = a > max1 ? a : max1;
		max5 = b > max5 ? b : max5;
	}
	/* jittered over the whole range, growing with the attempt */
	CHECK(max1 > 50 && max5 > 800);
	CHECK(ekmfs_http_is_outage(-ECONNRESET) && !ekmfs_http_is_outage(-EACCES));
}

static void test_azure_key_id(void)
{
	char base[512], name[128], ver[64];

	CHECK_EQ_INT(ekmfs_azure_kv_parse_key_id("https://v.vault.azure.net/keys/cmk-1", base,
						 sizeof(base), name, sizeof(name), ver,
						 sizeof(ver)), 0);
	CHECK(strcmp(base, "https://v.vault.azure.net") == 0 && strcmp(name, "cmk-1") == 0 &&
	      ver[0] == '\0');
	CHECK_EQ_INT(ekmfs_azure_kv_parse_key_id("https://127.0.0.1:8443/keys/k/0123abcd", base,
						 sizeof(base), name, sizeof(name), ver,
						 sizeof(ver)), 0);
	CHECK(strcmp(base, "https://127.0.0.1:8443") == 0 && strcmp(ver, "0123abcd") == 0);
	CHECK_EQ_INT(ekmfs_azure_kv_parse_key_id("http://v/keys/k", base, sizeof(base), name,
						 sizeof(name), ver, sizeof(ver)), -EINVAL);
	CHECK_EQ_INT(ekmfs_azure_kv_parse_key_id("https://v/secrets/k", base, sizeof(base), name,
						 sizeof(name), ver, sizeof(ver)), -EINVAL);
	CHECK_EQ_INT(ekmfs_azure_kv_parse_key_id("https://v/keys/k/v1/x", base, sizeof(base),
						 name, sizeof(name), ver, sizeof(ver)), -EINVAL);
	CHECK_EQ_INT(ekmfs_azure_kv_parse_key_id("https://v/keys/", base, sizeof(base), name,
						 sizeof(name), ver, sizeof(ver)), -EINVAL);
}

/* A keyring record may name a key version, never another vault, port or key
 * (issue 13: the bearer token followed the record's URL). */
static void test_azure_kid_check_and_resource(void)
{
	const char *cfg = "https://v.vault.azure.net/keys/cmk-1";
	static const struct { const char *kid; int ret; const char *ver; } cases[] = {
		{ "https://v.vault.azure.net/keys/cmk-1/0a1b", 0, "0a1b" },
		{ "https://V.Vault.Azure.NET:443/keys/CMK-1/0a1b", 0, "0a1b" },
		{ "https://v.vault.azure.net/keys/cmk-1", -EREMOTE, "" },        /* no version */
		{ "https://x.vault.azure.net/keys/cmk-1/0a1b", -EREMOTE, "" },   /* other vault */
		{ "https://v.vault.azure.net:8443/keys/cmk-1/0a1b", -EREMOTE, "" },
		{ "http://v.vault.azure.net/keys/cmk-1/0a1b", -EREMOTE, "" },    /* scheme */
		{ "https://v.vault.azure.net/keys/cmk-2/0a1b", -EREMOTE, "" },   /* other key */
		{ "https://v.vault.azure.net.evil.example/keys/cmk-1/0a1b", -EREMOTE, "" },
		{ "https://evil@v.vault.azure.net/keys/cmk-1/0a1b", -EREMOTE, "" },
		{ "https://v.vault.azure.net/keys/cmk-1/0a1b/unwrapkey", -EREMOTE, "" },
		{ "", -EREMOTE, "" },
	};
	char ver[64], res[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = ekmfs_azure_kv_check_kid(cfg, cases[i].kid, ver, sizeof(ver));

		if (r != cases[i].ret || strcmp(ver, cases[i].ver) != 0) {
			fprintf(stderr, "kid case %zu (%s): %d '%s'\n", i, cases[i].kid, r, ver);
			check_failures++;
		}
	}
	CHECK_EQ_INT(ekmfs_azure_kv_check_kid("https://127.0.0.1:8443/keys/k",
					      "https://127.0.0.1:8443/keys/k/ab", ver,
					      sizeof(ver)), 0);
	CHECK_EQ_INT(ekmfs_azure_kv_check_kid("https://127.0.0.1:8443/keys/k",
					      "https://127.0.0.1:8444/keys/k/ab", ver,
					      sizeof(ver)), -EREMOTE);
	CHECK_EQ_INT(ekmfs_azure_kv_check_kid("nonsense", "https://v/keys/k/ab", ver,
					      sizeof(ver)), -EINVAL);

	static const struct { const char *base, *authority, *want; } res_cases[] = {
		{ "https://v.vault.azure.net", "https://login.microsoftonline.com/",
		  "https://vault.azure.net" },
		{ "https://v.vault.azure.cn", "https://login.chinacloudapi.cn/",
		  "https://vault.azure.cn" },
		{ "https://v.vault.usgovcloudapi.net", "https://login.microsoftonline.us/",
		  "https://vault.usgovcloudapi.net" },
		{ "https://h.managedhsm.azure.net", "https://login.microsoftonline.com/",
		  "https://managedhsm.azure.net" },
		{ "https://H.ManagedHSM.usgovcloudapi.net:443", "", "https://managedhsm.usgovcloudapi.net" },
		/* a private endpoint or an emulator: the authority host's cloud */
		{ "https://127.0.0.1:8443", "https://login.chinacloudapi.cn", "https://vault.azure.cn" },
		{ "https://kv.internal", "https://login.microsoftonline.us/",
		  "https://vault.usgovcloudapi.net" },
		{ "https://127.0.0.1:8443", "https://127.0.0.1:8443", "https://vault.azure.net" },
	};
	for (size_t i = 0; i < sizeof(res_cases) / sizeof(res_cases[0]); i++) {
		CHECK_EQ_INT(ekmfs_azure_kv_resource(res_cases[i].base, res_cases[i].authority, res,
						     sizeof(res)), 0);
		if (strcmp(res, res_cases[i].want) != 0) {
			fprintf(stderr, "resource case %zu: %s\n", i, res);
			check_failures++;
		}
	}
}

static void test_azure_errors_and_answers(void)
{
	static const struct {
		long status;
		const char *body;
		int err;
		enum ekmfs_kms_class cls;
		const char *code;
	} cases[] = {
		{ 401, "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"AKV10000\"}}",
		  -EACCES, EKMFS_KMS_AUTH, "Unauthorized" },
		{ 403, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"disabled\","
		  "\"innererror\":{\"code\":\"KeyDisabled\"}}}", -EACCES, EKMFS_KMS_KEY,
		  "Forbidden/KeyDisabled" },
		{ 404, "{\"error\":{\"code\":\"KeyNotFound\"}}", -ENOKEY, EKMFS_KMS_KEY,
		  "KeyNotFound" },
		{ 400, "{\"error\":{\"code\":\"BadParameter\"}}", -EKEYREJECTED,
		  EKMFS_KMS_REJECT, "BadParameter" },
		{ 429, "{\"error\":{\"code\":\"Throttled\"}}", -ETIMEDOUT, EKMFS_KMS_RETRY,
		  "Throttled" },
		{ 502, "<html>", -ETIMEDOUT, EKMFS_KMS_RETRY, "HTTP 502" },
		{ 400, "[]", -EPROTO, EKMFS_KMS_OTHER, "HTTP 400" },
	};
	char code[128], msg[256], kid[256], body[512];
	struct ekmfs_wrapped_kek w;
	uint8_t kek[32];
	bool enabled = true;

	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(cases); i++) {
		enum ekmfs_kms_class cls = EKMFS_KMS_OTHER;
		int err = ekmfs_azure_kv_error(cases[i].status, cases[i].body, &cls, code,
					       sizeof(code), msg, sizeof(msg));
		if (err != cases[i].err || cls != cases[i].cls || strcmp(code, cases[i].code)) {
			fprintf(stderr, "azure case %zu: err %d cls %d code '%s'\n", i, err, cls,
				code);
			check_failures++;
		}
	}
	snprintf(body, sizeof(body), "{\"kid\":\"https://v/keys/k/abc\",\"value\":\"AQID\"}");
	CHECK_EQ_INT(ekmfs_azure_kv_parse_wrap(body, &w), 0);
	CHECK_EQ_INT(w.len, 3);
	CHECK(strcmp(w.cmk_version, "https://v/keys/k/abc") == 0);
	snprintf(body, sizeof(body), "{\"kid\":\"k\",\"value\":\"AQID\"}");
	CHECK_EQ_INT(ekmfs_azure_kv_parse_wrap(body, &w), -EPROTO);       /* unversioned */
	snprintf(body, sizeof(body), "{\"kid\":\"https://v/keys/k/abc\",\"value\":"
		 "\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo\"}");
	CHECK_EQ_INT(ekmfs_azure_kv_parse_unwrap(body, kek), 0);
	CHECK(kek[0] == 0x5a && kek[31] == 0x5a && strstr(body, "Wlpa") == NULL);
	snprintf(body, sizeof(body), "{\"value\":\"WlpaWlo\"}");
	CHECK_EQ_INT(ekmfs_azure_kv_parse_unwrap(body, kek), -EPROTO);
	CHECK(kek[0] == 0);
	CHECK_EQ_INT(ekmfs_azure_kv_parse_key("{\"key\":{\"kid\":\"https://v/keys/k/1\"},"
					      "\"attributes\":{\"enabled\":false}}", kid,
					      sizeof(kid), &enabled), 0);
	CHECK(!enabled && strcmp(kid, "https://v/keys/k/1") == 0);
	CHECK_EQ_INT(ekmfs_azure_kv_parse_key("{\"key\":{}}", kid, sizeof(kid), &enabled),
		     -EPROTO);
}

/* The binding MAC covers volume, tenant, version, kid and blob, and its key
 * comes from the KEK: change any of them and the MAC changes. */
static void test_azure_binding_mac(void)
{
	uint8_t kek[32], other_vid[16], m0[32], m[32];
	struct ekmfs_wrap_context ctx = { vid, "default", 1 }, c2;
	struct ekmfs_wrapped_kek w = { .len = 4, .blob = { 9, 8, 7, 6 } };

	memset(kek, 7, sizeof(kek));
	snprintf(w.cmk_version, sizeof(w.cmk_version), "https://v/keys/k/1");
	CHECK_EQ_INT(ekmfs_azure_kv_binding_mac(kek, &ctx, &w, m0), 0);
	CHECK_EQ_INT(ekmfs_azure_kv_binding_mac(kek, &ctx, &w, m), 0);
	CHECK_MEM(m, m0, 32);
	c2 = ctx;
	c2.kek_version = 2;
	ekmfs_azure_kv_binding_mac(kek, &c2, &w, m);
	CHECK(memcmp(m, m0, 32) != 0);
	c2 = ctx;
	c2.tenant = "defaulT";
	ekmfs_azure_kv_binding_mac(kek, &c2, &w, m);
	CHECK(memcmp(m, m0, 32) != 0);
	memcpy(other_vid, vid, 16);
	other_vid[15] ^= 1;
	c2 = ctx;
	c2.volume_id = other_vid;
	ekmfs_azure_kv_binding_mac(kek, &c2, &w, m);
	CHECK(memcmp(m, m0, 32) != 0);
	w.blob[3] ^= 1;
	ekmfs_azure_kv_binding_mac(kek, &ctx, &w, m);
	CHECK(memcmp(m, m0, 32) != 0);
	w.blob[3] ^= 1;
	snprintf(w.cmk_version, sizeof(w.cmk_version), "https://v/keys/k/2");
	ekmfs_azure_kv_binding_mac(kek, &ctx, &w, m);
	CHECK(memcmp(m, m0, 32) != 0);
	snprintf(w.cmk_version, sizeof(w.cmk_version), "https://v/keys/k/1");
	kek[0] ^= 1;
	ekmfs_azure_kv_binding_mac(kek, &ctx, &w, m);
	CHECK(memcmp(m, m0, 32) != 0);
}

int main(void)
{
	RUN(test_aws_context_and_bodies);
	RUN(test_aws_answers);
	RUN(test_aws_errors);
	RUN(test_json_take_string);
	RUN(test_b64url_and_urls);
	RUN(test_backoff);
	RUN(test_azure_key_id);
	RUN(test_azure_kid_check_and_resource);
	RUN(test_azure_errors_and_answers);
	RUN(test_azure_binding_mac);
	return CHECK_DONE();
}
