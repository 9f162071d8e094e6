/*
 * fuzz_keyring.c - the volume metadata documents under BACKING/.ekmfs/:
 * the keyring (keyring.json) and the descriptor (volume.json).
 *
 * Input: byte 0 picks the document (even: keyring, odd: descriptor), the
 * rest is its text, written where the volume keeps it. Calls
 * (include/ekmfs/keyring.h): ekmfs_keyring_read, _write, _free,
 * ekmfs_tenant_kek, ekmfs_keyring_tenant, _tenant_by_id, ekmfs_volume_read,
 * ekmfs_volume_rewrite.
 *
 * Properties: a refused document gives -EBADMSG or -EPROTO and a message;
 * an accepted keyring keeps the rules FORMAT.md states (tenant names and
 * ids unique, KEK versions unique, the current one present and active, a
 * destroyed KEK without a blob, a MAC of 0 or 32 bytes); its keyring MAC
 * check answers 0 or -EBADMSG (with a message); sealed under the harness's
 * key it survives a write and a read unchanged, and then authenticates; an
 * accepted descriptor likewise survives a rewrite.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/keyring.h"
#include "ekmfs/util.h"
#include "fuzz.h"

static int bfd = -1;
static char keyring_path[PATH_MAX], volume_path[PATH_MAX];
/* The descriptor the keyring is sealed with, and the MAC key (its wrap a
 * stand-in: nothing here unwraps it). */
static const struct ekmfs_volume vol = {
	.format_version = EKMFS_VOLUME_VERSION, .block_size = 4096, .created = 1790000000,
	.volume_id = { 0xf0, 0x22, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 },
};
static struct ekmfs_keyring_key mk = {
	.key = { 0x11, 0x22, 0x33 },
	.wrapped = { .blob = { 0xaa, 0xbb }, .len = 2, .cmk_ref = "local:fuzz" },
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char backing[PATH_MAX], meta[PATH_MAX];

	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_path(backing, "backing");
	fuzz_path(meta, "backing/" EKMFS_META_DIR);
	FUZZ_CHECK(mkdir(backing, 0700) == 0 && mkdir(meta, 0700) == 0);
	fuzz_path(keyring_path, "backing/" EKMFS_META_DIR "/" EKMFS_KEYRING_FILE);
	fuzz_path(volume_path, "backing/" EKMFS_META_DIR "/" EKMFS_VOLUME_FILE);
	bfd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(bfd >= 0);
	return 0;
}

static void check_rules(struct ekmfs_keyring *kr)
{
	FUZZ_CHECK(kr->ntenants >= 1);
	for (size_t i = 0; i < kr->ntenants; i++) {
		struct ekmfs_tenant_record *t = &kr->tenants[i];
		struct ekmfs_kek_record *cur = ekmfs_tenant_kek(t, t->current_version);

		FUZZ_CHECK(t->name[0] && t->id >= 1);
		FUZZ_CHECK(ekmfs_keyring_tenant(kr, t->name) == t);
		FUZZ_CHECK(ekmfs_keyring_tenant_by_id(kr, t->id) == t);
		FUZZ_CHECK(t->nkeks >= 1);
		FUZZ_CHECK(cur && cur->state == EKMFS_KEK_ACTIVE);
		for (size_t k = 0; k < t->nkeks; k++) {
			struct ekmfs_kek_record *r = &t->keks[k];

			FUZZ_CHECK(r->version >= 1 && ekmfs_tenant_kek(t, r->version) == r);
			FUZZ_CHECK((r->state == EKMFS_KEK_DESTROYED) == (r->wrapped.len == 0));
			FUZZ_CHECK(r->wrapped.len <= EKMFS_WRAPPED_MAX);
			FUZZ_CHECK(r->wrapped.mac_len == 0 || r->wrapped.mac_len == EKMFS_WRAP_MAC_SIZE);
		}
	}
}

static bool same_kek(const struct ekmfs_kek_record *a, const struct ekmfs_kek_record *b)
{
	return a->version == b->version && a->state == b->state && a->created == b->created &&
	       a->wrapped.len == b->wrapped.len &&
	       memcmp(a->wrapped.blob, b->wrapped.blob, a->wrapped.len) == 0 &&
	       strcmp(a->wrapped.cmk_ref, b->wrapped.cmk_ref) == 0 &&
	       strcmp(a->wrapped.cmk_version, b->wrapped.cmk_version) == 0 &&
	       a->wrapped.mac_len == b->wrapped.mac_len &&
	       memcmp(a->wrapped.mac, b->wrapped.mac, a->wrapped.mac_len) == 0;
}

