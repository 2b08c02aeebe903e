#define CHECK_FILE "serial"
#include "../check.h"
#include "../../serial.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Register offsets and bits, spelled out independently of serial.c. */
enum { THR = 0, RBR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3,
       MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct irq {
	int level;
	int calls;
	int repeats;            /* calls that did not change the level */
};

static void fake_irq(void *opaque, int level)
{
	struct irq *q = opaque;

	if (level == q->level)
		q->repeats++;
	q->level = level;
	q->calls++;
}

static uint8_t rd(struct serial *s, uint16_t off)
{
	uint8_t v = 0x5a;

	serial_io(s, off, &v, false);
	return v;
}

static void wr(struct serial *s, uint16_t off, uint8_t v)
{
	serial_io(s, off, &v, true);
}

static size_t rx_str(struct serial *s, const char *str)
{
	return serial_rx(s, (const uint8_t *)str, strlen(str));
}

/* A packet-mode pipe (O_DIRECT): each write(2) arrives as one read(2), so a
 * test can tell how the model split its output.  The read end does not
 * block, so "nothing written yet" reads as -1/EAGAIN. */
static void packet_pipe(int fds[2])
{
	if (pipe2(fds, O_DIRECT) != 0) {
		perror("pipe2");
		exit(2);
	}
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

static ssize_t read_packet(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = 0;
	return n;
}

TEST(divisor_latch)
{
	int fds[2];
	char buf[64];
	struct serial *s;

	packet_pipe(fds);
	s = serial_new(fds[1], NULL, NULL);
	wr(s, IER, 0x05);
	wr(s, LCR, 0x83);
	wr(s, DLL, 0x0c);
	wr(s, DLM, 0x02);
	CHECK_EQ(rd(s, DLL), 0x0c);
	CHECK_EQ(rd(s, DLM), 0x02);
	CHECK_EQ(rd(s, LCR), 0x83);
	serial_flush(s);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), -1);   /* not THR */
	wr(s, LCR, 0x03);
	CHECK_EQ(rd(s, IER), 0x05);                             /* not DLM */
	wr(s, THR, 'x');
	serial_flush(s);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), 1);
	CHECK_EQ(buf[0], 'x');
	wr(s, LCR, 0x80);
	CHECK_EQ(rd(s, DLL), 0x0c);                             /* retained */
	CHECK_EQ(rd(s, DLM), 0x02);
	serial_free(s);
	close(fds[0]);
	close(fds[1]);
}

TEST(tx_line_buffered)
{
	int fds[2];
	char buf[64];
	struct serial *s;

	packet_pipe(fds);
	s = serial_new(fds[1], NULL, NULL);
	for (const char *p = "hello"; *p; p++)
		wr(s, THR, (uint8_t)*p);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EAGAIN);
	wr(s, THR, '\n');
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), 6);     /* one write */
	CHECK(strcmp(buf, "hello\n") == 0);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), -1);
	serial_free(s);
	close(fds[0]);
	close(fds[1]);
}

TEST(flush_partial_and_free)
{
	int fds[2];
	char buf[64];
	struct serial *s;

	packet_pipe(fds);
	s = serial_new(fds[1], NULL, NULL);
	wr(s, THR, 'a');
	wr(s, THR, 'b');
	serial_flush(s);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), 2);
	CHECK(strcmp(buf, "ab") == 0);
	serial_flush(s);                                        /* nothing left */
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), -1);
	wr(s, THR, 'c');
	serial_free(s);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), 1);
	CHECK(strcmp(buf, "c") == 0);
	close(fds[0]);
	close(fds[1]);
}

static int pending_calls;

static void on_out_pending(void *opaque)
{
	(void)opaque;
	pending_calls++;
}

/* out_pending fires once when a partial line starts waiting in the buffer
 * (the host then flushes it after a moment), not per byte, not for a
 * newline written at once, and not when output is discarded. */
