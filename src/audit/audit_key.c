/*
 * audit_key.c - the audit key of a volume (.ekmfs/audit.key.json).
 *
 * Owns: creating the 32-byte random key that MACs the audit chain, storing
 * it wrapped by the default tenant's CMK through the provider interface, and
 * re-wrapping it when that CMK changes. See docs/AUDIT.md for why the key is
 * wrapped (rather than derived from a KEK): KEKs get retired and destroyed,
 * the audit chain must outlive all of them.
 *
 * Divisions:
 *   1. the JSON document (one or two wraps)
 *   2. load / create
 *   3. re-wrap on a CMK change
 *
 * The document holds a list of wraps of the same key. Normally one; during a
 * CMK change two (new CMK first, old second), so a crash between the audit
 * key write and the keyring write leaves a key that whichever CMK the
 * keyring ends up with still opens.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_priv.h"
#include "ekmfs/aead.h"
#include "ekmfs/config.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define KEY_FORMAT "ekmfs-audit-key"
#define MAX_WRAPS 4
#define KEY_DOC_MAX (64 * 1024)    /* a few wraps of at most 1 KiB each */

/* ---- 1. the document ---- */

struct key_doc {
	time_t created;
	size_t nwraps;
	struct ekmfs_wrapped_kek wraps[MAX_WRAPS];
};

static int bad_doc(const char *why)
{
	ekmfs_seterr(".ekmfs/" EKMFS_AUDIT_KEY_FILE ": %s", why);
	return -EBADMSG;
}

