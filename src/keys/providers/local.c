/*
 * local.c - the "local" CMK provider: a key file, or scrypt of a passphrase.
 *
 * Owns: loading the tenant's CMK from a key file outside BACKING (or deriving
 * it from a passphrase file or a passphrase typed on the terminal), creating
 * the key file at volume init, and wrapping KEKs under the CMK with
 * AES-256-GCM bound to their context. docs/FORMAT.md ("Volume metadata")
 * specifies the bytes.
 *
 * Divisions:
 *   1. wrap primitive, AAD and fingerprint
 *   2. secrets files: permission checks, reading, creating the key file
 *   3. passphrases: file, terminal prompt, the kdf string, scrypt
 *   4. provider operations and open
 *
 * The CMK lives only in secure memory and is wiped in destroy; every
 * passphrase or file buffer that held a secret is wiped before it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "ekmfs/aead.h"
#include "ekmfs/io.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "../secret_file.h"
#include "local.h"

#define CMK_SIZE 32
#define KEY_FILE_MAX 128            /* a base64 line of 32 bytes is 44 chars */
#define PASSPHRASE_MAX 4096
#define SALT_SIZE 16
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SCRYPT_N_MIN 16384
#define SCRYPT_N_MAX 1048576
#define TENANT_NAME_MAX 255         /* bound for the AAD buffer */
#define AAD_MAX (sizeof(EKMFS_LOCAL_WRAP_LABEL) - 1 + EKMFS_VOLUME_ID_SIZE + 4 + \
		 TENANT_NAME_MAX + 4)

struct local_priv {
	uint8_t *cmk;                   /* CMK_SIZE bytes of secure memory */
	const char *cmk_ref;            /* "local:key-file" or "local:passphrase" */
	char source[PATH_MAX + 32];     /* "key file /x" for messages */
	char fingerprint[EKMFS_LOCAL_FPR_HEX + 1];
};

/* ---- 1. wrap primitive, AAD, fingerprint ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* "ekmfs-kek-wrap-v1" ‖ volume id ‖ u32le len(tenant) ‖ tenant ‖ u32le version */
static int build_aad(const struct ekmfs_wrap_context *ctx, uint8_t aad[AAD_MAX], size_t *len)
{
	size_t label = sizeof(EKMFS_LOCAL_WRAP_LABEL) - 1, name = strlen(ctx->tenant), n = 0;

	if (name == 0 || name > TENANT_NAME_MAX) {
		ekmfs_seterr("tenant name of %zu bytes cannot be bound into a key wrap", name);
		return -EINVAL;
	}
	memcpy(aad + n, EKMFS_LOCAL_WRAP_LABEL, label);
	n += label;
	memcpy(aad + n, ctx->volume_id, EKMFS_VOLUME_ID_SIZE);
	n += EKMFS_VOLUME_ID_SIZE;
	put_le32(aad + n, (uint32_t)name);
	n += 4;
	memcpy(aad + n, ctx->tenant, name);
	n += name;
	put_le32(aad + n, ctx->kek_version);
	n += 4;
	*len = n;
	return 0;
}

int ekmfs_local_wrap_raw(const uint8_t cmk[32], const struct ekmfs_wrap_context *ctx,
			 const uint8_t kek[32], const uint8_t nonce[12], uint8_t *blob)
{
	uint8_t aad[AAD_MAX];
	size_t aad_len;
	int ret;

	ret = build_aad(ctx, aad, &aad_len);
	if (ret)
		return ret;
	memcpy(blob, nonce, EKMFS_AEAD_NONCE_SIZE);
	ret = ekmfs_aead_seal(cmk, nonce, aad, aad_len, kek, CMK_SIZE,
			      blob + EKMFS_AEAD_NONCE_SIZE,
			      blob + EKMFS_AEAD_NONCE_SIZE + CMK_SIZE);
	if (ret)
		ekmfs_wipe(blob, EKMFS_LOCAL_BLOB_SIZE);
	return ret;
}

