/*
 * encoding.c - hex, base64 and RFC 3339 time: the text forms used by the
 * keyring, the tools' output and the audit trail.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "ekmfs/util.h"

void ekmfs_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int ekmfs_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ekmfs_unhex(const char *in, uint8_t *out, size_t len)
{
	if (strlen(in) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = ekmfs_hexval(in[2 * i]), lo = ekmfs_hexval(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void ekmfs_b64_encode(const uint8_t *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

long ekmfs_b64_decode(const char *in, uint8_t *out, size_t cap)
{
	size_t start = 0, end = strlen(in), len, pad = 0;
	uint8_t *tmp;
	int n;

	while (start < end && isspace((unsigned char)in[start]))
		start++;
	while (end > start && isspace((unsigned char)in[end - 1]))
		end--;
	len = end - start;
	if (len == 0 || len % 4 != 0)
		return -EINVAL;
	for (size_t i = start; i < end; i++) {
		char c = in[i];

		if (!(isalnum((unsigned char)c) || c == '+' || c == '/' || c == '='))
			return -EINVAL;
		/* '=' only as the last one or two characters */
		if (c == '=' && i < end - 2)
			return -EINVAL;
	}
	if (in[end - 1] == '=')
		pad++;
	if (in[end - 2] == '=')
		pad++;
	if (pad == 1 && in[end - 2] == '=')
		return -EINVAL;
	if (len / 4 * 3 - pad > cap)
		return -EINVAL;
	/* EVP_DecodeBlock writes whole groups of three, padding included. */
	tmp = OPENSSL_malloc(len / 4 * 3 + 1);
	if (!tmp)
		return -ENOMEM;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in + start, (int)len);
	if (n < 0) {
		OPENSSL_clear_free(tmp, len / 4 * 3 + 1);
		return -EINVAL;
	}
	n -= (int)pad;
	memcpy(out, tmp, (size_t)n);
	OPENSSL_clear_free(tmp, len / 4 * 3 + 1);
	return n;
}

void ekmfs_time_rfc3339(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ekmfs_time_parse_rfc3339(const char *s, time_t *t)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

	if (!end)
		return -EINVAL;
	if (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)
		return -EINVAL;
	*t = timegm(&tm);
	return 0;
}
