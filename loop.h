/* The event loop: one io_uring ring, owned and serviced by one thread (the
 * main thread, inside vm_run()), that waits in one place for everything ember
 * does outside the vCPU threads:
 *   - virtqueue notifications (KVM ioeventfds, one READ per eventfd);
 *   - disk I/O (READV/WRITEV/FSYNC/FALLOCATE straight on guest memory);
 *   - the console: stdin readiness (POLL_ADD), the UART's "room again"
 *     eventfd, and a one-shot flush timer for partial output lines, armed
 *     only when the UART says output is waiting;
 *   - the stop eventfd a vCPU writes when the VM ends.
 *
 * One iteration: reap every completion (each SQE's user_data is a struct
 * loop_op whose done() runs), run the end-of-batch hooks (devices publish
 * their used rings and raise each interrupt once), then submit everything
 * queued and wait for the next completion in a single io_uring_enter().
 * Nothing busy-polls or ticks: with nothing in flight the thread sleeps in
 * the kernel until something happens.
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
	int file;                  /* the eventfd's fixed-file index */
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
 * loop look at want_input() again; flush_fd >= 0 (an eventfd) is drained and
 * flush() runs LOOP_FLUSH_MS later, once however often flush_fd fired in
 * between (it writes out a partial console line).  Any function may be
 * NULL. */
struct loop_console {
	int input_fd;
	void (*input)(void *opaque);
	bool (*want_input)(void *opaque);
	int wake_fd;
	int flush_fd;
	void (*flush)(void *opaque);
	void *opaque;
};

#define LOOP_FLUSH_MS 50

/* Fixed-file table size: every descriptor an SQE names is registered up
 * front (loop_file()).  The most ember needs: 8 virtio devices of at most 4
 * descriptors each (a net device's tap, quiesce eventfd and 2 queue
 * eventfds; a disk's 2 image fds and 1 queue eventfd), plus the console's 2
 * and the stop eventfd. */
#define LOOP_MAX_FILES 64

struct loop_stats {
	uint64_t enters;           /* io_uring_enter calls that waited */
	uint64_t sqes;             /* SQEs submitted */
	uint64_t cqes;             /* completions handled */
	uint64_t setup_ns;         /* time loop_init() and loop_enable() took */
};

struct loop {
	struct io_uring ring;
	bool ready;
	bool enabled;              /* loop_enable() done: restricted and running */
	int files[LOOP_MAX_FILES]; /* fixed-file index -> descriptor */
	unsigned nfiles;
	int con_input_file;        /* con.input_fd's fixed-file index */
	unsigned inflight;         /* SQEs handed out whose CQE has not arrived */
	struct loop_hook *hooks;
	struct loop_console con;
	bool polling_input;
	atomic_bool stop;          /* set by the loop thread; read by vCPUs too */
	bool flush_armed;          /* the flush timer is pending */
	struct loop_op poll_op, flush_op, cancel_op;
	struct loop_efd stop_efd, wake_efd, flush_efd;
	struct __kernel_timespec flush_ts;
	struct loop_stats stats;
};

/* Create the ring (entries SQEs, room for many more completions), disabled
 * (IORING_SETUP_R_DISABLED) with an empty fixed-file table.  Fails with e
 * naming io_uring and the reason (e.g. io_uring disabled by
 * kernel.io_uring_disabled or a seccomp policy).
 *
 * Setup then goes: register every descriptor (loop_file(), or implicitly
 * through loop_watch_efd(), loop_set_console(), loop_set_stop(), and the
 * devices' attach functions), queue the first SQEs, then loop_enable().
 * io_uring operations do not pass through seccomp, so once enabled the ring
 * only runs the opcodes ember uses, only on the files registered before, and
 * accepts no further io_uring_register() call (see loop.c). */
int loop_init(struct loop *l, unsigned entries, struct err *e);

/* Register fd in the fixed-file table and return its index, which is what
 * an SQE names (with IOSQE_FIXED_FILE; see loop_sqe()).  Registering the
 * same fd again returns the same index.  Only before loop_enable(); -1 with
 * e set when the table is full, the ring is enabled, or the kernel refuses
 * the descriptor (e.g. EBADF). */
int loop_file(struct loop *l, int fd, struct err *e);

/* Restrict the ring (opcodes, IOSQE_FIXED_FILE required, no register
 * calls), cap its io-wq workers, and enable it: SQEs queued so far are
 * submitted with the first loop_once().  Returns 0, or -1 with e set. */
int loop_enable(struct loop *l, struct err *e);

/* Cancel what is still pending, wait up to timeout_ms for the cancelled and
 * in-flight operations to complete (disk I/O writes into guest memory: the
 * caller must not unmap it before this returned 0), and close the ring.
 * Returns -1 if operations were still in flight at the deadline. */
int loop_fini(struct loop *l, int timeout_ms);

/* An SQE to fill; user_data is set to op.  Submits the queued SQEs first
 * when the submission queue is full, so it never fails once the ring is
 * enabled (before, the queue must not fill: ember queues a few dozen SQEs
 * at setup into a ring of hundreds, and aborts if it ever does).
 *
 * The caller fills it with an io_uring_prep_*() helper, whose fd argument
 * is a loop_file() index, and then calls loop_fixed(sqe): the helpers clear
 * sqe->flags, and the ring refuses (-EACCES) any SQE without
 * IOSQE_FIXED_FILE, including those of opcodes that take no file. */
struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op);

static inline void loop_fixed(struct io_uring_sqe *sqe)
{
	sqe->flags |= IOSQE_FIXED_FILE;
}

/* Watch eventfd 'fd' (see struct loop_efd): registers it (loop_file(), so
 * only before loop_enable()) and queues the READ, submitted with the next
 * iteration.  Returns 0, or -1 with e set. */
int loop_watch_efd(struct loop *l, struct loop_efd *w, int fd,
		   void (*fn)(void *opaque), void *opaque, struct err *e);

/* Run fn(opaque) at the end of every iteration (hooks run newest first). */
void loop_add_hook(struct loop *l, struct loop_hook *h, void (*fn)(void *opaque),
		   void *opaque);

/* Service the console while the loop runs (copied; before loop_enable()).
 * An input_fd the kernel cannot register (e.g. a closed stdin) counts as no
 * input.  Returns 0, or -1 with e set (the wake eventfd not registered). */
int loop_set_console(struct loop *l, const struct loop_console *c, struct err *e);

/* Make eventfd stop_fd end loop_run() when it becomes readable (before
 * loop_enable()).  Returns 0, or -1 with e set. */
int loop_set_stop(struct loop *l, int stop_fd, struct err *e);

/* One iteration: submit what is queued, wait for at least one completion
 * when 'wait' (else just reap what is there), handle the completions, run the
 * hooks.  Returns 0, or -1 (errno set) when io_uring_enter fails. */
int loop_once(struct loop *l, bool wait);

/* Iterate until the loop_set_stop() eventfd becomes readable. */
void loop_run(struct loop *l);

#endif
