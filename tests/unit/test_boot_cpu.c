/* Boot vCPU state: registers for both entry protocols, the GDT and page
 * tables in guest memory, the CPUID filter and the boot MSRs. */
#define CHECK_FILE "boot_cpu"
#include "../check.h"
#include "../../boot/boot.h"
#include "../../boot/cpu.h"
#include "../../boot/cpuid.h"
#include "../../boot/layout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (16ULL << 20)

static uint64_t rd64(const uint8_t *ram, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, ram + gpa, 8);
	return v;
}

/* Translate va through the 4-level tables at cr3 the way the MMU would;
 * returns UINT64_MAX when unmapped.  Only 2 MiB leaf pages are expected. */
static uint64_t walk(const uint8_t *ram, uint64_t ram_size, uint64_t cr3, uint64_t va)
{
	uint64_t pml4e, pdpte, pde;

	pml4e = rd64(ram, cr3 + ((va >> 39) & 511) * 8);
	if (!(pml4e & 1) || (pml4e & ~0xfffULL) >= ram_size)
		return UINT64_MAX;
	pdpte = rd64(ram, (pml4e & ~0xfffULL) + ((va >> 30) & 511) * 8);
	if (!(pdpte & 1) || (pdpte & 0x80) || (pdpte & ~0xfffULL) >= ram_size)
		return UINT64_MAX;
	pde = rd64(ram, (pdpte & ~0xfffULL) + ((va >> 21) & 511) * 8);
	if (!(pde & 1) || !(pde & 0x80) || !(pde & 2))
		return UINT64_MAX;
	return (pde & ~0x1fffffULL & 0x000fffffffffffffULL) | (va & 0x1fffff);
}

TEST(linux64_registers)
{
	struct boot_info bi = { .entry = BOOT_ENTRY_LINUX64, .entry_addr = 0x1000000,
				.params_addr = LAYOUT_ZERO_PAGE };
	struct kvm_regs r;
	struct kvm_sregs s;

	memset(&r, 0x55, sizeof(r));
	memset(&s, 0, sizeof(s));
	s.apic_base = 0xfee00900; /* from KVM_GET_SREGS: must survive */
	boot_vcpu_regs(&bi, &r, &s);
	CHECK_EQ(r.rip, 0x1000000);
	CHECK_EQ(r.rsi, LAYOUT_ZERO_PAGE);
	CHECK_EQ(r.rflags, 2);
	CHECK_EQ(r.rsp, LAYOUT_BOOT_STACK);
	CHECK_EQ(r.rax, 0);
	CHECK_EQ(r.rbx, 0);
	CHECK_EQ(s.cs.selector, 0x10);
	CHECK_EQ(s.cs.l, 1);
	CHECK_EQ(s.cs.db, 0);
	CHECK_EQ(s.cs.present, 1);
	CHECK_EQ(s.cs.s, 1);
	CHECK_EQ(s.cs.type, 0xb);
	CHECK_EQ(s.cs.base, 0);
	CHECK_EQ(s.cs.limit, 0xffffffff);
	CHECK_EQ(s.ds.selector, 0x18);
	CHECK_EQ(s.ss.selector, 0x18);
	CHECK_EQ(s.es.selector, 0x18);
	CHECK_EQ(s.ds.type, 3);
	CHECK_EQ(s.ds.db, 1);
	CHECK_EQ(s.ds.limit, 0xffffffff);
	CHECK_EQ(s.tr.selector, 0x20);
	CHECK_EQ(s.tr.type, 0xb);
	CHECK_EQ(s.tr.s, 0);
	CHECK_EQ(s.tr.present, 1);
	CHECK_EQ(s.ldt.type, 2);
	CHECK_EQ(s.gdt.base, LAYOUT_GDT);
	CHECK_EQ(s.gdt.limit, CPU_GDT_ENTRIES * 8 - 1);
	CHECK_EQ(s.cr0, 0x80010033); /* PG WP NE ET MP PE */
	CHECK_EQ(s.cr4, 0x20);
	CHECK_EQ(s.cr3, LAYOUT_PML4);
	CHECK_EQ(s.efer, 0x500);
	CHECK_EQ(s.apic_base, 0xfee00900);
}

