/*
 * fuzz_audit.c - the audit trail's parsers: record lines and the MAC chain
 * (verification, and the catch-up an append does on the log's tail), the
 * chain head, and the audit key document.
 *
 * A real volume is the fixture (fixtures/audit/, made by
 * make_audit_fixture.sh with the tools): its log is in the corpus, so the
 * records' MACs verify and a mutation lands anywhere in a valid chain.
 * Input: byte 0 the mode, the rest a file:
 *   0  the log, verified against the fixture's head
 *   1  the log, then one record appended (the tail catch-up, a torn last
 *      line cut), and verified before and after
 *   2  the chain head (.ekmfs/audit.head), the fixture's log verified
 *   3  the audit key document (.ekmfs/audit.key.json), opened
 * Calls (include/ekmfs/audit.h, keys.h, config.h): ekmfs_config_defaults,
 * ekmfs_keys_open, _volume, _provider, _close, ekmfs_audit_open,
 * ekmfs_audit_verify, ekmfs_audit_write, ekmfs_audit_close.
 *
 * Properties: verification returns 0 or -EBADMSG with a reason, counts no
 * more records than the log has lines, and passes only a log that reaches
 * the head (at most one record past it); an append to a log that verified
 * leaves one that verifies with one record more; a head or key document
 * that is not the fixture's own never verifies or opens.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/audit.h"
#include "ekmfs/config.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "fuzz.h"

static struct ekmfs_config cfg;
static struct ekmfs_keys *keys;
static struct ekmfs_audit *audit;
static int bfd = -1;
static char log_path[PATH_MAX], head_path[PATH_MAX], key_path[PATH_MAX];
static char *head_text, *key_text, *fixture_log;
static size_t head_len, key_len, fixture_log_len;
static uint64_t fixture_seq;          /* the fixture head's seq */

static void fixture_checks(void);
static int verify(struct ekmfs_audit_report *rep, size_t nlines);

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	FUZZ_CHECK(f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	FUZZ_CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char fix[PATH_MAX], root[PATH_MAX], backing[PATH_MAX], seed[PATH_MAX];

	(void)argc;
	(void)argv;
	fuzz_quiet();
	ekmfs_secmem_init();
	snprintf(fix, sizeof(fix), "%s/fixtures/audit", fuzz_srcdir());
	fuzz_path(root, "audit");
	FUZZ_CHECK(mkdir(root, 0700) == 0);
	fuzz_copy_tree(fix, root);
	fuzz_path(backing, "audit/backing");
	fuzz_path(log_path, "audit/audit.log");
	fuzz_path(head_path, "audit/backing/.ekmfs/" EKMFS_AUDIT_HEAD_FILE);
	fuzz_path(key_path, "audit/backing/.ekmfs/" EKMFS_AUDIT_KEY_FILE);
	ekmfs_config_defaults(&cfg);
	fuzz_path(cfg.tenants[0].key_file, "audit/local.key");
	snprintf(cfg.audit_file, sizeof(cfg.audit_file), "%s", log_path);
	bfd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(bfd >= 0);
	FUZZ_CHECK(ekmfs_keys_open(bfd, &cfg, &keys) == 0);
	FUZZ_CHECK(ekmfs_audit_open(bfd, &cfg, ekmfs_keys_volume(keys),
				    ekmfs_keys_provider(keys, EKMFS_DEFAULT_TENANT), &audit) == 0);
	head_text = slurp(head_path, &head_len);
	key_text = slurp(key_path, &key_len);
	/* The fixture's log, for mode 2 (skip the seed's mode byte). */
	snprintf(seed, sizeof(seed), "%s/corpus/audit/real-verify", fuzz_srcdir());
	fixture_log = slurp(seed, &fixture_log_len);
	fixture_checks();
	return 0;
}

/* The fixture's log back in place. */
static void fixture_log_back(void)
{
	fuzz_write_file(log_path, fixture_log + 1, fixture_log_len - 1);
}

