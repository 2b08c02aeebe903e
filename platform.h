/* The few legacy PC ports a Linux guest touches besides the UART:
 *
 *  0x60/0x64  i8042 keyboard controller, reduced to its reset line: the
 *             status register reads 0 (input buffer empty, so Linux's
 *             reboot=k path does not spin), and command 0xFE (pulse reset)
 *             ends the VM with status 0.  This is how ember sees a guest
 *             "reboot": like Firecracker, a reboot ends the VM.
 *  0x80       POST code port (io_delay): writes ignored, reads 0xff.
 *  0x3f0      boot-complete marker (Firecracker's boot-timer convention):
 *             a guest write of the byte 123 records BT_BOOT_COMPLETE.
 *             Single-byte port, so it does not shadow anything else at
 *             0x3f1..0x3f7 (the floppy controller, absent here).
 */
#ifndef EMBER_PLATFORM_H
#define EMBER_PLATFORM_H

#include "err.h"
#include "kvm.h"

#define PLATFORM_BOOT_MARKER_PORT  0x3f0
#define PLATFORM_BOOT_MARKER_VALUE 123

/* Register the ports above on vm->pio. */
int platform_init(struct vm *vm, struct err *e);

#endif
