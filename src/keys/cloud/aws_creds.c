/*
 * aws_creds.c - the AWS credential chain (aws_creds.h).
 *
 * Divisions:
 *   1. the chain's state and the refresh rule
 *   2. environment variables
 *   3. shared credentials / config files (with credential_process)
 *   4. web identity (STS AssumeRoleWithWebIdentity)
 *   5. container credentials and EC2 instance metadata (IMDSv2)
 *   6. get
 *
 * The files are parsed by hand rather than with inih so that no line
 * holding a secret lands in a buffer we cannot wipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aws_creds.h"
#include "cloud.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "../secret_file.h"

#define FILE_MAX (64 * 1024)
#define REFRESH_MARGIN 300
#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_ROLE_PATH "/latest/meta-data/iam/security-credentials/"
#define IMDS_ROLE_MAX 128	/* an IAM role name is at most 64 characters */
#define CONTAINER_HOST "http://169.254.170.2"
#define STS_VERSION "2011-06-15"

/* ---- 1. state ---- */

const char *ekmfs_aws_region(const struct ekmfs_tenant_config *tc)
{
	const char *r = getenv("AWS_REGION"), *d = getenv("AWS_DEFAULT_REGION");

	if (tc->aws.region[0])
		return tc->aws.region;
	return r && r[0] ? r : d && d[0] ? d : "";
}

struct ekmfs_aws_cred_chain {
	const struct ekmfs_tenant_config *tc;
	pthread_mutex_t lock;           /* guards cur and fetched */
	struct ekmfs_aws_creds *cur;    /* secure memory; access_key "" = none yet */
	time_t fetched;
};

