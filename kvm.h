/* The KVM core: one VM with its RAM, vCPU threads, interrupt controller and
 * I/O buses.
 *
 * Lifecycle (all from the main thread):
 *   vm_open()        /dev/kvm: API version and every capability ember needs
 *   vm_create()      VM, guest RAM memslots, split irqchip + userspace IOAPIC,
 *                    vCPUs with filtered CPUID and boot MSRs
 *   ...devices register on vm->pio / vm->mmio, the kernel is loaded into
 *   vm->mem, vm_set_boot_regs() sets the boot vCPU's registers...
 *   vm_run()         starts one thread per vCPU and runs the event loop
 *                    (loop.h: console, virtio queues, disk I/O) until the
 *                    guest resets, powers off or dies
 *   vm_destroy()
 *
 * Interrupt controller: KVM's split irqchip (LAPICs in the kernel, the IOAPIC
 * in ioapic.c), no PIC and no PIT.  Measured here (bench/irqchip-cost.c):
 * VM teardown 0.19 ms split vs 15.8 ms full irqchip and 22.8 ms with the PIT.
 * Linux needs neither PIC nor PIT when the CPU has a TSC-deadline LAPIC timer,
 * ARAT and a known TSC frequency (kvmclock), which ember's CPUID provides.
 */
#ifndef EMBER_KVM_H
#define EMBER_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot/boot.h"
#include "bus.h"
#include "err.h"
#include "ioapic.h"
#include "loop.h"
#include "mem.h"

#define VM_MAX_CPUS BOOT_MAX_CPUS

/* ember's exit statuses (also in --help and README). */
enum {
	EXIT_GUEST_DONE = 0,   /* guest rebooted or powered off */
	EXIT_SETUP = 1,        /* bad input or setup failure, one line on stderr */
	EXIT_USAGE = 2,        /* bad command line */
	EXIT_GUEST_FATAL = 3,  /* a vCPU hit an exit ember cannot handle */
};

struct vm;

struct vcpu {
	struct vm *vm;
	int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
};

/* Counters of guest behaviour the VM survived; printed with --boot-time
 * and on a fatal exit. */
struct vm_stats {
	atomic_ulong pio_unclaimed;
	atomic_ulong mmio_unclaimed;
	atomic_ulong exits;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	bool software_kvm;         /* kvm-pvm: see kvm_pvm.h */

	uint8_t *ram;
	uint64_t ram_size;
	struct guest_mem mem;

	int ncpus;
	struct vcpu vcpus[VM_MAX_CPUS];

	struct bus pio;
	struct bus mmio;
	struct ioapic *ioapic;

	/* First fatal or final event wins: -1 while running, else the exit
	 * status vm_run() returns. */
	atomic_int exit_status;
	int stop_efd;              /* eventfd: a vCPU asks the main thread to stop */
	/* Install the seccomp policies (seccomp/filter.h) in vm_run(): each
	 * vCPU thread before its first KVM_RUN, the calling thread before it
	 * runs the loop.  main.c clears it for --no-seccomp. */
	bool seccomp;
	/* vm_run()'s start gate: vCPU threads wait here (after installing
	 * their own filter) until the main thread has locked itself down, so
	 * the guest runs no instruction while any ember thread is still
	 * unfiltered. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	bool gate_open;
	struct vm_stats stats;
};

/* Open /dev/kvm and check the API version and capabilities.  Fails with e
 * naming the device or the missing capability. */
int vm_open(struct vm *vm, struct err *e);

/* Create the VM with mem_mib MiB of RAM and ncpus vCPUs.  Requires vm_open(). */
int vm_create(struct vm *vm, uint64_t mem_mib, int ncpus, struct err *e);

/* Set the boot vCPU's registers for bi's entry protocol. */
int vm_set_boot_regs(struct vm *vm, const struct boot_info *bi, struct err *e);

/* Ask the VM to stop with 'status' (first caller wins).  Safe from any
 * thread, and async-signal-safe (a lock-free compare-and-swap and a
 * write(2) to the stop eventfd): main.c's SIGTERM handler calls it. */
void vm_request_stop(struct vm *vm, int status);

/* Wire the UART's interrupt line to IOAPIC pin 'pin' (edge pin in the MP
 * table).  Used as the serial set_irq callback with opaque = vm. */
void vm_serial_irq(void *vm, int level);

/* A device interrupt line on IOAPIC pin 'pin', raised from the event loop
 * without any ioctl: an eventfd registered as a KVM irqfd on GSI = pin.
 *
 * The irqfd bypasses the userspace IOAPIC, so vm_irq_raise() consults the
 * pin's redirection entry first (ioapic_pin_route):
 *   - masked (or never programmed, which is masked after reset): dropped, as
 *     a real IOAPIC drops an edge on a masked pin; the device's
 *     InterruptStatus still says why it interrupted;
 *   - edge-triggered (what Linux programs for the MP table's ISA-conforming
 *     pins, and what the test guest programs): one write to the irqfd; KVM
 *     delivers the MSI that ioapic.c published for GSI = pin, i.e. the
 *     guest's vector, destination and delivery mode;
 *   - level-triggered: through the IOAPIC model instead (ioapic_set_irq),
 *     which keeps the line asserted, honours Remote IRR and re-delivers after
 *     the EOI until vm_irq_lower() (InterruptStatus acked to 0).
 * A mask or route change racing with a raise can let one interrupt through
 * on the old route, like an MSI already in flight on real hardware. */
struct vm_irq {
	struct vm *vm;
	unsigned pin;
	int fd;                    /* eventfd, KVM irqfd on GSI = pin */
	atomic_ulong raised, masked;
};

/* Create the eventfd and register it with KVM_IRQFD.  Fails with e set. */
int vm_irq_init(struct vm *vm, struct vm_irq *irq, unsigned pin, struct err *e);
void vm_irq_raise(void *vm_irq);
void vm_irq_lower(void *vm_irq);
void vm_irq_fini(struct vm_irq *irq);

/* KVM_IOEVENTFD: a 'len'-byte MMIO write of 'datamatch' to 'addr' signals
 * eventfd 'fd' inside KVM instead of exiting to ember.  Fails with e set. */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, uint64_t datamatch,
		 int fd, struct err *e);

/* Start one thread per vCPU, then service the event loop on the calling
 * thread until the guest ends.  The loop must be enabled, with
 * loop_set_stop(loop, vm->stop_efd) done before.  Returns the exit
 * status. */
int vm_run(struct vm *vm, struct loop *loop);

/* Stop threads if still running, close fds, unmap RAM. */
void vm_destroy(struct vm *vm);

/* Print the vCPU's registers and the bytes at its RIP to stderr. */
void vm_dump_vcpu(struct vcpu *v, const char *why);

#endif
