/* Intel MultiProcessor Specification 1.4 table: how Linux, without ACPI,
 * learns the vCPUs, the IOAPIC and how ISA IRQs reach it.  Without one the
 * kernel's MP scan of the BIOS area alone costs ~2 s on ember's slow early
 * CPL0, and it would boot a single CPU. */
#ifndef EMBER_BOOT_MPTABLE_H
#define EMBER_BOOT_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../ioapic.h"
#include "../mem.h"

/* The IOAPIC described is ember's own (ioapic.h): its address, its pin
 * count and the version its register reports, so that the table and the
 * device agree.  The LAPICs are KVM's. */
#define MP_LAPIC_ADDR   0xfee00000u
#define MP_IOAPIC_ADDR  ((uint32_t)IOAPIC_BASE)
#define MP_IOAPIC_VER   0x20 /* ioapic.c's version register */
#define MP_LAPIC_VER    0x14 /* what KVM's in-kernel LAPIC reports */
#define MP_IOAPIC_PINS  IOAPIC_NUM_PINS /* IRQ n is pin n for every pin */

/* Entry type codes (MP spec table 4-3) */
#define MP_PROCESSOR 0
#define MP_BUS       1
#define MP_IOAPIC    2
#define MP_INTSRC    3
#define MP_LINTSRC   4

struct mpf_intel {          /* floating pointer: Linux scans for "_MP_" */
	char signature[4];
	uint32_t physptr;       /* configuration table */
	uint8_t length;         /* in 16-byte units: 1 */
	uint8_t specification;  /* 4: version 1.4 */
	uint8_t checksum;
	uint8_t feature1;       /* 0: a configuration table is present */
	uint8_t feature2;       /* 0: no IMCR, virtual-wire mode */
	uint8_t feature3[3];
} __attribute__((packed));

struct mpc_table {
	char signature[4];      /* "PCMP" */
	uint16_t length;        /* base table, header included */
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;      /* number of entries */
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;        /* 1 enabled, 2 boot processor */
	uint32_t cpufeature;    /* CPUID signature */
	uint32_t featureflag;   /* CPUID.1 EDX */
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;          /* 1: usable */
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {             /* also the layout of a local interrupt entry */
	uint8_t type;
	uint8_t irqtype;        /* 0 INT, 1 NMI, 2 SMI, 3 ExtINT */
	uint16_t irqflag;       /* 0: polarity and trigger conform to the bus */
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;         /* IOAPIC pin, or LINTn */
} __attribute__((packed));

/* Bytes the floating pointer and configuration table take for ncpus. */
size_t mptable_size(int ncpus);

/* Write the MP table for ncpus (1..BOOT_MAX_CPUS) at LAYOUT_MPTABLE: the
 * floating pointer, then the configuration table with one enabled processor
 * per vCPU (APIC id = index, 0 the boot processor), one ISA bus, the IOAPIC
 * (id ncpus), IRQ n -> IOAPIC pin n for n < MP_IOAPIC_PINS, ExtINT to LINT0
 * and NMI to LINT1.  Returns 0, or -1 with e set when ncpus is out of range
 * or guest RAM does not reach the table's end. */
int mptable_write(const struct guest_mem *m, int ncpus, struct err *e);

#endif
