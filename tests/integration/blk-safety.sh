#!/usr/bin/env bash
# Data safety: the test guest writes a pattern and flushes it (blk_flush),
# then waits for console input (serial_rx_poll); at that moment ember is
# killed with SIGKILL.  The host image must hold the pattern: sectors 40-47
# each start with the guest's sector magic "EMBRSECT" (as the little-endian
# word tests/guest/blk.c writes) and their own sector number.  Then the lock
# must be gone with the process: a new ember opens the image read-write.
# Runs with a buffered and with an O_DIRECT disk.
. "$(dirname "$0")/lib.sh"

TG=${TESTGUEST:-$ROOT/build/testguest.elf}
if ! have_kvm; then
	skip blk-safety "/dev/kvm not usable"
	exit 0
fi
if [ ! -x "$EMBER" ] || [ ! -r "$TG" ]; then
	fail blk-safety "needs $EMBER and $TG (make, make testguest)"
	exit 1
fi

# check_pattern IMG: sectors 40..47 hold the magic and their number.
check_pattern() {
	local s magic num
	for s in 40 41 42 43 44 45 46 47; do
		magic=$(od -An -tx1 -j $((s * 512)) -N 8 "$1" | tr -d ' \n')
		num=$(od -An -tu8 -j $((s * 512 + 8)) -N 8 "$1" | tr -d ' \n')
		[ "$magic" = 45424d5253454354 ] || { echo "sector $s: magic $magic"; return 1; }
		[ "$num" = "$s" ] || { echo "sector $s: holds sector number $num"; return 1; }
	done
}

# run NAME DISK-OPTIONS
run() {
	local name=$1 opts=$2 img=$TMP/$1.img out=$TMP/$1.out pid i why=
	truncate -s 4M "$img"
	mkfifo "$TMP/$name.in"
	"$EMBER" --kernel "$TG" --console stdio --disk "$img$opts" \
		--cmdline "ember.test=blk_flush,serial_rx_poll" <"$TMP/$name.in" >"$out" 2>"$TMP/$name.err" &
	pid=$!
	exec {hold}>"$TMP/$name.in"   # keep the guest's input open (and empty)
	for ((i = 0; i < 300; i++)); do
		grep -q 'READY serial_rx_poll' "$out" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q 'READY serial_rx_poll' "$out"; then
		why="the guest never got to the wait after blk_flush"
	elif ! grep -q 'TEST blk_flush PASS' "$out"; then
		why="blk_flush did not pass: $(grep -m1 'TEST blk_flush' "$out")"
	fi
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	exec {hold}>&-
	if [ -z "$why" ] && ! why=$(check_pattern "$img"); then
		why="after SIGKILL the image lacks the flushed pattern: $why"
	fi
	if [ -z "$why" ]; then
		timeout -k 2 20 "$EMBER" --kernel "$TG" --console none --disk "$img$opts" \
			--cmdline "ember.test=blk_getid" </dev/null >/dev/null 2>"$TMP/$name.err2"
		[ $? -eq 0 ] || why="a new ember could not use the image: $(err_lines "$TMP/$name.err2" | head -n 1)"
	fi
	if [ -z "$why" ]; then
		pass "blk-safety/$name"
	else
		fail "blk-safety/$name" "$why"
		tail -n 5 "$out" "$TMP/$name.err" | sed 's/^/    /'
	fi
}

run buffered ""
if dd if=/dev/zero of="$TMP/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
	run direct ",direct"
else
	skip blk-safety/direct "O_DIRECT not supported in $TMP"
fi