TEST(out_pending_once_per_partial_line)
{
	int fds[2];
	char buf[64];
	struct serial *s;

	packet_pipe(fds);
	s = serial_new(fds[1], NULL, NULL);
	pending_calls = 0;
	serial_set_out_pending(s, on_out_pending, NULL);
	wr(s, THR, '$');
	CHECK_EQ(pending_calls, 1);
	wr(s, THR, ' ');
	CHECK_EQ(pending_calls, 1);
	serial_flush(s);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), 2);
	wr(s, THR, '\n');                                       /* written at once */
	CHECK_EQ(pending_calls, 1);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), 1);
	wr(s, THR, 'x');                                        /* a new partial line */
	CHECK_EQ(pending_calls, 2);
	wr(s, THR, '\n');
	CHECK_EQ(pending_calls, 2);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), 2);
	serial_free(s);
	s = serial_new(-1, NULL, NULL);
	serial_set_out_pending(s, on_out_pending, NULL);
	wr(s, THR, 'y');
	CHECK_EQ(pending_calls, 2);
	serial_free(s);
	close(fds[0]);
	close(fds[1]);
}

TEST(full_buffer_written)
{
	int fds[2];
	static char buf[8192];
	struct serial *s;
	ssize_t n;

	if (pipe(fds) != 0)
		return;
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	s = serial_new(fds[1], NULL, NULL);
	for (int i = 0; i < 5000; i++)
		wr(s, THR, 'a' + i % 26);
	n = read(fds[0], buf, sizeof(buf));
	CHECK(n >= 1024 && n < 5000);   /* some written without a newline */
	serial_flush(s);
	n += read(fds[0], buf + n, sizeof(buf) - (size_t)n);
	CHECK_EQ(n, 5000);
	CHECK_EQ(buf[4999], 'a' + 4999 % 26);
	CHECK_EQ(serial_dropped(s), 0);
	serial_free(s);
	close(fds[0]);
	close(fds[1]);
}

TEST(lsr_bits)
{
	struct serial *s = serial_new(-1, NULL, NULL);

	CHECK_EQ(rd(s, LSR), 0x60);                             /* THRE|TEMT */
	wr(s, THR, 'x');
	CHECK_EQ(rd(s, LSR), 0x60);                             /* instant TX */
	CHECK_EQ(rx_str(s, "k"), 1);
	CHECK_EQ(rd(s, LSR), 0x61);
	CHECK_EQ(rd(s, RBR), 'k');
	CHECK_EQ(rd(s, LSR), 0x60);
	CHECK_EQ(rd(s, RBR), 'k');      /* an empty RBR repeats the last byte */
	serial_free(s);
}

TEST(rx_fifo_order_and_capacity)
{
	struct serial *s = serial_new(-1, NULL, NULL);
	const char *in = "0123456789abcdefXYZ";

	/* 16450 mode (FIFOs off after reset): a single holding register. */
	CHECK_EQ(serial_rx_space(s), 1);
	CHECK_EQ(rx_str(s, "pq"), 1);
	CHECK_EQ(serial_rx_space(s), 0);
	CHECK_EQ(rx_str(s, "q"), 0);
	CHECK_EQ(rd(s, RBR), 'p');
	CHECK_EQ(rd(s, LSR) & 0x03, 0);                         /* no overrun */

	wr(s, FCR, 0x01);
	CHECK_EQ(serial_rx_space(s), 16);
	CHECK_EQ(rx_str(s, in), 16);
	CHECK_EQ(serial_rx_space(s), 0);
	CHECK_EQ(rx_str(s, in + 16), 0);
	CHECK_EQ(rd(s, LSR) & 0x03, 0x01);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(rd(s, RBR), in[i]);
	CHECK_EQ(serial_rx_space(s), 4);
	CHECK_EQ(rx_str(s, in + 16), 3);                        /* wraps */
	for (int i = 4; i < 19; i++)
		CHECK_EQ(rd(s, RBR), in[i]);
	CHECK_EQ(rd(s, LSR) & 0x01, 0);
	CHECK_EQ(serial_rx_space(s), 16);
	serial_free(s);
}

