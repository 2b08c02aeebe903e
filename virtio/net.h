/* virtio-net (virtio 1.2 §5.1) on a host tap device, serviced through the
 * event loop's io_uring ring.
 *
 * --net TAP[,mac=XX:XX:XX:XX:XX:XX], up to NET_MAX_NICS times.  ember opens
 * an existing tap through /dev/net/tun (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
 * and never creates or configures one: addresses, bridges and routes are the
 * host's business.  The default MAC is locally administered and derived from
 * the tap's name, so a guest keeps its address across boots.
 *
 * Queues: receiveq1 = 0, transmitq1 = 1 (no MQ, no control queue), up to 256
 * entries each.  Features: VERSION_1, RING_EVENT_IDX, RING_INDIRECT_DESC,
 * MAC, STATUS (link always up), MRG_RXBUF, and where the tap supports them
 * CSUM, GUEST_CSUM, HOST_TSO4/6, GUEST_TSO4/6, HOST_UFO, GUEST_UFO.  The
 * header is the 12-byte virtio_net_hdr_v1, which is also what the tap reads
 * and writes (TUNSETVNETHDRSZ 12), so it passes through unchanged: the tap
 * completes checksums and segments GSO packets the guest sends, and hands
 * the guest partial checksums and GSO packets only as far as the driver
 * negotiated (TUNSETOFFLOAD mirrors GUEST_CSUM / GUEST_TSO4 / GUEST_TSO6 /
 * GUEST_UFO).
 *
 * Transmit: each chain becomes one WRITEV on the tap whose iovecs point
 * straight into guest memory, except the header, which is copied out and
 * checked first (the guest cannot change it after the check); all chains
 * popped in one loop iteration are submitted together.
 *
 * Receive: up to NET_RX_READS READVs in flight on the tap, each
 * straight into guest buffers of its own, so one io_uring_enter submits
 * several reads and reaps several frames; frames reach the used ring in the
 * order the tap delivered them (see "How receive works" in net.c).  Reads
 * are posted only while the guest has made buffers available: without
 * any, nothing is read and frames wait in the tap's queue (the kernel drops
 * beyond its length, as a full NIC ring would) until the guest adds
 * buffers and notifies.  With MRG_RXBUF a READV spans the chains one
 * MTU-sized frame needs (a largest frame's, one READV at a time, while
 * larger frames come), the rest of a longer frame is copied on into more
 * chains, and num_buffers says how many it used; without, one chain per
 * frame and num_buffers is 1 (§5.1.6.4).  A frame larger than the buffers
 * available is dropped and counted, as is one whose header the driver did
 * not negotiate (a GSO frame left in the tap from before a reset).
 *
 * Reset: a READV in flight writes into buffers the driver owns again after
 * a reset, so a reset (vCPU thread) waits until the loop has cancelled
 * every READV and every transmit in flight has completed (bounded by
 * NET_QUIESCE_MS).
 */
#ifndef EMBER_VIRTIO_NET_H
#define EMBER_VIRTIO_NET_H

#include <net/if.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"
#include "mem.h"
#include "virtio/mmio.h"

#define NET_MAX_NICS    4
/* Offered as QueueNumMax, and Linux takes what is offered.  With 256
 * entries the guest's receive ring ran dry whenever the loop thread drained
 * it while the vCPU waited for a core (bench/net.sh, 60-byte frames host ->
 * guest: 660-770 waits for buffers per 2 s; with 1024, 66-110, as many as
 * QEMU microvm's guest, which gets 1024, notifies); the cost is the
 * guest's memory for the buffers it posts. */
#define NET_QUEUE_SIZE  1024
#define NET_QUIESCE_MS  1000
/* READVs in flight on the tap at once, each into guest buffers of its own.
 * A tap hands over one frame per read, so with one READV every received
 * frame cost an io_uring_enter (2.1-2.3 us of CPU per frame here, QEMU's
 * read(2) 1.7 us); with several, one enter submits them all and, when
 * frames are queued, reaps as many.  bench/net.sh, 60-byte frames host ->
 * guest: ~5 frames per enter with 8, 1.6-1.8 us per frame; 4 and 16 did
 * no better within this host's noise.  Each holds the guest buffers of at
 * least one frame. */
