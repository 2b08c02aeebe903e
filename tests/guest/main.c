/* CPL3 main: boot information, command line, test selection and running,
 * the exception recovery path, and the summary + reset. */
#include "virtio.h"

struct boot_info boot;
const char *current_test;

/* Written by entry.S on an exception at CPL3. */
volatile uint64_t fault_info[6]; /* vector, error, rip, cr2, rsp, count */

extern char __bss_start[], __bss_end[];
extern const struct testcase __start_testcases[], __stop_testcases[];

void idt_init(void);
void lapic_init(void);
void ioapic_init(void);
void tsc_calibrate(void);
void mm_init(void);
void serial_recover(void);
uint32_t lapic_id(void);
void cmain(uint64_t protocol, uint64_t params);
NORETURN void fault_resume(void);

/* ---- boot protocols ---- */

static void add_ram(uint64_t start, uint64_t size)
{
	if (size && boot.nram < (int)ARRAY_SIZE(boot.ram)) {
		boot.ram[boot.nram++] = (struct mem_range){ start, start + size };
		boot.ram_total += size;
	}
}

static void copy_cmdline(uint64_t addr)
{
	if (!addr)
		return;
	const char *s = (const char *)(uintptr_t)addr;
	size_t n = 0;
	while (n + 1 < sizeof(boot.cmdline) && s[n]) {
		boot.cmdline[n] = s[n];
		n++;
	}
	boot.cmdline[n] = 0;
}

/* Linux boot protocol: struct boot_params (the zero page). */
static void parse_boot_params(const uint8_t *bp)
{
	uint32_t lo, hi;
	memcpy(&lo, bp + 0x228, 4); /* hdr.cmd_line_ptr */
	memcpy(&hi, bp + 0x0c8, 4); /* ext_cmd_line_ptr */
	copy_cmdline(lo | (uint64_t)hi << 32);
	unsigned n = bp[0x1e8];     /* e820_entries */
	for (unsigned i = 0; i < n && i < 128; i++) {
		const uint8_t *e = bp + 0x2d0 + 20 * i;
		uint64_t a, sz;
		uint32_t type;
		memcpy(&a, e, 8);
		memcpy(&sz, e + 8, 8);
		memcpy(&type, e + 16, 4);
		if (type == 1)
			add_ram(a, sz);
	}
}

/* PVH: struct hvm_start_info. */
static const char *parse_pvh(const uint8_t *si)
{
	uint32_t magic, version, nmap;
	uint64_t cmdline, memmap;
	memcpy(&magic, si, 4);
	memcpy(&version, si + 4, 4);
	memcpy(&cmdline, si + 0x18, 8);
	memcpy(&memmap, si + 0x28, 8);
	memcpy(&nmap, si + 0x30, 4);
	if (magic != 0x336ec578)
		return "hvm_start_info has a bad magic";
	copy_cmdline(cmdline);
	if (version < 1 || !memmap)
		return "hvm_start_info has no memory map";
	for (unsigned i = 0; i < nmap && i < 128; i++) {
		const uint8_t *e = (const uint8_t *)(uintptr_t)memmap + 24 * i;
		uint64_t a, sz;
		uint32_t type;
		memcpy(&a, e, 8);
		memcpy(&sz, e + 8, 8);
		memcpy(&type, e + 16, 4);
		if (type == 1)
			add_ram(a, sz);
	}
	return NULL;
}

/* ---- command line ---- */

/* Next space-separated word of *p into buf; false at the end. */
static bool next_word(const char **p, char *buf, size_t n)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	if (!*s)
		return false;
	size_t k = 0;
	while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
		if (k + 1 < n)
			buf[k++] = *s;
		s++;
	}
	buf[k] = 0;
	*p = s;
	return true;
}

const char *cmdline_value(const char *key, char *buf, size_t bufsz)
{
	const char *p = boot.cmdline, *found = NULL;
	char w[512];
	size_t kl = strlen(key);
	while (next_word(&p, w, sizeof(w)))
		if (!strncmp(w, key, kl) && w[kl] == '=') {
			snprintf(buf, bufsz, "%s", w + kl + 1);
			found = buf; /* the last one wins */
		}
	return found;
}

