#!/usr/bin/env bash
# Runtime operator mistakes and host trouble while a VM runs: the device
# path counts the errors, logs one line, and the VM goes on and exits 0.
#   disk-full*      the image is sparse, larger than the tmpfs it lives on;
#                   the test guest (blk_fill) writes it until ENOSPC: IOERR
#                   to the guest, one line, ember's count = the guest's
#   tap-vanishes    ip link del of the tap while the test guest transmits
#                   (net_tap_loss): link down for the guest, one line
#   console-full    --console file:/dev/full: output lost, one line, exit 0
. "$(dirname "$0")/lib.sh"

TG=${TESTGUEST:-$ROOT/build/testguest.elf}
NS=ember-op-$$
FS=$TMP/fs
mounted=
bg=
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null && wait "$bg" 2>/dev/null
	[ -n "$mounted" ] && umount "$FS" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

why=
if ! have_kvm; then why="/dev/kvm not usable"
elif [ ! -r "$TG" ]; then why="the test guest is not built (make testguest)"
fi
if [ -n "$why" ]; then
	for t in disk-full disk-full-direct tap-vanishes console-full; do skip "operator/$t" "$why"; done
	exit 0
fi

# other_lines FILE: stderr lines that are neither the software-KVM notice
# nor --boot-time's report.
other_lines() {
	err_lines "$1" | grep -vE '^ember: (boot-time: |exits [0-9]|serial: [0-9]+ bytes|io_uring: setup|virtio-(blk|net)[0-9]+:? .*(reads|rx [0-9]+ packets)|virtio-(blk|net)[0-9]+ transport: )'
}

# ---- a full host filesystem ----
# disk_full NAME DISKOPTS: a 64 MiB sparse image on an 8 MiB tmpfs; the
# guest writes all of it (blk_fill).
disk_full() {
	local name=operator/$1 opts=$2 lines ioerr ok flush counted written want
	rm -f "$FS/disk.img"
	truncate -s 64M "$FS/disk.img"
	run_vm "$TMP/o" "$TMP/e" 60 "$EMBER" --kernel "$TG" --console stdio --boot-time \
		--disk "$FS/disk.img$opts" --cmdline ember.test=blk_fill
	lines=$(other_lines "$TMP/e")
	ioerr=$(sed -n 's/.*INFO blk_fill .* ioerr=\([0-9]*\) .*/\1/p' "$TMP/o")
	ok=$(sed -n 's/.*INFO blk_fill .* ok=\([0-9]*\) .*/\1/p' "$TMP/o")
	flush=$(sed -n 's/.*INFO blk_fill .* flush=\([A-Za-z/]*\);.*/\1/p' "$TMP/o")
	counted=$(sed -n 's/^ember: virtio-blk0: .*, \([0-9]*\) I\/O errors, .*/\1/p' "$TMP/e")
	written=$(sed -n 's/^ember: virtio-blk0: .* writes (\([0-9]*\) bytes).*/\1/p' "$TMP/e")
	want=$((${ioerr:-0} + $([ "$flush" = IOERR ] && echo 1 || echo 0)))
	if [ "$RC" -ne 0 ]; then
		fail "$name" "exit status $RC; stderr: $(head -c 400 "$TMP/e"); guest: $(tail -n 5 "$TMP/o" | tr '\r\n' '  ')"
	elif ! grep -q 'TEST blk_fill PASS' "$TMP/o" || ! grep -q 'TESTGUEST DONE passed=1 failed=0' "$TMP/o"; then
		fail "$name" "guest: $(grep -E 'TEST |INFO|DONE' "$TMP/o" | tr '\r\n' '  ')"
	elif [ -z "$ioerr" ] || [ "$ioerr" -eq 0 ]; then
		fail "$name" "the guest saw no IOERR: the filesystem never filled ($(grep INFO "$TMP/o" | tr -d '\r'))"
	elif [ "$(printf '%s\n' "$lines" | grep -c .)" -ne 1 ] ||
		! printf '%s\n' "$lines" | grep -qxE "ember: virtio-blk0 \($FS/disk.img\): write: No space left on device; the guest gets IOERR \(the VM goes on; further host I/O errors on this disk are only counted\)"; then
		fail "$name" "expected one line about ENOSPC on stderr, got: $lines"
	elif [ "$counted" != "$want" ]; then
		fail "$name" "ember counted ${counted:-no} I/O errors, the guest saw $ioerr IOERR (flush $flush)"
	elif [ "$written" != $(((${ok:-0} + 1) * 65536)) ]; then
		# The guest's writes that ended OK, and its rewrite of sector 0
		# after the fill, 64 KiB each: what failed is not counted.
		fail "$name" "ember counted ${written:-no} bytes written, the guest had $ok + 1 writes of 64 KiB succeed"
	else
		pass "$name"
		echo "INFO $name: $(grep -o 'INFO blk_fill.*' "$TMP/o" | tr -d '\r'); ember: $counted I/O errors, $written bytes written"
	fi
}
mkdir -p "$FS"
if mount -t tmpfs -o size=8m ember-op "$FS" 2>"$TMP/mnt.err"; then
	mounted=1
	disk_full disk-full ""
	disk_full disk-full-direct ",direct"
	umount "$FS" && mounted=
