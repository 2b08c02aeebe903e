/* netpeer: the host end of the test guest's net_* tests (tests/guest/net.c).
 *
 *   netpeer --tap NAME [--guest-mac MAC] [--timeout SECONDS]
 *
 * Attaches to an existing tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
 * no offloads), which tests/integration/testguest-net.sh bridges to the
 * VMM's tap inside a private network namespace.  Because this tap has no
 * offloads, the kernel completes partial checksums and segments GSO
 * packets on their way here: what this program reads is what a wire would
 * carry.  It serves the in-band protocol of tests/guest/netproto.h:
 *
 *   DATA         (guest -> peer) checked: length, pattern; counted per test
 *   REQ_SEND     sends `count` DATA frames to the requester
 *   REQ_REPORT   answers REPORT with what it counted for (test, session)
 *   ECHO_REQ     sends the frame back as ECHO_REPLY
 *   REQ_GSO      sends one TCP/IPv4 GSO packet (via its own vnet header)
 *   IPv4/UDP to TGNET_UDP_PORT: checksums checked (net_csum)
 *   IPv4/TCP to TGNET_TCP_PORT: segments checked (net_tso)
 *
 * It prints "PEER ready" once attached, one line per request and per
 * problem, and exits by itself after --timeout seconds (default 60), or on
 * SIGTERM/SIGINT.  Build: cc -O2 -Wall -Wextra -Werror -o netpeer netpeer.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "guest/netproto.h"

_Static_assert(sizeof(struct tgnet_msg) == TGNET_MSG_LEN, "tgnet_msg layout");

/* struct virtio_net_hdr (the tap's default 10-byte vnet header). */
struct vhdr {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset;
};
#define VHDR_LEN 10
#define F_NEEDS_CSUM 1
#define GSO_TCPV4 1
#define BUF_MAX (VHDR_LEN + 65536 + 256)

static const uint8_t peer_mac[6] = TGNET_PEER_MAC;
static uint8_t guest_mac[6];
static bool have_guest_mac;
static int tapfd;
static volatile sig_atomic_t stop;
static unsigned long n_frames, n_foreign, n_sent;

static const char *test_name(unsigned t)
{
	static const char *const names[] = { "?", "net_tx", "net_rx", "net_echo", "net_csum", "net_tso",
					     "net_mrg_rx", "net_rx_backpressure" };
	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) { return get16(p) << 16 | get16(p + 2); }
static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v); }

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- per-test trackers ---- */

struct tracker {
	bool used;
	uint32_t session;
	uint32_t good, bad, dup, bytes, arg3, next;
	uint8_t seen[8192]; /* seq bits */
	char text[TGNET_REPORT_TEXT];
};
static struct tracker trk[TGNET_T_MAX];

static struct tracker *track(unsigned test, uint32_t session)
{
	struct tracker *t = &trk[test < TGNET_T_MAX ? test : 0];
	if (!t->used || t->session != session) {
		memset(t, 0, sizeof(*t));
		t->used = true;
		t->session = session;
	}
	return t;
}

__attribute__((format(printf, 2, 3))) static void bad(struct tracker *t, const char *fmt, ...)
{
	char buf[TGNET_REPORT_TEXT];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	t->bad++;
	if (!t->text[0])
		snprintf(t->text, sizeof(t->text), "%s", buf);
	if (t->bad <= 5)
		printf("PEER BAD %s session=0x%08x: %s\n", test_name((unsigned)(t - trk)), t->session, buf);
}

/* A good frame `seq` with `bytes` counted (duplicates separately). */
static void count(struct tracker *t, uint32_t seq, uint32_t bytes)
{
	if (seq >= sizeof(t->seen) * 8) {
		bad(t, "seq %u out of range", seq);
		return;
	}
	if (t->seen[seq / 8] & (1u << (seq % 8))) {
		t->dup++;
		return;
	}
	t->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
	t->good++;
	t->bytes += bytes;
}

/* ---- sending ---- */

