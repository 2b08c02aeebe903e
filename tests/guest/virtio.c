/* virtio-mmio v2 transport and split virtqueues (see virtio.h). */
#include "virtio.h"

struct virtio_dev virtio_devs[VIRTIO_MAX_DEVS];
int virtio_ndevs;

/* "4K", "512", "0x200", "1M" */
static uint64_t parse_size(const char *s, const char **end)
{
	uint64_t v = parse_u64(s, &s);
	switch (*s) {
	case 'k': case 'K': v <<= 10; s++; break;
	case 'm': case 'M': v <<= 20; s++; break;
	case 'g': case 'G': v <<= 30; s++; break;
	}
	*end = s;
	return v;
}

int virtio_add_cmdline(const char *spec)
{
	const char *p = spec;
	uint64_t size = parse_size(p, &p);
	if (*p++ != '@' || p[0] != '0' || (p[1] != 'x' && p[1] != 'X'))
		return -1;
	uint64_t addr = parse_u64(p, &p);
	if (*p++ != ':')
		return -1;
	const char *q = p;
	uint64_t irq = parse_u64(p, &p);
	if (p == q || (*p && *p != ':' && *p != ' '))
		return -1;
	if (virtio_ndevs == VIRTIO_MAX_DEVS || size < 0x100 || addr < (3ull << 30) ||
	    addr + size > (4ull << 30))
		return -1; /* only the 32-bit MMIO window is mapped (uncached) */
	struct virtio_dev *d = &virtio_devs[virtio_ndevs++];
	*d = (struct virtio_dev){ .base = addr, .size = size, .irq = (unsigned)irq };
	uint32_t magic = virtio_read(d, VIRTIO_MMIO_MAGIC_VALUE);
	d->version = virtio_read(d, VIRTIO_MMIO_VERSION);
	d->device_id = virtio_read(d, VIRTIO_MMIO_DEVICE_ID);
	d->vendor_id = virtio_read(d, VIRTIO_MMIO_VENDOR_ID);
	if (magic != VIRTIO_MMIO_MAGIC)
		d->problem = "bad magic value";
	else if (d->version == 1)
		d->problem = "legacy virtio-mmio (version 1); QEMU: -global virtio-mmio.force-legacy=false";
	else if (d->version != 2)
		d->problem = "unknown virtio-mmio version";
	else if (d->device_id == 0)
		d->problem = "no device (ID 0)";
	else if (irq >= ioapic_pins())
		d->problem = "IRQ beyond the IOAPIC's pins";
	return 0;
}

struct virtio_dev *virtio_find(uint32_t device_id, int nth)
{
	for (int i = 0; i < virtio_ndevs; i++)
		if (!virtio_devs[i].problem && virtio_devs[i].device_id == device_id && nth-- == 0)
			return &virtio_devs[i];
	return NULL;
}

void virtio_reset(struct virtio_dev *d)
{
	virtio_write(d, VIRTIO_MMIO_STATUS, 0);
	/* §4.2.2.1: wait until a read of Status returns 0. */
	uint64_t dl = deadline_after_us(100000);
	while (virtio_read(d, VIRTIO_MMIO_STATUS) != 0 && !deadline_passed(dl))
		cpu_relax();
	d->touched = false;
	d->features = 0;
}

void virtio_reset_all(void)
{
	for (int i = 0; i < virtio_ndevs; i++) {
		struct virtio_dev *d = &virtio_devs[i];
		if (d->touched) {
			virtio_irq_route(d, false);
			virtio_reset(d);
		}
	}
}

static uint64_t read_features(struct virtio_dev *d)
{
	virtio_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = virtio_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
	virtio_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	uint64_t hi = virtio_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
	return lo | hi << 32;
}

uint64_t virtio_offered(struct virtio_dev *d)
{
	virtio_reset(d);
	virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	d->offered = read_features(d);
	virtio_reset(d);
	return d->offered;
}

