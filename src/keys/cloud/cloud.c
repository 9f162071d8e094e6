/*
 * cloud.c - helpers the cloud KMS providers share (cloud.h).
 *
 * Divisions:
 *   1. HTTP options from the configuration
 *   2. JSON: taking a secret out, escaping
 *   3. base64url, URLs, dates
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cloud.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

/* ---- 1. HTTP options ---- */

void ekmfs_cloud_http_opts(const struct ekmfs_tenant_config *tc, struct ekmfs_http_opts *o)
{
	o->connect_timeout_ms = (long)(tc->connect_timeout * 1000.0 + 0.5);
	o->timeout_ms = (long)(tc->timeout * 1000.0 + 0.5);
	o->ca_file = tc->ca_file[0] ? tc->ca_file : NULL;
}

/* ---- 2. JSON ---- */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* p at an opening quote: return the closing quote, or NULL. */
static const char *string_end(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\') {
			if (!p[1])
				return NULL;
			p++;
		} else if (*p == '"') {
			return p;
		}
	}
	return NULL;
}

/* Unescape the JSON string between the quotes s..e into out. Secrets are
 * base64 or JWT text, so \uXXXX above 0x7f is refused rather than encoded. */
static int unescape(const char *s, const char *e, char *out, size_t cap)
{
	size_t n = 0;

	for (const char *p = s + 1; p < e; p++) {
		char c = *p;

		if (c == '\\') {
			p++;
			switch (*p) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case '/': c = '/'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				int v = 0;
				for (int i = 1; i <= 4; i++) {
					int d = p + i < e ? ekmfs_hexval(p[i]) : -1;
					if (d < 0)
						return -EBADMSG;
					v = v * 16 + d;
				}
				if (v == 0 || v > 0x7f)
					return -EBADMSG;
				c = (char)v;
				p += 4;
				break;
			}
			default:
				return -EBADMSG;
			}
		}
		if (n + 1 >= cap) {
			ekmfs_wipe(out, cap);
			return -ENOSPC;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

int ekmfs_json_take_string(char *text, const char *key, char *out, size_t cap)
{
	size_t klen = strlen(key);
	const char *p = skip_ws(text);
	int depth = 0;

	if (*p != '{')
		return -EBADMSG;
	/* Walk the document; at depth 1 a string followed by ':' is a member
	 * name of the top-level object. */
	for (; *p; p++) {
		if (*p == '"') {
			const char *e = string_end(p), *after;

			if (!e)
				return -EBADMSG;
			after = skip_ws(e + 1);
			if (depth == 1 && *after == ':' && (size_t)(e - p - 1) == klen &&
			    memcmp(p + 1, key, klen) == 0) {
				const char *v = skip_ws(after + 1), *ve;
				int ret;

				if (*v != '"')
					return -ENOENT;
				ve = string_end(v);
				if (!ve)
					return -EBADMSG;
				ret = unescape(v, ve, out, cap);
				if (ret)
					return ret;
				memset(text + (v - text) + 1, 'x', (size_t)(ve - v - 1));
				return 0;
			}
			p = e;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth < 0)
				return -EBADMSG;
		}
	}
	return depth == 0 ? -ENOENT : -EBADMSG;
}

int ekmfs_json_escape(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(out);

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		char esc[8];
		size_t len;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			len = 2;
		} else if (c < 0x20) {
			len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else {
			esc[0] = (char)c;
			len = 1;
		}
		if (n + len + 1 > outlen)
			return -ENOSPC;
		memcpy(out + n, esc, len);
		n += len;
		out[n] = '\0';
	}
	return 0;
}

/* ---- 3. base64url, URLs, dates ---- */

void ekmfs_b64url_encode(const uint8_t *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
	}
	out[o] = '\0';
}

static int b64url_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

long ekmfs_b64url_decode(const char *in, uint8_t *out, size_t cap)
{
	size_t len = strlen(in), o = 0;
	uint32_t acc = 0;
	int bits = 0;

	while (len && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_val(in[i]);
		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -EINVAL;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Non-canonical trailing bits would let two texts decode alike. */
	if (bits && (acc & ((1u << bits) - 1)))
		return -EINVAL;
	return (long)o;
}

int ekmfs_cloud_call(const struct ekmfs_cloud_call *call, struct ekmfs_cloud_result *res)
{
	bool refreshed = false, fresh = false;
	unsigned attempt;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	res->cls = EKMFS_KMS_OTHER;
	for (attempt = 0;; attempt++) {
		ekmfs_http_response_free(&res->resp);
		res->answered = res->auth_failed = false;
		ret = call->auth(call->arg, fresh);
		fresh = false;
		if (ret) {
			res->auth_failed = true;
			res->cls = EKMFS_KMS_AUTH;
			if (!ekmfs_http_is_outage(ret))
				break;
		} else {
			ret = call->send(call->arg, &res->resp);
		}
		if (ret == 0) {
			res->answered = true;
			if (res->resp.status == 200)
				break;
			ret = call->error(call->arg, &res->resp, &res->cls);
			if (res->cls == EKMFS_KMS_AUTH && call->refresh_on_auth && !refreshed) {
				/* the token may have been revoked: one fresh one */
				refreshed = fresh = true;
				attempt--;
				continue;
			}
			if (res->cls != EKMFS_KMS_RETRY)
				break;
		} else if (!ekmfs_http_is_outage(ret)) {
			break;
		}
		if (attempt >= call->max_retries)
			break;
		ekmfs_log(EKMFS_LOG_DEBUG, "%s; retry %u of %u", ekmfs_lasterr(), attempt + 1,
			  call->max_retries);
		ekmfs_http_backoff(attempt + 1, EKMFS_CLOUD_BACKOFF_BASE_MS,
				   EKMFS_CLOUD_BACKOFF_CAP_MS);
	}
	if (ret)
		ekmfs_http_response_free(&res->resp);
	return ret;
}

int ekmfs_url_split(const char *url, char *origin, size_t olen, char *host, size_t hlen,
		    char *path, size_t plen)
{
	const char *p, *auth;
	size_t alen;

	if (strncmp(url, "https://", 8) == 0)
		auth = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		auth = url + 7;
	else
		return -EINVAL;
	alen = strcspn(auth, "/?#");
	if (alen == 0 || memchr(auth, '@', alen))
		return -EINVAL;
	if ((size_t)snprintf(origin, olen, "%.*s", (int)(auth - url + (long)alen), url) >= olen ||
	    (size_t)snprintf(host, hlen, "%.*s", (int)alen, auth) >= hlen)
		return -EINVAL;
	p = auth + alen;
	if (*p != '/')
		p = "/";
	if ((size_t)snprintf(path, plen, "%.*s", (int)strcspn(p, "?#"), p) >= plen)
		return -EINVAL;
	return 0;
}

int ekmfs_url_encode(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';

		if (n + (keep ? 1 : 3) + 1 > outlen)
			return -ENOSPC;
		if (keep) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return 0;
}

void ekmfs_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
