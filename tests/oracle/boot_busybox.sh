#!/usr/bin/env bash
# Boots Debian 12's stock kernel and busybox-static on the interpreter
# (kiln-interp-probe, device-less host) and checks what user space printed.
# Needs the Debian packages linux-image-amd64 and busybox-static (fetched
# with apt-get download into a work directory) and python3; takes a few
# minutes. Not part of the unit suite.
#
#   tests/oracle/boot_busybox.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/kiln-boot-busybox}
mkdir -p "$work"

ninja -C build -j2 tests/oracle/kiln-interp-probe >/dev/null

if [ ! -f "$work/vmlinux" ]; then
    image=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    (cd "$work" && apt-get download "$image" busybox-static >/dev/null 2>&1)
    dpkg -x "$work"/linux-image-*.deb "$work/kernel"
    dpkg -x "$work"/busybox-static_*.deb "$work/busybox"
    # The bzImage's payload is an xz stream; it decompresses to the ELF vmlinux.
    python3 - "$work" <<'PY'
import lzma, glob, sys
work = sys.argv[1]
data = open(glob.glob(work + "/kernel/boot/vmlinuz-*")[0], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
dec = lzma.LZMADecompressor()
open(work + "/vmlinux", "wb").write(dec.decompress(data[start:]))
PY
fi

# initramfs: /bin/busybox and an /init that reports through /dev/kmsg (the
# probe has no timer, so the tty's interrupt-driven output path stalls).
python3 - "$work" <<'PY'
import gzip, sys
work = sys.argv[1]
bb = open(work + "/busybox/bin/busybox", "rb").read()
init = b"""#!/bin/busybox sh
/bin/busybox mkdir -p /dev /proc
/bin/busybox mknod /dev/kmsg c 1 11
exec > /dev/kmsg 2>&1
/bin/busybox echo "KILN: hello from user space"
/bin/busybox uname -a
/bin/busybox mount -t proc proc /proc
/bin/busybox head -8 /proc/cpuinfo
/bin/busybox grep -m1 '^flags' /proc/cpuinfo
/bin/busybox sh -c 'i=0; while [ $i -lt 200 ]; do i=$((i+1)); done; echo loop=$i'
/bin/busybox echo "3.5 * 2" | /bin/busybox awk '{ print $1 * $3 }'
/bin/busybox sha256sum /bin/busybox
/bin/busybox echo "KILN: done"
/bin/busybox poweroff -f
"""
out = bytearray()
ino = 1
def add(name, mode, data=b""):
    global ino
    nb = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
    ino += 1
    out.extend(("070701" + "".join("%08x" % f for f in fields)).encode() + nb)
    out.extend(b"\0" * (-len(out) % 4))
    out.extend(data)
    out.extend(b"\0" * (-len(out) % 4))
add("bin", 0o040755)
add("bin/busybox", 0o100755, bb)
add("init", 0o100755, init)
add("TRAILER!!!", 0)
open(work + "/initrd.gz", "wb").write(gzip.compress(bytes(out)))
PY

build/tests/oracle/kiln-interp-probe "$work/vmlinux" \
    "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr acpi=off noapic nolapic lpj=1000000 rdinit=/init" \
    12000000000 "$work/initrd.gz" >"$work/boot.log" 2>&1 || true

expected=$(sha256sum "$work/busybox/bin/busybox" | cut -d' ' -f1)
status=0
for want in "KILN: hello from user space" "loop=200" "$expected" "KILN: done"; do
    if ! grep -q -- "$want" "$work/boot.log"; then
        echo "boot_busybox: missing '$want' in $work/boot.log" >&2
        status=1
    fi
done
grep -a "^\[probe\]" "$work/boot.log" || true
[ $status -eq 0 ] && echo "boot_busybox: user space ran and printed the expected output"
exit $status
