#include "platform.h"

#include <string.h>

#include "boottime.h"

static void i8042_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		     bool is_write)
{
	struct vm *vm = opaque;

	if (!is_write) {
		/* Data port and status both read 0: no key, buffers empty. */
		memset(data, 0, len);
		return;
	}
	if (off == 4 && data[0] == 0xfe)      /* 0x64: pulse CPU reset line */
		vm_request_stop(vm, EXIT_GUEST_DONE);
}

static void post_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		    bool is_write)
{
	if (!is_write)
		memset(data, 0xff, len);
}

static void marker_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		      bool is_write)
{
	if (!is_write)
		memset(data, 0xff, len);
	else if (data[0] == PLATFORM_BOOT_MARKER_VALUE)
		bt_mark(BT_BOOT_COMPLETE);
}

int platform_init(struct vm *vm, struct err *e)
{
	if (bus_register(&vm->pio, 0x60, 5, i8042_io, vm, "i8042", e) ||
	    bus_register(&vm->pio, 0x80, 1, post_io, vm, "post", e) ||
	    bus_register(&vm->pio, PLATFORM_BOOT_MARKER_PORT, 1, marker_io, vm,
			 "boot-marker", e))
		return -1;
	return 0;
}
