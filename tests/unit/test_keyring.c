/*
 * test_keyring.c - volume.json and keyring.json: round trips, strict parsing
 * of malformed documents, atomic replacement, the meta lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

static char root[] = "/tmp/ekmfs-test-keyring-XXXXXX";
static int ncase;

/* A fresh empty backing directory; returns its fd. */
static int new_backing(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/b%d", root, ncase++);
	if (mkdir(path, 0700) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY);
	return fd;
}

static void rm_tree(const char *path)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
}

/* The descriptor of the test volumes, and a MAC key with a stand-in wrap
 * (the volume layer never unwraps it). */
static const struct ekmfs_volume test_vol = {
	.format_version = EKMFS_VOLUME_VERSION, .block_size = 4096, .created = 1790000000,
	.volume_id = { 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
};

static const struct ekmfs_keyring_key *test_mk(void)
{
	static struct ekmfs_keyring_key mk;

	memset(mk.key, 0x5a, sizeof(mk.key));
	mk.wrapped.len = 48;
	memset(mk.wrapped.blob, 0xc3, mk.wrapped.len);
	snprintf(mk.wrapped.cmk_ref, sizeof(mk.wrapped.cmk_ref), "local:test");
	snprintf(mk.wrapped.cmk_version, sizeof(mk.wrapped.cmk_version), "0011");
	return &mk;
}

static int write_raw(int bfd, const char *name, const char *text, size_t len)
{
	char rel[64];
	int fd;
	ssize_t n;

	mkdirat(bfd, EKMFS_META_DIR, 0700);
	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, name);
	fd = openat(bfd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static const char good_keyring[] =
	"{\"format\":\"ekmfs-keyring\",\"version\":1,\"generation\":7,\"tenants\":[\n"
	"{\"name\":\"default\",\"id\":1,\"provider\":\"local\",\"kdf\":\"\",\"current_version\":2,"
	"\"last_rotation\":\"2026-11-22T10:00:00Z\",\"last_cmk_change\":\"2026-01-02T03:04:05Z\","
	"\"keks\":[{\"version\":1,\"state\":\"retired\",\"created\":\"2026-01-02T03:04:05Z\","
	"\"cmk_ref\":\"local:key-file\",\"cmk_version\":\"0123456789abcdef\",\"wrapped\":\"AAECAwQ=\"},"
	"{\"version\":2,\"state\":\"active\",\"created\":\"2026-11-22T10:00:00Z\","
	"\"cmk_ref\":\"local:key-file\",\"cmk_version\":\"0123456789abcdef\",\"wrapped\":\"BQYH\"}]}]}\n";

/* good_keyring with the first occurrence of from replaced by to. */
static char *mutate(const char *from, const char *to)
{
	static char buf[4096];
	const char *at = strstr(good_keyring, from);

	if (!at) {
		fprintf(stderr, "mutate: '%s' not in the sample\n", from);
		exit(2);
	}
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - good_keyring), good_keyring, to,
		 at + strlen(from));
	return buf;
}

/* Write text as keyring.json, read it, expect rc and a message fragment. */
static void expect_keyring(const char *text, int rc, const char *fragment)
{
	struct ekmfs_keyring kr;
	char path[256];
	int bfd = new_backing(path, sizeof(path)), got;

	CHECK(bfd >= 0);
	CHECK_EQ_INT(write_raw(bfd, EKMFS_KEYRING_FILE, text, strlen(text)), 0);
	ekmfs_clearerr();
	got = ekmfs_keyring_read(bfd, &kr);
	CHECK_EQ_INT(got, rc);
	if (got == 0)
		ekmfs_keyring_free(&kr);
	if (fragment && !strstr(ekmfs_lasterr(), fragment)) {
		fprintf(stderr, "  message '%s' lacks '%s'\n", ekmfs_lasterr(), fragment);
		check_failures++;
	}
	/* Every message names the file. */
	if (rc && !strstr(ekmfs_lasterr(), "/.ekmfs/keyring.json")) {
		fprintf(stderr, "  message '%s' does not name the file\n", ekmfs_lasterr());
		check_failures++;
	}
	close(bfd);
	rm_tree(path);
}

