/* Split virtqueue (virtio/queue.c) against fake guest memory: well-formed and
 * malformed chains, indirect tables, ring checks, used-ring publication and
 * the EVENT_IDX arithmetic across 16-bit wrap-around. */
#define CHECK_FILE "queue"
#include "../check.h"
#include "virtio_fake.h"

static struct fake f;
static struct vq q;
static struct vq_chain c;
static const char *why;

static void setup(uint16_t num, bool indirect, bool event_idx)
{
	fake_init(&f, num);
	fake_vq(&f, &q);
	q.indirect = indirect;
	q.event_idx = event_idx;
	CHECK_EQ(vq_enable(&q, &f.m, &why), 0);
}

TEST(empty_ring)
{
	setup(8, false, false);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_EMPTY);
	fake_free(&f);
}

TEST(three_descriptor_chain)
{
	setup(8, false, false);
	fake_desc(&f, FAKE_DESC, 2, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 5);
	fake_desc(&f, FAKE_DESC, 5, FAKE_BUF + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 7);
	fake_desc(&f, FAKE_DESC, 7, FAKE_BUF + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 2);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK_EQ(c.head, 2);
	CHECK_EQ(c.nseg, 3);
	CHECK_EQ(c.nread, 1);
	CHECK_EQ(c.read_len, 16);
	CHECK_EQ(c.write_len, 513);
	CHECK(!c.bad_addr);
	CHECK(c.seg[1].host == f.ram + FAKE_BUF + 0x100);
	CHECK(c.seg[1].write && !c.seg[0].write);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_EMPTY);
	fake_free(&f);
}

TEST(head_beyond_queue_size_breaks_ring)
{
	setup(8, false, false);
	fake_avail(&f, 8);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BROKEN);
	CHECK_STR_HAS(why, "beyond the queue size");
	/* Stays broken until re-enabled, even with a good entry behind. */
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BROKEN);
	CHECK_EQ(vq_enable(&q, &f.m, &why), 0);
	fake_free(&f);
}

TEST(avail_index_jump_breaks_ring)
{
	setup(8, false, false);
	fake_set16(&f, FAKE_AVAIL + 2, 9);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BROKEN);
	CHECK_STR_HAS(why, "more than the queue size");
	fake_free(&f);
}

