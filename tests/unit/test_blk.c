/* virtio-blk (virtio/blk.c) end to end on fake guest memory: the transport
 * driven through its registers, requests through a real split ring, the
 * disk a temporary file served by a real io_uring loop.  Every request type,
 * malformed chains, a read-only disk, reset with I/O in flight, O_DIRECT with
 * unaligned buffers, interrupt suppression, merging of adjacent requests
 * (its limits, short transfers and host errors inside a merged I/O, reset
 * with one in flight), and the option/open errors. */
#define CHECK_FILE "blk"
#include "../check.h"
#include "virtio_fake.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "virtio/blk.h"
#include "mmio_driver.h"

#define QNUM     64
#define DISK_SZ  (4u << 20)               /* 8192 sectors */
#define CAP      (DISK_SZ / 512)
#define S_NONE   0xee                     /* status byte before completion */

static struct fake f;
static struct loop loop;
static struct blk *b;
static char path[64];
static uint16_t next_desc;
static uint64_t bump;

/* The driver's initialisation (§3.1.1) with offered & want. */
static void driver_init(uint64_t want)
{
	driver_negotiate(want);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, QNUM);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, FAKE_DESC);
	wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, FAKE_AVAIL);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, FAKE_USED);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	driver_ok();
	memset(f.ram + FAKE_AVAIL, 0, 0x2000);
	f.avail_idx = 0;
	next_desc = 0;
	bump = FAKE_BUF;
}

static void open_disk(const char *opts, uint64_t want)
{
	struct blk_opts o;
	struct err e;
	char arg[128];
	int fd;

	raised = 0;
	snprintf(path, sizeof(path), "/tmp/ember-test-blk.XXXXXX");
	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, DISK_SZ), 0);
	close(fd);
	fake_init(&f, QNUM);
	snprintf(arg, sizeof(arg), "%s%s", path, opts);
	CHECK_EQ(blk_parse(arg, &o, &e), 0);
	b = blk_open(&o, 0, NULL, &e);
	CHECK(b != NULL);
	CHECK_EQ(loop_init(&loop, 64, &e), 0);
	CHECK_EQ(blk_attach(b, 0, &f.m, &loop, &irq, &e), 0);
	CHECK_EQ(loop_enable(&loop, &e), 0);
	t = blk_transport(b);
	driver_init(want);
}

static void close_disk(void)
{
	CHECK_EQ(loop_fini(&loop, 2000), 0);
	blk_close(b);
	unlink(path);
	fake_free(&f);
}

