/* Guest physical memory and the one checked accessor through which ember
 * touches it.
 *
 * Guest RAM is one anonymous host mapping.  Guest-physical layout:
 *   [0, low)              RAM, low = min(size, MEM_LOW_MAX)
 *   [MEM_LOW_MAX, 4 GiB)  32-bit MMIO gap (virtio-mmio, IOAPIC, LAPIC)
 *   [4 GiB, 4 GiB + high) RAM, high = size - low (only for guests > 3 GiB)
 * Host offset of a GPA: gpa for the low part, gpa - MEM_GAP_SIZE above 4 GiB.
 *
 * Every guest-supplied address and length goes through gm_ptr()/gm_read()/
 * gm_write(): they reject ranges that overflow, that leave RAM, or that
 * straddle the MMIO gap.  No other code computes host pointers from GPAs.
 */
#ifndef EMBER_MEM_H
#define EMBER_MEM_H

#include <stddef.h>
#include <stdint.h>

#define MEM_LOW_MAX   0xC0000000ULL       /* 3 GiB: start of the 32-bit MMIO gap */
#define MEM_4G        0x100000000ULL
#define MEM_GAP_SIZE  (MEM_4G - MEM_LOW_MAX)

struct guest_mem {
	uint8_t *host;     /* start of the host mapping (GPA 0) */
	uint64_t size;     /* total RAM bytes */
	uint64_t low_size; /* RAM bytes below MEM_LOW_MAX */
};

/* Describe RAM of 'size' bytes already mapped at 'host'.  Pure: no mapping. */
void gm_init(struct guest_mem *m, uint8_t *host, uint64_t size);

/* Host pointer for guest range [gpa, gpa+len), or NULL when the range is not
 * entirely inside one RAM region or gpa+len overflows.  len may be 0 (then
 * gpa itself must be inside RAM or exactly at a region's end). */
void *gm_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Copy between guest RAM and host buffers; 0 on success, -1 (nothing
 * copied) when gm_ptr() would fail. */
int gm_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);
int gm_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);

/* Highest guest-physical address + 1 that is backed by RAM. */
uint64_t gm_end(const struct guest_mem *m);

#endif
