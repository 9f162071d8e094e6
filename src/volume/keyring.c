/*
 * keyring.c - the keyring .ekmfs/keyring.json (include/ekmfs/keyring.h).
 *
 * Owns: the JSON of the keyring (docs/FORMAT.md, "Volume metadata"), its
 * strict parsing (json.c), its read-modify-write under the meta lock the
 * caller holds (the store, store.c, replaces it atomically and durably),
 * and the in-memory helpers every user of a keyring shares.
 *
 * Divisions:
 *   1. the keyring document: parse, serialize, read, write, update, stamp
 *   2. in-memory keyring helpers
 *
 * Generation: ekmfs_keyring_write() stores kr->generation exactly as given.
 * ekmfs_keyring_update(), under the exclusive meta lock, reads the keyring,
 * lets the caller change it, increments generation and writes it, so every
 * successful write carries a generation one above the one it replaced (1
 * for a new volume).
 *
 * Nothing here knows about providers: a wrapped KEK is an opaque blob.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/format.h"
#include "ekmfs/io.h"
#include "ekmfs/keyring.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "volume_priv.h"

#define KEYRING_FORMAT "ekmfs-keyring"
#define MAX_TENANTS 1024
#define MAX_KEKS 4096               /* per tenant */

/* ---- 1. the keyring document ---- */

static const char *const keyring_keys[] = {
	"format", "version", "generation", "tenants",
	"mac_key", "mac",               /* absent only in keyrings of ekmfs 1 */
	NULL
};
static const char *const mac_key_keys[] = {
	"cmk_ref", "cmk_version", "wrapped", "mac", NULL
};
static const char *const tenant_keys[] = {
	"name", "id", "provider", "kdf", "current_version", "last_rotation",
	"last_cmk_change", "keks",
	"enabled",                      /* optional: false once BYOK is switched off */
	NULL
};
static const char *const kek_keys[] = {
	"version", "state", "created", "cmk_ref", "cmk_version", "wrapped",
	"mac",                          /* optional: only binding-MAC providers */
	NULL
};

static const char *const state_names[] = {
	[EKMFS_KEK_ACTIVE] = "active",
	[EKMFS_KEK_RETIRED] = "retired",
	[EKMFS_KEK_DESTROYED] = "destroyed",
};

const char *ekmfs_kek_state_name(enum ekmfs_kek_state s)
{
	if ((unsigned)s < EKMFS_ARRAY_SIZE(state_names))
		return state_names[s];
	return "unknown";
}

