/* 8250/16550A driver on COM1 (polled console output, polled and
 * interrupt-driven input) and the serial_* tests. */
#include "guest.h"

#define RBR 0 /* read, DLAB=0 */
#define THR 0 /* write, DLAB=0 */
#define DLL 0 /* DLAB=1 */
#define IER 1 /* DLAB=0 */
#define DLM 1 /* DLAB=1 */
#define IIR 2 /* read */
#define FCR 2 /* write */
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define SERIAL_GSI 4

static unsigned tx_room;       /* bytes the TX FIFO surely takes now */
static unsigned tx_fifo = 16;  /* 16 with the FIFO enabled, else 1 */

static uint8_t rd(unsigned r) { return inb(COM1 + r); }
static void wr(unsigned r, uint8_t v) { outb(COM1 + r, v); }

/* 115200 8N1, FIFOs on and cleared, no interrupts, DTR|RTS|OUT2. */
static void serial_setup(void)
{
	wr(IER, 0);
	wr(LCR, 0x83);
	wr(DLL, 1);
	wr(DLM, 0);
	wr(LCR, 0x03);
	wr(FCR, 0x07);
	wr(MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
	tx_fifo = 16;
	tx_room = 0;
}

void console_init(void) { serial_setup(); }

/* Put the port back the way console_init left it (after a faulting test). */
void serial_recover(void);
void serial_recover(void)
{
	ioapic_route(SERIAL_GSI, false);
	serial_setup();
}

/* Wait for THRE (bounded: a transmitter that never empties must not hang
 * the guest), then the FIFO takes tx_fifo bytes without further polling. */
static void tx_byte(uint8_t c)
{
	if (tx_room == 0) {
		for (unsigned i = 0; i < 1000000 && !(rd(LSR) & LSR_THRE); i++)
			cpu_relax();
		tx_room = tx_fifo;
	}
	wr(THR, c);
	tx_room--;
}

void console_putc(char c)
{
	if (c == '\n')
		tx_byte('\r');
	tx_byte((uint8_t)c);
}

void console_flush(void)
{
	for (unsigned i = 0; i < 1000000 && (rd(LSR) & (LSR_THRE | LSR_TEMT)) != (LSR_THRE | LSR_TEMT); i++)
		cpu_relax();
	tx_room = 0;
}

/* ---- tests ---- */

/* The runner checks this exact line appears on the VMM's output. */
#define TX_LINE "serial_tx: The quick brown fox jumps over the lazy dog 0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
/* The runner sends these lines (then a newline) after READY <test>. */
#define RX_POLL_LINE "ember-testguest-rx-poll 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define RX_IRQ_LINE "ember-testguest-rx-irq 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"
/* Sent interrupt-driven (THRE interrupts); the runner checks it too. */
#define TX_IRQ_LINE "serial_tx_irq: sent 16 bytes per THRE interrupt, 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"
/* Must never reach the output: sent in loopback mode (the runner checks). */
#define LOOP_TEXT "LOOPBACK-MUST-NOT-APPEAR-0123456789"

TESTCASE(serial_tx, NULL, 0)
{
	console_flush();
	puts_raw(TX_LINE "\n");
	console_flush();
	uint8_t lsr = rd(LSR);
	if ((lsr & (LSR_THRE | LSR_TEMT)) != (LSR_THRE | LSR_TEMT))
		return fail("LSR 0x%02x after the line: THRE/TEMT never set", lsr);
	return TEST_PASS;
}

/* Transmit driven by THRE interrupts, as Linux's 8250 driver does: enable
 * IER.THRI (an empty THR interrupts at once), then on each IRQ 4 check IIR
 * says THRE and refill the FIFO with up to 16 bytes. */
TESTCASE(serial_tx_irq, NULL, 0)
{
	const char *text = TX_IRQ_LINE "\r\n";
	size_t n = strlen(text), off = 0;
	unsigned vec = gsi_vector(SERIAL_GSI), irqs = 0, thre = 0;
	uint8_t odd_iir = 0;
	console_flush();
	(void)rd(IIR);
	uint64_t seen_vec = irq_count[vec];
	ioapic_route(SERIAL_GSI, true);
	wr(IER, 0x02);
	uint64_t d = deadline_after_us(2 * 1000 * 1000);
	bool done = false, timeout = false;
	while (!done) {
		uint64_t seen = irq_total;
		if (irq_count[vec] == seen_vec) {
			if (!irq_sleep(seen, d)) {
				timeout = true;
				break;
			}
			continue;
		}
		seen_vec = irq_count[vec];
		irqs++;
		uint8_t iir = rd(IIR);
		if ((iir & 0x0f) != 0x02) {
			if (!odd_iir)
				odd_iir = iir;
			continue;
		}
		thre++;
		if (off == n) {
			done = true; /* the last byte has left the FIFO */
			break;
		}
		for (unsigned i = 0; i < 16 && off < n; i++)
			wr(THR, (uint8_t)text[off++]);
	}
	wr(IER, 0);
	ioapic_route(SERIAL_GSI, false);
	(void)rd(IIR);
	tx_room = 0;
	if (timeout)
		return fail("%u of %u bytes sent; %u IRQ 4 (%u with IIR=THRE) in 2 s%s", (unsigned)off,
			    (unsigned)n, irqs, thre, odd_iir ? ", an IRQ without THRE in IIR" : "");
	if (odd_iir)
		info("an IRQ 4 came with IIR 0x%02x (not THRE)", odd_iir);
	info("%u bytes in %u THRE interrupts", (unsigned)n, thre);
	return TEST_PASS;
}

/* Empty the receiver.  RBR is read at least once even when LSR.DR is
 * clear: QEMU's 8250 only asks its chardev for more input on an RBR read
 * outside loopback mode, so after serial_loopback it would otherwise never
 * look at stdin again. */
static void rx_drain(void)
{
	(void)rd(RBR);
	for (int i = 0; i < 64 && (rd(LSR) & LSR_DR); i++)
		(void)rd(RBR);
}

TESTCASE(serial_loopback, NULL, 0)
{
	static const struct { uint8_t mcr, msr; } lines[] = {
		/* loopback: DTR->DSR(0x20) RTS->CTS(0x10) OUT1->RI(0x40) OUT2->DCD(0x80) */
		{ MCR_LOOP, 0x00 },
		{ MCR_LOOP | MCR_OUT2 | MCR_RTS, 0x90 }, /* what Linux's 8250 probe checks */
		{ MCR_LOOP | MCR_DTR, 0x20 },
		{ MCR_LOOP | MCR_OUT1, 0x40 },
		{ MCR_LOOP | 0x0f, 0xf0 },
	};
	const char *text = LOOP_TEXT;
	size_t n = strlen(text);
	char got[64];
	size_t have = 0;
	uint8_t bad_mcr = 0, bad_msr = 0, want_msr = 0;
	bool msr_ok = true, lsr_ok = true;
	uint8_t lsr_after = 0;

	console_flush();
	wr(FCR, 0x07);
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		wr(MCR, lines[i].mcr);
		uint8_t m = rd(MSR) & 0xf0;
		if (m != lines[i].msr && msr_ok) {
			msr_ok = false;
			bad_mcr = lines[i].mcr, bad_msr = m, want_msr = lines[i].msr;
		}
	}
	wr(MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2);
	rx_drain();
	/* 16 bytes at a time (the FIFO), each chunk read back before the next. */
	for (size_t off = 0; off < n && lsr_ok;) {
		size_t chunk = MIN(n - off, (size_t)16);
		for (size_t i = 0; i < chunk; i++)
			wr(THR, (uint8_t)text[off + i]);
		uint64_t d = deadline_after_us(100000);
		size_t want = have + chunk;
		while (have < want && !deadline_passed(d)) {
			if (rd(LSR) & LSR_DR)
				got[have++] = (char)rd(RBR);
			else
				cpu_relax();
		}
		if (have < want)
			lsr_ok = false;
		off += chunk;
	}
	lsr_after = rd(LSR);
	serial_setup();
	rx_drain();
	if (!msr_ok)
		return fail("loopback MSR with MCR=0x%02x is 0x%02x, want 0x%02x", bad_mcr, bad_msr,
			    want_msr);
	if (have < n)
		return fail("loopback: %u of %u bytes came back (LSR.DR never set for the rest)",
			    (unsigned)have, (unsigned)n);
	if (memcmp(got, text, n)) {
		got[n] = 0;
		for (size_t i = 0; i < n; i++)
			if (got[i] < 32 || got[i] > 126)
				got[i] = '?';
		return fail("loopback: sent \"%s\", got \"%s\"", text, got);
	}
	if (lsr_after & LSR_DR)
		return fail("LSR.DR still set (0x%02x) after reading every looped byte", lsr_after);
	return TEST_PASS;
}

