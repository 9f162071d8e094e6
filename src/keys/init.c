/*
 * init.c - a new volume, a new tenant (include/ekmfs/keys.h).
 *
 * Owns: ekmfs_volume_init (the descriptor and a keyring holding the
 * default tenant with KEK v1 wrapped by its CMK) with its refusals (BACKING
 * not empty, already a volume, a secret inside it), and
 * ekmfs_keys_create_tenant (a tenant's keyring record and KEK v1, under the
 * meta lock). In both, everything that can fail for want of a key (the
 * provider is opened, KEK v1 wrapped and self-tested) happens before
 * anything is written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/aead.h"
#include "ekmfs/io.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "keys_priv.h"


static int check_empty(int backing_fd, const char *path)
{
	struct dirent *de;
	DIR *dir;
	int fd, ret = 0;

	fd = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		ekmfs_seterr("cannot list %s: %s", path, strerror(-ret));
		return ret;
	}
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "lost+found"))
			continue;
		ekmfs_seterr("%s is not empty; ekmfs-admin init needs an empty directory", path);
		ret = -ENOTEMPTY;
		break;
	}
	closedir(dir);
	return ret;
}

/* Undo a half-written volume so a failed init leaves BACKING as it was. */
static void remove_meta(int backing_fd)
{
	static const char *const files[] = {
		EKMFS_KEYRING_FILE, EKMFS_KEYRING_FILE ".tmp", EKMFS_VOLUME_FILE,
		EKMFS_VOLUME_FILE ".tmp", EKMFS_LOCK_FILE,
	};

	for (size_t i = 0; i < EKMFS_ARRAY_SIZE(files); i++)
		(void)ekmfs_meta_remove(backing_fd, files[i]);
	ekmfs_io->unlinkat(backing_fd, EKMFS_META_DIR, AT_REMOVEDIR);
}

/* The secrets a tenant's provider reads must lie outside BACKING. */
static int check_tenant_secrets(const struct ekmfs_tenant_config *tc, int backing_fd)
{
	const struct ekmfs_provider_desc *d = ekmfs_provider_of(tc);
	const char *path[4], *what[4];
	size_t n = d->secrets ? d->secrets(tc, path, what, 4) : 0;

	for (size_t i = 0; i < n; i++) {
		int ret = ekmfs_check_secret_outside(backing_fd, path[i], what[i]);

		if (ret)
			return ret;
	}
	return 0;
}

int ekmfs_keys_check_secrets(int backing_fd, const struct ekmfs_config *cfg)
{
	for (unsigned i = 0; i < cfg->ntenants; i++) {
		int ret = check_tenant_secrets(&cfg->tenants[i], backing_fd);

		if (ret)
			return ret;
	}
	return 0;
}

/* KEK v1 of a new tenant record: random, wrapped by the tenant's CMK (which
 * the provider may create, e.g. the local key file), self-tested. Fills
 * krec and the provider's part of rec (kdf); with mk, the keyring's MAC key
 * of a new volume too. Before any write, so a wrong key or an unreachable
 * KMS changes nothing. */
static int first_kek(const struct ekmfs_tenant_config *tc, const struct ekmfs_volume *vol,
		     struct ekmfs_tenant_record *rec, struct ekmfs_kek_record *krec,
		     struct ekmfs_keyring_key **mk)
{
	const uint8_t *volume_id = vol->volume_id;
	struct ekmfs_provider *prov = NULL;
	struct ekmfs_wrap_context ctx;
	uint8_t *kek = NULL;
	int ret;

	ret = ekmfs_provider_open(tc, rec, true, &prov);
	if (ret)
		return ret;
	kek = ekmfs_secure_alloc(EKMFS_KEY_SIZE);
	if (!kek) {
		ret = -ENOMEM;
		goto out;
	}
	ctx = (struct ekmfs_wrap_context){ volume_id, rec->name, 1 };
	ret = ekmfs_random(kek, EKMFS_KEY_SIZE);
	if (!ret)
		ret = prov->ops->wrap(prov, &ctx, kek, &krec->wrapped);
	if (!ret)
		ret = prov->ops->self_test(prov, &ctx);
	/* A new volume: its keyring's MAC key, under the same CMK. */
	if (!ret && mk)
		ret = ekmfs_keyring_key_make(vol, prov, mk);
	rec->keks = krec;
	rec->nkeks = 1;
out:
	ekmfs_secure_free(kek, EKMFS_KEY_SIZE);
	ekmfs_provider_close(prov);
	return ret;
}

