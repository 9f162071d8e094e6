/*
 * sigv4.c - AWS Signature Version 4 (include/ekmfs/sigv4.h).
 *
 * Owns: the canonicalisation rules of SigV4 (URI path normalisation and
 * encoding, query sorting, header folding) and the HMAC-SHA256 key chain.
 * Pure functions over strings; the AWS test-suite vectors in
 * tests/vectors/aws-sigv4/ pin every rule (tests/unit/test_sigv4.c).
 *
 * Divisions:
 *   1. a growable string
 *   2. URI encoding, path and query canonicalisation
 *   3. headers
 *   4. canonical request, string to sign, signature, Authorization
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/secmem.h"
#include "ekmfs/sigv4.h"
#include "ekmfs/util.h"

/* ---- 1. a growable string ---- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_addn(struct sbuf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *g;

		while (cap < b->len + n + 1)
			cap *= 2;
		g = realloc(b->s, cap);
		if (!g) {
			b->oom = true;
			return;
		}
		b->s = g;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *p)
{
	sb_addn(b, p, strlen(p));
}

static void sb_addc(struct sbuf *b, char c)
{
	sb_addn(b, &c, 1);
}

/* Hand the string over (or NULL after an allocation failure). */
static char *sb_take(struct sbuf *b)
{
	if (b->oom || !b->s) {
		free(b->s);
		if (!b->oom)
			return strdup("");
		return NULL;
	}
	return b->s;
}

/* ---- 2. URI encoding ---- */

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

/* RFC 3986 encoding of n bytes as SigV4 wants it: unreserved characters
 * stay, every other byte becomes %XX in upper case. */
static void uri_encode(struct sbuf *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (unreserved(c)) {
			sb_addc(b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			sb_addn(b, e, 3);
		}
	}
}

