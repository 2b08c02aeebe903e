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
mkfifo "$TMP/fifo"
ln -s loop-b "$TMP/loop-a" && ln -s loop-a "$TMP/loop-b"
mkdir -p "$TMP/closed" && chmod 555 "$TMP/closed"
head -c 10 "$G" >"$TMP/short.elf"
head -c 3000 "$G" >"$TMP/truncated.elf"
truncate -s 256M "$TMP/huge.initrd"
# patch FILE OFFSET BYTE: a copy of the kernel with one byte changed.
patched() { cp "$G" "$1" && printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
patched "$TMP/dyn.elf" 16 03      # e_type ET_DYN: a program, not a kernel
patched "$TMP/elf32.elf" 4 01     # EI_CLASS ELFCLASS32

expect no-args 2 'ember: --kernel PATH is required \(see ember --help\)' "$EMBER"
expect unknown-option 2 "ember: unknown option '--bogus' \(see ember --help\)" "$EMBER" --kernel "$G" --bogus
expect missing-value 2 'ember: --mem needs a value \(see ember --help\)' "$EMBER" --kernel "$G" --mem
expect stray-argument 2 "ember: unexpected argument 'extra' \(see ember --help\)" "$EMBER" --kernel "$G" extra
expect kernel-missing 1 "ember: --kernel $TMP/nope: No such file or directory" "$EMBER" --kernel "$TMP/nope"
expect kernel-directory 1 "ember: --kernel $TMP/dir: is a directory" "$EMBER" --kernel "$TMP/dir"
expect kernel-empty 1 "ember: --kernel $TMP/empty: file is empty" "$EMBER" --kernel "$TMP/empty"
expect kernel-not-a-kernel 1 "ember: --kernel $TMP/text: not a Linux kernel: no ELF header and no bzImage setup header" "$EMBER" --kernel "$TMP/text"
expect kernel-unreadable 1 "ember: --kernel $TMP/secret.elf: Permission denied" \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$EMBER" --kernel "$TMP/secret.elf"
expect kernel-empty-path 2 "ember: --kernel '': needs a path" "$EMBER" --kernel ""
expect kernel-fifo 1 "ember: --kernel $TMP/fifo: not a regular file \(a FIFO\)" "$EMBER" --kernel "$TMP/fifo"
expect kernel-dev-null 1 "ember: --kernel /dev/null: not a regular file \(a character device\)" "$EMBER" --kernel /dev/null
expect kernel-symlink-loop 1 "ember: --kernel $TMP/loop-a: Too many levels of symbolic links" "$EMBER" --kernel "$TMP/loop-a"
expect kernel-too-short 1 "ember: --kernel $TMP/short.elf: ELF image is 10 bytes, shorter than an ELF64 header \(64 bytes\)" \
	"$EMBER" --kernel "$TMP/short.elf"
expect kernel-truncated 1 "ember: --kernel $TMP/truncated.elf: ELF segment [0-9]+ file range \[0x[0-9a-f]+, \+0x[0-9a-f]+\) lies beyond the end of the file \(3000 bytes\)" \
	"$EMBER" --kernel "$TMP/truncated.elf"
expect kernel-a-program 1 "ember: --kernel $TMP/dyn.elf: ELF type 3 is not an executable \(ET_EXEC\)" "$EMBER" --kernel "$TMP/dyn.elf"
expect kernel-32-bit 1 "ember: --kernel $TMP/elf32.elf: ELF class 1 is not ELF64 \(only 64-bit kernels boot\)" "$EMBER" --kernel "$TMP/elf32.elf"
expect kernel-twice 2 "ember: --kernel given twice \('$G', then '$TMP/nope'; give it once\)" "$EMBER" --kernel "$G" --kernel "$TMP/nope"
expect initrd-empty-path 2 "ember: --initrd '': needs a path" "$EMBER" --kernel "$G" --initrd ""
expect initrd-directory 1 "ember: --initrd $TMP/dir: is a directory" "$EMBER" --kernel "$G" --initrd "$TMP/dir"
expect initrd-empty 1 "ember: --initrd $TMP/empty: file is empty" "$EMBER" --kernel "$G" --initrd "$TMP/empty"
expect initrd-fifo 1 "ember: --initrd $TMP/fifo: not a regular file \(a FIFO\)" "$EMBER" --kernel "$G" --initrd "$TMP/fifo"
expect initrd-dev-zero 1 "ember: --initrd /dev/zero: not a regular file \(a character device\)" "$EMBER" --kernel "$G" --initrd /dev/zero
expect initrd-larger-than-ram 1 "ember: --initrd $TMP/huge.initrd: initrd \(256 MiB\) does not fit in guest RAM below 0x8000000 \(128 MiB\)" \
	"$EMBER" --kernel "$G" --initrd "$TMP/huge.initrd"
expect initrd-twice 2 "ember: --initrd given twice \('$TMP/empty', then '$TMP/empty'; give it once\)" \
	"$EMBER" --kernel "$G" --initrd "$TMP/empty" --initrd "$TMP/empty"
expect initrd-missing 1 "ember: --initrd $TMP/nope: No such file or directory" "$EMBER" --kernel "$G" --initrd "$TMP/nope"
expect initrd-too-big 1 "ember: --initrd $TMP/big.initrd: initrd \(40 MiB\) does not fit in guest RAM below 0x2000000 \(32 MiB\)" "$EMBER" --kernel "$G" --mem 32 --initrd "$TMP/big.initrd"
expect mem-zero 2 "ember: --mem 0: must be between 8 and 1048576" "$EMBER" --kernel "$G" --mem 0
expect mem-absurd 2 "ember: --mem 99999999999: must be between 8 and 1048576" "$EMBER" --kernel "$G" --mem 99999999999
expect mem-not-numeric 2 "ember: --mem '12abc': not a number" "$EMBER" --kernel "$G" --mem 12abc
expect mem-negative 2 "ember: --mem '-5': not a number" "$EMBER" --kernel "$G" --mem -5
expect mem-empty 2 "ember: --mem '': not a number" "$EMBER" --kernel "$G" --mem ""
expect mem-below-minimum 2 "ember: --mem 7: must be between 8 and 1048576" "$EMBER" --kernel "$G" --mem 7
expect mem-above-maximum 2 "ember: --mem 1048577: must be between 8 and 1048576" "$EMBER" --kernel "$G" --mem 1048577
expect mem-overflow 2 "ember: --mem '18446744073709551616': not a number" "$EMBER" --kernel "$G" --mem 18446744073709551616
expect mem-hex 2 "ember: --mem '0x100': not a number" "$EMBER" --kernel "$G" --mem 0x100
expect mem-unit 2 "ember: --mem '256M': not a number" "$EMBER" --kernel "$G" --mem 256M
expect mem-twice 2 "ember: --mem given twice \('64', then '128'; give it once\)" "$EMBER" --kernel "$G" --mem 64 --mem 128
# (AddressSanitizer cannot start under an address-space limit.)
case $EMBER in
*asan*) skip cli/mem-over-address-space-limit "a sanitizer build cannot run under ulimit -v" ;;
*) expect mem-over-address-space-limit 1 "ember: --mem 1024: cannot map that much guest RAM: Cannot allocate memory" \
	bash -c 'ulimit -v 400000 && exec "$@"' _ "$EMBER" --kernel "$G" --mem 1024 ;;