/* Write one frame behind a vnet header (NULL: none); false if it failed. */
static bool send_frame(const struct vhdr *h, const uint8_t *f, size_t len)
{
	struct vhdr zero = { 0 };
	struct iovec iov[2] = { { (void *)(h ? h : &zero), VHDR_LEN }, { (void *)f, len } };
	for (int tries = 0; tries < 200; tries++) {
		ssize_t n = writev(tapfd, iov, 2);
		if (n == (ssize_t)(VHDR_LEN + len)) {
			n_sent++;
			return true;
		}
		if (n >= 0 || (errno != EAGAIN && errno != EINTR && errno != ENOBUFS)) {
			printf("PEER WARN write of a %zu-byte frame: %s\n", len, n < 0 ? strerror(errno) : "short");
			return false;
		}
		usleep(1000);
	}
	printf("PEER WARN write of a %zu-byte frame kept failing: %s\n", len, strerror(errno));
	return false;
}

static size_t msg_frame(uint8_t *f, const uint8_t *dst, uint32_t len, struct tgnet_msg m)
{
	m.magic = TGNET_MAGIC;
	memcpy(f, dst, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, TGNET_ETHERTYPE);
	memcpy(f + 14, &m, sizeof(m));
	tgnet_fill(f + TGNET_HDRS, len - TGNET_HDRS, tgnet_seed(m.session, m.seq), 0);
	return len;
}

static void send_report(const uint8_t *dst, const struct tgnet_msg *req)
{
	static uint8_t f[TGNET_HDRS + TGNET_REPORT_TEXT + 1];
	struct tracker *t = req->test < TGNET_T_MAX ? &trk[req->test] : NULL;
	struct tgnet_msg m = { .type = TGNET_REPORT, .test = req->test, .session = req->session };
	const char *text = "nothing received for this session";
	if (t && t->used && t->session == req->session) {
		m.count = t->good;
		m.arg0 = t->bad;
		m.arg1 = t->dup;
		m.arg2 = t->bytes;
		m.arg3 = t->arg3;
		text = t->text;
	}
	size_t tl = strlen(text);
	memcpy(f, dst, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, TGNET_ETHERTYPE);
	m.magic = TGNET_MAGIC;
	memcpy(f + 14, &m, sizeof(m));
	memcpy(f + TGNET_HDRS, text, tl + 1);
	size_t len = TGNET_HDRS + tl + 1;
	if (len < 60) {
		memset(f + len, 0, 60 - len);
		len = 60;
	}
	send_frame(NULL, f, len);
	printf("PEER report %s session=0x%08x good=%u bad=%u dup=%u bytes=%u arg3=%u%s%s\n",
	       test_name(req->test), req->session, m.count, m.arg0, m.arg1, m.arg2, m.arg3, tl ? ": " : "",
	       text);
}

static void send_gso(const uint8_t *dst, uint32_t session, uint32_t payload, uint32_t mss)
{
	static uint8_t f[54 + 65536];
	if (payload > 65000 || payload == 0 || mss < 64 || mss > 9000) {
		printf("PEER WARN REQ_GSO with payload %u mss %u refused\n", payload, mss);
		return;
	}
	uint32_t tcplen = 20 + payload;
	memcpy(f, dst, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14, *tcp = ip + 20;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	put16(ip + 2, 20 + tcplen);
	put16(ip + 4, 0x2000);
	put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, TGNET_PEER_IP);
	put32(ip + 16, TGNET_GUEST_IP);
	put16(ip + 10, (uint16_t)~tgnet_csum_fold(tgnet_csum_add(0, ip, 20)));
	put16(tcp, TGNET_TCP_PORT);
	put16(tcp + 2, TGNET_SRC_PORT);
	put32(tcp + 4, session);
	put32(tcp + 8, session);
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;
	put16(tcp + 14, 65535);
	put16(tcp + 16, tgnet_csum_fold(tgnet_pseudo(TGNET_PEER_IP, TGNET_GUEST_IP, 6, tcplen)));
	tgnet_fill(tcp + 20, payload, tgnet_seed(session, 0), 0);
	struct vhdr h = { .flags = F_NEEDS_CSUM, .gso_type = GSO_TCPV4, .hdr_len = 54, .gso_size = (uint16_t)mss,
			  .csum_start = 34, .csum_offset = 16 };
	send_frame(&h, f, 54 + payload);
	printf("PEER gso session=0x%08x payload=%u mss=%u\n", session, payload, mss);
}

