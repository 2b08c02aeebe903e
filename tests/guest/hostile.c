/* hostile_* tests: a guest that misbehaves on purpose against virtio-mmio
 * devices (virtio-blk; virtio-net's transmit queue in hostile_net_tx), to
 * check that the VMM stays correct (and alive) when its devices are
 * abused.  TF_HOSTILE keeps them out of "all": they run only when named
 * (ember.test=hostile_* in tests/integration/testguest-hostile.sh).
 *
 * Every test drives the device through its own raw split ring ("struct hq"
 * below, not the well-behaved virtq API), so it can put anything in the
 * descriptors and rings.  Each variant of a test:
 *
 *   1. resets and initialises the device (VERSION_1, plus INDIRECT_DESC
 *      where a variant needs it), queue 0 with QSIZE entries, interrupts on;
 *   2. does one bad thing (a descriptor, a ring entry, a register write);
 *   3. waits for the device's answer: a used entry (its status byte tells
 *      OK / IOERR / UNSUPP, or nothing written), DEVICE_NEEDS_RESET in
 *      Status, or nothing within QUIET_US (ANSWER_US where silence is not
 *      accepted);
 *   4. checks the answer is one the variant accepts (the accepted outcomes
 *      and the virtio 1.2 section that allows them are written next to each
 *      variant), that NEEDS_RESET came with a configuration change
 *      interrupt (§2.1.2: "If DRIVER_OK is set, after it sets
 *      DEVICE_NEEDS_RESET, the device MUST send a device configuration
 *      change notification"), and that the device wrote nothing it must not
 *      (§2.7.5.1: "A device MUST NOT write to a device-readable buffer");
 *   5. recovers: writes 0 to Status (which must read back 0 with
 *      InterruptStatus and QueueReady cleared, §4.2.2.1), initialises the
 *      device afresh and reads sectors 0-7, which must hold the runner's
 *      content ("ember-hostile-sector-N\n", then zeroes).
 *
 * The VMM surviving is checked by the runner: the guest must get to its
 * DONE line and the VMM must exit 0.
 *
 * Outcomes (O_*): the spec says little about what a device does with a
 * malformed request; its tools are an error status in the request's status
 * byte (§5.2.6: IOERR "for device or driver error"), DEVICE_NEEDS_RESET
 * (§2.1.2: "The device SHOULD set DEVICE_NEEDS_RESET when it enters an error
 * state that a reset is needed"), returning the buffer without writing
 * anything (used length 0) when it cannot even find the status byte, or
 * ignoring a register write.  Silence ("no used entry, nothing in Status")
 * is accepted only where the device has no way to answer at all: no
 * buffer it could return (a head index outside the table, a ring it cannot
 * reach), no status byte, or a driver bug the device may simply not notice.
 * Where a request carries a usable status byte or a chain head the device
 * could return, silence fails: a driver would wait forever.
 *
 * Safety of the guest itself: every buffer a device could write lies in
 * this test's heap (scratch memory nobody else uses), in page 0 (zeroed
 * and unused after boot), past the end of RAM, in the MMIO gap at
 * GAP_ADDR (nothing decodes there on ember or QEMU microvm), or far beyond
 * any RAM; never in the image, the stacks or the page tables.  Buffers
 * whose lengths run past the end of RAM start in the last allocation of
 * the heap, so even a device that honoured them would only write free
 * memory.
 *
 * Disk layout (made by the runner): 1 MiB, sectors 0-15 begin with
 * "ember-hostile-sector-N\n", the rest is zero.  Tests write only at
 * WRITE_SECTOR and above.
 *
 * Quirks (testguest.quirks=A,B; the runner passes them to QEMU 7.2 only):
 * known QEMU answers that this file does not accept from ember, reported
 * as INFO instead of failing:
 *   dma_unassigned        a buffer outside RAM completes with status OK
 *                         (QEMU goes through its bounce buffer: writes
 *                         vanish, reads give zeroes); no spec rule forbids
 *                         that, but it hides a driver bug, and ember refuses
 *   features_unoffered    FEATURES_OK sticks with a feature bit never
 *                         offered (§2.2.2)
 *   queue_not_ready       buffers used after the driver wrote QueueReady 0
 *                         (§4.2.2.1)
 *   notify_early          buffers used before DRIVER_OK (§2.1.2)
 *   indirect_after_direct an indirect table after direct descriptors gets
 *                         NEEDS_RESET (§2.7.5.3.2: the device MUST handle it)
 *   net_short_tx          a transmit buffer shorter than the virtio-net
 *                         header aborts QEMU (iov_copy assertion): not tried
 *   net_short_rx          the same for a receive buffer (hostile2.c) */
#include "hostile.h"

/* ---- quirks (testguest.quirks=A,B: known QEMU deviations, reported as INFO) ---- */

bool quirk(const char *name)
{
	static char buf[256];
	const char *q = cmdline_value("testguest.quirks", buf, sizeof(buf));
	size_t l = strlen(name);
	for (; q && *q; q = strchr(q, ',') ? strchr(q, ',') + 1 : "")
		if (!strncmp(q, name, l) && (q[l] == ',' || !q[l]))
			return true;
	return false;
}

/* ---- the device ---- */

struct virtio_dev *hdev(void)
{
	for (int i = 0;; i++) {
		struct virtio_dev *d = virtio_find(VIRTIO_ID_BLOCK, i);
		if (!d || !(d->offered & BIT(BLK_F_RO)))
			return d;
	}
}

const char *no_blk(void) { return hdev() ? NULL : "no writable virtio-blk device"; }

/* The first address past the RAM range holding the image (the heap's end):
 * the device sees no RAM there on ember or QEMU with the runner's 128 MiB. */
uint64_t ram_end(void)
{
	uint64_t img = (uint64_t)(uintptr_t)&boot, end = 0;
	for (int i = 0; i < boot.nram; i++)
		if (boot.ram[i].start <= img && img < boot.ram[i].end)
			end = boot.ram[i].end;
	return end;
}

/* ---- a raw split ring ---- */

static char whybuf[WHY_MAX];
const char *why(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(whybuf, WHY_MAX, fmt, ap);
	va_end(ap);
	return whybuf;
}