TEST(fcr_clears_fifo_and_iir_fifo_bits)
{
	struct irq q = { 0 };
	struct serial *s = serial_new(-1, fake_irq, &q);

	CHECK_EQ(rd(s, IIR), 0x01);                             /* 16450 mode */
	wr(s, FCR, 0x01);
	CHECK_EQ(rd(s, IIR), 0xc1);
	wr(s, IER, 0x01);
	CHECK_EQ(rx_str(s, "abc"), 3);
	CHECK_EQ(q.level, 1);
	wr(s, FCR, 0x03);                                       /* clear RX */
	CHECK_EQ(rd(s, LSR) & 0x01, 0);
	CHECK_EQ(serial_rx_space(s), 16);
	CHECK_EQ(q.level, 0);
	CHECK_EQ(rx_str(s, "de"), 2);
	wr(s, FCR, 0x05);                                       /* TX only */
	CHECK_EQ(rd(s, RBR), 'd');
	CHECK_EQ(rx_str(s, "f"), 1);
	wr(s, FCR, 0x00);                       /* disabling clears too */
	CHECK_EQ(rd(s, IIR), 0x01);
	CHECK_EQ(rd(s, LSR) & 0x01, 0);
	CHECK_EQ(serial_rx_space(s), 1);
	CHECK_EQ(q.level, 0);
	CHECK_EQ(q.repeats, 0);
	serial_free(s);
}

TEST(iir_priorities)
{
	struct irq q = { 0 };
	struct serial *s = serial_new(-1, fake_irq, &q);

	wr(s, FCR, 0x01);
	CHECK_EQ(rd(s, IIR), 0xc1);
	wr(s, MCR, 0x10);               /* loopback: sets MSR deltas */
	wr(s, IER, 0x0f);               /* all sources; THRI raised */
	for (int i = 0; i < 17; i++)    /* overrun the FIFO */
		wr(s, THR, 'a' + i);
	CHECK_EQ(q.level, 1);
	CHECK_EQ(rd(s, IIR), 0xc6);                             /* line status */
	CHECK_EQ(rd(s, IIR), 0xc6);                     /* until LSR is read */
	CHECK_EQ(rd(s, LSR) & 0x03, 0x03);
	CHECK_EQ(rd(s, IIR), 0xc4);                             /* data */
	for (int i = 0; i < 16; i++)
		CHECK_EQ(rd(s, RBR), 'a' + i);
	CHECK_EQ(rd(s, IIR), 0xc2);                             /* THR empty */
	CHECK_EQ(rd(s, IIR), 0xc0);             /* THRI cleared: modem status */
	CHECK_EQ(q.level, 1);
	CHECK_EQ(rd(s, MSR) & 0x0f, 0x0b);      /* DCTS|DDSR|DDCD */
	CHECK_EQ(rd(s, IIR), 0xc1);
	CHECK_EQ(q.level, 0);
	CHECK_EQ(q.repeats, 0);
	serial_free(s);
}

TEST(rx_trigger_level)
{
	struct serial *s = serial_new(-1, NULL, NULL);

	wr(s, FCR, 0x81);                                       /* trigger 8 */
	wr(s, IER, 0x01);
	CHECK_EQ(rx_str(s, "1234567"), 7);
	CHECK_EQ(rd(s, IIR), 0xcc);             /* below trigger: timeout */
	CHECK_EQ(rx_str(s, "8"), 1);
	CHECK_EQ(rd(s, IIR), 0xc4);
	wr(s, FCR, 0xc1);                       /* trigger 14, FIFO kept */
	CHECK_EQ(rd(s, IIR), 0xcc);
	CHECK_EQ(rd(s, LSR) & 0x01, 0x01);
	wr(s, FCR, 0x01);                                       /* trigger 1 */
	CHECK_EQ(rd(s, IIR), 0xc4);
	wr(s, FCR, 0x00);
	CHECK_EQ(rx_str(s, "z"), 1);
	CHECK_EQ(rd(s, IIR), 0x04);             /* 16450 mode: plain RDA */
	serial_free(s);
}

