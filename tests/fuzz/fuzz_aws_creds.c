/*
 * fuzz_aws_creds.c - the AWS credential chain's parsers: the shared
 * credentials and config files, STS's AssumeRoleWithWebIdentity XML, and
 * the JSON of the container credentials endpoint and of EC2 instance
 * metadata (the network is the fuzz input: transport.c).
 *
 * Input: byte 0 picks the source (0: credentials file, 1: config file, 2:
 * web identity, 3: container, 4: instance metadata), byte 1 the profile
 * (even: "default", odd: "fuzz"); the rest is the file, or the responses.
 * Calls (src/keys/cloud/aws_creds.h): ekmfs_aws_creds_open, _get, _close.
 *
 * Not fuzzed: credential_process (it runs a shell command; inputs naming
 * it are skipped).
 *
 * Properties: get returns 0 or a documented errno with a message; what it
 * returns is NUL-terminated inside its fields, with an access key and a
 * secret key, all visible ASCII (they go into headers); on failure the
 * output is wiped. transport.c refuses a request header with a line end.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ekmfs/config.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "fuzz.h"
#include "transport.h"
#include "../../src/keys/cloud/aws_creds.h"

static struct ekmfs_config cfg;
static char creds_path[PATH_MAX], config_path[PATH_MAX], token_path[PATH_MAX];

static const char *const env_names[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_ENDPOINT_URL_STS",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char token[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2ln\n";

	(void)argc;
	(void)argv;
	fuzz_quiet();
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
	fuzz_path(creds_path, "credentials");
	fuzz_path(config_path, "config");
	fuzz_path(token_path, "web-identity-token");
	fuzz_write_file(token_path, token, sizeof(token) - 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", creds_path, 1);
	setenv("AWS_CONFIG_FILE", config_path, 1);
	setenv("AWS_ENDPOINT_URL_STS", "https://sts.fuzz.invalid/", 1);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254/", 1);
	ekmfs_config_defaults(&cfg);
	snprintf(cfg.tenants[0].provider, sizeof(cfg.tenants[0].provider), "aws-kms");
	snprintf(cfg.tenants[0].aws.region, sizeof(cfg.tenants[0].aws.region), "eu-west-1");
	return 0;
}

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static bool visible(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e)
			return false;
	return true;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		if (*b++)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ekmfs_tenant_config *tc = &cfg.tenants[0];
	struct ekmfs_aws_cred_chain *chain;
	struct ekmfs_aws_creds *cr;
	const uint8_t *rest = data + 2;
	size_t n = size - 2;
	int rc;

	if (size < 2)
		return 0;
	/* A profile's credential_process is a shell command that the chain
	 * runs: libFuzzer learns the key from the parser's strcmp within
	 * seconds, and would then run whatever shell text it makes up (seen in
	 * CI: a failed run). The parser matches the key exactly, so an input
	 * without the word never reaches it; its output parsing is covered by
	 * tests/integration/test_byok_aws.py, which runs real helpers. */
	if (memmem(data, size, "credential_process", strlen("credential_process")))
		return 0;
	/* Only the chosen source has anything to offer. */
	fuzz_write_file(creds_path, "", 0);
	fuzz_write_file(config_path, "", 0);
	unsetenv("AWS_ROLE_ARN");
	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	snprintf(tc->aws.profile, sizeof(tc->aws.profile), "%s", data[1] & 1 ? "fuzz" : "");
	fuzz_transport_set(NULL, 0);
	switch (data[0] % 5) {
	case 0:
		fuzz_write_file(creds_path, rest, n);
		break;
	case 1:
		fuzz_write_file(config_path, rest, n);
		break;
	case 2:
		tc->aws.profile[0] = '\0';
		setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/fuzz", 1);
		setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_path, 1);
		fuzz_transport_set(rest, n);
		break;
	case 3:
		tc->aws.profile[0] = '\0';
		setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
		fuzz_transport_set(rest, n);
		break;
	default:
		tc->aws.profile[0] = '\0';
		unsetenv("AWS_EC2_METADATA_DISABLED");
		fuzz_transport_set(rest, n);
		break;
	}
	cr = ekmfs_secure_alloc(sizeof(*cr));
	FUZZ_CHECK(cr);
	FUZZ_CHECK(ekmfs_aws_creds_open(tc, &chain) == 0);
	ekmfs_clearerr();
	rc = ekmfs_aws_creds_get(chain, cr);
	fuzz_debug("source %d: %d %s (%u requests)", data[0] % 5, rc, ekmfs_lasterr(),
		   fuzz_transport_requests());
	FUZZ_CHECK(rc == 0 || rc == -ENOKEY || rc == -EPERM || rc == -EACCES || rc == -EPROTO ||
		   rc == -EINVAL || ekmfs_http_is_outage(rc));
	if (rc == 0) {
		FUZZ_CHECK(terminated(cr->access_key, sizeof(cr->access_key)) &&
			   terminated(cr->secret_key, sizeof(cr->secret_key)) &&
			   terminated(cr->session_token, sizeof(cr->session_token)) &&
			   terminated(cr->source, sizeof(cr->source)));
		FUZZ_CHECK(cr->access_key[0] && cr->secret_key[0]);
		FUZZ_CHECK(visible(cr->access_key) && visible(cr->secret_key) &&
			   visible(cr->session_token));
	} else {
		FUZZ_CHECK(ekmfs_lasterr()[0]);
		FUZZ_CHECK(all_zero(cr, sizeof(*cr)));
	}
	ekmfs_aws_creds_close(chain);
	ekmfs_secure_free(cr, sizeof(*cr));
	return 0;
}
