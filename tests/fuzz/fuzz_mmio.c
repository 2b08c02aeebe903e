/* libFuzzer target: the virtio-mmio register interface (virtio/mmio.c) in
 * every device state, behind a minimal fake device, with the real event
 * loop carrying notifications.  Guest RAM is 64 KiB.
 *
 * The fake device pops every chain a notified queue has, returns it with
 * its writable length, and asks for a reset when the ring is corrupt; the
 * input may also make it fail or interrupt at any time.  What varies per
 * input is what virtio_mmio_init() would have been given: the number of
 * queues, QueueNumMax, the features offered and the configuration space.
 *
 * Each input is one driver:
 *   byte 0      queues: % 4 + 1            byte 1  QueueNumMax: + 1
 *   bytes 2-9   features the device offers (VERSION_1 is always added)
 *   byte 10     configuration space length: % 65, then its bytes
 *   then ops    op byte % 10:
 *               0 write register (index into regs[] below, value 4)
 *               1 read register (index)
 *               2 any access: offset 2 (% 0x1000), width (1-8 from a
 *                 table), bit 7 of the width byte a write, value 4
 *               3 run the loop
 *               4 write 4 bytes of RAM (offset 2, value 4)
 *               5 set queue up: queue, QueueNum (1 << (byte % 9)), rings
 *                 at fixed places, QueueReady
 *               6 feature negotiation (features 8), bit 0 of the next
 *                 byte: DRIVER_OK too
 *               7 the driver posts a one-buffer chain: queue, descriptor,
 *                 buffer length 2, flags 1; then notifies
 *               8 device event while live: % 3: needs reset,
 *                 configuration change, used-buffer interrupt
 *               9 reset (Status = 0)
 *
 * Oracles, besides the sanitizers: constant registers read their values,
 * bad widths and offsets read zeros, the configuration space reads what
 * the device gave (zeros outside it); DRIVER_OK never stands without
 * FEATURES_OK, negotiated features are a subset of the offer with
 * VERSION_1; a ready queue has a valid size <= QueueNumMax and rings in
 * RAM, a queue that is not ready is not running; NEEDS_RESET sticks until
 * reset; reset leaves no interrupt and no ready queue; the device's reset
 * callback finds its queues already stopped; notify() is called only for a
 * live device and a ready queue; the interrupt is raised only with
 * InterruptStatus set and lowered only when it is clear. */
#include "tests/fuzz/fuzz_virtio.h"

#define RAM      (64u * 1024)
#define RING(q)  (0x3000u * (q))       /* desc; avail +0x1000, used +0x2000 */
#define BUFS     0xc000u
#define CFG_MAX  64

static uint8_t *ram;
static struct guest_mem mem;
static struct loop loop;
static struct virtio_mmio tr, *t = &tr;
static uint8_t config[CFG_MAX];
static struct vq_chain chain;
static bool needs_reset;               /* the harness saw NEEDS_RESET */

static void dev_notify(void *dev, unsigned q);
static void dev_reset(void *dev, int q);

static struct virtio_dev_ops ops = {
	.device_id = 0x1f, .num_queues = VIRTIO_MMIO_MAX_QUEUES, .queue_num_max = VQ_NUM_MAX,
	.notify = dev_notify, .reset = dev_reset,
};

static const uint16_t regs[32] = {
	VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_DEVICE_ID,
	VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL,
	VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL,
	VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY,
	VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK,
	VIRTIO_MMIO_STATUS, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
	VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
	VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, VIRTIO_MMIO_SHM_SEL,
	VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH, VIRTIO_MMIO_SHM_BASE_LOW,
	VIRTIO_MMIO_SHM_BASE_HIGH, VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_MMIO_CONFIG,
	VIRTIO_MMIO_CONFIG + 4, 0x0a8 /* unassigned */, 0x0fe /* misaligned */,
};

static void irq_raise(void *opaque)
{
	(void)opaque;
	fz_check(atomic_load(&t->isr) != 0);
}

static void irq_lower(void *opaque)
{
	(void)opaque;
	fz_check(atomic_load(&t->isr) == 0);
}

static const struct virtio_irq irq = { irq_raise, irq_lower, NULL };

