#!/usr/bin/env bash
# Boot the test guest (tests/guest, build/testguest.elf) on QEMU microvm and
# on ember, and turn its "TEST <name> PASS|FAIL|SKIP" lines into this
# suite's "PASS vmm/name" / "FAIL vmm/name: why" / "SKIP vmm/name: why".
#
# Every test must pass on QEMU's devices too: that proves the guest's
# drivers right before they judge ember's.  Boots:
#   qemu        serial and virtio-blk tests (a 4 MiB writable disk with the
#               serial TGDISK0, and a 1 MiB read-only disk for blk_ro)
#   qemu-plain  the blk tests again with EVENT_IDX and indirect descriptors
#               off, for the driver's other notification and ring paths
#   ember       serial and virtio-blk tests (64-bit Linux entry)
#   ember-direct  the blk tests with ,direct disks (O_DIRECT)
#   ember-pvh   serial tests through the PVH entry
# Each boot also reports vmm/boot: the VMM exited cleanly (status 0) within
# TESTGUEST_TIMEOUT seconds and the guest printed its summary line.
#
# The interactive tests print "READY <test>"; this script then writes the
# line the guest expects to the VMM's stdin (its serial input).
#
# Environment: EMBER (./ember), TESTGUEST (build/testguest.elf),
# QEMU (qemu-system-x86_64), TESTGUEST_TIMEOUT (seconds per boot, 30),
# TESTGUEST_VERBOSE=1 (show each boot's whole output).
set -u
cd "$(dirname "$0")/../.."
EMBER=${EMBER:-$PWD/ember}
TESTGUEST=${TESTGUEST:-$PWD/build/testguest.elf}
QEMU=${QEMU:-qemu-system-x86_64}
TIMEOUT=${TESTGUEST_TIMEOUT:-30}
VERBOSE=${TESTGUEST_VERBOSE:-0}

# Must match tests/guest/serial.c.
TX_LINE='serial_tx: The quick brown fox jumps over the lazy dog 0123456789 !"#$%&'"'"'()*+,-./:;<=>?@[\]^_`{|}~'
TX_IRQ_LINE='serial_tx_irq: sent 16 bytes per THRE interrupt, 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ'
RX_POLL_LINE='ember-testguest-rx-poll 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ'
RX_IRQ_LINE='ember-testguest-rx-irq 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ'
LOOP_TEXT='LOOPBACK-MUST-NOT-APPEAR'
BLK_ID=TGDISK0

SERIAL_TESTS=(serial_tx serial_tx_irq serial_loopback serial_regs serial_rx_poll serial_rx_irq)
BLK_TESTS=(blk_rw blk_multiseg blk_inflight32 blk_flush blk_getid blk_discard blk_write_zeroes blk_ro)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/testguest.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap '' PIPE # a VMM that died early must not kill us when we feed it input

join() { local IFS=,; echo "$*"; }

# run_vm LABEL "TEST,LIST" CMD...: boot, feed READY lines, report.
run_vm() {
	local label=$1 list=$2
	shift 2
	local out=$tmp/$label.out err=$tmp/$label.err line rc rd wr
	: >"$out"
	local t0=$(date +%s%N)
	coproc VMPROC { exec timeout -k 2 "$TIMEOUT" "$@" 2>"$err"; }
	local pid=$VMPROC_PID
	# Private copies: bash closes the coproc's own fds when it is reaped.
	exec {rd}<&"${VMPROC[0]}" {wr}>&"${VMPROC[1]}"
	while IFS= read -r line <&"$rd" || [ -n "$line" ]; do
		line=${line%$'\r'}
		printf '%s\n' "$line" >>"$out"
		case $line in
		"READY serial_rx_poll") printf '%s\n' "$RX_POLL_LINE" >&"$wr" ;;
		"READY serial_rx_irq") printf '%s\n' "$RX_IRQ_LINE" >&"$wr" ;;
		esac
		line=
	done
	wait "$pid"
	rc=$?
	exec {rd}<&- {wr}>&-
	local ms=$((($(date +%s%N) - t0) / 1000000))
	echo "# $label: exit status $rc after $ms ms"
	[ "$VERBOSE" = 1 ] && echo "# $label: $*"
	report "$label" "$list" "$rc" "$out" "$err"
}

report() {
	local label=$1 list=$2 rc=$3 out=$4 err=$5 t res why bad=0
	local IFS=,
	for t in $list; do
		line=$(grep -m1 "^TEST $t " "$out")
		res=$(echo "$line" | cut -d' ' -f3)
		why=$(echo "$line" | cut -d' ' -f4-)
		case $res in
		PASS)
			if [ "$t" = serial_tx ] && ! grep -qxF "$TX_LINE" "$out"; then
				echo "FAIL $label/$t: the known line did not reach the VMM's output intact"
				bad=1
			elif [ "$t" = serial_tx_irq ] && ! grep -qxF "$TX_IRQ_LINE" "$out"; then
				echo "FAIL $label/$t: the interrupt-driven line did not reach the VMM's output intact"
				bad=1
			elif [ "$t" = serial_loopback ] && grep -qF "$LOOP_TEXT" "$out"; then
				echo "FAIL $label/$t: bytes sent in loopback mode reached the VMM's output"
				bad=1
			else
				echo "PASS $label/$t"
			fi ;;
		SKIP) echo "SKIP $label/$t: $why" ;;
		FAIL) echo "FAIL $label/$t: $why"; bad=1 ;;
		*) echo "FAIL $label/$t: no result (the guest never reported this test)"; bad=1 ;;
		esac
	done
	unset IFS
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "FAIL $label/boot: timed out after ${TIMEOUT}s"
		bad=1
	elif [ "$rc" -ne 0 ]; then
		echo "FAIL $label/boot: VMM exit status $rc"
		bad=1
	elif ! grep -q '^TESTGUEST DONE passed=[0-9]* failed=[0-9]* skipped=[0-9]*$' "$out"; then
		echo "FAIL $label/boot: no 'TESTGUEST DONE' summary line"
		bad=1
	else
		echo "PASS $label/boot"
	fi
	if [ "$bad" -ne 0 ] || [ "$VERBOSE" = 1 ]; then
		echo "---- $label: guest output (last 40 lines) ----"
		tail -n 40 "$out" | sed 's/^/    /'
		if [ -s "$err" ]; then
			echo "---- $label: stderr (last 20 lines) ----"
			tail -n 20 "$err" | sed 's/^/    /'
		fi
	fi
}

