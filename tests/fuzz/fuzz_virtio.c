/* libFuzzer target: a hostile guest against virtio-mmio + split virtqueue +
 * virtio-blk (virtio/mmio.c, virtio/queue.c, virtio/blk.c), with the real
 * io_uring loop and a 64 KiB disk image.
 *
 * Each input is one guest:
 *   byte 0      flags: 1 = do the driver handshake first (features from
 *               byte 2, queue size byte 1, rings at fixed places), 2 = write
 *               a request chain from the template bytes, 4 = put that chain
 *               in an indirect table, 8 = kick and run the loop at the end,
 *               16 = the RAM bytes below go to the buffer area instead
 *   byte 1      QueueNum
 *   byte 2      driver features (bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 FLUSH,
 *               3 DISCARD, 4 WRITE_ZEROES, 5 RO, 6 VERSION_1 omitted)
 *   bytes 3-14  template: type, sector (2), data length (2), segments, flags
 *               of each descriptor (4 bytes of bits), used_event, avail flags
 *   byte 15     number of operations, then 8 bytes each:
 *               op, offset (2), width, value (4); op % 6:
 *               0 register/config write, 1 register/config read,
 *               2 notify queue 0 and run the loop, 3 write 4 bytes of RAM,
 *               4 run the loop, 5 reset
 *   the rest    guest RAM from address 0 (or the buffer area, flag 16),
 *               written before the template
 * Memory errors and undefined behaviour abort (ASan/UBSan); so would a hang,
 * through libFuzzer's -timeout. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "mem.h"
#include "virtio/blk.h"

#define RAM       (64u * 1024)
#define DESC      0x0000u
#define AVAIL     0x1000u
#define USED      0x2000u
#define TABLE     0x3000u
#define BUFS      0x4000u
#define DISK_SIZE (64u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *ram;
static struct guest_mem mem;
static struct loop loop;
static struct blk *disk;
static struct virtio_mmio *t;

static void irq_nop(void *o)
{
	(void)o;
}

static const struct virtio_irq irq = { irq_nop, irq_nop, NULL };

static void init_once(void)
{
	char path[] = "/tmp/ember-fuzz-disk.XXXXXX";
	struct blk_opts o;
	struct err e;
	int fd;

	if (ram)
		return;
	ram = aligned_alloc(4096, RAM);
	gm_init(&mem, ram, RAM);
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0)
		abort();
	close(fd);
	if (blk_parse(path, &o, &e) < 0 || !(disk = blk_open(&o, 0, NULL, &e)))
		abort();
	unlink(path);
	if (loop_init(&loop, 64, &e) < 0 || blk_attach(disk, 0, &mem, &loop, &irq, &e) < 0 ||
	    loop_enable(&loop, &e) < 0)
		abort();
	t = blk_transport(disk);
}

static void mmio(uint64_t off, uint32_t v, uint32_t len, int write)
{
	uint8_t b[8] = { 0 };

	memcpy(b, &v, 4);
	virtio_mmio_io(t, off, b, len, write);
}

static void run_loop(void)
{
	for (int i = 0; i < 4; i++)
		loop_once(&loop, false);
}

/* Back to a quiet device: reset (from the loop's own thread a reset does
 * not wait for I/O in flight), and let I/O of the previous input finish
 * (only the queue's eventfd read stays pending). */
static void quiesce(void)
{
	mmio(VIRTIO_MMIO_STATUS, 0, 4, 1);
	for (int i = 0; i < 1000 && loop.inflight > 1; i++)
		loop_once(&loop, false);
}

static void handshake(uint8_t num, uint8_t fb)
{
	uint64_t feat = 0;

	if (fb & 1)
		feat |= 1ULL << VIRTIO_F_RING_EVENT_IDX;
	if (fb & 2)
		feat |= 1ULL << VIRTIO_F_RING_INDIRECT_DESC;
	if (fb & 4)
		feat |= 1ULL << VIRTIO_BLK_F_FLUSH;
	if (fb & 8)
		feat |= 1ULL << VIRTIO_BLK_F_DISCARD;
	if (fb & 16)
		feat |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	if (fb & 32)
		feat |= 1ULL << VIRTIO_BLK_F_RO;   /* not offered: FEATURES_OK fails */
	if (!(fb & 64))
		feat |= 1ULL << VIRTIO_F_VERSION_1;
	mmio(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 4, 1);
	mmio(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0, 4, 1);
	mmio(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)feat, 4, 1);
	mmio(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1, 4, 1);
	mmio(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(feat >> 32), 4, 1);
	mmio(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	     VIRTIO_STATUS_FEATURES_OK, 4, 1);
	mmio(VIRTIO_MMIO_QUEUE_SEL, 0, 4, 1);
	mmio(VIRTIO_MMIO_QUEUE_NUM, num, 4, 1);
	mmio(VIRTIO_MMIO_QUEUE_DESC_LOW, DESC, 4, 1);
	mmio(VIRTIO_MMIO_QUEUE_DRIVER_LOW, AVAIL, 4, 1);
	mmio(VIRTIO_MMIO_QUEUE_DEVICE_LOW, USED, 4, 1);
	mmio(VIRTIO_MMIO_QUEUE_READY, 1, 4, 1);
	mmio(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK, 4, 1);
}

