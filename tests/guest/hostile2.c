/* More hostile_* tests (issue 8's hostile-guest suite), on the raw ring of
 * hostile.c (hostile.h): register writes in every device state, a reset
 * while virtio-net has receive and transmit buffers in flight, a flood of
 * notifies, malformed receive chains, and a guest that never consumes what
 * virtio-net receives.
 *
 * Some need the runner (tests/integration/testguest-hostile.sh) to do
 * something on the host at the right moment: they print
 * "SYNC <test> <tag>" and wait for its one-byte answer on the serial
 * input (host_sync()).  Tags:
 *   flood-on / flood-off   start / stop a host packet source sending frames
 *                          (FLOOD_* below) to the NIC's tap
 *   window:NAME            the runner samples the VMM's CPU time and RSS,
 *                          waits its window (1.5 s), samples again, answers
 *   begin:NAME, end:NAME   the same, but the guest decides how long
 * The runner judges those numbers itself (VMM CPU and memory are not the
 * guest's to see).  Without a runner (no answer within a few seconds) a
 * test that needs the flood SKIPs and the others do without. */
#include "hostile.h"

/* Frames of the runner's packet source (tests/netflood.c, which keeps the
 * same layout): Ethernet header with ethertype 0x88b5, the magic, a
 * little-endian 32-bit sequence number, then bytes (seq + i) & 0xff. */
#define FLOOD_MAGIC    "EMBERFLD"
#define FLOOD_ETHERTYPE 0x88b5u
#define RXBUF          (NET_HDR + 1514u) /* a receive buffer: header and a full frame */
#define CANARY         0xc5u
#define NET_F_MRG_RXBUF 15

/* ---- the runner handshake ---- */

#define LSR_DR 1u

static void uart_drain(void)
{
	while (inb(COM1 + 5) & LSR_DR)
		(void)inb(COM1);
}

char host_sync(const char *tag, uint64_t timeout_us)
{
	uart_drain();
	printf("SYNC %s %s\n", current_test ? current_test : "-", tag);
	console_flush();
	uint64_t dl = deadline_after_us(timeout_us);
	while (!(inb(COM1 + 5) & LSR_DR)) {
		if (deadline_passed(dl))
			return 0;
		/* Halt between looks (the vCPU must not spin while the runner
		 * measures the VMM): woken by the timer every 2 ms. */
		irq_sleep(irq_total, MIN(dl, deadline_after_us(2000)));
	}
	char c = (char)inb(COM1);
	udelay(2000); /* the rest of the runner's line */
	uart_drain();
	return c == 'y' ? 'y' : 'n';
}

/* ---- small ring helpers ---- */

/* Make head available without notifying (publish with hq_publish). */
static void hq_add(struct hq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx % q->num] = head;
	q->avail_idx++;
}

static void hq_publish(struct hq *q, bool notify)
{
	wmb();
	q->avail->idx = q->avail_idx;
	mb();
	if (notify)
		virtio_write(q->d, VIRTIO_MMIO_QUEUE_NOTIFY, q->qidx);
}

/* Status 0, then wait (up to 3 s: ember waits for I/O in flight) until it
 * reads 0.  false if it never did. */
static bool reset_wait(struct virtio_dev *d)
{
	virtio_write(d, VIRTIO_MMIO_STATUS, 0);
	uint64_t dl = deadline_after_us(3000000);
	while (virtio_read(d, VIRTIO_MMIO_STATUS)) {
		if (deadline_passed(dl))
			return false;
		cpu_relax();
	}
	return true;
}

/* Memory the device must leave alone after a reset. */
struct region {
	volatile void *p;
	size_t n;
	const char *what;
};

static void canary_fill(const struct region *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		memset((void *)r[i].p, CANARY, r[i].n);
}

/* NULL, or which region the device wrote into (and where). */
static const char *canary_check(const struct region *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const volatile uint8_t *p = r[i].p;
		for (size_t k = 0; k < r[i].n; k++)
			if (p[k] != CANARY)
				return why("%s: byte %lu is 0x%02x (canary 0x%02x written after Status read 0)", r[i].what,
					   (unsigned long)k, p[k], CANARY);
	}
	return NULL;
}

/* virtio-net, receive queue (rx: queue 0) and, if tx is not NULL, transmit
 * queue (queue 1), num entries each, VERSION_1 | (offered & want),
 * DRIVER_OK. */
