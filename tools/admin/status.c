/*
 * status.c - `ekmfs-admin status`: what a volume holds, without any key.
 *
 * Reads the descriptor and keyring, and the plaintext slot fields of every
 * file header (tenant id, KEK version of the newest slot) to count the files
 * each KEK version protects: the number an admin needs before retiring one.
 * With a configuration, the tally also counts each file's routed tenant
 * against its header's, for the misplaced files (status_tenant.c prints the
 * per-tenant policy around them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "ekmfs/content.h"
#include "ekmfs/keyring.h"
#include "ekmfs/util.h"

static int tally_add(struct admin_tally *t, uint32_t tenant_id, uint32_t version)
{
	struct admin_kek_count *grown;

	for (size_t i = 0; i < t->ncounts; i++) {
		if (t->counts[i].tenant_id == tenant_id && t->counts[i].version == version) {
			t->counts[i].files++;
			return 0;
		}
	}
	grown = ekmfs_grow(t->counts, &t->cap, t->ncounts, sizeof(*grown), 16);
	if (!grown)
		return -ENOMEM;
	t->counts = grown;
	t->counts[t->ncounts++] = (struct admin_kek_count){ tenant_id, version, 1 };
	return 0;
}

static int route_add(struct admin_tally *t, const struct ekmfs_tenant_config *route,
		     uint32_t tenant_id)
{
	struct admin_route_count *grown;

	for (size_t i = 0; i < t->nroutes; i++) {
		if (t->routes[i].route == route && t->routes[i].tenant_id == tenant_id) {
			t->routes[i].files++;
			return 0;
		}
	}
	grown = ekmfs_grow(t->routes, &t->routes_cap, t->nroutes, sizeof(*grown), 16);
	if (!grown)
		return -ENOMEM;
	t->routes = grown;
	t->routes[t->nroutes++] = (struct admin_route_count){ route, tenant_id, 1 };
	return 0;
}

uint64_t admin_tally_misplaced(const struct admin_tally *t, struct ekmfs_keyring *kr,
			       const char *routed_to, const struct ekmfs_tenant_record *wrapped_by)
{
	uint64_t n = 0;

	for (size_t i = 0; i < t->nroutes; i++) {
		const struct admin_route_count *r = &t->routes[i];
		/* A routed tenant the keyring lacks yet has no file of its own. */
		const struct ekmfs_tenant_record *home = ekmfs_keyring_tenant(kr, r->route->name);

		if (home && home->id == r->tenant_id)
			continue;
		if (routed_to && strcmp(routed_to, r->route->name) != 0)
			continue;
		if (wrapped_by && wrapped_by->id != r->tenant_id)
			continue;
		n += r->files;
	}
	return n;
}

uint64_t admin_tally_files(const struct admin_tally *t, uint32_t tenant_id, uint32_t version)
{
	for (size_t i = 0; i < t->ncounts; i++)
		if (t->counts[i].tenant_id == tenant_id && t->counts[i].version == version)
			return t->counts[i].files;
	return 0;
}

static int count_file(const char *path, const char *relpath, const struct stat *st, void *arg)
{
	struct admin_tally *t = arg;
	struct ekmfs_header h;
	int fd, rc, slot;

	t->files++;
	if (st->st_size == 0) {
		t->empty++;
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		t->unreadable++;
		return 0;
	}
	rc = ekmfs_content_read_header(fd, &h);
	close(fd);
	if (rc < 0) {
		t->bad_header++;
		return 0;
	}
	slot = ekmfs_header_newest_slot(&h, NULL);
	if (slot < 0) {
		t->bad_header++;
		return 0;
	}
	rc = tally_add(t, h.slot[slot].tenant_id, h.slot[slot].kek_version);
	if (rc == 0 && t->cfg)
		rc = route_add(t, ekmfs_config_route(t->cfg, relpath, t->now),
			       h.slot[slot].tenant_id);
	return rc;
}

static void print_time(const char *label, time_t t)
{
	char text[32];

	if (t <= 0) {
		printf("%s never", label);
		return;
	}
	ekmfs_time_rfc3339(t, text, sizeof(text));
	printf("%s %s", label, text);
}

int admin_tally_volume(const char *backing, struct admin_tally *t)
{
	return admin_walk_files(backing, count_file, t);
}

