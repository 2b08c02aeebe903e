#!/usr/bin/env bash
# --disk: every bad disk input gives exactly one stderr line naming the path
# (or option) and the reason, exit status 2 for a malformed --disk value,
# 1 for a file that cannot be used; good disks boot.
. "$(dirname "$0")/lib.sh"

G=$KVMGUEST/hello.elf
EXPECT_GROUP=blk-cli

chmod 755 "$TMP"
mkdir -p "$TMP/dir"
cp "$G" "$TMP/pub.elf" && chmod 644 "$TMP/pub.elf"
truncate -s 1M "$TMP/a.img" "$TMP/b.img"
truncate -s 1000 "$TMP/odd.img"
: >"$TMP/empty.img"
truncate -s 64K "$TMP/secret.img" && chmod 000 "$TMP/secret.img"
truncate -s 64K "$TMP/readonly.img" && chmod 444 "$TMP/readonly.img"
A=$TMP/a.img
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

expect missing 1 "ember: --disk $TMP/nope: cannot open: No such file or directory" \
	"$EMBER" --kernel "$G" --disk "$TMP/nope"
expect directory 1 "ember: --disk $TMP/dir: is a directory" "$EMBER" --kernel "$G" --disk "$TMP/dir"
expect not-a-file 1 "ember: --disk /dev/null: not a regular file or block device \\(a character device\\)" \
	"$EMBER" --kernel "$G" --disk /dev/null
expect size-not-sectors 1 "ember: --disk $TMP/odd.img: size 1000 bytes is not a multiple of 512" \
	"$EMBER" --kernel "$G" --disk "$TMP/odd.img"
expect empty 1 "ember: --disk $TMP/empty.img: is empty \(0 bytes\)" \
	"$EMBER" --kernel "$G" --disk "$TMP/empty.img"
expect unreadable 1 "ember: --disk $TMP/secret.img: cannot open: Permission denied" \
	"${nobody[@]}" "$EMBER" --kernel "$TMP/pub.elf" --disk "$TMP/secret.img,ro"
expect unwritable 1 "ember: --disk $TMP/readonly.img: cannot open read-write \(add ,ro for a read-only disk\): Permission denied" \
	"${nobody[@]}" "$EMBER" --kernel "$TMP/pub.elf" --disk "$TMP/readonly.img"
expect unknown-option 2 "ember: --disk $A: unknown option 'rw' \(expected ro, root, direct or serial=ID\)" \
	"$EMBER" --kernel "$G" --disk "$A,rw"
expect serial-too-long 2 "ember: --disk $A: serial must be 1 to 20 characters" \
	"$EMBER" --kernel "$G" --disk "$A,serial=123456789012345678901"
expect no-path 2 "ember: --disk ',ro': needs a path before the options" "$EMBER" --kernel "$G" --disk ,ro
expect missing-value 2 "ember: --disk needs a value \(see ember --help\)" "$EMBER" --kernel "$G" --disk
expect two-roots 2 "ember: --disk $TMP/b.img,root: only one disk can be the root \($A already is\)" \
	"$EMBER" --kernel "$G" --disk "$A,root" --disk "$TMP/b.img,root"
expect same-image 1 "ember: --disk $TMP/./a.img: the same image as --disk $A" \
	"$EMBER" --kernel "$G" --disk "$A" --disk "$TMP/./a.img,ro"
mkfifo "$TMP/fifo"
ln -s loop-b "$TMP/loop-a" && ln -s loop-a "$TMP/loop-b"
expect empty-path 2 "ember: --disk '': needs a path before the options" "$EMBER" --kernel "$G" --disk ""
expect fifo 1 "ember: --disk $TMP/fifo: not a regular file or block device \(a FIFO\)" "$EMBER" --kernel "$G" --disk "$TMP/fifo"
expect dev-zero 1 "ember: --disk /dev/zero: not a regular file or block device \(a character device\)" \
	"$EMBER" --kernel "$G" --disk /dev/zero
expect symlink-loop 1 "ember: --disk $TMP/loop-a: cannot open: Too many levels of symbolic links" \
	"$EMBER" --kernel "$G" --disk "$TMP/loop-a"
expect empty-option 2 "ember: --disk $A: unknown option '' \(expected ro, root, direct or serial=ID\)" \
	"$EMBER" --kernel "$G" --disk "$A,"
expect option-twice 2 "ember: --disk $A: 'ro' given twice" "$EMBER" --kernel "$G" --disk "$A,ro,root,ro"
expect serial-twice 2 "ember: --disk $A: serial= given twice" "$EMBER" --kernel "$G" --disk "$A,serial=a,serial=b"
expect serial-empty 2 "ember: --disk $A: serial must be 1 to 20 characters" "$EMBER" --kernel "$G" --disk "$A,serial="
expect serial-not-printable 2 "ember: --disk $A: serial must be printable ASCII without spaces" \
	"$EMBER" --kernel "$G" --disk "$A,serial=a b"
