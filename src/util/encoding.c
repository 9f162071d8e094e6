/*
 * encoding.c - hex, base64 and RFC 3339 time: the text forms used by the
 * keyring, the tools' output and the audit trail.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
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

/* Digits of a fixed width at *p, advanced past them; -1 if not digits. */
static int fixed_digits(const char **p, int width)
{
	int n = 0;

	for (int i = 0; i < width; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		n = n * 10 + ((*p)[i] - '0');
	}
	*p += width;
	return n;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The one parser of points in time for configuration, command lines and
 * stored records: the date checks live here only. */
int ekmfs_time_parse(const char *s, unsigned flags, time_t *t, const char **why)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *bad = flags & EKMFS_TIME_DATE ?
		"not a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS] with Z or +HH:MM" :
		"not a time YYYY-MM-DDTHH:MM[:SS] with Z or +HH:MM";
	const char *p = s, *reason = bad;
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
	time_t v;

	y = fixed_digits(&p, 4);
	if (y < 0 || *p++ != '-' || (mo = fixed_digits(&p, 2)) < 0 || *p++ != '-' ||
	    (d = fixed_digits(&p, 2)) < 0)
		goto fail;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if ((h = fixed_digits(&p, 2)) < 0 || *p++ != ':' || (mi = fixed_digits(&p, 2)) < 0)
			goto fail;
		if (*p == ':') {
			p++;
			if ((sec = fixed_digits(&p, 2)) < 0)
				goto fail;
			if (*p == '.') {        /* fractional seconds: dropped */
				if (!isdigit((unsigned char)*++p))
					goto fail;
				while (isdigit((unsigned char)*p))
					p++;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om;

			if ((oh = fixed_digits(&p, 2)) < 0 || *p++ != ':' ||
			    (om = fixed_digits(&p, 2)) < 0 || oh > 23 || om > 59)
				goto fail;
			off = sign * (oh * 3600 + om * 60);
		} else {
			reason = "a time needs its zone: end it with Z or +HH:MM";
			goto fail;
		}
	} else if (!(flags & EKMFS_TIME_DATE)) {
		goto fail;
	}
	if (*p != '\0')
		goto fail;
	reason = "no such date or time";
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && leap_year(y)) || h > 23 || mi > 59 || sec > 60)
		goto fail;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	v = timegm(&tm);
	if (v == (time_t)-1)
		goto fail;
	*t = v - off;
	return 0;
fail:
	if (why)
		*why = reason;
	return -EINVAL;
}

int ekmfs_time_parse_rfc3339(const char *s, time_t *t)
{
	return ekmfs_time_parse(s, 0, t, NULL);
}
