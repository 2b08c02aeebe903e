/* libFuzzer target: a hostile guest against virtio-mmio + split virtqueue +
 * virtio-net (virtio/mmio.c, virtio/queue.c, virtio/net.c), with the real
 * io_uring loop and a SOCK_SEQPACKET socket pair standing in for the tap
 * (one message = 12-byte header + frame), whose far end the input also
 * drives as "the host".
 *
 * Each input is one guest:
 *   byte 0      flags: 1 = driver handshake first (features from bytes 2-3,
 *               queue size byte 1, rings at fixed places), 2 = receive
 *               chains from the template, 4 = a transmit chain from the
 *               template, 8 = the host sends the template's frame, 16 = kick
 *               both queues and run the loop at the end, 32 = the RAM bytes
 *               below go to the buffer area instead, 64 = transmit chain in
 *               an indirect table
 *   byte 1      QueueNum (both queues)
 *   bytes 2-3   driver features: bit 0 EVENT_IDX, 1 INDIRECT_DESC,
 *               2 MRG_RXBUF, 3 CSUM, 4 GUEST_CSUM, 5 HOST_TSO4, 6 GUEST_TSO4,
 *               7 HOST_UFO, 8 GUEST_UFO, 9 HOST_ECN (never offered),
 *               10 VERSION_1 omitted, 11 HOST_TSO6, 12 GUEST_TSO6,
 *               13 GUEST_ECN (never offered)
 *   bytes 4-15  template: receive chains (count, buffer length, buffers per
 *               chain), transmit frame length (2), transmit segments,
 *               transmit header flags and gso_type, host frame length (2),
 *               host header gso_type, descriptor flag bits
 *   byte 16     number of operations, then 8 bytes each: op, offset (2),
 *               width, value (4); op % 8: 0 register/config write,
 *               1 register/config read, 2 notify receive queue and run the
 *               loop, 3 notify transmit queue and run the loop, 4 write 4
 *               bytes of RAM, 5 run the loop, 6 reset, 7 the host sends a
 *               frame of (value % 70000) bytes, the offset's two bytes its
 *               header's gso_type and flags
 *   the rest    guest RAM from address 0 (or the buffer area, flag 32),
 *               written before the templates
 * Memory errors and undefined behaviour abort (ASan/UBSan); so would a hang,
 * through libFuzzer's -timeout. */
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "tests/fuzz/fuzz_virtio.h"
#include "virtio/net.h"

#define RAM      (256u * 1024)
#define RX_DESC  0x0000u
#define RX_AVAIL 0x1000u
#define RX_USED  0x2000u
#define TX_DESC  0x3000u
#define TX_AVAIL 0x4000u
#define TX_USED  0x5000u
#define TABLE    0x6000u
#define BUFS     0x8000u
#define FRAME_MAX 70000u

static uint8_t *ram;
static struct guest_mem mem;
static struct loop loop;
static struct net *nic;
static struct virtio_mmio *t;
static int dev_fd, host_fd;
static uint8_t frame[NET_HDR_LEN + FRAME_MAX];

static void init_once(void)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	struct err e;
	int sv[2];

	if (ram)
		return;
	ram = fz_ram(&mem, RAM);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* Room for a few large frames each way. */
	for (int i = 0; i < 2; i++) {
		int sz = 1 << 20;

		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	dev_fd = sv[0];
	host_fd = sv[1];
	nic = net_open_fd(dev_fd, mac, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO, 0, &e);
	if (!nic || loop_init(&loop, 64, &e) < 0 || net_attach(nic, 0, &mem, &loop, &fzv_irq_none, &e) < 0 ||
	    loop_enable(&loop, &e) < 0)
		abort();
	t = net_transport(nic);
}

static void drain_host(void)
{
	while (recv(host_fd, frame, sizeof(frame), MSG_DONTWAIT) > 0)
		;
}

static void run_loop(void)
{
	fzv_run(&loop);
	drain_host();
}

/* Back to a quiet device: reset, let tap I/O of the previous input finish
 * (only the eventfd reads stay pending: two queues and the quiesce one),
 * and empty both ends of the socket pair. */
