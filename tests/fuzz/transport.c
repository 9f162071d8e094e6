/*
 * transport.c - the network of the fuzz harnesses of key services: in
 * place of src/net/http.c (include/ekmfs/http.h), every request is answered
 * with the next response of the current fuzz input.
 *
 * A harness hands the input to fuzz_transport_set(); the code under test
 * (providers, credential chains, token fetchers) then runs unchanged, and
 * each ekmfs_http_request() takes the next response:
 *
 *   response  = STATUS [' ' WWW-AUTHENTICATE] '\n' BODY
 *   responses are separated by "\n~~~\n"; STATUS is up to 3 digits
 *   (200 when there are none)
 *
 * When the input has no response left, the service is unreachable
 * (-ECONNREFUSED with http.c's message, an outage), so retries and
 * outage handling run too.
 * Backoff does not sleep. Responses are malloc'd copies (NUL-terminated,
 * wiped when freed, as http.c does), so ASan sees a read past a body.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "fuzz.h"
#include "transport.h"

#define SEP "\n~~~\n"

static const uint8_t *next;
static size_t left;
static unsigned requests;

void fuzz_transport_set(const uint8_t *data, size_t size)
{
	next = data;
	left = size;
	requests = 0;
}

unsigned fuzz_transport_requests(void)
{
	return requests;
}

int ekmfs_http_request(const char *method, const char *url, const char *const *headers,
		       const void *body, size_t body_len, const struct ekmfs_http_opts *opts,
		       struct ekmfs_http_response *resp)
{
	const uint8_t *chunk = next, *end, *nl;
	size_t len, i = 0;

	memset(resp, 0, sizeof(*resp));
	/* What the callers promise http.c. */
	FUZZ_CHECK(method && url && opts);
	FUZZ_CHECK(strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0);
	FUZZ_CHECK(body || body_len == 0);
	for (; headers && headers[i]; i++)
		FUZZ_CHECK(strchr(headers[i], ':') && !strchr(headers[i], '\n'));
	requests++;
	if (!next) {
		/* As http.c says it when a service does not answer. */
		ekmfs_seterr("cannot reach %s: Couldn't connect to server", url);
		return -ECONNREFUSED;
	}
	end = memmem(next, left, SEP, sizeof(SEP) - 1);
	len = end ? (size_t)(end - next) : left;
	if (end) {
		next = end + sizeof(SEP) - 1;
		left -= len + sizeof(SEP) - 1;
	} else {
		next = NULL;
		left = 0;
	}
	for (i = 0; i < len && i < 3 && chunk[i] >= '0' && chunk[i] <= '9'; i++)
		resp->status = resp->status * 10 + (chunk[i] - '0');
	if (i == 0)
		resp->status = 200;
	nl = memchr(chunk, '\n', len);
	if (nl && chunk + i < nl && chunk[i] == ' ') {
		resp->www_authenticate = strndup((const char *)chunk + i + 1,
						 (size_t)(nl - chunk - i - 1));
		FUZZ_CHECK(resp->www_authenticate);
	}
	i = nl ? (size_t)(nl - chunk) + 1 : len;
	resp->len = len - i;
	resp->body = malloc(resp->len + 1);
	FUZZ_CHECK(resp->body);
	memcpy(resp->body, chunk + i, resp->len);
	resp->body[resp->len] = '\0';
	return 0;
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

unsigned ekmfs_http_backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms)
{
	(void)attempt;
	(void)base_ms;
	(void)cap_ms;
	return 0;
}

void ekmfs_http_backoff(unsigned attempt, unsigned base_ms, unsigned cap_ms)
{
	(void)attempt;
	(void)base_ms;
	(void)cap_ms;
}
