/* The wire protocol between the test guest's net_* tests (tests/guest/net.c)
 * and the host peer (tests/netpeer.c).  Shared by both sides: keep it
 * freestanding (stdint only) and free of host or guest headers.
 *
 * Every test frame is an Ethernet frame.  Plain frames use the private
 * ethertype 0x88b5 ("local experimental") and start with struct tgnet_msg
 * right after the 14-byte Ethernet header; the rest of the frame is a
 * pattern that both sides can recompute from (session, seq).  net_csum
 * sends IPv4/UDP to TGNET_UDP_PORT and net_tso IPv4/TCP to TGNET_TCP_PORT
 * (addresses TGNET_GUEST_IP -> TGNET_PEER_IP; nothing routes them: the
 * link is a bridge inside a private network namespace).
 *
 * All multi-byte fields of struct tgnet_msg are little-endian (both ends
 * are x86-64; the peer converts explicitly anyway).  IP/UDP/TCP headers are
 * in network byte order as usual.
 */
#ifndef TG_NETPROTO_H
#define TG_NETPROTO_H

#include <stdint.h>

#define TGNET_ETHERTYPE 0x88b5u
#define TGNET_MAGIC     0x544e4754u /* "TGNT" in memory */
/* The peer's MAC (locally administered); the guest's comes from the
 * device's config space (the runner passes the same to the VMM and to the
 * guest as testguest.mac=). */
#define TGNET_PEER_MAC  { 0x02, 0x74, 0x67, 0x00, 0x00, 0x01 }
#define TGNET_GUEST_IP  0x0a630002u /* 10.99.0.2 */
#define TGNET_PEER_IP   0x0a630001u /* 10.99.0.1 */
#define TGNET_UDP_PORT  47000u
#define TGNET_TCP_PORT  47001u
#define TGNET_SRC_PORT  40000u

/* Message types (tgnet_msg.type). */
enum {
	TGNET_DATA = 1,       /* pattern frame: seq = frame number (either way) */
	TGNET_REQ_SEND,       /* guest -> peer: send `count` DATA frames, lengths in
	                         [arg0, arg1] (tgnet_len), seq from 0, to my MAC */
	TGNET_REQ_REPORT,     /* guest -> peer: report on what you got for (test, session) */
	TGNET_REPORT,         /* peer -> guest: the report (fields below, text after) */
	TGNET_ECHO_REQ,       /* guest -> peer: send this frame back (type ECHO_REPLY,
	                         MACs swapped, everything else unchanged) */
	TGNET_ECHO_REPLY,
	TGNET_REQ_GSO,        /* guest -> peer: send one TCP/IPv4 GSO packet of arg0 payload
	                         bytes, gso_size arg1, sequence numbers from `session` */
};

/* Test ids (tgnet_msg.test): which of the peer's trackers a frame or a
 * report request is about. */
enum {
	TGNET_T_TX = 1,       /* net_tx: DATA frames from the guest */
	TGNET_T_RX,           /* net_rx */
	TGNET_T_ECHO,         /* net_echo */
	TGNET_T_CSUM,         /* net_csum: UDP datagrams from the guest */
	TGNET_T_TSO,          /* net_tso: TCP segments (after the kernel's segmentation) */
	TGNET_T_MRG,          /* net_mrg_rx */
	TGNET_T_BACKPRESSURE, /* net_rx_backpressure */
	TGNET_T_MAX
};

struct tgnet_msg {
	uint32_t magic;
	uint8_t type;
	uint8_t test;
	uint16_t flags;   /* 0 */
	uint32_t session; /* chosen by the guest per test; frames of other sessions are stale */
	uint32_t seq;
	uint32_t count;
	uint32_t arg0, arg1, arg2, arg3;
};
#define TGNET_MSG_LEN 36u
#define TGNET_HDRS    (14u + TGNET_MSG_LEN) /* Ethernet + tgnet_msg */

/* TGNET_REPORT: count = good frames/segments (distinct), arg0 = bad ones,
 * arg1 = duplicates, arg2 = payload bytes in good ones, arg3 = test-specific
 * (TSO: the largest segment's TCP payload); then a NUL-terminated text, the
 * first problem seen ("" if none). */
#define TGNET_REPORT_TEXT 160u

/* The pattern: byte k of a frame's pattern area (or of the TCP stream for
 * net_tso) seeded by `seed`.  Addressable by position so that a receiver
 * can check any slice. */
static inline uint32_t tgnet_mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}
static inline uint32_t tgnet_seed(uint32_t session, uint32_t seq)
{
	return tgnet_mix(session ^ tgnet_mix(seq + 0x51ed270bu));
}
static inline uint8_t tgnet_byte(uint32_t seed, uint32_t k)
{
	return (uint8_t)(tgnet_mix(seed ^ ((k >> 2) * 0x9e3779b9u)) >> ((k & 3) * 8));
}
static inline void tgnet_fill(uint8_t *p, uint32_t n, uint32_t seed, uint32_t k0)
{
	for (uint32_t i = 0; i < n; i++)
		p[i] = tgnet_byte(seed, k0 + i);
}
/* Index of the first byte that differs, or -1. */
static inline long tgnet_check(const uint8_t *p, uint32_t n, uint32_t seed, uint32_t k0)
{
	for (uint32_t i = 0; i < n; i++)
		if (p[i] != tgnet_byte(seed, k0 + i))
			return (long)i;
	return -1;
}

/* Frame length (Ethernet header included, no FCS) of DATA frame `seq` with
 * lengths in [min, max]: seq 0 is max, seq 1 is min, the rest spread out. */
static inline uint32_t tgnet_len(uint32_t seq, uint32_t min, uint32_t max)
{
	if (seq == 0 || max <= min)
		return max;
	if (seq == 1)
		return min;
	return min + (seq * 397u + (seq >> 3) * 13u) % (max - min + 1);
}

/* Internet checksum helpers (RFC 1071): sum 16-bit big-endian words. */
static inline uint32_t tgnet_csum_add(uint32_t sum, const uint8_t *p, uint32_t n)
{
	uint32_t i = 0;
	for (; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}
static inline uint16_t tgnet_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}
/* The IPv4 pseudo-header sum (not folded, not inverted). */
static inline uint32_t tgnet_pseudo(uint32_t saddr, uint32_t daddr, uint8_t proto, uint32_t len)
{
	return (saddr >> 16) + (saddr & 0xffff) + (daddr >> 16) + (daddr & 0xffff) + proto + len;
}

#endif
