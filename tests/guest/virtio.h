/* virtio-mmio (version 2) transport and split virtqueues, for the test
 * guest's device drivers (blk.c; net.c later).  Virtio 1.2: §4.2.2 (MMIO),
 * §2.7 (split virtqueues), §3.1 (initialisation).
 *
 * Typical driver:
 *
 *   struct virtio_dev *d = virtio_find(VIRTIO_ID_BLOCK, 0);
 *   if (virtio_negotiate(d, WANTED_FEATURES, &why)) return fail("%s", why);
 *   struct virtq vq;
 *   if (virtq_setup(&vq, d, 0, 128, &why)) return fail("%s", why);
 *   virtio_driver_ok(d);
 *   virtq_irq(&vq, true);                        // or leave it polled
 *   struct vq_seg s[] = { {hdr, 16, VQ_OUT}, {buf, 512, VQ_IN}, {st, 1, VQ_IN} };
 *   virtq_add(&vq, s, 3, cookie, 0);             // device-readable first
 *   virtq_kick(&vq);                             // notify if the device wants it
 *   virtq_wait(&vq, 1000000);                    // until a used buffer or 1 s
 *   while ((c = virtq_get(&vq, &len))) ...       // cookie, bytes written
 *
 * After each test the runner calls virtio_reset_all(), which resets every
 * device a driver touched, so the next test starts from a clean device and
 * the heap (rings, buffers) can be reused.
 */
#ifndef TG_VIRTIO_H
#define TG_VIRTIO_H

#include "guest.h"

/* MMIO registers (§4.2.2). */
#define VIRTIO_MMIO_MAGIC_VALUE        0x000
#define VIRTIO_MMIO_VERSION            0x004
#define VIRTIO_MMIO_DEVICE_ID          0x008
#define VIRTIO_MMIO_VENDOR_ID          0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES    0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES    0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL          0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX      0x034
#define VIRTIO_MMIO_QUEUE_NUM          0x038
#define VIRTIO_MMIO_QUEUE_READY        0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY       0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS   0x060
#define VIRTIO_MMIO_INTERRUPT_ACK      0x064
#define VIRTIO_MMIO_STATUS             0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW     0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH    0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW   0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH  0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW   0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH  0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION  0x0fc
#define VIRTIO_MMIO_CONFIG             0x100
#define VIRTIO_MMIO_MAGIC              0x74726976 /* "virt" */

/* Device status (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED      128

/* InterruptStatus bits. */
#define VIRTIO_INT_USED   1
#define VIRTIO_INT_CONFIG 2

/* Device-independent feature bits (§6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED   34
#define VIRTIO_F_IN_ORDER      35
#define BIT(n) (1ull << (n))

/* Device IDs (§5). */
#define VIRTIO_ID_NET   1
#define VIRTIO_ID_BLOCK 2

struct virtio_dev {
	uintptr_t base;        /* MMIO base (identity-mapped) */
	uint64_t size;         /* MMIO window size from the command line */
	unsigned irq;          /* GSI (IOAPIC pin) */
	uint32_t version, device_id, vendor_id;
	uint64_t offered;      /* device features (read by virtio_negotiate) */
	uint64_t features;     /* negotiated */
	bool touched;          /* initialised since the last reset */
	uint64_t irq_acked;    /* irq_count[vector] at the last InterruptACK */
	const char *problem;   /* non-NULL: unusable (bad magic, legacy, ...) */
};

#define VIRTIO_MAX_DEVS 32
extern struct virtio_dev virtio_devs[VIRTIO_MAX_DEVS];
extern int virtio_ndevs;

/* Parse "SIZE@ADDR:IRQ[:ID]" (virtio_mmio.device=) and probe the device
 * (magic, version, IDs).  Returns 0, or -1 if the word is malformed. */
int virtio_add_cmdline(const char *spec);
/* The nth (0-based) usable device with this ID, or NULL. */
struct virtio_dev *virtio_find(uint32_t device_id, int nth);

static inline uint32_t virtio_read(struct virtio_dev *d, unsigned off)
{
	return mmio_read32(d->base + off);
}
static inline void virtio_write(struct virtio_dev *d, unsigned off, uint32_t v)
{
	mmio_write32(d->base + off, v);
}

/* Reset (status 0, waiting until it reads back 0). */
void virtio_reset(struct virtio_dev *d);
/* Reset, ACKNOWLEDGE, DRIVER, read the offered features, accept
 * offered & want (VERSION_1 is required and always accepted), FEATURES_OK
 * and check it stuck.  0, or -1 with *why set (status FAILED written). */
int virtio_negotiate(struct virtio_dev *d, uint64_t want, const char **why);
/* Just read what the device offers (leaves it reset). */
uint64_t virtio_offered(struct virtio_dev *d);
void virtio_driver_ok(struct virtio_dev *d);
static inline bool virtio_has(const struct virtio_dev *d, unsigned bit)
{
	return (d->features >> bit) & 1;
}

