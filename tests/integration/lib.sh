# Helpers for integration tests (source it).  Results are lines that
# tests/run counts: "PASS name", "FAIL name: why", "SKIP name: why".
# Every script gets EMBER, EMBER_ASAN, EMBER_DYNAMIC, TESTGUEST and GUEST_DIR from tests/run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EMBER=${EMBER:-$ROOT/ember}
EMBER_ASAN=${EMBER_ASAN:-$ROOT/build/ember-asan}
EMBER_DYNAMIC=${EMBER_DYNAMIC:-$ROOT/build/ember-dynamic}
KVMGUEST=$ROOT/build/kvmguest

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }

# A scratch directory removed when the script exits (under $TMPDIR if set:
# a long run, make soak, may want it out of reach of whatever cleans /tmp;
# the tests that run as nobody need it world-searchable).
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ember-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# have_kvm: /dev/kvm is usable by this user.
have_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# run_vm OUT ERR TIMEOUT ARGS... : run ember with a time limit; sets RC.
run_vm() {
	local out=$1 err=$2 t=$3
	shift 3
	timeout -k 5 "$t" "$@" >"$out" 2>"$err" </dev/null
	RC=$?
}

# stderr lines other than ember's one-line software-KVM notice.
err_lines() { grep -v '^ember: software KVM (kvm-pvm) detected' "$1"; }

# expect NAME STATUS REGEX CMD...: run CMD (20 s limit, no stdin).  It passes
# when CMD exits with STATUS and, for a non-zero STATUS, prints exactly one
# stderr line (besides the software-KVM notice) that REGEX matches entirely.
# Results are named "$EXPECT_GROUP/NAME".
expect() {
	local name=$EXPECT_GROUP/$1 want=$2 re=$3
	shift 3
	timeout -k 5 20 "$@" >"$TMP/o" 2>"$TMP/e" </dev/null
	local rc=$? lines
	lines=$(err_lines "$TMP/e")
	if [ "$rc" -ne "$want" ]; then
		fail "$name" "exit status $rc, expected $want; stderr: $(head -c 300 "$TMP/e")"
	elif [ "$want" -ne 0 ] && [ "$(printf '%s\n' "$lines" | grep -c .)" -ne 1 ]; then
		fail "$name" "expected one stderr line, got: $(head -c 400 "$TMP/e")"
	elif [ "$want" -ne 0 ] && ! printf '%s\n' "$lines" | grep -qxE -- "$re"; then
		fail "$name" "stderr '$lines' does not match '$re'"
	else
		pass "$name"
	fi
}

# why_no_vm_net GUEST: why a test that boots GUEST with a tap in a network
# namespace cannot run here; nothing when it can.
why_no_vm_net() {
	if ! have_kvm; then echo "/dev/kvm not usable"
	elif [ ! -r "$1" ]; then echo "the test guest is not built (make testguest)"
	elif [ "$(id -u)" != 0 ]; then echo "needs root (network namespace, taps)"
	elif ! command -v ip >/dev/null || [ ! -e /dev/net/tun ]; then echo "no ip(8) or /dev/net/tun"
	fi
}
