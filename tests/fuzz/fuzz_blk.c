/* libFuzzer target: a hostile guest against virtio-mmio + split virtqueue +
 * virtio-blk (virtio/mmio.c, virtio/queue.c, virtio/blk.c), with the real
 * io_uring loop and three 64 KiB disk images in /tmp: a plain one, one
 * opened ,ro and one ,direct (O_DIRECT, where misaligned requests take the
 * buffered descriptor).  Guest RAM is 64 KiB, page-aligned.
 *
 * Each input is one guest:
 *   byte 0      flags: 1 = do the driver handshake first (features from
 *               byte 2, queue size byte 1, rings at fixed places), 2 = write
 *               a request chain from the template bytes, 4 = put that chain
 *               in an indirect table, 8 = kick and run the loop at the end
 *               (until the disk I/O is done),
 *               16 = the RAM bytes below go to the buffer area instead;
 *               bits 5-6 the disk (0 plain, 1 ro, 2 direct, 3 plain);
 *               128 = a batch: the template's chain 2-8 times (byte 14),
 *               copy i at the sector after copy i-1's data, so that one
 *               notify finds requests blk.c merges into one host I/O
 *   byte 1      QueueNum
 *   byte 2      driver features (bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 FLUSH,
 *               3 DISCARD, 4 WRITE_ZEROES, 5 RO, 6 VERSION_1 omitted)
 *   bytes 3-14  template: type, sector (2), data length (2), segments, flags
 *               of each descriptor (4 bytes of bits), used_event, avail flags
 *               (bit 0; bits 1-3: copies - 1 in a batch)
 *   byte 15     number of operations, then 8 bytes each:
 *               op, offset (2), width, value (4); op % 6:
 *               0 register/config write, 1 register/config read,
 *               2 notify queue 0 and run the loop until its disk I/O is
 *               done, 3 write 4 bytes of RAM, 4 run the loop a little
 *               (I/O stays in flight), 5 reset
 *   the rest    guest RAM from address 0 (or the buffer area, flag 16),
 *               written before the template
 * Memory errors and undefined behaviour abort (ASan/UBSan); so would a hang,
 * through libFuzzer's -timeout. */
#include <unistd.h>

#include "tests/fuzz/fuzz_virtio.h"
#include "virtio/blk.h"

#define RAM       (64u * 1024)
#define DESC      0x0000u
#define AVAIL     0x1000u
#define USED      0x2000u
#define TABLE     0x3000u
#define BUFS      0x4000u
#define DISK_SIZE (64u * 1024)

#define DISKS     3

static uint8_t *ram;
static struct guest_mem mem;
static struct loop loop;
static struct blk *disk[DISKS];
static struct virtio_mmio *t;        /* the transport of this input's disk */

static void init_once(void)
{
	static const char *const opts[DISKS] = { "", ",ro", ",direct" };
	struct err e;

	if (ram)
		return;
	/* Page-aligned, so that ,direct sees aligned buffers too. */
	if (posix_memalign((void **)&ram, 4096, RAM))
		abort();
	gm_init(&mem, ram, RAM);
	if (loop_init(&loop, 64, &e) < 0)
		abort();
	for (unsigned i = 0; i < DISKS; i++) {
		char path[] = "/tmp/ember-fuzz-disk.XXXXXX", arg[64];
		struct blk_opts o;
		int fd = mkstemp(path);

		if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0)
			abort();
		close(fd);
		snprintf(arg, sizeof(arg), "%s%s", path, opts[i]);
		if (blk_parse(arg, &o, &e) < 0 || !(disk[i] = blk_open(&o, i, NULL, &e)) ||
		    blk_attach(disk[i], i, &mem, &loop, &fzv_irq_none, &e) < 0) {
			fprintf(stderr, "fuzz_blk: %s: %s\n", arg, e.msg);
			abort();
		}
		unlink(path);
	}
	if (loop_enable(&loop, &e) < 0)
		abort();
}

/* Notifications in, and the disk I/O they started completed (only the
 * queues' eventfd reads stay in flight). */
static void run_loop(void)
{
	fzv_run(&loop);
	fzv_settle(&loop, DISKS, 64);
}

