/*
 * test_keys.c - the key hierarchy: volume init and open, file headers, the
 * local provider (key file, passphrase, permissions, wrong keys, tampering),
 * keyring reload, and the worked example of docs/FORMAT.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/aead.h"
#include "ekmfs/config.h"
#include "ekmfs/keyring.h"
#include "ekmfs/keys.h"
#include "ekmfs/provider.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "../../src/keys/providers/local.h"

static char root[] = "/tmp/ekmfs-test-keys-XXXXXX";
static int ncase;
static struct ekmfs_config cfg; /* large: keep it off the stack */

/* One test volume: BACKING and a key directory beside it. */
struct fixture {
	char dir[256];
	char backing[300];
	char key[300];
	int bfd;
};

static void fixture_new(struct fixture *f)
{
	snprintf(f->dir, sizeof(f->dir), "%s/c%d", root, ncase++);
	snprintf(f->backing, sizeof(f->backing), "%s/backing", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/keys/local.key", f->dir);
	if (mkdir(f->dir, 0700) < 0 || mkdir(f->backing, 0700) < 0) {
		perror("fixture");
		exit(2);
	}
	f->bfd = open(f->backing, O_RDONLY | O_DIRECTORY);
	ekmfs_config_defaults(&cfg);
	snprintf(cfg.tenants[0].key_file, sizeof(cfg.tenants[0].key_file), "%s", f->key);
}

static void fixture_free(struct fixture *f)
{
	char cmd[600];

	close(f->bfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	fchmod(fd, mode);
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static bool has(const char *fragment)
{
	if (strstr(ekmfs_lasterr(), fragment))
		return true;
	fprintf(stderr, "  message '%s' lacks '%s'\n", ekmfs_lasterr(), fragment);
	return false;
}

static bool exists_at(int dirfd, const char *rel)
{
	struct stat st;
	return fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* new_header, then serialize/parse/open_header: the DEK must come back. */
static void header_round_trip(struct ekmfs_keys *k, uint32_t want_version)
{
	uint8_t dek[EKMFS_KEY_SIZE], back[EKMFS_KEY_SIZE], buf[EKMFS_HEADER_PARSE_SIZE];
	struct ekmfs_header h, parsed;

	CHECK_EQ_INT(ekmfs_keys_new_header(k, "dir/file.txt", &h, dek), 0);
	CHECK_EQ_INT(h.slot[0].seq, 1);
	CHECK_EQ_INT(h.slot[0].tenant_id, 1);
	CHECK_EQ_INT(h.slot[0].kek_version, want_version);
	CHECK_EQ_INT(h.slot[1].seq, 0);
	CHECK_EQ_INT(ekmfs_header_serialize(&h, buf), sizeof(buf));
	CHECK_EQ_INT(ekmfs_header_parse(buf, sizeof(buf), &parsed), 0);
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &parsed, back), 0);
	CHECK_MEM(back, dek, EKMFS_KEY_SIZE);
}

static void test_init_open_round_trip(void)
{
	struct ekmfs_volume vol, vol2;
	struct ekmfs_keyring kr;
	struct ekmfs_keys *k = NULL;
	struct ekmfs_header h1, h2;
	uint8_t d1[EKMFS_KEY_SIZE], d2[EKMFS_KEY_SIZE];
	struct fixture f;
	struct stat st;

	fixture_new(&f);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);
	/* The key file was created with its directory, both private. */
	CHECK_EQ_INT(stat(f.key, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	CHECK_EQ_INT(ekmfs_volume_read(f.bfd, &vol2), 0);
	CHECK_MEM(vol2.volume_id, vol.volume_id, EKMFS_VOLUME_ID_SIZE);
	CHECK_EQ_INT(vol2.block_size, EKMFS_BLOCK_SIZE);
	CHECK(!exists_at(f.bfd, ".ekmfs/keyring.json.tmp"));

	CHECK_EQ_INT(ekmfs_keyring_read(f.bfd, &kr), 0);
	CHECK_EQ_INT(kr.generation, 1);
	CHECK_EQ_INT(kr.ntenants, 1);
	if (kr.ntenants == 1) {
		struct ekmfs_tenant_record *t = &kr.tenants[0];
		CHECK(strcmp(t->name, "default") == 0);
		CHECK_EQ_INT(t->id, 1);
		CHECK(strcmp(t->kdf, "") == 0);
		CHECK_EQ_INT(t->current_version, 1);
		CHECK_EQ_INT(t->nkeks, 1);
		CHECK_EQ_INT(t->keks[0].wrapped.len, EKMFS_LOCAL_BLOB_SIZE);
		CHECK(strcmp(t->keks[0].wrapped.cmk_ref, "local:key-file") == 0);
		CHECK_EQ_INT(strlen(t->keks[0].wrapped.cmk_version), 16);
	}
	ekmfs_keyring_free(&kr);

	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	if (!k)
		goto out;
	CHECK_MEM(ekmfs_keys_volume(k)->volume_id, vol.volume_id, EKMFS_VOLUME_ID_SIZE);
	header_round_trip(k, 1);
	/* Every file gets its own id and DEK. */
	CHECK_EQ_INT(ekmfs_keys_new_header(k, "a", &h1, d1), 0);
	CHECK_EQ_INT(ekmfs_keys_new_header(k, "b", &h2, d2), 0);
	CHECK(memcmp(h1.file_id, h2.file_id, EKMFS_FILE_ID_SIZE) != 0);
	CHECK(memcmp(d1, d2, EKMFS_KEY_SIZE) != 0);
	/* A header's DEK does not open with another file's prefix: swap ids. */
	memcpy(h1.file_id, h2.file_id, EKMFS_FILE_ID_SIZE);
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &h1, d1), -EBADMSG);
	ekmfs_keys_close(k);

	/* The volume opens again with the same key, in a fresh key manager. */
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	ekmfs_keys_close(k);
out:
	fixture_free(&f);
}

static void test_init_refusals(void)
{
	struct ekmfs_volume vol;
	struct fixture f;
	char path[400], link[400];
	int fd;

	/* Second init on a volume. */
	fixture_new(&f);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), -EEXIST);
	CHECK(has("already an ekmfs volume"));
	fixture_free(&f);

	/* A directory with files in it; lost+found alone is fine. */
	fixture_new(&f);
	CHECK_EQ_INT(mkdirat(f.bfd, "lost+found", 0700), 0);
	fd = openat(f.bfd, "notes.txt", O_WRONLY | O_CREAT, 0600);
	close(fd);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), -ENOTEMPTY);
	CHECK(has("is not empty; ekmfs-admin init needs an empty directory"));
	CHECK(!exists_at(f.bfd, ".ekmfs"));
	CHECK_EQ_INT(unlinkat(f.bfd, "notes.txt", 0), 0);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);
	fixture_free(&f);

	/* A key file inside BACKING, directly or through a symlink. */
	fixture_new(&f);
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s/keys/k.key", f.backing);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), -EINVAL);
	CHECK(has("is inside the backing directory"));
	CHECK(!exists_at(f.bfd, ".ekmfs"));
	CHECK(!exists_at(f.bfd, "keys"));
	snprintf(link, sizeof(link), "%s/alias", f.dir);
	CHECK_EQ_INT(symlink(f.backing, link), 0);
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s/deeper/k.key", link);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), -EINVAL);
	CHECK(has("is inside the backing directory"));
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s/keys/../backing/k.key", f.dir);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), -EINVAL);
	/* A passphrase file inside BACKING too. */
	snprintf(path, sizeof(path), "%s/pass", f.backing);
	cfg.tenants[0].local_source = EKMFS_LOCAL_PASSPHRASE_FILE;
	snprintf(cfg.tenants[0].passphrase_file, PATH_MAX, "%s", path);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), -EINVAL);
	CHECK(has("passphrase file"));
	CHECK(!exists_at(f.bfd, ".ekmfs"));
	fixture_free(&f);

	/* A key file that group or others can read. */
	fixture_new(&f);
	snprintf(path, sizeof(path), "%s/loose.key", f.dir);
	CHECK_EQ_INT(write_file(path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0644), 0);
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s", path);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), -EPERM);
	CHECK(has("has mode 0644 (group/other may read it); chmod 600 "));
	CHECK(!exists_at(f.bfd, ".ekmfs"));
	/* Not a volume: open says how to make one. */
	struct ekmfs_keys *k;
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -ENOENT);
	CHECK(has("is not an ekmfs volume (no .ekmfs/volume.json); create one with: "
		  "ekmfs-admin init"));
	fixture_free(&f);
}

