/* virtio-mmio transport, version 2 (virtio 1.2 §4.2.2), device side.
 *
 * One struct virtio_mmio per device: the register file, the feature and
 * status handshake, the virtqueues' configuration, InterruptStatus, and the
 * device-specific configuration space.  The device model (virtio/blk.c)
 * plugs in through struct virtio_dev_ops.
 *
 * Where devices live (the one allocator, documented in docs/architecture.md):
 * device i has its 4 KiB register window at VIRTIO_MMIO_BASE + i * 0x1000,
 * inside the 32-bit MMIO gap, and IOAPIC pin VIRTIO_MMIO_IRQ0 + i.  Linux
 * learns of it from "virtio_mmio.device=4K@ADDR:IRQ" on its command line.
 *
 * Threads: register accesses come from vCPU threads (virtio_mmio_io(), the
 * bus handler); queue work and interrupts come from the event-loop thread.
 * Both hold t->lock while they touch the transport or a queue, and device
 * callbacks are called with it held.
 *
 * Notifications: each queue has an eventfd (notify_fd[q]).  ember registers
 * it as a KVM ioeventfd on QueueNotify with the queue index as datamatch, so
 * a guest notify never leaves the kernel; a notify that does reach
 * virtio_mmio_io() (another width, no ioeventfd) writes the same eventfd.
 * The loop reads it and calls ops->notify().
 */
#ifndef EMBER_VIRTIO_MMIO_H
#define EMBER_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"
#include "mem.h"
#include "virtio/queue.h"

#define VIRTIO_MMIO_BASE      0xd0000000ULL
#define VIRTIO_MMIO_SIZE      0x1000ULL
#define VIRTIO_MMIO_IRQ0      5        /* first IOAPIC pin; 4 is COM1 */
#define VIRTIO_MMIO_MAX_DEVS  19       /* pins 5..23 */
#define VIRTIO_MMIO_MAX_QUEUES 4

/* Register offsets (§4.2.2, table 4.1). */
#define VIRTIO_MMIO_MAGIC_VALUE         0x000
#define VIRTIO_MMIO_VERSION             0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_SHM_SEL             0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW         0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH        0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW        0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH       0x0bc
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100

#define VIRTIO_MMIO_MAGIC   0x74726976u   /* "virt" */
#define VIRTIO_MMIO_VENDOR  0x52424d45u   /* "EMBR" */

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE  1u
#define VIRTIO_STATUS_DRIVER       2u
#define VIRTIO_STATUS_DRIVER_OK    4u
#define VIRTIO_STATUS_FEATURES_OK  8u
#define VIRTIO_STATUS_NEEDS_RESET  64u
#define VIRTIO_STATUS_FAILED       128u

/* InterruptStatus bits (§4.2.2). */
#define VIRTIO_INT_USED   1u
#define VIRTIO_INT_CONFIG 2u

/* Reserved feature bits (§6). */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX     29
#define VIRTIO_F_VERSION_1          32

/* The device's interrupt line (kvm.c: an irqfd on its IOAPIC pin).  raise
 * sends one interrupt; lower says InterruptStatus became 0 (a level-
 * triggered pin deasserts). */
struct virtio_irq {
	void (*raise)(void *opaque);
	void (*lower)(void *opaque);
	void *opaque;
};

struct virtio_mmio;

/* What a device model provides.  Every callback runs with t->lock held. */
struct virtio_dev_ops {
	uint32_t device_id;
	unsigned num_queues;           /* <= VIRTIO_MMIO_MAX_QUEUES */
	uint16_t queue_num_max;        /* QueueNumMax, <= VQ_NUM_MAX */
	/* Loop thread: queue q was notified (or may have work, e.g. after
	 * DRIVER_OK).  Called only while the device is live (DRIVER_OK, not
	 * NEEDS_RESET) and the queue enabled. */
	void (*notify)(void *dev, unsigned q);
	/* vCPU thread: the driver reset the device (q = -1) or disabled queue
	 * q.  The transport has already disabled the queues and bumped their
	 * generation, so completions of requests in flight no longer touch the
	 * rings; return once none of them can write guest memory any more
	 * (virtio 1.2 §2.4.1: no interaction with the queues after the reset
	 * completes), waiting on t->lock's condition if need be. */
	void (*reset)(void *dev, int q);
};