static void test_volume_round_trip(void)
{
	struct ekmfs_volume v = { .format_version = 1, .block_size = 4096,
				  .created = 1795000000 }, r;
	char path[256];
	struct stat st;
	int bfd = new_backing(path, sizeof(path));

	CHECK(bfd >= 0);
	for (int i = 0; i < EKMFS_VOLUME_ID_SIZE; i++)
		v.volume_id[i] = (uint8_t)(0xa0 + i);
	CHECK_EQ_INT(ekmfs_volume_read(bfd, &r), -ENOENT);
	CHECK_EQ_INT(ekmfs_volume_write_new(bfd, &v), 0);
	CHECK_EQ_INT(ekmfs_volume_read(bfd, &r), 0);
	CHECK_EQ_INT(r.format_version, 1);
	CHECK_EQ_INT(r.block_size, 4096);
	CHECK_EQ_INT(r.created, 1795000000);
	CHECK_MEM(r.volume_id, v.volume_id, EKMFS_VOLUME_ID_SIZE);
	CHECK_EQ_INT(fstatat(bfd, ".ekmfs", &st, 0), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0700);
	CHECK_EQ_INT(fstatat(bfd, ".ekmfs/volume.json", &st, 0), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	CHECK(fstatat(bfd, ".ekmfs/volume.json.tmp", &st, 0) < 0 && errno == ENOENT);
	/* A second volume in the same place is refused. */
	CHECK_EQ_INT(ekmfs_volume_write_new(bfd, &v), -EEXIST);
	CHECK(strstr(ekmfs_lasterr(), "already an ekmfs volume") != NULL);
	close(bfd);
	rm_tree(path);
}

static void expect_volume(const char *text, int rc, const char *fragment)
{
	struct ekmfs_volume v;
	char path[256];
	int bfd = new_backing(path, sizeof(path)), got;

	CHECK_EQ_INT(write_raw(bfd, EKMFS_VOLUME_FILE, text, strlen(text)), 0);
	got = ekmfs_volume_read(bfd, &v);
	CHECK_EQ_INT(got, rc);
	if (fragment && !strstr(ekmfs_lasterr(), fragment)) {
		fprintf(stderr, "  message '%s' lacks '%s'\n", ekmfs_lasterr(), fragment);
		check_failures++;
	}
	close(bfd);
	rm_tree(path);
}

static void test_volume_malformed(void)
{
	const char *ok = "{\"format\":\"ekmfs-volume\",\"version\":1,\"volume_id\":"
			 "\"000102030405060708090a0b0c0d0e0f\",\"block_size\":4096,"
			 "\"created\":\"2026-11-22T23:01:11Z\"}";
	const char *ok2 = "{\"format\":\"ekmfs-volume\",\"version\":2,\"volume_id\":"
			  "\"000102030405060708090a0b0c0d0e0f\",\"block_size\":4096,"
			  "\"created\":\"2026-11-22T23:01:11Z\"}";
	expect_volume(ok, 0, NULL);
	expect_volume(ok2, 0, NULL);        /* a volume whose files may be v2 */
	expect_volume("{\"format\":\"gocryptfs\",\"version\":1}", -EPROTO, "field 'format'");
	expect_volume("{\"format\":\"ekmfs-volume\",\"version\":3}", -EPROTO, "version 3");
	expect_volume("{\"format\":\"ekmfs-volume\",\"version\":0}", -EPROTO, "version 0");
	expect_volume("{\"format\":\"ekmfs-volume\",\"version\":1,\"volume_id\":"
		      "\"000102030405060708090a0b0c0d0e0g\",\"block_size\":4096,"
		      "\"created\":\"2026-11-22T23:01:11Z\"}", -EBADMSG, "field 'volume_id'");
	expect_volume("{\"format\":\"ekmfs-volume\",\"version\":1,\"volume_id\":"
		      "\"000102030405060708090a0b0c0d0e0f\",\"block_size\":8192,"
		      "\"created\":\"2026-11-22T23:01:11Z\"}", -EPROTO, "field 'block_size'");
	expect_volume("{\"format\":\"ekmfs-volume\",\"version\":1,\"volume_id\":"
		      "\"000102030405060708090a0b0c0d0e0f\",\"block_size\":4096}",
		      -EBADMSG, "field 'created': missing");
	expect_volume("[1,2]", -EBADMSG, "not a JSON object");
	expect_volume("", -EBADMSG, "not valid JSON");
}

/* The default tenant of a local-provider volume, and its KEK's wrapping
 * (60 bytes under "local:passphrase"; the blob is the caller's). */
static void sample_records(struct ekmfs_tenant_record *t, struct ekmfs_kek_record *k)
{
	snprintf(t->name, sizeof(t->name), "default");
	snprintf(t->provider, sizeof(t->provider), "local");
	snprintf(t->kdf, sizeof(t->kdf), "scrypt:n=16384,r=8,p=1,salt=AAAAAAAAAAAAAAAAAAAAAA==");
	k->wrapped.len = 60;
	snprintf(k->wrapped.cmk_ref, sizeof(k->wrapped.cmk_ref), "local:passphrase");
	snprintf(k->wrapped.cmk_version, sizeof(k->wrapped.cmk_version), "00112233aabbccdd");
}

static void test_keyring_round_trip(void)
{
	struct ekmfs_keyring kr = { .generation = 41 }, back;
	struct ekmfs_tenant_record t = { .id = 1, .current_version = 2,
					 .last_rotation = 1795000000,
					 .last_cmk_change = 1790000000 };
	struct ekmfs_kek_record k = { .version = 1, .state = EKMFS_KEK_RETIRED,
				      .created = 1790000000 };
	uint64_t stamp1[3], stamp2[3];
	struct ekmfs_tenant_record *bt;
	struct ekmfs_kek_record *bk;
	char path[256];
	struct stat st;
	int bfd = new_backing(path, sizeof(path)), lock_fd;

	CHECK(bfd >= 0);
	CHECK_EQ_INT(ekmfs_volume_write_new(bfd, &test_vol), 0);
	sample_records(&t, &k);
	for (int i = 0; i < 60; i++)
		k.wrapped.blob[i] = (uint8_t)(i * 7);
	CHECK_EQ_INT(ekmfs_tenant_add_kek(&t, &k), 0);
	k.version = 2;
	k.state = EKMFS_KEK_ACTIVE;
	k.wrapped.blob[0] ^= 1;
	CHECK_EQ_INT(ekmfs_tenant_add_kek(&t, &k), 0);
	k.version = 3;
	k.state = EKMFS_KEK_DESTROYED;
	k.wrapped.len = 0;
	CHECK_EQ_INT(ekmfs_tenant_add_kek(&t, &k), 0);
	CHECK_EQ_INT(ekmfs_keyring_add_tenant(&kr, &t), 0);
	free(t.keks);

	CHECK_EQ_INT(ekmfs_meta_lock(bfd, true, false, &lock_fd), 0);
	/* A stale temporary from a crashed writer is replaced, not an error. */
	CHECK_EQ_INT(write_raw(bfd, "keyring.json.tmp", "junk", 4), 0);
	/* Never written without its MAC key. */
	CHECK_EQ_INT(ekmfs_keyring_write(bfd, &kr, NULL), -EINVAL);
	CHECK_EQ_INT(ekmfs_keyring_write(bfd, &kr, test_mk()), 0);
	CHECK(fstatat(bfd, ".ekmfs/keyring.json.tmp", &st, 0) < 0 && errno == ENOENT);
	CHECK_EQ_INT(fstatat(bfd, ".ekmfs/keyring.json", &st, 0), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	CHECK_EQ_INT(ekmfs_keyring_stamp(bfd, stamp1), 0);

	CHECK_EQ_INT(ekmfs_keyring_read(bfd, &back), 0);
	CHECK_EQ_INT(back.generation, 41);
	CHECK(back.has_mac && back.mac_key.len == 48);
	CHECK_EQ_INT(ekmfs_keyring_check(&back, &test_vol, test_mk()->key, "k"), 0);
	CHECK_EQ_INT(back.ntenants, 1);
	bt = ekmfs_keyring_tenant(&back, "default");
	CHECK(bt != NULL);
	CHECK(ekmfs_keyring_tenant(&back, "other") == NULL);
	CHECK(ekmfs_keyring_tenant_by_id(&back, 1) == bt);
	CHECK(ekmfs_keyring_tenant_by_id(&back, 2) == NULL);
	if (bt) {
		CHECK_EQ_INT(bt->current_version, 2);
		CHECK_EQ_INT(bt->last_rotation, 1795000000);
		CHECK_EQ_INT(bt->last_cmk_change, 1790000000);
		CHECK(strcmp(bt->kdf, t.kdf) == 0);
		CHECK(strcmp(bt->provider, "local") == 0);
		CHECK_EQ_INT(bt->nkeks, 3);
		bk = ekmfs_tenant_kek(bt, 1);
		CHECK(bk && bk->state == EKMFS_KEK_RETIRED && bk->wrapped.len == 60);
		CHECK(bk && bk->wrapped.blob[0] == 0 && bk->wrapped.blob[59] == (uint8_t)(59 * 7));
		CHECK(bk && strcmp(bk->wrapped.cmk_ref, "local:passphrase") == 0);
		CHECK(bk && strcmp(bk->wrapped.cmk_version, "00112233aabbccdd") == 0);
		bk = ekmfs_tenant_kek(bt, 2);
		CHECK(bk && bk->state == EKMFS_KEK_ACTIVE && bk->wrapped.blob[0] == 1);
		bk = ekmfs_tenant_kek(bt, 3);
		CHECK(bk && bk->state == EKMFS_KEK_DESTROYED && bk->wrapped.len == 0);
		CHECK(ekmfs_tenant_kek(bt, 4) == NULL);
	}
	ekmfs_keyring_free(&back);

	/* The caller bumps the generation; a rewrite changes the stamp. */
	kr.generation++;
	CHECK_EQ_INT(ekmfs_keyring_write(bfd, &kr, test_mk()), 0);
	CHECK_EQ_INT(ekmfs_keyring_stamp(bfd, stamp2), 0);
	CHECK(memcmp(stamp1, stamp2, sizeof(stamp1)) != 0);
	CHECK_EQ_INT(ekmfs_keyring_read(bfd, &back), 0);
	CHECK_EQ_INT(back.generation, 42);
	ekmfs_keyring_free(&back);
	ekmfs_meta_unlock(lock_fd);

	ekmfs_keyring_free(&kr);
	CHECK(strcmp(ekmfs_kek_state_name(EKMFS_KEK_DESTROYED), "destroyed") == 0);
	close(bfd);
	rm_tree(path);
}

static void test_keyring_malformed(void)
{
	char text[4096];

	expect_keyring(good_keyring, 0, NULL);
	/* Truncated anywhere: never parsed as a shorter keyring. */
	snprintf(text, sizeof(text), "%.*s", (int)strlen(good_keyring) / 2, good_keyring);
	expect_keyring(text, -EBADMSG, "not valid JSON");
	snprintf(text, sizeof(text), "%.*s", (int)strlen(good_keyring) - 3, good_keyring);
	expect_keyring(text, -EBADMSG, "not valid JSON");
	expect_keyring(mutate("\"generation\":7", "\"generation\":\"7\""), -EBADMSG,
		       "field 'generation': must be an integer");
	expect_keyring(mutate("\"generation\":7", "\"generation\":-7"), -EBADMSG,
		       "field 'generation'");
	expect_keyring(mutate("\"id\":1", "\"id\":true"), -EBADMSG,
		       "field 'tenants[0].id': must be an integer");
	expect_keyring(mutate("\"keks\":[", "\"keks\":{\"a\":["), -EBADMSG, NULL);
	expect_keyring(mutate("\"wrapped\":\"BQYH\"", "\"wrapped\":\"BQY*\""), -EBADMSG,
		       "field 'tenants[0].keks[1].wrapped': not valid base64");
	expect_keyring(mutate("\"wrapped\":\"AAECAwQ=\"", "\"wrapped\":\"AAECAwQ\""), -EBADMSG,
		       "field 'tenants[0].keks[0].wrapped': not valid base64");
	expect_keyring(mutate("\"version\":2,", "\"version\":1,"), -EBADMSG,
		       "field 'tenants[0].keks[1].version': duplicate KEK version 1");
	expect_keyring(mutate("\"format\":\"ekmfs-keyring\"", "\"format\":\"ekmfs-volume\""),
		       -EPROTO, "field 'format'");
	expect_keyring(mutate("\"version\":1,\"generation\"", "\"version\":2,\"generation\""),
		       -EPROTO, "version 2 is not supported");
	expect_keyring(mutate("\"current_version\":2", "\"current_version\":5"), -EBADMSG,
		       "field 'tenants[0].current_version': KEK version 5 is not in keks");
	expect_keyring(mutate("\"current_version\":2", "\"current_version\":1"), -EBADMSG,
		       "KEK version 1 is retired, not active");
	expect_keyring(mutate("\"state\":\"retired\"", "\"state\":\"lost\""), -EBADMSG,
		       "field 'tenants[0].keks[0].state'");
	expect_keyring(mutate("\"state\":\"retired\"", "\"state\":\"destroyed\""), -EBADMSG,
		       "a destroyed KEK keeps no wrapped key");
	expect_keyring(mutate("\"created\":\"2026-01-02T03:04:05Z\"",
			      "\"created\":\"yesterday\""), -EBADMSG,
		       "field 'tenants[0].keks[0].created'");
	expect_keyring(mutate("\"kdf\":\"\",", ""), -EBADMSG,
		       "field 'tenants[0].kdf': missing");
	expect_keyring(mutate("\"kdf\":\"\"", "\"kdf\":\"\",\"colour\":\"blue\""), -EBADMSG,
		       "field 'tenants[0].colour': unknown field");
	expect_keyring(mutate("\"name\":\"default\"", "\"name\":\"../etc\""), -EBADMSG,
		       "field 'tenants[0].name'");
	expect_keyring(mutate("\"tenants\":[\n", "\"tenants\":[]}"), -EBADMSG, NULL);
	expect_keyring(mutate("}]}\n", "}]}\ngarbage"), -EBADMSG, "not valid JSON");
	expect_keyring(mutate("}]}\n", "}]}\n{}"), -EBADMSG, "not valid JSON");

	/* Duplicate tenant ids and names. */
	{
		const char *t0 = strstr(good_keyring, "{\"name\"");
		size_t tlen = strlen(t0) - strlen("]}\n");
		char two[4096];
		snprintf(two, sizeof(two), "%.*s%.*s,%.*s]}\n", (int)(t0 - good_keyring),
			 good_keyring, (int)tlen, t0, (int)tlen, t0);
		expect_keyring(two, -EBADMSG, "field 'tenants[1].id': duplicate tenant id 1");
		snprintf(text, sizeof(text), "%s", two);
		char *second = strstr(strstr(text, "{\"name\"") + 1, "\"id\":1");
		second[5] = '2';
		expect_keyring(text, -EBADMSG, "field 'tenants[1].name': duplicate tenant");
		/* Renamed, the second tenant is legal. */
		char *name2 = strstr(strstr(text, "{\"name\"") + 1, "{\"name\":\"default\"");
		memcpy(name2 + 9, "other  ", 7);
		memmove(name2 + 14, name2 + 16, strlen(name2 + 16) + 1);
		expect_keyring(text, 0, NULL);
	}

	/* Bounded size: a 17 MiB file is refused without being parsed. */
	{
		char path[256];
		struct ekmfs_keyring kr;
		int bfd = new_backing(path, sizeof(path)), fd;

		mkdirat(bfd, EKMFS_META_DIR, 0700);
		fd = openat(bfd, ".ekmfs/keyring.json", O_WRONLY | O_CREAT, 0600);
		CHECK(fd >= 0 && ftruncate(fd, 17 << 20) == 0);
		close(fd);
		CHECK_EQ_INT(ekmfs_keyring_read(bfd, &kr), -EBADMSG);
		CHECK(strstr(ekmfs_lasterr(), "more than") != NULL);
		close(bfd);
		rm_tree(path);
	}
}

/* The test edit: renames tenant 1 to arg, or returns what arg says. */
static int rename_edit(struct ekmfs_keyring *kr, void *arg)
{
	const char *name = arg;

	if (strcmp(name, "nothing") == 0)
		return 0;
	if (strcmp(name, "fail") == 0)
		return -EPERM;
	snprintf(kr->tenants[0].name, sizeof(kr->tenants[0].name), "%s", name);
	return 1;
}

static void test_keyring_update(void)
{
	struct ekmfs_keyring kr = { .generation = 7 }, back = { 0 }, kept = { 0 };
	struct ekmfs_tenant_record t = { .id = 1, .current_version = 1 };
	struct ekmfs_kek_record k = { .version = 1, .state = EKMFS_KEK_ACTIVE,
				      .created = 1790000000 };
	char path[256];
	int bfd = new_backing(path, sizeof(path)), lock_fd;

	CHECK(bfd >= 0);
	CHECK_EQ_INT(ekmfs_volume_write_new(bfd, &test_vol), 0);
	sample_records(&t, &k);
	CHECK_EQ_INT(ekmfs_tenant_add_kek(&t, &k), 0);
	CHECK_EQ_INT(ekmfs_keyring_add_tenant(&kr, &t), 0);
	free(t.keks);
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, true, false, &lock_fd), 0);
	CHECK_EQ_INT(ekmfs_keyring_write(bfd, &kr, test_mk()), 0);

	/* A change is written with the next generation and handed back. */
	CHECK_EQ_INT(ekmfs_keyring_update(bfd, test_mk(), rename_edit, "one", true, &kept), 1);
	CHECK_EQ_INT(kept.generation, 8);
	CHECK(strcmp(kept.tenants[0].name, "one") == 0);
	CHECK_EQ_INT(ekmfs_keyring_read(bfd, &back), 0);
	CHECK_EQ_INT(back.generation, 8);
	CHECK(strcmp(back.tenants[0].name, "one") == 0);
	ekmfs_keyring_free(&back);
	ekmfs_keyring_free(&kept);
	/* Nothing to write, a failing edit, a dry run: the file stays. */
	CHECK_EQ_INT(ekmfs_keyring_update(bfd, test_mk(), rename_edit, "nothing", true, NULL), 0);
	CHECK_EQ_INT(ekmfs_keyring_update(bfd, test_mk(), rename_edit, "fail", true, NULL), -EPERM);
	CHECK_EQ_INT(ekmfs_keyring_update(bfd, test_mk(), rename_edit, "two", false, &kept), 1);
	CHECK_EQ_INT(kept.ntenants, 0);
	CHECK_EQ_INT(ekmfs_keyring_read(bfd, &back), 0);
	CHECK_EQ_INT(back.generation, 8);
	CHECK(strcmp(back.tenants[0].name, "one") == 0);
	ekmfs_keyring_free(&back);
	ekmfs_meta_unlock(lock_fd);
	ekmfs_keyring_free(&kr);
	close(bfd);
	rm_tree(path);
}

