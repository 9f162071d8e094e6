/*
 * util.h - logging, the one-line error message, and small helpers.
 *
 * Owns: the process-wide log sink (stderr, syslog or a log file), the
 * thread-local "last error" text that library calls fill in when they return
 * -errno, time and hex/base64 helpers and growing arrays shared by every
 * module.
 *
 * Convention: a library function that fails returns -errno and, where a human
 * needs to know more than strerror() says, sets the last error with
 * ekmfs_seterr(). Tools print ekmfs_lasterr() as their one-line message.
 */
#ifndef EKMFS_UTIL_H
#define EKMFS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>

#define EKMFS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum ekmfs_log_level { EKMFS_LOG_ERR, EKMFS_LOG_WARN, EKMFS_LOG_INFO, EKMFS_LOG_DEBUG };

/* Send log lines to syslog (after the daemon detaches) instead of stderr,
 * if a syslog daemon listens on /dev/log: 0. Otherwise -ENOENT, and lines
 * keep going to stderr. */
int ekmfs_log_use_syslog(const char *ident);
/* Send log lines to the file path (appended; created 0600), one line each:
 * "2026-12-04T10:00:00.123Z IDENT[PID] LEVEL: message". Called again,
 * it reopens (log rotation) or moves to another path; on failure the sink
 * in use stays. 0 or -errno with ekmfs_lasterr(). */
int ekmfs_log_use_file(const char *ident, const char *path);
void ekmfs_log_set_level(enum ekmfs_log_level level);
void ekmfs_log(enum ekmfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Thread-local one-line description of the last failure. */
void ekmfs_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *ekmfs_lasterr(void);
void ekmfs_clearerr(void);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void ekmfs_hex(const uint8_t *in, size_t len, char *out);
/* Value of one hex digit (either case), or -1. */
int ekmfs_hexval(char c);
/* Parse exactly 2*len hex digits; 0 or -EINVAL. */
int ekmfs_unhex(const char *in, uint8_t *out, size_t len);

/* Standard base64 with padding. encode: out needs 4*ceil(len/3)+1 bytes. */
void ekmfs_b64_encode(const uint8_t *in, size_t len, char *out);
/* Decode into out (capacity cap); whitespace around the text is ignored.
 * Returns the decoded length or -EINVAL. */
long ekmfs_b64_decode(const char *in, uint8_t *out, size_t cap);

/* Room for one more item in an array of n items of size bytes, capacity
 * *cap: items itself while n < *cap, else the array grown to twice its
 * capacity (first when it has none) with *cap updated; NULL when that
 * fails, and items is then unchanged and still valid. */
void *ekmfs_grow(void *items, size_t *cap, size_t n, size_t size, size_t first);

/* *until = now + ms on CLOCK_REALTIME: the deadline pthread_cond_timedwait
 * takes (a condition variable's default clock). */
void ekmfs_deadline_ms(struct timespec *until, long ms);

/* RFC 3339 UTC ("2026-11-22T23:01:11Z") of t into out (>= 21 bytes). */
void ekmfs_time_rfc3339(time_t t, char *out, size_t outlen);
/* Parse a point in time: an RFC 3339 date-time YYYY-MM-DDTHH:MM[:SS[.frac]]
 * ending in Z or an offset +HH:MM / -HH:MM ('t' or ' ' may stand for 'T',
 * 'z' for 'Z'; seconds may be left out, fractions are dropped), or, with
 * EKMFS_TIME_DATE, also a date alone YYYY-MM-DD meaning 00:00 UTC. Dates
 * that do not exist (2026-02-30, 2027-02-29, 24:00) and years before 1970
 * are refused. 0 or -EINVAL; *why (why may be NULL) names the problem in a
 * few words ("no such date or time", ...). */
enum { EKMFS_TIME_DATE = 1 };
int ekmfs_time_parse(const char *s, unsigned flags, time_t *t, const char **why);
/* ekmfs_time_parse without the date-only form: stored timestamps. */
int ekmfs_time_parse_rfc3339(const char *s, time_t *t);

#endif
