/* virtio-net device model on a tap: see net.h.  Section numbers are
 * virtio 1.2. */
#include "virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RXQ 0
#define TXQ 1

/* Transmit requests in flight at once (each one WRITEV).  Tap writes
 * complete when they are submitted, so this only bounds one loop
 * iteration's batch; more chains wait in the ring until slots free up. */
#define NET_TX_REQS 64
/* Chains one READV holds, and their iovecs.  A chain has at most
 * VQ_CHAIN_MAX buffers; no more chains are taken once fewer than that many
 * iovecs are left.  256 chains of the smallest useful buffer hold a 64 KiB
 * frame several times over. */
#define NET_RX_CHAINS 256
#define NET_RX_IOVS   (4 * VQ_CHAIN_MAX)
/* No frame from the tap is longer: the part of a receive chain beyond this
 * is never used (and keeps every length within 32 bits). */
#define NET_RX_CHAIN_CAP (NET_HDR_LEN + NET_GSO_FRAME_MAX)
/* Room after a READV's guest buffers for the rest of the longest frame. */
#define NET_RX_SPILL (NET_HDR_LEN + NET_GSO_FRAME_MAX)
/* A reset checks this often whether the VM is ending while it waits. */
#define NET_QUIESCE_SLICE_MS 20

struct net_tx_req {
	struct loop_op op;         /* first: the SQE's user_data */
	struct net *n;
	struct net_tx_req *next_free;
	uint32_t gen;              /* transmit queue generation when popped */
	uint16_t head;
	unsigned niov;
	struct virtio_net_hdr hdr; /* the header as checked, handed to the tap */
	struct iovec iov[VQ_CHAIN_MAX + 1];
};

/* A receive chain held by the device. */
struct net_rx_chain {
	uint16_t head;
	uint16_t niov;             /* its iovecs, after those of the chains before it */
	uint32_t cap;
};

/* One READV on the tap and the receive chains it reads into, in the order
 * they were taken: their iovecs are iov[0..niov), and the READV's last
 * iovec is spill (see rx_post()).  Chains a frame did not fill stay with
 * the slot for its next READV. */
struct net_rx_read {
	struct loop_op op;         /* first: the SQE's user_data */
	struct net *n;
	bool inflight;
	uint32_t gen;              /* receive queue generation when posted */
	unsigned nchains, niov;
	uint64_t cap;              /* bytes the chains hold */
	struct net_rx_chain chain[NET_RX_CHAINS];
	struct iovec iov[NET_RX_IOVS + 1];
	/* Last, so that its pages are touched only by a frame longer than
	 * the chains (the array is large enough that calloc maps it fresh). */
	uint8_t spill[NET_RX_SPILL];
};

struct net {
	struct net_opts opts;
	unsigned index;
	char name[24];             /* "virtio-net<N>" */
	int fd;                    /* the tap (or a test's packet socket) */
	int file;                  /* its index in the loop's fixed-file table */
	bool is_tap;
	unsigned tun_offloads;     /* TUN_F_* the tap accepts */
	unsigned offloads_now;     /* TUN_F_* set on the tap */
	bool offloads_stale;       /* features changed since they were set */
	uint8_t config[NET_CONFIG_SIZE];

	struct virtio_mmio t;
	struct loop *loop;
	pthread_t loop_thread;
	struct loop_hook hook;
	struct vq_chain chain;     /* scratch for vq_pop */

	/* Receive (see rx_fill()). */
	struct net_rx_read *rx;    /* NET_RX_READS slots */
	unsigned rx_inflight;      /* READVs in flight, of any generation */
	unsigned rx_frames;        /* READVs that brought a frame since the last batch */
	bool rx_completed;         /* a READV came back since the last batch */
	bool rx_big;               /* frames beyond NET_RX_SMALL are expected */
	unsigned rx_small_run;     /* frames in a row within NET_RX_SMALL */
	bool rx_waiting;           /* stopped for want of buffers */
	bool rx_stopped;           /* the tap failed: no more reads */
	bool rx_dirty;

	/* Transmit. */
	struct net_tx_req *tx_reqs, *tx_free;
	unsigned tx_inflight;
	bool tx_dirty, tx_starved;

	/* Reset while tap I/O is in flight (see quiesce()). */
	pthread_cond_t idle;
	bool rx_quiesce, tx_quiesce;
	int quiesce_fd;            /* eventfd: the loop cancels tap I/O */
	struct loop_efd quiesce_watch;
	struct loop_op cancel_op;

	atomic_flag host_logged;   /* one log line for tap problems */
	struct net_stats stats;
};

