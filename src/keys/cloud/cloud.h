/*
 * cloud.h - what the cloud KMS providers share (src/keys/cloud/), private
 * to src/keys/.
 *
 * Owns: the one call-and-retry loop of a cloud key service and its error
 * classes; the HTTP options a tenant's configuration implies; taking a secret
 * string out of a JSON answer before anything else parses it (so json-c's
 * buffers never hold key material or tokens); JSON string escaping for
 * request bodies built by hand in secure memory; base64url; URL splitting;
 * the AWS-style timestamps.
 */
#ifndef EKMFS_KEYS_CLOUD_H
#define EKMFS_KEYS_CLOUD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ekmfs/config.h"
#include "ekmfs/http.h"

/* Retry pacing for KMS calls: 100 ms doubling up to 5 s, full jitter. */
#define EKMFS_CLOUD_BACKOFF_BASE_MS 100
#define EKMFS_CLOUD_BACKOFF_CAP_MS 5000

/* How a KMS error answer is handled, by every cloud provider. */
enum ekmfs_kms_class {
	EKMFS_KMS_AUTH,         /* our identity was refused: -EACCES */
	EKMFS_KMS_KEY,          /* the key is missing/disabled/not ours: -EACCES/-ENOKEY */
	EKMFS_KMS_REJECT,       /* the blob does not open (context, key): -EKEYREJECTED */
	EKMFS_KMS_RETRY,        /* throttling, 5xx: retry, then an outage */
	EKMFS_KMS_OTHER,        /* a bad request: -EINVAL / -EPROTO */
};

void ekmfs_cloud_http_opts(const struct ekmfs_tenant_config *tc, struct ekmfs_http_opts *o);

/*
 * One call to a cloud key service with retries: the loop both cloud
 * providers use. Each attempt gets credentials (auth), sends (send) and, for
 * an answer other than 200, classifies it (error: returns -errno, sets the
 * class and the one-line reason with ekmfs_seterr). Outages (unreachable,
 * timed out) and EKMFS_KMS_RETRY answers (throttling, 5xx) are retried up
 * to max_retries times with exponential backoff and full jitter; an
 * EKMFS_KMS_AUTH answer gets one fresh credential (auth with fresh = true)
 * without counting as an attempt, when refresh_on_auth is set. Returns 0
 * with res->resp holding the 200 answer (free it), or -errno with the
 * reason set and res telling how far it got.
 */
struct ekmfs_cloud_result {
	struct ekmfs_http_response resp;
	enum ekmfs_kms_class cls;       /* when an error answer came back */
	bool answered;                  /* an HTTP answer arrived */
	bool auth_failed;               /* getting credentials failed */
};

struct ekmfs_cloud_call {
	int (*auth)(void *arg, bool fresh);
	int (*send)(void *arg, struct ekmfs_http_response *resp);
	int (*error)(void *arg, const struct ekmfs_http_response *resp,
		     enum ekmfs_kms_class *cls);
	void *arg;
	unsigned max_retries;
	bool refresh_on_auth;
};

int ekmfs_cloud_call(const struct ekmfs_cloud_call *call, struct ekmfs_cloud_result *res);

/*
 * Find the string value of top-level member key in the JSON object text,
 * copy it unescaped into out (capacity cap, NUL-terminated) and overwrite the
 * value in text with 'x' characters of the same length, so the text stays
 * valid JSON without the secret. 0, -ENOENT (no such member, or not a
 * string), -EBADMSG (not a JSON object), -ENOSPC (too long for out).
 */
int ekmfs_json_take_string(char *text, const char *key, char *out, size_t cap);

/* Append in as JSON string content (without the quotes) to out. -ENOSPC
 * when out (capacity outlen, NUL-terminated) is too small. */
int ekmfs_json_escape(const char *in, char *out, size_t outlen);

/* base64url without padding (RFC 4648 section 5), as JWK and Key Vault use.
 * encode: out needs 4*ceil(len/3)+1 bytes. decode: length or -EINVAL. */
void ekmfs_b64url_encode(const uint8_t *in, size_t len, char *out);
long ekmfs_b64url_decode(const char *in, uint8_t *out, size_t cap);

/* Split "https://host[:port]/path?q" into origin ("https://host:port"),
 * host header ("host:port", port only when given) and path ("/path", "/"
 * when empty; the query is dropped). -EINVAL when not http(s). */
int ekmfs_url_split(const char *url, char *origin, size_t olen, char *host, size_t hlen,
		    char *path, size_t plen);

/* Percent-encode for application/x-www-form-urlencoded and query strings
 * (unreserved characters kept). -ENOSPC when out is too small. */
int ekmfs_url_encode(const char *in, char *out, size_t outlen);

/* "20150830T123600Z" of t (17 bytes). */
void ekmfs_amz_date(time_t t, char out[17]);

#endif
