/*
 * azure_auth.c - Entra ID tokens for Azure Key Vault (azure_auth.h).
 *
 * Divisions:
 *   1. state and the token cache
 *   2. the token answer
 *   3. client credentials (a secret, or a federated token: workload identity)
 *   4. managed identity
 *   5. the header
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "azure_auth.h"
#include "cloud.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "../secret_file.h"

#define SECRET_MAX 1024
#define REFRESH_MARGIN 300
#define IMDS_API "2018-02-01"

/* ---- 1. state ---- */

struct ekmfs_azure_auth {
	const struct ekmfs_tenant_config *tc;
	char resource[128];
	pthread_mutex_t lock;           /* guards token and its times */
	char *token;                    /* secure, EKMFS_AZURE_TOKEN_MAX; "" = none */
	time_t fetched, expires;
};

int ekmfs_azure_auth_open(const struct ekmfs_tenant_config *tc, const char *resource,
			  struct ekmfs_azure_auth **out)
{
	struct ekmfs_azure_auth *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->token = ekmfs_secure_alloc(EKMFS_AZURE_TOKEN_MAX);
	if (!a->token) {
		free(a);
		return -ENOMEM;
	}
	a->tc = tc;
	snprintf(a->resource, sizeof(a->resource), "%s", resource);
	pthread_mutex_init(&a->lock, NULL);
	*out = a;
	return 0;
}