/* ---- options ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "XX:XX:XX:XX:XX:XX", exactly. */
static bool parse_mac(const char *s, size_t len, uint8_t mac[6])
{
	if (len != 17)
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

int net_parse(const char *arg, struct net_opts *o, struct err *e)
{
	const char *p = strchr(arg, ',');
	size_t nlen = p ? (size_t)(p - arg) : strlen(arg);

	memset(o, 0, sizeof(*o));
	if (nlen == 0)
		return err_set(e, "--net '%s': needs a tap name before the options", arg);
	if (nlen >= IFNAMSIZ)
		return err_set(e, "--net %.*s: interface name longer than %d characters", (int)nlen,
			       arg, IFNAMSIZ - 1);
	/* Linux's dev_valid_name(): no '/', ':' or white space, not "." or "..". */
	for (size_t i = 0; i < nlen; i++)
		if (arg[i] == '/' || arg[i] == ':' || arg[i] <= ' ' || arg[i] > '~')
			return err_set(e, "--net '%.*s': not a valid interface name", (int)nlen, arg);
	if ((nlen == 1 && arg[0] == '.') || (nlen == 2 && arg[0] == '.' && arg[1] == '.'))
		return err_set(e, "--net '%.*s': not a valid interface name", (int)nlen, arg);
	memcpy(o->tap, arg, nlen);
	o->tap[nlen] = 0;
	while (p) {
		const char *opt = p + 1, *end = strchr(opt, ',');
		size_t n = end ? (size_t)(end - opt) : strlen(opt);

		if (n >= 4 && !strncmp(opt, "mac=", 4)) {
			if (o->mac_set)
				return err_set(e, "--net %s: mac= given twice", o->tap);
			if (!parse_mac(opt + 4, n - 4, o->mac))
				return err_set(e, "--net %s: invalid MAC address '%.*s' (expected six "
					       "hex bytes like 02:00:00:00:00:01)", o->tap,
					       (int)(n - 4), opt + 4);
			if (o->mac[0] & 1)
				return err_set(e, "--net %s: MAC address %.*s is a multicast address "
					       "(the first byte must be even)", o->tap, (int)(n - 4),
					       opt + 4);
			if (!(o->mac[0] | o->mac[1] | o->mac[2] | o->mac[3] | o->mac[4] | o->mac[5]))
				return err_set(e, "--net %s: MAC address %.*s is all zeros", o->tap,
					       (int)(n - 4), opt + 4);
			o->mac_set = true;
		} else {
			return err_set(e, "--net %s: unknown option '%.*s' (expected "
				       "mac=XX:XX:XX:XX:XX:XX)", o->tap, (int)n, opt);
		}
		p = end;
	}
	return 0;
}

void net_default_mac(const char *tap, uint8_t mac[6])
{
	uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a */

	for (const char *s = tap; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	/* 02: locally administered (bit 1), unicast (bit 0 clear). */
	mac[0] = 0x02;
	for (int i = 1; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * i));
}

/* ---- opening ---- */

static struct net *net_new(unsigned index, const uint8_t mac[6], struct err *e)
{
	struct net *n = calloc(1, sizeof(*n));
	pthread_condattr_t ca;

	if (!n) {
		err_set(e, "out of memory");
		return NULL;
	}
	n->index = index;
	n->fd = n->quiesce_fd = -1;
	snprintf(n->name, sizeof(n->name), "virtio-net%u", index);
	memcpy(n->opts.mac, mac, 6);
	atomic_flag_clear(&n->host_logged);
	/* The reset waits on it with a deadline: on the monotonic clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->idle, &ca);
	pthread_condattr_destroy(&ca);
	return n;
}

/* TUNSETIFF, waiting up to NET_BUSY_WAIT_MS while the tap is busy (EBUSY).
 * The kernel frees an io_uring ring asynchronously, some tens of
 * milliseconds after its process is gone, and an ember that was killed
 * (SIGKILL) keeps its tap attached through the ring's fixed-file table
 * until then: a VM restarted at once on the same tap would be refused.  A
 * tap another live process reads stays busy, and is reported as such after
 * the wait. */
#define NET_BUSY_WAIT_MS 500

static int tun_attach(int fd, struct ifreq *ifr)
{
	struct ifreq want = *ifr;

	for (int waited = 0;; waited += 5) {
		if (ioctl(fd, TUNSETIFF, ifr) == 0)
			return 0;
		if (errno != EBUSY || waited >= NET_BUSY_WAIT_MS)
			return -1;
		*ifr = want;
		usleep(5000);
	}
}

/* TUN_F_* the tap accepts, tried one at a time the way TUNSETOFFLOAD
 * rejects (EINVAL) what it does not know; TSO and UFO need CSUM. */
static unsigned probe_offloads(int fd)
{
	static const unsigned extra[] = { TUN_F_TSO4, TUN_F_TSO6, TUN_F_UFO };
	unsigned ok = 0;

	if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM) == 0) {
		ok = TUN_F_CSUM;
		for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
			if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | extra[i]) == 0)
				ok |= extra[i];
	}
	(void)ioctl(fd, TUNSETOFFLOAD, 0);
	return ok;
}

struct net *net_open(const struct net_opts *o, unsigned index, struct err *e)
{
	uint8_t mac[6];
	struct net *n;
	struct ifreq ifr;
	unsigned features = 0;
	int hdr = NET_HDR_LEN;

	if (o->mac_set)
		memcpy(mac, o->mac, 6);
	else
		net_default_mac(o->tap, mac);
	n = net_new(index, mac, e);
	if (!n)
		return NULL;
	memcpy(n->opts.tap, o->tap, sizeof(n->opts.tap));
	n->opts.mac_set = o->mac_set;
	n->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->fd < 0) {
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			err_errno(e, "/dev/net/tun (is the tun module loaded? modprobe tun)");
		else if (errno == EACCES || errno == EPERM)
			err_set(e, "/dev/net/tun: permission denied (run as root, or give ember's "
				"user access to /dev/net/tun)");
		else
			err_errno(e, "/dev/net/tun");
		goto fail;
	}
	if (ioctl(n->fd, TUNGETFEATURES, &features) == 0 && !(features & IFF_VNET_HDR)) {
		err_set(e, "the kernel's tun driver lacks IFF_VNET_HDR (virtio-net headers), "
			"which ember needs");
		goto fail;
	}
	if (if_nametoindex(o->tap) == 0) {
		err_set(e, "no such network interface (create the tap first: ip tuntap add dev %s "
			"mode tap)", o->tap);
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, o->tap, sizeof(ifr.ifr_name));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (tun_attach(n->fd, &ifr) < 0) {
		if (errno == EPERM)
			err_set(e, "permission denied: the tap belongs to another user (create it "
				"with ip tuntap add dev %s mode tap user USER, or run as root)",
				o->tap);
		else if (errno == EINVAL)
			err_set(e, "not a tap device, or a multi-queue one (ember attaches to a "
				"single-queue tap: ip tuntap add dev NAME mode tap)");
		else if (errno == EBUSY)
			err_set(e, "in use by another process (a tap has one reader)");
		else
			err_errno(e, "TUNSETIFF");
		goto fail;
	}
	/* The interface vanished between the check and TUNSETIFF, and
	 * TUNSETIFF created a new one: a tap that exists without ember is
	 * persistent, or attached to another process (EBUSY above). */
	if (ioctl(n->fd, TUNGETIFF, &ifr) < 0 || !(ifr.ifr_flags & IFF_PERSIST)) {
		err_set(e, "no such network interface (create the tap first: ip tuntap add dev %s "
			"mode tap)", o->tap);
		goto fail;
	}
	if (!(ifr.ifr_flags & IFF_VNET_HDR)) {
		err_set(e, "the tap does not accept virtio-net headers (IFF_VNET_HDR), which "
			"ember needs");
		goto fail;
	}
	if (ioctl(n->fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		err_errno(e, "TUNSETVNETHDRSZ 12 (the tun driver cannot use the virtio 1.x header)");
		goto fail;
	}
	n->is_tap = true;
	n->tun_offloads = probe_offloads(n->fd);
	return n;
fail:
	net_close(n);
	return NULL;
}

