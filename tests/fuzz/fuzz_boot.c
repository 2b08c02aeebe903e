/* libFuzzer target: the kernel image loaders (boot/) through boot_load()
 * and boot_vcpu_regs(), the entry points main.c uses: an ELF vmlinux
 * (PT_LOAD segments, the high-mapped entry, the PVH note in a PT_NOTE
 * segment or an SHT_NOTE section), a bzImage (setup header, relocation,
 * init_size), initrd placement, the command line, the zero page / PVH
 * start info, page tables and MP table, into guest RAM of 1 MiB to 16 MiB,
 * or of 3 GiB + 4 MiB (RAM above the 32-bit gap, as --mem 3076 has it).
 *
 * Each input is one boot:
 *   byte 0      bits 0-2 guest RAM size (1 MiB, 1 MiB + 1 KiB, 2 MiB,
 *               2 MiB + 0x1234, 4 MiB, 8 MiB, 16 MiB, 3 GiB + 4 MiB);
 *               bits 3-4 --entry (auto, linux64, pvh, an invalid value);
 *               bits 5-6 repair the image's magic first (1 ELF: ident,
 *               type, machine, program header size, count and offset;
 *               2 bzImage: "HdrS", protocol >= 2.12, LOADED_HIGH,
 *               XLF_KERNEL_64, header length), so that mutations get past
 *               the checks that reject random bytes; bit 7 an initrd
 *   byte 1      vCPUs: % 36 (0 and 33-35 are refused)
 *   bytes 2-4   initrd size (24 bits)
 *   bytes 5-6   command line length (its bytes are 'x')
 *   the rest    the kernel image
 * The kernel, initrd and command line are heap buffers of exactly their
 * size and guest RAM ends where its allocation does, so AddressSanitizer
 * reports a read past an image or a write past RAM.  The 3 GiB guest is
 * a MAP_NORESERVE mapping with an inaccessible page after it; the pages an
 * input touched are dropped after it (MADV_DONTNEED); to keep that cheap,
 * its initrd is at most 1 MiB (the size bits above are masked) and ELF
 * images whose segments would touch more than 2 MiB of it are not tried
 * there (the small guests take both).
 *
 * Oracles, besides the sanitizers: a refusal is one line naming the
 * problem; a success puts the kernel at or above 1 MiB inside low RAM with
 * its entry inside it, every PT_LOAD's file bytes at its p_paddr followed
 * by zeros (a bzImage's protected-mode part at 1 MiB), the initrd's bytes
 * page-aligned above the kernel, the command line at LAYOUT_CMDLINE, the
 * entry protocol asked for (auto: the 64-bit one), a zero page (64-bit:
 * command line, initrd and a sorted E820 map inside RAM) or PVH start info
 * (its module list the initrd) at params_addr, an MP table, and vCPU
 * registers that enter there. */
#include <elf.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "boot/boot.h"
#include "boot/bzimage.h"
#include "boot/layout.h"
#include "boot/pvh.h"
#include "boot/zeropage.h"
#include "tests/fuzz/fuzz.h"

#define MIB (1ULL << 20)
#define INITRD_MAX 0xffffffu

#define BIG      7                      /* the ram_sizes[] entry that is mapped */
#define BIG_TOUCH (2 * MIB)             /* most bytes of segments tried there */
#define BIG_INITRD MIB                  /* initrd sizes there: below this */

static const uint64_t ram_sizes[8] = {
	MIB, MIB + 1024, 2 * MIB, 2 * MIB + 0x1234, 4 * MIB, 8 * MIB, 16 * MIB,
	3ULL << 30 | 4 * MIB,
};

static uint8_t *rams[8];
static uint8_t *initrd_buf;   /* INITRD_MAX bytes, a pattern */

static bool all_zero(const uint8_t *p, uint64_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static uint8_t *big_ram(void)
{
	size_t len = ram_sizes[BIG] + 4096;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED || mprotect(p + ram_sizes[BIG], 4096, PROT_NONE) < 0)
		abort();
	return p;
}

/* Give back the pages of host range [off, off + len) of the big guest. */
static void big_drop(uint8_t *ram, uint64_t off, uint64_t len)
{
	uint64_t a = off & ~4095ULL, b = (off + len + 4095) & ~4095ULL;

	if (b > ram_sizes[BIG])
		b = ram_sizes[BIG];
	if (a < b)
		(void)madvise(ram + a, b - a, MADV_DONTNEED);
}

