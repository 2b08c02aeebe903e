/* The seccomp allowlist: which system calls each kind of ember thread may
 * make once the VM runs, with the reason for each (printed by
 * ember --print-policy, listed in docs/security.md).  seccomp/filter.c turns
 * it into a BPF filter.
 *
 * Two policies, one per thread kind:
 *   vCPU  KVM_RUN and what the exit handlers need (device models, resets
 *         waiting for the loop, interrupt routing);
 *   loop  the main thread after setup: the io_uring event loop, kicking and
 *         joining the vCPUs, the console and the orderly exit.
 * Everything opened (images, taps, eventfds, guest RAM, the ring) is opened
 * before either policy is installed, so neither allows open, socket, clone,
 * execve, ... at all. */
#ifndef EMBER_SECCOMP_POLICY_H
#define EMBER_SECCOMP_POLICY_H

#include <stdbool.h>
#include <stddef.h>

enum sc_thread { SC_VCPU, SC_LOOP, SC_NTHREADS };

/* How a rule filters its arguments beyond the syscall number. */
enum sc_arg {
	SC_ARG_ANY,       /* any arguments */
	SC_ARG_IOCTL,     /* ioctl: request number in the thread's ioctl list */
	SC_ARG_NOEXEC,    /* mmap/mprotect: PROT_EXEC clear in arg 2 */
	SC_ARG_UNREG,     /* io_uring_register: only IORING_UNREGISTER_FILES */
};

struct sc_rule {
	const char *name;       /* resolved with libseccomp */
	enum sc_arg arg;
	const char *why;
};

struct sc_ioctl {
	unsigned long req;
	const char *name;
	const char *why;
};

struct sc_policy {
	const char *thread;     /* "vcpu", "loop" */
	const struct sc_rule *rules;
	size_t nrules;
	const struct sc_ioctl *ioctls;
	size_t nioctls;
};

const struct sc_policy *sc_policy(enum sc_thread t);

#endif