TEST(descriptor_loop)
{
	setup(8, false, false);
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, FAKE_DESC, 1, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	fake_desc(&f, FAKE_DESC, 2, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_EQ(c.head, 0);
	CHECK_STR_HAS(why, "loops");
	/* A self-loop too; the queue goes on with the next chain. */
	fake_desc(&f, FAKE_DESC, 3, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 3);
	fake_avail(&f, 3);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	fake_desc(&f, FAKE_DESC, 4, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 4);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	fake_free(&f);
}

TEST(chain_longer_than_limit)
{
	setup(VQ_NUM_MAX, false, false);
	for (uint16_t i = 0; i <= VQ_CHAIN_MAX; i++)
		fake_desc(&f, FAKE_DESC, i, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
			  (uint16_t)(i + 1));
	fake_desc(&f, FAKE_DESC, VQ_CHAIN_MAX, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_STR_HAS(why, "longer than the limit");
	/* Exactly the limit is fine. */
	fake_avail(&f, 1);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK_EQ(c.nseg, VQ_CHAIN_MAX);
	fake_free(&f);
}

TEST(next_out_of_range)
{
	setup(8, false, false);
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 8);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_STR_HAS(why, "out of range");
	fake_free(&f);
}

TEST(readable_after_writable)
{
	setup(8, false, false);
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, FAKE_DESC, 1, FAKE_BUF, 16, 0, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_STR_HAS(why, "after a device-writable");
	fake_free(&f);
}

TEST(buffers_outside_ram)
{
	setup(8, false, false);
	/* Beyond RAM, in the MMIO gap, wrapping around 2^64, and a zero-length
	 * descriptor anywhere (which is fine: nothing to touch). */
	fake_desc(&f, FAKE_DESC, 0, FAKE_RAM - 8, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, FAKE_DESC, 1, 0xfec00000, 4, VIRTQ_DESC_F_NEXT, 2);
	fake_desc(&f, FAKE_DESC, 2, UINT64_MAX - 10, 100, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
	fake_desc(&f, FAKE_DESC, 3, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
	fake_desc(&f, FAKE_DESC, 4, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK(c.bad_addr);
	CHECK(c.seg[0].host == NULL && c.seg[1].host == NULL && c.seg[2].host == NULL);
	CHECK(c.seg[4].host == f.ram + FAKE_BUF);
	/* Lengths add up in 64 bits, never wrap. */
	CHECK_EQ(c.write_len, 101);
	fake_free(&f);
}

TEST(indirect_table)
{
	const uint64_t t = 0x8000;

	setup(8, true, false);
	fake_desc(&f, t, 0, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, t, 1, FAKE_BUF + 0x200, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	fake_desc(&f, t, 2, FAKE_BUF + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
	/* The WRITE flag on the descriptor naming the table is ignored
	 * (§2.7.5.3.2). */
	fake_desc(&f, FAKE_DESC, 6, t, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 6);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK_EQ(c.head, 6);
	CHECK_EQ(c.nseg, 3);
	CHECK_EQ(c.nread, 1);
	CHECK_EQ(c.write_len, 4097);
	fake_free(&f);
}

/* One bad indirect descriptor at head 0; expect a bad chain naming why. */
static void bad_indirect(bool negotiated, uint64_t addr, uint32_t len, uint16_t flags,
			 const char *expect)
{
	setup(8, negotiated, false);
	fake_desc(&f, 0x8000, 0, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_desc(&f, 0x8000, 1, 0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	fake_desc(&f, FAKE_DESC, 0, addr, len, flags, 1);
	fake_desc(&f, FAKE_DESC, 1, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_STR_HAS(why, expect);
	fake_free(&f);
}

TEST(indirect_table_bad)
{
	bad_indirect(false, 0x8000, 16, VIRTQ_DESC_F_INDIRECT, "without VIRTIO_F_INDIRECT_DESC");
	bad_indirect(true, 0x8000, 17, VIRTQ_DESC_F_INDIRECT, "multiple of 16");
	bad_indirect(true, 0x8000, 0, VIRTQ_DESC_F_INDIRECT, "multiple of 16");
	bad_indirect(true, 0x8000, 16 * (VQ_CHAIN_MAX + 1), VIRTQ_DESC_F_INDIRECT, "longer");
	bad_indirect(true, FAKE_RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, "outside guest RAM");
	bad_indirect(true, 0x8000, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, "NEXT");
	/* Table entry 1 is itself indirect: nested. */
	bad_indirect(true, 0x8010, 16, VIRTQ_DESC_F_INDIRECT, "inside an indirect");
}

TEST(indirect_after_direct_descriptors)
{
	/* §2.7.5.3.2: direct descriptors followed by one indirect one. */
	setup(8, true, false);
	fake_desc(&f, 0x8000, 0, FAKE_BUF + 0x100, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, 0x8000, 1, FAKE_BUF + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, FAKE_DESC, 1, 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK_EQ(c.nseg, 3);
	CHECK_EQ(c.nread, 1);
	CHECK_EQ(c.read_len, 16);
	CHECK_EQ(c.write_len, 513);
	/* The table may not take the chain past the limit... */
	fake_desc(&f, FAKE_DESC, 1, 0x8000, 16 * VQ_CHAIN_MAX, VIRTQ_DESC_F_INDIRECT, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_STR_HAS(why, "longer");
	/* ...and device-writable direct descriptors cannot be followed by
	 * readable ones in the table. */
	fake_desc(&f, 0x8000, 0, FAKE_BUF + 0x100, 512, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	fake_desc(&f, FAKE_DESC, 1, 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_STR_HAS(why, "after a device-writable");
	fake_free(&f);
}

TEST(indirect_loop)
{
	const uint64_t t = 0x8000;

	setup(8, true, false);
	fake_desc(&f, t, 0, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, t, 1, FAKE_BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	fake_desc(&f, FAKE_DESC, 0, t, 32, VIRTQ_DESC_F_INDIRECT, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BAD_CHAIN);
	CHECK_STR_HAS(why, "loops");
	fake_free(&f);
}

TEST(enable_checks_ring_layout)
{
	fake_init(&f, 8);
	fake_vq(&f, &q);
	q.num = 6;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	CHECK_STR_HAS(why, "power of two");
	q.num = 0;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	q.num = VQ_NUM_MAX * 2;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	fake_vq(&f, &q);
	q.desc_gpa = FAKE_DESC + 8;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	CHECK_STR_HAS(why, "aligned");
	fake_vq(&f, &q);
	q.avail_gpa = FAKE_AVAIL + 1;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	fake_vq(&f, &q);
	q.used_gpa = FAKE_USED + 2;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	fake_vq(&f, &q);
	q.used_gpa = FAKE_RAM - 16;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	CHECK_STR_HAS(why, "outside guest RAM");
	fake_vq(&f, &q);
	q.desc_gpa = 0xfffffffffffff000ULL;
	CHECK_EQ(vq_enable(&q, &f.m, &why), -1);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_BROKEN);   /* disabled */
	vq_push(&q, 0, 0);                            /* ignored */
	CHECK(!vq_publish(&q));
	fake_free(&f);
}

TEST(push_publish_and_no_interrupt_flag)
{
	uint32_t id, len;

	setup(4, false, false);
	CHECK(!vq_publish(&q));                /* nothing pushed */
	vq_push(&q, 3, 77);
	CHECK_EQ(fake_used_idx(&f), 0);         /* not visible yet */
	CHECK(vq_publish(&q));
	CHECK_EQ(fake_used_idx(&f), 1);
	fake_used(&f, 0, &id, &len);
	CHECK_EQ(id, 3);
	CHECK_EQ(len, 77);
	fake_set16(&f, FAKE_AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	vq_push(&q, 1, 1);
	CHECK(!vq_publish(&q));
	CHECK_EQ(fake_used_idx(&f), 2);
	fake_free(&f);
}

TEST(vring_need_event_arithmetic)
{
	/* vring_need_event(event, new, old): did [old, new) pass event? */
	CHECK(vring_need_event(5, 6, 5));
	CHECK(!vring_need_event(6, 6, 5));
	CHECK(vring_need_event(5, 10, 0));
	CHECK(!vring_need_event(10, 10, 0));
	CHECK(!vring_need_event(4, 10, 5));
	/* Across the 16-bit wrap. */
	CHECK(vring_need_event(0xffff, 2, 0xfffe));
	CHECK(vring_need_event(0, 2, 0xfffe));
	CHECK(vring_need_event(1, 2, 0xfffe));
	CHECK(!vring_need_event(2, 2, 0xfffe));
	CHECK(!vring_need_event(0xfffd, 2, 0xfffe));
	CHECK(vring_need_event(0xfffe, 0xffff, 0xfffe));
	/* Nothing new: never. */
	CHECK(!vring_need_event(7, 7, 7));
}

TEST(event_idx_used_event_across_wrap)
{
	/* A driver that asks for an interrupt after every 3rd buffer; run
	 * past 65536 used entries and check every decision. */
	uint32_t n = 0, irqs = 0;

	setup(4, false, true);
	fake_set_used_event(&f, 2);
	for (uint32_t i = 0; i < 70000; i++) {
		bool want = (uint16_t)(i - (uint16_t)(n * 3 + 2)) == 0;

		vq_push(&q, (uint16_t)(i % 4), 1);
		if (vq_publish(&q) != want) {
			CHECK(!"wrong notification decision");
			break;
		}
		if (want) {
			irqs++;
			n++;
			fake_set_used_event(&f, (uint16_t)(n * 3 + 2));
		}
	}
	CHECK_EQ(fake_used_idx(&f), (uint16_t)70000);
	CHECK_EQ(irqs, 23333);
	/* A used_event far behind (the driver does not want interrupts) stays
	 * quiet even across the wrap. */
	fake_set_used_event(&f, (uint16_t)(fake_used_idx(&f) - 0x8000));
	for (int i = 0; i < 1000; i++) {
		vq_push(&q, 0, 1);
		CHECK(!vq_publish(&q));
	}
	fake_free(&f);
}

TEST(event_idx_batch_publication)
{
	/* Two entries published at once pass used_event = first one. */
	setup(8, false, true);
	fake_set_used_event(&f, 0);
	vq_push(&q, 0, 1);
	vq_push(&q, 1, 1);
	CHECK(vq_publish(&q));
	fake_set_used_event(&f, 5);
	vq_push(&q, 2, 1);
	CHECK(!vq_publish(&q));                /* idx 3: event 5 not passed */
	vq_push(&q, 3, 1);
	vq_push(&q, 4, 1);
	vq_push(&q, 5, 1);
	CHECK(vq_publish(&q));                 /* 3..6 passes 5 */
	fake_free(&f);
}

TEST(avail_event_and_rearm)
{
	setup(8, false, true);
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK(vq_arm_notify(&q));              /* one more is there */
	CHECK_EQ(fake_avail_event(&f), 1);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK(!vq_arm_notify(&q));
	CHECK_EQ(fake_avail_event(&f), 2);
	fake_free(&f);
}

TEST(chain_read_gathers_segments)
{
	uint8_t out[20];

	setup(8, false, false);
	memcpy(f.ram + FAKE_BUF, "0123456789", 10);
	memcpy(f.ram + FAKE_BUF + 0x100, "abcdefghij", 10);
	fake_desc(&f, FAKE_DESC, 0, FAKE_BUF, 10, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, FAKE_DESC, 1, FAKE_BUF + 0x100, 10, VIRTQ_DESC_F_NEXT, 2);
	fake_desc(&f, FAKE_DESC, 2, FAKE_BUF + 0x200, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_avail(&f, 0);
	CHECK_EQ(vq_pop(&q, &c, &why), VQ_CHAIN);
	CHECK_EQ(vq_chain_read(&c, 5, out, 10), 10);
	CHECK(!memcmp(out, "56789abcde", 10));
	CHECK_EQ(vq_chain_read(&c, 15, out, 20), 5);   /* writable bytes never read */
	fake_free(&f);
}

CHECK_MAIN(T(empty_ring), T(three_descriptor_chain), T(head_beyond_queue_size_breaks_ring),
	   T(avail_index_jump_breaks_ring), T(descriptor_loop), T(chain_longer_than_limit),
	   T(next_out_of_range), T(readable_after_writable), T(buffers_outside_ram),
	   T(indirect_table), T(indirect_table_bad), T(indirect_after_direct_descriptors),
	   T(indirect_loop), T(enable_checks_ring_layout), T(push_publish_and_no_interrupt_flag),
	   T(vring_need_event_arithmetic), T(event_idx_used_event_across_wrap),
	   T(event_idx_batch_publication), T(avail_event_and_rearm),
	   T(chain_read_gathers_segments))
