/* diag_* tests: measurements for humans, not checks (never in "all").
 * diag_costs prints what one exit of each kind costs the guest, so slow
 * tests can be explained: a port read, an MMIO read handled by the VMM,
 * an MMIO read of the in-kernel LAPIC, a CPL0 service round trip. */
#include "virtio.h"

static uint64_t per_op_ns(uint64_t t0, unsigned n)
{
	return (rdtsc() - t0) * 1000 / tsc_per_us / n;
}

TESTCASE(diag_costs, NULL, TF_MANUAL)
{
	enum { N = 200 };
	uint64_t t0 = rdtsc();
	for (unsigned i = 0; i < N; i++)
		(void)inb(COM1 + 5);
	uint64_t pio = per_op_ns(t0, N);
	t0 = rdtsc();
	for (unsigned i = 0; i < N; i++)
		(void)mmio_read32(LAPIC_BASE + 0x30);
	uint64_t lapic = per_op_ns(t0, N);
	t0 = rdtsc();
	for (unsigned i = 0; i < N; i++)
		cpu_sti();
	uint64_t svc = per_op_ns(t0, N);
	uint64_t vio = 0;
	struct virtio_dev *d = virtio_ndevs ? &virtio_devs[0] : NULL;
	if (d) {
		t0 = rdtsc();
		for (unsigned i = 0; i < N; i++)
			(void)virtio_read(d, VIRTIO_MMIO_MAGIC_VALUE);
		vio = per_op_ns(t0, N);
	}
	info("ns per: port read %lu, LAPIC read %lu, virtio-mmio read %lu, service call %lu", pio, lapic,
	     vio, svc);
	return TEST_PASS;
}

TESTCASE(diag_virtio, NULL, TF_MANUAL)
{
	struct virtio_dev *d = virtio_ndevs ? &virtio_devs[0] : NULL;
	if (!d)
		return skip("no virtio device");
	uint64_t t[8];
	t[0] = now_us();
	virtio_write(d, VIRTIO_MMIO_STATUS, 0);
	t[1] = now_us();
	(void)virtio_read(d, VIRTIO_MMIO_STATUS);
	t[2] = now_us();
	virtio_write(d, VIRTIO_MMIO_STATUS, 0);
	t[3] = now_us();
	virtio_write(d, VIRTIO_MMIO_STATUS, 1);
	t[4] = now_us();
	virtio_write(d, VIRTIO_MMIO_STATUS, 0);
	t[5] = now_us();
	(void)virtio_read(d, VIRTIO_MMIO_MAGIC_VALUE);
	t[6] = now_us();
	(void)virtio_read(d, VIRTIO_MMIO_MAGIC_VALUE);
	t[7] = now_us();
	info("us: reset %lu, read status %lu, reset %lu, ack %lu, reset %lu, magic %lu, magic %lu",
	     t[1] - t[0], t[2] - t[1], t[3] - t[2], t[4] - t[3], t[5] - t[4], t[6] - t[5], t[7] - t[6]);
	return TEST_PASS;
}

/* Checks the exception path: a page fault at CPL3 must end this test with
 * FAIL naming #PF and the address, and the next test must still run. */
TESTCASE(diag_fault, NULL, TF_MANUAL)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)0x8000000000ull; /* PML4[1]: unmapped */
	info("reading %p", (void *)(uintptr_t)p);
	(void)*p;
	return fail("read of an unmapped address did not fault");
}

/* Prints the memory map and touches the first and last 8 bytes of every
 * RAM range above the image (so RAM above 4 GiB must be mapped). */
TESTCASE(diag_memmap, NULL, TF_MANUAL)
{
	extern char __image_end[];
	for (int i = 0; i < boot.nram; i++) {
		uint64_t s = boot.ram[i].start, e = boot.ram[i].end;
		info("RAM [0x%lx, 0x%lx) %lu KiB", s, e, (e - s) >> 10);
		if (s < (uintptr_t)__image_end)
			continue;
		volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)s, *b = (volatile uint64_t *)(uintptr_t)(e - 8);
		uint64_t va = *a, vb = *b;
		*a = 0x1234567887654321ull;
		*b = ~0x1234567887654321ull;
		bool ok = *a == 0x1234567887654321ull && *b == ~0x1234567887654321ull;
		*a = va;
		*b = vb;
		if (!ok)
			return fail("RAM range [0x%lx, 0x%lx) did not hold a value", s, e);
	}
	return TEST_PASS;
}
