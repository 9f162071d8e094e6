/*
 * metrics.c - the daemon's counters and their Prometheus text file
 * (metrics.h).
 *
 * Divisions: the counters (relaxed atomics: a scrape needs no consistent
 * snapshot across counters, and the data path must not take a lock for
 * them); rendering in the Prometheus text exposition format, version 0.0.4;
 * the atomic file replacement.
 *
 * Why a file and not an HTTP endpoint: the node exporter's textfile
 * collector (and any cron job) reads it, it needs no listening socket in a
 * daemon that holds keys, and its permissions are those of the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekmfs/keys.h"
#include "ekmfs/util.h"
#include "fs.h"
#include "metrics.h"

/* ---- counters ---- */

static struct {
	uint64_t reads, read_bytes, read_errors;
	uint64_t writes, write_bytes, write_errors;
	uint64_t auth_failures;
	int64_t open_files;
	uint64_t reloads, reload_failures;
} m;

static struct timespec started_mono;
static time_t started_wall;

static void add(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static uint64_t get(uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

void efs_metrics_read(int err, size_t bytes)
{
	add(&m.reads, 1);
	if (err)
		add(&m.read_errors, 1);
	else
		add(&m.read_bytes, bytes);
}

void efs_metrics_write(int err, size_t bytes)
{
	add(&m.writes, 1);
	if (err)
		add(&m.write_errors, 1);
	else
		add(&m.write_bytes, bytes);
}

void efs_metrics_auth_failure(void)
{
	add(&m.auth_failures, 1);
}

void efs_metrics_open_files(int delta)
{
	__atomic_fetch_add(&m.open_files, delta, __ATOMIC_RELAXED);
}

void efs_metrics_reload(int ok)
{
	add(ok ? &m.reloads : &m.reload_failures, 1);
}

void efs_metrics_start(void)
{
	clock_gettime(CLOCK_MONOTONIC, &started_mono);
	started_wall = time(NULL);
}

/* ---- rendering ---- */

struct out {
	char *buf;
	size_t len, pos;
	bool full;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->pos)
		o->full = true;
	else
		o->pos += (size_t)n;
}

/* One metric without labels: HELP, TYPE and the sample. */
static void metric(struct out *o, const char *name, const char *type, const char *help,
		   uint64_t value)
{
	emit(o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
	     name, value);
}

/* The progress ekmfs-rotate publishes while it re-wraps (a manual run or
 * the daemon's scheduled one); a file left by a killed run is ignored. */
static void rotation_progress(struct efs_data *fs, struct out *o)
{
	char path[PATH_MAX + 64], line[256];
	unsigned long long done = 0, total = 0;
	long pid = 0;
	bool running = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", fs->backing, EKMFS_META_DIR,
		 EKMFS_ROTATE_PROGRESS_FILE);
	f = fopen(path, "re");
	if (f) {
		if (fgets(line, sizeof(line), f) &&
		    sscanf(line, "%ld %llu %llu", &pid, &done, &total) == 3 && pid > 0 &&
		    (kill((pid_t)pid, 0) == 0 || errno == EPERM))
			running = true;
		fclose(f);
	}
	if (!running)
		done = total = 0;
	metric(o, "ekmfs_rotation_running", "gauge",
	       "1 while an ekmfs-rotate pass re-wraps this volume's headers.", running);
	metric(o, "ekmfs_rotation_files_done", "gauge",
	       "Files the running rotation pass has handled.", done);
	metric(o, "ekmfs_rotation_files_total", "gauge",
	       "Files the running rotation pass will handle.", total);
}

/* The inode table and the descriptors it costs (fdcache.c, inode.c). */
static void inode_metrics(struct efs_data *fs, struct out *o)
{
	struct efs_table_stats ts;
	struct efs_fdcache_stats fc;
	long fds = efs_fd_count(), limit = efs_fd_limit();

	efs_table_stats(fs, &ts);
	efs_fdcache_stats(fs, &fc);
	metric(o, "ekmfs_inodes", "gauge", "Inodes the kernel holds (looked up, not forgotten).",
	       ts.inodes);
	metric(o, "ekmfs_inode_states", "gauge",
	       "Inodes with an in-use state (open, or inside an operation).", ts.states);
	metric(o, "ekmfs_inode_bytes", "gauge",
	       "Heap bytes of the inode table (inodes and hash buckets).", ts.bytes);
	metric(o, "ekmfs_inode_file_handles", "gauge",
	       "1 when inodes are named by file handles, 0 when each keeps a descriptor.",
	       ts.handles);
	metric(o, "ekmfs_descriptors", "gauge", "Descriptors the daemon holds.",
	       fds < 0 ? 0 : (uint64_t)fds);
	metric(o, "ekmfs_descriptor_limit", "gauge", "The daemon's soft RLIMIT_NOFILE.",
	       limit < 0 ? 0 : (uint64_t)limit);
	metric(o, "ekmfs_inode_descriptors", "gauge",
	       "Descriptors held for inodes (cached, in use or kept).", fc.held);
	metric(o, "ekmfs_inode_descriptors_kept", "gauge",
	       "Inode descriptors kept for good (no file handle, or deleted while held).",
	       fc.kept);
	metric(o, "ekmfs_inode_descriptor_cache_limit", "gauge",
	       "Idle inode descriptors the cache keeps at most.", fc.limit);
	metric(o, "ekmfs_inode_descriptor_evictions_total", "counter",
	       "Idle inode descriptors closed to keep the cache at its limit.", fc.evictions);
	metric(o, "ekmfs_inode_descriptor_misses_total", "counter",
	       "Uses of an inode that had to open it by its file handle.", fc.misses);
	metric(o, "ekmfs_inode_lookups_refused_total", "counter",
	       "New inodes refused (ENFILE): no file handles and the descriptor budget spent.",
	       fc.refused);
	if (fs->shared)
		metric(o, "ekmfs_lease_recalls_total", "counter",
		       "Shared mode: file leases let go because another host waited for them.",
		       efs_shared_recalls());
}

