/*
 * keks.c - the rotated tenant's KEKs and every keyring change ekmfs-rotate
 * makes.
 *
 * Owns: reading the configuration, descriptor and keyring; unwrapping the
 * tenant's KEK versions (for migrate: every tenant's) through its provider
 * into secure memory; and the keyring edits: a new current version,
 * retiring and destroying versions, re-wrapping the KEK records under a new
 * CMK.
 *
 * Divisions:
 *   1. setup and the KEK table
 *   2. the read-modify-write of the keyring under the meta lock
 *   3. the edits
 *
 * Every edit re-reads the keyring under the exclusive meta lock, changes
 * that fresh copy, bumps the generation and writes it atomically
 * (ekmfs_keyring_update), so an edit by ekmfs-admin or the daemon in between
 * is never lost. All key material an edit needs is produced before the
 * write, so a failure leaves the keyring as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekmfs/aead.h"
#include "ekmfs/audit.h"
#include "ekmfs/keys.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "rotate.h"

/* ---- 1. setup and the KEK table ---- */

static int pick_tenant(struct rot_ctx *c)
{
	const char *name = c->opt.tenant ? c->opt.tenant : EKMFS_DEFAULT_TENANT;

	if (c->opt.cmd == CMD_MIGRATE) {
		/* migrate acts on every tenant; --tenant only filters, and names a
		 * configured tenant the keyring may not have yet (migrate makes it). */
		c->tc = NULL;
		c->trec = NULL;
		if (!c->opt.tenant)
			return 0;
		c->tc = ekmfs_config_tenant(&c->cfg, name);
		if (!c->tc) {
			ekmfs_seterr("the configuration has no [tenant.%s] section", name);
			return -ENOENT;
		}
		c->trec = ekmfs_keyring_tenant(&c->kr, name);
		return 0;
	}
	c->trec = ekmfs_keyring_tenant(&c->kr, name);
	if (!c->trec) {
		ekmfs_seterr("the keyring of %s has no tenant '%s'", c->opt.backing, name);
		return -ENOENT;
	}
	c->tc = ekmfs_config_tenant(&c->cfg, name);
	if (!c->tc) {
		ekmfs_seterr("the configuration has no [tenant.%s] section", name);
		return -ENOENT;
	}
	return 0;
}

int keys_setup(struct rot_ctx *c)
{
	int ret;

	ret = ekmfs_config_load(c->opt.config, &c->cfg);
	if (ret)
		return ret;
	c->backing_fd = open(c->opt.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->backing_fd < 0) {
		ret = -errno;
		ekmfs_seterr("cannot open %s: %s", c->opt.backing, strerror(errno));
		return ret;
	}
	/* A key file inside BACKING is refused here as at mount. */
	ret = ekmfs_keys_check_secrets(c->backing_fd, &c->cfg);
	if (ret)
		return ret;
	ret = ekmfs_volume_read(c->backing_fd, &c->vol);
	if (ret == -ENOENT)
		ekmfs_seterr("%s is not an ekmfs volume (no %s/%s)", c->opt.backing,
			     EKMFS_META_DIR, EKMFS_VOLUME_FILE);
	if (!ret)
		ret = ekmfs_keyring_read(c->backing_fd, &c->kr);
	if (!ret)
		ret = pick_tenant(c);
	return ret;
}

int keys_reread(struct rot_ctx *c)
{
	struct ekmfs_keyring fresh;
	int ret = ekmfs_keyring_read(c->backing_fd, &fresh);

	/* Once the MAC key is open, every copy read must authenticate. */
	if (!ret && c->mk) {
		ret = ekmfs_keyring_key_follow(c->backing_fd, &c->vol, &fresh, c->audit_prov,
					       &c->mk);
		if (ret)
			ekmfs_keyring_free(&fresh);
	}
	if (ret)
		return ret;
	ekmfs_keyring_free(&c->kr);
	c->kr = fresh;
	return pick_tenant(c);
}