static const char *net_open(struct hq *rx, struct hq *tx, uint32_t num, uint64_t want)
{
	const char *w = hq_begin_dev(rx, ndev(), 0, want, num);
	if (w)
		return w;
	virtio_write(rx->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	if (virtio_read(rx->d, VIRTIO_MMIO_QUEUE_NUM_MAX) < num)
		return why("QueueNumMax below %u", num);
	hq_program_own(rx, num);
	if (!hq_ready(rx))
		return "receive queue: QueueReady did not read back 1";
	if (tx) {
		memset(tx, 0, sizeof(*tx));
		tx->d = rx->d;
		tx->qidx = 1;
		if (hq_alloc(tx, num))
			return "out of memory";
		hq_program_own(tx, num);
		if (!hq_ready(tx))
			return "transmit queue: QueueReady did not read back 1";
	}
	if (!hq_driver_ok(rx))
		return "DRIVER_OK did not stick";
	if (tx)
		tx->driver_ok = true;
	return NULL;
}

/* A received buffer (header + frame, len bytes written): 1 = a flood
 * frame, 0 = some other frame, or why it is broken. */
static const char *rx_check(const uint8_t *b, uint32_t len, uint32_t cap, int *flood)
{
	*flood = 0;
	if (len < NET_HDR + 14 || len > cap)
		return why("used length %u (buffer %u bytes; a frame is at least %u)", len, cap, NET_HDR + 14);
	const uint8_t *f = b + NET_HDR;
	if ((uint32_t)(f[12] << 8 | f[13]) != FLOOD_ETHERTYPE || len < NET_HDR + 14 + 12 ||
	    memcmp(f + 14, FLOOD_MAGIC, 8))
		return NULL;
	uint32_t seq = (uint32_t)f[22] | (uint32_t)f[23] << 8 | (uint32_t)f[24] << 16 | (uint32_t)f[25] << 24;
	for (uint32_t i = 26; i < len - NET_HDR; i++)
		if (f[i] != (uint8_t)(seq + i))
			return why("flood frame %u: byte %u is 0x%02x, want 0x%02x", seq, i, f[i], (uint8_t)(seq + i));
	*flood = 1;
	return NULL;
}

/* ================= register writes in every device state ================= */

/* The states a driver can leave a device in (§2.1, §3.1.1). */
enum { ST_RESET, ST_ACK, ST_DRIVER, ST_FEATURES, ST_QREADY, ST_LIVE, ST_NEEDS_RESET, ST_FAILED, ST_LIVE_FAILED,
       ST_N };
static const char *const st_names[ST_N] = {
	"reset", "ACKNOWLEDGE", "DRIVER", "FEATURES_OK", "FEATURES_OK + queues ready", "DRIVER_OK",
	"DRIVER_OK + NEEDS_RESET", "FAILED (after DRIVER)", "DRIVER_OK + FAILED",
};

/* Bring d (with nq queues on the rings in q[], QSIZE entries each) into
 * state s from a reset.  NULL, or why the state could not be reached
 * (then *skip says it is the device's right: NEEDS_RESET is a SHOULD). */
static const char *enter_state(struct virtio_dev *d, struct hq *q, unsigned nq, unsigned s, bool *skip)
{
	*skip = false;
	if (!reset_wait(d))
		return "Status did not read 0 after a reset";
	d->touched = true;
	for (unsigned i = 0; i < nq; i++) {
		memset(q[i].desc, 0, 16ull * QSIZE);
		memset((void *)q[i].avail, 0, 6 + 2ull * QSIZE);
		memset((void *)q[i].used, 0, 6 + 8ull * QSIZE);
		q[i].avail_idx = q[i].last_used = 0;
		q[i].num = QSIZE;
	}
	if (s == ST_RESET)
		return NULL;
	virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	if (s == ST_ACK)
		return NULL;
	virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	if (s == ST_DRIVER)
		return NULL;
	if (s == ST_FAILED) {
		virtio_write(d, VIRTIO_MMIO_STATUS,
			     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FAILED);
		return NULL;
	}
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	virtio_write(d, VIRTIO_MMIO_STATUS, ST_FEAT);
	if (!(virtio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		return "FEATURES_OK with VERSION_1 alone did not stick";
	if (s == ST_FEATURES)
		return NULL;
	for (unsigned i = 0; i < nq; i++) {
		hq_program_own(&q[i], QSIZE);
		if (!hq_ready(&q[i]))
			return why("queue %u: QueueReady did not read back 1", q[i].qidx);
	}
	if (s == ST_QREADY)
		return NULL;
	virtio_write(d, VIRTIO_MMIO_STATUS, ST_FEAT | VIRTIO_STATUS_DRIVER_OK);
	if (!(virtio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK))
		return "DRIVER_OK did not stick";
	if (s == ST_LIVE)
		return NULL;
	if (s == ST_LIVE_FAILED) {
		virtio_write(d, VIRTIO_MMIO_STATUS, ST_FEAT | VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FAILED);
		return NULL;
	}
	/* NEEDS_RESET: the last queue's available index runs 0x8000 ahead
	 * (§2.7.6.1 forbids more than the queue size), which a device may
	 * answer with NEEDS_RESET (§2.1.2 SHOULD). */
	struct hq *b = &q[nq - 1];
	b->avail->idx = 0x8000;
	mb();
	virtio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, b->qidx);
	uint64_t dl = deadline_after_us(ANSWER_US);
	while (!(virtio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET))
		if (deadline_passed(dl)) {
			*skip = true;
			return "an available index 0x8000 ahead did not set NEEDS_RESET";
		}
	return NULL;
}

/* What a register write may never change: the identity registers. */
struct ident {
	uint32_t magic, version, id, vendor;
};

static struct ident ident_read(struct virtio_dev *d)
{
	return (struct ident){ virtio_read(d, VIRTIO_MMIO_MAGIC_VALUE), virtio_read(d, VIRTIO_MMIO_VERSION),
			       virtio_read(d, VIRTIO_MMIO_DEVICE_ID), virtio_read(d, VIRTIO_MMIO_VENDOR_ID) };
}

/* Values written everywhere.  None of them, taken as a (part of a) ring
 * address, names guest RAM but page 0 (zeroed before each pass; the
 * runner gives the guest 128 MiB, so 0x5a5a5a5a and 2 GiB are past its
 * end): whatever a device does with them cannot corrupt this guest. */
static const uint32_t sweep_vals[] = { 0xffffffffu, 0, 1, 0x80000000u, 0x5a5a5a5au, 0x7fff };
/* Values written to Status (one write per fresh state): every bit, none,
 * the whole handshake at once, DRIVER_OK with the device's NEEDS_RESET,
 * FAILED alone, undefined bits. */
static const uint32_t status_vals[] = { 0xffffffffu, 0x0f, 0x4f, 0x80, 0x7fff, 0x5a5a5a5au, 0x100, 0 };

/* One device: for every state, every value: the register file 0x000-0x0fc
 * (but Status), the first 64 bytes of the configuration space, and odd
 * widths at QueueNotify, Status, QueueReady, QueueDescLow, each written
 * in a freshly entered state; then Status alone.  After each pass the
 * identity registers must read the same and no buffer may be used (none
 * was made available); after each state a reset and a well-behaved
 * initialisation must work (rec). */
static enum test_result regs_states(struct virtio_dev *d, unsigned nq, const char *(*rec)(const char *))
{
	struct hq q[2];
	memset(q, 0, sizeof(q));
	for (unsigned i = 0; i < nq; i++) {
		q[i].d = d;
		q[i].qidx = i;
		if (hq_alloc(&q[i], QSIZE))
			return fail("out of memory");
	}
	virtio_irq_route(d, true);
	struct ident id0 = ident_read(d);
	uintptr_t b = d->base, zero = 0;
	__asm__ volatile("" : "+r"(zero)); /* page 0, not a null pointer to the compiler */
	unsigned passes = 0, skipped = 0, writes = 0;
	char seen[ST_N][12] = { { 0 } };
	for (unsigned s = 0; s < ST_N; s++) {
		bool skip;
		const char *w = NULL;
		for (unsigned vi = 0; vi < ARRAY_SIZE(sweep_vals) + ARRAY_SIZE(status_vals); vi++) {
			bool status_pass = vi >= ARRAY_SIZE(sweep_vals);
			uint32_t v = status_pass ? status_vals[vi - ARRAY_SIZE(sweep_vals)] : sweep_vals[vi];
			memset((void *)zero, 0, 4096);
			w = enter_state(d, q, nq, s, &skip);
			if (w)
				break;
			if (status_pass) {
				virtio_write(d, VIRTIO_MMIO_STATUS, v);
				writes++;
			} else {
				for (unsigned off = 0; off < 0x100; off += 4)
					if (off != VIRTIO_MMIO_STATUS) {
						mmio_write32(b + off, v);
						writes++;
					}
				for (unsigned off = 0; off < 64; off += 4)
					mmio_write32(b + VIRTIO_MMIO_CONFIG + off, v);
				mmio_write8(b + VIRTIO_MMIO_QUEUE_NOTIFY, (uint8_t)v);
				mmio_write16(b + VIRTIO_MMIO_QUEUE_NOTIFY + 2, (uint16_t)v);
				mmio_write8(b + VIRTIO_MMIO_STATUS + 1, (uint8_t)v);
				mmio_write16(b + VIRTIO_MMIO_STATUS, (uint16_t)v);
				mmio_write8(b + VIRTIO_MMIO_QUEUE_READY, (uint8_t)v);
				*(volatile uint64_t *)(b + VIRTIO_MMIO_QUEUE_DESC_LOW) = (uint64_t)v << 32 | v;
				writes += 64 / 4 + 6;
			}
			/* Let a device that took something poke at the rings. */
			for (unsigned i = 0; i < nq + 1; i++)
				virtio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, i);
			udelay(200);
			struct ident id = ident_read(d);
			if (memcmp(&id, &id0, sizeof(id))) {
				w = why("after writing 0x%x to %s in state %s: MagicValue/Version/DeviceID/VendorID read "
					"0x%x/%u/%u/0x%x, before 0x%x/%u/%u/0x%x (§4.2.2: read-only)", v,
					status_pass ? "Status" : "every register", st_names[s], id.magic, id.version, id.id,
					id.vendor, id0.magic, id0.version, id0.id, id0.vendor);
				break;
			}
			uint32_t stv = virtio_read(d, VIRTIO_MMIO_STATUS);
			if (stv & ~0xffu) {
				w = why("after writing 0x%x to %s in state %s: Status reads 0x%x, bits beyond the one-byte "
					"device status field (§2.1)", v, status_pass ? "Status" : "every register",
					st_names[s], stv);
				break;
			}
			for (unsigned i = 0; i < nq; i++)
				if (q[i].used->idx != 0) {
					w = why("after writing 0x%x to %s in state %s: queue %u's used index is %u, but no "
						"buffer was ever made available", v, status_pass ? "Status" : "every register",
						st_names[s], i, q[i].used->idx);
					break;
				}
			if (w)
				break;
			if (status_pass && vi == ARRAY_SIZE(sweep_vals))
				snprintf(seen[s], sizeof(seen[s]), "0x%x", virtio_read(d, VIRTIO_MMIO_STATUS));
			passes++;
		}
		if (w && skip) {
			info("state %s: not reached (%s): skipped", st_names[s], w);
			skipped++;
			w = NULL;
		}
		if (w)
			return fail("%s", w);
		if ((w = rec(st_names[s])))
			return fail("after the writes in state %s: %s", st_names[s], w);
	}
	info("%u passes, %u register writes, %u states skipped; Status after writing 0x%x: %s", passes, writes,
	     skipped, status_vals[0], seen[ST_LIVE]);
	return TEST_PASS;
}

TESTCASE(hostile_regs_states, no_blk, TF_HOSTILE)
{
	return regs_states(hdev(), 1, recover);
}

TESTCASE(hostile_net_regs_states, no_net, TF_HOSTILE)
{
	return regs_states(ndev(), 2, net_recover);
}

/* ================= virtio-net: reset with buffers in flight ================= */

/* Receive buffers posted (with the runner's flood frames arriving, so the
 * device is writing into them) and frames being transmitted, then a reset
 * 0-400 us after the notifies, in 24 rounds; every other round with
 * MRG_RXBUF negotiated (if offered), where a device may fill many buffers
 * with one read; every fourth round stops the queues instead (QueueReady
 * 0: no queue access after it, §4.2.2.1; not with the queue_not_ready
 * quirk).  Once Status reads 0 the device must leave the rings and
 * buffers alone (§2.4.1): the guest at once overwrites all of it (rings,
 * receive buffers, transmit frames) with a canary, which must still be
 * there 30 ms later, and no interrupt may come.  Buffers used before the reset must hold whole frames.  Then a
 * fresh initialisation must transmit, and receive a flood frame. */
TESTCASE(hostile_net_reset_inflight, no_net, TF_HOSTILE)
{
	enum { N = 64, ROUNDS = 24 };
	static const unsigned delay[] = { 0, 0, 10, 20, 50, 100, 200, 400 };
	bool flood = host_sync("flood-on", 5000000) == 'y';
	if (!flood)
		info("no host flood: the receive buffers stay empty");
	uintptr_t mark = heap_mark();
	unsigned rx_done = 0, tx_done = 0, frames = 0, stopped = 0;
	for (unsigned round = 0; round < ROUNDS; round++) {
		heap_release(mark);
		struct hq rx, tx;
		const char *w = net_open(&rx, &tx, N, round % 2 ? BIT(NET_F_MRG_RXBUF) : 0);
		if (w)
			return fail("round %u: %s", round, w);
		uint8_t *rb = alloc((size_t)N * RXBUF, 4096), *tb = alloc((size_t)N * (NET_HDR + 1514), 4096);
		if (!rb || !tb)
			return fail("out of memory");
		for (unsigned i = 0; i < N; i++) {
			set_desc(rx.desc, i, virt_to_phys(rb + (size_t)i * RXBUF), RXBUF, W_END);
			hq_add(&rx, (uint16_t)i);
			uint8_t *f = tb + (size_t)i * (NET_HDR + 1514);
			frame_fill(f);
			uint32_t len = 60 + (i * 23) % (1514 - 60);
			set_desc(tx.desc, i, virt_to_phys(f), NET_HDR + len, R_END);
			hq_add(&tx, (uint16_t)i);
		}
		hq_publish(&rx, true);
		hq_publish(&tx, true);
		if (delay[round % ARRAY_SIZE(delay)])
			udelay(delay[round % ARRAY_SIZE(delay)]);
		/* Every fourth round stops the two queues instead (QueueReady
		 * 0, not honoured by QEMU: quirk queue_not_ready). */
		bool qstop = round % 4 == 3 && !quirk("queue_not_ready");
		if (qstop) {
			for (unsigned i = 0; i < 2; i++) {
				virtio_write(rx.d, VIRTIO_MMIO_QUEUE_SEL, i);
				virtio_write(rx.d, VIRTIO_MMIO_QUEUE_READY, 0);
				uint64_t dl = deadline_after_us(3000000);
				while (virtio_read(rx.d, VIRTIO_MMIO_QUEUE_READY) && !deadline_passed(dl))
					cpu_relax();
				if (virtio_read(rx.d, VIRTIO_MMIO_QUEUE_READY))
					return fail("round %u: queue %u's QueueReady not 0 3 s after writing 0", round, i);
			}
			stopped++;
		} else if (!reset_wait(rx.d)) {
			return fail("round %u: Status not 0 3 s after the reset", round);
		}
		uint16_t ru = rx.used->idx, tu = tx.used->idx;
		uint64_t irqs = virtio_irq_count(rx.d);
		if ((uint16_t)(ru) > N || (uint16_t)tu > N)
			return fail("round %u: used indices %u (receive) and %u (transmit), but only %u buffers each", round,
				    ru, tu, N);
		for (unsigned k = 0; k < ru; k++) {
			uint32_t id = rx.used->ring[k].id, len = rx.used->ring[k].len;
			int fl = 0;
			if (id >= N)
				return fail("round %u: receive used entry %u names descriptor %u", round, k, id);
			if ((w = rx_check(rb + (size_t)id * RXBUF, len, RXBUF, &fl)))
				return fail("round %u: received before the reset: %s", round, w);
			frames += (unsigned)fl;
		}
		rx_done += ru;
		tx_done += tu;
		struct region r[] = {
			{ rx.desc, 16 * N, "receive descriptor table" }, { rx.avail, 6 + 2 * N, "receive available ring" },
			{ rx.used, 6 + 8 * N, "receive used ring" }, { rb, (size_t)N * RXBUF, "receive buffers" },
			{ tx.desc, 16 * N, "transmit descriptor table" }, { tx.avail, 6 + 2 * N, "transmit available ring" },
			{ tx.used, 6 + 8 * N, "transmit used ring" }, { tb, (size_t)N * (NET_HDR + 1514), "transmit frames" },
		};
		canary_fill(r, ARRAY_SIZE(r));
		udelay(QUIET_US);
		if ((w = canary_check(r, ARRAY_SIZE(r))))
			return fail("round %u (%s %u us after the notifies, %u received, %u sent before it): %s (%s)",
				    round, qstop ? "QueueReady 0" : "reset", delay[round % ARRAY_SIZE(delay)], ru, tu, w,
				    qstop ? "§4.2.2.1: no queue access while QueueReady is 0"
					  : "§2.4.1: no interaction with the queues after the reset");
		if (!qstop && virtio_irq_count(rx.d) != irqs)
			return fail("round %u: an interrupt came after Status read 0 (§2.4.1)", round);
	}
	heap_release(mark);
	info("before the resets: %u buffers received into (%u flood frames), %u frames sent, of %u each; %u rounds "
	     "by QueueReady 0", rx_done, frames, tx_done, ROUNDS * N, stopped);
	const char *w = net_recover("reset with buffers in flight");
	if (!w && flood) {
		/* Receiving works again. */
		struct hq rx;
		w = net_open(&rx, NULL, 16, 0);
		uint8_t *rb = w ? NULL : alloc(16 * RXBUF, 4096);
		if (!w && !rb)
			w = "out of memory";
		if (!w) {
			for (unsigned i = 0; i < 16; i++) {
				set_desc(rx.desc, i, virt_to_phys(rb + (size_t)i * RXBUF), RXBUF, W_END);
				hq_add(&rx, (uint16_t)i);
			}
			hq_publish(&rx, true);
			uint64_t dl = deadline_after_us(ANSWER_US);
			int fl = 0;
			while (!fl && !w && !deadline_passed(dl)) {
				if (rx.used->idx == rx.last_used) {
					irq_sleep(irq_total, MIN(dl, deadline_after_us(2000)));
					continue;
				}
				rmb();
				uint32_t id = rx.used->ring[rx.last_used % 16].id, len = rx.used->ring[rx.last_used % 16].len;
				rx.last_used++;
				w = id < 16 ? rx_check(rb + (size_t)id * RXBUF, len, RXBUF, &fl) : "bad used id";
			}
			if (!w && !fl)
				w = "after the resets, no flood frame received within 1 s";
		}
		virtio_reset(ndev());
	}
	if (flood)
		host_sync("flood-off", 5000000);
	return w ? fail("%s", w) : TEST_PASS;
}

/* ================= a flood of notifies ================= */

/* QueueNotify written as fast as the guest can for 1.5 s (testguest.flood_ms=
 * says otherwise): to queue 0 with
 * nothing new available, with a real read made available now and then, to
 * queues that do not exist (those leave the kernel and reach the VMM), in
 * odd widths; on virtio-net (if there is one) to both queues, no buffers
 * posted.  The device must keep serving: every read made available during
 * the flood completes within 1 s, and one after it within 100 ms
 * (ANSWER_US would hide a slow device; the runner's boot is otherwise
 * idle).  The runner checks the VMM's memory did not grow (begin/end). */
TESTCASE(hostile_notify_flood, no_blk, TF_HOSTILE)
{
	enum { BOUND_US = 1000000, AFTER_US = 100000 };
	char arg[16];
	const char *ms = cmdline_value("testguest.flood_ms", arg, sizeof(arg));
	uint64_t flood_us = ms ? parse_u64(ms, NULL) * 1000 : 1500000;
	struct hq q, nrx, ntx;
	const char *w = hq_open(&q, 0, 64, 64);
	if (w)
		return fail("%s", w);
	bool net = ndev() != NULL;
	if (net && (w = net_open(&nrx, &ntx, 64, 0)))
		return fail("virtio-net: %s", w);
	struct blk_hdr *h = alloc(sizeof(*h), 16);
	uint8_t *st = alloc(1, 16), *buf = alloc(8 * SECTOR, 4096);
	if (!h || !st || !buf)
		return fail("out of memory");
	*h = (struct blk_hdr){ .type = T_IN, .sector = 0 };
	set_desc(q.desc, 0, virt_to_phys(h), 16, RN(1));
	set_desc(q.desc, 1, virt_to_phys(buf), 8 * SECTOR, WN(2));
	set_desc(q.desc, 2, virt_to_phys(st), 1, W_END);
	uintptr_t nb = q.d->base + VIRTIO_MMIO_QUEUE_NOTIFY;
	uintptr_t netb = net ? nrx.d->base + VIRTIO_MMIO_QUEUE_NOTIFY : 0;
	host_sync("begin:notify-flood", 5000000);
	uint64_t t0 = rdtsc(), end = deadline_after_us(flood_us);
	uint64_t valid = 0, invalid = 0, odd = 0, netn = 0, reqs = 0, lat_max = 0, lat_sum = 0, posted = 0;
	bool inflight = false;
	for (unsigned it = 0; !deadline_passed(end); it++) {
		switch (it % 4) {
		case 0:
			for (unsigned i = 0; i < 64; i++)
				mmio_write32(nb, 0);
			valid += 64;
			break;
		case 1:
			if (!inflight) {
				*st = 0xff;
				hq_add(&q, 0);
				hq_publish(&q, false);
				posted = rdtsc();
				inflight = true;
			}
			for (unsigned i = 0; i < 64; i++)
				mmio_write32(nb, 0);
			valid += 64;
			break;
		case 2: {
			static const uint32_t bad[] = { 1, 2, 0xffff, 0x10000, 0xffffffffu, 0x80000000u, 7, 3 };
			for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
				mmio_write32(nb, bad[i]);
			invalid += ARRAY_SIZE(bad);
			mmio_write16(nb, 0);
			mmio_write8(nb, 0);
			odd += 2;
			break;
		}
		case 3:
			if (net) {
				for (unsigned i = 0; i < 32; i++) {
					mmio_write32(netb, 0);
					mmio_write32(netb, 1);
				}
				mmio_write32(netb, 5);
				netn += 65;
			}
			break;
		}
		if (inflight && q.used->idx != q.last_used) {
			rmb();
			uint64_t us = (rdtsc() - posted) / tsc_per_us;
			q.last_used++;
			inflight = false;
			reqs++;
			lat_sum += us;
			lat_max = MAX(lat_max, us);
			if (*st != S_OK)
				return fail("a read during the flood: status %u", *st);
			if ((w = check_known(buf, 0, 8)))
				return fail("a read during the flood: %s", w);
		} else if (inflight && (rdtsc() - posted) / tsc_per_us > BOUND_US) {
			return fail("a read made available during the flood did not complete within %u ms (%lu valid, "
				    "%lu invalid notifies so far)", BOUND_US / 1000, valid, invalid);
		}
	}
	uint64_t us = (rdtsc() - t0) / tsc_per_us;
	host_sync("end:notify-flood", 5000000);
	/* Drain the last one, then one more must be quick. */
	uint64_t dl = deadline_after_us(BOUND_US);
	while (inflight && q.used->idx == q.last_used && !deadline_passed(dl))
		cpu_relax();
	if (inflight && q.used->idx == q.last_used)
		return fail("the last read of the flood never completed");
	q.last_used = q.used->idx;
	*st = 0xff;
	hq_add(&q, 0);
	uint64_t p = rdtsc();
	hq_publish(&q, true);
	dl = deadline_after_us(AFTER_US);
	while (q.used->idx == q.last_used && !deadline_passed(dl))
		cpu_relax();
	uint64_t after = (rdtsc() - p) / tsc_per_us;
	if (q.used->idx == q.last_used || *st != S_OK)
		return fail("after the flood a read did not complete within %u ms (status %u)", AFTER_US / 1000, *st);
	if (net && (nrx.used->idx || ntx.used->idx))
		return fail("virtio-net used buffers never made available (receive %u, transmit %u)", nrx.used->idx,
			    ntx.used->idx);
	if (!reqs)
		return fail("no read completed during the flood");
	uint64_t total = valid + invalid + odd + netn;
	info("%lu notifies in %lu ms (%lu per s): %lu to queue 0, %lu to absent queues, %lu odd widths, %lu to "
	     "virtio-net; %lu reads during it, latency mean %lu us, max %lu us; %lu us after it", total, us / 1000,
	     us ? total * 1000000 / us : 0, valid, invalid, odd, netn, reqs, lat_sum / reqs, lat_max, after);
	virtio_reset(q.d);
	if (net)
		virtio_reset(nrx.d);
	if ((w = recover("notify flood")))
		return fail("%s", w);
	return TEST_PASS;
}

/* ================= virtio-net: malformed receive chains ================= */

/* Reset, a receive queue with four good buffers, and a flood frame must
 * arrive in one of them within 1 s. */
static const char *rx_recover(const char *what)
{
	struct hq rx;
	virtio_reset(ndev());
	if (virtio_read(ndev(), VIRTIO_MMIO_STATUS))
		return why("%s: Status not 0 after writing 0", what);
	const char *w = net_open(&rx, NULL, QSIZE, 0);
	if (w)
		return why("%s: after reset: %s", what, w);
	uint8_t *rb = alloc(4 * RXBUF, 4096);
	if (!rb)
		return "out of memory";
	for (unsigned i = 0; i < 4; i++) {
		set_desc(rx.desc, i, virt_to_phys(rb + (size_t)i * RXBUF), RXBUF, W_END);
		hq_add(&rx, (uint16_t)i);
	}
	hq_publish(&rx, true);
	uint64_t dl = deadline_after_us(ANSWER_US);
	int fl = 0;
	while (!fl && !deadline_passed(dl)) {
		if (rx.used->idx == rx.last_used) {
			irq_sleep(irq_total, MIN(dl, deadline_after_us(2000)));
			continue;
		}
		rmb();
		uint32_t id = rx.used->ring[rx.last_used % QSIZE].id, len = rx.used->ring[rx.last_used % QSIZE].len;
		rx.last_used++;
		if (id >= 4)
			return why("%s: after reset, used id %u for 4 buffers posted", what, id);
		if ((w = rx_check(rb + (size_t)id * RXBUF, len, RXBUF, &fl)))
			return why("%s: after reset: %s", what, w);
	}
	virtio_reset(ndev());
	return fl ? NULL : why("%s: after reset, no flood frame within 1 s", what);
}

/* Lay out receive chain arg at descriptor 0 (buffers at rb, RXBUF * 2
 * bytes); returns the head to publish.  *ro: a device-readable part that
 * must stay unwritten (0 bytes if none). */
static int nrx(struct hq *q, uint8_t *rb, uint64_t arg, uint32_t *ro)
{
	uint64_t p = virt_to_phys(rb), end = ram_end();
	*ro = 0;
	switch (arg) {
	case 0: /* the whole buffer device-readable */
		set_desc(q->desc, 0, p, RXBUF, R_END);
		*ro = RXBUF;
		return 0;
	case 1: /* a readable header part, then a writable rest (§5.1.6.3: receive buffers are writable) */
		set_desc(q->desc, 0, p, NET_HDR, RN(1));
		set_desc(q->desc, 1, p + NET_HDR, RXBUF - NET_HDR, W_END);
		*ro = NET_HDR;
		return 0;
	case 2: /* past RAM */
		set_desc(q->desc, 0, end, RXBUF, W_END);
		return 0;
	case 3: /* in the MMIO gap */
		set_desc(q->desc, 0, GAP_ADDR, RXBUF, W_END);
		return 0;
	case 4: /* straddling the end of RAM (starts in the heap's last page) */
		set_desc(q->desc, 0, end - 256, RXBUF, W_END);
		return 0;
	case 5: /* 4 bytes: not even the header */
		set_desc(q->desc, 0, p, 4, W_END);
		return 0;
	case 6: /* a loop */
		set_desc(q->desc, 0, p, 512, WN(1));
		set_desc(q->desc, 1, p + 512, 512, WN(0));
		return 0;
	case 7: /* next beyond the queue size */
		set_desc(q->desc, 0, p, RXBUF, WN(QSIZE));
		return 0;
	case 8: /* lengths summing past 2^32, from the heap's last page */
		set_desc(q->desc, 0, end - 4096, 0x80000000u, WN(1));
		set_desc(q->desc, 1, end - 4096, 0x80000000u, WN(2));
		set_desc(q->desc, 2, p, RXBUF, W_END);
		return 0;
	case 9: /* head = queue size */
		set_desc(q->desc, QSIZE, p, RXBUF, W_END);
		return QSIZE;
	case 10: /* the available index jumps by more than the queue size */
		set_desc(q->desc, 0, p, RXBUF, W_END);
		for (unsigned i = 0; i < QSIZE; i++)
			q->avail->ring[i] = 0;
		q->avail_idx = 0x7fff;
		return 0;
	case 11: /* indirect table of 24 bytes */
	case 12: /* indirect table referring to itself */ {
		struct virtq_desc *t = alloc(32, 16);
		set_desc(t, 0, p, 512, WN(1));
		set_desc(t, 1, p + 512, RXBUF - 512, W_END);
		if (arg == 12)
			set_desc(t, 1, virt_to_phys(t), 32, VIRTQ_DESC_F_INDIRECT, 0);
		set_desc(q->desc, 0, virt_to_phys(t), arg == 11 ? 24 : 32, VIRTQ_DESC_F_INDIRECT, 0);
		return 0;
	}
	case 13: /* legal: a zero-length writable descriptor, then the buffer */
		set_desc(q->desc, 0, p, 0, WN(1));
		set_desc(q->desc, 1, p, RXBUF, W_END);
		return 0;
	}
	return -1;
}

/* hostile_net_tx's abuse on the receive queue, while the runner floods the
 * tap (a device that looks at receive buffers only when a frame arrives
 * gets frames).  Accepted per chain: returned unwritten (used, and no
 * frame in it) or NEEDS_RESET; a readable header before a writable rest:
 * also the frame in the writable part; head beyond the table: NEEDS_RESET
 * or silence; the index jump: anything; a zero-length descriptor before
 * the buffer (nothing forbids one): a whole frame, or NEEDS_RESET.  A device-readable part must stay unwritten.  Recovery: a reset,
 * and a frame must arrive in good buffers.  Quirks: dma_unassigned (a
 * buffer outside RAM used with the frame's length: QEMU writes it into
 * nothing) and net_short_rx (a receive buffer shorter than the header
 * aborts QEMU 7.2: iov_from_buf_full assertion; not tried). */
TESTCASE(hostile_net_rx_chains, no_net, TF_HOSTILE)
{
	static const struct { const char *what; uint64_t arg; unsigned accept; bool indirect; } v[] = {
		{ "device-readable buffer", 0, O_USED | O_RESET, false },
		{ "readable header, writable rest", 1, O_USED | O_RESET, false },
		{ "buffer past RAM", 2, O_USED | O_RESET, false },
		{ "buffer in the MMIO gap", 3, O_USED | O_RESET, false },
		{ "buffer straddling the end of RAM", 4, O_USED | O_RESET, false },
		{ "4-byte buffer", 5, O_USED | O_RESET, false },
		{ "descriptor loop", 6, O_USED | O_RESET, false },
		{ "next beyond the queue size", 7, O_USED | O_RESET, false },
		{ "lengths summing past 2^32", 8, O_USED | O_RESET, false },
		{ "head = queue size", 9, O_RESET | O_SILENT, false },
		{ "avail idx jump", 10, O_USED | O_RESET | O_SILENT, false },
		{ "indirect table of 24 bytes", 11, O_USED | O_RESET, true },
		{ "indirect table referring to itself", 12, O_USED | O_RESET, true },
		{ "zero-length descriptor before the buffer", 13, O_USED | O_RESET, false },
	};
	if (host_sync("flood-on", 5000000) != 'y')
		return skip("no host packet source (run tests/integration/testguest-hostile.sh as root)");
	static char first[WHY_MAX];
	unsigned nfail = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(v); i++) {
		struct hq q;
		uintptr_t mark = heap_mark();
		if (v[i].arg == 5 && quirk("net_short_rx")) {
			info("%s: not tried (quirk net_short_rx: QEMU 7.2 aborts on it)", v[i].what);
			continue;
		}
		const char *w = net_open(&q, NULL, QSIZE, v[i].indirect ? BIT(VIRTIO_F_INDIRECT_DESC) : 0);
		if (!w && v[i].indirect && !virtio_has(q.d, VIRTIO_F_INDIRECT_DESC)) {
			info("%s: skipped, VIRTIO_F_INDIRECT_DESC not offered", v[i].what);
			heap_release(mark);
			continue;
		}
		uint8_t *rb = w ? NULL : alloc(2 * RXBUF, 4096), *copy = w ? NULL : alloc(RXBUF, 16);
		if (!w && (!rb || !copy))
			w = "out of memory";
		if (!w) {
			memset(rb, 0xee, 2 * RXBUF);
			uint32_t ro;
			int head = nrx(&q, rb, v[i].arg, &ro);
			memcpy(copy, rb, RXBUF);
			hq_add(&q, (uint16_t)head);
			hq_publish(&q, true);
			struct res r;
			hq_wait(&q, (v[i].accept & O_SILENT) ? QUIET_US : ANSWER_US, &r);
			w = judge(v[i].what, &q, &r, classify(&r, NULL), v[i].accept, NULL);
			if (!w && ro && memcmp(copy, rb, ro))
				w = why("%s: the device wrote into a device-readable buffer (§2.7.5.1)", v[i].what);
			if (!w && r.used && !r.reset && v[i].arg == 13) {
				int fl = 0;
				const char *c = rx_check(rb, r.len, RXBUF, &fl);
				if (c || !fl)
					w = why("%s: %s", v[i].what, c ? c : "no flood frame in the buffer");
			} else if (!w && r.used && !r.reset && r.len && v[i].arg == 1) {
				/* The frame in the writable part, the readable one
				 * skipped: a device may take it so. */
				int fl = 0;
				const char *c = rx_check(rb + NET_HDR, r.len, RXBUF - NET_HDR, &fl);
				if (c || !fl)
					w = why("%s: used with length %u: %s", v[i].what, r.len,
						c ? c : "no flood frame in the writable part");
			} else if (!w && r.used && !r.reset && r.len && v[i].arg >= 2 && v[i].arg <= 4 &&
				   quirk("dma_unassigned")) {
				info("%s: used with length %u, accepted as quirk dma_unassigned", v[i].what, r.len);
			} else if (!w && r.used && !r.reset && r.len && v[i].arg != 13 && v[i].arg != 10) {
				w = why("%s: returned with used length %u: a frame written into a malformed chain",
					v[i].what, r.len);
			}
		}
		if (w) {
			static char one[WHY_MAX];
			snprintf(one, sizeof(one), "%s", w);
			w = one;
			const char *rw = rx_recover(v[i].what);
			if (rw)
				info("also %s", rw);
		} else {
			w = rx_recover(v[i].what);
		}
		heap_release(mark);
		if (!w)
			continue;
		if (nfail++ == 0)
			snprintf(first, sizeof(first), "%s", w);
		else
			info("FAILED TOO: %s", w);
	}
	host_sync("flood-off", 5000000);
	if (nfail > 1)
		return fail("%s (and %u more, see INFO)", first, nfail - 1);
	return nfail ? fail("%s", first) : TEST_PASS;
}