long efs_metrics_render(struct efs_data *fs, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	struct ekmfs_keys_stats ks;
	struct timespec now;
	char id[2 * EKMFS_VOLUME_ID_SIZE + 1];
	int64_t open_files = __atomic_load_n(&m.open_files, __ATOMIC_RELAXED);

	ekmfs_keys_stats(fs->keys, &ks);
	ekmfs_hex(ekmfs_keys_volume(fs->keys)->volume_id, EKMFS_VOLUME_ID_SIZE, id);
	clock_gettime(CLOCK_MONOTONIC, &now);

	emit(&o, "# HELP ekmfs_info The mounted volume (value always 1).\n"
	     "# TYPE ekmfs_info gauge\n"
	     "ekmfs_info{version=\"%s\",volume_id=\"%s\"} 1\n", EKMFS_VERSION, id);
	metric(&o, "ekmfs_start_time_seconds", "gauge",
	       "Unix time the daemon started.", (uint64_t)started_wall);
	metric(&o, "ekmfs_uptime_seconds", "gauge", "Seconds since the daemon started.",
	       (uint64_t)(now.tv_sec - started_mono.tv_sec));
	metric(&o, "ekmfs_reads_total", "counter", "Read requests served.", get(&m.reads));
	metric(&o, "ekmfs_read_errors_total", "counter", "Read requests answered with an error.",
	       get(&m.read_errors));
	metric(&o, "ekmfs_read_bytes_total", "counter", "Plaintext bytes returned by reads.",
	       get(&m.read_bytes));
	metric(&o, "ekmfs_writes_total", "counter", "Write requests served.", get(&m.writes));
	metric(&o, "ekmfs_write_errors_total", "counter",
	       "Write requests answered with an error.", get(&m.write_errors));
	metric(&o, "ekmfs_written_bytes_total", "counter", "Plaintext bytes written.",
	       get(&m.write_bytes));
	metric(&o, "ekmfs_auth_failures_total", "counter",
	       "Blocks or headers that failed authentication (tampered or corrupt).",
	       get(&m.auth_failures));
	metric(&o, "ekmfs_open_files", "gauge", "Open file handles.",
	       (uint64_t)(open_files < 0 ? 0 : open_files));
	inode_metrics(fs, &o);
	metric(&o, "ekmfs_kek_cache_hits_total", "counter",
	       "KEK lookups served from the in-memory cache.", ks.cache_hits);
	metric(&o, "ekmfs_kek_cache_misses_total", "counter",
	       "KEK lookups that needed the key provider.", ks.cache_misses);
	metric(&o, "ekmfs_kms_calls_total", "counter",
	       "Key provider unwrap calls (KMS requests for cloud providers).",
	       ks.provider_calls);
	metric(&o, "ekmfs_kms_errors_total", "counter", "Key provider calls that failed.",
	       ks.provider_errors);
	emit(&o, "# HELP ekmfs_kms_call_seconds_total Time spent in key provider calls.\n"
	     "# TYPE ekmfs_kms_call_seconds_total counter\n"
	     "ekmfs_kms_call_seconds_total %.6f\n", (double)ks.provider_ns / 1e9);
	metric(&o, "ekmfs_keyring_generation", "gauge",
	       "Generation of the keyring in memory (rises with every rotation step).",
	       ks.keyring_generation);
	rotation_progress(fs, &o);
	metric(&o, "ekmfs_config_reloads_total", "counter",
	       "Configuration reloads (SIGHUP) applied.", get(&m.reloads));
	metric(&o, "ekmfs_config_reload_failures_total", "counter",
	       "Configuration reloads refused (bad file; the old settings stay).",
	       get(&m.reload_failures));
	return o.full ? -ENOSPC : (long)o.pos;
}

/* ---- the file ---- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int efs_metrics_write_file(struct efs_data *fs, const char *path)
{
	char *tmp = NULL, buf[8192];
	long len;
	int fd = -1, ret = 0;

	len = efs_metrics_render(fs, buf, sizeof(buf));
	if (len < 0)
		return (int)len;
	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
		return -ENOMEM;
	/* 0644: the counters reveal activity, not content or keys. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write_all(fd, buf, (size_t)len) < 0 ||
	    fchmod(fd, 0644) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot write metrics file %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		ekmfs_seterr("cannot write metrics file %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		ekmfs_seterr("cannot rename %s to %s: %s", tmp, path, strerror(errno));
	}
out:
	if (fd >= 0)
		close(fd);
	if (ret)
		unlink(tmp);
	free(tmp);
	return ret;
}