static void test_key_file_problems(void)
{
	struct ekmfs_volume vol;
	struct ekmfs_keys *k = NULL;
	struct fixture f;
	char other[400];

	fixture_new(&f);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);

	/* Loosened permissions after init: refused at open. */
	CHECK_EQ_INT(chmod(f.key, 0640), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EPERM);
	CHECK(has("has mode 0640"));
	CHECK_EQ_INT(chmod(f.key, 0600), 0);

	/* Another key: named by its fingerprint. */
	snprintf(other, sizeof(other), "%s/other.key", f.dir);
	CHECK_EQ_INT(write_file(other, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0600), 0);
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s", other);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EKEYREJECTED);
	CHECK(has("is not the key of tenant 'default' (its fingerprint is a44f813309febcea, "
		  "the keyring expects "));
	CHECK(k == NULL);

	/* Missing key file at open: not created behind the user's back. */
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s/absent.key", f.dir);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -ENOKEY);
	CHECK(has("does not exist"));
	CHECK(access(cfg.tenants[0].key_file, F_OK) < 0);

	/* Garbage in the key file. */
	CHECK_EQ_INT(write_file(other, "not base64 at all\n", 0600), 0);
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s", other);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EINVAL);
	CHECK(has("does not hold one base64 line of exactly 32 bytes"));
	CHECK_EQ_INT(write_file(other, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\n", 0600), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EINVAL);
	/* A directory where the key file should be. */
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s", f.dir);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EPERM);
	CHECK(has("is not a regular file"));
	fixture_free(&f);
}

/* Rewrite the keyring through fn as a writer holding the CMK does (the
 * keyring's MAC key opened through the default tenant's provider, the
 * generation bumped): what such a writer puts in a record is caught, if at
 * all, by the record's own binding. */
static void edit_keyring(int bfd, void (*fn)(struct ekmfs_keyring *, void *), void *arg)
{
	struct ekmfs_keyring_key *mk = NULL;
	struct ekmfs_provider *prov = NULL;
	struct ekmfs_keyring kr;
	struct ekmfs_volume vol;
	int lock_fd;

	CHECK_EQ_INT(ekmfs_meta_lock(bfd, true, true, &lock_fd), 0);
	CHECK_EQ_INT(ekmfs_volume_read(bfd, &vol), 0);
	CHECK_EQ_INT(ekmfs_keyring_read(bfd, &kr), 0);
	if (kr.ntenants == 0 || kr.tenants[0].nkeks == 0) {
		ekmfs_meta_unlock(lock_fd);
		return;
	}
	CHECK_EQ_INT(ekmfs_provider_open(&cfg.tenants[0], &kr.tenants[0], false, &prov), 0);
	CHECK_EQ_INT(ekmfs_keyring_key_open(bfd, &vol, &kr, prov, &mk), 0);
	fn(&kr, arg);
	kr.generation++;
	CHECK_EQ_INT(ekmfs_keyring_write(bfd, &kr, mk), 0);
	ekmfs_meta_unlock(lock_fd);
	ekmfs_keyring_free(&kr);
	ekmfs_keyring_key_free(mk);
	ekmfs_provider_close(prov);
}

/* An edit of the keyring's text by someone without the CMK. */
static void edit_keyring_text(int bfd, const char *from, const char *to)
{
	char *text = NULL, *at;
	size_t len;
	int fd;

	CHECK_EQ_INT(ekmfs_meta_read(bfd, EKMFS_KEYRING_FILE, &text, &len), 0);
	at = text ? strstr(text, from) : NULL;
	CHECK(at != NULL);
	if (at) {
		fd = openat(bfd, ".ekmfs/keyring.json", O_WRONLY | O_TRUNC);
		CHECK(fd >= 0);
		CHECK(write(fd, text, (size_t)(at - text)) == at - text);
		CHECK(write(fd, to, strlen(to)) == (ssize_t)strlen(to));
		at += strlen(from);
		CHECK(write(fd, at, strlen(at)) == (ssize_t)strlen(at));
		close(fd);
	}
	free(text);
}

static void flip_blob(struct ekmfs_keyring *kr, void *arg)
{
	(void)arg;
	kr->tenants[0].keks[0].wrapped.blob[20] ^= 0x04;
}

static void test_tampered_keyring(void)
{
	struct ekmfs_volume vol;
	struct ekmfs_keys *k = NULL;
	struct fixture f, g;
	char src[400], dst[400], cmd[900];

	fixture_new(&f);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);
	edit_keyring(f.bfd, flip_blob, NULL);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EKEYREJECTED);
	CHECK(has("keyring record for tenant default KEK v1 does not authenticate "
		  "(tampered or moved)"));
	edit_keyring(f.bfd, flip_blob, NULL);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	ekmfs_keys_close(k);
	/* Without the CMK, any edit is caught by the keyring MAC. */
	edit_keyring_text(f.bfd, "\"created\": \"202", "\"created\": \"203");
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EBADMSG);
	CHECK(has("keyring.json does not authenticate with volume.json"));
	edit_keyring_text(f.bfd, "\"created\": \"203", "\"created\": \"202");
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	ekmfs_keys_close(k);
	edit_keyring_text(f.bfd, "\"last_rotation\": \"20", "\"last_rotation\": \"21");
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EBADMSG);
	CHECK(has("keyring.json does not authenticate with volume.json"));

	/* Moved: volume B's keyring copied into volume A (same key file). The
	 * wrap is bound to B's volume id, so A refuses it. */
	fixture_new(&g);
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s", f.key);
	CHECK_EQ_INT(ekmfs_volume_init(g.bfd, &cfg, &vol), 0);
	snprintf(src, sizeof(src), "%s/.ekmfs/keyring.json", g.backing);
	snprintf(dst, sizeof(dst), "%s/.ekmfs/keyring.json", f.backing);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, dst);
	CHECK_EQ_INT(system(cmd), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EKEYREJECTED);
	CHECK(has("does not authenticate (tampered or moved)"));
	fixture_free(&g);
	fixture_free(&f);
}

