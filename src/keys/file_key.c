/*
 * file_key.c - a file's DEK (include/ekmfs/keys.h).
 *
 * Owns: the header of a new file (fresh file id and DEK, wrapped under the
 * current KEK of the tenant its path routes to), the version 2 header of a
 * version 1 file, opening a header's DEK, checking every slot of one, and
 * the one rule by which a header is opened, shared with ekmfs-rotate:
 * the newest slot that names a tenant, then the other one.
 *
 * Why that rule: a re-wrap (rotation, migration) writes the slot not in use
 * with a higher sequence number, makes it durable, then clears the old one
 * (docs/ROTATION.md). A crash between the two leaves both; the newer opens
 * unless it is itself a write cut short (its tenant id is written last, so
 * such a slot names tenant 0 and is skipped), in which case the older does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ekmfs/aead.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "keys_priv.h"

/* ---- the rule ---- */

int ekmfs_header_open_dek(const struct ekmfs_header *h, ekmfs_slot_open_fn open_slot,
			  void *arg, uint8_t *dek, char *first_err, size_t errlen)
{
	char err[512] = "";
	int order[2], fallback, ret = -EBADMSG, tried = 0;

	if (first_err && errlen)
		first_err[0] = '\0';
	order[0] = ekmfs_header_newest_slot(h, &fallback);
	order[1] = fallback;
	for (int j = 0; j < 2; j++) {
		int i = order[j], r;

		if (i < 0 || !h->slot[i].tenant_id)
			continue;
		r = open_slot(arg, h, i, dek);
		if (r == 0) {
			if (tried && first_err)
				snprintf(first_err, errlen, "%s", err);
			return i;
		}
		if (!tried++) {
			ret = r;
			snprintf(err, sizeof(err), "%s", ekmfs_lasterr());
		}
	}
	ekmfs_wipe(dek, EKMFS_KEY_SIZE);
	if (!tried) {
		ekmfs_seterr("file header has no key slot in use");
		return -EBADMSG;
	}
	/* The first slot's reason: the one a reader needs. */
	ekmfs_seterr("%s", err);
	return ret;
}

/* ---- the key manager's slots ---- */

/* Name of the tenant a new file at path goes to now: the configured owner
 * of the path once it is enforced (keys_tenant_enforced: whether it is
 * enabled is the keyring's record), else the default tenant. Any lock of
 * k->lock. */
static const char *route(struct ekmfs_keys *k, const char *path)
{
	const struct ekmfs_tenant_config *owner;

	if (!k->policy || !path)
		return EKMFS_DEFAULT_TENANT;
	owner = ekmfs_config_owner(k->policy, path);
	if (owner && keys_tenant_enforced(k, owner, time(NULL)))
		return owner->name;
	return k->policy->tenants[0].name;
}

const char *ekmfs_keys_route(struct ekmfs_keys *k, const char *path)
{
	const char *name;
	struct key_tenant *kt;

	pthread_rwlock_rdlock(&k->lock);
	name = route(k, path);
	/* Stable while k is open: the tenant table's copy of the name. */
	kt = keys_tenant_by_name(k, name);
	if (kt)
		name = kt->name;
	pthread_rwlock_unlock(&k->lock);
	return name;
}

int ekmfs_keys_new_header(struct ekmfs_keys *k, const char *path, struct ekmfs_header *h,
			  uint8_t *dek)
{
	uint8_t file_id[EKMFS_FILE_ID_SIZE], nonce[EKMFS_NONCE_SIZE];
	struct ekmfs_tenant_record *rec;
	uint32_t tenant_id = 0, version = 0;
	char tenant[EKMFS_NAME_MAX];
	uint8_t *kek;
	int ret;

	/* Pick up a rotation (new current version) made by another tool; the
	 * exclusive lock only when the keyring file actually changed. */
	pthread_rwlock_rdlock(&k->lock);
	if (keys_keyring_changed(k)) {
		pthread_rwlock_unlock(&k->lock);
		pthread_rwlock_wrlock(&k->lock);
		keys_keyring_refresh(k);
	}
	snprintf(tenant, sizeof(tenant), "%s", route(k, path));
	rec = ekmfs_keyring_tenant(&k->kr, tenant);
	if (rec) {
		tenant_id = rec->id;
		version = rec->current_version;
	}
	pthread_rwlock_unlock(&k->lock);
	if (!rec) {
		/* Never fall back to another tenant's key: the customer asked
		 * for theirs. */
		ekmfs_seterr("new files in %s belong to tenant '%s', which has no keys in the "
			     "keyring (its creation failed: see the log)", path ? path : "/",
			     tenant);
		return -ENOKEY;
	}

	ret = ekmfs_random(file_id, sizeof(file_id));
	if (!ret)
		ret = ekmfs_random(nonce, sizeof(nonce));
	if (!ret)
		ret = ekmfs_random(dek, EKMFS_KEY_SIZE);
	if (ret)
		goto out;
	ret = keys_kek_acquire(k, tenant_id, version, &kek);
	if (ret)
		goto out;
	ekmfs_header_init(h, file_id);
	ret = ekmfs_slot_wrap(h, 0, 1, tenant_id, version, kek, dek, nonce);
	pthread_rwlock_unlock(&k->lock);
out:
	if (ret)
		ekmfs_wipe(dek, EKMFS_KEY_SIZE);
	return ret;
}

