/* The driver side of a device test (test_blk.c, test_net.c): the test sets
 * 't' to the device's transport and drives it through 32-bit register
 * accesses, as a guest driver would; the device's interrupt only counts in
 * 'raised'.  Static definitions, so include it in one test file each. */
#ifndef EMBER_TESTS_MMIO_DRIVER_H
#define EMBER_TESTS_MMIO_DRIVER_H

#include <stdint.h>

#include "virtio/mmio.h"

static struct virtio_mmio *t;      /* the transport under test */
static int raised;                 /* interrupts the device raised */

static void irq_raise(void *o)
{
	raised++;
}

static void irq_lower(void *o)
{
}

static const struct virtio_irq irq = { irq_raise, irq_lower, NULL };

static uint32_t rd(uint64_t off)
{
	uint32_t v;

	virtio_mmio_io(t, off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	virtio_mmio_io(t, off, (uint8_t *)&v, 4, true);
}

static uint64_t offered(void)
{
	uint64_t lo, hi;

	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	lo = rd(VIRTIO_MMIO_DEVICE_FEATURES);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	hi = rd(VIRTIO_MMIO_DEVICE_FEATURES);
	return lo | hi << 32;
}

/* The start of the driver's initialisation (virtio 1.2 §3.1.1): reset,
 * ACKNOWLEDGE|DRIVER, features (offered & want, plus VERSION_1),
 * FEATURES_OK.  The caller sets up its queues, then calls driver_ok(). */
static void driver_negotiate(uint64_t want)
{
	uint64_t feat = (offered() & want) | (1ULL << VIRTIO_F_VERSION_1);

	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)feat);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(feat >> 32));
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	   VIRTIO_STATUS_FEATURES_OK);
}

static void driver_ok(void)
{
	wr(VIRTIO_MMIO_STATUS, rd(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
}

#endif