static uint64_t alloc(uint32_t len)
{
	uint64_t a = bump;

	bump = (bump + len + 63) & ~63ULL;
	return a;
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

/* Make a direct chain of n segments available; returns its head. */
static uint16_t add_chain(const struct seg *s, int n)
{
	uint16_t head = next_desc;

	for (int i = 0; i < n; i++) {
		uint16_t d = (uint16_t)((next_desc + i) % QNUM);

		fake_desc(&f, FAKE_DESC, d, s[i].gpa, s[i].len,
			  (uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE : 0) |
				     (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			  (uint16_t)((d + 1) % QNUM));
	}
	next_desc = (uint16_t)((next_desc + n) % QNUM);
	fake_avail(&f, head);
	return head;
}

static void kick(void)
{
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop until the used index reaches n (or 5 s pass). */
static bool run_until_used(uint16_t n)
{
	uint64_t end = now_ms() + 5000;

	while ((uint16_t)(fake_used_idx(&f) - n) > 0x8000 && now_ms() < end) {
		loop_once(&loop, false);
		if ((uint16_t)(fake_used_idx(&f) - n) > 0x8000)
			usleep(200);
	}
	return (uint16_t)(fake_used_idx(&f) - n) <= 0x8000;
}

/* Let the loop run a little without expecting anything. */
static void run_idle(void)
{
	for (int i = 0; i < 20; i++) {
		loop_once(&loop, false);
		usleep(500);
	}
}

struct result {
	int status;                /* status byte, S_NONE if untouched */
	uint32_t used_len;
	uint32_t id;
};

/* Submit one chain, kick, wait for its used entry. */
static struct result run_chain(const struct seg *s, int n, uint64_t status_gpa)
{
	struct result r = { -1, 0, 0 };
	uint16_t k = fake_used_idx(&f);
	uint16_t head;

	if (status_gpa)
		f.ram[status_gpa] = S_NONE;
	head = add_chain(s, n);
	kick();
	if (!run_until_used((uint16_t)(k + 1)))
		return r;
	fake_used(&f, k, &r.id, &r.used_len);
	r.status = status_gpa ? f.ram[status_gpa] : S_NONE;
	CHECK_EQ(r.id, head);
	return r;
}

/* A request: header, one data buffer (device-writable for IN/GET_ID),
 * status. */
static struct result request(uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
	uint64_t h = alloc(16), st = alloc(1);
	uint32_t hdr[4] = { type, 0, (uint32_t)sector, (uint32_t)(sector >> 32) };
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	struct seg s[3] = { { h, 16, false }, { data, len, in }, { st, 1, true } };

	memcpy(f.ram + h, hdr, 16);
	if (len)
		return run_chain(s, 3, st);
	s[1] = s[2];
	return run_chain(s, 2, st);
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

static void file_read(uint64_t off, void *buf, size_t n)
{
	int fd = open(path, O_RDONLY);

	CHECK_EQ(pread(fd, buf, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/* Sector 0 of the image starts with "MARK". */
static void file_write_marker(void)
{
	int fd = open(path, O_WRONLY);

	CHECK_EQ(pwrite(fd, "MARK", 4, 0), 4);
	close(fd);
}

static uint64_t dwz_payload(const uint64_t *sector, const uint32_t *num, const uint32_t *flags, int n)
{
	uint64_t p = alloc(16u * (uint32_t)n);

	for (int i = 0; i < n; i++) {
		memcpy(f.ram + p + 16u * i, &sector[i], 8);
		memcpy(f.ram + p + 16u * i + 8, &num[i], 4);
		memcpy(f.ram + p + 16u * i + 12, &flags[i], 4);
	}
	return p;
}

#define ALL_FEATURES (~0ULL)

TEST(write_then_read)
{
	uint8_t want[4096], got[4096];
	uint64_t d;
	struct result r;

	open_disk("", ALL_FEATURES);
	d = alloc(4096);
	pattern(f.ram + d, 4096, 1);
	memcpy(want, f.ram + d, 4096);
	r = request(VIRTIO_BLK_T_OUT, 10, d, 4096);
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(r.used_len, 1);
	file_read(10 * 512, got, 4096);
	CHECK(!memcmp(got, want, 4096));
	d = alloc(4096);
	r = request(VIRTIO_BLK_T_IN, 10, d, 4096);
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(r.used_len, 4097);
	CHECK(!memcmp(f.ram + d, want, 4096));
	/* Last sector, and nothing past it. */
	CHECK_EQ(request(VIRTIO_BLK_T_IN, CAP - 1, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, CAP - 1, d, 1024).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, CAP, d, 512).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, UINT64_MAX, d, 512).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, UINT64_MAX / 512, d, 512).status, VIRTIO_BLK_S_IOERR);
	/* Not a whole number of sectors. */
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 100).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 0, d, 513).status, VIRTIO_BLK_S_IOERR);
	close_disk();
}

TEST(scatter_gather_and_shared_descriptors)
{
	uint8_t want[2048], got[2048];
	uint64_t h = 0, d1, d2, st;
	uint32_t hdr[4] = { VIRTIO_BLK_T_OUT, 0, 3, 0 };
	struct result r;

	open_disk("", ALL_FEATURES);
	/* Header and first data bytes in one descriptor, odd split. */
	h = alloc(16 + 700);
	d2 = alloc(2048 - 700);
	st = alloc(1);
	memcpy(f.ram + h, hdr, 16);
	pattern(want, sizeof(want), 9);
	memcpy(f.ram + h + 16, want, 700);
	memcpy(f.ram + d2, want + 700, 2048 - 700);
	{
		struct seg s[3] = { { h, 16 + 700, false }, { d2, 2048 - 700, false }, { st, 1, true } };

		r = run_chain(s, 3, st);
	}
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	file_read(3 * 512, got, 2048);
	CHECK(!memcmp(got, want, 2048));
	/* Read back with data and status sharing the last descriptor. */
	hdr[0] = VIRTIO_BLK_T_IN;
	h = alloc(16);
	d1 = alloc(1000);
	d2 = alloc(2048 - 1000 + 1);
	memcpy(f.ram + h, hdr, 16);
	{
		struct seg s[3] = { { h, 16, false }, { d1, 1000, true }, { d2, 2048 - 1000 + 1, true } };

		r = run_chain(s, 3, d2 + 2048 - 1000);
	}
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(r.used_len, 2049);
	CHECK(!memcmp(f.ram + d1, want, 1000));
	CHECK(!memcmp(f.ram + d2, want + 1000, 2048 - 1000));
	close_disk();
}

TEST(indirect_request)
{
	const uint64_t table = 0x8000;
	uint64_t h, d, st;
	uint32_t hdr[4] = { VIRTIO_BLK_T_GET_ID, 0, 0, 0 };
	uint16_t k;
	uint32_t id, len;

	open_disk(",serial=IND", ALL_FEATURES);
	h = alloc(16);
	d = alloc(20);
	st = alloc(1);
	memcpy(f.ram + h, hdr, 16);
	fake_desc(&f, table, 0, h, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&f, table, 1, d, 20, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	fake_desc(&f, table, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_desc(&f, FAKE_DESC, 5, table, 48, VIRTQ_DESC_F_INDIRECT, 0);
	k = fake_used_idx(&f);
	fake_avail(&f, 5);
	kick();
	CHECK(run_until_used((uint16_t)(k + 1)));
	fake_used(&f, k, &id, &len);
	CHECK_EQ(id, 5);
	CHECK_EQ(len, 21);
	CHECK_EQ(f.ram[st], VIRTIO_BLK_S_OK);
	CHECK(!memcmp(f.ram + d, "IND\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20));
	close_disk();
}

TEST(flush_and_get_id)
{
	uint64_t d;
	struct result r;

	open_disk(",serial=SER-1", ALL_FEATURES);
	r = request(VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(r.used_len, 1);
	d = alloc(20);
	memset(f.ram + d, 0xaa, 20);
	r = request(VIRTIO_BLK_T_GET_ID, 0, d, 20);
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(r.used_len, 21);
	CHECK(!memcmp(f.ram + d, "SER-1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20));
	/* A short buffer gets what fits. */
	d = alloc(8);
	memset(f.ram + d, 0xaa, 9);
	r = request(VIRTIO_BLK_T_GET_ID, 0, d, 3);
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(r.used_len, 4);
	CHECK(!memcmp(f.ram + d, "SER", 3));
	/* No data buffer at all. */
	CHECK_EQ(request(VIRTIO_BLK_T_GET_ID, 0, 0, 0).status, VIRTIO_BLK_S_IOERR);
	/* Unknown type. */
	CHECK_EQ(request(99, 0, 0, 0).status, VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(request(VIRTIO_BLK_T_IN | 0x80000000u, 0, alloc(512), 512).status,
		 VIRTIO_BLK_S_UNSUPP);
	close_disk();
}

TEST(default_serial)
{
	uint64_t d;

	open_disk("", ALL_FEATURES);
	d = alloc(20);
	CHECK_EQ(request(VIRTIO_BLK_T_GET_ID, 0, d, 20).status, VIRTIO_BLK_S_OK);
	CHECK(!strcmp((char *)f.ram + d, "ember-disk0"));
	close_disk();
}

/* Write a pattern over sectors [0, 64), apply 'type' to [8, 16) and [40, 44)
 * with 'flags', and check those read as zero (when 'zero') and the rest
 * kept the pattern. */
static void dwz_check(uint32_t type, uint32_t flags, bool zero)
{
	uint8_t want[64 * 512], got[64 * 512];
	uint64_t d = alloc(sizeof(want)), p;
	uint64_t sec[2] = { 8, 40 };
	uint32_t num[2] = { 8, 4 }, fl[2] = { flags, flags };
	struct result r;

	pattern(f.ram + d, sizeof(want), type);
	memcpy(want, f.ram + d, sizeof(want));
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 0, d, sizeof(want)).status, VIRTIO_BLK_S_OK);
	p = dwz_payload(sec, num, fl, 2);
	r = request(type, 0, p, 32);
	CHECK_EQ(r.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(r.used_len, 1);
	file_read(0, got, sizeof(got));
	if (zero) {
		memset(want + 8 * 512, 0, 8 * 512);
		memset(want + 40 * 512, 0, 4 * 512);
	}
	CHECK(!memcmp(got, want, 8 * 512));
	CHECK(!memcmp(got + 16 * 512, want + 16 * 512, 24 * 512));
	CHECK(!memcmp(got + 44 * 512, want + 44 * 512, 20 * 512));
	if (zero)
		CHECK(!memcmp(got, want, sizeof(got)));
}

TEST(discard)
{
	uint64_t sec[1] = { 0 }, p;
	uint32_t num[1] = { 8 }, fl[1] = { VIRTIO_BLK_WZ_FLAG_UNMAP };

	open_disk("", ALL_FEATURES);
	dwz_check(VIRTIO_BLK_T_DISCARD, 0, true);   /* a punched hole reads as 0 */
	/* §5.2.6.2: the unmap flag on a discard, and unknown flags: UNSUPP. */
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 16).status, VIRTIO_BLK_S_UNSUPP);
	fl[0] = 4;
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 16).status, VIRTIO_BLK_S_UNSUPP);
	/* Out of range, too long a range, bad payload sizes, too many. */
	fl[0] = 0;
	sec[0] = CAP - 4;
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 16).status, VIRTIO_BLK_S_IOERR);
	sec[0] = 0;
	num[0] = BLK_DWZ_SECTORS_MAX + 1;
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 16).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 15).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, 0, 0).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, alloc(16 * 17), 16 * 17).status,
		 VIRTIO_BLK_S_IOERR);
	close_disk();
}

TEST(write_zeroes)
{
	uint64_t sec[1] = { 0 }, p;
	uint32_t num[1] = { 8 }, fl[1] = { 2 };

	open_disk("", ALL_FEATURES);
	dwz_check(VIRTIO_BLK_T_WRITE_ZEROES, 0, true);
	dwz_check(VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WZ_FLAG_UNMAP, true);
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, p, 16).status, VIRTIO_BLK_S_UNSUPP);
	close_disk();
}

TEST(discard_not_negotiated)
{
	uint64_t sec[1] = { 0 }, p;
	uint32_t num[1] = { 8 }, fl[1] = { 0 };

	open_disk("", ~((1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES)));
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 16).status, VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, p, 16).status, VIRTIO_BLK_S_UNSUPP);
	close_disk();
}

