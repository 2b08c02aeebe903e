/* CPUID bits the filter in cpuid.c (boot_cpuid(), declared in boot.h)
 * changes, named for its tests and readers. */
#ifndef EMBER_BOOT_CPUID_H
#define EMBER_BOOT_CPUID_H

/* Leaf 1 ECX */
#define CPUID_1_ECX_DTES64     (1u << 2)
#define CPUID_1_ECX_MONITOR    (1u << 3)
#define CPUID_1_ECX_DS_CPL     (1u << 4)
#define CPUID_1_ECX_VMX        (1u << 5)
#define CPUID_1_ECX_SMX        (1u << 6)
#define CPUID_1_ECX_EST        (1u << 7)
#define CPUID_1_ECX_TM2        (1u << 8)
#define CPUID_1_ECX_PDCM       (1u << 15)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)

/* Leaf 1 EDX */
#define CPUID_1_EDX_DS   (1u << 21)
#define CPUID_1_EDX_ACPI (1u << 22)
#define CPUID_1_EDX_HTT  (1u << 28)
#define CPUID_1_EDX_TM   (1u << 29)
#define CPUID_1_EDX_PBE  (1u << 31)

/* Leaf 6 EAX */
#define CPUID_6_EAX_ARAT (1u << 2)

/* Leaf 0xB / 0x1F level types (ECX[15:8]) */
#define CPUID_LEVEL_INVALID 0
#define CPUID_LEVEL_SMT     1
#define CPUID_LEVEL_CORE    2

#endif