static void quiesce(void)
{
	fzv_quiesce(t, &loop, 3);
	while (recv(dev_fd, frame, sizeof(frame), MSG_DONTWAIT) > 0)
		;
	drain_host();
}

static void handshake(uint8_t num, unsigned fb)
{
	/* Bit i of fb asks for feature bits[i]; bit 10 is not a feature. */
	static const int bits[] = {
		VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_NET_F_MRG_RXBUF,
		VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4,
		VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_GUEST_UFO,
		VIRTIO_NET_F_HOST_ECN, -1, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_GUEST_TSO6,
		VIRTIO_NET_F_GUEST_ECN,
	};
	const struct fzv_ring rings[2] = {
		{ num, RX_DESC, RX_AVAIL, RX_USED }, { num, TX_DESC, TX_AVAIL, TX_USED },
	};
	uint64_t feat = 0;

	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if ((fb & (1u << i)) && bits[i] >= 0)
			feat |= 1ULL << bits[i];
	if (!(fb & (1u << 10)))
		feat |= 1ULL << VIRTIO_F_VERSION_1;
	fzv_handshake(t, feat, rings, 2);
}

/* Receive chains: count, buffer length, buffers per chain; every buffer
 * device-writable unless the flag bits say otherwise. */
static void rx_template(const uint8_t *p, uint8_t num)
{
	unsigned chains = 1 + p[0] % 16, per = 1 + p[2] % 4, d = 0;
	uint32_t len = (uint32_t)p[1] * 40u;
	uint64_t buf = BUFS;
	uint16_t bits = (uint16_t)(p[10] | p[11] << 8);

	if (!num)
		return;
	for (unsigned c = 0; c < chains && d + per <= 64; c++) {
		uint16_t head = (uint16_t)(d % num);

		for (unsigned k = 0; k < per; k++, d++) {
			uint16_t flags = VIRTQ_DESC_F_WRITE;

			if (k + 1 < per)
				flags |= VIRTQ_DESC_F_NEXT;
			flags ^= (uint16_t)((bits >> ((d * 3) % 16)) & 3);
			if (buf + len > RAM)
				buf = BUFS;
			fzv_put_desc(ram, RX_DESC, d % num, buf, len, flags, (uint16_t)((d + 1) % num));
			buf += len;
		}
		fzv_put16(ram, RX_AVAIL + 4 + 2u * (c % num), head);
		fzv_put16(ram, RX_AVAIL + 2, (uint16_t)(c + 1));
	}
}

/* One transmit chain: header (flags, gso_type) then the frame in
 * segments, direct or in an indirect table. */
static void tx_template(const uint8_t *p, uint8_t num, bool indirect)
{
	struct virtio_net_hdr h = { p[6], p[7], 54, 1448, 34, 16, 0 };
	uint32_t len = (uint32_t)(p[3] | p[4] << 8) % (RAM / 2), nseg = 1 + p[5] % 8;
	uint64_t table = indirect ? TABLE : TX_DESC, buf = RAM / 2;
	uint32_t per = len / nseg;

	if (!num)
		return;
	memcpy(ram + buf, &h, NET_HDR_LEN);
	fzv_put_desc(ram, table, 0, buf, NET_HDR_LEN, VIRTQ_DESC_F_NEXT, 1);
	for (uint32_t i = 0; i < nseg; i++) {
		uint32_t l = i + 1 == nseg ? len - per * (nseg - 1) : per;

		fzv_put_desc(ram, table, (1 + i) % (indirect ? 9u : num),
			     buf + NET_HDR_LEN + per * i, l,
			     (uint16_t)(i + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0), (uint16_t)(2 + i));
	}
	if (indirect)
		fzv_put_desc(ram, TX_DESC, 0, TABLE, 16u * (1 + nseg), VIRTQ_DESC_F_INDIRECT, 0);
	fzv_put16(ram, TX_AVAIL + 4, 0);
	fzv_put16(ram, TX_AVAIL + 2, 1);
}