TEST(pvh_registers)
{
	struct boot_info bi = { .entry = BOOT_ENTRY_PVH, .entry_addr = 0x1000040,
				.params_addr = LAYOUT_PVH_INFO };
	struct kvm_regs r;
	struct kvm_sregs s;

	memset(&s, 0x77, sizeof(s));
	boot_vcpu_regs(&bi, &r, &s);
	CHECK_EQ(r.rip, 0x1000040);
	CHECK_EQ(r.rbx, LAYOUT_PVH_INFO);
	CHECK_EQ(r.rsi, 0);
	CHECK_EQ(r.rflags, 2);
	CHECK_EQ(s.cs.selector, 0x10);
	CHECK_EQ(s.cs.l, 0);
	CHECK_EQ(s.cs.db, 1);
	CHECK_EQ(s.cs.type, 0xb);
	CHECK_EQ(s.cs.limit, 0xffffffff);
	CHECK_EQ(s.ds.selector, 0x18);
	CHECK_EQ(s.ss.db, 1);
	CHECK_EQ(s.cr0, 0x11); /* PE | ET, paging off */
	CHECK_EQ(s.cr3, 0);
	CHECK_EQ(s.cr4, 0);
	CHECK_EQ(s.efer, 0);
	CHECK_EQ(s.cr2, 0);
}

TEST(gdt_descriptors)
{
	uint64_t g[CPU_GDT_ENTRIES];

	cpu_gdt(BOOT_ENTRY_LINUX64, g);
	CHECK_EQ(g[0], 0);
	CHECK_EQ(g[1], 0);
	CHECK(g[2] == 0x00af9b000000ffffULL);
	CHECK(g[3] == 0x00cf93000000ffffULL);
	CHECK(g[4] == 0x00008b0000000067ULL);
	CHECK_EQ(g[5], 0);
	cpu_gdt(BOOT_ENTRY_PVH, g);
	CHECK(g[2] == 0x00cf9b000000ffffULL);
}

static void check_tables_in_memory(enum boot_entry entry)
{
	uint8_t *ram = calloc(1, RAM_SIZE);
	struct guest_mem m;
	struct err e = { { 0 } };
	struct boot_info bi = { .entry = entry };
	struct kvm_regs r;
	struct kvm_sregs s;
	uint64_t g[CPU_GDT_ENTRIES];
	struct kvm_segment cs, ds;

	gm_init(&m, ram, RAM_SIZE);
	CHECK_EQ(cpu_write_tables(&m, entry, &e), 0);
	boot_vcpu_regs(&bi, &r, &s);
	/* The registers are what loading the selectors from the GDT in guest
	 * memory would give. */
	memcpy(g, ram + s.gdt.base, sizeof(g));
	cs = cpu_segment(g[s.cs.selector / 8], s.cs.selector);
	ds = cpu_segment(g[s.ds.selector / 8], s.ds.selector);
	CHECK(memcmp(&cs, &s.cs, sizeof(cs)) == 0);
	CHECK(memcmp(&ds, &s.ds, sizeof(ds)) == 0);
	free(ram);
}

TEST(gdt_in_memory_matches_registers)
{
	check_tables_in_memory(BOOT_ENTRY_LINUX64);
	check_tables_in_memory(BOOT_ENTRY_PVH);
}