TESTCASE(serial_regs, NULL, 0)
{
	const char *why = NULL;
	uint8_t v1 = 0, v2 = 0;
	console_flush();
	wr(IER, 0);
	/* Divisor latch: writes through DLAB=1 read back; DLAB=0 leaves them. */
	wr(LCR, 0x83);
	wr(DLL, 0x5a);
	wr(DLM, 0x01);
	v1 = rd(DLL), v2 = rd(DLM);
	if (!why && (v1 != 0x5a || v2 != 0x01))
		why = "divisor latch did not read back";
	if (!why && (rd(LCR) != 0x83))
		why = "LCR 0x83 did not read back";
	wr(LCR, 0x03);
	if (!why && rd(LCR) != 0x03)
		why = "LCR 0x03 did not read back";
	if (!why && rd(IER) != 0x00)
		why = "with DLAB=0, offset 1 is not IER (reads DLM?)";
	wr(IER, 0x05);
	v1 = rd(IER);
	wr(IER, 0);
	if (!why && v1 != 0x05)
		why = "IER 0x05 did not read back";
	wr(LCR, 0x83);
	v1 = rd(DLL), v2 = rd(DLM);
	wr(DLL, 1);
	wr(DLM, 0);
	wr(LCR, 0x03);
	if (!why && (v1 != 0x5a || v2 != 0x01))
		why = "divisor latch changed while DLAB=0";
	/* Scratch register. */
	wr(SCR, 0xa5);
	v1 = rd(SCR);
	wr(SCR, 0x5a);
	v2 = rd(SCR);
	if (!why && (v1 != 0xa5 || v2 != 0x5a))
		why = "scratch register did not read back";
	/* IIR: no interrupt pending (bit 0 set); FIFO-enabled bits follow FCR. */
	wr(FCR, 0x00);
	v1 = rd(IIR);
	wr(FCR, 0x07);
	v2 = rd(IIR);
	if (!why && (v1 & 0xc1) != 0x01)
		why = "IIR with FIFOs off is not 0x01 (no interrupt, FIFO bits clear)";
	if (!why && (v2 & 0xc1) != 0xc1)
		why = "IIR after FCR=0x07 lacks the FIFO-enabled bits 0xc0 or bit 0";
	uint8_t lsr = rd(LSR);
	if (!why && (lsr & (LSR_THRE | LSR_TEMT)) != (LSR_THRE | LSR_TEMT))
		why = "idle LSR lacks THRE|TEMT";
	serial_setup();
	if (why)
		return fail("%s (read 0x%02x 0x%02x)", why, v1, v2);
	return TEST_PASS;
}