/* ---- receiving ---- */

static void on_msg(const struct vhdr *vh, uint8_t *f, size_t len)
{
	(void)vh;
	struct tgnet_msg m;
	if (len < TGNET_HDRS)
		return;
	memcpy(&m, f + 14, sizeof(m));
	if (m.magic != TGNET_MAGIC) {
		printf("PEER WARN a 0x88b5 frame without the tgnet magic\n");
		return;
	}
	const uint8_t *src = f + 6;
	switch (m.type) {
	case TGNET_DATA: {
		struct tracker *t = track(m.test, m.session);
		uint32_t want = tgnet_len(m.seq, m.arg0, m.arg1);
		long b;
		if (m.arg0 < TGNET_HDRS || m.arg1 > 65535 || m.seq >= m.count)
			bad(t, "DATA seq %u: bad parameters (count %u, lengths %u..%u)", m.seq, m.count, m.arg0, m.arg1);
		else if (memcmp(f, peer_mac, 6))
			bad(t, "DATA seq %u not sent to the peer's MAC", m.seq);
		else if (len != want)
			bad(t, "DATA seq %u: %zu bytes arrived, %u sent", m.seq, len, want);
		else if ((b = tgnet_check(f + TGNET_HDRS, (uint32_t)len - TGNET_HDRS, tgnet_seed(m.session, m.seq), 0)) >= 0)
			bad(t, "DATA seq %u (%zu bytes): byte %ld differs", m.seq, len, b + (long)TGNET_HDRS);
		else
			count(t, m.seq, (uint32_t)len);
		break;
	}
	case TGNET_REQ_SEND: {
		static uint8_t out[65536];
		uint32_t n = m.count, lmin = m.arg0, lmax = m.arg1;
		if (n > 65536 || lmin < TGNET_HDRS || lmax > sizeof(out) || lmin > lmax) {
			printf("PEER WARN REQ_SEND count %u lengths %u..%u refused\n", n, lmin, lmax);
			break;
		}
		for (uint32_t seq = 0; seq < n; seq++) {
			uint32_t l = tgnet_len(seq, lmin, lmax);
			msg_frame(out, src, l, (struct tgnet_msg){ .type = TGNET_DATA, .test = m.test, .session = m.session,
								   .seq = seq, .count = n, .arg0 = lmin, .arg1 = lmax });
			if (!send_frame(NULL, out, l) || stop)
				break;
		}
		printf("PEER sent %s session=0x%08x count=%u lengths=%u..%u\n", test_name(m.test), m.session, n, lmin,
		       lmax);
		break;
	}
	case TGNET_REQ_REPORT:
		send_report(src, &m);
		break;
	case TGNET_ECHO_REQ: {
		uint8_t tmp[6];
		memcpy(tmp, f, 6);
		memcpy(f, f + 6, 6);
		memcpy(f + 6, tmp, 6);
		f[14 + 4] = TGNET_ECHO_REPLY; /* tgnet_msg.type */
		send_frame(NULL, f, len);
		break;
	}
	case TGNET_REQ_GSO:
		send_gso(src, m.session, m.arg0, m.arg1);
		break;
	default:
		printf("PEER WARN tgnet frame of unknown type %u\n", m.type);
	}
}

