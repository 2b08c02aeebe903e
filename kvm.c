/* KVM core: see kvm.h for the lifecycle and the irqchip choice. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "boottime.h"
#include "kvm_pvm.h"
#include "seccomp/filter.h"

/* Where KVM puts the TSS and identity-map pages VMX needs for real mode:
 * three pages just below the IOAPIC, inside the 32-bit MMIO gap, never RAM. */
#define KVM_TSS_ADDR      0xfeffd000ULL
#define KVM_IDENTITY_ADDR 0xfeffc000ULL

/* Signal used to kick a vCPU thread out of KVM_RUN (with immediate_exit set
 * so that a kick that lands before KVM_RUN is not lost). */
#define SIG_KICK SIGUSR1

static const struct {
	int cap;
	const char *name;
	const char *why;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest RAM" },
	{ KVM_CAP_SPLIT_IRQCHIP, "KVM_CAP_SPLIT_IRQCHIP", "in-kernel LAPIC" },
	{ KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI", "IOAPIC interrupts" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING", "IOAPIC routes" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", "CPUID" },
	{ KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER", "the guest timer" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "stopping vCPUs" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", "virtqueue notifications" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD", "device interrupts" },
	{ KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS", "exception injection" },
};

int vm_open(struct vm *vm, struct err *e)
{
	int v;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = -1;
	for (int i = 0; i < VM_MAX_CPUS; i++)
		vm->vcpus[i].fd = -1;
	atomic_init(&vm->exit_status, -1);
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		if (errno == ENOENT)
			return err_set(e, "/dev/kvm: no such device (is KVM enabled and the kvm module loaded?)");
		if (errno == EACCES || errno == EPERM)
			return err_set(e, "/dev/kvm: permission denied (run as root or join the group that owns /dev/kvm)");
		return err_errno(e, "/dev/kvm");
	}
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION)
		return err_set(e, "/dev/kvm: KVM API version %d, ember needs %d", v,
			       KVM_API_VERSION);
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++)
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
			return err_set(e, "/dev/kvm: KVM lacks %s (needed for %s)",
				       required_caps[i].name, required_caps[i].why);
	v = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (v < (int)sizeof(struct kvm_run))
		return err_errno(e, "/dev/kvm: KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = (size_t)v;
	vm->software_kvm = kvm_pvm_detect();
	return 0;
}

/* IOAPIC callbacks: deliver an MSI, republish pin routes. */
static void deliver_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct vm *vm = opaque;
	struct kvm_msi msi = { .address_lo = (uint32_t)addr,
			       .address_hi = (uint32_t)(addr >> 32), .data = data };

	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0) {
		static atomic_flag logged = ATOMIC_FLAG_INIT;

		if (!atomic_flag_test_and_set(&logged))
			perror("ember: KVM_SIGNAL_MSI");
	}
}

static int set_routes(struct vm *vm, const struct ioapic_msi *routes)
{
	struct kvm_irq_routing *t;
	int rc;

	t = calloc(1, sizeof(*t) + IOAPIC_NUM_PINS * sizeof(t->entries[0]));
	if (!t) {
		errno = ENOMEM;
		return -1;
	}
	t->nr = IOAPIC_NUM_PINS;
	for (int i = 0; i < IOAPIC_NUM_PINS; i++) {
		t->entries[i].gsi = (uint32_t)i;
		t->entries[i].type = KVM_IRQ_ROUTING_MSI;
		t->entries[i].u.msi.address_lo = (uint32_t)routes[i].addr;
		t->entries[i].u.msi.address_hi = (uint32_t)(routes[i].addr >> 32);
		t->entries[i].u.msi.data = routes[i].data;
	}
	rc = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t);
	free(t);
	return rc;
}

static void routes_changed(void *opaque, const struct ioapic_msi *routes)
{
	struct vm *vm = opaque;

	if (set_routes(vm, routes) < 0) {
		static atomic_flag logged = ATOMIC_FLAG_INIT;

		if (!atomic_flag_test_and_set(&logged))
			perror("ember: KVM_SET_GSI_ROUTING");
	}
}

