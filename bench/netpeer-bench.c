/* netpeer-bench: the host end of the net benchmark (bench/net.sh).
 *
 *   netpeer-bench --if NAME --send LEN --dst MAC [--tun] [--timeout S]
 *   netpeer-bench --if NAME --recv LEN [--tun] [--timeout S]
 *
 * Without --tun it is the peer on the host side of a tap: a raw AF_PACKET
 * socket bound to interface NAME (the tap's network-interface end, inside
 * the benchmark's network namespace), so what it sends goes out through
 * the tap to the VMM holding the tap's file descriptor, and what the VMM
 * writes arrives here.  --send: LEN-byte frames to MAC, batches of 64 with
 * sendmmsg, the qdisc bypassed (PACKET_QDISC_BYPASS), as fast as the
 * kernel takes them.  A tap never pushes back: a frame its queue cannot
 * hold is dropped (the interface's tx_dropped), and sendmmsg ends its batch
 * there with ENOBUFS, so frames= counts only the frames the tap queued
 * for its reader, and the attempts refused show as if_tx_dropped.  --recv:
 * counts the benchmark's frames (ethertype 0x88b6, LEN bytes) in a
 * TPACKET_V3 receive ring of 64 MiB: the kernel copies each frame into it
 * in the sender's context (the VMM's write to the tap), so this process
 * only walks block headers and cannot fall behind for want of CPU (the
 * host has 2 cores, one taken by the polling vCPU); the ring's drops come
 * from PACKET_STATISTICS.
 *
 * With --tun it stands in for the VMM instead, for the host-only baseline:
 * it attaches to tap NAME through /dev/net/tun (IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, a 12-byte header, as ember does) and writes (--send) or
 * reads (--recv) one frame per system call, the least a VMM without vhost
 * does per frame.
 *
 * Control on stdin, one word per line: "go" starts sending / counting
 * (answered "PEER go"); "stop" (or end of input) ends it and prints
 *
 *   PEER result mode=send|recv frames=N bytes=N us=N fps=N mbps=N cpu_us=N
 *        drops=N if_tx_dropped=N if_rx_dropped=N
 *
 * us is the time from go to stop, cpu_us this process's user + system
 * time in it, drops the socket's (recv without --tun), if_* the
 * interface's counters over it (/sys/class/net/NAME/statistics; a frame
 * the tap could not queue for its reader is tx_dropped).  "PEER ready" is
 * printed once set up.  Exits 0 after stop, 1 on a setup or I/O error
 * (one "PEER FATAL" line), after --timeout seconds (default 120) without
 * a stop.  Build: cc -O2 -Wall -Wextra -Werror -o netpeer-bench netpeer-bench.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_ETHERTYPE 0x88b6
#define BENCH_MAGIC     0x4e424d45u /* "EMBN" in memory, as tests/guest/bench_net.c */
#define VHDR_LEN        12
#define BATCH           64
#define FRAME_MAX       2048
#define RING_BLOCK      (1u << 20)
#define RING_BLOCKS     64u

static const char *ifname;
static bool tun, do_send;
static unsigned len;
static uint8_t dst[6];
static int fd;
static uint8_t *ring; /* TPACKET_V3 receive ring (recv without --tun) */

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static unsigned long long if_stat(const char *name)
{
	char path[128];
	unsigned long long v = 0;
	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, name);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

__attribute__((noreturn)) static void fatal(const char *what)
{
	printf("PEER FATAL %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: netpeer-bench --if NAME (--send LEN --dst MAC | --recv LEN) [--tun] [--timeout S]\n");
	exit(2);
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;
	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return false;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return false;
		mac[i] = (uint8_t)v[i];
	}
	return true;
}