/* Read one line (up to '\n', '\r' dropped) polling LSR.DR. */
static enum test_result rx_check(const char *got, size_t n, const char *want)
{
	if (n != strlen(want) || memcmp(got, want, n)) {
		char g[120];
		size_t k = MIN(n, sizeof(g) - 1);
		for (size_t i = 0; i < k; i++)
			g[i] = got[i] >= 32 && got[i] < 127 ? got[i] : '?';
		g[k] = 0;
		return fail("received %u bytes \"%s\", want \"%s\"", (unsigned)n, g, want);
	}
	return TEST_PASS;
}

/* How long the interactive tests wait for their line: 10 s, or
 * testguest.rx_timeout=SECS (a runner that holds many VMs at READY at once,
 * tests/integration/soak.sh, needs longer). */
static uint64_t rx_timeout_s(void)
{
	char buf[16];
	const char *v = cmdline_value("testguest.rx_timeout", buf, sizeof(buf));
	uint64_t s = v ? parse_u64(v, NULL) : 0;
	return s ? MIN(s, 3600u) : 10;
}

TESTCASE(serial_rx_poll, NULL, TF_INTERACTIVE)
{
	char buf[160];
	size_t n = 0;
	bool overrun = false;
	rx_drain();
	printf("READY serial_rx_poll\n");
	console_flush();
	uint64_t d = deadline_after_us(rx_timeout_s() * 1000 * 1000);
	for (;;) {
		uint8_t lsr = rd(LSR);
		if (lsr & LSR_OE)
			overrun = true;
		if (!(lsr & LSR_DR)) {
			if (deadline_passed(d))
				return fail("timed out after %u bytes (no newline within %lu s)", (unsigned)n,
					    rx_timeout_s());
			cpu_relax();
			continue;
		}
		char c = (char)rd(RBR);
		if (c == '\n')
			break;
		if (c != '\r' && n < sizeof(buf))
			buf[n++] = c;
	}
	if (overrun)
		return fail("LSR reported an overrun (OE)");
	return rx_check(buf, n, RX_POLL_LINE);
}

