/* The Linux x86 zero page (struct boot_params) and the E820 memory map.
 *
 * The structs mirror the kernel's ABI (arch/x86/include/uapi/asm/bootparam.h,
 * Documentation/arch/x86/zero-page.rst and boot.rst) but name only the fields
 * ember writes; the rest is padding at the documented offsets, which static
 * assertions in zeropage.c pin down.
 */
#ifndef EMBER_BOOT_ZEROPAGE_H
#define EMBER_BOOT_ZEROPAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../mem.h"

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      128 /* entries the zero page holds */

/* setup_header.loadflags / xloadflags bits */
#define BP_LOADED_HIGH   0x01
#define BP_CAN_USE_HEAP  0x80
#define BP_XLF_KERNEL_64 0x0001

#define BP_HDR_OFFSET    0x1f1  /* setup header: in the image and the zero page */
#define BP_HDR_MAGIC     0x53726448 /* "HdrS" */
#define BP_BOOT_FLAG     0xaa55
#define BP_LOADER_OTHER  0xff   /* type_of_loader: "undefined" boot loader */

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

struct setup_header {
	uint8_t  setup_sects;          /* 0x1f1 */
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;            /* 0x1fe */
	uint16_t jump;                 /* 0x200 */
	uint32_t header;               /* 0x202 */
	uint16_t version;              /* 0x206 */
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t  type_of_loader;       /* 0x210 */
	uint8_t  loadflags;            /* 0x211 */
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;        /* 0x218 */
	uint32_t ramdisk_size;         /* 0x21c */
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;         /* 0x224 */
	uint8_t  ext_loader_ver;
	uint8_t  ext_loader_type;
	uint32_t cmd_line_ptr;         /* 0x228 */
	uint32_t initrd_addr_max;      /* 0x22c */
	uint32_t kernel_alignment;     /* 0x230 */
	uint8_t  relocatable_kernel;   /* 0x234 */
	uint8_t  min_alignment;
	uint16_t xloadflags;           /* 0x236 */
	uint32_t cmdline_size;         /* 0x238 */
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;         /* 0x258 */
	uint32_t init_size;            /* 0x260 */
	uint32_t handover_offset;
	uint32_t kernel_info_offset;   /* 0x268 */
} __attribute__((packed));

struct boot_params {
	uint8_t  pad0[0xc0];
	uint32_t ext_ramdisk_image;    /* 0x0c0: high 32 bits of ramdisk_image */
	uint32_t ext_ramdisk_size;     /* 0x0c4 */
	uint32_t ext_cmd_line_ptr;     /* 0x0c8 */
	uint8_t  pad1[0x1e8 - 0xcc];
	uint8_t  e820_entries;         /* 0x1e8 */
	uint8_t  pad2[BP_HDR_OFFSET - 0x1e9]; /* includes the sentinel, kept 0 */
	struct setup_header hdr;       /* 0x1f1 */
	uint8_t  pad3[0x290 - BP_HDR_OFFSET - sizeof(struct setup_header)];
	uint8_t  pad4[0x2d0 - 0x290];  /* edd_mbr_sig_buffer */
	struct e820_entry e820_table[E820_MAX]; /* 0x2d0 */
	uint8_t  pad5[0x1000 - 0xcd0];
} __attribute__((packed));

/* Bytes from BP_HDR_OFFSET to 0x290 (the kernel's setup_header plus its
 * _pad7): the most of an image's setup header that is copied into the zero
 * page, so that a newer kernel's longer header arrives whole. */
#define BP_HDR_ROOM (0x290 - BP_HDR_OFFSET)

/* Build the guest memory map for m into out and return the entry count:
 *   RAM      [0, 0x9fc00)
 *   reserved [0x9fc00, 1 MiB)      (EBDA, where the MP table is, and the
 *                                   legacy VGA/BIOS hole)
 *   RAM      [1 MiB, low RAM end)
 *   RAM      [4 GiB, 4 GiB + high) only for guests larger than 3 GiB.
 * Pure arithmetic on m's sizes: never touches guest memory.  A guest of at
 * most 1 MiB gets only the entries that begin below its end, the first one
 * cut at that end. */
size_t e820_build(const struct guest_mem *m, struct e820_entry out[E820_MAX]);

#endif