static void test_passphrase(void)
{
	struct ekmfs_volume vol;
	struct ekmfs_keyring kr;
	struct ekmfs_keys *k = NULL;
	struct fixture f;
	char pass[400];

	fixture_new(&f);
	snprintf(pass, sizeof(pass), "%s/pass", f.dir);
	CHECK_EQ_INT(write_file(pass, "correct horse battery staple\n", 0600), 0);
	cfg.tenants[0].local_source = EKMFS_LOCAL_PASSPHRASE_FILE;
	snprintf(cfg.tenants[0].passphrase_file, PATH_MAX, "%s", pass);
	cfg.tenants[0].scrypt_n = 16384;
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);
	CHECK(access(f.key, F_OK) < 0); /* no key file with a passphrase */

	CHECK_EQ_INT(ekmfs_keyring_read(f.bfd, &kr), 0);
	if (kr.ntenants == 1) {
		CHECK(strncmp(kr.tenants[0].kdf, "scrypt:n=16384,r=8,p=1,salt=", 28) == 0);
		CHECK_EQ_INT(strlen(kr.tenants[0].kdf), 28 + 24);
		CHECK(strcmp(kr.tenants[0].keks[0].wrapped.cmk_ref, "local:passphrase") == 0);
	}
	ekmfs_keyring_free(&kr);

	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	if (k) {
		header_round_trip(k, 1);
		ekmfs_keys_close(k);
	}

	/* Wrong passphrase (the trailing newline is not part of it). */
	CHECK_EQ_INT(write_file(pass, "correct horse battery stapler\n", 0600), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EKEYREJECTED);
	CHECK(has("passphrase file"));
	CHECK(has("is not the key of tenant 'default'"));
	CHECK_EQ_INT(write_file(pass, "correct horse battery staple", 0600), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	ekmfs_keys_close(k);
	CHECK_EQ_INT(write_file(pass, "\n", 0600), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EINVAL);
	CHECK(has("is empty"));
	CHECK_EQ_INT(write_file(pass, "correct horse battery staple\n", 0604), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EPERM);
	CHECK_EQ_INT(chmod(pass, 0600), 0);

	/* The config must keep to the kind of key the volume was made with. */
	cfg.tenants[0].local_source = EKMFS_LOCAL_KEY_FILE;
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), -EKEYREJECTED);
	CHECK(has("was created with a passphrase"));
	fixture_free(&f);
}