int ekmfs_local_fingerprint(const uint8_t cmk[32], char out[EKMFS_LOCAL_FPR_HEX + 1])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;

	if (!HMAC(EVP_sha256(), cmk, CMK_SIZE, (const uint8_t *)EKMFS_LOCAL_FPR_LABEL,
		  sizeof(EKMFS_LOCAL_FPR_LABEL) - 1, md, &md_len) || md_len < 8) {
		ekmfs_seterr("HMAC-SHA256 failed while fingerprinting the local key");
		return -EIO;
	}
	ekmfs_hex(md, EKMFS_LOCAL_FPR_HEX / 2, out);
	ekmfs_wipe(md, sizeof(md));
	return 0;
}

/* ---- 2. secrets files ---- */

/* Secrets files are read through secret_file.c, whose rule (owned by us, no
 * group/other access, regular file) every provider shares. */

static int load_key_file(const char *path, uint8_t *cmk)
{
	char *text = ekmfs_secure_alloc(KEY_FILE_MAX + 1);
	size_t len;
	long n;
	int ret;

	if (!text)
		return -ENOMEM;
	ret = ekmfs_secret_read(path, "key file", text, KEY_FILE_MAX, &len);
	if (ret)
		goto out;
	/* One line: a newline may end it but not split it. */
	if (len && text[len - 1] == '\n')
		text[--len] = '\0';
	n = strchr(text, '\n') ? -EINVAL : ekmfs_b64_decode(text, cmk, CMK_SIZE);
	if (n != CMK_SIZE) {
		ret = n == -ENOMEM ? -ENOMEM : -EINVAL;
		ekmfs_seterr("key file %s does not hold one base64 line of exactly %d bytes "
			     "(make one with: ekmfs-admin keygen)", path, CMK_SIZE);
		ekmfs_wipe(cmk, CMK_SIZE);
	}
out:
	ekmfs_secure_free(text, KEY_FILE_MAX + 1);
	return ret;
}

/* mkdir -p of the directories above path, each created 0700. */
static int make_parents(const char *path)
{
	char dir[PATH_MAX];
	int ret;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			ret = -errno;
			ekmfs_seterr("cannot create directory %s for the key file: %s", dir,
				     strerror(errno));
			return ret;
		}
		*p = '/';
	}
	return 0;
}

static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, ret = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	*(slash == dir ? slash + 1 : slash) = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || ekmfs_io->fsync(fd) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Write a fresh random key to path (which must not exist). -EEXIST when
 * someone else created it first: the caller then reads theirs. */
static int create_key_file(const char *path)
{
	uint8_t *key = ekmfs_secure_alloc(CMK_SIZE);
	char *line = ekmfs_secure_alloc(KEY_FILE_MAX);
	int fd = -1, ret;

	if (!key || !line) {
		ret = -ENOMEM;
		goto out;
	}
	ret = make_parents(path);
	if (ret)
		goto out;
	ret = ekmfs_random(key, CMK_SIZE);
	if (ret)
		goto out;
	ekmfs_b64_encode(key, CMK_SIZE, line);
	strcat(line, "\n");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		if (ret != -EEXIST)
			ekmfs_seterr("cannot create key file %s: %s", path, strerror(errno));
		goto out;
	}
	ret = ekmfs_write_full(fd, line, strlen(line), 0);
	if (!ret && ekmfs_io->fsync(fd) < 0)
		ret = -errno;
	if (!ret)
		ret = sync_parent(path);
	if (ret) {
		ekmfs_seterr("cannot write key file %s: %s", path, strerror(-ret));
		unlink(path);
		goto out;
	}
	ekmfs_log(EKMFS_LOG_INFO, "created key file %s (back it up: without it the volume "
		  "cannot be read)", path);
out:
	if (fd >= 0)
		close(fd);
	ekmfs_secure_free(key, CMK_SIZE);
	ekmfs_secure_free(line, KEY_FILE_MAX);
	return ret;
}

