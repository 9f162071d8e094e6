/*
 * test.c - `ekmfs-admin test [--tenant T] [--json] BACKING`: the "test
 * configuration" step an admin runs before enforcing a key.
 *
 * Owns: running each check once against the real key service and printing
 * one line per check with ok / FAILED / skipped and the reason: the
 * configuration, the endpoint (DNS, TCP, TLS), authentication, the key's
 * state, an encrypt, a decrypt round trip bound to the volume's context, the
 * refusal of a wrong context, a re-encrypt inside the service where the
 * provider has one, and the unwrap of the tenant's current KEK from the
 * keyring when BACKING is already a volume. Exit 0 only when every check
 * passed.
 *
 * The test wraps a random key under KEK version 0, which the keyring never
 * issues, so nothing it makes can be mistaken for a real record; nothing is
 * written anywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "tool.h"
#include "ekmfs/aead.h"
#include "ekmfs/keyring.h"
#include "ekmfs/keys.h"
#include "ekmfs/provider.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

enum check_status { CHECK_OK, CHECK_FAILED, CHECK_SKIPPED };

enum {
	C_CONFIG, C_REACH, C_AUTH, C_KEY, C_ENCRYPT, C_DECRYPT, C_WRONG_CTX, C_REWRAP,
	C_KEYRING, C_COUNT
};

static const char *const check_names[C_COUNT] = {
	[C_CONFIG] = "configuration",
	[C_REACH] = "endpoint reachable",
	[C_AUTH] = "authentication",
	[C_KEY] = "key state",
	[C_ENCRYPT] = "encrypt",
	[C_DECRYPT] = "decrypt round-trip",
	[C_WRONG_CTX] = "wrong-context rejection",
	[C_REWRAP] = "re-encrypt in the service",
	[C_KEYRING] = "keyring KEK unwraps",
};

struct check {
	bool used;
	enum check_status status;
	char detail[600];
};

struct run {
	struct check c[C_COUNT];
	bool failed;
};

static void set(struct run *r, int i, enum check_status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set(struct run *r, int i, enum check_status st, const char *fmt, ...)
{
	va_list ap;

	r->c[i].used = true;
	r->c[i].status = st;
	va_start(ap, fmt);
	vsnprintf(r->c[i].detail, sizeof(r->c[i].detail), fmt, ap);
	va_end(ap);
	if (st == CHECK_FAILED)
		r->failed = true;
}

/* Mark every check from i on as skipped (an earlier one failed). */
static void skip_from(struct run *r, int i, const char *why)
{
	for (; i < C_COUNT; i++)
		if (!r->c[i].used)
			set(r, i, CHECK_SKIPPED, "%s", why);
}

static const char *errtext(int err)
{
	const char *m = ekmfs_lasterr();

	return m[0] ? m : strerror(-err);
}

static void print_text(const struct run *r, const char *tenant, const char *provider)
{
	static const char *const words[] = { "ok", "FAILED", "skipped" };

	printf("ekmfs-admin test: tenant '%s', provider %s\n", tenant, provider);
	for (int i = 0; i < C_COUNT; i++) {
		if (!r->c[i].used)
			continue;
		printf("  %-26s %-7s %s\n", check_names[i], words[r->c[i].status],
		       r->c[i].detail);
	}
	printf("%s\n", r->failed ? "FAILED: fix the check marked FAILED, then run this again"
				 : "all checks passed");
}

static int print_json(const struct run *r, const char *tenant, const char *provider)
{
	static const char *const words[] = { "ok", "failed", "skipped" };
	json_object *o = json_object_new_object(), *arr = json_object_new_array();

	if (!o || !arr)
		return -ENOMEM;
	json_object_object_add(o, "tenant", json_object_new_string(tenant));
	json_object_object_add(o, "provider", json_object_new_string(provider));
	json_object_object_add(o, "ok", json_object_new_boolean(!r->failed));
	for (int i = 0; i < C_COUNT; i++) {
		json_object *c;

		if (!r->c[i].used)
			continue;
		c = json_object_new_object();
		json_object_object_add(c, "check", json_object_new_string(check_names[i]));
		json_object_object_add(c, "status", json_object_new_string(words[r->c[i].status]));
		json_object_object_add(c, "detail", json_object_new_string(r->c[i].detail));
		json_object_array_add(arr, c);
	}
	json_object_object_add(o, "checks", arr);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return 0;
}

/* The remote checks: probe, then the round trips. */
static void run_provider(struct run *r, struct ekmfs_provider *p,
			 const struct ekmfs_wrap_context *ctx,
			 struct ekmfs_tenant_record *rec, bool have_volume)
{
	struct ekmfs_provider_probe pr;
	struct ekmfs_wrap_context moved = *ctx;
	uint8_t other_vid[EKMFS_VOLUME_ID_SIZE];
	uint8_t *kek = ekmfs_secure_alloc(32), *back = ekmfs_secure_alloc(32);
	struct ekmfs_wrapped_kek w, w2;
	int ret;