/* Percent-decode n bytes into a fresh string (a stray '%' stays as is). */
static char *uri_decode(const char *p, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (p[i] == '%' && i + 2 < n && (hi = ekmfs_hexval(p[i + 1])) >= 0 &&
		    (lo = ekmfs_hexval(p[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = p[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* The canonical URI: with normalize, empty and "." segments go and ".."
 * removes the segment before it (RFC 3986 section 5.2.4); a trailing slash
 * is kept. Each segment is then URI-encoded. */
static void canonical_path(struct sbuf *b, const char *path, bool normalize)
{
	const char *seg[256];
	size_t seglen[256], nseg = 0, plen = strlen(path);
	const char *p = path;

	if (!normalize) {
		if (plen == 0)
			sb_addc(b, '/');
		for (const char *q = path; *q; q++) {
			if (*q == '/')
				sb_addc(b, '/');
			else
				uri_encode(b, q, 1);
		}
		return;
	}
	while (*p) {
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (nseg)
				nseg--;
		} else if (nseg < EKMFS_ARRAY_SIZE(seg)) {
			seg[nseg] = p;
			seglen[nseg++] = n;
		} else {
			b->oom = true; /* absurd depth: refuse rather than mis-sign */
			return;
		}
		p += n;
	}
	for (size_t i = 0; i < nseg; i++) {
		sb_addc(b, '/');
		uri_encode(b, seg[i], seglen[i]);
	}
	if (nseg == 0 || (plen > 1 && path[plen - 1] == '/'))
		sb_addc(b, '/');
}

struct qparam {
	char *key, *value;              /* both already encoded */
};

static int cmp_qparam(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : strcmp(x->value, y->value);
}

/* Decode then re-encode every name and value (so "%E1%88%B4" and the raw
 * UTF-8 agree), and sort by name, then value. */
static int canonical_query(struct sbuf *b, const char *query)
{
	struct qparam *qp = NULL, *g;
	size_t n = 0, cap = 0;
	const char *p = query;
	int ret = 0;

	while (p && *p) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		struct sbuf k = { 0 }, v = { 0 };
		char *dk, *dv;

		if (len == 0) {
			p++;
			continue;
		}
		g = ekmfs_grow(qp, &cap, n, sizeof(*g), 8);
		if (!g) {
			ret = -ENOMEM;
			goto out;
		}
		qp = g;
		dk = uri_decode(p, klen);
		dv = eq ? uri_decode(eq + 1, len - klen - 1) : strdup("");
		if (dk && dv) {
			uri_encode(&k, dk, strlen(dk));
			uri_encode(&v, dv, strlen(dv));
		}
		free(dk);
		free(dv);
		qp[n].key = sb_take(&k);
		qp[n].value = sb_take(&v);
		n++;
		if (!qp[n - 1].key || !qp[n - 1].value) {
			ret = -ENOMEM;
			goto out;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	if (n)
		qsort(qp, n, sizeof(*qp), cmp_qparam);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_addc(b, '&');
		sb_add(b, qp[i].key);
		sb_addc(b, '=');
		sb_add(b, qp[i].value);
	}
out:
	for (size_t i = 0; i < n; i++) {
		free(qp[i].key);
		free(qp[i].value);
	}
	free(qp);
	return ret;
}

/* ---- 3. headers ---- */

struct cheader {
	char *name;                     /* lower case */
	size_t order;                   /* position in the request, for stable joins */
	const char *value;
};

static int cmp_cheader(const void *a, const void *b)
{
	const struct cheader *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Trim, and collapse each run of whitespace (folded lines included) to one
 * space. */
static void header_value(struct sbuf *b, const char *v)
{
	bool space = false;

	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
			space = true;
			continue;
		}
		if (space)
			sb_addc(b, ' ');
		space = false;
		sb_addc(b, *v);
	}
}

/* ---- 4. canonical request, string to sign, signature ---- */

void ekmfs_sigv4_sha256_hex(const void *data, size_t len, char hex[EKMFS_SIGV4_HEX])
{
	uint8_t md[32];
	unsigned mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	ekmfs_hex(md, sizeof(md), hex);
}

int ekmfs_sigv4_canonical_request(const struct ekmfs_sigv4_request *r, char **canonical,
				  char **signed_headers)
{
	struct cheader *h = calloc(r->nheaders ? r->nheaders : 1, sizeof(*h));
	struct sbuf b = { 0 }, sh = { 0 };
	int ret = 0;

	*canonical = *signed_headers = NULL;
	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < r->nheaders; i++) {
		size_t n = strlen(r->headers[i].name);

		if (n == 0) {
			ekmfs_seterr("SigV4: a header without a name");
			ret = -EINVAL;
			goto out;
		}
		h[i].name = malloc(n + 1);
		if (!h[i].name) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t j = 0; j <= n; j++) {
			char c = r->headers[i].name[j];
			h[i].name[j] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		h[i].value = r->headers[i].value;
		h[i].order = i;
	}
	qsort(h, r->nheaders, sizeof(*h), cmp_cheader);

	sb_add(&b, r->method);
	sb_addc(&b, '\n');
	canonical_path(&b, r->path && r->path[0] ? r->path : "/", r->normalize);
	sb_addc(&b, '\n');
	ret = canonical_query(&b, r->query);
	if (ret)
		goto out;
	sb_addc(&b, '\n');
	for (size_t i = 0; i < r->nheaders; i++) {
		bool repeat = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;

		if (repeat) {
			sb_addc(&b, ',');
		} else {
			if (i > 0) {
				sb_addc(&b, '\n');
				sb_addc(&sh, ';');
			}
			sb_add(&b, h[i].name);
			sb_addc(&b, ':');
			sb_add(&sh, h[i].name);
		}
		header_value(&b, h[i].value);
	}
	if (r->nheaders)
		sb_addc(&b, '\n');
	sb_addc(&b, '\n');
	sb_add(&b, sh.s ? sh.s : "");
	sb_addc(&b, '\n');
	sb_add(&b, r->payload_hash);
	*canonical = sb_take(&b);
	*signed_headers = sb_take(&sh);
	b.s = sh.s = NULL;
	if (!*canonical || !*signed_headers) {
		free(*canonical);
		free(*signed_headers);
		*canonical = *signed_headers = NULL;
		ret = -ENOMEM;
	}
out:
	for (size_t i = 0; i < r->nheaders; i++)
		free(h[i].name);
	free(h);
	free(b.s);
	free(sh.s);
	return ret;
}

char *ekmfs_sigv4_string_to_sign(const char *amz_date, const char *scope,
				 const char *canonical)
{
	char hash[EKMFS_SIGV4_HEX];
	struct sbuf b = { 0 };

	ekmfs_sigv4_sha256_hex(canonical, strlen(canonical), hash);
	sb_add(&b, "AWS4-HMAC-SHA256\n");
	sb_add(&b, amz_date);
	sb_addc(&b, '\n');
	sb_add(&b, scope);
	sb_addc(&b, '\n');
	sb_add(&b, hash);
	return sb_take(&b);
}

static bool hmac(const uint8_t *key, size_t klen, const char *msg, uint8_t out[32])
{
	unsigned n = 0;

	return HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)msg, strlen(msg), out,
		    &n) && n == 32;
}

int ekmfs_sigv4_signature(const char *secret_key, const char *date, const char *region,
			  const char *service, const char *string_to_sign,
			  char hex[EKMFS_SIGV4_HEX])
{
	size_t slen = strlen(secret_key);
	char *k0 = ekmfs_secure_alloc(slen + 5);
	uint8_t *k = ekmfs_secure_alloc(32 * 2);
	uint8_t *a = k, *b = k + 32;
	int ret = -EIO;

	if (!k0 || !k) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret_key, slen + 1);
	/* kDate, kRegion, kService, kSigning, then the signature itself */
	if (hmac((const uint8_t *)k0, slen + 4, date, a) && hmac(a, 32, region, b) &&
	    hmac(b, 32, service, a) && hmac(a, 32, "aws4_request", b) &&
	    hmac(b, 32, string_to_sign, a)) {
		ekmfs_hex(a, 32, hex);
		ret = 0;
	} else {
		ekmfs_seterr("SigV4: HMAC-SHA256 failed");
	}
out:
	ekmfs_secure_free(k0, slen + 5);
	ekmfs_secure_free(k, 64);
	return ret;
}

