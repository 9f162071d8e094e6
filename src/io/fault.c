/*
 * fault.c - fault injection through the I/O seam, for test builds only.
 *
 * Owns: a table that wraps ekmfs_io_system and fails backing-file transfers
 * as a control file says, so the integration tests can make a mounted
 * daemon meet short writes, EIO and ENOSPC and check what the caller sees.
 * Compiled only with `meson setup -Dfault_injection=true` (never in a
 * release build); the daemon then arms it when $EKMFS_FAULT_FILE is set.
 *
 * The control file holds one line, re-read whenever it changes:
 *     OP KIND [count=N] [min_off=BYTES]
 * OP is read, write or fsync; KIND is EIO, ENOSPC or short (a transfer moves
 * half its length, at least one byte); count limits how many transfers fail
 * (default: all), min_off spares transfers that end at or below an offset.
 * An empty or missing file injects nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ekmfs/io.h"
#include "ekmfs/util.h"

enum fault_op { OP_NONE, OP_READ, OP_WRITE, OP_FSYNC };
enum fault_kind { KIND_ERR, KIND_SHORT };

static struct {
	pthread_mutex_t mu;
	const char *path;
	struct timespec mtime;   /* of the control file when last parsed */
	off_t size;
	ino_t ino;
	enum fault_op op;
	enum fault_kind kind;
	int err;
	long count;              /* < 0: unlimited */
	long long min_off;
} fc = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void parse_control(void)
{
	char line[256] = "", op[16] = "", kind[16] = "";
	FILE *f = fopen(fc.path, "r");

	fc.op = OP_NONE;
	fc.count = -1;
	fc.min_off = 0;
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "%15s %15s", op, kind) != 2) {
		fclose(f);
		return;
	}
	fclose(f);
	for (char *p = strtok(line, " \t\n"); p; p = strtok(NULL, " \t\n")) {
		if (strncmp(p, "count=", 6) == 0)
			fc.count = atol(p + 6);
		else if (strncmp(p, "min_off=", 8) == 0)
			fc.min_off = atoll(p + 8);
	}
	fc.op = strcmp(op, "read") == 0 ? OP_READ : strcmp(op, "write") == 0 ? OP_WRITE
		: strcmp(op, "fsync") == 0 ? OP_FSYNC : OP_NONE;
	fc.kind = KIND_ERR;
	if (strcmp(kind, "EIO") == 0) {
		fc.err = EIO;
	} else if (strcmp(kind, "ENOSPC") == 0) {
		fc.err = ENOSPC;
	} else if (strcmp(kind, "short") == 0) {
		fc.kind = KIND_SHORT;
	} else {
		ekmfs_log(EKMFS_LOG_WARN, "fault file %s: unknown kind '%s'", fc.path, kind);
		fc.op = OP_NONE;
	}
}

/* The fault for one transfer of op ending at end: 0 (none), -1 (shorten)
 * or the errno to fail it with. */
static int fault_for(enum fault_op op, long long end)
{
	struct stat st;
	int ret = 0;

	pthread_mutex_lock(&fc.mu);
	if (stat(fc.path, &st) < 0)
		memset(&st, 0, sizeof(st));
	if (st.st_ino != fc.ino || st.st_size != fc.size ||
	    st.st_mtim.tv_sec != fc.mtime.tv_sec || st.st_mtim.tv_nsec != fc.mtime.tv_nsec) {
		fc.ino = st.st_ino;
		fc.size = st.st_size;
		fc.mtime = st.st_mtim;
		parse_control();
	}
	if (fc.op == op && fc.count != 0 && end > fc.min_off) {
		ret = fc.kind == KIND_SHORT ? -1 : fc.err;
		if (fc.count > 0)
			fc.count--;
	}
	pthread_mutex_unlock(&fc.mu);
	return ret;
}

static size_t shortened(size_t len)
{
	return len > 1 ? len / 2 : len;
}

static ssize_t fault_pread(int fd, void *buf, size_t len, off_t off)
{
	int f = fault_for(OP_READ, (long long)off + (long long)len);

	if (f > 0) {
		errno = f;
		return -1;
	}
	return ekmfs_io_system.pread(fd, buf, f < 0 ? shortened(len) : len, off);
}

static ssize_t fault_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	int f = fault_for(OP_WRITE, (long long)off + (long long)len);

	if (f > 0) {
		errno = f;
		return -1;
	}
	return ekmfs_io_system.pwrite(fd, buf, f < 0 ? shortened(len) : len, off);
}

static int fault_sync(int fd, bool data)
{
	int f = fault_for(OP_FSYNC, 1);

	if (f > 0) {
		errno = f;
		return -1;
	}
	return data ? ekmfs_io_system.fdatasync(fd) : ekmfs_io_system.fsync(fd);
}

static int fault_fsync(int fd)
{
	return fault_sync(fd, false);
}

static int fault_fdatasync(int fd)
{
	return fault_sync(fd, true);
}

/* Failed transfers are answered here; the others (some shortened) still go
 * to io_uring together, so the engine's retry path is what is tested. */
static void fault_batch(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	struct ekmfs_io_vec go[EKMFS_IO_MAX_VEC];
	unsigned idx[EKMFS_IO_MAX_VEC], m = 0;

	for (unsigned i = 0; i < n && i < EKMFS_IO_MAX_VEC; i++) {
		int f = fault_for(write ? OP_WRITE : OP_READ,
				  (long long)v[i].off + (long long)v[i].len);

		if (f > 0) {
			v[i].res = -f;
			continue;
		}
		go[m] = v[i];
		if (f < 0)
			go[m].len = shortened(go[m].len);
		idx[m++] = i;
	}
	if (m)
		ekmfs_io_system.batch(fd, write, go, m);
	for (unsigned j = 0; j < m; j++)
		v[idx[j]].res = go[j].res;
}

/* The system table with the faulty transfers and syncs (set when armed). */
static struct ekmfs_io_ops fault_io;

bool ekmfs_io_faults_from_env(void)
{
	const char *path = getenv("EKMFS_FAULT_FILE");

	if (!path || !*path)
		return false;
	fc.path = path;
	fc.op = OP_NONE;
	fault_io = ekmfs_io_system;
	fault_io.pread = fault_pread;
	fault_io.pwrite = fault_pwrite;
	fault_io.fsync = fault_fsync;
	fault_io.fdatasync = fault_fdatasync;
	fault_io.batch = fault_batch;
	ekmfs_io = &fault_io;
	ekmfs_log(EKMFS_LOG_WARN, "fault injection armed: control file %s", path);
	return true;
}