	if (!kek || !back) {
		set(r, C_ENCRYPT, CHECK_FAILED, "out of secure memory");
		goto out;
	}
	if (p->ops->probe) {
		ekmfs_clearerr();
		ret = p->ops->probe(p, &pr);
		if (ret && pr.failed == EKMFS_PROBE_OK)
			pr.failed = EKMFS_PROBE_REACH;
		if (pr.failed == EKMFS_PROBE_REACH) {
			set(r, C_REACH, CHECK_FAILED, "%s", pr.reason[0] ? pr.reason : errtext(ret));
			skip_from(r, C_AUTH, "endpoint not reachable");
			goto out;
		}
		set(r, C_REACH, CHECK_OK, "%s", pr.endpoint);
		if (pr.failed == EKMFS_PROBE_AUTH) {
			set(r, C_AUTH, CHECK_FAILED, "%s", pr.reason);
			skip_from(r, C_KEY, "not authenticated");
			goto out;
		}
		set(r, C_AUTH, CHECK_OK, "%s", pr.identity[0] ? pr.identity : "credentials accepted");
		if (pr.failed == EKMFS_PROBE_KEY) {
			set(r, C_KEY, CHECK_FAILED, "%s", pr.reason);
			skip_from(r, C_ENCRYPT, "key not usable");
			goto out;
		}
		set(r, C_KEY, CHECK_OK, "%s (%s)", pr.key_state, pr.key_version);
	} else {
		set(r, C_REACH, CHECK_OK, "local key, no network");
		set(r, C_AUTH, CHECK_OK, "local key, nothing to authenticate");
		set(r, C_KEY, CHECK_OK, "key loaded");
	}

	ekmfs_clearerr();
	ret = ekmfs_random(kek, 32);
	if (!ret)
		ret = p->ops->wrap(p, ctx, kek, &w);
	if (ret) {
		set(r, C_ENCRYPT, CHECK_FAILED, "%s", errtext(ret));
		skip_from(r, C_DECRYPT, "encrypt failed");
		goto out;
	}
	set(r, C_ENCRYPT, CHECK_OK, "%zu-byte blob from %s", w.len,
	    w.cmk_version[0] ? w.cmk_version : w.cmk_ref);
	ekmfs_clearerr();
	ret = p->ops->unwrap(p, ctx, &w, back);
	if (!ret && CRYPTO_memcmp(kek, back, 32) != 0) {
		ekmfs_seterr("the service returned another key");
		ret = -EIO;
	}
	if (ret)
		set(r, C_DECRYPT, CHECK_FAILED, "%s", errtext(ret));
	else
		set(r, C_DECRYPT, CHECK_OK, "same key back under (volume, tenant '%s', version)",
		    ctx->tenant);

	/* The same record presented as another volume's must be refused. */
	memcpy(other_vid, ctx->volume_id, sizeof(other_vid));
	other_vid[0] ^= 0x80;
	moved.volume_id = other_vid;
	ekmfs_clearerr();
	ret = p->ops->unwrap(p, &moved, &w, back);
	if (ret == -EKEYREJECTED)
		set(r, C_WRONG_CTX, CHECK_OK, "refused under another volume id");
	else if (ret == 0)
		set(r, C_WRONG_CTX, CHECK_FAILED, "a wrap opened under another volume id: the "
		    "context is not bound");
	else
		set(r, C_WRONG_CTX, CHECK_FAILED, "%s", errtext(ret));

	if (p->ops->rewrap) {
		ekmfs_clearerr();
		ret = p->ops->rewrap(p, ctx, &w, &w2);
		if (!ret)
			ret = p->ops->unwrap(p, ctx, &w2, back);
		if (!ret && CRYPTO_memcmp(kek, back, 32) != 0) {
			ekmfs_seterr("the re-encrypted blob opens to another key");
			ret = -EIO;
		}
		if (ret)
			set(r, C_REWRAP, CHECK_FAILED, "%s", errtext(ret));
		else
			set(r, C_REWRAP, CHECK_OK, "the KEK never left the service");
	}

	if (have_volume) {
		struct ekmfs_kek_record *kr = ekmfs_tenant_kek(rec, rec->current_version);
		struct ekmfs_wrap_context real = { ctx->volume_id, rec->name, rec->current_version };

		ekmfs_clearerr();
		ret = kr ? p->ops->unwrap(p, &real, &kr->wrapped, back) : -ENOKEY;
		if (ret)
			set(r, C_KEYRING, CHECK_FAILED, "KEK v%u: %s", rec->current_version,
			    kr ? errtext(ret) : "no such record");
		else
			set(r, C_KEYRING, CHECK_OK, "current KEK v%u (wrapped by %s)",
			    rec->current_version, kr->wrapped.cmk_version);
	}
out:
	ekmfs_secure_free(kek, 32);
	ekmfs_secure_free(back, 32);
}

