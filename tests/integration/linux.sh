#!/usr/bin/env bash
# Boot the demo Linux guest (make guest) with ember, 1 and 2 vCPUs.
# Each boot must exit 0 (guest reboot ends the VM), print the /init banner, and
# ember --boot-time must report the boot-complete marker (port 0x3f0 <- 123).
# Env (exported by tests/run): EMBER, GUEST_DIR; EMBER_LINUX_TIMEOUT (s, default 300: a loaded
# 2-core software-KVM host has needed 80 s).
set -u
cd "$(dirname "$0")/../.."
EMBER=${EMBER:-$PWD/ember}
GUEST_DIR=${GUEST_DIR:-$PWD/build/guest}
TIMEOUT=${EMBER_LINUX_TIMEOUT:-300}
TESTS=(linux-boot-1cpu linux-boot-2cpu)

if [ ! -e /dev/kvm ]; then
	for t in "${TESTS[@]}"; do echo "SKIP $t: /dev/kvm is absent"; done
	exit 0
fi
missing=
[ -x "$EMBER" ] || missing="$EMBER (make)"
for f in vmlinux initramfs.cpio; do
	[ -f "$GUEST_DIR/$f" ] || missing="${missing:+$missing, }$GUEST_DIR/$f (make guest)"
done
if [ -n "$missing" ]; then
	for t in "${TESTS[@]}"; do echo "FAIL $t: missing $missing"; done
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# boot NAME EXPECTED-CPUS|- [EMBER-OPTIONS...]
boot() {
	local name=$1 cpus=$2 out=$tmp/$1.out err=$tmp/$1.err rc t0 secs why= bc n
	shift 2
	t0=$EPOCHREALTIME
	timeout -k 5 "$TIMEOUT" "$EMBER" --kernel "$GUEST_DIR/vmlinux" \
		--initrd "$GUEST_DIR/initramfs.cpio" --boot-time "$@" </dev/null >"$out" 2>"$err"
	rc=$?
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	tr -d '\r' <"$out" >"$out.txt"
	bc=$(sed -nE 's/^ember: boot-time: boot-complete ([0-9]+) us$/\1/p' "$err" | head -n 1)
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		why="timed out after $TIMEOUT s"
	elif [ "$rc" -ne 0 ]; then
		why="ember exited with status $rc"
	elif ! grep -q '^ember-demo: init reached' "$out.txt"; then
		why="no 'ember-demo: init reached' banner on stdout"
	elif [ -z "$bc" ]; then
		why="no 'ember: boot-time: boot-complete <N> us' line on stderr"
	elif [ "$cpus" != - ] && ! grep -qx "ember-demo: cpus $cpus" "$out.txt"; then
		why="guest did not report $cpus CPUs ($(grep -m1 '^ember-demo: cpus' "$out.txt" || echo 'no cpus line'))"
	fi
	if [ -z "$why" ]; then
		n=$(sed -n 's/^ember-demo: cpus //p' "$out.txt" | head -n 1)
		echo "PASS $name (${secs} s, boot-complete at $((bc / 1000)) ms, guest cpus ${n:-?})"
		return
	fi
	failed=1
	echo "FAIL $name: $why (after ${secs} s)"
	echo "---- $name: ember stderr (last 30 lines)"
	tail -n 30 "$err"
	echo "---- $name: guest console (last 30 lines)"
	tail -n 30 "$out.txt"
}

boot linux-boot-1cpu -
boot linux-boot-2cpu 2 --cpus 2
exit $failed
