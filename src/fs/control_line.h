/*
 * control_line.h - the request line of the daemon's control socket
 * (control_line.c): read and parse, apart from the daemon so that the fuzz
 * harness (tests/fuzz/fuzz_control.c) runs it alone. control.c owns the
 * socket and what each request does.
 */
#ifndef EKMFS_FS_CONTROL_LINE_H
#define EKMFS_FS_CONTROL_LINE_H

#include <stddef.h>

#define EFS_CTL_REQUEST_MAX 256      /* bytes of a request, line end included */
#define EFS_CTL_FENCE_MAX 600        /* seconds */

enum efs_ctl_verb { EFS_CTL_LOCK, EFS_CTL_UNLOCK, EFS_CTL_STATUS, EFS_CTL_TENANTS,
		    EFS_CTL_INODES, EFS_CTL_FENCE };

struct efs_ctl_request {
	enum efs_ctl_verb verb;
	const char *tenant;          /* lock, unlock: a tenant name, NULL: every tenant */
	unsigned fence_seconds;      /* fence: 0..EFS_CTL_FENCE_MAX (0 releases) */
};

/* Read one request from the connection c: up to its first line end, at
 * most EFS_CTL_REQUEST_MAX bytes, into req, NUL-terminated without the line
 * end. Returns its length (0 when the peer sent nothing before closing or
 * timing out). */
size_t efs_control_read_line(int c, char req[EFS_CTL_REQUEST_MAX + 1]);

/* Parse a request read by efs_control_read_line (r->tenant points into
 * req). The grammar is exact, one space between words:
 *   lock [TENANT] | unlock [TENANT] | status | tenants | inodes | fence SECONDS
 * with TENANT a tenant name (letters, digits, '.', '_', '-'; at most 63)
 * and SECONDS 0..600 in decimal without leading zeros. 0, or -EINVAL with
 * the one-line answer for the client in err ("error EINVAL ...\n"). */
int efs_control_parse(char *req, struct efs_ctl_request *r, char *err, size_t errlen);

#endif