void ekmfs_azure_auth_close(struct ekmfs_azure_auth *a)
{
	if (!a)
		return;
	ekmfs_secure_free(a->token, EKMFS_AZURE_TOKEN_MAX);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static bool token_fresh(const struct ekmfs_azure_auth *a, time_t now)
{
	time_t margin = REFRESH_MARGIN;

	if (!a->token[0])
		return false;
	if (a->expires - a->fetched < 2 * margin)
		margin = (a->expires - a->fetched) / 2;
	return now < a->expires - margin;
}

/* ---- 2. the token answer ---- */

int ekmfs_azure_parse_token(char *body, char *token, size_t cap, long *expires_in)
{
	json_object *doc = NULL, *v;
	int ret;

	ret = ekmfs_json_take_string(body, "access_token", token, cap);
	if (ret || !token[0]) {
		ekmfs_seterr("the token answer has no access_token");
		ret = -EPROTO;
		goto out;
	}
	/* It becomes the Authorization header: one word of visible ASCII,
	 * so that the answer cannot add a header line of its own. */
	for (const char *p = token; *p; p++) {
		if (*p < 0x21 || *p > 0x7e) {
			ekmfs_seterr("the access_token holds a space or control character");
			ret = -EPROTO;
			goto out;
		}
	}
	doc = json_tokener_parse(body);
	ret = -EPROTO;
	if (!doc || !json_object_object_get_ex(doc, "expires_in", &v)) {
		ekmfs_seterr("the token answer has no expires_in");
		goto out;
	}
	/* The managed identity endpoint sends it as a string. */
	if (json_object_is_type(v, json_type_int)) {
		*expires_in = (long)json_object_get_int64(v);
	} else if (json_object_is_type(v, json_type_string)) {
		char *end;
		*expires_in = strtol(json_object_get_string(v), &end, 10);
		if (*end)
			*expires_in = -1;
	} else {
		*expires_in = -1;
	}
	if (*expires_in <= 0 || *expires_in > 7 * 86400) {
		ekmfs_seterr("the token answer has a bad expires_in");
		goto out;
	}
	ret = 0;
out:
	json_object_put(doc);
	if (ret)
		ekmfs_wipe(token, cap);
	return ret;
}

/* "error": "invalid_client", "error_description": "AADSTS7000215: ..." */
static void token_error(const char *who, long status, const char *body)
{
	json_object *doc = json_tokener_parse(body), *e = NULL, *d = NULL;

	if (doc && json_object_is_type(doc, json_type_object)) {
		json_object_object_get_ex(doc, "error", &e);
		json_object_object_get_ex(doc, "error_description", &d);
	}
	ekmfs_seterr("%s refused the token request: HTTP %ld %s%s%.200s", who, status,
		     e && json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "",
		     d ? ": " : "", d && json_object_is_type(d, json_type_string) ?
		     json_object_get_string(d) : "");
	json_object_put(doc);
}

/* A token endpoint's answer: the token, or the refusal with its reason
 * (429 and 5xx are outages, retried; anything else refuses). */
static int token_answer(struct ekmfs_azure_auth *a, const char *who,
			const struct ekmfs_http_response *resp, long *expires_in)
{
	if (resp->status != 200) {
		token_error(who, resp->status, resp->body);
		return resp->status == 429 || resp->status >= 500 ? -ETIMEDOUT : -EACCES;
	}
	return ekmfs_azure_parse_token(resp->body, a->token, EKMFS_AZURE_TOKEN_MAX, expires_in);
}

/* ---- 3. client credentials ---- */

const char *ekmfs_azure_id(const char *configured, const char *env)
{
	const char *v = getenv(env);

	return configured[0] ? configured : v && v[0] ? v : "";
}

/* What proves the client: its secret (client_secret_file, else
 * AZURE_CLIENT_SECRET), else the federated token in
 * AZURE_FEDERATED_TOKEN_FILE (AKS workload identity), sent as a
 * client_assertion. *federated tells which. */
/* A secrets file's one line (its line end dropped); empty is -ENOKEY. */
static int read_line_secret(const char *path, const char *what, char *secret, size_t cap)
{
	size_t len = 0;
	int ret = ekmfs_secret_read(path, what, secret, cap - 1, &len);

	if (ret)
		return ret;
	while (len && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
		secret[--len] = '\0';
	if (!len) {
		ekmfs_seterr("%s %s is empty", what, path);
		return -ENOKEY;
	}
	return 0;
}

static int load_secret(const struct ekmfs_tenant_config *tc, char *secret, size_t cap,
		       bool *federated)
{
	const char *env = getenv("AZURE_CLIENT_SECRET");
	const char *fed = getenv("AZURE_FEDERATED_TOKEN_FILE");
	int ret;

	*federated = false;
	if (tc->azure.client_secret_file[0])
		return read_line_secret(tc->azure.client_secret_file, "client secret file",
					secret, cap);
	if (env && env[0] && strlen(env) < cap) {
		memcpy(secret, env, strlen(env) + 1);
		return 0;
	}
	if (fed && fed[0]) {
		ret = read_line_secret(fed, "federated token file (AZURE_FEDERATED_TOKEN_FILE)",
				       secret, cap);
		*federated = ret == 0;
		return ret;
	}
	ekmfs_seterr("tenant '%s': no client secret (set client_secret_file, or "
		     "AZURE_CLIENT_SECRET, or AZURE_FEDERATED_TOKEN_FILE, or "
		     "use_managed_identity = true)", tc->name);
	return -ENOKEY;
}

static int client_credentials(struct ekmfs_azure_auth *a, long *expires_in)
{
	const struct ekmfs_tenant_config *tc = a->tc;
	const size_t bcap = 4 * SECRET_MAX + 1024;
	char *secret = ekmfs_secure_alloc(SECRET_MAX), *body = ekmfs_secure_alloc(bcap);
	char url[EKMFS_URL_MAX + 128], scope[256], enc_scope[512], enc_client[256];
	const char *hdrs[] = { "Content-Type: application/x-www-form-urlencoded",
			       "Accept: application/json", NULL };
	struct ekmfs_http_response resp = { 0 };
	struct ekmfs_http_opts o;
	bool federated;
	size_t n, hlen;
	int ret;

	if (!secret || !body) {
		ret = -ENOMEM;
		goto out;
	}
	ret = load_secret(tc, secret, SECRET_MAX, &federated);
	if (ret)
		goto out;
	hlen = strlen(tc->azure.authority_host);
	while (hlen && tc->azure.authority_host[hlen - 1] == '/')
		hlen--;
	snprintf(url, sizeof(url), "%.*s/%s/oauth2/v2.0/token", (int)hlen,
		 tc->azure.authority_host, ekmfs_azure_id(tc->azure.tenant_id, "AZURE_TENANT_ID"));
	snprintf(scope, sizeof(scope), "%s/.default", a->resource);
	ekmfs_url_encode(scope, enc_scope, sizeof(enc_scope));
	ekmfs_url_encode(ekmfs_azure_id(tc->azure.client_id, "AZURE_CLIENT_ID"), enc_client,
			 sizeof(enc_client));
	n = (size_t)snprintf(body, bcap, "grant_type=client_credentials&client_id=%s&scope=%s%s",
			     enc_client, enc_scope, federated ?
			     "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-"
			     "assertion-type%3Ajwt-bearer&client_assertion=" : "&client_secret=");
	ret = ekmfs_url_encode(secret, body + n, bcap - n);
	if (ret)
		goto out;
	ekmfs_cloud_http_opts(tc, &o);
	ret = ekmfs_http_request("POST", url, hdrs, body, strlen(body), &o, &resp);
	if (!ret)
		ret = token_answer(a, "Entra ID", &resp, expires_in);
out:
	ekmfs_http_response_free(&resp);
	ekmfs_secure_free(secret, SECRET_MAX);
	ekmfs_secure_free(body, bcap);
	return ret;
}

/* ---- 4. managed identity ---- */

static int managed_identity(struct ekmfs_azure_auth *a, long *expires_in)
{
	const struct ekmfs_tenant_config *tc = a->tc;
	char url[EKMFS_URL_MAX + 512], enc_res[256], enc_client[256];
	const char *hdrs[] = { "Metadata: true", NULL };
	struct ekmfs_http_response resp = { 0 };
	struct ekmfs_http_opts o;
	size_t hlen;
	int ret;

	hlen = strlen(tc->azure.imds_endpoint);
	while (hlen && tc->azure.imds_endpoint[hlen - 1] == '/')
		hlen--;
	ekmfs_url_encode(a->resource, enc_res, sizeof(enc_res));
	ekmfs_url_encode(tc->azure.client_id, enc_client, sizeof(enc_client));
	snprintf(url, sizeof(url), "%.*s/metadata/identity/oauth2/token?api-version=" IMDS_API
		 "&resource=%s%s%s", (int)hlen, tc->azure.imds_endpoint, enc_res,
		 tc->azure.client_id[0] ? "&client_id=" : "", enc_client);
	ekmfs_cloud_http_opts(tc, &o);
	ret = ekmfs_http_request("GET", url, hdrs, NULL, 0, &o, &resp);
	if (!ret)
		ret = token_answer(a, "the managed identity endpoint", &resp, expires_in);
	ekmfs_http_response_free(&resp);
	return ret;
}

/* ---- 5. the header ---- */

int ekmfs_azure_auth_header(struct ekmfs_azure_auth *a, bool force, char *hdr, size_t cap)
{
	time_t now = time(NULL);
	long expires_in = 0;
	int ret = 0;

	pthread_mutex_lock(&a->lock);
	if (force)
		ekmfs_wipe(a->token, EKMFS_AZURE_TOKEN_MAX);
	if (!token_fresh(a, now)) {
		ret = a->tc->azure.use_managed_identity ? managed_identity(a, &expires_in) :
		      client_credentials(a, &expires_in);
		if (!ret) {
			a->fetched = now;
			a->expires = now + expires_in;
		}
	}
	if (!ret && (size_t)snprintf(hdr, cap, "Authorization: Bearer %s", a->token) >= cap) {
		ekmfs_seterr("the access token is too long");
		ret = -EPROTO;
	}
	pthread_mutex_unlock(&a->lock);
	if (ret)
		ekmfs_wipe(hdr, cap);
	return ret;
}
