/*
 * test_aead.c - AES-256-GCM (src/crypto/aead.c) against published vectors.
 *
 * Vectors: D. McGrew and J. Viega, "The Galois/Counter Mode of Operation
 * (GCM)", revised 2005, Appendix B, test cases 13, 14, 15 and 16 (AES-256,
 * 96-bit IVs); the same values appear in NIST's gcmEncryptExtIV256 set.
 * Every byte was re-checked against python3-cryptography's AESGCM before it
 * was written here; tests/vectors/gen_format_vectors.py re-checks them with
 * that library each time it runs.
 *
 * XAES-256-GCM: the two test vectors of the C2SP specification
 * (https://c2sp.org/XAES-256-GCM, "Test vectors"), with its intermediate
 * derived keys Kx, one with MSB(L) = 0 and one with MSB(L) = 1.
 *
 * Divisions: the vectors, seal/open of each, failure cases (tag, AAD,
 * ciphertext, nonce altered -> -EBADMSG and the output wiped), in-place use,
 * XAES-256-GCM.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ekmfs/aead.h"

struct gcm_vector {
	const char *name, *key, *iv, *aad, *pt, *ct, *tag;
};

#define K15 "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
#define IV15 "cafebabefacedbaddecaf888"
#define P15_60                                                             \
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" \
	"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define C15_60                                                             \
	"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" \
	"8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"

static const struct gcm_vector vectors[] = {
	{ "test case 13", "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
	{ "test case 14", "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "", "00000000000000000000000000000000",
	  "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919" },
	{ "test case 15", K15, IV15, "", P15_60 "1aafd255", C15_60 "898015ad",
	  "b094dac5d93471bdec1a502270e3cc6c" },
	{ "test case 16", K15, IV15, "feedfacedeadbeeffeedfacedeadbeefabaddad2", P15_60, C15_60,
	  "76fc6ece0f4e1768cddf8853bb2d551b" },
};

struct decoded {
	uint8_t key[32], iv[12], aad[64], pt[64], ct[64], tag[16];
	size_t aad_len, pt_len, ct_len;
};

static void decode(const struct gcm_vector *v, struct decoded *d)
{
	memset(d, 0, sizeof(*d));
	CHECK_EQ_INT(check_unhex(v->key, d->key, sizeof(d->key)), 32);
	CHECK_EQ_INT(check_unhex(v->iv, d->iv, sizeof(d->iv)), 12);
	CHECK_EQ_INT(check_unhex(v->tag, d->tag, sizeof(d->tag)), 16);
	d->aad_len = check_unhex(v->aad, d->aad, sizeof(d->aad));
	d->pt_len = check_unhex(v->pt, d->pt, sizeof(d->pt));
	d->ct_len = check_unhex(v->ct, d->ct, sizeof(d->ct));
	CHECK_EQ_INT(d->pt_len, d->ct_len);
}

static void test_seal_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		struct decoded d;
		uint8_t ct[64], tag[16];

		decode(&vectors[i], &d);
		memset(ct, 0xaa, sizeof(ct));
		CHECK_EQ_INT(ekmfs_aead_seal(d.key, d.iv, d.aad, d.aad_len, d.pt, d.pt_len,
					     ct, tag), 0);
		if (memcmp(ct, d.ct, d.ct_len) != 0 || memcmp(tag, d.tag, 16) != 0)
			fprintf(stderr, "seal mismatch in %s\n", vectors[i].name);
		CHECK_MEM(ct, d.ct, d.ct_len);
		CHECK_MEM(tag, d.tag, 16);
	}
}

static void test_open_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		struct decoded d;
		uint8_t pt[64];

		decode(&vectors[i], &d);
		memset(pt, 0xaa, sizeof(pt));
		CHECK_EQ_INT(ekmfs_aead_open(d.key, d.iv, d.aad, d.aad_len, d.ct, d.ct_len,
					     d.tag, pt), 0);
		CHECK_MEM(pt, d.pt, d.pt_len);
	}
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Open test case 16 after altering one thing; expect -EBADMSG and a wiped
 * plaintext buffer. what: 0 tag, 1 aad, 2 ciphertext, 3 nonce, 4 key,
 * 5 aad dropped, 6 ciphertext shortened. */
static void open_altered(int what, int byte)
{
	struct decoded d;
	uint8_t pt[64];
	size_t aad_len, ct_len;

	decode(&vectors[3], &d);
	aad_len = d.aad_len;
	ct_len = d.ct_len;
	switch (what) {
	case 0: d.tag[byte % 16] ^= 0x01; break;
	case 1: d.aad[byte % d.aad_len] ^= 0x80; break;
	case 2: d.ct[byte % d.ct_len] ^= 0x10; break;
	case 3: d.iv[byte % 12] ^= 0x01; break;
	case 4: d.key[byte % 32] ^= 0x01; break;
	case 5: aad_len = 0; break;
	case 6: ct_len -= 1; break;
	}
	memset(pt, 0xaa, sizeof(pt));
	CHECK_EQ_INT(ekmfs_aead_open(d.key, d.iv, d.aad, aad_len, d.ct, ct_len, d.tag, pt),
		     -EBADMSG);
	CHECK(all_zero(pt, ct_len));
}