static void test_lock(void)
{
	char path[256];
	int bfd = new_backing(path, sizeof(path)), a, b, c;

	CHECK_EQ_INT(mkdirat(bfd, EKMFS_META_DIR, 0700), 0);
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, true, false, &a), 0);
	/* Another open file description: flock conflicts even within a process. */
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, true, false, &b), -EWOULDBLOCK);
	CHECK_EQ_INT(b, -1);
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, false, false, &b), -EWOULDBLOCK);
	ekmfs_meta_unlock(a);
	/* Shared locks coexist and keep writers out. */
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, false, false, &a), 0);
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, false, false, &b), 0);
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, true, false, &c), -EWOULDBLOCK);
	ekmfs_meta_unlock(a);
	ekmfs_meta_unlock(b);
	CHECK_EQ_INT(ekmfs_meta_lock(bfd, true, true, &c), 0);
	ekmfs_meta_unlock(c);
	struct stat st;
	CHECK_EQ_INT(fstatat(bfd, ".ekmfs/lock", &st, 0), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	close(bfd);
	rm_tree(path);
}

/* The CMK set at a tenant's creation vs a CMK change (ekmfs-rotate cmk's
 * first change is not held back by min_cmk_change_interval). */
static void test_cmk_changed(void)
{
	const time_t created = 1796342400;
	/* versions out of order: the first KEK is the lowest version */
	struct ekmfs_kek_record k[3] = {
		{ .version = 3, .created = created + 7200 },
		{ .version = 1, .created = created, .state = EKMFS_KEK_DESTROYED },
		{ .version = 2, .created = created + 3600 },
	};
	struct ekmfs_tenant_record t = { .keks = k, .nkeks = 3, .current_version = 3,
					 .last_cmk_change = created };

	/* as init and tenant creation write it, KEK rotations notwithstanding */
	CHECK(!ekmfs_tenant_cmk_changed(&t));
	/* a change records its time */
	t.last_cmk_change = ekmfs_tenant_cmk_change_time(&t, created + 86400);
	CHECK_EQ_INT(t.last_cmk_change, created + 86400);
	CHECK(ekmfs_tenant_cmk_changed(&t));
	/* a change in the same second as the creation still counts */
	t.last_cmk_change = ekmfs_tenant_cmk_change_time(&t, created);
	CHECK_EQ_INT(t.last_cmk_change, created + 1);
	CHECK(ekmfs_tenant_cmk_changed(&t));
	/* a clock behind the creation time too */
	CHECK_EQ_INT(ekmfs_tenant_cmk_change_time(&t, created - 50), created + 1);
	/* no KEK at all (never in a valid keyring): counts as changed, so the
	 * interval applies */
	t.nkeks = 0;
	t.last_cmk_change = created;
	CHECK(ekmfs_tenant_cmk_changed(&t));
}

