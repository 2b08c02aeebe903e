/* libFuzzer target: the 16550A UART (serial.c) driven by a hostile guest
 * and by host input, with its output going to a pipe that works, fills up
 * or has lost its reader.
 *
 * Each input is one UART from power-on:
 *   byte 0      output: % 4 = 0 none (--console none), 1 a pipe the host
 *               drains, 2 a 4 KiB pipe drained only at the end (writes
 *               fail with EAGAIN once full), 3 a pipe whose reader is gone
 *               (EPIPE)
 *   then ops    op byte: bits 0-2 the kind, bits 3-6 the register offset
 *               (8-15: outside the UART); kinds:
 *               0 write the register (value: next byte), 1 read it,
 *               2 host input (length: next byte % 40, then those bytes),
 *               3 ask for receive space, 4 flush output, 5 read the drop
 *               counter, 6 the host drains the pipe, 7 the guest writes a
 *               burst to THR (count: next byte * 32, byte: the one after)
 *
 * Oracles, besides the sanitizers: the interrupt line only changes (never
 * the same level twice); LSR/IIR/IER/MCR never read back reserved bits;
 * offsets outside the UART read as 0xff; host input is accepted exactly up
 * to the space serial_rx_space() reported; rx_ready fires only after a
 * full receiver was reported, and leaves space; out_pending fires exactly
 * when a byte starts waiting in an empty buffer; and every byte the guest
 * transmitted (outside loopback and DLAB) is either written to the pipe or
 * counted in serial_dropped() once the UART is freed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include "serial.h"
#include "tests/fuzz/fuzz.h"

#define OUT_BUF 4096          /* serial.c's SERIAL_OUT_SIZE, as its contract implies */

enum { K_WRITE, K_READ, K_RX, K_SPACE, K_FLUSH, K_DROPPED, K_DRAIN, K_BURST };

static struct {
	int level;            /* the interrupt line as set_irq left it */
	bool rx_armed;        /* serial_rx_space() said 0 since the last rx_ready */
	bool rx_fired;
	bool expect_pending;  /* the THR write under way starts a buffer fill */
	bool pending_fired;
	uint8_t lcr, mcr;     /* as the guest last wrote them */
	size_t buffered;      /* bytes the model says wait in the output buffer */
	uint64_t sent;        /* bytes that must reach the pipe or the counter */
	uint64_t drained;     /* bytes read from the pipe */
	int rd;               /* the pipe's read end, or -1 */
} st;

static void set_irq(void *opaque, int level)
{
	(void)opaque;
	fz_check(level == 0 || level == 1);
	fz_check(level != st.level);
	st.level = level;
}

static void rx_ready(void *opaque)
{
	(void)opaque;
	fz_check(st.rx_armed);
	st.rx_armed = false;
	st.rx_fired = true;
}

static void out_pending(void *opaque)
{
	(void)opaque;
	fz_check(st.expect_pending);
	st.pending_fired = true;
}

static void drain(void)
{
	uint8_t buf[4096];
	ssize_t n;

	if (st.rd < 0)
		return;
	while ((n = read(st.rd, buf, sizeof(buf))) > 0)
		st.drained += (uint64_t)n;
}

static void check_space_after_ready(struct serial *s)
{
	if (st.rx_fired) {
		st.rx_fired = false;
		/* rx_ready means room: asking cannot re-arm it. */
		fz_check(serial_rx_space(s) > 0);
	}
}

static void guest_write(struct serial *s, uint16_t off, uint8_t v, bool has_out)
{
	bool thr = off == 0 && !(st.lcr & 0x80);
	bool counted = thr && !(st.mcr & 0x10) && has_out;

	if (counted) {
		st.buffered++;
		st.sent++;
		st.expect_pending = st.buffered == 1 && v != '\n' && st.buffered < OUT_BUF;
		if (v == '\n' || st.buffered == OUT_BUF)
			st.buffered = 0;    /* written out at once */
	}
	st.pending_fired = false;
	serial_io(s, off, &v, true);
	fz_check(st.pending_fired == (counted && st.expect_pending));
	st.expect_pending = false;
	if (off == 3)
		st.lcr = v;
	else if (off == 4)
		st.mcr = v & 0x1f;
	check_space_after_ready(s);
}