static void dev_notify(void *dev, unsigned q)
{
	struct vq *vq = &t->q[q].vq;
	const char *why;

	(void)dev;
	fz_check(q < ops.num_queues && virtio_mmio_live(t) && t->q[q].ready);
	for (unsigned n = 0; n < 2u * VQ_NUM_MAX; n++) {
		int r = vq_pop(vq, &chain, &why);

		if (r == VQ_EMPTY && !vq_arm_notify(vq))
			break;
		if (r == VQ_BROKEN) {
			virtio_mmio_needs_reset(t, why);
			return;
		}
		if (r == VQ_CHAIN || r == VQ_BAD_CHAIN)
			vq_push(vq, chain.head, r == VQ_CHAIN ? (uint32_t)chain.write_len : 0);
	}
	if (vq_publish(vq))
		virtio_mmio_interrupt(t, VIRTIO_INT_USED);
}

static void dev_reset(void *dev, int q)
{
	(void)dev;
	for (unsigned i = 0; i < ops.num_queues; i++)
		if (q < 0 || (unsigned)q == i)
			fz_check(!t->q[i].ready && !t->q[i].vq.enabled);
}

static void check_state(void)
{
	uint32_t st = t->status;

	if (st & VIRTIO_STATUS_DRIVER_OK)
		fz_check(st & VIRTIO_STATUS_FEATURES_OK);
	if (st & VIRTIO_STATUS_FEATURES_OK)
		fz_check(!(t->features & ~t->host_features) &&
			 (t->features & (1ULL << VIRTIO_F_VERSION_1)));
	if (needs_reset)
		fz_check(st & VIRTIO_STATUS_NEEDS_RESET);
	needs_reset = st & VIRTIO_STATUS_NEEDS_RESET;
	for (unsigned i = 0; i < ops.num_queues; i++) {
		const struct virtio_mmio_queue *mq = &t->q[i];
		uint64_t n = mq->vq.num;

		if (!mq->ready) {
			fz_check(!mq->vq.enabled);
			continue;
		}
		fz_check(mq->vq.enabled && n && n <= ops.queue_num_max && !(n & (n - 1)));
		fz_check(gm_ptr(&mem, mq->vq.desc_gpa, 16 * n) &&
			 gm_ptr(&mem, mq->vq.avail_gpa, 6 + 2 * n) &&
			 gm_ptr(&mem, mq->vq.used_gpa, 6 + 8 * n));
		fz_check(mq->vq.event_idx == !!(t->features & (1ULL << VIRTIO_F_RING_EVENT_IDX)));
	}
	if (st == 0) {
		fz_check(atomic_load(&t->isr) == 0);
		for (unsigned i = 0; i < ops.num_queues; i++)
			fz_check(!t->q[i].ready);
	}
}

static void check_read(uint16_t off, uint32_t width, const uint8_t *b)
{
	uint32_t v;

	memcpy(&v, b, 4);
	if (off >= VIRTIO_MMIO_CONFIG) {
		uint32_t c = off - VIRTIO_MMIO_CONFIG;
		static const uint8_t zero[8];

		if (c < t->config_len && width <= t->config_len - c)
			fz_check(memcmp(b, config + c, width) == 0);
		else
			fz_check(memcmp(b, zero, width) == 0);
		return;
	}
	if (width != 4 || (off & 3)) {
		for (unsigned i = 0; i < width; i++)
			fz_check(b[i] == 0);
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		fz_check(v == VIRTIO_MMIO_MAGIC);
		break;
	case VIRTIO_MMIO_VERSION:
		fz_check(v == 2);
		break;
	case VIRTIO_MMIO_DEVICE_ID:
		fz_check(v == ops.device_id);
		break;
	case VIRTIO_MMIO_VENDOR_ID:
		fz_check(v == VIRTIO_MMIO_VENDOR);
		break;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		fz_check(v == (t->dev_features_sel > 1 ? 0 :
			       (uint32_t)(t->host_features >> (32 * t->dev_features_sel))));
		break;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		fz_check(v == (t->queue_sel < ops.num_queues ? ops.queue_num_max : 0));
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		fz_check(v == (t->queue_sel < ops.num_queues && t->q[t->queue_sel].ready));
		break;
	case VIRTIO_MMIO_STATUS:
		fz_check(v == t->status);
		break;
	}
}

static void reg_access(uint16_t off, uint32_t width, uint32_t v, bool write)
{
	uint8_t b[8];

	memset(b, 0xa5, sizeof(b));
	memcpy(b, &v, 4);
	virtio_mmio_io(t, off, b, width, write);
	if (!write)
		check_read(off, width, b);
	else if (off == VIRTIO_MMIO_STATUS && width == 4 && v == 0)
		needs_reset = false;    /* a reset: the one way to clear it */
}