/* ================= a guest that never consumes what it receives ================= */

/* The runner floods the NIC's tap with frames (20000 a second) while the
 * guest (1) has posted no receive buffer at all, for one window, then (2)
 * posts 16, lets them fill and never takes them back, for another; the
 * runner measures the VMM's CPU time and memory over both windows (ember
 * must not spin or buffer: the frames wait in the tap's queue, whose
 * overflow the kernel drops).  The device must not use more buffers than
 * were posted, nor set NEEDS_RESET; once the guest re-posts the 16
 * buffers, frames must arrive again within 1 s, intact.  Last, 8 buffers
 * too small for any of the frames: nothing may be written past them, and
 * no frame may arrive in them cut short. */
TESTCASE(hostile_net_rx_starve, no_net, TF_HOSTILE)
{
	enum { N = 16, QN = 64 };
	struct hq rx;
	const char *w = net_open(&rx, NULL, QN, 0);
	if (w)
		return fail("%s", w);
	uint8_t *rb = alloc((size_t)2 * N * RXBUF, 4096);
	if (!rb)
		return fail("out of memory");
	for (unsigned i = 0; i < 2 * N; i++)
		set_desc(rx.desc, i, virt_to_phys(rb + (size_t)i * RXBUF), RXBUF, W_END);
	if (host_sync("flood-on", 5000000) != 'y')
		return skip("no host packet source (run tests/integration/testguest-hostile.sh as root)");
	uint32_t isr0 = rx.isr;
	udelay(50000);
	if (host_sync("window:no-buffers", 10000000) != 'y')
		w = "the runner did not answer the first window";
	hq_ack(&rx);
	uint32_t st = virtio_read(rx.d, VIRTIO_MMIO_STATUS);
	if (!w && rx.used->idx)
		w = why("%u receive buffers used, none was posted", rx.used->idx);
	if (!w && (st & VIRTIO_STATUS_NEEDS_RESET))
		w = "NEEDS_RESET while no receive buffer was posted (§2.1.2: only for an error state)";
	if (!w && ((rx.isr & ~isr0) & VIRTIO_INT_USED))
		w = "a used-buffer interrupt with no receive buffer posted";
	/* (2) 16 buffers, filled and never returned. */
	unsigned got = 0, flood = 0;
	if (!w) {
		for (unsigned i = 0; i < N; i++)
			hq_add(&rx, (uint16_t)i);
		hq_publish(&rx, true);
		uint64_t dl = deadline_after_us(ANSWER_US);
		while (rx.used->idx != N && !deadline_passed(dl))
			irq_sleep(irq_total, MIN(dl, deadline_after_us(2000)));
		if (rx.used->idx != N)
			w = why("%u of %u posted receive buffers used within 1 s of a flood", rx.used->idx, N);
	}
	if (!w && host_sync("window:never-consumed", 10000000) != 'y')
		w = "the runner did not answer the second window";
	if (!w && rx.used->idx != N)
		w = why("used index %u, but only %u buffers were ever posted", rx.used->idx, N);
	for (unsigned k = 0; !w && k < N; k++) {
		int fl = 0;
		uint32_t id = rx.used->ring[k].id;
		if (id >= N)
			w = why("used entry %u names descriptor %u, never posted", k, id);
		else
			w = rx_check(rb + (size_t)id * RXBUF, rx.used->ring[k].len, RXBUF, &fl);
		flood += (unsigned)fl;
		got++;
	}
	/* (3) Consumed at last: 16 fresh buffers, frames must flow again. */
	if (!w) {
		rx.last_used = N;
		for (unsigned i = N; i < 2 * N; i++)
			hq_add(&rx, (uint16_t)i);
		hq_publish(&rx, true);
		uint64_t dl = deadline_after_us(ANSWER_US);
		while (rx.used->idx != 2 * N && !deadline_passed(dl))
			irq_sleep(irq_total, MIN(dl, deadline_after_us(2000)));
		if (rx.used->idx != 2 * N)
			w = why("after re-posting 16 buffers only %u were used within 1 s", (uint16_t)(rx.used->idx - N));
		for (unsigned k = N; !w && k < 2 * N; k++) {
			int fl = 0;
			uint32_t id = rx.used->ring[k % QN].id;
			if (id < N || id >= 2 * N)
				w = why("used entry %u names descriptor %u, not one of the re-posted", k, id);
			else
				w = rx_check(rb + (size_t)id * RXBUF, rx.used->ring[k % QN].len, RXBUF, &fl);
			flood += (unsigned)fl;
			got++;
		}
		if (!w && !flood)
			w = "no flood frame among the frames received";
	}
	/* (4) Buffers too small for any flood frame (header + 14 bytes; the
	 * driver SHOULD give 1526 without MRG_RXBUF, §5.1.6.3.1): a device
	 * drops what does not fit; it must not write past a buffer nor hand
	 * over a frame cut short as if it were whole. */
	unsigned tiny = 0;
	if (!w) {
		uint16_t u = rx.used->idx;
		memset(rb, 0xee, 8 * 64);
		for (unsigned k = 0; k < 8; k++) {
			set_desc(rx.desc, 2 * N + k, virt_to_phys(rb + k * 64), NET_HDR + 14, W_END);
			hq_add(&rx, (uint16_t)(2 * N + k));
		}
		hq_publish(&rx, true);
		uint64_t dl = deadline_after_us(200000);
		while (!deadline_passed(dl))
			irq_sleep(irq_total, dl);
		static const uint8_t flood_src[6] = { 0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x64 };
		for (uint16_t k = u; !w && k != rx.used->idx; k++, tiny++) {
			uint32_t id = rx.used->ring[k % QN].id, len = rx.used->ring[k % QN].len;
			const uint8_t *f = id >= 2 * N && id < 2 * N + 8 ? rb + (id - 2 * N) * 64 + NET_HDR : NULL;
			if (!f)
				w = why("used entry %u names descriptor %u, not one of the small buffers", k, id);
			else if (len > NET_HDR + 14)
				w = why("a %u-byte receive buffer used with length %u", NET_HDR + 14, len);
			else if (len == NET_HDR + 14 && !memcmp(f + 6, flood_src, 6) && f[12] == 0x88 && f[13] == 0xb5)
				w = why("a flood frame (%u bytes) delivered cut to the %u bytes of the buffer, as if whole: "
					"the driver cannot tell; drop it", 1000u, NET_HDR + 14);
		}
		for (unsigned k = 0; !w && k < 8; k++)
			for (unsigned i = NET_HDR + 14; i < 64; i++)
				if (rb[k * 64 + i] != 0xee) {
					w = why("the device wrote past the end of a %u-byte receive buffer", NET_HDR + 14);
					break;
				}
	}
	host_sync("flood-off", 5000000);
	virtio_reset(rx.d);
	if (w)
		return fail("%s", w);
	info("%u frames received (%u from the flood); Status 0x%x during the first window; %u of 8 buffers too small "
	     "for the frames used", got, flood, st, tiny);
	if ((w = net_recover("receive never consumed")))
		return fail("%s", w);
	return TEST_PASS;
}