many=()
for i in 1 2 3 4 5 6 7 8 9; do many+=(--disk "$A"); done
expect too-many 2 "ember: --disk $A: too many disks \(at most 8\)" "$EMBER" --kernel "$G" "${many[@]}"

# An image on a read-only filesystem (a tmpfs remounted ro, in a private
# mount namespace).
mkdir -p "$TMP/rofs"
expect read-only-filesystem 1 "ember: --disk $TMP/rofs/x.img: cannot open read-write \(add ,ro for a read-only disk\): Read-only file system" \
	unshare -m bash -c 'mount -t tmpfs -o size=1m none "$1" && truncate -s 64K "$1/x.img" &&
		mount -o remount,ro "$1" && shift && exec "$@"' _ "$TMP/rofs" "$EMBER" --kernel "$G" --disk "$TMP/rofs/x.img"
# Block devices: loop devices over small images (needs root and losetup).
loops=()
trap 'for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done; rm -rf "$TMP"' EXIT
loopdev() { # FILE [-r]: attach, print the device
	local l
	l=$(losetup -f --show "$@" 2>/dev/null) || return 1
	loops+=("$l")
	echo "$l"
}
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && have_kvm &&
	truncate -s 1M "$TMP/bd.img" "$TMP/bdro.img" && BD=$(loopdev "$TMP/bd.img") &&
	BDRO=$(loopdev -r "$TMP/bdro.img"); then
	loops=("$BD" "$BDRO")
	expect block-device 0 "" "$EMBER" --kernel "$G" --console none --disk "$BD"
	expect block-device-read-only 1 "ember: --disk $BDRO: is a read-only block device \(add ,ro for a read-only disk\)" \
		"$EMBER" --kernel "$G" --disk "$BDRO"
	expect block-device-read-only-ro 0 "" "$EMBER" --kernel "$G" --console none --disk "$BDRO,ro"
else
	for t in block-device block-device-read-only block-device-read-only-ro; do
		skip "blk-cli/$t" "needs root, losetup, loop devices and /dev/kvm"
	done
fi

# Locks: a writer excludes everyone, readers share.
flock -F -x "$A" sleep 30 &
lockpid=$!
for ((i = 0; i < 50; i++)); do flock -n -s "$A" true 2>/dev/null || break; sleep 0.1; done
expect locked 1 "ember: --disk $A: is in use by another process \(locked\)" "$EMBER" --kernel "$G" --disk "$A"
expect locked-ro 1 "ember: --disk $A: is in use by another process \(locked\)" "$EMBER" --kernel "$G" --disk "$A,ro"
kill "$lockpid"; wait "$lockpid" 2>/dev/null
flock -F -s "$A" sleep 30 &
lockpid=$!
for ((i = 0; i < 50; i++)); do flock -n -x "$A" true 2>/dev/null || break; sleep 0.1; done
if have_kvm; then
	expect shared-ro 0 "" "$EMBER" --kernel "$G" --console none --disk "$A,ro"
fi
expect shared-rw 1 "ember: --disk $A: is in use by another process \(locked\)" "$EMBER" --kernel "$G" --disk "$A"
kill "$lockpid"; wait "$lockpid" 2>/dev/null

if have_kvm; then
	expect eight-disks 0 "" "$EMBER" --kernel "$G" --console none \
		$(for i in 1 2 3 4 5 6 7 8; do truncate -s 64K "$TMP/d$i.img"; echo --disk "$TMP/d$i.img"; done)
	# Killed outright, ember cannot clean up, and the kernel frees its
	# io_uring ring some milliseconds later, once its I/O is done.  The
	# image's lock lives with the ring on purpose (blk.c: no write of the
	# dead VM may land under a new one), and a VM restarted at once must
	# wait for it rather than be refused.
	TG=${TESTGUEST:-$ROOT/build/testguest.elf}
	if [ -r "$TG" ]; then
		"$EMBER" --kernel "$TG" --console none --disk "$A" --cmdline ember.test=serial_rx_poll \
			</dev/null >/dev/null 2>&1 &
		bg=$!
		for ((i = 0; i < 100; i++)); do flock -n -s "$A" true 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$bg"
		wait "$bg" 2>/dev/null
		expect restart-after-kill 0 "" "$EMBER" --kernel "$G" --console none --disk "$A"
	else
		skip blk-cli/restart-after-kill "the test guest is not built (make testguest)"
	fi
else
	skip blk-cli/eight-disks "/dev/kvm not usable"
	skip blk-cli/restart-after-kill "/dev/kvm not usable"
fi
if "$EMBER" --help | grep -q -- '--disk PATH\[,ro\]\[,root\]\[,direct\]\[,serial=ID\]'; then
	pass blk-cli/help
else
	fail blk-cli/help "--help does not document --disk"
fi
