/* libFuzzer target: hostile rings fed straight into the split virtqueue
 * (virtio/queue.c), with no transport or device in between, so every
 * input reaches the ring and descriptor walker.  Guest RAM is 64 KiB.
 *
 * Each input is one driver:
 *   bytes 0-1   QueueNum (any value: vq_enable() is what checks it)
 *   byte 2      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 the three ring
 *               addresses are 8 bytes each (anywhere, overflowing, ...)
 *               instead of 2 (inside RAM)
 *   then        descriptor table, available ring, used ring addresses
 *   then ops    op byte % 10:
 *               0 the device pops up to (next byte % 8 + 1) chains and
 *                 pushes each it may return (used length: next 2 bytes)
 *               1 the driver writes 2 bytes of RAM (offset 2, value 2)
 *               2 the driver writes descriptor (index 1, addr 2 or, with
 *                 bit 7 of flags, 8, len 2, flags 1, next 1)
 *               3 the driver makes head (next byte) available
 *               4 vq_publish()    5 vq_arm_notify()
 *               6 vq_chain_read() of the last chain (offset 2, length 2)
 *               7 vq_enable() again (a reset and a new driver)
 *               8 vq_disable()
 *               9 the driver writes bytes (offset 2, count 1, the bytes)
 *   The queue starts enabled when its configuration allows.
 *
 * Oracles, besides the sanitizers: vq_enable() accepts exactly the
 * configurations §2.7 allows inside RAM; vq_pop() says EMPTY exactly when
 * the available index has not moved, BROKEN once broken and while
 * disabled, and otherwise returns the head the ring names (< QueueNum);
 * every chain it calls well-formed has 1..VQ_CHAIN_MAX segments, readable
 * ones first, lengths that add up, bad_addr exactly when a buffer is
 * outside RAM, and host pointers that are the buffers' own bytes of RAM;
 * vq_push()/vq_publish() put the element and index where §2.7.8 says;
 * vq_chain_read() copies no more than asked or available, and all of it
 * when the readable area is inside RAM. */
#include <stdbool.h>

#include "tests/fuzz/fuzz.h"
#include "virtio/queue.h"

#define RAM (64u * 1024)

static uint8_t *ram;
static struct guest_mem mem;
static struct vq q;
static struct vq_chain chain;      /* the last chain popped */
static bool have_chain;
static uint8_t buf[1 << 16];

static uint16_t rd16(uint64_t gpa)
{
	uint16_t v = 0;

	(void)gm_read(&mem, gpa, &v, 2);
	return v;
}

/* §2.7: what vq_enable() must accept. */
static bool config_ok(void)
{
	uint64_t n = q.num;

	return n && n <= VQ_NUM_MAX && !(n & (n - 1)) && !(q.desc_gpa & 15) &&
	       !(q.avail_gpa & 1) && !(q.used_gpa & 3) && gm_ptr(&mem, q.desc_gpa, 16 * n) &&
	       gm_ptr(&mem, q.avail_gpa, 6 + 2 * n) && gm_ptr(&mem, q.used_gpa, 6 + 8 * n);
}

static void enable(void)
{
	const char *why = NULL;
	int r = vq_enable(&q, &mem, &why);

	fz_check((r == 0) == config_ok());
	fz_check(r == 0 || why);
	fz_check(q.enabled == (r == 0));
	have_chain = false;
}

static void check_chain(const struct vq_chain *c)
{
	uint64_t rl = 0, wl = 0;
	bool bad = false;

	fz_check(c->nseg >= 1 && c->nseg <= VQ_CHAIN_MAX);
	fz_check(c->nread <= c->nseg);
	for (unsigned i = 0; i < c->nseg; i++) {
		const struct vq_seg *s = &c->seg[i];

		fz_check(s->write == (i >= c->nread));
		if (s->write)
			wl += s->len;
		else
			rl += s->len;
		if (s->len && !s->host) {
			bad = true;
			fz_check(!gm_ptr(&mem, s->gpa, s->len));
		} else if (s->host) {
			fz_check(s->host == (uint8_t *)gm_ptr(&mem, s->gpa, s->len));
			fz_check(s->host >= ram && s->host + s->len <= ram + RAM);
		}
	}
	fz_check(rl == c->read_len && wl == c->write_len);
	fz_check(bad == c->bad_addr);
}

