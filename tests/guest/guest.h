/* The test guest's CPL3 runtime: everything a test or driver needs.
 *
 * Memory is identity-mapped (virtual == physical), so a pointer is also the
 * guest-physical address a device sees (virt_to_phys() says so explicitly).
 * All code here runs at CPL3 with IOPL=3: port I/O is direct, MMIO is a
 * plain volatile access (the MMIO window is mapped user-accessible).
 */
#ifndef TG_GUEST_H
#define TG_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))

/* ---- CPU ------------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t mmio_read32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline uint16_t mmio_read16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline uint8_t mmio_read8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline void mmio_write32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_write16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* Memory barriers for sharing memory with devices (virtio §2.7.13).  On x86
 * (TSO, write-back RAM) loads are not reordered with loads nor stores with
 * stores, and MMIO (uncached) accesses are ordered with both; so the read
 * and write barriers only need to stop the compiler.  A store followed by a
 * load of another location can be reordered by the CPU, so the full barrier
 * is a locked instruction. */
#define barrier() __asm__ volatile("" ::: "memory")
static inline void rmb(void) { barrier(); }
static inline void wmb(void) { barrier(); }
static inline void mb(void) { __asm__ volatile("lock orq $0, (%%rsp)" ::: "memory", "cc"); }

static inline uint64_t virt_to_phys(const volatile void *p) { return (uint64_t)(uintptr_t)p; }

/* ---- CPL0 services (ud2 gate, see layout.h) and interrupts ----------- */

extern volatile uint64_t irq_count[256]; /* per vector, bumped at CPL0 */
extern volatile uint64_t irq_total;      /* sum of irq_count */

void cpu_sti(void);
void cpu_cli(void);
/* End the VM (SVC_RESET: the i8042 reset, then a triple fault): vm_reset
 * first waits for the UART to send what it holds; vm_reset_now touches no
 * device, for before console_init(). */
NORETURN void vm_reset(void);
NORETURN void vm_reset_now(void);

/* Route IOAPIC pin gsi (edge, active high, fixed, to APIC 0) to vector
 * VEC_GSI_BASE + gsi, or mask it. */
void ioapic_route(unsigned gsi, bool enable);
static inline unsigned gsi_vector(unsigned gsi) { return VEC_GSI_BASE + gsi; }
unsigned ioapic_pins(void);

/* Sleep until an interrupt arrives after the caller saw irq_total == seen
 * (returns at once if one already has), or until deadline (TSC).  Returns
 * false if the deadline had passed on entry.  Callers loop: take seen =
 * irq_total, check their condition, then irq_sleep(seen, deadline). */
bool irq_sleep(uint64_t seen, uint64_t deadline);

/* ---- time ------------------------------------------------------------ */

extern uint64_t tsc_per_us;                 /* calibrated against the LAPIC timer */
static inline uint64_t now_us(void) { return rdtsc() / tsc_per_us; }
static inline uint64_t deadline_after_us(uint64_t us) { return rdtsc() + us * tsc_per_us; }
static inline bool deadline_passed(uint64_t d) { return rdtsc() >= d; }
void udelay(uint64_t us);

/* ---- memory ---------------------------------------------------------- */

/* Bump allocator over the RAM after the image.  Returns zeroed memory or
 * NULL when out of memory.  heap_mark()/heap_release() bracket each test. */
void *alloc(size_t size, size_t align);
uintptr_t heap_mark(void);
void heap_release(uintptr_t mark);
uint64_t heap_free_bytes(void);

/* ---- strings and output ---------------------------------------------- */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) PRINTF(3, 4);
int printf(const char *fmt, ...) PRINTF(1, 2);
void puts_raw(const char *s);  /* no newline added */
/* Parse an unsigned number (base 0: 0x.. hex, else decimal); *end past it. */
uint64_t parse_u64(const char *s, const char **end);

/* ---- serial console (serial.c) ---------------------------------------- */

#define COM1 0x3f8
void console_init(void);
void console_putc(char c);
void console_flush(void);   /* wait until the transmitter is empty */

/* ---- boot information (main.c) ---------------------------------------- */

struct mem_range { uint64_t start, end; }; /* RAM, [start, end) */
struct boot_info {
	int protocol;                  /* BOOT_LINUX64 or BOOT_PVH */
	char cmdline[2048];
	struct mem_range ram[32];
	int nram;
	uint64_t ram_total;
	const char *blk_id;            /* testguest.blk_id=, or NULL */
	const char *bench;             /* ember.bench=, or NULL: run it instead of the tests */
	bool times;                    /* testguest.times=1: print TIME lines */
};
extern struct boot_info boot;

/* Look up a word "key=value" on the command line: value or NULL. */
const char *cmdline_value(const char *key, char *buf, size_t bufsz);

/* ---- tests ------------------------------------------------------------ */

enum test_result { TEST_PASS, TEST_FAIL, TEST_SKIP };

#define TF_INTERACTIVE 1u  /* needs the runner to send input: not in "all" */
#define TF_HOSTILE     2u  /* deliberately misbehaving: not in "all" */
#define TF_MANUAL      4u  /* diagnostics (diag_*): not in "all" */

struct testcase {
	const char *name;
	enum test_result (*fn)(void);
	/* NULL, or returns NULL if the test's device exists, else why not
	 * ("no virtio-blk device"): "all" leaves the test out, naming it
	 * explicitly gives SKIP with that reason. */
	const char *(*absent)(void);
	unsigned flags;
};

#define TESTCASE(tname, absent_fn, tflags)                                    \
	static enum test_result test_##tname(void);                           \
	static const struct testcase tc_##tname                                \
		__attribute__((used, section(".testcases"), aligned(8))) = {   \
			#tname, test_##tname, absent_fn, tflags };              \
	static enum test_result test_##tname(void)

/* Record why the running test failed / was skipped and return the result,
 * e.g. return fail("sector %u: got %x", s, v); */
enum test_result fail(const char *fmt, ...) PRINTF(1, 2);
enum test_result skip(const char *fmt, ...) PRINTF(1, 2);
/* Diagnostic line "INFO <test> ..." (not parsed by the runner). */
void info(const char *fmt, ...) PRINTF(1, 2);
extern const char *current_test;

/* Benchmarks (ember.bench=KIND:ARGS): ARGS after "blk:" (bench_blk.c),
 * after "net:" (bench_net.c). */
enum test_result bench_blk(const char *args);
enum test_result bench_net(const char *args);
/* bench.c: measure tsc_per_us again over ~50 ms (the boot's 0.5 ms
 * calibration is skewed by a preemption inside it); with sync, wait (up to
 * 5 s) for a byte on COM1 from the runner, which reads the VMM's CPU time
 * when it sees the line just printed (console_flush() it first). */
void bench_tsc_recalibrate(void);
void bench_host_sync(bool sync);

/* The I/O soak (soak.c): open the device once (before the rounds' heap
 * marks), then one round of verified traffic at a time (see blk.c, net.c). */
enum test_result blk_soak_open(void);
enum test_result blk_soak_round(uint64_t round);
uint64_t blk_soak_bytes(void);
enum test_result net_soak_open(void);
enum test_result net_soak_round(uint64_t round);
uint64_t net_soak_frames(void);

/* Called after every test (even a faulting one): devices quiesced. */
void virtio_reset_all(void);

#endif
