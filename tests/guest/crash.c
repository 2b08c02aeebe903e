/* crash_workload: the guest half of the crash-consistency test
 * (tests/integration/blk-crash.sh, docs/reliability.md).
 *
 *   ember.test=crash_workload testguest.crash_seed=N [testguest.crash_qd=Q]
 *       [testguest.crash_reqs=R] [testguest.crash_secs=S] [testguest.crash_ops=M]
 *       [testguest.crash_verify=1]
 *
 * On the first writable virtio-blk device: read the whole disk and print
 * its digest (so the host can check that a VM restarted on an image sees
 * what the host sees), then run the deterministic workload of
 * crashproto.h -- WRITE, WRITE_ZEROES (with and without unmap), DISCARD
 * (each only if offered) and FLUSH, Q requests in flight (default 8),
 * polled -- until R requests are done (0, the default: no limit) or S
 * seconds passed (default 60), with only the operations in the mask M
 * (bit 1 << enum crash_op; default all; WRITE and FLUSH always), reporting on serial what is submitted,
 * completed and durable (crashproto.h).  crash_verify=1: only the digest
 * pass, with a line per 64 KiB read, then END.  The host kills the VM at a random
 * moment and checks the image.  A manual test (never in "all"): without a
 * limit it only ends when killed or after S seconds.
 *
 * Durability (virtio 1.2 §5.2.6.1, as Linux's block layer uses it): a
 * FLUSH covers the writes that completed before it was submitted.  So when
 * a FLUSH is submitted the workload records the completed frontier -- the
 * lowest request number not yet completed -- and once the FLUSH completes
 * it reports that every request below it is durable.  Requests in flight,
 * or completed after the FLUSH was submitted, are not claimed.
 */
#include "crashproto.h"
#include "virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_WZ_FLAG_UNMAP  1
#define CFG_CAPACITY              0
#define CFG_SIZE_MAX              8
#define CFG_SEG_MAX               12
#define CFG_MAX_DISCARD_SECT      36
#define CFG_MAX_DISCARD_SEG       40
#define CFG_MAX_WZ_SECT           48
#define CFG_MAX_WZ_SEG            52

#define STALL_US    (5 * 1000 * 1000)
#define MAX_QD      32u
#define READ_CHUNK  128u          /* sectors per read of the digest pass */
/* Completion flags by request number modulo WINDOW: submission waits when
 * the oldest incomplete request is this far behind. */
#define WINDOW      65536u

struct creq {
	struct {
		uint32_t type;
		uint32_t reserved;
		uint64_t sector;
	} hdr;
	struct {
		uint64_t sector;
		uint32_t num_sectors;
		uint32_t flags;
	} seg[2];
	uint8_t status;
	bool busy;
	uint64_t idx;
	uint64_t frontier;   /* FLUSH: completed frontier at submission */
	struct crash_req q;
	uint8_t *buf;
};

struct crash {
	struct virtio_dev *dev;
	struct virtq vq;
	uint64_t seed, cap;
	unsigned ops, qd, inflight;
	struct creq *reqs;
	uint8_t *done;               /* WINDOW flags */
	uint64_t next;               /* next request number to submit */
	uint64_t frontier;           /* every request below it has completed */
	uint64_t durable;            /* reported durable frontier */
	uint64_t upto;               /* announced submission limit */
	uint64_t counts[CRASH_NOPS]; /* completed requests per operation */
};

static const char *no_rw_blk(void)
{
	for (int i = 0;; i++) {
		struct virtio_dev *d = virtio_find(VIRTIO_ID_BLOCK, i);
		if (!d)
			return "no writable virtio-blk device";
		if (!(d->offered & BIT(VIRTIO_BLK_F_RO)))
			return NULL;
	}
}

static uint64_t cmdline_u64(const char *key, uint64_t def, bool *present)
{
	char buf[32];
	const char *v = cmdline_value(key, buf, sizeof(buf));
	if (present)
		*present = v != NULL;
	return v ? parse_u64(v, &v) : def;
}

/* Wait for the next used buffer and return its request, or NULL after
 * STALL_US (with *why set). */
