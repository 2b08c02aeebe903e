#include "kvm_pvm.h"

#include <stdatomic.h>
#include <asm/kvm_para.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static atomic_ulong n_int3, n_fwait;

bool kvm_pvm_detect(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

void kvm_pvm_cpuid(struct kvm_cpuid2 *cpuid)
{
	/* Each of these makes the guest issue KVM hypercalls (vmcall /
	 * vmmcall): KVM_HC_KICK_CPU, KVM_HC_SEND_IPI, KVM_HC_SCHED_YIELD and
	 * KVM_HC_MAP_GPA_RANGE. */
	const uint32_t hypercall_features =
		1u << KVM_FEATURE_PV_UNHALT | 1u << KVM_FEATURE_PV_SEND_IPI |
		1u << KVM_FEATURE_PV_SCHED_YIELD | 1u << KVM_FEATURE_HC_MAP_GPA_RANGE;

	for (uint32_t i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == KVM_CPUID_FEATURES)
			cpuid->entries[i].eax &= ~hypercall_features;
}

/* Read the opcode byte at the vCPU's RIP: linear address = CS base + RIP,
 * translated through the guest's page tables by KVM, then read through the
 * checked accessor. */
static int opcode_at_rip(struct vcpu *v, const struct kvm_regs *r,
			 const struct kvm_sregs *s, uint8_t *op)
{
	struct kvm_translation t = { .linear_address = s->cs.base + r->rip };

	if (ioctl(v->fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
		return -1;
	return gm_read(&v->vm->mem, t.physical_address, op, 1);
}

bool kvm_pvm_complete(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_vcpu_events ev;
	uint8_t op;

	if (!v->vm->software_kvm ||
	    run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
		return false;
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0 ||
	    opcode_at_rip(v, &r, &s, &op) < 0)
		return false;
	switch (op) {
	case 0xcc:      /* int3: trap-class, so the saved RIP is the next one */
		if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return false;
		r.rip++;
		ev.exception.injected = 1;
		ev.exception.nr = 3;
		ev.exception.has_error_code = 0;
		ev.flags = 0;
		if (ioctl(v->fd, KVM_SET_REGS, &r) < 0 ||
		    ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			return false;
		n_int3++;
		return true;
	case 0x9b:      /* fwait: ember exposes no unmasked x87 exceptions */
		r.rip++;
		if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
			return false;
		n_fwait++;
		return true;
	}
	return false;
}

void kvm_pvm_print_stats(void)
{
	unsigned long a = n_int3, b = n_fwait;

	if (a || b)
		fprintf(stderr, "ember: software KVM: completed %lu int3, %lu fwait\n", a, b);
}