int ekmfs_aws_creds_open(const struct ekmfs_tenant_config *tc,
			 struct ekmfs_aws_cred_chain **out)
{
	struct ekmfs_aws_cred_chain *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->cur = ekmfs_secure_alloc(sizeof(*c->cur));
	if (!c->cur) {
		free(c);
		return -ENOMEM;
	}
	c->tc = tc;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void ekmfs_aws_creds_close(struct ekmfs_aws_cred_chain *c)
{
	if (!c)
		return;
	ekmfs_secure_free(c->cur, sizeof(*c->cur));
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Fresh enough: long-term keys always; temporary ones until five minutes
 * before expiry, or past half their life when that is shorter. */
static bool still_fresh(const struct ekmfs_aws_cred_chain *c, time_t now)
{
	time_t margin = REFRESH_MARGIN;

	if (!c->cur->access_key[0])
		return false;
	if (!c->cur->expires)
		return true;
	if (c->cur->expires - c->fetched < 2 * margin)
		margin = (c->cur->expires - c->fetched) / 2;
	return now < c->cur->expires - margin;
}

static int set_field(char *dst, size_t cap, const char *val, const char *what,
		     const char *source)
{
	if (strlen(val) >= cap) {
		ekmfs_seterr("AWS %s from %s is longer than %zu bytes", what, source, cap - 1);
		return -EINVAL;
	}
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

/* Each credential goes into an HTTP header (X-Amz-Security-Token, the
 * SigV4 Authorization) or a signature: visible ASCII only, so that a
 * credential service's answer cannot add a header line of its own. */
static bool header_safe(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e)
			return false;
	return true;
}

/* ---- 2. environment ---- */

static int from_env(struct ekmfs_aws_creds *cr)
{
	const char *akid = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (!akid || !akid[0] || !secret || !secret[0])
		return -ENOENT;
	snprintf(cr->source, sizeof(cr->source), "environment (AWS_ACCESS_KEY_ID)");
	if (set_field(cr->access_key, sizeof(cr->access_key), akid, "access key", cr->source) ||
	    set_field(cr->secret_key, sizeof(cr->secret_key), secret, "secret key", cr->source) ||
	    set_field(cr->session_token, sizeof(cr->session_token), token ? token : "",
		      "session token", cr->source))
		return -EINVAL;
	return 0;
}

/* ---- 3. shared files ---- */

static void home_path(const char *env, const char *rel, char *out, size_t outlen)
{
	const char *v = getenv(env), *home = getenv("HOME");

	if (v && v[0])
		snprintf(out, outlen, "%s", v);
	else
		snprintf(out, outlen, "%s/%s", home && home[0] ? home : "/root", rel);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

struct profile_vals {
	bool found;
	char *akid, *secret, *token;    /* point into the file buffer */
	char *role_arn, *token_file, *session_name;
	char *process;                  /* credential_process */
};

/* Parse text (a secure buffer, modified in place) and collect the keys of
 * section want: "[NAME]" in the credentials file, "[profile NAME]" (or
 * "[default]") in the config file. */
static void parse_profile(char *text, const char *profile, bool config_file,
			  struct profile_vals *pv)
{
	char want[96];
	bool in = false;

	if (config_file && strcmp(profile, "default") != 0)
		snprintf(want, sizeof(want), "profile %s", profile);
	else
		snprintf(want, sizeof(want), "%s", profile);
	for (char *line = text, *next; line; line = next) {
		char *eq, *key, *val;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		line = trim(line);
		if (!line[0] || line[0] == '#' || line[0] == ';')
			continue;
		if (line[0] == '[') {
			char *end = strchr(line, ']');
			if (end) {
				*end = '\0';
				in = strcmp(trim(line + 1), want) == 0;
				pv->found |= in;
			}
			continue;
		}
		eq = strchr(line, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (strcmp(key, "aws_access_key_id") == 0)
			pv->akid = val;
		else if (strcmp(key, "aws_secret_access_key") == 0)
			pv->secret = val;
		else if (strcmp(key, "aws_session_token") == 0)
			pv->token = val;
		else if (strcmp(key, "role_arn") == 0)
			pv->role_arn = val;
		else if (strcmp(key, "web_identity_token_file") == 0)
			pv->token_file = val;
		else if (strcmp(key, "role_session_name") == 0)
			pv->session_name = val;
		else if (strcmp(key, "credential_process") == 0)
			pv->process = val;
	}
}

static int web_identity(const struct ekmfs_tenant_config *tc, const char *role_arn,
			const char *token_file, const char *session_name,
			struct ekmfs_aws_creds *cr);
static int from_process(const struct ekmfs_tenant_config *tc, const char *cmd,
			struct ekmfs_aws_creds *cr);
static int parse_iso_time(const char *s, time_t *t);

/* One file of the pair: -ENOENT when it or the profile is absent. */
static int from_file(const struct ekmfs_tenant_config *tc, const char *path,
		     const char *profile, bool config_file, struct ekmfs_aws_creds *cr)
{
	char *text = ekmfs_secure_alloc(FILE_MAX + 1);
	struct profile_vals pv = { 0 };
	size_t len;
	int ret;

	if (!text)
		return -ENOMEM;
	ret = ekmfs_secret_read(path, config_file ? "AWS config file" :
				"AWS shared credentials file", text, FILE_MAX, &len);
	if (ret == -ENOKEY) {
		ekmfs_clearerr();
		ret = -ENOENT;
	}
	if (ret)
		goto out;
	parse_profile(text, profile, config_file, &pv);
	snprintf(cr->source, sizeof(cr->source), "profile '%s' in %s", profile, path);
	if (pv.akid && pv.secret) {
		ret = set_field(cr->access_key, sizeof(cr->access_key), pv.akid, "access key",
				cr->source);
		if (!ret)
			ret = set_field(cr->secret_key, sizeof(cr->secret_key), pv.secret,
					"secret key", cr->source);
		if (!ret)
			ret = set_field(cr->session_token, sizeof(cr->session_token),
					pv.token ? pv.token : "", "session token", cr->source);
	} else if (pv.role_arn && pv.token_file) {
		ret = web_identity(tc, pv.role_arn, pv.token_file, pv.session_name, cr);
	} else if (pv.process && pv.process[0]) {
		snprintf(cr->source, sizeof(cr->source), "credential_process of profile '%s' in %s",
			 profile, path);
		ret = from_process(tc, pv.process, cr);
	} else {
		ret = -ENOENT;
	}
out:
	ekmfs_secure_free(text, FILE_MAX + 1);
	return ret;
}

static int from_files(const struct ekmfs_tenant_config *tc, struct ekmfs_aws_creds *cr,
		      char *tried, size_t triedlen)
{
	char path[PATH_MAX];
	const char *env = getenv("AWS_PROFILE");
	const char *profile = tc->aws.profile[0] ? tc->aws.profile :
			      (env && env[0] ? env : "default");
	int ret;

	home_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", path, sizeof(path));
	ret = from_file(tc, path, profile, false, cr);
	if (ret != -ENOENT)
		return ret;
	snprintf(tried + strlen(tried), triedlen - strlen(tried), ", profile '%s' in %s",
		 profile, path);
	home_path("AWS_CONFIG_FILE", ".aws/config", path, sizeof(path));
	ret = from_file(tc, path, profile, true, cr);
	if (ret == -ENOENT)
		snprintf(tried + strlen(tried), triedlen - strlen(tried), " and %s", path);
	return ret;
}

/*
 * credential_process: the profile names a command (run with /bin/sh -c, as
 * the AWS CLI runs it through a shell on POSIX) that prints
 * {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken",
 * "Expiration"} on stdout. Its output is read into secure memory and the
 * secrets taken out before anything else parses it; it must finish within
 * the tenant's timeout (else -ETIMEDOUT, retried like an outage) and exit 0
 * (else -EACCES: the helper refused).
 */
static int read_process(int fd, pid_t pid, double timeout, char *out, size_t cap,
			size_t *len)
{
	struct timespec t0, t;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	*len = 0;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		double left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = timeout - ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9);
		if (left <= 0) {
			ret = -ETIMEDOUT;
			break;
		}
		if (poll(&p, 1, (int)(left * 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (!p.revents)
			continue;
		if (*len == cap) {
			ret = -EMSGSIZE;
			break;
		}
		n = read(fd, out + *len, cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	if (ret)
		kill(-pid, SIGKILL);    /* its process group: a shell's children too */
	out[*len] = '\0';
	return ret;
}

static int from_process(const struct ekmfs_tenant_config *tc, const char *cmd,
			struct ekmfs_aws_creds *cr)
{
	extern char **environ;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	char *out = ekmfs_secure_alloc(FILE_MAX + 1), version[16] = "", exp[64] = "";
	char source[sizeof(cr->source)];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int pfd[2] = { -1, -1 }, status = 0, ret;
	size_t len = 0;
	pid_t pid;

	snprintf(source, sizeof(source), "%s", cr->source);
	if (!out)
		return -ENOMEM;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		ret = -errno;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	/* In a process group of its own, so a timeout kills all of it. */
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, 0);
	ret = -posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (ret) {
		ekmfs_seterr("%s: cannot run it: %s", source, strerror(-ret));
		goto out;
	}
	ret = read_process(pfd[0], pid, tc->timeout > 0 ? tc->timeout : 10.0, out, FILE_MAX,
			   &len);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret) {
		ekmfs_seterr("%s: %s", source, ret == -ETIMEDOUT ? "no answer within the timeout "
			     "(killed)" : ret == -EMSGSIZE ? "answer too large" : strerror(-ret));
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		ekmfs_seterr("%s: the command failed (%s %d)", source,
			     WIFEXITED(status) ? "exit status" : "signal",
			     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		ret = -EACCES;
		goto out;
	}
	if (ekmfs_json_take_string(out, "SecretAccessKey", cr->secret_key,
				   sizeof(cr->secret_key)) ||
	    ekmfs_json_take_string(out, "AccessKeyId", cr->access_key, sizeof(cr->access_key))) {
		ekmfs_seterr("%s: the answer lacks AccessKeyId and SecretAccessKey", source);
		ret = -EPROTO;
		goto out;
	}
	if (ekmfs_json_take_string(out, "SessionToken", cr->session_token,
				   sizeof(cr->session_token)))
		cr->session_token[0] = '\0';
	/* Version is a number: accept exactly 1, the only version there is. */
	{
		const char *v = strstr(out, "\"Version\"");

		if (v && (v = strchr(v, ':'))) {
			v += 1 + strspn(v + 1, " \t\r\n");
			snprintf(version, sizeof(version), "%.*s", (int)strcspn(v, " \t\r\n,}"), v);
		}
	}
	if (strcmp(version, "1") != 0) {
		ekmfs_seterr("%s: the answer has no \"Version\": 1", source);
		ret = -EPROTO;
		goto out;
	}
	if (ekmfs_json_take_string(out, "Expiration", exp, sizeof(exp)) == 0 &&
	    parse_iso_time(exp, &cr->expires) != 0) {
		ekmfs_seterr("%s: the answer has an unreadable Expiration", source);
		ret = -EPROTO;
		goto out;
	}
	snprintf(cr->source, sizeof(cr->source), "%s", source);
	ret = 0;
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	ekmfs_secure_free(out, FILE_MAX + 1);
	if (ret)
		ekmfs_wipe(cr, sizeof(*cr));
	return ret;
}

/* ---- 4. web identity ---- */

/* The text of <tag>...</tag> in xml into out; -ENOENT if absent. */
static int xml_text(const char *xml, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	const char *s, *e;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	s = strstr(xml, open);
	if (!s)
		return -ENOENT;
	s += strlen(open);
	e = strstr(s, close);
	if (!e)
		return -ENOENT;
	if ((size_t)(e - s) >= cap)
		return -ENOSPC;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return 0;
}

static int parse_iso_time(const char *s, time_t *t)
{
	char buf[32];

	/* "2026-11-23T10:00:00Z" or with fractional seconds. */
	snprintf(buf, sizeof(buf), "%.19sZ", s);
	return ekmfs_time_parse_rfc3339(buf, t);
}

static int web_identity(const struct ekmfs_tenant_config *tc, const char *role_arn,
			const char *token_file, const char *session_name,
			struct ekmfs_aws_creds *cr)
{
	const size_t tok_cap = 16384, body_cap = 3 * 16384 + 2048;
	char *tok = ekmfs_secure_alloc(tok_cap + 1), *body = ekmfs_secure_alloc(body_cap);
	char url[EKMFS_URL_MAX], enc_role[1024], enc_name[256], exp[64];
	const char *sts = getenv("AWS_ENDPOINT_URL_STS");
	const char *hdrs[] = { "Content-Type: application/x-www-form-urlencoded",
			       "Accept: application/xml", NULL };
	struct ekmfs_http_response resp = { 0 };
	struct ekmfs_http_opts o;
	size_t len, n;
	int ret;

	if (!tok || !body) {
		ret = -ENOMEM;
		goto out;
	}
	ret = ekmfs_secret_read(token_file, "web identity token file", tok, tok_cap, &len);
	if (ret)
		goto out;
	while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r'))
		tok[--len] = '\0';
	if (sts && sts[0])
		snprintf(url, sizeof(url), "%s", sts);
	else
		snprintf(url, sizeof(url), "https://sts.%s.amazonaws.com/",
			 ekmfs_aws_region(tc)[0] ? ekmfs_aws_region(tc) : "us-east-1");
	if (ekmfs_url_encode(role_arn, enc_role, sizeof(enc_role)) ||
	    ekmfs_url_encode(session_name && session_name[0] ? session_name : "ekmfs",
			     enc_name, sizeof(enc_name))) {
		ekmfs_seterr("role ARN or session name too long");
		ret = -EINVAL;
		goto out;
	}
	n = (size_t)snprintf(body, body_cap, "Action=AssumeRoleWithWebIdentity&Version="
			     STS_VERSION "&RoleArn=%s&RoleSessionName=%s&WebIdentityToken=",
			     enc_role, enc_name);
	if (ekmfs_url_encode(tok, body + n, body_cap - n)) {
		ekmfs_seterr("web identity token in %s is too long", token_file);
		ret = -EINVAL;
		goto out;
	}
	ekmfs_cloud_http_opts(tc, &o);
	ret = ekmfs_http_request("POST", url, hdrs, body, strlen(body), &o, &resp);
	if (ret)
		goto out;
	snprintf(cr->source, sizeof(cr->source), "web identity (role %.100s)", role_arn);
	if (resp.status != 200) {
		char code[128] = "";
		xml_text(resp.body, "Code", code, sizeof(code));
		ekmfs_seterr("STS refused the web identity token for role %s: HTTP %ld %s",
			     role_arn, resp.status, code);
		ret = resp.status >= 500 ? -EHOSTUNREACH : -EACCES;
		goto out;
	}
	if (xml_text(resp.body, "AccessKeyId", cr->access_key, sizeof(cr->access_key)) ||
	    xml_text(resp.body, "SecretAccessKey", cr->secret_key, sizeof(cr->secret_key)) ||
	    xml_text(resp.body, "SessionToken", cr->session_token,
		     sizeof(cr->session_token)) ||
	    xml_text(resp.body, "Expiration", exp, sizeof(exp)) ||
	    parse_iso_time(exp, &cr->expires)) {
		ekmfs_seterr("STS answered AssumeRoleWithWebIdentity without usable credentials");
		ret = -EPROTO;
	}
out:
	ekmfs_http_response_free(&resp);
	ekmfs_secure_free(tok, tok_cap + 1);
	ekmfs_secure_free(body, body_cap);
	return ret;
}

/* ---- 5. container and instance metadata ---- */

/* The JSON both services answer: AccessKeyId, SecretAccessKey, Token,
 * Expiration. The secrets are taken out before anything else reads it. */
static int parse_cred_json(char *text, const char *source, struct ekmfs_aws_creds *cr)
{
	char exp[64] = "";

	snprintf(cr->source, sizeof(cr->source), "%s", source);
	if (ekmfs_json_take_string(text, "SecretAccessKey", cr->secret_key,
				   sizeof(cr->secret_key)) ||
	    ekmfs_json_take_string(text, "AccessKeyId", cr->access_key,
				   sizeof(cr->access_key))) {
		ekmfs_seterr("%s answered without AccessKeyId and SecretAccessKey", source);
		return -EPROTO;
	}
	if (ekmfs_json_take_string(text, "Token", cr->session_token,
				   sizeof(cr->session_token)))
		cr->session_token[0] = '\0';
	if (ekmfs_json_take_string(text, "Expiration", exp, sizeof(exp)) == 0 &&
	    parse_iso_time(exp, &cr->expires) != 0) {
		ekmfs_seterr("%s answered an unreadable Expiration", source);
		return -EPROTO;
	}
	return 0;
}

static int from_container(const struct ekmfs_tenant_config *tc, struct ekmfs_aws_creds *cr)
{
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *auth = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *auth_file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	char url[EKMFS_URL_MAX], *hdr = NULL;
	const char *hdrs[2] = { NULL, NULL };
	struct ekmfs_http_response resp = { 0 };
	struct ekmfs_http_opts o;
	const size_t hcap = 8192;
	int ret;

	if (rel && rel[0])
		snprintf(url, sizeof(url), CONTAINER_HOST "%s", rel);
	else if (full && full[0])
		snprintf(url, sizeof(url), "%s", full);
	else
		return -ENOENT;
	hdr = ekmfs_secure_alloc(hcap);
	if (!hdr)
		return -ENOMEM;
	if (auth_file && auth_file[0]) {
		size_t len;
		strcpy(hdr, "Authorization: ");
		ret = ekmfs_secret_read(auth_file, "container authorization token file",
					hdr + 15, hcap - 16, &len);
		if (ret)
			goto out;
		while (len && (hdr[15 + len - 1] == '\n' || hdr[15 + len - 1] == '\r'))
			hdr[15 + --len] = '\0';
		hdrs[0] = hdr;
	} else if (auth && auth[0]) {
		snprintf(hdr, hcap, "Authorization: %s", auth);
		hdrs[0] = hdr;
	}
	ekmfs_cloud_http_opts(tc, &o);
	ret = ekmfs_http_request("GET", url, hdrs, NULL, 0, &o, &resp);
	if (ret)
		goto out;
	if (resp.status != 200) {
		ekmfs_seterr("container credentials endpoint answered HTTP %ld", resp.status);
		ret = resp.status >= 500 ? -EHOSTUNREACH : -EACCES;
		goto out;
	}
	ret = parse_cred_json(resp.body, "container credentials", cr);
out:
	ekmfs_http_response_free(&resp);
	ekmfs_secure_free(hdr, hcap);
	return ret;
}

static int from_imds(const struct ekmfs_tenant_config *tc, struct ekmfs_aws_creds *cr)
{
	const char *disabled = getenv("AWS_EC2_METADATA_DISABLED");
	const char *ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	/* url holds the longest of the three requests: base + role path + role */
	char base[EKMFS_URL_MAX], role[IMDS_ROLE_MAX], *tokhdr = NULL;
	char url[EKMFS_URL_MAX + sizeof(IMDS_ROLE_PATH) + IMDS_ROLE_MAX];
	const char *put_hdrs[] = { "X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL };
	const char *hdrs[2] = { NULL, NULL };
	struct ekmfs_http_response resp = { 0 };
	/* Off EC2 nothing answers: fail fast, do not stall every mount. */
	struct ekmfs_http_opts o;
	const size_t tcap = 1024;
	size_t n;
	int ret;

	if (disabled && strcmp(disabled, "true") == 0)
		return -ENOENT;
	ekmfs_cloud_http_opts(tc, &o);
	o.connect_timeout_ms = 1000;
	o.timeout_ms = 2000;
	snprintf(base, sizeof(base), "%s", ep && ep[0] ? ep : IMDS_DEFAULT);
	n = strlen(base);
	while (n && base[n - 1] == '/')
		base[--n] = '\0';
	tokhdr = ekmfs_secure_alloc(tcap);
	if (!tokhdr)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s/latest/api/token", base);
	ret = ekmfs_http_request("PUT", url, put_hdrs, "", 0, &o, &resp);
	if (ret)
		goto out;
	if (resp.status != 200 || resp.len + 32 > tcap) {
		ekmfs_seterr("EC2 instance metadata refused an IMDSv2 token (HTTP %ld)",
			     resp.status);
		ret = -EACCES;
		goto out;
	}
	if (!resp.len || strlen(resp.body) != resp.len || !header_safe(resp.body)) {
		ekmfs_seterr("EC2 instance metadata answered an IMDSv2 token that is not "
			     "one word of visible characters");
		ret = -EPROTO;
		goto out;
	}
	snprintf(tokhdr, tcap, "X-aws-ec2-metadata-token: %s", resp.body);
	hdrs[0] = tokhdr;
	ekmfs_http_response_free(&resp);
	snprintf(url, sizeof(url), "%s" IMDS_ROLE_PATH, base);
	ret = ekmfs_http_request("GET", url, hdrs, NULL, 0, &o, &resp);
	if (ret)
		goto out;
	if (resp.status != 200 || !resp.len) {
		ekmfs_seterr("EC2 instance metadata has no IAM role (HTTP %ld)", resp.status);
		ret = resp.status == 404 ? -ENOENT : -EACCES;
		goto out;
	}
	snprintf(role, sizeof(role), "%.*s", (int)strcspn(resp.body, "\r\n"), resp.body);
	ekmfs_http_response_free(&resp);
	snprintf(url, sizeof(url), "%s" IMDS_ROLE_PATH "%s", base, role);
	ret = ekmfs_http_request("GET", url, hdrs, NULL, 0, &o, &resp);
	if (ret)
		goto out;
	if (resp.status != 200) {
		ekmfs_seterr("EC2 instance metadata: credentials of role %s: HTTP %ld", role,
			     resp.status);
		ret = -EACCES;
		goto out;
	}
	ret = parse_cred_json(resp.body, "EC2 instance metadata", cr);
out:
	ekmfs_http_response_free(&resp);
	ekmfs_secure_free(tokhdr, tcap);
	return ret;
}

/* ---- 6. get ---- */

static int fetch(const struct ekmfs_tenant_config *tc, struct ekmfs_aws_creds *cr)
{
	char tried[PATH_MAX * 2 + 256] = "environment";
	const char *role = getenv("AWS_ROLE_ARN"), *wif = getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	int ret;

	memset(cr, 0, sizeof(*cr));
	/* An explicitly configured profile wins over the environment. */
	ret = tc->aws.profile[0] ? -ENOENT : from_env(cr);
	if (ret != -ENOENT)
		return ret;
	ret = from_files(tc, cr, tried, sizeof(tried));
	if (ret != -ENOENT)
		return ret;
	if (tc->aws.profile[0]) {
		ekmfs_seterr("no AWS credentials for the configured profile (tried%s)",
			     tried + strlen("environment"));
		return -ENOKEY;
	}
	if (role && role[0] && wif && wif[0])
		return web_identity(tc, role, wif, getenv("AWS_ROLE_SESSION_NAME"), cr);
	strcat(tried, ", web identity (AWS_WEB_IDENTITY_TOKEN_FILE unset)");
	ret = from_container(tc, cr);
	if (ret != -ENOENT)
		return ret;
	strcat(tried, ", container credentials (unset)");
	ret = from_imds(tc, cr);
	if (ret == 0)
		return 0;
	if (ret != -ENOENT && !ekmfs_http_is_outage(ret))
		return ret;
	ekmfs_seterr("no AWS credentials found (tried %s, EC2 instance metadata)", tried);
	return -ENOKEY;
}

/* fetch, then the credentials it found must be there and fit in a header
 * (fuzz_aws_creds: "aws_secret_access_key =" with nothing after it, or an
 * empty <SecretAccessKey/>, was taken for a key). */
static int fetch_checked(const struct ekmfs_tenant_config *tc, struct ekmfs_aws_creds *cr)
{
	int ret = fetch(tc, cr);

	if (ret == 0 && (!cr->access_key[0] || !cr->secret_key[0])) {
		ekmfs_seterr("AWS credentials from %s have an empty %s", cr->source,
			     cr->access_key[0] ? "secret key" : "access key id");
		ret = -EINVAL;
	} else if (ret == 0 && (!header_safe(cr->access_key) || !header_safe(cr->secret_key) ||
			 !header_safe(cr->session_token))) {
		ekmfs_seterr("AWS credentials from %s hold a space or control character",
			     cr->source);
		ret = -EPROTO;
	}
	return ret;
}

int ekmfs_aws_creds_get(struct ekmfs_aws_cred_chain *c, struct ekmfs_aws_creds *out)
{
	time_t now = time(NULL);
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	if (!still_fresh(c, now)) {
		ret = fetch_checked(c->tc, out);
		if (!ret) {
			memcpy(c->cur, out, sizeof(*out));
			c->fetched = now;
		} else {
			ekmfs_wipe(out, sizeof(*out));
		}
	} else {
		memcpy(out, c->cur, sizeof(*out));
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}