struct net *net_open_fd(int fd, const uint8_t mac[6], unsigned tun_offloads, unsigned index,
			struct err *e)
{
	struct net *n = net_new(index, mac, e);

	if (!n) {
		close(fd);
		return NULL;
	}
	n->fd = fd;
	n->tun_offloads = tun_offloads;
	return n;
}

/* ---- helpers ---- */

static struct vq *rxq(struct net *n)
{
	return &n->t.q[RXQ].vq;
}

static struct vq *txq(struct net *n)
{
	return &n->t.q[TXQ].vq;
}

static bool has(const struct net *n, unsigned bit)
{
	return n->t.features & (1ULL << bit);
}

static void bad_chain(struct net *n, const char *why)
{
	atomic_fetch_add(&n->stats.bad_chains, 1);
	virtio_mmio_log_once(&n->t, "bad chain", why);
}

/* A problem with the tap itself, not the guest: one line per device. */
static void host_problem(struct net *n, const char *what, int err, const char *hint)
{
	if (!atomic_flag_test_and_set(&n->host_logged))
		fprintf(stderr, "ember: %s: %s %s: %s%s (the VM goes on; further tap errors are "
			"only counted)\n", n->name, what, n->opts.tap[0] ? n->opts.tap : "fd",
			strerror(err), hint);
}

#define NET_S_LINK_UP 1u   /* §5.1.4: status, VIRTIO_NET_S_LINK_UP */

/* Lock held.  The tap was deleted while the VM runs (ip link del): every
 * read and write on it fails with EBADFD from now on, for good.  The
 * guest learns it as its link going down: status loses LINK_UP, with a
 * configuration change notification (§5.1.4.2; VIRTIO_NET_F_STATUS is
 * always offered).  Frames it still sends are used unsent (tx_errors).
 * One line of its own, even after another tap error was logged: a write
 * racing the deletion sees the interface down first (EIO), and this is
 * the line that says what happened. */
static void tap_gone(struct net *n)
{
	if (!(n->config[6] & NET_S_LINK_UP))
		return;
	fprintf(stderr, "ember: %s: tap %s was deleted: the guest sees its link down, frames "
		"it sends are dropped (the VM goes on; further tap errors are only counted)\n",
		n->name, n->opts.tap[0] ? n->opts.tap : "fd");
	n->config[6] &= (uint8_t)~NET_S_LINK_UP;
	n->t.config_gen++;
	if (n->t.status & VIRTIO_STATUS_DRIVER_OK)
		virtio_mmio_interrupt(&n->t, VIRTIO_INT_CONFIG);
}

/* Copy between a host buffer and bytes [off, off + len) of an iovec array.
 * Returns the bytes copied. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len,
		       bool to_iov)
{
	uint8_t *b = buf;
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t k;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - off;
		if (k > len - done)
			k = len - done;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off, b + done, k);
		else
			memcpy(b + done, (uint8_t *)iov[i].iov_base + off, k);
		done += k;
		off = 0;
	}
	return done;
}

/* ---- receive (§5.1.6.3, §5.1.6.4) ---- */

/* How receive works.
 *
 * Up to NET_RX_READS READVs are in flight on the tap, each straight into
 * guest chains of its own (a slot, struct net_rx_read), and only while the
 * guest has given chains: none is posted without one (back-pressure).  Each
 * read takes the next frame the tap holds, whole.
 *
 * Order.  The frames must reach the used ring in the order the tap hands
 * them over (the driver has no way to reorder them, and TCP slows down on
 * reordering).  rx_done() pushes each frame's chains the moment its
 * completion is reaped, so the used ring follows the completion queue, and
 * the completion queue follows the order in which the reads were served:
 * every read on the tap runs in the loop thread, never in an io-wq worker
 * (the tap is O_NONBLOCK and pollable: a read that finds it empty waits
 * for its poll wakeup and is retried by task work in the loop thread),
 * one after another, and io_uring posts the completions of the reads it
 * ran in one submission or one run of task work in the order it ran them.
 * Which slot gets which frame is not fixed (a frame wakes every waiting
 * read; the one the kernel retries first takes it): the chains are used
 * out of the order they were made available, which virtio allows unless
 * VIRTIO_F_IN_ORDER is negotiated (never offered).
 *
 * How many.  Each slot's READV covers `want` bytes of chains: without
 * MRG_RXBUF one chain (the driver sizes it for its largest frame); with it
 * NET_RX_SMALL, one MTU-sized frame, or NET_RX_NEED, a largest (GSO) frame,
 * while frames beyond NET_RX_SMALL are being received (rx_big; then one
 * READV at a time, as each such frame takes many chains).  A frame longer
 * than its slot's chains runs into the slot's spill buffer; with MRG_RXBUF
 * the rest is copied into more chains (the only copy receive makes), else
 * it is dropped.  A READV that finds the tap empty waits, and every frame
 * then wakes all the waiting ones, so the number posted follows the tap's
 * backlog (rx_fill()): one more is posted only when every READV posted
 * came back with a frame.
 *
 * Notifications.  The driver is asked to notify (avail_event) only when the
 * device holds no READV at all and the ring has no chain: while a READV is
 * in flight, its completion looks at the ring again anyway. */

