/* virtio-net (virtio/net.c) on fake guest memory: the transport driven
 * through its registers, frames through two real split rings, the tap a
 * SOCK_SEQPACKET socket pair (one message = 12-byte header + frame, like a
 * tap with vnet headers) served by a real io_uring loop.  Transmit chains of
 * every layout, receive into single and merged buffers, several READVs in
 * flight (frames in the tap's order, through reads served at once and reads
 * that waited), back-pressure with no buffers, notifications asked for only
 * when the device holds none, a frame longer than its READV copied on,
 * malformed chains, header checks in both directions, reset with READVs in
 * flight (from the loop's thread and from another thread), and option
 * parsing. */
#define CHECK_FILE "net"
#include "../check.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "mem.h"
#include "virtio/net.h"
#include "mmio_driver.h"

#define RAM   (2u << 20)
#define QNUM  128
#define BUF0  0x10000u

struct q {
	uint64_t desc, avail, used;
	uint16_t avail_idx, next_desc;
};

static uint8_t *ram;
static struct guest_mem gm;
static struct loop loop;
static struct net *n;
static int peer = -1;              /* the test's end of the "tap" */
static struct q rx = { 0x1000, 0x2000, 0x3000, 0, 0 };
static struct q tx = { 0x4000, 0x5000, 0x6000, 0, 0 };
static uint64_t bump;

static void queue_setup(unsigned i, struct q *q)
{
	q->avail_idx = q->next_desc = 0;
	memset(ram + q->avail, 0, 0x1000);
	memset(ram + q->used, 0, 0x1000);
	wr(VIRTIO_MMIO_QUEUE_SEL, i);
	wr(VIRTIO_MMIO_QUEUE_NUM, QNUM);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)q->desc);
	wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)q->avail);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)q->used);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
}

/* The driver's initialisation (§3.1.1) with offered & want. */
static void driver_init(uint64_t want)
{
	driver_negotiate(want);
	queue_setup(0, &rx);
	queue_setup(1, &tx);
	driver_ok();
}

static void open_net(unsigned offloads, uint64_t want)
{
	static const uint8_t mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
	struct err e;
	int sv[2];

	raised = 0;
	ram = aligned_alloc(4096, RAM);
	memset(ram, 0, RAM);
	gm_init(&gm, ram, RAM);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	n = net_open_fd(sv[0], mac, offloads, 0, &e);
	CHECK(n != NULL);
	CHECK_EQ(loop_init(&loop, 64, &e), 0);
	CHECK_EQ(net_attach(n, 0, &gm, &loop, &irq, &e), 0);
	CHECK_EQ(loop_enable(&loop, &e), 0);
	t = net_transport(n);
	bump = BUF0;
	driver_init(want);
}

static void close_net(void)
{
	CHECK_EQ(loop_fini(&loop, 2000), 0);
	net_close(n);
	close(peer);
	free(ram);
}

static uint64_t alloc(uint32_t len)
{
	uint64_t a = bump;

	bump = (bump + len + 63) & ~63ULL;
	return a;
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

/* Make a direct chain available; returns its head. */
static uint16_t add_chain(struct q *q, const struct seg *s, int cnt)
{
	uint16_t head = q->next_desc;

	for (int i = 0; i < cnt; i++) {
		uint16_t d = (uint16_t)((q->next_desc + i) % QNUM);
		struct vq_desc desc = { s[i].gpa, s[i].len,
					(uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE : 0) |
						   (i + 1 < cnt ? VIRTQ_DESC_F_NEXT : 0)),
					(uint16_t)((d + 1) % QNUM) };

		memcpy(ram + q->desc + 16u * d, &desc, sizeof(desc));
	}
	q->next_desc = (uint16_t)((q->next_desc + cnt) % QNUM);
	memcpy(ram + q->avail + 4 + 2u * (q->avail_idx % QNUM), &head, 2);
	q->avail_idx++;
	memcpy(ram + q->avail + 2, &q->avail_idx, 2);
	return head;
}

static uint16_t used_idx(const struct q *q)
{
	uint16_t v;

	memcpy(&v, ram + q->used + 2, 2);
	return v;
}

static void used_elem(const struct q *q, uint16_t k, uint32_t *id, uint32_t *len)
{
	memcpy(id, ram + q->used + 4 + 8u * (k % QNUM), 4);
	memcpy(len, ram + q->used + 8 + 8u * (k % QNUM), 4);
}

static void kick(unsigned qi)
{
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, qi);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop until q's used index reaches k (or 3 s pass). */
static bool run_until_used(const struct q *q, uint16_t k)
{
	uint64_t end = now_ms() + 3000;

	while ((uint16_t)(used_idx(q) - k) > 0x8000 && now_ms() < end) {
		loop_once(&loop, false);
		if ((uint16_t)(used_idx(q) - k) > 0x8000)
			usleep(200);
	}
	return (uint16_t)(used_idx(q) - k) <= 0x8000;
}

static void run_idle(void)
{
	for (int i = 0; i < 20; i++) {
		loop_once(&loop, false);
		usleep(300);
	}
}

static void pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 13 + seed + (i >> 8));
}

static struct virtio_net_hdr hdr_of(uint8_t flags, uint8_t gso, uint16_t gso_size)
{
	struct virtio_net_hdr h = { flags, gso, 0, gso_size, 0, 0, 0 };

	if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		h.csum_start = 34;
		h.csum_offset = 6;
	}
	return h;
}

/* The host sends one frame (header + len bytes of pattern seed). */
static void host_send(const struct virtio_net_hdr *h, uint32_t len, unsigned seed)
{
	static uint8_t buf[NET_HDR_LEN + 70000];

	memcpy(buf, h, NET_HDR_LEN);
	pattern(buf + NET_HDR_LEN, len, seed);
	CHECK_EQ(send(peer, buf, NET_HDR_LEN + len, 0), (ssize_t)(NET_HDR_LEN + len));
}

/* The next frame the device wrote to the "tap", or -1. */
static ssize_t host_recv(uint8_t *buf, size_t cap)
{
	return recv(peer, buf, cap, MSG_DONTWAIT);
}