static void open_endpoint(void)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (tun) {
		int hsz = VHDR_LEN;
		if ((fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
			fatal("/dev/net/tun");
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
		if (ioctl(fd, TUNSETIFF, &ifr) || ioctl(fd, TUNSETVNETHDRSZ, &hsz) || ioctl(fd, TUNSETOFFLOAD, 0UL))
			fatal(ifname);
		return;
	}
	/* Sending: protocol 0, so nothing is queued to this socket. */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, do_send ? 0 : htons(BENCH_ETHERTYPE));
	if (fd < 0)
		fatal("AF_PACKET socket");
	if (ioctl(fd, SIOCGIFINDEX, &ifr))
		fatal(ifname);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = ifr.ifr_ifindex,
				   .sll_protocol = do_send ? 0 : htons(BENCH_ETHERTYPE) };
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)))
		fatal("bind");
	int one = 1, buf = 16 << 20;
	if (do_send) {
		if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
			fatal("PACKET_QDISC_BYPASS");
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)))
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
		return;
	}
	int v = TPACKET_V3;
	struct tpacket_req3 req = { .tp_block_size = RING_BLOCK, .tp_block_nr = RING_BLOCKS,
				    .tp_frame_size = FRAME_MAX, .tp_frame_nr = RING_BLOCK / FRAME_MAX * RING_BLOCKS,
				    .tp_retire_blk_tov = 10 /* ms: a part-filled block is handed over */ };
	if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)))
		fatal("PACKET_RX_RING");
	ring = mmap(NULL, (size_t)RING_BLOCK * RING_BLOCKS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (ring == MAP_FAILED)
		fatal("mmap of the receive ring");
}

/* Count the frames of every block the kernel has handed over, and give the
 * blocks back.  Returns how many blocks were ready. */
static unsigned ring_walk(bool count, uint64_t *frames, uint64_t *bytes)
{
	static unsigned cur;
	unsigned n = 0;
	for (;;) {
		struct tpacket_block_desc *bd = (void *)(ring + (size_t)cur * RING_BLOCK);
		if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
			return n;
		struct tpacket3_hdr *h = (void *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
		for (uint32_t i = 0; count && i < bd->hdr.bh1.num_pkts; i++) {
			const uint8_t *g = (const uint8_t *)h + h->tp_mac;
			uint32_t m;
			memcpy(&m, g + 14, 4);
			if (h->tp_snaplen == len && g[12] == (BENCH_ETHERTYPE >> 8) &&
			    g[13] == (BENCH_ETHERTYPE & 0xff) && m == BENCH_MAGIC) {
				(*frames)++;
				*bytes += len;
			}
			h = (void *)((uint8_t *)h + h->tp_next_offset);
		}
		__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		cur = (cur + 1) % RING_BLOCKS;
		n++;
	}
}

/* A command on stdin: 1 go, 2 stop (or end of input), 0 nothing yet.
 * read(2), not stdio: poll() must see every line that is not consumed. */
static int command(bool wait)
{
	static char line[64];
	static size_t have;
	struct pollfd p = { 0, POLLIN, 0 };
	for (;;) {
		char *nl = memchr(line, '\n', have);
		if (nl) {
			int c = !strncmp(line, "go", 2) ? 1 : !strncmp(line, "stop", 4) ? 2 : 0;
			have -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, have);
			if (c)
				return c;
			continue;
		}
		if (have == sizeof(line))
			have = 0; /* an overlong line: dropped */
		if (poll(&p, 1, wait ? 100 : 0) <= 0)
			return 0;
		ssize_t n = read(0, line + have, sizeof(line) - have);
		if (n <= 0)
			return 2;
		have += (size_t)n;
	}
}