/* Device-specific configuration, read consistently (retried while
 * ConfigGeneration changes, §4.2.2.2).  Accesses use the field's width. */
void virtio_config_read(struct virtio_dev *d, unsigned off, void *buf, unsigned len);
uint8_t virtio_config8(struct virtio_dev *d, unsigned off);
uint16_t virtio_config16(struct virtio_dev *d, unsigned off);
uint32_t virtio_config32(struct virtio_dev *d, unsigned off);
uint64_t virtio_config64(struct virtio_dev *d, unsigned off);

/* Interrupts: route the device's GSI through the IOAPIC (and ack anything
 * pending, so the edge-triggered pin sees the next rising edge), and read +
 * acknowledge InterruptStatus when its vector has fired since the last ack.
 * Returns the InterruptStatus bits acknowledged (0 if none). */
void virtio_irq_route(struct virtio_dev *d, bool enable);
uint32_t virtio_irq_ack(struct virtio_dev *d);
static inline uint64_t virtio_irq_count(const struct virtio_dev *d)
{
	return irq_count[gsi_vector(d->irq)];
}

/* ---- split virtqueues ---- */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then uint16_t used_event */
};
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};
struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* then uint16_t avail_event */
};
#define VIRTQ_USED_F_NO_NOTIFY 1

#define VQ_MAX_SIZE     1024
#define VQ_MAX_INDIRECT 64   /* entries per indirect table */

/* One buffer segment.  Device-readable (VQ_OUT) segments must come before
 * device-writable (VQ_IN) ones. */
enum vq_dir { VQ_OUT = 0, VQ_IN = 1 };
struct vq_seg {
	const volatile void *addr;
	uint32_t len;
	enum vq_dir dir;
};

struct virtq {
	struct virtio_dev *dev;
	uint16_t index, num;
	struct virtq_desc *desc;
	volatile struct virtq_avail *avail;
	volatile struct virtq_used *used;
	volatile uint16_t *used_event;  /* in the avail ring, after ring[num] */
	volatile uint16_t *avail_event; /* in the used ring, after ring[num] */
	uint16_t free_head, num_free;
	uint16_t avail_idx;   /* next avail->idx to publish */
	uint16_t added;       /* buffers added since the last kick */
	uint16_t last_used;   /* next used entry to consume */
	uint16_t inflight;
	bool event_idx, indirect, irq_on;
	struct virtq_desc *indirect_tables; /* num x VQ_MAX_INDIRECT */
	struct {
		void *cookie;
		uint16_t ndesc; /* descriptors in the main table */
	} *info;
	/* Statistics and device misbehaviour seen. */
	uint64_t kicks, notifies;
	const char *error;    /* set when the device returned a bad used id */
};

/* Set up queue `index` with `num` entries (0 or more than the device's
 * QueueNumMax: its maximum; otherwise rounded down to a power of two),
 * after virtio_negotiate and before virtio_driver_ok.  Starts polled. */
int virtq_setup(struct virtq *vq, struct virtio_dev *d, uint16_t index, uint16_t num,
		const char **why);

#define VQ_ADD_INDIRECT 1u /* use an indirect table if negotiated (and nseg > 1) */
/* Add one buffer (chain of segments).  Returns 0, or -1 if the ring has
 * too few free descriptors (or nseg is 0 / too many for an indirect
 * table).  The buffer is visible to the device at once; notify with
 * virtq_kick. */
int virtq_add(struct virtq *vq, const struct vq_seg *segs, unsigned nseg, void *cookie,
	      unsigned flags);
/* Notify the device unless it has said (EVENT_IDX avail_event or the
 * NO_NOTIFY flag) that it does not need it.  Returns true if notified. */
bool virtq_kick(struct virtq *vq);
/* Next used buffer: its cookie (and *len = bytes the device wrote), or NULL. */
void *virtq_get(struct virtq *vq, uint32_t *len);
static inline bool virtq_has_used(const struct virtq *vq)
{
	return vq->used->idx != vq->last_used;
}
/* Polled (no used-buffer interrupts: NO_INTERRUPT or a stale used_event)
 * or interrupt-driven (also routes/unroutes the device's IOAPIC pin). */
void virtq_irq(struct virtq *vq, bool on);
/* Wait up to timeout_us for a used buffer: spinning when polled, halting
 * until the device's interrupt otherwise.  false on timeout. */
bool virtq_wait(struct virtq *vq, uint64_t timeout_us);
/* Buffers in flight (added, not yet returned by virtq_get). */
static inline unsigned virtq_in_flight(const struct virtq *vq) { return vq->inflight; }

#endif
