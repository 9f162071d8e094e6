/*
 * test_record.c - unit tests of the crash recorder (src/io/record.c).
 *
 * Built only with -Dfault_injection=true, like the recorder. Every entry of
 * the seam is called through ekmfs_io on a scratch directory with the
 * recorder armed, and the log must hold exactly one record per change, in
 * order, naming the right inodes (the daemon's /proc/self/fd paths
 * included), with the bytes written; failed calls and opens that change
 * nothing leave no record and keep their errno.
 *
 * Divisions:
 *   1. reading the log back
 *   2. data, size and durability
 *   3. names
 *   4. attributes, failures, and sequence numbers across processes
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ekmfs/io.h"
#include "ekmfs/util.h"

static char dir[64], logpath[128];
static int dfd = -1;
static int lines_read;   /* records already looked at by next_record() */

/* ---- 1. reading the log back ---- */

static json_object *record_at(int index)
{
	FILE *f = fopen(logpath, "r");
	char line[1 << 16];
	json_object *o = NULL;

	if (!f)
		return NULL;
	for (int i = 0; fgets(line, sizeof(line), f); i++) {
		if (i == index) {
			o = json_tokener_parse(line);
			break;
		}
	}
	fclose(f);
	return o;
}

static int log_lines(void)
{
	FILE *f = fopen(logpath, "r");
	int n = 0, c;

	if (!f)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* The next record (the caller puts it), checked to be op with the next seq. */
static json_object *next_record(const char *op)
{
	json_object *o = record_at(lines_read), *v;

	lines_read++;
	CHECK(o != NULL);
	if (!o)
		return NULL;
	CHECK(json_object_object_get_ex(o, "seq", &v) && json_object_get_int(v) == lines_read);
	CHECK(json_object_object_get_ex(o, "pid", &v) && json_object_get_int(v) == getpid());
	CHECK(json_object_object_get_ex(o, "op", &v) && strcmp(json_object_get_string(v), op) == 0);
	if (!json_object_object_get_ex(o, "op", &v) || strcmp(json_object_get_string(v), op) != 0)
		fprintf(stderr, "  record %d is %s, expected %s\n", lines_read,
			json_object_to_json_string(o), op);
	return o;
}

static long long num(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -12345;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static long long ino_of(const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (long long)st.st_ino : -1;
}

static long long dev_of_dir(void)
{
	struct stat st;

	return fstat(dfd, &st) == 0 ? (long long)st.st_dev : -1;
}

static long long dir_ino(void)
{
	struct stat st;

	return fstat(dfd, &st) == 0 ? (long long)st.st_ino : -1;
}

static void expect_no_new_records(void)
{
	CHECK_EQ_INT(log_lines(), lines_read);
}

/* ---- 2. data, size and durability ---- */

static void test_writes_and_syncs(void)
{
	static const char data[] = "hello, crash log";
	uint8_t big[10000], decoded[10000];
	struct ekmfs_io_vec v[3];
	json_object *o;
	long long ino;
	int fd;

	fd = ekmfs_io->openat(dfd, "f", O_RDWR | O_CREAT | O_EXCL, 0640);
	CHECK(fd >= 0);
	ino = ino_of("f");
	o = next_record("create");
	CHECK_EQ_INT(num(o, "dir"), dir_ino());
	CHECK_EQ_INT(num(o, "dev"), dev_of_dir());
	CHECK(strcmp(str(o, "name"), "f") == 0);
	CHECK_EQ_INT(num(o, "ino"), ino);
	CHECK_EQ_INT(num(o, "mode"), 0640 & ~(mode_t)022);
	json_object_put(o);

	CHECK_EQ_INT(ekmfs_write_full(fd, data, sizeof(data), 7), 0);
	o = next_record("write");
	CHECK_EQ_INT(num(o, "ino"), ino);
	CHECK_EQ_INT(num(o, "off"), 7);
	CHECK_EQ_INT(ekmfs_b64_decode(str(o, "data"), decoded, sizeof(decoded)), sizeof(data));
	CHECK_MEM(decoded, data, sizeof(data));
	json_object_put(o);

	/* a batch: one record per transfer, in vector order */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	v[0] = (struct ekmfs_io_vec){ .buf = big, .len = 4000, .off = 9000 };
	v[1] = (struct ekmfs_io_vec){ .buf = big + 4000, .len = 6000, .off = 100 };
	v[2] = (struct ekmfs_io_vec){ .buf = big, .len = 1, .off = 0 };
	CHECK_EQ_INT(ekmfs_io_batch_full(fd, true, v, 3), 0);
	o = next_record("write");
	CHECK_EQ_INT(num(o, "off"), 9000);
	CHECK_EQ_INT(ekmfs_b64_decode(str(o, "data"), decoded, sizeof(decoded)), 4000);
	CHECK_MEM(decoded, big, 4000);
	json_object_put(o);
	o = next_record("write");
	CHECK_EQ_INT(num(o, "off"), 100);
	CHECK_EQ_INT(ekmfs_b64_decode(str(o, "data"), decoded, sizeof(decoded)), 6000);
	CHECK_MEM(decoded, big + 4000, 6000);
	json_object_put(o);
	json_object_put(next_record("write"));

	/* reads change nothing */
	CHECK_EQ_INT(ekmfs_read_full(fd, decoded, 100, 0), 100);
	expect_no_new_records();

	CHECK_EQ_INT(ekmfs_io->ftruncate(fd, 5000), 0);
	o = next_record("truncate");
	CHECK_EQ_INT(num(o, "size"), 5000);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, 20), 0);
	o = next_record("fallocate");
	CHECK_EQ_INT(num(o, "mode"), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	CHECK_EQ_INT(num(o, "off"), 10);
	CHECK_EQ_INT(num(o, "len"), 20);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->fsync(fd), 0);
	o = next_record("fsync");
	CHECK_EQ_INT(num(o, "ino"), ino);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->fdatasync(fd), 0);
	json_object_put(next_record("fdatasync"));
	CHECK_EQ_INT(ekmfs_io->syncfs(fd), 0);
	o = next_record("syncfs");
	CHECK_EQ_INT(num(o, "dev"), dev_of_dir());
	json_object_put(o);
	close(fd);

	/* opening an existing file: O_CREAT alone changes nothing, O_TRUNC
	 * truncates */
	fd = ekmfs_io->openat(dfd, "f", O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0);
	close(fd);
	expect_no_new_records();
	fd = ekmfs_io->openat(dfd, "f", O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	close(fd);
	o = next_record("truncate");
	CHECK_EQ_INT(num(o, "ino"), ino);
	CHECK_EQ_INT(num(o, "size"), 0);
	json_object_put(o);
}

