/* Split virtqueue, device side: see queue.h.  Section numbers are virtio 1.2. */
#include "virtio/queue.h"

#include <stdatomic.h>
#include <string.h>

/* Ring layouts (§2.7.6, §2.7.8):
 *   available: le16 flags, le16 idx, le16 ring[num], le16 used_event
 *   used:      le16 flags, le16 idx, {le32 id, le32 len} ring[num], le16 avail_event */
#define AVAIL_SIZE(n) (6u + 2u * (uint64_t)(n))
#define USED_SIZE(n)  (6u + 8u * (uint64_t)(n))
#define DESC_SIZE(n)  (16u * (uint64_t)(n))

/* 16-bit ring fields.  The guest writes them concurrently, so every read is a
 * single atomic load (never torn, never re-read by the compiler); vq_enable()
 * checked the 2-byte alignment this needs. */
static uint16_t ld16(const uint8_t *p, int order)
{
	return __atomic_load_n((const uint16_t *)(const void *)p, order);
}

static void st16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)(void *)p, v, order);
}

int vq_enable(struct vq *q, const struct guest_mem *m, const char **why)
{
	uint8_t *desc;

	vq_disable(q);
	if (q->num == 0 || q->num > VQ_NUM_MAX || (q->num & (q->num - 1))) {
		*why = "queue size is not a power of two between 1 and the maximum";
		return -1;
	}
	/* §2.7: alignment of descriptor table 16, available ring 2, used ring 4. */
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3)) {
		*why = "ring address not aligned as virtio 1.2 §2.7 requires";
		return -1;
	}
	desc = gm_ptr(m, q->desc_gpa, DESC_SIZE(q->num));
	q->avail = gm_ptr(m, q->avail_gpa, AVAIL_SIZE(q->num));
	q->used = gm_ptr(m, q->used_gpa, USED_SIZE(q->num));
	if (!desc || !q->avail || !q->used) {
		q->avail = q->used = NULL;
		*why = "ring outside guest RAM";
		return -1;
	}
	q->mem = m;
	q->last_avail = q->used_idx = q->published = q->signalled = 0;
	q->broken = false;
	q->enabled = true;
	return 0;
}

void vq_disable(struct vq *q)
{
	q->enabled = false;
	q->broken = false;
	q->avail = q->used = NULL;
	q->mem = NULL;
}

static int bad(const char **why, const char *msg)
{
	*why = msg;
	return VQ_BAD_CHAIN;
}

/* Walk the chain that starts at descriptor 'idx' of the table at 'table_gpa'
 * holding 'tnum' descriptors.  'in_indirect' forbids a further indirect
 * table (§2.7.5.3.1). */