static void pop(struct fz *f)
{
	unsigned n = fz_u8(f) % 8 + 1;

	for (unsigned i = 0; i < n; i++) {
		bool was_enabled = q.enabled, was_broken = q.broken;
		uint16_t last = q.last_avail, idx = 0, want = 0;
		const char *why = NULL;
		int r;

		if (was_enabled && !was_broken) {
			idx = rd16(q.avail_gpa + 2);
			want = rd16(q.avail_gpa + 4 + 2u * (last & (q.num - 1)));
		}
		r = vq_pop(&q, &chain, &why);
		if (!was_enabled || was_broken) {
			fz_check(r == VQ_BROKEN);
			return;
		}
		if (r == VQ_EMPTY) {
			fz_check(idx == last && q.last_avail == last);
			return;
		}
		fz_check(idx != last);
		if (r == VQ_BROKEN) {
			fz_check(q.broken && why);
			return;
		}
		fz_check(r == VQ_CHAIN || r == VQ_BAD_CHAIN);
		fz_check(q.last_avail == (uint16_t)(last + 1));
		fz_check(chain.head == want && chain.head < q.num);
		if (r == VQ_CHAIN)
			check_chain(&chain);
		else
			fz_check(why);
		have_chain = r == VQ_CHAIN;
		{
			uint16_t slot = q.used_idx & (q.num - 1);
			uint32_t len = fz_u16(f), elem[2];

			vq_push(&q, chain.head, len);
			memcpy(elem, q.used + 4 + 8u * slot, 8);
			fz_check(elem[0] == chain.head && elem[1] == len);
		}
	}
}

static void write_desc(struct fz *f)
{
	unsigned i = fz_u8(f);
	uint16_t a16 = fz_u16(f);
	struct vq_desc d;

	d.len = fz_u16(f);
	d.flags = fz_u8(f);
	d.next = fz_u8(f);
	/* Bit 7 of the flags byte (no virtio meaning): an address anywhere. */
	d.addr = d.flags & 0x80 ? fz_u64(f) : a16;
	d.flags &= 0x7f;
	(void)gm_write(&mem, q.desc_gpa + 16u * i, &d, sizeof(d));
}

static void make_avail(struct fz *f)
{
	uint16_t head = fz_u8(f), idx;

	if (!q.num)
		return;
	idx = rd16(q.avail_gpa + 2);
	(void)gm_write(&mem, q.avail_gpa + 4 + 2u * (idx % q.num), &head, 2);
	idx++;
	(void)gm_write(&mem, q.avail_gpa + 2, &idx, 2);
}

