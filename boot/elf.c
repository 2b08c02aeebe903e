/* ELF64 kernel loader: see elf.h.
 *
 * Every header is copied out of the image with memcpy after a bounds check
 * (the image buffer has no alignment guarantee), and every sum of two
 * image-supplied numbers is checked for wrap-around before it is formed. */
#include "elf.h"

#include <elf.h>
#include <string.h>

#include "fmt.h"
#include "layout.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define KERNEL_HIGH_MAP 0xffffffff80000000ULL /* __START_KERNEL_map */

struct seg {
	unsigned idx;       /* program header index, for messages */
	uint64_t paddr;
	uint64_t vaddr;
	uint64_t memsz;
	uint64_t filesz;
	uint64_t offset;
};

int elf_is_elf(const uint8_t *img, size_t len)
{
	return len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0;
}

/* Is [off, off + size) inside an image of len bytes? */
static int in_file(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

static int check_ehdr(const Elf64_Ehdr *h, size_t len, struct err *e)
{
	if (h->e_ident[EI_CLASS] != ELFCLASS64)
		return err_set(e, "ELF class %u is not ELF64 (only 64-bit kernels boot)",
			       h->e_ident[EI_CLASS]);
	if (h->e_ident[EI_DATA] != ELFDATA2LSB)
		return err_set(e, "ELF data encoding %u is not little-endian",
			       h->e_ident[EI_DATA]);
	if (h->e_machine != EM_X86_64)
		return err_set(e, "ELF machine %u is not x86-64 (%u)", h->e_machine, EM_X86_64);
	if (h->e_type != ET_EXEC)
		return err_set(e, "ELF type %u is not an executable (ET_EXEC)", h->e_type);
	if (h->e_phnum == 0)
		return err_set(e, "ELF has no program headers");
	if (h->e_phnum > ELF_MAX_PHDRS)
		return err_set(e, "ELF has %u program headers; ember supports at most %d",
			       h->e_phnum, ELF_MAX_PHDRS);
	if (h->e_phentsize != sizeof(Elf64_Phdr))
		return err_set(e, "ELF program header size %u is not %zu", h->e_phentsize,
			       sizeof(Elf64_Phdr));
	if (!in_file(h->e_phoff, (uint64_t)h->e_phnum * sizeof(Elf64_Phdr), len))
		return err_set(e, "ELF program headers at offset 0x%llx (%u of them) lie beyond "
			       "the end of the file (%zu bytes)",
			       (unsigned long long)h->e_phoff, h->e_phnum, len);
	return 0;
}

static void read_phdr(const uint8_t *img, const Elf64_Ehdr *h, unsigned i, Elf64_Phdr *p)
{
	memcpy(p, img + h->e_phoff + (uint64_t)i * sizeof(*p), sizeof(*p));
}

/* Check one PT_LOAD against the file and guest RAM. */
static int check_seg(const struct guest_mem *m, const struct seg *s, size_t len, struct err *e)
{
	char sz[FMT_SIZE_LEN];
	unsigned long long a = s->paddr, b;

	if (s->filesz > s->memsz)
		return err_set(e, "ELF segment %u has p_filesz 0x%llx > p_memsz 0x%llx", s->idx,
			       (unsigned long long)s->filesz, (unsigned long long)s->memsz);
	if (!in_file(s->offset, s->filesz, len))
		return err_set(e, "ELF segment %u file range [0x%llx, +0x%llx) lies beyond the "
			       "end of the file (%zu bytes)", s->idx,
			       (unsigned long long)s->offset, (unsigned long long)s->filesz, len);
	if (s->memsz > UINT64_MAX - s->paddr)
		return err_set(e, "ELF segment %u [0x%llx, +0x%llx) wraps around the address space",
			       s->idx, a, (unsigned long long)s->memsz);
	b = s->paddr + s->memsz;
	if (s->paddr < LAYOUT_HIMEM)
		return err_set(e, "ELF segment %u [0x%llx, 0x%llx) starts below 1 MiB, where "
			       "ember keeps its boot structures", s->idx, a, b);
	/* Low RAM only: the boot page tables map the first 4 GiB, and the kernel
	 * must be reachable through them. */
	if (b > m->low_size || !gm_ptr(m, s->paddr, s->memsz)) {
		if (m->size == m->low_size)
			return err_set(e, "ELF segment %u [0x%llx, 0x%llx) lies outside guest RAM (%s)",
				       s->idx, a, b, fmt_size(sz, m->size));
		return err_set(e, "ELF segment %u [0x%llx, 0x%llx) lies outside guest RAM below "
			       "0x%llx", s->idx, a, b, (unsigned long long)m->low_size);
	}
	return 0;
}

/* Physical address for the virtual entry point, through the segment that
 * contains it; 0 when none does (0 is never a valid entry: it is below 1 MiB). */
static uint64_t virt_to_phys(const struct seg *segs, unsigned n, uint64_t va)
{
	for (unsigned i = 0; i < n; i++)
		if (va >= segs[i].vaddr && va - segs[i].vaddr < segs[i].memsz)
			return segs[i].paddr + (va - segs[i].vaddr);
	return 0;
}

static int in_some_seg(const struct seg *segs, unsigned n, uint64_t pa)
{
	for (unsigned i = 0; i < n; i++)
		if (pa >= segs[i].paddr && pa - segs[i].paddr < segs[i].memsz)
			return 1;
	return 0;
}

/* Look for the Xen PHYS32_ENTRY note among the notes in img[off, off+size)
 * (already checked to be inside the file).  Notes are 4-byte aligned, as
 * Linux's ELFNOTE() emits them.  Returns 1 and sets *entry when found, 0 when
 * not, -1 with e set when a note is malformed. */
static int find_pvh_note(const uint8_t *img, uint64_t off, uint64_t size, const char *where,
			 unsigned idx, uint64_t *entry, struct err *e)
{
	uint64_t pos = 0;

	while (size - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr n;
		uint64_t name_len, desc_len, at = off + pos;
		const uint8_t *name, *desc;

		memcpy(&n, img + at, sizeof(n));
		name_len = ((uint64_t)n.n_namesz + 3) & ~3ULL;
		desc_len = ((uint64_t)n.n_descsz + 3) & ~3ULL;
		if (name_len + desc_len > size - pos - sizeof(n))
			return err_set(e, "ELF note at file offset 0x%llx runs past the end of %s %u",
				       (unsigned long long)at, where, idx);
		name = img + at + sizeof(n);
		desc = name + name_len;
		if (n.n_type == XEN_ELFNOTE_PHYS32_ENTRY && n.n_namesz == 4 &&
		    memcmp(name, "Xen", 4) == 0) {
			/* Linux emits the address with _ASM_PTR: 8 bytes on
			 * x86-64; other PVH kernels use 4. */
			if (n.n_descsz == 4) {
				uint32_t v;

				memcpy(&v, desc, 4);
				*entry = v;
			} else if (n.n_descsz == 8) {
				memcpy(entry, desc, 8);
				if (*entry > UINT32_MAX)
					return err_set(e, "ELF PVH entry 0x%llx is above 4 GiB",
						       (unsigned long long)*entry);
			} else {
				return err_set(e, "ELF PVH entry note has a %u-byte value (need 4 or 8)",
					       n.n_descsz);
			}
			return 1;
		}
		pos += sizeof(n) + name_len + desc_len;
	}
	return 0;
}

static int find_pvh(const uint8_t *img, size_t len, const Elf64_Ehdr *h, uint64_t *entry,
		    struct err *e)
{
	int r;

	for (unsigned i = 0; i < h->e_phnum; i++) {
		Elf64_Phdr p;

		read_phdr(img, h, i, &p);
		if (p.p_type != PT_NOTE)
			continue;
		if (!in_file(p.p_offset, p.p_filesz, len))
			return err_set(e, "ELF note segment %u [0x%llx, +0x%llx) lies beyond the end "
				       "of the file (%zu bytes)", i, (unsigned long long)p.p_offset,
				       (unsigned long long)p.p_filesz, len);
		r = find_pvh_note(img, p.p_offset, p.p_filesz, "segment", i, entry, e);
		if (r)
			return r;
	}
	/* Section headers are optional (a stripped image has none), so a table
	 * that is absent or lies outside the file just ends the search. */
	if (h->e_shnum == 0 || h->e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_file(h->e_shoff, (uint64_t)h->e_shnum * sizeof(Elf64_Shdr), len))
		return 0;
	for (unsigned i = 0; i < h->e_shnum; i++) {
		Elf64_Shdr s;

		memcpy(&s, img + h->e_shoff + (uint64_t)i * sizeof(s), sizeof(s));
		if (s.sh_type != SHT_NOTE)
			continue;
		if (!in_file(s.sh_offset, s.sh_size, len))
			return err_set(e, "ELF note section %u [0x%llx, +0x%llx) lies beyond the end "
				       "of the file (%zu bytes)", i, (unsigned long long)s.sh_offset,
				       (unsigned long long)s.sh_size, len);
		r = find_pvh_note(img, s.sh_offset, s.sh_size, "section", i, entry, e);
		if (r)
			return r;
	}
	return 0;
}

int elf_load(const struct guest_mem *m, const uint8_t *img, size_t len, int want_pvh,
	     struct elf_kernel *k, struct err *e)
{
	struct seg segs[ELF_MAX_PHDRS];
	unsigned n = 0;
	Elf64_Ehdr h;

	if (!elf_is_elf(img, len))
		return err_set(e, "not an ELF image");
	if (len < sizeof(h))
		return err_set(e, "ELF image is %zu bytes, shorter than an ELF64 header (%zu bytes)",
			       len, sizeof(h));
	memcpy(&h, img, sizeof(h));
	if (check_ehdr(&h, len, e))
		return -1;

	for (unsigned i = 0; i < h.e_phnum; i++) {
		Elf64_Phdr p;
		struct seg *s = &segs[n];

		read_phdr(img, &h, i, &p);
		/* An empty PT_LOAD (some linkers emit them) places nothing. */
		if (p.p_type != PT_LOAD || (p.p_memsz == 0 && p.p_filesz == 0))
			continue;
		*s = (struct seg){ .idx = i, .paddr = p.p_paddr, .vaddr = p.p_vaddr,
				   .memsz = p.p_memsz, .filesz = p.p_filesz,
				   .offset = p.p_offset };
		if (check_seg(m, s, len, e))
			return -1;
		for (unsigned j = 0; j < n; j++) {
			const struct seg *o = &segs[j];

			if (s->paddr < o->paddr + o->memsz && o->paddr < s->paddr + s->memsz)
				return err_set(e, "ELF segments %u [0x%llx, 0x%llx) and %u [0x%llx, "
					       "0x%llx) overlap", o->idx,
					       (unsigned long long)o->paddr,
					       (unsigned long long)(o->paddr + o->memsz), s->idx,
					       (unsigned long long)s->paddr,
					       (unsigned long long)(s->paddr + s->memsz));
		}
		n++;
	}
	if (n == 0)
		return err_set(e, "ELF has no loadable segments");

	k->entry64 = h.e_entry >= KERNEL_HIGH_MAP ? virt_to_phys(segs, n, h.e_entry) : h.e_entry;
	if (!in_some_seg(segs, n, k->entry64))
		return err_set(e, "ELF entry point 0x%llx is not inside any loadable segment",
			       (unsigned long long)h.e_entry);
	k->has_pvh = 0;
	k->pvh_entry = 0;
	if (want_pvh) {
		int r = find_pvh(img, len, &h, &k->pvh_entry, e);

		if (r < 0)
			return -1;
		if (r == 0)
			return err_set(e, "ELF has no XEN_ELFNOTE_PHYS32_ENTRY note, so it cannot "
				       "boot through PVH");
		if (!in_some_seg(segs, n, k->pvh_entry))
			return err_set(e, "ELF PVH entry 0x%llx is not inside any loadable segment",
				       (unsigned long long)k->pvh_entry);
		k->has_pvh = 1;
	}

	k->start = UINT64_MAX;
	k->end = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct seg *s = &segs[i];
		/* check_seg() proved both ranges; gm_ptr cannot fail here. */
		uint8_t *dst = gm_ptr(m, s->paddr, s->memsz);

		memcpy(dst, img + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
		if (s->paddr < k->start)
			k->start = s->paddr;
		if (s->paddr + s->memsz > k->end)
			k->end = s->paddr + s->memsz;
	}
	return 0;
}