/* TUN_F_* for what the driver negotiated: the tap may hand over partial
 * checksums only with GUEST_CSUM, and GSO frames only of the negotiated
 * kinds (which need GUEST_CSUM too, §5.1.3.1). */
static void apply_offloads(struct net *n)
{
	unsigned off = 0;

	n->offloads_stale = false;
	if (has(n, VIRTIO_NET_F_GUEST_CSUM)) {
		off = TUN_F_CSUM;
		if (has(n, VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (has(n, VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
		if (has(n, VIRTIO_NET_F_GUEST_UFO))
			off |= TUN_F_UFO;
	}
	off &= n->tun_offloads;
	/* A driver that takes GSO frames will likely get them: start with
	 * READVs sized for them. */
	n->rx_big = has(n, VIRTIO_NET_F_MRG_RXBUF) && (off & (TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO));
	n->rx_small_run = 0;
	if (!n->is_tap || off == n->offloads_now)
		return;
	if (ioctl(n->fd, TUNSETOFFLOAD, off) < 0)
		host_problem(n, "TUNSETOFFLOAD on", errno, "");
	else
		n->offloads_now = off;
}

/* With MRG_RXBUF, what one READV covers: room for the largest frame a tap
 * can hand over (a GSO frame, or a plain frame of a 64 KiB MTU the host and
 * guest may agree on without telling the device) while such frames come,
 * else one frame of a 1500-byte MTU (with a VLAN tag). */
#define NET_RX_NEED  (NET_HDR_LEN + NET_GSO_FRAME_MAX)
#define NET_RX_SMALL (NET_HDR_LEN + NET_FRAME_MAX)
/* Frames in a row within NET_RX_SMALL after which READVs are small again. */
#define NET_RX_SHRINK 256

static bool rx_room(const struct net_rx_read *r)
{
	return r->nchains < NET_RX_CHAINS && NET_RX_IOVS - r->niov >= VQ_CHAIN_MAX;
}

/* Keep a popped receive chain in slot r, or say why it cannot be one. */
static const char *rx_take(struct net_rx_read *r, const struct vq_chain *c)
{
	struct net_rx_chain *rc = &r->chain[r->nchains];
	uint64_t cap = 0;

	/* §5.1.6.3: receive buffers are device-writable; §5.1.6.3.1: each at
	 * least a header long. */
	if (c->nread)
		return "device-readable buffer in a receive chain";
	if (c->bad_addr)
		return "receive buffer outside guest RAM";
	if (c->write_len < NET_HDR_LEN)
		return "receive buffer shorter than the 12-byte header";
	rc->head = c->head;
	rc->niov = 0;
	for (uint16_t i = 0; i < c->nseg && cap < NET_RX_CHAIN_CAP; i++) {
		uint64_t len = c->seg[i].len;

		if (!len)
			continue;
		if (len > NET_RX_CHAIN_CAP - cap)
			len = NET_RX_CHAIN_CAP - cap;
		r->iov[r->niov + rc->niov].iov_base = c->seg[i].host;
		r->iov[r->niov + rc->niov].iov_len = len;
		rc->niov++;
		cap += len;
	}
	rc->cap = (uint32_t)cap;
	r->niov += rc->niov;
	r->cap += cap;
	r->nchains++;
	return NULL;
}

/* The ring is empty: move chains into r from another slot that holds some
 * without a READV (it could not be posted, or a frame left them), until r
 * has want bytes.  False when there was nothing to move. */
static bool rx_steal(struct net *n, struct net_rx_read *r, uint64_t want)
{
	bool moved = false;

	for (unsigned i = 0; i < NET_RX_READS && r->cap < want; i++) {
		struct net_rx_read *v = &n->rx[i];

		while (v != r && !v->inflight && v->nchains && r->cap < want) {
			const struct net_rx_chain *c = &v->chain[v->nchains - 1];

			if (r->nchains == NET_RX_CHAINS || NET_RX_IOVS - r->niov < c->niov)
				return moved;
			memcpy(r->iov + r->niov, v->iov + v->niov - c->niov, c->niov * sizeof(r->iov[0]));
			r->chain[r->nchains++] = *c;
			r->niov += c->niov;
			r->cap += c->cap;
			v->niov -= c->niov;
			v->cap -= c->cap;
			v->nchains--;
			moved = true;
		}
	}
	return moved;
}

/* Lock held, loop thread.  Take chains into slot r until it holds want
 * bytes: from the ring, then from idle slots.  may_arm: when nothing is to
 * be had and r is empty, ask the driver for a notification (vq_arm_notify,
 * which also closes the race with a chain added meanwhile).  False when the
 * ring turned out to be corrupt (the device needs a reset). */
static bool rx_top_up(struct net *n, struct net_rx_read *r, uint64_t want, bool may_arm)
{
	struct vq *q = rxq(n);
	const char *why;

	while (r->cap < want && rx_room(r)) {
		int rc = vq_pop(q, &n->chain, &why);

		if (rc == VQ_EMPTY) {
			if (rx_steal(n, r, want))
				continue;
			if (may_arm && !r->nchains && vq_arm_notify(q))
				continue;
			break;
		}
		if (rc == VQ_BROKEN) {
			virtio_mmio_needs_reset(&n->t, why);
			return false;
		}
		if (rc == VQ_CHAIN)
			why = rx_take(r, &n->chain);
		if (why) {
			/* Malformed: back to the driver unused. */
			bad_chain(n, why);
			vq_push(q, n->chain.head, 0);
			n->rx_dirty = true;
		}
	}
	return true;
}

/* Lock held, loop thread.  Post slot r's READV: its chains (without
 * MRG_RXBUF only the first: one chain per frame), then its spill buffer.
 * A frame longer than the buffers must be seen to be: a tap may return the
 * truncated length of a short read (Linux 6.18 does) as well as the
 * frame's, so the spill buffer has room for the rest of any frame, and
 * whatever lands there makes the read longer than the chains (rx_frame()). */
static void rx_post(struct net *n, struct net_rx_read *r)
{
	unsigned niov = has(n, VIRTIO_NET_F_MRG_RXBUF) ? r->niov : r->chain[0].niov;
	struct io_uring_sqe *sqe;

	r->iov[niov].iov_base = r->spill;
	r->iov[niov].iov_len = NET_RX_SPILL;
	sqe = loop_sqe(n->loop, &r->op);
	io_uring_prep_readv(sqe, n->file, r->iov, niov + 1, 0);
	loop_fixed(sqe);
	r->inflight = true;
	r->gen = n->t.q[RXQ].gen;
	n->rx_inflight++;
}

/* An idle slot (no READV in flight), one holding chains first; NULL when
 * every slot has a READV in flight. */
static struct net_rx_read *rx_idle_slot(struct net *n)
{
	struct net_rx_read *empty = NULL;

	for (unsigned i = 0; i < NET_RX_READS; i++) {
		struct net_rx_read *r = &n->rx[i];

		if (r->inflight)
			continue;
		if (r->nchains)
			return r;
		if (!empty)
			empty = r;
	}
	return empty;
}

/* Lock held, loop thread (the batch hook, a notification).  Post READVs
 * into the guest's chains.  How many: while any READV of this generation
 * waits in flight, the tap ran empty and a frame would wake them all, so
 * none more; when all came back, twice as many as brought a frame since
 * the last batch (at least one, at most NET_RX_READS; one while frames
 * beyond NET_RX_SMALL come).  A slot short of want bytes is posted only
 * when it would be the only READV (frames would otherwise wait in the
 * tap); with no chain at all and none in flight, the driver is asked to
 * notify, and frames wait in the tap until it does. */
static void rx_fill(struct net *n)
{
	bool mrg = has(n, VIRTIO_NET_F_MRG_RXBUF);
	unsigned live = 0, budget;
	uint64_t want;

	if (n->rx_quiesce || n->rx_stopped || n->loop->stop || !virtio_mmio_live(&n->t) ||
	    !n->t.q[RXQ].ready)
		return;
	if (n->offloads_stale)
		apply_offloads(n);   /* also sets rx_big for the new driver */
	want = !mrg ? 1 : n->rx_big ? NET_RX_NEED : NET_RX_SMALL;
	for (unsigned i = 0; i < NET_RX_READS; i++)
		live += n->rx[i].inflight && n->rx[i].gen == n->t.q[RXQ].gen;
	budget = live ? live : mrg && n->rx_big ? 1 : n->rx_frames ? 2 * n->rx_frames : 1;
	if (budget > NET_RX_READS)
		budget = NET_RX_READS;
	while (live < budget) {
		struct net_rx_read *r = rx_idle_slot(n);

		if (!r || !rx_top_up(n, r, want, !live))
			return;
		if (!r->nchains || (r->cap < want && live))
			break;
		rx_post(n, r);
		live++;
	}
	if (live) {
		n->rx_waiting = false;
	} else {
		if (!n->rx_waiting)
			atomic_fetch_add(&n->stats.rx_waits, 1);
		n->rx_waiting = true;
	}
}

/* The header the tap wrote, made what the driver negotiated: false when
 * the frame cannot be given to this driver at all. */
static bool rx_fix_header(const struct net *n, struct virtio_net_hdr *h)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if (!has(n, VIRTIO_NET_F_GUEST_CSUM)) {
		/* §5.1.6.4.1: without GUEST_CSUM flags are 0 (the tap marks
		 * verified checksums DATA_VALID regardless) and the checksum
		 * must be complete. */
		if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return false;
		h->flags = 0;
	}
	/* §5.1.6.4.1: only GSO kinds the driver negotiated. */
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !has(n, VIRTIO_NET_F_GUEST_ECN))
		return false;
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return has(n, VIRTIO_NET_F_GUEST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return has(n, VIRTIO_NET_F_GUEST_TSO6);
	case VIRTIO_NET_HDR_GSO_UDP:
		return has(n, VIRTIO_NET_F_GUEST_UFO);
	default:
		return false;
	}
}

/* A frame of len bytes (header included) is in slot r's chains: hand the
 * ones it filled to the driver and keep the rest for the slot's next READV. */
static void rx_deliver(struct net *n, struct net_rx_read *r, uint32_t len,
		       const struct virtio_net_hdr *h)
{
	struct virtio_net_hdr hdr = *h;
	uint32_t left = len;
	unsigned m = 0, iovs = 0;
	uint64_t used_cap = 0;

	while (left) {
		uint32_t k = r->chain[m].cap < left ? r->chain[m].cap : left;

		left -= k;
		used_cap += r->chain[m].cap;
		iovs += r->chain[m].niov;
		m++;
	}
	/* §5.1.6.4: num_buffers is the number of buffers the frame uses, 1
	 * without MRG_RXBUF (the tap leaves those two bytes untouched).  The
	 * used ring's release store in vq_publish() orders this write before
	 * the driver can see the buffers. */
	hdr.num_buffers = (uint16_t)m;
	iov_copy(r->iov, r->niov, 0, &hdr, NET_HDR_LEN, true);
	left = len;
	for (unsigned i = 0; i < m; i++) {
		uint32_t k = r->chain[i].cap < left ? r->chain[i].cap : left;

		vq_push(rxq(n), r->chain[i].head, k);
		left -= k;
	}
	n->rx_dirty = true;
	r->nchains -= m;
	r->niov -= iovs;
	r->cap -= used_cap;
	memmove(r->chain, r->chain + m, r->nchains * sizeof(r->chain[0]));
	memmove(r->iov, r->iov + iovs, r->niov * sizeof(r->iov[0]));
	atomic_fetch_add(&n->stats.rx_packets, 1);
	atomic_fetch_add(&n->stats.rx_bytes, len - NET_HDR_LEN);
}

/* Slot r's READV read len bytes (header included): deliver the frame, or
 * drop it (the chains stay with the slot for the next frame). */
static void rx_frame(struct net *n, struct net_rx_read *r, uint32_t len)
{
	bool mrg = has(n, VIRTIO_NET_F_MRG_RXBUF);
	uint64_t avail = mrg ? r->cap : r->chain[0].cap;
	struct virtio_net_hdr h;

	if (mrg) {
		if (len > NET_RX_SMALL) {
			n->rx_big = true;
			n->rx_small_run = 0;
		} else if (n->rx_big && ++n->rx_small_run >= NET_RX_SHRINK) {
			n->rx_big = false;
		}
	}
	if (len < NET_HDR_LEN + NET_FRAME_MIN ||
	    iov_copy(r->iov, r->niov, 0, &h, NET_HDR_LEN, false) != NET_HDR_LEN ||
	    !rx_fix_header(n, &h))
		goto drop;   /* not for this driver (or not a frame) */
	if (len > avail) {
		/* Its end went to the spill buffer.  Without MRG_RXBUF a frame
		 * takes one chain, and one that filled the spill buffer too
		 * may have been cut short: dropped.  Else the rest goes into
		 * more chains, a copy (a READV holds fewer chains than a
		 * largest frame needs but while such frames come). */
		uint64_t held = r->cap;

		if (!mrg || len >= avail + NET_RX_SPILL || !rx_top_up(n, r, len, false) ||
		    r->cap < len)
			goto drop;
		iov_copy(r->iov, r->niov, held, r->spill, len - held, true);
	}
	rx_deliver(n, r, len, &h);
	return;
drop:
	atomic_fetch_add(&n->stats.rx_dropped, 1);
}

static void wake_quiescer(struct net *n)
{
	if (n->rx_quiesce || n->tx_quiesce)
		pthread_cond_broadcast(&n->idle);
}

/* A READV came back.  Its slot is posted again by the batch hook, once
 * every completion of this loop iteration is in (rx_fill()). */
static void rx_done(struct loop_op *op, int res)
{
	struct net_rx_read *r = (struct net_rx_read *)op;
	struct net *n = r->n;

	pthread_mutex_lock(&n->t.lock);
	r->inflight = false;
	n->rx_inflight--;
	n->rx_completed = true;
	if (r->gen != n->t.q[RXQ].gen || n->rx_quiesce || n->loop->stop) {
		/* The chains went back to the driver with the reset. */
		r->nchains = r->niov = 0;
		r->cap = 0;
	} else if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) {
		/* Nothing read: posted again. */
	} else if (res <= 0) {
		/* One failure of the tap, seen by every READV in flight:
		 * counted and logged once. */
		if (!n->rx_stopped) {
			atomic_fetch_add(&n->stats.rx_errors, 1);
			n->rx_stopped = true;
			if (res == -EBADFD)
				tap_gone(n);
			else
				host_problem(n, "read from", res ? -res : EIO, "; receiving stopped");
		}
	} else {
		n->rx_frames++;
		rx_frame(n, r, (uint32_t)res);
	}
	wake_quiescer(n);
	pthread_mutex_unlock(&n->t.lock);
}

/* ---- transmit (§5.1.6.2) ---- */

static struct net_tx_req *tx_get(struct net *n)
{
	struct net_tx_req *r = n->tx_free;

	if (r)
		n->tx_free = r->next_free;
	return r;
}

static void tx_put(struct net *n, struct net_tx_req *r)
{
	r->next_free = n->tx_free;
	n->tx_free = r;
}

/* §5.1.6.2.1: the driver uses only the offloads it negotiated. */
static const char *tx_header_bad(const struct net *n, const struct virtio_net_hdr *h)
{
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !has(n, VIRTIO_NET_F_CSUM))
		return "NEEDS_CSUM without VIRTIO_NET_F_CSUM";
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !has(n, VIRTIO_NET_F_HOST_ECN))
		return "GSO with ECN without VIRTIO_NET_F_HOST_ECN";
	switch (h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return NULL;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return has(n, VIRTIO_NET_F_HOST_TSO4) ? NULL : "GSO_TCPV4 without HOST_TSO4";
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return has(n, VIRTIO_NET_F_HOST_TSO6) ? NULL : "GSO_TCPV6 without HOST_TSO6";
	case VIRTIO_NET_HDR_GSO_UDP:
		return has(n, VIRTIO_NET_F_HOST_UFO) ? NULL : "GSO_UDP without HOST_UFO";
	default:
		return "unknown gso_type";
	}
}

