/* virtio-net driver (virtio 1.2 §5.1) and the net_* tests.
 *
 * The tests talk to a host peer program (tests/netpeer.c) on the other end
 * of the tap, over the in-band protocol of netproto.h: the guest asks
 * (REQ_SEND, REQ_REPORT, ECHO_REQ, REQ_GSO), the peer acts and answers.
 * Every test picks a fresh session number, so frames left over from an
 * earlier test (or an earlier request of the same test) are recognised and
 * skipped.  Nothing needs the serial line: the runner only starts the peer
 * before the VMM and reads the TEST lines.
 *
 * Queues: receiveq1 = 0, transmitq1 = 1 (no MQ, no control queue).  The
 * header is always the 12-byte virtio_net_hdr_v1 (VERSION_1).
 */
#include "virtio.h"
#include "netproto.h"

_Static_assert(sizeof(struct tgnet_msg) == TGNET_MSG_LEN, "tgnet_msg layout");

/* Feature bits (§5.1.3). */
#define VIRTIO_NET_F_CSUM       0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU        3
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN  9
#define VIRTIO_NET_F_GUEST_UFO  10
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16
#define VIRTIO_NET_F_CTRL_VQ    17
#define VIRTIO_NET_F_MQ         22

/* Config space (§5.1.4). */
#define NET_CFG_MAC    0
#define NET_CFG_STATUS 6
#define VIRTIO_NET_S_LINK_UP 1

struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
_Static_assert(sizeof(struct virtio_net_hdr) == 12, "virtio_net_hdr_v1 is 12 bytes");
#define NET_HDR_LEN 12u
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE  0
#define VIRTIO_NET_HDR_GSO_TCPV4 1

#define ETH_HLEN    14u
#define ETH_MAXLEN  1514u /* MTU 1500 + Ethernet header, no FCS */
#define ETH_MINLEN  60u
#define FRAME_MAX   (65536u + 128u)
#define TX_SLOT     1536u
#define NET_TIMEOUT_US 2000000u

/* Features every test accepts when offered. */
#define NET_WANT (BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_MRG_RXBUF) | \
		  BIT(VIRTIO_F_EVENT_IDX))

static const uint8_t peer_mac[6] = TGNET_PEER_MAC;

struct net {
	struct virtio_dev *dev;
	struct virtq rx, tx;
	uint8_t mac[6];
	bool mrg;
	uint32_t rxbuf_len;       /* bytes per receive buffer (header included) */
	unsigned nrxbufs, rx_posted_once;
	uint8_t *rxbufs;
	uint8_t *txslots, **txfree;
	unsigned ntx, ntxfree;
	uint8_t *frame;           /* the last frame received (net_recv) */
	struct virtio_net_hdr hdr; /* its header */
	uint32_t nb;              /* its buffers */
	/* Statistics. */
	uint64_t rx_frames, tx_frames, zc_done, stale;
	uint32_t max_nb, nb_not1, nb_first; /* num_buffers != 1 without MRG_RXBUF: count, first value */
	const char *bad;          /* a protocol violation seen, or NULL */
	char badbuf[160];
};

static uint8_t zc_marker; /* cookie of zero-copy TX buffers */

PRINTF(2, 3) static void net_bad(struct net *n, const char *fmt, ...)
{
	if (n->bad)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(n->badbuf, sizeof(n->badbuf), fmt, ap);
	va_end(ap);
	n->bad = n->badbuf;
}

/* testguest.quirks=A,B,...: known deviations of the device under test that
 * are reported (INFO) instead of failing; only the runner's QEMU boots
 * pass them. */
static bool quirk(const char *name)
{
	static char buf[256];
	const char *q = cmdline_value("testguest.quirks", buf, sizeof(buf));
	size_t l = strlen(name);
	for (; q && *q; q = strchr(q, ',') ? strchr(q, ',') + 1 : "")
		if (!strncmp(q, name, l) && (q[l] == ',' || !q[l]))
			return true;
	return false;
}

static struct virtio_dev *net_dev(void) { return virtio_find(VIRTIO_ID_NET, 0); }
static const char *no_net(void) { return net_dev() ? NULL : "no virtio-net device"; }

static uint32_t new_session(void)
{
	static uint32_t ctr;
	uint32_t s = tgnet_mix((uint32_t)rdtsc() ^ tgnet_mix(++ctr));
	return s ? s : 1;
}

/* ---- driver ---- */

static void rx_post(struct net *n, uint8_t *b)
{
	struct vq_seg s = { b, n->rxbuf_len, VQ_IN };
	if (virtq_add(&n->rx, &s, 1, b, 0))
		net_bad(n, "receive ring full while re-posting a buffer");
}

/* Post `count` more never-posted receive buffers (they come back through
 * net_recv, which re-posts them). */
static void rx_post_more(struct net *n, unsigned count, bool kick)
{
	for (; count && n->rx_posted_once < n->nrxbufs; count--, n->rx_posted_once++)
		rx_post(n, n->rxbufs + (size_t)n->rx_posted_once * n->rxbuf_len);
	if (kick)
		virtq_kick(&n->rx);
}

/* Negotiate (want & offered, keeping the spec's feature dependencies),
 * set up both queues, DRIVER_OK, post nrx receive buffers of rxbuf_len
 * bytes (0: 2 KiB with MRG_RXBUF, else what a whole packet needs), RX
 * polled or interrupt-driven. */
