#!/bin/sh
# /etc/init.sh: second stage of the ember demo guest's init, run by busybox sh
# after /init (init.c) wrote the boot-complete marker and mounted /proc, /sys
# and /dev; when it returns, /init syncs and reboots.  Fork+exec is costly on
# a software KVM (guest kernel code is emulated), so the default path uses
# shell builtins only.  Busybox runs every applet from the shell without
# symlinks (FEATURE_SH_STANDALONE).
#
# Kernel command line knobs (from /proc/cmdline):
#   ember.demo=shell   interactive shell on the console; exiting it ends the VM
# Test hook: an executable /etc/ember-test (e.g. from a second cpio archive
# appended to initramfs.cpio) runs after the banner, then the VM ends.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root

read -r release </proc/sys/kernel/osrelease
cpus=0
read -r online </sys/devices/system/cpu/online
IFS=,
for r in $online; do
	case $r in
	*-*) cpus=$((cpus + ${r#*-} - ${r%-*} + 1)) ;;
	*) cpus=$((cpus + 1)) ;;
	esac
done
unset IFS
read -r up idle </proc/uptime
read -r cmdline </proc/cmdline

echo "ember-demo: init reached"
echo "ember-demo: kernel $release"
echo "ember-demo: cpus $cpus"
echo "ember-demo: uptime $up s"

if [ -x /etc/ember-test ]; then
	/etc/ember-test
	echo "ember-demo: /etc/ember-test exited with status $?"
fi

case " $cmdline " in
*" ember.demo=shell "*)
	echo "ember-demo: interactive shell (busybox); exit it to end the VM"
	setsid cttyhack sh
	;;
esac
# Returning ends the VM: /init syncs and reboots (ember exits 0).