static void tx_submit(struct net *n, struct net_tx_req *r)
{
	struct io_uring_sqe *sqe = loop_sqe(n->loop, &r->op);

	io_uring_prep_writev(sqe, n->file, r->iov, r->niov, 0);
	loop_fixed(sqe);
	n->tx_inflight++;
}

/* Lock held.  One chain, one frame: header copied and checked, the frame
 * written to the tap straight from guest memory. */
static void tx_start(struct net *n, const struct vq_chain *c)
{
	struct virtio_net_hdr h;
	struct net_tx_req *r;
	const char *why = NULL;
	uint64_t off = NET_HDR_LEN;

	if (c->nread != c->nseg)
		why = "device-writable buffer in a transmit chain";
	else if (c->bad_addr)
		why = "transmit buffer outside guest RAM";
	else if (c->read_len < NET_HDR_LEN + NET_FRAME_MIN)
		why = "transmit chain shorter than the header and an Ethernet header";
	else if (c->read_len - NET_HDR_LEN > NET_GSO_FRAME_MAX)
		why = "transmit frame longer than 65553 bytes";
	else if (vq_chain_read(c, 0, &h, NET_HDR_LEN) != NET_HDR_LEN)
		why = "transmit header unreadable";
	else
		why = tx_header_bad(n, &h);
	if (why) {
		/* Dropped: the chain goes back to the driver as sent. */
		atomic_fetch_add(&n->stats.tx_dropped, 1);
		bad_chain(n, why);
		vq_push(txq(n), c->head, 0);
		n->tx_dirty = true;
		return;
	}
	r = tx_get(n);
	r->head = c->head;
	r->gen = n->t.q[TXQ].gen;
	r->hdr = h;
	r->hdr.num_buffers = 0;   /* §5.1.6.2: unused on transmit */
	r->iov[0].iov_base = &r->hdr;
	r->iov[0].iov_len = NET_HDR_LEN;
	r->niov = 1;
	for (uint16_t i = 0; i < c->nseg; i++) {
		const struct vq_seg *s = &c->seg[i];

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		r->iov[r->niov].iov_base = s->host + off;
		r->iov[r->niov].iov_len = s->len - off;
		r->niov++;
		off = 0;
	}
	tx_submit(n, r);
}