#define NET_RX_READS    8

/* Feature bits (§5.1.3). */
#define VIRTIO_NET_F_CSUM        0
#define VIRTIO_NET_F_GUEST_CSUM  1
#define VIRTIO_NET_F_MAC         5
#define VIRTIO_NET_F_GUEST_TSO4  7
#define VIRTIO_NET_F_GUEST_TSO6  8
#define VIRTIO_NET_F_GUEST_ECN   9
#define VIRTIO_NET_F_GUEST_UFO   10
#define VIRTIO_NET_F_HOST_TSO4   11
#define VIRTIO_NET_F_HOST_TSO6   12
#define VIRTIO_NET_F_HOST_ECN    13
#define VIRTIO_NET_F_HOST_UFO    14
#define VIRTIO_NET_F_MRG_RXBUF   15
#define VIRTIO_NET_F_STATUS      16

/* struct virtio_net_hdr_v1 (§5.1.6), little-endian like the host. */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
#define NET_HDR_LEN 12u
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_UDP      3
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN      0x80

/* Frame sizes (without the header): Ethernet header + VLAN tag + 1500
 * bytes of payload (Linux's GOOD_PACKET_LEN), and a GSO frame of the
 * largest IP packet. */
#define NET_FRAME_MAX     1518u
#define NET_GSO_FRAME_MAX (14u + 4u + 65535u)
#define NET_FRAME_MIN     14u    /* an Ethernet header */

#define NET_CONFIG_SIZE 12       /* mac, status, max_virtqueue_pairs, mtu */

struct net_opts {
	char tap[IFNAMSIZ];
	uint8_t mac[6];
	bool mac_set;
};

struct net_stats {
	atomic_ulong rx_packets, rx_bytes, tx_packets, tx_bytes;
	atomic_ulong rx_dropped;   /* frames larger than the buffers, or with
				    * offloads the driver did not negotiate */
	atomic_ulong rx_errors;    /* reads from the tap that failed */
	atomic_ulong tx_dropped;   /* chains the device refused (bad header or layout) */
	atomic_ulong tx_errors;    /* writes the tap refused */
	atomic_ulong bad_chains;   /* malformed chains on either queue */
	atomic_ulong rx_waits;     /* times RX stopped for want of guest buffers */
};

struct net;

/* Parse one --net value, "TAP[,mac=XX:XX:XX:XX:XX:XX]".  Fails with e naming
 * the value and what is wrong with it. */
int net_parse(const char *arg, struct net_opts *o, struct err *e);

/* The default MAC for a tap: 02:xx:xx:xx:xx:xx from a hash of its name. */
void net_default_mac(const char *tap, uint8_t mac[6]);

/* Open the existing tap o->tap (setup time, synchronous).  Fails with e
 * saying what is wrong, without the "--net TAP:" prefix the caller adds. */
struct net *net_open(const struct net_opts *o, unsigned index, struct err *e);

/* A device on an already open packet fd instead of a tap (unit tests and the
 * fuzzer: a SOCK_SEQPACKET socket whose every message is a 12-byte header
 * and a frame).  tun_offloads: the TUN_F_* flags to pretend the tap has
 * (they decide which offload features are offered); TUNSETOFFLOAD is only
 * called on a real tap.  Takes ownership of fd. */
struct net *net_open_fd(int fd, const uint8_t mac[6], unsigned tun_offloads, unsigned index,
			struct err *e);

/* Create the virtio device in virtio-mmio slot 'slot', watching its queues
 * on 'loop' (whose thread must be the calling thread; before loop_enable(),
 * as the tap and eventfds go into the ring's fixed-file table) and raising
 * 'irq'.
 * Register net_transport(n) on the MMIO bus at its base afterwards, and an
 * ioeventfd per queue. */
int net_attach(struct net *n, unsigned slot, const struct guest_mem *mem,
	       struct loop *loop, const struct virtio_irq *irq, struct err *e);

struct virtio_mmio *net_transport(struct net *n);
const struct net_stats *net_get_stats(const struct net *n);
const uint8_t *net_mac(const struct net *n);

/* Close the tap and free n.  The loop must be finished (loop_fini). */
void net_close(struct net *n);

#endif