static int run_test(const char *backing, const struct ekmfs_config *cfg, const char *tenant,
		    bool json)
{
	const struct ekmfs_tenant_config *tc = ekmfs_config_tenant(cfg, tenant);
	struct ekmfs_tenant_record blank = { 0 }, *rec = &blank;
	struct ekmfs_keyring kr = { 0 };
	struct ekmfs_volume vol = { 0 };
	struct ekmfs_provider *p = NULL;
	struct ekmfs_wrap_context ctx;
	struct run r = { 0 };
	bool have_volume = false;
	int fd = -1, ret;

	if (!tc) {
		set(&r, C_CONFIG, CHECK_FAILED, "%s has no [tenant.%s]",
		    cfg->path[0] ? cfg->path : "the built-in configuration", tenant);
		skip_from(&r, C_REACH, "no configuration");
		goto report;
	}
	/* BACKING may be a directory that is not a volume yet (test the key
	 * before init), but it must exist, and a volume must be readable. */
	fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ekmfs-admin: BACKING %s: %s\n", backing, strerror(errno));
		return EXIT_FAIL;
	}
	/* A key file inside BACKING is refused here as at mount. */
	ekmfs_clearerr();
	ret = ekmfs_keys_check_secrets(fd, cfg);
	if (ret) {
		set(&r, C_CONFIG, CHECK_FAILED, "%s", errtext(ret));
		skip_from(&r, C_REACH, "a secrets file lies inside BACKING");
		goto report;
	}
	ekmfs_clearerr();
	ret = ekmfs_volume_read(fd, &vol);
	if (ret && ret != -ENOENT) {
		fprintf(stderr, "ekmfs-admin: %s\n", errtext(ret));
		close(fd);
		return EXIT_FAIL;
	}
	if (ret == 0) {
		ret = ekmfs_keyring_read(fd, &kr);
		if (ret) {
			set(&r, C_CONFIG, CHECK_FAILED, "%s", errtext(ret));
			skip_from(&r, C_REACH, "keyring unreadable");
			goto report;
		}
		rec = ekmfs_keyring_tenant(&kr, tenant);
		if (rec && strcmp(rec->provider, tc->provider) != 0) {
			set(&r, C_CONFIG, CHECK_FAILED, "tenant '%s' uses provider '%s' in the "
			    "keyring but '%s' in the configuration", tenant, rec->provider,
			    tc->provider);
			skip_from(&r, C_REACH, "configuration disagrees with the volume");
			goto report;
		}
		have_volume = rec != NULL;
		if (!rec)
			rec = &blank;
	} else {
		/* Not a volume (yet): test the key with a random volume id. */
		ekmfs_random(vol.volume_id, sizeof(vol.volume_id));
	}
	snprintf(blank.name, sizeof(blank.name), "%s", tenant);
	ekmfs_clearerr();
	ret = ekmfs_provider_open(tc, rec, false, &p);
	if (ret) {
		set(&r, C_CONFIG, CHECK_FAILED, "%s", errtext(ret));
		skip_from(&r, C_REACH, "provider could not start");
		goto report;
	}
	set(&r, C_CONFIG, CHECK_OK, "%s: tenant '%s', provider %s%s%s%s",
	    cfg->path[0] ? cfg->path : "built-in defaults", tenant, tc->provider,
	    ekmfs_provider_of(tc)->caps & EKMFS_PROV_REMOTE ? ", key " : "",
	    ekmfs_provider_of(tc)->caps & EKMFS_PROV_REMOTE ? ekmfs_provider_ref(tc) : "",
	    have_volume ? "" : " (BACKING is not a volume yet: random volume id)");
	ctx = (struct ekmfs_wrap_context){ vol.volume_id, tenant, 0 };
	run_provider(&r, p, &ctx, rec, have_volume);
report:
	if (json)
		print_json(&r, tenant, tc ? tc->provider : "?");
	else
		print_text(&r, tenant, tc ? tc->provider : "?");
	ekmfs_provider_close(p);
	ekmfs_keyring_free(&kr);
	if (fd >= 0)
		close(fd);
	return r.failed ? EXIT_FAIL : EXIT_OK;
}

int admin_test_main(int argc, char **argv, const struct ekmfs_config *cfg)
{
	static const struct option longopts[] = {
		{ "tenant", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tenant = EKMFS_DEFAULT_TENANT;
	bool json = false;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+t:j", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			tenant = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			fprintf(stderr, "Usage: ekmfs-admin test [--tenant T] [--json] BACKING\n");
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "ekmfs-admin: test needs exactly one argument: BACKING\n");
		return EXIT_USAGE;
	}
	if (tool_refuse_mount_path(argv[optind], TOOL_BACKING))
		return EXIT_FAIL;
	return run_test(argv[optind], cfg, tenant, json);
}