static void tx_done(struct loop_op *op, int res)
{
	struct net_tx_req *r = (struct net_tx_req *)op;
	struct net *n = r->n;

	pthread_mutex_lock(&n->t.lock);
	n->tx_inflight--;
	if (r->gen != n->t.q[TXQ].gen || n->tx_quiesce || n->loop->stop) {
		tx_put(n, r);   /* the chain went back to the driver with the reset */
	} else if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) {
		tx_submit(n, r);
	} else {
		if (res < 0) {
			/* Refused by the tap (down: EIO; a header the kernel
			 * rejects: EINVAL): the frame is lost, as on a wire. */
			atomic_fetch_add(&n->stats.tx_errors, 1);
			if (res == -EBADFD)
				tap_gone(n);
			else
				host_problem(n, "write to", -res,
					     res == -EIO ? " (is the tap up?)" : "");
		} else {
			atomic_fetch_add(&n->stats.tx_packets, 1);
			atomic_fetch_add(&n->stats.tx_bytes,
					 (unsigned)res > NET_HDR_LEN ? (unsigned)res - NET_HDR_LEN : 0);
		}
		/* §5.1.6.2: transmit buffers are used with length 0. */
		vq_push(txq(n), r->head, 0);
		n->tx_dirty = true;
		tx_put(n, r);
	}
	wake_quiescer(n);
	pthread_mutex_unlock(&n->t.lock);
}