esac
expect fd-limit-too-low 1 "ember: too few open files allowed: this VM needs 64 descriptors, RLIMIT_NOFILE is 32 \(raise it: ulimit -n 64\)" \
	bash -c 'ulimit -n 32 && exec "$@"' _ "$EMBER" --kernel "$G"
if have_kvm; then
	# Only the soft limit low: ember raises it to what it needs.
	expect fd-soft-limit-raised 0 "" bash -c 'ulimit -S -n 16 && exec "$@"' _ "$EMBER" --kernel "$G" --console none
fi
expect cpus-empty 2 "ember: --cpus '': not a number" "$EMBER" --kernel "$G" --cpus ""
expect cpus-negative 2 "ember: --cpus '-1': not a number" "$EMBER" --kernel "$G" --cpus -1
expect cpus-words 2 "ember: --cpus 'two': not a number" "$EMBER" --kernel "$G" --cpus two
expect cpus-33 2 "ember: --cpus 33: must be between 1 and 32" "$EMBER" --kernel "$G" --cpus 33
expect cpus-twice 2 "ember: --cpus given twice \('1', then '2'; give it once\)" "$EMBER" --kernel "$G" --cpus 1 --cpus 2
expect cpus-zero 2 "ember: --cpus 0: must be between 1 and 32" "$EMBER" --kernel "$G" --cpus 0
expect cpus-99 2 "ember: --cpus 99: must be between 1 and 32" "$EMBER" --kernel "$G" --cpus 99
expect console-bad 2 "ember: --console 'tty': expected stdio, none or file:PATH" "$EMBER" --kernel "$G" --console tty
expect console-file-bad 1 "ember: --console file:$TMP/nodir/x: No such file or directory" "$EMBER" --kernel "$G" --console "file:$TMP/nodir/x"
expect console-file-directory 1 "ember: --console file:$TMP/dir: is a directory" "$EMBER" --kernel "$G" --console "file:$TMP/dir"
expect console-file-unwritable 1 "ember: --console file:$TMP/closed/out: Permission denied" \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$EMBER" --kernel "$TMP/pub.elf" --console "file:$TMP/closed/out"
mkdir -p "$TMP/rofs"
expect console-read-only-filesystem 1 "ember: --console file:$TMP/rofs/out: Read-only file system" \
	unshare -m bash -c 'mount -t tmpfs -o size=1m,ro none "$1" && shift && exec "$@"' _ "$TMP/rofs" \
	"$EMBER" --kernel "$G" --console "file:$TMP/rofs/out"
