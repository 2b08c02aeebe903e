#!/usr/bin/env bash
# Bad user input: each case must exit with the documented status and print
# exactly one line on stderr (besides the software-KVM notice) that names the
# input and the reason.  Never a crash, never a silent default.
. "$(dirname "$0")/lib.sh"

G=$KVMGUEST/hello.elf
EXPECT_GROUP=cli

mkdir -p "$TMP/dir"
echo "this is not a kernel" >"$TMP/text"
: >"$TMP/empty"
cp "$G" "$TMP/secret.elf" && chmod 000 "$TMP/secret.elf"
cp "$G" "$TMP/pub.elf" && chmod 644 "$TMP/pub.elf"
chmod 755 "$TMP"
head -c $((40 << 20)) /dev/zero >"$TMP/big.initrd"
long=$(head -c 3000 /dev/zero | tr '\0' 'x')

expect no-args 2 'ember: --kernel PATH is required \(see ember --help\)' "$EMBER"
expect unknown-option 2 "ember: unknown option '--bogus' \(see ember --help\)" "$EMBER" --kernel "$G" --bogus
expect missing-value 2 'ember: --mem needs a value \(see ember --help\)' "$EMBER" --kernel "$G" --mem
expect stray-argument 2 "ember: unexpected argument 'extra' \(see ember --help\)" "$EMBER" --kernel "$G" extra
expect kernel-missing 1 "ember: --kernel $TMP/nope: No such file or directory" "$EMBER" --kernel "$TMP/nope"
expect kernel-directory 1 "ember: --kernel $TMP/dir: is a directory" "$EMBER" --kernel "$TMP/dir"
expect kernel-empty 1 "ember: --kernel $TMP/empty: file is empty" "$EMBER" --kernel "$TMP/empty"
expect kernel-not-a-kernel 1 "ember: --kernel $TMP/text: .*not .*kernel.*" "$EMBER" --kernel "$TMP/text"
expect kernel-unreadable 1 "ember: --kernel $TMP/secret.elf: Permission denied" \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$EMBER" --kernel "$TMP/secret.elf"
expect initrd-missing 1 "ember: --initrd $TMP/nope: No such file or directory" "$EMBER" --kernel "$G" --initrd "$TMP/nope"
expect initrd-too-big 1 "ember: --initrd $TMP/big.initrd: .*initrd.*" "$EMBER" --kernel "$G" --mem 32 --initrd "$TMP/big.initrd"
expect mem-zero 1 "ember: --mem 0: must be between 8 and 1048576" "$EMBER" --kernel "$G" --mem 0
expect mem-absurd 1 "ember: --mem 99999999999: must be between 8 and 1048576" "$EMBER" --kernel "$G" --mem 99999999999
expect mem-not-numeric 1 "ember: --mem '12abc': not a number" "$EMBER" --kernel "$G" --mem 12abc
expect mem-negative 1 "ember: --mem '-5': not a number" "$EMBER" --kernel "$G" --mem -5
expect cpus-zero 1 "ember: --cpus 0: must be between 1 and 32" "$EMBER" --kernel "$G" --cpus 0
expect cpus-99 1 "ember: --cpus 99: must be between 1 and 32" "$EMBER" --kernel "$G" --cpus 99
expect console-bad 2 "ember: --console 'tty': expected stdio, none or file:PATH" "$EMBER" --kernel "$G" --console tty
expect console-file-bad 1 "ember: --console file:$TMP/nodir/x: No such file or directory" "$EMBER" --kernel "$G" --console "file:$TMP/nodir/x"
expect entry-bad 2 "ember: --entry 'bios': expected auto, linux64 or pvh" "$EMBER" --kernel "$G" --entry bios
expect entry-pvh-missing 1 "ember: --kernel $G: .*PVH.*" "$EMBER" --kernel "$G" --entry pvh
half=$(head -c 1500 /dev/zero | tr '\0' 'y')
# Two --cmdline halves accumulate past the limit together (each alone fits).
expect cmdline-accumulates 1 "ember: --cmdline: command line is (30[0-9][0-9]|3[1-9][0-9][0-9]) bytes; the kernel accepts at most 2047 \(3001 bytes from --cmdline, [0-9]+ added by ember for its defaults and 0 devices\)" "$EMBER" --kernel "$G" --cmdline "$half" --cmdline "$half"
expect cmdline-too-long 1 "ember: --cmdline: command line is [0-9]+ bytes; the kernel accepts at most [0-9]+ \([0-9]+ bytes from --cmdline, [0-9]+ added by ember for its defaults and 0 devices\)" "$EMBER" --kernel "$G" --cmdline "$long"
# A command line that fits alone, but not with the words 8 disks add: the
# message says how much ember added.
fits=$(head -c 1800 /dev/zero | tr '\0' 'z')
disks8=()
for i in 1 2 3 4 5 6 7 8; do truncate -s 64K "$TMP/cl$i.img"; disks8+=(--disk "$TMP/cl$i.img"); done
expect cmdline-with-devices 1 "ember: --cmdline: command line is [0-9]+ bytes; the kernel accepts at most 2047 \(1800 bytes from --cmdline, [0-9]+ added by ember for its defaults and 8 devices\)" "$EMBER" --kernel "$G" --cmdline "$fits" "${disks8[@]}"
if have_kvm; then
	expect kvm-no-permission 1 'ember: /dev/kvm: permission denied \(run as root or join the group that owns /dev/kvm\)' \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$EMBER" --kernel "$TMP/pub.elf"
	mkdir -p "$TMP/emptydev"
	expect kvm-missing 1 'ember: /dev/kvm: no such device \(is KVM enabled and the kvm module loaded\?\)' \
		unshare -m bash -c 'mount --bind "$1" /dev && exec "$2" --kernel "$3"' _ "$TMP/emptydev" "$EMBER" "$G"
else
	skip cli/kvm-no-permission "/dev/kvm is not usable by $(id -un)"
	skip cli/kvm-missing "/dev/kvm is not usable by $(id -un)"
fi

"$EMBER" --help >"$TMP/help" 2>&1
if [ $? -eq 0 ] && grep -q -- '--kernel PATH' "$TMP/help" && grep -q 'Exit status' "$TMP/help"; then
	pass cli/help
else
	fail cli/help "$(head -c 200 "$TMP/help")"
fi
if "$EMBER" --version | grep -qE '^ember [0-9]+\.[0-9]+\.[0-9]+$'; then pass cli/version; else fail cli/version "bad version line"; fi