int ekmfs_keys_rewrap_header(struct ekmfs_keys *k, const struct ekmfs_header *old,
			     const uint8_t *dek, struct ekmfs_header *h)
{
	uint8_t nonce[EKMFS_NONCE_SIZE];
	int owner = ekmfs_header_owner_slot(old), ret;
	const struct ekmfs_slot *s;
	uint8_t *kek;

	if (owner < 0) {
		ekmfs_seterr("file header has no key slot in use");
		return -EBADMSG;
	}
	s = &old->slot[owner];
	ret = ekmfs_random(nonce, sizeof(nonce));
	if (ret)
		return ret;
	ret = keys_kek_acquire(k, s->tenant_id, s->kek_version, &kek);
	if (ret)
		return ret;
	ekmfs_header_init(h, old->file_id);
	ret = ekmfs_slot_wrap(h, 0, 1, s->tenant_id, s->kek_version, kek, dek, nonce);
	pthread_rwlock_unlock(&k->lock);
	return ret;
}

/* Unwrap slot idx of h with its KEK from the cache: ekmfs_slot_open_fn. */
static int open_slot(void *arg, const struct ekmfs_header *h, int idx, uint8_t *dek)
{
	struct ekmfs_keys *k = arg;
	const struct ekmfs_slot *s = &h->slot[idx];
	char id[2 * EKMFS_FILE_ID_SIZE + 1];
	uint8_t *kek;
	int ret;

	ret = keys_kek_acquire(k, s->tenant_id, s->kek_version, &kek);
	if (ret)
		return ret;
	ret = ekmfs_slot_unwrap(h, idx, kek, dek);
	pthread_rwlock_unlock(&k->lock);
	if (ret == -EBADMSG) {
		ekmfs_hex(h->file_id, EKMFS_FILE_ID_SIZE, id);
		ekmfs_seterr("file %s: key slot %d (tenant id %u, KEK v%u) does not "
			     "authenticate: the header is tampered or corrupt", id, idx,
			     s->tenant_id, s->kek_version);
	}
	return ret;
}

int ekmfs_keys_open_header(struct ekmfs_keys *k, const struct ekmfs_header *h, uint8_t *dek)
{
	char first_err[512];
	int ret = ekmfs_header_open_dek(h, open_slot, k, dek, first_err, sizeof(first_err));

	if (ret < 0)
		return ret;
	if (first_err[0])
		ekmfs_log(EKMFS_LOG_WARN, "%s; the other key slot opened the file", first_err);
	return 0;
}

int ekmfs_keys_check_slots(struct ekmfs_keys *k, const struct ekmfs_header *h)
{
	uint8_t dek[EKMFS_KEY_SIZE];
	int ret = 0;

	for (int i = 0; i < EKMFS_SLOT_COUNT && ret == 0; i++) {
		const struct ekmfs_slot *s = &h->slot[i];

		/* Tenant id 0: a rotation's slot write cut short (ROTATION.md). */
		if (!s->seq || !s->tenant_id)
			continue;
		if (open_slot(k, h, i, dek) == -EBADMSG)
			ret = -EBADMSG;   /* open_slot said which and why */
		ekmfs_wipe(dek, sizeof(dek));
	}
	return ret;
}