static bool valid_name(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* "cmk_ref" and "cmk_version" of obj: which CMK, and its version, wrapped
 * a key (kept by a destroyed KEK too). */
static int parse_cmk(struct vj_ctx *c, json_object *obj, const char *where,
		     struct ekmfs_wrapped_kek *w)
{
	if (vj_get_str(c, obj, where, "cmk_ref", true, w->cmk_ref, sizeof(w->cmk_ref)) ||
	    vj_get_str(c, obj, where, "cmk_version", true, w->cmk_version,
		       sizeof(w->cmk_version)))
		return c->err;
	return 0;
}

/* "wrapped" (base64, not empty) and the optional binding "mac" of obj. */
static int parse_blob(struct vj_ctx *c, json_object *obj, const char *where, const char *what,
		      struct ekmfs_wrapped_kek *w)
{
	const size_t b64_max = 4 * ((EKMFS_WRAPPED_MAX + 2) / 3) + 1;
	char field[160], *b64 = malloc(b64_max);
	long dec;

	if (!b64)
		return -ENOMEM;
	snprintf(field, sizeof(field), "%swrapped", where);
	if (vj_get_str(c, obj, where, "wrapped", true, b64, b64_max))
		goto out;
	if (!b64[0]) {
		vj_jfail(c, -EBADMSG, field, "must not be empty for %s", what);
		goto out;
	}
	dec = ekmfs_b64_decode(b64, w->blob, sizeof(w->blob));
	if (dec <= 0) {
		vj_jfail(c, -EBADMSG, field, "not valid base64");
		goto out;
	}
	w->len = (size_t)dec;
	if (json_object_object_get_ex(obj, "mac", NULL)) {
		snprintf(field, sizeof(field), "%smac", where);
		if (vj_get_str(c, obj, where, "mac", false, b64, b64_max))
			goto out;
		dec = ekmfs_b64_decode(b64, w->mac, sizeof(w->mac));
		if (dec != EKMFS_WRAP_MAC_SIZE) {
			vj_jfail(c, -EBADMSG, field, "must be base64 of %d bytes", EKMFS_WRAP_MAC_SIZE);
			goto out;
		}
		w->mac_len = (size_t)dec;
	}
out:
	free(b64);
	return c->err;
}

static int parse_kek(struct vj_ctx *c, json_object *obj, const char *where,
		     struct ekmfs_kek_record *k)
{
	char state[16], field[160], what[32];
	uint64_t n;
	size_t i;

	if (!json_object_is_type(obj, json_type_object))
		return vj_jfail(c, -EBADMSG, where, "must be an object");
	if (vj_check_keys(c, obj, where, kek_keys) ||
	    vj_get_uint(c, obj, where, "version", 1, UINT32_MAX, &n))
		return c->err;
	k->version = (uint32_t)n;
	if (vj_get_str(c, obj, where, "state", false, state, sizeof(state)))
		return c->err;
	for (i = 0; i < EKMFS_ARRAY_SIZE(state_names); i++)
		if (strcmp(state, state_names[i]) == 0)
			break;
	snprintf(field, sizeof(field), "%sstate", where);
	if (i == EKMFS_ARRAY_SIZE(state_names))
		return vj_jfail(c, -EBADMSG, field,
			     "'%s' is not active, retired or destroyed", state);
	k->state = (enum ekmfs_kek_state)i;
	if (vj_get_time(c, obj, where, "created", &k->created) ||
	    parse_cmk(c, obj, where, &k->wrapped))
		return c->err;

	if (k->state == EKMFS_KEK_DESTROYED) {
		json_object *v;

		/* Nothing a reader ignores may be stored: the MAC covers only
		 * what is parsed. */
		snprintf(field, sizeof(field), "%swrapped", where);
		if (!json_object_object_get_ex(obj, "wrapped", &v) ||
		    !json_object_is_type(v, json_type_string) || json_object_get_string_len(v))
			return vj_jfail(c, -EBADMSG, field, "a destroyed KEK keeps no wrapped key");
		snprintf(field, sizeof(field), "%smac", where);
		if (json_object_object_get_ex(obj, "mac", NULL))
			return vj_jfail(c, -EBADMSG, field, "a destroyed KEK keeps no binding MAC");
		k->wrapped.len = 0;
		return 0;
	}
	snprintf(what, sizeof(what), "a %s KEK", state);
	return parse_blob(c, obj, where, what, &k->wrapped);
}

static int parse_tenant(struct vj_ctx *c, json_object *obj, const char *where,
			struct ekmfs_tenant_record *t)
{
	char kwhere[128], field[160];
	json_object *keks;
	uint64_t n;
	size_t count;

	if (!json_object_is_type(obj, json_type_object))
		return vj_jfail(c, -EBADMSG, where, "must be an object");
	if (vj_check_keys(c, obj, where, tenant_keys) ||
	    vj_get_str(c, obj, where, "name", false, t->name, sizeof(t->name)))
		return c->err;
	snprintf(field, sizeof(field), "%sname", where);
	if (!valid_name(t->name))
		return vj_jfail(c, -EBADMSG, field, "'%s' may hold only letters, digits, '-', "
			     "'_' and '.'", t->name);
	if (vj_get_uint(c, obj, where, "id", 1, UINT32_MAX, &n))
		return c->err;
	t->id = (uint32_t)n;
	if (vj_get_str(c, obj, where, "provider", false, t->provider, sizeof(t->provider)) ||
	    vj_get_str(c, obj, where, "kdf", true, t->kdf, sizeof(t->kdf)) ||
	    vj_get_uint(c, obj, where, "current_version", 1, UINT32_MAX, &n))
		return c->err;
	t->current_version = (uint32_t)n;
	if (vj_get_time(c, obj, where, "last_rotation", &t->last_rotation) ||
	    vj_get_time(c, obj, where, "last_cmk_change", &t->last_cmk_change))
		return c->err;
	{
		json_object *en;

		if (json_object_object_get_ex(obj, "enabled", &en)) {
			snprintf(field, sizeof(field), "%senabled", where);
			if (!json_object_is_type(en, json_type_boolean))
				return vj_jfail(c, -EBADMSG, field, "must be true or false");
			t->disabled = !json_object_get_boolean(en);
		}
	}
	keks = vj_get_typed(c, obj, where, "keks", json_type_array, "an array");
	if (!keks)
		return c->err;
	count = json_object_array_length(keks);
	snprintf(field, sizeof(field), "%skeks", where);
	if (count == 0 || count > MAX_KEKS)
		return vj_jfail(c, -EBADMSG, field, "must hold 1..%d KEK records", MAX_KEKS);
	t->keks = calloc(count, sizeof(*t->keks));
	if (!t->keks)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		snprintf(kwhere, sizeof(kwhere), "%skeks[%zu].", where, i);
		if (parse_kek(c, json_object_array_get_idx(keks, i), kwhere, &t->keks[i]))
			return c->err ? c->err : -ENOMEM;
		t->nkeks = i + 1;
		for (size_t j = 0; j < i; j++) {
			if (t->keks[j].version == t->keks[i].version) {
				snprintf(field, sizeof(field), "%sversion", kwhere);
				return vj_jfail(c, -EBADMSG, field, "duplicate KEK version %u",
					     t->keks[i].version);
			}
		}
	}
	snprintf(field, sizeof(field), "%scurrent_version", where);
	struct ekmfs_kek_record *cur = ekmfs_tenant_kek(t, t->current_version);
	if (!cur)
		return vj_jfail(c, -EBADMSG, field, "KEK version %u is not in keks",
			     t->current_version);
	if (cur->state != EKMFS_KEK_ACTIVE)
		return vj_jfail(c, -EBADMSG, field, "KEK version %u is %s, not active",
			     t->current_version, ekmfs_kek_state_name(cur->state));
	return 0;
}