static const char *str_field(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int parse_wrap(json_object *w, struct ekmfs_wrapped_kek *out)
{
	const char *ref = str_field(w, "cmk_ref"), *ver = str_field(w, "cmk_version");
	const char *blob = str_field(w, "wrapped"), *mac = str_field(w, "mac");
	long n;

	memset(out, 0, sizeof(*out));
	if (!ref || !ver || !blob || !mac || strlen(ref) >= sizeof(out->cmk_ref) ||
	    strlen(ver) >= sizeof(out->cmk_version))
		return bad_doc("a wrap lacks cmk_ref, cmk_version, wrapped or mac");
	snprintf(out->cmk_ref, sizeof(out->cmk_ref), "%s", ref);
	snprintf(out->cmk_version, sizeof(out->cmk_version), "%s", ver);
	n = ekmfs_b64_decode(blob, out->blob, sizeof(out->blob));
	if (n <= 0)
		return bad_doc("field 'wrapped': not valid base64");
	out->len = (size_t)n;
	if (mac[0]) {
		n = ekmfs_b64_decode(mac, out->mac, sizeof(out->mac));
		if (n <= 0)
			return bad_doc("field 'mac': not valid base64");
		out->mac_len = (size_t)n;
	}
	return 0;
}

static int doc_read(int backing_fd, struct key_doc *doc)
{
	json_object *root = NULL, *v, *wraps;
	const char *fmt;
	char *text = NULL;
	size_t len;
	int ret;

	memset(doc, 0, sizeof(*doc));
	ret = ekmfs_meta_read_max(backing_fd, EKMFS_AUDIT_KEY_FILE, KEY_DOC_MAX, &text, &len);
	if (ret)
		return ret;
	root = json_tokener_parse(text);
	free(text);
	if (!root || !json_object_is_type(root, json_type_object)) {
		ret = bad_doc("not a JSON object");
		goto out;
	}
	fmt = str_field(root, "format");
	if (!fmt || strcmp(fmt, KEY_FORMAT) != 0 ||
	    !json_object_object_get_ex(root, "version", &v) || json_object_get_int(v) != 1) {
		ekmfs_seterr(".ekmfs/" EKMFS_AUDIT_KEY_FILE ": not an ekmfs audit key, version 1");
		ret = -EPROTO;
		goto out;
	}
	if (!str_field(root, "created") ||
	    ekmfs_time_parse_rfc3339(str_field(root, "created"), &doc->created) < 0) {
		ret = bad_doc("field 'created': not an RFC 3339 time");
		goto out;
	}
	if (!json_object_object_get_ex(root, "wraps", &wraps) ||
	    !json_object_is_type(wraps, json_type_array) ||
	    json_object_array_length(wraps) < 1 ||
	    json_object_array_length(wraps) > MAX_WRAPS) {
		ret = bad_doc("field 'wraps': not an array of 1..4 wraps");
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(wraps) && !ret; i++)
		ret = parse_wrap(json_object_array_get_idx(wraps, i), &doc->wraps[doc->nwraps++]);
out:
	json_object_put(root);
	return ret;
}

static int doc_write(int backing_fd, const struct key_doc *doc)
{
	json_object *root = json_object_new_object(), *wraps = json_object_new_array();
	char when[32], *b64 = NULL;
	int ret = -ENOMEM;

	if (!root || !wraps)
		goto out;
	ekmfs_time_rfc3339(doc->created, when, sizeof(when));
	json_object_object_add(root, "format", json_object_new_string(KEY_FORMAT));
	json_object_object_add(root, "version", json_object_new_int(1));
	json_object_object_add(root, "tenant", json_object_new_string(EKMFS_DEFAULT_TENANT));
	json_object_object_add(root, "created", json_object_new_string(when));
	b64 = malloc(4 * (EKMFS_WRAPPED_MAX / 3 + 1) + 1);
	if (!b64)
		goto out;
	for (size_t i = 0; i < doc->nwraps; i++) {
		const struct ekmfs_wrapped_kek *w = &doc->wraps[i];
		json_object *o = json_object_new_object();

		if (!o)
			goto out;
		json_object_object_add(o, "cmk_ref", json_object_new_string(w->cmk_ref));
		json_object_object_add(o, "cmk_version", json_object_new_string(w->cmk_version));
		ekmfs_b64_encode(w->blob, w->len, b64);
		json_object_object_add(o, "wrapped", json_object_new_string(b64));
		b64[0] = '\0';
		if (w->mac_len)
			ekmfs_b64_encode(w->mac, w->mac_len, b64);
		json_object_object_add(o, "mac", json_object_new_string(b64));
		json_object_array_add(wraps, o);
	}
	json_object_object_add(root, "wraps", wraps);
	wraps = NULL;
	{
		const char *text = json_object_to_json_string_ext(root,
						JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		size_t len = strlen(text);
		char *line = malloc(len + 2);

		if (!line)
			goto out;
		memcpy(line, text, len);
		line[len] = '\n';
		line[len + 1] = '\0';
		ret = ekmfs_meta_replace(backing_fd, EKMFS_AUDIT_KEY_FILE, line);
		free(line);
	}
out:
	free(b64);
	json_object_put(wraps);
	json_object_put(root);
	return ret;
}

/* ---- 2. load / create ---- */

static struct ekmfs_wrap_context key_ctx(const struct ekmfs_volume *vol)
{
	return (struct ekmfs_wrap_context){ vol->volume_id, EKMFS_DEFAULT_TENANT,
					    AUDIT_KEY_CTX_VERSION };
}

/* Try every wrap; the first that prov opens wins. */
static int doc_unwrap(const struct key_doc *doc, const struct ekmfs_volume *vol,
		      struct ekmfs_provider *prov, uint8_t *key)
{
	struct ekmfs_wrap_context ctx = key_ctx(vol);
	char first[256] = "";
	int ret = -ENOKEY, first_ret = 0;

	for (size_t i = 0; i < doc->nwraps; i++) {
		ekmfs_clearerr();
		ret = prov->ops->unwrap(prov, &ctx, &doc->wraps[i], key);
		if (!ret)
			return 0;
		if (!first_ret) {
			first_ret = ret;
			snprintf(first, sizeof(first), "%s", ekmfs_lasterr());
		}
	}
	/* The provider's reason (wrong key file, key disabled, ...) is the root
	 * cause and says what to fix: it stands alone, with no "cannot unwrap
	 * the audit key" in front of it. */
	if (first[0])
		ekmfs_seterr("%s", first);
	else
		ekmfs_seterr("cannot unwrap the audit key (.ekmfs/" EKMFS_AUDIT_KEY_FILE ") with "
			     "the default tenant's CMK: %s", strerror(-first_ret));
	return first_ret ? first_ret : ret;
}

int audit_key_load(int backing_fd, const struct ekmfs_volume *vol,
		   struct ekmfs_provider *prov, uint8_t *key)
{
	struct key_doc doc;
	int ret = doc_read(backing_fd, &doc);

	if (!ret)
		ret = doc_unwrap(&doc, vol, prov, key);
	ekmfs_wipe(&doc, sizeof(doc));
	return ret;
}

int audit_key_load_or_create(int backing_fd, const struct ekmfs_volume *vol,
			     struct ekmfs_provider *prov, uint8_t *key)
{
	struct ekmfs_wrap_context ctx = key_ctx(vol);
	struct key_doc doc = { 0 };
	int lock_fd = -1, ret;

	ret = audit_key_load(backing_fd, vol, prov, key);
	if (ret != -ENOENT)
		return ret;
	/* Two first writers must not create two keys: recheck under the lock. */
	ret = ekmfs_meta_lock(backing_fd, true, true, &lock_fd);
	if (ret)
		return ret;
	ret = audit_key_load(backing_fd, vol, prov, key);
	if (ret != -ENOENT)
		goto out;
	doc.created = time(NULL);
	doc.nwraps = 1;
	ret = ekmfs_random(key, EKMFS_AUDIT_MAC_SIZE);
	if (!ret)
		ret = prov->ops->wrap(prov, &ctx, key, &doc.wraps[0]);
	/* Head first: a crash before the key file is written leaves no key, and
	 * the next writer starts over; the reverse would leave a key whose
	 * chain has no head, which verification must call truncated. */
	if (!ret)
		ret = audit_head_init(backing_fd, vol->volume_id, key);
	if (!ret)
		ret = doc_write(backing_fd, &doc);
out:
	if (ret)
		ekmfs_wipe(key, EKMFS_AUDIT_MAC_SIZE);
	ekmfs_wipe(&doc, sizeof(doc));
	ekmfs_meta_unlock(lock_fd);
	return ret;
}

/* ---- 3. re-wrap ---- */

int ekmfs_audit_key_rewrap(int backing_fd, const struct ekmfs_volume *vol,
			   struct ekmfs_provider *from, struct ekmfs_provider *to,
			   bool keep_from)
{
	struct ekmfs_wrap_context ctx = key_ctx(vol);
	struct key_doc doc, fresh = { 0 };
	uint8_t *key = ekmfs_secure_alloc(EKMFS_AUDIT_MAC_SIZE), *probe = NULL;
	int lock_fd = -1, ret;

	if (!key)
		return -ENOMEM;
	ret = ekmfs_meta_lock(backing_fd, true, true, &lock_fd);
	if (ret)
		goto out;
	ret = doc_read(backing_fd, &doc);
	if (ret == -ENOENT) {
		ret = 0;        /* no audit key yet: the first writer makes one */
		goto out;
	}
	if (!ret)
		ret = doc_unwrap(&doc, vol, from, key);
	if (ret)
		goto out;
	fresh.created = doc.created;
	fresh.nwraps = 1;
	ret = to->ops->wrap(to, &ctx, key, &fresh.wraps[0]);
	if (ret)
		goto out;
	if (keep_from) {
		probe = ekmfs_secure_alloc(EKMFS_AUDIT_MAC_SIZE);
		if (!probe) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < doc.nwraps && fresh.nwraps < MAX_WRAPS; i++)
			if (from->ops->unwrap(from, &ctx, &doc.wraps[i], probe) == 0)
				fresh.wraps[fresh.nwraps++] = doc.wraps[i];
	}
	ret = doc_write(backing_fd, &fresh);
out:
	ekmfs_meta_unlock(lock_fd);
	ekmfs_secure_free(key, EKMFS_AUDIT_MAC_SIZE);
	ekmfs_secure_free(probe, EKMFS_AUDIT_MAC_SIZE);
	ekmfs_wipe(&doc, sizeof(doc));
	ekmfs_wipe(&fresh, sizeof(fresh));
	return ret;
}
