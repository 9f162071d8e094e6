/*
 * audit.c - the tamper-evident audit log (include/ekmfs/audit.h).
 *
 * Owns: the record line, the MAC chain, the chain head in the volume, the
 * append protocol shared by every writer, the daemon's asynchronous writer
 * and chain verification. docs/AUDIT.md specifies the bytes.
 *
 * Divisions:
 *   1. MACs
 *   2. the head
 *   3. record lines: build, split off the MAC, parse
 *   4. open / close
 *   5. appending (flock on the log file)
 *   6. the asynchronous writer (daemon)
 *   7. verification
 *
 * A record line is the canonical JSON C of the record without its MAC, with
 * its final '}' replaced by ,"mac":"<64 hex>"}. The MAC covers the exact
 * bytes of C, so verification never re-serializes JSON (no dependence on
 * number formatting or escaping): it cuts the suffix off and puts '}' back.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "audit_priv.h"
#include "ekmfs/io.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"

#define HEAD_FORMAT "ekmfs-audit-head"
#define RECORD_LABEL "ekmfs-audit-record-v1"
#define HEAD_LABEL "ekmfs-audit-head-v1"
/* A head that also anchors the keyring generation. */
#define HEAD_LABEL_V2 "ekmfs-audit-head-v2"
#define MAC_HEX (2 * EKMFS_AUDIT_MAC_SIZE)
/* ,"mac":"<64 hex>"} */
#define MAC_SUFFIX_LEN (8 + MAC_HEX + 2)
/* The head and the audit key are a few hundred bytes. */
#define META_READ_MAX (64 * 1024)
#define QUEUE_MAX 1024

/* ---- 1. MACs ---- */

/* HMAC-SHA256(key, label || a || b). 0 or -EIO. */
static int mac3(const uint8_t *key, const char *label, const void *a, size_t alen,
		const void *b, size_t blen, uint8_t out[EKMFS_AUDIT_MAC_SIZE])
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
	size_t outl = 0;
	int ok;

	ok = c && EVP_MAC_init(c, key, EKMFS_AUDIT_MAC_SIZE, params) &&
	     EVP_MAC_update(c, (const unsigned char *)label, strlen(label)) &&
	     (alen == 0 || EVP_MAC_update(c, a, alen)) &&
	     (blen == 0 || EVP_MAC_update(c, b, blen)) &&
	     EVP_MAC_final(c, out, &outl, EKMFS_AUDIT_MAC_SIZE) &&
	     outl == EKMFS_AUDIT_MAC_SIZE;
	EVP_MAC_CTX_free(c);    /* cleanses the key copy */
	EVP_MAC_free(m);
	if (!ok) {
		ekmfs_wipe(out, EKMFS_AUDIT_MAC_SIZE);
		ekmfs_seterr("HMAC-SHA256 failed in the crypto library");
		return -EIO;
	}
	return 0;
}

/* ---- 2. the head ---- */

struct head {
	uint64_t seq;
	uint8_t mac[EKMFS_AUDIT_MAC_SIZE];
	/* The highest keyring generation a writer of the chain had
	 * authenticated (0: none recorded, a head older than the anchor):
	 * a keyring older than this is a rollback (docs/AUDIT.md). */
	uint64_t kgen;
};

static int head_mac(const uint8_t *key, const uint8_t *vid, const struct head *h,
		    uint8_t out[EKMFS_AUDIT_MAC_SIZE])
{
	uint8_t buf[EKMFS_VOLUME_ID_SIZE + 8 + EKMFS_AUDIT_MAC_SIZE + 8];
	size_t n = EKMFS_VOLUME_ID_SIZE + 8 + EKMFS_AUDIT_MAC_SIZE;

	memcpy(buf, vid, EKMFS_VOLUME_ID_SIZE);
	for (int i = 0; i < 8; i++)
		buf[EKMFS_VOLUME_ID_SIZE + i] = (uint8_t)(h->seq >> (8 * i));
	memcpy(buf + EKMFS_VOLUME_ID_SIZE + 8, h->mac, EKMFS_AUDIT_MAC_SIZE);
	if (!h->kgen)
		return mac3(key, HEAD_LABEL, buf, n, NULL, 0, out);
	for (int i = 0; i < 8; i++)
		buf[n + i] = (uint8_t)(h->kgen >> (8 * i));
	return mac3(key, HEAD_LABEL_V2, buf, n + 8, NULL, 0, out);
}

