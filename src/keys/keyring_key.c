/*
 * keyring_key.c - the keyring's MAC key (include/ekmfs/keys.h,
 * include/ekmfs/keyring.h "mac_key", docs/FORMAT.md "Keyring MAC").
 *
 * Owns: making the key (random, at init or when a keyring of ekmfs 1 is
 * first sealed), wrapping it under the default tenant's CMK, unwrapping it
 * and authenticating the keyring with it, re-wrapping it on a CMK change,
 * and freeing it (secure memory, wiped).
 *
 * Why a key of its own, in the keyring, and not the audit key or a KEK:
 * KEKs are retired and destroyed, the audit trail can be off, and a key
 * kept in the keyring changes CMK in the same atomic write as the KEK
 * records it authenticates - no second file to keep in step.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ekmfs/aead.h"
#include "ekmfs/http.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "keys_priv.h"

/* Wrapped like the audit key: by the default tenant's CMK, as "KEK version
 * 0", which no KEK is (versions start at 1), so neither blob passes for a
 * KEK record. The two keys share that context; a wrap of one put in place
 * of the other gives a key whose MACs carry the other's label
 * ("ekmfs-keyring-mac-v1" vs "ekmfs-audit-record-v1"), so nothing
 * verifies. The provider's messages then name tenant 'default'. */
static struct ekmfs_wrap_context key_ctx(const struct ekmfs_volume *vol)
{
	return (struct ekmfs_wrap_context){ vol->volume_id, EKMFS_DEFAULT_TENANT, 0 };
}

void ekmfs_keyring_key_free(struct ekmfs_keyring_key *mk)
{
	ekmfs_secure_free(mk, sizeof(*mk));
}

int ekmfs_keyring_key_make(const struct ekmfs_volume *vol, struct ekmfs_provider *prov,
			   struct ekmfs_keyring_key **out)
{
	struct ekmfs_wrap_context ctx = key_ctx(vol);
	struct ekmfs_keyring_key *mk = ekmfs_secure_alloc(sizeof(*mk));
	int ret;

	*out = NULL;
	if (!mk)
		return -ENOMEM;
	mk->made = true;
	ret = ekmfs_random(mk->key, sizeof(mk->key));
	if (!ret)
		ret = prov->ops->wrap(prov, &ctx, mk->key, &mk->wrapped);
	if (ret) {
		ekmfs_keyring_key_free(mk);
		return ret;
	}
	*out = mk;
	return 0;
}

/* Whether prov opens the default tenant's current KEK record of kr (the
 * reason of the failure that made us ask is kept). */
static bool cmk_opens_kek(const struct ekmfs_volume *vol, const struct ekmfs_keyring *kr,
			  struct ekmfs_provider *prov)
{
	struct ekmfs_tenant_record *t = ekmfs_keyring_tenant((struct ekmfs_keyring *)kr,
							     EKMFS_DEFAULT_TENANT);
	struct ekmfs_kek_record *cur = t ? ekmfs_tenant_kek(t, t->current_version) : NULL;
	struct ekmfs_wrap_context ctx = { vol->volume_id, EKMFS_DEFAULT_TENANT,
					  cur ? cur->version : 0 };
	uint8_t *probe = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	char why[512];
	bool ok;

	if (!probe || !cur) {
		ekmfs_secure_free(probe, EKMFS_KEY_SIZE);
		return false;
	}
	snprintf(why, sizeof(why), "%s", ekmfs_lasterr());
	ok = prov->ops->unwrap(prov, &ctx, &cur->wrapped, probe) == 0;
	ekmfs_secure_free(probe, EKMFS_KEY_SIZE);
	ekmfs_seterr("%s", why);
	return ok;
}

int ekmfs_keyring_key_open(int backing_fd, const struct ekmfs_volume *vol,
			   const struct ekmfs_keyring *kr, struct ekmfs_provider *prov,
			   struct ekmfs_keyring_key **out)
{
	struct ekmfs_wrap_context ctx = key_ctx(vol);
	struct ekmfs_keyring_key *mk;
	char path[PATH_MAX + 64];
	int ret;

	*out = NULL;
	ekmfs_meta_path(backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
	if (!kr->mac_key.len) {
		/* ekmfs 1's keyring passes on a version-1 volume only; then a
		 * key is made for its first write, which seals it. */
		ret = ekmfs_keyring_check(kr, vol, NULL, path);
		if (!ret)
			ret = ekmfs_keyring_key_make(vol, prov, out);
		return ret;
	}
	mk = ekmfs_secure_alloc(sizeof(*mk));
	if (!mk)
		return -ENOMEM;
	mk->wrapped = kr->mac_key;
	ekmfs_clearerr();
	ret = prov->ops->unwrap(prov, &ctx, &kr->mac_key, mk->key);
	if (ret && ret != -ENOMEM && !ekmfs_http_is_outage(ret) && cmk_opens_kek(vol, kr, prov)) {
		/* The CMK is right (it opens the default tenant's current KEK):
		 * the record is what is wrong. */
		ekmfs_seterr("%s: its MAC key (mac_key) does not open with the default tenant's "
			     "CMK: tampered, or another volume's", path);
		ret = -EBADMSG;
	}
	/* Otherwise the provider's reason (a wrong key file, a key disabled,
	 * an outage) is the root cause and stands alone. */
	if (ret)
		goto out;
	ret = ekmfs_keyring_check(kr, vol, mk->key, path);
out:
	if (ret) {
		ekmfs_keyring_key_free(mk);
		return ret;
	}
	*out = mk;
	return 0;
}

int ekmfs_keyring_key_follow(int backing_fd, const struct ekmfs_volume *vol,
			     const struct ekmfs_keyring *kr, struct ekmfs_provider *prov,
			     struct ekmfs_keyring_key **mk)
{
	struct ekmfs_keyring_key *theirs;
	char path[PATH_MAX + 64];
	int ret;

	if ((*mk)->made && kr->mac_key.len) {
		/* A keyring of ekmfs 1 sealed since we read it - by us or by
		 * another writer, with the key it made: take that key. Rare
		 * (once per volume), so the provider call is made here. */
		ret = ekmfs_keyring_key_open(backing_fd, vol, kr, prov, &theirs);
		if (ret)
			return ret;
		ekmfs_keyring_key_free(*mk);
		*mk = theirs;
		return 0;
	}
	ekmfs_meta_path(backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
	return ekmfs_keyring_check(kr, vol, (*mk)->key, path);
}

int ekmfs_keyring_key_rewrap(const struct ekmfs_volume *vol, const struct ekmfs_keyring_key *mk,
			     struct ekmfs_provider *to, struct ekmfs_wrapped_kek *out)
{
	struct ekmfs_wrap_context ctx = key_ctx(vol);

	return to->ops->wrap(to, &ctx, mk->key, out);
}