static void chain_read(struct fz *f)
{
	uint64_t off = fz_u16(f), len = fz_u16(f), got;
	bool inside = true;

	if (!have_chain)
		return;
	got = vq_chain_read(&chain, off, buf, len);
	fz_check(got <= len);
	fz_check(off >= chain.read_len ? got == 0 : got <= chain.read_len - off);
	for (unsigned i = 0; i < chain.nread; i++)
		if (chain.seg[i].len && !chain.seg[i].host)
			inside = false;
	if (inside)
		fz_check(got == (off >= chain.read_len ? 0 : chain.read_len - off < len
							      ? chain.read_len - off : len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	uint8_t flags;

	if (!ram)
		ram = fz_ram(&mem, RAM);
	memset(ram, 0, RAM);
	memset(&q, 0, sizeof(q));
	q.num = fz_u16(&f);
	flags = fz_u8(&f);
	q.event_idx = flags & 1;
	q.indirect = flags & 2;
	if (flags & 4) {
		q.desc_gpa = fz_u64(&f);
		q.avail_gpa = fz_u64(&f);
		q.used_gpa = fz_u64(&f);
	} else {
		q.desc_gpa = fz_u16(&f);
		q.avail_gpa = fz_u16(&f);
		q.used_gpa = fz_u16(&f);
	}
	enable();

	while (fz_left(&f)) {
		switch (fz_u8(&f) % 10) {
		case 0:
			pop(&f);
			break;
		case 1: {
			uint16_t off = fz_u16(&f), v = fz_u16(&f);

			(void)gm_write(&mem, off, &v, 2);
			break;
		}
		case 2:
			write_desc(&f);
			break;
		case 3:
			make_avail(&f);
			break;
		case 4: {
			uint16_t before = q.published;
			bool pushed = q.enabled && q.used_idx != q.published, r = vq_publish(&q);

			fz_check(!r || pushed);
			if (pushed)
				fz_check(q.published == q.used_idx && rd16(q.used_gpa + 2) == q.used_idx);
			else
				fz_check(q.published == before);
			break;
		}
		case 5: {
			bool live = q.enabled && !q.broken, more = vq_arm_notify(&q);

			if (!live)
				fz_check(!more);
			else
				fz_check(more == (rd16(q.avail_gpa + 2) != q.last_avail));
			if (live && q.event_idx)
				fz_check(rd16(q.used_gpa + 4 + 8u * q.num) == q.last_avail);
			break;
		}
		case 6:
			chain_read(&f);
			break;
		case 7:
			enable();
			break;
		case 8:
			vq_disable(&q);
			fz_check(!q.enabled);
			have_chain = false;
			break;
		case 9: {
			uint16_t off = fz_u16(&f);
			size_t n = fz_u8(&f);
			const uint8_t *p = fz_take(&f, &n);

			(void)gm_write(&mem, off, p, n);
			break;
		}
		}
	}
	return 0;
}

#ifdef FUZZ_SEEDS
#define S_DESC  0x0000u
#define S_AVAIL 0x1000u
#define S_USED  0x2000u
#define S_TABLE 0x3000u
#define S_BUFS  0x4000u

static void hdr(struct fz_buf *b, uint16_t num, uint8_t flags)
{
	fz_put16(b, num);
	fz_put8(b, flags);
	fz_put16(b, S_DESC);
	fz_put16(b, S_AVAIL);
	fz_put16(b, S_USED);
}

static void desc(struct fz_buf *b, uint8_t i, uint16_t addr, uint16_t len, uint8_t flags,
		 uint8_t next)
{
	fz_put8(b, 2);
	fz_put8(b, i);
	fz_put16(b, addr);
	fz_put16(b, len);
	fz_put8(b, flags);
	fz_put8(b, next);
}

static void avail(struct fz_buf *b, uint8_t head)
{
	fz_put8(b, 3);
	fz_put8(b, head);
}

static void pop_all(struct fz_buf *b)
{
	fz_put8(b, 0);
	fz_put8(b, 7);
	for (int i = 0; i < 8; i++)
		fz_put16(b, 0x200);
	fz_put8(b, 4);      /* publish */
	fz_put8(b, 5);      /* arm */
}

void fuzz_seeds(fz_emit_fn *emit)
{
	static struct fz_buf b;

	/* A block request: header, two data buffers, status; then a read of
	 * its readable area. */
	b.n = 0;
	hdr(&b, 8, 1);
	desc(&b, 0, S_BUFS, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(&b, 1, S_BUFS + 0x100, 512, VIRTQ_DESC_F_NEXT, 2);
	desc(&b, 2, S_BUFS + 0x300, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
	desc(&b, 3, S_BUFS + 0x10, 1, VIRTQ_DESC_F_WRITE, 0);
	avail(&b, 0);
	pop_all(&b);
	fz_put8(&b, 6);
	fz_put16(&b, 4);
	fz_put16(&b, 600);
	emit("chain", &b);

	/* The same through an indirect table, with EVENT_IDX. */
	b.n = 0;
	hdr(&b, 16, 3);
	desc(&b, 5, S_TABLE, 48, VIRTQ_DESC_F_INDIRECT, 0);
	fz_put8(&b, 9);                 /* the table, written as bytes */
	fz_put16(&b, S_TABLE);
	fz_put8(&b, 48);
	{
		struct vq_desc t[3] = {
			{ S_BUFS, 16, VIRTQ_DESC_F_NEXT, 1 },
			{ S_BUFS + 0x100, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2 },
			{ S_BUFS + 0x10, 1, VIRTQ_DESC_F_WRITE, 0 },
		};

		fz_put(&b, t, sizeof(t));
	}
	avail(&b, 5);
	pop_all(&b);
	emit("indirect", &b);

	/* Many single-buffer chains around the ring twice, with a reset. */
	b.n = 0;
	hdr(&b, 4, 1);
	for (int i = 0; i < 4; i++)
		desc(&b, (uint8_t)i, (uint16_t)(S_BUFS + 0x100 * i), 64, VIRTQ_DESC_F_WRITE, 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++)
			avail(&b, (uint8_t)i);
		pop_all(&b);
	}
	fz_put8(&b, 7);
	avail(&b, 2);
	pop_all(&b);
	emit("wrap", &b);

	/* A direct chain one descriptor longer than VQ_CHAIN_MAX, written in
	 * bulk (15 descriptors per write). */
	b.n = 0;
	hdr(&b, 256, 0);
	for (unsigned i = 0; i <= VQ_CHAIN_MAX; i += 15) {
		unsigned n = VQ_CHAIN_MAX + 1 - i < 15 ? VQ_CHAIN_MAX + 1 - i : 15;

		fz_put8(&b, 9);
		fz_put16(&b, (uint16_t)(S_DESC + 16 * i));
		fz_put8(&b, (uint8_t)(16 * n));
		for (unsigned k = i; k < i + n; k++) {
			struct vq_desc d = { S_BUFS + 8 * k, 8,
					     k < VQ_CHAIN_MAX ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(k + 1) };

			fz_put(&b, &d, sizeof(d));
		}
	}
	avail(&b, 0);
	pop_all(&b);
	emit("too-long", &b);

	/* Malformed: a loop, a head beyond the queue, an index racing ahead. */
	b.n = 0;
	hdr(&b, 256, 2);
	desc(&b, 0, S_BUFS, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(&b, 1, S_BUFS, 8, VIRTQ_DESC_F_NEXT, 0);
	avail(&b, 0);
	pop_all(&b);
	avail(&b, 255);
	fz_put8(&b, 1);
	fz_put16(&b, S_AVAIL + 2);
	fz_put16(&b, 0x4000);
	pop_all(&b);
	emit("malformed", &b);
}
#endif
