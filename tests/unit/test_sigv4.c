/*
 * test_sigv4.c - the SigV4 signer against the official AWS SigV4 test suite
 * (tests/vectors/aws-sigv4/, Apache-2.0, see its README.md): canonical
 * request, string to sign and signature must match byte for byte, for every
 * case folder there. Plus the Authorization header a KMS call carries.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ekmfs/sigv4.h"
#include "ekmfs/util.h"

#define VECTORS "../vectors/aws-sigv4"
#define MAX_HEADERS 32

static char *slurp(const char *dir, const char *name)
{
	char path[512];
	FILE *f;
	long n;
	char *buf;

	snprintf(path, sizeof(path), "%s/%s/%s", VECTORS, dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A parsed request.txt: the request line, headers (continuation lines
 * joined with '\n', which the signer folds), body. Pointers into text. */
struct raw_request {
	char *method, *path, *query;
	struct ekmfs_sigv4_header h[MAX_HEADERS];
	char *values[MAX_HEADERS];      /* owned copies of folded values */
	size_t nh;
	const char *body;
};

static int parse_request(char *text, struct raw_request *r)
{
	char *line = text, *next, *sp, *last;

	memset(r, 0, sizeof(*r));
	next = strchr(line, '\n');
	if (!next)
		return -1;
	*next++ = '\0';
	sp = strchr(line, ' ');
	last = strrchr(line, ' ');
	if (!sp || sp == last)
		return -1;
	*sp = *last = '\0';
	r->method = line;
	r->path = sp + 1;           /* may contain spaces: the suite sends them raw */
	r->query = strchr(r->path, '?');
	if (r->query)
		*r->query++ = '\0';
	for (line = next; line && *line && *line != '\n'; line = next) {
		char *colon;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if ((line[0] == ' ' || line[0] == '\t') && r->nh) {
			char *v = r->values[r->nh - 1];
			size_t n = strlen(v) + strlen(line) + 2;
			char *g = malloc(n);
			snprintf(g, n, "%s\n%s", v, line);
			free(v);
			r->values[r->nh - 1] = g;
			r->h[r->nh - 1].value = g;
			continue;
		}
		colon = strchr(line, ':');
		if (!colon || r->nh == MAX_HEADERS)
			return -1;
		*colon = '\0';
		r->h[r->nh].name = line;
		r->values[r->nh] = strdup(colon + 1);
		r->h[r->nh].value = r->values[r->nh];
		r->nh++;
	}
	r->body = (line && *line == '\n') ? line + 1 : "";
	return 0;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int jbool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
static void amz_date(const char *ts, char out[17])
{
	size_t o = 0;

	for (; *ts && o < 16; ts++)
		if (*ts != '-' && *ts != ':')
			out[o++] = *ts;
	out[o] = '\0';
}

static int run_case(const char *name)
{
	char *ctx_text = slurp(name, "context.json"), *req_text = slurp(name, "request.txt");
	char *want_creq = slurp(name, "header-canonical-request.txt");
	char *want_sts = slurp(name, "header-string-to-sign.txt");
	char *want_sig = slurp(name, "header-signature.txt");
	char *creq = NULL, *signed_h = NULL, *sts = NULL, date[17], scope[128], sig[65];
	char body_hash[EKMFS_SIGV4_HEX];
	json_object *ctx = NULL, *cred = NULL;
	struct raw_request r = { 0 };
	const char *token;
	int bad = 0;

	if (!ctx_text || !req_text || !want_creq || !want_sts || !want_sig) {
		fprintf(stderr, "%s: missing vector files\n", name);
		bad = 1;
		goto out;
	}
	ctx = json_tokener_parse(ctx_text);
	if (!ctx || !json_object_object_get_ex(ctx, "credentials", &cred) ||
	    parse_request(req_text, &r) != 0) {
		fprintf(stderr, "%s: cannot parse the case\n", name);
		bad = 1;
		goto out;
	}
	amz_date(jstr(ctx, "timestamp"), date);
	r.h[r.nh].name = "X-Amz-Date";
	r.h[r.nh++].value = date;
	token = jstr(cred, "token");
	if (token && !jbool(ctx, "omit_session_token")) {
		r.h[r.nh].name = "X-Amz-Security-Token";
		r.h[r.nh++].value = token;
	}
	ekmfs_sigv4_sha256_hex(r.body, strlen(r.body), body_hash);
	if (jbool(ctx, "sign_body")) {
		r.h[r.nh].name = "X-Amz-Content-Sha256";
		r.h[r.nh++].value = body_hash;
	}
	struct ekmfs_sigv4_request sr = {
		.method = r.method, .path = r.path, .query = r.query, .headers = r.h,
		.nheaders = r.nh, .payload_hash = body_hash, .normalize = jbool(ctx, "normalize"),
	};
	if (ekmfs_sigv4_canonical_request(&sr, &creq, &signed_h) != 0) {
		bad = 1;
		goto out;
	}
	if (strcmp(creq, want_creq) != 0) {
		fprintf(stderr, "%s: canonical request\n--- got\n%s\n--- want\n%s\n", name, creq,
			want_creq);
		bad = 1;
	}
	snprintf(scope, sizeof(scope), "%.8s/%s/%s/aws4_request", date, jstr(ctx, "region"),
		 jstr(ctx, "service"));
	sts = ekmfs_sigv4_string_to_sign(date, scope, creq);
	if (!sts || strcmp(sts, want_sts) != 0) {
		fprintf(stderr, "%s: string to sign\n--- got\n%s\n--- want\n%s\n", name,
			sts ? sts : "(null)", want_sts);
		bad = 1;
	}
	{
		char d8[9];
		snprintf(d8, sizeof(d8), "%.8s", date);
		if (!sts || ekmfs_sigv4_signature(jstr(cred, "secret_access_key"), d8,
						  jstr(ctx, "region"), jstr(ctx, "service"),
						  sts, sig) != 0 ||
		    strncmp(sig, want_sig, 64) != 0) {
			fprintf(stderr, "%s: signature %s, want %.64s\n", name, sig, want_sig);
			bad = 1;
		}
	}
out:
	for (size_t i = 0; i < MAX_HEADERS; i++)
		free(r.values[i]);
	json_object_put(ctx);
	free(ctx_text);
	free(req_text);
	free(want_creq);
	free(want_sts);
	free(want_sig);
	free(creq);
	free(signed_h);
	free(sts);
	return bad;
}

static void test_vectors(void)
{
	DIR *d = opendir(VECTORS);
	struct dirent *de;
	int cases = 0;

	CHECK(d != NULL);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char probe[512];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(probe, sizeof(probe), "%s/%s/request.txt", VECTORS, de->d_name);
		f = fopen(probe, "r");
		if (!f)
			continue;
		fclose(f);
		cases++;
		if (run_case(de->d_name)) {
			fprintf(stderr, "  case %s failed\n", de->d_name);
			check_failures++;
		}
	}
	closedir(d);
	printf("# %d SigV4 suite cases\n", cases);
	CHECK(cases >= 30); /* the copied suite must actually have been read */
}

