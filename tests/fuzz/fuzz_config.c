/*
 * fuzz_config.c - the INI configuration file (ekmfs.ini) and tenant
 * routing.
 *
 * Input: the file. Calls (include/ekmfs/config.h): ekmfs_config_load,
 * ekmfs_config_defaults, ekmfs_config_tenant, ekmfs_config_owner,
 * ekmfs_config_route, ekmfs_config_rotation_days.
 *
 * Properties: a refused file leaves the embedded defaults (nothing half
 * applied) and a FILE:LINE message; an accepted one has "default" first,
 * unique tenant names, every tenant but the default with paths in
 * canonical form (absolute, no trailing '/', no '.', '..' or '//'), no two
 * paths overlapping, and each path routed to its own tenant.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "ekmfs/config.h"
#include "ekmfs/util.h"
#include "fuzz.h"

static char path[PATH_MAX];
static struct ekmfs_config cfg, defaults;   /* ~1.5 MB each: not on the stack */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_path(path, "ekmfs.ini");
	ekmfs_config_defaults(&defaults);
	return 0;
}

static void check_canonical(const char *p)
{
	size_t n = strlen(p);

	FUZZ_CHECK(p[0] == '/' && n > 1 && p[n - 1] != '/');
	FUZZ_CHECK(!strstr(p, "//") && !strstr(p, "/./") && !strstr(p, "/../"));
	FUZZ_CHECK(!(n >= 2 && strcmp(p + n - 2, "/.") == 0) &&
		   !(n >= 3 && strcmp(p + n - 3, "/..") == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc;

	fuzz_write_file(path, data, size);
	ekmfs_clearerr();
	rc = ekmfs_config_load(path, &cfg);
	fuzz_debug("load: %d %s (%u tenants)", rc, ekmfs_lasterr(), cfg.ntenants);
	if (rc) {
		FUZZ_CHECK(rc < 0 && ekmfs_lasterr()[0]);
		FUZZ_CHECK(memcmp(&cfg, &defaults, sizeof(cfg)) == 0);
		return 0;
	}
	FUZZ_CHECK(strcmp(cfg.path, path) == 0);
	FUZZ_CHECK(cfg.ntenants >= 1 && cfg.ntenants <= EKMFS_MAX_TENANTS);
	FUZZ_CHECK(strcmp(cfg.tenants[0].name, EKMFS_DEFAULT_TENANT) == 0);
	FUZZ_CHECK(cfg.tenants[0].npaths == 0);
	for (unsigned i = 0; i < cfg.ntenants; i++) {
		const struct ekmfs_tenant_config *tc = &cfg.tenants[i];

		FUZZ_CHECK(ekmfs_config_tenant(&cfg, tc->name) == tc);
		FUZZ_CHECK(ekmfs_config_rotation_days(&cfg, tc->name) == tc->rotation_days);
		FUZZ_CHECK(i == 0 || tc->npaths > 0);
		FUZZ_CHECK(tc->npaths <= EKMFS_TENANT_PATHS_MAX);
		for (unsigned j = 0; j < tc->npaths; j++) {
			char below[EKMFS_TENANT_PATH_LEN + 8];

			check_canonical(tc->paths[j]);
			FUZZ_CHECK(ekmfs_config_owner(&cfg, tc->paths[j]) == tc);
			snprintf(below, sizeof(below), "%s/x", tc->paths[j] + 1);
			FUZZ_CHECK(ekmfs_config_owner(&cfg, below) == tc);
			FUZZ_CHECK(ekmfs_config_route(&cfg, below, 0) != NULL);
			FUZZ_CHECK(ekmfs_config_route(&cfg, below, 0) ==
				   (ekmfs_tenant_enforced(tc, 0) ? tc : &cfg.tenants[0]));
		}
	}
	FUZZ_CHECK(ekmfs_config_owner(&cfg, "/") == NULL);
	return 0;
}