static bool host_has_frame(void)
{
	uint8_t b;

	return recv(peer, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

#define ALL (~0ULL)
#define NO_MRG (~(1ULL << VIRTIO_NET_F_MRG_RXBUF))
/* MRG_RXBUF without the GSO offloads: a driver of plain frames, whose READVs
 * each cover one MTU-sized frame, several in flight. */
#define NO_GSO (~((1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6) | \
		  (1ULL << VIRTIO_NET_F_GUEST_UFO)))
#define OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO)

/* ---- configuration ---- */

TEST(config_and_features)
{
	uint8_t cfg[NET_CONFIG_SIZE];
	uint64_t f;

	open_net(OFFLOADS, ALL);
	f = offered();
	CHECK(f & (1ULL << VIRTIO_F_VERSION_1));
	CHECK(f & (1ULL << VIRTIO_NET_F_MAC));
	CHECK(f & (1ULL << VIRTIO_NET_F_STATUS));
	CHECK(f & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	CHECK(f & (1ULL << VIRTIO_F_RING_EVENT_IDX));
	CHECK(f & (1ULL << VIRTIO_NET_F_CSUM));
	CHECK(f & (1ULL << VIRTIO_NET_F_GUEST_CSUM));
	CHECK(f & (1ULL << VIRTIO_NET_F_HOST_TSO4));
	CHECK(f & (1ULL << VIRTIO_NET_F_GUEST_TSO6));
	CHECK(f & (1ULL << VIRTIO_NET_F_HOST_UFO));
	CHECK(!(f & (1ULL << VIRTIO_NET_F_HOST_ECN)));
	CHECK_EQ(rd(VIRTIO_MMIO_DEVICE_ID), 1);
	for (unsigned i = 0; i < NET_CONFIG_SIZE; i++)
		virtio_mmio_io(t, VIRTIO_MMIO_CONFIG + i, &cfg[i], 1, false);
	CHECK(!memcmp(cfg, (const uint8_t[]){ 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }, 6));
	CHECK_EQ(cfg[6] | cfg[7] << 8, 1);   /* VIRTIO_NET_S_LINK_UP */
	wr(VIRTIO_MMIO_QUEUE_SEL, 2);
	CHECK_EQ(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);   /* no control queue */
	close_net();

	/* A tap without offloads: none offered (§5.1.3.1 dependencies). */
	open_net(0, ALL);
	f = offered();
	CHECK(!(f & ((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
		     (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
		     (1ULL << VIRTIO_NET_F_HOST_UFO))));
	CHECK(f & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	close_net();
}

/* ---- transmit ---- */

TEST(tx_layouts)
{
	uint8_t want[1600], got[2000];
	struct virtio_net_hdr h = hdr_of(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0), gh;
	uint64_t a, b, c;
	uint32_t id, len;
	uint16_t head;
	ssize_t r;

	open_net(OFFLOADS, ALL);
	/* Header and frame in one descriptor. */
	a = alloc(NET_HDR_LEN + 1000);
	memcpy(ram + a, &h, NET_HDR_LEN);
	pattern(ram + a + NET_HDR_LEN, 1000, 1);
	head = add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 1000, false } }, 1);
	kick(1);
	CHECK(run_until_used(&tx, 1));
	used_elem(&tx, 0, &id, &len);
	CHECK_EQ(id, head);
	CHECK_EQ(len, 0);      /* §5.1.6.2: nothing written */
	r = host_recv(got, sizeof(got));
	CHECK_EQ(r, NET_HDR_LEN + 1000);
	memcpy(&gh, got, NET_HDR_LEN);
	CHECK_EQ(gh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK_EQ(gh.csum_start, 34);
	CHECK(!memcmp(got + NET_HDR_LEN, ram + a + NET_HDR_LEN, 1000));
	CHECK(raised > 0);

	/* Header alone, then the frame split in three (one empty, one odd),
	 * the split inside the Ethernet header. */
	pattern(want, 1514, 2);
	a = alloc(NET_HDR_LEN);
	b = alloc(7);
	c = alloc(1514 - 7);
	memcpy(ram + a, &h, NET_HDR_LEN);
	memcpy(ram + b, want, 7);
	memcpy(ram + c, want + 7, 1514 - 7);
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN, false }, { b, 7, false }, { c, 0, false },
				       { c, 1514 - 7, false } }, 4);
	kick(1);
	CHECK(run_until_used(&tx, 2));
	r = host_recv(got, sizeof(got));
	CHECK_EQ(r, NET_HDR_LEN + 1514);
	CHECK(!memcmp(got + NET_HDR_LEN, want, 1514));

	/* The header itself split across descriptors. */
	a = alloc(5);
	b = alloc(NET_HDR_LEN - 5 + 60);
	memcpy(ram + a, &h, 5);
	memcpy(ram + b, (uint8_t *)&h + 5, NET_HDR_LEN - 5);
	pattern(ram + b + NET_HDR_LEN - 5, 60, 3);
	add_chain(&tx, (struct seg[]){ { a, 5, false }, { b, NET_HDR_LEN - 5 + 60, false } }, 2);
	kick(1);
	CHECK(run_until_used(&tx, 3));
	r = host_recv(got, sizeof(got));
	CHECK_EQ(r, NET_HDR_LEN + 60);
	CHECK(!memcmp(got, &h, NET_HDR_LEN));
	CHECK(!memcmp(got + NET_HDR_LEN, ram + b + NET_HDR_LEN - 5, 60));
	CHECK_EQ(net_get_stats(n)->tx_packets, 3);
	CHECK_EQ(net_get_stats(n)->tx_bytes, 1000 + 1514 + 60);
	close_net();
}

TEST(tx_batch_beyond_request_slots)
{
	enum { N = 100 };
	uint8_t got[200];
	uint64_t a;
	int frames = 0, irqs;

	open_net(OFFLOADS, ALL);
	/* More chains than transmit request slots (64), one kick. */
	for (int i = 0; i < N; i++) {
		struct virtio_net_hdr h = hdr_of(0, 0, 0);

		a = alloc(NET_HDR_LEN + 60);
		memcpy(ram + a, &h, NET_HDR_LEN);
		pattern(ram + a + NET_HDR_LEN, 60, (unsigned)i);
		add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 60, false } }, 1);
	}
	raised = 0;
	kick(1);
	CHECK(run_until_used(&tx, N));
	irqs = raised;
	/* In order: frame i carries pattern seed i. */
	for (int i = 0; i < N; i++) {
		uint8_t want[60];

		if (host_recv(got, sizeof(got)) != NET_HDR_LEN + 60)
			break;
		pattern(want, 60, (unsigned)i);
		if (memcmp(got + NET_HDR_LEN, want, 60))
			break;
		frames++;
	}
	CHECK_EQ(frames, N);
	CHECK(irqs >= 1 && irqs <= 4);   /* once per loop iteration at most */
	close_net();
}