TEST(malformed_chains)
{
	uint64_t h = 0, d, st;
	uint32_t hdr[4] = { VIRTIO_BLK_T_IN, 0, 0, 0 };
	struct result r;

	open_disk("", ALL_FEATURES);
	h = alloc(16);
	d = alloc(512);
	st = alloc(1);
	memcpy(f.ram + h, hdr, 16);
	{	/* Too short: a header and nothing else (no status byte). */
		struct seg s[1] = { { h, 16, false } };

		r = run_chain(s, 1, 0);
		CHECK_EQ(r.used_len, 0);
	}
	{	/* Header in a device-writable descriptor. */
		struct seg s[3] = { { h, 16, true }, { d, 512, true }, { st, 1, true } };

		r = run_chain(s, 3, st);
		CHECK_EQ(r.status, VIRTIO_BLK_S_IOERR);
		CHECK_EQ(r.used_len, 1);
	}
	{	/* Status in a device-readable descriptor: nothing written. */
		struct seg s[2] = { { h, 16, false }, { st, 1, false } };

		r = run_chain(s, 2, st);
		CHECK_EQ(r.status, S_NONE);
		CHECK_EQ(r.used_len, 0);
	}
	{	/* Header shorter than 16 bytes. */
		struct seg s[2] = { { h, 8, false }, { st, 1, true } };

		CHECK_EQ(run_chain(s, 2, st).status, VIRTIO_BLK_S_IOERR);
	}
	{	/* Data outside RAM: in the MMIO gap, and wrapping 2^64. */
		struct seg s[3] = { { h, 16, false }, { 0xfec00000, 512, true }, { st, 1, true } };

		CHECK_EQ(run_chain(s, 3, st).status, VIRTIO_BLK_S_IOERR);
		s[1].gpa = UINT64_MAX - 100;
		CHECK_EQ(run_chain(s, 3, st).status, VIRTIO_BLK_S_IOERR);
		s[1].gpa = FAKE_RAM - 256;
		CHECK_EQ(run_chain(s, 3, st).status, VIRTIO_BLK_S_IOERR);
	}
	{	/* Status byte outside RAM: cannot answer. */
		struct seg s[3] = { { h, 16, false }, { d, 512, true }, { FAKE_RAM, 1, true } };

		CHECK_EQ(run_chain(s, 3, 0).used_len, 0);
	}
	{	/* A descriptor loop: returned with nothing written. */
		uint16_t k = fake_used_idx(&f), head = next_desc;
		uint32_t id, len;

		fake_desc(&f, FAKE_DESC, head, h, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1));
		fake_desc(&f, FAKE_DESC, (uint16_t)(head + 1), d, 512,
			  VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, head);
		next_desc = (uint16_t)(next_desc + 2);
		fake_avail(&f, head);
		kick();
		CHECK(run_until_used((uint16_t)(k + 1)));
		fake_used(&f, k, &id, &len);
		CHECK_EQ(id, head);
		CHECK_EQ(len, 0);
	}
	{	/* A bad indirect table (length not a multiple of 16). */
		uint16_t k = fake_used_idx(&f), head = next_desc;
		uint32_t id, len;

		fake_desc(&f, FAKE_DESC, head, 0x8000, 17, VIRTQ_DESC_F_INDIRECT, 0);
		next_desc++;
		fake_avail(&f, head);
		kick();
		CHECK(run_until_used((uint16_t)(k + 1)));
		fake_used(&f, k, &id, &len);
		CHECK_EQ(id, head);
		CHECK_EQ(len, 0);
	}
	/* The device still works. */
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK(atomic_load(&blk_get_stats(b)->bad_requests) >= 8);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, 0);
	close_disk();
}

TEST(corrupt_ring_needs_reset)
{
	uint64_t d;

	open_disk("", ALL_FEATURES);
	fake_avail(&f, QNUM + 3);                 /* head beyond the queue */
	kick();
	run_idle();
	CHECK(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(rd(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	CHECK(raised >= 1);
	CHECK_EQ(fake_used_idx(&f), 0);
	/* Further requests are not looked at... */
	d = alloc(512);
	f.avail_idx = 0;
	fake_set16(&f, FAKE_AVAIL + 2, 0);
	driver_init(ALL_FEATURES);                 /* ...until the driver resets */
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, 0);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	/* The available index running more than a queue ahead. */
	fake_set16(&f, FAKE_AVAIL + 2, (uint16_t)(f.avail_idx + QNUM + 1));
	kick();
	run_idle();
	CHECK(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	close_disk();
}

TEST(read_only_disk)
{
	uint8_t before[512], after[512];
	uint64_t d, sec[1] = { 0 }, p;
	uint32_t num[1] = { 1 }, fl[1] = { 0 };

	open_disk(",ro", ALL_FEATURES);
	CHECK(offered() & (1ULL << VIRTIO_BLK_F_RO));
	CHECK(!(offered() & (1ULL << VIRTIO_BLK_F_DISCARD)));
	d = alloc(512);
	file_read(512, before, 512);
	memset(f.ram + d, 0x5a, 512);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 1, d, 512).status, VIRTIO_BLK_S_IOERR);
	file_read(512, after, 512);
	CHECK(!memcmp(before, after, 512));
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 1, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(request(VIRTIO_BLK_T_FLUSH, 0, 0, 0).status, VIRTIO_BLK_S_OK);
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 16).status, VIRTIO_BLK_S_UNSUPP);
	close_disk();
}

static atomic_bool reset_done;

/* A vCPU: writes Status = 0, which returns only when the reset is complete. */
static void *reset_thread(void *arg)
{
	(void)arg;
	wr(VIRTIO_MMIO_STATUS, 0);
	atomic_store(&reset_done, true);
	return NULL;
}

/* The driver resets on another vCPU while requests are in flight: the queue
 * goes off at once, the reset waits for the requests, and this thread (the
 * loop) completes them; the reset must end long before its 2 s limit. */
static void reset_on_vcpu_while_loop_runs(void)
{
	pthread_t th;
	uint64_t t0;

	atomic_store(&reset_done, false);
	CHECK_EQ(pthread_create(&th, NULL, reset_thread, NULL), 0);
	t0 = now_ms();
	/* The queue goes off at once (the reset is waiting in it); only then
	 * let the requests complete. */
	while (rd(VIRTIO_MMIO_QUEUE_READY) && now_ms() - t0 < 5000)
		usleep(100);
	CHECK(!atomic_load(&reset_done));
	while (!atomic_load(&reset_done) && now_ms() - t0 < 5000) {
		loop_once(&loop, false);
		usleep(200);
	}
	pthread_join(th, NULL);
	CHECK(now_ms() - t0 < 1500);              /* did not wait for the timeout */
}

TEST(reset_with_request_in_flight)
{
	uint64_t h, d, st;
	uint32_t hdr[4] = { VIRTIO_BLK_T_IN, 0, 0, 0 };
	unsigned inflight;

	open_disk("", ALL_FEATURES);
	h = alloc(16);
	d = alloc(256 * 1024);
	st = alloc(1);
	memcpy(f.ram + h, hdr, 16);
	memcpy(f.ram + d, "XXXX", 4);
	file_write_marker();
	f.ram[st] = S_NONE;
	{
		struct seg s[3] = { { h, 16, false }, { d, 256 * 1024, true }, { st, 1, true } };

		add_chain(s, 3);
	}
	inflight = loop.inflight;
	kick();
	/* One iteration: the notify is seen and the read queued on the ring
	 * (not yet submitted). */
	loop_once(&loop, false);
	CHECK_EQ(loop.inflight, inflight + 1);
	CHECK_EQ(atomic_load(&blk_get_stats(b)->reads), 0);   /* counted once done */
	/* The driver resets on another vCPU; the reset waits for the read. */
	reset_on_vcpu_while_loop_runs();
	/* Once Status reads 0 the read had landed (and nothing can land later),
	 * but it never reached the ring: no used entry, no status, no
	 * interrupt (§2.4.1). */
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0);
	CHECK(!memcmp(f.ram + d, "MARK", 4));
	run_idle();
	CHECK_EQ(fake_used_idx(&f), 0);
	CHECK_EQ(f.ram[st], S_NONE);
	CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* Set up again: the slot came back and the device works. */
	driver_init(ALL_FEATURES);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	close_disk();
}

TEST(reset_gives_up_on_a_stuck_request)
{
	/* Nobody reaps completions while a vCPU resets: the reset waits its
	 * limit, then completes anyway rather than hang the vCPU.  (From the
	 * loop's own thread it does not wait at all.) */
	uint64_t d, t0;
	pthread_t th;

	open_disk("", ALL_FEATURES);
	d = alloc(512);
	{
		uint64_t h = alloc(16), st = alloc(1);
		uint32_t hdr[4] = { VIRTIO_BLK_T_IN, 0, 0, 0 };
		struct seg s[3] = { { h, 16, false }, { d, 512, true }, { st, 1, true } };

		memcpy(f.ram + h, hdr, 16);
		add_chain(s, 3);
	}
	kick();
	loop_once(&loop, false);
	atomic_store(&reset_done, false);
	t0 = now_ms();
	CHECK_EQ(pthread_create(&th, NULL, reset_thread, NULL), 0);
	pthread_join(th, NULL);
	CHECK(now_ms() - t0 >= 1900);
	CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0);
	run_idle();
	CHECK_EQ(fake_used_idx(&f), 0);
	/* The same from the loop's thread: immediate. */
	driver_init(ALL_FEATURES);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	t0 = now_ms();
	wr(VIRTIO_MMIO_STATUS, 0);
	CHECK(now_ms() - t0 < 500);
	close_disk();
}