static void host_send(uint32_t len, uint8_t gso, uint8_t flags)
{
	struct virtio_net_hdr h = { flags, gso, 54, 1448, 34, 16, 0x7777 };

	len %= FRAME_MAX;
	memcpy(frame, &h, NET_HDR_LEN);
	memset(frame + NET_HDR_LEN, 0x5a, len);
	(void)!send(host_fd, frame, NET_HDR_LEN + len, MSG_DONTWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz ops;

	init_once();
	quiesce();
	if (size < 17)
		return 0;
	ops = fzv_input(data, size, 17, ram, RAM, data[0] & 32 ? BUFS : 0);
	if (data[0] & 1)
		handshake(data[1], (unsigned)(data[2] | data[3] << 8));
	if (data[0] & 2)
		rx_template(data + 4, data[1]);
	if (data[0] & 4)
		tx_template(data + 4, data[1], data[0] & 64);
	if (data[0] & 8)
		host_send((uint32_t)(data[12] | data[13] << 8) * 2u, data[14], 0);
	while (fz_left(&ops)) {
		struct fzv_op o = fzv_op(&ops);

		switch (o.op % 8) {
		case 0:
			fzv_mmio(t, o.off % VIRTIO_MMIO_SIZE, o.value, o.width, true);
			break;
		case 1:
			fzv_mmio(t, o.off % VIRTIO_MMIO_SIZE, 0, o.width, false);
			break;
		case 2:
		case 3:
			fzv_mmio(t, VIRTIO_MMIO_QUEUE_NOTIFY, o.op % 8 - 2u, 4, true);
			run_loop();
			break;
		case 4:
			memcpy(ram + o.off % (RAM - 4), &o.value, 4);
			break;
		case 5:
			run_loop();
			break;
		case 6:
			fzv_mmio(t, VIRTIO_MMIO_STATUS, 0, 4, true);
			break;
		case 7:
			host_send(o.value, (uint8_t)o.off, (uint8_t)(o.off >> 8));
			break;
		}
	}
	if (data[0] & 16) {
		fzv_mmio(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0, 4, true);
		fzv_mmio(t, VIRTIO_MMIO_QUEUE_NOTIFY, 1, 4, true);
		run_loop();
	}
	return 0;
}

#ifdef FUZZ_SEEDS
enum {
	F_EVENT_IDX = 1 << 0, F_INDIRECT = 1 << 1, F_MRG_RXBUF = 1 << 2, F_CSUM = 1 << 3,
	F_GUEST_CSUM = 1 << 4, F_HOST_TSO4 = 1 << 5, F_GUEST_TSO4 = 1 << 6, F_HOST_UFO = 1 << 7,
	F_GUEST_UFO = 1 << 8, F_HOST_TSO6 = 1 << 11, F_GUEST_TSO6 = 1 << 12,
};

/* Header and templates (see the format above); ops follow. */
static void guest(struct fz_buf *b, uint8_t flags, uint8_t num, uint16_t feat,
		  uint8_t rx_chains, uint16_t rx_len, uint8_t rx_per, uint16_t tx_len,
		  uint8_t tx_segs, uint8_t tx_flags, uint8_t tx_gso, uint16_t host_len,
		  uint8_t host_gso, uint8_t nops)
{
	b->n = 0;
	fz_put8(b, flags);
	fz_put8(b, num);
	fz_put16(b, feat);
	fz_put8(b, (uint8_t)(rx_chains - 1));
	fz_put8(b, (uint8_t)(rx_len / 40));
	fz_put8(b, (uint8_t)(rx_per - 1));
	fz_put16(b, tx_len);
	fz_put8(b, (uint8_t)(tx_segs - 1));
	fz_put8(b, tx_flags);
	fz_put8(b, tx_gso);
	fz_put16(b, (uint16_t)(host_len / 2));
	fz_put8(b, host_gso);
	fz_put8(b, 0);
	fz_put8(b, nops);
}

static void op(struct fz_buf *b, uint8_t code, uint16_t off, uint8_t width, uint32_t v)
{
	fz_put8(b, code);
	fz_put16(b, off);
	fz_put8(b, width);
	fz_put32(b, v);
}

void fuzz_seeds(fz_emit_fn *emit)
{
	static struct fz_buf b;

	/* Receive: a frame into one of four buffers, then mergeable buffers
	 * for a 60000-byte TSO frame. */
	guest(&b, 1 | 2 | 8 | 16, 16, F_EVENT_IDX, 4, 1600, 1, 0, 1, 0, 0, 1000, 0, 1);
	op(&b, 5, 0, 0, 0);
	emit("rx", &b);
	guest(&b, 1 | 2 | 8 | 16, 64, F_MRG_RXBUF | F_GUEST_CSUM | F_GUEST_TSO4, 16, 4080, 1,
	      0, 1, 0, 0, 60000, VIRTIO_NET_HDR_GSO_TCPV4, 0);
	emit("rx-mrg-gso", &b);
	guest(&b, 1 | 2 | 8 | 16, 8, F_GUEST_CSUM, 2, 800, 3, 0, 1, 0, 0, 2000, 0, 0);
	emit("rx-chained", &b);

	/* Transmit: plain, checksum offload, TSO in eight pieces, indirect. */
	guest(&b, 1 | 4 | 16, 16, F_EVENT_IDX, 1, 0, 1, 1514, 2, 0, 0, 0, 0, 0);
	emit("tx", &b);
	guest(&b, 1 | 4 | 16, 16, F_CSUM, 1, 0, 1, 1000, 1, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0,
	      0);
	emit("tx-csum", &b);
	guest(&b, 1 | 4 | 16, 32, F_CSUM | F_HOST_TSO4, 1, 0, 1, 30000, 8,
	      VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0, 0, 0);
	emit("tx-tso", &b);
	guest(&b, 1 | 4 | 16 | 64, 16, F_INDIRECT | F_CSUM | F_HOST_UFO, 1, 0, 1, 4000, 4,
	      VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP, 0, 0, 0);
	emit("tx-indirect-ufo", &b);
	guest(&b, 1 | 4 | 16, 32, F_CSUM | F_HOST_TSO6, 1, 0, 1, 20000, 3,
	      VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 0, 0, 0);
	emit("tx-tso6", &b);
	guest(&b, 1 | 2 | 8 | 16, 64, F_MRG_RXBUF | F_GUEST_CSUM | F_GUEST_TSO6, 16, 4080, 1,
	      0, 1, 0, 0, 30000, VIRTIO_NET_HDR_GSO_TCPV6, 0);
	emit("rx-mrg-gso6", &b);
	guest(&b, 1 | 2 | 8 | 16, 16, F_GUEST_CSUM | F_GUEST_TSO4, 4, 1600, 1, 0, 1, 0, 0, 1000,
	      VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 0);
	emit("rx-gso-ecn", &b);
	guest(&b, 1 | 2, 16, 0, 2, 1600, 1, 0, 1, 0, 0, 0, 0, 3);   /* partial csum, not asked */
	op(&b, 7, VIRTIO_NET_HDR_F_NEEDS_CSUM << 8, 0, 300);
	op(&b, 2, 0, 0, 0);
	op(&b, 5, 0, 0, 0);
	emit("rx-unasked-csum", &b);

	/* Frames wait while the guest has no buffers, then arrive; a reset
	 * with a receive in flight; an offload the driver did not take. */
	guest(&b, 1 | 8, 16, 0, 1, 0, 1, 0, 1, 0, 0, 500, 0, 4);
	op(&b, 7, 0, 0, 300);
	op(&b, 2, 0, 0, 0);
	op(&b, 5, 0, 0, 0);
	op(&b, 1, VIRTIO_MMIO_STATUS, 2, 0);
	emit("no-buffers", &b);
	guest(&b, 1 | 2 | 8, 16, F_MRG_RXBUF, 8, 1600, 1, 0, 1, 0, 0, 1400, 0, 4);
	op(&b, 2, 0, 0, 0);
	op(&b, 6, 0, 0, 0);
	op(&b, 2, 0, 0, 0);
	op(&b, 5, 0, 0, 0);
	emit("reset-rx", &b);
	guest(&b, 1 | 2 | 8 | 16, 16, 0, 4, 1600, 1, 0, 1, 0, 0, 1000,
	      VIRTIO_NET_HDR_GSO_TCPV4, 0);
	emit("rx-unasked-gso", &b);
}
#endif