/* "mac_key" and "mac": both, or neither (a keyring of ekmfs 1). */
static int parse_seal(struct vj_ctx *c, json_object *doc, struct ekmfs_keyring *kr)
{
	bool has_key = json_object_object_get_ex(doc, "mac_key", NULL);
	bool has_mac = json_object_object_get_ex(doc, "mac", NULL);
	char hex[2 * EKMFS_KEYRING_MAC_SIZE + 2];
	json_object *mk;

	if (!has_key && !has_mac)
		return 0;
	if (!has_key || !has_mac)
		return vj_jfail(c, -EBADMSG, has_key ? "mac" : "mac_key",
				"is missing while '%s' is there", has_key ? "mac_key" : "mac");
	mk = vj_get_typed(c, doc, "", "mac_key", json_type_object, "an object");
	if (!mk || vj_check_keys(c, mk, "mac_key.", mac_key_keys) ||
	    parse_cmk(c, mk, "mac_key.", &kr->mac_key) ||
	    parse_blob(c, mk, "mac_key.", "the MAC key", &kr->mac_key) ||
	    vj_get_str(c, doc, "", "mac", false, hex, sizeof(hex)))
		return c->err;
	if (strlen(hex) != 2 * EKMFS_KEYRING_MAC_SIZE ||
	    ekmfs_unhex(hex, kr->mac, sizeof(kr->mac)) < 0)
		return vj_jfail(c, -EBADMSG, "mac", "must be %d hex digits",
				2 * EKMFS_KEYRING_MAC_SIZE);
	kr->has_mac = true;
	return 0;
}