TEST(without_flush_writes_are_synchronous)
{
	uint8_t got[512];
	uint64_t d;

	open_disk("", ~(1ULL << VIRTIO_BLK_F_FLUSH));
	CHECK(!(t->features & (1ULL << VIRTIO_BLK_F_FLUSH)));
	d = alloc(512);
	memset(f.ram + d, 0x3c, 512);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 5, d, 512).status, VIRTIO_BLK_S_OK);
	file_read(5 * 512, got, 512);
	CHECK(!memcmp(got, f.ram + d, 512));
	close_disk();
}

TEST(direct_with_unaligned_buffers)
{
	uint8_t want[8192], got[8192];
	uint64_t d;

	open_disk(",direct", ALL_FEATURES);
	d = alloc(8192 + 4096) + 1;                /* odd address */
	pattern(f.ram + d, 8192, 3);
	memcpy(want, f.ram + d, 8192);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 16, d, 8192).status, VIRTIO_BLK_S_OK);
	CHECK(atomic_load(&blk_get_stats(b)->unaligned) >= 1);
	d = (alloc(8192 + 4096) + 4095) & ~4095ULL;  /* aligned: O_DIRECT */
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 16, d, 8192).status, VIRTIO_BLK_S_OK);
	CHECK(!memcmp(f.ram + d, want, 8192));
	file_read(16 * 512, got, 8192);
	CHECK(!memcmp(got, want, 8192));
	/* Odd sector (when the filesystem wants 4 KiB alignment) and odd
	 * length read: still right. */
	d = alloc(4096) + 3;
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 17, d, 1024).status, VIRTIO_BLK_S_OK);
	CHECK(!memcmp(f.ram + d, want + 512, 1024));
	close_disk();
}

TEST(interrupts_once_per_batch_and_event_idx)
{
	uint64_t d = 0;
	uint16_t k;

	open_disk("", ALL_FEATURES);
	CHECK(t->features & (1ULL << VIRTIO_F_RING_EVENT_IDX));
	/* Eight requests, one kick: they complete in one or a few batches,
	 * each batch raising the interrupt at most once. */
	fake_set_used_event(&f, 0);
	raised = 0;
	for (int i = 0; i < 8; i++) {
		uint64_t h = alloc(16), st = alloc(1);
		uint32_t hdr[4] = { VIRTIO_BLK_T_FLUSH, 0, 0, 0 };
		struct seg s[2] = { { h, 16, false }, { st, 1, true } };

		memcpy(f.ram + h, hdr, 16);
		add_chain(s, 2);
	}
	kick();
	CHECK(run_until_used(8));
	CHECK(raised >= 1 && raised <= 8);
	CHECK(rd(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	/* The driver asks for no interrupt until far ahead: none comes. */
	fake_set_used_event(&f, 1000);
	raised = 0;
	d = alloc(512);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(raised, 0);
	/* used_event = the index of the next entry: interrupt. */
	fake_set_used_event(&f, fake_used_idx(&f));
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(raised, 1);
	/* The device asks to be notified at the next available entry. */
	k = fake_avail_event(&f);
	CHECK_EQ(k, f.avail_idx);
	close_disk();
}

TEST(no_interrupt_flag_without_event_idx)
{
	uint64_t d;

	open_disk("", ~(1ULL << VIRTIO_F_RING_EVENT_IDX));
	d = alloc(512);
	fake_set16(&f, FAKE_AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	raised = 0;
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(raised, 0);
	fake_set16(&f, FAKE_AVAIL, 0);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 0, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(raised, 1);
	close_disk();
}

TEST(many_requests_in_flight)
{
	/* More chains than there are descriptors for at once, in waves, all
	 * answered; the queue wraps several times. */
	uint64_t d;

	open_disk("", ALL_FEATURES);
	d = alloc(QNUM * 512);
	for (int wave = 0; wave < 5; wave++) {
		uint16_t k = fake_used_idx(&f);
		uint64_t st0 = bump;

		for (int i = 0; i < QNUM / 4; i++) {
			uint64_t h = alloc(16), st = alloc(1);
			uint32_t hdr[4] = { wave & 1 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, 0,
					    (uint32_t)(i * 8), 0 };
			struct seg s[3] = { { h, 16, false }, { d + 512u * i, 512, !!(wave & 1) },
					    { st, 1, true } };

			memcpy(f.ram + h, hdr, 16);
			f.ram[st] = S_NONE;
			add_chain(s, 3);
		}
		kick();
		CHECK(run_until_used((uint16_t)(k + QNUM / 4)));
		for (int i = 0; i < QNUM / 4; i++)
			CHECK_EQ(f.ram[st0 + 128u * i + 64], VIRTIO_BLK_S_OK);
	}
	close_disk();
}

/* What --boot-time prints must say what the guest did: notifies (however
 * many the eventfd folded into one wakeup), ignored ones, resets, and
 * requests the device refused (beyond the end, unknown type, discard not
 * negotiated) as bad requests. */
TEST(counters_say_what_happened)
{
	uint64_t d, p, sec[1] = { CAP }, before;
	uint32_t num[1] = { 1 }, fl[1] = { 0 };
	const struct blk_stats *st;

	open_disk("", ~(1ULL << VIRTIO_BLK_F_DISCARD));
	st = blk_get_stats(b);
	d = alloc(512);
	/* 1000 notifies with nothing available: few wakeups, all counted. */
	for (int i = 0; i < 1000; i++)
		kick();
	run_idle();
	CHECK(atomic_load(&t->stats.notifies) >= 1000);
	CHECK(atomic_load(&t->stats.wakeups) <= atomic_load(&t->stats.notifies));
	CHECK(atomic_load(&t->stats.wakeups) >= 1);
	before = atomic_load(&st->bad_requests);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, CAP, d, 512).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, ~0ULL, d, 512).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(request(0x55, 0, d, 512).status, VIRTIO_BLK_S_UNSUPP);
	p = dwz_payload(sec, num, fl, 1);
	CHECK_EQ(request(VIRTIO_BLK_T_DISCARD, 0, p, 16).status, VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, p, 16).status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->bad_requests) - before, 5);
	/* Refused requests moved nothing; ones that complete are counted. */
	CHECK_EQ(atomic_load(&st->reads) + atomic_load(&st->writes), 0);
	CHECK_EQ(atomic_load(&st->bytes_read) + atomic_load(&st->bytes_written), 0);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 1, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(request(VIRTIO_BLK_T_IN, 1, d, 512).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(atomic_load(&st->writes), 1);
	CHECK_EQ(atomic_load(&st->bytes_written), 512);
	CHECK_EQ(atomic_load(&st->reads), 1);
	CHECK_EQ(atomic_load(&st->bytes_read), 512);
	/* Reset, then a notify before DRIVER_OK: counted as ignored. */
	before = atomic_load(&t->stats.resets);
	wr(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(atomic_load(&t->stats.resets) - before, 1);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	before = atomic_load(&t->stats.ignored);
	kick();
	run_idle();
	CHECK_EQ(atomic_load(&t->stats.ignored) - before, 1);
	close_disk();
}

/* ---- merging (rw_queue() in blk.c) ---- */

/* Make a request available without kicking: header, data segments
 * (device-writable for IN), status byte (set to S_NONE); the chain direct,
 * or in an indirect table.  Returns the status byte's address; *head gets
 * the chain's head. */
static uint64_t queue_req(uint32_t type, uint64_t sector, const struct seg *data, int ndata,
			  bool indirect, uint16_t *head)
{
	struct seg s[VQ_CHAIN_MAX];
	uint64_t h = alloc(16), st = alloc(1);
	uint32_t hdr[4] = { type, 0, (uint32_t)sector, (uint32_t)(sector >> 32) };
	int n = 0;

	memcpy(f.ram + h, hdr, 16);
	f.ram[st] = S_NONE;
	s[n++] = (struct seg){ h, 16, false };
	for (int i = 0; i < ndata; i++)
		s[n++] = (struct seg){ data[i].gpa, data[i].len,
				       type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID };
	s[n++] = (struct seg){ st, 1, true };
	if (!indirect) {
		*head = add_chain(s, n);
		return st;
	}
	{
		uint64_t table = alloc(16u * (uint32_t)n);

		for (int i = 0; i < n; i++)
			fake_desc(&f, table, (uint16_t)i, s[i].gpa, s[i].len,
				  (uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE : 0) |
					     (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)), (uint16_t)(i + 1));
		*head = next_desc;
		fake_desc(&f, FAKE_DESC, next_desc, table, 16u * (uint32_t)n, VIRTQ_DESC_F_INDIRECT, 0);
		next_desc = (uint16_t)((next_desc + 1) % QNUM);
		fake_avail(&f, *head);
	}
	return st;
}