static int net_open(struct net *n, uint64_t want, uint32_t rxbuf_len, unsigned nrx, bool rx_irq,
		    const char **why)
{
	memset(n, 0, sizeof(*n));
	n->dev = net_dev();
	if (!n->dev) {
		*why = "no virtio-net device";
		return -1;
	}
	uint64_t off = n->dev->offered;
	if (!(off & BIT(VIRTIO_NET_F_CSUM)))
		want &= ~BIT(VIRTIO_NET_F_HOST_TSO4);
	if (!(off & BIT(VIRTIO_NET_F_GUEST_CSUM)))
		want &= ~(BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_UFO));
	if (virtio_negotiate(n->dev, want, why))
		return -1;
	n->mrg = virtio_has(n->dev, VIRTIO_NET_F_MRG_RXBUF);
	bool big = virtio_has(n->dev, VIRTIO_NET_F_GUEST_TSO4) || virtio_has(n->dev, VIRTIO_NET_F_GUEST_TSO6) ||
		   virtio_has(n->dev, VIRTIO_NET_F_GUEST_UFO);
	/* Without MRG_RXBUF every buffer must hold a whole packet (§5.1.6.3.1). */
	uint32_t whole = NET_HDR_LEN + (big ? 65550u : ETH_MAXLEN);
	if (!rxbuf_len)
		rxbuf_len = n->mrg ? 2048 : whole;
	if (!n->mrg && rxbuf_len < whole) {
		*why = "receive buffers smaller than a packet without VIRTIO_NET_F_MRG_RXBUF";
		return -1;
	}
	n->rxbuf_len = rxbuf_len;
	if (virtio_has(n->dev, VIRTIO_NET_F_MAC))
		virtio_config_read(n->dev, NET_CFG_MAC, n->mac, 6);
	else
		memcpy(n->mac, (const uint8_t[6]){ 0x02, 0x74, 0x67, 0, 0, 2 }, 6);
	if (virtq_setup(&n->rx, n->dev, 0, 0, why) || virtq_setup(&n->tx, n->dev, 1, 0, why))
		return -1;
	/* 64 KiB buffers (GUEST_TSO without MRG_RXBUF): a few are enough. */
	n->nrxbufs = !n->mrg && big ? MIN(n->rx.num, 16u) : n->rx.num;
	n->ntx = n->tx.num;
	n->rxbufs = alloc((size_t)n->nrxbufs * rxbuf_len, 64);
	n->txslots = alloc((size_t)n->ntx * TX_SLOT, 64);
	n->txfree = alloc(sizeof(*n->txfree) * n->ntx, 8);
	n->frame = alloc(FRAME_MAX, 64);
	if (!n->rxbufs || !n->txslots || !n->txfree || !n->frame) {
		*why = "out of memory for buffers";
		return -1;
	}
	for (unsigned i = 0; i < n->ntx; i++)
		n->txfree[n->ntxfree++] = n->txslots + (size_t)i * TX_SLOT;
	rx_post_more(n, nrx, false);
	/* Buffers may be added before DRIVER_OK, notifications only after. */
	virtio_driver_ok(n->dev);
	if (rx_irq)
		virtq_irq(&n->rx, true);
	if (n->rx.added)
		virtq_kick(&n->rx);
	return 0;
}

#define NET_OPEN_OR_FAIL(n, want, rxlen, nrx, irq)                      \
	do {                                                             \
		const char *why_;                                        \
		if (net_open(n, want, rxlen, nrx, irq, &why_))           \
			return fail("init: %s", why_);                   \
	} while (0)

static void tx_reap(struct net *n)
{
	void *c;
	while ((c = virtq_get(&n->tx, NULL))) {
		if (c == &zc_marker)
			n->zc_done++;
		else
			n->txfree[n->ntxfree++] = c;
	}
	if (n->tx.error)
		net_bad(n, "transmit queue: %s", n->tx.error);
}

/* Wait until the device has used every transmit buffer. */
static bool tx_drain(struct net *n, uint64_t timeout_us)
{
	uint64_t dl = deadline_after_us(timeout_us);
	if (n->tx.added)
		virtq_kick(&n->tx);
	for (;;) {
		tx_reap(n);
		if (!virtq_in_flight(&n->tx))
			return true;
		if (deadline_passed(dl) || n->bad)
			return false;
		virtq_wait(&n->tx, 1000);
	}
}

/* Queue one frame (copied, behind a header: NULL = no offload).  split:
 * header and frame in separate descriptors.  kick: notify now (else the
 * caller batches and kicks later).  0, or -1 (n->bad set). */
static int net_send(struct net *n, const void *frame, uint32_t len, const struct virtio_net_hdr *h, bool split,
		    bool kick)
{
	if (len > TX_SLOT - NET_HDR_LEN) {
		net_bad(n, "frame of %u bytes does not fit a transmit slot", len);
		return -1;
	}
	uint64_t dl = deadline_after_us(NET_TIMEOUT_US);
	tx_reap(n);
	while (!n->ntxfree) {
		if (n->tx.added)
			virtq_kick(&n->tx);
		if (deadline_passed(dl) || n->bad) {
			net_bad(n, "transmit queue stuck: no buffer used back in %u us", NET_TIMEOUT_US);
			return -1;
		}
		virtq_wait(&n->tx, 1000);
		tx_reap(n);
	}
	uint8_t *slot = n->txfree[--n->ntxfree];
	if (h)
		memcpy(slot, h, NET_HDR_LEN);
	else
		memset(slot, 0, NET_HDR_LEN);
	memcpy(slot + NET_HDR_LEN, frame, len);
	struct vq_seg s[2] = { { slot, NET_HDR_LEN, VQ_OUT }, { slot + NET_HDR_LEN, len, VQ_OUT } };
	if (!split)
		s[0].len += len;
	if (virtq_add(&n->tx, s, split ? 2 : 1, slot, 0)) {
		n->txfree[n->ntxfree++] = slot;
		net_bad(n, "transmit ring full with a free slot");
		return -1;
	}
	n->tx_frames++;
	if (kick)
		virtq_kick(&n->tx);
	return 0;
}

/* Queue caller-owned segments (header first) and kick; the caller keeps
 * them alive until tx_drain. */
static int net_send_segs(struct net *n, const struct vq_seg *s, unsigned nseg, unsigned flags)
{
	uint64_t dl = deadline_after_us(NET_TIMEOUT_US);
	for (;;) {
		tx_reap(n);
		if (!virtq_add(&n->tx, s, nseg, &zc_marker, flags))
			break;
		if (deadline_passed(dl) || n->bad) {
			net_bad(n, "no room in the transmit ring for %u segments", nseg);
			return -1;
		}
		virtq_kick(&n->tx);
		virtq_wait(&n->tx, 1000);
	}
	n->tx_frames++;
	virtq_kick(&n->tx);
	return 0;
}

/* The next used receive buffer within timeout_us, or NULL. */
static uint8_t *rx_next(struct net *n, uint64_t timeout_us, uint32_t *len)
{
	if (!virtq_has_used(&n->rx)) {
		if (n->rx.added)
			virtq_kick(&n->rx); /* re-posted buffers: let the device have them */
		if (!timeout_us || !virtq_wait(&n->rx, timeout_us))
			return NULL;
	}
	uint8_t *b = virtq_get(&n->rx, len);
	if (!b)
		net_bad(n, "receive queue: %s", n->rx.error ? n->rx.error : "used entry vanished");
	return b;
}

/* Re-post a consumed buffer; notify in batches (and before waiting). */
static void rx_recycle(struct net *n, uint8_t *b)
{
	rx_post(n, b);
	if (n->rx.added >= 16)
		virtq_kick(&n->rx);
}

/* Receive one packet into n->frame (header in n->hdr, buffers in n->nb),
 * gathering MRG_RXBUF's num_buffers buffers.  Returns the frame length,
 * 0 on timeout, -1 on a protocol violation (n->bad says which). */
