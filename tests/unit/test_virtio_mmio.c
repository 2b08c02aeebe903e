/* virtio-mmio v2 register semantics (virtio/mmio.c), with a stub device and
 * stub interrupt line: feature selection and negotiation, the status
 * handshake, queue configuration checks, reset, read-only and write-only
 * registers, odd access widths, notifies, InterruptStatus and the
 * configuration space. */
#define CHECK_FILE "virtio_mmio"
#include "../check.h"
#include "virtio_fake.h"

#include <unistd.h>

#include "virtio/mmio.h"

static int notified, resets, last_reset_q, raised, lowered;

static void dev_notify(void *dev, unsigned q)
{
	notified++;
}

static void dev_reset(void *dev, int q)
{
	resets++;
	last_reset_q = q;
}

static void irq_raise(void *o)
{
	raised++;
}

static void irq_lower(void *o)
{
	lowered++;
}

static const struct virtio_dev_ops ops = {
	.device_id = 42, .num_queues = 2, .queue_num_max = 16,
	.notify = dev_notify, .reset = dev_reset,
};
static const struct virtio_irq irq = { irq_raise, irq_lower, NULL };
static const uint8_t config[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
#define FEATURES ((1ULL << 0) | (1ULL << 5) | (1ULL << VIRTIO_F_RING_EVENT_IDX))

static struct fake f;
static struct virtio_mmio t;

static void setup(void)
{
	struct err e;

	notified = resets = raised = lowered = 0;
	last_reset_q = 99;
	fake_init(&f, 16);
	CHECK_EQ(virtio_mmio_init(&t, "test", 0, &ops, NULL, FEATURES, config, sizeof(config),
				  &f.m, NULL, &irq, &e), 0);
}

static void teardown(void)
{
	virtio_mmio_fini(&t);
	fake_free(&f);
}

static uint32_t rd(uint64_t off)
{
	uint32_t v;

	virtio_mmio_io(&t, off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	virtio_mmio_io(&t, off, (uint8_t *)&v, 4, true);
}

/* Driver handshake up to FEATURES_OK with the given features. */
static void negotiate(uint64_t feat)
{
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)feat);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(feat >> 32));
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	   VIRTIO_STATUS_FEATURES_OK);
}

static void queue_setup(uint32_t sel, uint32_t num)
{
	wr(VIRTIO_MMIO_QUEUE_SEL, sel);
	wr(VIRTIO_MMIO_QUEUE_NUM, num);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, FAKE_DESC);
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, FAKE_AVAIL);
	wr(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, FAKE_USED);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
}

static uint64_t eventfd_count(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

TEST(identity_registers)
{
	setup();
	CHECK_EQ(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	CHECK_EQ(rd(VIRTIO_MMIO_VERSION), 2);
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_ID), 42);
	CHECK_EQ(rd(VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffffu);
	CHECK_EQ(t.base, VIRTIO_MMIO_BASE);
	CHECK_EQ(t.pin, VIRTIO_MMIO_IRQ0);
	CHECK_EQ(virtio_mmio_slot_base(3), 0xd0003000ULL);
	CHECK_EQ(virtio_mmio_slot_pin(3), 8);
	teardown();
}

TEST(feature_select)
{
	setup();
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)FEATURES);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_FEATURES), 1);      /* VERSION_1 */
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_FEATURES), 0);
	teardown();
}

TEST(feature_negotiation)
{
	const uint32_t ok = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			    VIRTIO_STATUS_FEATURES_OK;

	setup();
	negotiate((1ULL << 5) | (1ULL << VIRTIO_F_VERSION_1));
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), ok);
	CHECK_EQ(t.features, (1ULL << 5) | (1ULL << VIRTIO_F_VERSION_1));
	/* Fixed after FEATURES_OK. */
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1);
	CHECK_EQ(t.features, (1ULL << 5) | (1ULL << VIRTIO_F_VERSION_1));

	/* A bit the device did not offer: FEATURES_OK does not stick. */
	wr(VIRTIO_MMIO_STATUS, 0);
	negotiate((1ULL << 7) | (1ULL << VIRTIO_F_VERSION_1));
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), ok & ~VIRTIO_STATUS_FEATURES_OK);
	/* A legacy driver (no VERSION_1): refused too. */
	wr(VIRTIO_MMIO_STATUS, 0);
	negotiate(1ULL << 5);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0);
	teardown();
}