all_fail() { # LABEL "LIST" WHY
	local t IFS=,
	for t in $2 boot; do echo "FAIL $1/$t: $3"; done
}

all_skip() {
	local t IFS=,
	for t in $2; do echo "SKIP $1/$t: $3"; done
}

serial=$(join "${SERIAL_TESTS[@]}")
blk=$(join "${BLK_TESTS[@]}")

if [ ! -r "$TESTGUEST" ]; then
	echo "FAIL testguest: $TESTGUEST not built (make testguest)"
	exit 1
fi
if [ ! -w /dev/kvm ]; then
	all_skip qemu "$serial,$blk" "/dev/kvm not usable"
	all_skip ember "$serial" "/dev/kvm not usable"
	exit 0
fi

# ---- QEMU microvm ----
if ! command -v "$QEMU" >/dev/null; then
	all_skip qemu "$serial,$blk" "$QEMU not installed"
else
	truncate -s 4M "$tmp/rw.img"
	truncate -s 1M "$tmp/ro.img"
	for i in 0 1 2 3 4 5 6 7; do # blk_ro checks these
		printf 'ember-ro-sector-%d\n' "$i" |
			dd of="$tmp/ro.img" bs=512 seek="$i" conv=notrunc status=none
	done
	cache=none # O_DIRECT, as a real deployment; tmpfs cannot
	dd if=/dev/zero of="$tmp/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null ||
		cache=writeback
	qemu=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
		-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config
		-nographic -no-reboot -serial stdio -kernel "$TESTGUEST"
		-global virtio-mmio.force-legacy=false)
	disks=(-drive "id=d0,file=$tmp/rw.img,format=raw,if=none,aio=io_uring,cache=$cache"
		-device "virtio-blk-device,drive=d0,serial=$BLK_ID"
		-drive "id=d1,file=$tmp/ro.img,format=raw,if=none,readonly=on,aio=io_uring,cache=$cache"
		-device virtio-blk-device,drive=d1)
	run_vm qemu "$serial,$blk" "${qemu[@]}" "${disks[@]}" \
		-append "ember.test=$serial,$blk testguest.blk_id=$BLK_ID"
	run_vm qemu-plain "$blk" "${qemu[@]}" "${disks[@]}" \
		-global virtio-blk-device.event_idx=off -global virtio-blk-device.indirect_desc=off \
		-append "ember.test=$blk testguest.blk_id=$BLK_ID"
fi

# ---- ember ----
# Serial and blk tests on disks like QEMU's (fresh images: 4 MiB writable
# with the serial TGDISK0, 1 MiB read-only with the blk_ro sectors), then
# the blk tests again with ,direct (O_DIRECT, unaligned requests served
# buffered) where the filesystem allows it.
ember_disks() { # DIR
	truncate -s 4M "$1/erw.img"
	truncate -s 1M "$1/ero.img"
	for i in 0 1 2 3 4 5 6 7; do
		printf 'ember-ro-sector-%d\n' "$i" |
			dd of="$1/ero.img" bs=512 seek="$i" conv=notrunc status=none
	done
}
if [ ! -x "$EMBER" ]; then
	all_fail ember "$serial,$blk" "ember not built ($EMBER)"
else
	mkdir -p "$tmp/e1" "$tmp/e2"
	ember_disks "$tmp/e1"
	run_vm ember "$serial,$blk" "$EMBER" --kernel "$TESTGUEST" --console stdio \
		--disk "$tmp/e1/erw.img,serial=$BLK_ID" --disk "$tmp/e1/ero.img,ro" \
		--cmdline "ember.test=$serial,$blk testguest.blk_id=$BLK_ID"
	if dd if=/dev/zero of="$tmp/e2/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
		ember_disks "$tmp/e2"
		run_vm ember-direct "$blk" "$EMBER" --kernel "$TESTGUEST" --console stdio \
			--disk "$tmp/e2/erw.img,serial=$BLK_ID,direct" --disk "$tmp/e2/ero.img,ro,direct" \
			--cmdline "ember.test=$blk testguest.blk_id=$BLK_ID"
	else
		all_skip ember-direct "$blk" "O_DIRECT not supported in ${TMPDIR:-/tmp}"
	fi
	run_vm ember-pvh serial_tx,serial_regs "$EMBER" --kernel "$TESTGUEST" --entry pvh \
		--console stdio --cmdline "ember.test=serial_tx,serial_regs"
fi
exit 0
