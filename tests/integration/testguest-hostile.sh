#!/usr/bin/env bash
# The test guest's hostile_* tests (tests/guest/hostile.c): a guest that
# abuses a virtio-blk device on purpose (descriptors outside RAM, loops,
# bad indirect tables, bad ring indices, bad queue set-up, writes to
# read-only registers, wrong status sequences, malformed blk requests).
# Each test passes when the device answers as virtio 1.2 allows, the VMM
# keeps running, and the device works again after a reset.
#
# Prints "PASS vmm/test", "FAIL vmm/test: why", "SKIP vmm/test: why" for
# tests/run, and "# vmm: test N ms" comment lines (the guest's own timing).
#
# Boots (each on a fresh 1 MiB disk whose sectors 0-15 start with
# "ember-hostile-sector-N\n", the rest zero; the tests check it after
# every abuse and write only at sector 64 and above):
#   qemu        QEMU microvm's virtio-blk-device (INDIRECT_DESC, EVENT_IDX on)
#               and a virtio-net-device on a restricted user netdev (for
#               hostile_net_tx), with the QEMU quirks below
#   ember       ember --disk, plus --net on a tap in a private network
#               namespace (ember-th-PID, removed on exit) for hostile_net_tx;
#               without ip(8) or /dev/net/tun hostile_net_tx SKIPs
#   ember-asan  the same with build/ember-asan, when it is built: a hostile
#               guest must not make the VMM touch memory it does not own
#               (TESTGUEST_HOSTILE_ASAN=0 leaves it out)
# Each boot also reports vmm/boot: the VMM exited cleanly (status 0)
# within TESTGUEST_TIMEOUT seconds and the guest printed its summary line.
#
# Environment: EMBER (./ember), EMBER_ASAN (build/ember-asan), TESTGUEST
# (build/testguest.elf), QEMU (qemu-system-x86_64), TESTGUEST_TIMEOUT
# (seconds per boot, 30), TESTGUEST_VERBOSE=1 (show each boot's output),
# TESTGUEST_HOSTILE=a,b (run only these tests), TESTGUEST_HOSTILE_ASAN=0.
set -u
cd "$(dirname "$0")/../.." || exit 1
EMBER=${EMBER:-$PWD/ember}
EMBER_ASAN=${EMBER_ASAN:-$PWD/build/ember-asan}
TESTGUEST=${TESTGUEST:-$PWD/build/testguest.elf}
QEMU=${QEMU:-qemu-system-x86_64}
TIMEOUT=${TESTGUEST_TIMEOUT:-30}
VERBOSE=${TESTGUEST_VERBOSE:-0}

HOSTILE_TESTS=(hostile_regs_readonly hostile_config_space hostile_mmio_width
	hostile_status_order hostile_features_unoffered hostile_status_clear
	hostile_queue_size hostile_queue_addr hostile_queue_not_ready hostile_notify_early
	hostile_notify_bad_queue hostile_queue_change_live
	hostile_desc_outside_ram hostile_desc_loop hostile_chain_long hostile_len_overflow
	hostile_indirect_len hostile_indirect_nested hostile_indirect_after_direct
	hostile_avail_head hostile_avail_idx
	hostile_blk_layout hostile_blk_len hostile_blk_sector hostile_blk_type
	hostile_reset_inflight hostile_net_tx)
list=${TESTGUEST_HOSTILE:-$(IFS=,; echo "${HOSTILE_TESTS[*]}")}
# The guest reads at most 511 bytes of one command line word: name the
# whole group by its prefix unless a subset was asked for.
names=${TESTGUEST_HOSTILE:-hostile_*}

# Known QEMU 7.2 answers the guest reports as INFO instead of failing
# (tests/guest/hostile.c and README.md, "Hostile tests"): OK for buffers
# outside RAM, FEATURES_OK kept with unoffered bits, buffers used after
# QueueReady 0 and before DRIVER_OK, no indirect table after direct
# descriptors, and an abort on a too-short virtio-net transmit buffer (not
# tried).  TESTGUEST_HOSTILE_QUIRKS= (empty) makes the guest strict on
# QEMU too.
QEMU_QUIRKS=${TESTGUEST_HOSTILE_QUIRKS-dma_unassigned,features_unoffered,queue_not_ready,notify_early,indirect_after_direct,net_short_tx}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/testguest-hostile.XXXXXX") || exit 1
NS=ember-th-$$
ns_made=
trap 'rm -rf "$tmp"; [ -n "$ns_made" ] && ip netns del "$NS" 2>/dev/null' EXIT

all_fail() { # LABEL "LIST" WHY
	local t IFS=,
	for t in $2 boot; do echo "FAIL $1/$t: $3"; done
}
all_skip() {
	local t IFS=,
	for t in $2; do echo "SKIP $1/$t: $3"; done
}