/* passphrase=prompt without a terminal: a clear refusal, in a child that
 * has dropped its controlling terminal. */
static void test_prompt_without_tty(void)
{
	struct fixture f;
	int status = 0;
	pid_t pid;

	fixture_new(&f);
	cfg.tenants[0].local_source = EKMFS_LOCAL_PASSPHRASE_PROMPT;
	pid = fork();
	if (pid == 0) {
		struct ekmfs_volume vol;
		setsid();
		int rc = ekmfs_volume_init(f.bfd, &cfg, &vol);
		_exit(rc == -ENXIO && strcmp(ekmfs_lasterr(), "no terminal to prompt for the "
					     "passphrase; set passphrase_file") == 0 &&
		      !exists_at(f.bfd, ".ekmfs") ? 0 : 1);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fixture_free(&f);
}

struct rotation {
	struct ekmfs_tenant_config *tc;
	uint8_t volume_id[EKMFS_VOLUME_ID_SIZE];
	uint32_t destroy_version;
};

/* Add KEK v2 wrapped by the tenant's provider and make it current. */
static void rotate(struct ekmfs_keyring *kr, void *arg)
{
	struct rotation *r = arg;
	struct ekmfs_tenant_record *t = &kr->tenants[0];
	struct ekmfs_kek_record rec = { .version = 2, .state = EKMFS_KEK_ACTIVE,
					.created = time(NULL) };
	struct ekmfs_wrap_context ctx = { r->volume_id, "default", 2 };
	struct ekmfs_provider *p = NULL;
	uint8_t kek[32];

	CHECK_EQ_INT(ekmfs_provider_open(r->tc, t, false, &p), 0);
	if (!p)
		return;
	CHECK_EQ_INT(ekmfs_random(kek, sizeof(kek)), 0);
	CHECK_EQ_INT(p->ops->wrap(p, &ctx, kek, &rec.wrapped), 0);
	CHECK_EQ_INT(p->ops->self_test(p, &ctx), 0);
	ekmfs_provider_close(p);
	ekmfs_wipe(kek, sizeof(kek));
	CHECK_EQ_INT(ekmfs_tenant_add_kek(t, &rec), 0);
	t->keks[0].state = EKMFS_KEK_RETIRED;
	t->current_version = 2;
}

static void destroy_v1(struct ekmfs_keyring *kr, void *arg)
{
	(void)arg;
	kr->tenants[0].keks[0].state = EKMFS_KEK_DESTROYED;
	kr->tenants[0].keks[0].wrapped.len = 0;
}

static void test_versions_and_slots(void)
{
	uint8_t dek[EKMFS_KEY_SIZE], back[EKMFS_KEY_SIZE];
	struct ekmfs_header h, bad;
	struct ekmfs_volume vol;
	struct ekmfs_keys *k = NULL;
	struct rotation r;
	struct fixture f;

	fixture_new(&f);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	if (!k)
		goto out;
	CHECK_EQ_INT(ekmfs_keys_new_header(k, "f", &h, dek), 0);

	/* A KEK version the keyring does not have. */
	bad = h;
	bad.slot[0].kek_version = 9;
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &bad, back), -EBADMSG);
	CHECK(has("KEK v9, which this volume's keyring never issued"));
	bad = h;
	bad.slot[0].tenant_id = 4;
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &bad, back), -EBADMSG);
	CHECK(has("tenant id 4, which this volume's keyring never issued"));

	/* A tampered slot: no key comes out. */
	bad = h;
	bad.slot[0].wrapped_dek[3] ^= 1;
	memset(back, 0x55, sizeof(back));
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &bad, back), -EBADMSG);
	CHECK(has("does not authenticate"));
	/* Newer slot broken, older intact (an interrupted re-wrap): fallback. */
	bad.slot[1] = bad.slot[0];
	bad.slot[1].seq = 2;
	bad.slot[0] = h.slot[0];
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &bad, back), 0);
	CHECK_MEM(back, dek, EKMFS_KEY_SIZE);
	/* Both broken. */
	bad.slot[0].tag[0] ^= 1;
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &bad, back), -EBADMSG);

	/* Rotation by another tool while the volume is open: new files use v2,
	 * the daemon picks the new record up without a restart. */
	r.tc = &cfg.tenants[0];
	memcpy(r.volume_id, vol.volume_id, sizeof(r.volume_id));
	edit_keyring(f.bfd, rotate, &r);
	header_round_trip(k, 2);
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &h, back), 0); /* v1 still readable */
	CHECK_MEM(back, dek, EKMFS_KEY_SIZE);

	/* Destroying v1 on disk drops it from the cache at the next re-read. */
	edit_keyring(f.bfd, destroy_v1, NULL);
	header_round_trip(k, 2);
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &h, back), -ENOKEY);
	ekmfs_keys_close(k);

	/* A destroyed version opens nothing, even for a fresh key manager. */
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	if (k) {
		CHECK_EQ_INT(ekmfs_keys_open_header(k, &h, back), -ENOKEY);
		CHECK(has("KEK v1 is destroyed"));
		header_round_trip(k, 2);
		ekmfs_keys_close(k);
	}
