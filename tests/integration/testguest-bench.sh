#!/usr/bin/env bash
# The benchmark modes of the test guest (ember.bench=reset, blk:..., net:...,
# tests/guest/main.c, bench_*.c) and the net benchmark's peer (bench/netpeer-bench.c)
# work, on ember and on QEMU microvm: one short run each (1 s), which must
# report a plausible result; and bad ember.bench= words give a FAIL line
# with the reason instead of a hang.  make bench relies on all of it.
# Prints PASS/FAIL/SKIP lines for tests/run.
#
# Env: EMBER, TESTGUEST, QEMU, CC.
set -u
cd "$(dirname "$0")/../.."
EMBER=${EMBER:-$PWD/ember}
TESTGUEST=${TESTGUEST:-$PWD/build/testguest.elf}
QEMU=${QEMU:-qemu-system-x86_64}
PEER=$PWD/build/netpeer-bench
MAC=52:54:00:be:ec:02
NS=ember-tb-$$
QEMU_BASE=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
	-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config -nographic
	-no-reboot -serial stdio -kernel "$TESTGUEST" -global virtio-mmio.force-legacy=false)

for f in "$EMBER" "$TESTGUEST"; do
	[ -e "$f" ] || { echo "FAIL testguest-bench: $f not built (make ember testguest)"; exit 1; }
done
if [ ! -w /dev/kvm ]; then
	echo "SKIP testguest-bench: /dev/kvm not usable"
	exit 0