static const struct ioapic_ops ioapic_ops = { deliver_msi, routes_changed };

void vm_serial_irq(void *opaque, int level)
{
	struct vm *vm = opaque;

	ioapic_set_irq(vm->ioapic, 4, level);
}

static int add_memslot(struct vm *vm, uint32_t slot, uint64_t gpa, uint8_t *host,
		       uint64_t size, struct err *e)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return err_errno(e, "KVM_SET_USER_MEMORY_REGION (slot %u, %" PRIu64 " MiB)",
				 slot, size >> 20);
	return 0;
}

static int setup_vcpu(struct vm *vm, int i, struct err *e)
{
	struct vcpu *v = &vm->vcpus[i];
	struct kvm_cpuid2 *cpuid;
	const int max = 256;
	struct kvm_msrs *msrs;
	int n;

	v->vm = vm;
	v->index = i;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
	if (v->fd < 0)
		return err_errno(e, "KVM_CREATE_VCPU %d", i);
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return err_errno(e, "mmap of vCPU %d's kvm_run", i);
	}

	cpuid = calloc(1, sizeof(*cpuid) + max * sizeof(cpuid->entries[0]));
	if (!cpuid)
		return err_set(e, "out of memory");
	cpuid->nent = max;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		free(cpuid);
		return err_errno(e, "KVM_GET_SUPPORTED_CPUID");
	}
	if (boot_cpuid(cpuid, i, vm->ncpus, e) < 0) {
		free(cpuid);
		return -1;
	}
	if (vm->software_kvm)
		kvm_pvm_cpuid(cpuid);
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0) {
		err_errno(e, "KVM_SET_CPUID2 on vCPU %d", i);
		free(cpuid);
		return -1;
	}
	free(cpuid);

	msrs = calloc(1, sizeof(*msrs) + 32 * sizeof(msrs->entries[0]));
	if (!msrs)
		return err_set(e, "out of memory");
	msrs->nmsrs = (uint32_t)boot_msrs(msrs->entries, 32);
	n = ioctl(v->fd, KVM_SET_MSRS, msrs);
	if (n != (int)msrs->nmsrs) {
		if (n >= 0)
			err_set(e, "KVM_SET_MSRS on vCPU %d: KVM rejected MSR 0x%x", i,
				msrs->entries[n].index);
		else
			err_errno(e, "KVM_SET_MSRS on vCPU %d", i);
		free(msrs);
		return -1;
	}
	free(msrs);
	return 0;
}

/* Guest RAM: anonymous, MAP_NORESERVE (committed only as the guest touches
 * it), 2 MiB-aligned and advised MADV_HUGEPAGE.  With transparent huge
 * pages in "madvise" mode (Debian's default) that is what backs it with
 * 2 MiB pages: KVM can then map the guest with 2 MiB pages too (the
 * alignment makes guest-physical and host-virtual addresses congruent), and
 * an O_DIRECT request pins one page per 2 MiB instead of one per 4 KiB --
 * bench/blk.sh measured 128k reads at 2-3x the IOPS with it.  Without THP
 * the advice is ignored. */
#define RAM_ALIGN (2ull << 20)