out:
	fixture_free(&f);
}

struct worker_arg {
	struct ekmfs_keys *k;
	struct ekmfs_header h;
	uint8_t dek[EKMFS_KEY_SIZE];
	int failures;
};

static void *worker(void *p)
{
	struct worker_arg *w = p;
	uint8_t back[EKMFS_KEY_SIZE], dek[EKMFS_KEY_SIZE];
	struct ekmfs_header h;

	for (int i = 0; i < 300; i++) {
		if (ekmfs_keys_open_header(w->k, &w->h, back) != 0 ||
		    memcmp(back, w->dek, sizeof(back)) != 0)
			w->failures++;
		if (i % 50 == 0 && ekmfs_keys_new_header(w->k, "x", &h, dek) != 0)
			w->failures++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct worker_arg w[4];
	pthread_t t[4];
	struct ekmfs_volume vol;
	struct ekmfs_keys *k = NULL;
	struct fixture f;

	fixture_new(&f);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, &vol), 0);
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	if (!k)
		goto out;
	for (int i = 0; i < 4; i++) {
		w[i].k = k;
		w[i].failures = 0;
		CHECK_EQ_INT(ekmfs_keys_new_header(k, "t", &w[i].h, w[i].dek), 0);
		CHECK_EQ_INT(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(w[i].failures, 0);
	}
	ekmfs_keys_close(k);
out:
	fixture_free(&f);
}

