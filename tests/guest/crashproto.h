/* The crash-consistency workload's contract, shared by the test guest
 * (tests/guest/crash.c, ember.test=crash_workload) and the host checker
 * (tests/crashcheck.c, run by tests/integration/blk-crash.sh).  Keep it
 * freestanding: stdint/stdbool only, everything static inline.
 *
 * The workload is a pure function of a seed: request number i (0, 1, 2,
 * ...) is crash_req(seed, i, ...), so the host recomputes every request
 * from the seed alone and the guest only has to say how far it got.  A
 * WRITE of sector s by request i writes crash_fill(seed, i, s): a header
 * (magic, seed, request, sector) and 60 words derived from it, so every
 * sector on the disk names the request that wrote it, and the checker
 * recomputes it whole (nothing torn, stale or misplaced can pass).
 *
 * Serial protocol (one line each, parsed by the checker):
 *
 *   CRASH START seed=S cap=SECTORS ops=0xM qd=Q digest=0xH
 *       the workload begins; H = crash_digest of the whole disk as the
 *       guest read it through the device just before (the checker compares
 *       it with the image the host holds: the restart saw the same data).
 *   CRASH UPTO u=U acked=V
 *       requests below U may be submitted from now on, none at or above
 *       U has been (the next UPTO line comes before request U); every
 *       request < V has completed.
 *   CRASH DURABLE d=D acked=V
 *       printed after a FLUSH completed: every request < D had completed
 *       before that FLUSH was submitted, so by virtio 1.2 §5.2.6.1 all of
 *       them are on stable storage; every request < V has completed.
 *   CRASH END n=N
 *       (only with a request limit) all N requests and a final FLUSH done.
 *   CRASH FAIL why
 *       the device answered something unexpected; the workload stopped.
 *
 * The guest never has two requests in flight that touch the same sector,
 * and submits in request order: the requests touching a sector form a
 * chain in which each one completed before the next was submitted.  So
 * the content of a sector is exactly that of the last request of its
 * chain that reached the disk.
 */
#ifndef TG_CRASHPROTO_H
#define TG_CRASHPROTO_H

#include <stdbool.h>
#include <stdint.h>

#define CRASH_MAGIC      0x48535243524d4245ull /* "EMBRCRSH" in memory */
#define CRASH_SECTOR     512u
#define CRASH_WORDS      (CRASH_SECTOR / 8u)
#define CRASH_IDX_INIT   0xffffffffffffffffull /* request number of the initial pattern */
#define CRASH_UPTO_STEP  32u                   /* requests announced per UPTO line */
#define CRASH_MAX_WRITE  64u                   /* sectors per WRITE (32 KiB) */
#define CRASH_MAX_DWZ    256u                  /* sectors per discard / write-zeroes range */

enum crash_op {
	CRASH_WRITE,
	CRASH_WRITE_ZEROES,   /* without the unmap flag */
	CRASH_WZ_UNMAP,       /* WRITE_ZEROES with VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP */
	CRASH_DISCARD,
	CRASH_FLUSH,
	CRASH_NOPS
};

/* Operations the device offers (ops= in the START line): bit (1 << op).
 * WRITE and FLUSH are always there (the workload needs FLUSH). */
#define CRASH_OPS_ALL 0x1fu

struct crash_range {
	uint64_t sector;
	uint32_t count;
};

struct crash_req {
	enum crash_op op;
	unsigned nrange;               /* 0 for FLUSH, 1 for WRITE, 1-2 otherwise */
	struct crash_range r[2];
	unsigned nseg;                 /* WRITE: data split into this many segments */
	uint32_t seg_len[4];           /* ... of these byte lengths */
};

static inline uint64_t crash_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static inline const char *crash_op_name(enum crash_op op)
{
	static const char *const n[CRASH_NOPS] = { "write", "write-zeroes", "write-zeroes-unmap",
						   "discard", "flush" };
	return op < CRASH_NOPS ? n[op] : "?";
}

/* One range of `max` sectors at most, inside [0, cap): 4 KiB-aligned half
 * of the time (so a ,direct disk takes both its O_DIRECT and its buffered
 * path). */
