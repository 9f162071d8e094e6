/*
 * keyring_mac.c - the MAC that authenticates the keyring and the
 * descriptor together (include/ekmfs/keyring.h, docs/FORMAT.md "Keyring
 * MAC").
 *
 * Owns: the canonical binary encoding of every field of keyring.json and
 * volume.json, its HMAC-SHA256 under the keyring's MAC key, and the check
 * a reader makes (with the one tolerance an upgrade needs).
 *
 * Why a canonical encoding and not the file's bytes: the MAC is over what
 * the parser understood, so whitespace, key order or an escape cannot make
 * two readings of one MAC, and the writer need not reproduce its own text.
 * Every field is length- or width-prefixed, so no two keyrings encode
 * alike; records are encoded in the order they are stored, so reordering,
 * removing, duplicating or adding one changes the MAC; the descriptor's
 * volume id is in it, so another volume's keyring does not verify.
 *
 * The key is random (32 bytes), made at init and kept in the keyring
 * wrapped by the default tenant's CMK ("mac_key"); the key manager unwraps
 * it (src/keys/). Nothing here knows about providers.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ekmfs/keyring.h"
#include "ekmfs/mac.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define MAC_LABEL "ekmfs-keyring-mac-v1"

/* A growing buffer; fails once (ok false) and stays failed. */
struct enc {
	uint8_t *p;
	size_t len, cap;
	bool ok;
};

static void put(struct enc *e, const void *data, size_t n)
{
	while (e->ok && e->len + n > e->cap) {
		/* ekmfs_grow doubles a full array (and checks the size). */
		uint8_t *p = ekmfs_grow(e->p, &e->cap, e->cap, 1, 1024);

		if (p)
			e->p = p;
		else
			e->ok = false;
	}
	if (!e->ok)
		return;
	memcpy(e->p + e->len, data, n);
	e->len += n;
}

static void put_u64(struct enc *e, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	put(e, b, 8);
}

static void put_u32(struct enc *e, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	put(e, b, 4);
}

static void put_u8(struct enc *e, uint8_t v)
{
	put(e, &v, 1);
}

static void put_bytes(struct enc *e, const void *data, size_t n)
{
	put_u32(e, (uint32_t)n);
	put(e, data, n);
}

static void put_str(struct enc *e, const char *s)
{
	put_bytes(e, s, strlen(s));
}

/* A wrapped key as stored: a destroyed KEK keeps none of it. */
static void put_wrapped(struct enc *e, const struct ekmfs_wrapped_kek *w, bool gone)
{
	put_str(e, w->cmk_ref);
	put_str(e, w->cmk_version);
	put_bytes(e, w->blob, gone ? 0 : w->len);
	put_bytes(e, w->mac, gone ? 0 : w->mac_len);
}

static void encode(struct enc *e, const struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
		   uint32_t volume_version)
{
	put(e, MAC_LABEL, sizeof(MAC_LABEL));           /* with its NUL */
	put_u32(e, volume_version);
	put(e, v->volume_id, EKMFS_VOLUME_ID_SIZE);
	put_u32(e, v->block_size);
	put_u64(e, (uint64_t)(int64_t)v->created);
	put_u64(e, kr->generation);
	put_wrapped(e, &kr->mac_key, false);
	put_u32(e, (uint32_t)kr->ntenants);
	for (size_t i = 0; i < kr->ntenants; i++) {
		const struct ekmfs_tenant_record *t = &kr->tenants[i];

		put_str(e, t->name);
		put_u32(e, t->id);
		put_str(e, t->provider);
		put_str(e, t->kdf);
		put_u32(e, t->current_version);
		put_u64(e, (uint64_t)(int64_t)t->last_rotation);
		put_u64(e, (uint64_t)(int64_t)t->last_cmk_change);
		put_u8(e, t->disabled ? 0 : 1);
		put_u32(e, (uint32_t)t->nkeks);
		for (size_t j = 0; j < t->nkeks; j++) {
			const struct ekmfs_kek_record *k = &t->keks[j];

			put_u32(e, k->version);
			put_u8(e, (uint8_t)k->state);
			put_u64(e, (uint64_t)(int64_t)k->created);
			put_wrapped(e, &k->wrapped, k->state == EKMFS_KEK_DESTROYED);
		}
	}
}