/* One data buffer. */
static uint64_t queue_rw(uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len, uint16_t *head)
{
	struct seg d = { gpa, len, false };

	return queue_req(type, sector, &d, 1, false, head);
}

/* Kick once and return the number of host I/Os (SQEs) the wakeup queued:
 * the loop iteration that sees the notify only queues them, the next one
 * submits them. */
static unsigned kick_count(void)
{
	unsigned long w = atomic_load(&t->stats.wakeups);
	unsigned before = loop.inflight;
	uint64_t end = now_ms() + 5000;

	kick();
	while (atomic_load(&t->stats.wakeups) == w && now_ms() < end)
		loop_once(&loop, false);
	return loop.inflight - before;
}

/* Wait for the n requests made available since used index k and check
 * each: status and used length, every head used once.  Requests in flight
 * complete in any order; the members of one merged I/O in theirs, which
 * 'in_order' checks. */
static void check_used_order(uint16_t k, int n, const uint16_t *head, const uint64_t *st,
			     const int *status, const uint32_t *used_len, bool in_order)
{
	bool seen[QNUM] = { false };

	CHECK(run_until_used((uint16_t)(k + n)));
	for (int u = 0; u < n; u++) {
		uint32_t id, len;
		int i = 0;

		fake_used(&f, (uint16_t)(k + u), &id, &len);
		while (i < n && head[i] != id)
			i++;
		CHECK(i < n);
		CHECK(!seen[i]);
		seen[i] = true;
		if (in_order)
			CHECK_EQ(i, u);
		CHECK_EQ(f.ram[st[i]], status[i]);
		CHECK_EQ(len, status[i] == VIRTIO_BLK_S_OK ? used_len[i] : 1);
	}
}

static void check_used(uint16_t k, int n, const uint16_t *head, const uint64_t *st,
		       const int *status, const uint32_t *used_len)
{
	check_used_order(k, n, head, st, status, used_len, false);
}

/* Eight adjacent writes, each in two guest buffers, become one WRITEV;
 * eight adjacent reads one READV.  Each request still completes on its
 * own (used entry, status, length, in order), the data goes where each
 * header said, one interrupt for the batch, counters per request. */
TEST(merges_adjacent_requests)
{
	enum { N = 8, LEN = 4096, SPLIT = 1000 };
	uint8_t want[N * LEN], got[N * LEN];
	uint64_t part[N][2], st[N];
	uint16_t head[N], k;
	int status[N];
	uint32_t used_len[N];
	const struct blk_stats *s;
	unsigned long writes, reads, bw, br;

	open_disk("", ALL_FEATURES);
	s = blk_get_stats(b);
	writes = atomic_load(&s->writes);
	bw = atomic_load(&s->bytes_written);
	pattern(want, sizeof(want), 21);
	for (int i = 0; i < N; i++) {
		part[i][0] = alloc(SPLIT);
		part[i][1] = alloc(LEN - SPLIT);
		memcpy(f.ram + part[i][0], want + i * LEN, SPLIT);
		memcpy(f.ram + part[i][1], want + i * LEN + SPLIT, LEN - SPLIT);
		status[i] = VIRTIO_BLK_S_OK;
	}
	k = fake_used_idx(&f);
	fake_set_used_event(&f, k);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	raised = 0;
	for (int i = 0; i < N; i++) {
		struct seg d[2] = { { part[i][0], SPLIT, false }, { part[i][1], LEN - SPLIT, false } };

		st[i] = queue_req(VIRTIO_BLK_T_OUT, 100 + 8u * i, d, 2, false, &head[i]);
		used_len[i] = 1;
	}
	CHECK_EQ(kick_count(), 1);
	/* The driver scribbles over the headers' descriptors once they are
	 * in: too late, everything was copied out when they were popped. */
	memset(f.ram + FAKE_DESC, 0xff, 16u * QNUM);
	check_used_order(k, N, head, st, status, used_len, true);
	CHECK_EQ(raised, 1);
	file_read(100 * 512, got, sizeof(got));
	CHECK(!memcmp(got, want, sizeof(got)));
	CHECK_EQ(atomic_load(&s->writes) - writes, N);
	CHECK_EQ(atomic_load(&s->bytes_written) - bw, N * LEN);
	CHECK_EQ(atomic_load(&s->merged), N);   /* --boot-time says so */
	CHECK_EQ(atomic_load(&s->merged_ios), 1);

	reads = atomic_load(&s->reads);
	br = atomic_load(&s->bytes_read);
	k = fake_used_idx(&f);
	fake_set_used_event(&f, k);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	raised = 0;
	for (int i = 0; i < N; i++) {
		struct seg d[2] = { { part[i][0], SPLIT, true }, { part[i][1], LEN - SPLIT, true } };

		memset(f.ram + part[i][0], 0, SPLIT);
		memset(f.ram + part[i][1], 0, LEN - SPLIT);
		st[i] = queue_req(VIRTIO_BLK_T_IN, 100 + 8u * i, d, 2, false, &head[i]);
		used_len[i] = LEN + 1;
	}
	CHECK_EQ(kick_count(), 1);
	check_used_order(k, N, head, st, status, used_len, true);
	CHECK_EQ(raised, 1);
	for (int i = 0; i < N; i++) {
		CHECK(!memcmp(f.ram + part[i][0], want + i * LEN, SPLIT));
		CHECK(!memcmp(f.ram + part[i][1], want + i * LEN + SPLIT, LEN - SPLIT));
	}
	CHECK_EQ(atomic_load(&s->reads) - reads, N);
	CHECK_EQ(atomic_load(&s->bytes_read) - br, N * LEN);
	close_disk();
}

/* What is not merged: a gap, descending sectors, overlapping writes, reads
 * next to writes, and anything across a FLUSH, DISCARD, WRITE_ZEROES or
 * GET_ID (which end the group and go to the ring after it).  A request
 * refused at once moves nothing and does not end the group. */
TEST(merge_only_what_follows_on)
{
	uint64_t d, id, st[3], p, sec[1] = { 2000 };
	uint32_t num[1] = { 8 }, fl[1] = { 0 };
	uint16_t head[3], k;
	struct {
		const char *what;
		uint32_t type[3];
		uint64_t sector[3];
		uint32_t len[3];
		unsigned ios;
	} c[] = {
		{ "gap", { 1, 1 }, { 0, 9 }, { 4096, 4096 }, 2 },
		{ "descending", { 1, 1 }, { 8, 0 }, { 4096, 4096 }, 2 },
		{ "overlapping writes", { 1, 1 }, { 0, 8 }, { 8192, 4096 }, 2 },
		{ "read then write", { 0, 1 }, { 0, 8 }, { 4096, 4096 }, 2 },
		{ "write then read", { 1, 0 }, { 0, 8 }, { 4096, 4096 }, 2 },
		{ "flush between", { 1, VIRTIO_BLK_T_FLUSH, 1 }, { 0, 0, 8 }, { 4096, 0, 4096 }, 3 },
		{ "discard between", { 1, VIRTIO_BLK_T_DISCARD, 1 }, { 0, 0, 8 }, { 4096, 16, 4096 }, 3 },
		{ "write zeroes between", { 1, VIRTIO_BLK_T_WRITE_ZEROES, 1 }, { 0, 0, 8 },
		  { 4096, 16, 4096 }, 3 },
		{ "get id between", { 1, VIRTIO_BLK_T_GET_ID, 1 }, { 0, 0, 8 }, { 4096, 20, 4096 }, 2 },
		{ "adjacent (control)", { 1, 1 }, { 0, 8 }, { 4096, 4096 }, 1 },
	};

	open_disk("", ALL_FEATURES);
	d = alloc(8192);
	id = alloc(20);
	p = dwz_payload(sec, num, fl, 1);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int n = c[i].type[2] || c[i].len[2] ? 3 : 2;
		unsigned ios;

		k = fake_used_idx(&f);
		for (int j = 0; j < n; j++) {
			uint32_t ty = c[i].type[j];
			struct seg g = { ty == VIRTIO_BLK_T_GET_ID ? id :
					 ty == VIRTIO_BLK_T_DISCARD || ty == VIRTIO_BLK_T_WRITE_ZEROES ? p :
					 d, c[i].len[j], false };

			st[j] = queue_req(ty, c[i].sector[j], &g, g.len ? 1 : 0, false, &head[j]);
		}
		ios = kick_count();
		if (ios != c[i].ios)
			printf("merge_only_what_follows_on: %s: %u host I/Os, want %u\n", c[i].what,
			       ios, c[i].ios);
		CHECK_EQ(ios, c[i].ios);
		CHECK(run_until_used((uint16_t)(k + n)));
		for (int j = 0; j < n; j++)
			CHECK_EQ(f.ram[st[j]], VIRTIO_BLK_S_OK);
	}
	/* Refused at once (beyond the end): answered, and the writes around
	 * it still merge. */
	k = fake_used_idx(&f);
	st[0] = queue_rw(VIRTIO_BLK_T_OUT, 0, d, 4096, &head[0]);
	st[1] = queue_rw(VIRTIO_BLK_T_OUT, CAP, d, 4096, &head[1]);
	st[2] = queue_rw(VIRTIO_BLK_T_OUT, 8, d, 4096, &head[2]);
	CHECK_EQ(kick_count(), 1);
	CHECK(run_until_used((uint16_t)(k + 3)));
	CHECK_EQ(f.ram[st[0]], VIRTIO_BLK_S_OK);
	CHECK_EQ(f.ram[st[1]], VIRTIO_BLK_S_IOERR);
	CHECK_EQ(f.ram[st[2]], VIRTIO_BLK_S_OK);
	close_disk();
}
/* A merged I/O stays within BLK_MERGE_MAX_BYTES (1 MiB): sixteen adjacent
 * 64 KiB writes are one I/O, seventeen two; a request of the whole limit
 * takes nobody along. */