# The disk every boot gets fresh: 1 MiB, sectors 0-15 marked.
make_disk() { # PATH
	truncate -s 1M "$1"
	for i in $(seq 0 15); do
		printf 'ember-hostile-sector-%d\n' "$i" |
			dd of="$1" bs=512 seek="$i" conv=notrunc status=none
	done
}

report() { # LABEL LIST RC OUT ERR
	local label=$1 list=$2 rc=$3 out=$4 err=$5 t line res why us bad=0
	local IFS=,
	for t in $list; do
		line=$(grep -m1 "^TEST $t " "$out")
		res=$(echo "$line" | cut -d' ' -f3)
		why=$(echo "$line" | cut -d' ' -f4-)
		case $res in
		PASS) echo "PASS $label/$t" ;;
		SKIP) echo "SKIP $label/$t: $why" ;;
		FAIL) echo "FAIL $label/$t: $why"; bad=1 ;;
		*) echo "FAIL $label/$t: no result (the guest never reported this test)"; bad=1 ;;
		esac
		us=$(grep -m1 "^TIME $t " "$out" | cut -d' ' -f3)
		[ -n "$us" ] && echo "# $label: $t $((us / 1000)) ms"
	done
	unset IFS
	us=$(grep -m1 "^TIME total " "$out" | cut -d' ' -f3)
	[ -n "$us" ] && echo "# $label: all tests $((us / 1000)) ms"
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
		echo "---- $label: guest output (last 60 lines) ----"
		tail -n 60 "$out" | sed 's/^/    /'
		if [ -s "$err" ]; then
			echo "---- $label: stderr (last 20 lines) ----"
			tail -n 20 "$err" | sed 's/^/    /'
		fi
	fi
}

run_vm() { # LABEL LIST CMD...
	local label=$1 list=$2 rc ms t0
	shift 2
	local out=$tmp/$label.out err=$tmp/$label.err
	t0=$(date +%s%N)
	timeout -k 2 "$TIMEOUT" "$@" >"$out" 2>"$err" </dev/null
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	sed -i 's/\r$//' "$out"
	echo "# $label: exit status $rc after $ms ms"
	[ "$VERBOSE" = 1 ] && echo "# $label: $*"
	report "$label" "$list" "$rc" "$out" "$err"
}

if [ ! -r "$TESTGUEST" ]; then
	echo "FAIL testguest-hostile: $TESTGUEST not built (make testguest)"
	exit 1
fi
if [ ! -w /dev/kvm ]; then
	all_skip qemu "$list" "/dev/kvm not usable"
	all_skip ember "$list" "/dev/kvm not usable"
	exit 0
fi
cmdline="ember.test=$names testguest.times=1"

# ---- QEMU microvm ----
if ! command -v "$QEMU" >/dev/null; then
	all_skip qemu "$list" "$QEMU not installed"
else
	make_disk "$tmp/qemu.img"
	run_vm qemu "$list" "$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on \
		-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config \
		-nographic -no-reboot -serial stdio -kernel "$TESTGUEST" \
		-global virtio-mmio.force-legacy=false \
		-drive "id=d0,file=$tmp/qemu.img,format=raw,if=none,cache=writeback" \
		-device virtio-blk-device,drive=d0,indirect_desc=on,event_idx=on \
		-netdev user,id=n0,restrict=on -device virtio-net-device,netdev=n0,indirect_desc=on \
		-append "$cmdline${QEMU_QUIRKS:+ testguest.quirks=$QEMU_QUIRKS}"
fi

# ---- ember ----
if [ ! -x "$EMBER" ]; then
	all_fail ember "$list" "ember not built ($EMBER)"
elif ! "$EMBER" --help 2>&1 | grep -q -- --disk; then
	all_skip ember "$list" "ember has no virtio-blk yet"
else
	# hostile_net_tx's frames go to a tap that exists only inside a
	# namespace of our own: nothing leaves it.
	in_ns=() net=()
	if command -v ip >/dev/null && [ -w /dev/net/tun ] &&
		ip netns add "$NS" 2>/dev/null; then
		ns_made=1
		if ip -n "$NS" tuntap add dev thtap0 mode tap &&
			ip -n "$NS" link set thtap0 up; then
			in_ns=(ip netns exec "$NS") net=(--net thtap0)
		fi
	fi
	make_disk "$tmp/ember.img"
	run_vm ember "$list" "${in_ns[@]}" "$EMBER" --kernel "$TESTGUEST" --console stdio \
		--disk "$tmp/ember.img" "${net[@]}" --cmdline "$cmdline"
	if [ "${TESTGUEST_HOSTILE_ASAN:-1}" != 0 ] && [ -x "$EMBER_ASAN" ] &&
		"$EMBER_ASAN" --help 2>&1 | grep -q -- --disk; then
		make_disk "$tmp/asan.img"
		ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
			run_vm ember-asan "$list" "${in_ns[@]}" "$EMBER_ASAN" --kernel "$TESTGUEST" --console stdio \
			--disk "$tmp/asan.img" "${net[@]}" --cmdline "$cmdline"
	fi
fi
exit 0
