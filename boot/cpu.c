/* Boot vCPU state: see cpu.h and boot.h. */
#include "cpu.h"

#include <string.h>

#include "layout.h"

/* Descriptor access/flags words as (flags << 8 | access): G, D/B, L in the
 * high nibble, then P, DPL, S and type. */
#define GDT_CODE64 0xa09b /* G, L, P, S, execute/read accessed */
#define GDT_CODE32 0xc09b /* G, D, P, S, execute/read accessed */
#define GDT_DATA   0xc093 /* G, B, P, S, read/write accessed */
#define GDT_TSS    0x008b /* P, busy 32/64-bit TSS */

_Static_assert(LAYOUT_PD + LAYOUT_PD_COUNT * 0x1000 <= LAYOUT_CMDLINE,
	       "page directories run into the command line");

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

void cpu_gdt(enum boot_entry entry, uint64_t gdt[CPU_GDT_ENTRIES])
{
	memset(gdt, 0, CPU_GDT_ENTRIES * sizeof(gdt[0]));
	gdt[CPU_SEL_CODE / 8] =
		gdt_entry(entry == BOOT_ENTRY_PVH ? GDT_CODE32 : GDT_CODE64, 0, 0xfffff);
	gdt[CPU_SEL_DATA / 8] = gdt_entry(GDT_DATA, 0, 0xfffff);
	gdt[CPU_SEL_TSS / 8] = gdt_entry(GDT_TSS, 0, 0x67);
}

struct kvm_segment cpu_segment(uint64_t desc, uint16_t sel)
{
	uint32_t limit = (uint32_t)((desc & 0xffff) | ((desc >> 32) & 0xf0000));
	struct kvm_segment s = {
		.base = ((desc >> 16) & 0xffffff) | ((desc >> 32) & 0xff000000),
		.selector = sel,
		.type = (desc >> 40) & 0xf,
		.s = (desc >> 44) & 1,
		.dpl = (desc >> 45) & 3,
		.present = (desc >> 47) & 1,
		.avl = (desc >> 52) & 1,
		.l = (desc >> 53) & 1,
		.db = (desc >> 54) & 1,
		.g = (desc >> 55) & 1,
	};

	s.limit = s.g ? (limit << 12) | 0xfff : limit;
	s.unusable = !s.present;
	return s;
}

int cpu_write_tables(const struct guest_mem *m, enum boot_entry entry, struct err *e)
{
	uint64_t gdt[CPU_GDT_ENTRIES], table[512];

	cpu_gdt(entry, gdt);
	if (gm_write(m, LAYOUT_GDT, gdt, sizeof(gdt)))
		return err_set(e, "guest RAM too small for the gdt at 0x%llx", LAYOUT_GDT);
	if (entry == BOOT_ENTRY_PVH)
		return 0; /* PVH starts with paging off */

	memset(table, 0, sizeof(table));
	table[0] = LAYOUT_PDPT | CPU_PTE_P | CPU_PTE_RW;
	if (gm_write(m, LAYOUT_PML4, table, sizeof(table)))
		return err_set(e, "guest RAM too small for the page tables at 0x%llx", LAYOUT_PML4);
	memset(table, 0, sizeof(table));
	for (uint64_t i = 0; i < LAYOUT_PD_COUNT; i++)
		table[i] = (LAYOUT_PD + i * 0x1000) | CPU_PTE_P | CPU_PTE_RW;
	if (gm_write(m, LAYOUT_PDPT, table, sizeof(table)))
		return err_set(e, "guest RAM too small for the page tables at 0x%llx", LAYOUT_PDPT);
	for (uint64_t i = 0; i < LAYOUT_PD_COUNT; i++) {
		for (uint64_t j = 0; j < 512; j++)
			table[j] = ((i * 512 + j) << 21) | CPU_PTE_P | CPU_PTE_RW | CPU_PTE_PS;
		if (gm_write(m, LAYOUT_PD + i * 0x1000, table, sizeof(table)))
			return err_set(e, "guest RAM too small for the page tables at 0x%llx",
				       LAYOUT_PD + i * 0x1000);
	}
	return 0;
}

void boot_vcpu_regs(const struct boot_info *bi, struct kvm_regs *regs,
		    struct kvm_sregs *sregs)
{
	uint64_t gdt[CPU_GDT_ENTRIES];
	struct kvm_segment code, data;

