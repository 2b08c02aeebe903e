/* Kernel loading and the x86 boot state: the one entry point main/kvm use.
 *
 * boot_load() places a Linux kernel (ELF vmlinux or bzImage), an optional
 * initrd and the command line in guest RAM and writes every structure the
 * chosen entry protocol needs (zero page with E820 for the 64-bit Linux entry;
 * hvm_start_info with a memory map for PVH), plus the GDT, identity page
 * tables and an MP table for ncpus vCPUs.  It only writes guest memory through
 * the checked accessor (mem.h) and validates every field it reads from the
 * images: truncated, overlapping or out-of-RAM images are errors, never
 * crashes.  It is pure (no KVM, no I/O) so unit tests drive it on a buffer.
 *
 * Guest-physical layout it uses is documented in boot/layout.h.
 */
#ifndef EMBER_BOOT_H
#define EMBER_BOOT_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "../err.h"
#include "../mem.h"

#define BOOT_MAX_CPUS 32
#define BOOT_MSRS_MAX 16 /* room for everything boot_msrs() returns */

enum boot_entry {
	BOOT_ENTRY_AUTO,    /* 64-bit Linux entry when the image has one, else PVH;
			     * every image boot_load accepts (ELF64, bzImage
			     * >= 2.12 with XLF_KERNEL_64) has one */
	BOOT_ENTRY_LINUX64, /* Linux x86-64 boot protocol: RSI = zero page */
	BOOT_ENTRY_PVH,     /* XEN_ELFNOTE_PHYS32_ENTRY: EBX = hvm_start_info */
};

enum boot_kind { BOOT_KIND_ELF, BOOT_KIND_BZIMAGE };

struct boot_config {
	const uint8_t *kernel;  /* the whole kernel file, in host memory */
	size_t kernel_len;
	const uint8_t *initrd;  /* NULL when there is none */
	size_t initrd_len;
	const char *cmdline;    /* complete command line, NUL-terminated */
	int ncpus;              /* 1..BOOT_MAX_CPUS */
	enum boot_entry entry;
};

struct boot_info {
	enum boot_kind kind;
	enum boot_entry entry;       /* LINUX64 or PVH: the one used */
	uint64_t entry_addr;         /* guest-physical entry point */
	uint64_t kernel_start;       /* guest-physical range the kernel occupies */
	uint64_t kernel_end;
	uint64_t initrd_start;       /* 0 when no initrd */
	uint64_t initrd_size;
	uint64_t params_addr;        /* zero page (LINUX64) or hvm_start_info (PVH) */
	size_t cmdline_max;          /* longest command line the kernel accepts */
};

/* Load everything described by c into m.  Returns 0, or -1 with e naming
 * what is wrong (e.g. "not a Linux kernel: no ELF header and no bzImage
 * setup header", "command line is 3000 bytes; the kernel accepts at most
 * 2047").  The caller prefixes the path.  Guest RAM is assumed zeroed (a
 * fresh anonymous mapping): only the structures listed above are written.
 * Reads c->kernel and c->initrd only within their lengths, for any bytes. */
int boot_load(const struct guest_mem *m, const struct boot_config *c,
	      struct boot_info *out, struct err *e);

/* Initial registers of the boot vCPU for bi's entry protocol.  sregs must hold
 * what KVM_GET_SREGS returned; segments, CR0/CR3/CR4, EFER and the GDT base are
 * overwritten (long mode with paging for LINUX64; flat 32-bit protected mode,
 * paging off, for PVH).  regs is overwritten entirely.  For vCPU 0 only: the
 * others wait for the kernel's INIT/SIPI in KVM's in-kernel LAPIC.  Apply
 * after KVM_SET_CPUID2: KVM refuses EFER.LME in KVM_SET_SREGS unless the
 * vCPU's CPUID already reports long mode. */
void boot_vcpu_regs(const struct boot_info *bi, struct kvm_regs *regs,
		    struct kvm_sregs *sregs);

/* Filter, in place, what KVM_GET_SUPPORTED_CPUID returned into the table for
 * vCPU 'index' of 'ncpus': hypervisor bit set, APIC IDs and topology leaves
 * for ncpus, features ember cannot back cleared.  Returns 0 or -1 with e set
 * when the table lacks a leaf ember needs (0 or 1) or index/ncpus are out of
 * range.  Filter a fresh copy of the supported table for each vCPU; the APIC
 * ID it writes is 'index', which is what KVM's LAPIC uses when the vCPU was
 * created with KVM_CREATE_VCPU id 'index'.  No entries are added. */
int boot_cpuid(struct kvm_cpuid2 *cpuid, int index, int ncpus, struct err *e);

/* MSR values every vCPU starts with (e.g. IA32_MISC_ENABLE with fast
 * strings).  Fills up to max entries of out; returns the count.  A buffer of
 * BOOT_MSRS_MAX entries always holds them all.  Set after KVM_SET_CPUID2. */
size_t boot_msrs(struct kvm_msr_entry *out, size_t max);

#endif