TEST(tx_bad_chains_dropped)
{
	struct virtio_net_hdr h;
	uint64_t a, w;
	uint32_t id, len;
	uint8_t got[200];

	open_net(OFFLOADS, ~((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4)));
	/* A device-writable buffer in a transmit chain. */
	a = alloc(NET_HDR_LEN + 60);
	w = alloc(64);
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 60, false }, { w, 64, true } }, 2);
	/* Only a header. */
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN, false } }, 1);
	/* NEEDS_CSUM, and GSO, without the features. */
	h = hdr_of(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0);
	a = alloc(NET_HDR_LEN + 60);
	memcpy(ram + a, &h, NET_HDR_LEN);
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 60, false } }, 1);
	h = hdr_of(0, VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	a = alloc(NET_HDR_LEN + 60);
	memcpy(ram + a, &h, NET_HDR_LEN);
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 60, false } }, 1);
	/* A buffer outside guest RAM, and an unknown GSO type. */
	add_chain(&tx, (struct seg[]){ { RAM - 16, NET_HDR_LEN + 60, false } }, 1);
	h = hdr_of(0, 7, 1000);
	a = alloc(NET_HDR_LEN + 60);
	memcpy(ram + a, &h, NET_HDR_LEN);
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 60, false } }, 1);
	/* Then a good one. */
	h = hdr_of(0, 0, 0);
	a = alloc(NET_HDR_LEN + 60);
	memcpy(ram + a, &h, NET_HDR_LEN);
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 60, false } }, 1);
	kick(1);
	CHECK(run_until_used(&tx, 7));
	for (uint16_t k = 0; k < 7; k++) {
		used_elem(&tx, k, &id, &len);
		CHECK_EQ(len, 0);
	}
	CHECK_EQ(host_recv(got, sizeof(got)), NET_HDR_LEN + 60);
	CHECK(!host_has_frame());
	CHECK_EQ(net_get_stats(n)->tx_dropped, 6);
	CHECK_EQ(net_get_stats(n)->tx_packets, 1);
	CHECK(!(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET));
	close_net();
}

/* ---- receive ---- */

TEST(rx_single_buffers)
{
	struct virtio_net_hdr h = hdr_of(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0), gh;
	uint8_t want[1514];
	uint64_t b[3];
	uint32_t id, len;
	uint16_t head[3];

	open_net(OFFLOADS, NO_MRG & ~(1ULL << VIRTIO_NET_F_GUEST_CSUM));
	for (int i = 0; i < 3; i++) {
		b[i] = alloc(NET_HDR_LEN + 1518);
		memset(ram + b[i], 0xee, NET_HDR_LEN + 1518);
		head[i] = add_chain(&rx, (struct seg[]){ { b[i], NET_HDR_LEN + 1518, true } }, 1);
	}
	kick(0);
	/* num_buffers is what the tap leaves untouched: the device must set
	 * it to 1 without MRG_RXBUF (§5.1.6.4); DATA_VALID is cleared
	 * without GUEST_CSUM (§5.1.6.4.1). */
	h.num_buffers = 0x7777;
	host_send(&h, 1514, 5);
	host_send(&h, 60, 6);
	CHECK(run_until_used(&rx, 2));
	used_elem(&rx, 0, &id, &len);
	CHECK_EQ(id, head[0]);
	CHECK_EQ(len, NET_HDR_LEN + 1514);
	memcpy(&gh, ram + b[0], NET_HDR_LEN);
	CHECK_EQ(gh.num_buffers, 1);
	CHECK_EQ(gh.flags, 0);
	pattern(want, 1514, 5);
	CHECK(!memcmp(ram + b[0] + NET_HDR_LEN, want, 1514));
	used_elem(&rx, 1, &id, &len);
	CHECK_EQ(id, head[1]);
	CHECK_EQ(len, NET_HDR_LEN + 60);
	CHECK_EQ(ram[b[1] + NET_HDR_LEN + 60], 0xee);   /* nothing beyond */
	CHECK(raised > 0);
	CHECK_EQ(net_get_stats(n)->rx_packets, 2);
	close_net();
}

/* With MRG_RXBUF, the frame host_send() made of len bytes from seed went
 * into the first m used elements, in order: the buffers gpa[0..m), each
 * buflen bytes long, all full but the last; num_buffers says m, and the
 * bytes are the frame's. */
static void check_merged_frame(const uint64_t *gpa, uint16_t m, uint32_t buflen, uint32_t len,
			       unsigned seed)
{
	static uint8_t want[65536], got[65536];
	struct virtio_net_hdr gh;
	uint32_t id, used_len, total = 0;

	memcpy(&gh, ram + gpa[0], NET_HDR_LEN);
	CHECK_EQ(gh.num_buffers, m);
	for (uint16_t k = 0; k < m; k++) {
		used_elem(&rx, k, &id, &used_len);
		CHECK_EQ(id, k);
		CHECK_EQ(used_len, k + 1 < m ? buflen : NET_HDR_LEN + len - (m - 1u) * buflen);
		if (total + used_len > sizeof(got))
			break;
		memcpy(got + total, ram + gpa[k], used_len);
		total += used_len;
	}
	CHECK_EQ(total, NET_HDR_LEN + len);
	pattern(want, len, seed);
	CHECK(!memcmp(got + NET_HDR_LEN, want, len));
}

