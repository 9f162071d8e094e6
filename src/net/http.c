/*
 * http.c - one HTTPS request with libcurl (include/ekmfs/http.h).
 *
 * Owns: libcurl's global initialisation, the easy handle of one request, the
 * mapping of libcurl's failures to the outage errnos of the provider
 * contract, and the backoff used between retries.
 *
 * Divisions:
 *   1. global init and the response buffer
 *   2. one request
 *   3. backoff
 *
 * A fresh easy handle per request keeps the code free of shared state between
 * the daemon's threads; KMS calls are rare (one per tenant per cache period),
 * so connection reuse buys nothing worth the complexity.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ekmfs/aead.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define BODY_MAX (1u << 20)         /* no KMS answer we read comes near this */

/* ---- 1. global init, response buffer ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct body_buf {
	char *data;
	size_t len, cap;
	bool too_big;
};

/* Grow by copying into a fresh buffer and wiping the old one: realloc could
 * leave a copy of a secret behind in freed memory. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct body_buf *b = user;
	size_t n = size * nmemb;

	if (b->len + n + 1 > BODY_MAX) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *grown;

		while (cap < b->len + n + 1)
			cap *= 2;
		grown = malloc(cap);
		if (!grown)
			return 0;
		if (b->data) {
			memcpy(grown, b->data, b->len);
			ekmfs_wipe(b->data, b->cap);
			free(b->data);
		}
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *user)
{
	static const char name[] = "www-authenticate:";
	struct ekmfs_http_response *resp = user;
	size_t n = size * nmemb, skip = sizeof(name) - 1;

	if (n > skip && strncasecmp(ptr, name, skip) == 0 && !resp->www_authenticate) {
		while (skip < n && (ptr[skip] == ' ' || ptr[skip] == '\t'))
			skip++;
		while (n > skip && (ptr[n - 1] == '\r' || ptr[n - 1] == '\n'))
			n--;
		resp->www_authenticate = strndup(ptr + skip, n - skip);
	}
	return size * nmemb;
}

void ekmfs_http_response_free(struct ekmfs_http_response *resp)
{
	if (!resp)
		return;
	if (resp->body) {
		ekmfs_wipe(resp->body, resp->len);
		free(resp->body);
	}
	free(resp->www_authenticate);
	memset(resp, 0, sizeof(*resp));
}

bool ekmfs_http_is_outage(int err)
{
	return err == -ETIMEDOUT || err == -EHOSTUNREACH || err == -ECONNREFUSED ||
	       err == -ECONNRESET;
}

/* ---- 2. one request ---- */

static int map_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		/* DNS, proxy, TLS handshake and certificate failures: the
		 * service cannot be reached safely from here. */
		return -EHOSTUNREACH;
	}
}

/* The scheme and authority of url, for messages that must not echo a query
 * string or path that might carry something private. */
static void url_origin(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://");
	size_t n;

	p = p ? p + 3 : url;
	n = strcspn(p, "/?#");
	snprintf(out, outlen, "%.*s", (int)((size_t)(p - url) + n), url);
}

static void wipe_slist(struct curl_slist *l)
{
	for (struct curl_slist *n = l; n; n = n->next)
		ekmfs_wipe(n->data, strlen(n->data));
	curl_slist_free_all(l);
}

int ekmfs_http_request(const char *method, const char *url, const char *const *headers,
		       const void *body, size_t body_len, const struct ekmfs_http_opts *opts,
		       struct ekmfs_http_response *resp)
{
	char errbuf[CURL_ERROR_SIZE] = "", origin[256];
	struct body_buf b = { 0 };
	struct curl_slist *hl = NULL, *grown;
	CURL *h = NULL;
	CURLcode rc;
	int ret = 0;

	memset(resp, 0, sizeof(*resp));
	url_origin(url, origin, sizeof(origin));
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		ekmfs_seterr("libcurl failed to initialise: %s", curl_easy_strerror(curl_init_rc));
		return -EIO;
	}
	h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	/* "Expect: 100-continue" would add a round trip to every POST. */
	hl = curl_slist_append(NULL, "Expect:");
	if (!hl) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; headers && headers[i]; i++) {
		grown = curl_slist_append(hl, headers[i]);
		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		hl = grown;
	}
	if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK) {
		ekmfs_seterr("bad URL %s", origin);
		ret = -EINVAL;
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);      /* threads: no SIGALRM for DNS */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (opts && opts->ca_file && opts->ca_file[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file);
	if (opts && opts->connect_timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts->connect_timeout_ms);
	if (opts && opts->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
		    strcmp(method, "PATCH") == 0) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		}
	}

	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		if (b.too_big) {
			ekmfs_seterr("%s sent an answer larger than %u bytes", origin, BODY_MAX);
			ret = -EPROTO;
		} else {
			ret = map_curl_error(rc);
			ekmfs_seterr("cannot reach %s: %s", origin,
				     errbuf[0] ? errbuf : curl_easy_strerror(rc));
		}
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	if (!b.data && !(b.data = calloc(1, 1))) {
		ret = -ENOMEM;
		goto out;
	}
	resp->body = b.data;
	resp->len = b.len;
	b.data = NULL;
out:
	if (b.data) {
		ekmfs_wipe(b.data, b.cap);
		free(b.data);
	}
	if (ret) {
		free(resp->www_authenticate);
		resp->www_authenticate = NULL;
	}
	wipe_slist(hl);
	curl_easy_cleanup(h);
	return ret;
}

/* ---- 3. backoff ---- */

unsigned ekmfs_http_backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms)
{
	uint64_t ceiling = base_ms;
	uint32_t r = 0;

	for (unsigned i = 1; i < attempt && ceiling < cap_ms; i++)
		ceiling *= 2;
	if (ceiling > cap_ms)
		ceiling = cap_ms;
	if (ekmfs_random(&r, sizeof(r)) < 0)
		r = (uint32_t)time(NULL);
	return (unsigned)(r % (ceiling + 1));
}

void ekmfs_http_backoff(unsigned attempt, unsigned base_ms, unsigned cap_ms)
{
	unsigned ms = ekmfs_http_backoff_ms(attempt, base_ms, cap_ms);
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