static int map_guest_ram(struct vm *vm, uint64_t size)
{
	uint8_t *p = mmap(NULL, size + RAM_ALIGN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t head;

	if (p == MAP_FAILED)
		return -1;
	head = (RAM_ALIGN - ((uintptr_t)p & (RAM_ALIGN - 1))) & (RAM_ALIGN - 1);
	if (head)
		munmap(p, head);
	munmap(p + head + size, RAM_ALIGN - head);
	vm->ram = p + head;
	vm->ram_size = size;
	(void)madvise(vm->ram, size, MADV_HUGEPAGE);
	return 0;
}

int vm_create(struct vm *vm, uint64_t mem_mib, int ncpus, struct err *e)
{
	struct kvm_enable_cap split = { .cap = KVM_CAP_SPLIT_IRQCHIP,
					.args = { IOAPIC_NUM_PINS } };
	uint64_t size = mem_mib << 20;

	vm->ncpus = ncpus;
	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0)
		return err_errno(e, "eventfd");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return err_errno(e, "KVM_CREATE_VM");

	if (map_guest_ram(vm, size) < 0)
		return err_errno(e, "--mem %" PRIu64 ": cannot map that much guest RAM", mem_mib);
	gm_init(&vm->mem, vm->ram, size);
	if (add_memslot(vm, 0, 0, vm->ram, vm->mem.low_size, e) < 0)
		return -1;
	if (size > vm->mem.low_size &&
	    add_memslot(vm, 1, MEM_4G, vm->ram + vm->mem.low_size,
			size - vm->mem.low_size, e) < 0)
		return -1;

	/* Intel VMX needs these pages for real-mode emulation; other backends
	 * ignore or refuse them, which is harmless for a 64-bit guest. */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR);
	{
		uint64_t ident = KVM_IDENTITY_ADDR;

		(void)ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident);
	}

	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &split) < 0)
		return err_errno(e, "KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)");
	/* The IOAPIC's APIC id follows the CPUs' (the MP table says the same). */
	vm->ioapic = ioapic_new((uint8_t)ncpus, &ioapic_ops, vm);
	if (!vm->ioapic)
		return err_set(e, "out of memory");
	/* No routes yet: every pin starts masked, and KVM_SET_GSI_ROUTING costs
	 * ~5 ms here (an SRCU grace period), so the first one waits until the
	 * guest programs a pin. */
	if (bus_register(&vm->mmio, IOAPIC_BASE, IOAPIC_SIZE, ioapic_mmio,
			 vm->ioapic, "ioapic", e) < 0)
		return -1;

	for (int i = 0; i < ncpus; i++)
		if (setup_vcpu(vm, i, e) < 0)
			return -1;
	return 0;
}

int vm_set_boot_regs(struct vm *vm, const struct boot_info *bi, struct err *e)
{
	struct vcpu *v = &vm->vcpus[0];
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	memset(&regs, 0, sizeof(regs));
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return err_errno(e, "KVM_GET_SREGS");
	boot_vcpu_regs(bi, &regs, &sregs);
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return err_errno(e, "KVM_SET_SREGS");
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return err_errno(e, "KVM_SET_REGS");
	return 0;
}

void vm_request_stop(struct vm *vm, int status)
{
	int expected = -1;
	uint64_t one = 1;

	if (atomic_compare_exchange_strong(&vm->exit_status, &expected, status))
		(void)!write(vm->stop_efd, &one, sizeof(one));
}

void vm_dump_vcpu(struct vcpu *v, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_translation t;
	uint8_t code[16];

	fprintf(stderr, "ember: vCPU %d: %s\n", v->index, why);
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		perror("ember: reading vCPU registers");
		return;
	}
	fprintf(stderr,
		"  rip %016llx rsp %016llx rflags %016llx\n"
		"  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
		"  rsi %016llx rdi %016llx rbp %016llx\n"
		"  r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n"
		"  r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n"
		"  cs %04x (base %llx, l=%d db=%d dpl=%d) ss %04x ds %04x\n"
		"  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx\n",
		r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi,
		r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
		s.cs.selector, s.cs.base, s.cs.l, s.cs.db, s.cs.dpl, s.ss.selector,
		s.ds.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
	t = (struct kvm_translation){ .linear_address = s.cs.base + r.rip };
	if (ioctl(v->fd, KVM_TRANSLATE, &t) == 0 && t.valid &&
	    gm_read(&v->vm->mem, t.physical_address, code, sizeof(code)) == 0) {
		fprintf(stderr, "  code at rip (gpa %llx):", t.physical_address);
		for (size_t i = 0; i < sizeof(code); i++)
			fprintf(stderr, " %02x", code[i]);
		fprintf(stderr, "\n");
	} else {
		fprintf(stderr, "  code at rip: not readable\n");
	}
}

/* Port I/O exit: 'count' repetitions (string I/O) of 'size'-byte accesses,
 * data inside the kvm_run page at data_offset.  KVM sets size and count, but
 * the bounds are still checked against the page before use. */
