/* 16550A UART model; the interface is in serial.h.
 *
 * Register behaviour follows the National Semiconductor PC16550D datasheet
 * ("the datasheet" below) and, where it leaves room, QEMU's hw/char/serial.c,
 * which Linux's 8250 driver is known to run on.  Transmission completes the
 * moment THR is written (THRE and TEMT are always set), and the baud rate
 * and line format have no effect.
 *
 * Design choices:
 * - Interrupts: IIR reports the highest-priority enabled source (datasheet
 *   table IV); the line is high while any source is reported.  OUT2 does not
 *   gate the line, as in QEMU: on a PC OUT2 drives the ISA IRQ buffer, and
 *   Linux sets it whenever it wants interrupts, so gating would only matter
 *   to guests that enable IER without OUT2.
 * - Receiver: a 16-byte FIFO, or a single holding register while FCR0 is
 *   clear (16450 mode).  Host input never overruns, since serial_rx() takes
 *   only what fits; OE arises only from loopback.  Below the trigger level
 *   IIR reports a character timeout (0x0c) rather than waiting four
 *   character times for one: the guest sees data as soon as it arrives.
 * - Locking: one mutex around every entry point.  set_irq is called with it
 *   held, so the order of level changes reaching the interrupt controller is
 *   the order they happened in; set_irq must not call back into serial_*.
 * - Output: the guest's bytes are the only unbounded input, so they go into
 *   a fixed buffer; a failing out_fd costs the data (counted), never a hang
 *   in a retry loop or a crash.  A blocking out_fd whose reader stalls does
 *   block the writing vCPU, as a full terminal would.
 */
#include "serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SERIAL_OUT_SIZE 4096

enum { REG_RBR_THR, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR, REG_MSR, REG_SCR };

#define IER_ERBFI 0x01  /* received data available */
#define IER_ETBEI 0x02  /* THR empty */
#define IER_ELSI  0x04  /* receiver line status */
#define IER_EDSSI 0x08  /* modem status */

#define IIR_MSI   0x00
#define IIR_NONE  0x01
#define IIR_THRI  0x02
#define IIR_RDA   0x04
#define IIR_RLS   0x06
#define IIR_CTI   0x0c  /* character timeout: same priority as RDA */
#define IIR_FIFO  0xc0  /* FIFOs enabled */

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_TRIGGER  0xc0

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80

struct serial {
	pthread_mutex_t lock;
	int out_fd;
	void (*set_irq)(void *opaque, int level);
	void *opaque;
	int irq_level;          /* last level passed to set_irq */

	uint8_t rx[SERIAL_FIFO_SIZE];
	unsigned rx_head, rx_count;
	uint8_t rbr;            /* last byte read, returned again when empty */
	bool oe;                /* LSR overrun, latched until LSR is read */
	bool thri;              /* THR-empty interrupt pending */

	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint8_t fcr;            /* FCR_ENABLE and FCR_TRIGGER as programmed */
	uint8_t msr_delta;      /* MSR bits 3:0, cleared by reading MSR */

	/* The host found the receiver full: tell it through rx_ready once
	 * space opens, so it need not poll. */
	bool rx_wanted;
	void (*rx_ready)(void *opaque);
	void *rx_opaque;
	void (*out_pending)(void *opaque);
	void *out_pending_opaque;

	uint64_t dropped;
	bool out_logged;          /* the first output failure was logged */
	size_t out_len;
	uint8_t out[SERIAL_OUT_SIZE];
};

struct serial *serial_new(int out_fd, void (*set_irq)(void *opaque, int level),
			  void *opaque)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s);
		return NULL;
	}
	s->out_fd = out_fd;
	s->set_irq = set_irq;
	s->opaque = opaque;
	/* The divisor latch is undefined after reset; start at 1 (115200
	 * baud), as firmware would leave it, so that a guest deriving its
	 * baud rate from the latch never divides by zero. */
	s->dll = 1;
	return s;
}

