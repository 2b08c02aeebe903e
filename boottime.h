/* Boot-phase timestamps for --boot-time.
 *
 * Times are microseconds since ember's exec.  The kernel offers no precise
 * exec timestamp (/proc/self/stat has 10 ms ticks), so bt_init() estimates it
 * as "now minus the CPU time the process has already used": between exec and
 * main() the process only runs (exec, dynamic loading), it does not sleep.
 */
#ifndef EMBER_BOOTTIME_H
#define EMBER_BOOTTIME_H

enum bt_phase {
	BT_VM_CREATED,     /* VM, RAM and vCPUs exist */
	BT_KERNEL_LOADED,  /* kernel, initrd and boot structures in guest RAM */
	BT_FIRST_RUN,      /* the boot vCPU enters KVM_RUN for the first time */
	BT_BOOT_COMPLETE,  /* the guest wrote the boot-complete marker */
	BT_EXIT,           /* the VM ended */
	BT_NPHASES
};

/* Call first thing in main(). */
void bt_init(void);

/* Record a phase; only the first mark of each phase counts.  Thread-safe. */
void bt_mark(enum bt_phase p);

/* Print "ember: boot-time: <phase> <us> us" for every phase to stderr;
 * phases never reached print "-" instead of a number. */
void bt_print(void);

#endif