static int keyring_parse(struct vj_ctx *c, json_object *doc, struct ekmfs_keyring *kr)
{
	char where[64], field[160];
	json_object *tenants;
	size_t count;

	if (vj_check_format(c, doc, KEYRING_FORMAT, 1, NULL) || vj_check_keys(c, doc, "", keyring_keys) ||
	    vj_get_uint(c, doc, "", "generation", 0, INT64_MAX - 1, &kr->generation) ||
	    parse_seal(c, doc, kr))
		return c->err;
	tenants = vj_get_typed(c, doc, "", "tenants", json_type_array, "an array");
	if (!tenants)
		return c->err;
	count = json_object_array_length(tenants);
	if (count == 0 || count > MAX_TENANTS)
		return vj_jfail(c, -EBADMSG, "tenants", "must hold 1..%d tenants", MAX_TENANTS);
	kr->tenants = calloc(count, sizeof(*kr->tenants));
	if (!kr->tenants)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		struct ekmfs_tenant_record *t = &kr->tenants[i];
		int ret;

		snprintf(where, sizeof(where), "tenants[%zu].", i);
		kr->ntenants = i + 1;
		ret = parse_tenant(c, json_object_array_get_idx(tenants, i), where, t);
		if (ret)
			return ret;
		for (size_t j = 0; j < i; j++) {
			if (kr->tenants[j].id == t->id) {
				snprintf(field, sizeof(field), "%sid", where);
				return vj_jfail(c, -EBADMSG, field, "duplicate tenant id %u", t->id);
			}
			if (strcmp(kr->tenants[j].name, t->name) == 0) {
				snprintf(field, sizeof(field), "%sname", where);
				return vj_jfail(c, -EBADMSG, field, "duplicate tenant '%s'", t->name);
			}
		}
	}
	return 0;
}