static void put16(uint64_t gpa, uint16_t v)
{
	memcpy(ram + gpa, &v, 2);
}

/* A request chain from the template: header, data split into segments,
 * status; each descriptor's flags perturbed by the template's bits. */
static void template(const uint8_t *p, uint8_t num, bool indirect)
{
	static const uint32_t types[8] = { 0, 1, 4, 8, 11, 13, 2, 0xffffffffu };
	uint32_t type = types[p[0] & 7], len = (uint32_t)(p[3] | p[4] << 8);
	uint64_t sector = (uint64_t)(p[1] | p[2] << 8);
	unsigned nseg = 1 + p[5] % 6, n = 0;
	uint32_t bits = (uint32_t)(p[6] | p[7] << 8 | p[8] << 16 | (uint32_t)p[9] << 24);
	uint64_t table = indirect ? TABLE : DESC;
	uint32_t hdr[4] = { type, 0, (uint32_t)sector, 0 };
	uint64_t d = BUFS + 64, per = len / nseg;
	struct vq_desc desc[8];
	bool in = type == 0 || type == 8;

	memcpy(ram + BUFS, hdr, 16);
	desc[n++] = (struct vq_desc){ BUFS, 16, 0, 0 };
	for (unsigned i = 0; i < nseg; i++) {
		uint32_t l = (uint32_t)(i + 1 == nseg ? len - per * (nseg - 1) : per);

		desc[n++] = (struct vq_desc){ d, l, in ? VIRTQ_DESC_F_WRITE : 0, 0 };
		d += l;
	}
	desc[n++] = (struct vq_desc){ BUFS + 32, 1, VIRTQ_DESC_F_WRITE, 0 };
	for (unsigned i = 0; i < n; i++) {
		desc[i].flags = (uint16_t)(desc[i].flags ^ ((bits >> (3 * i)) & 7));
		if (i + 1 < n)
			desc[i].flags |= VIRTQ_DESC_F_NEXT;
		desc[i].next = (uint16_t)(i + 1);
		memcpy(ram + table + 16u * i, &desc[i], 16);
	}
	if (indirect) {
		struct vq_desc top = { TABLE, 16u * n, VIRTQ_DESC_F_INDIRECT, 0 };

		memcpy(ram + DESC, &top, 16);
	}
	put16(AVAIL, p[11] & 1);                      /* flags */
	put16(AVAIL + 4, 0);                          /* ring[0]: head 0 */
	put16(AVAIL + 2, 1);                          /* idx */
	put16(AVAIL + 4 + 2u * num, p[10]);           /* used_event */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *ops;
	size_t nops;

	init_once();
	quiesce();
	if (size < 16)
		return 0;
	nops = data[15];
	if (16 + nops * 8 > size)
		nops = (size - 16) / 8;
	ops = data + 16;
	memset(ram, 0, RAM);
	if (size > 16 + nops * 8) {
		size_t base = data[0] & 16 ? BUFS : 0, n = size - 16 - nops * 8;

		memcpy(ram + base, ops + nops * 8, n < RAM - base ? n : RAM - base);
	}
	if (data[0] & 1)
		handshake(data[1], data[2]);
	if (data[0] & 2)
		template(data + 3, data[1], data[0] & 4);
	for (size_t i = 0; i < nops; i++) {
		const uint8_t *o = ops + 8 * i;
		uint32_t off = (uint32_t)(o[1] | o[2] << 8), v;
		uint32_t width = 1u << (o[3] & 3);

		memcpy(&v, o + 4, 4);
		switch (o[0] % 6) {
		case 0:
			mmio(off % VIRTIO_MMIO_SIZE, v, width, 1);
			break;
		case 1:
			mmio(off % VIRTIO_MMIO_SIZE, 0, width, 0);
			break;
		case 2:
			mmio(VIRTIO_MMIO_QUEUE_NOTIFY, 0, 4, 1);
			run_loop();
			break;
		case 3:
			memcpy(ram + off % (RAM - 4), &v, 4);
			break;
		case 4:
			run_loop();
			break;
		case 5:
			mmio(VIRTIO_MMIO_STATUS, 0, 4, 1);
			break;
		}
	}
	if (data[0] & 8) {
		mmio(VIRTIO_MMIO_QUEUE_NOTIFY, 0, 4, 1);
		run_loop();
	}
	return 0;
}
