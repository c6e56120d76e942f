#!/usr/bin/env bash
# Internal snapshots and encryption through the tools, alternating
# kiln-img/kiln-io and qemu-img/qemu-io on the same images: every step
# leaves `qemu-img check` clean and every snapshot reads back.
source "$(dirname "$0")/lib.sh"

for opts in "" cluster_size=4k compat=0.10 refcount_bits=64 lazy_refcounts=on; do
    rm -f s.qcow2 v*.raw
    run "$IMG" create -q -f qcow2 ${opts:+-o $opts} s.qcow2 4M || continue
    run "$IO" "${WRITES[@]}" s.qcow2
    run "$IMG" snapshot -c k1 s.qcow2 && qcheck s.qcow2
    run qemu-img convert -l snapshot.name=k1 -O raw s.qcow2 v1.raw
    run qemu-io -c 'write -P 0x66 0 1M' s.qcow2
    run qemu-img snapshot -c q2 s.qcow2 && kcheck s.qcow2
    run "$IO" -c 'write -P 0x77 2M 1M' s.qcow2 && qcheck s.qcow2
    run "$IMG" convert -l snapshot.name=q2 -O raw s.qcow2 v2.raw
    run qemu-img convert -l snapshot.name=q2 -O raw s.qcow2 v2q.raw
    qsame -f raw -F raw v2.raw v2q.raw
    run "$IMG" snapshot -a k1 s.qcow2 && qcheck s.qcow2 && qsame s.qcow2 v1.raw
    run qemu-img snapshot -a q2 s.qcow2 && kcheck s.qcow2 && ksame s.qcow2 v2.raw
    run "$IMG" snapshot -d q2 s.qcow2 && qcheck s.qcow2
    run qemu-img snapshot -c q3 s.qcow2
    run "$IMG" snapshot -d k1 s.qcow2 && qcheck s.qcow2 && qsame s.qcow2 v2.raw
    qemu-img snapshot -l s.qcow2 | grep -q q3 || fail "$opts: snapshot q3 missing"
    run qemu-img snapshot -d q3 s.qcow2 && kcheck s.qcow2
    [[ -z $(qemu-img snapshot -l s.qcow2) ]] || fail "$opts: snapshots left over"
done

# Encrypted images: LUKS made by kiln-img opens in qemu-io and back.
obj=(--object secret,id=sec0,data=hunter2)
opts_of() { echo "driver=qcow2,encrypt.key-secret=sec0,file.filename=$1"; }
run "$IMG" create -q -f qcow2 "${obj[@]}" -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 k.qcow2 4M
run "$IO" "${obj[@]}" --image-opts "$(opts_of k.qcow2)" "${WRITES[@]}"
qemu-img create -q -f raw ref.raw 4M && qemu-io -f raw "${WRITES[@]}" ref.raw >/dev/null
run qemu-img compare "${obj[@]}" --image-opts "$(opts_of k.qcow2)" driver=raw,file.filename=ref.raw
run qemu-img check "${obj[@]}" --image-opts "$(opts_of k.qcow2)"
run qemu-io "${obj[@]}" --image-opts "$(opts_of k.qcow2)" -c 'write -P 0x12 1M 64k'
run "$IO" "${obj[@]}" --image-opts "$(opts_of k.qcow2)" -c 'read -P 0x12 1M 64k'
out=$("$IO" --object secret,id=sec0,data=wrong --image-opts "$(opts_of k.qcow2)" -c 'read 0 1' 2>&1) \
    && fail "wrong secret accepted"
[[ $out == *"Invalid password, cannot unlock any keyslot"* ]] || fail "wrong secret: $out"
[[ $out != *hunter2* && $out != *wrong* ]] || fail "secret echoed: $out"
# Legacy AES made by qemu-img converts through kiln-img.
run qemu-img create -q -f qcow2 "${obj[@]}" -o encrypt.format=aes,encrypt.key-secret=sec0 a.qcow2 4M
run qemu-io "${obj[@]}" --image-opts "$(opts_of a.qcow2)" "${WRITES[@]}"
run "$IMG" convert "${obj[@]}" --image-opts "$(opts_of a.qcow2)" -O qcow2 plain.qcow2
qcheck plain.qcow2 && qsame plain.qcow2 ref.raw

# rebase (safe mode, -b "", -u) and amend: the guest view never changes.
run qemu-img create -q -f qcow2 rb.qcow2 4M && run qemu-io -c 'write -P 1 0 4M' rb.qcow2
run qemu-img create -q -f qcow2 -b rb.qcow2 -F qcow2 rm.qcow2 && run qemu-io -c 'write -P 2 1M 1M' rm.qcow2
run qemu-img create -q -f qcow2 -b rm.qcow2 -F qcow2 rt.qcow2 && run qemu-io -c 'write -P 3 3M 64k' rt.qcow2
run qemu-img convert -O raw rt.qcow2 rt.raw
run "$IMG" rebase -b rb.qcow2 -F qcow2 rt.qcow2 && qcheck rt.qcow2 && qsame rt.qcow2 rt.raw
run "$IMG" amend -o compat=0.10 rt.qcow2 && qcheck rt.qcow2 && qsame rt.qcow2 rt.raw
run "$IMG" amend -o compat=1.1,refcount_bits=8 rt.qcow2 && qcheck rt.qcow2 && qsame rt.qcow2 rt.raw
run "$IMG" rebase -b "" rt.qcow2 && qcheck rt.qcow2 && qsame rt.qcow2 rt.raw
run qemu-img rebase -u -b rm.qcow2 -F qcow2 rt.qcow2 && run "$IMG" rebase -b "" rt.qcow2 && qsame rt.qcow2 rt.raw

# commit: into the backing file and through a three-layer chain; QEMU
# reads the result, and the emptied top reads through.
run qemu-img create -q -f qcow2 cb.qcow2 4M && run qemu-io -c 'write -P 1 0 2M' cb.qcow2
run qemu-img create -q -f qcow2 -b cb.qcow2 -F qcow2 cm.qcow2 && run qemu-io -c 'write -P 2 1M 1M' -c 'write -z 3M 64k' cm.qcow2
run qemu-img create -q -f qcow2 -b cm.qcow2 -F qcow2 ct.qcow2 && run qemu-io -c 'write -P 3 100k 50k' ct.qcow2
run qemu-img convert -O raw ct.qcow2 ct.raw
run "$IMG" commit -q ct.qcow2 && qcheck ct.qcow2 && qcheck cm.qcow2 && qsame ct.qcow2 ct.raw && qsame cm.qcow2 ct.raw
[[ $(qemu-img map --output=json ct.qcow2 | grep -c '"depth": 0') -eq 0 ]] || fail "commit left data in the top"
run "$IMG" commit -b cb.qcow2 ct.qcow2 && qcheck cb.qcow2 && qsame cb.qcow2 ct.raw
finish