TEST(thri_on_etbei_edge)
{
	struct irq q = { 0 };
	struct serial *s = serial_new(-1, fake_irq, &q);

	CHECK_EQ(q.calls, 0);
	wr(s, IER, 0x02);
	CHECK_EQ(q.level, 1);
	CHECK_EQ(rd(s, IIR), 0x02);
	CHECK_EQ(q.level, 0);                   /* reading IIR cleared THRI */
	CHECK_EQ(rd(s, IIR), 0x01);
	wr(s, IER, 0x02);                       /* no edge: stays clear */
	CHECK_EQ(rd(s, IIR), 0x01);
	wr(s, IER, 0x00);                       /* Linux's THRE re-assert test */
	wr(s, IER, 0x02);
	CHECK_EQ(q.level, 1);
	CHECK_EQ(rd(s, IIR), 0x02);
	wr(s, THR, 'x');                        /* each byte sent raises it */
	CHECK_EQ(q.level, 1);
	wr(s, IER, 0x00);                       /* masked */
	CHECK_EQ(q.level, 0);
	CHECK_EQ(rd(s, IIR), 0x01);
	CHECK_EQ(q.calls, 6);
	CHECK_EQ(q.repeats, 0);
	serial_free(s);
}

TEST(irq_follows_rx)
{
	struct irq q = { 0 };
	struct serial *s = serial_new(-1, fake_irq, &q);

	wr(s, FCR, 0x01);
	CHECK_EQ(rx_str(s, "ab"), 2);
	CHECK_EQ(q.level, 0);                   /* ERBFI still clear */
	wr(s, IER, 0x01);
	CHECK_EQ(q.level, 1);
	CHECK_EQ(rd(s, RBR), 'a');
	CHECK_EQ(q.level, 1);
	CHECK_EQ(rd(s, RBR), 'b');
	CHECK_EQ(q.level, 0);
	CHECK_EQ(rx_str(s, "c"), 1);
	CHECK_EQ(q.level, 1);
	CHECK_EQ(rd(s, MCR) & 0x08, 0);         /* raised without OUT2 */
	CHECK_EQ(rd(s, RBR), 'c');
	CHECK_EQ(q.level, 0);
	CHECK_EQ(q.calls, 4);
	CHECK_EQ(q.repeats, 0);
	serial_free(s);
}

TEST(loopback)
{
	int fds[2];
	char buf[64];
	struct serial *s;

	packet_pipe(fds);
	s = serial_new(fds[1], NULL, NULL);
	CHECK_EQ(rd(s, MSR), 0xb0);             /* DCD|DSR|CTS, no deltas */
	wr(s, MCR, 0x1a);                       /* Linux autoconfig's probe */
	CHECK_EQ(rd(s, MSR) & 0xf0, 0x90);
	wr(s, MCR, 0x15);
	CHECK_EQ(rd(s, MSR), 0x6b);             /* DSR|RI; DCTS|DDSR|DDCD */
	wr(s, MCR, 0x10);
	CHECK_EQ(rd(s, MSR), 0x06);             /* DDSR, TERI */
	CHECK_EQ(serial_rx_space(s), 0);        /* cut off from the host */
	CHECK_EQ(rx_str(s, "h"), 0);
	wr(s, THR, 'L');
	wr(s, THR, '\n');                       /* 16450 mode: overwrites */
	CHECK_EQ(rd(s, LSR), 0x63);             /* DR|OE|THRE|TEMT */
	CHECK_EQ(rd(s, LSR), 0x61);             /* OE cleared by reading */
	CHECK_EQ(rd(s, RBR), '\n');
	wr(s, FCR, 0x01);
	for (int i = 0; i < 17; i++)
		wr(s, THR, 'A' + i);
	CHECK_EQ(rd(s, LSR) & 0x03, 0x03);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(rd(s, RBR), 'A' + i);  /* the 17th byte was lost */
	CHECK_EQ(rd(s, LSR) & 0x03, 0);
	serial_flush(s);
	CHECK_EQ(read_packet(fds[0], buf, sizeof(buf)), -1);    /* not sent */
	wr(s, MCR, 0x00);
	CHECK_EQ(rd(s, MSR), 0xb0 | 0x0b);
	CHECK_EQ(rx_str(s, "h"), 1);
	serial_free(s);
	close(fds[0]);
	close(fds[1]);
}

