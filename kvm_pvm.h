/* Software-KVM (kvm-pvm) compatibility, inert on hardware KVM.
 *
 * kvm-pvm runs guest CPL0 code through KVM's instruction emulator, which
 * cannot complete a few instructions (KVM_EXIT_INTERNAL_ERROR with suberror
 * KVM_INTERNAL_ERROR_EMULATION) and ignores CPUID masking for others.  See
 * ../shared/software-kvm.md for the measurements.  When ember detects it:
 *   - int3 (0xCC): ember completes it: RIP + 1, inject #BP;
 *   - fwait (0x9B): a no-op without x87 exceptions pending: RIP + 1;
 *   - xrstor, clac, popcnt, lock cmpxchg16b cannot be completed by ember, so
 *     the guest is told not to use them: KVM_PVM_CMDLINE is appended to its
 *     command line;
 *   - erms and fsrm are cleared too, for speed rather than correctness: with
 *     them Linux copies and clears memory with rep movsb/stosb, which the
 *     emulator runs one byte per step; without them rep movsq/stosq moves 8
 *     (the demo guest reached /init in 17.1 s instead of 20.4-21.2 s);
 *   - vmcall never returns, so the KVM paravirtual features that the guest
 *     drives with hypercalls are hidden in CPUID (kvm_pvm_cpuid()): PV IPIs,
 *     PV spinlock kicks and PV yield.  An SMP Linux guest otherwise hangs on
 *     its first PV IPI while bringing up its second CPU.
 * Each completion is counted; the counts are printed with --boot-time.
 */
#ifndef EMBER_KVM_PVM_H
#define EMBER_KVM_PVM_H

#include <stdbool.h>

#include "kvm.h"

#define KVM_PVM_CMDLINE "noxsave clearcpuid=smap,popcnt,cx16,erms,fsrm tsc=reliable"

/* True when /dev/kvm is kvm-pvm (/sys/module/kvm_pvm exists). */
bool kvm_pvm_detect(void);

/* Hide the hypercall-driven KVM features (leaf 0x40000001 EAX) in a table
 * about to be given to KVM_SET_CPUID2.  Call only on software KVM. */
void kvm_pvm_cpuid(struct kvm_cpuid2 *cpuid);

/* Try to complete the emulation failure that stopped v.  Returns true when
 * the instruction was completed and the vCPU may run again. */
bool kvm_pvm_complete(struct vcpu *v);

/* Print the completion counters on stderr (nothing when all are 0). */
void kvm_pvm_print_stats(void);

#endif
