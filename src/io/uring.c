/*
 * uring.c - the io_uring engine behind the system table's batch entry.
 *
 * Owns: one small ring per thread (FUSE workers and tools alike), created on
 * first use and freed when the thread ends, and the submission of a batch of
 * reads or writes of one backing file with a single io_uring_enter(). A
 * batch never has more than EKMFS_IO_MAX_VEC transfers, the ring's size, so
 * a submission never waits for free slots.
 *
 * A batch of one transfer is a plain pread/pwrite (see ekmfs_uring_batch).
 *
 * Fallback: when the kernel or a sandbox refuses io_uring (ENOSYS, EPERM,
 * seccomp) the first failure is logged once and every batch from then on
 * uses pread/pwrite. Registered buffers and files are not used: the content
 * layer's buffers are per request, and tmpfs/ext4 page-cache I/O gains
 * nothing measurable from fixed files at our request sizes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>

#include "ekmfs/io.h"
#include "ekmfs/util.h"

#define MAX_SQE_LEN (1u << 30)

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t ring_key;
static int refused;                 /* atomic: io_uring unusable here */

static void ring_free(void *p)
{
	io_uring_queue_exit(p);
	free(p);
}

static void key_init(void)
{
	if (pthread_key_create(&ring_key, ring_free) != 0)
		__atomic_store_n(&refused, 1, __ATOMIC_RELAXED);
}

static void refuse(int err)
{
	if (__atomic_exchange_n(&refused, 1, __ATOMIC_RELAXED) == 0)
		ekmfs_log(EKMFS_LOG_WARN,
			  "io_uring unavailable (%s): using pread/pwrite for file data",
			  strerror(err));
}

/* The calling thread's ring, or NULL when io_uring cannot be used. */
static struct io_uring *thread_ring(void)
{
	struct io_uring *ring;
	int rc;

	pthread_once(&key_once, key_init);
	if (__atomic_load_n(&refused, __ATOMIC_RELAXED))
		return NULL;
	ring = pthread_getspecific(ring_key);
	if (ring)
		return ring;
	ring = calloc(1, sizeof(*ring));
	if (!ring)
		return NULL;
	/* Single issuer + deferred task work: completions are run by this
	 * thread when it waits, the cheapest mode (Linux 6.1); older kernels
	 * reject the flags, so retry without them. */
	rc = io_uring_queue_init(EKMFS_IO_MAX_VEC, ring,
				 IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (rc == -EINVAL)
		rc = io_uring_queue_init(EKMFS_IO_MAX_VEC, ring, 0);
	if (rc < 0) {
		free(ring);
		if (rc != -ENOMEM)
			refuse(-rc);
		return NULL;
	}
	if (pthread_setspecific(ring_key, ring) != 0) {
		ring_free(ring);
		return NULL;
	}
	return ring;
}

bool ekmfs_uring_available(void)
{
	return thread_ring() != NULL;
}

static void plain_batch(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		ssize_t r;

		do {
			r = write ? pwrite(fd, v[i].buf, v[i].len, v[i].off)
				  : pread(fd, v[i].buf, v[i].len, v[i].off);
		} while (r < 0 && errno == EINTR);
		v[i].res = r < 0 ? -errno : r;
	}
}

/* A ring whose submission failed may hold queued entries: it is dropped so
 * nothing stale is ever submitted later. */
static void ring_discard(struct io_uring *ring)
{
	pthread_setspecific(ring_key, NULL);
	ring_free(ring);
}

void ekmfs_uring_batch(int fd, bool write, struct ekmfs_io_vec *v, unsigned n)
{
	/* One transfer goes straight to pread/pwrite: page-cache files that
	 * cannot do non-blocking I/O (tmpfs here) make io_uring hand every
	 * request to an io-wq worker and wake us after it, two context
	 * switches a system call does not pay. md5sum of 8103 files: 1.8-2.0 s
	 * through the ring, 1.3-1.4 s this way (docs/PERFORMANCE.md). A batch
	 * keeps the ring: its transfers then run in parallel. */
	struct io_uring *ring = n > 1 && n <= EKMFS_IO_MAX_VEC ? thread_ring() : NULL;
	unsigned submitted = 0, reaped = 0;

	if (!ring) {
		plain_batch(fd, write, v, n);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		/* An SQE carries a 32-bit length: longer transfers come back
		 * short and the caller resubmits the rest. */
		unsigned len = v[i].len > MAX_SQE_LEN ? MAX_SQE_LEN : (unsigned)v[i].len;

		if (write)
			io_uring_prep_write(sqe, fd, v[i].buf, len, (uint64_t)v[i].off);
		else
			io_uring_prep_read(sqe, fd, v[i].buf, len, (uint64_t)v[i].off);
		io_uring_sqe_set_data64(sqe, i);
		v[i].res = -ECANCELED;
	}
	while (submitted < n) {
		int rc = io_uring_submit_and_wait(ring, n - submitted);

		if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY)
			continue;
		if (rc <= 0) {
			if (submitted == 0) {
				ring_discard(ring);
				refuse(rc < 0 ? -rc : EIO);
				plain_batch(fd, write, v, n);
				return;
			}
			break;
		}
		submitted += (unsigned)rc;
	}
	while (reaped < submitted) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(ring, &cqe);

		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc < 0)
			break;
		v[io_uring_cqe_get_data64(cqe)].res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		reaped++;
	}
	if (reaped < n) {
		/* Cannot happen short of a kernel bug; never reuse the ring. */
		ring_discard(ring);
		for (unsigned i = 0; i < n; i++)
			if (v[i].res == -ECANCELED)
				v[i].res = -EIO;
	}
}
