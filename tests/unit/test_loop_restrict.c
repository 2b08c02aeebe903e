/* The event loop's ring is restricted (loop.c): io_uring operations bypass
 * seccomp, so an SQE with an opcode ember does not use, naming a descriptor
 * that is not in the fixed-file table, or with an IOSQE_ flag other than
 * IOSQE_FIXED_FILE must be refused, and io_uring_register() (which could
 * grow the table) is refused once the ring runs; the opcodes ember uses
 * still work on registered files. */
#define CHECK_FILE "loop_restrict"
#include "../check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* A ring like ember's: eventfd 'fd' registered (its index in *file), then
 * restricted and enabled. */
static void setup(struct loop *l, int fd, int *file)
{
	struct err e;

	CHECK_EQ(loop_init(l, 16, &e), 0);
	*file = loop_file(l, fd, &e);
	CHECK_EQ(*file, 0);
	CHECK_EQ(loop_enable(l, &e), 0);
}

TEST(disallowed_opcodes_fail_eacces)
{
	struct loop l;
	struct result nop = { .op.done = on_done }, open_ = { .op.done = on_done };
	struct io_uring_sqe *sqe;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), file;

	setup(&l, fd, &file);
	sqe = loop_sqe(&l, &nop.op);
	io_uring_prep_nop(sqe);
	loop_fixed(sqe);
	wait_for(&l, &nop);
	CHECK_EQ(nop.res, -EACCES);

	sqe = loop_sqe(&l, &open_.op);
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY, 0);
	loop_fixed(sqe);
	wait_for(&l, &open_);
	CHECK_EQ(open_.res, -EACCES);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(fd);
}

/* Submit one 8-byte READ of fd (a descriptor, or a fixed-file index when
 * 'flags' has IOSQE_FIXED_FILE) with those SQE flags into *buf; returns the
 * completion's result. */
static int read_res(struct loop *l, int fd, uint8_t flags, uint64_t *buf)
{
	struct result r = { .op.done = on_done };
	struct io_uring_sqe *sqe = loop_sqe(l, &r.op);

	io_uring_prep_read(sqe, fd, buf, sizeof(*buf), 0);
	sqe->flags = flags;
	wait_for(l, &r);
	return r.res;
}

TEST(other_sqe_flags_fail_eacces)
{
	struct loop l;
	uint64_t buf;
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK), file;

	CHECK(fd >= 0);
	setup(&l, fd, &file);
	CHECK_EQ(read_res(&l, file, IOSQE_FIXED_FILE | IOSQE_ASYNC, &buf), -EACCES);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(fd);
}

/* The same READ on the same eventfd, named by its plain descriptor instead
 * of its fixed-file index: refused, and the counter is left alone. */
TEST(non_registered_fd_fails_eacces)
{
	struct loop l;
	uint64_t buf = 0;
	int fd = eventfd(7, EFD_CLOEXEC | EFD_NONBLOCK), file;
	int other = eventfd(9, EFD_CLOEXEC | EFD_NONBLOCK);

	CHECK(fd >= 0 && other >= 0);
	setup(&l, fd, &file);
	CHECK_EQ(read_res(&l, other, 0, &buf), -EACCES);
	CHECK_EQ(buf, 0);
	CHECK_EQ(read(other, &buf, sizeof(buf)), 8);
	CHECK_EQ(buf, 9);
	/* And the registered one by plain descriptor: refused as well. */
	CHECK_EQ(read_res(&l, fd, 0, &buf), -EACCES);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(fd);
	close(other);
}

/* A fixed-file index with nothing registered behind it reaches no file;
 * the registered one works. */
TEST(fixed_files_only_registered_ones)
{
	struct loop l;
	uint64_t buf = 0;
	int fd = eventfd(5, EFD_CLOEXEC | EFD_NONBLOCK), file;

	CHECK(fd >= 0);
	setup(&l, fd, &file);
	CHECK_EQ(read_res(&l, file + 1, IOSQE_FIXED_FILE, &buf), -EBADF);
	CHECK_EQ(read_res(&l, LOOP_MAX_FILES + 5, IOSQE_FIXED_FILE, &buf), -EBADF);
	CHECK_EQ(buf, 0);
	CHECK_EQ(read_res(&l, file, IOSQE_FIXED_FILE, &buf), 8);
	CHECK_EQ(buf, 5);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(fd);
}

/* The table cannot grow once the ring runs: not through ember's own
 * function, nor through raw io_uring_register() calls (only
 * IORING_UNREGISTER_FILES is left, for loop_fini()). */
TEST(no_registering_after_enable)
{
	struct loop l;
	struct err e;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), file;
	int fds[1] = { 0 };
	struct io_uring_files_update up = { .offset = 1, .fds = (uintptr_t)fds };

	setup(&l, fd, &file);
	CHECK_EQ(loop_file(&l, fd, &e), file);     /* already there: fine */
	CHECK_EQ(loop_file(&l, 0, &e), -1);
	CHECK(strstr(e.msg, "after the ring was enabled") != NULL);
	CHECK_EQ(syscall(__NR_io_uring_register, l.ring.ring_fd, IORING_REGISTER_FILES_UPDATE, &up, 1),
		 -1);
	CHECK_EQ(errno, EACCES);
	CHECK_EQ(syscall(__NR_io_uring_register, l.ring.ring_fd, IORING_REGISTER_FILES, fds, 1), -1);
	CHECK_EQ(errno, EACCES);
	CHECK_EQ(syscall(__NR_io_uring_register, l.ring.ring_fd, IORING_REGISTER_BUFFERS, NULL, 0), -1);
	CHECK_EQ(errno, EACCES);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(fd);
}

/* Registering is checked: a closed descriptor, and the same one twice. */
TEST(loop_file_checks)
{
	struct loop l;
	struct err e;
	int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC), bad = eventfd(0, 0);

	close(bad);
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	CHECK_EQ(loop_file(&l, a, &e), 0);
	CHECK_EQ(loop_file(&l, b, &e), 1);
	CHECK_EQ(loop_file(&l, a, &e), 0);
	CHECK_EQ(loop_file(&l, bad, &e), -1);
	CHECK(strstr(e.msg, "registering descriptor") != NULL);
	CHECK_EQ(loop_fini(&l, 1000), 0);   /* never enabled: nothing to wait for */
	close(a);
	close(b);
}

/* loop_fini() drops the ring's reference to every registered file before
 * it returns (the ring itself is freed later, asynchronously): a
 * non-multiqueue tap would otherwise keep its reader, an image its flock.
 * Seen here with a pipe: the read end,
 * registered with the ring and closed by us, must be gone (the write end
 * gets EPIPE) right after loop_fini(). */
TEST(fini_releases_registered_files)
{
	struct loop l;
	struct err e;
	int p[2];

	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	CHECK_EQ(loop_file(&l, p[0], &e), 0);
	CHECK_EQ(loop_enable(&l, &e), 0);
	close(p[0]);                       /* the ring still holds the file */
	signal(SIGPIPE, SIG_IGN);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	errno = 0;
	CHECK_EQ(write(p[1], "x", 1), -1);
	CHECK_EQ(errno, EPIPE);
	close(p[1]);
}

CHECK_MAIN(T(disallowed_opcodes_fail_eacces), T(other_sqe_flags_fail_eacces),
	   T(non_registered_fd_fails_eacces), T(fixed_files_only_registered_ones),
	   T(no_registering_after_enable), T(loop_file_checks),
	   T(fini_releases_registered_files))
