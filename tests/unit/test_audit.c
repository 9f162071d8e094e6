/*
 * test_audit.c - the audit chain (src/audit/): every kind of edit to the
 * log or the head is detected, crash leftovers are not mistaken for attacks,
 * and the audit key cannot be confused with a KEK record.
 *
 * Each test makes a real volume (local key file provider) in a temp dir,
 * writes records through ekmfs_audit_write, edits the log as an attacker
 * would, and checks ekmfs_audit_verify's verdict and the seq it names.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/audit.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define NREC 6

struct fix {
	char dir[64], backing[128], key[128], log[128];
	int bfd;
	struct ekmfs_config cfg;
	struct ekmfs_volume vol;
	struct ekmfs_keys *keys;
	struct ekmfs_audit *audit;
};

static struct fix F;

static int setup(void)
{
	struct fix *f = &F;
	int ret;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/ekmfs-audit-XXXXXX");
	if (!mkdtemp(f->dir))
		return -errno;
	snprintf(f->backing, sizeof(f->backing), "%.60s/backing", f->dir);
	snprintf(f->key, sizeof(f->key), "%.60s/local.key", f->dir);
	snprintf(f->log, sizeof(f->log), "%.60s/logs/audit.log", f->dir);
	mkdir(f->backing, 0700);
	f->bfd = open(f->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ekmfs_config_defaults(&f->cfg);
	snprintf(f->cfg.tenants[0].key_file, PATH_MAX, "%.120s", f->key);
	snprintf(f->cfg.audit_file, PATH_MAX, "%.120s", f->log);
	ret = ekmfs_volume_init(f->bfd, &f->cfg, &f->vol);
	if (!ret)
		ret = ekmfs_keys_open(f->bfd, &f->cfg, &f->keys);
	if (!ret)
		ret = ekmfs_audit_open(f->bfd, &f->cfg, &f->vol,
				       ekmfs_keys_provider(f->keys, "default"), &f->audit);
	if (ret)
		fprintf(stderr, "setup: %s\n", ekmfs_lasterr());
	return ret;
}

static void teardown(void)
{
	char cmd[128];

	ekmfs_audit_close(F.audit);
	ekmfs_keys_close(F.keys);
	close(F.bfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", F.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", F.dir);
}

static int write_n(int n)
{
	for (int i = 0; i < n; i++) {
		struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
		char path[32];
		int ret;

		snprintf(path, sizeof(path), "dir/file-%d", i);
		ev.event = i % 2 ? "kek_rotated" : "decrypt_failed";
		ev.tenant = "default";
		ev.kek_version = (uint32_t)i + 1;
		ev.path = path;
		ev.uid = 0;
		ev.pid = 42;
		ret = ekmfs_audit_write(F.audit, &ev);
		if (ret)
			return ret;
	}
	return 0;
}

/* The log as lines (each with its '\n'); returns the count. */
static int read_lines(char lines[][EKMFS_AUDIT_LINE_MAX], int cap)
{
	FILE *f = fopen(F.log, "r");
	int n = 0;

	if (!f)
		return -1;
	while (n < cap && fgets(lines[n], EKMFS_AUDIT_LINE_MAX, f))
		n++;
	fclose(f);
	return n;
}

static void write_lines(char lines[][EKMFS_AUDIT_LINE_MAX], int n)
{
	FILE *f = fopen(F.log, "w");

	for (int i = 0; i < n; i++)
		fputs(lines[i], f);
	fclose(f);
}

static int verify(struct ekmfs_audit_report *rep)
{
	return ekmfs_audit_verify(F.audit, NULL, 0, rep);
}

static char lines[NREC + 4][EKMFS_AUDIT_LINE_MAX];