else
	fail operator/disk-full "cannot mount a tmpfs: $(head -c 200 "$TMP/mnt.err")"
	fail operator/disk-full-direct "cannot mount a tmpfs"
fi

# ---- the console output cannot be written ----
run_vm "$TMP/o" "$TMP/e" 20 "$EMBER" --kernel "$TG" --console file:/dev/full --cmdline ember.test=serial_tx
lines=$(other_lines "$TMP/e")
if [ "$RC" -ne 0 ]; then
	fail operator/console-full "exit status $RC: $(head -c 300 "$TMP/e")"
elif [ "$(printf '%s\n' "$lines" | grep -c .)" -ne 1 ] ||
	! printf '%s\n' "$lines" | grep -qxF "ember: serial console: writing the guest's output failed: No space left on device (the VM goes on; lost output is only counted)"; then
	fail operator/console-full "expected one line about ENOSPC, got: $lines"
else
	pass operator/console-full
fi

# ---- the tap is deleted while the guest uses it ----
why=
if [ "$(id -u)" != 0 ]; then why="needs root (network namespace, taps)"
elif ! command -v ip >/dev/null; then why="no ip(8) (iproute2)"
elif [ ! -e /dev/net/tun ]; then why="no /dev/net/tun"
fi
if [ -n "$why" ]; then
	skip operator/tap-vanishes "$why"
	exit 0
fi
if ! { ip netns add "$NS" && ip netns exec "$NS" ip tuntap add dev optap0 mode tap &&
	ip netns exec "$NS" ip link set optap0 up; } 2>"$TMP/ns.err"; then
	fail operator/tap-vanishes "namespace setup: $(head -c 200 "$TMP/ns.err")"
	exit 0
fi
: >"$TMP/out"
ip netns exec "$NS" timeout -k 5 30 "$EMBER" --kernel "$TG" --console "file:$TMP/out" --boot-time \
	--net optap0 --cmdline ember.test=net_tap_loss,serial_tx </dev/null 2>"$TMP/e" &
bg=$!
for ((i = 0; i < 200; i++)); do grep -q '^READY net_tap_loss' "$TMP/out" && break; sleep 0.05; done
ready=$(grep -c '^READY net_tap_loss' "$TMP/out")
ip netns exec "$NS" ip link del optap0
wait "$bg"
RC=$?
bg=
lines=$(other_lines "$TMP/e")
gone="ember: virtio-net0: tap optap0 was deleted: the guest sees its link down, frames it sends are dropped \(the VM goes on; further tap errors are only counted\)"
# A write racing the deletion may see the interface down first (EIO),
# which has a line of its own.
down="ember: virtio-net0: write to optap0: Input/output error \(is the tap up\?\) \(the VM goes on; further tap errors are only counted\)"
txerr=$(sed -n 's/^ember: virtio-net0 (optap0): .* tx [0-9]* packets ([0-9]* bytes), [0-9]* dropped, \([0-9]*\) errors;.*/\1/p' "$TMP/e")
if [ "$ready" -eq 0 ]; then
	fail operator/tap-vanishes "the guest never said READY: $(tr '\r\n' '  ' <"$TMP/out" | head -c 400)"
elif [ "$RC" -ne 0 ]; then
	fail operator/tap-vanishes "exit status $RC: $(head -c 400 "$TMP/e")"
elif ! grep -q 'TEST net_tap_loss PASS' "$TMP/out" || ! grep -q 'TEST serial_tx PASS' "$TMP/out" ||
	! grep -q 'TESTGUEST DONE passed=2 failed=0' "$TMP/out"; then
	fail operator/tap-vanishes "guest: $(grep -E 'TEST |INFO|DONE' "$TMP/out" | tr '\r\n' '  ')"
elif ! printf '%s\n' "$lines" | grep -qxE "$gone" ||
	printf '%s\n' "$lines" | grep -vxE "$gone|$down" | grep -q . ||
	[ "$(printf '%s\n' "$lines" | grep -cxE "$gone")" -ne 1 ]; then
	fail operator/tap-vanishes "expected the one line about the deleted tap, got: $lines"
elif [ -z "$txerr" ] || [ "$txerr" -lt 1 ]; then
	fail operator/tap-vanishes "no transmit errors counted: $(grep 'virtio-net0 (' "$TMP/e")"
else
	pass operator/tap-vanishes
	echo "INFO operator/tap-vanishes: $(grep -o 'INFO net_tap_loss.*' "$TMP/out" | tr -d '\r'); ember: $txerr tx errors"
fi