static int net_recv(struct net *n, uint64_t timeout_us)
{
	uint32_t len;
	uint8_t *b = rx_next(n, timeout_us, &len);
	if (!b)
		return n->bad ? -1 : 0;
	if (len < NET_HDR_LEN || len > n->rxbuf_len) {
		net_bad(n, "used length %u of a %u-byte receive buffer", len, n->rxbuf_len);
		return -1;
	}
	memcpy(&n->hdr, b, NET_HDR_LEN);
	uint32_t nb = n->mrg ? n->hdr.num_buffers : 1, total = len - NET_HDR_LEN;
	if (!n->mrg && n->hdr.num_buffers != 1) {
		/* §5.1.6.4.1: the device MUST set num_buffers to 1 without
		 * MRG_RXBUF.  QEMU 7.2 passes the tap's stale bytes through. */
		if (!n->nb_not1++)
			n->nb_first = n->hdr.num_buffers;
		if (!quirk("net_num_buffers")) {
			net_bad(n, "num_buffers %u without VIRTIO_NET_F_MRG_RXBUF (must be 1)", n->hdr.num_buffers);
			return -1;
		}
	}
	if (nb == 0) {
		net_bad(n, "num_buffers 0");
		return -1;
	}
	memcpy(n->frame, b + NET_HDR_LEN, total);
	rx_recycle(n, b);
	for (uint32_t i = 1; i < nb; i++) {
		b = rx_next(n, 200000, &len);
		if (!b) {
			net_bad(n, "num_buffers %u but only %u buffers came", nb, i);
			return -1;
		}
		if (len > n->rxbuf_len || total + len > FRAME_MAX) {
			net_bad(n, "used length %u in buffer %u of %u (buffers of %u bytes, %u so far)", len, i, nb,
				n->rxbuf_len, total);
			return -1;
		}
		memcpy(n->frame + total, b, len);
		total += len;
		rx_recycle(n, b);
	}
	n->nb = nb;
	n->max_nb = MAX(n->max_nb, nb);
	n->rx_frames++;
	if (total < ETH_HLEN) {
		net_bad(n, "a %u-byte packet (shorter than an Ethernet header)", total);
		return -1;
	}
	return (int)total;
}

/* ---- frames ---- */

static void put16be(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32be(uint8_t *p, uint32_t v) { put16be(p, v >> 16); put16be(p + 2, v); }
static uint32_t get16be(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t get32be(const uint8_t *p) { return get16be(p) << 16 | get16be(p + 2); }

static void eth_hdr(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	put16be(f + 12, type);
}

static struct tgnet_msg msg_of(const uint8_t *f)
{
	struct tgnet_msg m;
	memcpy(&m, f + ETH_HLEN, sizeof(m));
	return m;
}

/* A tgnet frame from me to the peer: header, then the pattern of
 * (session, seq) up to len bytes.  Returns len. */
static uint32_t build_msg(const struct net *n, uint8_t *f, uint32_t len, struct tgnet_msg m)
{
	m.magic = TGNET_MAGIC;
	eth_hdr(f, peer_mac, n->mac, TGNET_ETHERTYPE);
	memcpy(f + ETH_HLEN, &m, sizeof(m));
	tgnet_fill(f + TGNET_HDRS, len - TGNET_HDRS, tgnet_seed(m.session, m.seq), 0);
	return len;
}

static int send_msg(struct net *n, struct tgnet_msg m)
{
	uint8_t f[ETH_MINLEN];
	return net_send(n, f, build_msg(n, f, ETH_MINLEN, m), NULL, false, true);
}

/* Why frame f (len bytes) is not a valid frame from the peer for this
 * session (any type), or NULL.  *stale: it is a tgnet frame of another
 * session (or not one at all): to be skipped, not a failure. */
static const char *check_from_peer(struct net *n, const uint8_t *f, uint32_t len, uint32_t session,
				   bool *stale)
{
	static char why[160];
	*stale = true;
	if (len < TGNET_HDRS || get16be(f + 12) != TGNET_ETHERTYPE)
		return "not a tgnet frame";
	struct tgnet_msg m = msg_of(f);
	if (m.magic != TGNET_MAGIC || m.session != session)
		return "another session";
	*stale = false;
	if (memcmp(f, n->mac, 6))
		snprintf(why, sizeof(why), "frame seq %u for %02x:%02x:%02x:%02x:%02x:%02x, not my MAC", m.seq,
			 f[0], f[1], f[2], f[3], f[4], f[5]);
	else if (memcmp(f + 6, peer_mac, 6))
		snprintf(why, sizeof(why), "frame seq %u not from the peer's MAC", m.seq);
	else
		return NULL;
	return why;
}

/* Wait for a frame of `type` in this session (others of the session are
 * returned too when type is 0); skips stale frames.  Returns its length
 * (in n->frame), 0 on timeout, -1 on a bad frame (n->bad). */
static int recv_msg(struct net *n, uint32_t session, uint8_t type, uint64_t timeout_us)
{
	uint64_t dl = deadline_after_us(timeout_us);
	for (;;) {
		uint64_t now = rdtsc();
		if (now >= dl)
			return 0;
		int len = net_recv(n, (dl - now) / tsc_per_us + 1);
		if (len <= 0)
			return len;
		bool stale;
		const char *why = check_from_peer(n, n->frame, (uint32_t)len, session, &stale);
		if (stale) {
			n->stale++;
			continue;
		}
		if (why) {
			net_bad(n, "%s", why);
			return -1;
		}
		if (!type || msg_of(n->frame).type == type)
			return len;
		n->stale++;
	}
}

struct report {
	uint32_t good, bad, dup, bytes, arg3;
	char text[TGNET_REPORT_TEXT + 1];
};

/* Ask the peer what it got for (test, session): REQ_REPORT, retried. */
static const char *peer_report(struct net *n, uint8_t test, uint32_t session, struct report *r)
{
	if (!tx_drain(n, NET_TIMEOUT_US))
		return n->bad ? n->bad : "transmit buffers not used back";
	for (int tries = 0; tries < 5; tries++) {
		if (send_msg(n, (struct tgnet_msg){ .type = TGNET_REQ_REPORT, .test = test, .session = session }))
			return n->bad;
		int len = recv_msg(n, session, TGNET_REPORT, 400000);
		if (len < 0)
			return n->bad;
		if (len == 0)
			continue;
		struct tgnet_msg m = msg_of(n->frame);
		*r = (struct report){ m.count, m.arg0, m.arg1, m.arg2, m.arg3, "" };
		uint32_t tl = MIN((uint32_t)len - TGNET_HDRS, TGNET_REPORT_TEXT);
		memcpy(r->text, n->frame + TGNET_HDRS, tl);
		r->text[tl] = 0;
		return NULL;
	}
	return "no report from the peer (is tests/netpeer.c running on the tap?)";
}

/* Check a DATA frame from the peer: the request's lengths and the pattern. */
static const char *check_data(const uint8_t *f, uint32_t len, uint8_t test, uint32_t count, uint32_t lmin,
			      uint32_t lmax, uint32_t *seq)
{
	static char why[160];
	struct tgnet_msg m = msg_of(f);
	*seq = m.seq;
	if (m.type != TGNET_DATA || m.test != test || m.count != count || m.seq >= count)
		snprintf(why, sizeof(why), "unexpected frame: type %u test %u seq %u count %u", m.type, m.test,
			 m.seq, m.count);
	else if (len != tgnet_len(m.seq, lmin, lmax))
		snprintf(why, sizeof(why), "frame seq %u: %u bytes, sent %u", m.seq, len,
			 tgnet_len(m.seq, lmin, lmax));
	else {
		long bad = tgnet_check(f + TGNET_HDRS, len - TGNET_HDRS, tgnet_seed(m.session, m.seq), 0);
		if (bad < 0)
			return NULL;
		snprintf(why, sizeof(why), "frame seq %u (%u bytes): byte %lu differs", m.seq, len,
			 (uint64_t)bad + TGNET_HDRS);
	}
	return why;
}

/* Request `count` DATA frames with lengths in [lmin, lmax] and receive
 * them all (re-requesting after a silence); every frame verified.
 * seen: count bits.  Returns NULL or why not. */
static const char *rx_frames(struct net *n, uint8_t test, uint32_t session, uint32_t count, uint32_t lmin,
			     uint32_t lmax, uint8_t *seen, uint32_t *got)
{
	struct tgnet_msg req = { .type = TGNET_REQ_SEND, .test = test, .session = session, .count = count,
				 .arg0 = lmin, .arg1 = lmax };
	uint64_t dl = deadline_after_us(NET_TIMEOUT_US);
	*got = 0;
	for (int tries = 0; *got < count; tries++) {
		if (tries == 4 || deadline_passed(dl))
			return "timed out";
		if (send_msg(n, req))
			return n->bad;
		for (;;) {
			int len = recv_msg(n, session, 0, 300000);
			if (len < 0)
				return n->bad;
			if (len == 0)
				break; /* silence: ask again */
			uint32_t seq;
			const char *why = check_data(n->frame, (uint32_t)len, test, count, lmin, lmax, &seq);
			if (why)
				return why;
			if (n->hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE)
				return "a plain frame arrived with a GSO type";
			if (!(seen[seq / 8] & (1u << (seq % 8)))) {
				seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
				if (++*got == count)
					break;
			}
		}
	}
	return NULL;
}

/* ---- tests (all but net_config need the peer: TF_INTERACTIVE keeps them out of "all") ---- */

static bool parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++, s++) {
			char c = *s;
			unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
				: c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
				: c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 99;
			if (d > 15)
				return false;
			v = v * 16 + d;
		}
		mac[i] = (uint8_t)v;
		if (i < 5 && *s++ != ':')
			return false;
	}
	return *s == 0;
}

