#!/usr/bin/env bash
# Images qemu-img creates and qemu-io writes read back identical through
# kiln-img compare and kiln-io read -P, and pass kiln-img check.
source "$(dirname "$0")/lib.sh"

qemu-img create -q -f raw ref.raw 4M
qemu-io -f raw "${WRITES[@]}" ref.raw >/dev/null

verify_patterns() {
    local out
    out=$("$IO" -r "$@" -c 'read -P 0x11 0 1000' -c 'read -P 0x55 1000 3000' -c 'read -P 0x11 4000 61536' \
          -c 'read -P 0x22 100k 100k' -c 'read -P 0 200k 64k' -c 'read -P 0x22 264k 136k' \
          -c 'read -P 0x33 3M 4k' -c 'read -P 0x44 4095k 1k' -c 'read -P 0 1M 1M' 2>&1) \
        || fail "kiln-io read -P on $*: $(grep -i fail <<<"$out" | head -3)"
}
verify_patterns -f raw ref.raw

for opts in "" cluster_size=4k cluster_size=512 cluster_size=2M compat=0.10 refcount_bits=1 refcount_bits=8 \
            refcount_bits=64 lazy_refcounts=on preallocation=metadata preallocation=full $(optional_extended_l2) \
            compression_type=zstd; do
    rm -f q.qcow2
    qemu-img create -q -f qcow2 ${opts:+-o $opts} q.qcow2 4M
    qemu-io "${WRITES[@]}" q.qcow2 >/dev/null
    ksame q.qcow2 ref.raw
    kcheck q.qcow2
    verify_patterns q.qcow2
done

# Compressed clusters (zlib and zstd) written by qemu-img convert -c.
qemu-img convert -c -f raw -O qcow2 ref.raw cz.qcow2
ksame cz.qcow2 ref.raw
verify_patterns cz.qcow2
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd ref.raw cs.qcow2
ksame cs.qcow2 ref.raw

# A three-layer chain written by qemu-io.
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -c 'write -P 0x11 0 64k' -c 'write -P 0x22 100k 300k' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
qemu-io -c 'write -z 200k 64k' -c 'write -P 0x33 3M 4k' mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
qemu-io -c 'write -P 0x44 4095k 1k' -c 'write -P 0x55 1000 3000' top.qcow2 >/dev/null
ksame top.qcow2 ref.raw
verify_patterns top.qcow2
# kiln-img convert of qemu's chain reads the same through qemu.
run "$IMG" convert -O qcow2 top.qcow2 flat.qcow2 && qcheck flat.qcow2 && qsame flat.qcow2 ref.raw
run "$IMG" convert -O raw cz.qcow2 cz.raw && qsame -f raw cz.raw ref.raw

# Internal snapshots made by qemu-img: listed and readable by kiln.
qemu-img create -q -f qcow2 s.qcow2 1M
qemu-io -c 'write -P 0x61 0 64k' s.qcow2 >/dev/null
qemu-img snapshot -c one s.qcow2
qemu-io -c 'write -P 0x62 0 64k' s.qcow2 >/dev/null
[[ "$("$IMG" snapshot -l s.qcow2)" == "$(qemu-img snapshot -l s.qcow2)" ]] || fail "snapshot -l differs"
run "$IMG" convert -l one -O raw s.qcow2 one.raw && qemu-io -f raw -c 'read -P 0x61 0 64k' one.raw >/dev/null \
    || fail "snapshot 'one' content"
finish