TESTCASE(serial_rx_irq, NULL, TF_INTERACTIVE)
{
	char buf[160];
	size_t n = 0;
	unsigned vec = gsi_vector(SERIAL_GSI), wakeups = 0, rda = 0;
	uint8_t bad_iir = 0;
	bool done = false;
	rx_drain();
	(void)rd(IIR);
	uint64_t c0 = irq_count[vec], seen_vec = c0;
	ioapic_route(SERIAL_GSI, true);
	wr(IER, 0x01); /* received data available */
	printf("READY serial_rx_irq\n");
	console_flush();
	uint64_t d = deadline_after_us(rx_timeout_s() * 1000 * 1000);
	while (!done) {
		uint64_t seen = irq_total;
		if (irq_count[vec] == seen_vec) {
			if (!irq_sleep(seen, d))
				break;
			continue;
		}
		/* IRQ 4 arrived: an interrupt handler would do just this. */
		seen_vec = irq_count[vec];
		wakeups++;
		uint8_t iir = rd(IIR);
		if ((iir & 0x0f) == 0x04 || (iir & 0x0f) == 0x0c)
			rda++;
		else if (!bad_iir && !(iir & 1))
			bad_iir = iir;
		while (rd(LSR) & LSR_DR) {
			char c = (char)rd(RBR);
			if (c == '\n') {
				done = true;
				break;
			}
			if (c != '\r' && n < sizeof(buf))
				buf[n++] = c;
		}
	}
	wr(IER, 0);
	ioapic_route(SERIAL_GSI, false);
	rx_drain();
	if (!done)
		return fail("timed out after %u bytes and %u IRQ 4 wakeups (irq_count[0x%x]: %lu -> %lu)",
			    (unsigned)n, wakeups, vec, c0, irq_count[vec]);
	if (rda == 0)
		return fail("IIR never showed received-data (0x04) or timeout (0x0c) on %u IRQs; last odd IIR 0x%02x",
			    wakeups, bad_iir);
	info("%u IRQ 4 wakeups for %u bytes", wakeups, (unsigned)n + 1);
	return rx_check(buf, n, RX_IRQ_LINE);
}