/* MAC from the config space equals testguest.mac=; the link is up;
 * the queues exist.  No traffic. */
TESTCASE(net_config, no_net, 0)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT, 0, 0, false);
	uint64_t off = n.dev->offered;
	if (!virtio_has(n.dev, VIRTIO_NET_F_MAC))
		return fail("VIRTIO_NET_F_MAC not offered (features 0x%lx)", off);
	char buf[64];
	const char *want = cmdline_value("testguest.mac", buf, sizeof(buf));
	uint8_t w[6], *m = n.mac;
	if (want) {
		if (!parse_mac(want, w))
			return fail("testguest.mac=%s is not a MAC address", want);
		if (memcmp(w, m, 6))
			return fail("config MAC %02x:%02x:%02x:%02x:%02x:%02x, want %s", m[0], m[1], m[2], m[3],
				    m[4], m[5], want);
	} else if (m[0] & 1) {
		return fail("config MAC %02x:%02x:%02x:%02x:%02x:%02x is a multicast address", m[0], m[1], m[2],
			    m[3], m[4], m[5]);
	}
	uint16_t status = 0;
	if (virtio_has(n.dev, VIRTIO_NET_F_STATUS)) {
		status = virtio_config16(n.dev, NET_CFG_STATUS);
		if (!(status & VIRTIO_NET_S_LINK_UP))
			return fail("link down (status 0x%x)", status);
	}
	if ((off & BIT(VIRTIO_NET_F_HOST_TSO4)) && !(off & BIT(VIRTIO_NET_F_CSUM)))
		return fail("HOST_TSO4 offered without CSUM (features 0x%lx)", off);
	if ((off & BIT(VIRTIO_NET_F_GUEST_TSO4)) && !(off & BIT(VIRTIO_NET_F_GUEST_CSUM)))
		return fail("GUEST_TSO4 offered without GUEST_CSUM (features 0x%lx)", off);
	info("mac %02x:%02x:%02x:%02x:%02x:%02x%s, status %s, rx/tx queues %u/%u, offered 0x%lx", m[0], m[1],
	     m[2], m[3], m[4], m[5], want ? " (as asked)" : "",
	     virtio_has(n.dev, VIRTIO_NET_F_STATUS) ? (status & 1 ? "up" : "down") : "n/a", n.rx.num, n.tx.num,
	     off);
	return TEST_PASS;
}

/* 64 frames of 60..1514 bytes to the peer (header and frame in one
 * descriptor or two, kicks batched by 8); the peer checks every byte. */
TESTCASE(net_tx, no_net, TF_INTERACTIVE)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT, 0, 64, false);
	const uint32_t N = 64, session = new_session();
	uint8_t *f = alloc(ETH_MAXLEN, 64);
	uint64_t t0 = now_us(), bytes = 0;
	for (uint32_t seq = 0; seq < N; seq++) {
		uint32_t len = tgnet_len(seq, ETH_MINLEN, ETH_MAXLEN);
		build_msg(&n, f, len, (struct tgnet_msg){ .type = TGNET_DATA, .test = TGNET_T_TX, .session = session,
							  .seq = seq, .count = N, .arg0 = ETH_MINLEN, .arg1 = ETH_MAXLEN });
		if (net_send(&n, f, len, NULL, seq & 1, (seq & 7) == 7 || seq + 1 == N))
			return fail("%s", n.bad);
		bytes += len;
	}
	if (!tx_drain(&n, NET_TIMEOUT_US))
		return fail("%s", n.bad ? n.bad : "the device did not use all transmit buffers");
	uint64_t t1 = now_us();
	struct report r;
	const char *why = peer_report(&n, TGNET_T_TX, session, &r);
	if (why)
		return fail("%s", why);
	if (r.good != N || r.bad || r.dup || r.bytes != bytes)
		return fail("peer got %u/%u good frames, %u bad, %u duplicates, %u bytes (sent %lu): %s", r.good, N,
			    r.bad, r.dup, r.bytes, bytes, r.text[0] ? r.text : "-");
	info("%u frames, %lu bytes in %lu us; %lu kicks, %lu notifies", N, bytes, t1 - t0, n.tx.kicks,
	     n.tx.notifies);
	return TEST_PASS;
}

/* The peer sends 64 frames of 60..1514 bytes; interrupt-driven receive,
 * every byte checked, buffers re-posted as they are consumed. */