static struct creq *reap(struct crash *c, const char **why)
{
	uint32_t len;
	uint64_t dl = deadline_after_us(STALL_US);
	unsigned spins = 0;
	while (!virtq_has_used(&c->vq)) {
		cpu_relax();
		if (!(++spins & 1023) && deadline_passed(dl)) {
			*why = "no completion within 5 s";
			return NULL;
		}
	}
	struct creq *r = virtq_get(&c->vq, &len);
	if (!r || c->vq.error) {
		*why = c->vq.error ? c->vq.error : "used ring returned nothing";
		return NULL;
	}
	r->busy = false;
	c->inflight--;
	return r;
}

/* Digest of the whole disk (crashproto.h), READ_CHUNK sectors per read,
 * the qd slots' buffers in flight; with `chunks`, also one line per read
 * ("CRASH CHUNK s=SECTOR h=0x...", its sectors' sum) to find where a
 * digest differs.  0 and *why set on failure. */
static uint64_t disk_digest(struct crash *c, bool chunks, const char **why)
{
	uint64_t sum = 0, next = 0, left = c->cap;
	while (left) {
		bool added = false;
		for (unsigned i = 0; i < c->qd && next < c->cap; i++) {
			struct creq *r = &c->reqs[i];
			if (r->busy)
				continue;
			uint32_t n = (uint32_t)MIN((uint64_t)READ_CHUNK, c->cap - next);
			r->hdr.type = VIRTIO_BLK_T_IN;
			r->hdr.sector = next;
			r->q.r[0] = (struct crash_range){ next, n };
			r->status = 0xff;
			struct vq_seg s[3] = {
				{ &r->hdr, 16, VQ_OUT }, { r->buf, n * CRASH_SECTOR, VQ_IN }, { &r->status, 1, VQ_IN },
			};
			if (virtq_add(&c->vq, s, 3, r, 0)) {
				*why = "ring full";
				return 0;
			}
			r->busy = true;
			c->inflight++;
			next += n;
			added = true;
		}
		if (added)
			virtq_kick(&c->vq);
		struct creq *r = reap(c, why);
		if (!r)
			return 0;
		if (r->status != VIRTIO_BLK_S_OK) {
			*why = "a read of the digest pass failed";
			return 0;
		}
		uint64_t part = 0;
		for (uint32_t k = 0; k < r->q.r[0].count; k++)
			part += crash_sector_hash((const uint64_t *)(r->buf + (size_t)k * CRASH_SECTOR),
						  r->q.r[0].sector + k);
		sum += part;
		if (chunks)
			printf("CRASH CHUNK s=%lu h=0x%lx\n", r->q.r[0].sector, part);
		left -= r->q.r[0].count;
	}
	return sum;
}

/* Make request c->next available (not kicked).  Returns false if it has to
 * wait: a request in flight touches one of its sectors, or the completion
 * window is full. */
static bool submit_next(struct crash *c)
{
	struct crash_req q;
	if (c->next - c->frontier >= WINDOW)
		return false;
	crash_req(c->seed, c->next, c->cap, c->ops, &q);
	struct creq *r = NULL;
	for (unsigned i = 0; i < c->qd; i++) {
		if (!c->reqs[i].busy)
			r = r ? r : &c->reqs[i];
		else if (crash_overlap(&c->reqs[i].q, &q))
			return false;
	}
	if (!r)
		return false;
	if (c->next == c->upto) {
		/* Announce before submitting: the line is on the host's side
		 * (ember writes each complete line at once) before any request
		 * it allows can reach the disk. */
		c->upto += CRASH_UPTO_STEP;
		printf("CRASH UPTO u=%lu acked=%lu\n", c->upto, c->frontier);
	}
	struct vq_seg s[8];
	unsigned n = 0;
	r->q = q;
	r->idx = c->next;
	r->status = 0xff;
	r->hdr.reserved = 0;
	r->hdr.sector = 0;
	s[n++] = (struct vq_seg){ &r->hdr, 16, VQ_OUT };
	switch (q.op) {
	case CRASH_WRITE: {
		r->hdr.type = VIRTIO_BLK_T_OUT;
		r->hdr.sector = q.r[0].sector;
		for (uint32_t k = 0; k < q.r[0].count; k++)
			crash_fill((uint64_t *)(r->buf + (size_t)k * CRASH_SECTOR), c->seed, r->idx, q.r[0].sector + k);
		uint32_t off = 0;
		for (unsigned i = 0; i < q.nseg; i++) {
			s[n++] = (struct vq_seg){ r->buf + off, q.seg_len[i], VQ_OUT };
			off += q.seg_len[i];
		}
		break;
	}
	case CRASH_WRITE_ZEROES:
	case CRASH_WZ_UNMAP:
	case CRASH_DISCARD:
		r->hdr.type = q.op == CRASH_DISCARD ? VIRTIO_BLK_T_DISCARD : VIRTIO_BLK_T_WRITE_ZEROES;
		for (unsigned i = 0; i < q.nrange; i++) {
			r->seg[i].sector = q.r[i].sector;
			r->seg[i].num_sectors = q.r[i].count;
			r->seg[i].flags = q.op == CRASH_WZ_UNMAP ? VIRTIO_BLK_WZ_FLAG_UNMAP : 0;
		}
		s[n++] = (struct vq_seg){ r->seg, 16 * q.nrange, VQ_OUT };
		break;
	case CRASH_FLUSH:
	default:
		r->hdr.type = VIRTIO_BLK_T_FLUSH;
		r->frontier = c->frontier;
		break;
	}
	s[n++] = (struct vq_seg){ &r->status, 1, VQ_IN };
	if (virtq_add(&c->vq, s, n, r, 0))
		return false;
	r->busy = true;
	c->inflight++;
	c->next++;
	return true;
}