static size_t lines(const uint8_t *p, size_t n)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++)
		count += p[i] == '\n';
	return count;
}

static void fixture_checks(void)
{
	struct ekmfs_audit_report rep;

	fixture_log_back();
	FUZZ_CHECK(verify(&rep, lines((const uint8_t *)fixture_log + 1,
				      fixture_log_len - 1)) == 0);
	fixture_seq = rep.head_seq;
	FUZZ_CHECK(fixture_seq > 0 && rep.records == fixture_seq);
}

static int verify(struct ekmfs_audit_report *rep, size_t nlines)
{
	const char *logs[] = { log_path };
	int rc;

	rc = ekmfs_audit_verify(audit, logs, 1, rep);
	fuzz_debug("verify: %d, %llu records, head %llu: %s", rc,
		   (unsigned long long)rep->records, (unsigned long long)rep->head_seq, rep->why);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	FUZZ_CHECK(rc == 0 || rep->why[0]);
	FUZZ_CHECK(rep->records <= nlines);
	if (rc == 0)
		FUZZ_CHECK(rep->records >= rep->head_seq && rep->records <= rep->head_seq + 1);
	return rc;
}

static void append(const uint8_t *log, size_t n)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	struct ekmfs_audit_report before, after;
	int ok, rc;

	ok = verify(&before, lines(log, n)) == 0;
	ev.event = "lock";
	ev.tenant = "default";
	rc = ekmfs_audit_write(audit, &ev);
	fuzz_debug("append: %d %s", rc, rc ? ekmfs_lasterr() : "");
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
	if (ok) {
		struct stat st;

		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(stat(log_path, &st) == 0);
		rc = verify(&after, lines(log, n) + 1);
		FUZZ_CHECK(rc == 0 && after.records == before.records + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ekmfs_audit_report rep;
	struct ekmfs_audit *other;
	int rc;

	if (size < 1)
		return 0;
	/* The fixture's head and key, unless the input is one of them. */
	fuzz_write_file(head_path, head_text, head_len);
	fuzz_write_file(key_path, key_text, key_len);
	switch (data[0] % 4) {
	case 0:
		fuzz_write_file(log_path, data + 1, size - 1);
		verify(&rep, lines(data + 1, size - 1));
		break;
	case 1:
		fuzz_write_file(log_path, data + 1, size - 1);
		append(data + 1, size - 1);
		break;
	case 2:
		/* A head that authenticates can only be the fixture's (its
		 * text may differ: spacing, order, hex case). */
		fuzz_write_file(head_path, data + 1, size - 1);
		fixture_log_back();
		rc = verify(&rep, lines((const uint8_t *)fixture_log + 1, fixture_log_len - 1));
		FUZZ_CHECK(rc != 0 || rep.head_seq == fixture_seq);
		break;
	default:
		/* A key document that opens gives the fixture's audit key: the
		 * fixture's log verifies under it. */
		fuzz_write_file(key_path, data + 1, size - 1);
		/* The fixture's log too: an open checks the log's end against
		 * the head, and moves the head up to a record a previous input
		 * left appended (the crash catch-up), which the fixture's log
		 * put back after it would then lack. */
		fixture_log_back();
		rc = ekmfs_audit_open(bfd, &cfg, ekmfs_keys_volume(keys),
				      ekmfs_keys_provider(keys, EKMFS_DEFAULT_TENANT), &other);
		fuzz_debug("open: %d %s", rc, rc ? ekmfs_lasterr() : "");
		FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTO || rc == -EKEYREJECTED ||
			   rc == -ENOKEY || rc == -EFBIG);
		if (rc == 0) {
			const char *logs[] = { log_path };

			fixture_log_back();
			FUZZ_CHECK(ekmfs_audit_verify(other, logs, 1, &rep) == 0);
			ekmfs_audit_close(other);
		}
		break;
	}
	return 0;
}
