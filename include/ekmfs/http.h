/*
 * http.h - one HTTPS request with libcurl, and the retry pacing the cloud
 * providers share.
 *
 * Owns: turning a request (method, URL, headers, body) into a response
 * (status, body) or into the errno of an outage, with connect and total
 * timeouts and an optional CA bundle (for private CAs and the tests' CA);
 * the capped exponential backoff with jitter between retries. Which answers
 * are worth a retry is the caller's call: only it can read the error body.
 *
 * Bodies and headers may carry secrets (bearer tokens, signed requests,
 * plaintext keys in a KMS answer): the response body is wiped when freed, and
 * the request headers are wiped before libcurl's list is freed. Nothing here
 * logs a header or a body.
 */
#ifndef EKMFS_HTTP_H
#define EKMFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct ekmfs_http_opts {
	long connect_timeout_ms;     /* 0: libcurl's default (300 s) */
	long timeout_ms;             /* whole request; 0: none */
	const char *ca_file;         /* NULL or "": the system trust store */
};

struct ekmfs_http_response {
	long status;                 /* HTTP status code */
	char *body;                  /* NUL-terminated; free with ekmfs_http_response_free */
	size_t len;
	char *www_authenticate;      /* value of that header, or NULL */
};

/*
 * Perform one request. headers: NULL-terminated "Name: value" strings (may be
 * NULL). 0 when a response arrived, whatever its status; otherwise the
 * outage errno of the provider contract: -ETIMEDOUT (timeout), -EHOSTUNREACH
 * (DNS, routing, TLS handshake or certificate), -ECONNREFUSED (nobody
 * listens), -ECONNRESET (the peer dropped the connection), with
 * ekmfs_lasterr() naming the URL and the cause; -ENOMEM.
 */
int ekmfs_http_request(const char *method, const char *url, const char *const *headers,
		       const void *body, size_t body_len, const struct ekmfs_http_opts *opts,
		       struct ekmfs_http_response *resp);
void ekmfs_http_response_free(struct ekmfs_http_response *resp);

/* Whether err is one of the outage errnos above. */
bool ekmfs_http_is_outage(int err);

/* Delay before retry number attempt (1, 2, ...): a uniformly random value in
 * [0, min(cap_ms, base_ms * 2^(attempt-1))] ("full jitter"), so clients that
 * failed together do not retry together. */
unsigned ekmfs_http_backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms);
/* Sleep that long. */
void ekmfs_http_backoff(unsigned attempt, unsigned base_ms, unsigned cap_ms);

#endif