TEST(merge_byte_limit)
{
	enum { LEN = 64 * 1024 };
	uint64_t d, big, st[17];
	uint16_t head[17], k;
	int status[17];
	uint32_t used_len[17];

	CHECK_EQ(BLK_MERGE_MAX_BYTES, 16u * LEN);
	open_disk("", ALL_FEATURES);
	d = alloc(LEN);
	pattern(f.ram + d, LEN, 5);
	for (int i = 0; i < 17; i++) {
		status[i] = VIRTIO_BLK_S_OK;
		used_len[i] = 1;
	}
	for (int n = 16; n <= 17; n++) {
		k = fake_used_idx(&f);
		for (int i = 0; i < n; i++)
			st[i] = queue_rw(VIRTIO_BLK_T_OUT, (uint64_t)i * (LEN / 512), d, LEN, &head[i]);
		CHECK_EQ(kick_count(), n == 16 ? 1u : 2u);
		check_used(k, n, head, st, status, used_len);
	}
	{
		uint8_t got[LEN];

		file_read(16 * LEN, got, LEN);
		CHECK(!memcmp(got, f.ram + d, LEN));
	}
	/* 1 MiB in two segments of the same 512 KiB, then 512 bytes after it. */
	big = alloc(512 * 1024);
	k = fake_used_idx(&f);
	{
		struct seg g[2] = { { big, 512 * 1024, false }, { big, 512 * 1024, false } };

		st[0] = queue_req(VIRTIO_BLK_T_OUT, 0, g, 2, false, &head[0]);
	}
	st[1] = queue_rw(VIRTIO_BLK_T_OUT, BLK_MERGE_MAX_BYTES / 512, d, 512, &head[1]);
	CHECK_EQ(kick_count(), 2);
	check_used(k, 2, head, st, status, used_len);
	close_disk();
}

/* ... and within BLK_MERGE_MAX_IOV iovecs: 8 requests of 120 segments and
 * one of 64 (1024 iovecs of 512 bytes) are one WRITEV, in the right order;
 * with 65 in the last they are two READVs. */
TEST(merge_iovec_limit)
{
	enum { NSEG = 120, NREQ = 9, SEG = 512 };
	struct seg g[NSEG];
	uint64_t buf, st[NREQ];
	uint16_t head[NREQ], k;
	int status[NREQ];
	uint32_t used_len[NREQ];
	static uint8_t want[1025 * SEG], got[1025 * SEG];

	CHECK_EQ(BLK_MERGE_MAX_IOV, 1024);
	open_disk("", ALL_FEATURES);
	buf = alloc(sizeof(want));
	pattern(f.ram + buf, sizeof(want), 77);
	memcpy(want, f.ram + buf, sizeof(want));
	for (int round = 0; round < 2; round++) {
		uint32_t type = round ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
		unsigned seg = 0;

		if (round)
			memset(f.ram + buf, 0, sizeof(want));
		k = fake_used_idx(&f);
		for (int i = 0; i < NREQ; i++) {
			int n = i < NREQ - 1 ? NSEG : 64 + round;

			/* Each segment its own 512 bytes, in sector order. */
			for (int j = 0; j < n; j++)
				g[j] = (struct seg){ buf + (uint64_t)(seg + j) * SEG, SEG, false };
			st[i] = queue_req(type, seg, g, n, true, &head[i]);
			status[i] = VIRTIO_BLK_S_OK;
			used_len[i] = round ? (uint32_t)n * SEG + 1 : 1;
			seg += (unsigned)n;
		}
		CHECK_EQ(seg, 1024u + (unsigned)round);
		CHECK_EQ(kick_count(), round ? 2u : 1u);
		check_used(k, NREQ, head, st, status, used_len);
		if (!round) {
			file_read(0, got, 1024 * SEG);
			CHECK(!memcmp(got, want, 1024 * SEG));
			file_read(0, f.ram + buf + 1024 * SEG, SEG);   /* what the read brings back */
			memcpy(want + 1024 * SEG, f.ram + buf + 1024 * SEG, SEG);
		} else {
			CHECK(!memcmp(f.ram + buf, want, 1025 * SEG - SEG));
		}
	}
	close_disk();
}

/* ,direct: aligned requests go to the O_DIRECT descriptor, unaligned ones
 * to the buffered one; only requests for the same one merge. */
TEST(merge_direct_keeps_descriptors_apart)
{
	uint64_t al[2], un[2], st[2];
	uint16_t head[2], k;
	const int status[2] = { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK };
	const uint32_t used_len[2] = { 1, 1 }, in_len[2] = { 4097, 4097 };
	const struct blk_stats *s;
	unsigned long unaligned;
	struct {
		uint64_t *a, *b2;
		unsigned ios, unaligned;
	} c[] = {
		{ al, al + 1, 1, 0 },     /* both aligned: O_DIRECT, merged */
		{ al, un + 1, 2, 1 },     /* aligned, then unaligned: apart */
		{ un, al + 1, 2, 1 },
		{ un, un + 1, 1, 2 },     /* both unaligned: buffered, merged */
	};

	open_disk(",direct", ALL_FEATURES);
	s = blk_get_stats(b);
	for (int i = 0; i < 2; i++) {
		al[i] = (alloc(8192) + 4095) & ~4095ULL;
		un[i] = alloc(4096 + 64) + 1;
	}
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint8_t want[8192], got[8192];

		pattern(f.ram + *c[i].a, 4096, (unsigned)i);
		pattern(f.ram + *c[i].b2, 4096, (unsigned)i + 50);
		memcpy(want, f.ram + *c[i].a, 4096);
		memcpy(want + 4096, f.ram + *c[i].b2, 4096);
		unaligned = atomic_load(&s->unaligned);
		k = fake_used_idx(&f);
		st[0] = queue_rw(VIRTIO_BLK_T_OUT, 64, *c[i].a, 4096, &head[0]);
		st[1] = queue_rw(VIRTIO_BLK_T_OUT, 72, *c[i].b2, 4096, &head[1]);
		CHECK_EQ(kick_count(), c[i].ios);
		check_used(k, 2, head, st, status, used_len);
		CHECK_EQ(atomic_load(&s->unaligned) - unaligned, c[i].unaligned);
		file_read(64 * 512, got, sizeof(got));
		CHECK(!memcmp(got, want, sizeof(got)));
		memset(f.ram + *c[i].a, 0, 4096);
		memset(f.ram + *c[i].b2, 0, 4096);
		k = fake_used_idx(&f);
		st[0] = queue_rw(VIRTIO_BLK_T_IN, 64, *c[i].a, 4096, &head[0]);
		st[1] = queue_rw(VIRTIO_BLK_T_IN, 72, *c[i].b2, 4096, &head[1]);
		CHECK_EQ(kick_count(), c[i].ios);
		check_used(k, 2, head, st, status, in_len);
		CHECK(!memcmp(f.ram + *c[i].a, want, 4096));
		CHECK(!memcmp(f.ram + *c[i].b2, want + 4096, 4096));
	}
	close_disk();
}