static void test_intact_chain(void)
{
	struct ekmfs_audit_report rep;
	json_object *o, *v;

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(verify(&rep), 0);          /* empty chain */
	CHECK_EQ_INT(rep.records, 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(verify(&rep), 0);
	CHECK_EQ_INT(rep.records, NREC);
	CHECK_EQ_INT(rep.head_seq, NREC);
	/* Every line is one JSON object with the documented fields. */
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	o = json_tokener_parse(lines[2]);
	CHECK(o != NULL);
	CHECK(json_object_object_get_ex(o, "seq", &v) && json_object_get_int(v) == 3);
	CHECK(json_object_object_get_ex(o, "time", &v));
	CHECK(json_object_object_get_ex(o, "event", &v) &&
	      strcmp(json_object_get_string(v), "decrypt_failed") == 0);
	CHECK(json_object_object_get_ex(o, "outcome", &v) &&
	      strcmp(json_object_get_string(v), "success") == 0);
	CHECK(json_object_object_get_ex(o, "mac", &v) && strlen(json_object_get_string(v)) == 64);
	CHECK(json_object_object_get_ex(o, "path", &v));
	json_object_put(o);
	teardown();
}

static void test_edit_detected(void)
{
	struct ekmfs_audit_report rep;
	char *p;

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	p = strstr(lines[3], "file-3");
	CHECK(p != NULL);
	if (p)
		p[5] = '9';                     /* file-3 -> file-9 */
	write_lines(lines, NREC);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 4);
	CHECK(strstr(rep.why, "MAC mismatch") != NULL);
	teardown();
}

static void test_reorder_detected(void)
{
	struct ekmfs_audit_report rep;
	char tmp[EKMFS_AUDIT_LINE_MAX];

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	memcpy(tmp, lines[1], sizeof(tmp));
	memcpy(lines[1], lines[2], sizeof(tmp));
	memcpy(lines[2], tmp, sizeof(tmp));
	write_lines(lines, NREC);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 2);
	teardown();
}

static void test_insert_detected(void)
{
	struct ekmfs_audit_report rep;
	char *seq;

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	/* A forged record that copies a real one's MAC, renumbered. */
	memmove(lines[3], lines[2], sizeof(lines[0]) * (NREC - 2));
	seq = strstr(lines[3], "\"seq\":3");
	CHECK(seq != NULL);
	if (seq)
		seq[6] = '4';
	write_lines(lines, NREC + 1);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 4);
	teardown();

	/* A line of text that is no record at all. */

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	memmove(lines[3], lines[2], sizeof(lines[0]) * (NREC - 2));
	snprintf(lines[2], sizeof(lines[2]), "{\"seq\":3,\"event\":\"nothing happened\"}\n");
	write_lines(lines, NREC + 1);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 3);
	teardown();
}

static void test_delete_detected(void)
{
	struct ekmfs_audit_report rep;

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	memmove(lines[2], lines[3], sizeof(lines[0]) * (NREC - 3));
	write_lines(lines, NREC - 1);           /* seq 3 gone */
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 3);
	teardown();

	/* The first record deleted. */
	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	write_lines(lines + 1, NREC - 1);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 1);
	teardown();
}

static void test_truncation_detected(void)
{
	struct ekmfs_audit_report rep;

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(NREC), 0);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), NREC);
	write_lines(lines, NREC - 2);           /* the last two cut off */
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, NREC - 1);
	CHECK(strstr(rep.why, "truncated") != NULL);
	write_lines(lines, 0);                  /* emptied */
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 1);
	teardown();
}

static int copy_file(const char *from, const char *to)
{
	char buf[4096];
	FILE *a = fopen(from, "r"), *b = fopen(to, "w");
	size_t n;

	if (!a || !b)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
		fwrite(buf, 1, n, b);
	fclose(a);
	fclose(b);
	return 0;
}

static void test_head_attacks(void)
{
	struct ekmfs_audit_report rep;
	char head[256], old[256];
	FILE *f;

	CHECK_EQ_INT(setup(), 0);
	snprintf(head, sizeof(head), "%s/.ekmfs/audit.head", F.backing);
	snprintf(old, sizeof(old), "%s/old.head", F.dir);
	CHECK_EQ_INT(write_n(2), 0);
	CHECK_EQ_INT(copy_file(head, old), 0);
	CHECK_EQ_INT(write_n(3), 0);
	/* Head rolled back two records while the log is intact. */
	CHECK_EQ_INT(copy_file(old, head), 0);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK(strstr(rep.why, "behind") != NULL);
	/* A head with a changed seq does not authenticate. */
	f = fopen(head, "w");
	fprintf(f, "{\"format\": \"ekmfs-audit-head\", \"version\": 1, \"seq\": 5,\n"
		" \"mac\": \"%064d\",\n \"head_mac\": \"%064d\"}\n", 0, 0);
	fclose(f);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK(strstr(rep.why, "authenticate") != NULL);
	/* Deleted head: reported, and appending refuses to start a new chain. */
	unlink(head);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK(strstr(rep.why, "missing") != NULL);
	CHECK(write_n(1) == -ENOENT);
	teardown();
}