static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t size = run->io.size, count = run->io.count;
	uint8_t *p = (uint8_t *)run + run->io.data_offset;
	bool w = run->io.direction == KVM_EXIT_IO_OUT;

	if (size == 0 || size > 4 || run->io.data_offset > v->vm->run_size ||
	    count > (v->vm->run_size - run->io.data_offset) / size)
		return;
	for (uint64_t i = 0; i < count; i++, p += size) {
		if (!bus_dispatch(&v->vm->pio, run->io.port, p, (uint32_t)size, w)) {
			atomic_fetch_add(&v->vm->stats.pio_unclaimed, 1);
			if (!w)
				memset(p, 0xff, size);
		}
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint32_t len = run->mmio.len;

	if (len == 0 || len > sizeof(run->mmio.data))
		return;
	if (!bus_dispatch(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len,
			  run->mmio.is_write)) {
		atomic_fetch_add(&v->vm->stats.mmio_unclaimed, 1);
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, len);
	}
}

static void kick_handler(int sig)
{
	(void)sig;
}

/* Handle one exit.  Returns false when this vCPU must stop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char why[96];

	atomic_fetch_add(&v->vm->stats.exits, 1);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		return true;
	case KVM_EXIT_IOAPIC_EOI:
		ioapic_eoi(v->vm->ioapic, run->eoi.vector);
		return true;
	case KVM_EXIT_SHUTDOWN:
		/* Triple fault: how a PC reboots when nothing else works. */
		vm_request_stop(v->vm, EXIT_GUEST_DONE);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(v->vm, EXIT_GUEST_DONE);
			return false;
		}
		snprintf(why, sizeof(why), "system event %u", run->system_event.type);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		if (kvm_pvm_complete(v))
			return true;
		snprintf(why, sizeof(why), "KVM internal error, suberror %u",
			 run->internal.suberror);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "VM entry failed, hardware reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_HLT:
		snprintf(why, sizeof(why), "halted with interrupts off (HLT exit)");
		break;
	default:
		snprintf(why, sizeof(why), "unhandled exit reason %u", run->exit_reason);
		break;
	}
	/* Only the first fatal vCPU dumps its state. */
	if (atomic_load(&v->vm->exit_status) == -1) {
		vm_dump_vcpu(v, why);
		vm_request_stop(v->vm, EXIT_GUEST_FATAL);
	}
	return false;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Ctrl-C and friends go to the main thread, whose policy has what
	 * main.c's handler needs (restore the terminal, re-raise). */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (v->vm->seccomp) {
		struct err e;

		/* Before the guest runs a single instruction on this vCPU. */
		if (sc_install(SC_VCPU, v->index, &e) < 0) {
			fprintf(stderr, "ember: vCPU %d: %s\n", v->index, e.msg);
			vm_request_stop(v->vm, EXIT_SETUP);
			return NULL;
		}
	}
	pthread_mutex_lock(&v->vm->gate_lock);
	while (!v->vm->gate_open)
		pthread_cond_wait(&v->vm->gate_cond, &v->vm->gate_lock);
	pthread_mutex_unlock(&v->vm->gate_lock);
	if (v->index == 0)
		bt_mark(BT_FIRST_RUN);
	while (atomic_load(&v->vm->exit_status) == -1) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			if (atomic_load(&v->vm->exit_status) == -1) {
				char why[96];

				snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(errno));
				vm_dump_vcpu(v, why);
				vm_request_stop(v->vm, EXIT_GUEST_FATAL);
			}
			break;
		}
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

static void stop_vcpus(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (!v->started)
			continue;
		/* immediate_exit makes a KVM_RUN that starts after this point
		 * return at once; the signal interrupts one already running. */
		v->run->immediate_exit = 1;
		pthread_kill(v->thread, SIG_KICK);
	}
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->started) {
			pthread_join(v->thread, NULL);
			v->started = false;
		}
	}
}

