/* CPL3 side of the platform: IDT gates, LAPIC, IOAPIC, timer-based
 * sleeping, the CPL0 service wrappers, page tables for RAM above
 * 4 GiB, and the heap. */
#include "guest.h"

volatile uint64_t irq_count[256];
volatile uint64_t irq_total;
uint64_t tsc_per_us = 1000; /* until calibrated */

/* ---- CPL0 services: ud2 + nopl SVC_MAGIC(%rax) (see layout.h) ---- */

#define STR_(x) #x
#define STR(x) STR_(x)
static inline void svc(uint64_t nr, uint64_t arg)
{
	__asm__ volatile("ud2\n\t.byte 0x0f, 0x1f, 0x80\n\t.long " STR(SVC_MAGIC)
			 : : "a"(nr), "D"(arg) : "memory");
}

void cpu_sti(void) { svc(SVC_STI, 0); }
void cpu_cli(void) { svc(SVC_CLI, 0); }

void vm_reset_now(void)
{
	for (;;)
		svc(SVC_RESET, 0);
}

void vm_reset(void)
{
	console_flush();
	vm_reset_now();
}

/* ---- IDT: filled from CPL3 (the table is ordinary user-writable memory;
 * entry.S loaded IDTR with it at boot). ---- */

struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, reserved;
};
extern struct idt_gate idt[256];
extern const uint64_t vector_stubs[256];

void idt_init(void);
void idt_init(void)
{
	for (unsigned v = 0; v < 256; v++) {
		uint64_t a = vector_stubs[v];
		idt[v] = (struct idt_gate){
			.off0 = a & 0xffff, .sel = SEL_KCODE, .ist = 0,
			.type = 0x8e, /* present interrupt gate, DPL0 */
			.off1 = (a >> 16) & 0xffff, .off2 = a >> 32,
		};
	}
}

/* ---- LAPIC (xAPIC MMIO) ---- */

#define LAPIC_ID    0x020
#define LAPIC_TPR   0x080
#define LAPIC_EOI   0x0b0
#define LAPIC_SVR   0x0f0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERR   0x370
#define LAPIC_TICR  0x380
#define LAPIC_TCCR  0x390
#define LAPIC_TDCR  0x3e0
#define LVT_MASKED  (1u << 16)

static uint32_t lapic_read(unsigned r) { return mmio_read32(LAPIC_BASE + r); }
static void lapic_write(unsigned r, uint32_t v) { mmio_write32(LAPIC_BASE + r, v); }

/* The LAPIC timer counts at KVM's APIC bus rate: 1 GHz (1 tick = 1 ns). */
void lapic_init(void);
void lapic_init(void)
{
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);   /* software enable */
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);       /* no 8259 ExtINT */
	lapic_write(LAPIC_LVT_ERR, LVT_MASKED);
	lapic_write(LAPIC_TDCR, 0xb);                   /* divide by 1 */
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER);        /* one-shot */
	lapic_write(LAPIC_TICR, 0);
}

/* TSC rate from the LAPIC timer: count 0.5 ms of APIC ticks. */
void tsc_calibrate(void);
void tsc_calibrate(void)
{
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER | LVT_MASKED);
	lapic_write(LAPIC_TICR, 0xffffffff);
	uint32_t c0 = lapic_read(LAPIC_TCCR), c;
	uint64_t t0 = rdtsc();
	do
		c = lapic_read(LAPIC_TCCR);
	while (c0 - c < 500000);
	uint64_t t1 = rdtsc();
	lapic_write(LAPIC_TICR, 0);
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER);
	uint64_t r = (t1 - t0) * 1000 / (c0 - c);
	tsc_per_us = r ? r : 1;
}

uint32_t lapic_id(void);
uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }

bool irq_sleep(uint64_t seen, uint64_t deadline)
{
	uint64_t now = rdtsc();
	if (now >= deadline)
		return false;
	/* Wake at the deadline at the latest (and every 100 ms). */
	uint64_t ns = (deadline - now) * 1000 / tsc_per_us + 1000;
	lapic_write(LAPIC_TICR, (uint32_t)MIN(ns, 100000000ull));
	svc(SVC_HALT, seen);
	return true;
}

void udelay(uint64_t us)
{
	uint64_t d = deadline_after_us(us);
	while (!deadline_passed(d))
		cpu_relax();
}

/* ---- IOAPIC ---- */

static uint32_t ioapic_read(unsigned reg)
{
	mmio_write32(IOAPIC_BASE, reg);
	return mmio_read32(IOAPIC_BASE + 0x10);
}

static void ioapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

static unsigned npins;

unsigned ioapic_pins(void) { return npins; }

void ioapic_init(void);
void ioapic_init(void)
{
	npins = ((ioapic_read(1) >> 16) & 0xff) + 1;
	if (npins > 64)
		npins = 24;
	for (unsigned i = 0; i < npins; i++)
		ioapic_route(i, false);
}

void ioapic_route(unsigned gsi, bool enable)
{
	if (gsi >= npins || VEC_GSI_BASE + gsi >= VEC_TIMER)
		return;
	/* fixed delivery, physical destination APIC 0, active high, edge */
	ioapic_write(0x11 + 2 * gsi, 0);
	ioapic_write(0x10 + 2 * gsi, (VEC_GSI_BASE + gsi) | (enable ? 0 : LVT_MASKED));
}

/* ---- memory: heap after the image; RAM above 4 GiB mapped here ---- */

extern char __image_end[];
extern uint64_t pdpt[512];

static uintptr_t heap_cur, heap_end;

void mm_init(void);
void mm_init(void)
{
	uintptr_t img_end = (uintptr_t)__image_end;
	for (int i = 0; i < boot.nram; i++) {
		if (boot.ram[i].start <= img_end && img_end < boot.ram[i].end) {
			heap_cur = ALIGN_UP(img_end, 4096);
			heap_end = boot.ram[i].end & ~4095ull;
		}
	}
	/* The static tables map [0, 4 GiB); add 2 MiB pages for RAM above it
	 * (page directories from the heap).  Entries were not present before,
	 * so no TLB flush is needed. */
	for (int i = 0; i < boot.nram; i++) {
		uint64_t s = MAX(boot.ram[i].start, 1ull << 32) & ~((1ull << 21) - 1);
		uint64_t e = MIN(boot.ram[i].end, 512ull << 30);
		for (uint64_t a = s; a < e; a += 1ull << 21) {
			uint64_t *pde = (uint64_t *)(uintptr_t)(pdpt[a >> 30] & ~0xfffull);
			if (!(pdpt[a >> 30] & 1)) {
				pde = alloc(4096, 4096);
				if (!pde)
					return;
				pdpt[a >> 30] = virt_to_phys(pde) | 7;
			}
			pde[(a >> 21) & 511] = a | 0x87;
		}
	}
}

void *alloc(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	uintptr_t p = ALIGN_UP(heap_cur, align);
	if (p + size > heap_end || p + size < p)
		return NULL;
	heap_cur = p + size;
	memset((void *)p, 0, size);
	return (void *)p;
}

uintptr_t heap_mark(void) { return heap_cur; }
void heap_release(uintptr_t mark) { heap_cur = mark; }
uint64_t heap_free_bytes(void) { return heap_end - heap_cur; }
