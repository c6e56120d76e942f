#!/usr/bin/env bash
# Persistent dirty bitmaps edited in turn by qemu-img/qemu-io and
# kiln-img/kiln-io on the same images: after every step `qemu-img check`
# is clean, both tools' `info` agree, and the bits each tool sees are the
# same. The bits are compared by dumping them from the file (qemu-img has
# no bitmap dump), and by copying them with `convert --bitmaps` through each
# tool and dumping the copies.
source "$(dirname "$0")/lib.sh"

# One line per bitmap: name, flags, granularity, set bits as ranges.
dump() {
    python3 - "$1" <<'EOF'
import struct, sys
d = open(sys.argv[1], 'rb').read()
cs = 1 << struct.unpack('>I', d[20:24])[0]
if not d[95] & 1:
    print('none'); sys.exit()
p = struct.unpack('>I', d[100:104])[0]
while True:
    t, l = struct.unpack('>II', d[p:p + 8])
    if t == 0:
        print('none'); sys.exit()
    if t == 0x23852875:
        nb, _, _, off = struct.unpack('>IIQQ', d[p + 8:p + 32]); break
    p += 8 + (l + 7) // 8 * 8
for i in range(nb):
    to, ts, fl = struct.unpack('>QII', d[off:off + 16]); gb = d[off + 17]
    ns, ex = struct.unpack('>HI', d[off + 18:off + 24])
    bits = []
    for k in range(ts):
        e = struct.unpack('>Q', d[to + 8 * k:to + 8 * k + 8])[0] & 0x00fffffffffffe00
        if e:
            for j, byte in enumerate(d[e:e + cs]):
                bits += [k * cs * 8 + j * 8 + b for b in range(8) if byte >> b & 1]
    runs = []
    for b in bits:
        if runs and runs[-1][1] == b - 1: runs[-1][1] = b
        else: runs.append([b, b])
    print(d[off + 24 + ex:off + 24 + ex + ns].decode(), 'flags=%d' % fl,
          'gran=%d' % (1 << gb), ' '.join('%d-%d' % (a, b) for a, b in runs))
    off += (24 + ns + ex + 7) // 8 * 8
EOF
}
expect_bits() { # image, expected dump
    local got; got=$(dump "$1")
    [[ $got == "$2" ]] || fail "$1: bitmaps are
$got
expected
$2"
}
same_info() {
    local q k
    q=$(qemu-img info --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["format-specific"])')
    k=$("$IMG" info --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["format-specific"])')
    [[ $q == "$k" ]] || fail "info differs on $1: qemu $q kiln $k"
}

for opts in "" cluster_size=4k cluster_size=2M refcount_bits=1; do
    SECONDS=0
    rm -f *.qcow2
    run qemu-img create -q -f qcow2 ${opts:+-o $opts} a.qcow2 64M || continue
    # QEMU adds, Kiln writes and adds, QEMU writes, Kiln merges.
    run qemu-img bitmap --add -g 64k a.qcow2 q0
    run qemu-io -c 'write 1M 4k' a.qcow2
    run "$IO" -c 'write 3M 64k' -c 'write -z 5M 128k' a.qcow2 && qcheck a.qcow2
    run "$IMG" bitmap --add -g 512k a.qcow2 k0 && qcheck a.qcow2 && same_info a.qcow2
    run qemu-io -c 'write 20M 4k' a.qcow2 && kcheck a.qcow2
    expect_bits a.qcow2 "q0 flags=2 gran=65536 16-16 48-48 80-81 320-320
k0 flags=2 gran=524288 40-40"
    run "$IMG" bitmap --add -g 64k --disable --merge q0 a.qcow2 k1 && qcheck a.qcow2
    run qemu-img bitmap --merge k0 a.qcow2 k1 && kcheck a.qcow2
    run "$IO" -c 'write 30M 1k' a.qcow2 && qcheck a.qcow2 && same_info a.qcow2
    expect_bits a.qcow2 "q0 flags=2 gran=65536 16-16 48-48 80-81 320-320 480-480