/* Short transfers inside a merged I/O: the image shrinks to 6 KiB under
 * three adjacent 4 KiB reads.  The first is covered and completes OK, the
 * second got 2 KiB; the rest goes out again and gets 0 bytes (end of file):
 * the second and third then go on alone, each fails, each is counted. */
TEST(merge_short_transfer)
{
	uint64_t d[3], st[3];
	uint16_t head[3], k;
	const int status[3] = { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR };
	const uint32_t used_len[3] = { 4097, 4097, 4097 };
	uint8_t want[6144];
	const struct blk_stats *s;
	unsigned long ioerr, reads, br;

	open_disk("", ALL_FEATURES);
	s = blk_get_stats(b);
	for (int i = 0; i < 3; i++)
		d[i] = alloc(4096);
	pattern(f.ram + d[0], 4096, 1);
	pattern(f.ram + d[1], 4096, 2);
	memcpy(want, f.ram + d[0], 4096);
	memcpy(want + 4096, f.ram + d[1], 2048);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 0, d[0], 4096).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(request(VIRTIO_BLK_T_OUT, 8, d[1], 4096).status, VIRTIO_BLK_S_OK);
	CHECK_EQ(truncate(path, 6144), 0);
	for (int i = 0; i < 3; i++)
		memset(f.ram + d[i], 0xcc, 4096);
	ioerr = atomic_load(&s->io_errors);
	reads = atomic_load(&s->reads);
	br = atomic_load(&s->bytes_read);
	k = fake_used_idx(&f);
	for (int i = 0; i < 3; i++)
		st[i] = queue_rw(VIRTIO_BLK_T_IN, 8u * i, d[i], 4096, &head[i]);
	CHECK_EQ(kick_count(), 1);
	check_used(k, 3, head, st, status, used_len);
	CHECK(!memcmp(f.ram + d[0], want, 4096));
	CHECK(!memcmp(f.ram + d[1], want + 4096, 2048));   /* as far as it went */
	CHECK_EQ(atomic_load(&s->io_errors) - ioerr, 2);
	CHECK_EQ(atomic_load(&s->reads) - reads, 1);
	CHECK_EQ(atomic_load(&s->bytes_read) - br, 6144);
	CHECK_EQ(truncate(path, DISK_SZ), 0);
	close_disk();
}

/* A host error inside a merged I/O does not fail the members it was not
 * about.  The middle one of three adjacent requests has its buffer in a
 * page the host cannot access (EFAULT): the merged I/O stops there, the
 * members not yet complete go on alone, and only that one gets IOERR (and
 * counts as an I/O error); the others complete OK with their data -- for
 * reads and for writes. */
TEST(merge_error_fails_only_its_request)
{
	uint64_t d[3], bad, st[3];
	uint16_t head[3], k;
	const int status[3] = { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK };
	const uint32_t wr_len[3] = { 1, 1, 1 }, rd_len[3] = { 4097, 4097, 4097 };
	uint8_t want[3][4096], got[4096];
	const struct blk_stats *s;
	unsigned long ioerr, n;

	open_disk("", ALL_FEATURES);
	s = blk_get_stats(b);
	d[0] = alloc(4096);
	d[2] = alloc(4096);
	bad = (alloc(8192) + 4095) & ~4095ULL;
	d[1] = bad;
	pattern(f.ram + d[0], 4096, 31);
	pattern(f.ram + d[2], 4096, 33);
	memcpy(want[0], f.ram + d[0], 4096);
	memcpy(want[2], f.ram + d[2], 4096);
	memset(want[1], 0x77, 4096);
	{	/* What sectors 8-15 hold before: the failed write must not change it. */
		int fd = open(path, O_WRONLY);

		CHECK_EQ(pwrite(fd, want[1], 4096, 8 * 512), 4096);
		close(fd);
	}
	CHECK_EQ(mprotect(f.ram + bad, 4096, PROT_NONE), 0);

	ioerr = atomic_load(&s->io_errors);
	n = atomic_load(&s->writes);
	k = fake_used_idx(&f);
	for (int i = 0; i < 3; i++)
		st[i] = queue_rw(VIRTIO_BLK_T_OUT, 8u * i, d[i], 4096, &head[i]);
	CHECK_EQ(kick_count(), 1);
	check_used(k, 3, head, st, status, wr_len);
	CHECK_EQ(atomic_load(&s->io_errors) - ioerr, 1);
	CHECK_EQ(atomic_load(&s->writes) - n, 2);
	for (int i = 0; i < 3; i++) {
		file_read(8u * 512 * (unsigned)i, got, 4096);
		CHECK(!memcmp(got, want[i], 4096));
	}

	memset(f.ram + d[0], 0, 4096);
	memset(f.ram + d[2], 0, 4096);
	ioerr = atomic_load(&s->io_errors);
	n = atomic_load(&s->reads);
	k = fake_used_idx(&f);
	for (int i = 0; i < 3; i++)
		st[i] = queue_rw(VIRTIO_BLK_T_IN, 8u * i, d[i], 4096, &head[i]);
	CHECK_EQ(kick_count(), 1);
	check_used(k, 3, head, st, status, rd_len);
	CHECK_EQ(atomic_load(&s->io_errors) - ioerr, 1);
	CHECK_EQ(atomic_load(&s->reads) - n, 2);
	CHECK(!memcmp(f.ram + d[0], want[0], 4096));
	CHECK(!memcmp(f.ram + d[2], want[2], 4096));
	CHECK_EQ(mprotect(f.ram + bad, 4096, PROT_READ | PROT_WRITE), 0);
	close_disk();
}

/* A full disk (here: the file size limit, EFBIG past 6 KiB) under three
 * adjacent 4 KiB writes: the first lands, the second lands in part; the
 * second and third fail, on their own, and are the two I/O errors counted;
 * bytes written are what reached the image. */
TEST(merge_disk_full)
{
	uint64_t d, st[3];
	uint16_t head[3], k;
	const int status[3] = { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR };
	const uint32_t used_len[3] = { 1, 1, 1 };
	const struct blk_stats *s;
	unsigned long ioerr, writes, bw;
	struct rlimit old, lim;
	uint8_t got[6144];

	open_disk("", ALL_FEATURES);
	s = blk_get_stats(b);
	d = alloc(3 * 4096);
	pattern(f.ram + d, 3 * 4096, 9);
	ioerr = atomic_load(&s->io_errors);
	writes = atomic_load(&s->writes);
	bw = atomic_load(&s->bytes_written);
	CHECK_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 6144;
	signal(SIGXFSZ, SIG_IGN);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	k = fake_used_idx(&f);
	for (int i = 0; i < 3; i++)
		st[i] = queue_rw(VIRTIO_BLK_T_OUT, 8u * i, d + 4096u * i, 4096, &head[i]);
	CHECK_EQ(kick_count(), 1);
	check_used(k, 3, head, st, status, used_len);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	CHECK_EQ(atomic_load(&s->io_errors) - ioerr, 2);
	CHECK_EQ(atomic_load(&s->writes) - writes, 1);
	CHECK_EQ(atomic_load(&s->bytes_written) - bw, 6144);
	file_read(0, got, sizeof(got));
	CHECK(!memcmp(got, f.ram + d, sizeof(got)));
	close_disk();
}

/* Reset with a merged I/O in flight: the reset waits for it (every member
 * holds its slot), and once Status reads 0 its data has landed but none of
 * its members reached the ring.  From the loop's own thread (no wait), the
 * late completion frees them all the same.  Afterwards every slot and
 * merge slot is back: more merged batches than there are merge slots each
 * go out as one I/O. */
