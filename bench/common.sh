# Shared by the bench scripts: paths and the exact VM command lines.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
EMBER=${EMBER:-$PWD/ember}
TESTGUEST=${TESTGUEST:-$PWD/build/testguest.elf}
QEMU=${QEMU:-qemu-system-x86_64}
EXECBENCH=${EXECBENCH:-$PWD/build/execbench}
# The test guest with an empty test list (ember.test=) prints its summary and
# resets at once.  (With no ember.test word at all it runs "all": the four
# non-interactive serial tests, ~25 ms more on this machine.)
EMBER_CMD=("$EMBER" --kernel "$TESTGUEST" --console none --cmdline ember.test=)
QEMU_CMD=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
	-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config
	-nographic -no-reboot -kernel "$TESTGUEST" -global virtio-mmio.force-legacy=false
	-append ember.test=)
# field KEY LINE: value of KEY=... in an execbench result line
field() { local w; for w in $2; do [ "${w%%=*}" = "$1" ] && { echo "${w#*=}"; return; }; done; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