/* ---- tests ---- */

#define MAX_RUN 128
static const struct testcase *run_list[MAX_RUN];
static const char *unknown[16];
static int nrun, nunknown, run_idx = -1;
static int passed, failed, skipped;
static char why[400];

static void vset(const char *fmt, va_list ap) { vsnprintf(why, sizeof(why), fmt, ap); }

enum test_result fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return TEST_FAIL;
}

enum test_result skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return TEST_SKIP;
}

void info(const char *fmt, ...)
{
	char buf[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("INFO %s %s\n", current_test ? current_test : "-", buf);
}

static void select_test(const struct testcase *t)
{
	for (int i = 0; i < nrun; i++)
		if (run_list[i] == t)
			return;
	if (nrun < MAX_RUN)
		run_list[nrun++] = t;
}

/* NAME, "all" (every test whose device exists, except interactive and
 * hostile ones), or PREFIX* (every test starting with PREFIX). */
static void select_tests(const char *list)
{
	char name[64];
	while (*list) {
		size_t n = 0;
		while (*list && *list != ',') {
			if (n + 1 < sizeof(name))
				name[n++] = *list;
			list++;
		}
		name[n] = 0;
		if (*list == ',')
			list++;
		if (!n)
			continue;
		bool all = !strcmp(name, "all"), prefix = name[n - 1] == '*', any = false;
		if (prefix)
			name[n - 1] = 0;
		for (const struct testcase *t = __start_testcases; t < __stop_testcases; t++) {
			bool match = all ? !(t->flags & (TF_INTERACTIVE | TF_HOSTILE | TF_MANUAL)) && !(t->absent && t->absent())
				: prefix ? !strncmp(t->name, name, n - 1) : !strcmp(t->name, name);
			if (match) {
				select_test(t);
				any = true;
			}
		}
		if (!any && !all && nunknown < (int)ARRAY_SIZE(unknown)) {
			char *copy = alloc(n + 1, 1);
			if (copy) {
				memcpy(copy, name, n + 1);
				unknown[nunknown++] = copy;
			}
		}
	}
}

static void report(const char *name, enum test_result r)
{
	if (r == TEST_PASS) {
		passed++;
		printf("TEST %s PASS\n", name);
	} else if (r == TEST_SKIP) {
		skipped++;
		printf("TEST %s SKIP %s\n", name, why);
	} else {
		failed++;
		printf("TEST %s FAIL %s\n", name, why[0] ? why : "(no reason given)");
	}
}

static uint64_t start_us;

static NORETURN void finish(void)
{
	current_test = NULL;
	if (boot.times)
		printf("TIME total %lu us (since the CPL3 entry)\n", now_us() - start_us);
	printf("TESTGUEST DONE passed=%d failed=%d skipped=%d\n", passed, failed, skipped);
	vm_reset();
}

static uintptr_t test_heap;

static NORETURN void run_from(int i)
{
	for (; i < nrun; i++) {
		const struct testcase *t = run_list[i];
		run_idx = i;
		current_test = t->name;
		why[0] = 0;
		test_heap = heap_mark();
		uint64_t t0 = now_us();
		const char *absent = t->absent ? t->absent() : NULL;
		enum test_result r = absent ? skip("%s", absent) : t->fn();
		virtio_reset_all();
		heap_release(test_heap);
		report(t->name, r);
		if (boot.times)
			printf("TIME %s %lu us\n", t->name, now_us() - t0);
	}
	finish();
}

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?", "#TS", "#NP",
	"#SS", "#GP", "#PF", "?", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

/* entry.S irets here, on a fresh user stack, after an exception at CPL3. */
void fault_resume(void)
{
	uint64_t v = fault_info[0];
	const char *n = v < 32 && exc_names[v] ? exc_names[v] : "?";
	serial_recover();
	snprintf(why, sizeof(why), "exception %lu %s error 0x%lx at rip 0x%lx (cr2 0x%lx, rsp 0x%lx)", v, n,
		 fault_info[1], fault_info[2], fault_info[3], fault_info[4]);
	if (run_idx < 0 || fault_info[5] > 64) {
		printf("TESTGUEST FATAL %s\n", why);
		finish();
	}
	const struct testcase *t = run_list[run_idx];
	virtio_reset_all();
	heap_release(test_heap);
	report(t->name, TEST_FAIL);
	run_from(run_idx + 1);
}

void cmain(uint64_t protocol, uint64_t params)
{
	memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
	console_init();
	boot.protocol = (int)protocol;
	const char *err = NULL;
	if (protocol == BOOT_PVH)
		err = parse_pvh((const uint8_t *)(uintptr_t)params);
	else
		parse_boot_params((const uint8_t *)(uintptr_t)params);
	/* ember.bench=reset: the startup benchmark's guest (bench/startup.sh,
	 * bench/churn.sh) resets here, before it touches a device or the
	 * LAPIC, so exec -> exit times the VMM and KVM, not this guest's own
	 * setup (the console, interrupt controllers, TSC calibration and the
	 * START/DONE lines: ~230 exits, ~10 ms of software KVM). */
	char mode[16];
	const char *m = cmdline_value("ember.bench", mode, sizeof(mode));
	if (!err && m && !strcmp(m, "reset"))
		vm_reset_now();
	idt_init();
	lapic_init();
	ioapic_init();
	cpu_sti();
	tsc_calibrate();
	mm_init();
	start_us = now_us() - 500; /* the calibration took 0.5 ms */
	if (err || !boot.nram || !heap_free_bytes()) {
		printf("TESTGUEST FATAL %s\n", err ? err : "no usable RAM after the image in the memory map");
		finish();
	}

	static char val[2048], w[512];
	const char *tests = cmdline_value("ember.test", val, sizeof(val));
	static char bench[256], blkid[64];
	boot.bench = cmdline_value("ember.bench", bench, sizeof(bench));
	boot.blk_id = cmdline_value("testguest.blk_id", blkid, sizeof(blkid));
	boot.times = cmdline_value("testguest.times", w, sizeof(w)) != NULL;
	const char *p = boot.cmdline;
	while (next_word(&p, w, sizeof(w)))
		if (!strncmp(w, "virtio_mmio.device=", 19) && virtio_add_cmdline(w + 19))
			printf("TESTGUEST WARN ignoring malformed or unmappable %s\n", w);
	for (int i = 0; i < virtio_ndevs; i++) {
		struct virtio_dev *d = &virtio_devs[i];
		if (d->problem)
			printf("TESTGUEST WARN virtio-mmio at 0x%lx: %s\n", (uint64_t)d->base, d->problem);
		else
			virtio_offered(d);
	}
	printf("TESTGUEST START boot=%s ram=%luM virtio=%d apic=%u tsc=%luMHz\n",
	       protocol == BOOT_PVH ? "pvh" : "linux64", boot.ram_total >> 20, virtio_ndevs, lapic_id(),
	       tsc_per_us);
	for (int i = 0; i < virtio_ndevs; i++) {
		struct virtio_dev *d = &virtio_devs[i];
		if (!d->problem)
			printf("TESTGUEST DEV virtio id=%u at 0x%lx irq=%u features=0x%lx\n", d->device_id,
			       (uint64_t)d->base, d->irq, d->offered);
	}
	/* ember.bench=blk:... / net:...: a benchmark (bench_blk.c, bench_net.c)
	 * instead of the tests, reported like a test named bench_blk / bench_net. */
	if (boot.bench && (!strncmp(boot.bench, "blk:", 4) || !strncmp(boot.bench, "net:", 4))) {
		bool blk = boot.bench[0] == 'b';
		current_test = blk ? "bench_blk" : "bench_net";
		enum test_result r = blk ? bench_blk(boot.bench + 4) : bench_net(boot.bench + 4);
		virtio_reset_all();
		report(current_test, r);
		finish();
	}
	select_tests(tests ? tests : "all");
	for (int i = 0; i < nunknown; i++) {
		failed++;
		printf("TEST %s FAIL no such test\n", unknown[i]);
	}
	run_from(0);
}