TESTCASE(net_rx, no_net, TF_INTERACTIVE)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT, 0, 256, true);
	enum { N = 64 };
	const uint32_t session = new_session();
	uint8_t seen[N / 8] = { 0 };
	uint64_t irq0 = virtio_irq_count(n.dev), t0 = now_us();
	uint32_t got;
	const char *why = rx_frames(&n, TGNET_T_RX, session, N, ETH_MINLEN, ETH_MAXLEN, seen, &got);
	if (why)
		return fail("%s (%u/%u frames)", why, got, N);
	uint64_t irqs = virtio_irq_count(n.dev) - irq0;
	if (!irqs)
		return fail("frames arrived but no interrupt did");
	info("%u frames in %lu us, %lu interrupts, up to %u buffers per frame, %lu stale", N, now_us() - t0, irqs,
	     n.max_nb, n.stale);
	if (n.nb_not1)
		info("quirk: %u packets had num_buffers %u (not 1) without MRG_RXBUF", n.nb_not1, n.nb_first);
	return TEST_PASS;
}

/* Round trips: 32 one at a time (60..1514 bytes, timed), then a burst of
 * 32 in flight at once; each reply must equal the request but for the
 * swapped MACs and the type. */
TESTCASE(net_echo, no_net, TF_INTERACTIVE)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT, 0, 256, false);
	enum { N = 32 };
	const uint32_t session = new_session();
	uint8_t *f = alloc(ETH_MAXLEN, 64);
	uint64_t tmin = ~0ull, tmax = 0, tsum = 0;
	for (uint32_t phase = 0; phase < 2; phase++) {
		uint8_t seen[N / 8] = { 0 };
		uint32_t got = 0, base = phase * N;
		for (uint32_t i = 0; i < N && phase == 1; i++) {
			uint32_t seq = base + i, len = tgnet_len(seq, ETH_MINLEN, ETH_MAXLEN);
			build_msg(&n, f, len, (struct tgnet_msg){ .type = TGNET_ECHO_REQ, .test = TGNET_T_ECHO,
								  .session = session, .seq = seq });
			if (net_send(&n, f, len, NULL, i & 1, i + 1 == N))
				return fail("%s", n.bad);
		}
		while (got < N) {
			uint32_t seq = base + got, len = tgnet_len(seq, ETH_MINLEN, ETH_MAXLEN);
			uint64_t t0 = rdtsc();
			if (phase == 0) {
				build_msg(&n, f, len, (struct tgnet_msg){ .type = TGNET_ECHO_REQ, .test = TGNET_T_ECHO,
									  .session = session, .seq = seq });
				if (net_send(&n, f, len, NULL, false, true))
					return fail("%s", n.bad);
			}
			int rl = recv_msg(&n, session, TGNET_ECHO_REPLY, 1000000);
			if (rl < 0)
				return fail("%s", n.bad);
			if (rl == 0) {
				for (uint32_t i = 0; phase == 1 && i < N; i++)
					if (!(seen[i / 8] & (1u << (i % 8)))) {
						seq = base + i; /* the first one missing */
						break;
					}
				return fail("%s: no reply to echo %u in 1 s (%u/%u replies)", phase ? "burst" : "ping-pong",
					    seq, got, N);
			}
			struct tgnet_msg m = msg_of(n.frame);
			if (m.seq < base || m.seq >= base + N || (phase == 0 && m.seq != seq))
				return fail("reply with seq %u, expected %u", m.seq, seq);
			uint32_t want = tgnet_len(m.seq, ETH_MINLEN, ETH_MAXLEN);
			long bad = tgnet_check(n.frame + TGNET_HDRS, (uint32_t)rl - TGNET_HDRS,
					       tgnet_seed(session, m.seq), 0);
			if ((uint32_t)rl != want || bad >= 0)
				return fail("reply %u: %d bytes (sent %u), first bad byte %ld", m.seq, rl, want,
					    bad < 0 ? -1 : bad + (long)TGNET_HDRS);
			uint32_t bit = m.seq - base;
			if (seen[bit / 8] & (1u << (bit % 8)))
				return fail("reply %u twice", m.seq);
			seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
			got++;
			if (phase == 0) {
				uint64_t us = (rdtsc() - t0) / tsc_per_us;
				tmin = MIN(tmin, us);
				tmax = MAX(tmax, us);
				tsum += us;
			}
		}
	}
	info("round trip min/avg/max %lu/%lu/%lu us; burst of %u ok; %lu stale", tmin, tsum / N, tmax, N, n.stale);
	return TEST_PASS;
}

/* An IPv4/UDP datagram TGNET_GUEST_IP -> TGNET_PEER_IP; payload = tgnet
 * message of (session, seq) + pattern.  The UDP checksum field gets the
 * pseudo-header sum (for NEEDS_CSUM) or the full checksum.  Returns the
 * frame length. */