TEST(page_tables_identity_map_4gib)
{
	uint8_t *ram = calloc(1, RAM_SIZE);
	struct guest_mem m;
	struct err e = { { 0 } };
	static const uint64_t probes[] = { 0, 0x7000, 0x20000, 0x100200, 0x1234567,
					   0x7fffffff, 0xbffff000, 0xfec00000, 0xffffffff };

	gm_init(&m, ram, RAM_SIZE);
	CHECK_EQ(cpu_write_tables(&m, BOOT_ENTRY_LINUX64, &e), 0);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		CHECK(walk(ram, RAM_SIZE, LAYOUT_PML4, probes[i]) == probes[i]);
	CHECK(walk(ram, RAM_SIZE, LAYOUT_PML4, 0x100000000ULL) == UINT64_MAX);
	/* PVH runs with paging off: no tables are written. */
	memset(ram, 0, RAM_SIZE);
	CHECK_EQ(cpu_write_tables(&m, BOOT_ENTRY_PVH, &e), 0);
	CHECK_EQ(rd64(ram, LAYOUT_PML4), 0);
	/* Too little RAM for the tables is an error, not a crash. */
	gm_init(&m, ram, 0xa000);
	CHECK_EQ(cpu_write_tables(&m, BOOT_ENTRY_LINUX64, &e), -1);
	CHECK_STR_HAS(e.msg, "page tables");
	free(ram);
}

/* A KVM_GET_SUPPORTED_CPUID-like table for an Intel host with SMT. */
#define NENT 20
static struct kvm_cpuid2 *intel_table(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + NENT * sizeof(c->entries[0]));
	struct kvm_cpuid_entry2 *t = c->entries;
	int n = 0;

	t[n++] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0x1f, .ebx = 0x756e6547,
					    .edx = 0x49656e69, .ecx = 0x6c65746e };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x806f8,
					    .ebx = 0x07400800 | (0x2au << 24),
					    .ecx = 0x7ffefbff, .edx = 0xbfebfbff };
	/* Leaf 4: L1d, L1i, L2, L3, then the null descriptor. */
	t[n++] = (struct kvm_cpuid_entry2){ .function = 4, .index = 0, .eax = 0xfc004121,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 4, .index = 1, .eax = 0xfc004122,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 4, .index = 2, .eax = 0xfc004143,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 4, .index = 3, .eax = 0xfc1fc163,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 4, .index = 4, .eax = 0,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 5, .eax = 0x40, .ebx = 0x40,
					    .ecx = 3, .edx = 0x11142120 };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 6, .eax = 0x4 | 0x2 | 0x80,
					    .ecx = 0x9 };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 7, .ebx = 0xf3bfb7ef, .ecx = 0x1bc05fce };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 0xa, .eax = 0x08300805, .edx = 0x8603 };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0, .eax = 1, .ebx = 2,
					    .ecx = 0x100, .edx = 0x2a,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 1, .eax = 7, .ebx = 112,
					    .ecx = 0x201, .edx = 0x2a,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 2, .ecx = 2, .edx = 0x2a,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 0x1f, .index = 2, .eax = 9, .ebx = 224,
					    .ecx = 0x502, .edx = 0x2a,
					    .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 0x40000000, .eax = 0x40000001,
					    .ebx = 0x4b4d564b, .ecx = 0x564b4d56, .edx = 0x4d };
	t[n++] = (struct kvm_cpuid_entry2){ .function = 0x80000008, .eax = 0x3030, .ecx = 0 };
	c->nent = (uint32_t)n;
	return c;
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

