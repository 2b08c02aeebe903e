/* ember.bench=net:DIR:LEN:SECS[:sync] — a virtio-net benchmark (bench/net.sh).
 *
 * A polling driver, like bench_blk.c: used-buffer interrupts stay off and
 * the vCPU spins at CPL3 on the used ring, so what is measured is the
 * device, the VMM and the host's tap path, not the guest's interrupt path
 * (emulated CPL0 on kvm-pvm).  It negotiates what Linux's driver takes for
 * plain frames: MAC, MRG_RXBUF (2 KiB receive buffers, one per frame here)
 * and EVENT_IDX (so a notification is sent only when the device asked for
 * one); no offloads (the frames are at most MTU-sized).
 *
 *   DIR   tx: the guest sends LEN-byte frames as fast as the device takes
 *         them (every transmit slot in the ring, each resubmitted as soon
 *         as it is used), to the peer's MAC (TGNET_PEER_MAC)
 *         rx: the guest counts the frames the host peer sends it (keeping
 *         every receive buffer posted, each re-posted as soon as it is used)
 *   LEN   Ethernet frame length without FCS, 60 .. 1514 (60 = a 64-byte
 *         frame on the wire, 1514 = a 1500-byte MTU frame)
 *   SECS  the timed window, 1 .. 3600 s
 *   sync  after each BENCH line wait for one byte on COM1 (up to 5 s), so
 *         the runner can read the VMM's CPU time at the window's ends and
 *         start or stop the peer
 *
 * The frames are of ethertype BENCH_ETHERTYPE (0x88b6, IEEE "local
 * experimental" 2: no host protocol handles them); the first 4 bytes after
 * the Ethernet header are BENCH_MAGIC.  rx counts only such frames of LEN
 * bytes (others: stale=).
 *
 * Output (key=value, parsed by bench/net.sh):
 *
 *   BENCH net begin dir=tx len=N secs=N qsize=N features=0x... mac=... tsc_mhz=N boot_tsc_mhz=N
 *   BENCH net dir=tx len=N frames=N bytes=N us=N fps=N mbps=N stale=N tail=N kicks=N notifies=N
 *
 * frames/bytes: frames the device used (tx) or delivered (rx) inside the
 * window of us microseconds (TSC); bytes are Ethernet bytes (no virtio
 * header, no FCS), mbps = bytes * 8 / us.  tx: the window opens at the
 * first submission and closes at the first poll after SECS; tail = the
 * frames still in flight then (drained after the window, not counted: the
 * peer receives them too).  rx: the window opens at the first frame after
 * the sync (frames queued before are dropped first) and closes at the
 * first poll after SECS.  kicks/notifies as in bench_blk.c (both queues).
 */
#include "virtio.h"
#include "netproto.h"

#define VIRTIO_NET_F_MAC       5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define NET_CFG_MAC            0
#define NET_HDR_LEN            12u
#define ETH_HLEN               14u
#define LEN_MIN                60u
#define LEN_MAX                1514u
#define BUF_LEN                2048u /* a receive buffer / transmit slot */
#define BENCH_ETHERTYPE        0x88b6u
#define BENCH_MAGIC            0x4e424d45u /* "EMBN" in memory */
#define STALL_US               (5u * 1000 * 1000)

struct nbench {
	bool tx, sync;
	unsigned len, secs;
	struct virtio_dev *dev;
	struct virtq rx, tx_q;
	uint8_t mac[6];
	uint8_t *bufs; /* qsize buffers of BUF_LEN */
	unsigned nbufs;
	uint64_t frames, bytes, stale, tail;
};

/* "net:DIR:LEN:SECS[:sync]" without the "net:" */
static const char *parse(struct nbench *b, const char *a)
{
	if (!strncmp(a, "tx:", 3))
		b->tx = true;
	else if (strncmp(a, "rx:", 3))
		return "want net:tx|rx:LEN:SECS[:sync]";
	const char *p = a + 3, *q = p;
	uint64_t len = parse_u64(p, &p);
	if (p == q || *p++ != ':' || len < LEN_MIN || len > LEN_MAX)
		return "LEN must be 60 .. 1514 (an Ethernet frame without FCS)";
	q = p;
	uint64_t secs = parse_u64(p, &p);
	if (p == q || !secs || secs > 3600)
		return "SECS must be 1 .. 3600";
	b->sync = !strcmp(p, ":sync");
	if (*p && !b->sync)
		return "only :sync may follow SECS";
	b->len = (unsigned)len;
	b->secs = (unsigned)secs;
	return NULL;
}