TEST(status_sequences)
{
	setup();
	/* DRIVER_OK before FEATURES_OK is ignored. */
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	   VIRTIO_STATUS_DRIVER_OK);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* Clearing a bit (other than by reset) is ignored. */
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* The driver cannot set NEEDS_RESET. */
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	   VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, 0);
	wr(VIRTIO_MMIO_STATUS, 0);
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	wr(VIRTIO_MMIO_STATUS, rd(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	CHECK(virtio_mmio_live(&t));
	/* FAILED may be added. */
	wr(VIRTIO_MMIO_STATUS, rd(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED);
	CHECK(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FAILED);
	/* The status field is one byte: bits beyond it never read back (a
	 * hostile guest wrote 0xffffffff and read 0xffffffbf). */
	wr(VIRTIO_MMIO_STATUS, 0xffffffffu);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS) & ~0xffu, 0);
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, 0x100 | VIRTIO_STATUS_ACKNOWLEDGE);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE);
	teardown();
}

TEST(queue_size_clamp_and_checks)
{
	setup();
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
	wr(VIRTIO_MMIO_QUEUE_SEL, 2);                      /* no such queue */
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);                    /* ignored */

	/* Before FEATURES_OK: refused. */
	queue_setup(0, 16);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	/* Larger than QueueNumMax, not a power of two, 0, more than 16 bits. */
	queue_setup(0, 32);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	queue_setup(0, 12);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	queue_setup(0, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	queue_setup(0, 0x10008);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	/* Rings outside RAM. */
	wr(VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 1);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK(atomic_load(&t.stats.bad_queue) >= 5);
	/* A good one. */
	queue_setup(0, 8);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 1);
	CHECK_EQ(t.q[0].vq.num, 8);
	CHECK(t.q[0].vq.enabled);
	/* Writes to the queue's configuration while ready are ignored. */
	wr(VIRTIO_MMIO_QUEUE_NUM, 4);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
	CHECK_EQ(t.q[0].vq.num, 8);
	CHECK_EQ(t.q[0].vq.desc_gpa, FAKE_DESC);
	/* QueueReady = 0 stops the queue and tells the device. */
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK(!t.q[0].vq.enabled);
	CHECK_EQ(resets, 1);
	CHECK_EQ(last_reset_q, 0);
	teardown();
}

TEST(queue_features_follow_negotiation)
{
	setup();
	negotiate((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_EVENT_IDX));
	queue_setup(1, 4);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 1);
	CHECK(t.q[1].vq.event_idx);
	CHECK(!t.q[1].vq.indirect);
	teardown();
}

TEST(reset_clears_everything)
{
	setup();
	negotiate((1ULL << VIRTIO_F_VERSION_1) | (1ULL << 5));
	queue_setup(0, 8);
	wr(VIRTIO_MMIO_STATUS, rd(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	virtio_mmio_interrupt(&t, VIRTIO_INT_USED);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
	wr(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK_EQ(lowered, 1);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK(!t.q[0].vq.enabled);
	CHECK_EQ(t.features, 0);
	CHECK_EQ(resets, 1);
	CHECK_EQ(last_reset_q, -1);
	/* The queue generation moved, so completions in flight are dropped. */
	CHECK_EQ(t.q[0].gen, 1);
	/* And the device can be set up again. */
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	queue_setup(0, 16);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 1);
	teardown();
}

TEST(read_only_and_write_only_registers)
{
	setup();
	wr(VIRTIO_MMIO_MAGIC_VALUE, 0);
	wr(VIRTIO_MMIO_VERSION, 1);
	wr(VIRTIO_MMIO_DEVICE_ID, 7);
	wr(VIRTIO_MMIO_DEVICE_FEATURES, 0xffffffff);
	wr(VIRTIO_MMIO_QUEUE_NUM_MAX, 1024);
	wr(VIRTIO_MMIO_INTERRUPT_STATUS, 3);
	wr(VIRTIO_MMIO_CONFIG_GENERATION, 5);
	wr(0x0f8, 1);                                      /* unassigned */
	CHECK_EQ(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	CHECK_EQ(rd(VIRTIO_MMIO_VERSION), 2);
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_ID), 42);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG_GENERATION), 0);
	CHECK_EQ(atomic_load(&t.stats.bad_access), 8);
	/* Write-only registers read as 0. */
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NOTIFY), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_ACK), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
	teardown();
}