TEST(cpuid_identity_and_hidden_features)
{
	struct kvm_cpuid2 *c = intel_table();
	struct err e = { { 0 } };
	struct kvm_cpuid_entry2 *l1, *l7, *kvm;

	CHECK_EQ(boot_cpuid(c, 2, 4, &e), 0);
	l1 = leaf(c, 1, 0);
	CHECK(l1->ecx & CPUID_1_ECX_HYPERVISOR);
	CHECK_EQ(l1->ebx >> 24, 2);                /* APIC id = index */
	CHECK_EQ((l1->ebx >> 16) & 0xff, 4);       /* logical processors */
	CHECK_EQ(l1->ebx & 0xffff, 0x0800);        /* CLFLUSH size kept */
	CHECK_EQ(l1->eax, 0x806f8);                /* signature kept */
	CHECK(!(l1->ecx & CPUID_1_ECX_MONITOR));
	CHECK(!(l1->ecx & CPUID_1_ECX_VMX));
	CHECK(!(l1->ecx & CPUID_1_ECX_SMX));
	CHECK(!(l1->ecx & CPUID_1_ECX_EST));
	CHECK(!(l1->ecx & CPUID_1_ECX_TM2));
	CHECK(!(l1->ecx & CPUID_1_ECX_PDCM));
	CHECK(!(l1->ecx & CPUID_1_ECX_DTES64));
	CHECK(l1->ecx & (1u << 0));                /* SSE3 kept */
	CHECK(l1->ecx & (1u << 21));               /* x2APIC kept */
	CHECK(l1->edx & CPUID_1_EDX_HTT);
	CHECK(!(l1->edx & (CPUID_1_EDX_DS | CPUID_1_EDX_ACPI | CPUID_1_EDX_TM |
			   CPUID_1_EDX_PBE)));
	CHECK(l1->edx & 1);                        /* FPU kept */

	CHECK_EQ(leaf(c, 5, 0)->eax | leaf(c, 5, 0)->edx, 0);
	CHECK_EQ(leaf(c, 6, 0)->eax, CPUID_6_EAX_ARAT); /* only ARAT survives */
	CHECK_EQ(leaf(c, 6, 0)->ecx, 0);
	CHECK_EQ(leaf(c, 0xa, 0)->eax, 0);
	CHECK_EQ(leaf(c, 0xa, 0)->edx, 0);
	l7 = leaf(c, 7, 0);
	CHECK(l7->ebx == 0xf3bfb7ef && l7->ecx == 0x1bc05fce); /* as KVM reports */
	kvm = leaf(c, 0x40000000, 0);
	CHECK(kvm->ebx == 0x4b4d564b && kvm->eax == 0x40000001);
	CHECK_EQ(leaf(c, 0x80000008, 0)->ecx, 0); /* AMD-only fields untouched */
	free(c);
}

TEST(cpuid_topology_leaves)
{
	struct kvm_cpuid2 *c = intel_table();
	struct err e = { { 0 } };
	struct kvm_cpuid_entry2 *t;

	CHECK_EQ(boot_cpuid(c, 2, 3, &e), 0);
	/* Leaf 4: L1/L2 private, L3 shared by all; 3 cores per package. */
	CHECK_EQ((leaf(c, 4, 0)->eax >> 14) & 0xfff, 0);
	CHECK_EQ((leaf(c, 4, 2)->eax >> 14) & 0xfff, 0);
	CHECK_EQ((leaf(c, 4, 3)->eax >> 14) & 0xfff, 2);
	CHECK_EQ(leaf(c, 4, 0)->eax >> 26, 2);
	CHECK_EQ(leaf(c, 4, 3)->eax & 0x3fff, 0x0163); /* type, level kept */
	CHECK_EQ(leaf(c, 4, 4)->eax, 0);               /* terminator kept */
	/* Leaf 0xB: SMT level of one thread, core level of 3 (2 id bits). */
	t = leaf(c, 0xb, 0);
	CHECK(t->eax == 0 && t->ebx == 1 && t->ecx == 0x100 && t->edx == 2);
	t = leaf(c, 0xb, 1);
	CHECK(t->eax == 2 && t->ebx == 3 && t->ecx == 0x201 && t->edx == 2);
	t = leaf(c, 0xb, 2);
	CHECK(t->eax == 0 && t->ebx == 0 && t->ecx == 2 && t->edx == 2);
	/* Leaf 0x1F's die level is hidden the same way. */
	t = leaf(c, 0x1f, 2);
	CHECK(t->eax == 0 && t->ebx == 0 && t->ecx == 2 && t->edx == 2);

	/* One vCPU: no HTT, no id bits. */
	free(c);
	c = intel_table();
	CHECK_EQ(boot_cpuid(c, 0, 1, &e), 0);
	CHECK(!(leaf(c, 1, 0)->edx & CPUID_1_EDX_HTT));
	CHECK_EQ(leaf(c, 1, 0)->ebx >> 24, 0);
	CHECK_EQ(leaf(c, 0xb, 1)->eax, 0);
	CHECK_EQ(leaf(c, 0xb, 1)->ebx, 1);
	free(c);
}