TEST(reset_with_merged_io_in_flight)
{
	enum { N = 4, LEN = 64 * 1024 };
	uint64_t d, st[N], t0;
	uint16_t head[N];

	open_disk("", ALL_FEATURES);
	d = alloc(N * LEN);
	file_write_marker();
	for (int from_loop = 0; from_loop < 2; from_loop++) {
		memcpy(f.ram + d, "XXXX", 4);
		for (int i = 0; i < N; i++)
			st[i] = queue_rw(VIRTIO_BLK_T_IN, (uint64_t)i * (LEN / 512), d + (uint64_t)i * LEN,
					 LEN, &head[i]);
		CHECK_EQ(kick_count(), 1);
		if (from_loop) {
			wr(VIRTIO_MMIO_STATUS, 0);
			CHECK_EQ(rd(VIRTIO_MMIO_STATUS), 0);
			t0 = now_ms();
			while (loop.inflight > 1 && now_ms() - t0 < 5000)
				loop_once(&loop, false);
			CHECK_EQ(loop.inflight, 1);   /* the queue's eventfd read */
		} else {
			reset_on_vcpu_while_loop_runs();
			CHECK(!memcmp(f.ram + d, "MARK", 4));
		}
		run_idle();
		CHECK_EQ(fake_used_idx(&f), 0);
		for (int i = 0; i < N; i++)
			CHECK_EQ(f.ram[st[i]], S_NONE);
		CHECK_EQ(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
		driver_init(ALL_FEATURES);
		d = alloc(N * LEN);
	}
	for (int batch = 0; batch < 20; batch++) {
		const int status[2] = { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK };
		const uint32_t used_len[2] = { 513, 513 };
		uint16_t k = fake_used_idx(&f);

		st[0] = queue_rw(VIRTIO_BLK_T_IN, 0, d, 512, &head[0]);
		st[1] = queue_rw(VIRTIO_BLK_T_IN, 1, d + 512, 512, &head[1]);
		CHECK_EQ(kick_count(), 1);
		check_used(k, 2, head, st, status, used_len);
	}
	close_disk();
}

/* More merged I/Os at once than there are merge slots: the groups that
 * find none go out one request at a time, and everything completes. */
TEST(merge_slots_run_out)
{
	enum { PAIRS = QNUM / 2 };
	uint64_t d, st[QNUM];
	uint16_t head[QNUM], k;
	int status[QNUM];
	uint32_t used_len[QNUM];

	open_disk("", ALL_FEATURES);
	d = alloc(QNUM * 512);
	pattern(f.ram + d, QNUM * 512, 3);
	k = fake_used_idx(&f);
	for (int i = 0; i < QNUM; i++) {
		/* Pairs of adjacent sectors, a gap after each pair. */
		struct seg g = { d + 512u * i, 512, false };

		st[i] = queue_req(VIRTIO_BLK_T_OUT, (uint64_t)(i / 2) * 4 + i % 2, &g, 1, true, &head[i]);
		status[i] = VIRTIO_BLK_S_OK;
		used_len[i] = 1;
	}
	CHECK(PAIRS > 16);
	CHECK_EQ(kick_count(), 16 + 2 * (PAIRS - 16));
	check_used(k, QNUM, head, st, status, used_len);
	for (int i = 0; i < QNUM; i++) {
		uint8_t got[512];

		file_read(((uint64_t)(i / 2) * 4 + i % 2) * 512, got, 512);
		CHECK(!memcmp(got, f.ram + d + 512u * i, 512));
	}
	close_disk();
}

TEST(option_parsing)
{
	struct blk_opts o;
	struct err e;

	CHECK_EQ(blk_parse("a.img,ro,root,direct,serial=ABC", &o, &e), 0);
	CHECK(!strcmp(o.path, "a.img"));
	CHECK(o.ro && o.root && o.direct);
	CHECK(!strcmp(o.serial, "ABC"));
	CHECK_EQ(blk_parse("b.img", &o, &e), 0);
	CHECK(!o.ro && !o.root && !o.direct && !o.serial[0]);
	CHECK_EQ(blk_parse("b.img,rw", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "unknown option 'rw'");
	CHECK_EQ(blk_parse("b.img,", &o, &e), -1);
	CHECK_EQ(blk_parse(",ro", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "needs a path");
	CHECK_EQ(blk_parse("b.img,serial=", &o, &e), -1);
	CHECK_EQ(blk_parse("b.img,serial=123456789012345678901", &o, &e), -1);
	CHECK_STR_HAS(e.msg, "1 to 20");
	CHECK_EQ(blk_parse("b.img,serial=12345678901234567890", &o, &e), 0);
	CHECK_EQ(blk_parse("b.img,serial=a b", &o, &e), -1);
}

static const char *open_err(const char *p, const char *opts)
{
	static struct err e;
	struct blk_opts o;
	char arg[256];
	struct blk *x;

	snprintf(arg, sizeof(arg), "%s%s", p, opts);
	if (blk_parse(arg, &o, &e) < 0)
		return e.msg;
	x = blk_open(&o, 0, NULL, &e);
	if (!x)
		return e.msg;
	blk_close(x);
	return NULL;
}

TEST(open_errors)
{
	char dir[] = "/tmp/ember-test-blkdir.XXXXXX", p[128];
	struct blk_opts o;
	struct err e;
	struct blk *x, *y;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(p, sizeof(p), "%s/missing", dir);
	CHECK_STR_HAS(open_err(p, ""), "No such file or directory");
	CHECK_STR_HAS(open_err(dir, ""), "is a directory");
	CHECK_STR_HAS(open_err("/dev/null", ""), "not a regular file or block device");
	snprintf(p, sizeof(p), "%s/odd", dir);
	fd = open(p, O_CREAT | O_RDWR, 0644);
	CHECK_EQ(ftruncate(fd, 1000), 0);
	close(fd);
	CHECK_STR_HAS(open_err(p, ""), "size 1000 bytes is not a multiple of 512");
	CHECK_EQ(truncate(p, 0), 0);
	CHECK_STR_HAS(open_err(p, ""), "is empty");
	CHECK_EQ(truncate(p, 4096), 0);
	/* Locking: one writer excludes everyone; readers share. */
	CHECK_EQ(blk_parse(p, &o, &e), 0);
	x = blk_open(&o, 0, NULL, &e);
	CHECK(x != NULL);
	CHECK_STR_HAS(open_err(p, ""), "in use by another process");
	CHECK_STR_HAS(open_err(p, ",ro"), "in use by another process");
	blk_close(x);
	CHECK_EQ(blk_parse(p, &o, &e), 0);
	o.ro = true;
	x = blk_open(&o, 0, NULL, &e);
	y = blk_open(&o, 1, NULL, &e);
	CHECK(x && y);
	{
		struct blk *both[1] = { x };
		struct blk *z = blk_open(&o, 1, both, &e);

		CHECK(z == NULL);
		CHECK_STR_HAS(e.msg, "the same image as --disk");
	}
	CHECK_STR_HAS(open_err(p, ""), "in use by another process");
	blk_close(x);
	blk_close(y);
	CHECK(open_err(p, "") == NULL);
	unlink(p);
	rmdir(dir);
}

CHECK_MAIN(T(write_then_read), T(scatter_gather_and_shared_descriptors), T(indirect_request),
	   T(flush_and_get_id), T(default_serial), T(discard), T(write_zeroes),
	   T(discard_not_negotiated), T(malformed_chains), T(corrupt_ring_needs_reset),
	   T(read_only_disk), T(reset_with_request_in_flight), T(reset_gives_up_on_a_stuck_request),
	   T(without_flush_writes_are_synchronous), T(direct_with_unaligned_buffers),
	   T(interrupts_once_per_batch_and_event_idx), T(no_interrupt_flag_without_event_idx),
	   T(many_requests_in_flight), T(counters_say_what_happened), T(merges_adjacent_requests),
	   T(merge_only_what_follows_on), T(merge_byte_limit), T(merge_iovec_limit),
	   T(merge_direct_keeps_descriptors_apart), T(merge_short_transfer),
	   T(merge_error_fails_only_its_request), T(merge_disk_full),
	   T(reset_with_merged_io_in_flight), T(merge_slots_run_out), T(option_parsing),
	   T(open_errors))