static int mac_as(const struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
		  uint32_t volume_version, const uint8_t *key, uint8_t out[EKMFS_KEYRING_MAC_SIZE])
{
	struct enc e = { .ok = true };
	struct ekmfs_mac_part part;
	int ret;

	encode(&e, kr, v, volume_version);
	if (!e.ok) {
		free(e.p);
		return -ENOMEM;
	}
	part.data = e.p;
	part.len = e.len;
	ret = ekmfs_hmac_sha256(key, EKMFS_KEYRING_KEY_SIZE, &part, 1, out);
	free(e.p);
	if (ret)
		ekmfs_seterr("HMAC-SHA256 failed in the crypto library");
	return ret;
}

int ekmfs_keyring_mac(const struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
		      const uint8_t *key, uint8_t out[EKMFS_KEYRING_MAC_SIZE])
{
	return mac_as(kr, v, v->format_version, key, out);
}

int ekmfs_keyring_seal(struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
		       const uint8_t *key)
{
	int ret = ekmfs_keyring_mac(kr, v, key, kr->mac);

	kr->has_mac = ret == 0;
	return ret;
}

bool ekmfs_keyring_sealed(const struct ekmfs_keyring *kr)
{
	return kr->has_mac;
}

int ekmfs_keyring_check(const struct ekmfs_keyring *kr, const struct ekmfs_volume *v,
			const uint8_t *key, const char *path)
{
	uint8_t want[EKMFS_HMAC_SIZE];
	int ret;

	if (!kr->has_mac && !kr->mac_key.len && v->format_version == 1)
		return 0;       /* ekmfs 1's: ekmfs-admin upgrade seals it */
	if (!kr->has_mac) {
		ekmfs_seterr("%s has no MAC: it cannot be authenticated (a keyring of ekmfs 1 "
			     "that ekmfs-admin upgrade has not sealed, or the MAC was removed)",
			     path);
		return -EBADMSG;
	}
	ret = mac_as(kr, v, v->format_version, key, want);
	if (!ret && CRYPTO_memcmp(want, kr->mac, sizeof(want)) == 0)
		return 0;
	/* The one tolerance: upgrade writes volume.json at version 2 before it
	 * seals the keyring again, so a crash in between leaves a MAC made at
	 * version 1. Raising the version only makes the volume stricter (it
	 * refuses format-1 files); the reverse, a MAC made at 2 under a
	 * descriptor that says 1, is a downgrade and is refused. */
	if (!ret && v->format_version == 2)
		ret = mac_as(kr, v, 1, key, want);
	if (!ret && CRYPTO_memcmp(want, kr->mac, sizeof(want)) == 0)
		return 0;
	ekmfs_wipe(want, sizeof(want));
	if (ret)
		return ret;
	ekmfs_seterr("%s does not authenticate with volume.json: a field of either was edited, "
		     "a record added, removed or reordered, or it is another volume's keyring",
		     path);
	return -EBADMSG;
}

int ekmfs_keyring_check_anchor(const struct ekmfs_keyring *kr, uint64_t least,
			       const char *path)
{
	if (!least && !kr->has_mac)
		ekmfs_log(EKMFS_LOG_WARN, "%s has no MAC (made by ekmfs 1): it is not "
			  "authenticated until ekmfs-admin upgrade seals it", path);
	if (!least)
		return 0;
	if (!kr->has_mac) {
		ekmfs_seterr("%s has no MAC, but the audit trail recorded a sealed keyring "
			     "(generation %llu): the MAC was stripped", path,
			     (unsigned long long)least);
		return -EBADMSG;
	}
	if (kr->generation < least) {
		ekmfs_seterr("%s (generation %llu) is older than the keyring the audit trail "
			     "recorded (generation %llu): it was rolled back", path,
			     (unsigned long long)kr->generation, (unsigned long long)least);
		return -ESTALE;
	}
	return 0;
}
