/* 16550A UART (the PC's COM1 at 0x3f8, IRQ 4).
 *
 * The device model is pure: register reads/writes come in through
 * serial_io() (called from a vCPU thread on a port-I/O exit), host input
 * through serial_rx() (called from the main thread), and the interrupt line
 * goes out through the set_irq callback given at creation (level: 1 while an
 * enabled interrupt is pending, 0 otherwise; it is called only on changes,
 * starting from 0, and regardless of MCR OUT2, as in QEMU).
 * All entry points take the device's internal lock, so they may be called
 * from different threads.  set_irq is called with that lock held, so that
 * level changes arrive in order: it must not call back into serial_*.
 * Guest output is buffered and written to out_fd in large writes: when a
 * newline arrives, when the buffer is full, and on serial_flush() and
 * serial_free(); the out_pending callback tells the host when a partial
 * line starts waiting, so it can flush it a little later.  out_fd < 0 discards output (--console none).  A write that
 * fails (EAGAIN on a non-blocking fd, EPIPE, ...) drops the buffered bytes
 * and counts them; the caller should ignore SIGPIPE if out_fd may be a pipe.
 */
#ifndef EMBER_SERIAL_H
#define EMBER_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ  4
#define SERIAL_FIFO_SIZE 16

struct serial;

/* Returns NULL only on allocation failure. */
struct serial *serial_new(int out_fd, void (*set_irq)(void *opaque, int level),
			  void *opaque);
void serial_free(struct serial *s);

/* One register access: offset 0..7 from the base, one byte of data.  For a
 * read, *data receives the register value; for a write, *data is written. */
void serial_io(struct serial *s, uint16_t offset, uint8_t *data, bool is_write);

/* Offer host input bytes to the receiver; returns how many were accepted
 * (the FIFO holds SERIAL_FIFO_SIZE, or 1 byte while the guest has FIFOs
 * disabled, and nothing is accepted while the guest has the UART in
 * loopback; the rest must be offered again later). */
size_t serial_rx(struct serial *s, const uint8_t *buf, size_t len);

/* Bytes the receiver can accept now.  A 0 answer arms the rx_ready
 * callback (see serial_set_rx_ready). */
size_t serial_rx_space(struct serial *s);

/* fn(opaque) is called once, from the vCPU thread with the UART lock held,
 * when the receiver has space again after serial_rx_space() returned 0, so
 * the host can wait for it instead of polling.  fn must not call serial_*. */
void serial_set_rx_ready(struct serial *s, void (*fn)(void *opaque), void *opaque);

/* fn(opaque) is called from the vCPU thread, with the UART lock held, when
 * guest output starts waiting in the buffer: a byte went into an empty
 * buffer and was not written at once (not a newline).  The host should call
 * serial_flush() soon, or a partial line (a shell prompt) never shows.
 * Once per buffer fill, so at most once per line.  fn must not call
 * serial_*. */
void serial_set_out_pending(struct serial *s, void (*fn)(void *opaque), void *opaque);

/* Write out any buffered guest output. */
void serial_flush(struct serial *s);

/* Guest output bytes lost so far because writing to out_fd failed. */
uint64_t serial_dropped(struct serial *s);

#endif
