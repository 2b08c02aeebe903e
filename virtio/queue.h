/* Split virtqueue, device side (virtio 1.2 §2.7).
 *
 * Pure: no threads, no I/O, no allocation.  Every access to guest memory goes
 * through the checked accessor (mem.h): the three ring areas are checked once
 * when the queue is enabled (their host pointers stay valid for the VM's
 * lifetime), each descriptor is copied out of guest memory before it is
 * looked at, and each buffer a descriptor names is checked with gm_ptr().
 * The guest can change ring memory at any moment; nothing read from it is
 * trusted or read twice.
 *
 * The caller (virtio/mmio.c and the device) serialises all calls on one
 * queue; the guest driver runs concurrently on another CPU, which is what the
 * memory barriers inside are for.
 */
#ifndef EMBER_VIRTIO_QUEUE_H
#define EMBER_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"

/* Largest queue size this implementation accepts (transports offer at most
 * this as QueueNumMax; each device offers its own, see BLK_QUEUE_SIZE and
 * NET_QUEUE_SIZE).  1024 is QEMU's VIRTQUEUE_MAX_SIZE too. */
#define VQ_NUM_MAX   1024
/* Most descriptors in one chain, direct or through an indirect table: a
 * request of seg_max data segments plus header and status (virtio/blk.c). */
#define VQ_CHAIN_MAX 128

/* Descriptor flags (§2.7.5) and ring flags (§2.7.6, §2.7.8). */
#define VIRTQ_DESC_F_NEXT       1
#define VIRTQ_DESC_F_WRITE      2
#define VIRTQ_DESC_F_INDIRECT   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY  1

/* One descriptor as laid out in guest memory (§2.7.5; little-endian, which
 * is also the host's byte order on x86-64). */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* One buffer of a chain.  host is NULL when the buffer is not entirely inside
 * guest RAM (and len is not 0): the chain's bad_addr flag is then set, and
 * the device must not touch that buffer. */
struct vq_seg {
	uint8_t *host;
	uint64_t gpa;
	uint32_t len;
	bool write;                /* device-writable */
};

/* A descriptor chain popped from the available ring: its device-readable
 * buffers first (nread of them), then its device-writable ones. */
struct vq_chain {
	uint16_t head;             /* descriptor index to return in the used ring */
	uint16_t nseg;
	uint16_t nread;
	bool bad_addr;             /* some buffer lies outside guest RAM */
	uint64_t read_len, write_len;
	struct vq_seg seg[VQ_CHAIN_MAX];
};

struct vq {
	/* Set by the transport before vq_enable(). */
	uint16_t num;              /* queue size, a power of two <= VQ_NUM_MAX */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;            /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;             /* VIRTIO_F_INDIRECT_DESC negotiated */

	/* Runtime state, reset by vq_enable(). */
	const struct guest_mem *mem;
	uint8_t *avail;            /* flags, idx, ring[num], used_event */
	uint8_t *used;             /* flags, idx, ring[num], avail_event */
	uint16_t last_avail;       /* next available-ring slot to consume */
	uint16_t used_idx;         /* next used-ring slot to fill */
	uint16_t published;        /* used->idx as last written */
	uint16_t signalled;        /* used idx at the last notification decision */
	bool enabled;
	bool broken;               /* the ring itself is unusable until reset */
};

enum vq_pop_result {
	VQ_BROKEN = -1,            /* ring unusable (why set); device: NEEDS_RESET */
	VQ_EMPTY = 0,              /* nothing available */
	VQ_CHAIN = 1,              /* *c holds a well-formed chain */
	VQ_BAD_CHAIN = 2,          /* c->head is valid but the chain is malformed
				    * (why set): return it with used len 0 */
};

/* Check the queue's configuration against guest memory and start it from
 * index 0: num a power of two in 1..VQ_NUM_MAX, rings aligned as §2.7 asks
 * (descriptors 16, available ring 2, used ring 4) and entirely inside RAM.
 * Returns 0, or -1 with *why set (the queue stays disabled). */
int vq_enable(struct vq *q, const struct guest_mem *m, const char **why);

/* Forget the runtime state (device reset or QueueReady = 0). */
void vq_disable(struct vq *q);

/* Take the next available chain into *c.  Once it returned VQ_BROKEN the
 * queue stays broken (and keeps returning it) until vq_enable(). */
int vq_pop(struct vq *q, struct vq_chain *c, const char **why);

/* Put chain 'head' in the used ring with 'len' bytes written.  Not visible
 * to the driver until vq_publish(). */
void vq_push(struct vq *q, uint16_t head, uint32_t len);

/* Make pushed entries visible (used->idx) and say whether the driver wants a
 * used-buffer notification for them (§2.7.7: used_event with EVENT_IDX, else
 * the NO_INTERRUPT flag).  False when nothing new was pushed. */
bool vq_publish(struct vq *q);

/* Ask the driver to notify when it adds buffers past what was consumed
 * (§2.7.10: avail_event with EVENT_IDX; without it notifications are never
 * suppressed).  Returns true when buffers are already available again, in
 * which case the caller must keep processing (closes the race with a driver
 * that added a buffer before seeing the new avail_event). */
bool vq_arm_notify(struct vq *q);

/* §2.7.10: does moving an event index from old to new_idx pass event? */
static inline bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* Copy up to len bytes at byte offset 'off' of the chain's device-readable
 * area into dst.  Returns the bytes copied (short when the area is shorter
 * or crosses a buffer outside RAM). */
uint64_t vq_chain_read(const struct vq_chain *c, uint64_t off, void *dst, uint64_t len);

#endif