static int kek_table_add(struct rot_ctx *c, uint32_t tenant_id, uint32_t version,
			 uint8_t *key)
{
	struct rot_kek *grown = realloc(c->keks, (c->nkeks + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	c->keks = grown;
	c->keks[c->nkeks++] = (struct rot_kek){ tenant_id, version, key };
	return 0;
}

/* Unwrap every KEK of t that is not destroyed through prov. */
static int load_tenant_keks(struct rot_ctx *c, struct ekmfs_provider *prov,
			    const struct ekmfs_tenant_record *t)
{
	int ret;

	for (size_t i = 0; i < t->nkeks; i++) {
		const struct ekmfs_kek_record *r = &t->keks[i];
		struct ekmfs_wrap_context ctx = { c->vol.volume_id, t->name, r->version };
		uint8_t *key;

		if (r->state == EKMFS_KEK_DESTROYED)
			continue;
		key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
		if (!key)
			return -ENOMEM;
		ret = prov->ops->unwrap(prov, &ctx, &r->wrapped, key);
		if (!ret)
			ret = kek_table_add(c, t->id, r->version, key);
		if (ret) {
			ekmfs_secure_free(key, EKMFS_KEY_SIZE);
			return ret;
		}
	}
	return 0;
}

int keys_load(struct rot_ctx *c)
{
	int ret;

	ret = ekmfs_provider_open(c->tc, c->trec, false, &c->prov);
	if (ret)
		return ret;
	return load_tenant_keks(c, c->prov, c->trec);
}

static int load_err_add(struct rot_ctx *c, uint32_t tenant_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int load_err_add(struct rot_ctx *c, uint32_t tenant_id, const char *fmt, ...)
{
	struct rot_load_err *grown = realloc(c->load_errs,
					     (c->nload_errs + 1) * sizeof(*grown));
	va_list ap;

	if (!grown)
		return -ENOMEM;
	c->load_errs = grown;
	grown[c->nload_errs].tenant_id = tenant_id;
	va_start(ap, fmt);
	vsnprintf(grown[c->nload_errs].msg, sizeof(grown->msg), fmt, ap);
	va_end(ap);
	c->nload_errs++;
	return 0;
}

/* A migrate reads files of any tenant and writes them under any other, so
 * it needs every tenant's KEKs. One tenant's key service being down or
 * refusing must not stop the others' files from moving: its failure is
 * recorded and its files are skipped (exit 3), named with the reason. */
int keys_load_all(struct rot_ctx *c)
{
	int ret = 0;

	for (size_t i = 0; i < c->kr.ntenants && ret != -ENOMEM; i++) {
		struct ekmfs_tenant_record *t = &c->kr.tenants[i];
		const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(&c->cfg, t->name);
		struct ekmfs_provider *prov = NULL;

		if (!tc) {
			ret = load_err_add(c, t->id, "tenant '%s' is in the keyring but has no "
					   "[tenant.%s] section in the configuration, so its "
					   "KEKs cannot be unwrapped", t->name, t->name);
			continue;
		}
		ekmfs_clearerr();
		ret = ekmfs_provider_open(tc, t, false, &prov);
		if (!ret)
			ret = load_tenant_keks(c, prov, t);
		ekmfs_provider_close(prov);
		if (ret && ret != -ENOMEM)
			ret = load_err_add(c, t->id, "the KEKs of tenant '%s' cannot be "
					   "unwrapped: %s", t->name, ekmfs_lasterr()[0] ?
					   ekmfs_lasterr() : strerror(-ret));
	}
	return ret == -ENOMEM ? ret : 0;
}

const char *keys_load_error(const struct rot_ctx *c, uint32_t tenant_id)
{
	for (size_t i = 0; i < c->nload_errs; i++)
		if (c->load_errs[i].tenant_id == tenant_id)
			return c->load_errs[i].msg;
	return NULL;
}

const uint8_t *keys_find(const struct rot_ctx *c, uint32_t tenant_id, uint32_t version)
{
	for (size_t i = 0; i < c->nkeks; i++)
		if (c->keks[i].tenant_id == tenant_id && c->keks[i].version == version)
			return c->keks[i].key;
	return NULL;
}

static void kek_table_drop(struct rot_ctx *c, uint32_t tenant_id, uint32_t version)
{
	for (size_t i = 0; i < c->nkeks; i++) {
		if (c->keks[i].tenant_id == tenant_id && c->keks[i].version == version) {
			ekmfs_secure_free(c->keks[i].key, EKMFS_KEY_SIZE);
			c->keks[i] = c->keks[--c->nkeks];
			return;
		}
	}
}

void keys_close(struct rot_ctx *c)
{
	for (size_t i = 0; i < c->nkeks; i++)
		ekmfs_secure_free(c->keks[i].key, EKMFS_KEY_SIZE);
	free(c->keks);
	c->keks = NULL;
	c->nkeks = 0;
	free(c->load_errs);
	c->load_errs = NULL;
	c->nload_errs = 0;
	ekmfs_provider_close(c->prov);
	c->prov = NULL;
	ekmfs_keyring_free(&c->kr);
	if (c->backing_fd >= 0)
		close(c->backing_fd);
	c->backing_fd = -1;
}

/* ---- 2. read-modify-write ---- */

/* An edit changes t (the tenant in the fresh keyring kr); returns 1 when it
 * changed something, 0 when there is nothing to write, or -errno. */
typedef int (*edit_fn)(struct rot_ctx *c, struct ekmfs_keyring *kr,
		       struct ekmfs_tenant_record *t, void *arg);

struct tenant_edit {
	struct rot_ctx *c;
	edit_fn fn;
	void *arg;
};

static int edit_tenant(struct ekmfs_keyring *kr, void *arg)
{
	struct tenant_edit *e = arg;
	struct ekmfs_tenant_record *t = ekmfs_keyring_tenant(kr, e->c->trec->name);

	if (!t) {
		ekmfs_seterr("tenant '%s' disappeared from the keyring", e->c->trec->name);
		return -ENOENT;
	}
	return e->fn(e->c, kr, t, e->arg);
}

static int keyring_edit(struct rot_ctx *c, edit_fn fn, void *arg, bool dry_run)
{
	struct tenant_edit e = { c, fn, arg };
	struct ekmfs_keyring fresh = { 0 };
	int lock_fd = -1, ret;

	ret = ekmfs_meta_lock(c->backing_fd, true, true, &lock_fd);
	if (ret)
		return ret;
	/* A keyring of ekmfs 1 another writer sealed since: take its key. */
	if (c->mk && c->mk->made)
		ret = keys_reread(c);
	if (!ret)
		ret = ekmfs_keyring_update(c->backing_fd, c->mk, edit_tenant, &e, !dry_run,
					   &fresh);
	if (ret > 0 && !dry_run) {
		/* The keyring written is the one we go on with. */
		ekmfs_keyring_free(&c->kr);
		c->kr = fresh;
		ret = pick_tenant(c);
	}
	ekmfs_meta_unlock(lock_fd);
	return ret < 0 ? ret : 0;
}

/* ---- 3. the edits ---- */

struct new_version_arg {
	uint8_t *key;
	uint32_t version;
};

static int edit_new_version(struct rot_ctx *c, struct ekmfs_keyring *kr,
			    struct ekmfs_tenant_record *t, void *arg)
{
	struct new_version_arg *a = arg;
	struct ekmfs_kek_record rec = { .state = EKMFS_KEK_ACTIVE, .created = time(NULL) };
	struct ekmfs_wrap_context ctx;
	uint32_t max = 0;
	int ret;

	(void)kr;
	for (size_t i = 0; i < t->nkeks; i++)
		if (t->keks[i].version > max)
			max = t->keks[i].version;
	if (max == UINT32_MAX || t->nkeks >= 4096) {
		ekmfs_seterr("tenant '%s' has no KEK version left; destroy old ones first",
			     t->name);
		return -ENOSPC;
	}
	rec.version = max + 1;
	ctx = (struct ekmfs_wrap_context){ c->vol.volume_id, t->name, rec.version };
	ret = ekmfs_random(a->key, EKMFS_KEY_SIZE);
	if (!ret)
		ret = c->prov->ops->wrap(c->prov, &ctx, a->key, &rec.wrapped);
	if (ret)
		return ret;
	ret = ekmfs_tenant_add_kek(t, &rec);
	if (ret)
		return ret;
	t->current_version = rec.version;
	t->last_rotation = rec.created;
	a->version = rec.version;
	return 1;
}

int keys_new_version(struct rot_ctx *c)
{
	struct new_version_arg a = { .key = ekmfs_secure_alloc(EKMFS_KEY_SIZE) };
	int ret;

	if (!a.key)
		return -ENOMEM;
	ret = keyring_edit(c, edit_new_version, &a, false);
	if (!ret)
		ret = kek_table_add(c, c->trec->id, a.version, a.key);
	if (ret) {
		ekmfs_secure_free(a.key, EKMFS_KEY_SIZE);
		return ret;
	}
	c->new_version = a.version;
	return 0;
}

static int edit_retire_old(struct rot_ctx *c, struct ekmfs_keyring *kr,
			   struct ekmfs_tenant_record *t, void *arg)
{
	int changed = 0;

	(void)kr;
	(void)arg;
	c->nretired = 0;
	for (size_t i = 0; i < t->nkeks; i++) {
		struct ekmfs_kek_record *r = &t->keks[i];

		if (r->state != EKMFS_KEK_ACTIVE || r->version == t->current_version)
			continue;
		r->state = EKMFS_KEK_RETIRED;
		if (c->nretired < EKMFS_ARRAY_SIZE(c->retired))
			c->retired[c->nretired++] = r->version;
		changed = 1;
	}
	return changed;
}

int keys_retire_old(struct rot_ctx *c)
{
	return keyring_edit(c, edit_retire_old, NULL, false);
}

struct state_arg {
	uint32_t version;
	bool destroy;
};

static int edit_state(struct rot_ctx *c, struct ekmfs_keyring *kr,
		      struct ekmfs_tenant_record *t, void *arg)
{
	struct state_arg *a = arg;
	struct ekmfs_kek_record *r = ekmfs_tenant_kek(t, a->version);

	(void)c;
	(void)kr;
	if (!r) {
		ekmfs_seterr("tenant '%s' has no KEK version %u", t->name, a->version);
		return -ENOENT;
	}
	if (r->version == t->current_version) {
		ekmfs_seterr("KEK v%u is the current version of tenant '%s'; rotate first "
			     "(ekmfs-rotate kek)", r->version, t->name);
		return -EBUSY;
	}
	if (r->state == EKMFS_KEK_DESTROYED || (r->state == EKMFS_KEK_RETIRED && !a->destroy))
		return 0;
	if (a->destroy) {
		r->state = EKMFS_KEK_DESTROYED;
		ekmfs_wipe(r->wrapped.blob, sizeof(r->wrapped.blob));
		r->wrapped.len = 0;
	} else {
		r->state = EKMFS_KEK_RETIRED;
	}
	return 1;
}

int keys_set_state(struct rot_ctx *c, uint32_t version, bool destroy)
{
	struct state_arg a = { version, destroy };
	int ret = keyring_edit(c, edit_state, &a, c->opt.dry_run);

	if (!ret && destroy && !c->opt.dry_run)
		kek_table_drop(c, c->trec->id, version);
	return ret;
}

struct cmk_arg {
	struct ekmfs_provider *newp;
	size_t n;
	char fingerprint[EKMFS_REF_MAX];
};

static int edit_cmk(struct rot_ctx *c, struct ekmfs_keyring *kr,
		    struct ekmfs_tenant_record *t, void *arg)
{
	struct cmk_arg *a = arg;
	uint8_t *key = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	int ret = 0;

	if (!key)
		return -ENOMEM;
	a->n = 0;
	/* Unwrap with the old CMK and wrap with the new one, record by record,
	 * into the fresh copy: nothing is written unless every record worked.
	 * Where the service can re-wrap inside itself (AWS ReEncrypt) and both
	 * CMKs live there, the KEK never leaves it. */
	bool in_service = a->newp->ops->rewrap &&
			  strcmp(a->newp->ops->name, c->prov->ops->name) == 0;

	for (size_t i = 0; i < t->nkeks && !ret; i++) {
		struct ekmfs_kek_record *r = &t->keks[i];
		struct ekmfs_wrap_context ctx = { c->vol.volume_id, t->name, r->version };
		struct ekmfs_wrapped_kek w;

		if (r->state == EKMFS_KEK_DESTROYED)
			continue;
		if (in_service) {
			ret = a->newp->ops->rewrap(a->newp, &ctx, &r->wrapped, &w);
		} else {
			ret = c->prov->ops->unwrap(c->prov, &ctx, &r->wrapped, key);
			if (!ret)
				ret = a->newp->ops->wrap(a->newp, &ctx, key, &w);
		}
		if (!ret) {
			r->wrapped = w;
			snprintf(a->fingerprint, sizeof(a->fingerprint), "%s", w.cmk_version);
			a->n++;
		}
	}
	ekmfs_secure_free(key, EKMFS_KEY_SIZE);
	/* The default tenant's CMK wraps the keyring's MAC key too: it moves
	 * in the same write as the KEK records. */
	if (!ret && strcmp(t->name, EKMFS_DEFAULT_TENANT) == 0)
		ret = ekmfs_keyring_key_rewrap(&c->vol, c->mk, a->newp, &kr->mac_key);
	if (ret)
		return ret;
	t->last_cmk_change = ekmfs_tenant_cmk_change_time(t, time(NULL));
	return 1;
}

int keys_rewrap_cmk(struct rot_ctx *c, const struct ekmfs_tenant_config *new_tc,
		    size_t *n_out, char *fingerprint, size_t fplen)
{
	struct cmk_arg a = { 0 };
	bool audit;
	struct ekmfs_wrap_context ctx = { c->vol.volume_id, c->trec->name,
					  c->trec->current_version };
	int ret;

	if (new_tc) {
		ret = ekmfs_provider_open(new_tc, c->trec, false, &a.newp);
		if (ret)
			return ret;
	} else {
		a.newp = c->prov;
	}
	/* The new CMK must work both ways before any record depends on it. */
	ret = a.newp->ops->self_test(a.newp, &ctx);
	/* The audit key (docs/AUDIT.md) is wrapped by the default tenant's CMK
	 * too: wrapped under both CMKs while the keyring changes, so a crash
	 * leaves one that opens, then under the new one only. */
	audit = !c->opt.dry_run && strcmp(c->trec->name, EKMFS_DEFAULT_TENANT) == 0;
	if (!ret && audit)
		ret = ekmfs_audit_key_rewrap(c->backing_fd, &c->vol, c->prov, a.newp, true);
	if (!ret)
		ret = keyring_edit(c, edit_cmk, &a, c->opt.dry_run);
	if (audit)
		(void)ekmfs_audit_key_rewrap(c->backing_fd, &c->vol, ret ? c->prov : a.newp,
					     ret ? c->prov : a.newp, false);
	if (!ret) {
		*n_out = a.n;
		snprintf(fingerprint, fplen, "%s", a.fingerprint);
	}
	if (a.newp != c->prov)
		ekmfs_provider_close(a.newp);
	return ret;
}