k0 flags=2 gran=524288 40-40 60-60
k1 flags=0 gran=65536 16-16 48-48 80-81 320-327"
    # Clear and enable by Kiln, disable and remove by QEMU, and back.
    run "$IMG" bitmap --clear --enable a.qcow2 k1 && qcheck a.qcow2
    run qemu-img bitmap --disable a.qcow2 q0 && kcheck a.qcow2
    run "$IO" -c 'write 40M 4k' a.qcow2 && qcheck a.qcow2
    run qemu-img bitmap --remove a.qcow2 k0 && kcheck a.qcow2
    expect_bits a.qcow2 "q0 flags=0 gran=65536 16-16 48-48 80-81 320-320 480-480
k1 flags=2 gran=65536 640-640"
    # Cross-image merges (-b) both ways.
    run qemu-img create -q -f qcow2 b.qcow2 64M && run qemu-img bitmap --add b.qcow2 bb
    run "$IMG" bitmap --merge q0 -b a.qcow2 b.qcow2 bb && qcheck b.qcow2
    run qemu-img bitmap --merge bb -b b.qcow2 -F qcow2 a.qcow2 k1 && kcheck a.qcow2
    expect_bits b.qcow2 "bb flags=2 gran=65536 16-16 48-48 80-81 320-320 480-480"
    # convert --bitmaps through each tool gives the same bits.
    run "$IMG" convert --bitmaps -O qcow2 a.qcow2 k.qcow2 && qcheck k.qcow2
    run qemu-img convert --bitmaps -O qcow2 a.qcow2 q.qcow2 && kcheck q.qcow2
    [[ $(dump k.qcow2) == "$(dump q.qcow2)" ]] || fail "$opts: convert --bitmaps differs: $(dump k.qcow2) / $(dump q.qcow2)"
    same_info k.qcow2
    run qemu-img convert --bitmaps -O qcow2 k.qcow2 kq.qcow2
    [[ $(dump kq.qcow2) == "$(dump q.qcow2)" ]] || fail "$opts: QEMU's copy of Kiln's copy differs"
    # Resize with bitmaps, then QEMU writes past the old end.
    run "$IMG" resize a.qcow2 128M && qcheck a.qcow2
    run qemu-io -c 'write 100M 4k' a.qcow2 && kcheck a.qcow2
    run "$IO" -c 'write 120M 4k' a.qcow2 && qcheck a.qcow2 && same_info a.qcow2
    dump a.qcow2 | grep -q '^k1 .* 1600-1600 1920-1920' || fail "$opts: resized bitmap: $(dump a.qcow2)"
    # A killed kiln-io (SIGKILL while it has the image open) leaves them in
    # use: QEMU then calls them inconsistent, check stays clean, and only
    # removal works, in both tools.
    # (kiln-io sleeps far longer than the poll may take on a loaded CI
    # machine: one that finished would close cleanly first.)
    "$IO" -c 'sleep 120000' a.qcow2 </dev/null >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 600); do qemu-img info -U a.qcow2 2>/dev/null | grep -q in-use && break; sleep 0.1; done
    kill -9 "$pid"; wait "$pid" 2>/dev/null
    qemu-img info a.qcow2 | grep -q in-use || fail "$opts: no in-use bitmap after a kill"
    qcheck a.qcow2 && kcheck a.qcow2 && same_info a.qcow2
    out=$("$IMG" bitmap --clear a.qcow2 k1 2>&1) && fail "$opts: cleared an inconsistent bitmap"
    [[ $out == *"Bitmap 'k1' is inconsistent and cannot be used"* ]] || fail "$opts: $out"
    run "$IMG" bitmap --remove a.qcow2 k1 && qcheck a.qcow2
    run qemu-img bitmap --remove a.qcow2 q0 && kcheck a.qcow2
    expect_bits a.qcow2 "none"
    echo "${opts:-default}: ${SECONDS}s"
done
finish