/* ---- 3. names ---- */

static void test_names(void)
{
	char proc[64], odd[] = "caf\xc3\xa9 \"q\"\n";
	long long f, g, d, sub;
	json_object *o;
	int fd;

	f = ino_of("f");
	CHECK_EQ_INT(ekmfs_io->mkdirat(dfd, "sub", 0750), 0);
	sub = ino_of("sub");
	o = next_record("mkdir");
	CHECK_EQ_INT(num(o, "ino"), sub);
	CHECK_EQ_INT(num(o, "mode"), 0750 & ~(mode_t)022);
	json_object_put(o);

	/* the daemon's way of linking: through /proc/self/fd */
	fd = openat(dfd, "f", O_PATH);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	CHECK_EQ_INT(ekmfs_io->linkat(AT_FDCWD, proc, dfd, "sub/hard", AT_SYMLINK_FOLLOW), 0);
	o = next_record("link");
	CHECK_EQ_INT(num(o, "dir"), sub);
	CHECK(strcmp(str(o, "name"), "hard") == 0);
	CHECK_EQ_INT(num(o, "ino"), f);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->fchmodat(AT_FDCWD, proc, 0604, 0), 0);
	o = next_record("chmod");
	CHECK_EQ_INT(num(o, "ino"), f);
	CHECK_EQ_INT(num(o, "mode"), 0604);
	json_object_put(o);
	close(fd);

	CHECK_EQ_INT(ekmfs_io->symlinkat("sub/hard", dfd, "ln"), 0);
	o = next_record("symlink");
	CHECK_EQ_INT(num(o, "ino"), ino_of("ln"));
	CHECK(strcmp(str(o, "target"), "sub/hard") == 0);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->mknodat(dfd, "fifo", S_IFIFO | 0600, 0), 0);
	o = next_record("mknod");
	CHECK(S_ISFIFO((mode_t)num(o, "mode")));
	json_object_put(o);

	/* names are bytes: each one outside printable ASCII is \u00XX */
	fd = ekmfs_io->openat(dfd, odd, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	close(fd);
	g = ino_of(odd);
	o = next_record("create");
	CHECK_EQ_INT(strlen(str(o, "name")), strlen("caf\xc3\x83\xc2\xa9 \"q\"\n"));
	CHECK(strcmp(str(o, "name"), "caf\xc3\x83\xc2\xa9 \"q\"\n") == 0);
	json_object_put(o);

	/* rename: replaced says what the new name referred to */
	CHECK_EQ_INT(ekmfs_io->renameat2(dfd, odd, dfd, "sub/hard", 0), 0);
	o = next_record("rename");
	CHECK_EQ_INT(num(o, "olddir"), dir_ino());
	CHECK_EQ_INT(num(o, "newdir"), sub);
	CHECK(strcmp(str(o, "newname"), "hard") == 0);
	CHECK_EQ_INT(num(o, "ino"), g);
	CHECK_EQ_INT(num(o, "replaced"), f);
	CHECK_EQ_INT(num(o, "flags"), 0);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->renameat2(dfd, "f", dfd, "sub/hard", RENAME_EXCHANGE), 0);
	o = next_record("rename");
	CHECK_EQ_INT(num(o, "ino"), f);
	CHECK_EQ_INT(num(o, "replaced"), g);
	CHECK_EQ_INT(num(o, "flags"), RENAME_EXCHANGE);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->renameat2(dfd, "f", dfd, "new", RENAME_NOREPLACE), 0);
	o = next_record("rename");
	CHECK_EQ_INT(num(o, "replaced"), 0);
	json_object_put(o);

	d = ino_of("new");
	CHECK_EQ_INT(ekmfs_io->unlinkat(dfd, "new", 0), 0);
	o = next_record("unlink");
	CHECK_EQ_INT(num(o, "ino"), d);
	CHECK_EQ_INT(num(o, "rmdir"), 0);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->unlinkat(dfd, "fifo", 0), 0);
	json_object_put(next_record("unlink"));
	CHECK_EQ_INT(ekmfs_io->unlinkat(dfd, "ln", 0), 0);
	json_object_put(next_record("unlink"));
	CHECK_EQ_INT(ekmfs_io->unlinkat(dfd, "sub/hard", 0), 0);
	json_object_put(next_record("unlink"));
	CHECK_EQ_INT(ekmfs_io->unlinkat(dfd, "sub", AT_REMOVEDIR), 0);
	o = next_record("unlink");
	CHECK_EQ_INT(num(o, "ino"), sub);
	CHECK_EQ_INT(num(o, "rmdir"), 1);
	json_object_put(o);
}