static int head_write(int backing_fd, const uint8_t *vid, const uint8_t *key,
		      const struct head *h)
{
	uint8_t hm[EKMFS_AUDIT_MAC_SIZE];
	char mac_hex[MAC_HEX + 1], hm_hex[MAC_HEX + 1], text[512], kgen[64] = "";
	int ret = head_mac(key, vid, h, hm);

	if (ret)
		return ret;
	ekmfs_hex(h->mac, EKMFS_AUDIT_MAC_SIZE, mac_hex);
	ekmfs_hex(hm, sizeof(hm), hm_hex);
	if (h->kgen)
		snprintf(kgen, sizeof(kgen), " \"keyring_generation\": %llu,\n",
			 (unsigned long long)h->kgen);
	snprintf(text, sizeof(text),
		 "{\"format\": \"" HEAD_FORMAT "\", \"version\": 1, \"seq\": %llu,\n"
		 " \"mac\": \"%s\",\n%s \"head_mac\": \"%s\"}\n",
		 (unsigned long long)h->seq, mac_hex, kgen, hm_hex);
	return ekmfs_meta_replace(backing_fd, EKMFS_AUDIT_HEAD_FILE, text);
}

int audit_head_init(int backing_fd, const uint8_t *vid, const uint8_t *key)
{
	struct head h = { 0 };

	return head_write(backing_fd, vid, key, &h);
}