struct virtio_mmio_queue {
	struct vq vq;
	bool ready;                    /* QueueReady as the driver sees it */
	uint32_t gen;                  /* bumped when the queue is reset */
	int notify_fd;                 /* eventfd; see above */
	struct loop_efd watch;
	unsigned index;
	struct virtio_mmio *t;
};

struct virtio_mmio_stats {
	atomic_ulong notifies;         /* QueueNotify writes (ioeventfd or not) */
	atomic_ulong wakeups;          /* times the loop looked at a notified queue */
	atomic_ulong ignored;          /* of those, with the queue not ready or the
					* device not live (before DRIVER_OK,
					* NEEDS_RESET): nothing looked at */
	atomic_ulong resets;           /* device resets (Status = 0) */
	atomic_ulong bad_access;       /* wrong width/offset, read-only writes */
	atomic_ulong bad_queue;        /* queue config refused (size, addresses) */
	atomic_ulong bad_status;       /* status writes that clear bits, ... */
	atomic_ulong needs_reset;      /* times the device entered NEEDS_RESET */
	atomic_ulong irqs;             /* interrupts raised */
};

struct virtio_mmio {
	pthread_mutex_t lock;
	const struct virtio_dev_ops *ops;
	void *dev;
	const struct guest_mem *mem;
	struct virtio_irq irq;
	const char *name;              /* for log lines, e.g. "virtio-blk0" */

	uint64_t base;                 /* guest-physical register window */
	unsigned pin;                  /* IOAPIC pin */

	uint64_t host_features;        /* offered; VERSION_1 always */
	uint64_t driver_features;      /* as written by the driver */
	uint64_t features;             /* negotiated (valid from FEATURES_OK) */
	uint32_t dev_features_sel, drv_features_sel;
	uint32_t queue_sel;
	uint32_t status;
	atomic_uint isr;
	uint32_t config_gen;

	/* Device-specific configuration space (read-only to the driver). */
	const uint8_t *config;
	uint32_t config_len;

	struct virtio_mmio_queue q[VIRTIO_MMIO_MAX_QUEUES];
	struct virtio_mmio_stats stats;
	atomic_flag logged;            /* one log line per device */
};

/* Register window and IOAPIC pin of device slot i (< VIRTIO_MMIO_MAX_DEVS). */
uint64_t virtio_mmio_slot_base(unsigned i);
unsigned virtio_mmio_slot_pin(unsigned i);

/* Set up transport t for a device: features offered (VERSION_1 is added),
 * configuration space (kept by the device, must outlive t), one eventfd per
 * queue watched by loop (if not NULL; before loop_enable()).  Returns 0 or
 * -1 with e set. */
int virtio_mmio_init(struct virtio_mmio *t, const char *name, unsigned slot,
		     const struct virtio_dev_ops *ops, void *dev, uint64_t features,
		     const uint8_t *config, uint32_t config_len,
		     const struct guest_mem *mem, struct loop *loop,
		     const struct virtio_irq *irq, struct err *e);

/* Close the eventfds.  The loop must be finished (loop_fini) first.  Safe on
 * a zeroed struct that virtio_mmio_init() never saw. */
void virtio_mmio_fini(struct virtio_mmio *t);

/* Bus handler for [base, base + VIRTIO_MMIO_SIZE) (bus.h), opaque = t. */
void virtio_mmio_io(void *t, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Lock held.  Is the device live (DRIVER_OK set, NEEDS_RESET clear)? */
bool virtio_mmio_live(const struct virtio_mmio *t);

/* Lock held.  Set InterruptStatus bits and raise the interrupt. */
void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t bits);

/* Lock held.  The driver broke the device's rules in a way the device cannot
 * recover from (a corrupt ring): set DEVICE_NEEDS_RESET and, once DRIVER_OK
 * was set, send a configuration change notification (§2.1.2).  why is
 * logged (first problem per device only). */
void virtio_mmio_needs_reset(struct virtio_mmio *t, const char *why);

/* Log one line about a guest-caused problem on this device, only the first
 * time (later ones are only counted by the caller). */
void virtio_mmio_log_once(struct virtio_mmio *t, const char *what, const char *why);

#endif