/* The PT_LOAD ranges of an ELF image that could be loaded into low RAM:
 * called with drop = false, whether they add up to at most BIG_TOUCH; with
 * drop, give their pages back.  Reads the image only within len. */
static bool big_segments(uint8_t *ram, const uint8_t *k, size_t len, bool drop)
{
	uint64_t total = 0;
	Elf64_Ehdr h;

	if (len < sizeof(h) || memcmp(k, ELFMAG, SELFMAG))
		return true;
	memcpy(&h, k, sizeof(h));
	if (h.e_phentsize != sizeof(Elf64_Phdr) || h.e_phoff > len ||
	    (uint64_t)h.e_phnum * sizeof(Elf64_Phdr) > len - h.e_phoff)
		return true;   /* refused before anything is loaded */
	for (unsigned i = 0; i < h.e_phnum; i++) {
		Elf64_Phdr p;

		memcpy(&p, k + h.e_phoff + i * sizeof(p), sizeof(p));
		if (p.p_type != PT_LOAD || p.p_paddr >= MEM_LOW_MAX)
			continue;
		if (p.p_memsz > MEM_LOW_MAX - p.p_paddr)
			p.p_memsz = MEM_LOW_MAX - p.p_paddr;
		if (drop)
			big_drop(ram, p.p_paddr, p.p_memsz);
		total += p.p_memsz;
	}
	return total <= BIG_TOUCH;
}

/* One line, something in it. */
static void check_refusal(const struct err *e)
{
	fz_check(e->msg[0] != '\0');
	fz_check(strchr(e->msg, '\n') == NULL);
}

static void fix_elf(uint8_t *k, size_t len)
{
	Elf64_Ehdr h;

	if (len < sizeof(h))
		return;
	memcpy(&h, k, sizeof(h));
	memcpy(h.e_ident, ELFMAG, SELFMAG);
	h.e_ident[EI_CLASS] = ELFCLASS64;
	h.e_ident[EI_DATA] = ELFDATA2LSB;
	h.e_type = ET_EXEC;
	h.e_machine = EM_X86_64;
	h.e_phentsize = sizeof(Elf64_Phdr);
	if (h.e_phnum == 0 || h.e_phnum > 64)
		h.e_phnum = (uint16_t)(1 + h.e_phnum % 64);
	if (h.e_phoff > len || (uint64_t)h.e_phnum * sizeof(Elf64_Phdr) > len - h.e_phoff)
		h.e_phoff = sizeof(h);
	memcpy(k, &h, sizeof(h));
}

static void fix_bzimage(uint8_t *k, size_t len)
{
	struct setup_header h;
	uint32_t magic = BP_HDR_MAGIC;

	if (len < BP_HDR_OFFSET + sizeof(h))
		return;
	memcpy(k + 0x202, &magic, 4);
	memcpy(&h, k + BP_HDR_OFFSET, sizeof(h));
	if (h.version < BZ_MIN_VERSION)
		h.version = 0x020f;
	h.loadflags |= BP_LOADED_HIGH;
	h.xloadflags |= BP_XLF_KERNEL_64;
	memcpy(k + BP_HDR_OFFSET, &h, sizeof(h));
	if (k[0x201] < 0x62)
		k[0x201] = 0x62;   /* the header reaches init_size */
}

/* Every PT_LOAD the image has is in RAM as the file says. */
static void check_elf_segments(const uint8_t *ram, const uint8_t *k, size_t len)
{
	Elf64_Ehdr h;

	memcpy(&h, k, sizeof(h));
	for (unsigned i = 0; i < h.e_phnum; i++) {
		Elf64_Phdr p;

		memcpy(&p, k + h.e_phoff + i * sizeof(p), sizeof(p));
		if (p.p_type != PT_LOAD || (!p.p_memsz && !p.p_filesz))
			continue;
		fz_check(p.p_offset + p.p_filesz <= len);
		fz_check(memcmp(ram + p.p_paddr, k + p.p_offset, p.p_filesz) == 0);
		fz_check(all_zero(ram + p.p_paddr + p.p_filesz, p.p_memsz - p.p_filesz));
	}
}