static inline struct crash_range crash_range(uint64_t h, uint64_t cap, uint32_t max)
{
	struct crash_range r;
	r.count = 1 + (uint32_t)((h >> 8) % max);
	if (r.count > cap)
		r.count = (uint32_t)cap;
	r.sector = (h >> 24) % (cap - r.count + 1);
	if ((h >> 20) & 1) {
		r.sector &= ~7ull;
		r.count = (r.count + 7) & ~7u;
		if (r.sector + r.count > cap)
			r.count = (uint32_t)(cap - r.sector);
	}
	return r;
}

/* Request number idx of the workload `seed` on a disk of cap sectors (at
 * least 2 * CRASH_MAX_DWZ) offering the operations in `ops`. */
static inline void crash_req(uint64_t seed, uint64_t idx, uint64_t cap, unsigned ops, struct crash_req *q)
{
	uint64_t h = crash_mix(seed ^ crash_mix(idx + 0x9e3779b97f4a7c15ull));
	unsigned k = (unsigned)(h & 63);
	enum crash_op op = k < 46 ? CRASH_WRITE : k < 51 ? CRASH_WRITE_ZEROES : k < 54 ? CRASH_WZ_UNMAP
			 : k < 60 ? CRASH_DISCARD : CRASH_FLUSH;
	if (!(ops & (1u << op)))
		op = CRASH_WRITE;
	q->op = op;
	q->nrange = 0;
	q->nseg = 0;
	if (op == CRASH_FLUSH)
		return;
	uint64_t h2 = crash_mix(h ^ 0x5851f42d4c957f2dull);
	if (op == CRASH_WRITE) {
		q->nrange = 1;
		q->r[0] = crash_range(h2, cap, CRASH_MAX_WRITE);
		/* Up to 4 segments of arbitrary byte lengths (not sector
		 * multiples): the device must not care how data is split. */
		uint32_t left = q->r[0].count * CRASH_SECTOR;
		unsigned want = 1 + (unsigned)((h2 >> 4) & 3);
		uint64_t hs = crash_mix(h2);
		while (left && q->nseg < want) {
			uint32_t n = q->nseg + 1 == want ? left : 1 + (uint32_t)(hs % left);
			q->seg_len[q->nseg++] = n;
			left -= n;
			hs = crash_mix(hs);
		}
		return;
	}
	/* Discard / write zeroes: one range, or two that do not overlap. */
	uint32_t half = (uint32_t)(cap / 2);
	q->nrange = 1;
	q->r[0] = crash_range(h2, cap, CRASH_MAX_DWZ);
	if ((h2 >> 2) & 1) {
		/* Second range in the other half of the disk. */
		q->r[0] = crash_range(h2, half, CRASH_MAX_DWZ);
		q->r[1] = crash_range(crash_mix(h2), cap - half, CRASH_MAX_DWZ);
		q->r[1].sector += half;
		q->nrange = 2;
	}
}

static inline bool crash_range_has(const struct crash_range *r, uint64_t s)
{
	return s >= r->sector && s - r->sector < r->count;
}

static inline bool crash_req_has(const struct crash_req *q, uint64_t s)
{
	for (unsigned i = 0; i < q->nrange; i++)
		if (crash_range_has(&q->r[i], s))
			return true;
	return false;
}

static inline bool crash_overlap(const struct crash_req *a, const struct crash_req *b)
{
	for (unsigned i = 0; i < a->nrange; i++)
		for (unsigned j = 0; j < b->nrange; j++)
			if (a->r[i].sector < b->r[j].sector + b->r[j].count &&
			    b->r[j].sector < a->r[i].sector + a->r[i].count)
				return true;
	return false;
}

/* The 512 bytes request idx writes to sector s (idx CRASH_IDX_INIT: the
 * initial pattern). */
static inline void crash_fill(uint64_t *w, uint64_t seed, uint64_t idx, uint64_t s)
{
	uint64_t base = crash_mix(seed ^ crash_mix(idx ^ crash_mix(s + 1)));
	w[0] = CRASH_MAGIC;
	w[1] = seed;
	w[2] = idx;
	w[3] = s;
	for (unsigned k = 4; k < CRASH_WORDS; k++)
		w[k] = base + k * 0x9e3779b97f4a7c15ull;
}

/* A sector's contribution to a disk digest (order-independent sum). */
static inline uint64_t crash_sector_hash(const uint64_t *w, uint64_t s)
{
	uint64_t h = 0xcbf29ce484222325ull ^ s;
	for (unsigned k = 0; k < CRASH_WORDS; k++)
		h = (h ^ w[k]) * 0x100000001b3ull;
	return crash_mix(h);
}

#endif