/* ---- 4. attributes, failures, processes ---- */

static void test_attributes(void)
{
	struct timespec tv[2] = { { 1, 2 }, { 3, UTIME_OMIT } };
	char proc[64];
	json_object *o;
	long long ino;
	int fd;

	fd = ekmfs_io->openat(dfd, "a", O_RDWR | O_CREAT | O_EXCL, 0600);
	json_object_put(next_record("create"));
	ino = ino_of("a");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	CHECK_EQ_INT(ekmfs_io->fchmod(fd, 0640), 0);
	o = next_record("chmod");
	CHECK_EQ_INT(num(o, "mode"), 0640);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->fchownat(fd, "", 0, 0, AT_EMPTY_PATH), 0);
	o = next_record("chown");
	CHECK_EQ_INT(num(o, "ino"), ino);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->futimens(fd, tv), 0);
	o = next_record("utimes");
	CHECK_EQ_INT(num(o, "ino"), ino);
	json_object_put(o);
	CHECK_EQ_INT(ekmfs_io->utimensat(AT_FDCWD, proc, NULL, 0), 0);
	json_object_put(next_record("utimes"));
	if (ekmfs_io->fsetxattr(fd, "user.k", "v", 1, 0) == 0) {   /* tmpfs may refuse */
		o = next_record("setxattr");
		CHECK(strcmp(str(o, "name"), "user.k") == 0);
		CHECK(strcmp(str(o, "value"), "dg==") == 0);
		json_object_put(o);
		CHECK_EQ_INT(ekmfs_io->setxattr(proc, "user.k", "w", 1, 0), 0);
		json_object_put(next_record("setxattr"));
		CHECK_EQ_INT(ekmfs_io->removexattr(proc, "user.k"), 0);
		o = next_record("removexattr");
		CHECK_EQ_INT(num(o, "ino"), ino);
		json_object_put(o);
	}
	close(fd);
}

