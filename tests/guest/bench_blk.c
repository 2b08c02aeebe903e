/* ember.bench=blk:RW:BS:QD:SECS — a virtio-blk benchmark (bench/blk.sh).
 *
 * A polling driver: used-buffer interrupts stay off (a stale used_event
 * with EVENT_IDX, NO_INTERRUPT otherwise) and the vCPU spins on the used
 * ring, so an I/O costs the guest only its notification (one MMIO write,
 * suppressed when the device says it is still looking at the ring) and
 * no interrupt injection: what is measured is the device and the VMM, not
 * the guest's interrupt path, which on software KVM (kvm-pvm, CPL0
 * emulated) would dominate everything.
 *
 *   RW    randread | randwrite | read | write   (fio's names; read/write
 *         are sequential, wrapping at the end of the disk)
 *   BS    request size: 512 .. 1M, a multiple of 512 (4k, 128k, 65536)
 *   QD    requests kept in flight, 1 .. a third of the queue size
 *   SECS  how long to run, 1 .. 3600
 *   sync  (optional 6th field) after each BENCH line wait for one byte on
 *         COM1 (up to 5 s) before going on, so the runner can read the
 *         VMM's CPU time exactly at the start and end of the window
 *
 * Output (one line each, key=value, parsed by bench/blk.sh):
 *
 *   BENCH blk begin rw=... bs=... qd=... secs=... capacity=<sectors> features=0x...
 *         tsc_mhz=<used> boot_tsc_mhz=<the boot's calibration>
 *   BENCH blk rw=... bs=... qd=... ops=N bytes=N us=N iops=N kibps=N
 *         lat_mean_ns=N lat_p50_ns=N lat_p99_ns=N lat_max_ns=N kicks=N notifies=N
 *         notify_ns=N
 *
 * "begin" is printed just before the timed window opens, the result line
 * just after it closed (with :sync each then waits for the runner).  ops
 * and bytes count the requests that completed inside the window; us is
 * the window (TSC).  Latency is per request, from just before it is made
 * available (and the queue kicked) to the poll that saw it used; p50/p99
 * come from a histogram with 32 buckets per power of two (within 3 %),
 * mean and max are exact.  kicks counts virtq_kick calls, notifies the
 * QueueNotify writes (VM exits) among them, notify_ns the mean time one of
 * those took in the window (what the exit costs the guest).
 */
#include "virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO       5
#define VIRTIO_BLK_F_FLUSH    9
#define VIRTIO_BLK_T_IN       0
#define VIRTIO_BLK_T_OUT      1
#define VIRTIO_BLK_S_OK       0
#define CFG_CAPACITY          0
#define CFG_SIZE_MAX          8
#define CFG_SEG_MAX           12
#define SECTOR                512u
#define MAX_BS                (1u << 20)
#define MAX_SEGS              16u
#define STALL_US              (5 * 1000 * 1000)

/* Latency histogram: values below 64 ns exact, then 32 buckets per power of
 * two up to 2^64 ns. */
#define HIST_SUB  32u
#define HIST_N    (64u + (64u - 6u) * HIST_SUB)

struct breq {
	struct {
		uint32_t type;
		uint32_t reserved;
		uint64_t sector;
	} hdr;
	uint8_t status;
	uint64_t t0; /* TSC when made available */
	void *buf;
};

struct bench {
	bool random, write, sync;
	uint32_t bs;
	unsigned qd, secs;
	uint64_t nblocks;   /* whole bs-sized blocks on the disk */
	uint64_t next;      /* sequential: next block */
	uint64_t rng;
	uint32_t seg_bytes; /* data segment size (size_max), nseg per request */
	unsigned nseg;
	uint64_t *hist;
	uint64_t lat_sum, lat_max, lat_n;
};