TEST(cpuid_amd_core_count)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 5 * sizeof(c->entries[0]));
	struct err e = { { 0 } };

	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .ebx = 0x68747541,
						   .edx = 0x69746e65, .ecx = 0x444d4163 };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = 0x8 };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0x80000008, .ecx = 0x703f };
	c->entries[3] = (struct kvm_cpuid_entry2){ .function = 0x8000001e, .eax = 9,
						   .ebx = 0x0109, .ecx = 0x0103 };
	/* What KVM reports on an AMD host: a zeroed leaf 0xB subleaf 0 and no
	 * subleaf 1 where a core level could go. */
	c->entries[4] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0, .edx = 1,
						   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	c->nent = 5;
	CHECK_EQ(boot_cpuid(c, 5, 6, &e), 0);
	/* An SMT level alone would make each vCPU a package: leaf 0xB stays
	 * invalid (EBX 0) so Linux uses 0x80000008. */
	CHECK_EQ(c->entries[4].ebx, 0);
	CHECK_EQ(c->entries[4].ecx, 0);
	CHECK_EQ(c->entries[4].edx, 5);
	CHECK_EQ(c->entries[2].ecx, 0x3005); /* 3 id bits, 6 cores */
	CHECK_EQ(c->entries[3].eax, 5);
	CHECK_EQ(c->entries[3].ebx, 0x0005);
	CHECK_EQ(c->entries[3].ecx, 0);
	CHECK(!(c->entries[1].ecx & CPUID_1_ECX_MONITOR));
	free(c);
}

TEST(cpuid_errors)
{
	struct kvm_cpuid2 *c = intel_table();
	struct err e = { { 0 } };

	CHECK_EQ(boot_cpuid(c, 4, 4, &e), -1);
	CHECK_STR_HAS(e.msg, "vcpu index 4 is outside 0..3");
	CHECK_EQ(boot_cpuid(c, 0, 33, &e), -1);
	CHECK_STR_HAS(e.msg, "33 vcpus");
	c->entries[1].function = 0x99; /* drop leaf 1 */
	CHECK_EQ(boot_cpuid(c, 0, 1, &e), -1);
	CHECK_STR_HAS(e.msg, "lacks leaf 1");
	c->nent = 0;
	CHECK_EQ(boot_cpuid(c, 0, 1, &e), -1);
	CHECK_STR_HAS(e.msg, "lacks leaf 0");
	free(c);
}

TEST(boot_msrs_values)
{
	struct kvm_msr_entry m[BOOT_MSRS_MAX];
	size_t n = boot_msrs(m, BOOT_MSRS_MAX);
	int misc = 0, mtrr = 0, lstar = 0;

	CHECK(n > 0 && n <= BOOT_MSRS_MAX);
	for (size_t i = 0; i < n; i++) {
		if (m[i].index == 0x1a0)
			misc = m[i].data == 1;
		if (m[i].index == 0x2ff)
			mtrr = m[i].data == 0x806;
		if (m[i].index == 0xc0000082)
			lstar = m[i].data == 0;
	}
	CHECK(misc);
	CHECK(mtrr);
	CHECK(lstar);
	CHECK_EQ(boot_msrs(m, 3), 3);
	CHECK_EQ(boot_msrs(m, 0), 0);
}

CHECK_MAIN(T(linux64_registers), T(pvh_registers), T(gdt_descriptors),
	   T(gdt_in_memory_matches_registers), T(page_tables_identity_map_4gib),
	   T(cpuid_identity_and_hidden_features), T(cpuid_topology_leaves),
	   T(cpuid_amd_core_count), T(cpuid_errors), T(boot_msrs_values))