static int walk(struct vq *q, struct vq_chain *c, uint64_t table_gpa, uint32_t tnum,
		uint32_t idx, bool in_indirect, const char **why)
{
	/* Which descriptors of this table the chain went through: a second
	 * visit is a loop.  Tables hold at most max(VQ_NUM_MAX, VQ_CHAIN_MAX). */
	uint8_t seen[(VQ_NUM_MAX > VQ_CHAIN_MAX ? VQ_NUM_MAX : VQ_CHAIN_MAX) / 8];
	bool writing = c->nread != c->nseg;

	memset(seen, 0, sizeof(seen));
	for (;;) {
		struct vq_desc d;
		struct vq_seg *s;

		if (seen[idx / 8] & (1u << (idx % 8)))
			return bad(why, "descriptor chain loops");
		seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
		/* Copied out first: the guest may rewrite it while we look. */
		if (gm_read(q->mem, table_gpa + 16u * (uint64_t)idx, &d, sizeof(d)) < 0)
			return bad(why, "descriptor outside guest RAM");

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* §2.7.5.3.1: only with the feature, never inside an
			 * indirect table, never together with NEXT (so it ends
			 * the direct part: §2.7.5.3.2 has the device accept
			 * "zero or more normal chained descriptors followed by a
			 * single descriptor with VIRTQ_DESC_F_INDIRECT"); the
			 * table is a whole number of descriptors, and the chain
			 * with it stays within the limit. */
			if (!q->indirect)
				return bad(why, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
			if (in_indirect)
				return bad(why, "indirect descriptor inside an indirect table");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return bad(why, "indirect descriptor with the NEXT flag");
			if (d.len == 0 || d.len % 16)
				return bad(why, "indirect table length not a multiple of 16");
			if (d.len / 16 > (uint32_t)(VQ_CHAIN_MAX - c->nseg))
				return bad(why, "indirect table longer than the chain limit");
			if (!gm_ptr(q->mem, d.addr, d.len))
				return bad(why, "indirect table outside guest RAM");
			return walk(q, c, d.addr, d.len / 16, 0, true, why);
		}

		if (c->nseg == VQ_CHAIN_MAX)
			return bad(why, "descriptor chain longer than the limit");
		if (d.flags & VIRTQ_DESC_F_WRITE) {
			writing = true;
		} else if (writing) {
			/* §2.7.4.2: device-writable elements come after the
			 * device-readable ones. */
			return bad(why, "device-readable descriptor after a device-writable one");
		}
		s = &c->seg[c->nseg++];
		s->gpa = d.addr;
		s->len = d.len;
		s->write = writing;
		s->host = d.len ? gm_ptr(q->mem, d.addr, d.len) : NULL;
		if (d.len && !s->host)
			c->bad_addr = true;
		if (writing) {
			c->write_len += d.len;
		} else {
			c->read_len += d.len;
			c->nread++;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return VQ_CHAIN;
		if (d.next >= tnum)
			return bad(why, "next descriptor index out of range");
		idx = d.next;
	}
}

int vq_pop(struct vq *q, struct vq_chain *c, const char **why)
{
	uint16_t avail_idx, head;

	if (!q->enabled) {
		*why = "queue not enabled";
		return VQ_BROKEN;
	}
	if (q->broken) {
		*why = "queue broken until reset";
		return VQ_BROKEN;
	}
	/* Acquire: the ring entry and descriptors the driver wrote before
	 * publishing this index (§2.7.13, its write barrier) are read after. */
	avail_idx = ld16(q->avail + 2, __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail)
		return VQ_EMPTY;
	if ((uint16_t)(avail_idx - q->last_avail) > q->num) {
		/* The driver never has more than num buffers available. */
		q->broken = true;
		*why = "available index moved by more than the queue size";
		return VQ_BROKEN;
	}
	head = ld16(q->avail + 4 + 2u * (q->last_avail & (q->num - 1)), __ATOMIC_RELAXED);
	if (head >= q->num) {
		/* No valid id to return it under: the ring is corrupt. */
		q->broken = true;
		*why = "available ring entry names a descriptor beyond the queue size";
		return VQ_BROKEN;
	}
	q->last_avail++;
	c->head = head;
	c->nseg = c->nread = 0;
	c->bad_addr = false;
	c->read_len = c->write_len = 0;
	return walk(q, c, q->desc_gpa, q->num, head, false, why);
}

void vq_push(struct vq *q, uint16_t head, uint32_t len)
{
	uint32_t elem[2] = { head, len };

	if (!q->enabled)
		return;
	memcpy(q->used + 4 + 8u * (q->used_idx & (q->num - 1)), elem, sizeof(elem));
	q->used_idx++;
}

bool vq_publish(struct vq *q)
{
	uint16_t old;

	if (!q->enabled || q->used_idx == q->published)
		return false;
	/* Release: the used elements are visible before the index that
	 * covers them (§2.7.8.2, device side of §2.7.13's ordering). */
	st16(q->used + 2, q->used_idx, __ATOMIC_RELEASE);
	q->published = q->used_idx;
	old = q->signalled;
	q->signalled = q->used_idx;
	/* Full barrier: the index store must be visible before we read
	 * used_event / flags; otherwise a driver that just re-enabled
	 * interrupts and then checked the (old) index would sleep forever
	 * (store->load order, which x86 does not give without a fence). */
	atomic_thread_fence(memory_order_seq_cst);
	if (q->event_idx)
		return vring_need_event(ld16(q->avail + 4 + 2u * q->num, __ATOMIC_RELAXED),
					q->used_idx, old);
	return !(ld16(q->avail, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

bool vq_arm_notify(struct vq *q)
{
	if (!q->enabled || q->broken)
		return false;
	if (q->event_idx)
		st16(q->used + 4 + 8u * q->num, q->last_avail, __ATOMIC_RELAXED);
	/* Full barrier: avail_event must be visible before we re-read the
	 * available index, or a buffer added in between would get neither a
	 * notification from the driver nor a look from us (store->load). */
	atomic_thread_fence(memory_order_seq_cst);
	return ld16(q->avail + 2, __ATOMIC_RELAXED) != q->last_avail;
}

uint64_t vq_chain_read(const struct vq_chain *c, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *out = dst;
	uint64_t done = 0;

	for (uint16_t i = 0; i < c->nread && done < len; i++) {
		const struct vq_seg *s = &c->seg[i];
		uint64_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		if (!s->host)
			break;
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(out + done, s->host + off, n);
		done += n;
		off = 0;
	}
	return done;
}