	cpu_gdt(bi->entry, gdt);
	code = cpu_segment(gdt[CPU_SEL_CODE / 8], CPU_SEL_CODE);
	data = cpu_segment(gdt[CPU_SEL_DATA / 8], CPU_SEL_DATA);

	memset(regs, 0, sizeof(*regs));
	regs->rflags = 2; /* bit 1 is reserved and always set; IF clear */
	regs->rip = bi->entry_addr;
	regs->rsp = LAYOUT_BOOT_STACK;
	regs->rbp = LAYOUT_BOOT_STACK;
	if (bi->entry == BOOT_ENTRY_PVH)
		regs->rbx = bi->params_addr; /* hvm_start_info */
	else
		regs->rsi = bi->params_addr; /* boot_params */

	sregs->cs = code;
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
	sregs->tr = cpu_segment(gdt[CPU_SEL_TSS / 8], CPU_SEL_TSS);
	/* The LDT as KVM's reset leaves it (empty, present): valid for VM
	 * entry in every mode and never used, as no selector has TI set. */
	sregs->ldt = (struct kvm_segment){ .limit = 0xffff, .type = 2, .present = 1 };
	sregs->gdt.base = LAYOUT_GDT;
	sregs->gdt.limit = sizeof(gdt) - 1;
	/* No IDT: an exception before the kernel loads its own shuts the VM
	 * down (triple fault) instead of jumping through zeroed memory. */
	sregs->idt.base = 0;
	sregs->idt.limit = 0;
	sregs->cr2 = 0;

	if (bi->entry == BOOT_ENTRY_PVH) {
		/* PVH ABI: 32-bit protected mode, paging off. */
		sregs->cr0 = CPU_CR0_PE | CPU_CR0_ET;
		sregs->cr3 = 0;
		sregs->cr4 = 0;
		sregs->efer = 0;
	} else {
		/* Linux 64-bit boot protocol: long mode with paging on and an
		 * identity map covering kernel, zero page and command line. */
		sregs->cr0 = CPU_CR0_PE | CPU_CR0_MP | CPU_CR0_ET | CPU_CR0_NE | CPU_CR0_WP |
			     CPU_CR0_PG;
		sregs->cr3 = LAYOUT_PML4;
		sregs->cr4 = CPU_CR4_PAE;
		sregs->efer = CPU_EFER_LME | CPU_EFER_LMA;
	}
}

/* The MSRs Firecracker and kvmtool set at boot.  SYSENTER, the SYSCALL
 * family and KERNEL_GS_BASE are zeroed so no stale value from a previous
 * run of the vCPU survives; the TSC starts at 0 on every vCPU (KVM keeps
 * writes made close together synchronised); fast strings are enabled as on
 * any real BIOS; and MTRRs default to write-back, or with no MTRR set up all
 * guest memory would be uncacheable to a kernel that honours them. */
static const struct {
	uint32_t index;
	uint64_t data;
} boot_msr_table[] = {
	{ 0x00000174, 0 },     /* IA32_SYSENTER_CS */
	{ 0x00000175, 0 },     /* IA32_SYSENTER_ESP */
	{ 0x00000176, 0 },     /* IA32_SYSENTER_EIP */
	{ 0xc0000081, 0 },     /* STAR */
	{ 0xc0000082, 0 },     /* LSTAR */
	{ 0xc0000083, 0 },     /* CSTAR */
	{ 0xc0000084, 0 },     /* SFMASK */
	{ 0xc0000102, 0 },     /* KERNEL_GS_BASE */
	{ 0x00000010, 0 },     /* IA32_TSC */
	{ 0x000001a0, 1 },     /* IA32_MISC_ENABLE: FAST_STRING */
	{ 0x000002ff, 0x806 }, /* IA32_MTRR_DEF_TYPE: enabled (bit 11), WB (6) */
};

_Static_assert(sizeof(boot_msr_table) / sizeof(boot_msr_table[0]) <= BOOT_MSRS_MAX,
	       "BOOT_MSRS_MAX too small");

size_t boot_msrs(struct kvm_msr_entry *out, size_t max)
{
	size_t n = sizeof(boot_msr_table) / sizeof(boot_msr_table[0]);

	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++)
		out[i] = (struct kvm_msr_entry){ .index = boot_msr_table[i].index,
						 .data = boot_msr_table[i].data };
	return n;
}