static void check_e820(const struct e820_entry *map, unsigned n, const struct guest_mem *m)
{
	uint64_t prev_end = 0;

	fz_check(n >= 1 && n <= E820_MAX);
	for (unsigned i = 0; i < n; i++) {
		fz_check(map[i].addr >= prev_end && map[i].size > 0);
		fz_check(map[i].addr + map[i].size <= gm_end(m) ||
			 (map[i].type == E820_RESERVED && map[i].addr + map[i].size <= LAYOUT_HIMEM));
		if (map[i].type == E820_RAM)
			fz_check(gm_ptr(m, map[i].addr, map[i].size));
		prev_end = map[i].addr + map[i].size;
	}
}

static void check_loaded(const struct guest_mem *m, const struct boot_config *c,
			 const struct boot_info *bi, bool elf)
{
	const uint8_t *ram = m->host;
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	fz_check(bi->kernel_start >= LAYOUT_HIMEM && bi->kernel_start < bi->kernel_end);
	fz_check(bi->kernel_end <= m->low_size);
	fz_check(bi->entry_addr >= bi->kernel_start && bi->entry_addr < bi->kernel_end);
	fz_check(bi->kind == (elf ? BOOT_KIND_ELF : BOOT_KIND_BZIMAGE));
	fz_check(bi->entry == (c->entry == BOOT_ENTRY_PVH ? BOOT_ENTRY_PVH : BOOT_ENTRY_LINUX64));
	if (elf) {
		check_elf_segments(ram, c->kernel, c->kernel_len);
	} else {
		unsigned sects = c->kernel[BP_HDR_OFFSET] ? c->kernel[BP_HDR_OFFSET] : 4;
		size_t setup = (sects + 1) * 512;

		fz_check(bi->entry_addr == LAYOUT_KERNEL_LOAD + BZ_ENTRY64_OFFSET);
		fz_check(memcmp(ram + LAYOUT_KERNEL_LOAD, c->kernel + setup,
				c->kernel_len - setup) == 0);
	}

	fz_check(strlen(c->cmdline) < bi->cmdline_max);
	fz_check(strcmp((const char *)ram + LAYOUT_CMDLINE, c->cmdline) == 0);

	if (c->initrd) {
		fz_check(bi->initrd_size == c->initrd_len);
		fz_check(bi->initrd_start % 4096 == 0 && bi->initrd_start >= bi->kernel_end);
		fz_check(bi->initrd_start + bi->initrd_size <= m->low_size);
		fz_check(memcmp(ram + bi->initrd_start, c->initrd, c->initrd_len) == 0);
	} else {
		fz_check(bi->initrd_start == 0 && bi->initrd_size == 0);
	}

	if (bi->entry == BOOT_ENTRY_PVH) {
		struct hvm_start_info si;
		struct hvm_memmap_table_entry mm[E820_MAX];
		struct e820_entry map[E820_MAX];

		fz_check(bi->params_addr == LAYOUT_PVH_INFO);
		memcpy(&si, ram + LAYOUT_PVH_INFO, sizeof(si));
		fz_check(si.magic == PVH_MAGIC && si.cmdline_paddr == LAYOUT_CMDLINE);
		fz_check(si.memmap_paddr == LAYOUT_PVH_MEMMAP);
		fz_check(si.memmap_entries >= 1 && si.memmap_entries <= E820_MAX);
		memcpy(mm, ram + si.memmap_paddr, si.memmap_entries * sizeof(mm[0]));
		for (unsigned i = 0; i < si.memmap_entries; i++)
			map[i] = (struct e820_entry){ mm[i].addr, mm[i].size, mm[i].type };
		check_e820(map, si.memmap_entries, m);
		fz_check(si.nr_modules == (c->initrd ? 1u : 0u));
		if (c->initrd) {
			fz_check(si.modlist_paddr == LAYOUT_PVH_MODLIST);
			struct hvm_modlist_entry mod;

			memcpy(&mod, ram + si.modlist_paddr, sizeof(mod));
			fz_check(mod.paddr == bi->initrd_start && mod.size == bi->initrd_size);
		}
	} else {
		struct boot_params bp;

		fz_check(bi->params_addr == LAYOUT_ZERO_PAGE);
		memcpy(&bp, ram + LAYOUT_ZERO_PAGE, sizeof(bp));
		fz_check(bp.hdr.cmd_line_ptr == LAYOUT_CMDLINE && bp.ext_cmd_line_ptr == 0);
		fz_check(bp.hdr.header == BP_HDR_MAGIC && bp.hdr.type_of_loader != 0);
		fz_check(bp.hdr.ramdisk_image == bi->initrd_start && bp.ext_ramdisk_image == 0);
		fz_check(bp.hdr.ramdisk_size == bi->initrd_size);
		check_e820(bp.e820_table, bp.e820_entries, m);
	}
	fz_check(memcmp(ram + LAYOUT_MPTABLE, "_MP_", 4) == 0);

	memset(&sregs, 0, sizeof(sregs));
	boot_vcpu_regs(bi, &regs, &sregs);
	fz_check(regs.rip == bi->entry_addr);
	fz_check((bi->entry == BOOT_ENTRY_PVH ? regs.rbx : regs.rsi) == bi->params_addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum boot_entry entries[4] = {
		BOOT_ENTRY_AUTO, BOOT_ENTRY_LINUX64, BOOT_ENTRY_PVH, (enum boot_entry)7,
	};
	struct fz f = fz_make(data, size);
	uint8_t flags = fz_u8(&f), cpus = fz_u8(&f);
	uint32_t initrd_len = fz_u16(&f);
	size_t cmdlen, klen;
	const uint8_t *kin;
	uint8_t *kernel;
	char *cmdline;
	unsigned ram_i = flags & 7, fix = (flags >> 5) & 3;
	struct guest_mem m;
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };
	bool elf;

	initrd_len |= (uint32_t)fz_u8(&f) << 16;
	cmdlen = fz_u16(&f);
	klen = fz_left(&f);
	kin = fz_take(&f, &klen);

	if (!rams[ram_i])
		rams[ram_i] = ram_i == BIG ? big_ram() : fz_ram(&m, ram_sizes[ram_i]);
	gm_init(&m, rams[ram_i], ram_sizes[ram_i]);
	if (!initrd_buf) {
		initrd_buf = malloc(INITRD_MAX);
		if (!initrd_buf)
			abort();
		for (uint32_t i = 0; i < INITRD_MAX; i++)
			initrd_buf[i] = (uint8_t)(i * 131 + (i >> 12));
	}
	kernel = malloc(klen ? klen : 1);
	cmdline = malloc(cmdlen + 1);
	if (!kernel || !cmdline)
		abort();
	memcpy(kernel, kin, klen);
	if (fix == 1)
		fix_elf(kernel, klen);
	else if (fix == 2)
		fix_bzimage(kernel, klen);
	memset(cmdline, 'x', cmdlen);
	cmdline[cmdlen] = '\0';

	c = (struct boot_config){
		.kernel = kernel, .kernel_len = klen,
		.cmdline = cmdline, .ncpus = cpus % 36, .entry = entries[(flags >> 3) & 3],
	};
	if (ram_i == BIG)
		initrd_len &= BIG_INITRD - 1;
	if (flags & 0x80) {
		/* The initrd ends where its allocation does. */
		c.initrd = initrd_buf + INITRD_MAX - initrd_len;
		c.initrd_len = initrd_len;
	}
	elf = klen >= SELFMAG && memcmp(kernel, ELFMAG, SELFMAG) == 0;
	if (ram_i == BIG && !big_segments(m.host, kernel, klen, false))
		goto out;
	if (boot_load(&m, &c, &bi, &e) == 0) {
		check_loaded(&m, &c, &bi, elf);
		if (ram_i == BIG) {
			big_drop(m.host, bi.initrd_start, bi.initrd_size);
			big_drop(m.host, LAYOUT_KERNEL_LOAD, bi.kernel_end - LAYOUT_KERNEL_LOAD);
		}
	} else {
		check_refusal(&e);
	}
	if (ram_i == BIG)
		big_segments(m.host, kernel, klen, true);
#ifdef FUZZ_SEEDS
	fprintf(stderr, "  boot: %s\n", e.msg[0] ? e.msg : "loaded");
#endif
out:
	free(kernel);
	free(cmdline);
	return 0;
}

