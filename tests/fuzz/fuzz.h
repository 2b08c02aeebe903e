/* What every libFuzzer target in tests/fuzz/ shares: reading the input as a
 * stream of fields, guest RAM that AddressSanitizer can police, and the
 * failure of an oracle.  Each target is one translation unit (make fuzz
 * links it with the modules it drives), so everything here is static.
 *
 * Targets are built with -fsanitize=fuzzer,address,undefined: a memory
 * error, undefined behaviour or a leak aborts, libFuzzer's -timeout catches
 * a hang, and fz_check() catches a broken contract of the code under test. */
#ifndef EMBER_TESTS_FUZZ_H
#define EMBER_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, consumed front to back.  Past its end every field reads as 0,
 * so every input is a valid one and a short input is simply a short run. */
struct fz {
	const uint8_t *p;
	size_t n;
};

static inline struct fz fz_make(const uint8_t *data, size_t size)
{
	return (struct fz){ data, size };
}

static inline size_t fz_left(const struct fz *f)
{
	return f->n;
}

static inline uint8_t fz_u8(struct fz *f)
{
	uint8_t v = 0;

	if (f->n) {
		v = *f->p++;
		f->n--;
	}
	return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t lo = fz_u8(f);

	return (uint16_t)(lo | fz_u8(f) << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t lo = fz_u16(f);

	return lo | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
	uint64_t lo = fz_u32(f);

	return lo | (uint64_t)fz_u32(f) << 32;
}

/* Up to *len bytes of the input (fewer at its end: *len says how many). */
static inline const uint8_t *fz_take(struct fz *f, size_t *len)
{
	const uint8_t *p = f->p;

	if (*len > f->n)
		*len = f->n;
	f->p += *len;
	f->n -= *len;
	return p;
}

/* Guest RAM of exactly size bytes on the heap, described in *m: the heap
 * allocation ends where RAM ends, so AddressSanitizer reports any access
 * past the end of guest RAM (gm_ptr()'s checks are what is under test).
 * Contents are not cleared; callers clear what they rely on. */
static inline uint8_t *fz_ram(struct guest_mem *m, size_t size)
{
	uint8_t *ram = malloc(size);

	if (!ram)
		abort();
	gm_init(m, ram, size);
	return ram;
}

/* A contract of the code under test did not hold: say which, then abort,
 * which libFuzzer reports as a crash and saves the input for. */
#define fz_check(cond)                                                            \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "fuzz oracle failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                              \
			abort();                                                  \
		}                                                                 \
	} while (0)

/* Seed inputs.  Each target also defines fuzz_seeds(), compiled only with
 * -DFUZZ_SEEDS into build/fuzz/seeds_<target> (tests/fuzz/seeds.c), which
 * writes them to tests/fuzz/corpus/<target>/ (make fuzz-seeds) after
 * running each once through the target.  Seeds written as code keep in
 * step with the input format documented beside it. */
#ifdef FUZZ_SEEDS
struct fz_buf {
	uint8_t b[1 << 16];
	size_t n;
};

typedef void fz_emit_fn(const char *name, const struct fz_buf *b);
void fuzz_seeds(fz_emit_fn *emit);

static inline void fz_put(struct fz_buf *b, const void *p, size_t len)
{
	if (len > sizeof(b->b) - b->n)
		abort();
	memcpy(b->b + b->n, p, len);
	b->n += len;
}

static inline void fz_put8(struct fz_buf *b, uint8_t v)
{
	fz_put(b, &v, 1);
}

static inline void fz_put16(struct fz_buf *b, uint16_t v)
{
	fz_put(b, &v, 2);
}

static inline void fz_put32(struct fz_buf *b, uint32_t v)
{
	fz_put(b, &v, 4);
}

static inline void fz_put64(struct fz_buf *b, uint64_t v)
{
	fz_put(b, &v, 8);
}
#endif

#endif