static void test_tampering_rejected(void)
{
	for (int what = 0; what <= 6; what++)
		for (int byte = 0; byte < 64; byte += 7)
			open_altered(what, byte);
}

static void test_in_place(void)
{
	struct decoded d;
	uint8_t buf[64], tag[16];

	decode(&vectors[2], &d);
	memcpy(buf, d.pt, d.pt_len);
	CHECK_EQ_INT(ekmfs_aead_seal(d.key, d.iv, NULL, 0, buf, d.pt_len, buf, tag), 0);
	CHECK_MEM(buf, d.ct, d.ct_len);
	CHECK_MEM(tag, d.tag, 16);
	CHECK_EQ_INT(ekmfs_aead_open(d.key, d.iv, NULL, 0, buf, d.ct_len, tag, buf), 0);
	CHECK_MEM(buf, d.pt, d.pt_len);
}

static void test_random(void)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };

	CHECK_EQ_INT(ekmfs_random(a, sizeof(a)), 0);
	CHECK_EQ_INT(ekmfs_random(b, sizeof(b)), 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(!all_zero(a, sizeof(a)));
}

/* C2SP XAES-256-GCM test vectors: key, AAD, derived key Kx, ciphertext ‖ tag
 * of the plaintext "XAES-256-GCM" under the nonce "ABCDEFGHIJKLMNOPQRSTUVWX". */
static const struct {
	uint8_t key_byte;
	const char *aad, *kx, *ct_tag;
} xaes_vectors[] = {
	{ 0x01, "", "c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b",
	  "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271" },
	{ 0x03, "c2sp.org/XAES-256-GCM",
	  "e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8",
	  "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d" },
};

static void test_xaes_vectors(void)
{
	static const uint8_t nonce[] = "ABCDEFGHIJKLMNOPQRSTUVWX";
	static const uint8_t pt[] = "XAES-256-GCM";
	const size_t len = sizeof(pt) - 1;

	for (size_t i = 0; i < sizeof(xaes_vectors) / sizeof(xaes_vectors[0]); i++) {
		uint8_t key[32], kx[32], want_kx[32], want[64], ct[16], tag[16], back[16];
		const uint8_t *aad = (const uint8_t *)xaes_vectors[i].aad;
		size_t aad_len = strlen(xaes_vectors[i].aad);

		memset(key, xaes_vectors[i].key_byte, sizeof(key));
		CHECK_EQ_INT(check_unhex(xaes_vectors[i].kx, want_kx, sizeof(want_kx)), 32);
		CHECK_EQ_INT(check_unhex(xaes_vectors[i].ct_tag, want, sizeof(want)),
			     (int)(len + 16));
		CHECK_EQ_INT(ekmfs_xaes_derive(key, nonce, kx), 0);
		CHECK_MEM(kx, want_kx, 32);
		CHECK_EQ_INT(ekmfs_xaes_seal(key, nonce, aad, aad_len, pt, len, ct, tag), 0);
		CHECK_MEM(ct, want, len);
		CHECK_MEM(tag, want + len, 16);
		CHECK_EQ_INT(ekmfs_xaes_open(key, nonce, aad, aad_len, want, len, want + len,
					     back), 0);
		CHECK_MEM(back, pt, len);
		/* The derived key with the GCM half of the nonce is plain AES-256-GCM. */
		CHECK_EQ_INT(ekmfs_aead_open(kx, nonce + 12, aad, aad_len, want, len, want + len,
					     back), 0);
		/* Any other salt, GCM nonce or tag is refused and wipes the output. */
		for (int which = 0; which < 3; which++) {
			uint8_t n2[24], t2[16];

			memcpy(n2, nonce, 24);
			memcpy(t2, want + len, 16);
			if (which == 0)
				n2[3] ^= 1;       /* salt: another derived key */
			else if (which == 1)
				n2[20] ^= 1;      /* GCM nonce */
			else
				t2[0] ^= 1;
			memset(back, 0x55, sizeof(back));
			CHECK_EQ_INT(ekmfs_xaes_open(key, n2, aad, aad_len, want, len, t2, back),
				     -EBADMSG);
			for (size_t k = 0; k < len; k++)
				CHECK(back[k] == 0);
		}
	}
}

int main(void)
{
	RUN(test_seal_vectors);
	RUN(test_open_vectors);
	RUN(test_tampering_rejected);
	RUN(test_in_place);
	RUN(test_random);
	RUN(test_xaes_vectors);
	return CHECK_DONE();
}