int virtio_negotiate(struct virtio_dev *d, uint64_t want, const char **why)
{
	uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	virtio_reset(d);
	d->touched = true;
	d->irq_acked = virtio_irq_count(d);
	virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_write(d, VIRTIO_MMIO_STATUS, st);
	d->offered = read_features(d);
	if (!(d->offered & BIT(VIRTIO_F_VERSION_1))) {
		*why = "device does not offer VIRTIO_F_VERSION_1";
		goto failed;
	}
	uint64_t f = (d->offered & want) | BIT(VIRTIO_F_VERSION_1);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	st |= VIRTIO_STATUS_FEATURES_OK;
	virtio_write(d, VIRTIO_MMIO_STATUS, st);
	if (!(virtio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
		*why = "device cleared FEATURES_OK (rejected the feature subset)";
		goto failed;
	}
	d->features = f;
	return 0;
failed:
	virtio_write(d, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_FAILED);
	return -1;
}

void virtio_driver_ok(struct virtio_dev *d)
{
	virtio_write(d, VIRTIO_MMIO_STATUS, virtio_read(d, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
}

void virtio_config_read(struct virtio_dev *d, unsigned off, void *buf, unsigned len)
{
	uint8_t *b = buf;
	uintptr_t a = d->base + VIRTIO_MMIO_CONFIG + off;
	uint32_t gen;
	do {
		gen = virtio_read(d, VIRTIO_MMIO_CONFIG_GENERATION);
		unsigned i = 0;
		if (len == 2 && !(off & 1)) {
			uint16_t v = mmio_read16(a);
			memcpy(b, &v, 2);
			i = 2;
		}
		for (; i + 4 <= len && !(off & 3); i += 4) {
			uint32_t v = mmio_read32(a + i);
			memcpy(b + i, &v, 4);
		}
		for (; i < len; i++)
			b[i] = mmio_read8(a + i);
	} while (virtio_read(d, VIRTIO_MMIO_CONFIG_GENERATION) != gen);
}

uint8_t virtio_config8(struct virtio_dev *d, unsigned off)
{
	uint8_t v;
	virtio_config_read(d, off, &v, 1);
	return v;
}
uint16_t virtio_config16(struct virtio_dev *d, unsigned off)
{
	uint16_t v;
	virtio_config_read(d, off, &v, 2);
	return v;
}
uint32_t virtio_config32(struct virtio_dev *d, unsigned off)
{
	uint32_t v;
	virtio_config_read(d, off, &v, 4);
	return v;
}
uint64_t virtio_config64(struct virtio_dev *d, unsigned off)
{
	uint64_t v;
	virtio_config_read(d, off, &v, 8);
	return v;
}

void virtio_irq_route(struct virtio_dev *d, bool enable)
{
	ioapic_route(d->irq, enable);
	if (enable) {
		/* A line already high would never give the edge-triggered pin
		 * another edge: acknowledge whatever is pending. */
		uint32_t isr = virtio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
		if (isr)
			virtio_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
		d->irq_acked = virtio_irq_count(d);
	}
}

uint32_t virtio_irq_ack(struct virtio_dev *d)
{
	uint64_t c = virtio_irq_count(d);
	if (c == d->irq_acked)
		return 0;
	d->irq_acked = c;
	uint32_t isr = virtio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (isr)
		virtio_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	return isr;
}

/* ---- split virtqueues ---- */

int virtq_setup(struct virtq *vq, struct virtio_dev *d, uint16_t index, uint16_t num,
		const char **why)
{
	memset(vq, 0, sizeof(*vq));
	virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, index);
	if (virtio_read(d, VIRTIO_MMIO_QUEUE_READY)) {
		*why = "QueueReady already set after reset";
		return -1;
	}
	uint32_t max = virtio_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max == 0) {
		*why = "queue not available (QueueNumMax 0)";
		return -1;
	}
	if (num == 0 || num > max)
		num = (uint16_t)MIN(max, (uint32_t)VQ_MAX_SIZE);
	while (num & (num - 1))
		num &= num - 1;
	vq->dev = d;
	vq->index = index;
	vq->num = num;
	vq->event_idx = virtio_has(d, VIRTIO_F_EVENT_IDX);
	vq->indirect = virtio_has(d, VIRTIO_F_INDIRECT_DESC);
	vq->desc = alloc(16u * num, 4096);
	vq->avail = alloc(6u + 2u * num, 4096);
	vq->used = alloc(6u + 8u * num, 4096);
	vq->info = alloc(sizeof(*vq->info) * num, 16);
	if (vq->indirect)
		vq->indirect_tables = alloc(16u * VQ_MAX_INDIRECT * num, 16);
	if (!vq->desc || !vq->avail || !vq->used || !vq->info || (vq->indirect && !vq->indirect_tables)) {
		*why = "out of memory for the rings";
		return -1;
	}
	vq->used_event = &vq->avail->ring[num];
	vq->avail_event = (volatile uint16_t *)&vq->used->ring[num];
	for (uint16_t i = 0; i < num; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->num_free = num;
	vq->free_head = 0;
	virtq_irq(vq, false);

	virtio_write(d, VIRTIO_MMIO_QUEUE_NUM, num);
	uint64_t a = virt_to_phys(vq->desc);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)a);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(a >> 32));
	a = virt_to_phys(vq->avail);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
	a = virt_to_phys(vq->used);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)a);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(a >> 32));
	wmb();
	virtio_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	if (virtio_read(d, VIRTIO_MMIO_QUEUE_READY) != 1) {
		*why = "QueueReady did not read back 1";
		return -1;
	}
	return 0;
}

static void fill_desc(struct virtq_desc *d, const struct vq_seg *s, bool more, uint16_t next)
{
	d->addr = virt_to_phys(s->addr);
	d->len = s->len;
	d->flags = (uint16_t)((s->dir == VQ_IN ? VIRTQ_DESC_F_WRITE : 0) | (more ? VIRTQ_DESC_F_NEXT : 0));
	d->next = next;
}