/* docs/FORMAT.md, "Worked example": the same bytes from the spec. */
static const char example_cmk_b64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
static const char example_aad[] =
	"656b6d66732d6b656b2d777261702d7631" "00112233445566778899aabbccddeeff"
	"07000000" "64656661756c74" "01000000";
static const char example_blob[] =
	"f0f1f2f3f4f5f6f7f8f9fafb"
	"c9a7e1a3d89f74d3375e5d3122e7cc19a050eb718cb2f92feeef891be58e6cb8"
	"7f38f5d0da77f8761c0a223b400e9762";
static const char example_pass_blob[] =
	"f0f1f2f3f4f5f6f7f8f9fafb"
	"e6527f54e758d9fc45cbfc742bb6712313493265dc15e9de8a39f6a46f004d1f"
	"65cfea1e765529cf239d9b39d642ed0e";

static void test_worked_example(void)
{
	uint8_t cmk[32], kek[32], vid[16], nonce[12], blob[60], want[60], aad[64], out[32];
	struct ekmfs_wrap_context ctx = { vid, "default", 1 };
	struct ekmfs_tenant_record rec = { .id = 1 };
	struct ekmfs_wrapped_kek w = { .len = 60 };
	struct ekmfs_provider *p = NULL;
	char fpr[17], path[400];
	struct fixture f;
	uint8_t tag[16];

	for (int i = 0; i < 32; i++) {
		cmk[i] = (uint8_t)i;
		kek[i] = (uint8_t)(0xa0 + i);
	}
	check_unhex("00112233445566778899aabbccddeeff", vid, sizeof(vid));
	check_unhex("f0f1f2f3f4f5f6f7f8f9fafb", nonce, sizeof(nonce));
	CHECK_EQ_INT(check_unhex(example_blob, want, sizeof(want)), 60);

	/* 1. The primitive reproduces the published blob and fingerprint. */
	CHECK_EQ_INT(ekmfs_local_wrap_raw(cmk, &ctx, kek, nonce, blob), 0);
	CHECK_MEM(blob, want, 60);
	CHECK_EQ_INT(ekmfs_local_fingerprint(cmk, fpr), 0);
	CHECK(strcmp(fpr, "a44f813309febcea") == 0);

	/* 2. The published AAD bytes, sealed directly, give the same blob. */
	size_t aad_len = check_unhex(example_aad, aad, sizeof(aad));
	CHECK_EQ_INT(aad_len, 48);
	CHECK_EQ_INT(ekmfs_aead_seal(cmk, nonce, aad, aad_len, kek, 32, out, tag), 0);
	CHECK_MEM(out, want + 12, 32);
	CHECK_MEM(tag, want + 44, 16);

	/* 3. Through the provider: a key file holding the example CMK opens the
	 * published record, and a different version in the context does not. */
	fixture_new(&f);
	snprintf(path, sizeof(path), "%s/example.key", f.dir);
	CHECK_EQ_INT(write_file(path, example_cmk_b64, 0600), 0);
	snprintf(cfg.tenants[0].key_file, PATH_MAX, "%s", path);
	snprintf(rec.name, sizeof(rec.name), "default");
	CHECK_EQ_INT(ekmfs_provider_open(&cfg.tenants[0], &rec, false, &p), 0);
	memcpy(w.blob, want, 60);
	snprintf(w.cmk_ref, sizeof(w.cmk_ref), "local:key-file");
	snprintf(w.cmk_version, sizeof(w.cmk_version), "a44f813309febcea");
	if (p) {
		CHECK_EQ_INT(p->ops->unwrap(p, &ctx, &w, out), 0);
		CHECK_MEM(out, kek, 32);
		ctx.kek_version = 2;
		CHECK_EQ_INT(p->ops->unwrap(p, &ctx, &w, out), -EKEYREJECTED);
		ctx.kek_version = 1;
		ekmfs_provider_close(p);
		p = NULL;
	}

	/* 4. The passphrase example: scrypt(N=16384, r=8, p=1, salt 00..0f). */
	snprintf(path, sizeof(path), "%s/example.pass", f.dir);
	CHECK_EQ_INT(write_file(path, "correct horse battery staple\n", 0600), 0);
	cfg.tenants[0].local_source = EKMFS_LOCAL_PASSPHRASE_FILE;
	snprintf(cfg.tenants[0].passphrase_file, PATH_MAX, "%s", path);
	snprintf(rec.kdf, sizeof(rec.kdf), "scrypt:n=16384,r=8,p=1,salt=AAECAwQFBgcICQoLDA0ODw==");
	CHECK_EQ_INT(ekmfs_provider_open(&cfg.tenants[0], &rec, false, &p), 0);
	CHECK_EQ_INT(check_unhex(example_pass_blob, w.blob, sizeof(w.blob)), 60);
	snprintf(w.cmk_ref, sizeof(w.cmk_ref), "local:passphrase");
	snprintf(w.cmk_version, sizeof(w.cmk_version), "be120e87258d1bdc");
	if (p) {
		CHECK_EQ_INT(p->ops->unwrap(p, &ctx, &w, out), 0);
		CHECK_MEM(out, kek, 32);
		ekmfs_provider_close(p);
		p = NULL;
	}
	/* The kdf string is parsed strictly. */
	static const char *const bad_kdf[] = {
		"scrypt:n=16384,r=8,p=1,salt=AAECAwQFBgcICQoLDA0O",
		"scrypt:n=16383,r=8,p=1,salt=AAECAwQFBgcICQoLDA0ODw==",
		"scrypt:n=016384,r=8,p=1,salt=AAECAwQFBgcICQoLDA0ODw==",
		"scrypt:n=16384,r=16,p=1,salt=AAECAwQFBgcICQoLDA0ODw==",
		"scrypt:n=2097152,r=8,p=1,salt=AAECAwQFBgcICQoLDA0ODw==",
		"scrypt:n=16384,r=8,p=1,salt=AAECAwQFBgcICQoLDA0ODw== ",
		"argon2id:m=65536",
	};
	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(bad_kdf); i++) {
		snprintf(rec.kdf, sizeof(rec.kdf), "%s", bad_kdf[i]);
		CHECK_EQ_INT(ekmfs_provider_open(&cfg.tenants[0], &rec, false, &p), -EBADMSG);
		CHECK(p == NULL);
	}
	fixture_free(&f);
}