static void handshake(uint8_t num, uint8_t fb)
{
	static const unsigned bits[] = {
		VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_BLK_F_FLUSH,
		VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES,
		VIRTIO_BLK_F_RO,   /* offered by the ro disk only */
	};
	const struct fzv_ring r = { num, DESC, AVAIL, USED };
	uint64_t feat = 0;

	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (fb & (1u << i))
			feat |= 1ULL << bits[i];
	if (!(fb & 64))
		feat |= 1ULL << VIRTIO_F_VERSION_1;
	fzv_handshake(t, feat, &r, 1);
}

/* Where copy k of a batch keeps its header and status byte (copy 0: in the
 * buffer area, as a lone request does), and its indirect table. */
#define BATCH_HDR    (TABLE + 0x800u)
#define BATCH_STATUS (TABLE + 0x900u)
#define BATCH_TABLE  0x80u   /* bytes per copy's indirect table: 8 descriptors */

/* A request chain from the template: header, data split into segments,
 * status; each descriptor's flags perturbed by the template's bits.  In a
 * batch, copies 1.. follow on the disk and in RAM (data of copy k right
 * after copy k-1's), with descriptors k * n.. (or indirect table k). */
static void template(const uint8_t *p, uint8_t num, bool indirect, bool batch)
{
	static const uint32_t types[8] = { 0, 1, 4, 8, 11, 13, 2, 0xffffffffu };
	uint32_t type = types[p[0] & 7], len = (uint32_t)(p[3] | p[4] << 8);
	uint64_t sector = (uint64_t)(p[1] | p[2] << 8);
	unsigned nseg = 1 + p[5] % 6, copies = batch ? 2 + (p[11] >> 1) % 7 : 1;
	uint32_t bits = (uint32_t)(p[6] | p[7] << 8 | p[8] << 16 | (uint32_t)p[9] << 24);
	uint64_t d = BUFS + 64, per = len / nseg;
	bool in = type == 0 || type == 8;

	for (unsigned k = 0; k < copies; k++) {
		uint64_t hdr_at = k ? BATCH_HDR + 16u * k : BUFS;
		uint64_t status_at = k ? BATCH_STATUS + k : BUFS + 32;
		uint64_t table = indirect ? TABLE + BATCH_TABLE * k : DESC;
		unsigned first = indirect ? 0 : k * (nseg + 2), n = 0;
		uint32_t hdr[4] = { type, 0, (uint32_t)(sector + k * (len / 512)), 0 };
		struct vq_desc desc[8];

		memcpy(ram + hdr_at, hdr, 16);
		desc[n++] = (struct vq_desc){ hdr_at, 16, 0, 0 };
		for (unsigned i = 0; i < nseg; i++) {
			uint32_t l = (uint32_t)(i + 1 == nseg ? len - per * (nseg - 1) : per);

			desc[n++] = (struct vq_desc){ d, l, in ? VIRTQ_DESC_F_WRITE : 0, 0 };
			d += l;
		}
		desc[n++] = (struct vq_desc){ status_at, 1, VIRTQ_DESC_F_WRITE, 0 };
		for (unsigned i = 0; i < n; i++) {
			uint16_t flags = (uint16_t)(desc[i].flags ^ ((bits >> (3 * i)) & 7));

			if (i + 1 < n)
				flags |= VIRTQ_DESC_F_NEXT;
			fzv_put_desc(ram, table, first + i, desc[i].addr, desc[i].len, flags,
				     (uint16_t)(first + i + 1));
		}
		if (indirect)
			fzv_put_desc(ram, DESC, k, table, 16u * n, VIRTQ_DESC_F_INDIRECT, 0);
		fzv_put16(ram, AVAIL + 4 + 2u * k, (uint16_t)(indirect ? k : first)); /* ring[k] */
	}
	fzv_put16(ram, AVAIL, p[11] & 1);                 /* flags */
	fzv_put16(ram, AVAIL + 2, (uint16_t)copies);      /* idx */
	fzv_put16(ram, AVAIL + 4 + 2u * num, p[10]);      /* used_event */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz ops;

	init_once();
	/* Every disk back to quiet (each keeps its queue's eventfd read). */
	for (unsigned i = 0; i < DISKS; i++)
		fzv_quiesce(blk_transport(disk[i]), &loop, DISKS);
	if (size < 16)
		return 0;
	t = blk_transport(disk[(data[0] >> 5) % 4 % DISKS]);
	ops = fzv_input(data, size, 16, ram, RAM, data[0] & 16 ? BUFS : 0);
	if (data[0] & 1)
		handshake(data[1], data[2]);
	if (data[0] & 2)
		template(data + 3, data[1], data[0] & 4, data[0] & 128);
	while (fz_left(&ops)) {
		struct fzv_op o = fzv_op(&ops);

		switch (o.op % 6) {
		case 0:
			fzv_mmio(t, o.off % VIRTIO_MMIO_SIZE, o.value, o.width, true);
			break;
		case 1:
			fzv_mmio(t, o.off % VIRTIO_MMIO_SIZE, 0, o.width, false);
			break;
		case 2:
			fzv_mmio(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0, 4, true);
			run_loop();
			break;
		case 3:
			memcpy(ram + o.off % (RAM - 4), &o.value, 4);
			break;
		case 4:
			fzv_run(&loop);   /* no waiting: a reset may follow with I/O in flight */
			break;
		case 5:
			fzv_mmio(t, VIRTIO_MMIO_STATUS, 0, 4, true);
			break;
		}
	}
	if (data[0] & 8) {
		fzv_mmio(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0, 4, true);
		run_loop();
	}
#ifdef FUZZ_SEEDS
	fprintf(stderr, "  blk: disk %u, used idx %u, status byte %u\n", (data[0] >> 5) % 4 % DISKS,
		ram[USED + 2], ram[BUFS + 32]);
#endif
	return 0;
}

