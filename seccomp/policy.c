/* The seccomp allowlist, one table per thread kind: see policy.h.  Every
 * entry says which code needs it, so a new syscall in ember shows up here
 * with a reason or not at all. */
#include "seccomp/policy.h"

#include <linux/kvm.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Shared by both threads: the C library (malloc, stdio, thread exit) and
 * the signals ember handles. */
#define COMMON_RULES \
	{ "write", SC_ARG_ANY, "console output (serial.c), eventfd signals (irqfds, " \
	  "notify and stop eventfds), error lines on stderr" }, \
	{ "futex", SC_ARG_ANY, "mutexes and condition variables shared between the " \
	  "vCPUs and the loop (UART, IOAPIC, virtio transports, reset waits)" }, \
	{ "mmap", SC_ARG_NOEXEC, "malloc; never PROT_EXEC" }, \
	{ "mprotect", SC_ARG_NOEXEC, "malloc growing a thread arena; never PROT_EXEC" }, \
	{ "munmap", SC_ARG_ANY, "free, thread stacks, guest RAM at exit" }, \
	{ "madvise", SC_ARG_ANY, "free trimming the heap, a thread's stack at its exit" }, \
	{ "brk", SC_ARG_ANY, "malloc (main arena)" }, \
	{ "rt_sigreturn", SC_ARG_ANY, "return from the vCPU kick handler" }, \
	{ "rt_sigprocmask", SC_ARG_ANY, "glibc blocks signals in a thread that ends; " \
	  "vm_run() restores its mask; raise()" }, \
	{ "clock_gettime", SC_ARG_ANY, "timed waits and --boot-time (when the vDSO falls back)" }, \
	{ "exit", SC_ARG_ANY, "a thread ending" }, \
	{ "exit_group", SC_ARG_ANY, "the process ending (exit(), a sanitizer's report)" }

#if defined(__SANITIZE_ADDRESS__)
#define SAN_RULES , \
	{ "sigaltstack", SC_ARG_ANY, "ASan build only: the runtime's signal stack, " \
	  "removed when a thread ends" }, \
	{ "sched_yield", SC_ARG_ANY, "ASan build only: the runtime's spin locks" }, \
	{ "gettid", SC_ARG_ANY, "ASan build only: the runtime's thread registry" }
#else
#define SAN_RULES
#endif

static const struct sc_rule vcpu_rules[] = {
	{ "ioctl", SC_ARG_IOCTL, "KVM_RUN and the exit handlers' KVM calls (list below)" },
	COMMON_RULES SAN_RULES
};

static const struct sc_rule loop_rules[] = {
	{ "io_uring_enter", SC_ARG_ANY, "the event loop: submit and wait (loop.c)" },
	{ "io_uring_register", SC_ARG_UNREG, "at exit, drop the ring's fixed files so taps and "
	  "image locks are released before ember exits (loop_fini)" },
	{ "read", SC_ARG_ANY, "console input from stdin (the loop polls, then reads)" },
	{ "ioctl", SC_ARG_IOCTL, "interrupt delivery, tap offloads, the terminal (list below)" },
	{ "close", SC_ARG_ANY, "closing the ring, eventfds, images and taps at exit" },
	{ "getpid", SC_ARG_ANY, "pthread_kill() names the process" },
	{ "tgkill", SC_ARG_ANY, "pthread_kill(): kicking a vCPU out of KVM_RUN (SIGUSR1)" },
	COMMON_RULES SAN_RULES
};

/* KVM calls a vCPU exit can lead to: vm_dump_vcpu(), kvm-pvm's int3/fwait
 * completion (kvm_pvm.c), the IOAPIC publishing routes and raising level
 * interrupts, a virtio-net DRIVER_OK setting tap offloads. */
static const struct sc_ioctl vcpu_ioctls[] = {
	{ KVM_RUN, "KVM_RUN", "run the guest" },
	{ KVM_SIGNAL_MSI, "KVM_SIGNAL_MSI", "IOAPIC delivers a level or UART interrupt" },
	{ KVM_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING", "guest reprogrammed an IOAPIC pin" },
	{ KVM_GET_REGS, "KVM_GET_REGS", "register dump on a fatal exit; kvm-pvm" },
	{ KVM_SET_REGS, "KVM_SET_REGS", "kvm-pvm: complete int3/fwait" },
	{ KVM_GET_SREGS, "KVM_GET_SREGS", "register dump on a fatal exit; kvm-pvm" },
	{ KVM_TRANSLATE, "KVM_TRANSLATE", "bytes at RIP for the dump; kvm-pvm" },
	{ KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", "kvm-pvm: inject the int3 exception" },
	{ KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", "kvm-pvm: inject the int3 exception" },
	{ TUNSETOFFLOAD, "TUNSETOFFLOAD", "virtio-net: offloads the driver accepted" },
};

static const struct sc_ioctl loop_ioctls[] = {
	{ KVM_SIGNAL_MSI, "KVM_SIGNAL_MSI", "a device raises a level-triggered interrupt" },
	{ KVM_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING", "IOAPIC route update from the loop" },
	{ TUNSETOFFLOAD, "TUNSETOFFLOAD", "virtio-net: offloads the driver accepted" },
	{ TCSETS, "TCSETS", "restore the terminal (tcsetattr TCSANOW) at exit or on Ctrl-C" },
};

static const struct sc_policy policies[SC_NTHREADS] = {
	[SC_VCPU] = { "vcpu", vcpu_rules, N(vcpu_rules), vcpu_ioctls, N(vcpu_ioctls) },
	[SC_LOOP] = { "loop", loop_rules, N(loop_rules), loop_ioctls, N(loop_ioctls) },
};

const struct sc_policy *sc_policy(enum sc_thread t)
{
	return &policies[t];
}