int ekmfs_volume_init(int backing_fd, const struct ekmfs_config *cfg,
		      struct ekmfs_volume *out)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, EKMFS_DEFAULT_TENANT);
	char path[PATH_MAX];
	struct ekmfs_volume vol = { .format_version = EKMFS_VOLUME_VERSION,
				    .block_size = EKMFS_BLOCK_SIZE };
	struct ekmfs_tenant_record rec = { .id = KEYS_DEFAULT_TENANT_ID, .current_version = 1 };
	struct ekmfs_kek_record krec = { .version = 1, .state = EKMFS_KEK_ACTIVE };
	struct ekmfs_keyring kr = { .generation = 1, .ntenants = 1, .tenants = &rec };
	struct ekmfs_keyring_key *mk = NULL;
	struct stat st;
	int lock_fd = -1, ret;

	keys_backing_path(backing_fd, path, sizeof(path));
	if (!tc) {
		ekmfs_seterr("the configuration has no default tenant");
		return -EINVAL;
	}
	if (fstat(backing_fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		ekmfs_seterr("%s is not a directory", path);
		return -ENOTDIR;
	}
	if (fstatat(backing_fd, EKMFS_META_DIR, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		ekmfs_seterr("%s is already an ekmfs volume (%s/%s exists)", path, path,
			     EKMFS_META_DIR);
		return -EEXIST;
	}
	ret = check_empty(backing_fd, path);
	if (!ret)
		ret = check_tenant_secrets(tc, backing_fd);
	if (ret)
		return ret;

	/* Everything that can fail for want of a key happens before any write. */
	vol.created = time(NULL);
	ret = ekmfs_random(vol.volume_id, sizeof(vol.volume_id));
	if (ret)
		return ret;
	snprintf(rec.name, sizeof(rec.name), "%s", EKMFS_DEFAULT_TENANT);
	snprintf(rec.provider, sizeof(rec.provider), "%s", tc->provider);
	rec.last_rotation = rec.last_cmk_change = krec.created = vol.created;
	ret = first_kek(tc, &vol, &rec, &krec, &mk);
	if (ret)
		goto out;

	ret = ekmfs_volume_write_new(backing_fd, &vol);
	if (ret)
		goto out;
	ret = ekmfs_meta_lock(backing_fd, true, false, &lock_fd);
	if (!ret)
		ret = ekmfs_keyring_write(backing_fd, &kr, mk);
	ekmfs_meta_unlock(lock_fd);
	if (ret) {
		remove_meta(backing_fd);
		goto out;
	}
	if (out)
		*out = vol;
out:
	ekmfs_keyring_key_free(mk);
	ekmfs_wipe(&kr.mac_key, sizeof(kr.mac_key));
	return ret;
}

struct new_tenant {
	const struct ekmfs_volume *vol;
	const struct ekmfs_tenant_config *tc;
	int backing_fd;
	struct ekmfs_kek_record krec;
	uint32_t id;
};

static int add_new_tenant(struct ekmfs_keyring *kr, void *arg)
{
	struct new_tenant *nt = arg;
	struct ekmfs_tenant_record rec = { .current_version = 1 }, *have;
	int ret;

	have = ekmfs_keyring_tenant(kr, nt->tc->name);
	if (have) {
		nt->id = have->id;
		return -EEXIST;
	}
	ret = check_tenant_secrets(nt->tc, nt->backing_fd);
	if (ret)
		return ret;
	/* Ids are never reused: a header naming a removed tenant's id must not
	 * open under a newcomer's key. Records are never removed, so max + 1. */
	for (size_t i = 0; i < kr->ntenants; i++)
		if (kr->tenants[i].id > rec.id)
			rec.id = kr->tenants[i].id;
	rec.id++;
	snprintf(rec.name, sizeof(rec.name), "%s", nt->tc->name);
	snprintf(rec.provider, sizeof(rec.provider), "%s", nt->tc->provider);
	rec.last_rotation = rec.last_cmk_change = nt->krec.created = time(NULL);
	rec.disabled = !nt->tc->enabled;
	ret = first_kek(nt->tc, nt->vol, &rec, &nt->krec, NULL);
	if (ret)
		return ret;
	ret = ekmfs_keyring_add_tenant(kr, &rec);
	if (ret)
		return ret;
	nt->id = rec.id;
	return 1;
}

int ekmfs_keys_create_tenant(int backing_fd, const struct ekmfs_volume *vol,
			     const struct ekmfs_tenant_config *tc,
			     const struct ekmfs_keyring_key *mk, uint32_t *id_out)
{
	struct new_tenant nt = {
		.vol = vol, .tc = tc,
		.krec = { .version = 1, .state = EKMFS_KEK_ACTIVE },
	};
	char path[PATH_MAX];
	int lock_fd = -1, ret;

	keys_backing_path(backing_fd, path, sizeof(path));
	nt.backing_fd = backing_fd;
	ret = ekmfs_meta_lock(backing_fd, true, true, &lock_fd);
	if (ret) {
		ekmfs_seterr("cannot lock the keyring of %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = ekmfs_keyring_update(backing_fd, mk, add_new_tenant, &nt, true, NULL);
	/* The id: of the tenant made, or of the one already there (-EEXIST). */
	if ((ret == 1 || ret == -EEXIST) && id_out)
		*id_out = nt.id;
	if (ret == 1)
		ret = 0;
	ekmfs_wipe(&nt.krec, sizeof(nt.krec));
	ekmfs_meta_unlock(lock_fd);
	return ret;
}
