/*
 * io.h - the seam between ekmfs and the system calls that move file data.
 *
 * Owns: one table of functions through which every system call that
 * changes the backing store goes (data, sizes, syncs, names, modes, owners,
 * times, extended attributes), so tests can replace entries to inject short
 * transfers, EIO and ENOSPC, or record every change for the crash simulator
 * (as SQLite's aSyscall[] does); plus the loops that turn short transfers
 * into complete ones, and the batch interface through which the content
 * layer submits all the transfers of one request together (io_uring by
 * default, see src/io/uring.c). Reads that change nothing (open without
 * O_CREAT/O_TRUNC, stat, readdir) do not need the seam, except pread, so a
 * fault table can fail them.
 */
#ifndef EKMFS_IO_H
#define EKMFS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* One transfer of a batch: res receives the bytes moved (short is allowed,
 * as with pread/pwrite) or -errno. */
struct ekmfs_io_vec {
	void *buf;
	size_t len;
	off_t off;
	ssize_t res;
};

/* Every entry behaves like the system call of its name: -1 with errno on
 * failure (the batch entry fills each res instead). */
struct ekmfs_io_ops {
	/* data, size and durability of an open file */
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	int (*fsync)(int fd);
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*fallocate)(int fd, int mode, off_t off, off_t len);
	int (*syncfs)(int fd);
	/* Optional: perform n reads (write false) or writes of fd together
	 * and fill every res. NULL means one pread/pwrite entry per vec. */
	void (*batch)(int fd, bool write, struct ekmfs_io_vec *v, unsigned n);
	/* names: opens that create or truncate, and the namespace calls */
	int (*openat)(int dirfd, const char *name, int flags, mode_t mode);
	int (*mkdirat)(int dirfd, const char *name, mode_t mode);
	int (*mknodat)(int dirfd, const char *name, mode_t mode, dev_t dev);
	int (*symlinkat)(const char *target, int dirfd, const char *name);
	int (*linkat)(int olddirfd, const char *oldname, int newdirfd, const char *newname,
		      int flags);
	int (*unlinkat)(int dirfd, const char *name, int flags);
	int (*renameat2)(int olddirfd, const char *oldname, int newdirfd,
			 const char *newname, unsigned int flags);
	/* attributes */
	int (*fchmodat)(int dirfd, const char *name, mode_t mode, int flags);
	int (*fchmod)(int fd, mode_t mode);
	int (*fchownat)(int dirfd, const char *name, uid_t uid, gid_t gid, int flags);
	int (*utimensat)(int dirfd, const char *name, const struct timespec tv[2], int flags);
	int (*futimens)(int fd, const struct timespec tv[2]);
	int (*setxattr)(const char *path, const char *name, const void *value, size_t size,
			int flags);
	int (*fsetxattr)(int fd, const char *name, const void *value, size_t size, int flags);
	int (*removexattr)(const char *path, const char *name);
};

/* The table in use; tests may point it elsewhere. */
extern const struct ekmfs_io_ops *ekmfs_io;
extern const struct ekmfs_io_ops ekmfs_io_system;

/* Read up to len bytes, retrying short reads; returns bytes read (fewer only
 * at end of file) or -errno. */
ssize_t ekmfs_read_full(int fd, void *buf, size_t len, off_t off);
/* Write all len bytes, retrying short writes; 0 or -errno. */
int ekmfs_write_full(int fd, const void *buf, size_t len, off_t off);

/* Transfers per io_uring submission (the ring size); longer batches are
 * submitted in groups of this many. */
#define EKMFS_IO_MAX_VEC 16

/* Complete n transfers of fd, submitted together (one io_uring submission
 * per round when the engine is up), retrying the short ones. Reads: each
 * res = bytes read (fewer only at end of file). Writes: res = len. Returns
 * 0, or the first -errno in vector order (every res is then still set). */
int ekmfs_io_batch_full(int fd, bool write, struct ekmfs_io_vec *v, unsigned n);

/* The io_uring batch engine of ekmfs_io_system (uring.c): per-thread
 * rings created on first use. Returns false (and logs once) when the kernel
 * refuses io_uring; batches then fall back to pread/pwrite. */
bool ekmfs_uring_available(void);
void ekmfs_uring_batch(int fd, bool write, struct ekmfs_io_vec *v, unsigned n);
/* Fault injection (fault.c, compiled only in -Dfault_injection=true builds,
 * which define EKMFS_FAULT_INJECTION): install a table that fails transfers
 * as the file named by $EKMFS_FAULT_FILE says. Returns true when armed. */
bool ekmfs_io_faults_from_env(void);
/* Crash recording (record.c, compiled only in -Dfault_injection=true
 * builds): when $EKMFS_CRASH_LOG names a file, wrap the table in use (arm
 * it after the fault table) so that every change to the backing store is
 * appended to that log (docs/CRASH.md). Returns 1 when armed, 0 when the
 * variable is unset, -errno (message set) when the log cannot be opened. */
int ekmfs_io_record_from_env(void);

#endif