/* Tenants: creation through apply_config, routing of new headers by path
 * and date, opening any tenant's header, the use limit and cache states. */
static uint32_t new_header_tenant(struct ekmfs_keys *k, const char *path)
{
	uint8_t dek[EKMFS_KEY_SIZE], back[EKMFS_KEY_SIZE];
	struct ekmfs_header h;

	if (ekmfs_keys_new_header(k, path, &h, dek) != 0)
		return 0;
	CHECK_EQ_INT(ekmfs_keys_open_header(k, &h, back), 0);
	CHECK_MEM(back, dek, EKMFS_KEY_SIZE);
	return h.slot[0].tenant_id;
}

static struct ekmfs_tenant_config *add_tenant(struct fixture *f, const char *name,
					      const char *path)
{
	struct ekmfs_tenant_config *tc = &cfg.tenants[cfg.ntenants++];

	*tc = cfg.tenants[0];
	snprintf(tc->name, sizeof(tc->name), "%s", name);
	snprintf(tc->key_file, sizeof(tc->key_file), "%s/keys/%s.key", f->dir, name);
	tc->npaths = 1;
	snprintf(tc->paths[0], sizeof(tc->paths[0]), "%s", path);
	tc->paths_line = 7;
	return tc;
}

static void test_tenants(void)
{
	struct ekmfs_tenant_state st[4];
	struct ekmfs_tenant_config *acme, *beta;
	struct ekmfs_keyring kr;
	struct ekmfs_keys *k = NULL;
	struct fixture f;
	char dir[400];

	fixture_new(&f);
	CHECK_EQ_INT(ekmfs_volume_init(f.bfd, &cfg, NULL), 0);
	acme = add_tenant(&f, "acme", "/bots/acme");
	beta = add_tenant(&f, "beta", "/bots/beta");
	beta->enforce_from = time(NULL) + 3600;      /* not yet */
	acme->key_cache_uses = 2;
	CHECK_EQ_INT(ekmfs_keys_open(f.bfd, &cfg, &k), 0);
	if (!k)
		goto out;
	/* a path missing from the volume refuses, and creates nothing */
	CHECK_EQ_INT(ekmfs_keys_apply_config(k, &cfg), -ENOENT);
	CHECK(has("key 'paths' in [tenant.acme]: /bots/acme: No such file or directory"));
	CHECK_EQ_INT(ekmfs_keyring_read(f.bfd, &kr), 0);
	CHECK_EQ_INT(kr.ntenants, 1);
	ekmfs_keyring_free(&kr);
	snprintf(dir, sizeof(dir), "%s/bots", f.backing);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/bots/acme", f.backing);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/bots/beta", f.backing);
	mkdir(dir, 0755);

	CHECK_EQ_INT(ekmfs_keys_apply_config(k, &cfg), 0);
	CHECK_EQ_INT(ekmfs_keyring_read(f.bfd, &kr), 0);
	CHECK_EQ_INT(kr.ntenants, 3);
	if (kr.ntenants == 3) {
		CHECK(strcmp(kr.tenants[1].name, "acme") == 0);
		CHECK_EQ_INT(kr.tenants[1].id, 2);
		CHECK_EQ_INT(kr.tenants[2].id, 3);
		CHECK(!kr.tenants[1].disabled);
	}
	ekmfs_keyring_free(&kr);
	/* once created, a second apply is a no-op */
	CHECK_EQ_INT(ekmfs_keys_create_tenant(f.bfd, ekmfs_keys_volume(k), acme, NULL, NULL), -EEXIST);

	CHECK_EQ_INT(new_header_tenant(k, "bots/acme/a"), 2);
	CHECK_EQ_INT(new_header_tenant(k, "/bots/acme/deep/b"), 2);
	CHECK_EQ_INT(new_header_tenant(k, "bots/beta/c"), 1);    /* before enforce_from */
	CHECK_EQ_INT(new_header_tenant(k, "bots/other"), 1);
	CHECK(strcmp(ekmfs_keys_route(k, "bots/acme/x"), "acme") == 0);

	/* acme's key_cache_uses = 2: the entry expires after two uses */
	CHECK_EQ_INT(ekmfs_keys_tenant_states(k, st, 4), 3);
	CHECK(strcmp(st[1].name, "acme") == 0);
	CHECK(strcmp(st[1].cache, "expired") == 0 || strcmp(st[1].cache, "cached") == 0);
	CHECK_EQ_INT(st[1].use_limit, 2);
	CHECK(st[1].enforced);
	CHECK(!st[2].enforced);
	CHECK(strcmp(st[0].cache, "cached") == 0);

	/* enforcement reached, then BYOK switched off: recorded in the keyring */
	beta->enforce_from = 0;
	acme->enabled = false;
	CHECK_EQ_INT(ekmfs_keys_apply_config(k, &cfg), 0);
	CHECK_EQ_INT(new_header_tenant(k, "bots/beta/c"), 3);
	CHECK_EQ_INT(new_header_tenant(k, "bots/acme/a"), 1);
	CHECK_EQ_INT(ekmfs_keyring_read(f.bfd, &kr), 0);
	CHECK(kr.ntenants == 3 && kr.tenants[1].disabled);
	ekmfs_keyring_free(&kr);

	/* lock one tenant: its new files fail, others carry on */
	CHECK_EQ_INT(ekmfs_keys_lock(k, "beta"), 0);
	CHECK_EQ_INT(new_header_tenant(k, "bots/beta/d"), 0);
	CHECK_EQ_INT(new_header_tenant(k, "bots/x"), 1);
	CHECK_EQ_INT(ekmfs_keys_tenant_states(k, st, 4), 3);
	CHECK(strcmp(st[2].cache, "locked") == 0);
	CHECK_EQ_INT(ekmfs_keys_unlock(k, "beta"), 0);
	CHECK_EQ_INT(new_header_tenant(k, "bots/beta/d"), 3);
out:
	ekmfs_keys_close(k);
	fixture_free(&f);
}

int main(void)
{
	ekmfs_secmem_init();
	ekmfs_log_set_level(EKMFS_LOG_ERR);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_worked_example);
	RUN(test_init_open_round_trip);
	RUN(test_init_refusals);
	RUN(test_key_file_problems);
	RUN(test_tampered_keyring);
	RUN(test_passphrase);
	RUN(test_prompt_without_tty);
	RUN(test_versions_and_slots);
	RUN(test_threads);
	RUN(test_tenants);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		return 1;
	return CHECK_DONE();
}
