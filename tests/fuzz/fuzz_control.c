/*
 * fuzz_control.c - the daemon's control socket: reading a request line
 * from a connection and parsing it.
 *
 * Input: the bytes a client sends (at most 4096; the socket pair holds
 * them all before the read). Calls (src/fs/control_line.h):
 * efs_control_read_line, efs_control_parse.
 *
 * Properties: the line read is the input's first line (without its line
 * end, at most EFS_CTL_REQUEST_MAX bytes); an accepted request prints back
 * to exactly that line (the grammar has one spelling per request), with a
 * valid tenant name or fence seconds in range; a refused one gets a single
 * "error EINVAL ..." line.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "../../src/fs/control_line.h"

#define INPUT_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

static void canonical(const struct efs_ctl_request *r, char *out, size_t len)
{
	static const char *const verbs[] = {
		[EFS_CTL_LOCK] = "lock", [EFS_CTL_UNLOCK] = "unlock", [EFS_CTL_STATUS] = "status",
		[EFS_CTL_TENANTS] = "tenants", [EFS_CTL_INODES] = "inodes", [EFS_CTL_FENCE] = "fence",
	};

	if (r->verb == EFS_CTL_FENCE)
		snprintf(out, len, "fence %u", r->fence_seconds);
	else
		snprintf(out, len, "%s%s%s", verbs[r->verb], r->tenant ? " " : "",
			 r->tenant ? r->tenant : "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char req[EFS_CTL_REQUEST_MAX + 1], err[600], again[EFS_CTL_REQUEST_MAX + 16];
	struct efs_ctl_request r;
	size_t len, line;
	int sv[2], rc;

	if (size > INPUT_MAX)
		return 0;
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	FUZZ_CHECK(write(sv[0], data, size) == (ssize_t)size);
	shutdown(sv[0], SHUT_WR);
	len = efs_control_read_line(sv[1], req);
	close(sv[0]);
	close(sv[1]);

	line = strcspn(req, "\r\n");
	FUZZ_CHECK(len == strlen(req) && len == line && len <= EFS_CTL_REQUEST_MAX);
	FUZZ_CHECK(len <= size && memcmp(req, data, len) == 0);
	rc = efs_control_parse(req, &r, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc) {
		FUZZ_CHECK(strncmp(err, "error EINVAL ", 13) == 0);
		FUZZ_CHECK(strchr(err, '\n') == err + strlen(err) - 1);
		return 0;
	}
	canonical(&r, again, sizeof(again));
	FUZZ_CHECK(strcmp(again, req) == 0);
	FUZZ_CHECK(r.verb != EFS_CTL_FENCE || r.fence_seconds <= EFS_CTL_FENCE_MAX);
	FUZZ_CHECK(!r.tenant || (r.tenant[0] && strlen(r.tenant) < 64 &&
				 !strpbrk(r.tenant, " /\t\"'\\")));
	return 0;
}