int ekmfs_sigv4_authorization(const struct ekmfs_sigv4_request *r, const char *access_key,
			      const char *secret_key, const char *region, const char *service,
			      const char *amz_date, char **authorization)
{
	char *canonical = NULL, *signed_headers = NULL, *sts = NULL;
	char scope[256], sig[EKMFS_SIGV4_HEX];
	struct sbuf b = { 0 };
	int ret;

	*authorization = NULL;
	if (strlen(amz_date) != 16) {
		ekmfs_seterr("SigV4: bad date '%s'", amz_date);
		return -EINVAL;
	}
	if ((size_t)snprintf(scope, sizeof(scope), "%.8s/%s/%s/aws4_request", amz_date, region,
			     service) >= sizeof(scope)) {
		ekmfs_seterr("SigV4: region or service name too long");
		return -EINVAL;
	}
	ret = ekmfs_sigv4_canonical_request(r, &canonical, &signed_headers);
	if (ret)
		return ret;
	sts = ekmfs_sigv4_string_to_sign(amz_date, scope, canonical);
	if (!sts) {
		ret = -ENOMEM;
		goto out;
	}
	{
		char date[9];
		snprintf(date, sizeof(date), "%.8s", amz_date);
		ret = ekmfs_sigv4_signature(secret_key, date, region, service, sts, sig);
	}
	if (ret)
		goto out;
	sb_add(&b, "AWS4-HMAC-SHA256 Credential=");
	sb_add(&b, access_key);
	sb_addc(&b, '/');
	sb_add(&b, scope);
	sb_add(&b, ", SignedHeaders=");
	sb_add(&b, signed_headers);
	sb_add(&b, ", Signature=");
	sb_add(&b, sig);
	*authorization = sb_take(&b);
	if (!*authorization)
		ret = -ENOMEM;
out:
	free(canonical);
	free(signed_headers);
	free(sts);
	return ret;
}