int virtq_add(struct virtq *vq, const struct vq_seg *segs, unsigned nseg, void *cookie,
	      unsigned flags)
{
	bool indirect = (flags & VQ_ADD_INDIRECT) && vq->indirect && nseg > 1;
	unsigned need = indirect ? 1 : nseg;
	if (nseg == 0 || need > vq->num_free || (indirect && nseg > VQ_MAX_INDIRECT))
		return -1;
	uint16_t head = vq->free_head;
	if (indirect) {
		struct virtq_desc *t = &vq->indirect_tables[(unsigned)head * VQ_MAX_INDIRECT];
		for (unsigned i = 0; i < nseg; i++)
			fill_desc(&t[i], &segs[i], i + 1 < nseg, (uint16_t)(i + 1));
		struct virtq_desc *d = &vq->desc[head];
		vq->free_head = d->next;
		d->addr = virt_to_phys(t);
		d->len = nseg * 16u;
		d->flags = VIRTQ_DESC_F_INDIRECT;
	} else {
		/* Chain along the free list; the last descriptor's next keeps
		 * the free-list link (ignored without F_NEXT). */
		uint16_t i = head;
		for (unsigned k = 0; k < nseg; k++) {
			struct virtq_desc *d = &vq->desc[i];
			uint16_t next = d->next;
			fill_desc(d, &segs[k], k + 1 < nseg, next);
			if (k + 1 == nseg)
				vq->free_head = next;
			i = next;
		}
	}
	vq->num_free = (uint16_t)(vq->num_free - need);
	vq->info[head].cookie = cookie;
	vq->info[head].ndesc = (uint16_t)need;
	vq->avail->ring[vq->avail_idx & (vq->num - 1)] = head;
	vq->avail_idx++;
	vq->added++;
	vq->inflight++;
	/* Descriptors and ring entry before the index (§2.7.13). */
	wmb();
	vq->avail->idx = vq->avail_idx;
	return 0;
}

bool virtq_kick(struct virtq *vq)
{
	/* The index store before reading the device's suppression state. */
	mb();
	bool need;
	uint16_t new_idx = vq->avail_idx, old = (uint16_t)(new_idx - vq->added);
	if (vq->event_idx) {
		uint16_t ev = *vq->avail_event;
		need = (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old);
	} else {
		need = !(vq->used->flags & VIRTQ_USED_F_NO_NOTIFY);
	}
	vq->added = 0;
	vq->kicks++;
	if (need) {
		virtio_write(vq->dev, VIRTIO_MMIO_QUEUE_NOTIFY, vq->index);
		vq->notifies++;
	}
	return need;
}

void *virtq_get(struct virtq *vq, uint32_t *len)
{
	if (vq->used->idx == vq->last_used)
		return NULL;
	/* The index before the entry it covers. */
	rmb();
	volatile struct virtq_used_elem *e = &vq->used->ring[vq->last_used & (vq->num - 1)];
	uint32_t id = e->id, l = e->len;
	vq->last_used++;
	if (vq->irq_on && vq->event_idx) {
		/* Interrupt me when the device has used the next one. */
		*vq->used_event = vq->last_used;
		mb();
	} else if (vq->event_idx) {
		*vq->used_event = (uint16_t)(vq->last_used - 1);
	}
	if (id >= vq->num || !vq->info[id].cookie) {
		if (!vq->error)
			vq->error = "device returned a used id that is not in flight";
		return NULL;
	}
	void *cookie = vq->info[id].cookie;
	uint16_t n = vq->info[id].ndesc, last = (uint16_t)id;
	for (uint16_t k = 1; k < n; k++)
		last = vq->desc[last].next;
	vq->desc[last].next = vq->free_head;
	vq->free_head = (uint16_t)id;
	vq->num_free = (uint16_t)(vq->num_free + n);
	vq->info[id].cookie = NULL;
	vq->inflight--;
	if (len)
		*len = l;
	return cookie;
}

void virtq_irq(struct virtq *vq, bool on)
{
	vq->irq_on = on;
	if (vq->event_idx) {
		/* With EVENT_IDX avail->flags must stay 0 (§2.7.7.1); an
		 * event index just behind last_used means "not soon". */
		vq->avail->flags = 0;
		*vq->used_event = on ? vq->last_used : (uint16_t)(vq->last_used - 1);
	} else {
		vq->avail->flags = on ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT;
	}
	mb();
	if (vq->dev)
		virtio_irq_route(vq->dev, on);
}

bool virtq_wait(struct virtq *vq, uint64_t timeout_us)
{
	uint64_t d = deadline_after_us(timeout_us);
	if (!vq->irq_on) {
		for (unsigned i = 0;; i++) {
			if (virtq_has_used(vq))
				return true;
			if ((i & 255) == 255 && deadline_passed(d))
				return virtq_has_used(vq);
			cpu_relax();
		}
	}
	for (;;) {
		uint64_t seen = irq_total;
		virtio_irq_ack(vq->dev);
		if (virtq_has_used(vq))
			return true;
		if (!irq_sleep(seen, d))
			return virtq_has_used(vq);
	}
}
