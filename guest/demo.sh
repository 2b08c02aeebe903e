#!/usr/bin/env bash
# guest/demo.sh [EMBER-OPTIONS...] -- boot the demo guest (make demo).
# Extra options go to ember, e.g.  guest/demo.sh --cpus 2
#                                  guest/demo.sh --cmdline ember.demo=shell
# As root the guest also gets a network: see guest/demo-net.sh.
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
DEMO_INITRD=$G/initramfs.cpio DEMO_NET=()
if [ "$(id -u)" = 0 ]; then
	# A tap with DHCP for the guest's eth0 (guest/demo-net.sh).
	. guest/demo-net.sh
	trap demo_net_down EXIT
	demo_net_up || true
fi
set -x
./ember --kernel "$G/vmlinux" --initrd "$DEMO_INITRD" --boot-time "${DEMO_NET[@]}" "$@"
