/* Checked guest-memory accessor: see mem.h for the layout and contract. */
#include "mem.h"

#include <string.h>

void gm_init(struct guest_mem *m, uint8_t *host, uint64_t size)
{
	m->host = host;
	m->size = size;
	m->low_size = size < MEM_LOW_MAX ? size : MEM_LOW_MAX;
}

void *gm_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t high = m->size - m->low_size;

	/* Each comparison is written so that no addition can wrap. */
	if (gpa <= m->low_size) {
		if (len > m->low_size - gpa)
			return NULL;
		return m->host + gpa;
	}
	if (gpa >= MEM_4G && gpa - MEM_4G <= high) {
		if (len > high - (gpa - MEM_4G))
			return NULL;
		return m->host + m->low_size + (gpa - MEM_4G);
	}
	return NULL;
}

int gm_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gm_ptr(m, gpa, len);

	if (!p)
		return -1;
	memcpy(dst, p, len);
	return 0;
}

int gm_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gm_ptr(m, gpa, len);

	if (!p)
		return -1;
	memcpy(p, src, len);
	return 0;
}

uint64_t gm_end(const struct guest_mem *m)
{
	return m->size > m->low_size ? MEM_4G + (m->size - m->low_size) : m->size;
}