static void put16be(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* Slot i: a zero virtio-net header (no offload), then the frame. */
static void build_frame(struct nbench *b, uint8_t *slot)
{
	static const uint8_t peer[6] = TGNET_PEER_MAC;
	uint32_t magic = BENCH_MAGIC;
	uint8_t *f = slot + NET_HDR_LEN;
	memset(slot, 0, NET_HDR_LEN);
	memcpy(f, peer, 6);
	memcpy(f + 6, b->mac, 6);
	put16be(f + 12, BENCH_ETHERTYPE);
	memcpy(f + ETH_HLEN, &magic, 4);
	for (unsigned k = ETH_HLEN + 4; k < b->len; k++)
		f[k] = (uint8_t)(k * 7u);
}

static int tx_add(struct nbench *b, uint8_t *slot)
{
	struct vq_seg s = { slot, NET_HDR_LEN + b->len, VQ_OUT };
	return virtq_add(&b->tx_q, &s, 1, slot, 0);
}

static int rx_add(struct nbench *b, uint8_t *buf)
{
	struct vq_seg s = { buf, BUF_LEN, VQ_IN };
	return virtq_add(&b->rx, &s, 1, buf, 0);
}

static enum test_result run_tx(struct nbench *b, uint64_t *us)
{
	for (unsigned i = 0; i < b->nbufs; i++)
		build_frame(b, b->bufs + (size_t)i * BUF_LEN);
	uint64_t t0 = rdtsc(), end = t0 + (uint64_t)b->secs * 1000000 * tsc_per_us, now = t0, last = t0;
	for (unsigned i = 0; i < b->nbufs; i++)
		if (tx_add(b, b->bufs + (size_t)i * BUF_LEN))
			return fail("transmit ring full after %u frames", i);
	virtq_kick(&b->tx_q);
	uint64_t closed = 0;
	unsigned inflight = b->nbufs, spins = 0;
	while (inflight) {
		uint8_t *slot;
		bool added = false;
		while ((slot = virtq_get(&b->tx_q, NULL))) {
			inflight--;
			now = last = rdtsc();
			if (!closed && now >= end)
				closed = now;
			if (closed) {
				b->tail++;
				continue;
			}
			b->frames++;
			if (tx_add(b, slot))
				return fail("transmit ring full with %u in flight", inflight);
			inflight++;
			added = true;
		}
		if (b->tx_q.error)
			return fail("transmit queue: %s", b->tx_q.error);
		if (added) {
			virtq_kick(&b->tx_q);
			continue;
		}
		cpu_relax();
		if (!(++spins & 1023)) {
			now = rdtsc();
			if (now - last > (uint64_t)STALL_US * tsc_per_us)
				return fail("no transmit buffer used back within %u s (%u in flight, %lu done)",
					    STALL_US / 1000000, inflight, b->frames);
			/* A device that stopped taking frames at the end still
			 * closes the window on time. */
			if (!closed && now >= end)
				closed = now;
		}
	}
	*us = (closed - t0) / tsc_per_us;
	return TEST_PASS;
}

/* The next used receive buffer: its frame counted (or not) and re-posted.
 * Returns 1 for a bench frame, 0 for another, -1 on an error (fail()ed). */
static int rx_one(struct nbench *b, uint8_t *buf, uint32_t len, enum test_result *res)
{
	uint16_t nb;
	memcpy(&nb, buf + 10, 2); /* virtio_net_hdr_v1.num_buffers */
	int r = 0;
	if (len < NET_HDR_LEN + ETH_HLEN + 4 || len > BUF_LEN || nb != 1) {
		*res = fail("used length %u, num_buffers %u in a %u-byte receive buffer", len, nb, BUF_LEN);
		return -1;
	}
	const uint8_t *f = buf + NET_HDR_LEN;
	uint32_t magic;
	memcpy(&magic, f + ETH_HLEN, 4);
	if (len - NET_HDR_LEN == b->len && (f[12] << 8 | f[13]) == BENCH_ETHERTYPE && magic == BENCH_MAGIC)
		r = 1;
	if (rx_add(b, buf)) {
		*res = fail("receive ring full while re-posting");
		return -1;
	}
	return r;
}

static enum test_result run_rx(struct nbench *b, uint64_t *us)
{
	enum test_result res = TEST_PASS;
	uint8_t *buf;
	uint32_t len;
	/* Frames that arrived before the sync: dropped, uncounted. */
	while ((buf = virtq_get(&b->rx, &len)))
		if (rx_one(b, buf, len, &res) < 0)
			return res;
	virtq_kick(&b->rx);
	uint64_t last = rdtsc(), t0 = 0, end = 0, closed = 0, now;
	unsigned spins = 0;
	while (!closed) {
		bool got = false;
		while ((buf = virtq_get(&b->rx, &len))) {
			got = true;
			now = last = rdtsc();
			int r = rx_one(b, buf, len, &res);
			if (r < 0)
				return res;
			if (!t0) {
				if (r) { /* the first frame opens the window */
					t0 = now;
					end = t0 + (uint64_t)b->secs * 1000000 * tsc_per_us;
				}
				continue;
			}
			if (now >= end) {
				closed = now;
				break;
			}
			if (r) {
				b->frames++;
				b->bytes += b->len;
			} else {
				b->stale++;
			}
		}
		if (b->rx.error)
			return fail("receive queue: %s", b->rx.error);
		if (got) {
			virtq_kick(&b->rx);
			continue;
		}
		cpu_relax();
		if (!(++spins & 1023)) {
			now = rdtsc();
			if (t0 && now >= end)
				closed = now;
			else if (now - last > (uint64_t)STALL_US * tsc_per_us)
				return fail("no frame received within %u s (%lu counted)%s", STALL_US / 1000000, b->frames,
					    t0 ? "" : ": is the peer sending?");
		}
	}
	*us = (closed - t0) / tsc_per_us;
	return TEST_PASS;
}

enum test_result bench_net(const char *args)
{
	struct nbench b = { 0 };
	const char *why = parse(&b, args);
	if (why)
		return fail("ember.bench=net:%s: %s", args, why);
	if (!(b.dev = virtio_find(VIRTIO_ID_NET, 0)))
		return fail("no virtio-net device");
	uint64_t want = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_F_EVENT_IDX);
	if (virtio_negotiate(b.dev, want, &why))
		return fail("%s", why);
	if (virtio_has(b.dev, VIRTIO_NET_F_MAC))
		virtio_config_read(b.dev, NET_CFG_MAC, b.mac, 6);
	else
		memcpy(b.mac, (const uint8_t[6]){ 0x02, 0x74, 0x67, 0, 0, 2 }, 6);
	if (virtq_setup(&b.rx, b.dev, 0, 0, &why) || virtq_setup(&b.tx_q, b.dev, 1, 0, &why))
		return fail("%s", why);
	struct virtq *q = b.tx ? &b.tx_q : &b.rx;
	b.nbufs = q->num;
	if (!(b.bufs = alloc((size_t)b.nbufs * BUF_LEN, 64)))
		return fail("out of memory for %u buffers", b.nbufs);
	/* rx: every buffer posted before DRIVER_OK (allowed, §3.1.1), so the
	 * device has them from the start. */
	if (!b.tx)
		for (unsigned i = 0; i < b.nbufs; i++)
			if (rx_add(&b, b.bufs + (size_t)i * BUF_LEN))
				return fail("receive ring full after %u buffers", i);
	virtio_driver_ok(b.dev);
	virtq_irq(&b.rx, false);
	virtq_irq(&b.tx_q, false);
	if (!b.tx)
		virtq_kick(&b.rx);
	uint64_t boot_mhz = tsc_per_us;
	bench_tsc_recalibrate();

	const char *dir = b.tx ? "tx" : "rx";
	printf("BENCH net begin dir=%s len=%u secs=%u qsize=%u features=0x%lx mac=%02x:%02x:%02x:%02x:%02x:%02x "
	       "tsc_mhz=%lu boot_tsc_mhz=%lu\n",
	       dir, b.len, b.secs, q->num, b.dev->features, b.mac[0], b.mac[1], b.mac[2], b.mac[3], b.mac[4],
	       b.mac[5], tsc_per_us, boot_mhz);
	console_flush();
	bench_host_sync(b.sync);

	uint64_t us = 0;
	enum test_result r = b.tx ? run_tx(&b, &us) : run_rx(&b, &us);
	if (r != TEST_PASS)
		return r;
	if (b.tx)
		b.bytes = b.frames * b.len;
	if (!us || !b.frames)
		return fail("no frame %s in %u s", b.tx ? "sent" : "received", b.secs);
	printf("BENCH net dir=%s len=%u frames=%lu bytes=%lu us=%lu fps=%lu mbps=%lu stale=%lu tail=%lu kicks=%lu "
	       "notifies=%lu\n",
	       dir, b.len, b.frames, b.bytes, us, b.frames * 1000000 / us, b.bytes * 8 / us, b.stale, b.tail,
	       b.rx.kicks + b.tx_q.kicks, b.rx.notifies + b.tx_q.notifies);
	console_flush();
	bench_host_sync(b.sync);
	return TEST_PASS;
}