TEST(rx_merged_buffers)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0), gh;
	static uint8_t want[60000], got[60000];
	uint64_t b[40];
	uint32_t id, len, total = 0;

	open_net(OFFLOADS, ALL);
	for (int i = 0; i < 8; i++) {
		b[i] = alloc(256);
		add_chain(&rx, (struct seg[]){ { b[i], 256, true } }, 1);
	}
	kick(0);
	/* 1000 bytes + header over four 256-byte buffers. */
	host_send(&h, 1000, 7);
	CHECK(run_until_used(&rx, 4));
	check_merged_frame(b, 4, 256, 1000, 7);
	/* A small frame takes the next buffer alone. */
	host_send(&h, 100, 8);
	CHECK(run_until_used(&rx, 5));
	used_elem(&rx, 4, &id, &len);
	CHECK_EQ(id, 4);
	CHECK_EQ(len, NET_HDR_LEN + 100);
	memcpy(&gh, ram + b[4], NET_HDR_LEN);
	CHECK_EQ(gh.num_buffers, 1);
	close_net();

	/* GUEST_TSO4: a 60000-byte GSO frame over 2 KiB buffers. */
	open_net(OFFLOADS, ALL);
	for (int i = 0; i < 40; i++) {
		b[i] = alloc(2048);
		add_chain(&rx, (struct seg[]){ { b[i], 2048, true } }, 1);
	}
	kick(0);
	h = hdr_of(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	host_send(&h, 60000, 9);
	CHECK(run_until_used(&rx, 30));
	memcpy(&gh, ram + b[0], NET_HDR_LEN);
	CHECK_EQ(gh.num_buffers, 30);
	CHECK_EQ(gh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	CHECK_EQ(gh.gso_size, 1448);
	total = 0;
	for (uint16_t k = 0; k < 30; k++) {
		used_elem(&rx, k, &id, &len);
		memcpy(got + total, ram + b[k] + (k ? 0 : NET_HDR_LEN), len - (k ? 0 : NET_HDR_LEN));
		total += len - (k ? 0 : NET_HDR_LEN);
	}
	CHECK_EQ(total, 60000);
	pattern(want, 60000, 9);
	CHECK(!memcmp(got, want, 60000));
	close_net();
}

TEST(rx_multi_descriptor_chain)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint8_t want[1514];
	uint64_t a, b;
	uint32_t id, len;

	/* Without MRG_RXBUF a chain of two buffers holds one frame, the
	 * header split from the data as Linux's "big packets" do. */
	open_net(OFFLOADS, NO_MRG);
	a = alloc(NET_HDR_LEN);
	b = alloc(1518);
	add_chain(&rx, (struct seg[]){ { a, NET_HDR_LEN, true }, { b, 1518, true } }, 2);
	kick(0);
	host_send(&h, 1514, 11);
	CHECK(run_until_used(&rx, 1));
	used_elem(&rx, 0, &id, &len);
	CHECK_EQ(len, NET_HDR_LEN + 1514);
	pattern(want, 1514, 11);
	CHECK(!memcmp(ram + b, want, 1514));
	close_net();
}

TEST(rx_backpressure_without_buffers)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint8_t want[200];
	uint64_t b[8];
	uint32_t id, len;

	open_net(OFFLOADS, ALL);
	/* No buffers: the frames stay in the "tap" and nothing is used. */
	for (int i = 0; i < 5; i++)
		host_send(&h, 100 + (uint32_t)i, (unsigned)i);
	kick(0);
	run_idle();
	CHECK_EQ(used_idx(&rx), 0);
	CHECK_EQ(net_get_stats(n)->rx_packets, 0);
	CHECK(net_get_stats(n)->rx_waits >= 1);
	CHECK(!(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET));
	/* Buffers, and the driver's notification: all five, in order (they
	 * waited in the "tap"). */
	for (int i = 0; i < 8; i++) {
		b[i] = alloc(2048);
		add_chain(&rx, (struct seg[]){ { b[i], 2048, true } }, 1);
	}
	kick(0);
	CHECK(run_until_used(&rx, 5));
	for (uint16_t k = 0; k < 5; k++) {
		used_elem(&rx, k, &id, &len);
		CHECK_EQ(len, NET_HDR_LEN + 100 + k);
		pattern(want, 100 + k, k);
		CHECK(!memcmp(ram + b[id] + NET_HDR_LEN, want, 100 + k));
	}
	close_net();
}

TEST(rx_frames_the_driver_cannot_take)
{
	struct virtio_net_hdr h;
	uint64_t b[4];
	uint32_t id, len;

	/* Neither GUEST_CSUM nor GUEST_TSO4 negotiated (left in the tap from
	 * an earlier driver, say): such frames are dropped, and the buffer
	 * takes the next frame. */
	open_net(OFFLOADS, NO_MRG & ~((1ULL << VIRTIO_NET_F_GUEST_CSUM) |
				      (1ULL << VIRTIO_NET_F_GUEST_TSO4)));
	for (int i = 0; i < 2; i++) {
		b[i] = alloc(NET_HDR_LEN + 1518);
		add_chain(&rx, (struct seg[]){ { b[i], NET_HDR_LEN + 1518, true } }, 1);
	}
	kick(0);
	h = hdr_of(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0);
	host_send(&h, 200, 1);
	h = hdr_of(0, VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	host_send(&h, 1400, 2);
	h = hdr_of(0, VIRTIO_NET_HDR_GSO_UDP | VIRTIO_NET_HDR_GSO_ECN, 1000);
	host_send(&h, 1400, 3);
	h = hdr_of(0, 0, 0);
	host_send(&h, 300, 4);
	CHECK(run_until_used(&rx, 1));
	run_idle();
	CHECK_EQ(used_idx(&rx), 1);
	used_elem(&rx, 0, &id, &len);
	CHECK_EQ(id, 0);
	CHECK_EQ(len, NET_HDR_LEN + 300);
	CHECK_EQ(net_get_stats(n)->rx_dropped, 3);
	close_net();
}

/* A frame longer than the receive buffers offered is dropped and counted,
 * never handed over cut short: a tap on Linux 6.18 (like this socket pair)
 * returns the truncated length of such a read, not the frame's, so the
 * device must see for itself that the frame did not fit (the hostile
 * guest's 26-byte buffers got the first 14 bytes of 1000-byte frames,
 * used as complete frames). */
TEST(rx_frame_longer_than_the_buffers)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint8_t want[300];
	uint64_t b[3];
	uint32_t id, len;

	open_net(OFFLOADS, NO_MRG);
	b[0] = alloc(NET_HDR_LEN + 100);
	memset(ram + b[0], 0xee, NET_HDR_LEN + 200);
	add_chain(&rx, (struct seg[]){ { b[0], NET_HDR_LEN + 100, true } }, 1);
	kick(0);
	host_send(&h, 1000, 1);
	host_send(&h, 50, 2);
	CHECK(run_until_used(&rx, 1));
	run_idle();
	CHECK_EQ(used_idx(&rx), 1);
	used_elem(&rx, 0, &id, &len);
	CHECK_EQ(len, NET_HDR_LEN + 50);
	pattern(want, 50, 2);
	CHECK(!memcmp(ram + b[0] + NET_HDR_LEN, want, 50));
	CHECK_EQ(ram[b[0] + NET_HDR_LEN + 100], 0xee);   /* nothing beyond the buffer */
	CHECK_EQ(net_get_stats(n)->rx_dropped, 1);
	CHECK_EQ(net_get_stats(n)->rx_packets, 1);
	close_net();

	/* With MRG_RXBUF: two chains of 512 bytes (the ring ran dry before a
	 * largest frame's worth), a 2000-byte frame, then one of 300. */
	open_net(OFFLOADS, ~0ULL);
	for (int i = 1; i < 3; i++) {
		b[i] = alloc(512);
		add_chain(&rx, (struct seg[]){ { b[i], 512, true } }, 1);
	}
	kick(0);
	host_send(&h, 2000, 3);
	host_send(&h, 300, 4);
	CHECK(run_until_used(&rx, 1));
	run_idle();
	CHECK_EQ(used_idx(&rx), 1);
	used_elem(&rx, 0, &id, &len);
	CHECK_EQ(len, NET_HDR_LEN + 300);
	pattern(want, 300, 4);
	CHECK(!memcmp(ram + b[1] + NET_HDR_LEN, want, 300));
	CHECK_EQ(net_get_stats(n)->rx_dropped, 1);
	close_net();
}