int ekmfs_keyring_read(int backing_fd, struct ekmfs_keyring *kr)
{
	char path[PATH_MAX + 64];
	struct vj_ctx c = { .path = path };
	json_object *doc = NULL;
	char *text = NULL;
	size_t len;
	int ret;

	memset(kr, 0, sizeof(*kr));
	ekmfs_meta_path(backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
	ret = ekmfs_meta_read(backing_fd, EKMFS_KEYRING_FILE, &text, &len);
	if (ret == -ENOENT)
		ekmfs_seterr("%s is missing", path);
	if (ret)
		return ret;
	ret = vj_parse_json(&c, text, len, &doc);
	if (!ret)
		ret = keyring_parse(&c, doc, kr);
	if (ret)
		ekmfs_keyring_free(kr);
	json_object_put(doc);
	free(text);
	return ret;
}

/* A wrapped key's fields into o: "cmk_ref", "cmk_version", "wrapped" and,
 * when it has one, the binding "mac"; a destroyed KEK (gone) keeps the
 * references and an empty "wrapped". Nonzero on failure. */
static int wrapped_serialize(json_object *o, const struct ekmfs_wrapped_kek *w, bool gone)
{
	char *b64 = malloc(4 * ((EKMFS_WRAPPED_MAX + 2) / 3) + 1);
	int ret;

	if (!b64)
		return -ENOMEM;
	ekmfs_b64_encode(w->blob, gone ? 0 : w->len, b64);
	ret = vj_add_str(o, "cmk_ref", w->cmk_ref) ||
	      vj_add_str(o, "cmk_version", w->cmk_version) || vj_add_str(o, "wrapped", b64);
	if (!ret && w->mac_len && !gone) {
		ekmfs_b64_encode(w->mac, w->mac_len, b64);
		ret = vj_add_str(o, "mac", b64);
	}
	free(b64);
	return ret;
}

static json_object *kek_serialize(const struct ekmfs_kek_record *k)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (vj_add_int(o, "version", k->version) ||
	    vj_add_str(o, "state", ekmfs_kek_state_name(k->state)) ||
	    vj_add_time(o, "created", k->created) ||
	    wrapped_serialize(o, &k->wrapped, k->state == EKMFS_KEK_DESTROYED)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *tenant_serialize(const struct ekmfs_tenant_record *t)
{
	json_object *o = json_object_new_object(), *keks = json_object_new_array();

	if (!o || !keks)
		goto fail;
	for (size_t i = 0; i < t->nkeks; i++) {
		json_object *k = kek_serialize(&t->keks[i]);
		if (!k || json_object_array_add(keks, k) < 0) {
			json_object_put(k);
			goto fail;
		}
	}
	if (vj_add_str(o, "name", t->name) || vj_add_int(o, "id", t->id) ||
	    vj_add_str(o, "provider", t->provider) || vj_add_str(o, "kdf", t->kdf) ||
	    vj_add_int(o, "current_version", t->current_version) ||
	    vj_add_time(o, "last_rotation", t->last_rotation) ||
	    vj_add_time(o, "last_cmk_change", t->last_cmk_change))
		goto fail;
	if (t->disabled &&
	    json_object_object_add(o, "enabled", json_object_new_boolean(0)) < 0)
		goto fail;
	if (json_object_object_add(o, "keks", keks) < 0)
		goto fail;
	return o;
fail:
	json_object_put(keks);
	json_object_put(o);
	return NULL;
}

/* The sealing fields: the wrapped MAC key and the MAC. */
static int seal_serialize(json_object *doc, const struct ekmfs_keyring *kr)
{
	json_object *mk = json_object_new_object();
	char hex[2 * EKMFS_KEYRING_MAC_SIZE + 1];

	if (!mk || wrapped_serialize(mk, &kr->mac_key, false) ||
	    json_object_object_add(doc, "mac_key", mk) < 0) {
		json_object_put(mk);
		return -ENOMEM;
	}
	ekmfs_hex(kr->mac, sizeof(kr->mac), hex);
	return vj_add_str(doc, "mac", hex) ? -ENOMEM : 0;
}

/* Seal kr under mk with the descriptor vol, and write it. */
static int write_sealed(int backing_fd, struct ekmfs_keyring *kr,
			const struct ekmfs_keyring_key *mk, const struct ekmfs_volume *vol)
{
	json_object *doc = json_object_new_object(), *tenants = json_object_new_array();
	int ret;

	/* Never a keyring without its MAC: a writer without the key is a bug. */
	ret = -EINVAL;
	if (!mk || !mk->wrapped.len) {
		ekmfs_seterr("cannot write the keyring without its MAC key");
		goto out;
	}
	if (!kr->mac_key.len)
		kr->mac_key = mk->wrapped;      /* sealing a keyring of ekmfs 1 */
	ret = ekmfs_keyring_seal(kr, vol, mk->key);
	if (ret)
		goto out;
	ret = -ENOMEM;
	if (!doc || !tenants)
		goto out;
	for (size_t i = 0; i < kr->ntenants; i++) {
		json_object *t = tenant_serialize(&kr->tenants[i]);
		if (!t || json_object_array_add(tenants, t) < 0) {
			json_object_put(t);
			goto out;
		}
	}
	if (vj_add_str(doc, "format", KEYRING_FORMAT) || vj_add_int(doc, "version", 1) ||
	    vj_add_int(doc, "generation", (int64_t)kr->generation))
		goto out;
	if (json_object_object_add(doc, "tenants", tenants) < 0)
		goto out;
	tenants = NULL;
	if (seal_serialize(doc, kr))
		goto out;
	ret = vj_write_json(backing_fd, EKMFS_KEYRING_FILE, doc);
out:
	json_object_put(tenants);
	json_object_put(doc);
	return ret;
}

int ekmfs_keyring_write(int backing_fd, struct ekmfs_keyring *kr,
			const struct ekmfs_keyring_key *mk)
{
	struct ekmfs_volume vol;
	int ret = ekmfs_volume_read(backing_fd, &vol);

	return ret ? ret : write_sealed(backing_fd, kr, mk, &vol);
}

int ekmfs_keyring_stamp(int backing_fd, uint64_t stamp[3])
{
	struct stat st;

	if (fstatat(backing_fd, EKMFS_META_DIR "/" EKMFS_KEYRING_FILE, &st,
		    AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	stamp[0] = (uint64_t)st.st_ino;
	stamp[1] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	stamp[2] = (uint64_t)st.st_size;
	return 0;
}

int ekmfs_keyring_update(int backing_fd, const struct ekmfs_keyring_key *mk,
			 ekmfs_keyring_edit_fn edit, void *arg, bool write,
			 struct ekmfs_keyring *keep)
{
	struct ekmfs_keyring fresh = { 0 };
	struct ekmfs_volume vol;
	char path[PATH_MAX + 64];
	int ret, edited;

	ret = ekmfs_keyring_read(backing_fd, &fresh);
	if (!ret && write)
		ret = ekmfs_volume_read(backing_fd, &vol);
	if (ret)
		goto out;
	if (write && mk) {
		ekmfs_meta_path(backing_fd, EKMFS_KEYRING_FILE, path, sizeof(path));
		ret = ekmfs_keyring_check(&fresh, &vol, mk->key, path);
		if (ret)
			goto out;
	}
	ret = edited = edit(&fresh, arg);
	if (edited <= 0 || !write)
		goto out;
	fresh.generation++;
	ret = write_sealed(backing_fd, &fresh, mk, &vol);
	if (ret)
		goto out;
	ret = edited;
	if (keep) {
		*keep = fresh;
		memset(&fresh, 0, sizeof(fresh));
	}
out:
	ekmfs_keyring_free(&fresh);
	return ret;
}

/* ---- 2. in-memory helpers ---- */

void ekmfs_keyring_free(struct ekmfs_keyring *kr)
{
	if (!kr)
		return;
	for (size_t i = 0; i < kr->ntenants; i++)
		free(kr->tenants[i].keks);
	free(kr->tenants);
	ekmfs_wipe(kr, sizeof(*kr));
}

struct ekmfs_tenant_record *ekmfs_keyring_tenant(struct ekmfs_keyring *kr, const char *name)
{
	for (size_t i = 0; i < kr->ntenants; i++)
		if (strcmp(kr->tenants[i].name, name) == 0)
			return &kr->tenants[i];
	return NULL;
}

struct ekmfs_tenant_record *ekmfs_keyring_tenant_by_id(struct ekmfs_keyring *kr, uint32_t id)
{
	for (size_t i = 0; i < kr->ntenants; i++)
		if (kr->tenants[i].id == id)
			return &kr->tenants[i];
	return NULL;
}

struct ekmfs_kek_record *ekmfs_tenant_kek(struct ekmfs_tenant_record *t, uint32_t version)
{
	for (size_t i = 0; i < t->nkeks; i++)
		if (t->keks[i].version == version)
			return &t->keks[i];
	return NULL;
}

/* The tenant's first KEK (the lowest version: records are never removed,
 * a destroyed one keeps its creation time). */
static const struct ekmfs_kek_record *first_kek(const struct ekmfs_tenant_record *t)
{
	const struct ekmfs_kek_record *first = NULL;

	for (size_t i = 0; i < t->nkeks; i++)
		if (!first || t->keks[i].version < first->version)
			first = &t->keks[i];
	return first;
}

bool ekmfs_tenant_cmk_changed(const struct ekmfs_tenant_record *t)
{
	const struct ekmfs_kek_record *first = first_kek(t);

	return !first || t->last_cmk_change != first->created;
}

time_t ekmfs_tenant_cmk_change_time(const struct ekmfs_tenant_record *t, time_t now)
{
	const struct ekmfs_kek_record *first = first_kek(t);

	return first && now <= first->created ? first->created + 1 : now;
}

int ekmfs_keyring_add_tenant(struct ekmfs_keyring *kr, const struct ekmfs_tenant_record *rec)
{
	struct ekmfs_tenant_record *t;

	t = realloc(kr->tenants, (kr->ntenants + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	kr->tenants = t;
	t = &kr->tenants[kr->ntenants];
	*t = *rec;
	t->keks = NULL;
	t->nkeks = 0;
	if (rec->nkeks) {
		t->keks = malloc(rec->nkeks * sizeof(*t->keks));
		if (!t->keks)
			return -ENOMEM;
		memcpy(t->keks, rec->keks, rec->nkeks * sizeof(*t->keks));
		t->nkeks = rec->nkeks;
	}
	kr->ntenants++;
	return 0;
}

int ekmfs_tenant_add_kek(struct ekmfs_tenant_record *t, const struct ekmfs_kek_record *rec)
{
	struct ekmfs_kek_record *k;

	k = realloc(t->keks, (t->nkeks + 1) * sizeof(*k));
	if (!k)
		return -ENOMEM;
	t->keks = k;
	t->keks[t->nkeks++] = *rec;
	return 0;
}