static void on_udp(const struct vhdr *vh, size_t flen, const uint8_t *ip, uint32_t iplen)
{
	const uint8_t *u = ip + 20;
	uint32_t ulen = get16(u + 4);
	struct tgnet_msg m = { 0 };
	if (iplen >= 28 + TGNET_MSG_LEN)
		memcpy(&m, u + 8, sizeof(m));
	if (m.magic != TGNET_MAGIC) {
		/* Not attributable to a session: charge the current one. */
		bad(&trk[TGNET_T_CSUM], "a UDP datagram of %u bytes without a tgnet header", iplen - 20);
		return;
	}
	struct tracker *t = track(TGNET_T_CSUM, m.session);
	if (ulen != iplen - 20) {
		bad(t, "datagram %u: UDP length %u in an IP packet of %u", m.seq, ulen, iplen);
		return;
	}
	uint32_t field = get16(u + 6), pseudo = tgnet_pseudo(TGNET_GUEST_IP, TGNET_PEER_IP, 17, ulen);
	uint32_t payload = ulen - 8;
	if (vh->flags & F_NEEDS_CSUM) {
		bad(t, "datagram %u reached the peer with NEEDS_CSUM (checksum not completed)", m.seq);
		return;
	}
	if (tgnet_csum_fold(tgnet_csum_add(pseudo, u, ulen)) != 0xffff) {
		/* What it should have been, for the message. */
		uint8_t tmp[8];
		memcpy(tmp, u, 8);
		tmp[6] = tmp[7] = 0;
		uint32_t s = tgnet_csum_add(tgnet_csum_add(pseudo, tmp, 8), u + 8, payload);
		bad(t, "datagram %u (%u bytes of payload): UDP checksum 0x%04x, correct 0x%04x", m.seq, payload, field,
		    (uint16_t)~tgnet_csum_fold(s));
		return;
	}
	if (field == 0) {
		bad(t, "datagram %u: UDP checksum 0 (none)", m.seq);
		return;
	}
	long b = tgnet_check(u + 8 + TGNET_MSG_LEN, payload - TGNET_MSG_LEN, tgnet_seed(m.session, m.seq), 0);
	if (payload != m.arg0 || b >= 0) {
		bad(t, "datagram %u: %u bytes of payload (sent %u), byte %ld differs", m.seq, payload, m.arg0, b);
		return;
	}
	count(t, m.seq, (uint32_t)flen);
}

static void on_tcp(const struct vhdr *vh, size_t flen, const uint8_t *ip, uint32_t iplen)
{
	const uint8_t *tcp = ip + 20;
	uint32_t session = get32(tcp + 8);
	struct tracker *t = track(TGNET_T_TSO, session);
	if ((tcp[12] >> 4) != 5 || iplen < 40) {
		bad(t, "TCP header length %u", (tcp[12] >> 4) * 4u);
		return;
	}
	uint32_t pl = iplen - 40, off = get32(tcp + 4) - session;
	if (vh->flags & F_NEEDS_CSUM) {
		bad(t, "segment at %u reached the peer with NEEDS_CSUM", off);
		return;
	}
	if (vh->gso_type) {
		bad(t, "an unsegmented GSO packet (%zu bytes) reached the peer", flen);
		return;
	}
	if (flen > 1514) {
		bad(t, "segment at %u: a %zu-byte frame (larger than the MTU)", off, flen);
		return;
	}
	uint32_t pseudo = tgnet_pseudo(TGNET_GUEST_IP, TGNET_PEER_IP, 6, iplen - 20);
	if (tgnet_csum_fold(tgnet_csum_add(pseudo, tcp, iplen - 20)) != 0xffff) {
		bad(t, "segment at %u (%u bytes): TCP checksum 0x%04x wrong", off, pl, get16(tcp + 16));
		return;
	}
	if (off != t->next) {
		bad(t, "segment at offset %u, expected %u", off, t->next);
		t->next = off + pl;
		return;
	}
	long b = tgnet_check(tcp + 20, pl, tgnet_seed(session, 0), off);
	if (b >= 0) {
		bad(t, "segment at %u: stream byte %ld differs", off, (long)off + b);
		return;
	}
	t->good++;
	t->bytes += pl;
	t->next += pl;
	if (pl > t->arg3)
		t->arg3 = pl;
}