/* A crash between the log append and the head update, and a torn line. */
static void test_crash_leftovers(void)
{
	struct ekmfs_audit_report rep;
	char head[256], old[256];
	FILE *f;

	CHECK_EQ_INT(setup(), 0);
	snprintf(head, sizeof(head), "%s/.ekmfs/audit.head", F.backing);
	snprintf(old, sizeof(old), "%s/old.head", F.dir);
	CHECK_EQ_INT(write_n(3), 0);
	CHECK_EQ_INT(copy_file(head, old), 0);
	CHECK_EQ_INT(write_n(1), 0);
	CHECK_EQ_INT(copy_file(old, head), 0);  /* head one behind: the crash */
	CHECK_EQ_INT(verify(&rep), 0);
	CHECK_EQ_INT(write_n(1), 0);            /* catches up, no duplicate seq 4 */
	CHECK_EQ_INT(verify(&rep), 0);
	CHECK_EQ_INT(rep.records, 5);
	CHECK_EQ_INT(rep.head_seq, 5);
	/* A torn last line is ignored, then cut off by the next writer. */
	f = fopen(F.log, "a");
	fputs("{\"seq\":6,\"time\":\"2026-", f);
	fclose(f);
	CHECK_EQ_INT(verify(&rep), 0);
	CHECK_EQ_INT(write_n(1), 0);
	CHECK_EQ_INT(verify(&rep), 0);
	CHECK_EQ_INT(rep.records, 6);
	teardown();
}

/* Rotated logs verify when given in order; alone, the newer one does not. */
static void test_rotated_logs(void)
{
	struct ekmfs_audit_report rep;
	char old[256];
	const char *both[2];

	CHECK_EQ_INT(setup(), 0);
	snprintf(old, sizeof(old), "%s/audit.log.1", F.dir);
	CHECK_EQ_INT(write_n(3), 0);
	CHECK_EQ_INT(rename(F.log, old), 0);
	CHECK_EQ_INT(write_n(2), 0);
	CHECK_EQ_INT(verify(&rep), -EBADMSG);
	CHECK_EQ_INT(rep.bad_seq, 1);
	both[0] = old;
	both[1] = F.log;
	CHECK_EQ_INT(ekmfs_audit_verify(F.audit, both, 2, &rep), 0);
	CHECK_EQ_INT(rep.records, 5);
	teardown();
}

/* The audit key survives a re-wrap and a reopen; a KEK record's blob put in
 * its place does not open (KEK version 0 in its context). */
static void test_key_handling(void)
{
	struct ekmfs_audit_report rep;
	struct ekmfs_provider *p;
	struct ekmfs_audit *again = NULL;
	struct ekmfs_keyring kr;
	char path[256], b64[128];
	FILE *f;

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(write_n(2), 0);
	p = ekmfs_keys_provider(F.keys, "default");
	CHECK_EQ_INT(ekmfs_audit_key_rewrap(F.bfd, &F.vol, p, p, true), 0);
	CHECK_EQ_INT(ekmfs_audit_key_rewrap(F.bfd, &F.vol, p, p, false), 0);
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &again), 0);
	CHECK_EQ_INT(ekmfs_audit_verify(again, NULL, 0, &rep), 0);
	CHECK_EQ_INT(rep.records, 2);
	ekmfs_audit_close(again);
	again = NULL;

	CHECK_EQ_INT(ekmfs_keyring_read(F.bfd, &kr), 0);
	ekmfs_b64_encode(kr.tenants[0].keks[0].wrapped.blob, kr.tenants[0].keks[0].wrapped.len,
			 b64);
	snprintf(path, sizeof(path), "%s/.ekmfs/audit.key.json", F.backing);
	f = fopen(path, "w");
	fprintf(f, "{\"format\": \"ekmfs-audit-key\", \"version\": 1, \"tenant\": \"default\","
		" \"created\": \"2026-11-22T23:01:11Z\", \"wraps\": [{\"cmk_ref\": \"%s\","
		" \"cmk_version\": \"%s\", \"wrapped\": \"%s\", \"mac\": \"\"}]}\n",
		kr.tenants[0].keks[0].wrapped.cmk_ref, kr.tenants[0].keks[0].wrapped.cmk_version,
		b64);
	fclose(f);
	ekmfs_keyring_free(&kr);
	CHECK(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &again) == -EKEYREJECTED);
	CHECK(again == NULL);
	teardown();
}