#ifdef FUZZ_SEEDS
#define KPHYS 0x100000ULL
#define KVIRT 0xffffffff81000000ULL

static void config(struct fz_buf *b, unsigned ram, unsigned entry, unsigned fix, uint32_t initrd,
		   uint16_t cmdlen, uint8_t cpus)
{
	fz_put8(b, (uint8_t)(ram | entry << 3 | fix << 5 | (initrd ? 0x80 : 0)));
	fz_put8(b, cpus);
	fz_put16(b, (uint16_t)initrd);
	fz_put8(b, (uint8_t)(initrd >> 16));
	fz_put16(b, cmdlen);
}

/* A small vmlinux: text (high-mapped, with bss), data, and the Xen PVH
 * entry note after a GNU one, in a PT_NOTE segment or (note_section) an
 * SHT_NOTE section only; descsz 8 as Linux emits it, or 4. */
static void elf_image(struct fz_buf *b, bool high_entry, bool note_section, unsigned descsz)
{
	uint8_t img[1024] = { 0 };
	Elf64_Ehdr *h = (Elf64_Ehdr *)img;
	Elf64_Phdr ph[3];
	Elf64_Shdr sh[2];
	const unsigned text = 0x200, data = 0x240, note = 0x260, shoff = 0x2a0;
	Elf64_Nhdr gnu = { 4, 4, 3 }, xen = { 4, descsz, 18 };
	uint64_t pvh = KPHYS + 0x20;
	unsigned nph = note_section ? 2 : 3;

	memcpy(h->e_ident, ELFMAG, SELFMAG);
	h->e_ident[EI_CLASS] = ELFCLASS64;
	h->e_ident[EI_DATA] = ELFDATA2LSB;
	h->e_ident[EI_VERSION] = EV_CURRENT;
	h->e_type = ET_EXEC;
	h->e_machine = EM_X86_64;
	h->e_version = EV_CURRENT;
	h->e_entry = high_entry ? KVIRT + 0x10 : KPHYS + 0x10;
	h->e_phoff = sizeof(*h);
	h->e_ehsize = sizeof(*h);
	h->e_phentsize = sizeof(Elf64_Phdr);
	h->e_phnum = (uint16_t)nph;
	ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = text,
			      .p_vaddr = KVIRT, .p_paddr = KPHYS, .p_filesz = 0x40,
			      .p_memsz = 0x3000, .p_align = 0x1000 };
	ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = data,
			      .p_vaddr = KVIRT + 0x200000, .p_paddr = KPHYS + 0x200000,
			      .p_filesz = 0x20, .p_memsz = 0x20, .p_align = 0x1000 };
	ph[2] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = note, .p_filesz = 36 + descsz };
	memcpy(img + sizeof(*h), ph, nph * sizeof(ph[0]));
	for (unsigned i = 0; i < 0x40; i++)
		img[text + i] = (uint8_t)(0x90 + i);
	memset(img + data, 0xda, 0x20);
	memcpy(img + note, &gnu, sizeof(gnu));
	memcpy(img + note + 12, "GNU", 4);
	memcpy(img + note + 16, "\1\2\3\4", 4);
	memcpy(img + note + 20, &xen, sizeof(xen));
	memcpy(img + note + 32, "Xen", 4);
	memcpy(img + note + 36, &pvh, descsz);
	if (note_section) {
		memset(sh, 0, sizeof(sh));
		sh[1] = (Elf64_Shdr){ .sh_type = SHT_NOTE, .sh_offset = note, .sh_size = 36 + descsz,
				      .sh_addralign = 4 };
		h->e_shoff = shoff;
		h->e_shentsize = sizeof(Elf64_Shdr);
		h->e_shnum = 2;
		memcpy(img + shoff, sh, sizeof(sh));
		fz_put(b, img, shoff + sizeof(sh));
	} else {
		fz_put(b, img, note + 36 + descsz);
	}
}