static unsigned hist_index(uint64_t ns)
{
	if (ns < 64)
		return (unsigned)ns;
	unsigned e = 63u - (unsigned)__builtin_clzll(ns); /* >= 6 */
	unsigned sub = (unsigned)(ns >> (e - 5)) & (HIST_SUB - 1);
	return 64u + (e - 6u) * HIST_SUB + sub;
}

/* Middle of bucket i, in ns. */
static uint64_t hist_value(unsigned i)
{
	if (i < 64)
		return i;
	unsigned e = (i - 64u) / HIST_SUB + 6u, sub = (i - 64u) % HIST_SUB;
	uint64_t lo = (uint64_t)(HIST_SUB + sub) << (e - 5u);
	return lo + ((1ull << (e - 5u)) >> 1);
}

static uint64_t hist_pct(const struct bench *b, unsigned pct)
{
	if (!b->lat_n)
		return 0;
	uint64_t want = (b->lat_n * pct + 99) / 100, seen = 0;
	for (unsigned i = 0; i < HIST_N; i++) {
		seen += b->hist[i];
		if (seen >= want)
			return MIN(hist_value(i), b->lat_max);
	}
	return b->lat_max;
}

static const char *rw_name(const struct bench *b)
{
	return b->random ? (b->write ? "randwrite" : "randread") : (b->write ? "write" : "read");
}

static uint64_t tsc_to_ns(uint64_t t) { return t * 1000 / tsc_per_us; }

/* xorshift64*: cheap, and good enough to spread offsets over the disk. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t next_block(struct bench *b)
{
	if (b->random)
		return rng_next(&b->rng) % b->nblocks;
	uint64_t blk = b->next;
	b->next = blk + 1 == b->nblocks ? 0 : blk + 1;
	return blk;
}

static int submit(struct virtq *vq, struct bench *b, struct breq *r)
{
	struct vq_seg s[MAX_SEGS + 2];
	enum vq_dir dir = b->write ? VQ_OUT : VQ_IN;
	r->hdr.type = b->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	r->hdr.sector = next_block(b) * (b->bs / SECTOR);
	r->status = 0xff;
	s[0] = (struct vq_seg){ &r->hdr, sizeof(r->hdr), VQ_OUT };
	for (unsigned i = 0; i < b->nseg; i++)
		s[1 + i] = (struct vq_seg){ (char *)r->buf + (size_t)i * b->seg_bytes,
					    MIN(b->seg_bytes, b->bs - i * b->seg_bytes), dir };
	s[1 + b->nseg] = (struct vq_seg){ &r->status, 1, VQ_IN };
	r->t0 = rdtsc();
	return virtq_add(vq, s, b->nseg + 2, r, 0);
}

/* "blk:RW:BS:QD:SECS" without the "blk:" */
static const char *parse(struct bench *b, const char *a)
{
	static const struct { const char *name; bool random, write; } modes[] = {
		{ "randread", true, false }, { "randwrite", true, true },
		{ "read", false, false },    { "write", false, true },
	};
	const char *colon = strchr(a, ':');
	if (!colon)
		return "want blk:RW:BS:QD:SECS[:sync]";
	size_t n = (size_t)(colon - a);
	unsigned m = 0;
	while (m < ARRAY_SIZE(modes) && (strlen(modes[m].name) != n || strncmp(modes[m].name, a, n)))
		m++;
	if (m == ARRAY_SIZE(modes))
		return "RW must be randread, randwrite, read or write";
	b->random = modes[m].random;
	b->write = modes[m].write;
	const char *p = colon + 1;
	uint64_t bs = parse_u64(p, &p);
	if (*p == 'k' || *p == 'K')
		bs <<= 10, p++;
	else if (*p == 'm' || *p == 'M')
		bs <<= 20, p++;
	if (*p++ != ':' || !bs || bs % SECTOR || bs > MAX_BS)
		return "BS must be a multiple of 512 up to 1M (4k, 128k, 65536)";
	b->bs = (uint32_t)bs;
	const char *q = p;
	uint64_t qd = parse_u64(p, &p);
	if (p == q || *p++ != ':' || !qd || qd > 1024)
		return "QD must be 1 .. a third of the queue size";
	b->qd = (unsigned)qd;
	q = p;
	uint64_t secs = parse_u64(p, &p);
	if (p == q || !secs || secs > 3600)
		return "SECS must be 1 .. 3600";
	b->sync = !strcmp(p, ":sync");
	if (*p && !b->sync)
		return "only :sync may follow SECS";
	b->secs = (unsigned)secs;
	return NULL;
}