TEST(scratch_and_register_readback)
{
	struct serial *s = serial_new(-1, NULL, NULL);

	CHECK_EQ(rd(s, SCR), 0);
	wr(s, SCR, 0xa5);
	CHECK_EQ(rd(s, SCR), 0xa5);
	wr(s, SCR, 0x5a);
	CHECK_EQ(rd(s, SCR), 0x5a);
	wr(s, IER, 0xff);
	CHECK_EQ(rd(s, IER), 0x0f);             /* Linux's IER probe */
	wr(s, MCR, 0xff);
	CHECK_EQ(rd(s, MCR), 0x1f);
	wr(s, LSR, 0x00);                       /* read-only in practice */
	wr(s, MSR, 0x00);
	CHECK_EQ(rd(s, LSR), 0x60);
	serial_free(s);
}

TEST(discard_without_fd)
{
	struct irq q = { 0 };
	struct serial *s = serial_new(-1, fake_irq, &q);

	wr(s, IER, 0x02);
	for (int i = 0; i < 10000; i++)
		wr(s, THR, i % 7 ? 'x' : '\n');
	serial_flush(s);
	CHECK_EQ(serial_dropped(s), 0);
	CHECK_EQ(q.level, 1);                   /* still a working UART */
	CHECK_EQ(rd(s, IIR), 0x02);
	serial_free(s);
}

TEST(unknown_offset)
{
	struct serial *s = serial_new(-1, NULL, NULL);

	wr(s, SCR, 0x11);
	wr(s, 8, 0x22);
	wr(s, 0xffff, 0x33);
	CHECK_EQ(rd(s, 8), 0xff);
	CHECK_EQ(rd(s, 0xffff), 0xff);
	CHECK_EQ(rd(s, SCR), 0x11);
	CHECK_EQ(rd(s, LSR), 0x60);
	serial_free(s);
}

TEST(failed_writes_dropped)
{
	int fds[2];
	char fill[4096];
	struct serial *s;

	/* EAGAIN: a full non-blocking pipe must not stall the vCPU. */
	if (pipe2(fds, O_NONBLOCK) != 0)
		return;
	memset(fill, 'f', sizeof(fill));
	while (write(fds[1], fill, sizeof(fill)) > 0)
		;
	s = serial_new(fds[1], NULL, NULL);
	for (const char *p = "lost\n"; *p; p++)
		wr(s, THR, (uint8_t)*p);
	CHECK_EQ(serial_dropped(s), 5);
	wr(s, THR, '!');
	serial_flush(s);
	CHECK_EQ(serial_dropped(s), 6);
	serial_free(s);
	close(fds[1]);

	/* EPIPE: the reader went away. */
	signal(SIGPIPE, SIG_IGN);
	close(fds[0]);
	if (pipe(fds) != 0)
		return;
	close(fds[0]);
	s = serial_new(fds[1], NULL, NULL);
	wr(s, THR, 'a');
	errno = ENOTTY;
	wr(s, THR, '\n');
	CHECK_EQ(errno, ENOTTY);        /* the vCPU thread's errno is left alone */
	CHECK_EQ(serial_dropped(s), 2);
	serial_free(s);
	close(fds[1]);
}

/* A blocking out_fd whose write(2) is cut short by a signal: the model must
 * go on after EINTR and after a partial write, losing and repeating nothing.
 * The socket's send buffer is full and as small as Linux allows (two ~2 KiB
 * chunks), so a write of the model's 4 KiB buffer blocks.  A reader thread
 * frees first_read bytes at 30 ms and the rest at 100 ms; SIGALRM (no
 * SA_RESTART) interrupts the blocked write at 60 ms: with nothing freed the
 * write fails with EINTR, with one chunk freed it returns short. */
struct drain {
	int fd;
	size_t first_read, want, got;
	char buf[1 << 16];
};