/* ---- 3. passphrases ---- */

static int read_passphrase_file(const char *path, char *buf, size_t *len)
{
	int ret = ekmfs_secret_read(path, "passphrase file", buf, PASSPHRASE_MAX, len);

	if (ret)
		return ret;
	if (*len && buf[*len - 1] == '\n')
		buf[--*len] = '\0';
	if (*len && buf[*len - 1] == '\r')
		buf[--*len] = '\0';
	if (*len == 0) {
		ekmfs_seterr("passphrase file %s is empty", path);
		return -EINVAL;
	}
	return 0;
}

/* Read one line from the terminal with echo off. */
static int prompt_line(int tty, const char *prompt, char *buf, size_t *len)
{
	struct termios old, quiet;
	size_t n = 0;
	int ret = 0;
	char c;

	if (tcgetattr(tty, &old) < 0)
		return -errno;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(tty, TCSAFLUSH, &quiet) < 0)
		return -errno;
	if (write(tty, prompt, strlen(prompt)) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		ssize_t r = read(tty, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			break;
		}
		if (r == 0 || c == '\n')
			break;
		if (n == PASSPHRASE_MAX) {
			ret = -EINVAL;
			continue; /* drain the line, then refuse it */
		}
		buf[n++] = c;
	}
	buf[n] = '\0';
	*len = n;
out:
	tcsetattr(tty, TCSAFLUSH, &old);
	if (write(tty, "\n", 1) < 0) {
		/* only cosmetic */
	}
	c = 0;
	return ret;
}

/* Ask on /dev/tty; when creating, ask twice so a typo cannot lock the volume. */
static int prompt_passphrase(const char *tenant, bool confirm, char *buf, size_t *len)
{
	char prompt[128], *again = NULL;
	size_t again_len = 0;
	int tty, ret;

	tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty < 0) {
		ekmfs_seterr("no terminal to prompt for the passphrase; set passphrase_file");
		return -ENXIO;
	}
	ekmfs_clearerr();
	snprintf(prompt, sizeof(prompt), "Passphrase for tenant '%s': ", tenant);
	ret = prompt_line(tty, prompt, buf, len);
	if (ret)
		goto out;
	if (confirm) {
		again = ekmfs_secure_alloc(PASSPHRASE_MAX + 1);
		if (!again) {
			ret = -ENOMEM;
			goto out;
		}
		ret = prompt_line(tty, "Repeat the passphrase: ", again, &again_len);
		if (!ret && (again_len != *len || CRYPTO_memcmp(again, buf, *len) != 0)) {
			ekmfs_seterr("the two passphrases differ");
			ret = -EINVAL;
		}
	}
	if (!ret && *len == 0) {
		ekmfs_seterr("empty passphrase refused");
		ret = -EINVAL;
	}
	if (ret && !ekmfs_lasterr()[0])
		ekmfs_seterr("cannot read the passphrase from the terminal: %s", strerror(-ret));
out:
	ekmfs_secure_free(again, PASSPHRASE_MAX + 1);
	close(tty);
	return ret;
}

struct scrypt_params {
	uint64_t n;
	uint8_t salt[SALT_SIZE];
};

static void kdf_format(const struct scrypt_params *sp, char *out, size_t outlen)
{
	char salt[4 * ((SALT_SIZE + 2) / 3) + 1];

	ekmfs_b64_encode(sp->salt, SALT_SIZE, salt);
	snprintf(out, outlen, "scrypt:n=%llu,r=%d,p=%d,salt=%s", (unsigned long long)sp->n,
		 SCRYPT_R, SCRYPT_P, salt);
}