/* The Authorization header assembled from the same pieces (post-vanilla). */
static void test_authorization(void)
{
	const struct ekmfs_sigv4_header h[] = {
		{ "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" },
	};
	char hash[EKMFS_SIGV4_HEX], *auth = NULL;
	struct ekmfs_sigv4_request r = { "POST", "/", NULL, h, 2, hash, true };

	ekmfs_sigv4_sha256_hex("", 0, hash);
	CHECK_EQ_INT(ekmfs_sigv4_authorization(&r, "AKIDEXAMPLE",
					       "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
					       "us-east-1", "service", "20150830T123600Z", &auth), 0);
	CHECK(auth && strcmp(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
			     "service/aws4_request, SignedHeaders=host;x-amz-date, Signature="
			     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
		      == 0);
	free(auth);
	/* One byte of the secret changes the signature. */
	CHECK_EQ_INT(ekmfs_sigv4_authorization(&r, "AKIDEXAMPLE",
					       "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ",
					       "us-east-1", "service", "20150830T123600Z", &auth), 0);
	CHECK(auth && !strstr(auth, "5da7c1a2acd57cee"));
	free(auth);
	CHECK_EQ_INT(ekmfs_sigv4_authorization(&r, "A", "B", "us-east-1", "kms", "2015", &auth),
		     -EINVAL);
}

int main(void)
{
	RUN(test_vectors);
	RUN(test_authorization);
	return CHECK_DONE();
}
