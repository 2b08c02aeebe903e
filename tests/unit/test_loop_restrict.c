/* The event loop's ring is restricted (loop.c): io_uring operations bypass
 * seccomp, so an SQE with an opcode ember does not use, or with an IOSQE_
 * flag, must complete with -EACCES, and io_uring_register() is refused once
 * the ring runs; the opcodes ember uses still work. */
#define CHECK_FILE "loop_restrict"
#include "../check.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loop.h"

struct result {
	struct loop_op op;
	int res;
	bool done;
};

static void on_done(struct loop_op *op, int res)
{
	struct result *r = (struct result *)op;

	r->res = res;
	r->done = true;
}

/* Submit what is queued and iterate until r completed (2 s at most). */
static void wait_for(struct loop *l, struct result *r)
{
	for (int i = 0; i < 2000 && !r->done; i++) {
		loop_once(l, false);
		if (!r->done)
			usleep(1000);
	}
	CHECK(r->done);
}

TEST(disallowed_opcodes_fail_eacces)
{
	struct loop l;
	struct err e;
	struct result nop = { .op.done = on_done }, open_ = { .op.done = on_done };
	struct io_uring_sqe *sqe;

	CHECK_EQ(loop_init(&l, 16, &e), 0);
	sqe = loop_sqe(&l, &nop.op);
	io_uring_prep_nop(sqe);
	wait_for(&l, &nop);
	CHECK_EQ(nop.res, -EACCES);

	sqe = loop_sqe(&l, &open_.op);
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY, 0);
	wait_for(&l, &open_);
	CHECK_EQ(open_.res, -EACCES);
	CHECK_EQ(loop_fini(&l, 1000), 0);
}

TEST(sqe_flags_fail_eacces)
{
	struct loop l;
	struct err e;
	struct result r = { .op.done = on_done };
	uint64_t buf;
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	struct io_uring_sqe *sqe;

	CHECK(fd >= 0);
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	sqe = loop_sqe(&l, &r.op);
	io_uring_prep_read(sqe, fd, &buf, sizeof(buf), 0);
	sqe->flags |= IOSQE_ASYNC;
	wait_for(&l, &r);
	CHECK_EQ(r.res, -EACCES);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(fd);
}

TEST(allowed_opcode_works)
{
	struct loop l;
	struct err e;
	struct result r = { .op.done = on_done };
	uint64_t buf = 0;
	int fd = eventfd(5, EFD_CLOEXEC | EFD_NONBLOCK);
	struct io_uring_sqe *sqe;

	CHECK(fd >= 0);
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	sqe = loop_sqe(&l, &r.op);
	io_uring_prep_read(sqe, fd, &buf, sizeof(buf), 0);
	wait_for(&l, &r);
	CHECK_EQ(r.res, 8);
	CHECK_EQ(buf, 5);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(fd);
}

TEST(register_refused_after_enable)
{
	struct loop l;
	struct err e;
	int fds[1] = { 0 };

	CHECK_EQ(loop_init(&l, 16, &e), 0);
	CHECK_EQ(syscall(__NR_io_uring_register, l.ring.ring_fd, IORING_REGISTER_FILES, fds, 1), -1);
	CHECK_EQ(errno, EACCES);
	CHECK_EQ(loop_fini(&l, 1000), 0);
}

CHECK_MAIN(T(disallowed_opcodes_fail_eacces), T(sqe_flags_fail_eacces), T(allowed_opcode_works),
	   T(register_refused_after_enable))