static void *drain_slowly(void *arg)
{
	struct drain *d = arg;
	struct timespec first = { 0, 30000000 }, second = { 0, 70000000 };
	struct timeval limit = { 2, 0 };        /* a lost byte fails, not hangs */
	ssize_t n;

	setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
	nanosleep(&first, NULL);
	d->got = 0;
	if (d->first_read && (n = read(d->fd, d->buf, d->first_read)) > 0)
		d->got = (size_t)n;
	nanosleep(&second, NULL);
	while (d->got < d->want) {
		n = read(d->fd, d->buf + d->got, d->want - d->got);
		if (n <= 0)
			break;
		d->got += (size_t)n;
	}
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void tx_interrupted(bool free_one_chunk)
{
	static struct drain d;
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval alarm_at = { .it_value = { 0, 60000 } };
	sigset_t alrm, old;
	pthread_t t;
	struct serial *s;
	int sv[2], tiny = 1;
	size_t fill = 0;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		exit(2);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &tiny, sizeof(tiny));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	memset(d.buf, 'F', 4096);
	while (fill < sizeof(d.buf) / 2 && (n = write(sv[0], d.buf, 4096)) > 0)
		fill += (size_t)n;
	fcntl(sv[0], F_SETFL, 0);
	CHECK(fill < sizeof(d.buf) / 2);
	d.fd = sv[1];
	d.first_read = free_one_chunk ? fill * 3 / 4 : 0;
	d.want = fill + 4096;

	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, &old);        /* the thread ignores it */
	if (pthread_create(&t, NULL, drain_slowly, &d) != 0)
		exit(2);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &alarm_at, NULL);

	s = serial_new(sv[0], NULL, NULL);
	for (int i = 0; i < 4096; i++)          /* fills the buffer: one write */
		wr(s, THR, 'a' + i % 26);
	pthread_join(t, NULL);
	CHECK_EQ(serial_dropped(s), 0);
	CHECK_EQ(d.got, d.want);
	for (size_t i = 0; i < 4096; i++)
		CHECK_EQ(d.buf[fill + i], 'a' + i % 26);
	serial_free(s);
	signal(SIGALRM, SIG_DFL);
	close(sv[0]);
	close(sv[1]);
}

TEST(tx_retries_after_eintr)
{
	tx_interrupted(false);
}

TEST(tx_resumes_short_write)
{
	tx_interrupted(true);
}

/* Random register traffic, as a hostile guest might send: the sanitizers
 * catch any out-of-bounds access, and the invariants below must hold. */
TEST(hostile_guest)
{
	struct irq q = { 0 };
	struct serial *s = serial_new(-1, fake_irq, &q);
	uint32_t x = 12345;
	uint8_t in[32] = "random host input, 32 bytes...";

	for (int i = 0; i < 200000; i++) {
		uint8_t v, iir;
		int level;

		x = x * 1103515245 + 12345;
		v = (uint8_t)(x >> 16);
		switch (x >> 29) {
		case 0:
			serial_rx(s, in, (x >> 8) % sizeof(in));
			break;
		case 1:
			wr(s, (x >> 24) & 7, v & ~0x10);  /* mostly no loopback */
			break;
		case 2:
			wr(s, (x >> 24) & 15, v);
			break;
		default:
			v = rd(s, (x >> 24) & 15);
			break;
		}
		CHECK(serial_rx_space(s) <= SERIAL_FIFO_SIZE);
		level = q.level;        /* reading IIR may clear THRI */
		iir = rd(s, IIR);
		CHECK((iir & 0x30) == 0);
		CHECK_EQ(level, !(iir & 0x01));
		CHECK(rd(s, LSR) & 0x60);
	}
	CHECK_EQ(q.repeats, 0);
	serial_free(s);
}

struct stream {
	struct serial *s;
	int n;
	atomic_bool stop;
};

static void *feed(void *arg)
{
	struct stream *st = arg;
	uint8_t chunk[SERIAL_FIFO_SIZE];

	/* Whole chunks, so that the FIFO is often written and read at once. */
	for (int i = 0; i < st->n && !atomic_load(&st->stop);) {
		size_t len = sizeof(chunk);

		if (len > (size_t)(st->n - i))
			len = (size_t)(st->n - i);
		for (size_t j = 0; j < len; j++)
			chunk[j] = (uint8_t)(i + (int)j);
		len = serial_rx(st->s, chunk, len);
		if (!len)
			sched_yield();  /* let the reader run, even on one CPU */
		i += (int)len;
	}
	return NULL;
}

/* One thread feeds bytes while this one drains them as a guest would: the
 * lock must keep the FIFO consistent, so every byte arrives once, in order. */