static uint32_t build_udp(const struct net *n, uint8_t *f, uint32_t payload, uint32_t session, uint32_t seq,
			  bool partial)
{
	uint32_t ulen = 8 + payload, iplen = 20 + ulen, len = ETH_HLEN + iplen;
	eth_hdr(f, peer_mac, n->mac, 0x0800);
	uint8_t *ip = f + ETH_HLEN, *udp = ip + 20, *pl = udp + 8;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16be(ip + 2, iplen);
	put16be(ip + 4, seq);
	put16be(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = 17;
	put32be(ip + 12, TGNET_GUEST_IP);
	put32be(ip + 16, TGNET_PEER_IP);
	put16be(ip + 10, (uint16_t)~tgnet_csum_fold(tgnet_csum_add(0, ip, 20)));
	put16be(udp, TGNET_SRC_PORT);
	put16be(udp + 2, TGNET_UDP_PORT);
	put16be(udp + 4, ulen);
	put16be(udp + 6, 0);
	struct tgnet_msg m = { TGNET_MAGIC, TGNET_DATA, TGNET_T_CSUM, 0, session, seq, 0, payload, partial, 0, 0 };
	memcpy(pl, &m, sizeof(m));
	tgnet_fill(pl + sizeof(m), payload - (uint32_t)sizeof(m), tgnet_seed(session, seq), 0);
	uint32_t pseudo = tgnet_pseudo(TGNET_GUEST_IP, TGNET_PEER_IP, 17, ulen);
	if (partial) {
		put16be(udp + 6, tgnet_csum_fold(pseudo));
	} else {
		uint16_t c = (uint16_t)~tgnet_csum_fold(tgnet_csum_add(pseudo, udp, ulen));
		put16be(udp + 6, c ? c : 0xffff);
	}
	return len;
}

/* UDP with VIRTIO_NET_HDR_F_NEEDS_CSUM (csum_start 34, csum_offset 6): the
 * device (here: the tap, the kernel) completes the checksum; the peer
 * checks it.  Odd lengths, and frames split over descriptors at odd
 * offsets (one split inside the UDP header), plus one datagram whose
 * checksum the guest computed itself. */
TESTCASE(net_csum, no_net, TF_INTERACTIVE)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT | BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_F_INDIRECT_DESC), 0, 64, false);
	if (!virtio_has(n.dev, VIRTIO_NET_F_CSUM))
		return skip("VIRTIO_NET_F_CSUM not offered");
	static const uint32_t sizes[] = { 36, 37, 38, 39, 64, 101, 511, 512, 999, 1000, 1400, 1471, 1472 };
	const uint32_t N = ARRAY_SIZE(sizes) + 1, session = new_session();
	struct virtio_net_hdr *h = alloc(sizeof(*h) * N, 64);
	uint8_t *frames = alloc((size_t)N * ETH_MAXLEN, 64);
	uint64_t bytes = 0;
	for (uint32_t seq = 0; seq < N; seq++) {
		bool partial = seq < ARRAY_SIZE(sizes);
		uint32_t payload = partial ? sizes[seq] : 777;
		uint8_t *f = frames + (size_t)seq * ETH_MAXLEN;
		uint32_t len = build_udp(&n, f, payload, session, seq, partial);
		bytes += len;
		if (partial)
			h[seq] = (struct virtio_net_hdr){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34,
							  .csum_offset = 6 };
		/* Layouts: 0 = header + frame in one buffer, 1 = header | frame,
		 * 2 = header | 37 bytes (splits the UDP ports) | odd middle | rest. */
		struct vq_seg s[4];
		unsigned ns;
		switch (seq % 3) {
		case 0:
			s[0] = (struct vq_seg){ &h[seq], NET_HDR_LEN, VQ_OUT };
			s[1] = (struct vq_seg){ f, len, VQ_OUT };
			ns = 2;
			break;
		case 1: {
			/* Header immediately followed by the frame: one descriptor. */
			uint8_t *one = alloc(NET_HDR_LEN + len, 64);
			if (!one)
				return fail("out of memory");
			memcpy(one, &h[seq], NET_HDR_LEN);
			memcpy(one + NET_HDR_LEN, f, len);
			s[0] = (struct vq_seg){ one, NET_HDR_LEN + len, VQ_OUT };
			ns = 1;
			break;
		}
		default: {
			uint32_t a = 37, b = MIN(len - a, 13u + (seq & 7));
			s[0] = (struct vq_seg){ &h[seq], NET_HDR_LEN, VQ_OUT };
			s[1] = (struct vq_seg){ f, a, VQ_OUT };
			s[2] = (struct vq_seg){ f + a, b, VQ_OUT };
			s[3] = (struct vq_seg){ f + a + b, len - a - b, VQ_OUT };
			ns = len - a - b ? 4 : 3;
			break;
		}
		}
		if (net_send_segs(&n, s, ns, seq & 4 ? VQ_ADD_INDIRECT : 0))
			return fail("%s", n.bad);
	}
	struct report r;
	const char *why = peer_report(&n, TGNET_T_CSUM, session, &r);
	if (why)
		return fail("%s", why);
	if (r.good != N || r.bad || r.dup || r.bytes != bytes)
		return fail("peer got %u/%u good datagrams, %u bad, %u duplicates, %u bytes (sent %lu): %s", r.good,
			    N, r.bad, r.dup, r.bytes, bytes, r.text[0] ? r.text : "-");
	info("%u datagrams (%u with NEEDS_CSUM), %lu bytes, checksums right", N, N - 1, bytes);
	return TEST_PASS;
}

/* One TCP/IPv4 packet of `payload` bytes with GSO_TCPV4 and gso_size mss;
 * the peer gets the segments (the kernel segments it on its way to the
 * peer's tap) and reports. */
static const char *tso_one(struct net *n, uint32_t payload, uint32_t mss, uint8_t *pkt, struct report *r)
{
	uint32_t session = new_session(), tcplen = 20 + payload, iplen = 20 + tcplen;
	eth_hdr(pkt, peer_mac, n->mac, 0x0800);
	uint8_t *ip = pkt + ETH_HLEN, *tcp = ip + 20;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	put16be(ip + 2, iplen);
	put16be(ip + 4, 0x1000);
	put16be(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	put32be(ip + 12, TGNET_GUEST_IP);
	put32be(ip + 16, TGNET_PEER_IP);
	put16be(ip + 10, (uint16_t)~tgnet_csum_fold(tgnet_csum_add(0, ip, 20)));
	put16be(tcp, TGNET_SRC_PORT);
	put16be(tcp + 2, TGNET_TCP_PORT);
	put32be(tcp + 4, session);  /* seq: the stream starts at the session */
	put32be(tcp + 8, session);  /* ack: names the session in every segment */
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;             /* ACK | PSH (PSH stays on the last segment) */
	put16be(tcp + 14, 65535);
	/* Linux's convention for CHECKSUM_PARTIAL TCP: the pseudo-header sum
	 * over the whole packet's TCP length, not inverted. */
	put16be(tcp + 16, tgnet_csum_fold(tgnet_pseudo(TGNET_GUEST_IP, TGNET_PEER_IP, 6, tcplen)));
	tgnet_fill(tcp + 20, payload, tgnet_seed(session, 0), 0);
	static struct virtio_net_hdr h;
	h = (struct virtio_net_hdr){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				     .hdr_len = 54, .gso_size = (uint16_t)mss, .csum_start = 34, .csum_offset = 16 };
	/* Header, the 54 bytes of headers, then the payload in 4 KiB pieces. */
	struct vq_seg s[VQ_MAX_INDIRECT];
	unsigned ns = 0;
	s[ns++] = (struct vq_seg){ &h, NET_HDR_LEN, VQ_OUT };
	s[ns++] = (struct vq_seg){ pkt, 54, VQ_OUT };
	for (uint32_t o = 0; o < payload; o += 4096)
		s[ns++] = (struct vq_seg){ tcp + 20 + o, MIN(4096u, payload - o), VQ_OUT };
	if (net_send_segs(n, s, ns, VQ_ADD_INDIRECT))
		return n->bad;
	return peer_report(n, TGNET_T_TSO, session, r);
}

TESTCASE(net_tso, no_net, TF_INTERACTIVE)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT | BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_HOST_TSO4) |
				     BIT(VIRTIO_F_INDIRECT_DESC), 0, 64, false);
	if (!virtio_has(n.dev, VIRTIO_NET_F_HOST_TSO4))
		return skip("VIRTIO_NET_F_HOST_TSO4 not offered (or CSUM missing)");
	uint8_t *pkt = alloc(54 + 65536, 4096);
	static const struct { uint32_t payload, mss; } cases[] = { { 65000, 1460 }, { 3000, 1000 } };
	uint64_t t0 = now_us();
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		uint32_t p = cases[i].payload, mss = cases[i].mss, want = (p + mss - 1) / mss;
		struct report r;
		const char *why = tso_one(&n, p, mss, pkt, &r);
		if (why)
			return fail("%u bytes, mss %u: %s", p, mss, why);
		if (r.good != want || r.bad || r.bytes != p || r.arg3 != mss)
			return fail("%u bytes, mss %u: peer got %u good segments (want %u), %u bad, %u bytes, largest %u: %s",
				    p, mss, r.good, want, r.bad, r.bytes, r.arg3, r.text[0] ? r.text : "-");
	}
	info("65000 bytes -> 45 segments of <= 1460, 3000 -> 3 of <= 1000, in %lu us", now_us() - t0);
	return TEST_PASS;
}

