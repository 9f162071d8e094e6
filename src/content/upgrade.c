/*
 * upgrade.c - converting a version 1 file to version 2 in place.
 *
 * Owns: docs/FORMAT.md, "Upgrading from version 1". Every block changes
 * size (a 24-byte XAES nonce instead of 12 bytes), so the content is
 * sealed again; the DEK and file id stay, so nothing that refers to the
 * file changes (its key slots are wrapped again for the v2 prefix by the
 * caller). The file keeps its inode, names, owner, mode and extended
 * attributes; only its mtime and ctime move (the caller puts mtime back).
 *
 * Crash safety: before the file is touched, a backup holding the v2
 * header sector and every byte of the v1 file is made durable as
 * BACKING/.ekmfs/journal/<file id>.v1. The conversion reads only the
 * backup, so a crash at any point leaves a backup that converts the file
 * again (content_upgrade_resume, from load); the backup is removed once
 * the converted file is durable.
 *
 * Divisions: names / the backup / converting from the backup / resume.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/aead.h"
#include "ekmfs/io.h"
#include "ekmfs/secmem.h"
#include "ekmfs/util.h"
#include "private.h"

/* ---- names ---- */

static void backup_name(const uint8_t file_id[EKMFS_FILE_ID_SIZE], bool tmp, char *out,
			size_t len)
{
	char hex[2 * EKMFS_FILE_ID_SIZE + 1];

	ekmfs_hex(file_id, EKMFS_FILE_ID_SIZE, hex);
	snprintf(out, len, "%s.v1%s", hex, tmp ? ".tmp" : "");
}

/* ---- the backup ---- */

/* backup = v2 header sector 0 (512 bytes) ‖ the v1 file, made durable
 * under its final name. Returns its descriptor or -errno. */
/* Every block of the v1 copy in bfd (after its v2 sector) opens: a file
 * with a damaged block is refused before anything of it changes. */
static int check_v1(struct ekmfs_content *c, int bfd, uint64_t v1_bytes)
{
	const struct ekmfs_layout *v1 = &ekmfs_layout_v1;
	uint8_t *in = malloc(EKMFS_CBLOCK_SIZE_V1), *pt = ekmfs_secure_alloc(EKMFS_BLOCK_SIZE);
	uint64_t size, nb;
	int rc = 0;

	if (!in || !pt) {
		rc = -ENOMEM;
		goto out;
	}
	if (ekmfs_plain_size(v1, v1_bytes, &size) < 0) {
		ekmfs_seterr("the version 1 file has an impossible size %llu (cut short)",
			     (unsigned long long)v1_bytes);
		rc = -EBADMSG;
		goto out;
	}
	nb = ekmfs_nblocks(size);
	for (uint64_t i = 0; i < nb && rc == 0; i++) {
		uint64_t len = ekmfs_block_len(size, i) + v1->overhead;

		if (ekmfs_read_full(bfd, in, len, (off_t)(EKMFS_HEADER_PARSE_SIZE +
							   ekmfs_block_offset(v1, i))) !=
			    (ssize_t)len ||
		    ekmfs_block_open(v1, c->k->dek, c->file_id, i, in, len, pt) < 0) {
			content_report_bad(i, NULL, "authentication failed in the version 1 file "
					   "(tampered or corrupt): not converted");
			rc = -EIO;
		}
	}
out:
	free(in);
	ekmfs_secure_free(pt, EKMFS_BLOCK_SIZE);
	return rc;
}