static void out_flush(struct serial *s)
{
	int saved = errno;      /* serial_io must not disturb the vCPU's errno */
	size_t done = 0;

	while (done < s->out_len) {
		ssize_t n = write(s->out_fd, s->out + done, s->out_len - done);

		if (n > 0)
			done += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else {
			/* EAGAIN, EPIPE, ENOSPC, a zero-length write...:
			 * retrying could spin forever under the lock, so the
			 * rest is lost; said once, counted always. */
			if (!s->out_logged) {
				s->out_logged = true;
				fprintf(stderr, "ember: serial console: writing the guest's output "
					"failed: %s (the VM goes on; lost output is only counted)\n",
					n < 0 ? strerror(errno) : "nothing written");
			}
			s->dropped += s->out_len - done;
			break;
		}
	}
	s->out_len = 0;
	errno = saved;
}

void serial_free(struct serial *s)
{
	if (!s)
		return;
	out_flush(s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static unsigned rx_capacity(const struct serial *s)
{
	return (s->fcr & FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1;
}

static void rx_push(struct serial *s, uint8_t b)
{
	if (s->rx_count < rx_capacity(s)) {
		s->rx[(s->rx_head + s->rx_count++) % SERIAL_FIFO_SIZE] = b;
		return;
	}
	/* Datasheet, LSR1: in FIFO mode the new character is lost; in 16450
	 * mode it overwrites the unread one in RBR. */
	s->oe = true;
	if (!(s->fcr & FCR_ENABLE))
		s->rx[s->rx_head] = b;
}

/* Modem status inputs.  Outside loopback the model is a null-modem cable
 * with the far end ready (DCD, DSR, CTS); in loopback the inputs are wired
 * to the MCR outputs (datasheet, MCR4), which Linux's autoconfig checks. */
static uint8_t modem_lines(uint8_t mcr)
{
	if (!(mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	return (mcr & MCR_DTR ? MSR_DSR : 0) | (mcr & MCR_RTS ? MSR_CTS : 0) |
	       (mcr & MCR_OUT1 ? MSR_RI : 0) | (mcr & MCR_OUT2 ? MSR_DCD : 0);
}

static uint8_t iir_source(const struct serial *s)
{
	static const uint8_t trigger[4] = { 1, 4, 8, 14 };

	if ((s->ier & IER_ELSI) && s->oe)
		return IIR_RLS;
	if ((s->ier & IER_ERBFI) && s->rx_count) {
		if ((s->fcr & FCR_ENABLE) && s->rx_count < trigger[s->fcr >> 6])
			return IIR_CTI;
		return IIR_RDA;
	}
	if ((s->ier & IER_ETBEI) && s->thri)
		return IIR_THRI;
	if ((s->ier & IER_EDSSI) && s->msr_delta)
		return IIR_MSI;
	return IIR_NONE;
}

static void update_irq(struct serial *s)
{
	int level = iir_source(s) != IIR_NONE;

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (s->set_irq)
		s->set_irq(s->opaque, level);
}

static void write_thr(struct serial *s, uint8_t b)
{
	/* Writing THR clears THRI and the instant transmission sets it again:
	 * the guest's driver sees THR empty after every byte. */
	s->thri = true;
	if (s->mcr & MCR_LOOP) {
		/* Datasheet, MCR4: the transmitter output is held marking and
		 * the shift register feeds the receiver. */
		rx_push(s, b);
		return;
	}
	if (s->out_fd < 0)
		return;
	s->out[s->out_len++] = b;
	if (b == '\n' || s->out_len == sizeof(s->out))
		out_flush(s);
	else if (s->out_len == 1 && s->out_pending)
		s->out_pending(s->out_pending_opaque);
}

static void write_fcr(struct serial *s, uint8_t v)
{
	/* Datasheet, FCR0: changing it clears both FIFOs, and the other bits
	 * are programmed only when it is set.  TX FIFO clear (FCR2) has
	 * nothing to do: transmission is instant. */
	if ((v ^ s->fcr) & FCR_ENABLE)
		s->rx_head = s->rx_count = 0;
	if (!(v & FCR_ENABLE)) {
		s->fcr &= (uint8_t)~FCR_ENABLE;
		return;
	}
	if (v & FCR_CLEAR_RX)
		s->rx_head = s->rx_count = 0;
	s->fcr = v & (FCR_ENABLE | FCR_TRIGGER);
}

static void write_mcr(struct serial *s, uint8_t v)
{
	uint8_t old = modem_lines(s->mcr), now, changed;

	s->mcr = v & 0x1f;      /* bits 7:5 are always 0 on the 16550A */
	now = modem_lines(s->mcr);
	changed = old ^ now;
	if (changed & MSR_CTS)
		s->msr_delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		s->msr_delta |= MSR_DDSR;
	if (changed & MSR_DCD)
		s->msr_delta |= MSR_DDCD;
	if ((old & MSR_RI) && !(now & MSR_RI))
		s->msr_delta |= MSR_TERI;       /* trailing edge only */
}

static void reg_write(struct serial *s, unsigned reg, uint8_t v)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (reg) {
	case REG_RBR_THR:
		if (dlab)
			s->dll = v;
		else
			write_thr(s, v);
		break;
	case REG_IER:
		if (dlab) {
			s->dlm = v;
			break;
		}
		/* Enabling ETBEI while THR is empty raises THRI even if an IIR
		 * read had cleared it: Linux's 8250 driver starts transmission
		 * this way and its startup test (UART_BUG_TXEN/THRE) expects
		 * it.  Disabling ETBEI drops the pending THRI, as in QEMU. */
		if ((v ^ s->ier) & IER_ETBEI)
			s->thri = v & IER_ETBEI;
		s->ier = v & 0x0f;      /* bits 7:4 read as 0 (Linux probes) */
		break;
	case REG_IIR_FCR:
		write_fcr(s, v);
		break;
	case REG_LCR:
		s->lcr = v;
		break;
	case REG_MCR:
		write_mcr(s, v);
		break;
	case REG_SCR:
		s->scr = v;
		break;
	default:                /* LSR, MSR: factory test only; ignored */
		break;
	}
}

static uint8_t reg_read(struct serial *s, unsigned reg)
{
	bool dlab = s->lcr & LCR_DLAB;
	uint8_t v;

	switch (reg) {
	case REG_RBR_THR:
		if (dlab)
			return s->dll;
		if (s->rx_count) {
			s->rbr = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
			s->rx_count--;
		}
		return s->rbr;
	case REG_IER:
		return dlab ? s->dlm : s->ier;
	case REG_IIR_FCR:
		v = iir_source(s);
		if (v == IIR_THRI)      /* datasheet: reading IIR clears THRI */
			s->thri = false;
		return v | ((s->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
	case REG_LCR:
		return s->lcr;
	case REG_MCR:
		return s->mcr;
	case REG_LSR:
		v = LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0) |
		    (s->oe ? LSR_OE : 0);
		s->oe = false;
		return v;
	case REG_MSR:
		v = modem_lines(s->mcr) | s->msr_delta;
		s->msr_delta = 0;
		return v;
	default:                /* REG_SCR */
		return s->scr;
	}
}

/* In loopback the receiver is cut off from the line (datasheet, MCR4): the
 * host's input waits for the guest to leave loopback instead of being lost. */
static size_t rx_space(const struct serial *s)
{
	return (s->mcr & MCR_LOOP) ? 0 : rx_capacity(s) - s->rx_count;
}

void serial_io(struct serial *s, uint16_t offset, uint8_t *data, bool is_write)
{
	if (offset > REG_SCR) {
		if (!is_write)
			*data = 0xff;   /* nothing decodes it: the bus floats */
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (is_write)
		reg_write(s, offset, *data);
	else
		*data = reg_read(s, offset);
	update_irq(s);
	/* An RBR read, an FCR write or leaving loopback can open space. */
	if (s->rx_wanted && rx_space(s)) {
		s->rx_wanted = false;
		if (s->rx_ready)
			s->rx_ready(s->rx_opaque);
	}
	pthread_mutex_unlock(&s->lock);
}

size_t serial_rx(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = rx_space(s);
	if (n > len)
		n = len;
	for (size_t i = 0; i < n; i++)
		rx_push(s, buf[i]);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_space(struct serial *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = rx_space(s);
	if (n == 0)
		s->rx_wanted = true;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void serial_set_rx_ready(struct serial *s, void (*fn)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&s->lock);
	s->rx_ready = fn;
	s->rx_opaque = opaque;
	pthread_mutex_unlock(&s->lock);
}

void serial_set_out_pending(struct serial *s, void (*fn)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&s->lock);
	s->out_pending = fn;
	s->out_pending_opaque = opaque;
	pthread_mutex_unlock(&s->lock);
}

void serial_flush(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	out_flush(s);
	pthread_mutex_unlock(&s->lock);
}

uint64_t serial_dropped(struct serial *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->dropped;
	pthread_mutex_unlock(&s->lock);
	return n;
}
