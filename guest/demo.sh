#!/usr/bin/env bash
# guest/demo.sh [EMBER-OPTIONS...] -- boot the demo guest (make demo).
# Extra options go to ember, e.g.  guest/demo.sh --cpus 2
#                                  guest/demo.sh --cmdline ember.demo=shell
# (--cmdline may be given more than once: the words accumulate.)
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
# The root file system is an ext4 image on virtio-blk, made from the
# initramfs contents (plus the network hook, if any) with mke2fs -d; the
# kernel mounts it as /dev/vda (ember's ",root") and runs /init from it.
# Without mke2fs the demo falls back to booting from the initramfs.
DEMO_ROOT=()
if command -v mke2fs >/dev/null && command -v cpio >/dev/null; then
	root_tmp=$(mktemp -d)
	trap 'rm -rf "$root_tmp"; demo_net_down 2>/dev/null || true' EXIT
	mkdir "$root_tmp/fs"
	cpio -id --quiet -D "$root_tmp/fs" <"$G/initramfs.cpio"
	# demo-net.sh's hook is a second archive (cpio stops at the first).
	if [ "$DEMO_INITRD" != "$G/initramfs.cpio" ]; then
		cpio -id --quiet -u -D "$root_tmp/fs" <"$demo_tmp/net.cpio"
	fi
	mke2fs -q -t ext4 -d "$root_tmp/fs" "$root_tmp/root.ext4" 64M
	echo "demo: root file system: ext4 image on virtio-blk (/dev/vda)"
	DEMO_ROOT=(--disk "$root_tmp/root.ext4,root" --cmdline init=/init)
else
	DEMO_ROOT=(--initrd "$DEMO_INITRD")
fi
set -x
./ember --kernel "$G/vmlinux" "${DEMO_ROOT[@]}" --boot-time "${DEMO_NET[@]}" "$@"
