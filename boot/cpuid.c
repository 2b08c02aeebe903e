/* CPUID filter: boot_cpuid() (boot.h).
 *
 * KVM_GET_SUPPORTED_CPUID says what KVM can virtualise on this host; this
 * turns it into what one ember vCPU should report.  The guest topology is
 * ncpus single-threaded cores in one package, one NUMA node, APIC id = vCPU
 * index.  Everything not mentioned below is kept exactly as KVM reports it:
 * KVM only offers what it can back, including the leaf 7 features that need
 * hypervisor support, XSAVE (leaf 0xD) and the KVM paravirtual leaves
 * 0x40000000/0x40000001 (signature "KVMKVMKVM", kvmclock and friends, all
 * handled inside KVM). */
#include <string.h>

#include "boot.h"
#include "cpuid.h"

/* Leaf 1 ECX features ember does not back:
 *  DTES64, DS_CPL, PDCM: debug store and the perf capabilities MSR, part of
 *      the PMU, which ember does not expose (leaf 0xA is zeroed);
 *  MONITOR: MONITOR/MWAIT would let an idle vCPU spin in the guest instead
 *      of exiting on HLT;
 *  VMX, SMX: no nested virtualisation, no TXT;
 *  EST, TM2: host power management, meaningless in a guest. */
#define LEAF1_ECX_CLEAR                                                          \
	(CPUID_1_ECX_DTES64 | CPUID_1_ECX_MONITOR | CPUID_1_ECX_DS_CPL |         \
	 CPUID_1_ECX_VMX | CPUID_1_ECX_SMX | CPUID_1_ECX_EST | CPUID_1_ECX_TM2 | \
	 CPUID_1_ECX_PDCM)
/* Leaf 1 EDX: debug store, thermal monitor/ACPI clock control and pending
 * break: host hardware features with no virtual counterpart (KVM normally
 * hides them already; clearing is a guarantee, not a change). */
#define LEAF1_EDX_CLEAR \
	(CPUID_1_EDX_DS | CPUID_1_EDX_ACPI | CPUID_1_EDX_TM | CPUID_1_EDX_PBE)

/* Bits needed to number n APIC ids: ceil(log2(n)). */
static unsigned id_bits(int n)
{
	unsigned b = 0;

	while ((1 << b) < n)
		b++;
	return b;
}

/* Entries without KVM_CPUID_FLAG_SIGNIFCANT_INDEX carry index 0. */
static const struct kvm_cpuid_entry2 *find_sub(const struct kvm_cpuid2 *c, uint32_t fn,
						 uint32_t sub)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == sub)
			return &c->entries[i];
	return NULL;
}

/* AMD and Hygon describe cores in extended leaves instead of leaf 4/0xB. */
static int is_amd(const struct kvm_cpuid_entry2 *leaf0)
{
	char v[12];

	memcpy(v, &leaf0->ebx, 4);
	memcpy(v + 4, &leaf0->edx, 4);
	memcpy(v + 8, &leaf0->ecx, 4);
	return memcmp(v, "AuthenticAMD", 12) == 0 || memcmp(v, "HygonGenuine", 12) == 0;
}

/* Leaf 0xB/0x1F subleaf: level 0 is SMT (one thread per core, so no APIC id
 * bits and one processor), level 1 is the core level (all ncpus, id_bits
 * wide), every further subleaf invalid, which ends Linux's walk before any
 * die or module level the host may have.  EDX is the x2APIC id in all.
 * Entries cannot be added, so when the table has no subleaf 1 to hold the
 * core level (seen on AMD hosts, which report a zeroed subleaf 0 only) the
 * whole leaf is made invalid instead: with an SMT level alone Linux would
 * take every vCPU for a package of its own, while with no valid level it
 * falls back to leaf 1/4 (Intel) or 0x80000008 (AMD), which agree. */
static void topology(struct kvm_cpuid_entry2 *t, int index, int ncpus, int has_core)
{
	uint32_t sub = t->index;

	t->edx = (uint32_t)index;
	if (!has_core) {
		t->eax = 0;
		t->ebx = 0;
		t->ecx = (CPUID_LEVEL_INVALID << 8) | (sub & 0xff);
	} else if (sub == 0) {
		t->eax = 0;
		t->ebx = 1;
		t->ecx = (CPUID_LEVEL_SMT << 8) | sub;
	} else if (sub == 1) {
		t->eax = id_bits(ncpus);
		t->ebx = (uint32_t)ncpus;
		t->ecx = (CPUID_LEVEL_CORE << 8) | sub;
	} else {
		t->eax = 0;
		t->ebx = 0;
		t->ecx = (CPUID_LEVEL_INVALID << 8) | (sub & 0xff);
	}
}

