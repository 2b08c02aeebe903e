/* A fake guest for the virtio unit tests: RAM in a host buffer and the
 * driver's side of one split virtqueue (virtio 1.2 §2.7), written the way a
 * driver would (descriptors, ring entry, then the index).  Header-only so
 * each test file stays one translation unit. */
#ifndef EMBER_TESTS_VIRTIO_FAKE_H
#define EMBER_TESTS_VIRTIO_FAKE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "virtio/queue.h"

#define FAKE_RAM   (1u << 20)
#define FAKE_DESC  0x1000u     /* descriptor table */
#define FAKE_AVAIL 0x3000u     /* available ring */
#define FAKE_USED  0x4000u     /* used ring */
#define FAKE_BUF   0x10000u    /* first free byte for buffers */

struct fake {
	uint8_t *ram;
	struct guest_mem m;
	uint16_t num;
	uint16_t avail_idx;        /* the driver's next available index */
	uint16_t last_used;
};

static inline void fake_init(struct fake *f, uint16_t num)
{
	memset(f, 0, sizeof(*f));
	f->ram = aligned_alloc(4096, FAKE_RAM);
	memset(f->ram, 0, FAKE_RAM);
	gm_init(&f->m, f->ram, FAKE_RAM);
	f->num = num;
}

static inline void fake_free(struct fake *f)
{
	free(f->ram);
}

static inline void fake_desc(struct fake *f, uint64_t table, uint16_t i, uint64_t addr,
			     uint32_t len, uint16_t flags, uint16_t next)
{
	struct vq_desc d = { addr, len, flags, next };

	memcpy(f->ram + table + 16u * i, &d, sizeof(d));
}

static inline void fake_set16(struct fake *f, uint64_t gpa, uint16_t v)
{
	memcpy(f->ram + gpa, &v, 2);
}

static inline uint16_t fake_get16(struct fake *f, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, f->ram + gpa, 2);
	return v;
}

/* Make chain 'head' available (ring entry, then the index). */
static inline void fake_avail(struct fake *f, uint16_t head)
{
	fake_set16(f, FAKE_AVAIL + 4 + 2u * (f->avail_idx % f->num), head);
	f->avail_idx++;
	fake_set16(f, FAKE_AVAIL + 2, f->avail_idx);
}

static inline uint16_t fake_used_idx(struct fake *f)
{
	return fake_get16(f, FAKE_USED + 2);
}

/* Used element k (0-based since the queue started). */
static inline void fake_used(struct fake *f, uint16_t k, uint32_t *id, uint32_t *len)
{
	memcpy(id, f->ram + FAKE_USED + 4 + 8u * (k % f->num), 4);
	memcpy(len, f->ram + FAKE_USED + 8 + 8u * (k % f->num), 4);
}

static inline void fake_set_used_event(struct fake *f, uint16_t v)
{
	fake_set16(f, FAKE_AVAIL + 4 + 2u * f->num, v);
}

static inline uint16_t fake_avail_event(struct fake *f)
{
	return fake_get16(f, FAKE_USED + 4 + 8u * f->num);
}

static inline void fake_vq(const struct fake *f, struct vq *q)
{
	memset(q, 0, sizeof(*q));
	q->num = f->num;
	q->desc_gpa = FAKE_DESC;
	q->avail_gpa = FAKE_AVAIL;
	q->used_gpa = FAKE_USED;
}

#endif