/* MRG_RXBUF: 128-byte receive buffers, so a 1514-byte frame takes 12 of
 * them (num_buffers > 1); then, with GUEST_TSO4, one 60000-byte TCP
 * packet from the peer (a GSO packet through the kernel) in 2 KiB
 * buffers. */
TESTCASE(net_mrg_rx, no_net, TF_INTERACTIVE)
{
	static struct net n;
	if (!(net_dev()->offered & BIT(VIRTIO_NET_F_MRG_RXBUF)))
		return skip("VIRTIO_NET_F_MRG_RXBUF not offered");
	NET_OPEN_OR_FAIL(&n, NET_WANT, 128, 256, false);
	enum { N = 24 };
	const uint32_t session = new_session();
	uint8_t seen[N / 8] = { 0 };
	uint32_t got;
	const char *why = rx_frames(&n, TGNET_T_MRG, session, N, ETH_MINLEN, ETH_MAXLEN, seen, &got);
	if (why)
		return fail("%s (%u/%u frames)", why, got, N);
	uint32_t need = (NET_HDR_LEN + ETH_MAXLEN + 127) / 128;
	if (n.max_nb < need)
		return fail("a %u-byte frame in %u buffers of 128 bytes", ETH_MAXLEN, n.max_nb);
	info("%u frames in 128-byte buffers, up to %u buffers per frame", N, n.max_nb);

	NET_OPEN_OR_FAIL(&n, NET_WANT | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4), 2048, 256,
			 false);
	if (!virtio_has(n.dev, VIRTIO_NET_F_GUEST_TSO4)) {
		info("GUEST_TSO4 not offered: no large packet");
		return TEST_PASS;
	}
	const uint32_t P = 60000, MSS = 1448, s2 = new_session();
	uint32_t done = 0, pkts = 0, gso = 0;
	for (int tries = 0; done < P && tries < 3; tries++) {
		if (send_msg(&n, (struct tgnet_msg){ .type = TGNET_REQ_GSO, .test = TGNET_T_MRG, .session = s2,
						     .arg0 = P, .arg1 = MSS }))
			return fail("%s", n.bad);
		uint64_t dl = deadline_after_us(500000);
		done = 0;
		while (done < P && !deadline_passed(dl)) {
			int len = net_recv(&n, 500000);
			if (len < 0)
				return fail("%s", n.bad);
			if (len == 0)
				break;
			const uint8_t *f = n.frame, *ip = f + ETH_HLEN, *tcp = ip + 20;
			if (len < 54 || get16be(f + 12) != 0x0800 || ip[9] != 6 || get32be(tcp + 8) != s2) {
				n.stale++;
				continue;
			}
			uint32_t off = get32be(tcp + 4) - s2, pl = (uint32_t)len - 54;
			if (memcmp(f, n.mac, 6) || get16be(ip + 2) != (uint32_t)len - ETH_HLEN)
				return fail("large packet: bad Ethernet/IP header (IP length %u, frame %d)", get16be(ip + 2),
					    len);
			if (off == 0 && done) /* a second copy after a retry */
				done = 0;
			if (off != done)
				return fail("large packet: TCP data at offset %u, expected %u", off, done);
			long bad = tgnet_check(tcp + 20, pl, tgnet_seed(s2, 0), off);
			if (bad >= 0)
				return fail("large packet: payload byte %ld differs (packet of %d bytes in %u buffers)",
					    (long)off + bad, len, n.nb);
			if (n.hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
				if (n.hdr.gso_type != VIRTIO_NET_HDR_GSO_TCPV4 || n.hdr.gso_size != MSS)
					return fail("large packet: gso_type %u gso_size %u (sent TCPV4, %u)",
						    n.hdr.gso_type, n.hdr.gso_size, MSS);
				gso++;
			}
			if ((n.hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
			    (n.hdr.csum_start != 34 || n.hdr.csum_offset != 16))
				return fail("large packet: csum_start %u csum_offset %u", n.hdr.csum_start,
					    n.hdr.csum_offset);
			done += pl;
			pkts++;
		}
	}
	if (done != P)
		return fail("large packet: %u of %u bytes arrived", done, P);
	info("%u-byte TCP packet arrived as %u packet(s) (%u GSO) in up to %u buffers of 2 KiB", P, pkts, gso,
	     n.max_nb);
	return TEST_PASS;
}

/* No receive buffers while the peer sends 1200 frames (the tap queues up
 * to its txqueuelen, then drops); transmit works meanwhile; then buffers
 * are posted and the frames that were kept arrive, in order, intact; an
 * echo round trip proves the device still works. */
TESTCASE(net_rx_backpressure, no_net, TF_INTERACTIVE)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT, 0, 0, false);
	const uint32_t N = 1200, session = new_session(), lmin = ETH_MINLEN, lmax = 200;
	if (send_msg(&n, (struct tgnet_msg){ .type = TGNET_REQ_SEND, .test = TGNET_T_BACKPRESSURE,
					     .session = session, .count = N, .arg0 = lmin, .arg1 = lmax }))
		return fail("%s", n.bad);
	/* Starved: transmit 8 frames; nothing may be received. */
	uint8_t *f = alloc(ETH_MAXLEN, 64);
	const uint32_t T = 8, ts = new_session();
	for (uint32_t seq = 0; seq < T; seq++) {
		uint32_t len = tgnet_len(seq, ETH_MINLEN, ETH_MAXLEN);
		build_msg(&n, f, len, (struct tgnet_msg){ .type = TGNET_DATA, .test = TGNET_T_BACKPRESSURE,
							  .session = ts, .seq = seq, .count = T, .arg0 = ETH_MINLEN,
							  .arg1 = ETH_MAXLEN });
		if (net_send(&n, f, len, NULL, false, true))
			return fail("%s", n.bad);
	}
	udelay(150000);
	if (virtq_has_used(&n.rx))
		return fail("a receive buffer was used while none was posted");
	uint32_t st = virtio_read(n.dev, VIRTIO_MMIO_STATUS);
	if (st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		return fail("device status 0x%x while starved", st);
	if (!tx_drain(&n, NET_TIMEOUT_US))
		return fail("%s", n.bad ? n.bad : "transmit stuck while receive was starved");

	/* Feed it: everything the tap kept arrives in order. */
	uint64_t t0 = now_us();
	rx_post_more(&n, n.nrxbufs, true);
	uint32_t got = 0, next = 0, echo = 0;
	uint64_t dl = deadline_after_us(NET_TIMEOUT_US), retry = 0;
	const uint32_t es = new_session();
	for (;;) {
		if (deadline_passed(dl))
			return fail("no echo reply after the flood (%u flood frames received)", got);
		if (rdtsc() >= retry) { /* the reply can be dropped behind a full tap queue */
			struct tgnet_msg m = { .type = TGNET_ECHO_REQ, .test = TGNET_T_ECHO, .session = es, .seq = echo++ };
			build_msg(&n, f, ETH_MINLEN, m);
			if (net_send(&n, f, ETH_MINLEN, NULL, false, true))
				return fail("%s", n.bad);
			retry = deadline_after_us(100000);
		}
		int len = net_recv(&n, 20000);
		if (len < 0)
			return fail("%s", n.bad);
		if (len == 0)
			continue;
		bool stale;
		if (!check_from_peer(&n, n.frame, (uint32_t)len, es, &stale) &&
		    msg_of(n.frame).type == TGNET_ECHO_REPLY)
			break;
		const char *w = check_from_peer(&n, n.frame, (uint32_t)len, session, &stale);
		if (stale) {
			n.stale++;
			continue;
		}
		uint32_t seq;
		if (!w)
			w = check_data(n.frame, (uint32_t)len, TGNET_T_BACKPRESSURE, N, lmin, lmax, &seq);
		if (w)
			return fail("%s", w);
		if (seq < next)
			return fail("flood frame %u after %u (reordered or duplicated)", seq, next - 1);
		next = seq + 1;
		got++;
	}
	if (got < 256)
		return fail("only %u of %u flood frames arrived after the buffers were posted", got, N);
	struct report r;
	const char *why = peer_report(&n, TGNET_T_BACKPRESSURE, ts, &r);
	if (why)
		return fail("frames sent while starved: %s", why);
	if (r.good != T || r.bad)
		return fail("peer got %u/%u good frames sent while starved, %u bad: %s", r.good, T, r.bad,
			    r.text[0] ? r.text : "-");
	info("%u of %u frames kept while starved arrived in order in %lu us (%u dropped by the host), %lu notifies",
	     got, N, now_us() - t0, N - got, n.rx.notifies);
	return TEST_PASS;
}