TEST(concurrent_rx_and_guest)
{
	struct serial *s = serial_new(-1, NULL, NULL);
	struct stream st = { .s = s, .n = 20000 };
	struct timespec now, end;
	pthread_t t;
	int got = 0, bad = 0;

	wr(s, FCR, 0x01);
	atomic_init(&st.stop, false);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += 30;       /* a lost byte must fail the test, not hang it */
	if (pthread_create(&t, NULL, feed, &st) != 0) {
		CHECK(!"pthread_create");
		serial_free(s);
		return;
	}
	while (got < st.n) {
		if (!(rd(s, LSR) & 0x01)) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > end.tv_sec)
				break;
			sched_yield();
			continue;
		}
		if (rd(s, RBR) != (uint8_t)got)
			bad++;
		got++;
	}
	atomic_store(&st.stop, true);
	pthread_join(t, NULL);
	CHECK_EQ(got, st.n);
	CHECK_EQ(bad, 0);
	CHECK_EQ(rd(s, LSR) & 0x03, 0);
	serial_free(s);
}

/* set_irq runs with the device lock held (serial.h): a thread that enters
 * the model from inside the callback must wait until the callback returns. */
struct lock_probe {
	struct serial *s;
	pthread_t thread;
	atomic_bool done;
	int calls, held;
};

static void *probe_space(void *arg)
{
	struct lock_probe *p = arg;

	serial_rx_space(p->s);
	atomic_store(&p->done, true);
	return NULL;
}

static void irq_probe_lock(void *opaque, int level)
{
	struct lock_probe *p = opaque;
	struct timespec ms = { 0, 1000000 };

	atomic_store(&p->done, false);
	if (pthread_create(&p->thread, NULL, probe_space, p) != 0)
		exit(2);
	for (int i = 0; i < 50 && !atomic_load(&p->done); i++)
		nanosleep(&ms, NULL);
	p->held += !atomic_load(&p->done);
	p->calls++;
}

TEST(set_irq_called_under_lock)
{
	struct lock_probe p = { .calls = 0 };

	atomic_init(&p.done, false);
	p.s = serial_new(-1, irq_probe_lock, &p);
	wr(p.s, IER, 0x02);                     /* THRI: line up */
	pthread_join(p.thread, NULL);
	CHECK_EQ(rd(p.s, IIR), 0x02);           /* line down */
	pthread_join(p.thread, NULL);
	CHECK_EQ(p.calls, 2);
	CHECK_EQ(p.held, 2);
	serial_free(p.s);
}

static void count_ready(void *opaque)
{
	(*(int *)opaque)++;
}

TEST(rx_ready_fires_once_when_space_opens)
{
	struct serial *s = serial_new(-1, NULL, NULL);
	int ready = 0;

	serial_set_rx_ready(s, count_ready, &ready);
	wr(s, FCR, 0x01);                       /* FIFO on: 16 bytes */
	CHECK_EQ(rx_str(s, "0123456789abcdefXYZ"), 16);
	rd(s, RBR);
	CHECK_EQ(ready, 0);                     /* nobody asked yet */
	CHECK_EQ(rx_str(s, "g"), 1);
	CHECK_EQ(serial_rx_space(s), 0);        /* full: arms the callback */
	rd(s, LSR);
	CHECK_EQ(ready, 0);                     /* no space opened */
	rd(s, RBR);
	CHECK_EQ(ready, 1);
	rd(s, RBR);
	CHECK_EQ(ready, 1);                     /* once per arming */
	CHECK_EQ(serial_rx_space(s), 2);
	rd(s, RBR);
	CHECK_EQ(ready, 1);
	serial_free(s);
}

CHECK_MAIN(T(divisor_latch), T(tx_line_buffered), T(flush_partial_and_free),
	   T(out_pending_once_per_partial_line),
	   T(full_buffer_written), T(lsr_bits), T(rx_fifo_order_and_capacity),
	   T(fcr_clears_fifo_and_iir_fifo_bits), T(iir_priorities),
	   T(rx_trigger_level), T(thri_on_etbei_edge), T(irq_follows_rx),
	   T(loopback), T(scratch_and_register_readback), T(discard_without_fd),
	   T(unknown_offset), T(failed_writes_dropped), T(tx_retries_after_eintr),
	   T(tx_resumes_short_write), T(hostile_guest),
	   T(concurrent_rx_and_guest), T(set_irq_called_under_lock),
	   T(rx_ready_fires_once_when_space_opens))