void admin_tally_free(struct admin_tally *t)
{
	free(t->counts);
	t->counts = NULL;
	t->ncounts = t->cap = 0;
	free(t->routes);
	t->routes = NULL;
	t->nroutes = t->routes_cap = 0;
}

int admin_volume_load(const char *backing, struct ekmfs_volume *vol,
		      struct ekmfs_keyring *kr, struct admin_tally *tally)
{
	int fd, rc;

	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: cannot open %s: %s\n", backing, strerror(errno));
		return -errno;
	}
	rc = ekmfs_volume_read(fd, vol);
	if (rc == 0)
		rc = ekmfs_keyring_read(fd, kr);
	close(fd);
	if (rc < 0) {
		fprintf(stderr, "ekmfs-admin: %s\n",
			ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-rc));
		return rc;
	}
	rc = admin_tally_volume(backing, tally);
	if (rc < 0)
		fprintf(stderr, "ekmfs-admin: cannot walk %s: %s\n", backing, strerror(-rc));
	return rc;
}

int admin_status(const char *backing, const struct ekmfs_config *cfg)
{
	struct admin_tally tally = { .cfg = cfg, .now = time(NULL) };
	struct admin_status_ctx ctx = { 0 };
	struct ekmfs_keyring kr = { 0 };
	struct ekmfs_volume vol;
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];
	uint64_t misplaced;
	int status = EXIT_FAIL;

	if (admin_volume_load(backing, &vol, &kr, &tally) < 0)
		goto out;
	admin_status_ctx_init(&ctx, cfg, &vol, &kr, &tally);

	ekmfs_hex(vol.volume_id, sizeof(vol.volume_id), id);
	printf("volume:         %s\n", backing);
	printf("volume id:      %s\n", id);
	printf("format version: %u\n", vol.format_version);
	printf("block size:     %u\n", vol.block_size);
	print_time("created:       ", vol.created);
	printf("\n");
	admin_status_holder_text(backing);
	printf("\nkeyring generation %llu, %zu tenant%s\n",
	       (unsigned long long)kr.generation, kr.ntenants, kr.ntenants == 1 ? "" : "s");
	for (size_t i = 0; i < kr.ntenants; i++) {
		struct ekmfs_tenant_record *t = &kr.tenants[i];

		printf("tenant %s (id %u, provider %s), current KEK v%u\n", t->name, t->id,
		       t->provider, t->current_version);
		print_time("  last rotation:", t->last_rotation);
		printf("\n");
		for (size_t j = 0; j < t->nkeks; j++) {
			struct ekmfs_kek_record *k = &t->keks[j];
			char created[32];

			ekmfs_time_rfc3339(k->created, created, sizeof(created));
			printf("  KEK v%u  %-9s created %s  cmk %s version %s  files %llu\n",
			       k->version, ekmfs_kek_state_name(k->state), created,
			       k->wrapped.cmk_ref, k->wrapped.cmk_version,
			       (unsigned long long)admin_tally_files(&tally, t->id, k->version));
		}
		admin_status_tenant_text(&ctx, t);
	}
	admin_status_new_tenants_text(&ctx);
	/* Headers naming a tenant or KEK the keyring does not know. */
	for (size_t i = 0; i < tally.ncounts; i++) {
		struct ekmfs_tenant_record *t =
			ekmfs_keyring_tenant_by_id(&kr, tally.counts[i].tenant_id);

		if (!t || !ekmfs_tenant_kek(t, tally.counts[i].version))
			printf("unknown tenant %u KEK v%u: files %llu\n", tally.counts[i].tenant_id,
			       tally.counts[i].version, (unsigned long long)tally.counts[i].files);
	}
	printf("\nfiles: %llu (%llu empty without header, %llu with unreadable headers, "
	       "%llu not readable)\n",
	       (unsigned long long)tally.files, (unsigned long long)tally.empty,
	       (unsigned long long)tally.bad_header, (unsigned long long)tally.unreadable);
	misplaced = admin_tally_misplaced(&tally, &kr, NULL, NULL);
	printf("misplaced files: %llu%s\n", (unsigned long long)misplaced, misplaced ?
	       " (wrapped by another tenant than their path routes to: run ekmfs-rotate "
	       "migrate)" : "");
	admin_status_daemon_text(&ctx);
	status = EXIT_OK;
out:
	admin_status_ctx_free(&ctx);
	admin_tally_free(&tally);
	ekmfs_keyring_free(&kr);
	return status;
}
