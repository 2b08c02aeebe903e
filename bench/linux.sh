#!/usr/bin/env bash
# Linux boot cost: the demo guest (make guest: build/guest/vmlinux +
# initramfs.cpio, booted from the initramfs, 1 vCPU, 128 MiB) under ember,
# LINUX_RUNS times (3), medians:
#
#   wall to boot-complete   exec -> the guest's /init writes 123 to port
#                           0x3f0 (ember --boot-time; QEMU has no such
#                           device, so it has no value there)
#   wall to the banner      exec -> "ember-demo: init reached" read from the
#                           VMM's console (timestamped by this script; the
#                           number compared between VMMs)
#   exits to user space     kvm:kvm_userspace_exit counted by perf stat
#                           (ember's own --boot-time count where perf
#                           cannot: they agree, it is logged)
#   CPU, all threads        the VMM process's task-clock until it exited
#                           (perf stat; else the last /proc sample): host CPU
#                           for the whole VM, the vCPU's time in KVM
#                           included (on kvm-pvm that is KVM's instruction
#                           emulator running the guest kernel)
#   CPU, VMM threads        the same without the vCPU thread (the non-main
#                           thread that ran longest): the VMM's own event
#                           loop and helpers, from /proc/PID/task/*/schedstat
#                           sampled every 0.1 s until exit
#
# QEMU microvm runs the same kernel and initramfs only on hardware KVM
# (vmx/svm in /proc/cpuinfo and no kvm_pvm module): on a software KVM such
# as kvm-pvm QEMU cannot boot Linux at all (the guest's int3 and fwait are
# KVM emulation failures, which QEMU does not survive; ember completes them
# itself).  The script then says so instead of comparing.
#
# Both VMMs boot with the kernel's `quiet` added to the command line
# (LINUX_CMDLINE, default "quiet"; empty: the kernel's full log): every
# byte the kernel prints on the 8250 console is two exits to user space (a
# write to THR, a read of LSR), ~16,000 of them in a verbose boot, which
# would measure the console rather than the boot; boot-time benchmarks of
# microVMs run without a kernel log (Firecracker's even without a serial
# port).  The demo's /init banner and marker are printed either way.
#
# Env: LINUX_RUNS (3), LINUX_CMDLINE, GUEST_DIR (build/guest), LINUX_TIMEOUT (s per boot,
# 300), BENCH_OUT (build/bench: linux.log, linux.dat).  ~20-25 s per boot on
# kvm-pvm.  Prints markdown tables.
set -u
source "$(dirname "$0")/common.sh"
RUNS=${LINUX_RUNS:-3}
EXTRA=${LINUX_CMDLINE-quiet}
[ "$RUNS" -ge 1 ] 2>/dev/null || RUNS=1
GUEST_DIR=${GUEST_DIR:-$PWD/build/guest}
TIMEOUT=${LINUX_TIMEOUT:-300}
OUTDIR=${BENCH_OUT:-$PWD/build/bench}
for f in "$EMBER" "$GUEST_DIR/vmlinux" "$GUEST_DIR/initramfs.cpio"; do
	[ -e "$f" ] || { echo "linux: $f missing (make ember guest)" >&2; exit 1; }
done
[ -w /dev/kvm ] || { echo "linux: /dev/kvm not usable" >&2; exit 1; }
mkdir -p "$OUTDIR" || exit 1
LOG=$OUTDIR/linux.log
: >"$LOG"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/linuxbench.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

hw=0
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then hw=1; fi
PERF=
if command -v perf >/dev/null &&
	perf stat -x, -e task-clock,kvm:kvm_userspace_exit -o /dev/null true 2>/dev/null; then
	PERF=perf
fi

# sample PID: every 0.1 s until PID is gone, the threads' "TID ns" (schedstat)
# into $tmp/sample (the last complete sample).
sample() {
	local t ns s
	while [ -d "/proc/$1" ]; do
		s=
		for t in /proc/"$1"/task/*; do
			read -r ns _ 2>/dev/null <"$t/schedstat" && s+="${t##*/} $ns"$'\n'
		done
		[ -n "$s" ] && printf '%s' "$s" >"$tmp/sample.new" && mv "$tmp/sample.new" "$tmp/sample"
		sleep 0.1
	done
}