enum test_result bench_blk(const char *args)
{
	struct bench b = { 0 };
	const char *why = parse(&b, args);
	if (why)
		return fail("ember.bench=blk:%s: %s", args, why);

	struct virtio_dev *d = NULL;
	for (int i = 0; (d = virtio_find(VIRTIO_ID_BLOCK, i)); i++)
		if (!b.write || !(d->offered & BIT(VIRTIO_BLK_F_RO)))
			break;
	if (!d)
		return fail("no %svirtio-blk device", b.write ? "writable " : "");
	/* FLUSH, as Linux's driver does, though no flush is ever sent: without
	 * it a device must make every write stable before completing it
	 * (§5.2.6.2; ember then writes with RWF_DSYNC, QEMU flushes after each
	 * write), which is not what fio's direct=1 writes do. */
	uint64_t want = BIT(VIRTIO_F_EVENT_IDX) | BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) |
			BIT(VIRTIO_BLK_F_FLUSH);
	if (virtio_negotiate(d, want, &why))
		return fail("%s", why);
	uint64_t capacity = virtio_config64(d, CFG_CAPACITY);
	uint32_t size_max = virtio_has(d, VIRTIO_BLK_F_SIZE_MAX) ? virtio_config32(d, CFG_SIZE_MAX) : 0;
	uint32_t seg_max = virtio_has(d, VIRTIO_BLK_F_SEG_MAX) ? virtio_config32(d, CFG_SEG_MAX) : 1;
	b.nblocks = capacity / (b.bs / SECTOR);
	if (!b.nblocks)
		return fail("disk of %lu sectors is smaller than one %u-byte request", capacity, b.bs);
	/* Segments of at most size_max bytes (whole sectors), as few as that allows. */
	b.seg_bytes = size_max >= SECTOR ? MIN(size_max & ~(SECTOR - 1), b.bs) : b.bs;
	b.nseg = (b.bs + b.seg_bytes - 1) / b.seg_bytes;
	if (b.nseg > MIN(seg_max, MAX_SEGS))
		return fail("a %u-byte request needs %u segments (size_max %u, seg_max %u)", b.bs, b.nseg,
			    size_max, seg_max);

	struct virtq vq;
	if (virtq_setup(&vq, d, 0, 0, &why))
		return fail("%s", why);
	if (b.qd * (b.nseg + 2) > vq.num)
		return fail("QD %u needs %u descriptors, the queue has %u", b.qd, b.qd * (b.nseg + 2), vq.num);
	struct breq *reqs = alloc(sizeof(*reqs) * b.qd, 64);
	b.hist = alloc(sizeof(*b.hist) * HIST_N, 64);
	if (!reqs || !b.hist)
		return fail("out of memory");
	for (unsigned i = 0; i < b.qd; i++) {
		if (!(reqs[i].buf = alloc(b.bs, 4096)))
			return fail("out of memory for %u buffers of %u bytes", b.qd, b.bs);
		/* Written data: not zeroes, so no layer can shortcut it. */
		uint64_t *w = reqs[i].buf;
		for (size_t k = 0; k < b.bs / 8; k++)
			w[k] = 0x656d626572000000ull ^ (k * 0x9e3779b97f4a7c15ull) ^ i;
	}
	virtio_driver_ok(d);
	virtq_irq(&vq, false);
	b.rng = (rdtsc() | 1) ^ 0x5deece66dull;
	uint64_t boot_mhz = tsc_per_us;
	bench_tsc_recalibrate();

	printf("BENCH blk begin rw=%s bs=%u qd=%u secs=%u capacity=%lu features=0x%lx tsc_mhz=%lu boot_tsc_mhz=%lu\n",
	       rw_name(&b), b.bs, b.qd, b.secs, capacity, d->features, tsc_per_us, boot_mhz);
	console_flush();
	bench_host_sync(b.sync);

	uint64_t t0 = rdtsc(), end = t0 + (uint64_t)b.secs * 1000000 * tsc_per_us, now = t0;
	for (unsigned i = 0; i < b.qd; i++)
		if (submit(&vq, &b, &reqs[i]))
			return fail("ring full after %u requests", i);
	virtq_kick(&vq);
	uint64_t ops = 0, last_used = t0, closed = end, notify_tsc = 0, notifies0 = vq.notifies;
	unsigned inflight = b.qd;
	bool open = true;
	while (inflight) {
		unsigned spins = 0;
		while (!virtq_has_used(&vq)) {
			cpu_relax();
			if (!(++spins & 1023) && rdtsc() - last_used > STALL_US * tsc_per_us)
				return fail("no completion within %u s (%u in flight, %lu done)%s%s", STALL_US / 1000000,
					    inflight, ops, vq.error ? ": " : "", vq.error ? vq.error : "");
		}
		bool added = false;
		struct breq *r;
		uint32_t len;
		while ((r = virtq_get(&vq, &len))) {
			/* Per request: a device still polling the ring may
			 * complete one submitted in this very loop. */
			now = last_used = rdtsc();
			if (open && now >= end) {
				/* The window closed: drain what is in flight, uncounted. */
				open = false;
				closed = now;
			}
			inflight--;
			if (r->status != VIRTIO_BLK_S_OK)
				return fail("%s of %u bytes at sector %lu: status %u", b.write ? "write" : "read", b.bs,
					    r->hdr.sector, r->status);
			if (!open)
				continue;
			uint64_t lat = tsc_to_ns(now - r->t0);
			b.hist[MIN(hist_index(lat), HIST_N - 1)]++;
			b.lat_sum += lat;
			b.lat_max = MAX(b.lat_max, lat);
			b.lat_n++;
			ops++;
			if (submit(&vq, &b, r))
				return fail("ring full with %u in flight", inflight);
			inflight++;
			added = true;
		}
		if (vq.error)
			return fail("%s", vq.error);
		if (added) {
			/* The time a notifying kick takes is the VM exit (to
			 * the ioeventfd in KVM) that every QD1 request pays. */
			uint64_t k0 = rdtsc(), n0 = vq.notifies;
			virtq_kick(&vq);
			if (vq.notifies != n0)
				notify_tsc += rdtsc() - k0;
		}
	}
	uint64_t us = (closed - t0) / tsc_per_us;
	if (!us || !ops)
		return fail("no request completed in %u s", b.secs);
	uint64_t bytes = ops * b.bs;
	printf("BENCH blk rw=%s bs=%u qd=%u ops=%lu bytes=%lu us=%lu iops=%lu kibps=%lu lat_mean_ns=%lu "
	       "lat_p50_ns=%lu lat_p99_ns=%lu lat_max_ns=%lu kicks=%lu notifies=%lu notify_ns=%lu\n",
	       rw_name(&b), b.bs, b.qd, ops,
	       bytes, us, ops * 1000000 / us, bytes * 1000000 / 1024 / us, b.lat_sum / b.lat_n, hist_pct(&b, 50),
	       hist_pct(&b, 99), b.lat_max, vq.kicks, vq.notifies,
	       vq.notifies > notifies0 ? tsc_to_ns(notify_tsc) / (vq.notifies - notifies0) : 0);
	console_flush();
	bench_host_sync(b.sync);
	return TEST_PASS;
}