int vm_run(struct vm *vm, struct loop *loop)
{
	struct sigaction sa;
	sigset_t set, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;   /* no SA_RESTART: KVM_RUN must see EINTR */
	sigaction(SIG_KICK, &sa, NULL);
	/* vCPU threads unblock SIG_KICK themselves; every other thread keeps
	 * it blocked so a kick can't land elsewhere. */
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	pthread_mutex_init(&vm->gate_lock, NULL);
	pthread_cond_init(&vm->gate_cond, NULL);
	vm->gate_open = false;
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		int rc = pthread_create(&v->thread, NULL, vcpu_thread, v);

		if (rc) {
			errno = rc;
			perror("ember: cannot start vCPU thread");
			vm_request_stop(vm, EXIT_SETUP);
			break;
		}
		v->started = true;
	}

	/* The vCPU threads exist now (clone is not in any policy): lock the
	 * main thread down, then open the gate that holds them before their
	 * first KVM_RUN. */
	if (vm->seccomp && atomic_load(&vm->exit_status) == -1) {
		struct err e;

		if (sc_install(SC_LOOP, 0, &e) < 0) {
			fprintf(stderr, "ember: %s\n", e.msg);
			vm_request_stop(vm, EXIT_SETUP);
		}
#ifdef EMBER_TEST_BUILD
		/* Test builds only (tests/integration/seccomp.sh): make a
		 * forbidden syscall after lockdown; the process must die with
		 * status 148 naming it. */
		if (getenv("EMBER_TEST_SECCOMP_VIOLATION"))
			(void)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
#endif
	}
	pthread_mutex_lock(&vm->gate_lock);
	vm->gate_open = true;
	pthread_cond_broadcast(&vm->gate_cond);
	pthread_mutex_unlock(&vm->gate_lock);
	/* The one place the main thread waits from now on: console, virtio
	 * notifications, disk completions and the stop eventfd. */
	loop_run(loop);
	vm_request_stop(vm, EXIT_SETUP);   /* no-op unless the loop itself failed */
	stop_vcpus(vm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	bt_mark(BT_EXIT);
	return atomic_load(&vm->exit_status);
}

int vm_irq_init(struct vm *vm, struct vm_irq *irq, unsigned pin, struct err *e)
{
	struct kvm_irqfd f = { .gsi = pin };

	irq->vm = vm;
	irq->pin = pin;
	atomic_init(&irq->raised, 0);
	atomic_init(&irq->masked, 0);
	irq->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (irq->fd < 0)
		return err_errno(e, "eventfd");
	f.fd = (uint32_t)irq->fd;
	/* With the split irqchip KVM injects through the GSI's routing entry,
	 * which set_routes() keeps equal to the guest's redirection entry;
	 * until the guest programs one there is no route and KVM drops it. */
	if (ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0)
		return err_errno(e, "KVM_IRQFD (GSI %u)", pin);
	return 0;
}

void vm_irq_raise(void *opaque)
{
	struct vm_irq *irq = opaque;
	struct ioapic_msi r = ioapic_pin_route(irq->vm->ioapic, irq->pin);
	uint64_t one = 1;

	atomic_fetch_add(&irq->raised, 1);
	if (r.data & (1u << 15)) {
		/* Level-triggered: the model holds the line (see kvm.h). */
		ioapic_set_irq(irq->vm->ioapic, irq->pin, 1);
		return;
	}
	if (r.masked) {
		atomic_fetch_add(&irq->masked, 1);
		return;
	}
	(void)!write(irq->fd, &one, sizeof(one));
}

void vm_irq_lower(void *opaque)
{
	struct vm_irq *irq = opaque;

	/* Only level pins care; for edge pins this just clears the model's
	 * input bit. */
	ioapic_set_irq(irq->vm->ioapic, irq->pin, 0);
}

void vm_irq_fini(struct vm_irq *irq)
{
	if (irq->fd >= 0)
		close(irq->fd);
	irq->fd = -1;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, uint64_t datamatch,
		 int fd, struct err *e)
{
	struct kvm_ioeventfd io = {
		.datamatch = datamatch, .addr = addr, .len = len, .fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};

	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
		return err_errno(e, "KVM_IOEVENTFD at 0x%" PRIx64, addr);
	return 0;
}

void vm_destroy(struct vm *vm)
{
	stop_vcpus(vm);
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->run)
			munmap(v->run, vm->run_size);
		if (v->fd >= 0)
			close(v->fd);
	}
	ioapic_free(vm->ioapic);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
}