static void guest_read(struct serial *s, uint16_t off)
{
	bool dlab = st.lcr & 0x80;
	uint8_t v = 0x5a;

	serial_io(s, off, &v, false);
	if (off > 7)
		fz_check(v == 0xff);
	else if (off == 5)
		fz_check((v & 0x60) == 0x60 && !(v & 0x9c));      /* THRE|TEMT; no PE/FE/BI */
	else if (off == 2)
		fz_check(!(v & 0x30) && ((v & 0xc0) == 0 || (v & 0xc0) == 0xc0) &&
			 ((v & 0x0f) == 0x01 || (v & 0x0f) == 0x00 || (v & 0x0f) == 0x02 ||
			  (v & 0x0f) == 0x04 || (v & 0x0f) == 0x06 || (v & 0x0f) == 0x0c));
	else if (off == 1 && !dlab)
		fz_check(!(v & 0xf0));
	else if (off == 4)
		fz_check(v == st.mcr);
	else if (off == 3)
		fz_check(v == st.lcr);
	check_space_after_ready(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	unsigned mode = fz_u8(&f) % 4;
	int fds[2] = { -1, -1 }, out = -1;
	unsigned burst_left = OUT_BUF + 64;
	struct serial *s;

	memset(&st, 0, sizeof(st));
	st.rd = -1;
	signal(SIGPIPE, SIG_IGN);
	if (mode) {
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
			abort();
		if (mode == 2)
			(void)fcntl(fds[1], F_SETPIPE_SZ, 4096);
		if (mode == 3) {
			close(fds[0]);
			fds[0] = -1;
		}
		st.rd = fds[0];
		out = fds[1];
	}
	s = serial_new(out, set_irq, NULL);
	if (!s)
		abort();
	serial_set_rx_ready(s, rx_ready, NULL);
	serial_set_out_pending(s, out_pending, NULL);

	while (fz_left(&f)) {
		uint8_t op = fz_u8(&f);
		uint16_t off = (op >> 3) & 15;

		switch (op & 7) {
		case K_WRITE:
			guest_write(s, off, fz_u8(&f), out >= 0);
			break;
		case K_READ:
			guest_read(s, off);
			break;
		case K_RX: {
			size_t len = fz_u8(&f) % 40, space, got;
			const uint8_t *p = fz_take(&f, &len);

			space = serial_rx_space(s);
			if (space == 0)
				st.rx_armed = true;
			got = serial_rx(s, p, len);
			fz_check(got == (len < space ? len : space));
			break;
		}
		case K_SPACE:
			if (serial_rx_space(s) == 0)
				st.rx_armed = true;
			break;
		case K_FLUSH:
			serial_flush(s);
			st.buffered = 0;
			break;
		case K_DROPPED:
			fz_check(serial_dropped(s) <= st.sent);
			break;
		case K_DRAIN:
			if (mode != 2)
				drain();
			break;
		case K_BURST: {
			unsigned n = fz_u8(&f) * 32u;
			uint8_t b = fz_u8(&f);

			/* Enough to fill the output buffer once, no more:
			 * the byte-at-a-time calls are what costs. */
			if (n > burst_left)
				n = burst_left;
			burst_left -= n;
			for (unsigned i = 0; i < n; i++)
				guest_write(s, 0, b, out >= 0);
			break;
		}
		}
	}

	serial_flush(s);
	drain();
	fz_check(st.drained + serial_dropped(s) == st.sent);
	if (mode == 3)
		fz_check(serial_dropped(s) == st.sent);
	{
		uint64_t before = st.drained;

		serial_free(s);   /* flushes: nothing is left to write */
		drain();
		fz_check(st.drained == before);
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}

#ifdef FUZZ_SEEDS
static void op_write(struct fz_buf *b, unsigned reg, uint8_t v)
{
	fz_put8(b, (uint8_t)(reg << 3 | K_WRITE));
	fz_put8(b, v);
}

static void op_read(struct fz_buf *b, unsigned reg)
{
	fz_put8(b, (uint8_t)(reg << 3 | K_READ));
}

static void op_rx(struct fz_buf *b, const char *str)
{
	fz_put8(b, K_RX);
	fz_put8(b, (uint8_t)strlen(str));
	fz_put(b, str, strlen(str));
}

/* What Linux's 8250 driver does at probe and open, roughly: scratch and
 * loopback tests, divisor, line format, FIFOs, interrupts on. */
static void linux_init(struct fz_buf *b)
{
	op_write(b, 7, 0xa5);
	op_read(b, 7);
	op_write(b, 4, 0x10 | 0x0a);       /* loopback, RTS, OUT2 */
	op_read(b, 6);
	op_write(b, 4, 0x0b);
	op_write(b, 3, 0x80);              /* DLAB */
	op_write(b, 0, 1);
	op_write(b, 1, 0);
	op_read(b, 0);
	op_write(b, 3, 0x03);              /* 8N1 */
	op_write(b, 2, 0xc7);              /* FIFOs on, cleared, trigger 14 */
	op_read(b, 2);
	op_write(b, 1, 0x0f);              /* every interrupt */
	op_read(b, 2);
	op_read(b, 5);
}

void fuzz_seeds(fz_emit_fn *emit)
{
	static struct fz_buf b;

	/* Boot messages, then a prompt and a typed command echoed back. */
	b.n = 0;
	fz_put8(&b, 1);
	linux_init(&b);
	for (const char *p = "Linux version 6.1\n# "; *p; p++)
		op_write(&b, 0, (uint8_t)*p);
	op_rx(&b, "ls /\r");
	for (int i = 0; i < 6; i++) {
		op_read(&b, 2);
		op_read(&b, 5);
		op_read(&b, 0);
	}
	fz_put8(&b, K_FLUSH);
	fz_put8(&b, K_DRAIN);
	emit("console", &b);

	/* 16450 mode (FIFOs off), input overrunning the holding register in
	 * loopback, the host waiting for room. */
	b.n = 0;
	fz_put8(&b, 1);
	linux_init(&b);
	op_write(&b, 2, 0x00);
	op_rx(&b, "abc");
	fz_put8(&b, K_SPACE);
	op_read(&b, 0);
	op_write(&b, 4, 0x1f);
	op_write(&b, 0, 'x');
	op_write(&b, 0, 'y');
	op_read(&b, 5);
	op_read(&b, 6);
	op_write(&b, 4, 0x0b);
	op_read(&b, 0);
	op_rx(&b, "0123456789abcdefghij");
	emit("loopback-16450", &b);

	/* Output into a pipe that fills, and one without a reader. */
	for (int mode = 2; mode <= 3; mode++) {
		b.n = 0;
		fz_put8(&b, (uint8_t)mode);
		linux_init(&b);
		fz_put8(&b, K_BURST);
		fz_put8(&b, 200);
		fz_put8(&b, 'z');
		fz_put8(&b, K_DROPPED);
		op_write(&b, 0, '\n');
		fz_put8(&b, K_FLUSH);
		fz_put8(&b, K_DROPPED);
		emit(mode == 2 ? "pipe-full" : "pipe-broken", &b);
	}

	/* --console none, registers outside the UART. */
	b.n = 0;
	fz_put8(&b, 0);
	linux_init(&b);
	op_write(&b, 9, 1);
	op_read(&b, 12);
	op_write(&b, 0, 'q');
	emit("no-console", &b);
}
#endif