TEST(rx_malformed_chains)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint64_t a, b;
	uint32_t id, len;
	uint16_t bad1, bad2, bad3, good;

	open_net(OFFLOADS, ALL);
	a = alloc(64);
	b = alloc(2048);
	/* A device-readable buffer, one shorter than a header, one outside
	 * RAM: each returned unused; then a good one gets the frame. */
	bad1 = add_chain(&rx, (struct seg[]){ { a, 64, false }, { b, 2048, true } }, 2);
	bad2 = add_chain(&rx, (struct seg[]){ { a, 8, true } }, 1);
	bad3 = add_chain(&rx, (struct seg[]){ { RAM - 100, 2048, true } }, 1);
	good = add_chain(&rx, (struct seg[]){ { b, 2048, true } }, 1);
	kick(0);
	host_send(&h, 500, 1);
	CHECK(run_until_used(&rx, 4));
	used_elem(&rx, 0, &id, &len);
	CHECK_EQ(id, bad1);
	CHECK_EQ(len, 0);
	used_elem(&rx, 1, &id, &len);
	CHECK_EQ(id, bad2);
	CHECK_EQ(len, 0);
	used_elem(&rx, 2, &id, &len);
	CHECK_EQ(id, bad3);
	CHECK_EQ(len, 0);
	used_elem(&rx, 3, &id, &len);
	CHECK_EQ(id, good);
	CHECK_EQ(len, NET_HDR_LEN + 500);
	CHECK_EQ(net_get_stats(n)->bad_chains, 3);
	CHECK(!(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET));

	/* A head beyond the queue size: the ring is corrupt. */
	{
		uint16_t bogus = QNUM + 5;

		memcpy(ram + rx.avail + 4 + 2u * (rx.avail_idx % QNUM), &bogus, 2);
		rx.avail_idx++;
		memcpy(ram + rx.avail + 2, &rx.avail_idx, 2);
	}
	host_send(&h, 500, 2);
	kick(0);
	run_idle();
	CHECK(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	close_net();
}

/* Reset with a READV in flight, from the loop's own thread: the read is
 * cancelled, a later frame is neither read nor written into the old
 * buffer, and after re-initialisation it arrives. */
TEST(reset_with_read_in_flight)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint64_t b, b2;
	uint32_t id, len;

	open_net(OFFLOADS, ALL);
	b = alloc(2048);
	memset(ram + b, 0xab, 2048);
	add_chain(&rx, (struct seg[]){ { b, 2048, true } }, 1);
	kick(0);
	run_idle();                   /* the READV is posted and waits */
	wr(VIRTIO_MMIO_STATUS, 0);
	run_idle();                   /* the cancellation completes */
	host_send(&h, 300, 1);
	run_idle();
	CHECK_EQ(ram[b], 0xab);
	CHECK_EQ(ram[b + 100], 0xab);
	driver_init(ALL);
	b2 = alloc(2048);
	add_chain(&rx, (struct seg[]){ { b2, 2048, true } }, 1);
	kick(0);
	CHECK(run_until_used(&rx, 1));
	used_elem(&rx, 0, &id, &len);
	CHECK_EQ(len, NET_HDR_LEN + 300);
	CHECK_EQ(ram[b], 0xab);
	close_net();
}

static atomic_int reset_done;

static void *reset_thread(void *arg)
{
	uint64_t *ms = arg;
	uint64_t t0 = now_ms();

	wr(VIRTIO_MMIO_STATUS, 0);
	*ms = now_ms() - t0;
	atomic_store(&reset_done, 1);
	return NULL;
}

/* The same from another thread (a vCPU): the reset waits until the loop has
 * cancelled the READV, so no frame can land in the buffer after it. */
TEST(reset_from_vcpu_thread_waits_for_the_read)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint64_t b, ms = 0;
	pthread_t th;
	void *ret;
	uint64_t end;

	open_net(OFFLOADS, ALL);
	b = alloc(2048);
	memset(ram + b, 0xab, 2048);
	add_chain(&rx, (struct seg[]){ { b, 2048, true } }, 1);
	kick(0);
	run_idle();
	atomic_store(&reset_done, 0);
	CHECK_EQ(pthread_create(&th, NULL, reset_thread, &ms), 0);
	end = now_ms() + 3000;
	while (now_ms() < end && !atomic_load(&reset_done)) {
		loop_once(&loop, false);
		usleep(200);
	}
	pthread_join(th, &ret);
	CHECK(ms < NET_QUIESCE_MS);
	host_send(&h, 300, 1);
	run_idle();
	CHECK_EQ(ram[b], 0xab);
	/* The frame waited for the next driver. */
	driver_init(ALL);
	b = alloc(2048);
	add_chain(&rx, (struct seg[]){ { b, 2048, true } }, 1);
	kick(0);
	CHECK(run_until_used(&rx, 1));
	close_net();
}