static int make_backup(struct ekmfs_content *c, const struct ekmfs_header *h)
{
	uint8_t sector[EKMFS_HEADER_PARSE_SIZE], *buf = malloc(1u << 20);
	char tmp[64], name[64];
	uint64_t off = 0;
	int bfd = -1, rc = 0;

	backup_name(c->file_id, true, tmp, sizeof(tmp));
	backup_name(c->file_id, false, name, sizeof(name));
	if (!buf)
		return -ENOMEM;
	bfd = ekmfs_io->openat(c->env.journal_dir, tmp,
			       O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (bfd < 0) {
		rc = -errno;
		goto out;
	}
	ekmfs_header_serialize(h, sector);
	rc = ekmfs_write_full(bfd, sector, sizeof(sector), 0);
	while (rc == 0) {
		ssize_t n = ekmfs_read_full(c->fd, buf, 1u << 20, (off_t)off);

		if (n <= 0) {
			rc = (int)n;
			break;
		}
		rc = ekmfs_write_full(bfd, buf, (size_t)n, (off_t)(sizeof(sector) + off));
		off += (uint64_t)n;
	}
	if (rc == 0)
		rc = check_v1(c, bfd, off);
	if (rc == 0 && ekmfs_io->fdatasync(bfd) < 0)
		rc = -errno;
	if (rc == 0 && ekmfs_io->renameat2(c->env.journal_dir, tmp, c->env.journal_dir, name, 0) < 0)
		rc = -errno;
	if (rc == 0 && ekmfs_io->fsync(c->env.journal_dir) < 0)
		rc = -errno;
out:
	free(buf);
	if (rc < 0) {
		if (rc != -EIO && rc != -EBADMSG)
			ekmfs_seterr("making the backup for the upgrade: %s", strerror(-rc));
		if (bfd >= 0)
			close(bfd);
		(void)ekmfs_io->unlinkat(c->env.journal_dir, tmp, 0);
		return rc;
	}
	return bfd;
}

/* ---- converting from the backup ---- */

/*
 * Write the v2 file from the backup in bfd: its header sector, two state
 * records of the v1 plaintext size, and every block opened with the DEK
 * (v1: AES-256-GCM) and sealed again (v2: XAES-256-GCM under a new salt).
 * c becomes a loaded v2 file at rest.
 */
static int convert(struct ekmfs_content *c, int bfd)
{
	const struct ekmfs_layout *v1 = &ekmfs_layout_v1, *v2 = &ekmfs_layout_v2;
	uint8_t sector[EKMFS_HEADER_PARSE_SIZE], nonce[EKMFS_BLOCK_NONCE_V2];
	uint8_t key[EKMFS_KEY_SIZE], salt[EKMFS_XAES_SALT_SIZE];
	uint8_t *in = malloc(EKMFS_CBLOCK_SIZE_V1), *out = malloc(EKMFS_CBLOCK_SIZE_V2);
	uint8_t *pt = ekmfs_secure_alloc(EKMFS_BLOCK_SIZE);
	struct ekmfs_header h;
	struct stat st;
	uint64_t size, nb;
	int rc;

	if (!in || !out || !pt) {
		rc = -ENOMEM;
		goto out;
	}
	if (fstat(bfd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (ekmfs_read_full(bfd, sector, sizeof(sector), 0) != (ssize_t)sizeof(sector) ||
	    ekmfs_header_parse(sector, sizeof(sector), &h) < 0 || h.version != EKMFS_FORMAT_V2 ||
	    memcmp(h.file_id, c->file_id, EKMFS_FILE_ID_SIZE) != 0 ||
	    ekmfs_plain_size(v1, (uint64_t)st.st_size - sizeof(sector), &size) < 0) {
		ekmfs_seterr("the upgrade backup of this file is not usable");
		rc = -EBADMSG;
		goto out;
	}
	/* Now a v2 file: its state key, and a fresh salt for its blocks. */
	c->l = v2;
	rc = ekmfs_state_key(c->k->dek, c->k->state);
	if (rc == 0)
		rc = content_write_key(c, 0, true, key, salt);
	if (rc < 0)
		goto out;
	memset(&c->cur, 0, sizeof(c->cur));
	c->cur.size = size;
	(void)ekmfs_state_add_salt(&c->cur, salt);
	nb = ekmfs_nblocks(size);
	for (uint64_t i = 0; i < nb && rc == 0; i++) {
		uint64_t len = ekmfs_block_len(size, i);
		struct ekmfs_aead_session *s;

		if (c->wcount + 1 > CONTENT_SALT_BLOCKS) {
			rc = content_write_key(c, 1, true, key, salt);
			if (rc == 0 && ekmfs_state_add_salt(&c->cur, salt) == -ENOSPC) {
				memmove(c->cur.salts[0], c->cur.salts[1],
					(EKMFS_STATE_SALTS - 1) * EKMFS_STATE_SALT_SIZE);
				c->cur.nsalts--;
				(void)ekmfs_state_add_salt(&c->cur, salt);
			}
		} else {
			c->wcount++;
		}
		if (rc)
			break;
		if (ekmfs_read_full(bfd, in, len + v1->overhead,
				    (off_t)(sizeof(sector) + ekmfs_block_offset(v1, i))) !=
			    (ssize_t)(len + v1->overhead) ||
		    ekmfs_block_open(v1, c->k->dek, c->file_id, i, in, len + v1->overhead, pt) < 0) {
			content_report_bad(i, NULL, "authentication failed in the version 1 file (tampered or corrupt)");
			rc = -EIO;
			break;
		}
		memcpy(nonce, salt, EKMFS_XAES_SALT_SIZE);
		rc = ekmfs_random(nonce + EKMFS_XAES_SALT_SIZE, sizeof(nonce) - EKMFS_XAES_SALT_SIZE);
		s = rc == 0 ? ekmfs_aead_begin(key) : NULL;
		rc = s ? ekmfs_block_seal_s(v2, s, c->file_id, i, nonce, pt, len, out) : -EIO;
		ekmfs_aead_end(s);
		ekmfs_wipe(pt, EKMFS_BLOCK_SIZE);
		if (rc == 0)
			rc = ekmfs_write_full(c->fd, out, len + v2->overhead,
					      (off_t)ekmfs_block_offset(v2, i));
	}
	if (rc == 0 && ekmfs_io->ftruncate(c->fd, (off_t)ekmfs_backing_size(v2, size)) < 0)
		rc = -errno;
	if (rc == 0)
		rc = ekmfs_write_full(c->fd, sector, sizeof(sector), 0);
	if (rc == 0) {
		c->seq = 0;
		c->dur_slot = 0;
		rc = content_write_state(c, true);
	}
	if (rc == 0 && ekmfs_io->fsync(c->fd) < 0)
		rc = -errno;
	if (rc < 0)
		goto out;
	c->phys = ekmfs_backing_size(v2, size);
	c->dur = c->cur;
	c->unequal = false;
	content_salts_fresh(c);
out:
	ekmfs_wipe(key, sizeof(key));
	ekmfs_wipe(&h, sizeof(h));
	free(in);
	free(out);
	ekmfs_secure_free(pt, EKMFS_BLOCK_SIZE);
	return rc;
}

static int finish(struct ekmfs_content *c, int bfd)
{
	char name[64];
	int rc = convert(c, bfd);

	close(bfd);
	if (rc < 0)
		return rc;
	backup_name(c->file_id, false, name, sizeof(name));
	(void)ekmfs_io->unlinkat(c->env.journal_dir, name, 0);
	return 0;
}

int ekmfs_content_upgrade(struct ekmfs_content *c, const struct ekmfs_header *h)
{
	int bfd;

	if (c->l->version == EKMFS_FORMAT_V2)
		return 0;
	if (c->env.journal_dir < 0) {
		ekmfs_seterr("no journal directory for the upgrade backup");
		return -EROFS;
	}
	if (h->version != EKMFS_FORMAT_V2 ||
	    memcmp(h->file_id, c->file_id, EKMFS_FILE_ID_SIZE) != 0)
		return -EINVAL;
	bfd = make_backup(c, h);
	if (bfd < 0)
		return bfd;
	return finish(c, bfd);
}

/* ---- resume ---- */

int content_upgrade_resume(struct ekmfs_content *c)
{
	char name[64];
	int bfd;

	if (c->env.journal_dir < 0)
		return 0;
	backup_name(c->file_id, false, name, sizeof(name));
	bfd = openat(c->env.journal_dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (bfd < 0)
		return errno == ENOENT ? 0 : -errno;
	return finish(c, bfd) < 0 ? -EIO : 1;
}