/* 0, -ENOENT (no head), -EBADMSG (malformed or its MAC fails: tampered). */
static int head_read(int backing_fd, const uint8_t *vid, const uint8_t *key, struct head *h)
{
	json_object *root = NULL, *v;
	uint8_t want[EKMFS_AUDIT_MAC_SIZE], got[EKMFS_AUDIT_MAC_SIZE];
	char *text = NULL;
	size_t len;
	int ret;

	ret = ekmfs_meta_read_max(backing_fd, EKMFS_AUDIT_HEAD_FILE, META_READ_MAX, &text, &len);
	if (ret == -ENOENT)
		ekmfs_seterr("the audit chain head .ekmfs/" EKMFS_AUDIT_HEAD_FILE " is missing "
			     "(deleted?) while the volume has an audit key");
	if (ret)
		return ret;
	root = json_tokener_parse(text);
	free(text);
	ret = -EBADMSG;
	if (!root || !json_object_object_get_ex(root, "format", &v) ||
	    strcmp(json_object_get_string(v), HEAD_FORMAT) != 0 ||
	    !json_object_object_get_ex(root, "seq", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		goto bad;
	h->seq = (uint64_t)json_object_get_int64(v);
	h->kgen = 0;
	if (json_object_object_get_ex(root, "keyring_generation", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
			goto bad;
		h->kgen = (uint64_t)json_object_get_int64(v);
	}
	if (!json_object_object_get_ex(root, "mac", &v) || !json_object_is_type(v, json_type_string) ||
	    ekmfs_unhex(json_object_get_string(v), h->mac, sizeof(h->mac)) < 0 ||
	    !json_object_object_get_ex(root, "head_mac", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    ekmfs_unhex(json_object_get_string(v), got, sizeof(got)) < 0)
		goto bad;
	ret = head_mac(key, vid, h, want);
	if (ret)
		goto out;
	if (CRYPTO_memcmp(want, got, sizeof(want)) != 0) {
		ekmfs_seterr("the audit chain head .ekmfs/" EKMFS_AUDIT_HEAD_FILE " does not "
			     "authenticate (tampered, or from another volume)");
		ret = -EBADMSG;
		goto out;
	}
	ret = 0;
	goto out;
bad:
	ekmfs_seterr("the audit chain head .ekmfs/" EKMFS_AUDIT_HEAD_FILE " is malformed");
out:
	json_object_put(root);
	return ret;
}

/* ---- 3. record lines ---- */

struct ekmfs_audit {
	int backing_fd;
	struct ekmfs_volume vol;
	char vid_hex[2 * EKMFS_VOLUME_ID_SIZE + 1];
	char log[PATH_MAX];
	bool syslog;
	uint8_t *key;                   /* EKMFS_AUDIT_MAC_SIZE, secure memory */

	/* The asynchronous writer: mu guards everything below. */
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* work arrived, or quit */
	pthread_cond_t idle_cv;         /* the queue drained */
	pthread_t thread;
	bool async, quit, busy;
	json_object *queue[QUEUE_MAX];  /* record bodies, oldest at qhead */
	size_t qhead, qlen;
	unsigned rate;
	double tokens;
	struct timespec last_refill;
	uint64_t dropped;
	int last_err;                   /* log a failing write once per cause */

	/* The keyring anchor: what the head said at open, and the generation
	 * this process authenticated, which its appends write into the head
	 * (atomic). */
	uint64_t kgen_head, kgen_note;
};

static void add_str(json_object *o, const char *name, const char *v)
{
	if (v)
		json_object_object_add(o, name, json_object_new_string(v));
}

/* The record without seq and volume (added at append time), with its time. */
static json_object *build_body(const struct ekmfs_audit_event *ev)
{
	json_object *o = json_object_new_object(), *d = NULL;
	char when[32];

	/* A new event name belongs in events.c (and docs/AUDIT.md) first:
	 * audit show --event only accepts the names listed there. */
	assert(ekmfs_audit_event_known(ev->event));
	if (!o)
		return NULL;
	ekmfs_time_rfc3339(time(NULL), when, sizeof(when));
	add_str(o, "time", when);
	add_str(o, "event", ev->event);
	add_str(o, "outcome", ev->outcome ? ev->outcome : "success");
	add_str(o, "tenant", ev->tenant);
	add_str(o, "key_ref", ev->key_ref);
	if (ev->kek_version)
		json_object_object_add(o, "kek_version", json_object_new_int64(ev->kek_version));
	add_str(o, "reason", ev->reason);
	add_str(o, "file_id", ev->file_id);
	add_str(o, "path", ev->path);
	if (ev->uid >= 0)
		json_object_object_add(o, "uid", json_object_new_int64(ev->uid));
	if (ev->pid >= 0)
		json_object_object_add(o, "pid", json_object_new_int64(ev->pid));
	if (ev->details && json_object_deep_copy(ev->details, &d, NULL) == 0)
		json_object_object_add(o, "details", d);
	return o;
}

/* Canonical text C of the record {seq, volume, body...}: malloc'd. */
static char *record_text(const struct ekmfs_audit *a, uint64_t seq, json_object *body)
{
	json_object *rec = json_object_new_object();
	char *out = NULL;

	if (!rec)
		return NULL;
	json_object_object_add(rec, "seq", json_object_new_int64((int64_t)seq));
	json_object_object_add(rec, "volume", json_object_new_string(a->vid_hex));
	json_object_object_foreach(body, k, v)
		json_object_object_add(rec, k, json_object_get(v));
	out = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(rec);
	return out;
}

/* C with its '}' replaced by the MAC suffix, and a newline. malloc'd. */
static char *record_line(const char *c, const uint8_t mac[EKMFS_AUDIT_MAC_SIZE])
{
	size_t len = strlen(c);
	char hex[MAC_HEX + 1], *line;

	if (len < 2 || c[len - 1] != '}')
		return NULL;
	line = malloc(len - 1 + MAC_SUFFIX_LEN + 2);
	if (!line)
		return NULL;
	ekmfs_hex(mac, EKMFS_AUDIT_MAC_SIZE, hex);
	memcpy(line, c, len - 1);
	sprintf(line + len - 1, ",\"mac\":\"%s\"}\n", hex);
	return line;
}

struct parsed {
	uint64_t seq;
	uint8_t mac[EKMFS_AUDIT_MAC_SIZE];
	char volume[2 * EKMFS_VOLUME_ID_SIZE + 1];      /* "" when absent */
	char *c;                        /* canonical text, malloc'd */
	size_t clen;
};

/* Split a line (without its newline) into C and the MAC. 0 or -EBADMSG. */
static int parse_line(const char *line, size_t len, struct parsed *p)
{
	static const char pre[] = ",\"mac\":\"";
	json_object *o, *v;
	const char *suffix;
	char hex[MAC_HEX + 1];

	memset(p, 0, sizeof(*p));
	if (len < MAC_SUFFIX_LEN + 2 || line[0] != '{')
		return -EBADMSG;
	suffix = line + len - MAC_SUFFIX_LEN;
	if (memcmp(suffix, pre, sizeof(pre) - 1) != 0 || memcmp(line + len - 2, "\"}", 2) != 0)
		return -EBADMSG;
	memcpy(hex, suffix + sizeof(pre) - 1, MAC_HEX);
	hex[MAC_HEX] = '\0';
	if (ekmfs_unhex(hex, p->mac, sizeof(p->mac)) < 0)
		return -EBADMSG;
	p->clen = len - MAC_SUFFIX_LEN + 1;
	p->c = malloc(p->clen + 1);
	if (!p->c)
		return -ENOMEM;
	memcpy(p->c, line, p->clen - 1);
	p->c[p->clen - 1] = '}';
	p->c[p->clen] = '\0';
	o = json_tokener_parse(p->c);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "seq", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 1) {
		json_object_put(o);
		free(p->c);
		p->c = NULL;
		return -EBADMSG;
	}
	p->seq = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "volume", &v) && json_object_is_type(v, json_type_string))
		snprintf(p->volume, sizeof(p->volume), "%s", json_object_get_string(v));
	json_object_put(o);
	return 0;
}

/* ---- 4. open / close ---- */

void ekmfs_audit_log_path(const struct ekmfs_config *cfg, const struct ekmfs_volume *vol,
			  char *out, size_t outlen)
{
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];

	if (cfg && cfg->audit_file[0]) {
		snprintf(out, outlen, "%s", cfg->audit_file);
		return;
	}
	ekmfs_hex(vol->volume_id, EKMFS_VOLUME_ID_SIZE, id);
	snprintf(out, outlen, "%s/%s.log", EKMFS_AUDIT_DEFAULT_DIR, id);
}

/* Open the log for appending, creating it (0600) and its directory (0700). */
static int log_open(const char *path)
{
	char dir[PATH_MAX], *slash;
	int fd;

	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == ENOENT) {
		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
				ekmfs_seterr("cannot create the audit log directory %s: %s", dir,
					     strerror(errno));
				return -errno;
			}
			fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		}
	}
	if (fd < 0) {
		int ret = -errno;

		ekmfs_seterr("cannot open the audit log %s: %s", path, strerror(errno));
		return ret;
	}
	return fd;
}