# boot LABEL CMD...: one boot; sets R to "wall_bc_ms wall_banner_ms exits
# cpu_all_ms cpu_vmm_ms" ("-" for what is missing), returns non-zero if the
# boot failed.
boot() {
	local label=$1 line t0 tb=- pid vmpid i rc bc=- ex=- all=- vmm=- own
	shift
	rm -f "$tmp/sample" "$tmp/perf"
	: >"$tmp/$label.out"
	t0=$EPOCHREALTIME
	if [ -n "$PERF" ]; then
		coproc VM { exec timeout -k 5 "$TIMEOUT" perf stat -x, -o "$tmp/perf" -e task-clock,kvm:kvm_userspace_exit -- "$@" </dev/null 2>"$tmp/$label.err"; }
	else
		coproc VM { exec timeout -k 5 "$TIMEOUT" "$@" </dev/null 2>"$tmp/$label.err"; }
	fi
	pid=$VM_PID
	# The VMM: timeout's child, or perf's under it.
	vmpid=$pid
	for ((i = 0; i < 200; i++)); do
		read -r vmpid _ 2>/dev/null <"/proc/$pid/task/$pid/children" && [ -n "$vmpid" ] && break
		sleep 0.005
	done
	if [ -n "$PERF" ]; then
		local p=$vmpid
		for ((i = 0; i < 200; i++)); do
			read -r vmpid _ 2>/dev/null <"/proc/$p/task/$p/children" && [ -n "$vmpid" ] && break
			sleep 0.005
		done
	fi
	sample "$vmpid" &
	local spid=$!
	while IFS= read -r line <&"${VM[0]}"; do
		printf '%s\n' "${line%$'\r'}" >>"$tmp/$label.out"
		case $line in
		*"ember-demo: init reached"*) [ "$tb" = - ] && tb=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }') ;;
		esac
	done
	wait "$pid"
	rc=$?
	wait "$spid" 2>/dev/null
	bc=$(sed -nE 's/^ember: boot-time: boot-complete ([0-9]+) us$/\1/p' "$tmp/$label.err" | head -n 1)
	bc=$(div "$bc" 1000)
	ex=$(sed -nE 's/^ember: exits ([0-9]+),.*/\1/p' "$tmp/$label.err" | head -n 1)
	own=${ex:--}
	if [ -s "$tmp/perf" ]; then
		ex=$(awk -F, '$3 == "kvm:kvm_userspace_exit" { print $1 }' "$tmp/perf")
		all=$(awk -F, '$3 == "task-clock" { printf "%.1f", $1 }' "$tmp/perf")
	fi
	if [ -s "$tmp/sample" ]; then
		# The main thread is the VMM's pid; the vCPU the other thread
		# that ran longest.
		read -r s_all s_vmm <<<"$(awk -v main="$vmpid" '
			{ tot += $2; if ($1 == main) m = $2; else if ($2 > v) v = $2 }
			END { printf "%.1f %.1f", tot / 1e6, (tot - v) / 1e6 }' "$tmp/sample")"
		[ "$all" = - ] && all=$s_all
		vmm=$s_vmm
	fi
	R="${bc:--} $tb ${ex:--} $all $vmm"
	echo "$label rc=$rc boot_complete_ms=${bc:--} banner_ms=$tb exits=${ex:--} own_exit_count=$own cpu_all_ms=$all cpu_vmm_ms=$vmm" >>"$LOG"
	grep -E '^ember: (exits|software KVM|io_uring)' "$tmp/$label.err" | sed "s/^/$label: /" >>"$LOG"
	if [ $rc -ne 0 ] || [ "$tb" = - ]; then
		echo "linux: $label: exit status $rc$([ "$tb" = - ] && echo ', no "ember-demo: init reached" banner')" >&2
		tail -n 5 "$tmp/$label.out" "$tmp/$label.err" >&2
		return 1
	fi
	return 0
}

EMBER_LINUX=("$EMBER" --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initramfs.cpio" --console stdio --boot-time)
[ -n "$EXTRA" ] && EMBER_LINUX+=(--cmdline "$EXTRA")
# QEMU microvm with the same kernel (PVH entry of the ELF vmlinux) and
# ember's default command line, but reboot=t (microvm has no i8042; the
# triple fault ends QEMU under -no-reboot).
QEMU_LINUX=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
	-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config -nographic
	-no-reboot -serial stdio -kernel "$GUEST_DIR/vmlinux" -initrd "$GUEST_DIR/initramfs.cpio"
	-append "console=ttyS0 reboot=t panic=-1 pci=off nomodule io_delay=none i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd 8250.nr_uarts=1${EXTRA:+ $EXTRA}")

