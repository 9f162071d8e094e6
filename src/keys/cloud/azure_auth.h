/*
 * azure_auth.h - Microsoft Entra ID tokens for Azure Key Vault, private to
 * src/keys/.
 *
 * Owns: obtaining a bearer token for the vault's resource, either with the
 * OAuth2 client-credentials grant (tenant id, client id, and the client
 * secret from client_secret_file or $AZURE_CLIENT_SECRET; authority host
 * overridable) or from the managed identity endpoint (IMDS, overridable),
 * and caching it until five minutes before it expires (half its life when
 * shorter). Tokens and secrets stay in secure memory and are never logged.
 */
#ifndef EKMFS_KEYS_AZURE_AUTH_H
#define EKMFS_KEYS_AZURE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "ekmfs/config.h"

#define EKMFS_AZURE_TOKEN_MAX 8192

struct ekmfs_azure_auth;

/* resource: "https://vault.azure.net" or "https://managedhsm.azure.net". */
int ekmfs_azure_auth_open(const struct ekmfs_tenant_config *tc, const char *resource,
			  struct ekmfs_azure_auth **out);
void ekmfs_azure_auth_close(struct ekmfs_azure_auth *a);

/* "Authorization: Bearer <token>" into hdr (secure memory, capacity cap);
 * force drops the cached token first (after a 401). 0; -EACCES when Entra
 * ID refuses the identity; -ENOKEY when no secret is configured; -EPERM for
 * a loose secret file; an outage errno. Thread-safe. */
int ekmfs_azure_auth_header(struct ekmfs_azure_auth *a, bool force, char *hdr, size_t cap);

/* Parse a token answer (either endpoint): the token is taken out of body
 * into token (capacity cap) and expires_in read as a number or a string.
 * 0 or -EPROTO. */
int ekmfs_azure_parse_token(char *body, char *token, size_t cap, long *expires_in);

/* A tenant or client id: configured, else from the environment variable
 * env (AZURE_TENANT_ID, AZURE_CLIENT_ID: what AKS workload identity
 * injects); "" when neither. */
const char *ekmfs_azure_id(const char *configured, const char *env);

#endif