/* Parse the kdf string strictly: it must be exactly what kdf_format() makes. */
static int kdf_parse(const char *tenant, const char *kdf, struct scrypt_params *sp)
{
	static const char head[] = "scrypt:n=", mid[] = ",r=8,p=1,salt=";
	char canon[EKMFS_REF_MAX];
	const char *p = kdf, *salt;
	char *end;

	if (strncmp(p, head, sizeof(head) - 1) != 0)
		goto bad;
	p += sizeof(head) - 1;
	if (*p < '1' || *p > '9')
		goto bad;
	errno = 0;
	sp->n = strtoull(p, &end, 10);
	if (errno || sp->n < SCRYPT_N_MIN || sp->n > SCRYPT_N_MAX || (sp->n & (sp->n - 1)))
		goto bad;
	if (strncmp(end, mid, sizeof(mid) - 1) != 0)
		goto bad;
	salt = end + sizeof(mid) - 1;
	if (ekmfs_b64_decode(salt, sp->salt, SALT_SIZE) != SALT_SIZE)
		goto bad;
	kdf_format(sp, canon, sizeof(canon));
	if (strcmp(canon, kdf) != 0)
		goto bad;
	return 0;
bad:
	ekmfs_seterr("keyring: tenant '%s' has kdf '%s', expected "
		     "scrypt:n=N,r=8,p=1,salt=BASE64 (N a power of two, %d..%d)",
		     tenant, kdf, SCRYPT_N_MIN, SCRYPT_N_MAX);
	return -EBADMSG;
}

static int scrypt_derive(const char *pass, size_t pass_len, const struct scrypt_params *sp,
			 uint8_t *cmk)
{
	uint64_t n = sp->n;
	uint32_t r = SCRYPT_R, p = SCRYPT_P;
	/* scrypt needs 128*r*(N+p) bytes; leave headroom for OpenSSL's own. */
	uint64_t maxmem = 128ull * r * (n + 2 + p) + (1u << 20);
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pass,
						  pass_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)sp->salt,
						  SALT_SIZE),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end(),
	};
	int ret = 0;

	if (!kctx || EVP_KDF_derive(kctx, cmk, CMK_SIZE, params) != 1) {
		ekmfs_wipe(cmk, CMK_SIZE);
		ekmfs_seterr("scrypt (N=%llu) failed: out of memory or no SCRYPT in OpenSSL",
			     (unsigned long long)n);
		ret = -ENOMEM;
	}
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ret;
}

/* Derive the CMK from the configured passphrase; with create, pick a fresh
 * salt and record it in rec->kdf, otherwise take the salt from rec->kdf. */
static int load_passphrase(const struct ekmfs_tenant_config *tc,
			   struct ekmfs_tenant_record *rec, bool create, uint8_t *cmk)
{
	char *pass = ekmfs_secure_alloc(PASSPHRASE_MAX + 1);
	struct scrypt_params sp;
	size_t len = 0;
	int ret;

	if (!pass)
		return -ENOMEM;
	if (create) {
		sp.n = tc->scrypt_n;
		ret = ekmfs_random(sp.salt, SALT_SIZE);
	} else {
		ret = kdf_parse(rec->name, rec->kdf, &sp);
	}
	if (ret)
		goto out;
	if (tc->local_source == EKMFS_LOCAL_PASSPHRASE_FILE)
		ret = read_passphrase_file(tc->passphrase_file, pass, &len);
	else
		ret = prompt_passphrase(tc->name, create, pass, &len);
	if (ret)
		goto out;
	ret = scrypt_derive(pass, len, &sp, cmk);
	if (!ret && create)
		kdf_format(&sp, rec->kdf, sizeof(rec->kdf));
out:
	ekmfs_secure_free(pass, PASSPHRASE_MAX + 1);
	return ret;
}

/* ---- 4. provider operations ---- */

static struct local_priv *priv(struct ekmfs_provider *p)
{
	return p->priv;
}

