# Shared helpers for the interop scripts: a scratch directory removed on
# exit, failure counting, and the qemu-side checks.
set -uo pipefail
IMG=$(realpath "$1")
IO=$(realpath "$2")
if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null; then
    echo "qemu-img/qemu-io not installed: skipping"
    exit 77
fi
dir=$(mktemp -d /tmp/kiln-interop.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# Runs a command quietly; reports it when it fails.
run() { local out; if ! out=$("$@" 2>&1); then fail "$* -> $out"; return 1; fi; }
qcheck() { local out; out=$(qemu-img check "$1" 2>&1) || fail "qemu-img check $1: $out"; }
qsame() { local out; out=$(qemu-img compare "$@" 2>&1) || fail "qemu-img compare $*: $out"; }
ksame() { local out; out=$("$IMG" compare "$@" 2>&1) || fail "kiln-img compare $*: $out"; }
kcheck() { local out; out=$("$IMG" check "$1" 2>&1) || fail "kiln-img check $1: $out"; }
finish() {
    if [[ $failures -ne 0 ]]; then
        echo "$failures failures"
        exit 1
    fi
    echo "all passed"
    exit 0
}
# "extended_l2=on" when Kiln's qcow2 driver supports it; otherwise a note
# on stderr (the driver, not the tools, lacks it).
optional_extended_l2() {
    if "$IMG" create -q -f qcow2 -o extended_l2=on probe-l2.qcow2 1M >/dev/null 2>&1 \
        && "$IMG" info probe-l2.qcow2 >/dev/null 2>&1; then
        echo extended_l2=on
    else
        echo "note: skipping extended_l2=on: Kiln's qcow2 driver does not support it yet" >&2
    fi
    rm -f probe-l2.qcow2
}
# The same writes through a qemu-io or kiln-io style tool: $1 tool, $2 image, rest extra opts.
WRITES=(-c 'write -P 0x11 0 64k' -c 'write -P 0x22 100k 300k' -c 'write -z 200k 64k'
        -c 'write -P 0x33 3M 4k' -c 'write -P 0x44 4095k 1k' -c 'write -P 0x55 1000 3000')