expect console-fifo-unread 1 "ember: --console file:$TMP/fifo: a FIFO that no process reads" "$EMBER" --kernel "$G" --console "file:$TMP/fifo"
# The console file must not be one of the inputs: it is truncated, which
# would crash ember (the kernel is mapped) or destroy the disk image.
cp "$G" "$TMP/k.elf"
expect console-is-kernel 1 "ember: --console file:$TMP/k.elf: the same file as --kernel $TMP/k.elf \(it would be overwritten\)" \
	"$EMBER" --kernel "$TMP/k.elf" --console "file:$TMP/k.elf"
cp "$G" "$TMP/k.initrd"
expect console-is-initrd 1 "ember: --console file:$TMP/./k.initrd: the same file as --initrd $TMP/k.initrd \(it would be overwritten\)" \
	"$EMBER" --kernel "$G" --initrd "$TMP/k.initrd" --console "file:$TMP/./k.initrd"
truncate -s 64K "$TMP/c.img"
ln "$TMP/c.img" "$TMP/c-link.img"
expect console-is-disk 1 "ember: --console file:$TMP/c-link.img: the same file as --disk $TMP/c.img \(it would be overwritten\)" \
	"$EMBER" --kernel "$G" --disk "$TMP/c.img" --console "file:$TMP/c-link.img"
if [ "$(stat -c %s "$TMP/c.img")" = 65536 ] && cmp -s "$G" "$TMP/k.elf" && cmp -s "$G" "$TMP/k.initrd"; then
	pass cli/console-inputs-intact
else
	fail cli/console-inputs-intact "an input named as --console file: was changed"
fi
expect console-empty 2 "ember: --console '': expected stdio, none or file:PATH" "$EMBER" --kernel "$G" --console ""
expect console-file-no-path 2 "ember: --console file: needs a path" "$EMBER" --kernel "$G" --console file:
expect console-twice 2 "ember: --console given twice \('none', then 'stdio'; give it once\)" "$EMBER" --kernel "$G" --console none --console stdio
expect entry-empty 2 "ember: --entry '': expected auto, linux64 or pvh" "$EMBER" --kernel "$G" --entry ""
expect entry-twice 2 "ember: --entry given twice \('auto', then 'pvh'; give it once\)" "$EMBER" --kernel "$G" --entry auto --entry pvh
expect help-and-more 2 "ember: --help takes no other options" "$EMBER" --kernel "$G" --help
expect version-and-more 2 "ember: --version takes no other options" "$EMBER" --version --kernel "$G"
expect print-policy-and-more 2 "ember: --print-policy takes no other options" "$EMBER" --print-policy --no-seccomp
expect print-policy-typo 2 "ember: --print-policy takes no other options" "$EMBER" --print-policy --bogus
expect entry-bad 2 "ember: --entry 'bios': expected auto, linux64 or pvh" "$EMBER" --kernel "$G" --entry bios
expect entry-pvh-missing 1 "ember: --kernel $G: ELF has no XEN_ELFNOTE_PHYS32_ENTRY note, so it cannot boot through PVH" "$EMBER" --kernel "$G" --entry pvh
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