static void check_same(const struct ekmfs_keyring *a, const struct ekmfs_keyring *b)
{
	FUZZ_CHECK(a->generation == b->generation && a->ntenants == b->ntenants);
	FUZZ_CHECK(a->mac_key.len == b->mac_key.len &&
		   memcmp(a->mac_key.blob, b->mac_key.blob, a->mac_key.len) == 0 &&
		   strcmp(a->mac_key.cmk_ref, b->mac_key.cmk_ref) == 0 &&
		   strcmp(a->mac_key.cmk_version, b->mac_key.cmk_version) == 0 &&
		   a->mac_key.mac_len == b->mac_key.mac_len &&
		   memcmp(a->mac_key.mac, b->mac_key.mac, a->mac_key.mac_len) == 0);
	for (size_t i = 0; i < a->ntenants; i++) {
		const struct ekmfs_tenant_record *x = &a->tenants[i], *y = &b->tenants[i];

		FUZZ_CHECK(strcmp(x->name, y->name) == 0 && x->id == y->id &&
			   strcmp(x->provider, y->provider) == 0 && strcmp(x->kdf, y->kdf) == 0 &&
			   x->current_version == y->current_version &&
			   x->last_rotation == y->last_rotation &&
			   x->last_cmk_change == y->last_cmk_change &&
			   x->disabled == y->disabled && x->nkeks == y->nkeks);
		for (size_t k = 0; k < x->nkeks; k++)
			FUZZ_CHECK(same_kek(&x->keks[k], &y->keks[k]));
	}
}

static void keyring(const uint8_t *text, size_t len)
{
	struct ekmfs_keyring kr, again;
	int rc;

	fuzz_write_file(keyring_path, text, len);
	ekmfs_clearerr();
	rc = ekmfs_keyring_read(bfd, &kr);
	fuzz_debug("keyring: %d %s", rc, ekmfs_lasterr());
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTO);
	if (rc) {
		FUZZ_CHECK(ekmfs_lasterr()[0] && kr.ntenants == 0 && !kr.tenants);
		return;
	}
	check_rules(&kr);
	FUZZ_CHECK(!kr.has_mac || kr.mac_key.len);
	ekmfs_clearerr();
	rc = ekmfs_keyring_check(&kr, &vol, mk.key, "keyring.json");
	FUZZ_CHECK(rc == 0 || (rc == -EBADMSG && ekmfs_lasterr()[0]));
	FUZZ_CHECK(ekmfs_volume_rewrite(bfd, &vol) == 0);
	FUZZ_CHECK(ekmfs_keyring_write(bfd, &kr, &mk) == 0);
	FUZZ_CHECK(kr.has_mac && kr.mac_key.len);
	FUZZ_CHECK(ekmfs_keyring_read(bfd, &again) == 0);
	check_same(&kr, &again);
	FUZZ_CHECK(again.has_mac && memcmp(again.mac, kr.mac, sizeof(kr.mac)) == 0);
	FUZZ_CHECK(ekmfs_keyring_check(&again, &vol, mk.key, "keyring.json") == 0);
	ekmfs_keyring_free(&again);
	ekmfs_keyring_free(&kr);
}

static void volume(const uint8_t *text, size_t len)
{
	struct ekmfs_volume v, again;
	int rc;

	fuzz_write_file(volume_path, text, len);
	ekmfs_clearerr();
	rc = ekmfs_volume_read(bfd, &v);
	fuzz_debug("volume: %d %s", rc, ekmfs_lasterr());
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTO);
	if (rc) {
		FUZZ_CHECK(ekmfs_lasterr()[0]);
		return;
	}
	FUZZ_CHECK(v.block_size == 4096 && v.format_version >= 1 &&
		   v.format_version <= EKMFS_VOLUME_VERSION);
	FUZZ_CHECK(ekmfs_volume_rewrite(bfd, &v) == 0);
	FUZZ_CHECK(ekmfs_volume_read(bfd, &again) == 0);
	FUZZ_CHECK(memcmp(&v, &again, sizeof(v)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		volume(data + 1, size - 1);
	else
		keyring(data + 1, size - 1);
	return 0;
}