#ifdef FUZZ_SEEDS
enum { T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES, T_UNSUPP };
enum { F_EVENT_IDX = 1, F_INDIRECT = 2, F_FLUSH = 4, F_DISCARD = 8, F_WRITE_ZEROES = 16,
       F_RO = 32 };
enum { DISK_RO = 1 << 5, DISK_DIRECT = 2 << 5 };

/* Header and template (see the format above); ops and RAM follow. */
static void guest(struct fz_buf *b, uint8_t flags, uint8_t num, uint8_t feat, uint8_t type,
		  uint16_t sector, uint16_t len, uint8_t segs, uint8_t nops)
{
	b->n = 0;
	fz_put8(b, flags);
	fz_put8(b, num);
	fz_put8(b, feat);
	fz_put8(b, type);
	fz_put16(b, sector);
	fz_put16(b, len);
	fz_put8(b, (uint8_t)(segs - 1));
	fz_put32(b, 0);         /* descriptor flags as the template makes them */
	fz_put8(b, 0);          /* used_event */
	fz_put8(b, 0);          /* avail flags */
	fz_put8(b, nops);
}

static void op(struct fz_buf *b, uint8_t code, uint16_t off, uint8_t width, uint32_t v)
{
	fz_put8(b, code);
	fz_put16(b, off);
	fz_put8(b, width);
	fz_put32(b, v);
}

/* RAM for the buffer area (flag 16): 64 bytes the template overwrites in
 * part (header, status), then the data segment's bytes. */
static void data_area(struct fz_buf *b, const void *p, size_t len)
{
	uint8_t pad[64] = { 0 };

	fz_put(b, pad, sizeof(pad));
	fz_put(b, p, len);
}