/* A small bzImage: 4 setup sectors (setup_sects 0 means 4), the header at
 * 0x1f1, then a protected-mode part of pm_len bytes. */
static void bz_image(struct fz_buf *b, bool relocatable, uint64_t pref, uint32_t init_size,
		     uint32_t initrd_max, uint32_t cmdline_size, size_t pm_len)
{
	static uint8_t img[5 * 512 + 0x400];
	struct setup_header h = { 0 };

	memset(img, 0, sizeof(img));
	h.setup_sects = 0;
	h.boot_flag = BP_BOOT_FLAG;
	h.jump = 0x66eb;           /* jmp to 0x268: the header's length */
	h.header = BP_HDR_MAGIC;
	h.version = 0x020f;
	h.loadflags = BP_LOADED_HIGH;
	h.initrd_addr_max = initrd_max;
	h.kernel_alignment = 0x200000;
	h.relocatable_kernel = relocatable;
	h.xloadflags = BP_XLF_KERNEL_64 | 2;
	h.cmdline_size = cmdline_size;
	h.pref_address = pref;
	h.init_size = init_size;
	memcpy(img + BP_HDR_OFFSET, &h, sizeof(h));
	for (size_t i = 0; i < pm_len; i++)
		img[5 * 512 + i] = (uint8_t)(i * 7);
	fz_put(b, img, 5 * 512 + pm_len);
}