static void complete(struct crash *c, struct creq *r)
{
	c->counts[r->q.op]++;
	c->done[r->idx % WINDOW] = 1;
	while (c->frontier < c->next && c->done[c->frontier % WINDOW]) {
		c->done[c->frontier % WINDOW] = 0;
		c->frontier++;
	}
	if (r->q.op == CRASH_FLUSH && r->frontier > c->durable) {
		c->durable = r->frontier;
		printf("CRASH DURABLE d=%lu acked=%lu\n", c->durable, c->frontier);
	}
}

static enum test_result crash_fail(const char *fmt, ...) PRINTF(1, 2);
static enum test_result crash_fail(const char *fmt, ...)
{
	char buf[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("CRASH FAIL %s\n", buf);
	return fail("%s", buf);
}

TESTCASE(crash_workload, no_rw_blk, TF_MANUAL)
{
	static struct crash c;
	const char *why = NULL;
	bool have_seed;
	memset(&c, 0, sizeof(c));
	c.seed = cmdline_u64("testguest.crash_seed", 0, &have_seed);
	c.qd = (unsigned)cmdline_u64("testguest.crash_qd", 8, NULL);
	uint64_t limit = cmdline_u64("testguest.crash_reqs", 0, NULL);
	uint64_t secs = cmdline_u64("testguest.crash_secs", 60, NULL);
	unsigned only = (unsigned)cmdline_u64("testguest.crash_ops", CRASH_OPS_ALL, NULL);
	bool verify = cmdline_u64("testguest.crash_verify", 0, NULL) != 0;
	if (!have_seed)
		return crash_fail("needs testguest.crash_seed=N");
	if (!c.qd || c.qd > MAX_QD)
		return crash_fail("testguest.crash_qd must be 1..%u", MAX_QD);
	for (int i = 0; (c.dev = virtio_find(VIRTIO_ID_BLOCK, i)); i++)
		if (!(c.dev->offered & BIT(VIRTIO_BLK_F_RO)))
			break;
	uint64_t want = BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES) |
			BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_F_EVENT_IDX);
	if (virtio_negotiate(c.dev, want, &why))
		return crash_fail("%s", why);
	if (!virtio_has(c.dev, VIRTIO_BLK_F_FLUSH))
		return crash_fail("the device does not offer FLUSH: nothing is ever durable to test");
	c.cap = virtio_config64(c.dev, CFG_CAPACITY);
	if (c.cap < 2 * CRASH_MAX_DWZ)
		return crash_fail("disk of %lu sectors: want at least %u", c.cap, 2 * CRASH_MAX_DWZ);
	if (virtio_has(c.dev, VIRTIO_BLK_F_SIZE_MAX) &&
	    virtio_config32(c.dev, CFG_SIZE_MAX) < READ_CHUNK * CRASH_SECTOR)
		return crash_fail("size_max %u is below %u bytes", virtio_config32(c.dev, CFG_SIZE_MAX),
				  READ_CHUNK * CRASH_SECTOR);
	if (virtio_has(c.dev, VIRTIO_BLK_F_SEG_MAX) && virtio_config32(c.dev, CFG_SEG_MAX) < 4)
		return crash_fail("seg_max %u is below 4", virtio_config32(c.dev, CFG_SEG_MAX));
	c.ops = BIT(CRASH_WRITE) | BIT(CRASH_FLUSH);
	/* Two ranges of up to CRASH_MAX_DWZ sectors per request. */
	if (virtio_has(c.dev, VIRTIO_BLK_F_WRITE_ZEROES) && virtio_config32(c.dev, CFG_MAX_WZ_SECT) >= CRASH_MAX_DWZ &&
	    virtio_config32(c.dev, CFG_MAX_WZ_SEG) >= 2)
		c.ops |= BIT(CRASH_WRITE_ZEROES) | BIT(CRASH_WZ_UNMAP);
	if (virtio_has(c.dev, VIRTIO_BLK_F_DISCARD) && virtio_config32(c.dev, CFG_MAX_DISCARD_SECT) >= CRASH_MAX_DWZ &&
	    virtio_config32(c.dev, CFG_MAX_DISCARD_SEG) >= 2)
		c.ops |= BIT(CRASH_DISCARD);
	c.ops &= only | BIT(CRASH_WRITE) | BIT(CRASH_FLUSH);
	if (virtq_setup(&c.vq, c.dev, 0, 0, &why))
		return crash_fail("%s", why);
	if (c.qd * 8 > c.vq.num)
		return crash_fail("queue of %u entries is too small for %u requests in flight", c.vq.num, c.qd);
	c.reqs = alloc(sizeof(*c.reqs) * c.qd, 64);
	c.done = alloc(WINDOW, 64);
	if (!c.reqs || !c.done)
		return crash_fail("out of memory");
	for (unsigned i = 0; i < c.qd; i++)
		if (!(c.reqs[i].buf = alloc(READ_CHUNK * CRASH_SECTOR, 4096)))
			return crash_fail("out of memory");
	virtio_driver_ok(c.dev);
	virtq_irq(&c.vq, false);

	uint64_t digest = disk_digest(&c, verify, &why);
	if (why)
		return crash_fail("digest pass: %s", why);
	printf("CRASH START seed=%lu cap=%lu ops=0x%x qd=%u digest=0x%lx\n", c.seed, c.cap, c.ops, c.qd, digest);
	if (verify) {
		printf("CRASH END n=0\n");
		return TEST_PASS;
	}

	uint64_t end = deadline_after_us(secs * 1000000);
	bool stopping = false;
	for (;;) {
		bool added = false;
		while (!stopping && c.inflight < c.qd && submit_next(&c))
			added = true;
		if (added)
			virtq_kick(&c.vq);
		if (!c.inflight)
			break;
		struct creq *r = reap(&c, &why);
		if (!r)
			return crash_fail("request %lu..%lu: %s", c.frontier, c.next, why);
		do {
			if (r->status != VIRTIO_BLK_S_OK)
				return crash_fail("request %lu (%s): status %u", r->idx, crash_op_name(r->q.op), r->status);
			complete(&c, r);
		} while (virtq_has_used(&c.vq) && (r = reap(&c, &why)));
		if (!stopping && ((limit && c.next >= limit) || deadline_passed(end)))
			stopping = true;
	}
	/* Limit reached, all done: one more FLUSH makes everything durable. */
	struct creq *r = &c.reqs[0];
	r->hdr.type = VIRTIO_BLK_T_FLUSH;
	r->hdr.sector = 0;
	r->status = 0xff;
	r->q.op = CRASH_FLUSH;
	struct vq_seg s[2] = { { &r->hdr, 16, VQ_OUT }, { &r->status, 1, VQ_IN } };
	if (virtq_add(&c.vq, s, 2, r, 0))
		return crash_fail("ring full at the end");
	r->busy = true;
	c.inflight++;
	virtq_kick(&c.vq);
	if (!(r = reap(&c, &why)) || r->status != VIRTIO_BLK_S_OK)
		return crash_fail("final flush: %s", r ? "bad status" : why);
	printf("CRASH DURABLE d=%lu acked=%lu\n", c.next, c.next);
	printf("CRASH END n=%lu\n", c.next);
	info("requests: %lu write, %lu write-zeroes, %lu write-zeroes-unmap, %lu discard, %lu flush",
	     c.counts[CRASH_WRITE], c.counts[CRASH_WRITE_ZEROES], c.counts[CRASH_WZ_UNMAP], c.counts[CRASH_DISCARD],
	     c.counts[CRASH_FLUSH]);
	return TEST_PASS;
}