declare -A V
add() { V[$1,$2]+="$3 "; }
fail=0
for r in $(seq "$RUNS"); do
	whos=e
	[ $hw = 1 ] && { [ $((r % 2)) = 1 ] && whos="e q" || whos="q e"; }
	for w in $whos; do
		if [ $w = e ]; then boot "ember-$r" "${EMBER_LINUX[@]}"; else boot "qemu-$r" "${QEMU_LINUX[@]}"; fi || fail=1
		read -r a b c d e <<<"$R"
		add $w bc "$a"; add $w banner "$b"; add $w exits "$c"; add $w all "$d"; add $w vmm "$e"
	done
done
M() { med "${3:-%.1f}" ${V[$1,$2]:-}; }

label=${EXTRA:+, with \`$EXTRA\` added to the command line}
echo "### Linux boot cost: the demo guest (Linux 6.1, initramfs, 1 vCPU, 128 MiB$label), median of $RUNS boot(s)"
echo
if [ $hw = 1 ]; then
	echo "| | ember | QEMU microvm | ember / QEMU |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| exec -> boot-complete (port 0x3f0), ms | $(M e bc) | - | - |"
	echo "| exec -> \"init reached\" on the console, ms | $(M e banner) | $(M q banner) | $(ratio "$(M e banner)" "$(M q banner)") |"
	echo "| exits to user space | $(M e exits %.0f) | $(M q exits %.0f) | $(ratio "$(M e exits)" "$(M q exits)") |"
	echo "| CPU, all threads (incl. the vCPU in KVM), ms | $(M e all) | $(M q all) | $(ratio "$(M e all)" "$(M q all)") |"
	echo "| CPU, VMM threads but the vCPU, ms | $(M e vmm) | $(M q vmm) | $(ratio "$(M e vmm)" "$(M q vmm)") |"
else
	echo "| | ember |"
	echo "| --- | ---: |"
	echo "| exec -> boot-complete (port 0x3f0), ms | $(M e bc) |"
	echo "| exec -> \"init reached\" on the console, ms | $(M e banner) |"
	echo "| exits to user space | $(M e exits %.0f) |"
	echo "| CPU, all threads (incl. the vCPU in KVM), ms | $(M e all) |"
	echo "| CPU, VMM threads but the vCPU, ms | $(M e vmm) |"
	echo
	if [ -d /sys/module/kvm_pvm ]; then
		echo "QEMU microvm is not compared here: this host's KVM is kvm-pvm, a software hypervisor (no vmx/svm), where guest kernel code runs in KVM's instruction emulator; Linux's int3 (jump-label patching) and fwait are emulation failures there, which ember completes itself and QEMU 7.2 cannot survive, so QEMU cannot boot Linux on this host at all.  Almost all of the boot's time and CPU is that emulation (CPU, all threads), not the VMM's work (CPU, VMM threads).  On hardware KVM this script boots QEMU too and compares."
	else
		echo "QEMU microvm is not compared here: no hardware virtualisation (vmx/svm) in /proc/cpuinfo."
	fi
fi
echo
echo "Per boot (ms; boot-complete, banner, exits, CPU all, CPU VMM): ember ${V[e,bc]:-}| ${V[e,banner]:-}| ${V[e,exits]:-}| ${V[e,all]:-}| ${V[e,vmm]:-}$([ $hw = 1 ] && echo "; QEMU - | ${V[q,banner]:-}| ${V[q,exits]:-}| ${V[q,all]:-}| ${V[q,vmm]:-}")"
echo
{
	echo "# who boot_complete_ms banner_ms exits cpu_all_ms cpu_vmm_ms (medians; hw=$hw)"
	echo "ember $(M e bc) $(M e banner) $(M e exits %.0f) $(M e all) $(M e vmm)"
	[ $hw = 1 ] && echo "qemu - $(M q banner) $(M q exits %.0f) $(M q all) $(M q vmm)"
} >"$OUTDIR/linux.dat"
exit $fail