TEST(odd_width_and_unaligned_access)
{
	uint8_t b[8];
	uint16_t h = 0;

	setup();
	memset(b, 0xaa, sizeof(b));
	virtio_mmio_io(&t, VIRTIO_MMIO_MAGIC_VALUE, b, 1, false);
	CHECK_EQ(b[0], 0);
	virtio_mmio_io(&t, VIRTIO_MMIO_MAGIC_VALUE, b, 8, false);
	CHECK_EQ(b[7], 0);
	virtio_mmio_io(&t, VIRTIO_MMIO_MAGIC_VALUE + 1, b, 4, false);
	CHECK_EQ(b[0], 0);
	h = 1;
	virtio_mmio_io(&t, VIRTIO_MMIO_STATUS, (uint8_t *)&h, 2, true);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0);
	teardown();
}

TEST(notify)
{
	setup();
	/* Before DRIVER_OK the eventfd still fires; the transport only calls
	 * the device once it is live (the loop's job, not tested here). */
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	CHECK_EQ(eventfd_count(t.q[1].notify_fd), 1);
	/* A queue that does not exist: counted, nothing happens. */
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 2);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	CHECK_EQ(atomic_load(&t.stats.bad_access), 2);
	CHECK_EQ(eventfd_count(t.q[0].notify_fd), 0);
	/* DRIVER_OK kicks every ready queue so buffers made available
	 * earlier are seen. */
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	queue_setup(0, 8);
	wr(VIRTIO_MMIO_STATUS, rd(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	CHECK_EQ(eventfd_count(t.q[0].notify_fd), 1);
	CHECK_EQ(eventfd_count(t.q[1].notify_fd), 0);
	teardown();
}

TEST(interrupt_status_and_ack)
{
	setup();
	virtio_mmio_interrupt(&t, VIRTIO_INT_USED);
	virtio_mmio_interrupt(&t, VIRTIO_INT_CONFIG);
	CHECK_EQ(raised, 2);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 3);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 2);
	CHECK_EQ(lowered, 0);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, 0xffffffff);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK_EQ(lowered, 1);
	teardown();
}

TEST(needs_reset)
{
	setup();
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	/* Before DRIVER_OK: status bit only. */
	virtio_mmio_needs_reset(&t, "test");
	CHECK(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(raised, 0);
	/* Queues cannot be enabled in that state; only a reset clears it. */
	queue_setup(0, 8);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	wr(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0);
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	queue_setup(0, 8);
	wr(VIRTIO_MMIO_STATUS, rd(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	virtio_mmio_needs_reset(&t, "test");
	CHECK(!virtio_mmio_live(&t));
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	CHECK_EQ(raised, 1);
	/* The driver's status writes keep it set. */
	wr(VIRTIO_MMIO_STATUS, rd(VIRTIO_MMIO_STATUS) & ~VIRTIO_STATUS_NEEDS_RESET);
	CHECK(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	teardown();
}

TEST(config_space)
{
	uint8_t b[8];
	uint16_t h;
	uint64_t q;

	setup();
	virtio_mmio_io(&t, VIRTIO_MMIO_CONFIG + 3, b, 1, false);
	CHECK_EQ(b[0], 4);
	virtio_mmio_io(&t, VIRTIO_MMIO_CONFIG + 2, (uint8_t *)&h, 2, false);
	CHECK_EQ(h, 0x0403);
	virtio_mmio_io(&t, VIRTIO_MMIO_CONFIG + 4, (uint8_t *)&q, 8, false);
	CHECK_EQ(q, 0x0c0b0a0908070605ULL);
	/* Past the end (partly or wholly): zeroes. */
	virtio_mmio_io(&t, VIRTIO_MMIO_CONFIG + 8, (uint8_t *)&q, 8, false);
	CHECK_EQ(q, 0);
	virtio_mmio_io(&t, VIRTIO_MMIO_SIZE - 4, b, 4, false);
	CHECK_EQ(b[0], 0);
	/* Read-only. */
	b[0] = 99;
	virtio_mmio_io(&t, VIRTIO_MMIO_CONFIG, b, 1, true);
	virtio_mmio_io(&t, VIRTIO_MMIO_CONFIG, b + 1, 1, false);
	CHECK_EQ(b[1], 1);
	teardown();
}

CHECK_MAIN(T(identity_registers), T(feature_select), T(feature_negotiation),
	   T(status_sequences), T(queue_size_clamp_and_checks), T(queue_features_follow_negotiation),
	   T(reset_clears_everything), T(read_only_and_write_only_registers),
	   T(odd_width_and_unaligned_access), T(notify), T(interrupt_status_and_ack),
	   T(needs_reset), T(config_space))
