# Shared by the bench scripts: paths and the exact VM command lines.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
EMBER=${EMBER:-$PWD/ember}
TESTGUEST=${TESTGUEST:-$PWD/build/testguest.elf}
QEMU=${QEMU:-qemu-system-x86_64}
EXECBENCH=${EXECBENCH:-$PWD/build/execbench}
# The test guest in its ember.bench=reset mode resets at once, before it
# touches a device: a guest that resets at once, as the startup benchmark
# asks (tests/guest/main.c).  (With ember.test= instead, an empty test list,
# it first sets up its console, LAPIC and IOAPIC, calibrates the TSC and
# prints its START and DONE lines: ~230 exits, ~9 ms more here.)
EMBER_CMD=("$EMBER" --kernel "$TESTGUEST" --console none --cmdline ember.bench=reset)
QEMU_CMD=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
	-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config
	-nographic -no-reboot -kernel "$TESTGUEST" -global virtio-mmio.force-legacy=false
	-append ember.bench=reset)
# field KEY LINE: value of KEY=... in an execbench result line
field() { local w; for w in $2; do [ "${w%%=*}" = "$1" ] && { echo "${w#*=}"; return; }; done; }
# ratio A B: A / B to 3 decimals, "-" unless both are numbers and B > 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^-?[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.3f", a / b; else print "-" }'; }

# CPU time of the VMM's threads, but for its vCPU thread(s): T0[TID] = ns
# on CPU (schedstat) at "begin"; cpu_window PID prints the seconds each
# thread ran since then (threads born since count from 0), leaving out the
# threads that ran guest code (guest_time > 0 in their stat by the end of
# the window, which is sure: the guest spins).
declare -A T0
cpu_begin() {
	local t ns
	T0=()
	for t in /proc/"$1"/task/*; do
		read -r ns _ 2>/dev/null <"$t/schedstat" && T0[${t##*/}]=$ns
	done
}
# Also prints the vCPU thread(s)' seconds on CPU: the polling guest wants
# all of a CPU, so less means the host was short of CPU in that round.
cpu_window() {
	local t ns f sum=0 vcpu=0
	for t in /proc/"$1"/task/*; do
		read -r -a f 2>/dev/null <"$t/stat" || continue
		read -r ns _ 2>/dev/null <"$t/schedstat" || continue
		ns=$((ns - ${T0[${t##*/}]:-0}))
		# comm has no spaces: field 43 is guest_time
		if [ "${f[42]}" -gt 0 ]; then vcpu=$((vcpu + ns)); else sum=$((sum + ns)); fi
	done
	awk -v n="$sum" -v v="$vcpu" 'BEGIN { printf "%.3f %.3f", n / 1e9, v / 1e9 }'
}

# div A B [SCALE [FORMAT]]: A * SCALE / B ("-" unless A is a number and B > 0);
# sub_ A B: A - B; med FORMAT VALUES...: the median of the numeric values.
div() { awk -v a="$1" -v b="$2" -v s="${3:-1}" -v f="${4:-%.1f}" 'BEGIN { if (a ~ /^[0-9.]+$/ && b + 0 > 0) printf f, a * s / b; else print "-" }'; }
sub_() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.1f", a - b; else print "-" }'; }
# med FORMAT VALUES...: median of the numeric values ("-" if none).
med() {
	local f=$1
	shift
	printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
		awk -v f="$f" '{ a[NR] = $1 } END { if (!NR) print "-"; else printf f, NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