/* The keyring MAC (docs/FORMAT.md "Keyring MAC"): every field of the
 * keyring and the descriptor is covered; records are bound to their order;
 * a keyring of ekmfs 1 passes only on a version-1 volume; a MAC made at
 * version 1 passes at 2 (upgrade's crash window), not the reverse. */
static struct ekmfs_keyring mac_sample(void)
{
	struct ekmfs_keyring kr = { .generation = 9 };
	struct ekmfs_tenant_record t = { .id = 1, .current_version = 2 };
	struct ekmfs_kek_record k = { .version = 1, .state = EKMFS_KEK_RETIRED,
				      .created = 1790000000 };

	sample_records(&t, &k);
	t.current_version = 2;
	k.wrapped.len = 40;
	memset(k.wrapped.blob, 7, k.wrapped.len);
	CHECK_EQ_INT(ekmfs_tenant_add_kek(&t, &k), 0);
	k.version = 2;
	k.state = EKMFS_KEK_ACTIVE;
	k.wrapped.mac_len = EKMFS_WRAP_MAC_SIZE;
	memset(k.wrapped.mac, 9, sizeof(k.wrapped.mac));
	CHECK_EQ_INT(ekmfs_tenant_add_kek(&t, &k), 0);
	k.version = 3;
	k.state = EKMFS_KEK_DESTROYED;
	k.wrapped.len = 0;
	k.wrapped.mac_len = 0;
	CHECK_EQ_INT(ekmfs_tenant_add_kek(&t, &k), 0);
	CHECK_EQ_INT(ekmfs_keyring_add_tenant(&kr, &t), 0);
	t.id = 2;
	snprintf(t.name, sizeof(t.name), "other");
	CHECK_EQ_INT(ekmfs_keyring_add_tenant(&kr, &t), 0);
	free(t.keks);
	kr.mac_key = test_mk()->wrapped;
	return kr;
}