/* A tap deleted under the running VM (TF_MANUAL; tests/integration/
 * operator.sh deletes it once this test prints READY).  Frames nobody
 * receives (broadcast, ethertype 0x88b5) go out one at a time, each
 * waited for: every transmit buffer must come back used, before and after
 * the tap is gone.  Once it is gone the link must go down (status without
 * LINK_UP, VIRTIO_NET_F_STATUS) with a configuration change interrupt
 * pending (InterruptStatus bit 1, §5.1.4.2 / §4.2.2); then 32 more frames
 * must still come back (dropped by the device).  Waits up to 10 s. */
TESTCASE(net_tap_loss, no_net, TF_MANUAL)
{
	static struct net n;
	NET_OPEN_OR_FAIL(&n, NET_WANT, 0, 16, false);
	if (!virtio_has(n.dev, VIRTIO_NET_F_STATUS))
		return skip("VIRTIO_NET_F_STATUS not offered");
	if (!(virtio_config16(n.dev, NET_CFG_STATUS) & VIRTIO_NET_S_LINK_UP))
		return fail("link down before the tap went away");
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t *f = alloc(ETH_MINLEN, 64);
	eth_hdr(f, bcast, n.mac, 0x88b5);
	uint64_t before = 0, after = 0, t_ready = 0, t_down = 0;
	uint64_t dl = deadline_after_us(10 * 1000 * 1000);
	while (after < 32) {
		if (net_send(&n, f, ETH_MINLEN, NULL, false, true) || !tx_drain(&n, NET_TIMEOUT_US))
			return fail("%s after %lu frames with the link up, %lu down",
				    n.bad ? n.bad : "a transmit buffer was not used back", before, after);
		if (!(virtio_config16(n.dev, NET_CFG_STATUS) & VIRTIO_NET_S_LINK_UP)) {
			if (!after++)
				t_down = now_us();
		} else {
			if (after)
				return fail("the link came back up after going down");
			before++;
		}
		if (before == 32 && !t_ready) {
			printf("READY net_tap_loss\n");
			t_ready = now_us();
		}
		if (deadline_passed(dl))
			return fail("the link never went down (%lu frames sent)", before);
		udelay(500);
	}
	uint32_t isr = virtio_read(n.dev, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (!(isr & VIRTIO_INT_CONFIG))
		return fail("the link went down without a configuration change interrupt (InterruptStatus 0x%x)",
			    isr);
	virtio_write(n.dev, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	info("%lu frames sent with the link up, %lu after it went down (%lu ms after READY); "
	     "every buffer used back; InterruptStatus 0x%x", before, after, (t_down - t_ready) / 1000, isr);
	return TEST_PASS;
}

/* ---- the I/O soak's network half (soak.c), with the peer ---- */

static struct net soak_net;
static uint64_t soak_net_frames;

enum test_result net_soak_open(void)
{
	NET_OPEN_OR_FAIL(&soak_net, NET_WANT, 0, 256, true);
	return TEST_PASS;
}

/* One round: 32 frames of 60..1514 bytes to the peer (it checks every
 * byte and reports), then 32 from it, received interrupt-driven and
 * verified (net_tx and net_rx in small).  The caller brackets it with
 * heap_mark()/heap_release(). */
enum test_result net_soak_round(uint64_t round)
{
	struct net *n = &soak_net;
	enum { N = 32 };
	uint32_t session = new_session(), got;
	uint8_t *f = alloc(ETH_MAXLEN, 64), seen[N / 8] = { 0 };
	uint64_t bytes = 0;
	struct report r;
	if (!f)
		return fail("out of memory");
	for (uint32_t seq = 0; seq < N; seq++) {
		uint32_t len = tgnet_len(seq, ETH_MINLEN, ETH_MAXLEN);
		build_msg(n, f, len, (struct tgnet_msg){ .type = TGNET_DATA, .test = TGNET_T_TX, .session = session,
							 .seq = seq, .count = N, .arg0 = ETH_MINLEN, .arg1 = ETH_MAXLEN });
		if (net_send(n, f, len, NULL, seq & 1, (seq & 7) == 7 || seq + 1 == N))
			return fail("round %lu: %s", round, n->bad);
		bytes += len;
	}
	const char *why = peer_report(n, TGNET_T_TX, session, &r);
	if (why)
		return fail("round %lu: %s", round, why);
	if (r.good != N || r.bad || r.dup || r.bytes != bytes)
		return fail("round %lu: peer got %u/%u good frames, %u bad, %u duplicates: %s", round, r.good, N,
			    r.bad, r.dup, r.text[0] ? r.text : "-");
	session = new_session();
	if ((why = rx_frames(n, TGNET_T_RX, session, N, ETH_MINLEN, ETH_MAXLEN, seen, &got)))
		return fail("round %lu: %s (%u/%u frames from the peer)", round, why, got, N);
	soak_net_frames += 2 * N;
	return TEST_PASS;
}

uint64_t net_soak_frames(void) { return soak_net_frames; }