int main(int argc, char **argv)
{
	double timeout = 120;
	bool have_dst = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--if") && i + 1 < argc)
			ifname = argv[++i];
		else if ((!strcmp(argv[i], "--send") || !strcmp(argv[i], "--recv")) && i + 1 < argc) {
			do_send = argv[i][2] == 's';
			len = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--dst") && i + 1 < argc) {
			if (!parse_mac(argv[++i], dst))
				usage();
			have_dst = true;
		} else if (!strcmp(argv[i], "--tun"))
			tun = true;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atof(argv[++i]);
		else
			usage();
	}
	if (!ifname || strlen(ifname) >= IFNAMSIZ || len < 60 || len > 1514 || timeout <= 0 ||
	    (do_send && !tun && !have_dst))
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	open_endpoint();

	/* The frame (behind a zero virtio-net header for --tun). */
	static uint8_t frame[VHDR_LEN + FRAME_MAX];
	uint8_t *f = tun ? frame + VHDR_LEN : frame;
	static const uint8_t src[6] = { 0x02, 0x74, 0x67, 0x00, 0x00, 0x01 };
	uint32_t magic = BENCH_MAGIC;
	memcpy(f, have_dst ? dst : (const uint8_t[6]){ 0x02, 0x74, 0x67, 0x00, 0x00, 0x01 }, 6);
	memcpy(f + 6, tun ? (const uint8_t[6]){ 0x02, 0x74, 0x67, 0x00, 0x00, 0x02 } : src, 6);
	f[12] = BENCH_ETHERTYPE >> 8;
	f[13] = BENCH_ETHERTYPE & 0xff;
	memcpy(f + 14, &magic, 4);
	for (unsigned k = 18; k < len; k++)
		f[k] = (uint8_t)(k * 7u);
	size_t wlen = (tun ? VHDR_LEN : 0) + len;

	static struct mmsghdr msgs[BATCH];
	static struct iovec iov;
	static uint8_t rbuf[1][VHDR_LEN + FRAME_MAX];
	iov = (struct iovec){ frame, wlen };
	for (int i = 0; i < BATCH; i++)
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1 };

	printf("PEER ready pid=%d if=%s mode=%s%s len=%u\n", (int)getpid(), ifname, do_send ? "send" : "recv",
	       tun ? " tun" : "", len);
	uint64_t deadline = now_us() + (uint64_t)(timeout * 1e6);
	int c;
	while ((c = command(true)) != 1) {
		if (c == 2 || now_us() >= deadline)
			return c == 2 ? 0 : 1;
	}
	/* Frames queued before "go" are not counted. */
	uint64_t frames = 0, bytes = 0;
	if (!do_send && tun)
		while (read(fd, rbuf[0], sizeof(rbuf[0])) > 0)
			;
	if (!do_send && !tun)
		ring_walk(false, &frames, &bytes);
	struct tpacket_stats st;
	socklen_t sl = sizeof(st);
	if (!tun && !do_send)
		getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl); /* read and reset */
	unsigned long long txd0 = if_stat("tx_dropped"), rxd0 = if_stat("rx_dropped");
	uint64_t t0 = now_us(), c0 = cpu_us(), iter = 0;
	printf("PEER go\n");
	for (;;) {
		if (!(++iter & 63) && (command(false) == 2 || now_us() >= deadline))
			break;
		if (do_send) {
			int n = tun ? (int)(write(fd, frame, wlen) == (ssize_t)wlen) : sendmmsg(fd, msgs, BATCH, 0);
			if (n > 0) {
				frames += (uint64_t)n;
				bytes += (uint64_t)n * len;
			} else if (n < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
				fatal("send");
			} else if (n < 0) {
				struct pollfd p = { fd, POLLOUT, 0 };
				poll(&p, 1, 10);
			}
			continue;
		}
		if (!tun) {
			if (!ring_walk(true, &frames, &bytes)) {
				struct pollfd p[2] = { { fd, POLLIN, 0 }, { 0, POLLIN, 0 } };
				poll(p, 2, 100);
				iter |= 63; /* look at stdin next */
			}
			continue;
		}
		ssize_t r = read(fd, rbuf[0], sizeof(rbuf[0]));
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				fatal("read from the tap");
			struct pollfd p[2] = { { fd, POLLIN, 0 }, { 0, POLLIN, 0 } };
			poll(p, 2, 100);
			iter |= 63;
			continue;
		}
		const uint8_t *g = rbuf[0] + VHDR_LEN;
		uint32_t m;
		memcpy(&m, g + 14, 4);
		if ((size_t)r == VHDR_LEN + len && g[12] == (BENCH_ETHERTYPE >> 8) &&
		    g[13] == (BENCH_ETHERTYPE & 0xff) && m == BENCH_MAGIC) {
			frames++;
			bytes += len;
		}
	}
	/* What the ring still holds arrived before the stop. */
	if (!do_send && !tun)
		while (ring_walk(true, &frames, &bytes))
			;
	uint64_t us = now_us() - t0, cpu = cpu_us() - c0;
	unsigned long long drops = 0;
	sl = sizeof(st);
	if (!tun && !do_send && !getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl))
		drops = st.tp_drops;
	if (!us)
		us = 1;
	printf("PEER result mode=%s frames=%llu bytes=%llu us=%llu fps=%llu mbps=%llu cpu_us=%llu drops=%llu "
	       "if_tx_dropped=%llu if_rx_dropped=%llu\n",
	       do_send ? "send" : "recv", (unsigned long long)frames, (unsigned long long)bytes,
	       (unsigned long long)us, (unsigned long long)(frames * 1000000 / us),
	       (unsigned long long)(bytes * 8 / us), (unsigned long long)cpu, drops,
	       if_stat("tx_dropped") - txd0, if_stat("rx_dropped") - rxd0);
	return 0;
}
