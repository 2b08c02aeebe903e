/* The io_uring event loop: see loop.h. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Completions the ring can hold before the kernel has to keep them on its
 * overflow list: far more than ember ever has in flight (8 disks x 256
 * requests, plus a few eventfd reads and timers). */
#define LOOP_CQ_ENTRIES 4096

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The only operations ember submits (loop.c, virtio/blk.c, virtio/net.c).
 * io_uring operations do not pass through seccomp, so the ring is created
 * disabled and restricted to these before it is enabled: an SQE with any
 * other opcode (OPENAT, CONNECT, ...) or with any IOSQE_ flag completes
 * with -EACCES, and no io_uring_register() call is allowed afterwards. */
static const uint8_t loop_allowed_ops[] = {
	IORING_OP_READ,          /* eventfds: notify, stop, console wake */
	IORING_OP_READV,         /* disk reads, tap receive */
	IORING_OP_WRITEV,        /* disk writes, tap transmit */
	IORING_OP_FSYNC,         /* virtio-blk FLUSH (datasync) */
	IORING_OP_FALLOCATE,     /* virtio-blk DISCARD / WRITE_ZEROES */
	IORING_OP_POLL_ADD,      /* console input readiness */
	IORING_OP_TIMEOUT,       /* console flush tick */
	IORING_OP_ASYNC_CANCEL,  /* virtio-net reset, loop_fini() */
};

/* io-wq workers per kind (bounded: regular files; unbounded: taps and
 * eventfds that block): enough for 8 disks' worth of buffered I/O without
 * letting a guest make ember spawn hundreds of kernel threads. */
#define LOOP_IOWQ_BOUNDED 4
#define LOOP_IOWQ_UNBOUNDED 4

static int ring_register(struct loop *l, unsigned op, void *arg, unsigned nr)
{
	long rc = syscall(__NR_io_uring_register, l->ring.ring_fd, op, arg, nr);

	return rc < 0 ? -errno : (int)rc;
}

static int restrict_ring(struct loop *l, struct err *e)
{
	struct io_uring_restriction res[sizeof(loop_allowed_ops)];
	unsigned workers[2] = { LOOP_IOWQ_BOUNDED, LOOP_IOWQ_UNBOUNDED };
	int rc;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < sizeof(loop_allowed_ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = loop_allowed_ops[i];
	}
	/* Raw io_uring_register(2): Debian's liburing 2.3 declares
	 * io_uring_register_restrictions()/io_uring_enable_rings() but does
	 * not export them. */
	rc = ring_register(l, IORING_REGISTER_RESTRICTIONS, res, sizeof(loop_allowed_ops));
	if (rc < 0) {
		errno = -rc;
		return err_errno(e, "io_uring: registering restrictions");
	}
	/* Best effort: older kernels lack the cap (5.15+). */
	(void)io_uring_register_iowq_max_workers(&l->ring, workers);
	rc = ring_register(l, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (rc < 0) {
		errno = -rc;
		return err_errno(e, "io_uring: enabling the ring");
	}
	return 0;
}

int loop_init(struct loop *l, unsigned entries, struct err *e)
{
	struct io_uring_params p;
	uint64_t t0 = now_ns();
	int rc;

	memset(l, 0, sizeof(*l));
	memset(&p, 0, sizeof(p));
	/* SINGLE_ISSUER + COOP_TASKRUN: only this thread submits, so the
	 * kernel runs completion work when we enter the ring instead of
	 * interrupting us with IPIs. */
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
		  IORING_SETUP_R_DISABLED;
	p.cq_entries = LOOP_CQ_ENTRIES;
	rc = io_uring_queue_init_params(entries, &l->ring, &p);
	if (rc == -EINVAL) {
		/* Kernels before 6.0 lack SINGLE_ISSUER: the flags are only
		 * an optimisation. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED;
		p.cq_entries = LOOP_CQ_ENTRIES;
		rc = io_uring_queue_init_params(entries, &l->ring, &p);
	}
	if (rc < 0) {
		errno = -rc;
		if (rc == -EPERM)
			return err_set(e, "io_uring: not permitted (kernel.io_uring_disabled or a "
				       "seccomp policy forbids it); ember needs it for its event loop");
		return err_errno(e, "io_uring_setup");
	}
	if (restrict_ring(l, e) < 0) {
		io_uring_queue_exit(&l->ring);
		return -1;
	}
	l->ready = true;
	l->con.input_fd = l->con.wake_fd = -1;
	l->stats.setup_ns = now_ns() - t0;
	return 0;
}

struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&l->ring))) {
		/* Submission queue full: hand the queued SQEs to the kernel
		 * (they complete later, like any other). */
		int n = io_uring_submit(&l->ring);

		if (n > 0)
			l->stats.sqes += (unsigned)n;
	}
	io_uring_sqe_set_data(sqe, op);
	l->inflight++;
	return sqe;
}

static void efd_arm(struct loop_efd *w)
{
	struct io_uring_sqe *sqe = loop_sqe(w->loop, &w->op);

	io_uring_prep_read(sqe, w->fd, &w->value, sizeof(w->value), 0);
}

static void efd_done(struct loop_op *op, int res)
{
	struct loop_efd *w = (struct loop_efd *)op;

	if (res == -ECANCELED || w->loop->stop)
		return;
	/* res is 8 (the counter, now reset to 0), or an error: either way the
	 * watcher runs, so a notification can never be lost. */
	w->fn(w->opaque);
	if (res < 0 && res != -EAGAIN && res != -EINTR) {
		/* A broken descriptor (EBADF, ...) would fail again at once:
		 * re-arming it would spin. */
		static const char msg[] = "ember: an eventfd read failed; no longer watched\n";

		(void)!write(2, msg, sizeof(msg) - 1);
		return;
	}
	if (!w->loop->stop)
		efd_arm(w);
}

void loop_watch_efd(struct loop *l, struct loop_efd *w, int fd,
		    void (*fn)(void *opaque), void *opaque)
{
	w->op.done = efd_done;
	w->loop = l;
	w->fd = fd;
	w->fn = fn;
	w->opaque = opaque;
	efd_arm(w);
}

void loop_add_hook(struct loop *l, struct loop_hook *h, void (*fn)(void *opaque),
		   void *opaque)
{
	h->fn = fn;
	h->opaque = opaque;
	h->next = l->hooks;
	l->hooks = h;
}

/* ---- console ---- */

static void console_poll_arm(struct loop *l)
{
	struct io_uring_sqe *sqe;

	if (l->polling_input || l->stop || l->con.input_fd < 0 ||
	    (l->con.want_input && !l->con.want_input(l->con.opaque)))
		return;
	sqe = loop_sqe(l, &l->poll_op);
	io_uring_prep_poll_add(sqe, l->con.input_fd, POLLIN);
	l->polling_input = true;
}

static void console_poll_done(struct loop_op *op, int res)
{
	struct loop *l = (struct loop *)((char *)op - offsetof(struct loop, poll_op));

	l->polling_input = false;
	if (res > 0 && l->con.input && !l->stop)
		l->con.input(l->con.opaque);
	else if (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN)
		l->con.input_fd = -1;   /* unpollable (e.g. stdin closed): like EOF */
	/* Re-armed at the end of the iteration, if input is still wanted. */
}

static void console_wake(void *opaque)
{
	(void)opaque;   /* console_poll_arm() runs at the end of the iteration */
}

static void tick_arm(struct loop *l)
{
	struct io_uring_sqe *sqe = loop_sqe(l, &l->tick_op);

	l->tick_ts.tv_sec = 0;
	l->tick_ts.tv_nsec = LOOP_TICK_MS * 1000000L;
	io_uring_prep_timeout(sqe, &l->tick_ts, 0, 0);
}

static void tick_done(struct loop_op *op, int res)
{
	struct loop *l = (struct loop *)((char *)op - offsetof(struct loop, tick_op));

	if (res == -ECANCELED || l->stop)
		return;
	l->con.tick(l->con.opaque);
	tick_arm(l);
}

void loop_set_console(struct loop *l, const struct loop_console *c)
{
	l->con = *c;
	l->poll_op.done = console_poll_done;
	l->tick_op.done = tick_done;
	if (c->wake_fd >= 0)
		loop_watch_efd(l, &l->wake_efd, c->wake_fd, console_wake, l);
	if (c->tick)
		tick_arm(l);
	console_poll_arm(l);
}

/* ---- running ---- */

static unsigned reap(struct loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe) {
		struct loop_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		n++;
		l->inflight--;
		if (op)
			op->done(op, res);
	}
	io_uring_cq_advance(&l->ring, n);
	l->stats.cqes += n;
	return n;
}