void set_desc(struct virtq_desc *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	t[i] = (struct virtq_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

int hq_alloc(struct hq *q, uint32_t cap)
{
	q->cap = cap;
	q->desc = alloc(16ull * cap, 4096);
	q->avail = alloc(6 + 2ull * cap, 4096);
	q->used = alloc(6 + 8ull * cap, 4096);
	return q->desc && q->avail && q->used ? 0 : -1;
}

void hq_program(struct hq *q, uint32_t qidx, uint32_t num, uint64_t desc, uint64_t avail,
		       uint64_t used)
{
	struct virtio_dev *d = q->d;
	q->num = num;
	virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, qidx);
	virtio_write(d, VIRTIO_MMIO_QUEUE_NUM, num);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
}

void hq_program_own(struct hq *q, uint32_t num)
{
	hq_program(q, q->qidx, num, virt_to_phys(q->desc), virt_to_phys(q->avail), virt_to_phys(q->used));
}

/* Write 1 to QueueReady; true if it reads back 1. */
bool hq_ready(struct hq *q)
{
	wmb();
	virtio_write(q->d, VIRTIO_MMIO_QUEUE_READY, 1);
	return virtio_read(q->d, VIRTIO_MMIO_QUEUE_READY) == 1;
}

/* Set DRIVER_OK (writing the whole value, never NEEDS_RESET back); true if
 * it stuck. */
bool hq_driver_ok(struct hq *q)
{
	virtio_write(q->d, VIRTIO_MMIO_STATUS, ST_FEAT | VIRTIO_STATUS_DRIVER_OK);
	q->driver_ok = virtio_read(q->d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK;
	return q->driver_ok;
}

/* Used-buffer interrupts on (avail->flags 0), the pin routed. */
void hq_irq_on(struct hq *q)
{
	q->avail->flags = 0;
	mb();
	virtio_irq_route(q->d, true);
	q->acked = virtio_irq_count(q->d);
}

/* Reset device d and negotiate VERSION_1 | (offered & want): ACKNOWLEDGE,
 * DRIVER, FEATURES_OK set.  Rings allocated for cap entries, interrupts
 * routed. */
const char *hq_begin_dev(struct hq *q, struct virtio_dev *d, uint32_t qidx, uint64_t want, uint32_t cap)
{
	const char *w;
	memset(q, 0, sizeof(*q));
	q->d = d;
	q->qidx = qidx;
	if (virtio_negotiate(q->d, want, &w))
		return why("initialisation: %s", w);
	if (hq_alloc(q, cap))
		return "out of memory for the rings";
	hq_irq_on(q);
	return NULL;
}

/* The blk device, queue 0. */
const char *hq_begin(struct hq *q, uint64_t want, uint32_t cap)
{
	return hq_begin_dev(q, hdev(), 0, want, cap);
}

/* The whole well-behaved initialisation: queue qidx with num entries
 * (rings for cap), DRIVER_OK, used-buffer interrupts on. */
const char *hq_open_dev(struct hq *q, struct virtio_dev *d, uint32_t qidx, uint64_t want, uint32_t num,
			       uint32_t cap)
{
	const char *w = hq_begin_dev(q, d, qidx, want, MAX(num, cap));
	if (w)
		return w;
	virtio_write(q->d, VIRTIO_MMIO_QUEUE_SEL, qidx);
	uint32_t max = virtio_read(q->d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max < num)
		return why("initialisation: QueueNumMax %u, the test needs %u", max, num);
	hq_program_own(q, num);
	if (!hq_ready(q))
		return "initialisation: QueueReady did not read back 1";
	if (!hq_driver_ok(q))
		return "initialisation: DRIVER_OK did not stick";
	return NULL;
}

/* The blk device, queue 0. */
const char *hq_open(struct hq *q, uint64_t want, uint32_t num, uint32_t cap)
{
	return hq_open_dev(q, hdev(), 0, want, num, cap);
}

/* Publish one head (at the ring slot avail_idx mod num) and notify the queue. */
void hq_post(struct hq *q, uint16_t head)
{
	uint32_t n = q->num ? MIN(q->num, q->cap) : 1;
	q->avail->ring[q->avail_idx % n] = head;
	wmb();
	q->avail->idx = ++q->avail_idx;
	mb();
	virtio_write(q->d, VIRTIO_MMIO_QUEUE_NOTIFY, q->qidx);
}

/* Acknowledge the device's interrupt if its vector fired since the last look. */
void hq_ack(struct hq *q)
{
	uint64_t c = virtio_irq_count(q->d);
	if (c == q->acked)
		return;
	q->acked = c;
	q->irqs++;
	uint32_t isr = virtio_read(q->d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (isr) {
		virtio_write(q->d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
		q->isr |= isr;
	}
}

/* Wait up to us for a used entry or NEEDS_RESET (woken by the device's
 * interrupts, looking at Status every 2 ms in case it sends none). */
void hq_wait(struct hq *q, uint64_t us, struct res *r)
{
	uint64_t dl = deadline_after_us(us);
	uint32_t st;
	memset(r, 0, sizeof(*r));
	for (;;) {
		uint64_t seen = irq_total;
		hq_ack(q);
		st = virtio_read(q->d, VIRTIO_MMIO_STATUS);
		if (q->used->idx != q->last_used) {
			rmb();
			uint32_t n = q->num ? MIN(q->num, q->cap) : 1;
			r->used = true;
			r->id = q->used->ring[q->last_used % n].id;
			r->len = q->used->ring[q->last_used % n].len;
			q->last_used++;
		}
		if (st & VIRTIO_STATUS_NEEDS_RESET)
			r->reset = true;
		if (r->used || r->reset || deadline_passed(dl))
			break;
		irq_sleep(seen, MIN(dl, deadline_after_us(2000)));
	}
	r->status = st;
	if (r->reset && q->driver_ok) {
		/* The configuration change interrupt may trail the status bit. */
		uint64_t dl2 = deadline_after_us(100000);
		while (!(q->isr & VIRTIO_INT_CONFIG) && !deadline_passed(dl2)) {
			uint64_t seen = irq_total;
			hq_ack(q);
			if (q->isr & VIRTIO_INT_CONFIG)
				break;
			irq_sleep(seen, MIN(dl2, deadline_after_us(2000)));
		}
		if (!(q->isr & VIRTIO_INT_CONFIG) &&
		    (virtio_read(q->d, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG))
			r->note = "InterruptStatus has the configuration bit but no interrupt arrived";
	}
	r->cfg = q->isr & VIRTIO_INT_CONFIG;
}

unsigned classify(const struct res *r, const volatile uint8_t *status)
{
	if (r->reset)
		return O_RESET;
	if (!r->used)
		return O_SILENT;
	if (!status || *status == 0xff)
		return O_USED;
	if (*status == S_OK)
		return O_OK;
	if (*status == S_IOERR || *status == S_UNSUPP)
		return O_ERR;
	return O_BADSTAT;
}

static const char *outcome_name(unsigned o, const volatile uint8_t *status)
{
	switch (o) {
	case O_OK: return "status OK";
	case O_ERR: return status && *status == S_UNSUPP ? "status UNSUPP" : "status IOERR";
	case O_USED: return "buffer returned, no status written";
	case O_RESET: return "DEVICE_NEEDS_RESET";
	case O_SILENT: return "no reaction";
	case O_REFUSED: return "refused (did not read back)";
	case O_BADSTAT: return "status byte that is no virtio-blk status";
	}
	return "?";
}

static const char *accepted_names(unsigned acc)
{
	static char buf[160];
	size_t n = 0;
	buf[0] = 0;
	for (unsigned b = 1; b <= O_BADSTAT; b <<= 1)
		if (acc & b)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " / " : "",
					      outcome_name(b, NULL));
	return buf;
}

/* Judge one answer: NULL if accepted (and say what it was), else why not. */
const char *judge(const char *what, struct hq *q, const struct res *r, unsigned got, unsigned accept,
		  const volatile uint8_t *status)
{
	if (got == O_RESET && q->driver_ok && !q->early_reset && !r->cfg)
		return why("%s: DEVICE_NEEDS_RESET without a configuration change interrupt (§2.1.2)%s%s", what,
			   r->note ? ": " : "", r->note ? r->note : "");
	if (got == O_BADSTAT)
		return why("%s: status byte %u (§5.2.6: OK, IOERR or UNSUPP)", what, *status);
	if (!(got & accept))
		return why("%s: %s (Status 0x%x); accepted: %s", what, outcome_name(got, status), r->status,
			   accepted_names(accept));
	if (r->used && r->reset == false && r->id >= q->cap)
		return why("%s: used entry names descriptor %u, never made available", what, r->id);
	if (r->used)
		info("%s: %s (used length %u)%s%s", what, outcome_name(got, status), r->len,
		     r->quirk ? ", accepted as quirk " : "", r->quirk ? r->quirk : "");
	else
		info("%s: %s", what, outcome_name(got, status));
	return NULL;
}

/* ---- known disk content and recovery ---- */

const char *check_known(const uint8_t *buf, uint64_t first, unsigned n)
{
	for (unsigned s = 0; s < n; s++) {
		uint64_t sec = first + s;
		const uint8_t *p = buf + (size_t)s * SECTOR;
		char want[40];
		int l = sec < KNOWN_SECTORS ? snprintf(want, sizeof(want), "ember-hostile-sector-%lu\n", sec) : 0;
		if (sec >= CHECKED_SECTORS)
			continue;
		if (l && memcmp(p, want, (size_t)l))
			return why("sector %lu does not start with \"ember-hostile-sector-%lu\"", sec, sec);
		for (unsigned i = (unsigned)l; i < SECTOR; i++)
			if (p[i])
				return why("sector %lu: byte %u is 0x%02x, want 0 (disk changed?)", sec, i, p[i]);
	}
	return NULL;
}

/* One normal read of sectors 0-7 on an open queue (descriptors 0-2). */
const char *normal_read(struct hq *q, const char *what)
{
	struct blk_hdr *h = alloc(sizeof(*h), 16);
	uint8_t *st = alloc(1, 16), *buf = alloc(8 * SECTOR, 4096);
	if (!h || !st || !buf)
		return "out of memory";
	*h = (struct blk_hdr){ .type = T_IN, .sector = 0 };
	*st = 0xff;
	memset(buf, 0xee, 8 * SECTOR);
	set_desc(q->desc, 0, virt_to_phys(h), 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(q->desc, 1, virt_to_phys(buf), 8 * SECTOR, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	set_desc(q->desc, 2, virt_to_phys(st), 1, VIRTQ_DESC_F_WRITE, 0);
	hq_post(q, 0);
	struct res r;
	hq_wait(q, ANSWER_US, &r);
	if (r.reset)
		return why("%s: read of sectors 0-7: DEVICE_NEEDS_RESET (Status 0x%x)", what, r.status);
	if (!r.used)
		return why("%s: read of sectors 0-7: no answer within %u ms", what, ANSWER_US / 1000);
	if (r.id != 0 || *st != S_OK)
		return why("%s: read of sectors 0-7: used id %u, status %u", what, r.id, *st);
	if (r.len != 8 * SECTOR + 1)
		return why("%s: read of sectors 0-7: used length %u, want %u", what, r.len, 8 * SECTOR + 1);
	const char *w = check_known(buf, 0, 8);
	return w ? why("%s: read of sectors 0-7: %s", what, w) : NULL;
}

/* Reset (Status must read 0, InterruptStatus and QueueReady cleared,
 * §4.2.2.1), initialise afresh, read sectors 0-7. */
const char *recover(const char *what)
{
	struct virtio_dev *d = hdev();
	virtio_reset(d);
	uint32_t st = virtio_read(d, VIRTIO_MMIO_STATUS);
	if (st)
		return why("%s: Status 0x%x 100 ms after writing 0 (reset not done)", what, st);
	uint32_t isr = virtio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (isr & 3)
		return why("%s: InterruptStatus 0x%x after reset (§4.2.2.1: cleared)", what, isr);
	virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	if (virtio_read(d, VIRTIO_MMIO_QUEUE_READY))
		return why("%s: QueueReady still 1 after reset (§4.2.2.1: cleared)", what);
	struct hq q;
	const char *w = hq_open(&q, 0, QSIZE, QSIZE);
	if (w)
		return why("%s: after reset: %s", what, w);
	w = normal_read(&q, what);
	if (w)
		return why("after reset, %s", w);
	virtio_reset(d);
	return NULL;
}

/* ---- one request built by hand ---- */

/* Memory for a request: header, status byte, data, and scratch for
 * descriptors a device could write.  (ro, ro_len) is a device-readable
 * region checked for writes afterwards; (known, known_sector, known_n) is
 * what a read answered with status OK must hold. */
struct req {
	struct blk_hdr *hdr;
	uint8_t *status;   /* NULL: no status byte to look at */
	uint8_t *data;     /* 64 KiB */
	const uint8_t *ro; /* device-readable: must not change */
	uint32_t ro_len;
	uint8_t *ro_copy;
	const uint8_t *known;
	uint64_t known_sector;
	unsigned known_n;
	const uint8_t *guard; /* bytes past a buffer's end: must stay 0xee */
	uint32_t guard_len;
};

static int req_alloc(struct req *r, uint32_t type, uint64_t sector)
{
	memset(r, 0, sizeof(*r));
	r->hdr = alloc(sizeof(*r->hdr), 16);
	r->status = alloc(1, 16);
	r->data = alloc(65536, 4096);
	r->ro_copy = alloc(65536, 16);
	if (!r->hdr || !r->status || !r->data || !r->ro_copy)
		return -1;
	*r->hdr = (struct blk_hdr){ .type = type, .sector = sector };
	*r->status = 0xff;
	memset(r->data, 0xee, 65536);
	return 0;
}

static void req_readonly(struct req *r, const void *p, uint32_t len)
{
	r->ro = p;
	r->ro_len = MIN(len, 65536u);
	memcpy(r->ro_copy, p, r->ro_len);
}

static void req_known(struct req *r, const uint8_t *buf, uint64_t sector, unsigned n)
{
	r->known = buf;
	r->known_sector = sector;
	r->known_n = n;
}

struct variant;
/* Builds the request in q->desc (and wherever else) and returns the head
 * to publish, or -1 (nothing to publish: the layout did it itself). */
typedef int (*layout_fn)(struct hq *q, struct req *r, const struct variant *v);
/* Replaces the usual initialisation (hq_open); sets *refused to the name of
 * a register write that did not stick, if one did not. */
typedef const char *(*open_fn)(struct hq *q, const struct variant *v, const char **refused);

struct variant {
	const char *what;
	uint64_t want;     /* features beyond VERSION_1 */
	uint32_t type;     /* of the request header */
	uint64_t sector;
	layout_fn build;
	unsigned accept;   /* O_* */
	unsigned flags;    /* V_* */
	uint64_t arg;      /* for build / open */
	open_fn open;
};
/* A buffer (partly) outside RAM: with testguest.quirks=dma_unassigned,
 * status OK is reported as INFO (QEMU 7.2 completes such transfers through
 * its bounce buffer: writes vanish, reads return zeroes). */
#define V_UNASSIGNED 1u
/* The variant needs VIRTIO_F_INDIRECT_DESC negotiated (skipped if not offered). */
#define V_INDIRECT 2u

/* Run one variant: open, build, publish, wait, judge, recover. */
static const char *run_variant(const struct variant *v)
{
	static char first[WHY_MAX];
	struct hq q;
	struct req r;
	const char *refused = NULL;
	uintptr_t mark = heap_mark();
	uint64_t want = v->want | ((v->flags & V_INDIRECT) ? BIT(VIRTIO_F_INDIRECT_DESC) : 0);
	const char *w = v->open ? v->open(&q, v, &refused) : hq_open(&q, want, QSIZE, QSIZE);
	if (w) {
		snprintf(first, sizeof(first), "%s: %s", v->what, w);
		heap_release(mark);
		return first;
	}
	if ((v->flags & V_INDIRECT) && !virtio_has(q.d, VIRTIO_F_INDIRECT_DESC)) {
		info("%s: skipped, VIRTIO_F_INDIRECT_DESC not offered", v->what);
		virtio_reset(q.d);
		heap_release(mark);
		return NULL;
	}
	if (req_alloc(&r, v->type, v->sector))
		return "out of memory";
	int head = v->build ? v->build(&q, &r, v) : -1;
	if (head >= 0) {
		wmb();
		hq_post(&q, (uint16_t)head);
	}
	struct res res;
	unsigned accept = v->accept;
	hq_wait(&q, (accept & (O_SILENT | O_REFUSED)) || refused ? QUIET_US : ANSWER_US, &res);
	if (q.early_reset)
		res.reset = true;
	unsigned got = classify(&res, r.status);
	w = NULL;
	if (refused && res.used)
		w = why("%s: the device used the buffer although %s was not set (§4.2.2.1: no queue access while "
			"QueueReady is 0; §2.1.2: no buffers consumed before DRIVER_OK)", v->what, refused);
	else if (refused && got == O_SILENT)
		got = O_REFUSED;
	if ((v->flags & V_UNASSIGNED) && got == O_OK && !(accept & O_OK) && quirk("dma_unassigned")) {
		res.quirk = "dma_unassigned";
		accept |= O_OK;
	}
	if (!w)
		w = judge(v->what, &q, &res, got, accept, r.status);
	if (!w && r.ro && memcmp(r.ro, r.ro_copy, r.ro_len))
		w = why("%s: the device wrote into a device-readable buffer (§2.7.5.1)", v->what);
	if (!w && r.guard)
		for (uint32_t i = 0; i < r.guard_len; i++)
			if (r.guard[i] != 0xee) {
				w = why("%s: the device wrote past the end of a buffer", v->what);
				break;
			}
	if (!w && got == O_OK && r.known) {
		const char *k = check_known(r.known, r.known_sector, r.known_n);
		if (k)
			w = why("%s: status OK but %s", v->what, k);
	}
	/* Recover even after a failure: the next variant needs the device. */
	if (w) {
		snprintf(first, sizeof(first), "%s", w);
		const char *rw = recover(v->what);
		if (rw)
			info("also %s", rw);
		w = first;
	} else {
		w = recover(v->what);
	}
	heap_release(mark);
	return w;
}

/* Every variant runs (after a failure too, so that the output names all
 * that failed); the first failure is the test's, the others INFO lines. */
static enum test_result run_variants(const struct variant *v, unsigned n)
{
	static char first[WHY_MAX];
	unsigned nfail = 0;
	for (unsigned i = 0; i < n; i++) {
		const char *w = run_variant(&v[i]);
		if (!w)
			continue;
		if (nfail++ == 0)
			snprintf(first, sizeof(first), "%s", w);
		else
			info("FAILED TOO: %s", w);
	}
	if (nfail > 1)
		return fail("%s (and %u more, see INFO)", first, nfail - 1);
	return nfail ? fail("%s", first) : TEST_PASS;
}

/* Header, data (len bytes at addr, device-writable for a read), status:
 * descriptors 0-2. */
static int std3(struct hq *q, struct req *r, uint64_t addr, uint32_t len, bool in)
{
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	set_desc(q->desc, 1, addr, len, (uint16_t)(VIRTQ_DESC_F_NEXT | (in ? VIRTQ_DESC_F_WRITE : 0)), 2);
	set_desc(q->desc, 2, virt_to_phys(r->status), 1, W_END);
	req_readonly(r, r->hdr, 16);
	return 0;
}

/* A normal read of sectors 0-1 into r->data. */
static int good_read(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	r->hdr->sector = 0;
	req_known(r, r->data, 0, 2);
	return std3(q, r, virt_to_phys(r->data), 2 * SECTOR, true);
}

/* ================= transport: registers, status, features ================= */

/* Writes to the read-only registers (§4.2.2 table: direction R) are
 * ignored: every one reads back what it read before; InterruptStatus
 * keeps a pending bit until InterruptACK clears it (§4.2.2.1: "present each
 * event ... until the driver acknowledges the interrupt by writing ...
 * InterruptACK"); the device keeps working without a reset.  Reads of the
 * write-only registers (driver MUST NOT, §4.2.2.2) may return anything. */
TESTCASE(hostile_regs_readonly, no_blk, TF_HOSTILE)
{
	static const struct { unsigned off; const char *name; } ro[] = {
		{ VIRTIO_MMIO_MAGIC_VALUE, "MagicValue" }, { VIRTIO_MMIO_VERSION, "Version" },
		{ VIRTIO_MMIO_DEVICE_ID, "DeviceID" }, { VIRTIO_MMIO_VENDOR_ID, "VendorID" },
		{ VIRTIO_MMIO_DEVICE_FEATURES, "DeviceFeatures" }, { VIRTIO_MMIO_QUEUE_NUM_MAX, "QueueNumMax" },
		{ VIRTIO_MMIO_CONFIG_GENERATION, "ConfigGeneration" },
	};
	static const unsigned wo[] = {
		VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
		VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NOTIFY,
		VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
	};
	struct hq q;
	const char *w = hq_open(&q, 0, QSIZE, QSIZE);
	if (w)
		return fail("%s", w);
	struct virtio_dev *d = q.d;
	for (unsigned sel = 0; sel < 2; sel++) {
		virtio_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
		virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
		for (unsigned i = 0; i < ARRAY_SIZE(ro); i++) {
			uint32_t before = virtio_read(d, ro[i].off);
			virtio_write(d, ro[i].off, ~before);
			virtio_write(d, ro[i].off, 0);
			uint32_t after = virtio_read(d, ro[i].off);
			if (after != before)
				return fail("writing %s (DeviceFeaturesSel %u) changed it from 0x%x to 0x%x "
					    "(§4.2.2: read-only)", ro[i].name, sel, before, after);
		}
	}
	if (virtio_read(d, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC ||
	    virtio_read(d, VIRTIO_MMIO_VERSION) != 2)
		return fail("MagicValue / Version changed after writes to them (§4.2.2.1)");
	for (unsigned i = 0; i < ARRAY_SIZE(wo); i++)
		(void)virtio_read(d, wo[i]);
	/* A used buffer with its interrupt left pending: poll the ring, not
	 * InterruptStatus. */
	struct req r;
	struct variant v = { .what = "read" };
	if (req_alloc(&r, T_IN, 0))
		return fail("out of memory");
	good_read(&q, &r, &v);
	hq_post(&q, 0);
	uint64_t dl = deadline_after_us(ANSWER_US);
	while (q.used->idx == q.last_used && !deadline_passed(dl))
		cpu_relax();
	if (q.used->idx == q.last_used)
		return fail("a normal read got no answer within %u ms", ANSWER_US / 1000);
	q.last_used = q.used->idx;
	if (*r.status != S_OK)
		return fail("a normal read: status %u", *r.status);
	udelay(1000);
	uint32_t isr = virtio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (!(isr & VIRTIO_INT_USED))
		return fail("InterruptStatus 0x%x after a used buffer (interrupts wanted): no used buffer bit", isr);
	virtio_write(d, VIRTIO_MMIO_INTERRUPT_STATUS, 0);
	virtio_write(d, VIRTIO_MMIO_INTERRUPT_STATUS, 0xffffffff);
	uint32_t isr2 = virtio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (isr2 != isr)
		return fail("writing InterruptStatus changed it from 0x%x to 0x%x (§4.2.2: read-only; "
			    "InterruptACK acknowledges)", isr, isr2);
	virtio_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	q.acked = virtio_irq_count(d);
	isr2 = virtio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (isr2 & isr)
		return fail("InterruptStatus 0x%x after InterruptACK 0x%x", isr2, isr);
	uint32_t st = virtio_read(d, VIRTIO_MMIO_STATUS);
	if (st != (ST_FEAT | VIRTIO_STATUS_DRIVER_OK))
		return fail("Status 0x%x after the writes, want 0x%x (they are to be ignored)", st,
			    ST_FEAT | VIRTIO_STATUS_DRIVER_OK);
	if ((w = normal_read(&q, "after the writes")))
		return fail("%s", w);
	if ((w = recover("read-only registers")))
		return fail("%s", w);
	return TEST_PASS;
}

/* Device configuration space: writes to read-only fields (blk: all but
 * writeback, §5.2.4; §3.1.1 forbids the driver to write them during
 * initialisation) and accesses beyond the device's configuration (the
 * driver MUST NOT, §4.2.2.2) are ignored: capacity ... blk_size read back
 * unchanged, out-of-range reads return anything, the device keeps working
 * without a reset. */
TESTCASE(hostile_config_space, no_blk, TF_HOSTILE)
{
	struct hq q;
	const char *w = hq_open(&q, 0, QSIZE, QSIZE);
	if (w)
		return fail("%s", w);
	struct virtio_dev *d = q.d;
	uintptr_t cfg = d->base + VIRTIO_MMIO_CONFIG;
	uint32_t before[8], after[8];
	unsigned top = (unsigned)MIN(d->size - VIRTIO_MMIO_CONFIG, 0x100ull); /* config bytes in the window */
	for (unsigned i = 0; i < 8; i++)
		before[i] = mmio_read32(cfg + 4 * i);
	uint32_t gen = virtio_read(d, VIRTIO_MMIO_CONFIG_GENERATION);
	/* Read-only fields, every width. */
	for (unsigned i = 0; i < 8; i++)
		mmio_write32(cfg + 4 * i, 0xffffffff);
	mmio_write8(cfg + 0, 0x5a);
	mmio_write16(cfg + 2, 0x5a5a);
	mmio_write8(cfg + 21, 0x5a);
	/* Beyond virtio_blk_config (60 bytes in 1.2, 96 with zoned): */
	for (unsigned off = 0x60; off + 4 <= top; off += 0x1c)
		mmio_write32(cfg + off, 0xdeadbeef);
	mmio_write8(cfg + top - 1, 0x5a);
	mmio_write16(cfg + top - 2, 0x5a5a);
	uint32_t junk = 0;
	for (unsigned off = 0x60; off + 4 <= top; off += 0x1c)
		junk ^= mmio_read32(cfg + off);
	junk ^= mmio_read8(cfg + top - 1);
	junk ^= mmio_read16(cfg + top - 2);
	junk ^= mmio_read32(cfg + 1); /* unaligned */
	junk ^= mmio_read16(cfg + 3);
	for (unsigned i = 0; i < 8; i++)
		after[i] = mmio_read32(cfg + 4 * i);
	for (unsigned i = 0; i < 8; i++)
		if (after[i] != before[i])
			return fail("configuration bytes %u-%u: 0x%x before the writes, 0x%x after (read-only, §5.2.4)",
				    4 * i, 4 * i + 3, before[i], after[i]);
	uint32_t gen2 = virtio_read(d, VIRTIO_MMIO_CONFIG_GENERATION);
	info("out-of-range reads gave 0x%x (xor); ConfigGeneration %u -> %u", junk, gen, gen2);
	if ((w = normal_read(&q, "after the configuration writes")))
		return fail("%s", w);
	if ((w = recover("configuration space")))
		return fail("%s", w);
	return TEST_PASS;
}

/* Control registers accessed with 8, 16 and 64 bit and unaligned accesses
 * (§4.2.2.2: the driver MUST use 32-bit aligned ones).  The device may do
 * anything with them but must survive; a 64-bit write over
 * QueueDescLow/High before the proper 32-bit ones must not stop the queue
 * from working once set up properly; then a reset must bring it back. */
TESTCASE(hostile_mmio_width, no_blk, TF_HOSTILE)
{
	struct hq q;
	const char *w = hq_begin(&q, 0, QSIZE);
	if (w)
		return fail("%s", w);
	uintptr_t b = q.d->base;
	uint64_t junk = 0;
	junk ^= mmio_read8(b + 0) ^ mmio_read8(b + 3) ^ mmio_read16(b + 4) ^ mmio_read16(b + 6);
	junk ^= *(volatile uint64_t *)(b + 0);
	junk ^= *(volatile uint64_t *)(b + VIRTIO_MMIO_CONFIG);
	junk ^= *(volatile uint32_t *)(b + 2);
	junk ^= *(volatile uint32_t *)(b + VIRTIO_MMIO_STATUS + 1);
	if (mmio_read32(b) != VIRTIO_MMIO_MAGIC)
		return fail("MagicValue wrong after odd-width reads");
	virtio_write(q.d, VIRTIO_MMIO_QUEUE_SEL, 0);
	*(volatile uint64_t *)(b + VIRTIO_MMIO_QUEUE_DESC_LOW) = 0xe0000000e0000000ull;
	mmio_write8(b + VIRTIO_MMIO_QUEUE_NUM, 3);
	mmio_write16(b + VIRTIO_MMIO_QUEUE_SEL + 2, 0x1234);
	mmio_write8(b + VIRTIO_MMIO_INTERRUPT_ACK + 1, 0xff);
	/* Now the proper way. */
	hq_program_own(&q, QSIZE);
	if (!hq_ready(&q))
		return fail("QueueReady did not stick after a proper set-up");
	if (!hq_driver_ok(&q))
		return fail("DRIVER_OK did not stick");
	if ((w = normal_read(&q, "after odd-width accesses")))
		return fail("%s", w);
	/* Odd-width writes to Status and QueueNotify: anything goes. */
	mmio_write8(b + VIRTIO_MMIO_STATUS + 1, 0);
	mmio_write16(b + VIRTIO_MMIO_STATUS, 0);
	mmio_write8(b + VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	*(volatile uint64_t *)(b + VIRTIO_MMIO_QUEUE_NOTIFY) = 0;
	*(volatile uint64_t *)(b + VIRTIO_MMIO_STATUS) = 0x0f;
	info("odd-width reads gave 0x%lx (xor); Status after odd writes 0x%x", junk,
	     virtio_read(q.d, VIRTIO_MMIO_STATUS));
	if ((w = recover("odd-width accesses")))
		return fail("%s", w);
	return TEST_PASS;
}

/* Status written out of order (§3.1.1 prescribes the sequence to the
 * driver; the device's reaction is free), so we accept any answer but
 * these: a buffer used while Status does not show DRIVER_OK (§2.1.2: "The
 * device MUST NOT consume buffers ... before DRIVER_OK"), a status OK read
 * with wrong data, the device not working after a reset. */
static const char *order_open(struct hq *q, const struct variant *v, const char **refused)
{
	memset(q, 0, sizeof(*q));
	q->d = hdev();
	struct virtio_dev *d = q->d;
	virtio_reset(d);
	d->touched = true;
	if (hq_alloc(q, QSIZE))
		return "out of memory";
	hq_irq_on(q);
	uint32_t drv = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	if (v->arg != 2) {
		virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
		virtio_write(d, VIRTIO_MMIO_STATUS, drv);
	}
	uint64_t f = v->arg == 1 ? 0 : BIT(VIRTIO_F_VERSION_1); /* 1: no VERSION_1 */
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	uint32_t st = v->arg == 0 ? drv : v->arg == 1 ? ST_FEAT : VIRTIO_STATUS_FEATURES_OK;
	virtio_write(d, VIRTIO_MMIO_STATUS, st); /* 0: no FEATURES_OK; 2: no ACKNOWLEDGE/DRIVER */
	uint32_t got = virtio_read(d, VIRTIO_MMIO_STATUS);
	info("%s: Status 0x%x after writing 0x%x", v->what, got, st);
	hq_program_own(q, QSIZE);
	if (!hq_ready(q))
		*refused = "QueueReady";
	if (virtio_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET)
		q->early_reset = true;
	virtio_write(d, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
	got = virtio_read(d, VIRTIO_MMIO_STATUS);
	q->driver_ok = got & VIRTIO_STATUS_DRIVER_OK;
	if (!q->driver_ok && !*refused)
		*refused = "DRIVER_OK";
	info("%s: Status 0x%x after adding DRIVER_OK", v->what, got);
	return NULL;
}

#define ANY (O_OK | O_ERR | O_USED | O_RESET | O_SILENT | O_REFUSED)

TESTCASE(hostile_status_order, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "DRIVER_OK without FEATURES_OK", 0, T_IN, 0, good_read, ANY, 0, 0, order_open },
		{ "FEATURES_OK without VERSION_1", 0, T_IN, 0, good_read, ANY, 0, 1, order_open },
		{ "FEATURES_OK and DRIVER_OK without ACKNOWLEDGE and DRIVER", 0, T_IN, 0, good_read, ANY, 0, 2,
		  order_open },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Driver features the device did not offer, then FEATURES_OK: §2.2.2 "The
 * device SHOULD accept any valid subset of features the driver accepts,
 * otherwise it MUST fail to set the FEATURES_OK device status bit when the
 * driver writes it" (a set with a bit never offered is no subset), and
 * §3.1.1 has the driver re-read Status for exactly this.  Then FAILED, a
 * reset, and a normal initialisation must work.  Also: DriverFeatures
 * written after FEATURES_OK (the driver MUST NOT accept new feature bits
 * then, §3.1.1): ignored or not, the device must work normally. */
static const char *unoffered(struct virtio_dev *d, uint64_t bit)
{
	virtio_reset(d);
	d->touched = true;
	virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	uint64_t f = BIT(VIRTIO_F_VERSION_1) | BIT(bit);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	virtio_write(d, VIRTIO_MMIO_STATUS, ST_FEAT);
	uint32_t st = virtio_read(d, VIRTIO_MMIO_STATUS);
	virtio_write(d, VIRTIO_MMIO_STATUS, (st & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) | VIRTIO_STATUS_FAILED);
	if (!(st & VIRTIO_STATUS_FEATURES_OK)) {
		info("feature bit %lu (not offered): FEATURES_OK refused", bit);
		return NULL;
	}
	if (quirk("features_unoffered")) {
		info("feature bit %lu (not offered): FEATURES_OK kept (quirk features_unoffered)", bit);
		return NULL;
	}
	return why("feature bit %lu, not offered: FEATURES_OK stuck (Status 0x%x; §2.2.2: MUST fail to set it)",
		   bit, st);
}

TESTCASE(hostile_features_unoffered, no_blk, TF_HOSTILE)
{
	struct virtio_dev *d = hdev();
	uint64_t off = virtio_offered(d);
	/* The lowest bit never offered in each range: device type (0-23),
	 * transport (24-41), and bit 63 (device type, high). */
	static const unsigned ranges[][2] = { { 0, 23 }, { 24, 41 }, { 63, 63 } };
	unsigned tried = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(ranges); i++) {
		for (unsigned b = ranges[i][0]; b <= ranges[i][1]; b++) {
			if (off & BIT(b))
				continue;
			const char *w = unoffered(d, b);
			if (w)
				return fail("%s", w);
			if ((w = recover("after a refused feature set")))
				return fail("%s", w);
			tried++;
			break;
		}
	}
	if (!tried)
		return skip("the device offers every bit tried");
	/* DriverFeatures after FEATURES_OK: INDIRECT_DESC and EVENT_IDX
	 * (if offered) then a normal read. */
	struct hq q;
	const char *w = hq_begin(&q, 0, QSIZE);
	if (w)
		return fail("%s", w);
	uint64_t late = BIT(VIRTIO_F_VERSION_1) | (off & (BIT(VIRTIO_F_INDIRECT_DESC) | BIT(VIRTIO_F_EVENT_IDX)));
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)late);
	hq_program_own(&q, QSIZE);
	if (!hq_ready(&q) || !hq_driver_ok(&q))
		return fail("normal set-up after a DriverFeatures write past FEATURES_OK: QueueReady or DRIVER_OK "
			    "refused");
	if ((w = normal_read(&q, "DriverFeatures written after FEATURES_OK")))
		return fail("%s", w);
	if ((w = recover("late DriverFeatures")))
		return fail("%s", w);
	return TEST_PASS;
}

/* Status bits cleared without a reset (§2.1.1: the driver MUST NOT), the
 * FAILED bit set, the device-owned NEEDS_RESET bit written: the device may
 * take or refuse each; a request then may or may not be served.  Accepted:
 * anything that keeps the VMM alive, a status OK read with the right data,
 * and a working device after the reset. */
static const char *clear_open(struct hq *q, const struct variant *v, const char **refused)
{
	(void)refused;
	const char *w = hq_open(q, 0, QSIZE, QSIZE);
	if (w)
		return w;
	virtio_write(q->d, VIRTIO_MMIO_STATUS, (uint32_t)v->arg);
	uint32_t st = virtio_read(q->d, VIRTIO_MMIO_STATUS);
	info("%s: Status 0x%x after writing 0x%lx", v->what, st, v->arg);
	q->driver_ok = st & VIRTIO_STATUS_DRIVER_OK;
	if (st & VIRTIO_STATUS_NEEDS_RESET)
		q->early_reset = true;
	return NULL;
}

TESTCASE(hostile_status_clear, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "DRIVER_OK cleared", 0, T_IN, 0, good_read, ANY, 0, ST_FEAT, clear_open },
		{ "all but ACKNOWLEDGE cleared", 0, T_IN, 0, good_read, ANY, 0, VIRTIO_STATUS_ACKNOWLEDGE, clear_open },
		{ "FAILED set", 0, T_IN, 0, good_read, ANY, 0, ST_FEAT | VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FAILED,
		  clear_open },
		{ "NEEDS_RESET written by the driver", 0, T_IN, 0, good_read, ANY, 0,
		  ST_FEAT | VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET, clear_open },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* ================= queue set-up ================= */

/* QueueNum not a power of two, 0, above QueueNumMax, above 16 bits (the
 * driver MUST NOT, §4.2.2.2 and §2.7 "Queue Size value is always a power
 * of 2").  Rings are allocated for 65536 entries, so whatever size the
 * device takes, it stays in our memory; the request sits at descriptors
 * 0-2 and ring slot 0, valid for any size.  Accepted: QueueReady refused,
 * NEEDS_RESET, silence, or the device working (status OK with the right
 * data, using the size it took) - but never a used buffer on a queue whose
 * QueueReady reads 0 (§4.2.2.1). */
static const char *size_open(struct hq *q, const struct variant *v, const char **refused)
{
	const char *w = hq_begin(q, 0, 65536);
	if (w)
		return w;
	virtio_write(q->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	uint32_t max = virtio_read(q->d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	uint32_t num = v->arg == 1 ? max + 1 : v->arg == 2 ? 2 * max : (uint32_t)v->arg;
	hq_program_own(q, num);
	if (!hq_ready(q))
		*refused = "QueueReady";
	if (virtio_read(q->d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET)
		q->early_reset = true;
	else if (!hq_driver_ok(q) && !*refused)
		*refused = "DRIVER_OK";
	info("%s: QueueNum %u (QueueNumMax %u): QueueReady %s", v->what, num, max, *refused ? "refused" : "set");
	return NULL;
}

TESTCASE(hostile_queue_size, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "queue size 6", 0, T_IN, 0, good_read, ANY, 0, 6, size_open },
		{ "queue size 3", 0, T_IN, 0, good_read, ANY, 0, 3, size_open },
		{ "queue size 0", 0, T_IN, 0, good_read, ANY, 0, 0, size_open },
		{ "queue size QueueNumMax + 1", 0, T_IN, 0, good_read, ANY, 0, 1, size_open },
		{ "queue size 2 x QueueNumMax", 0, T_IN, 0, good_read, ANY, 0, 2, size_open },
		{ "queue size 65535", 0, T_IN, 0, good_read, ANY, 0, 65535, size_open },
		{ "queue size 0x10008", 0, T_IN, 0, good_read, ANY, 0, 0x10008, size_open },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Ring addresses: arg = which ring (RING_*) | how (ADDR_*).  Page 0 is
 * zeroed first for ADDR_ZERO (nothing uses it after boot), so a device
 * taking address 0 reads an empty ring or a zero descriptor. */
enum { RING_DESC = 1, RING_AVAIL = 2, RING_USED = 4, RING_ALL = 7 };
enum { ADDR_ZERO = 0x10, ADDR_UNALIGNED = 0x20, ADDR_PAST_RAM = 0x30, ADDR_STRADDLE = 0x40, ADDR_GAP = 0x50,
       ADDR_FAR = 0x60, ADDR_WRAP = 0x70 };

static const char *addr_open(struct hq *q, const struct variant *v, const char **refused)
{
	const char *w = hq_begin(q, 0, 2 * QSIZE);
	if (w)
		return w;
	unsigned ring = v->arg & 0xf, how = v->arg & 0xf0;
	uint64_t a[3] = { virt_to_phys(q->desc), virt_to_phys(q->avail), virt_to_phys(q->used) };
	static const uint32_t size[3] = { 16 * QSIZE, 6 + 2 * QSIZE, 6 + 8 * QSIZE };
	if (how == ADDR_ZERO) {
		uintptr_t zero = 0;
		__asm__ volatile("" : "+r"(zero)); /* page 0, not a null pointer to the compiler */
		memset((void *)zero, 0, 4096);
	}
	if (how == ADDR_UNALIGNED) {
		/* Our own rings, moved off their alignment (16, 2, 4). */
		q->desc = (struct virtq_desc *)((char *)q->desc + 8);
		q->avail = (volatile struct virtq_avail *)((volatile char *)q->avail + 1);
		q->used = (volatile struct virtq_used *)((volatile char *)q->used + 2);
		a[0] += 8, a[1] += 1, a[2] += 2;
	}
	for (unsigned i = 0; i < 3; i++) {
		if (!(ring & (1u << i)))
			continue;
		switch (how) {
		case ADDR_ZERO: a[i] = 0; break;
		case ADDR_PAST_RAM: a[i] = ram_end(); break;
		case ADDR_STRADDLE: a[i] = ram_end() - size[i] / 2; break;
		case ADDR_GAP: a[i] = GAP_ADDR; break;
		case ADDR_FAR: a[i] = FAR_ADDR; break;
		case ADDR_WRAP: a[i] = 0ull - size[i] / 2; break;
		}
	}
	hq_program(q, 0, QSIZE, a[0], a[1], a[2]);
	if (!hq_ready(q))
		*refused = "QueueReady";
	if (virtio_read(q->d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET)
		q->early_reset = true;
	else if (!hq_driver_ok(q) && !*refused)
		*refused = "DRIVER_OK";
	return NULL;
}

/* Accepted: rings at address 0 are legal RAM: anything goes.  Unaligned
 * rings (the driver MUST align them, §2.7): refused, NEEDS_RESET, or the
 * device working (status OK, right data); silence after QueueReady stuck
 * would leave the driver waiting.  Rings outside RAM: refused,
 * NEEDS_RESET, silence (the device cannot reach the ring to answer in), or
 * the chain returned unread when only the descriptor table is bad - never
 * a status written (it could not read where the status byte is). */
#define BADRING (O_REFUSED | O_RESET | O_SILENT | O_USED)
#define RV(name, arg, acc, fl) { name, 0, T_IN, 0, good_read, acc, fl, arg, addr_open }
TESTCASE(hostile_queue_addr, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		RV("all rings at address 0", RING_ALL | ADDR_ZERO, ANY, 0),
		RV("descriptor table at address 0", RING_DESC | ADDR_ZERO, ANY, 0),
		RV("rings unaligned", RING_ALL | ADDR_UNALIGNED, O_OK | O_REFUSED | O_RESET, 0),
		RV("descriptor table past RAM", RING_DESC | ADDR_PAST_RAM, BADRING, 0),
		RV("available ring past RAM", RING_AVAIL | ADDR_PAST_RAM, BADRING, 0),
		RV("used ring past RAM", RING_USED | ADDR_PAST_RAM, BADRING, 0),
		RV("descriptor table straddling the end of RAM", RING_DESC | ADDR_STRADDLE, BADRING, 0),
		RV("used ring straddling the end of RAM", RING_USED | ADDR_STRADDLE, BADRING, 0),
		RV("descriptor table in the MMIO gap", RING_DESC | ADDR_GAP, BADRING, 0),
		RV("available ring in the MMIO gap", RING_AVAIL | ADDR_GAP, BADRING, 0),
		RV("used ring in the MMIO gap", RING_USED | ADDR_GAP, BADRING, 0),
		RV("all rings at 1 TiB", RING_ALL | ADDR_FAR, BADRING, 0),
		RV("all rings wrapping past 2^64", RING_ALL | ADDR_WRAP, BADRING, 0),
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Queue not ready: a buffer made available and notified while QueueReady
 * is 0 (never set, or set then cleared) must not be touched (§4.2.2.1:
 * "The device MUST NOT access virtual queue contents when QueueReady is
 * zero"); QueueReady must read back 0 after the driver wrote 0 (§4.2.2.2:
 * the driver reads it back "to ensure synchronization").  arg 0: never
 * set; arg 1: set, then cleared after DRIVER_OK. */
static const char *notready_open(struct hq *q, const struct variant *v, const char **refused)
{
	const char *w = hq_begin(q, 0, QSIZE);
	if (w)
		return w;
	hq_program_own(q, QSIZE);
	if (v->arg == 1 && !hq_ready(q))
		return "QueueReady did not stick";
	if (!hq_driver_ok(q))
		return "DRIVER_OK did not stick";
	if (v->arg == 1) {
		virtio_write(q->d, VIRTIO_MMIO_QUEUE_READY, 0);
		if (virtio_read(q->d, VIRTIO_MMIO_QUEUE_READY) != 0)
			return "QueueReady still reads 1 after the driver wrote 0 (§4.2.2.2)";
	}
	*refused = "QueueReady";
	return NULL;
}

TESTCASE(hostile_queue_not_ready, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "notify before QueueReady", 0, T_IN, 0, good_read, O_REFUSED | O_RESET, 0, 0, notready_open },
		{ "notify after QueueReady cleared", 0, T_IN, 0, good_read, O_REFUSED | O_RESET, 0, 1, notready_open },
	};
	if (!quirk("queue_not_ready"))
		return run_variants(v, ARRAY_SIZE(v));
	info("quirk queue_not_ready: only the first variant is judged");
	return run_variants(v, 1);
}

/* A buffer made available and notified after QueueReady but before
 * DRIVER_OK must not be used (§2.1.2: "The device MUST NOT consume buffers
 * ... before DRIVER_OK"); once DRIVER_OK is set and the queue notified
 * again it must be (an ordinary request). */
TESTCASE(hostile_notify_early, no_blk, TF_HOSTILE)
{
	struct hq q;
	struct req r;
	struct variant v = { .what = "read" };
	const char *w = hq_begin(&q, 0, QSIZE);
	if (w)
		return fail("%s", w);
	hq_program_own(&q, QSIZE);
	if (!hq_ready(&q))
		return fail("QueueReady did not stick");
	if (req_alloc(&r, T_IN, 0))
		return fail("out of memory");
	good_read(&q, &r, &v);
	hq_post(&q, 0);
	struct res res;
	hq_wait(&q, QUIET_US, &res);
	if (res.used || *r.status != 0xff) {
		if (!quirk("notify_early"))
			return fail("the device used a buffer before DRIVER_OK (§2.1.2: MUST NOT consume buffers before "
				    "DRIVER_OK)");
		info("used a buffer before DRIVER_OK (quirk notify_early)");
		if ((w = recover("notify before DRIVER_OK")))
			return fail("%s", w);
		return TEST_PASS;
	}
	if (res.reset)
		info("NEEDS_RESET after a notify before DRIVER_OK");
	else {
		if (!hq_driver_ok(&q))
			return fail("DRIVER_OK did not stick");
		virtio_write(q.d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		hq_wait(&q, ANSWER_US, &res);
		if (!res.used || *r.status != S_OK)
			return fail("after DRIVER_OK and a notify, the buffer made available before: %s, status %u",
				    res.used ? "used" : res.reset ? "NEEDS_RESET" : "not used", *r.status);
		if ((w = check_known(r.data, 0, 1)))
			return fail("%s", w);
		info("not used before DRIVER_OK, served after it");
	}
	if ((w = recover("notify before DRIVER_OK")))
		return fail("%s", w);
	return TEST_PASS;
}

/* QueueNotify with queues that do not exist (the first index whose
 * QueueNumMax reads 0, which must read 0: §4.2.2 "zero (0x0) if the queue
 * is not available"), 0xffff, values beyond 16 bits; QueueNum/QueueReady
 * written for a queue that does not exist.  All ignored: queue 0 goes on
 * working without a reset. */
TESTCASE(hostile_notify_bad_queue, no_blk, TF_HOSTILE)
{
	struct hq q;
	const char *w = hq_open(&q, 0, QSIZE, QSIZE);
	if (w)
		return fail("%s", w);
	struct virtio_dev *d = q.d;
	unsigned k = 1;
	for (; k < 1024; k++) {
		virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, k);
		if (virtio_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX) == 0)
			break;
	}
	if (k == 1024)
		return fail("QueueNumMax non-zero for queues 1-1023");
	hq_program(&q, k, QSIZE, virt_to_phys(q.desc), virt_to_phys(q.avail), virt_to_phys(q.used));
	virtio_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	uint32_t rdy = virtio_read(d, VIRTIO_MMIO_QUEUE_READY);
	virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, 0xffff);
	uint32_t max_ffff = virtio_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	static const uint32_t bad[] = { 0, 0xffff, 0x10000, 0xffffffff, 0x7fff };
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
		virtio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, bad[i] ? bad[i] : k);
	virtio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, k + 1);
	info("queue %u is the first absent one; QueueReady there reads %u; QueueNumMax of queue 0xffff %u", k, rdy,
	     max_ffff);
	uint32_t st = virtio_read(d, VIRTIO_MMIO_STATUS);
	if (st != (ST_FEAT | VIRTIO_STATUS_DRIVER_OK))
		return fail("Status 0x%x after notifying absent queues (the notifications are to be ignored)", st);
	if (q.used->idx != 0)
		return fail("used ring index %u after notifying absent queues (queue 0 has nothing available)",
			    q.used->idx);
	if ((w = normal_read(&q, "queue 0 after notifying absent queues")))
		return fail("%s", w);
	if ((w = recover("absent queues")))
		return fail("%s", w);
	return TEST_PASS;
}

/* QueueNum and the ring addresses rewritten while QueueReady is 1 (the
 * driver MUST NOT, §4.2.2.2), to a smaller size and the MMIO gap: the
 * device may ignore that (keeps the rings it has) or use the new values
 * (then it cannot reach them).  Accepted: status OK with the right data,
 * NEEDS_RESET, silence, the buffer returned; then a reset must help. */
static const char *live_open(struct hq *q, const struct variant *v, const char **refused)
{
	(void)v, (void)refused;
	const char *w = hq_open(q, 0, QSIZE, QSIZE);
	if (w)
		return w;
	hq_program(q, 0, QSIZE / 2, GAP_ADDR, GAP_ADDR + 0x1000, GAP_ADDR + 0x2000);
	q->num = QSIZE;
	return NULL;
}

TESTCASE(hostile_queue_change_live, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "ring addresses rewritten while ready", 0, T_IN, 0, good_read, O_OK | O_RESET | O_SILENT | O_USED,
		  0, 0, live_open },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* ================= descriptors ================= */

static int oob_in_past_ram(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	return std3(q, r, ram_end(), SECTOR, true);
}
static int oob_in_straddle(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	return std3(q, r, ram_end() - 256, SECTOR, true);
}
static int oob_at(struct hq *q, struct req *r, const struct variant *v)
{
	return std3(q, r, v->arg, (uint32_t)(v->arg >> 63 ? 2 * SECTOR : SECTOR), v->type == T_IN);
}
static int oob_out_past_ram(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	return std3(q, r, ram_end(), SECTOR, false);
}
static int oob_out_straddle(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	return std3(q, r, ram_end() - 256, SECTOR, false);
}
static int oob_hdr(struct hq *q, struct req *r, const struct variant *v)
{
	std3(q, r, virt_to_phys(r->data), SECTOR, true);
	q->desc[0].addr = v->arg ? v->arg : ram_end();
	return 0;
}
static int oob_status(struct hq *q, struct req *r, const struct variant *v)
{
	std3(q, r, virt_to_phys(r->data), SECTOR, true);
	q->desc[2].addr = v->arg ? v->arg : ram_end();
	r->status = NULL;
	return 0;
}

/* A data buffer outside RAM: the device cannot do the transfer and the
 * status byte is fine, so it must say so: IOERR (§5.2.6: "IOERR for device
 * or driver error") or DEVICE_NEEDS_RESET (§2.1.2).  Status OK would mean
 * it made data up or dropped it; silence leaves the driver waiting.  A
 * header outside RAM: the same (the status byte is reachable).  A status
 * byte outside RAM: the device cannot answer in it, so it returns the
 * buffer, sets NEEDS_RESET, or stays silent. */
#define OOB(name, type, sector, fn, arg) { name, 0, type, sector, fn, O_ERR | O_RESET, V_UNASSIGNED, arg, NULL }
TESTCASE(hostile_desc_outside_ram, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		OOB("read into the first page past RAM", T_IN, 0, oob_in_past_ram, 0),
		OOB("read into a buffer straddling the end of RAM", T_IN, 0, oob_in_straddle, 0),
		OOB("read into the MMIO gap", T_IN, 0, oob_at, GAP_ADDR),
		OOB("read into 1 TiB", T_IN, 0, oob_at, FAR_ADDR),
		OOB("read into a buffer wrapping past 2^64", T_IN, 0, oob_at, 0xfffffffffffffe00ull),
		OOB("write from the LAPIC page", T_OUT, WRITE_SECTOR, oob_at, LAPIC_BASE),
		OOB("write from the first page past RAM", T_OUT, WRITE_SECTOR, oob_out_past_ram, 0),
		OOB("write from a buffer straddling the end of RAM", T_OUT, WRITE_SECTOR, oob_out_straddle, 0),
		OOB("write from the MMIO gap", T_OUT, WRITE_SECTOR, oob_at, GAP_ADDR),
		OOB("write from a buffer wrapping past 2^64", T_OUT, WRITE_SECTOR, oob_at, 0xfffffffffffffe00ull),
		OOB("header in the MMIO gap", T_IN, 0, oob_hdr, GAP_ADDR),
		OOB("header past RAM", T_IN, 0, oob_hdr, 0),
		{ "status byte in the MMIO gap", 0, T_IN, 0, oob_status, O_USED | O_RESET | O_SILENT, 0, GAP_ADDR, NULL },
		{ "status byte past RAM", 0, T_IN, 0, oob_status, O_USED | O_RESET | O_SILENT, 0, 0, NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Loops: data descriptors go to r->data, so a device walking them writes
 * only there. */
static int loop_self(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	set_desc(q->desc, 1, virt_to_phys(r->data), SECTOR, WN(1));
	return 0;
}
static int loop_two(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	set_desc(q->desc, 1, virt_to_phys(r->data), SECTOR, WN(2));
	set_desc(q->desc, 2, virt_to_phys(r->status), 1, WN(1));
	return 0;
}
static int loop_to_head(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	set_desc(q->desc, 1, virt_to_phys(r->data), SECTOR, WN(2));
	set_desc(q->desc, 2, virt_to_phys(r->status), 1, WN(0));
	return 0;
}
static int loop_head_self(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(0));
	return 0;
}
static int loop_readable(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v; /* a loop of device-readable descriptors: a write "from" them */
	r->hdr->type = T_OUT;
	r->hdr->sector = WRITE_SECTOR;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	set_desc(q->desc, 1, virt_to_phys(r->data), SECTOR, RN(2));
	set_desc(q->desc, 2, virt_to_phys(r->data), SECTOR, RN(1));
	return 0;
}
static struct virtq_desc *table(unsigned n)
{
	return alloc(16ull * n, 16);
}
static int loop_indirect(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	struct virtq_desc *t = table(3);
	set_desc(t, 0, virt_to_phys(r->hdr), 16, RN(1));
	set_desc(t, 1, virt_to_phys(r->data), SECTOR, WN(2));
	set_desc(t, 2, virt_to_phys(r->status), 1, WN(1));
	set_desc(q->desc, 0, virt_to_phys(t), 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	return 0;
}
static int next_oob(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v; /* next = queue size: the table has no such descriptor */
	std3(q, r, virt_to_phys(r->data), SECTOR, true);
	q->desc[1].next = QSIZE;
	return 0;
}

/* Descriptor chains that loop (the driver MUST NOT: §2.7.5.2 "Drivers MUST
 * NOT add a descriptor chain longer than 2^32 bytes in total; this implies
 * that loops in the descriptor chain are forbidden!") or name a descriptor
 * beyond the table.  The device must notice (no hang, no endless walk):
 * NEEDS_RESET, or the chain returned (unwritten, or with an error status
 * where it found one).  Silence fails: the head is there to be returned.
 * Status OK fails: there is no well-formed request in a loop. */
#define CHAIN_BAD (O_RESET | O_USED | O_ERR)
TESTCASE(hostile_desc_loop, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "data descriptor chained to itself", 0, T_IN, 0, loop_self, CHAIN_BAD, 0, 0, NULL },
		{ "status chained back to the data descriptor", 0, T_IN, 0, loop_two, CHAIN_BAD, 0, 0, NULL },
		{ "status chained back to the head", 0, T_IN, 0, loop_to_head, CHAIN_BAD, 0, 0, NULL },
		{ "head chained to itself", 0, T_IN, 0, loop_head_self, CHAIN_BAD, 0, 0, NULL },
		{ "loop of device-readable descriptors", 0, T_OUT, WRITE_SECTOR, loop_readable, CHAIN_BAD, 0, 0, NULL },
		{ "loop inside an indirect table", 0, T_IN, 0, loop_indirect, CHAIN_BAD, V_INDIRECT, 0, NULL },
		{ "next beyond the queue size", 0, T_IN, 0, next_oob, CHAIN_BAD, 0, 0, NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Every descriptor of the table, then back to descriptor 1: longer than
 * the queue size, and endless. */
static int chain_all(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	for (unsigned i = 1; i < QSIZE; i++)
		set_desc(q->desc, i, virt_to_phys(r->data) + i * SECTOR, SECTOR, WN(i + 1 < QSIZE ? i + 1 : 1));
	return 0;
}
/* Exactly the queue size (legal): header, QSIZE-2 sectors, status. */
static int chain_qsize(struct hq *q, struct req *r, const struct variant *v)
{
	(void)v;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	for (unsigned i = 1; i < QSIZE - 1; i++)
		set_desc(q->desc, i, virt_to_phys(r->data) + (i - 1) * SECTOR, SECTOR, WN(i + 1));
	set_desc(q->desc, QSIZE - 1, virt_to_phys(r->status), 1, W_END);
	req_known(r, r->data, 0, QSIZE - 2);
	return 0;
}
/* An indirect table of n = arg entries: header, n-2 sectors, status. */
static int chain_indirect(struct hq *q, struct req *r, const struct variant *v)
{
	unsigned n = (unsigned)v->arg;
	struct virtq_desc *t = table(n);
	uint8_t *buf = alloc((size_t)(n - 2) * SECTOR, 4096);
	if (!t || !buf)
		return -1;
	memset(buf, 0xee, (size_t)(n - 2) * SECTOR);
	set_desc(t, 0, virt_to_phys(r->hdr), 16, RN(1));
	for (unsigned i = 1; i < n - 1; i++)
		set_desc(t, i, virt_to_phys(buf) + (i - 1) * SECTOR, SECTOR, WN(i + 1));
	set_desc(t, n - 1, virt_to_phys(r->status), 1, W_END);
	set_desc(q->desc, 0, virt_to_phys(t), 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	req_known(r, buf, 0, MIN(n - 2, CHECKED_SECTORS));
	return 0;
}

/* Chains longer than the queue size.  Direct, that needs a loop: as in
 * hostile_desc_loop.  Indirect (the driver MUST NOT create a chain longer
 * than the Queue Size, §2.7.5.3.1, and "The device MAY have a reasonable
 * limit of descriptors it will allow in a chain", §2.7.4.1): status OK
 * with the right data, or a refusal (error status, NEEDS_RESET, returned
 * unwritten); silence fails.  A chain of exactly the queue size is legal
 * and must work. */
#define CHAIN_ANY (O_OK | O_RESET | O_USED | O_ERR)
TESTCASE(hostile_chain_long, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "direct chain through the whole table and round again", 0, T_IN, 0, chain_all, CHAIN_BAD, 0, 0,
		  NULL },
		{ "direct chain of exactly the queue size (legal)", 0, T_IN, 0, chain_qsize, O_OK, 0, 0, NULL },
		{ "indirect chain of 3 x queue size", 0, T_IN, 0, chain_indirect, CHAIN_ANY, V_INDIRECT, 3 * QSIZE,
		  NULL },
		{ "indirect chain of 1026 descriptors", 0, T_IN, 0, chain_indirect, CHAIN_ANY, V_INDIRECT, 1026,
		  NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Data descriptors whose lengths sum past 2^32 (the driver MUST NOT,
 * §2.7.5.2) or run far past RAM.  They start in the last allocation of
 * the heap, so a device that wrapped the sum to 32 bits and honoured the
 * small remainder writes only free memory - and then answers status OK,
 * which fails.  Accepted: IOERR, NEEDS_RESET, or the chain returned. */
static int lens(struct hq *q, struct req *r, const struct variant *v)
{
	static const uint32_t sets[][3] = {
		{ 0x80000000u, 0x80000000u, 0x200 }, /* 2^32 + 512: 512 in 32 bits */
		{ 0xffffffffu, 0xffffffffu, 0x202 }, /* 2^33 + 512 */
		{ 0xfffffe00u, 0, 0 },               /* ~4 GiB, a multiple of 512 */
		{ 0xffffffffu, 0, 0 },
	};
	const uint32_t *l = sets[v->arg];
	uint8_t *scratch = alloc(65536, 4096); /* the heap's last allocation */
	if (!scratch)
		return -1;
	unsigned n = l[1] ? 3 : 1;
	bool in = v->type == T_IN;
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	for (unsigned i = 0; i < n; i++)
		set_desc(q->desc, 1 + i, virt_to_phys(scratch), l[i],
			 (uint16_t)(VIRTQ_DESC_F_NEXT | (in ? VIRTQ_DESC_F_WRITE : 0)), (uint16_t)(2 + i));
	set_desc(q->desc, 1 + n, virt_to_phys(r->status), 1, W_END);
	return 0;
}

#define LEN_BAD (O_ERR | O_RESET | O_USED)
TESTCASE(hostile_len_overflow, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "read, lengths summing to 2^32 + 512", 0, T_IN, 0, lens, LEN_BAD, V_UNASSIGNED, 0, NULL },
		{ "write, lengths summing to 2^33 + 512", 0, T_OUT, WRITE_SECTOR, lens, LEN_BAD, V_UNASSIGNED, 1, NULL },
		{ "read, one descriptor of 4 GiB - 512", 0, T_IN, 0, lens, LEN_BAD, V_UNASSIGNED, 2, NULL },
		{ "write, one descriptor of 4 GiB - 1", 0, T_OUT, WRITE_SECTOR, lens, LEN_BAD, V_UNASSIGNED, 3, NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* ================= indirect tables ================= */

/* A valid 3-entry table for a read of sector 0 (in its own 16-byte-aligned
 * allocation, extra room after it), referred to by descriptor 0 with
 * length / address / flags from the variant. */
enum { IND_LEN, IND_ADDR, IND_FLAGS };
static int ind(struct hq *q, struct req *r, const struct variant *v)
{
	unsigned kind = (unsigned)(v->arg >> 56);
	uint64_t val = v->arg & ((1ull << 56) - 1);
	bool huge = kind == IND_LEN && val > (1u << 20);
	struct virtq_desc *t = table(kind == IND_LEN && !huge && val > 48 ? (unsigned)(val / 16) + 1 : 4);
	if (!t)
		return -1;
	set_desc(t, 0, virt_to_phys(r->hdr), 16, RN(1));
	set_desc(t, 1, virt_to_phys(r->data), SECTOR, WN(2));
	set_desc(t, 2, virt_to_phys(r->status), 1, W_END);
	req_readonly(r, t, 48);
	req_known(r, r->data, 0, 1);
	uint64_t addr = virt_to_phys(t);
	uint32_t len = 48;
	uint16_t flags = VIRTQ_DESC_F_INDIRECT;
	if (kind == IND_LEN)
		len = (uint32_t)val;
	else if (kind == IND_ADDR)
		addr = val ? val : ram_end() - 24;
	else
		flags = (uint16_t)(flags | val);
	set_desc(q->desc, 0, addr, len, flags, 1);
	/* Descriptor 1 (named by a NEXT flag on the head): a harmless end. */
	set_desc(q->desc, 1, virt_to_phys(r->data) + SECTOR, SECTOR, W_END);
	return 0;
}
#define IL(x) (((uint64_t)IND_LEN << 56) | (x))
#define IA(x) (((uint64_t)IND_ADDR << 56) | (x))
#define IF(x) (((uint64_t)IND_FLAGS << 56) | (x))

/* Indirect tables with a bad length or place.  A length that is no
 * multiple of 16 or zero describes no whole descriptor table (§2.7.5.3:
 * "desc[len / 16]"); reading the 3 valid entries anyway means reading past
 * the table, so status OK fails; accepted: NEEDS_RESET, the chain returned
 * unwritten, an error status.  A 1 MiB table (65536 entries, 3 used) is
 * no violation: OK with the right data, or a refusal (a device limit).  A
 * table outside RAM: a refusal.  INDIRECT with NEXT (the driver MUST NOT,
 * §2.7.5.3.1): anything but silence.  INDIRECT with WRITE: "The device
 * MUST ignore the write-only flag" (§2.7.5.3.2), so it must work.
 * INDIRECT without the feature (the driver MUST NOT, §2.7.5.3.1):
 * anything but silence. */
#define IND_BAD (O_RESET | O_USED | O_ERR)
TESTCASE(hostile_indirect_len, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "table length 0", 0, T_IN, 0, ind, IND_BAD, V_INDIRECT, IL(0), NULL },
		{ "table length 8", 0, T_IN, 0, ind, IND_BAD, V_INDIRECT, IL(8), NULL },
		{ "table length 40 (2.5 descriptors)", 0, T_IN, 0, ind, IND_BAD, V_INDIRECT, IL(40), NULL },
		{ "table length 47", 0, T_IN, 0, ind, IND_BAD, V_INDIRECT, IL(47), NULL },
		{ "table length 0xfffffff0 (past RAM)", 0, T_IN, 0, ind, IND_BAD, V_INDIRECT | V_UNASSIGNED,
		  IL(0xfffffff0u), NULL },
		{ "table length 1 MiB (65536 descriptors)", 0, T_IN, 0, ind, IND_BAD | O_OK, V_INDIRECT, IL(1u << 20),
		  NULL },
		{ "table in the MMIO gap", 0, T_IN, 0, ind, IND_BAD, V_INDIRECT | V_UNASSIGNED, IA(GAP_ADDR), NULL },
		{ "table straddling the end of RAM", 0, T_IN, 0, ind, IND_BAD, V_INDIRECT | V_UNASSIGNED, IA(0), NULL },
		{ "INDIRECT together with NEXT", 0, T_IN, 0, ind, IND_BAD | O_OK, V_INDIRECT, IF(VIRTQ_DESC_F_NEXT),
		  NULL },
		{ "INDIRECT together with WRITE (to be ignored)", 0, T_IN, 0, ind, O_OK, V_INDIRECT,
		  IF(VIRTQ_DESC_F_WRITE), NULL },
		{ "INDIRECT without VIRTIO_F_INDIRECT_DESC", 0, T_IN, 0, ind, IND_BAD | O_OK, 0, IF(0), NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Nested indirect tables (the driver MUST NOT, §2.7.5.3.1).  To an inner
 * table holding a valid data+status pair: a device may follow it (status
 * OK, right data) or refuse.  To the table itself: a device that followed
 * it would never stop; it must refuse (NEEDS_RESET, returned, error). */
static int nested(struct hq *q, struct req *r, const struct variant *v)
{
	struct virtq_desc *outer = table(2), *inner = table(2);
	if (!outer || !inner)
		return -1;
	set_desc(inner, 0, virt_to_phys(r->data), SECTOR, WN(1));
	set_desc(inner, 1, virt_to_phys(r->status), 1, W_END);
	switch (v->arg) {
	case 0: /* header, then a nested table with data and status */
		set_desc(outer, 0, virt_to_phys(r->hdr), 16, RN(1));
		set_desc(outer, 1, virt_to_phys(inner), 32, VIRTQ_DESC_F_INDIRECT, 0);
		req_known(r, r->data, 0, 1);
		break;
	case 1: /* the table's only entry refers to the table */
		set_desc(outer, 0, virt_to_phys(outer), 16, VIRTQ_DESC_F_INDIRECT, 0);
		break;
	case 2: /* header, then the table again */
		set_desc(outer, 0, virt_to_phys(r->hdr), 16, RN(1));
		set_desc(outer, 1, virt_to_phys(outer), 32, VIRTQ_DESC_F_INDIRECT, 0);
		break;
	}
	req_readonly(r, outer, 32);
	set_desc(q->desc, 0, virt_to_phys(outer), v->arg == 1 ? 16 : 32, VIRTQ_DESC_F_INDIRECT, 0);
	return 0;
}

TESTCASE(hostile_indirect_nested, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "indirect table inside an indirect table", 0, T_IN, 0, nested, IND_BAD | O_OK, V_INDIRECT, 0, NULL },
		{ "indirect table referring to itself", 0, T_IN, 0, nested, IND_BAD, V_INDIRECT, 1, NULL },
		{ "indirect table referring to itself after a header", 0, T_IN, 0, nested, IND_BAD, V_INDIRECT, 2,
		  NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Legal, if unusual: "The device MUST handle the case of zero or more
 * normal chained descriptors followed by a single descriptor with
 * flags&VIRTQ_DESC_F_INDIRECT" (§2.7.5.3.2).  Direct header (and, in the
 * second variant, 4 direct data sectors) then an indirect table with the
 * rest: must work, status OK, right data. */
static int after_direct(struct hq *q, struct req *r, const struct variant *v)
{
	struct virtq_desc *t = table(2);
	if (!t)
		return -1;
	unsigned direct = (unsigned)v->arg; /* direct data sectors */
	set_desc(t, 0, virt_to_phys(r->data) + direct * SECTOR, 4 * SECTOR, WN(1));
	set_desc(t, 1, virt_to_phys(r->status), 1, W_END);
	set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
	if (direct)
		set_desc(q->desc, 1, virt_to_phys(r->data), direct * SECTOR, WN(2));
	set_desc(q->desc, direct ? 2 : 1, virt_to_phys(t), 32, VIRTQ_DESC_F_INDIRECT, 0);
	req_readonly(r, r->hdr, 16);
	req_known(r, r->data, 0, direct + 4);
	return 0;
}

TESTCASE(hostile_indirect_after_direct, no_blk, TF_HOSTILE)
{
	static struct variant v[] = {
		{ "direct header, then an indirect table", 0, T_IN, 0, after_direct, O_OK, V_INDIRECT, 0, NULL },
		{ "direct header and data, then an indirect table", 0, T_IN, 0, after_direct, O_OK, V_INDIRECT, 4,
		  NULL },
	};
	if (quirk("indirect_after_direct")) {
		/* QEMU 7.2 takes an indirect table only at the head of a chain
		 * (it maps one further down as a data buffer): it must still
		 * refuse cleanly. */
		info("quirk indirect_after_direct: a refusal is reported, not failed");
		for (unsigned i = 0; i < ARRAY_SIZE(v); i++)
			v[i].accept |= IND_BAD;
	}
	return run_variants(v, ARRAY_SIZE(v));
}

/* ================= the available ring ================= */

/* A head index >= queue size in the available ring.  Descriptors past the
 * table (which the rings' allocation has, for 65536 entries) hold a valid
 * read, so a device that looked there would answer status OK: fails.  No
 * chain is there to return, so: NEEDS_RESET or silence. */
static const char *big_table_open(struct hq *q, const struct variant *v, const char **refused)
{
	(void)v, (void)refused;
	return hq_open(q, 0, QSIZE, 65536);
}
static int head_oob(struct hq *q, struct req *r, const struct variant *v)
{
	unsigned h = (unsigned)v->arg;
	set_desc(q->desc, h, virt_to_phys(r->hdr), 16, RN(h + 1));
	set_desc(q->desc, h + 1, virt_to_phys(r->data), SECTOR, WN(h + 2));
	set_desc(q->desc, h + 2, virt_to_phys(r->status), 1, W_END);
	req_readonly(r, r->hdr, 16);
	return (int)h;
}

TESTCASE(hostile_avail_head, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "head = queue size", 0, T_IN, 0, head_oob, O_RESET | O_SILENT, 0, QSIZE, big_table_open },
		{ "head = 0xfffd", 0, T_IN, 0, head_oob, O_RESET | O_SILENT, 0, 0xfffd, big_table_open },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* avail->idx moved by more than the queue size, or backwards (the driver
 * MUST NOT decrement it, §2.7.6.1; it never has more than Queue Size
 * buffers available, §2.7).  Every ring slot names the same valid read, so
 * whatever the device makes of it touches only r->data.  The spec leaves
 * the device's answer open: anything but a hang, a crash, or a device that
 * does not work after a reset. */
static int idx_jump(struct hq *q, struct req *r, const struct variant *v)
{
	good_read(q, r, v);
	r->known = NULL;
	for (unsigned i = 0; i < QSIZE; i++)
		q->avail->ring[i] = 0;
	if (v->arg == 0) { /* backwards: one good request first, then idx 1 -> 0 */
		hq_post(q, 0);
		struct res res;
		hq_wait(q, ANSWER_US, &res);
		*r->status = 0xff;
		q->avail_idx = 0xffff;
	} else {
		q->avail_idx = (uint16_t)(v->arg - 1);
	}
	return 0;
}

TESTCASE(hostile_avail_idx, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "avail idx = queue size + 1", 0, T_IN, 0, idx_jump, ANY, 0, QSIZE + 1, NULL },
		{ "avail idx = 0x8000", 0, T_IN, 0, idx_jump, ANY, 0, 0x8000, NULL },
		{ "avail idx = 0xffff", 0, T_IN, 0, idx_jump, ANY, 0, 0xffff, NULL },
		{ "avail idx moved back by one", 0, T_IN, 0, idx_jump, ANY, 0, 0, NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* ================= virtio-blk requests ================= */

static int lay(struct hq *q, struct req *r, const struct variant *v)
{
	uint64_t hdr = virt_to_phys(r->hdr), data = virt_to_phys(r->data), st = virt_to_phys(r->status);
	switch (v->arg) {
	case 0: /* header device-writable */
		set_desc(q->desc, 0, hdr, 16, WN(1));
		set_desc(q->desc, 1, data, SECTOR, WN(2));
		set_desc(q->desc, 2, st, 1, W_END);
		break;
	case 1: /* header of 8 bytes: no sector */
		set_desc(q->desc, 0, hdr, 8, RN(1));
		set_desc(q->desc, 1, data, SECTOR, WN(2));
		set_desc(q->desc, 2, st, 1, W_END);
		r->hdr->sector = 1; /* a device reading past the 8 bytes reads sector 1 */
		req_readonly(r, r->hdr, 16);
		break;
	case 2: /* header split 8 + 8 (legal, §2.7.4) */
		set_desc(q->desc, 0, hdr, 8, RN(1));
		set_desc(q->desc, 1, hdr + 8, 8, RN(2));
		set_desc(q->desc, 2, data, SECTOR, WN(3));
		set_desc(q->desc, 3, st, 1, W_END);
		req_readonly(r, r->hdr, 16);
		req_known(r, r->data, 0, 1);
		break;
	case 3: /* no separate status: 512 writable bytes, the last one is it */
		set_desc(q->desc, 0, hdr, 16, RN(1));
		set_desc(q->desc, 1, data, SECTOR, W_END);
		r->status = r->data + SECTOR - 1;
		*r->status = 0xff;
		req_readonly(r, r->hdr, 16);
		break;
	case 4: /* only a header */
		set_desc(q->desc, 0, hdr, 16, R_END);
		r->status = NULL;
		req_readonly(r, r->hdr, 16);
		break;
	case 5: /* status byte device-readable */
		set_desc(q->desc, 0, hdr, 16, RN(1));
		set_desc(q->desc, 1, data, SECTOR, WN(2));
		set_desc(q->desc, 2, st, 1, R_END);
		req_readonly(r, r->status, 1);
		r->status = NULL;
		break;
	case 6: /* everything device-readable (a read) */
		set_desc(q->desc, 0, hdr, 16, RN(1));
		set_desc(q->desc, 1, data, SECTOR, RN(2));
		set_desc(q->desc, 2, data + SECTOR, 1, R_END);
		req_readonly(r, r->data, SECTOR + 1);
		r->status = NULL;
		break;
	case 7: /* read whose data is device-readable; status writable */
		set_desc(q->desc, 0, hdr, 16, RN(1));
		set_desc(q->desc, 1, data, SECTOR, RN(2));
		set_desc(q->desc, 2, st, 1, W_END);
		req_readonly(r, r->data, SECTOR);
		break;
	case 8: /* a device-readable descriptor after a writable one */
		set_desc(q->desc, 0, hdr, 16, RN(1));
		set_desc(q->desc, 1, data, SECTOR, WN(2));
		set_desc(q->desc, 2, data + SECTOR, SECTOR, RN(3));
		set_desc(q->desc, 3, st, 1, W_END);
		req_readonly(r, r->data + SECTOR, SECTOR);
		req_known(r, r->data, 0, 1);
		break;
	}
	return 0;
}

/* Malformed virtio-blk requests (§5.2.6: header device-readable, status
 * the last byte, device-writable; §2.7.4.2: writable after readable).
 * The device must never write a device-readable buffer (§2.7.5.1) nor
 * read past a buffer.  Where a status byte is reachable it must answer:
 * error status or NEEDS_RESET (OK fails: a header it could not read, 511
 * data bytes, ...).  Without one: NEEDS_RESET, the chain returned, or
 * silence.  The 8 + 8 split header is legal and must work. */
TESTCASE(hostile_blk_layout, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "header in a device-writable descriptor", 0, T_IN, 0, lay, O_ERR | O_RESET, 0, 0, NULL },
		{ "header of 8 bytes", 0, T_IN, 0, lay, O_ERR | O_RESET, 0, 1, NULL },
		{ "header split 8 + 8 (legal)", 0, T_IN, 0, lay, O_OK, 0, 2, NULL },
		{ "no status descriptor (511 data bytes + status)", 0, T_IN, 0, lay, O_ERR | O_RESET, 0, 3, NULL },
		{ "only a header", 0, T_IN, 0, lay, O_RESET | O_USED | O_SILENT, 0, 4, NULL },
		{ "status byte device-readable", 0, T_IN, 0, lay, O_RESET | O_USED | O_SILENT, 0, 5, NULL },
		{ "read with every descriptor device-readable", 0, T_IN, 0, lay, O_RESET | O_USED | O_SILENT, 0, 6,
		  NULL },
		{ "read into a device-readable data buffer", 0, T_IN, 0, lay, O_OK | O_ERR | O_RESET | O_USED, 0, 7,
		  NULL },
		{ "device-readable descriptor after a writable one", 0, T_IN, 0, lay, O_OK | O_ERR | O_RESET | O_USED,
		  0, 8, NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

static int len_n(struct hq *q, struct req *r, const struct variant *v)
{
	if (v->arg == 0xffff) { /* a zero-length descriptor in the middle */
		set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
		set_desc(q->desc, 1, virt_to_phys(r->data), 0, WN(2));
		set_desc(q->desc, 2, virt_to_phys(r->data), SECTOR, WN(3));
		set_desc(q->desc, 3, virt_to_phys(r->status), 1, W_END);
		req_readonly(r, r->hdr, 16);
		req_known(r, r->data, 0, 1);
		return 0;
	}
	if (v->arg == 0) { /* no data at all */
		set_desc(q->desc, 0, virt_to_phys(r->hdr), 16, RN(1));
		set_desc(q->desc, 1, virt_to_phys(r->status), 1, W_END);
		req_readonly(r, r->hdr, 16);
		return 0;
	}
	std3(q, r, virt_to_phys(r->data), (uint32_t)v->arg, v->type == T_IN);
	if (v->type == T_IN) {
		r->guard = r->data + v->arg;
		r->guard_len = 64;
	}
	return 0;
}

/* Data not a multiple of 512 bytes (the driver MUST NOT, §5.2.6.1): the
 * device must refuse it (IOERR or NEEDS_RESET); status OK means it moved
 * part of a sector (or more than the buffer: the guard after the buffer
 * is checked).  A zero-length descriptor (nothing forbids one) and a
 * request with no data (0 is a multiple of 512): anything but silence. */
TESTCASE(hostile_blk_len, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "read of 100 bytes", 0, T_IN, 0, len_n, O_ERR | O_RESET, 0, 100, NULL },
		{ "read of 513 bytes", 0, T_IN, 0, len_n, O_ERR | O_RESET, 0, 513, NULL },
		{ "read of 511 bytes", 0, T_IN, 0, len_n, O_ERR | O_RESET, 0, 511, NULL },
		{ "write of 1000 bytes", 0, T_OUT, WRITE_SECTOR, len_n, O_ERR | O_RESET, 0, 1000, NULL },
		{ "zero-length descriptor before the data", 0, T_IN, 0, len_n, CHAIN_ANY, 0, 0xffff, NULL },
		{ "read with no data", 0, T_IN, 0, len_n, CHAIN_ANY, 0, 0, NULL },
		{ "write with no data", 0, T_OUT, WRITE_SECTOR, len_n, CHAIN_ANY, 0, 0, NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

/* Sectors at or past the capacity, or whose byte offset overflows 64 bits
 * (the driver MUST NOT read or write beyond capacity, §5.2.6.1): IOERR (or
 * NEEDS_RESET).  Writes carry 0x5a bytes: a device that wrapped sector *
 * 512 or sector + count to 0 would overwrite sector 0, which the recovery
 * read checks. */
static int sect(struct hq *q, struct req *r, const struct variant *v)
{
	uint64_t cap = virtio_config64(q->d, 0);
	unsigned n = 1;
	switch (v->arg) {
	case 0: r->hdr->sector = cap; break;
	case 1: r->hdr->sector = cap - 1; n = 2; break;
	case 2: r->hdr->sector = 1ull << 55; break;  /* * 512 = 2^64 */
	case 3: r->hdr->sector = ~0ull; break;       /* + 1 = 0 */
	case 4: r->hdr->sector = 1ull << 54; break;  /* * 512 = 2^63: negative as off_t */
	case 5: r->hdr->sector = ~0ull - 7; n = 16; break;
	}
	if (v->type == T_OUT)
		memset(r->data, 0x5a, n * SECTOR);
	return std3(q, r, virt_to_phys(r->data), n * SECTOR, v->type == T_IN);
}

TESTCASE(hostile_blk_sector, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "read at sector = capacity", 0, T_IN, 0, sect, O_ERR | O_RESET, 0, 0, NULL },
		{ "read of 2 sectors from the last", 0, T_IN, 0, sect, O_ERR | O_RESET, 0, 1, NULL },
		{ "write at sector 2^55 (offset 2^64)", 0, T_OUT, 0, sect, O_ERR | O_RESET, 0, 2, NULL },
		{ "write at sector 2^64 - 1", 0, T_OUT, 0, sect, O_ERR | O_RESET, 0, 3, NULL },
		{ "read at sector 2^54 (offset 2^63)", 0, T_IN, 0, sect, O_ERR | O_RESET, 0, 4, NULL },
		{ "write of 16 sectors from 2^64 - 8", 0, T_OUT, 0, sect, O_ERR | O_RESET, 0, 5, NULL },
		{ "write of 2 sectors from the last", 0, T_OUT, 0, sect, O_ERR | O_RESET, 0, 1, NULL },
	};
	return run_variants(v, ARRAY_SIZE(v));
}

static int typed(struct hq *q, struct req *r, const struct variant *v)
{
	uint32_t len = (uint32_t)v->arg;
	bool dwz = v->type == 11 || v->type == 13; /* DISCARD, WRITE_ZEROES: one segment */
	if (dwz) {
		uint64_t seg[2] = { WRITE_SECTOR, 1 }; /* sector; num_sectors 1, flags 0 */
		memcpy(r->data, seg, sizeof(seg));
	}
	std3(q, r, virt_to_phys(r->data), len, v->type != T_FLUSH && !dwz);
	if (v->type == 8 /* GET_ID */) {
		r->guard = r->data + len;
		r->guard_len = 64;
	}
	return 0;
}

/* Request types: an unknown one must get UNSUPP (§5.2.6: "VIRTIO_BLK_S_UNSUPP
 * for a request unsupported by device"); the legacy BARRIER bit on a read,
 * a FLUSH with data and a non-zero sector (the driver MUST set 0 and
 * SHOULD NOT send data, §5.2.6.1), DISCARD / WRITE_ZEROES not negotiated,
 * GET_ID into 8 bytes (the driver MUST give 20): any answer but silence,
 * and nothing written past the 8 bytes. */
TESTCASE(hostile_blk_type, no_blk, TF_HOSTILE)
{
	static const struct variant v[] = {
		{ "unknown type 0x55", 0, 0x55, 0, typed, O_ERR, 0, SECTOR, NULL },
		{ "unknown type 0xffffffff", 0, 0xffffffffu, 0, typed, O_ERR, 0, SECTOR, NULL },
		{ "read with the legacy BARRIER bit", 0, 0x80000000u, 0, typed, CHAIN_ANY, 0, SECTOR, NULL },
		{ "FLUSH with data and sector 5", 0, T_FLUSH, 5, typed, CHAIN_ANY, 0, SECTOR, NULL },
		{ "DISCARD, not negotiated", 0, 11, 0, typed, CHAIN_ANY, 0, 16, NULL },
		{ "WRITE_ZEROES, not negotiated", 0, 13, 0, typed, CHAIN_ANY, 0, 16, NULL },
		{ "GET_ID into 8 bytes", 0, 8, 0, typed, CHAIN_ANY, 0, 8, NULL },
	};
	enum test_result res = run_variants(v, ARRAY_SIZE(v));
	return res;
}

/* ================= reset ================= */

/* A reset while requests are in flight: once Status reads 0 the device
 * must leave the old rings and buffers alone (§2.4.1: "A device MUST NOT
 * send notifications or interact with the queues after indicating
 * completion of the reset by reinitializing device status to 0, until the
 * driver re-initializes the device").  Each of 32 rounds sets up a queue
 * of 256 entries in the same memory as the round before (the driver
 * re-using what it freed), makes 64 requests available at once - reads of
 * 4, 64 or 128 KiB (the last: 8 MiB in flight), every fourth a write at
 * sector 64 and above, every sixteenth a FLUSH - notifies, and resets 0
 * to 400 us later (every fourth round stops only the queue, QueueReady 0,
 * after which the device must not access it either, §4.2.2.1; not on a
 * device with the queue_not_ready quirk).  The moment Status (QueueReady)
 * reads 0 the guest checks what was
 * completed before (status OK, the runner's content where it is known)
 * and overwrites everything the device was given (descriptor table,
 * rings, headers, status bytes, data buffers) with a canary, which must
 * still be intact 30 ms later; no interrupt may come either.  After the
 * rounds a fresh initialisation must read sectors 0-7. */
static int rq_type(unsigned i) { return i % 16 == 15 ? (int)T_FLUSH : i % 4 == 1 ? (int)T_OUT : (int)T_IN; }

TESTCASE(hostile_reset_inflight, no_blk, TF_HOSTILE)
{
	enum { QN = 256, N = 64, ROUNDS = 32, MAXLEN = 131072 };
	static const unsigned delay[] = { 0, 0, 10, 20, 50, 100, 200, 400 };
	static const unsigned lens[] = { 4096, 65536, MAXLEN };
	uintptr_t mark = heap_mark();
	unsigned done_before = 0, moved = 0, stopped = 0;
	for (unsigned round = 0; round < ROUNDS; round++) {
		struct hq q;
		heap_release(mark);
		/* FLUSH negotiated, or every write would be synchronous. */
		const char *w = hq_open(&q, BIT(9), QN, QN);
		if (w)
			return fail("round %u: %s", round, w);
		unsigned len = lens[round % ARRAY_SIZE(lens)], dl_us = delay[round % ARRAY_SIZE(delay)];
		struct blk_hdr *h = alloc(N * sizeof(*h), 16);
		uint8_t *st = alloc(N, 16), *buf = alloc((size_t)N * MAXLEN, 4096);
		if (!h || !st || !buf)
			return fail("out of memory");
		memset(buf, 0xee, (size_t)N * len);
		memset(st, 0xff, N);
		for (unsigned i = 0; i < N; i++) {
			int type = rq_type(i);
			uint64_t sec = type == (int)T_OUT ? WRITE_SECTOR + (i % 7) * (MAXLEN / SECTOR)
				       : type == (int)T_IN ? (uint64_t)(i % 8) * (len / SECTOR) : 0;
			h[i] = (struct blk_hdr){ .type = (uint32_t)type, .sector = sec };
			uint8_t *data = buf + (size_t)i * MAXLEN;
			if (type == (int)T_FLUSH) {
				set_desc(q.desc, 3 * i, virt_to_phys(&h[i]), 16, RN(3 * i + 2));
			} else {
				set_desc(q.desc, 3 * i, virt_to_phys(&h[i]), 16, RN(3 * i + 1));
				set_desc(q.desc, 3 * i + 1, virt_to_phys(data), len,
					 (uint16_t)(VIRTQ_DESC_F_NEXT | (type == (int)T_IN ? VIRTQ_DESC_F_WRITE : 0)),
					 (uint16_t)(3 * i + 2));
			}
			set_desc(q.desc, 3 * i + 2, virt_to_phys(&st[i]), 1, W_END);
			q.avail->ring[i] = (uint16_t)(3 * i);
		}
		wmb();
		q.avail->idx = N;
		mb();
		virtio_write(q.d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		if (dl_us)
			udelay(dl_us);
		/* Every fourth round stops the queue alone (QueueReady 0, which
		 * QEMU does not honour: quirk queue_not_ready). */
		bool qstop = round % 4 == 3 && !quirk("queue_not_ready");
		unsigned reg = qstop ? VIRTIO_MMIO_QUEUE_READY : VIRTIO_MMIO_STATUS;
		virtio_write(q.d, reg, 0);
		uint64_t dl = deadline_after_us(3000000);
		while (virtio_read(q.d, reg) && !deadline_passed(dl))
			cpu_relax();
		if (virtio_read(q.d, reg))
			return fail("round %u: %s not 0 3 s after writing 0", round, qstop ? "QueueReady" : "Status");
		stopped += qstop;
		uint16_t used = q.used->idx;
		uint64_t irqs = virtio_irq_count(q.d);
		if (used > N)
			return fail("round %u: used index %u, only %u requests were made available", round, used, N);
		/* What completed before the reset must be whole. */
		for (unsigned k = 0; k < used; k++) {
			uint32_t id = q.used->ring[k].id;
			if (id % 3 || id / 3 >= N)
				return fail("round %u: used entry %u names descriptor %u, no head", round, k, id);
			unsigned i = id / 3;
			if (st[i] != S_OK)
				return fail("round %u: request %u (type %d) completed before the reset with status %u", round,
					    i, rq_type(i), st[i]);
			uint64_t sec = h[i].sector;
			if (rq_type(i) == (int)T_IN && sec < CHECKED_SECTORS &&
			    (w = check_known(buf + (size_t)i * MAXLEN, sec,
					     (unsigned)MIN(len / SECTOR, CHECKED_SECTORS - sec))))
				return fail("round %u: a read completed before the reset: %s", round, w);
		}
		/* The driver owns all of it again: overwrite it at once. */
		struct region { volatile void *p; size_t n; const char *what; } r[] = {
			{ q.desc, 16 * QN, "descriptor table" }, { q.avail, 6 + 2 * QN, "available ring" },
			{ q.used, 6 + 8 * QN, "used ring" }, { h, N * sizeof(*h), "request headers" },
			{ st, N, "status bytes" }, { buf, (size_t)N * len, "data buffers" },
		};
		for (unsigned i = 0; i < ARRAY_SIZE(r); i++)
			memset((void *)r[i].p, 0xc5, r[i].n);
		udelay(QUIET_US);
		for (unsigned i = 0; i < ARRAY_SIZE(r); i++) {
			const volatile uint8_t *p = r[i].p;
			for (size_t k = 0; k < r[i].n; k++)
				if (p[k] != 0xc5)
					return fail("round %u (%u requests of %u bytes, %s %u us after the notify, %u "
						    "completed before it): %s byte %lu is 0x%02x after %s read 0 and the guest "
						    "overwrote it (%s)", round, N, len, qstop ? "QueueReady 0" : "reset", dl_us,
						    used, r[i].what, (unsigned long)k, p[k], qstop ? "QueueReady" : "Status",
						    qstop ? "§4.2.2.1: no queue access while QueueReady is 0"
							  : "§2.4.1: no interaction with the queues after the reset");
		}
		if (!qstop && virtio_irq_count(q.d) != irqs)
			return fail("round %u: an interrupt came after Status read 0 (§2.4.1)", round);
		done_before += used;
		moved += used < N;
	}
	heap_release(mark);
	info("%u of %u requests completed before the reset; %u of %u rounds reset with requests still in flight; "
	     "%u rounds by QueueReady 0", done_before, ROUNDS * N, moved, ROUNDS, stopped);
	const char *w = recover("reset with requests in flight");
	return w ? fail("%s", w) : TEST_PASS;
}

/* ================= virtio-net: the transmit queue ================= */

/* The same abuse, where it costs little, on virtio-net's transmitq (queue
 * 1; the receive queue is left unset).  A transmit buffer (12-byte
 * virtio_net_hdr_v1, then the frame) has no status byte: the device
 * returns it, sent or dropped, or sets NEEDS_RESET.  Recovery: reset,
 * set up afresh, and a good 60-byte frame must come back used.  The
 * runner's QEMU boot gives the NIC a hub port with nothing else on it. */
struct virtio_dev *ndev(void) { return virtio_find(VIRTIO_ID_NET, 0); }
const char *no_net(void) { return ndev() ? NULL : "no virtio-net device"; }

void frame_fill(uint8_t *p)
{
	static const uint8_t eth[14] = { 0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5 };
	memset(p, 0, NET_HDR);
	memcpy(p + NET_HDR, eth, sizeof(eth));
	for (unsigned i = 14; i < 60; i++)
		p[NET_HDR + i] = (uint8_t)i;
}

const char *net_recover(const char *what)
{
	struct virtio_dev *d = ndev();
	struct hq q;
	virtio_reset(d);
	if (virtio_read(d, VIRTIO_MMIO_STATUS))
		return why("%s: Status not 0 100 ms after writing 0", what);
	const char *w = hq_open_dev(&q, d, 1, 0, QSIZE, QSIZE);
	if (w)
		return why("%s: after reset: %s", what, w);
	uint8_t *f = alloc(NET_HDR + 60, 64);
	if (!f)
		return "out of memory";
	frame_fill(f);
	set_desc(q.desc, 0, virt_to_phys(f), NET_HDR + 60, R_END);
	hq_post(&q, 0);
	struct res r;
	hq_wait(&q, ANSWER_US, &r);
	if (r.reset || !r.used || r.id != 0)
		return why("%s: after reset, a good frame: %s", what,
			   r.reset ? "DEVICE_NEEDS_RESET" : r.used ? "wrong used id" : "not returned");
	virtio_reset(d);
	return NULL;
}

static int ntx(struct hq *q, uint8_t *f, uint64_t arg)
{
	uint64_t fp = virt_to_phys(f);
	switch (arg) {
	case 0: /* the frame past RAM */
	case 1: /* the frame in the MMIO gap */
		set_desc(q->desc, 0, fp, NET_HDR, RN(1));
		set_desc(q->desc, 1, arg ? GAP_ADDR : ram_end(), 60, R_END);
		return 0;
	case 2: /* loop */
		set_desc(q->desc, 0, fp, NET_HDR, RN(1));
		set_desc(q->desc, 1, fp + NET_HDR, 60, RN(1));
		return 0;
	case 3: /* next beyond the queue size */
		set_desc(q->desc, 0, fp, NET_HDR, RN(QSIZE));
		return 0;
	case 4: /* lengths summing past 2^32 */
		set_desc(q->desc, 0, fp, NET_HDR, RN(1));
		set_desc(q->desc, 1, fp + NET_HDR, 0x80000000u, RN(2));
		set_desc(q->desc, 2, fp + NET_HDR, 0x80000000u, RN(3));
		set_desc(q->desc, 3, fp + NET_HDR, 60, R_END);
		return 0;
	case 5: /* a device-writable descriptor in a transmit buffer */
		set_desc(q->desc, 0, fp, NET_HDR, RN(1));
		set_desc(q->desc, 1, fp + NET_HDR, 60, W_END);
		return 0;
	case 6: /* only 4 bytes: not even a header */
		set_desc(q->desc, 0, fp, 4, R_END);
		return 0;
	case 7: /* a 128 KiB frame (more than any MTU or GSO size) */
		set_desc(q->desc, 0, fp, NET_HDR, RN(1));
		set_desc(q->desc, 1, fp, 128 * 1024, R_END);
		return 0;
	case 8: /* head = queue size */
		set_desc(q->desc, QSIZE, fp, NET_HDR + 60, R_END);
		return QSIZE;
	case 9: /* avail idx jumps by more than the queue size */
		set_desc(q->desc, 0, fp, NET_HDR + 60, R_END);
		for (unsigned i = 0; i < QSIZE; i++)
			q->avail->ring[i] = 0;
		q->avail_idx = 0x7fff;
		return 0;
	case 10: /* indirect table length not a multiple of 16 */
	case 11: /* nested indirect table referring to itself */ {
		struct virtq_desc *t = table(2);
		set_desc(t, 0, fp, NET_HDR, RN(1));
		set_desc(t, 1, fp + NET_HDR, 60, R_END);
		if (arg == 11)
			set_desc(t, 1, virt_to_phys(t), 32, VIRTQ_DESC_F_INDIRECT, 0);
		set_desc(q->desc, 0, virt_to_phys(t), arg == 10 ? 24 : 32, VIRTQ_DESC_F_INDIRECT, 0);
		return 0;
	}
	}
	return -1;
}

/* Accepted, per buffer: returned (used) or NEEDS_RESET; a buffer too broken
 * to return (head beyond the table, the index jump): NEEDS_RESET or
 * silence; the index jump: anything. */
TESTCASE(hostile_net_tx, no_net, TF_HOSTILE)
{
	static const struct { const char *what; uint64_t arg; unsigned accept; bool indirect; } v[] = {
		{ "frame past RAM", 0, O_USED | O_RESET, false },
		{ "frame in the MMIO gap", 1, O_USED | O_RESET, false },
		{ "descriptor loop", 2, O_USED | O_RESET, false },
		{ "next beyond the queue size", 3, O_USED | O_RESET, false },
		{ "lengths summing past 2^32", 4, O_USED | O_RESET, false },
		{ "device-writable descriptor", 5, O_USED | O_RESET, false },
		{ "4-byte buffer", 6, O_USED | O_RESET, false },
		{ "128 KiB frame", 7, O_USED | O_RESET, false },
		{ "head = queue size", 8, O_RESET | O_SILENT, false },
		{ "avail idx jump", 9, O_USED | O_RESET | O_SILENT, false },
		{ "indirect table of 24 bytes", 10, O_USED | O_RESET, true },
		{ "indirect table referring to itself", 11, O_USED | O_RESET, true },
	};
	static char first[WHY_MAX];
	unsigned nfail = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(v); i++) {
		struct hq q;
		uintptr_t mark = heap_mark();
		if (v[i].arg == 6 && quirk("net_short_tx")) {
			info("%s: not tried (quirk net_short_tx: QEMU 7.2 aborts on it)", v[i].what);
			continue;
		}
		const char *w = hq_open_dev(&q, ndev(), 1, v[i].indirect ? BIT(VIRTIO_F_INDIRECT_DESC) : 0, QSIZE,
					    2 * QSIZE);
		if (w)
			return fail("%s: %s", v[i].what, w);
		if (v[i].indirect && !virtio_has(q.d, VIRTIO_F_INDIRECT_DESC)) {
			info("%s: skipped, VIRTIO_F_INDIRECT_DESC not offered", v[i].what);
			heap_release(mark);
			continue;
		}
		uint8_t *f = alloc(128 * 1024, 4096), *copy = alloc(NET_HDR + 60, 16);
		if (!f || !copy)
			return fail("out of memory");
		frame_fill(f);
		memcpy(copy, f, NET_HDR + 60);
		int head = ntx(&q, f, v[i].arg);
		hq_post(&q, (uint16_t)head);
		struct res r;
		hq_wait(&q, (v[i].accept & O_SILENT) ? QUIET_US : ANSWER_US, &r);
		unsigned got = classify(&r, NULL);
		w = judge(v[i].what, &q, &r, got, v[i].accept, NULL);
		if (!w && v[i].arg != 5 && memcmp(copy, f, NET_HDR + 60))
			w = why("%s: the device wrote into a transmit (device-readable) buffer (§2.7.5.1)", v[i].what);
		if (w) {
			static char one[WHY_MAX];
			snprintf(one, sizeof(one), "%s", w);
			w = one;
			const char *rw = net_recover(v[i].what);
			if (rw)
				info("also %s", rw);
		} else {
			w = net_recover(v[i].what);
		}
		heap_release(mark);
		if (!w)
			continue;
		if (nfail++ == 0)
			snprintf(first, sizeof(first), "%s", w);
		else
			info("FAILED TOO: %s", w);
	}
	if (nfail > 1)
		return fail("%s (and %u more, see INFO)", first, nfail - 1);
	return nfail ? fail("%s", first) : TEST_PASS;
}