/* A "tap" that fails (here: shut down) makes writes fail: counted, chains
 * returned used, the VM goes on. */
TEST(tap_errors_are_counted)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint64_t a;
	uint32_t id, len;

	signal(SIGPIPE, SIG_IGN);   /* as in ember: a socket "tap" would raise it */
	open_net(OFFLOADS, ALL);
	shutdown(peer, SHUT_RDWR);
	a = alloc(NET_HDR_LEN + 60);
	memcpy(ram + a, &h, NET_HDR_LEN);
	add_chain(&tx, (struct seg[]){ { a, NET_HDR_LEN + 60, false } }, 1);
	kick(1);
	CHECK(run_until_used(&tx, 1));
	used_elem(&tx, 0, &id, &len);
	CHECK_EQ(len, 0);
	CHECK_EQ(net_get_stats(n)->tx_errors, 1);
	/* A receive that fails (EOF) stops receiving instead of spinning. */
	a = alloc(2048);
	add_chain(&rx, (struct seg[]){ { a, 2048, true } }, 1);
	kick(0);
	run_idle();
	CHECK_EQ(net_get_stats(n)->rx_errors, 1);
	CHECK_EQ(used_idx(&rx), 0);
	close_net();
}

/* ---- several READVs in flight ---- */

/* SQEs of the loop in flight besides the device's READVs (its eventfd
 * READs), measured with no receive buffer posted. */
static unsigned loop_base;

static void measure_loop_base(void)
{
	run_idle();
	loop_base = loop.inflight;
}

/* READVs in flight now. */
static unsigned reads_in_flight(void)
{
	return loop.inflight - loop_base;
}

/* avail_event in the used ring (§2.7.10): where the device asked to be
 * notified. */
static uint16_t avail_event(const struct q *q)
{
	uint16_t v;

	memcpy(&v, ram + q->used + 4 + 8u * QNUM, 2);
	return v;
}

/* n single-buffer receive chains of len bytes, filled with 0xab; gpa_of[head]
 * is each one's buffer. */
static void rx_chains(uint64_t *gpa_of, int cnt, uint32_t len)
{
	for (int i = 0; i < cnt; i++) {
		uint64_t a = alloc(len);
		uint16_t head;

		memset(ram + a, 0xab, len);
		head = add_chain(&rx, (struct seg[]){ { a, len, true } }, 1);
		gpa_of[head] = a;
	}
}

/* Used entries [from, from + cnt) of the receive ring hold, in that order,
 * single-buffer frames of 60 + seed bytes of pattern seed, seeds seed0,
 * seed0 + 1, ... */
static bool frames_in_order(const uint64_t *gpa_of, uint16_t from, unsigned cnt, unsigned seed0)
{
	uint8_t want[NET_HDR_LEN + 1600];

	for (unsigned k = 0; k < cnt; k++) {
		unsigned seed = seed0 + k;
		uint32_t id, len;
		struct virtio_net_hdr gh;

		used_elem(&rx, (uint16_t)(from + k), &id, &len);
		if (id >= QNUM || len != NET_HDR_LEN + 60 + seed) {
			fprintf(stderr, "used %u: id %u len %u, want frame %u\n", from + k, id, len, seed);
			return false;
		}
		memcpy(&gh, ram + gpa_of[id], NET_HDR_LEN);
		pattern(want, 60 + seed, seed);
		if (gh.num_buffers != 1 || memcmp(ram + gpa_of[id] + NET_HDR_LEN, want, 60 + seed)) {
			fprintf(stderr, "used %u: not frame %u\n", from + k, seed);
			return false;
		}
	}
	return true;
}

static void send_frames(unsigned seed0, unsigned cnt)
{
	struct virtio_net_hdr h = hdr_of(0, 0, 0);

	for (unsigned i = 0; i < cnt; i++)
		host_send(&h, 60 + seed0 + i, seed0 + i);
}

/* Frames queued in the tap: READVs ramp up (one, then twice as many as came
 * back with a frame), so that one loop iteration, one io_uring_enter,
 * brings several frames, at most one per READV, published together with
 * one interrupt (no EVENT_IDX here: the driver wants one for every
 * batch); the used ring has them in the tap's order. */
TEST(rx_several_reads_in_flight)
{
	static uint64_t gpa_of[QNUM];
	uint16_t prev = 0;
	unsigned most = 0, most_irqs = 0, irq_max = 0;

	open_net(OFFLOADS, NO_GSO & ~(1ULL << VIRTIO_F_RING_EVENT_IDX));
	measure_loop_base();
	rx_chains(gpa_of, 60, 2048);
	send_frames(0, 50);
	kick(0);
	for (int calls = 0; calls < 500 && used_idx(&rx) != 50; calls++) {
		int r0 = raised;
		uint16_t u;

		loop_once(&loop, false);
		u = used_idx(&rx);
		if ((unsigned)(raised - r0) > irq_max)
			irq_max = (unsigned)(raised - r0);
		if ((unsigned)(uint16_t)(u - prev) > most) {
			most = (uint16_t)(u - prev);
			most_irqs = (unsigned)(raised - r0);
		}
		prev = u;
	}
	CHECK_EQ(used_idx(&rx), 50);
	CHECK(most >= 4);
	CHECK(most <= NET_RX_READS);
	CHECK_EQ(most_irqs, 1);
	CHECK_EQ(irq_max, 1);
	CHECK(frames_in_order(gpa_of, 0, 50, 0));
	/* The tap is empty now: READVs wait in it, each on a chain. */
	run_idle();
	CHECK(reads_in_flight() >= 2);
	CHECK_EQ(net_get_stats(n)->rx_packets, 50);
	CHECK_EQ(net_get_stats(n)->rx_dropped, 0);
	close_net();
}

