/* What the ember.bench= benchmarks share (bench_blk.c, bench_net.c): the
 * TSC rate measured again for the timed window, and the handshake with
 * the runner on the serial line (":sync"). */
#include "guest.h"

/* LAPIC timer registers (cpu.c programs it one-shot, divide by 1: the
 * count falls at 1 GHz on KVM). */
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TICR      0x380
#define LAPIC_TCCR      0x390
#define LVT_MASKED      (1u << 16)

/* One (TSC, LAPIC count) pair: the count read between two TSC reads, the
 * tightest of 16 tries, stamped with their midpoint. */
static void tsc_lapic_pair(uint64_t *tsc, uint32_t *count)
{
	uint64_t best = ~0ull;
	for (int i = 0; i < 16; i++) {
		uint64_t a = rdtsc();
		uint32_t c = mmio_read32(LAPIC_BASE + LAPIC_TCCR);
		uint64_t b = rdtsc();
		if (b - a < best) {
			best = b - a;
			*tsc = a + (b - a) / 2;
			*count = c;
		}
	}
}

/* A benchmark's window length (and bench_blk's latencies) rest on
 * tsc_per_us, which the boot measured over 0.5 ms: a vCPU preempted inside
 * that (common on a loaded host) skews it by any factor.  Measure again
 * over ~50 ms, each end a bracketed pair, so a preemption costs at most a
 * retry; the result replaces tsc_per_us for the rest of the boot. */
void bench_tsc_recalibrate(void)
{
	uint64_t t0 = 0, t1 = 0;
	uint32_t c0 = 0, c1 = 0;
	mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, VEC_TIMER | LVT_MASKED);
	mmio_write32(LAPIC_BASE + LAPIC_TICR, 0xffffffff);
	tsc_lapic_pair(&t0, &c0);
	udelay(50000);
	tsc_lapic_pair(&t1, &c1);
	mmio_write32(LAPIC_BASE + LAPIC_TICR, 0);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, VEC_TIMER);
	uint64_t r = c0 > c1 ? (t1 - t0) * 1000 / (c0 - c1) : 0;
	if (r)
		tsc_per_us = r;
}

void bench_host_sync(bool sync)
{
	if (!sync)
		return;
	uint64_t dl = deadline_after_us(5000000);
	while (!(inb(COM1 + 5) & 1) && !deadline_passed(dl)) /* LSR.DR */
		udelay(100);
	while (inb(COM1 + 5) & 1)
		(void)inb(COM1);
}
