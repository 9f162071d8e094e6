/*
 * aws_creds.h - the AWS credential chain, private to src/keys/.
 *
 * Owns: finding AWS credentials in the order the AWS SDKs use and keeping
 * them fresh: environment variables, the shared credentials and config
 * files (profile from the configuration, else $AWS_PROFILE, else
 * "default"), a web identity token exchanged with STS
 * (AssumeRoleWithWebIdentity), container credentials (ECS/EKS), and EC2
 * instance metadata (IMDSv2). Temporary credentials are refreshed five
 * minutes before they expire (or half-way through a shorter life).
 *
 * Secrets (secret key, session token) live in secure memory and are never
 * logged; files holding them must pass the secrets-file rule.
 */
#ifndef EKMFS_KEYS_AWS_CREDS_H
#define EKMFS_KEYS_AWS_CREDS_H

#include <time.h>

#include "ekmfs/config.h"

#define EKMFS_AWS_AKID_MAX 128
#define EKMFS_AWS_SECRET_MAX 128
#define EKMFS_AWS_TOKEN_MAX 4096

/* Lives in secure memory (ekmfs_aws_creds_get copies into one). */
struct ekmfs_aws_creds {
	char access_key[EKMFS_AWS_AKID_MAX];
	char secret_key[EKMFS_AWS_SECRET_MAX];
	char session_token[EKMFS_AWS_TOKEN_MAX]; /* "" for long-term keys */
	time_t expires;                          /* 0: does not expire */
	char source[160];                        /* "environment", "profile 'x' in FILE"... */
};

struct ekmfs_aws_cred_chain;

/* Never fails for want of credentials (that shows at the first get). */
int ekmfs_aws_creds_open(const struct ekmfs_tenant_config *tc,
			 struct ekmfs_aws_cred_chain **out);
void ekmfs_aws_creds_close(struct ekmfs_aws_cred_chain *c);

/* Current credentials copied into *out (caller's secure memory). 0;
 * -ENOKEY when no source has any (message lists what was tried); -EPERM for
 * a loose secrets file; an outage errno when a credential service is
 * unreachable; -EACCES when STS refuses the web identity; -EINVAL when a
 * source gives an empty access key id or secret key; -EPROTO for an
 * answer that cannot be read, or credentials (or an IMDSv2 token) with a
 * space or control character, which would not fit in a header. Thread-safe. */
int ekmfs_aws_creds_get(struct ekmfs_aws_cred_chain *c, struct ekmfs_aws_creds *out);

/* The tenant's AWS region: region in its section, else $AWS_REGION, else
 * $AWS_DEFAULT_REGION, as the AWS SDKs do ("" when none). */
const char *ekmfs_aws_region(const struct ekmfs_tenant_config *tc);

#endif