static int local_wrap(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
		      const uint8_t kek[32], struct ekmfs_wrapped_kek *out)
{
	struct local_priv *lp = priv(p);
	uint8_t nonce[EKMFS_AEAD_NONCE_SIZE];
	int ret;

	memset(out, 0, sizeof(*out));
	ret = ekmfs_random(nonce, sizeof(nonce));
	if (!ret)
		ret = ekmfs_local_wrap_raw(lp->cmk, ctx, kek, nonce, out->blob);
	if (ret)
		return ret;
	out->len = EKMFS_LOCAL_BLOB_SIZE;
	snprintf(out->cmk_ref, sizeof(out->cmk_ref), "%s", lp->cmk_ref);
	snprintf(out->cmk_version, sizeof(out->cmk_version), "%s", lp->fingerprint);
	return 0;
}

static int local_unwrap(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx,
			const struct ekmfs_wrapped_kek *in, uint8_t kek[32])
{
	struct local_priv *lp = priv(p);
	uint8_t aad[AAD_MAX];
	size_t aad_len;
	int ret;

	if (strcmp(in->cmk_ref, lp->cmk_ref) != 0) {
		ekmfs_seterr("tenant '%s' KEK v%u is wrapped by '%s', but the configuration "
			     "gives %s", ctx->tenant, ctx->kek_version, in->cmk_ref, lp->source);
		ret = -EKEYREJECTED;
		goto fail;
	}
	if (strcmp(in->cmk_version, lp->fingerprint) != 0) {
		ekmfs_seterr("%s is not the key of tenant '%s' (its fingerprint is %s, the "
			     "keyring expects %s); configure the key the keyring is wrapped with "
			     "(ekmfs-admin test checks one)", lp->source, ctx->tenant,
			     lp->fingerprint, in->cmk_version);
		ret = -EKEYREJECTED;
		goto fail;
	}
	if (in->len != EKMFS_LOCAL_BLOB_SIZE) {
		ekmfs_seterr("keyring record for tenant %s KEK v%u does not authenticate "
			     "(%zu bytes instead of %d: tampered)", ctx->tenant,
			     ctx->kek_version, in->len, EKMFS_LOCAL_BLOB_SIZE);
		ret = -EKEYREJECTED;
		goto fail;
	}
	ret = build_aad(ctx, aad, &aad_len);
	if (ret)
		goto fail;
	ret = ekmfs_aead_open(lp->cmk, in->blob, aad, aad_len,
			      in->blob + EKMFS_AEAD_NONCE_SIZE, CMK_SIZE,
			      in->blob + EKMFS_AEAD_NONCE_SIZE + CMK_SIZE, kek);
	if (ret == -EBADMSG) {
		ekmfs_seterr("keyring record for tenant %s KEK v%u does not authenticate "
			     "(tampered or moved)", ctx->tenant, ctx->kek_version);
		ret = -EKEYREJECTED;
	} else if (ret) {
		ekmfs_seterr("AES-GCM failed while unwrapping tenant %s KEK v%u", ctx->tenant,
			     ctx->kek_version);
	}
	if (!ret)
		return 0;
fail:
	ekmfs_wipe(kek, CMK_SIZE);
	return ret;
}

static int local_self_test(struct ekmfs_provider *p, const struct ekmfs_wrap_context *ctx)
{
	return ekmfs_provider_round_trip_test(p, ctx, "local provider");
}

static void local_destroy(struct ekmfs_provider *p)
{
	struct local_priv *lp = priv(p);

	if (lp) {
		ekmfs_secure_free(lp->cmk, CMK_SIZE);
		free(lp);
	}
	free(p);
}

static const struct ekmfs_provider_ops local_ops = {
	.name = "local",
	.wrap = local_wrap,
	.unwrap = local_unwrap,
	.self_test = local_self_test,
	.destroy = local_destroy,
};

/* The keyring remembers how the CMK was made; the configuration must agree. */
static int check_source_matches(const struct ekmfs_tenant_config *tc,
				const struct ekmfs_tenant_record *rec, const char *source)
{
	bool keyring_passphrase = rec->kdf[0] != '\0';
	bool config_passphrase = tc->local_source != EKMFS_LOCAL_KEY_FILE;

	if (keyring_passphrase == config_passphrase)
		return 0;
	ekmfs_seterr("tenant '%s' was created with %s, but the configuration gives %s",
		     rec->name, keyring_passphrase ? "a passphrase" : "a key file", source);
	return -EKEYREJECTED;
}