/* Lock held, loop thread.  Pop and send until the ring is empty or every
 * request slot is busy (the batch hook resumes then). */
static void tx_process(struct net *n)
{
	struct vq *q = txq(n);
	const char *why;

	if (n->tx_quiesce || !virtio_mmio_live(&n->t) || !n->t.q[TXQ].ready)
		return;
	for (;;) {
		while (n->tx_free) {
			int rc = vq_pop(q, &n->chain, &why);

			if (rc == VQ_EMPTY)
				break;
			if (rc == VQ_BROKEN) {
				virtio_mmio_needs_reset(&n->t, why);
				return;
			}
			if (rc == VQ_BAD_CHAIN) {
				atomic_fetch_add(&n->stats.tx_dropped, 1);
				bad_chain(n, why);
				vq_push(q, n->chain.head, 0);
				n->tx_dirty = true;
				continue;
			}
			tx_start(n, &n->chain);
		}
		if (!n->tx_free) {
			n->tx_starved = true;
			return;
		}
		if (!vq_arm_notify(q))
			return;
	}
}

/* ---- transport callbacks, the batch hook, reset ---- */

static void net_notify(void *dev, unsigned q)
{
	struct net *n = dev;

	if (q == RXQ)
		rx_fill(n);
	else if (q == TXQ)
		tx_process(n);
}

/* End of a loop iteration: post READVs again now that this iteration's
 * completions are all in, resume a starved transmit queue, publish both
 * used rings once and interrupt at most once. */
static void net_batch(void *opaque)
{
	struct net *n = opaque;
	bool irq = false;

	pthread_mutex_lock(&n->t.lock);
	if (n->rx_completed) {
		rx_fill(n);
		n->rx_completed = false;
		n->rx_frames = 0;
	}
	if (n->tx_starved && n->tx_free) {
		n->tx_starved = false;
		tx_process(n);
	}
	if (n->rx_dirty) {
		n->rx_dirty = false;
		irq |= vq_publish(rxq(n));
	}
	if (n->tx_dirty) {
		n->tx_dirty = false;
		irq |= vq_publish(txq(n));
	}
	if (irq)
		virtio_mmio_interrupt(&n->t, VIRTIO_INT_USED);
	pthread_mutex_unlock(&n->t.lock);
}

/* Loop thread: cancel every READV/WRITEV on the tap, so that their
 * completions arrive now (see quiesce()). */
static void cancel_tap_io(struct net *n)
{
	struct io_uring_sqe *sqe = loop_sqe(n->loop, &n->cancel_op);

	/* With IOSQE_FIXED_FILE the fd is the tap's fixed-file index. */
	io_uring_prep_cancel_fd(sqe, n->file, IORING_ASYNC_CANCEL_ALL);
	loop_fixed(sqe);
}

static void quiesce_kicked(void *opaque)
{
	struct net *n = opaque;

	pthread_mutex_lock(&n->t.lock);
	if ((n->rx_quiesce && n->rx_inflight) || (n->tx_quiesce && n->tx_inflight))
		cancel_tap_io(n);
	pthread_mutex_unlock(&n->t.lock);
}

static void cancel_done(struct loop_op *op, int res)
{
	(void)op;
	(void)res;
}

/* Lock held, vCPU thread (a reset).  A READV in flight would write a frame
 * into buffers that belong to the driver again once the reset returns (it
 * may already be reusing that memory), and a WRITEV may still read from
 * them: wait until the loop has cancelled or completed them.  The loop
 * needs the lock for that; pthread_cond_timedwait releases it meanwhile. */
