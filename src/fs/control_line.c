/*
 * control_line.c - reading and parsing a request of the control socket
 * (control_line.h; control.c documents the protocol).
 *
 * The parser accepts exactly the requests ekmfs-admin and ekmfs-rotate
 * send and nothing that merely resembles them (no leading '+', zeros or
 * spaces in a number, no empty or odd tenant name), so what reaches the
 * key manager and the logs is always one of a few known shapes. The peer
 * is root, but a request line is still input: it goes into the daemon's
 * log and the audit trail.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "control_line.h"

#define TENANT_NAME_MAX 63           /* EKMFS_NAME_MAX - 1 */

size_t efs_control_read_line(int c, char req[EFS_CTL_REQUEST_MAX + 1])
{
	size_t got = 0;
	ssize_t n;

	while (got < EFS_CTL_REQUEST_MAX && !memchr(req, '\n', got) &&
	       (n = read(c, req + got, EFS_CTL_REQUEST_MAX - got)) > 0)
		got += (size_t)n;
	req[got] = '\0';
	req[strcspn(req, "\r\n")] = '\0';
	return strlen(req);
}

static bool tenant_name(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= TENANT_NAME_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* "0".."600", decimal, no sign or leading zero. */
static bool seconds(const char *s, unsigned *out)
{
	size_t n = strspn(s, "0123456789");
	unsigned v = 0;

	if (n == 0 || n > 3 || s[n] || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	*out = v;
	return v <= EFS_CTL_FENCE_MAX;
}

/* "verb" alone, or "verb ARG": ARG into *arg (NULL when alone). */
static bool verb_arg(const char *req, const char *verb, const char **arg)
{
	size_t n = strlen(verb);

	if (strncmp(req, verb, n) != 0 || (req[n] != ' ' && req[n] != '\0'))
		return false;
	*arg = req[n] ? req + n + 1 : NULL;
	return true;
}

int efs_control_parse(char *req, struct efs_ctl_request *r, char *err, size_t errlen)
{
	const char *arg;

	memset(r, 0, sizeof(*r));
	err[0] = '\0';
	if (verb_arg(req, "lock", &arg) || verb_arg(req, "unlock", &arg)) {
		r->verb = req[0] == 'l' ? EFS_CTL_LOCK : EFS_CTL_UNLOCK;
		if (arg && !tenant_name(arg)) {
			snprintf(err, errlen, "error EINVAL not a tenant name (letters, digits, "
				 "'.', '_', '-'; at most %d)\n", TENANT_NAME_MAX);
			return -EINVAL;
		}
		r->tenant = arg;
		return 0;
	}
	if (strcmp(req, "status") == 0 || strcmp(req, "tenants") == 0) {
		r->verb = req[0] == 's' ? EFS_CTL_STATUS : EFS_CTL_TENANTS;
		return 0;
	}
	if (strcmp(req, "inodes") == 0) {
		r->verb = EFS_CTL_INODES;
		return 0;
	}
	if (verb_arg(req, "fence", &arg)) {
		if (!arg || !seconds(arg, &r->fence_seconds)) {
			snprintf(err, errlen, "error EINVAL fence takes seconds, 0..%d\n",
				 EFS_CTL_FENCE_MAX);
			return -EINVAL;
		}
		r->verb = EFS_CTL_FENCE;
		return 0;
	}
	snprintf(err, errlen, "error EINVAL unknown request (lock, unlock, status, tenants, "
		 "inodes, fence)\n");
	return -EINVAL;
}