/* Frames that arrive while several READVs wait in the empty tap wake them
 * all; whichever takes a frame, the used ring still has the frames in the
 * tap's order. */
TEST(rx_order_with_reads_waiting)
{
	static uint64_t gpa_of[QNUM];
	uint16_t u = 0;
	unsigned waited_several = 0;

	open_net(OFFLOADS, NO_GSO);
	measure_loop_base();
	rx_chains(gpa_of, 100, 2048);
	send_frames(0, 20);
	kick(0);
	CHECK(run_until_used(&rx, 20));
	u = 20;
	for (unsigned burst = 1; burst <= 8; burst++) {
		run_idle();
		CHECK(reads_in_flight() >= 1);
		waited_several += reads_in_flight() >= 2 && burst >= 2;
		send_frames(u, burst);
		CHECK(run_until_used(&rx, (uint16_t)(u + burst)));
		u = (uint16_t)(u + burst);
	}
	run_idle();
	CHECK(waited_several >= 2);   /* bursts that met several READVs waiting */
	CHECK_EQ(used_idx(&rx), u);
	CHECK(frames_in_order(gpa_of, 0, u, 0));
	close_net();
}

/* Back-pressure with several READVs: 4 buffers for 10 frames take 4 frames,
 * the other 6 wait in the tap (nothing is read without a buffer), and the
 * driver is asked to notify; its next buffers take the 6, in order. */
TEST(rx_backpressure_with_several_reads)
{
	static uint64_t gpa_of[QNUM];
	unsigned waits;

	open_net(OFFLOADS, NO_GSO);
	measure_loop_base();
	waits = (unsigned)net_get_stats(n)->rx_waits;
	rx_chains(gpa_of, 4, 2048);
	send_frames(0, 10);
	kick(0);
	CHECK(run_until_used(&rx, 4));
	run_idle();
	CHECK_EQ(used_idx(&rx), 4);
	CHECK_EQ(net_get_stats(n)->rx_packets, 4);
	CHECK_EQ(reads_in_flight(), 0);
	CHECK_EQ(net_get_stats(n)->rx_waits, waits + 1);
	CHECK_EQ(avail_event(&rx), 4);   /* notify once buffer 4 is added */
	rx_chains(gpa_of, 8, 2048);
	kick(0);
	CHECK(run_until_used(&rx, 10));
	run_idle();
	CHECK_EQ(used_idx(&rx), 10);
	CHECK(frames_in_order(gpa_of, 0, 10, 0));
	CHECK_EQ(net_get_stats(n)->rx_dropped, 0);
	close_net();
}

/* While the device holds a READV it asks for no notification, even with
 * the ring empty: the READV's completion looks at the ring again.  It asks
 * (avail_event, with EVENT_IDX) only once it holds none. */
TEST(rx_notification_only_when_out)
{
	static uint64_t gpa_of[QNUM];

	open_net(OFFLOADS, NO_GSO);
	measure_loop_base();
	rx_chains(gpa_of, 2, 2048);
	memset(ram + rx.used + 4 + 8u * QNUM, 0x77, 2);   /* avail_event: not written yet */
	kick(0);
	run_idle();
	CHECK_EQ(reads_in_flight(), 1);
	send_frames(0, 1);
	CHECK(run_until_used(&rx, 1));
	run_idle();
	/* Buffer 1 has a READV; the ring is empty, and that is all right. */
	CHECK_EQ(reads_in_flight(), 1);
	CHECK_EQ(avail_event(&rx), 0x7777);
	send_frames(1, 1);
	CHECK(run_until_used(&rx, 2));
	run_idle();
	CHECK_EQ(reads_in_flight(), 0);
	CHECK_EQ(avail_event(&rx), 2);
	rx_chains(gpa_of, 1, 2048);
	kick(0);
	send_frames(2, 1);
	CHECK(run_until_used(&rx, 3));
	CHECK(frames_in_order(gpa_of, 0, 3, 0));
	close_net();
}

/* A READV covers one MTU-sized frame's buffers (one 2 KiB buffer here); a
 * longer frame runs into its spill buffer and is copied on into the next
 * buffers, its chains in order, num_buffers counting them all: nothing is
 * dropped while the guest has buffers.  Once the ring has none left for
 * the rest, the frame is dropped and counted, and its buffers take the next
 * one. */
TEST(rx_frame_longer_than_its_read_is_copied)
{
	static uint64_t gpa_of[QNUM];
	static uint8_t want[20000];
	struct virtio_net_hdr h = hdr_of(0, 0, 0);
	uint32_t id, len;

	open_net(OFFLOADS, NO_GSO);
	measure_loop_base();
	rx_chains(gpa_of, 6, 2048);
	kick(0);
	run_idle();
	CHECK_EQ(reads_in_flight(), 1);
	host_send(&h, 5000, 3);
	CHECK(run_until_used(&rx, 3));
	check_merged_frame(gpa_of, 3, 2048, 5000, 3);
	CHECK_EQ(net_get_stats(n)->rx_dropped, 0);
	/* Three buffers left: 10000 bytes do not fit, 100 then do. */
	host_send(&h, 10000, 4);
	host_send(&h, 100, 5);
	CHECK(run_until_used(&rx, 4));
	run_idle();
	CHECK_EQ(used_idx(&rx), 4);
	used_elem(&rx, 3, &id, &len);
	CHECK_EQ(len, NET_HDR_LEN + 100);
	pattern(want, 100, 5);
	CHECK(!memcmp(ram + gpa_of[id] + NET_HDR_LEN, want, 100));
	CHECK_EQ(net_get_stats(n)->rx_dropped, 1);
	CHECK_EQ(net_get_stats(n)->rx_packets, 2);
	close_net();
}

/* Reset with several READVs waiting, from a vCPU thread: it returns only
 * once all of them are back, and no frame lands in a buffer after it. */