void fuzz_seeds(fz_emit_fn *emit)
{
	static struct fz_buf b;

	/* 64-bit entry through the high mapping; initrd, 4 vCPUs, 4 MiB. */
	b.n = 0;
	config(&b, 4, 0, 0, 0x10000, 60, 4);
	elf_image(&b, true, false, 8);
	emit("elf-linux64", &b);

	/* The same kernel through its PVH note. */
	b.n = 0;
	config(&b, 4, 2, 0, 0x1000, 60, 1);
	elf_image(&b, true, false, 8);
	emit("elf-pvh", &b);

	/* PVH note only in a section, 4-byte value; physical entry. */
	b.n = 0;
	config(&b, 5, 2, 0, 0, 10, 2);
	elf_image(&b, false, true, 4);
	emit("elf-pvh-section", &b);

	/* The same, its magic to be repaired by the harness (a fuzzer's
	 * mutation of it will keep the flag). */
	b.n = 0;
	config(&b, 4, 1, 1, 0x2345, 2047, 32);
	elf_image(&b, false, true, 8);
	b.b[7] = 0;             /* break the magic (the image follows 7 bytes) */
	emit("elf-fixup", &b);

	/* Relocatable bzImage running at 2 MiB, initrd above init_size. */
	b.n = 0;
	config(&b, 5, 0, 0, 0x3000, 200, 1);
	bz_image(&b, true, 0x100000, 0x300000, 0x7fffffff, 2047, 0x300);
	emit("bz-reloc", &b);

	/* Non-relocatable at pref_address 4 MiB, initrd capped by
	 * initrd_addr_max, a long command line. */
	b.n = 0;
	config(&b, 6, 1, 0, 0x1000, 4000, 8);
	bz_image(&b, false, 0x400000, 0x100000, 0x7fffff, 0xffff, 0x201);
	emit("bz-fixed", &b);

	/* A bzImage to be repaired, and one refused for PVH. */
	b.n = 0;
	config(&b, 5, 0, 2, 0, 0, 1);
	bz_image(&b, true, 0x100000, 0x100000, 0, 255, 0x240);
	memset(b.b + 7 + 0x202, 0, 4);
	emit("bz-fixup", &b);
	b.n = 0;
	config(&b, 2, 2, 0, 0, 0, 1);
	bz_image(&b, true, 0x100000, 0x80000, 0, 255, 0x240);
	emit("bz-pvh", &b);

	/* RAM above 4 GiB: E820 and the PVH map gain an entry, the initrd goes
	 * below initrd_addr_max (2 GiB for an ELF, 0x37ffffff for a bzImage
	 * that leaves the field 0) instead of the end of low RAM. */
	b.n = 0;
	config(&b, 7, 0, 0, 0x80000, 60, 2);
	elf_image(&b, true, false, 8);
	emit("elf-highmem", &b);
	b.n = 0;
	config(&b, 7, 2, 0, 0x1000, 60, 2);
	elf_image(&b, false, false, 4);
	emit("elf-pvh-highmem", &b);
	b.n = 0;
	config(&b, 7, 0, 0, 0x10000, 100, 4);
	bz_image(&b, true, 0x100000, 0x400000, 0, 2047, 0x300);
	emit("bz-highmem", &b);

	/* Refusals: initrd larger than RAM, RAM of 1 MiB, not a kernel. */
	b.n = 0;
	config(&b, 4, 0, 0, 0x500000, 0, 1);
	elf_image(&b, true, false, 8);
	emit("initrd-too-big", &b);
	b.n = 0;
	config(&b, 0, 0, 0, 0, 0, 1);
	elf_image(&b, true, false, 8);
	emit("ram-1mib", &b);
	b.n = 0;
	config(&b, 2, 0, 0, 0, 0, 1);
	fz_put(&b, "#!/bin/sh\necho not a kernel\n", 28);
	emit("text", &b);
}
#endif