int ekmfs_local_open(const struct ekmfs_tenant_config *tc, struct ekmfs_tenant_record *rec,
		     bool create, struct ekmfs_provider **out)
{
	struct ekmfs_provider *p = calloc(1, sizeof(*p));
	struct local_priv *lp = calloc(1, sizeof(*lp));
	int ret;

	*out = NULL;
	if (!p || !lp || !(lp->cmk = ekmfs_secure_alloc(CMK_SIZE))) {
		ret = -ENOMEM;
		goto fail;
	}
	p->ops = &local_ops;
	p->cfg = tc;
	p->priv = lp;

	switch (tc->local_source) {
	case EKMFS_LOCAL_KEY_FILE:
		lp->cmk_ref = "local:key-file";
		snprintf(lp->source, sizeof(lp->source), "key file %s", tc->key_file);
		break;
	case EKMFS_LOCAL_PASSPHRASE_FILE:
		lp->cmk_ref = "local:passphrase";
		snprintf(lp->source, sizeof(lp->source), "passphrase file %s",
			 tc->passphrase_file);
		break;
	case EKMFS_LOCAL_PASSPHRASE_PROMPT:
		lp->cmk_ref = "local:passphrase";
		snprintf(lp->source, sizeof(lp->source), "the passphrase typed");
		break;
	default:
		ekmfs_seterr("tenant '%s': unknown local key source", tc->name);
		ret = -EINVAL;
		goto fail;
	}
	if (create) {
		rec->kdf[0] = '\0';
	} else {
		ret = check_source_matches(tc, rec, lp->source);
		if (ret)
			goto fail;
	}

	if (tc->local_source == EKMFS_LOCAL_KEY_FILE) {
		if (create && access(tc->key_file, F_OK) < 0 && errno == ENOENT) {
			ret = create_key_file(tc->key_file);
			if (ret && ret != -EEXIST)
				goto fail;
		}
		ret = load_key_file(tc->key_file, lp->cmk);
	} else {
		ret = load_passphrase(tc, rec, create, lp->cmk);
	}
	if (ret)
		goto fail;
	ret = ekmfs_local_fingerprint(lp->cmk, lp->fingerprint);
	if (ret)
		goto fail;
	*out = p;
	return 0;
fail:
	if (lp)
		ekmfs_secure_free(lp->cmk, CMK_SIZE);
	free(lp);
	free(p);
	return ret;
}

/* ---- the descriptor (provider.h) ---- */

static const char *const local_keys[] = {
	"key_file", "passphrase_file", "passphrase", "scrypt_n", NULL,
};

static char *local_ref(struct ekmfs_tenant_config *tc, size_t *cap)
{
	if (cap)
		*cap = sizeof(tc->key_file);
	return tc->local_source == EKMFS_LOCAL_KEY_FILE ? tc->key_file : (char *)"";
}

static size_t local_secrets(const struct ekmfs_tenant_config *tc, const char **path,
			    const char **what, size_t n)
{
	if (n == 0)
		return 0;
	if (tc->local_source == EKMFS_LOCAL_KEY_FILE) {
		*path = tc->key_file;
		*what = "key file";
		return 1;
	}
	if (tc->local_source == EKMFS_LOCAL_PASSPHRASE_FILE) {
		*path = tc->passphrase_file;
		*what = "passphrase file";
		return 1;
	}
	return 0;
}

const struct ekmfs_provider_desc ekmfs_local_desc = {
	.name = "local",
	.what = "local key",
	.keys = local_keys,
	.ref_key = "key_file",
	.ref_format = "the absolute path of a key file (ekmfs-admin keygen)",
	.caps = EKMFS_PROV_CMK_FILE,
	.ref = local_ref,
	.secrets = local_secrets,
	.open = ekmfs_local_open,
};