TEST(reset_with_several_reads_in_flight)
{
	static uint64_t gpa_of[QNUM];
	uint64_t ms = 0, end;
	pthread_t th;
	void *ret;

	open_net(OFFLOADS, NO_GSO);
	measure_loop_base();
	rx_chains(gpa_of, 16, 2048);
	send_frames(0, 12);
	kick(0);
	CHECK(run_until_used(&rx, 12));
	run_idle();
	CHECK(reads_in_flight() >= 2);
	atomic_store(&reset_done, 0);
	CHECK_EQ(pthread_create(&th, NULL, reset_thread, &ms), 0);
	end = now_ms() + 3000;
	while (now_ms() < end && !atomic_load(&reset_done)) {
		loop_once(&loop, false);
		usleep(200);
	}
	pthread_join(th, &ret);
	CHECK(ms < NET_QUIESCE_MS);
	CHECK_EQ(reads_in_flight(), 0);
	send_frames(12, 3);
	run_idle();
	for (unsigned i = 0; i < 16; i++) {
		uint32_t id, len;
		bool used = false;

		for (uint16_t k = 0; k < 12; k++) {
			used_elem(&rx, k, &id, &len);
			used |= id == i;
		}
		if (!used)
			CHECK_EQ(ram[gpa_of[i]], 0xab);   /* still the driver's, untouched */
	}
	CHECK_EQ(net_get_stats(n)->rx_packets, 12);
	/* The three frames waited for the next driver, in order. */
	driver_init(NO_GSO);
	rx_chains(gpa_of, 8, 2048);
	kick(0);
	CHECK(run_until_used(&rx, 3));
	CHECK(frames_in_order(gpa_of, 0, 3, 12));
	close_net();

	/* The same from the loop's own thread (the READVs are cancelled and
	 * come back with the old generation). */
	open_net(OFFLOADS, NO_GSO);
	measure_loop_base();
	rx_chains(gpa_of, 16, 2048);
	send_frames(0, 12);
	kick(0);
	CHECK(run_until_used(&rx, 12));
	run_idle();
	CHECK(reads_in_flight() >= 2);
	wr(VIRTIO_MMIO_STATUS, 0);
	run_idle();
	CHECK_EQ(reads_in_flight(), 0);
	send_frames(12, 3);
	run_idle();
	CHECK_EQ(net_get_stats(n)->rx_packets, 12);
	driver_init(NO_GSO);
	rx_chains(gpa_of, 8, 2048);
	kick(0);
	CHECK(run_until_used(&rx, 3));
	CHECK(frames_in_order(gpa_of, 0, 3, 12));
	close_net();
}

/* A tap that fails under several READVs: each comes back failed, one error
 * is counted and receiving stops. */
TEST(rx_failure_with_several_reads)
{
	static uint64_t gpa_of[QNUM];

	open_net(OFFLOADS, NO_GSO);
	measure_loop_base();
	rx_chains(gpa_of, 16, 2048);
	send_frames(0, 12);
	kick(0);
	CHECK(run_until_used(&rx, 12));
	run_idle();
	CHECK(reads_in_flight() >= 2);
	shutdown(peer, SHUT_RDWR);
	run_idle();
	CHECK_EQ(reads_in_flight(), 0);
	CHECK_EQ(net_get_stats(n)->rx_errors, 1);
	kick(0);
	run_idle();
	CHECK_EQ(reads_in_flight(), 0);
	CHECK_EQ(used_idx(&rx), 12);
	close_net();
}

/* ---- options ---- */

TEST(option_parsing)
{
	struct net_opts o;
	struct err e;
	uint8_t m1[6], m2[6];

	CHECK_EQ(net_parse("tap0", &o, &e), 0);
	CHECK(!strcmp(o.tap, "tap0"));
	CHECK(!o.mac_set);
	CHECK_EQ(net_parse("tap1,mac=02:AB:cd:00:01:ff", &o, &e), 0);
	CHECK(o.mac_set);
	CHECK(!memcmp(o.mac, (const uint8_t[]){ 2, 0xab, 0xcd, 0, 1, 0xff }, 6));
	CHECK_EQ(net_parse("tap1,mac=02:ab:cd:00:01", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "invalid MAC address '02:ab:cd:00:01'");
	CHECK_EQ(net_parse("tap1,mac=02-ab-cd-00-01-ff", &o, &e), -1);
	CHECK_EQ(net_parse("tap1,mac=ff:ff:ff:ff:ff:ff", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "multicast");
	CHECK_EQ(net_parse("tap1,mac=00:00:00:00:00:00", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "all zeros");
	CHECK_EQ(net_parse("tap1,ro", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "unknown option 'ro'");
	CHECK_EQ(net_parse("", &o, &e), -1);
	CHECK_EQ(net_parse("0123456789abcdef", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "longer than 15");
	CHECK_EQ(net_parse("a b", &o, &e), -1);
	/* The default MAC: stable per name, locally administered, unicast. */
	net_default_mac("tap0", m1);
	net_default_mac("tap0", m2);
	CHECK(!memcmp(m1, m2, 6));
	CHECK_EQ(m1[0], 0x02);
	net_default_mac("tap1", m2);
	CHECK(memcmp(m1, m2, 6));
}

TEST(open_errors)
{
	struct net_opts o;
	struct err e;
	struct net *x;

	CHECK_EQ(net_parse("ember-no-such", &o, &e), 0);
	x = net_open(&o, 0, &e);
	CHECK(x == NULL);
	/* Not root: /dev/net/tun is closed; root: the tap does not exist. */
	CHECK(strstr(e.msg, "no such network interface") || strstr(e.msg, "/dev/net/tun"));
}

CHECK_MAIN(T(config_and_features), T(tx_layouts), T(tx_batch_beyond_request_slots),
	   T(tx_bad_chains_dropped), T(rx_single_buffers), T(rx_merged_buffers),
	   T(rx_multi_descriptor_chain), T(rx_backpressure_without_buffers),
	   T(rx_frames_the_driver_cannot_take), T(rx_frame_longer_than_the_buffers), T(rx_malformed_chains),
	   T(reset_with_read_in_flight), T(reset_from_vcpu_thread_waits_for_the_read),
	   T(tap_errors_are_counted), T(rx_several_reads_in_flight), T(rx_order_with_reads_waiting),
	   T(rx_backpressure_with_several_reads), T(rx_notification_only_when_out),
	   T(rx_frame_longer_than_its_read_is_copied), T(reset_with_several_reads_in_flight),
	   T(rx_failure_with_several_reads), T(option_parsing), T(open_errors))