static void on_ipv4(const struct vhdr *vh, const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + 14;
	if (len < 14 + 20 || ip[0] != 0x45 || get32(ip + 16) != TGNET_PEER_IP)
		return;
	uint32_t iplen = get16(ip + 2), proto = ip[9];
	bool udp = proto == 17 && iplen >= 28 && get16(ip + 22) == TGNET_UDP_PORT;
	bool tcp = proto == 6 && iplen >= 40 && get16(ip + 22) == TGNET_TCP_PORT;
	if (!udp && !tcp)
		return;
	struct tracker *t = udp ? &trk[TGNET_T_CSUM] : &trk[TGNET_T_TSO];
	if (14 + iplen > len) {
		bad(t, "IP length %u in a %zu-byte frame", iplen, len);
		return;
	}
	if (tgnet_csum_fold(tgnet_csum_add(0, ip, 20)) != 0xffff) {
		bad(t, "IP header checksum 0x%04x wrong", get16(ip + 10));
		return;
	}
	if (udp)
		on_udp(vh, 14 + iplen, ip, iplen);
	else
		on_tcp(vh, 14 + iplen, ip, iplen);
}

static void on_frame(uint8_t *buf, size_t n)
{
	if (n < VHDR_LEN + 14)
		return;
	struct vhdr vh;
	memcpy(&vh, buf, VHDR_LEN);
	uint8_t *f = buf + VHDR_LEN;
	size_t len = n - VHDR_LEN;
	n_frames++;
	if (have_guest_mac && memcmp(f + 6, guest_mac, 6)) {
		n_foreign++; /* not from the guest: ignored */
		return;
	}
	switch (get16(f + 12)) {
	case TGNET_ETHERTYPE:
		on_msg(&vh, f, len);
		break;
	case 0x0800:
		on_ipv4(&vh, f, len);
		break;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
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

static void usage(void)
{
	fprintf(stderr, "usage: netpeer --tap NAME [--guest-mac MAC] [--timeout SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *tap = NULL;
	double timeout = 60;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tap") && i + 1 < argc)
			tap = argv[++i];
		else if (!strcmp(argv[i], "--guest-mac") && i + 1 < argc) {
			if (!parse_mac(argv[++i], guest_mac))
				usage();
			have_guest_mac = true;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atof(argv[++i]);
		else
			usage();
	}
	if (!tap || strlen(tap) >= IFNAMSIZ || timeout <= 0)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);

	tapfd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tapfd < 0) {
		printf("PEER FATAL /dev/net/tun: %s\n", strerror(errno));
		return 1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	int hsz = VHDR_LEN;
	if (ioctl(tapfd, TUNSETIFF, &ifr) || ioctl(tapfd, TUNSETVNETHDRSZ, &hsz) ||
	    ioctl(tapfd, TUNSETOFFLOAD, 0UL)) {
		printf("PEER FATAL tap %s: %s\n", tap, strerror(errno));
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("PEER ready pid=%d tap=%s timeout=%.0fs\n", (int)getpid(), tap, timeout);

	static uint8_t buf[BUF_MAX];
	uint64_t deadline = now_ms() + (uint64_t)(timeout * 1000);
	const char *why = "timeout";
	while (!stop) {
		uint64_t now = now_ms();
		if (now >= deadline)
			break;
		struct pollfd p = { tapfd, POLLIN, 0 };
		int r = poll(&p, 1, (int)(deadline - now < 200 ? deadline - now : 200));
		if (r < 0 && errno != EINTR) {
			printf("PEER FATAL poll: %s\n", strerror(errno));
			return 1;
		}
		/* Bounded batch per wake-up so the deadline is honoured. */
		for (int k = 0; r > 0 && k < 4096 && !stop; k++) {
			ssize_t n = read(tapfd, buf, sizeof(buf));
			if (n < 0) {
				if (errno != EAGAIN && errno != EINTR) {
					printf("PEER FATAL read: %s\n", strerror(errno));
					return 1;
				}
				break;
			}
			on_frame(buf, (size_t)n);
		}
	}
	if (stop)
		why = "signal";
	printf("PEER exit (%s): %lu frames in (%lu not from the guest), %lu out\n", why, n_frames, n_foreign,
	       n_sent);
	return 0;
}