fi
have_qemu=1
command -v "$QEMU" >/dev/null || have_qemu=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/testguest-bench.XXXXXX") || exit 1
peer_pid=
cleanup() {
	[ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null && wait "$peer_pid" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# field KEY LINE
field() { local w; for w in $2; do [ "${w%%=*}" = "$1" ] && { echo "${w#*=}"; return; }; done; }

# check NAME OUTFILE RC KIND: the guest's BENCH result line and a PASS.
# Sets RES to the result line.
check() {
	local name=$1 out=$2 rc=$3 kind=$4
	RES=$(tr -d '\r' <"$out" | grep -m1 "^BENCH $kind \(rw\|dir\)=")
	if [ "$rc" -ne 0 ]; then
		echo "FAIL $name: VMM exit status $rc: $(tr -d '\r' <"$out" | grep -m1 '^TEST ' || tail -n 2 "$out")"
		return 1
	elif ! tr -d '\r' <"$out" | grep -q "^TEST bench_$kind PASS"; then
		echo "FAIL $name: $(tr -d '\r' <"$out" | grep -m1 '^TEST ' || echo 'no TEST line')"
		return 1
	elif [ -z "$RES" ]; then
		echo "FAIL $name: no BENCH $kind result line"
		return 1
	fi
	return 0
}

# ---- reset (the startup and churn benchmarks' guest) ----
# ember.bench=reset ends the VM before the console is set up: status 0 and
# not a byte of output, on both VMMs; on ember, --boot-time shows only the
# few exits of the boot path (the full test-guest start takes ~200).  A
# word that merely starts with "reset" is not the mode: that guest runs.
reset_one() { # NAME CMD...
	local name=$1 rc
	shift
	timeout -k 2 30 "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "FAIL $name: VMM exit status $rc: $(tail -c 200 "$tmp/err")"
	elif [ -s "$tmp/out" ]; then
		echo "FAIL $name: the guest printed before resetting: $(head -c 200 "$tmp/out" | tr -d '\r')"
	else
		return 0
	fi
	return 1
}
if reset_one ember/reset "$EMBER" --kernel "$TESTGUEST" --console stdio --boot-time --cmdline ember.bench=reset; then
	exits=$(sed -n 's/^ember: exits \([0-9]*\),.*/\1/p' "$tmp/err")
	if [ -n "$exits" ] && [ "$exits" -le 20 ]; then echo "PASS ember/reset ($exits exits)"
	else echo "FAIL ember/reset: ${exits:-no} exits reported by --boot-time, want at most 20"; fi
fi
reset_one ember/reset-pvh "$EMBER" --kernel "$TESTGUEST" --entry pvh --console stdio --cmdline ember.bench=reset &&
	echo "PASS ember/reset-pvh"
if [ $have_qemu = 1 ]; then
	reset_one qemu/reset "${QEMU_BASE[@]}" -append ember.bench=reset && echo "PASS qemu/reset"
fi
timeout -k 2 30 "$EMBER" --kernel "$TESTGUEST" --console stdio --cmdline "ember.bench=resetx ember.test=" \
	</dev/null >"$tmp/out" 2>&1
if tr -d '\r' <"$tmp/out" | grep -q '^TESTGUEST DONE passed=0 failed=0'; then echo "PASS ember/reset-other-word"
else echo "FAIL ember/reset-other-word: ember.bench=resetx: $(tr -d '\r' <"$tmp/out" | head -c 200)"; fi

# ---- blk ----
img=$tmp/disk.img
truncate -s 64M "$img"
blk_one() { # NAME SPEC CMD...
	local name=$1 spec=$2 rc
	shift 2
	timeout -k 2 30 "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	check "$name" "$tmp/out" $rc blk || return
	local ops iops us
	ops=$(field ops "$RES") iops=$(field iops "$RES") us=$(field us "$RES")
	if [ "${ops:-0}" -gt 0 ] && [ "${iops:-0}" -gt 0 ] && [ "${us:-0}" -ge 900000 ] &&
		[ "$(field notifies "$RES")" -le "$(field kicks "$RES")" ]; then
		echo "PASS $name ($spec: $iops IOPS)"
	else
		echo "FAIL $name: implausible result: $RES"
	fi
}
for spec in randread:4k:4:1 write:128k:2:1; do
	blk_one "ember/blk-$spec" "$spec" "$EMBER" --kernel "$TESTGUEST" --console stdio --disk "$img" \
		--cmdline "ember.bench=blk:$spec"
	if [ $have_qemu = 1 ]; then
		blk_one "qemu/blk-$spec" "$spec" "${QEMU_BASE[@]}" \
			-drive "id=d0,file=$img,format=raw,if=none" \
			-device virtio-blk-device,drive=d0 -append "ember.bench=blk:$spec"
	fi
done
# A malformed word fails with its reason, at once.
timeout -k 2 30 "$EMBER" --kernel "$TESTGUEST" --console stdio --disk "$img" \
	--cmdline "ember.bench=blk:randread:1000:1:1" </dev/null >"$tmp/out" 2>&1
if tr -d '\r' <"$tmp/out" | grep -q '^TEST bench_blk FAIL .*BS must be'; then
	echo "PASS ember/blk-bad-args"
else
	echo "FAIL ember/blk-bad-args: $(tr -d '\r' <"$tmp/out" | grep -m1 '^TEST ' || echo 'no TEST line')"
fi

# ---- net ----
why=
if [ "$(id -u)" != 0 ]; then why="needs root (network namespace, tap)"
elif ! command -v ip >/dev/null; then why="no ip(8) (iproute2)"
elif [ ! -w /dev/net/tun ]; then why="/dev/net/tun not usable"
fi
if [ -n "$why" ]; then
	for t in net-tx net-rx net-bad-args; do echo "SKIP ember/$t: $why"; done
	exit 0
fi
if [ ! -x "$PEER" ] || [ bench/netpeer-bench.c -nt "$PEER" ]; then
	if ! ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -o "$PEER" bench/netpeer-bench.c 2>"$tmp/cc.err"; then
		echo "FAIL testguest-bench/net: cannot build bench/netpeer-bench.c: $(head -c 300 "$tmp/cc.err")"
		exit 1
	fi
fi
if ! { ip netns add "$NS" &&
	ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 &&
	ip netns exec "$NS" ip tuntap add dev bnt0 mode tap &&
	ip netns exec "$NS" ip link set bnt0 up; } 2>"$tmp/ns.err"; then
	echo "FAIL testguest-bench/net: network namespace setup failed: $(head -c 300 "$tmp/ns.err")"
	exit 1
fi

# net_one NAME DIR LEN CMD...: the peer first (told to go at once: the
# guest's window opens on the first frame for rx, and nothing of the
# benchmark's ethertype comes before it for tx), then the boot, then stop.
net_one() {
	local name=$1 dir=$2 len=$3 rc pres i fd
	shift 3
	rm -f "$tmp/ctl"
	mkfifo "$tmp/ctl"
	if [ "$dir" = tx ]; then
		ip netns exec "$NS" "$PEER" --if bnt0 --recv "$len" <"$tmp/ctl" >"$tmp/peer" 2>&1 &
	else
		ip netns exec "$NS" "$PEER" --if bnt0 --send "$len" --dst "$MAC" <"$tmp/ctl" >"$tmp/peer" 2>&1 &
	fi
	peer_pid=$!
	exec {fd}>"$tmp/ctl"
	for ((i = 0; i < 300; i++)); do grep -q '^PEER ready' "$tmp/peer" && break; sleep 0.01; done
	echo go >&$fd
	timeout -k 2 30 ip netns exec "$NS" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	sleep 0.1
	echo stop >&$fd
	exec {fd}>&-
	wait "$peer_pid"
	peer_pid=
	pres=$(grep -m1 '^PEER result' "$tmp/peer")
	check "$name" "$tmp/out" $rc net || return
	local frames tail pf
	frames=$(field frames "$RES") tail=$(field tail "$RES") pf=$(field frames "$pres")
	if [ -z "$pres" ]; then
		echo "FAIL $name: no result from the peer: $(tail -n 2 "$tmp/peer" | tr '\n' ' ')"
	elif [ "${frames:-0}" -le 0 ] || [ "${pf:-0}" -le 0 ]; then
		echo "FAIL $name: no frames: guest $RES; peer $pres"
	elif [ "$dir" = tx ] && [ "$pf" -gt $((frames + tail)) ]; then
		echo "FAIL $name: the peer counted $pf frames, more than the guest sent ($frames + $tail)"
	elif [ "$dir" = rx ] && [ "$frames" -gt "$pf" ]; then
		echo "FAIL $name: the guest counted $frames frames, more than the peer sent ($pf)"
	else
		echo "PASS $name ($dir $len B: $(field fps "$RES") frames/s, peer $pf frames)"
	fi
}
for t in "tx 1514" "rx 60"; do
	read -r dir len <<<"$t"
	net_one "ember/net-$dir" "$dir" "$len" "$EMBER" --kernel "$TESTGUEST" --console stdio \
		--net "bnt0,mac=$MAC" --cmdline "ember.bench=net:$dir:$len:1"
	if [ $have_qemu = 1 ]; then
		net_one "qemu/net-$dir" "$dir" "$len" "${QEMU_BASE[@]}" \
			-netdev tap,id=n0,ifname=bnt0,script=no,downscript=no,vhost=off \
			-device "virtio-net-device,netdev=n0,mac=$MAC" -append "ember.bench=net:$dir:$len:1"
	fi
done
timeout -k 2 30 ip netns exec "$NS" "$EMBER" --kernel "$TESTGUEST" --console stdio --net bnt0 \
	--cmdline "ember.bench=net:tx:59:1" </dev/null >"$tmp/out" 2>&1
if tr -d '\r' <"$tmp/out" | grep -q '^TEST bench_net FAIL .*LEN must be'; then
	echo "PASS ember/net-bad-args"
else
	echo "FAIL ember/net-bad-args: $(tr -d '\r' <"$tmp/out" | grep -m1 '^TEST ' || echo 'no TEST line')"
fi
exit 0