/* The asynchronous writer drops beyond its rate and says so in the chain. */
static void test_async_rate_limit(void)
{
	struct ekmfs_audit_report rep;
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	int dropped_records = 0;

	CHECK_EQ_INT(setup(), 0);
	CHECK_EQ_INT(ekmfs_audit_start_async(F.audit, 2), 0);   /* burst 10 */
	ev.event = "decrypt_failed";
	for (int i = 0; i < 100; i++)
		ekmfs_audit_post(F.audit, &ev);
	ekmfs_audit_flush(F.audit);
	CHECK_EQ_INT(verify(&rep), 0);
	CHECK(rep.records >= 10 && rep.records <= 13);
	{
		FILE *f = fopen(F.log, "r");
		char buf[EKMFS_AUDIT_LINE_MAX];

		while (f && fgets(buf, sizeof(buf), f))
			if (strstr(buf, "audit_events_dropped"))
				dropped_records++;
		if (f)
			fclose(f);
	}
	CHECK(dropped_records >= 1);
	teardown();
}

/* The trail fails closed: a writer or an open refuses a head rolled back
 * against the log, records cut from the log's end, and a key deleted while
 * its chain remains; none of them starts a second chain. */
static void test_fails_closed(void)
{
	struct ekmfs_audit_report rep;
	struct ekmfs_provider *p;
	struct ekmfs_audit *again = NULL;
	char head[256], old[256], cur[256], key[256], keep[256];
	int n;

	CHECK_EQ_INT(setup(), 0);
	p = ekmfs_keys_provider(F.keys, "default");
	snprintf(head, sizeof(head), "%s/.ekmfs/audit.head", F.backing);
	snprintf(key, sizeof(key), "%s/.ekmfs/audit.key.json", F.backing);
	snprintf(old, sizeof(old), "%s/old.head", F.dir);
	snprintf(keep, sizeof(keep), "%s/key.json", F.dir);
	snprintf(cur, sizeof(cur), "%s/cur.head", F.dir);
	CHECK_EQ_INT(write_n(2), 0);
	CHECK_EQ_INT(copy_file(head, old), 0);
	CHECK_EQ_INT(write_n(2), 0);
	CHECK_EQ_INT(copy_file(head, cur), 0);

	/* Head rolled back two records: no write (no seq used twice), no open. */
	CHECK_EQ_INT(copy_file(old, head), 0);
	CHECK_EQ_INT(write_n(1), -EBADMSG);
	CHECK(strstr(ekmfs_lasterr(), "rolled back") != NULL);
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &again), -EBADMSG);
	CHECK(again == NULL);
	CHECK_EQ_INT(read_lines(lines, NREC + 4), 4);

	/* Records cut from the log's end (the head is the real one). */
	CHECK_EQ_INT(copy_file(cur, head), 0);
	CHECK_EQ_INT(verify(&rep), 0);
	n = read_lines(lines, NREC + 4);
	write_lines(lines, n - 1);
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &again), -EBADMSG);
	CHECK(strstr(ekmfs_lasterr(), "cut from the log") != NULL);
	write_lines(lines, n);
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &again), 0);
	ekmfs_audit_close(again);
	again = NULL;

	/* The key deleted: no new key, no new chain, with the head or the log. */
	CHECK_EQ_INT(copy_file(key, keep), 0);
	unlink(key);
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &again), -EBADMSG);
	CHECK(strstr(ekmfs_lasterr(), "missing") != NULL);
	unlink(head);
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &again), -EBADMSG);
	CHECK(strstr(ekmfs_lasterr(), "records in the log") != NULL);
	CHECK(access(key, F_OK) != 0);
	CHECK(access(head, F_OK) != 0);
	teardown();
}

