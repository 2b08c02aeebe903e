#!/usr/bin/env bash
# Linux on virtio-blk: the demo kernel (make guest) boots from an ext4 root
# disk built with mke2fs -d from the demo initramfs plus an /etc/ember-test
# (the demo init's test hook), with a read-only data disk and an O_DIRECT
# scratch disk:  --disk root.img,root,serial=ROOTDISK --disk ro.bin,ro
# --disk scratch.img,direct.  The guest writes a file on its root, reads the
# serial from sysfs, checksums the read-only disk and copies it to the scratch
# disk.  Afterwards the host checks each result, and that the ext4 image is
# clean (e2fsck -fn) and holds the file.
# Env: EMBER, GUEST_DIR, EMBER_LINUX_TIMEOUT (s, default 240).
. "$(dirname "$0")/lib.sh"
GUEST_DIR=${GUEST_DIR:-$ROOT/build/guest}
T=${EMBER_LINUX_TIMEOUT:-240}
NAME=blk-linux/ext4-root

if ! have_kvm; then
	skip "$NAME" "/dev/kvm not usable"
	exit 0
fi
for tool in mke2fs debugfs e2fsck cpio md5sum; do
	command -v "$tool" >/dev/null || { skip "$NAME" "$tool not installed (e2fsprogs, cpio)"; exit 0; }
done
for f in "$GUEST_DIR/vmlinux" "$GUEST_DIR/initramfs.cpio" "$EMBER"; do
	[ -e "$f" ] || { fail "$NAME" "missing $f (make, make guest)"; exit 1; }
done

R=$TMP/rootfs
mkdir -p "$R"
(cd "$R" && cpio -id --quiet <"$GUEST_DIR/initramfs.cpio") || { fail "$NAME" "cannot unpack the initramfs"; exit 1; }
mkdir -p "$R/etc"
cat >"$R/etc/ember-test" <<'SCRIPT'
#!/bin/sh
echo "blk-linux: root $(grep ' / ' /proc/mounts)"
echo hello-from-guest >/written.txt
sync
echo "blk-linux: serial $(cat /sys/block/vda/serial)"
echo "blk-linux: vdb $(md5sum </dev/vdb)"
dd if=/dev/vdb of=/dev/vdc bs=64k 2>/dev/null && sync && echo "blk-linux: copied"
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; then
	echo "blk-linux: ro write succeeded"
else
	echo "blk-linux: ro write refused"
fi
SCRIPT
chmod 755 "$R/etc/ember-test"
mke2fs -q -t ext4 -d "$R" "$TMP/root.img" 32M || { fail "$NAME" "mke2fs -d failed"; exit 1; }
head -c 1M /dev/urandom >"$TMP/ro.bin"
truncate -s 1M "$TMP/scratch.img"
direct=,direct
dd if=/dev/zero of="$TMP/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null || direct=

t0=$EPOCHREALTIME
timeout -k 5 "$T" "$EMBER" --kernel "$GUEST_DIR/vmlinux" --cmdline init=/init --boot-time \
	--disk "$TMP/root.img,root,serial=ROOTDISK" --disk "$TMP/ro.bin,ro" \
	--disk "$TMP/scratch.img$direct" </dev/null >"$TMP/out" 2>"$TMP/err"
rc=$?
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
tr -d '\r' <"$TMP/out" >"$TMP/out.txt"
want_md5=$(md5sum <"$TMP/ro.bin" | cut -d' ' -f1)
why=
if [ "$rc" -ne 0 ]; then
	why="ember exited with status $rc"
elif ! grep -q '^blk-linux: root /dev/root / ext4 rw' "$TMP/out.txt"; then
	why="the root is not the ext4 disk, read-write"
elif ! grep -qx 'blk-linux: serial ROOTDISK' "$TMP/out.txt"; then
	why="wrong serial: $(grep -m1 'blk-linux: serial' "$TMP/out.txt")"
elif ! grep -q "^blk-linux: vdb $want_md5 " "$TMP/out.txt"; then
	why="the guest read the read-only disk wrong: $(grep -m1 'blk-linux: vdb' "$TMP/out.txt"), want $want_md5"
elif ! grep -qx 'blk-linux: ro write refused' "$TMP/out.txt"; then
	why="a write to the read-only disk was not refused inside the guest: $(grep -m1 'blk-linux: ro write' "$TMP/out.txt")"
elif ! grep -qx 'blk-linux: copied' "$TMP/out.txt" || ! cmp -s "$TMP/ro.bin" "$TMP/scratch.img"; then
	why="the copy to the scratch disk${direct:+ (O_DIRECT)} differs"
elif ! grep -q 'ember-test exited with status 0' "$TMP/out.txt"; then
	why="/etc/ember-test failed"
elif [ "$(debugfs -R 'cat /written.txt' "$TMP/root.img" 2>/dev/null)" != hello-from-guest ]; then
	why="/written.txt is not on the root image"
elif ! e2fsck -fn "$TMP/root.img" >"$TMP/fsck" 2>&1; then
	why="e2fsck: $(tail -n 3 "$TMP/fsck" | tr '\n' ' ')"
fi
if [ -z "$why" ]; then
	pass "$NAME (${secs} s)"
else
	fail "$NAME" "$why (after ${secs} s)"
	echo "---- ember stderr (last 15 lines)"
	tail -n 15 "$TMP/err"
	echo "---- guest console (last 25 lines)"
	tail -n 25 "$TMP/out.txt"
	exit 1
fi