static void test_keyring_mac(void)
{
	const uint8_t *key = test_mk()->key;
	struct ekmfs_keyring kr = mac_sample();
	struct ekmfs_volume v = test_vol, v1 = test_vol;
	uint8_t other_key[EKMFS_KEYRING_KEY_SIZE];
	int n = 0;

	CHECK_EQ_INT(ekmfs_keyring_seal(&kr, &v, key), 0);
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v, key, "K"), 0);
	memset(other_key, 0x5b, sizeof(other_key));
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v, other_key, "K"), -EBADMSG);
	CHECK(strstr(ekmfs_lasterr(), "K does not authenticate") != NULL);

	/* Each edit alone must break it; each is undone after. */
#define EDIT(stmt, undo) do { stmt; n++; \
		if (ekmfs_keyring_check(&kr, &v, key, "K") != -EBADMSG) \
			{ fprintf(stderr, "not detected: %s\n", #stmt); CHECK(0); } \
		undo; CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v, key, "K"), 0); } while (0)
	struct ekmfs_tenant_record *t = &kr.tenants[0];
	struct ekmfs_kek_record *k = &t->keks[0];
	EDIT(kr.generation++, kr.generation--);
	EDIT(kr.mac_key.blob[0] ^= 1, kr.mac_key.blob[0] ^= 1);
	EDIT(kr.mac_key.len--, kr.mac_key.len++);
	EDIT(kr.mac_key.cmk_ref[0] ^= 1, kr.mac_key.cmk_ref[0] ^= 1);
	EDIT(kr.mac_key.cmk_version[0] ^= 1, kr.mac_key.cmk_version[0] ^= 1);
	EDIT(kr.mac[31] ^= 1, kr.mac[31] ^= 1);
	EDIT(t->name[0] ^= 1, t->name[0] ^= 1);
	EDIT(t->id++, t->id--);
	EDIT(t->provider[0] ^= 1, t->provider[0] ^= 1);
	EDIT(t->kdf[0] ^= 1, t->kdf[0] ^= 1);
	EDIT(t->current_version++, t->current_version--);
	EDIT(t->last_rotation++, t->last_rotation--);
	EDIT(t->last_cmk_change--, t->last_cmk_change++);
	EDIT(t->disabled = true, t->disabled = false);
	EDIT(t->nkeks--, t->nkeks++);
	EDIT(k->version += 10, k->version -= 10);
	EDIT(k->state = EKMFS_KEK_ACTIVE, k->state = EKMFS_KEK_RETIRED);
	EDIT(k->created++, k->created--);
	EDIT(k->wrapped.blob[39] ^= 1, k->wrapped.blob[39] ^= 1);
	EDIT(k->wrapped.cmk_ref[1] ^= 1, k->wrapped.cmk_ref[1] ^= 1);
	EDIT(k->wrapped.cmk_version[1] ^= 1, k->wrapped.cmk_version[1] ^= 1);
	EDIT(t->keks[1].wrapped.mac[0] ^= 1, t->keks[1].wrapped.mac[0] ^= 1);
	EDIT(t->keks[1].wrapped.mac_len = 0, t->keks[1].wrapped.mac_len = EKMFS_WRAP_MAC_SIZE);
	EDIT(kr.ntenants--, kr.ntenants++);
	/* reordered records */
	{
		struct ekmfs_kek_record tmp = t->keks[0];
		struct ekmfs_tenant_record tt = kr.tenants[0];

		EDIT((t->keks[0] = t->keks[1], t->keks[1] = tmp),
		     (t->keks[1] = t->keks[0], t->keks[0] = tmp));
		EDIT((kr.tenants[0] = kr.tenants[1], kr.tenants[1] = tt),
		     (kr.tenants[1] = kr.tenants[0], kr.tenants[0] = tt));
		t = &kr.tenants[0];
	}
	/* the descriptor */
	EDIT(v.volume_id[15] ^= 1, v.volume_id[15] ^= 1);
	EDIT(v.block_size *= 2, v.block_size /= 2);
	EDIT(v.created++, v.created--);
	EDIT(v.format_version = 1, v.format_version = 2);