/* 1 when the volume has no audit chain at all yet (no key, no head, no
 * record of it at the end of its log): a first writer may create one. A key
 * that is gone while the chain it MACed is still there is tampering (or a
 * damaged volume), never a reason to start a second chain: -EBADMSG. */
static int chain_absent(struct ekmfs_audit *a)
{
	bool key, head, records = false;
	char rel[64];
	struct stat st;
	int fd;

	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, EKMFS_AUDIT_KEY_FILE);
	key = fstatat(a->backing_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (key)
		return 0;
	snprintf(rel, sizeof(rel), "%s/%s", EKMFS_META_DIR, EKMFS_AUDIT_HEAD_FILE);
	head = fstatat(a->backing_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
	fd = open(a->log, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char buf[EKMFS_AUDIT_LINE_MAX + 1];
		ssize_t n = ekmfs_read_full(fd, buf, sizeof(buf) - 1, 0);

		buf[n > 0 ? n : 0] = '\0';
		records = strstr(buf, a->vid_hex) != NULL;
		close(fd);
	}
	if (!head && !records)
		return 1;
	ekmfs_seterr("the audit key .ekmfs/" EKMFS_AUDIT_KEY_FILE " is missing (deleted?) "
		     "while the volume's audit chain %s: refusing to start another chain",
		     head ? "has its head .ekmfs/" EKMFS_AUDIT_HEAD_FILE
		     : "has records in the log");
	return -EBADMSG;
}

static int check_tail(struct ekmfs_audit *a, int fd, struct head *h);

/* The chain's end, as every writer takes it: the log opened and flocked
 * (*fd, for the caller to close, which unlocks; -1 when it did not open),
 * the head read and authenticated, and checked against the log's end
 * (check_tail: *moved when it moved the head up one record). 0 or -errno. */
static int chain_end(struct ekmfs_audit *a, int *fd, struct head *h, bool *moved)
{
	uint64_t was;
	int ret;

	*moved = false;
	*fd = log_open(a->log);
	if (*fd < 0) {
		ret = *fd;
		*fd = -1;
		return ret;
	}
	while (flock(*fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			ekmfs_seterr("cannot lock the audit log %s: %s", a->log, strerror(errno));
			return -errno;
		}
	}
	ret = head_read(a->backing_fd, a->vol.volume_id, a->key, h);
	if (ret)
		return ret;
	was = h->seq;
	ret = check_tail(a, *fd, h);
	*moved = !ret && h->seq != was;
	return ret;
}

/* At every open: the head must be there and authenticate, and the log's end
 * must agree with it; a head one record behind is moved up. */
static int open_check(struct ekmfs_audit *a)
{
	struct head h;
	bool moved;
	int fd, ret;

	ret = chain_end(a, &fd, &h, &moved);
	if (!ret && moved)
		ret = head_write(a->backing_fd, a->vol.volume_id, a->key, &h);
	if (!ret)
		a->kgen_head = h.kgen;
	if (fd >= 0)
		close(fd);
	return ret;
}

uint64_t ekmfs_audit_keyring_generation(const struct ekmfs_audit *a)
{
	return a ? a->kgen_head : 0;
}

void ekmfs_audit_note_keyring(struct ekmfs_audit *a, uint64_t generation)
{
	uint64_t was;

	if (!a)
		return;
	was = __atomic_load_n(&a->kgen_note, __ATOMIC_RELAXED);
	while (generation > was &&
	       !__atomic_compare_exchange_n(&a->kgen_note, &was, generation, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* A writer with the log turned back on records the gap the mark
 * .ekmfs/audit.off describes, then removes the mark. */
static int resume_after_off(struct ekmfs_audit *a)
{
	struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
	char *text = NULL, reason[512];
	size_t len;
	int ret;

	ret = ekmfs_meta_read_max(a->backing_fd, EKMFS_AUDIT_OFF_FILE, 4096, &text, &len);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	text[strcspn(text, "\n")] = '\0';
	snprintf(reason, sizeof(reason), "the audit log was off: %s", text);
	free(text);
	ev.event = "audit_resumed";
	ev.outcome = "success";
	ev.reason = reason;
	ev.uid = (long long)getuid();
	ev.pid = (long long)getpid();
	ret = ekmfs_audit_write(a, &ev);
	if (!ret)
		ret = ekmfs_meta_remove(a->backing_fd, EKMFS_AUDIT_OFF_FILE);
	return ret;
}

int ekmfs_audit_mark_off(int backing_fd, const char *who)
{
	char text[512], host[256] = "", when[32];
	char *old = NULL;
	size_t len;
	int ret;

	/* The first mark says since when; later writers leave it. */
	ret = ekmfs_meta_read_max(backing_fd, EKMFS_AUDIT_OFF_FILE, 4096, &old, &len);
	free(old);
	if (ret != -ENOENT)
		return ret;
	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "?");
	ekmfs_time_rfc3339(time(NULL), when, sizeof(when));
	snprintf(text, sizeof(text), "since %s, by %s (pid %ld on %s)\n", when, who,
		 (long)getpid(), host);
	return ekmfs_meta_replace(backing_fd, EKMFS_AUDIT_OFF_FILE, text);
}

static int audit_open(int backing_fd, const struct ekmfs_config *cfg,
		      const struct ekmfs_volume *vol, struct ekmfs_provider *prov,
		      bool to_verify, struct ekmfs_audit **out)
{
	struct ekmfs_audit *a;
	int fd, ret;

	*out = NULL;
	if (!to_verify && cfg && !cfg->audit_enabled)
		return ekmfs_audit_mark_off(backing_fd, program_invocation_short_name);
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->backing_fd = backing_fd;
	a->vol = *vol;
	ekmfs_hex(vol->volume_id, EKMFS_VOLUME_ID_SIZE, a->vid_hex);
	ekmfs_audit_log_path(cfg, vol, a->log, sizeof(a->log));
	a->syslog = cfg ? cfg->audit_syslog : false;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_cond_init(&a->idle_cv, NULL);
	a->key = ekmfs_secure_alloc(EKMFS_AUDIT_MAC_SIZE);
	if (!a->key) {
		ret = -ENOMEM;
		goto fail;
	}
	fd = log_open(a->log);
	if (fd < 0) {
		ret = fd;
		goto fail;
	}
	close(fd);
	if (to_verify) {
		ret = audit_key_load(backing_fd, vol, prov, a->key);
	} else {
		ret = chain_absent(a);
		if (ret == 1)
			ret = audit_key_load_or_create(backing_fd, vol, prov, a->key);
		else if (!ret)
			ret = audit_key_load(backing_fd, vol, prov, a->key);
		if (!ret)
			ret = open_check(a);
		if (!ret)
			ret = resume_after_off(a);
	}
	if (ret)
		goto fail;
	*out = a;
	return 0;
fail:
	ekmfs_audit_close(a);
	return ret;
}

int ekmfs_audit_open(int backing_fd, const struct ekmfs_config *cfg,
		     const struct ekmfs_volume *vol, struct ekmfs_provider *prov,
		     struct ekmfs_audit **out)
{
	return audit_open(backing_fd, cfg, vol, prov, false, out);
}

int ekmfs_audit_open_to_verify(int backing_fd, const struct ekmfs_config *cfg,
			       const struct ekmfs_volume *vol, struct ekmfs_provider *prov,
			       struct ekmfs_audit **out)
{
	return audit_open(backing_fd, cfg, vol, prov, true, out);
}

const char *ekmfs_audit_path(const struct ekmfs_audit *a)
{
	return a->log;
}

/* ---- 5. appending ---- */

/* The log's end against the chain head, before anything is appended (and
 * at every open): the chain head in the volume and the log outside it must
 * name the same last record, so that neither can be rolled back or swapped
 * without the next writer refusing (docs/AUDIT.md, "Failing closed").
 *
 * Among the lines of the log's last EKMFS_AUDIT_LINE_MAX bytes, the last
 * record of this volume L (records of other volumes sharing the file are
 * passed over; none in that window: nothing to compare):
 *   - L.seq == head.seq and L's MAC is the head's MAC: in step;
 *   - L.seq == head.seq + 1 and L's MAC chains from the head: a crash came
 *     between the append and the head update; the head moves up to L
 *     instead of a second record taking the same seq;
 *   - anything else (a head rolled back, records cut from the log, a log
 *     of another chain, a last line that is no record): -EBADMSG, naming
 *     both ends.
 * An empty log (a fresh file after log rotation) is in step with any head.
 * A torn last line (no newline: the crash came mid-write) never made it
 * into the chain and is cut off. */
static int check_tail(struct ekmfs_audit *a, int fd, struct head *h)
{
	char *buf = NULL, *end, *start;
	struct parsed p = { 0 };
	uint8_t mac[EKMFS_AUDIT_MAC_SIZE];
	struct stat st;
	off_t from;
	ssize_t n;
	size_t len;
	int ret = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size == 0)
		return 0;
	from = st.st_size > EKMFS_AUDIT_LINE_MAX ? st.st_size - EKMFS_AUDIT_LINE_MAX : 0;
	buf = malloc((size_t)(st.st_size - from) + 1);
	if (!buf)
		return -ENOMEM;
	n = ekmfs_read_full(fd, buf, (size_t)(st.st_size - from), from);
	if (n < 0) {
		ret = (int)n;
		goto out;
	}
	buf[n] = '\0';
	len = (size_t)n;
	if (len && buf[len - 1] != '\n') {
		char *nl = memrchr(buf, '\n', len);
		off_t keep = nl ? from + (nl - buf) + 1 : from;

		if (!nl && from > 0) {
			ekmfs_seterr("the audit log %s ends in a line longer than any record "
				     "(edited?)", a->log);
			ret = -EBADMSG;
			goto out;
		}
		if (ekmfs_io->ftruncate(fd, keep) < 0) {
			ret = -errno;
			goto out;
		}
		ekmfs_log(EKMFS_LOG_WARN, "audit log %s: removed a torn last line (%lld bytes)",
			  a->log, (long long)(st.st_size - keep));
		len = nl ? (size_t)(nl - buf) + 1 : 0;
	}
	/* Whole lines from the end: [start, end). The first line of a window
	 * that does not begin the file may be cut: it is never looked at. */
	end = buf + len;
	while (end > buf) {
		*--end = '\0';                 /* the newline */
		start = memrchr(buf, '\n', (size_t)(end - buf));
		if (!start && from > 0)
			break;
		start = start ? start + 1 : buf;
		free(p.c);
		if (parse_line(start, (size_t)(end - start), &p) < 0) {
			ekmfs_seterr("the audit log %s: a line near its end is not an audit "
				     "record (edited?)", a->log);
			ret = -EBADMSG;
			goto out;
		}
		if (!p.volume[0] || strcmp(p.volume, a->vid_hex) == 0)
			goto found;
		end = start;
	}
	goto out;               /* no record of this volume near the end */
found:
	if (p.seq == h->seq) {
		if (CRYPTO_memcmp(p.mac, h->mac, sizeof(p.mac)) == 0)
			goto out;
		ekmfs_seterr("the audit log %s ends at seq %llu with a record the chain head "
			     ".ekmfs/" EKMFS_AUDIT_HEAD_FILE " does not name (the log or the "
			     "head was replaced)", a->log, (unsigned long long)p.seq);
		ret = -EBADMSG;
		goto out;
	}
	if (p.seq == h->seq + 1) {
		ret = mac3(a->key, RECORD_LABEL, h->mac, sizeof(h->mac), p.c, p.clen, mac);
		if (ret)
			goto out;
		if (CRYPTO_memcmp(mac, p.mac, sizeof(mac)) == 0) {
			h->seq = p.seq;
			memcpy(h->mac, p.mac, sizeof(h->mac));
			goto out;
		}
		ekmfs_seterr("the audit log %s ends at seq %llu with a record that does not "
			     "follow the chain head (edited, or the head was replaced)", a->log,
			     (unsigned long long)p.seq);
		ret = -EBADMSG;
		goto out;
	}
	if (p.seq > h->seq)
		ekmfs_seterr("the audit chain head .ekmfs/" EKMFS_AUDIT_HEAD_FILE " (seq %llu) "
			     "is behind the log %s (seq %llu): the head was rolled back",
			     (unsigned long long)h->seq, a->log, (unsigned long long)p.seq);
	else
		ekmfs_seterr("the audit log %s ends at seq %llu but the chain head is at seq "
			     "%llu: records were cut from the log (or an older copy restored)",
			     a->log, (unsigned long long)p.seq, (unsigned long long)h->seq);
	ret = -EBADMSG;
out:
	free(p.c);
	free(buf);
	return ret;
}

static void to_syslog(const char *line)
{
	syslog(LOG_AUTHPRIV | LOG_NOTICE, "ekmfs-audit: %.*s", (int)strcspn(line, "\n"), line);
}

static int append_body(struct ekmfs_audit *a, json_object *body)
{
	struct head h;
	uint8_t mac[EKMFS_AUDIT_MAC_SIZE];
	char *c = NULL, *line = NULL;
	uint64_t note;
	bool moved;
	int fd, ret;

	ret = chain_end(a, &fd, &h, &moved);
	if (ret)
		goto out;
	ret = -ENOMEM;
	c = record_text(a, h.seq + 1, body);
	if (!c)
		goto out;
	ret = mac3(a->key, RECORD_LABEL, h.mac, sizeof(h.mac), c, strlen(c), mac);
	if (ret)
		goto out;
	line = record_line(c, mac);
	ret = -ENOMEM;
	if (!line)
		goto out;
	if (strlen(line) > EKMFS_AUDIT_LINE_MAX) {
		ekmfs_seterr("audit record too long");
		ret = -E2BIG;
		goto out;
	}
	/* O_APPEND: one write lands whole at the end. */
	ret = ekmfs_write_full(fd, line, strlen(line), 0);
	if (!ret && ekmfs_io->fsync(fd) < 0)
		ret = -errno;
	if (ret) {
		ekmfs_seterr("cannot write the audit log %s: %s", a->log, strerror(-ret));
		goto out;
	}
	h.seq++;
	memcpy(h.mac, mac, sizeof(mac));
	/* The anchor only rises (another writer's higher one is kept). */
	note = __atomic_load_n(&a->kgen_note, __ATOMIC_RELAXED);
	if (note > h.kgen)
		h.kgen = note;
	ret = head_write(a->backing_fd, a->vol.volume_id, a->key, &h);
	if (!ret && a->syslog)
		to_syslog(line);
out:
	free(line);
	free(c);
	if (fd >= 0)
		close(fd);      /* drops the flock */
	return ret;
}

int ekmfs_audit_write(struct ekmfs_audit *a, const struct ekmfs_audit_event *ev)
{
	json_object *body;
	int ret;

	if (!a)
		return 0;
	body = build_body(ev);
	if (!body)
		return -ENOMEM;
	ret = append_body(a, body);
	json_object_put(body);
	return ret;
}

/* ---- 6. the asynchronous writer ---- */

static void report_failure(struct ekmfs_audit *a, int ret)
{
	if (ret && ret != a->last_err)
		ekmfs_log(EKMFS_LOG_ERR, "audit: record not written, carrying on: %s",
			  ekmfs_lasterr()[0] ? ekmfs_lasterr() : strerror(-ret));
	else if (!ret && a->last_err)
		ekmfs_log(EKMFS_LOG_INFO, "audit: log %s written again", a->log);
	a->last_err = ret;
}

static void *writer_main(void *arg)
{
	struct ekmfs_audit *a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		json_object *body;
		uint64_t dropped;
		int ret;

		while (!a->qlen && !a->quit)
			pthread_cond_wait(&a->cv, &a->mu);
		if (!a->qlen && a->quit)
			break;
		body = a->queue[a->qhead];
		a->qhead = (a->qhead + 1) % QUEUE_MAX;
		a->qlen--;
		dropped = a->qlen == 0 ? a->dropped : 0;
		a->dropped -= dropped;
		a->busy = true;
		pthread_mutex_unlock(&a->mu);

		ekmfs_clearerr();
		ret = append_body(a, body);
		json_object_put(body);
		if (!ret && dropped) {
			struct ekmfs_audit_event ev = EKMFS_AUDIT_EVENT_INIT;
			json_object *d = json_object_new_object();

			ev.event = "audit_events_dropped";
			ev.outcome = "failure";
			ev.reason = "more events than the audit rate limit or queue allows";
			json_object_object_add(d, "count", json_object_new_int64((int64_t)dropped));
			ev.details = d;
			ret = ekmfs_audit_write(a, &ev);
			json_object_put(d);
		}
		report_failure(a, ret);

		pthread_mutex_lock(&a->mu);
		a->busy = false;
		if (!a->qlen)
			pthread_cond_broadcast(&a->idle_cv);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int ekmfs_audit_start_async(struct ekmfs_audit *a, unsigned rate)
{
	int ret;

	a->rate = rate ? rate : 1;
	a->tokens = 5.0 * a->rate;
	clock_gettime(CLOCK_MONOTONIC, &a->last_refill);
	ret = pthread_create(&a->thread, NULL, writer_main, a);
	if (ret)
		return -ret;
	a->async = true;
	return 0;
}

/* Token bucket: rate per second, burst 5 * rate. Caller holds a->mu. */
static bool take_token(struct ekmfs_audit *a)
{
	struct timespec now;
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - a->last_refill.tv_sec) +
	     (double)(now.tv_nsec - a->last_refill.tv_nsec) / 1e9;
	a->last_refill = now;
	a->tokens += dt * a->rate;
	if (a->tokens > 5.0 * a->rate)
		a->tokens = 5.0 * a->rate;
	if (a->tokens < 1.0)
		return false;
	a->tokens -= 1.0;
	return true;
}

void ekmfs_audit_post(struct ekmfs_audit *a, const struct ekmfs_audit_event *ev)
{
	json_object *body;

	if (!a)
		return;
	if (!a->async) {
		report_failure(a, ekmfs_audit_write(a, ev));
		return;
	}
	body = build_body(ev);
	pthread_mutex_lock(&a->mu);
	if (!body || a->qlen == QUEUE_MAX || !take_token(a)) {
		a->dropped++;
		pthread_mutex_unlock(&a->mu);
		json_object_put(body);
		return;
	}
	a->queue[(a->qhead + a->qlen) % QUEUE_MAX] = body;
	a->qlen++;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void ekmfs_audit_flush(struct ekmfs_audit *a)
{
	if (!a || !a->async)
		return;
	pthread_mutex_lock(&a->mu);
	while (a->qlen || a->busy)
		pthread_cond_wait(&a->idle_cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
}

void ekmfs_audit_close(struct ekmfs_audit *a)
{
	if (!a)
		return;
	if (a->async) {
		pthread_mutex_lock(&a->mu);
		a->quit = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
		if (a->dropped)
			ekmfs_log(EKMFS_LOG_WARN, "audit: %llu events dropped (rate limit)",
				  (unsigned long long)a->dropped);
	}
	ekmfs_secure_free(a->key, EKMFS_AUDIT_MAC_SIZE);
	pthread_cond_destroy(&a->idle_cv);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* ---- 7. verification ---- */

static int bad(struct ekmfs_audit_report *rep, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct ekmfs_audit_report *rep, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	rep->bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(rep->why, sizeof(rep->why), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

struct chain {
	uint8_t prev[EKMFS_AUDIT_MAC_SIZE];
	uint64_t expect;
	struct head head;
	bool head_seen;                 /* the record at head.seq matched it */
};

static int verify_line(struct ekmfs_audit *a, struct chain *ch, const char *file,
		       unsigned long lineno, char *line, size_t len,
		       struct ekmfs_audit_report *rep)
{
	struct parsed p;
	uint8_t mac[EKMFS_AUDIT_MAC_SIZE];
	int ret;

	ret = parse_line(line, len, &p);
	if (ret == -ENOMEM)
		return ret;
	if (ret)
		return bad(rep, ch->expect, "%s:%lu: not an audit record (edited or inserted "
			   "text) where seq %llu was expected", file, lineno,
			   (unsigned long long)ch->expect);
	if (p.seq != ch->expect) {
		if (ch->expect == 1)
			ret = bad(rep, 1, "%s:%lu: the log starts at seq %llu, not 1: earlier "
				  "records are missing (deleted, or in a rotated file: pass "
				  "it first with --log)", file, lineno,
				  (unsigned long long)p.seq);
		else
			ret = bad(rep, ch->expect, "%s:%lu: seq %llu where seq %llu was expected "
				  "(records deleted, reordered or inserted)", file, lineno,
				  (unsigned long long)p.seq, (unsigned long long)ch->expect);
		goto out;
	}
	ret = mac3(a->key, RECORD_LABEL, ch->prev, sizeof(ch->prev), p.c, p.clen, mac);
	if (ret)
		goto out;
	if (CRYPTO_memcmp(mac, p.mac, sizeof(mac)) != 0) {
		ret = bad(rep, p.seq, "%s:%lu: seq %llu: MAC mismatch (record edited, moved, "
			  "or not written by ekmfs)", file, lineno, (unsigned long long)p.seq);
		goto out;
	}
	if (p.seq == ch->head.seq) {
		if (CRYPTO_memcmp(mac, ch->head.mac, sizeof(mac)) != 0) {
			ret = bad(rep, p.seq, "seq %llu does not match the chain head (the log "
				  "was replaced, or the head rolled back)",
				  (unsigned long long)p.seq);
			goto out;
		}
		ch->head_seen = true;
	}
	memcpy(ch->prev, mac, sizeof(mac));
	ch->expect++;
	rep->records++;
out:
	free(p.c);
	return ret;
}

int ekmfs_audit_verify(struct ekmfs_audit *a, const char *const *logs, size_t nlogs,
		       struct ekmfs_audit_report *rep)
{
	struct chain ch = { .expect = 1 };
	const char *def[1] = { a->log };
	char *line = NULL;
	size_t cap = 0;
	uint64_t last;
	int ret;

	memset(rep, 0, sizeof(*rep));
	if (!nlogs) {
		logs = def;
		nlogs = 1;
	}
	ret = head_read(a->backing_fd, a->vol.volume_id, a->key, &ch.head);
	if (ret == -ENOENT || ret == -EBADMSG)
		return bad(rep, 0, "%s", ekmfs_lasterr());
	if (ret)
		return ret;
	rep->head_seq = ch.head.seq;
	for (size_t i = 0; i < nlogs && !ret; i++) {
		FILE *f = fopen(logs[i], "re");
		unsigned long lineno = 0;
		ssize_t n;

		if (!f) {
			ret = -errno;
			ekmfs_seterr("cannot read the audit log %s: %s", logs[i], strerror(errno));
			break;
		}
		while (!ret && (n = getline(&line, &cap, f)) > 0) {
			lineno++;
			if (line[n - 1] != '\n') {
				/* Torn by a crash mid-write, never part of the chain
				 * (the next writer cuts it off). */
				if (i + 1 == nlogs)
					break;
				ret = bad(rep, ch.expect, "%s:%lu: incomplete line", logs[i],
					  lineno);
				break;
			}
			line[--n] = '\0';
			ret = verify_line(a, &ch, logs[i], lineno, line, (size_t)n, rep);
		}
		fclose(f);
	}
	free(line);
	if (ret)
		return ret;
	last = ch.expect - 1;
	if (ch.head.seq > last)
		return bad(rep, last + 1, "the log ends at seq %llu but the chain head says "
			   "%llu: records %llu..%llu were cut off (truncated)",
			   (unsigned long long)last, (unsigned long long)ch.head.seq,
			   (unsigned long long)last + 1, (unsigned long long)ch.head.seq);
	if (ch.head.seq == 0 && last > 0)
		return bad(rep, 1, "the chain head says the log is empty but it has %llu "
			   "records (head rolled back?)", (unsigned long long)last);
	/* One record past the head: a writer crashed between the two writes;
	 * the record's MAC chains, and the next writer moves the head up. */
	if (last > ch.head.seq + 1 || (ch.head.seq && !ch.head_seen))
		return bad(rep, ch.head.seq + 1, "the chain head (seq %llu) is behind the log "
			   "(seq %llu): the head was rolled back",
			   (unsigned long long)ch.head.seq, (unsigned long long)last);
	return 0;
}