int loop_once(struct loop *l, bool wait)
{
	int rc;

	if (wait) {
		rc = io_uring_submit_and_wait(&l->ring, 1);
		l->stats.enters++;
	} else {
		/* GETEVENTS without waiting: with COOP_TASKRUN completions
		 * are only posted when the ring is entered for them. */
		rc = io_uring_submit_and_get_events(&l->ring);
	}
	if (rc > 0)
		l->stats.sqes += (unsigned)rc;
	if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY) {
		errno = -rc;
		return -1;
	}
	reap(l);
	for (struct loop_hook *h = l->hooks; h; h = h->next)
		h->fn(h->opaque);
	console_poll_arm(l);
	return 0;
}

static void stop_fired(void *opaque)
{
	struct loop *l = opaque;

	l->stop = true;
}

void loop_run(struct loop *l, int stop_fd)
{
	loop_watch_efd(l, &l->stop_efd, stop_fd, stop_fired, l);
	while (!l->stop) {
		if (loop_once(l, true) < 0) {
			/* Nothing sensible left to wait on: end the VM rather
			 * than spin. */
			static const char msg[] = "ember: io_uring_enter failed; stopping\n";

			(void)!write(2, msg, sizeof(msg) - 1);
			break;
		}
	}
	l->stop = true;
}

static void cancel_done(struct loop_op *op, int res)
{
	(void)op;
	(void)res;
}

int loop_fini(struct loop *l, int timeout_ms)
{
	uint64_t deadline;
	int rc = 0;

	if (!l->ready)
		return 0;
	l->stop = true;
	if (l->inflight) {
		struct io_uring_sqe *sqe;

		l->cancel_op.done = cancel_done;
		sqe = loop_sqe(l, &l->cancel_op);
		io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
	}
	deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (l->inflight) {
		struct __kernel_timespec ts = { 0, 10 * 1000000L };
		struct io_uring_cqe *cqe;

		if (now_ns() > deadline) {
			rc = -1;
			break;
		}
		io_uring_submit(&l->ring);
		(void)io_uring_wait_cqe_timeout(&l->ring, &cqe, &ts);
		reap(l);
	}
	io_uring_queue_exit(&l->ring);
	l->ready = false;
	return rc;
}