#undef EDIT
	CHECK(n >= 30);
	/* What a destroyed KEK no longer has is not encoded. */
	t->keks[2].wrapped.blob[0] ^= 1;
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v, key, "K"), 0);

	/* Sealed at version 1, checked at 2: upgrade's window, accepted. */
	v1.format_version = 1;
	CHECK_EQ_INT(ekmfs_keyring_seal(&kr, &v1, key), 0);
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v1, key, "K"), 0);
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v, key, "K"), 0);

	/* No MAC: only ekmfs 1's keyring (no mac_key) on a version-1 volume. */
	kr.has_mac = false;
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v1, key, "K"), -EBADMSG);  /* mac_key left */
	memset(&kr.mac_key, 0, sizeof(kr.mac_key));
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v1, key, "K"), 0);
	CHECK_EQ_INT(ekmfs_keyring_check(&kr, &v, key, "K"), -EBADMSG);
	CHECK(strstr(ekmfs_lasterr(), "has no MAC") != NULL);
	ekmfs_keyring_free(&kr);
}

/* docs/FORMAT.md, "Keyring MAC", Example: the bytes computed in Python. */
static void test_keyring_mac_vector(void)
{
	static const char kek_wrapped[] = "f0f1f2f3f4f5f6f7f8f9fafb"
		"c9a7e1a3d89f74d3375e5d3122e7cc19a050eb718cb2f92feeef891be58e6cb8"
		"7f38f5d0da77f8761c0a223b400e9762";
	static const char key_wrapped[] = "e0e1e2e3e4e5e6e7e8e9eaeb"
		"74838bc0b185cc6c884a34051251b6cc95f469b4aad19b4fc4d83026506c76d5"
		"6923fbfc7eda81be8b530436650349f3";
	const time_t t0 = 1795388471;         /* 2026-11-22T23:01:11Z */
	struct ekmfs_volume v = { .format_version = 2, .block_size = 4096, .created = t0 };
	struct ekmfs_kek_record k = { .version = 1, .state = EKMFS_KEK_ACTIVE, .created = t0,
				      .wrapped = { .len = 60, .cmk_ref = "local:key-file",
						   .cmk_version = "a44f813309febcea" } };
	struct ekmfs_tenant_record t = { .name = "default", .id = 1, .provider = "local",
					 .current_version = 1, .last_rotation = t0,
					 .last_cmk_change = t0, .keks = &k, .nkeks = 1 };
	struct ekmfs_keyring kr = { .generation = 1, .ntenants = 1, .tenants = &t,
				    .mac_key = { .len = 60, .cmk_ref = "local:key-file",
						 .cmk_version = "a44f813309febcea" } };
	uint8_t key[EKMFS_KEYRING_KEY_SIZE], mac[EKMFS_KEYRING_MAC_SIZE];
	char hex[2 * EKMFS_KEYRING_MAC_SIZE + 1];

	for (int i = 0; i < EKMFS_KEYRING_KEY_SIZE; i++)
		key[i] = (uint8_t)(0x40 + i);
	CHECK_EQ_INT(ekmfs_unhex("00112233445566778899aabbccddeeff", v.volume_id, 16), 0);
	CHECK_EQ_INT(ekmfs_unhex(kek_wrapped, k.wrapped.blob, 60), 0);
	CHECK_EQ_INT(ekmfs_unhex(key_wrapped, kr.mac_key.blob, 60), 0);
	CHECK_EQ_INT(ekmfs_keyring_mac(&kr, &v, key, mac), 0);
	ekmfs_hex(mac, sizeof(mac), hex);
	CHECK(strcmp(hex, "36a5f3e574403f5edce11b915f3e23a9195703f9652a76626b4974f5205d0f0d") == 0);
	v.format_version = 1;
	CHECK_EQ_INT(ekmfs_keyring_mac(&kr, &v, key, mac), 0);
	ekmfs_hex(mac, sizeof(mac), hex);
	CHECK(strcmp(hex, "1943373b90ae8341b53dd236626481af63ebcea57fb00a9da0634db42addebfb") == 0);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_volume_round_trip);
	RUN(test_volume_malformed);
	RUN(test_keyring_round_trip);
	RUN(test_keyring_malformed);
	RUN(test_keyring_update);
	RUN(test_keyring_mac);
	RUN(test_keyring_mac_vector);
	RUN(test_lock);
	RUN(test_cmk_changed);
	rm_tree(root);
	return CHECK_DONE();
}