static void init_once(void)
{
	struct err e;

	if (ram)
		return;
	ram = fz_ram(&mem, RAM);
	if (loop_init(&loop, 64, &e) < 0 ||
	    virtio_mmio_init(t, "fuzz-mmio", 0, &ops, NULL, 0, config, 0, &mem, &loop, &irq,
			     &e) < 0 ||
	    loop_enable(&loop, &e) < 0) {
		fprintf(stderr, "fuzz_mmio: %s\n", e.msg);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t widths[8] = { 1, 2, 4, 8, 3, 4, 4, 0 };
	struct fz f = fz_make(data, size);
	size_t clen;

	init_once();
	/* Quiet from the last input, then what virtio_mmio_init() would have
	 * set for this device. */
	fzv_quiesce(t, &loop, VIRTIO_MMIO_MAX_QUEUES);
	ops.num_queues = fz_u8(&f) % VIRTIO_MMIO_MAX_QUEUES + 1;
	ops.queue_num_max = (uint16_t)(fz_u8(&f) + 1);
	t->host_features = fz_u64(&f) | (1ULL << VIRTIO_F_VERSION_1);
	clen = fz_u8(&f) % (CFG_MAX + 1);
	memset(config, 0, sizeof(config));
	memcpy(config, fz_take(&f, &clen), clen);
	t->config_len = (uint32_t)clen;
	memset(ram, 0, RAM);
	needs_reset = false;
	check_state();

	while (fz_left(&f)) {
		switch (fz_u8(&f) % 10) {
		case 0: {
			uint16_t off = regs[fz_u8(&f) % 32];

			reg_access(off, 4, fz_u32(&f), true);
			break;
		}
		case 1:
			reg_access(regs[fz_u8(&f) % 32], 4, 0, false);
			break;
		case 2: {
			uint16_t off = fz_u16(&f) % VIRTIO_MMIO_SIZE;
			uint8_t w = fz_u8(&f);

			reg_access(off, widths[w & 7], fz_u32(&f), w & 0x80);
			break;
		}
		case 3:
			fzv_run(&loop);
			break;
		case 4: {
			uint16_t off = fz_u16(&f) % (RAM - 3);
			uint32_t v = fz_u32(&f);

			memcpy(ram + off, &v, 4);
			break;
		}
		case 5: {
			unsigned q = fz_u8(&f) % VIRTIO_MMIO_MAX_QUEUES;
			struct fzv_ring r = { (uint16_t)(1u << (fz_u8(&f) % 9)), RING(q),
					      RING(q) + 0x1000, RING(q) + 0x2000 };

			fzv_queue(t, q, &r);
			break;
		}
		case 6: {
			uint64_t feat = fz_u64(&f);

			fzv_features(t, feat);
			if (fz_u8(&f) & 1)
				fzv_driver_ok(t);
			break;
		}
		case 7: {
			unsigned q = fz_u8(&f) % VIRTIO_MMIO_MAX_QUEUES;
			uint8_t d = fz_u8(&f);
			uint16_t len = fz_u16(&f), idx;
			uint8_t flags = fz_u8(&f);
			uint16_t num = t->q[q].vq.num;

			if (num == 0 || num > VQ_NUM_MAX)
				num = 1;   /* the ring is ours to write, not the device's */

			fzv_put_desc(ram, RING(q), d % num, BUFS + 0x100u * (d % 32), len, flags, 0);
			memcpy(&idx, ram + RING(q) + 0x1000 + 2, 2);
			fzv_put16(ram, RING(q) + 0x1000 + 4 + 2u * (idx % num), d % num);
			fzv_put16(ram, RING(q) + 0x1000 + 2, (uint16_t)(idx + 1));
			fzv_mmio(t, VIRTIO_MMIO_QUEUE_NOTIFY, q, 4, true);
			break;
		}
		case 8: {
			uint8_t ev = fz_u8(&f) % 3;

			/* As a device would: it fails or interrupts only while
			 * live (from notify() or an I/O completion). */
			pthread_mutex_lock(&t->lock);
			if (virtio_mmio_live(t)) {
				if (ev == 0)
					virtio_mmio_needs_reset(t, "the fuzzer says so");
				else
					virtio_mmio_interrupt(t, ev == 1 ? VIRTIO_INT_CONFIG
									  : VIRTIO_INT_USED);
			}
			pthread_mutex_unlock(&t->lock);
			break;
		}
		case 9:
			reg_access(VIRTIO_MMIO_STATUS, 4, 0, true);
			break;
		}
		check_state();
	}
	return 0;
}

#ifdef FUZZ_SEEDS
static void reg_write(struct fz_buf *b, unsigned reg_index, uint32_t v)
{
	fz_put8(b, 0);
	fz_put8(b, (uint8_t)reg_index);
	fz_put32(b, v);
}

static void reg_read(struct fz_buf *b, unsigned reg_index)
{
	fz_put8(b, 1);
	fz_put8(b, (uint8_t)reg_index);
}

static void post(struct fz_buf *b, unsigned q, uint8_t d, uint16_t len, uint8_t flags)
{
	fz_put8(b, 7);
	fz_put8(b, (uint8_t)q);
	fz_put8(b, d);
	fz_put16(b, len);
	fz_put8(b, flags);
}

static void device(struct fz_buf *b, unsigned queues, unsigned num_max, uint64_t features,
		   uint8_t cfg_len)
{
	b->n = 0;
	fz_put8(b, (uint8_t)(queues - 1));
	fz_put8(b, (uint8_t)(num_max - 1));
	fz_put64(b, features);
	fz_put8(b, cfg_len);
	for (unsigned i = 0; i < cfg_len; i++)
		fz_put8(b, (uint8_t)(0x40 + i));
}

void fuzz_seeds(fz_emit_fn *emit)
{
	static struct fz_buf b;
	const uint64_t feat = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_RING_EVENT_IDX |
			      1ULL << VIRTIO_F_RING_INDIRECT_DESC;

	/* Linux's probe: identity registers, features both halves, config,
	 * then two queues up, DRIVER_OK, a request on each, the interrupt
	 * acknowledged. */
	device(&b, 2, 128, feat | 0x3, 24);
	for (unsigned i = 0; i < 4; i++)
		reg_read(&b, i);
	reg_write(&b, 5, 0);
	reg_read(&b, 4);
	reg_write(&b, 5, 1);
	reg_read(&b, 4);
	fz_put8(&b, 2);                 /* 8-byte config read */
	fz_put16(&b, VIRTIO_MMIO_CONFIG + 8);
	fz_put8(&b, 3);
	fz_put32(&b, 0);
	fz_put8(&b, 6);
	fz_put64(&b, feat | 1);
	fz_put8(&b, 0);
	for (unsigned q = 0; q < 2; q++) {
		fz_put8(&b, 5);
		fz_put8(&b, (uint8_t)q);
		fz_put8(&b, 7);
	}
	reg_write(&b, 15, 15);          /* DRIVER_OK */
	post(&b, 0, 0, 64, VIRTQ_DESC_F_WRITE);
	post(&b, 1, 3, 512, 0);
	fz_put8(&b, 3);
	reg_read(&b, 13);
	reg_write(&b, 14, 1);
	reg_read(&b, 13);
	emit("probe", &b);

	/* Wrong order and wrong values: QueueReady before FEATURES_OK, a
	 * feature not offered, cleared status bits, queue registers while
	 * ready, bad widths, then reset and a corrupt ring. */
	device(&b, 4, 256, feat, 8);
	fz_put8(&b, 5);
	fz_put8(&b, 0);
	fz_put8(&b, 3);
	fz_put8(&b, 6);
	fz_put64(&b, feat | 1ULL << 40);
	fz_put8(&b, 1);
	fz_put8(&b, 6);
	fz_put64(&b, feat);
	fz_put8(&b, 1);
	reg_write(&b, 15, 1);
	fz_put8(&b, 5);
	fz_put8(&b, 1);
	fz_put8(&b, 8);
	reg_write(&b, 10, 64);
	fz_put8(&b, 2);
	fz_put16(&b, VIRTIO_MMIO_STATUS);
	fz_put8(&b, 0x81);              /* 2-byte write */
	fz_put32(&b, 0);
	fz_put8(&b, 4);                 /* avail idx of queue 1 far ahead */
	fz_put16(&b, RING(1) + 0x1000);
	fz_put32(&b, 0x77770000);
	reg_write(&b, 12, 1);
	fz_put8(&b, 3);
	reg_read(&b, 15);
	fz_put8(&b, 9);
	reg_read(&b, 15);
	emit("misuse", &b);

	/* Device-side events in each state. */
	device(&b, 1, 16, feat, 0);
	for (unsigned ev = 0; ev < 3; ev++) {
		fz_put8(&b, 8);
		fz_put8(&b, (uint8_t)ev);
	}
	fz_put8(&b, 6);
	fz_put64(&b, feat);
	fz_put8(&b, 1);
	for (unsigned ev = 0; ev < 3; ev++) {
		fz_put8(&b, 8);
		fz_put8(&b, (uint8_t)ev);
		reg_read(&b, 13);
		reg_write(&b, 14, 3);
	}
	emit("events", &b);
}
#endif
