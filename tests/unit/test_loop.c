/* The io_uring event loop (loop.c): ring setup cost, eventfd watchers,
 * end-of-batch hooks, the console (input polling gated by want_input, the
 * wake eventfd, the flush timer), stopping, and draining at the end. */
#define CHECK_FILE "loop"
#include "../check.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

static int fired, hooks, inputs, ticks;
static bool want;
static int pipefd[2];

static void on_efd(void *o)
{
	fired++;
}

static void on_hook(void *o)
{
	hooks++;
}

static void poke(int fd)
{
	uint64_t one = 1;

	CHECK_EQ(write(fd, &one, sizeof(one)), 8);
}

/* Iterate without blocking until cond holds or 2 s pass. */
#define SPIN_UNTIL(l, cond)                                                  \
	do {                                                                 \
		for (int spin_ = 0; spin_ < 2000 && !(cond); spin_++) {      \
			loop_once(l, false);                                 \
			if (!(cond))                                         \
				usleep(1000);                                \
		}                                                            \
	} while (0)

TEST(ring_setup_is_cheap)
{
	/* Boot must not get longer: under 1 ms (the best of three, on a busy
	 * machine). */
	uint64_t best = UINT64_MAX;
	struct err e;

	for (int i = 0; i < 3; i++) {
		struct loop l;

		CHECK_EQ(loop_init(&l, 256, &e), 0);
		CHECK_EQ(loop_enable(&l, &e), 0);
		if (l.stats.setup_ns < best)
			best = l.stats.setup_ns;
		CHECK_EQ(loop_fini(&l, 1000), 0);
	}
	CHECK(best < 1000000);
}

TEST(eventfd_watch_rearms)
{
	struct loop l;
	struct loop_efd w;
	struct err e;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	fired = 0;
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	CHECK_EQ(loop_watch_efd(&l, &w, fd, on_efd, NULL, &e), 0);
	CHECK_EQ(loop_enable(&l, &e), 0);
	loop_once(&l, false);
	CHECK_EQ(fired, 0);
	poke(fd);
	poke(fd);                      /* two signals before the loop looks: one call */
	SPIN_UNTIL(&l, fired == 1);
	CHECK_EQ(fired, 1);
	poke(fd);
	loop_once(&l, true);           /* blocks until the re-armed read completes */
	CHECK_EQ(fired, 2);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	CHECK_EQ(l.inflight, 0);
	close(fd);
}

TEST(hooks_run_every_iteration)
{
	struct loop l;
	struct loop_hook h;
	struct err e;

	hooks = 0;
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	CHECK_EQ(loop_enable(&l, &e), 0);
	loop_add_hook(&l, &h, on_hook, NULL);
	loop_once(&l, false);
	loop_once(&l, false);
	CHECK_EQ(hooks, 2);
	CHECK_EQ(loop_fini(&l, 1000), 0);
}

static void con_input(void *o)
{
	char buf[64];

	if (read(pipefd[0], buf, sizeof(buf)) > 0)
		inputs++;
}

static bool con_want(void *o)
{
	return want;
}

static void con_flush(void *o)
{
	ticks++;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

TEST(console_input_wake_and_flush)
{
	struct loop l;
	struct loop_console c = { .input_fd = -1, .wake_fd = -1, .flush_fd = -1 };
	struct err e;
	int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int flush = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct timespec t0;

	inputs = ticks = 0;
	want = false;
	CHECK_EQ(pipe(pipefd), 0);
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	c.input_fd = pipefd[0];
	c.input = con_input;
	c.want_input = con_want;
	c.flush = con_flush;
	c.flush_fd = flush;
	c.wake_fd = wake;
	CHECK_EQ(loop_set_console(&l, &c, &e), 0);
	CHECK_EQ(loop_enable(&l, &e), 0);
	CHECK_EQ(write(pipefd[1], "x", 1), 1);
	/* Not wanted: not read. */
	for (int i = 0; i < 5; i++)
		loop_once(&l, false);
	CHECK_EQ(inputs, 0);
	CHECK(!l.polling_input);
	/* Wanted again (the UART drained) and the wake eventfd poked. */
	want = true;
	poke(wake);
	SPIN_UNTIL(&l, inputs == 1);
	CHECK_EQ(inputs, 1);
	/* No output pending: no flush, however long we wait (no tick). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms_since(&t0) < 3 * LOOP_FLUSH_MS) {
		loop_once(&l, false);
		usleep(5000);
	}
	CHECK_EQ(ticks, 0);
	/* Pending output, signalled twice: one flush, LOOP_FLUSH_MS later. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	poke(flush);
	loop_once(&l, false);
	poke(flush);
	while (ticks < 1)
		loop_once(&l, true);
	CHECK(ms_since(&t0) >= LOOP_FLUSH_MS);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms_since(&t0) < 3 * LOOP_FLUSH_MS) {
		loop_once(&l, false);
		usleep(5000);
	}
	CHECK_EQ(ticks, 1);
	/* End of input: input() is called (and sees EOF). */
	close(pipefd[1]);
	SPIN_UNTIL(&l, inputs == 1 && !l.polling_input);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	close(pipefd[0]);
	close(wake);
	close(flush);
}

TEST(run_until_stop)
{
	struct loop l;
	struct loop_efd w;
	struct err e;
	int stop = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);

	fired = 0;
	CHECK_EQ(loop_init(&l, 16, &e), 0);
	CHECK_EQ(loop_watch_efd(&l, &w, fd, on_efd, NULL, &e), 0);
	CHECK_EQ(loop_set_stop(&l, stop, &e), 0);
	CHECK_EQ(loop_enable(&l, &e), 0);
	loop_run(&l);                  /* returns: the stop eventfd is readable */
	CHECK(l.stop);
	CHECK_EQ(loop_fini(&l, 1000), 0);
	CHECK_EQ(l.inflight, 0);
	close(stop);
	close(fd);
}

CHECK_MAIN(T(ring_setup_is_cheap), T(eventfd_watch_rearms), T(hooks_run_every_iteration),
	   T(console_input_wake_and_flush), T(run_until_stop))
