/* Initrd placement: see initrd.h. */
#include "initrd.h"

#include "fmt.h"

int initrd_place(const struct guest_mem *m, uint64_t size, uint64_t kernel_end,
		 uint64_t max_addr, uint64_t *start, struct err *e)
{
	char s[FMT_SIZE_LEN], l[FMT_SIZE_LEN];
	uint64_t limit = m->low_size, at;

	/* max_addr + 1 cannot wrap: it is compared before the increment. */
	if (max_addr < limit)
		limit = max_addr + 1;
	if (size > limit)
		return err_set(e, "initrd (%s) does not fit in guest RAM below 0x%llx (%s)",
			       fmt_size(s, size), (unsigned long long)limit, fmt_size(l, limit));
	at = (limit - size) & ~(INITRD_ALIGN - 1);
	if (at < kernel_end)
		return err_set(e, "initrd (%s) does not fit in guest RAM below 0x%llx: it would "
			       "overlap the kernel, which ends at 0x%llx", fmt_size(s, size),
			       (unsigned long long)limit, (unsigned long long)kernel_end);
	*start = at;
	return 0;
}
