/* Measures what each in-kernel interrupt-controller choice costs to create
 * and tear down a VM with one vCPU and a 128 MiB memslot, so ember's choice
 * (kvm.c) rests on numbers.  Build and run: make -C bench irqchip-cost &&
 * bench/irqchip-cost [runs].  Prints median and p90 in microseconds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum mode { NONE, SPLIT, FULL, FULL_PIT, NMODES };
static const char *names[] = { "no irqchip", "split irqchip", "full irqchip", "full irqchip + PIT" };

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void one(int kvm, enum mode m, double *create, double *teardown)
{
	double t0 = now_us();
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	size_t sz = 128 << 20;
	void *ram = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct kvm_userspace_memory_region r = { .slot = 0, .guest_phys_addr = 0,
		.memory_size = sz, .userspace_addr = (unsigned long)ram };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
	struct kvm_pit_config pit = { 0 };
	int vcpu;

	if (vm < 0 || ram == MAP_FAILED || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r)) {
		perror("vm");
		exit(1);
	}
	if (m == SPLIT && ioctl(vm, KVM_ENABLE_CAP, &cap)) { perror("split"); exit(1); }
	if ((m == FULL || m == FULL_PIT) && ioctl(vm, KVM_CREATE_IRQCHIP, 0)) { perror("irqchip"); exit(1); }
	if (m == FULL_PIT && ioctl(vm, KVM_CREATE_PIT2, &pit)) { perror("pit"); exit(1); }
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) { perror("vcpu"); exit(1); }
	double t1 = now_us();
	close(vcpu);
	close(vm);
	munmap(ram, sz);
	double t2 = now_us();
	*create = t1 - t0;
	*teardown = t2 - t1;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 30;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	double *c = calloc(runs, sizeof(*c)), *t = calloc(runs, sizeof(*t));

	if (kvm < 0 || !c || !t || runs < 1) {
		perror("/dev/kvm");
		return 1;
	}
	printf("%-20s %12s %12s %12s %12s   (us, %d runs)\n", "mode", "create p50",
	       "create p90", "teardown p50", "teardown p90", runs);
	for (int m = 0; m < NMODES; m++) {
		for (int i = 0; i < runs; i++)
			one(kvm, m, &c[i], &t[i]);
		qsort(c, runs, sizeof(*c), cmp);
		qsort(t, runs, sizeof(*t), cmp);
		printf("%-20s %12.0f %12.0f %12.0f %12.0f\n", names[m], c[runs / 2],
		       c[runs * 9 / 10], t[runs / 2], t[runs * 9 / 10]);
	}
	return 0;
}
