/* virtio-blk driver (virtio 1.2 §5.2) and the blk_* tests.
 *
 * Every test finds its disk itself: the first writable virtio-blk device
 * (blk_ro: the first one offering VIRTIO_BLK_F_RO).  Data written carries a
 * per-sector header (magic, sector number, run seed, checksum of the rest),
 * so a read-back can tell a torn, stale or misplaced sector apart.
 */
#include "virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_GEOMETRY     4
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_CONFIG_WCE   11
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_WZ_FLAG_UNMAP 1
#define VIRTIO_BLK_ID_BYTES 20

/* Configuration space offsets (§5.2.4). */
#define CFG_CAPACITY          0
#define CFG_SIZE_MAX          8
#define CFG_SEG_MAX           12
#define CFG_BLK_SIZE          20
#define CFG_WRITEBACK         32
#define CFG_MAX_DISCARD_SECT  36
#define CFG_MAX_DISCARD_SEG   40
#define CFG_DISCARD_ALIGN     44
#define CFG_MAX_WZ_SECT       48
#define CFG_MAX_WZ_SEG        52
#define CFG_WZ_MAY_UNMAP      56

#define SECTOR 512u
#define IO_TIMEOUT_US (5 * 1000 * 1000)

#define BLK_WANT (BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) |                  \
		  BIT(VIRTIO_BLK_F_GEOMETRY) | BIT(VIRTIO_BLK_F_RO) | BIT(VIRTIO_BLK_F_BLK_SIZE) | \
		  BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_TOPOLOGY) |                      \
		  BIT(VIRTIO_BLK_F_CONFIG_WCE) | BIT(VIRTIO_BLK_F_DISCARD) |                  \
		  BIT(VIRTIO_BLK_F_WRITE_ZEROES) | BIT(VIRTIO_F_INDIRECT_DESC) |              \
		  BIT(VIRTIO_F_EVENT_IDX))

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_dwz_seg { /* discard / write zeroes */
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* One request's driver-owned memory (device-visible header and status). */
struct blk_req {
	struct blk_hdr hdr;
	uint8_t status;
	bool busy;
	uint32_t len;      /* used length reported */
	uint32_t in_bytes; /* device-writable bytes offered (data + status) */
	uint64_t tag;      /* caller's */
};

struct blk {
	struct virtio_dev *dev;
	struct virtq vq;
	uint64_t capacity;
	uint32_t size_max, seg_max;
	struct blk_req *reqs;
	unsigned nreqs;
	const char *bad; /* protocol violation seen (used length, ...) */
};

/* ---- driver ---- */

static struct virtio_dev *blk_dev(bool ro)
{
	for (int i = 0;; i++) {
		struct virtio_dev *d = virtio_find(VIRTIO_ID_BLOCK, i);
		if (!d || !!(d->offered & BIT(VIRTIO_BLK_F_RO)) == ro)
			return d;
	}
}

static int blk_open(struct blk *b, bool ro, bool irq, uint64_t want, uint16_t qsize, const char **why)
{
	memset(b, 0, sizeof(*b));
	b->dev = blk_dev(ro);
	if (!b->dev) {
		*why = ro ? "no read-only virtio-blk device" : "no writable virtio-blk device";
		return -1;
	}
	if (virtio_negotiate(b->dev, want, why))
		return -1;
	b->capacity = virtio_config64(b->dev, CFG_CAPACITY);
	b->size_max = virtio_has(b->dev, VIRTIO_BLK_F_SIZE_MAX) ? virtio_config32(b->dev, CFG_SIZE_MAX) : 0;
	b->seg_max = virtio_has(b->dev, VIRTIO_BLK_F_SEG_MAX) ? virtio_config32(b->dev, CFG_SEG_MAX) : 0;
	if (virtq_setup(&b->vq, b->dev, 0, qsize, why))
		return -1;
	b->nreqs = b->vq.num;
	b->reqs = alloc(sizeof(*b->reqs) * b->nreqs, 64);
	if (!b->reqs) {
		*why = "out of memory";
		return -1;
	}
	virtio_driver_ok(b->dev);
	virtq_irq(&b->vq, irq);
	return 0;
}

/* Queue one request: header, data segments, status.  Data segments are
 * device-writable for IN and GET_ID, readable otherwise.  NULL if the
 * ring (or request pool) is full. */
static struct blk_req *blk_submit(struct blk *b, uint32_t type, uint64_t sector,
				  const struct vq_seg *data, unsigned ndata, unsigned flags, uint64_t tag)
{
	struct blk_req *r = NULL;
	for (unsigned i = 0; i < b->nreqs && !r; i++)
		if (!b->reqs[i].busy)
			r = &b->reqs[i];
	struct vq_seg s[VQ_MAX_INDIRECT + 2];
	if (!r || ndata > VQ_MAX_INDIRECT)
		return NULL;
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	r->hdr = (struct blk_hdr){ .type = type, .sector = sector };
	r->status = 0xff;
	r->in_bytes = 1;
	s[0] = (struct vq_seg){ &r->hdr, sizeof(r->hdr), VQ_OUT };
	for (unsigned i = 0; i < ndata; i++) {
		s[1 + i] = data[i];
		s[1 + i].dir = in ? VQ_IN : VQ_OUT;
		if (in)
			r->in_bytes += data[i].len;
	}
	s[1 + ndata] = (struct vq_seg){ &r->status, 1, VQ_IN };
	if (virtq_add(&b->vq, s, ndata + 2, r, flags))
		return NULL;
	r->busy = true;
	r->tag = tag;
	return r;
}

/* Next completed request (waiting up to IO_TIMEOUT_US), or NULL. */
static struct blk_req *blk_reap(struct blk *b)
{
	if (!virtq_has_used(&b->vq) && !virtq_wait(&b->vq, IO_TIMEOUT_US))
		return NULL;
	uint32_t len = 0;
	struct blk_req *r = virtq_get(&b->vq, &len);
	if (!r)
		return NULL;
	r->busy = false;
	r->len = len;
	if (r->status == VIRTIO_BLK_S_OK && len != r->in_bytes && !b->bad)
		b->bad = "used length differs from the bytes the device wrote";
	return r;
}

/* Synchronous request on one contiguous buffer (len 0: none).  Returns the
 * status byte, or -1 on timeout / ring trouble. */
static int blk_sync(struct blk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct vq_seg s = { buf, len, VQ_OUT };
	if (!blk_submit(b, type, sector, &s, len ? 1 : 0, 0, 0))
		return -1;
	virtq_kick(&b->vq);
	struct blk_req *r = blk_reap(b);
	return r ? r->status : -1;
}

/* ---- data patterns ---- */

#define SECT_MAGIC 0x54434553524d4245ull /* "EMBRSECT" */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t payload_sum(const uint64_t *w)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (unsigned i = 4; i < SECTOR / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

static void pattern_fill(void *buf, uint64_t sector, unsigned nsect, uint64_t seed)
{
	for (unsigned s = 0; s < nsect; s++) {
		uint64_t *w = (uint64_t *)((char *)buf + (size_t)s * SECTOR);
		uint64_t sec = sector + s;
		w[0] = SECT_MAGIC;
		w[1] = sec;
		w[2] = seed;
		for (unsigned i = 4; i < SECTOR / 8; i++)
			w[i] = mix64(seed ^ (sec << 16) ^ i);
		w[3] = payload_sum(w);
	}
}

/* NULL if buf holds the pattern for [sector, +nsect), else why not. */
static const char *pattern_check(const void *buf, uint64_t sector, unsigned nsect, uint64_t seed,
				 char *why, size_t whysz)
{
	for (unsigned s = 0; s < nsect; s++) {
		const uint64_t *w = (const uint64_t *)((const char *)buf + (size_t)s * SECTOR);
		uint64_t sec = sector + s;
		if (w[0] != SECT_MAGIC)
			snprintf(why, whysz, "sector %lu: no pattern header (0x%lx): never written or zeroed", sec, w[0]);
		else if (w[3] != payload_sum(w))
			snprintf(why, whysz, "sector %lu: checksum mismatch (torn or corrupted data)", sec);
		else if (w[1] != sec)
			snprintf(why, whysz, "sector %lu: holds the data of sector %lu (misplaced I/O)", sec, w[1]);
		else if (w[2] != seed)
			snprintf(why, whysz, "sector %lu: stale data (seed 0x%lx, want 0x%lx)", sec, w[2], seed);
		else if (w[4] != mix64(seed ^ (sec << 16) ^ 4))
			snprintf(why, whysz, "sector %lu: payload differs", sec);
		else
			continue;
		return why;
	}
	return NULL;
}

static bool all_zero(const void *buf, size_t n)
{
	const uint64_t *w = buf;
	for (size_t i = 0; i < n / 8; i++)
		if (w[i])
			return false;
	return true;
}

static uint64_t run_seed(void) { return mix64(rdtsc()) | 1; }

/* Split [buf, +len) into segments of at most size_max bytes. */
static unsigned split_segs(const struct blk *b, void *buf, uint32_t len, struct vq_seg *s, unsigned max)
{
	uint32_t step = b->size_max ? b->size_max & ~(SECTOR - 1) : len;
	if (!step)
		step = SECTOR;
	unsigned n = 0;
	for (uint32_t off = 0; off < len && n < max; off += step)
		s[n++] = (struct vq_seg){ (char *)buf + off, MIN(step, len - off), VQ_OUT };
	return n;
}

/* Write (or read and check) the pattern over [first, first+count) in chunks
 * of `chunk` sectors with up to `depth` requests in flight. */
static enum test_result stream(struct blk *b, uint32_t type, uint64_t first, uint64_t count,
			       unsigned chunk, unsigned depth, uint64_t seed)
{
	char why[160];
	void *bufs[32];
	bool busy[32] = { false };
	depth = MIN(depth, 32u);
	for (unsigned i = 0; i < depth; i++)
		if (!(bufs[i] = alloc((size_t)chunk * SECTOR, 4096)))
			return fail("out of memory");
	uint64_t next = first, end = first + count, done = 0;
	unsigned inflight = 0;
	while (done < count) {
		bool added = false;
		while (next < end && inflight < depth) {
			unsigned slot = 0;
			while (busy[slot])
				slot++;
			unsigned n = (unsigned)MIN((uint64_t)chunk, end - next);
			if (type == VIRTIO_BLK_T_OUT)
				pattern_fill(bufs[slot], next, n, seed);
			struct vq_seg s[VQ_MAX_INDIRECT];
			unsigned ns = split_segs(b, bufs[slot], n * SECTOR, s, b->seg_max ? MIN(b->seg_max, 60u) : 60u);
			if (!blk_submit(b, type, next, s, ns, VQ_ADD_INDIRECT, slot | next << 8))
				break;
			busy[slot] = true;
			inflight++;
			next += n;
			added = true;
		}
		if (added)
			virtq_kick(&b->vq);
		struct blk_req *r = blk_reap(b);
		if (!r)
			return fail("%s of sector %lu..: no completion within %u s (%u in flight)%s%s",
				    type == VIRTIO_BLK_T_OUT ? "write" : "read", next, IO_TIMEOUT_US / 1000000,
				    inflight, b->vq.error ? ": " : "", b->vq.error ? b->vq.error : "");
		unsigned slot = r->tag & 0xff;
		uint64_t sec = r->tag >> 8;
		unsigned n = (unsigned)MIN((uint64_t)chunk, end - sec);
		busy[slot] = false;
		inflight--;
		done += n;
		if (r->status != VIRTIO_BLK_S_OK)
			return fail("%s of %u sectors at %lu: status %u", type == VIRTIO_BLK_T_OUT ? "write" : "read",
				    n, sec, r->status);
		if (type == VIRTIO_BLK_T_IN && pattern_check(bufs[slot], sec, n, seed, why, sizeof(why)))
			return fail("%s", why);
	}
	if (b->bad)
		return fail("%s", b->bad);
	return TEST_PASS;
}

static const char *no_rw_blk(void) { return blk_dev(false) ? NULL : "no writable virtio-blk device"; }
static const char *no_ro_blk(void) { return blk_dev(true) ? NULL : "no read-only virtio-blk device"; }

#define OPEN_OR_FAIL(b, ro, irq, want, qsize)                      \
	do {                                                       \
		const char *why_;                                  \
		if (blk_open(b, ro, irq, want, qsize, &why_))      \
			return fail("init: %s", why_);             \
	} while (0)

/* ---- tests ---- */

/* Whole disk (up to 64 MiB): pattern written in 64 KiB requests, read back
 * in 28 KiB ones (crossing the write boundaries), 8 in flight, polled;
 * then reads at and past the end of the disk must fail. */
TESTCASE(blk_rw, no_rw_blk, 0)
{
	static struct blk b;
	OPEN_OR_FAIL(&b, false, false, BLK_WANT, 0);
	if (b.capacity < 64)
		return fail("capacity %lu sectors: too small to test", b.capacity);
	uint64_t n = MIN(b.capacity, 131072ull), seed = run_seed();
	uint64_t t0 = now_us();
	enum test_result r = stream(&b, VIRTIO_BLK_T_OUT, 0, n, 128, 8, seed);
	if (r != TEST_PASS)
		return r;
	uint64_t t1 = now_us();
	if ((r = stream(&b, VIRTIO_BLK_T_IN, 0, n, 56, 8, seed)) != TEST_PASS)
		return r;
	uint64_t t2 = now_us();
	char *buf = alloc(2 * SECTOR, 4096);
	int st = blk_sync(&b, VIRTIO_BLK_T_IN, b.capacity - 1, buf, SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("read of the last sector %lu: status %d", b.capacity - 1, st);
	st = blk_sync(&b, VIRTIO_BLK_T_IN, b.capacity - 1, buf, 2 * SECTOR);
	if (st == VIRTIO_BLK_S_OK || st < 0)
		return fail("read of 2 sectors from the last one (past the end): status %d, want IOERR", st);
	st = blk_sync(&b, VIRTIO_BLK_T_IN, b.capacity, buf, SECTOR);
	if (st == VIRTIO_BLK_S_OK || st < 0)
		return fail("read at sector %lu (= capacity): status %d, want IOERR", b.capacity, st);
	info("%lu sectors: write %lu us, read+verify %lu us; %lu kicks, %lu notifies",
	     n, t1 - t0, t2 - t1, b.vq.kicks, b.vq.notifies);
	return TEST_PASS;
}

/* Scatter/gather: requests of many segments of odd sizes at odd places
 * (crossing pages), read back with a different split; header+data and
 * data+status in shared descriptors (VERSION_1 framing freedom); direct and
 * (when offered) indirect descriptors; a request with seg_max segments. */
static enum test_result sg_roundtrip(struct blk *b, uint64_t sector, const uint32_t *wsz, unsigned nw,
				     const uint32_t *rsz, unsigned nr, unsigned flags, const char *what)
{
	char why[160];
	uint32_t total = 0, rtotal = 0;
	for (unsigned i = 0; i < nw; i++)
		total += wsz[i];
	for (unsigned i = 0; i < nr; i++)
		rtotal += rsz[i];
	if (total != rtotal || total % SECTOR)
		return fail("%s: bad test layout", what);
	if (b->seg_max && (nw > b->seg_max || nr > b->seg_max))
		return TEST_PASS; /* device does not take that many; covered below */
	uint64_t seed = run_seed();
	size_t arena_sz = 2 * (size_t)total + (size_t)(nw + nr) * 0x800 + 0x4000;
	char *lin = alloc(total, 4096), *arena = alloc(arena_sz, 4096);
	if (!lin || !arena)
		return fail("out of memory");
	pattern_fill(lin, sector, total / SECTOR, seed);
	struct vq_seg s[VQ_MAX_INDIRECT];
	/* Scatter: segment i at an offset that straddles a page boundary. */
	uint32_t off = 0, aoff = 0x100;
	for (unsigned i = 0; i < nw; i++) {
		memcpy(arena + aoff, lin + off, wsz[i]);
		s[i] = (struct vq_seg){ arena + aoff, wsz[i], VQ_OUT };
		off += wsz[i];
		aoff = ALIGN_UP(aoff + wsz[i] + 0x11, 8u) + 0x7a0;
	}
	if (!blk_submit(b, VIRTIO_BLK_T_OUT, sector, s, nw, flags, 0))
		return fail("%s: write of %u segments did not fit the ring", what, nw);
	virtq_kick(&b->vq);
	struct blk_req *r = blk_reap(b);
	if (!r || r->status != VIRTIO_BLK_S_OK)
		return fail("%s: %u-segment write: %s %d", what, nw, r ? "status" : "timeout", r ? r->status : -1);
	memset(arena, 0xee, arena_sz);
	aoff = 0xe00;
	for (unsigned i = 0; i < nr; i++) {
		s[i] = (struct vq_seg){ arena + aoff, rsz[i], VQ_IN };
		aoff = ALIGN_UP(aoff + rsz[i] + 0x2f, 4u) + 0x3c4;
	}
	if (!blk_submit(b, VIRTIO_BLK_T_IN, sector, s, nr, flags, 0))
		return fail("%s: read of %u segments did not fit the ring", what, nr);
	virtq_kick(&b->vq);
	r = blk_reap(b);
	if (!r || r->status != VIRTIO_BLK_S_OK)
		return fail("%s: %u-segment read: %s %d", what, nr, r ? "status" : "timeout", r ? r->status : -1);
	off = 0;
	for (unsigned i = 0; i < nr; i++) {
		memcpy(lin + off, (const void *)s[i].addr, rsz[i]);
		off += rsz[i];
	}
	if (pattern_check(lin, sector, total / SECTOR, seed, why, sizeof(why)))
		return fail("%s: %s", what, why);
	if (b->bad)
		return fail("%s: %s", what, b->bad);
	return TEST_PASS;
}

/* One descriptor holding header + data (write), one holding data + status
 * (read): legal with VERSION_1 (§2.6.4 message framing). */
static enum test_result framing(struct blk *b, uint64_t sector)
{
	char why[160];
	uint64_t seed = run_seed();
	const uint32_t n = 8 * SECTOR;
	struct blk_hdr *wh = alloc(sizeof(*wh) + n, 4096);
	uint8_t *wst = alloc(1, 16), *rd = alloc(n + 1, 4096);
	struct blk_hdr *rh = alloc(sizeof(*rh), 16);
	if (!wh || !wst || !rd || !rh)
		return fail("out of memory");
	*wh = (struct blk_hdr){ .type = VIRTIO_BLK_T_OUT, .sector = sector };
	pattern_fill(wh + 1, sector, n / SECTOR, seed);
	*wst = 0xff;
	struct vq_seg ws[2] = { { wh, sizeof(*wh) + n, VQ_OUT }, { wst, 1, VQ_IN } };
	if (virtq_add(&b->vq, ws, 2, wst, 0))
		return fail("framing: ring full");
	virtq_kick(&b->vq);
	uint32_t len = 0;
	if (!virtq_wait(&b->vq, IO_TIMEOUT_US) || virtq_get(&b->vq, &len) != wst || *wst != VIRTIO_BLK_S_OK)
		return fail("framing: write with header and data in one descriptor: status %u", *wst);
	*rh = (struct blk_hdr){ .type = VIRTIO_BLK_T_IN, .sector = sector };
	rd[n] = 0xff;
	struct vq_seg rs[2] = { { rh, sizeof(*rh), VQ_OUT }, { rd, n + 1, VQ_IN } };
	if (virtq_add(&b->vq, rs, 2, rd, 0))
		return fail("framing: ring full");
	virtq_kick(&b->vq);
	if (!virtq_wait(&b->vq, IO_TIMEOUT_US) || virtq_get(&b->vq, &len) != rd || rd[n] != VIRTIO_BLK_S_OK)
		return fail("framing: read with data and status in one descriptor: status %u", rd[n]);
	if (len != n + 1)
		return fail("framing: read used length %u, want %u", len, n + 1);
	if (pattern_check(rd, sector, n / SECTOR, seed, why, sizeof(why)))
		return fail("framing: %s", why);
	return TEST_PASS;
}

TESTCASE(blk_multiseg, no_rw_blk, 0)
{
	static struct blk b;
	static const uint32_t w1[] = { 512, 1024, 4096, 512, 2048, 3584, 512, 4096 };
	static const uint32_t r1[] = { 2048, 512, 512, 7168, 1536, 4608 };
	static const uint32_t w2[] = { 100, 412, 1000, 24, 3560, 3096 };   /* not sector multiples */
	static const uint32_t r2[] = { 4095, 1, 1, 511, 3584 };
	uint32_t many[VQ_MAX_INDIRECT];
	OPEN_OR_FAIL(&b, false, false, BLK_WANT, 0);
	if (b.capacity < 256)
		return fail("capacity %lu sectors: too small", b.capacity);
	enum test_result r;
	unsigned variants = b.vq.indirect ? 2 : 1;
	for (unsigned v = 0; v < variants; v++) {
		unsigned fl = v ? VQ_ADD_INDIRECT : 0;
		const char *what = v ? "indirect" : "direct";
		if ((r = sg_roundtrip(&b, 8, w1, ARRAY_SIZE(w1), r1, ARRAY_SIZE(r1), fl, what)) != TEST_PASS ||
		    (r = sg_roundtrip(&b, 77, w2, ARRAY_SIZE(w2), r2, ARRAY_SIZE(r2), fl, what)) != TEST_PASS)
			return r;
		/* As many segments as the device takes (at most what one
		 * indirect table or a quarter of the ring holds), 512 each. */
		unsigned nmax = MIN((unsigned)VQ_MAX_INDIRECT - 2, v ? 62u : b.vq.num / 4u);
		if (b.seg_max)
			nmax = MIN(nmax, b.seg_max);
		for (unsigned i = 0; i < nmax; i++)
			many[i] = SECTOR;
		if ((r = sg_roundtrip(&b, 131, many, nmax, many, nmax, fl, what)) != TEST_PASS)
			return r;
	}
	if ((r = framing(&b, 200)) != TEST_PASS)
		return r;
	info("seg_max %u, size_max %u, indirect %s", b.seg_max, b.size_max, b.vq.indirect ? "yes" : "no");
	return TEST_PASS;
}

/* 32 requests in flight at once (one kick), interrupt-driven: writes all
 * over the disk, then reads of the same, then 256 more keeping 32 queued. */
TESTCASE(blk_inflight32, no_rw_blk, 0)
{
	enum { N = 32, NS = 8 };
	static struct blk b;
	char why[160];
	OPEN_OR_FAIL(&b, false, true, BLK_WANT, 0);
	unsigned per_req = b.vq.indirect ? 1 : 3;
	if (b.vq.num < N * per_req)
		return fail("queue of %u descriptors cannot hold %u requests", b.vq.num, N);
	if (b.capacity < N * NS * 2)
		return fail("capacity %lu sectors: too small", b.capacity);
	uint64_t stride = (b.capacity / N) & ~(uint64_t)(NS - 1), seed = run_seed();
	char *buf = alloc((size_t)N * NS * SECTOR, 4096);
	bool seen[N];
	if (!buf)
		return fail("out of memory");
	uint64_t irq0 = virtio_irq_count(b.dev), t0 = now_us();
	for (int pass = 0; pass < 2; pass++) {
		uint32_t type = pass ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
		if (pass)
			memset(buf, 0, (size_t)N * NS * SECTOR);
		for (unsigned i = 0; i < N; i++) {
			char *p = buf + (size_t)i * NS * SECTOR;
			if (!pass)
				pattern_fill(p, i * stride, NS, seed);
			struct vq_seg s = { p, NS * SECTOR, VQ_OUT };
			if (!blk_submit(&b, type, i * stride, &s, 1, 0, i))
				return fail("request %u of %u did not fit", i, N);
			seen[i] = false;
		}
		if (virtq_in_flight(&b.vq) != N)
			return fail("%u in flight, want %u", virtq_in_flight(&b.vq), N);
		virtq_kick(&b.vq);
		for (unsigned k = 0; k < N; k++) {
			struct blk_req *r = blk_reap(&b);
			if (!r)
				return fail("%s: %u of %u completed within %u s (interrupts: %lu)%s%s",
					    pass ? "reads" : "writes", k, N, IO_TIMEOUT_US / 1000000,
					    virtio_irq_count(b.dev) - irq0, b.vq.error ? ": " : "",
					    b.vq.error ? b.vq.error : "");
			if (seen[r->tag])
				return fail("request %lu completed twice", r->tag);
			seen[r->tag] = true;
			if (r->status != VIRTIO_BLK_S_OK)
				return fail("request %lu: status %u", r->tag, r->status);
		}
		if (pass) {
			for (unsigned i = 0; i < N; i++)
				if (pattern_check(buf + (size_t)i * NS * SECTOR, i * stride, NS, seed, why, sizeof(why)))
					return fail("%s", why);
		}
	}
	uint64_t t1 = now_us();
	/* Streaming: 256 reads of the same sectors, refilling to 32. */
	unsigned submitted = 0, completed = 0;
	while (completed < 256) {
		bool added = false;
		while (submitted < 256 && virtq_in_flight(&b.vq) < N) {
			unsigned i = submitted % N;
			struct vq_seg s = { buf + (size_t)i * NS * SECTOR, NS * SECTOR, VQ_OUT };
			if (!blk_submit(&b, VIRTIO_BLK_T_IN, i * stride, &s, 1, 0, i))
				break;
			submitted++;
			added = true;
		}
		if (added)
			virtq_kick(&b.vq);
		struct blk_req *r = blk_reap(&b);
		if (!r)
			return fail("streaming: %u of 256 completed", completed);
		if (r->status != VIRTIO_BLK_S_OK)
			return fail("streaming read %lu: status %u", r->tag, r->status);
		completed++;
	}
	uint64_t t2 = now_us();
	uint64_t irqs = virtio_irq_count(b.dev) - irq0;
	if (irqs == 0)
		return fail("all completions arrived without a single interrupt");
	if (b.bad)
		return fail("%s", b.bad);
	info("2x%u requests in %lu us, 256 streamed in %lu us; %lu interrupts, %lu kicks, %lu notifies",
	     N, t1 - t0, t2 - t1, irqs, b.vq.kicks, b.vq.notifies);
	return TEST_PASS;
}

TESTCASE(blk_flush, no_rw_blk, 0)
{
	static struct blk b;
	char why[160];
	OPEN_OR_FAIL(&b, false, false, BLK_WANT, 0);
	if (!virtio_has(b.dev, VIRTIO_BLK_F_FLUSH))
		return skip("VIRTIO_BLK_F_FLUSH not offered");
	uint64_t seed = run_seed();
	char *buf = alloc(8 * SECTOR, 4096);
	pattern_fill(buf, 40, 8, seed);
	int st = blk_sync(&b, VIRTIO_BLK_T_OUT, 40, buf, 8 * SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("write: status %d", st);
	st = blk_sync(&b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	if (st != VIRTIO_BLK_S_OK)
		return fail("flush: status %d", st);
	if (b.bad)
		return fail("flush: %s", b.bad);
	memset(buf, 0, 8 * SECTOR);
	st = blk_sync(&b, VIRTIO_BLK_T_IN, 40, buf, 8 * SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("read after flush: status %d", st);
	if (pattern_check(buf, 40, 8, seed, why, sizeof(why)))
		return fail("after flush: %s", why);
	if (virtio_has(b.dev, VIRTIO_BLK_F_CONFIG_WCE))
		info("writeback cache: %u", virtio_config8(b.dev, CFG_WRITEBACK));
	return TEST_PASS;
}

TESTCASE(blk_getid, no_rw_blk, 0)
{
	static struct blk b;
	OPEN_OR_FAIL(&b, false, false, BLK_WANT, 0);
	char *id = alloc(VIRTIO_BLK_ID_BYTES + 1, 64);
	memset(id, 0xee, VIRTIO_BLK_ID_BYTES);
	int st = blk_sync(&b, VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES);
	if (st != VIRTIO_BLK_S_OK)
		return fail("GET_ID: status %d", st);
	if (b.bad)
		return fail("GET_ID: %s", b.bad);
	id[VIRTIO_BLK_ID_BYTES] = 0; /* an ID of exactly 20 bytes has no NUL */
	for (size_t i = 0; id[i]; i++)
		if (id[i] < 32 || id[i] > 126)
			return fail("GET_ID: byte %u is 0x%02x: not a printable NUL-terminated string",
				    (unsigned)i, (uint8_t)id[i]);
	if (boot.blk_id && strcmp(id, boot.blk_id))
		return fail("GET_ID: \"%s\", want \"%s\"", id, boot.blk_id);
	if (!boot.blk_id && !id[0])
		return fail("GET_ID: empty ID");
	info("id \"%s\"", id);
	return TEST_PASS;
}

/* Write the pattern over [base, base+64), apply `type` to two ranges, and
 * check the sectors around them; *zeroed says whether the ranges must now
 * read as zeroes. */
static enum test_result dwz_test(uint32_t type, unsigned feature, const char *name)
{
	static struct blk b;
	char why[160];
	OPEN_OR_FAIL(&b, false, false, BLK_WANT, 0);
	if (!virtio_has(b.dev, feature))
		return skip("%s not offered", name);
	bool wz = type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint32_t max_sect = virtio_config32(b.dev, wz ? CFG_MAX_WZ_SECT : CFG_MAX_DISCARD_SECT);
	uint32_t max_seg = virtio_config32(b.dev, wz ? CFG_MAX_WZ_SEG : CFG_MAX_DISCARD_SEG);
	uint32_t align = wz ? 1 : virtio_config32(b.dev, CFG_DISCARD_ALIGN);
	bool may_unmap = wz && virtio_config8(b.dev, CFG_WZ_MAY_UNMAP);
	/* each range is `unit` sectors, a multiple of the discard alignment */
	uint32_t unit = align > 8 && !(align & (align - 1)) ? align : 8;
	uint64_t base = ALIGN_UP(512ull, (uint64_t)unit);
	uint32_t span = 8 * unit;
	if (max_sect < unit || max_seg == 0)
		return fail("config: max_%s_sectors %u, max_%s_seg %u", wz ? "write_zeroes" : "discard", max_sect,
			    wz ? "write_zeroes" : "discard", max_seg);
	if (base + span > b.capacity)
		return skip("disk too small for alignment %u", align);
	uint64_t seed = run_seed();
	char *buf = alloc((size_t)span * SECTOR, 4096);
	struct blk_dwz_seg *seg = alloc(2 * sizeof(*seg), 64);
	pattern_fill(buf, base, span, seed);
	int st = blk_sync(&b, VIRTIO_BLK_T_OUT, base, buf, span * SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("pattern write: status %d", st);
	/* ranges [unit, 3 unit) and [5 unit, 6 unit) of the span */
	seg[0] = (struct blk_dwz_seg){ base + unit, 2 * unit, 0 };
	seg[1] = (struct blk_dwz_seg){ base + 5 * unit, unit, may_unmap ? VIRTIO_BLK_WZ_FLAG_UNMAP : 0 };
	unsigned nseg = max_seg >= 2 ? 2 : 1;
	if (nseg == 1) {
		st = blk_sync(&b, type, 0, seg, sizeof(*seg));
		if (st == VIRTIO_BLK_S_OK)
			st = blk_sync(&b, type, 0, seg + 1, sizeof(*seg));
	} else {
		st = blk_sync(&b, type, 0, seg, 2 * sizeof(*seg));
	}
	if (st != VIRTIO_BLK_S_OK)
		return fail("%s of %u range(s): status %d", name, nseg, st);
	if (b.bad)
		return fail("%s: %s", name, b.bad);
	/* Flags the device must refuse with UNSUPP (§5.2.6.2): an unknown
	 * flag; for discard, the unmap flag. */
	struct blk_dwz_seg *bad = alloc(sizeof(*bad), 64);
	*bad = (struct blk_dwz_seg){ base + unit, unit, 2 };
	st = blk_sync(&b, type, 0, bad, sizeof(*bad));
	if (st != VIRTIO_BLK_S_UNSUPP)
		return fail("%s with unknown flag 0x2: status %d, want UNSUPP (2)", name, st);
	if (!wz) {
		bad->flags = VIRTIO_BLK_WZ_FLAG_UNMAP;
		st = blk_sync(&b, type, 0, bad, sizeof(*bad));
		if (st != VIRTIO_BLK_S_UNSUPP)
			return fail("discard with the unmap flag: status %d, want UNSUPP (2)", st);
	}
	memset(buf, 0xee, (size_t)span * SECTOR);
	st = blk_sync(&b, VIRTIO_BLK_T_IN, base, buf, span * SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("read back: status %d", st);
	for (uint32_t s = 0; s < span; s += unit) {
		bool hit = (s >= unit && s < 3 * unit) || (s >= 5 * unit && s < 6 * unit);
		char *p = buf + (size_t)s * SECTOR;
		if (!hit && pattern_check(p, base + s, unit, seed, why, sizeof(why)))
			return fail("sector next to the %s range: %s", name, why);
		if (hit && wz && !all_zero(p, (size_t)unit * SECTOR))
			return fail("sector %lu after write zeroes: not zero", base + s);
	}
	info("max sectors %u, max segments %u%s", max_sect, max_seg, wz ? (may_unmap ? ", may unmap" : "") : "");
	return TEST_PASS;
}

TESTCASE(blk_discard, no_rw_blk, 0)
{
	return dwz_test(VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_F_DISCARD, "discard");
}

TESTCASE(blk_write_zeroes, no_rw_blk, 0)
{
	return dwz_test(VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_F_WRITE_ZEROES, "write zeroes");
}

/* The runner's read-only disk starts each of its first 8 sectors with
 * "ember-ro-sector-N\n".  Reads work; a write fails with IOERR and changes
 * nothing. */
#define RO_MAGIC "ember-ro-sector-"
TESTCASE(blk_ro, no_ro_blk, 0)
{
	static struct blk b;
	OPEN_OR_FAIL(&b, true, false, BLK_WANT, 0);
	if (!virtio_has(b.dev, VIRTIO_BLK_F_RO))
		return fail("VIRTIO_BLK_F_RO offered but not negotiated");
	char *buf = alloc(8 * SECTOR, 4096), *again = alloc(8 * SECTOR, 4096), *w = alloc(SECTOR, 4096);
	int st = blk_sync(&b, VIRTIO_BLK_T_IN, 0, buf, 8 * SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("read: status %d", st);
	for (unsigned i = 0; i < 8; i++) {
		char want[32];
		int n = snprintf(want, sizeof(want), RO_MAGIC "%u\n", i);
		if (memcmp(buf + i * SECTOR, want, (size_t)n))
			return fail("sector %u does not start with \"" RO_MAGIC "%u\"", i, i);
	}
	memset(w, 0x5a, SECTOR);
	st = blk_sync(&b, VIRTIO_BLK_T_OUT, 1, w, SECTOR);
	if (st != VIRTIO_BLK_S_IOERR)
		return fail("write to the read-only disk: status %d, want IOERR (1)", st);
	st = blk_sync(&b, VIRTIO_BLK_T_IN, 0, again, 8 * SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("read after the refused write: status %d", st);
	if (memcmp(buf, again, 8 * SECTOR))
		return fail("the refused write changed the disk");
	if (b.bad)
		return fail("%s", b.bad);
	return TEST_PASS;
}

/* A full host filesystem (TF_MANUAL; tests/integration/operator.sh puts
 * the image, sparse and larger than the filesystem, on a small tmpfs).
 * The whole disk (up to 512 MiB) is written once in 64 KiB requests, 8 in
 * flight.  Every request must complete, with OK or IOERR: a host ENOSPC
 * must reach the driver as VIRTIO_BLK_S_IOERR (§5.2.6: "device or driver
 * error"), never as a hang, another status or a dead device.  Then the
 * device must go on: sector 0 reads back what was written there, a
 * rewrite of it (space the host already has) succeeds and reads back,
 * and a FLUSH gets an answer (OK or IOERR).  INFO: the statuses counted;
 * the runner checks that IOERRs happened and that ember counted as many. */
TESTCASE(blk_fill, no_rw_blk, TF_MANUAL)
{
	static struct blk b;
	char why[160];
	OPEN_OR_FAIL(&b, false, false, BLK_WANT, 0);
	enum { CHUNK = 128, DEPTH = 8 };
	void *bufs[DEPTH];
	bool busy[DEPTH] = { false };
	for (unsigned i = 0; i < DEPTH; i++)
		if (!(bufs[i] = alloc((size_t)CHUNK * SECTOR, 4096)))
			return fail("out of memory");
	uint64_t end = MIN(b.capacity, 1ull << 20), next = 0, seed = run_seed();
	uint64_t ok = 0, ioerr = 0, first_err = 0, t0 = now_us();
	unsigned inflight = 0;
	int first_status = -1;
	while (next < end || inflight) {
		bool added = false;
		while (next < end && inflight < DEPTH) {
			unsigned slot = 0;
			while (busy[slot])
				slot++;
			unsigned n = (unsigned)MIN((uint64_t)CHUNK, end - next);
			pattern_fill(bufs[slot], next, n, seed);
			struct vq_seg s[VQ_MAX_INDIRECT];
			unsigned ns = split_segs(&b, bufs[slot], n * SECTOR, s,
						 b.seg_max ? MIN(b.seg_max, 60u) : 60u);
			if (!blk_submit(&b, VIRTIO_BLK_T_OUT, next, s, ns, VQ_ADD_INDIRECT, slot | next << 8))
				break;
			busy[slot] = true;
			inflight++;
			next += n;
			added = true;
		}
		if (added)
			virtq_kick(&b.vq);
		struct blk_req *r = blk_reap(&b);
		if (!r)
			return fail("write near sector %lu: no completion within %u s (%lu OK, %lu IOERR so far)",
				    next, IO_TIMEOUT_US / 1000000, ok, ioerr);
		uint64_t sec = r->tag >> 8;
		busy[r->tag & 0xff] = false;
		inflight--;
		if (sec == 0)
			first_status = r->status;
		if (r->status == VIRTIO_BLK_S_OK) {
			ok++;
		} else if (r->status == VIRTIO_BLK_S_IOERR) {
			if (!ioerr++ || sec < first_err)
				first_err = sec;
		} else {
			return fail("write of sector %lu: status %u, want OK or IOERR", sec, r->status);
		}
	}
	uint64_t t1 = now_us();
	if (first_status != VIRTIO_BLK_S_OK)
		return fail("the first write (sector 0) got status %d: the host had no room at all", first_status);
	char *buf = alloc((size_t)CHUNK * SECTOR, 4096);
	int st = blk_sync(&b, VIRTIO_BLK_T_IN, 0, buf, CHUNK * SECTOR);
	if (st != VIRTIO_BLK_S_OK)
		return fail("after the fill, a read of sector 0: status %d", st);
	if (pattern_check(buf, 0, CHUNK, seed, why, sizeof(why)))
		return fail("after the fill: %s", why);
	uint64_t seed2 = run_seed();
	pattern_fill(buf, 0, CHUNK, seed2);
	if ((st = blk_sync(&b, VIRTIO_BLK_T_OUT, 0, buf, CHUNK * SECTOR)) != VIRTIO_BLK_S_OK)
		return fail("after the fill, a rewrite of sector 0 (space the host has): status %d", st);
	memset(buf, 0, CHUNK * SECTOR);
	if ((st = blk_sync(&b, VIRTIO_BLK_T_IN, 0, buf, CHUNK * SECTOR)) != VIRTIO_BLK_S_OK)
		return fail("after the rewrite, a read of sector 0: status %d", st);
	if (pattern_check(buf, 0, CHUNK, seed2, why, sizeof(why)))
		return fail("after the rewrite: %s", why);
	int fl = -2;
	if (virtio_has(b.dev, VIRTIO_BLK_F_FLUSH) &&
	    (fl = blk_sync(&b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0)) != VIRTIO_BLK_S_OK && fl != VIRTIO_BLK_S_IOERR)
		return fail("FLUSH after the fill: status %d, want OK or IOERR", fl);
	if (b.bad)
		return fail("%s", b.bad);
	info("%lu sectors in %lu writes of %u KiB: ok=%lu ioerr=%lu first_ioerr_sector=%lu flush=%s; %lu us",
	     end, ok + ioerr, CHUNK / 2, ok, ioerr, ioerr ? first_err : 0,
	     fl == -2 ? "n/a" : fl == VIRTIO_BLK_S_OK ? "OK" : "IOERR", t1 - t0);
	return TEST_PASS;
}

/* ---- the I/O soak's disk half (soak.c) ---- */

static struct blk soak_blk;
static uint64_t soak_blk_bytes;

enum test_result blk_soak_open(void)
{
	OPEN_OR_FAIL(&soak_blk, false, true, BLK_WANT, 0);
	if (soak_blk.capacity < 4096)
		return fail("capacity %lu sectors: the soak wants at least 2 MiB", soak_blk.capacity);
	return TEST_PASS;
}

/* One round: a 1 MiB window (moving over the first 64 MiB) written with a
 * fresh pattern and read back verified, request size 4-64 KiB and 1-16 in
 * flight varying by round, interrupt-driven; a FLUSH every 8th round.  The
 * caller brackets it with heap_mark()/heap_release(). */
enum test_result blk_soak_round(uint64_t round)
{
	struct blk *b = &soak_blk;
	uint64_t span = MIN(b->capacity, 131072ull) - 2048, first = (round * 2048) % span;
	unsigned chunk = 8u << (round % 5), depth = 1 + (unsigned)(round % 16);
	uint64_t seed = run_seed();
	enum test_result r = stream(b, VIRTIO_BLK_T_OUT, first, 2048, chunk, depth, seed);
	if (r == TEST_PASS)
		r = stream(b, VIRTIO_BLK_T_IN, first, 2048, chunk, depth, seed);
	if (r == TEST_PASS && round % 8 == 7 && virtio_has(b->dev, VIRTIO_BLK_F_FLUSH)) {
		int st = blk_sync(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
		if (st != VIRTIO_BLK_S_OK)
			return fail("round %lu: FLUSH status %d", round, st);
	}
	if (r == TEST_PASS)
		soak_blk_bytes += 2 * 2048 * SECTOR;
	return r;
}

uint64_t blk_soak_bytes(void) { return soak_blk_bytes; }
