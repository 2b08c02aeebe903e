/* The event loop: one io_uring ring, owned and serviced by one thread (the
 * main thread, inside vm_run()), that waits in one place for everything ember
 * does outside the vCPU threads:
 *   - virtqueue notifications (KVM ioeventfds, one READ per eventfd);
 *   - disk I/O (READV/WRITEV/FSYNC/FALLOCATE straight on guest memory);
 *   - the console: stdin readiness (POLL_ADD), the UART's "room again"
 *     eventfd, and a flush tick for partial output lines;
 *   - the stop eventfd a vCPU writes when the VM ends.
 *
 * One iteration: reap every completion (each SQE's user_data is a struct
 * loop_op whose done() runs), run the end-of-batch hooks (devices publish
 * their used rings and raise each interrupt once), then submit everything
 * queued and wait for the next completion in a single io_uring_enter().
 * Nothing busy-polls: with no console tick and nothing in flight the thread
 * sleeps in the kernel.
 *
 * Not thread-safe: every function must be called from the thread that owns
 * the loop (IORING_SETUP_SINGLE_ISSUER).
 */
#ifndef EMBER_LOOP_H
#define EMBER_LOOP_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct loop;

/* Completion callback, embedded in the caller's request: the SQE's user_data
 * points at it.  res is the CQE's result (bytes, 0, or -errno). */
struct loop_op {
	void (*done)(struct loop_op *op, int res);
};

/* An eventfd watched with a READ that is re-armed after each completion:
 * fn(opaque) runs once per completion (the read has reset the counter). */
struct loop_efd {
	struct loop_op op;
	struct loop *loop;
	int fd;
	uint64_t value;            /* the READ's buffer */
	void (*fn)(void *opaque);
	void *opaque;
};

/* Called once per loop iteration, after the completions of the iteration. */
struct loop_hook {
	void (*fn)(void *opaque);
	void *opaque;
	struct loop_hook *next;
};

/* The console, serviced by the loop.  input_fd >= 0 is polled for input
 * while want_input() allows (NULL: always) and input() is called when it is
 * readable (or hung up); wake_fd >= 0 (an eventfd) is drained and makes the
 * loop look at want_input() again; tick() runs every LOOP_TICK_MS while the
 * VM runs (it flushes partial console lines).  Any function may be NULL. */
struct loop_console {
	int input_fd;
	void (*input)(void *opaque);
	bool (*want_input)(void *opaque);
	void (*tick)(void *opaque);
	int wake_fd;
	void *opaque;
};

#define LOOP_TICK_MS 50

struct loop_stats {
	uint64_t enters;           /* io_uring_enter calls that waited */
	uint64_t sqes;             /* SQEs submitted */
	uint64_t cqes;             /* completions handled */
	uint64_t setup_ns;         /* time io_uring_queue_init took */
};

struct loop {
	struct io_uring ring;
	bool ready;
	unsigned inflight;         /* SQEs handed out whose CQE has not arrived */
	struct loop_hook *hooks;
	struct loop_console con;
	bool polling_input;
	atomic_bool stop;          /* set by the loop thread; read by vCPUs too */
	struct loop_op poll_op, tick_op, cancel_op;
	struct loop_efd stop_efd, wake_efd;
	struct __kernel_timespec tick_ts;
	struct loop_stats stats;
};

/* Create the ring (entries SQEs, room for many more completions).  Fails
 * with e naming io_uring and the reason (e.g. io_uring disabled by
 * kernel.io_uring_disabled or a seccomp policy). */
int loop_init(struct loop *l, unsigned entries, struct err *e);

/* Cancel what is still pending, wait up to timeout_ms for the cancelled and
 * in-flight operations to complete (disk I/O writes into guest memory: the
 * caller must not unmap it before this returned 0), and close the ring.
 * Returns -1 if operations were still in flight at the deadline. */
int loop_fini(struct loop *l, int timeout_ms);

/* An SQE to fill; user_data must be set to a struct loop_op.  Submits the
 * queued SQEs first when the submission queue is full, so it never fails. */
struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op);

/* Watch eventfd 'fd' (see struct loop_efd).  The READ is queued now and
 * submitted with the next iteration. */
void loop_watch_efd(struct loop *l, struct loop_efd *w, int fd,
		    void (*fn)(void *opaque), void *opaque);

/* Run fn(opaque) at the end of every iteration (hooks run newest first). */
void loop_add_hook(struct loop *l, struct loop_hook *h, void (*fn)(void *opaque),
		   void *opaque);

/* Service the console while the loop runs (copied). */
void loop_set_console(struct loop *l, const struct loop_console *c);

/* One iteration: submit what is queued, wait for at least one completion
 * when 'wait' (else just reap what is there), handle the completions, run the
 * hooks.  Returns 0, or -1 (errno set) when io_uring_enter fails. */
int loop_once(struct loop *l, bool wait);

/* Iterate until stop_fd (an eventfd) becomes readable. */
void loop_run(struct loop *l, int stop_fd);

#endif