/* [audit] enabled = false: no trail, a mark; the next open with the log on
 * records the gap and removes the mark. */
static void test_off_and_back_on(void)
{
	struct ekmfs_provider *p;
	struct ekmfs_audit *off = (struct ekmfs_audit *)&off, *on = NULL;
	char mark[256], buf[EKMFS_AUDIT_LINE_MAX];
	FILE *f;
	int n;

	CHECK_EQ_INT(setup(), 0);
	p = ekmfs_keys_provider(F.keys, "default");
	snprintf(mark, sizeof(mark), "%s/.ekmfs/audit.off", F.backing);
	CHECK_EQ_INT(write_n(1), 0);
	F.cfg.audit_enabled = false;
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &off), 0);
	CHECK(off == NULL);
	CHECK_EQ_INT(access(mark, F_OK), 0);
	f = fopen(mark, "r");
	CHECK(f && fgets(buf, sizeof(buf), f) && strstr(buf, "since ") == buf);
	if (f)
		fclose(f);
	F.cfg.audit_enabled = true;
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol, p, &on), 0);
	CHECK(access(mark, F_OK) != 0);
	n = read_lines(lines, NREC + 4);
	CHECK_EQ_INT(n, 2);
	CHECK(n == 2 && strstr(lines[1], "\"event\":\"audit_resumed\"") != NULL);
	CHECK(n == 2 && strstr(lines[1], "the audit log was off: since ") != NULL);
	ekmfs_audit_close(on);
	teardown();
}

/* The keyring anchor (AUDIT.md): a noted generation reaches the head at
 * the next append, never goes down, survives a reopen, and is covered by
 * the head's MAC (an edited value does not authenticate). */
static void test_keyring_anchor(void)
{
	struct ekmfs_audit_report rep;
	char head[256], *text = NULL, *at;
	FILE *f;
	long n;

	CHECK_EQ_INT(setup(), 0);
	snprintf(head, sizeof(head), "%s/.ekmfs/audit.head", F.backing);
	CHECK_EQ_INT(ekmfs_audit_keyring_generation(F.audit), 0);
	ekmfs_audit_note_keyring(F.audit, 7);
	ekmfs_audit_note_keyring(F.audit, 5);           /* never lowers it */
	CHECK_EQ_INT(write_n(1), 0);
	ekmfs_audit_close(F.audit);
	F.audit = NULL;
	CHECK_EQ_INT(ekmfs_audit_open(F.bfd, &F.cfg, &F.vol,
				      ekmfs_keys_provider(F.keys, "default"), &F.audit), 0);
	CHECK_EQ_INT(ekmfs_audit_keyring_generation(F.audit), 7);
	/* Another writer's lower note keeps the head's value. */
	ekmfs_audit_note_keyring(F.audit, 3);
	CHECK_EQ_INT(write_n(1), 0);
	CHECK_EQ_INT(verify(&rep), 0);
	/* 7 -> 9 in the text: the head no longer authenticates. */
	f = fopen(head, "r");
	CHECK(f != NULL);
	if (f) {
		text = calloc(1, 4096);
		n = (long)fread(text, 1, 4095, f);
		fclose(f);
		CHECK(n > 0);
		at = strstr(text, "\"keyring_generation\": 7");
		CHECK(at != NULL);
		if (at) {
			at[strlen("\"keyring_generation\": ")] = '9';
			f = fopen(head, "w");
			fputs(text, f);
			fclose(f);
			CHECK_EQ_INT(verify(&rep), -EBADMSG);
			CHECK(strstr(rep.why, "authenticate") != NULL);
		}
		free(text);
	}
	teardown();
}

int main(void)
{
	ekmfs_secmem_init();
	RUN(test_intact_chain);
	RUN(test_edit_detected);
	RUN(test_reorder_detected);
	RUN(test_insert_detected);
	RUN(test_delete_detected);
	RUN(test_truncation_detected);
	RUN(test_head_attacks);
	RUN(test_crash_leftovers);
	RUN(test_rotated_logs);
	RUN(test_key_handling);
	RUN(test_async_rate_limit);
	RUN(test_fails_closed);
	RUN(test_off_and_back_on);
	RUN(test_keyring_anchor);
	return CHECK_DONE();
}
