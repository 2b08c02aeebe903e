#!/usr/bin/env bash
# guest/demo.sh [EMBER-OPTIONS...] -- boot the demo guest (make demo).
# Extra options go to ember, e.g.  guest/demo.sh --cpus 2
#                                  guest/demo.sh --cmdline ember.demo=shell
set -eu
cd "$(dirname "$0")/.."
G=build/guest
[ -x ./ember ] || { echo "demo: ./ember is missing: run make" >&2; exit 1; }
for f in vmlinux initramfs.cpio; do
	[ -f "$G/$f" ] || { echo "demo: $G/$f is missing: run make guest" >&2; exit 1; }
done
[ -e /dev/kvm ] || { echo "demo: /dev/kvm is missing: ember needs KVM" >&2; exit 1; }
if [ -d /sys/module/kvm_pvm ]; then
	echo "demo: this host's KVM is kvm-pvm, a software hypervisor that emulates guest kernel code: Linux needs ~20-30 s to reach /init here"
else
	echo "demo: booting Linux 6.1 + busybox; /init prints a banner and reboots, which ends the VM"
fi
set -x
exec ./ember --kernel "$G/vmlinux" --initrd "$G/initramfs.cpio" --boot-time "$@"