static void test_failures_leave_no_record(void)
{
	int fd;

	errno = 0;
	CHECK_EQ_INT(ekmfs_io->unlinkat(dfd, "missing", 0), -1);
	CHECK_EQ_INT(errno, ENOENT);
	errno = 0;
	fd = ekmfs_io->openat(dfd, "a", O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK_EQ_INT(fd, -1);
	CHECK_EQ_INT(errno, EEXIST);
	errno = 0;
	CHECK_EQ_INT(ekmfs_io->renameat2(dfd, "a", dfd, "a2", 0xff), -1);
	CHECK_EQ_INT(errno, EINVAL);
	errno = 0;
	CHECK_EQ_INT(ekmfs_io->pwrite(-1, "x", 1, 0), -1);
	CHECK_EQ_INT(errno, EBADF);
	expect_no_new_records();
}

/* A child process appends to the same log: sequence numbers go on. */
static void test_processes_share_the_sequence(void)
{
	json_object *o;
	pid_t pid;
	int status = -1;

	pid = fork();
	if (pid == 0) {
		int fd = ekmfs_io->openat(dfd, "child", O_RDWR | O_CREAT | O_EXCL, 0600);

		_exit(fd >= 0 && ekmfs_io->fsync(fd) == 0 ? 0 : 1);
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECK_EQ_INT(status, 0);
	lines_read += 2;                 /* the child's create and fsync */
	CHECK_EQ_INT(log_lines(), lines_read);
	CHECK_EQ_INT(ekmfs_io->unlinkat(dfd, "child", 0), 0);
	o = next_record("unlink");       /* next_record checks seq == 3rd after */
	CHECK(o != NULL);
	json_object_put(o);
	o = record_at(lines_read - 2);
	CHECK(num(o, "pid") == pid);
	CHECK_EQ_INT(num(o, "seq"), lines_read - 1);
	json_object_put(o);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ekmfs-record-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(logpath, sizeof(logpath), "%s.log", dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	umask(022);
	setenv("EKMFS_CRASH_LOG", logpath, 1);
	if (ekmfs_io_record_from_env() != 1) {
		fprintf(stderr, "the recorder did not arm\n");
		return 1;
	}
	RUN(test_writes_and_syncs);
	RUN(test_names);
	RUN(test_attributes);
	RUN(test_failures_leave_no_record);
	RUN(test_processes_share_the_sequence);
	unlinkat(dfd, "a", 0);
	close(dfd);
	rmdir(dir);
	unlink(logpath);
	return CHECK_DONE();
}
