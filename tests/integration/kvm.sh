#!/usr/bin/env bash
# KVM tests with minimal assembly guests (tests/kvm/*.S): serial output, the
# boot-complete marker, reset through the i8042, triple fault, int3 at CPL0,
# SMP and large-memory VMs, console modes, and the sanitizer build.
. "$(dirname "$0")/lib.sh"

if ! have_kvm; then
	for t in hello triple int3; do skip "kvm/$t" "/dev/kvm is not usable by $(id -un)"; done
	exit 0
fi

check_hello() { # name out err
	if [ "$RC" -ne 0 ]; then
		fail "$1" "exit status $RC: $(head -c 300 "$3")"
	elif ! grep -qx 'hello from the ember test guest' "$2"; then
		fail "$1" "greeting missing from stdout: $(head -c 200 "$2")"
	else
		return 0
	fi
	return 1
}

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/hello.elf" --boot-time
if check_hello kvm/hello "$TMP/o" "$TMP/e"; then
	if grep -qE '^ember: boot-time: boot-complete [0-9]+ us$' "$TMP/e" &&
	   grep -qE '^ember: boot-time: exit [0-9]+ us$' "$TMP/e"; then
		pass kvm/hello
	else
		fail kvm/hello "--boot-time did not report boot-complete and exit: $(cat "$TMP/e")"
	fi
fi

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/hello.elf" --boot-time --cpus 4
check_hello kvm/hello-4cpus "$TMP/o" "$TMP/e" && pass kvm/hello-4cpus

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/hello.elf" --mem 5120
check_hello kvm/hello-5GiB "$TMP/o" "$TMP/e" && pass kvm/hello-5GiB

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/hello.elf" --entry linux64
check_hello kvm/entry-linux64 "$TMP/o" "$TMP/e" && pass kvm/entry-linux64

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/hello.elf" --console none
if [ "$RC" -ne 0 ] || [ -s "$TMP/o" ]; then
	fail kvm/console-none "status $RC, stdout: $(head -c 100 "$TMP/o")"
else
	pass kvm/console-none
fi

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/hello.elf" --console "file:$TMP/console.log"
if [ "$RC" -eq 0 ] && grep -qx 'hello from the ember test guest' "$TMP/console.log" && [ ! -s "$TMP/o" ]; then
	pass kvm/console-file
else
	fail kvm/console-file "status $RC, file: $(head -c 100 "$TMP/console.log" 2>&1)"
fi

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/triple.elf"
if [ "$RC" -eq 0 ] && grep -qx 'about to triple fault' "$TMP/o"; then
	pass kvm/triple-fault
else
	fail kvm/triple-fault "status $RC, stdout: $(head -c 200 "$TMP/o"), stderr: $(head -c 300 "$TMP/e")"
fi

run_vm "$TMP/o" "$TMP/e" 10 "$EMBER" --kernel "$KVMGUEST/int3.elf"
if [ "$RC" -eq 0 ] && [ "$(cat "$TMP/o")" = "$(printf 'int3 test: before\nint3 test: #BP handler ran\nint3 test: after')" ]; then
	pass kvm/int3-cpl0
else
	fail kvm/int3-cpl0 "status $RC, stdout: $(head -c 200 "$TMP/o"), stderr: $(head -c 600 "$TMP/e")"
fi

# The same path under ASan+UBSan (leak checks included).
run_vm "$TMP/o" "$TMP/e" 30 "$EMBER_ASAN" --kernel "$KVMGUEST/hello.elf" --cpus 2 --boot-time
check_hello kvm/asan-hello "$TMP/o" "$TMP/e" && pass kvm/asan-hello