/* Cache descriptors (Intel leaf 4, AMD leaf 0x8000001D): EAX[25:14] is the
 * number of logical processors sharing the cache minus one.  L1 and L2 are
 * private to a (single-threaded) core; L3 is shared by the package. */
static uint32_t cache_sharing(uint32_t eax, int ncpus)
{
	uint32_t level = (eax >> 5) & 7;
	uint32_t sharing = level >= 3 ? (uint32_t)ncpus - 1 : 0;

	return (eax & ~(0xfffu << 14)) | (sharing << 14);
}

int boot_cpuid(struct kvm_cpuid2 *cpuid, int index, int ncpus, struct err *e)
{
	const struct kvm_cpuid_entry2 *leaf0 = find_sub(cpuid, 0, 0);
	int amd;

	if (ncpus < 1 || ncpus > BOOT_MAX_CPUS)
		return err_set(e, "%d vcpus is outside 1..%d", ncpus, BOOT_MAX_CPUS);
	if (index < 0 || index >= ncpus)
		return err_set(e, "vcpu index %d is outside 0..%d", index, ncpus - 1);
	if (!leaf0)
		return err_set(e, "kvm's cpuid table lacks leaf 0 (vendor)");
	if (!find_sub(cpuid, 1, 0))
		return err_set(e, "kvm's cpuid table lacks leaf 1 (features)");
	amd = is_amd(leaf0);

	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *t = &cpuid->entries[i];

		switch (t->function) {
		case 1:
			/* EBX[31:24] initial APIC id, [23:16] logical processors
			 * per package; brand index and CLFLUSH size kept.  HTT
			 * says that [23:16] is meaningful, i.e. more than one
			 * processor shares the package. */
			t->ebx = (t->ebx & 0xffff) | ((uint32_t)index << 24) |
				 ((uint32_t)ncpus << 16);
			t->ecx = (t->ecx & ~LEAF1_ECX_CLEAR) | CPUID_1_ECX_HYPERVISOR;
			t->edx &= ~LEAF1_EDX_CLEAR;
			if (ncpus > 1)
				t->edx |= CPUID_1_EDX_HTT;
			else
				t->edx &= ~CPUID_1_EDX_HTT;
			break;
		case 4:
			if ((t->eax & 0x1f) == 0)
				break; /* null descriptor: end of the cache list */
			/* EAX[31:26]: cores per package minus one. */
			t->eax = (cache_sharing(t->eax, ncpus) & 0x03ffffff) |
				 ((uint32_t)(ncpus - 1) << 26);
			break;
		case 5: /* MONITOR/MWAIT parameters: MONITOR is hidden */
		case 0xa: /* architectural PMU: none exposed */
			t->eax = t->ebx = t->ecx = t->edx = 0;
			break;
		case 6:
			/* Thermal and power management (turbo, HWP, EPB, ...)
			 * is the host's business.  ARAT stays: KVM's LAPIC
			 * timer keeps running while a vCPU idles, and without
			 * the bit Linux marks it as stopping in deep C-states. */
			t->eax &= CPUID_6_EAX_ARAT;
			t->ebx = t->ecx = t->edx = 0;
			break;
		case 0xb:
		case 0x1f:
			topology(t, index, ncpus, find_sub(cpuid, t->function, 1) != NULL);
			break;
		case 0x80000008:
			/* AMD: ECX[7:0] cores per package minus one,
			 * [15:12] APIC id bits that number the core. */
			if (amd)
				t->ecx = (t->ecx & ~0xf0ffu) | (id_bits(ncpus) << 12) |
					 (uint32_t)(ncpus - 1);
			break;
		case 0x8000001d:
			if (amd && (t->eax & 0x1f))
				t->eax = cache_sharing(t->eax, ncpus);
			break;
		case 0x8000001e:
			/* AMD: extended APIC id; core (compute unit) id with
			 * one thread per core; node 0 of one. */
			if (amd) {
				t->eax = (uint32_t)index;
				t->ebx = (t->ebx & ~0xffffu) | ((uint32_t)index & 0xff);
				t->ecx = 0;
			}
			break;
		default:
			break;
		}
	}
	return 0;
}