static void quiesce(struct net *n, bool rx, bool tx)
{
	uint64_t one = 1;
	long waited = 0;

	n->rx_quiesce = rx;
	n->tx_quiesce = tx;
	if (pthread_equal(pthread_self(), n->loop_thread)) {
		/* Only in unit tests and the fuzzer, which drive registers
		 * from the loop's own thread: it cannot wait for itself.
		 * The completions find a new generation and are dropped. */
		cancel_tap_io(n);
		n->rx_quiesce = n->tx_quiesce = false;
		return;
	}
	(void)!write(n->quiesce_fd, &one, sizeof(one));
	/* In slices, to notice a VM that is ending (its loop no longer reaps
	 * anything) without waiting out NET_QUIESCE_MS. */
	while (((rx && n->rx_inflight) || (tx && n->tx_inflight)) && !atomic_load(&n->loop->stop)) {
		struct timespec ts;

		if (waited >= NET_QUIESCE_MS) {
			host_problem(n, "reset: I/O still in flight on", ETIMEDOUT, "");
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += NET_QUIESCE_SLICE_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&n->idle, &n->t.lock, &ts) == ETIMEDOUT)
			waited += NET_QUIESCE_SLICE_MS;
	}
	n->rx_quiesce = n->tx_quiesce = false;
}

static void net_reset(void *dev, int q)
{
	struct net *n = dev;
	bool rx = q < 0 || q == RXQ, tx = q < 0 || q == TXQ;

	if (rx) {
		/* The chains held belong to the driver again (a READV in
		 * flight still writes into them until quiesce() is done). */
		for (unsigned i = 0; i < NET_RX_READS; i++) {
			n->rx[i].nchains = n->rx[i].niov = 0;
			n->rx[i].cap = 0;
		}
		n->rx_frames = 0;
		n->rx_dirty = n->rx_waiting = false;
		n->offloads_stale = true;
	}
	if (tx)
		n->tx_dirty = n->tx_starved = false;
	if ((rx && n->rx_inflight) || (tx && n->tx_inflight))
		quiesce(n, rx, tx);
}

static const struct virtio_dev_ops net_ops = {
	.device_id = 1,
	.num_queues = 2,
	.queue_num_max = NET_QUEUE_SIZE,
	.notify = net_notify,
	.reset = net_reset,
};

/* Configuration space (§5.1.4): mac, status (link up), max_virtqueue_pairs
 * (1), mtu (1500, informative: VIRTIO_NET_F_MTU is not offered). */
static void build_config(struct net *n)
{
	memcpy(n->config, n->opts.mac, 6);
	n->config[6] = NET_S_LINK_UP;
	n->config[7] = 0;
	n->config[8] = 1;
	n->config[9] = 0;
	n->config[10] = 1500 & 0xff;
	n->config[11] = 1500 >> 8;
}

int net_attach(struct net *n, unsigned slot, const struct guest_mem *mem,
	       struct loop *loop, const struct virtio_irq *irq, struct err *e)
{
	uint64_t f = (1ULL << VIRTIO_F_RING_EVENT_IDX) | (1ULL << VIRTIO_F_RING_INDIRECT_DESC) |
		     (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
		     (1ULL << VIRTIO_NET_F_MRG_RXBUF);
	/* §5.1.3.1: TSO and UFO only together with the checksum offload
	 * they need, in each direction. */
	if (n->tun_offloads & TUN_F_CSUM) {
		f |= (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM);
		if (n->tun_offloads & TUN_F_TSO4)
			f |= (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO4);
		if (n->tun_offloads & TUN_F_TSO6)
			f |= (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_TSO6);
		if (n->tun_offloads & TUN_F_UFO)
			f |= (1ULL << VIRTIO_NET_F_HOST_UFO) | (1ULL << VIRTIO_NET_F_GUEST_UFO);
	}
	build_config(n);
	n->tx_reqs = calloc(NET_TX_REQS, sizeof(*n->tx_reqs));
	/* ~600 KiB, nearly all of it spill buffers: calloc maps that fresh,
	 * and a page takes memory only once a frame is read into it. */
	n->rx = calloc(NET_RX_READS, sizeof(*n->rx));
	if (!n->tx_reqs || !n->rx)
		return err_set(e, "out of memory");
	for (unsigned i = 0; i < NET_RX_READS; i++) {
		n->rx[i].n = n;
		n->rx[i].op.done = rx_done;
	}
	for (int i = NET_TX_REQS - 1; i >= 0; i--) {
		n->tx_reqs[i].n = n;
		n->tx_reqs[i].op.done = tx_done;
		tx_put(n, &n->tx_reqs[i]);
	}
	n->loop = loop;
	n->loop_thread = pthread_self();
	n->cancel_op.done = cancel_done;
	n->quiesce_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->quiesce_fd < 0)
		return err_errno(e, "eventfd");
	n->file = loop_file(loop, n->fd, e);
	if (n->file < 0)
		return -1;
	if (virtio_mmio_init(&n->t, n->name, slot, &net_ops, n, f, n->config,
			     sizeof(n->config), mem, loop, irq, e) < 0 ||
	    loop_watch_efd(loop, &n->quiesce_watch, n->quiesce_fd, quiesce_kicked, n, e) < 0)
		return -1;
	loop_add_hook(loop, &n->hook, net_batch, n);
	return 0;
}

struct virtio_mmio *net_transport(struct net *n)
{
	return &n->t;
}

const struct net_stats *net_get_stats(const struct net *n)
{
	return &n->stats;
}

const uint8_t *net_mac(const struct net *n)
{
	return n->opts.mac;
}

void net_close(struct net *n)
{
	if (!n)
		return;
	pthread_cond_destroy(&n->idle);
	virtio_mmio_fini(&n->t);
	if (n->quiesce_fd >= 0)
		close(n->quiesce_fd);
	if (n->fd >= 0)
		close(n->fd);
	free(n->tx_reqs);
	free(n->rx);
	free(n);
}