void fuzz_seeds(fz_emit_fn *emit)
{
	static struct fz_buf b;
	const uint8_t all = F_EVENT_IDX | F_INDIRECT | F_FLUSH | F_DISCARD | F_WRITE_ZEROES;
	struct { uint64_t sector; uint32_t num, flags; } range = { 2, 8, 0 };
	uint8_t pattern[512];

	for (unsigned i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i ^ 0x5a);

	guest(&b, 1 | 2 | 8, 8, all, T_IN, 3, 1024, 2, 1);
	op(&b, 1, VIRTIO_MMIO_INTERRUPT_STATUS, 2, 0);
	emit("read", &b);
	guest(&b, 1 | 2 | 8 | 16, 8, all, T_OUT, 1, 512, 1, 0);
	data_area(&b, pattern, sizeof(pattern));
	emit("write", &b);
	guest(&b, 1 | 2 | 8 | 16, 8, F_EVENT_IDX, T_OUT, 100, 512, 3, 0);   /* no FLUSH: DSYNC */
	data_area(&b, pattern, sizeof(pattern));
	emit("write-dsync", &b);
	guest(&b, 1 | 2 | 8, 8, all, T_FLUSH, 0, 0, 1, 0);
	emit("flush", &b);
	guest(&b, 1 | 2 | 8, 8, all, T_GET_ID, 0, 20, 1, 0);
	emit("get-id", &b);
	guest(&b, 1 | 2 | 8 | 16, 8, all, T_DISCARD, 0, 16, 1, 0);
	data_area(&b, &range, sizeof(range));
	emit("discard", &b);
	range.flags = 1;        /* unmap */
	guest(&b, 1 | 2 | 8 | 16, 8, all, T_WRITE_ZEROES, 0, 16, 1, 0);
	data_area(&b, &range, sizeof(range));
	emit("write-zeroes", &b);
	guest(&b, 1 | 2 | 4 | 8, 16, all, T_IN, 120, 4096, 6, 0);
	emit("read-indirect", &b);
	guest(&b, 1 | 2 | 8, 8, all, T_UNSUPP, 0, 512, 1, 0);
	emit("unsupported", &b);
	guest(&b, 1 | 2, 8, all, T_OUT, 7, 2048, 4, 4);   /* reset with I/O in flight */
	op(&b, 0, VIRTIO_MMIO_QUEUE_NOTIFY, 2, 0);
	op(&b, 4, 0, 0, 0);
	op(&b, 5, 0, 0, 0);
	op(&b, 2, 0, 0, 0);
	emit("reset-in-flight", &b);

	/* Batches: several requests in one notify, each following on from the
	 * one before, which blk.c merges into one host I/O (byte 14: copies). */
	guest(&b, 1 | 2 | 8 | 128, 64, all, T_IN, 8, 4096, 2, 0);
	b.b[14] = (4 - 2) << 1;
	emit("read-batch", &b);
	guest(&b, 1 | 2 | 8 | 16 | 128, 64, all, T_OUT, 16, 512, 1, 0);
	b.b[14] = (8 - 2) << 1;
	data_area(&b, pattern, sizeof(pattern));
	emit("write-batch", &b);
	guest(&b, 1 | 2 | 4 | 8 | 128, 16, all, T_IN, 0, 8192, 3, 0);
	b.b[14] = (3 - 2) << 1;
	emit("read-batch-indirect", &b);
	guest(&b, 1 | 2 | 8 | 128 | DISK_DIRECT, 64, all, T_IN, 0, 4096, 1, 0);
	b.b[14] = (5 - 2) << 1;
	emit("direct-read-batch", &b);
	guest(&b, 1 | 2 | 128, 64, all, T_OUT, 40, 2048, 2, 3);   /* reset with a merged write in flight */
	b.b[14] = (6 - 2) << 1;
	op(&b, 0, VIRTIO_MMIO_QUEUE_NOTIFY, 2, 0);
	op(&b, 4, 0, 0, 0);
	op(&b, 5, 0, 0, 0);
	emit("reset-batch-in-flight", &b);
	guest(&b, 1 | 2 | 8 | 128, 64, all, T_IN, 120, 4096, 1, 0);   /* past the end: some fail */
	b.b[14] = (8 - 2) << 1;
	emit("read-batch-past-end", &b);

	/* The read-only disk: reads work, writes fail, a flush succeeds. */
	guest(&b, 1 | 2 | 8 | DISK_RO, 8, F_EVENT_IDX | F_FLUSH | F_RO, T_IN, 2, 1024, 2, 0);
	emit("ro-read", &b);
	guest(&b, 1 | 2 | 8 | 16 | DISK_RO, 8, F_FLUSH | F_RO, T_OUT, 2, 512, 1, 0);
	data_area(&b, pattern, sizeof(pattern));
	emit("ro-write", &b);
	guest(&b, 1 | 2 | 8 | DISK_RO, 8, F_FLUSH | F_RO, T_FLUSH, 0, 0, 1, 0);
	emit("ro-flush", &b);

	/* The O_DIRECT disk: a misaligned write (buffered descriptor), then
	 * a read into a page-aligned buffer (descriptor 1 moved to 0x5000). */
	guest(&b, 1 | 2 | 8 | 16 | DISK_DIRECT, 8, all, T_OUT, 8, 512, 1, 0);
	data_area(&b, pattern, sizeof(pattern));
	emit("direct-write-unaligned", &b);
	guest(&b, 1 | 2 | DISK_DIRECT, 8, all, T_IN, 8, 4096, 1, 2);
	op(&b, 3, DESC + 16, 2, 0x5000);
	op(&b, 2, 0, 0, 0);
	emit("direct-read-aligned", &b);
}
#endif
