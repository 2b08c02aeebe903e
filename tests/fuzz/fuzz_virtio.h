/* What the virtio-mmio fuzz targets (fuzz_mmio.c, fuzz_blk.c, fuzz_net.c)
 * share: register accesses, ring and descriptor writes into guest RAM, the
 * driver's handshake, and running the real event loop.  Static, like
 * fuzz.h: each target is one translation unit. */
#ifndef EMBER_TESTS_FUZZ_VIRTIO_H
#define EMBER_TESTS_FUZZ_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "loop.h"
#include "tests/fuzz/fuzz.h"
#include "virtio/mmio.h"

/* One register access of len bytes (1-8) at off; returns what a read
 * read (the low 4 bytes). */
static inline uint32_t fzv_mmio(struct virtio_mmio *t, uint64_t off, uint32_t v, uint32_t len,
				bool write)
{
	uint8_t b[8] = { 0 };

	memcpy(b, &v, 4);
	virtio_mmio_io(t, off, b, len, write);
	memcpy(&v, b, 4);
	return v;
}

static inline void fzv_put16(uint8_t *ram, uint64_t gpa, uint16_t v)
{
	memcpy(ram + gpa, &v, 2);
}

static inline void fzv_put_desc(uint8_t *ram, uint64_t table, unsigned i, uint64_t addr,
				uint32_t len, uint16_t flags, uint16_t next)
{
	struct vq_desc d = { addr, len, flags, next };

	memcpy(ram + table + 16u * i, &d, 16);
}

static void fzv_irq_nop(void *opaque)
{
	(void)opaque;
}

static const struct virtio_irq fzv_irq_none = { fzv_irq_nop, fzv_irq_nop, NULL };

/* Where a queue's three rings go. */
struct fzv_ring {
	uint16_t num;
	uint64_t desc, avail, used;
};

/* Queue 'index': QueueSel, QueueNum, the ring addresses, QueueReady. */
static inline void fzv_queue(struct virtio_mmio *t, unsigned index, const struct fzv_ring *r)
{
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_SEL, index, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_NUM, r->num, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)r->desc, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(r->desc >> 32), 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)r->avail, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(r->avail >> 32), 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)r->used, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(r->used >> 32), 4, true);
	fzv_mmio(t, VIRTIO_MMIO_QUEUE_READY, 1, 4, true);
}

/* §3.1.1 up to FEATURES_OK: ACKNOWLEDGE | DRIVER, both feature words. */
static inline void fzv_features(struct virtio_mmio *t, uint64_t features)
{
	fzv_mmio(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1, 4, true);
	fzv_mmio(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32), 4, true);
	fzv_mmio(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		 VIRTIO_STATUS_FEATURES_OK, 4, true);
}

static inline void fzv_driver_ok(struct virtio_mmio *t)
{
	fzv_mmio(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK, 4, true);
}

/* The whole §3.1.1 initialisation with queues 0..n-1. */
static inline void fzv_handshake(struct virtio_mmio *t, uint64_t features,
				 const struct fzv_ring *rings, unsigned n)
{
	fzv_features(t, features);
	for (unsigned i = 0; i < n; i++)
		fzv_queue(t, i, &rings[i]);
	fzv_driver_ok(t);
}

/* A few iterations of the loop without waiting: notifications reach the
 * device, submitted I/O completes if it already has. */
static inline void fzv_run(struct loop *l)
{
	for (int i = 0; i < 4; i++)
		loop_once(l, false);
}

/* Run the loop until no more than 'idle' operations are in flight (up to
 * 'max' waits): disk I/O goes to io-wq workers and takes a while, and
 * only its completion exercises the device's used-ring path.  Only for
 * devices whose other operations all complete on their own. */
static inline void fzv_settle(struct loop *l, unsigned idle, int max)
{
	for (int i = 0; i < max && l->inflight > idle; i++)
		loop_once(l, true);
}

/* Back to a quiet device before the next input: reset (from the loop's own
 * thread a reset does not wait for I/O in flight), then let the I/O of the
 * previous input finish until only the 'idle' reads the device always has
 * pending (its eventfds) are left. */
static inline void fzv_quiesce(struct virtio_mmio *t, struct loop *l, unsigned idle)
{
	fzv_mmio(t, VIRTIO_MMIO_STATUS, 0, 4, true);
	for (int i = 0; i < 1000 && l->inflight > idle; i++)
		loop_once(l, false);
}

/* The 8-byte operations of the blk and net targets: op, offset (2),
 * width (1 << (byte & 3)), value (4). */
struct fzv_op {
	uint8_t op;
	uint16_t off;
	uint32_t width, value;
};

static inline struct fzv_op fzv_op(struct fz *f)
{
	struct fzv_op o;

	o.op = fz_u8(f);
	o.off = fz_u16(f);
	o.width = 1u << (fz_u8(f) & 3);
	o.value = fz_u32(f);
	return o;
}

/* The blk and net targets' inputs: a header of hdr bytes whose last byte
 * counts the 8-byte operations that follow (as many as the input holds),
 * then bytes for guest RAM.  Zeroes ram (ram_size bytes), copies those
 * bytes to ram + base (as many as fit) and returns the operations.  The
 * caller has checked size >= hdr. */
static inline struct fz fzv_input(const uint8_t *data, size_t size, size_t hdr, uint8_t *ram,
				  size_t ram_size, size_t base)
{
	size_t nops = data[hdr - 1], n;

	if (hdr + nops * 8 > size)
		nops = (size - hdr) / 8;
	memset(ram, 0, ram_size);
	n = size - hdr - nops * 8;
	if (n)
		memcpy(ram + base, data + hdr + nops * 8, n < ram_size - base ? n : ram_size - base);
	return fz_make(data + hdr, nops * 8);
}

#endif
