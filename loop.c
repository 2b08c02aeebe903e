/* The io_uring event loop: see loop.h. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
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
 * other opcode (OPENAT, CONNECT, ...), without IOSQE_FIXED_FILE (that is,
 * naming a plain descriptor instead of one registered in the fixed-file
 * table), or with any other IOSQE_ flag completes with -EACCES, and the
 * only io_uring_register() call allowed afterwards is IORING_UNREGISTER_FILES
 * (loop_fini() empties the table), so the table cannot grow:
 * a compromised ember cannot turn the ring on a descriptor it was not meant
 * to do I/O on (the KVM fds, the ring itself, an inherited socket). */
static const uint8_t loop_allowed_ops[] = {
	IORING_OP_READ,          /* eventfds: notify, stop, console wake */
	IORING_OP_READV,         /* disk reads, tap receive */
	IORING_OP_WRITEV,        /* disk writes, tap transmit */
	IORING_OP_FSYNC,         /* virtio-blk FLUSH (datasync) */
	IORING_OP_FALLOCATE,     /* virtio-blk DISCARD / WRITE_ZEROES */
	IORING_OP_POLL_ADD,      /* console input readiness */
	IORING_OP_TIMEOUT,       /* console flush timer */
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

int loop_enable(struct loop *l, struct err *e)
{
	enum { NOPS = sizeof(loop_allowed_ops) };
	struct io_uring_restriction res[NOPS + 3];
	unsigned workers[2] = { LOOP_IOWQ_BOUNDED, LOOP_IOWQ_UNBOUNDED };
	uint64_t t0 = now_ns();
	int rc;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < NOPS; i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = loop_allowed_ops[i];
	}
	/* IOSQE_FIXED_FILE is the one flag allowed, and it is required. */
	res[NOPS].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[NOPS].sqe_flags = IOSQE_FIXED_FILE;
	res[NOPS + 1].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
	res[NOPS + 1].sqe_flags = IOSQE_FIXED_FILE;
	/* The one register call left: emptying the table at exit (it can
	 * only take descriptors away). */
	res[NOPS + 2].opcode = IORING_RESTRICTION_REGISTER_OP;
	res[NOPS + 2].register_op = IORING_UNREGISTER_FILES;
	/* Raw io_uring_register(2): Debian's liburing 2.3 declares
	 * io_uring_register_restrictions()/io_uring_enable_rings() but does
	 * not export them. */
	rc = ring_register(l, IORING_REGISTER_RESTRICTIONS, res, NOPS + 3);
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
	l->enabled = true;
	l->stats.setup_ns += now_ns() - t0;
	return 0;
}

int loop_file(struct loop *l, int fd, struct err *e)
{
	int rc;

	for (unsigned i = 0; i < l->nfiles; i++)
		if (l->files[i] == fd)
			return (int)i;
	if (l->enabled)
		return err_set(e, "io_uring: descriptor %d registered after the ring was enabled",
			       fd);
	if (l->nfiles == LOOP_MAX_FILES)
		return err_set(e, "io_uring: more than %d descriptors to register",
			       LOOP_MAX_FILES);
	rc = io_uring_register_files_update(&l->ring, l->nfiles, &fd, 1);
	if (rc < 0) {
		errno = -rc;
		return err_errno(e, "io_uring: registering descriptor %d", fd);
	}
	l->files[l->nfiles] = fd;
	return (int)l->nfiles++;
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
	/* A sparse table (every slot empty), filled by loop_file() until
	 * loop_enable() forbids registering. */
	rc = io_uring_register_files_sparse(&l->ring, LOOP_MAX_FILES);
	if (rc < 0) {
		io_uring_queue_exit(&l->ring);
		errno = -rc;
		return err_errno(e, "io_uring: registering the fixed-file table");
	}
	l->ready = true;
	l->con.input_fd = l->con.wake_fd = l->con.flush_fd = -1;
	l->stats.setup_ns = now_ns() - t0;
	return 0;
}

struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&l->ring))) {
		/* Submission queue full: hand the queued SQEs to the kernel
		 * (they complete later, like any other). */
		int n;

		if (!l->enabled) {
			/* A disabled ring cannot submit (EBADFD): setup queued
			 * more than loop_init()'s entries.  A bug in ember,
			 * never the guest's doing (it has not run yet). */
			static const char msg[] = "ember: io_uring: too many SQEs queued during setup\n";

			(void)!write(2, msg, sizeof(msg) - 1);
			abort();
		}
		n = io_uring_submit(&l->ring);

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

	io_uring_prep_read(sqe, w->file, &w->value, sizeof(w->value), 0);
	loop_fixed(sqe);
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

int loop_watch_efd(struct loop *l, struct loop_efd *w, int fd,
		   void (*fn)(void *opaque), void *opaque, struct err *e)
{
	int file = loop_file(l, fd, e);

	if (file < 0)
		return -1;
	w->op.done = efd_done;
	w->loop = l;
	w->file = file;
	w->fn = fn;
	w->opaque = opaque;
	efd_arm(w);
	return 0;
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
	io_uring_prep_poll_add(sqe, l->con_input_file, POLLIN);
	loop_fixed(sqe);
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

/* flush_fd fired: output is waiting in the UART's buffer.  One timer at a
 * time, so a guest printing partial lines costs at most one wake-up per
 * LOOP_FLUSH_MS, and an idle console none. */
static void flush_wanted(void *opaque)
{
	struct loop *l = opaque;
	struct io_uring_sqe *sqe;

	if (l->flush_armed || l->stop)
		return;
	sqe = loop_sqe(l, &l->flush_op);
	l->flush_ts.tv_sec = 0;
	l->flush_ts.tv_nsec = LOOP_FLUSH_MS * 1000000L;
	io_uring_prep_timeout(sqe, &l->flush_ts, 0, 0);
	loop_fixed(sqe);   /* no file, but the ring requires the flag */
	l->flush_armed = true;
}

static void flush_done(struct loop_op *op, int res)
{
	struct loop *l = (struct loop *)((char *)op - offsetof(struct loop, flush_op));

	l->flush_armed = false;
	if (res == -ECANCELED || l->stop)
		return;
	if (l->con.flush)
		l->con.flush(l->con.opaque);
}

int loop_set_console(struct loop *l, const struct loop_console *c, struct err *e)
{
	l->con = *c;
	l->poll_op.done = console_poll_done;
	l->flush_op.done = flush_done;
	if (c->input_fd >= 0) {
		struct err ignored;

		l->con_input_file = loop_file(l, c->input_fd, &ignored);
		if (l->con_input_file < 0)
			l->con.input_fd = -1;   /* like EOF, as a failed poll would be */
	}
	if (c->wake_fd >= 0 && loop_watch_efd(l, &l->wake_efd, c->wake_fd, console_wake, l, e) < 0)
		return -1;
	if (c->flush_fd >= 0 &&
	    loop_watch_efd(l, &l->flush_efd, c->flush_fd, flush_wanted, l, e) < 0)
		return -1;
	console_poll_arm(l);
	return 0;
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

int loop_set_stop(struct loop *l, int stop_fd, struct err *e)
{
	return loop_watch_efd(l, &l->stop_efd, stop_fd, stop_fired, l, e);
}

void loop_run(struct loop *l)
{
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
	if (!l->enabled) {
		/* Never enabled: nothing was submitted, nothing is in flight;
		 * the files go now, as below. */
		(void)ring_register(l, IORING_UNREGISTER_FILES, NULL, 0);
		io_uring_queue_exit(&l->ring);
		l->ready = false;
		return 0;
	}
	l->stop = true;
	if (l->inflight) {
		struct io_uring_sqe *sqe;

		l->cancel_op.done = cancel_done;
		sqe = loop_sqe(l, &l->cancel_op);
		io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
		loop_fixed(sqe);
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
	/* Closing the ring frees it asynchronously, in a kernel worker, and
	 * the fixed-file table keeps every registered file open until then:
	 * a tap would still have its reader and an image its flock after
	 * ember exited, and a VM restarted at once on them would be refused.
	 * Unregistering drops the files now (a request still in flight past
	 * the deadline keeps its own reference). */
	(void)ring_register(l, IORING_UNREGISTER_FILES, NULL, 0);
	io_uring_queue_exit(&l->ring);
	l->ready = false;
	return rc;
}
