#!/usr/bin/env bash
# Extended L2 entries and external data files, both ways: random writes
# (partial clusters and subclusters, zeroes with and without unmap,
# discards) done by kiln-io on kiln-img's images and by qemu-io on
# qemu-img's images with the same options must read the same through
# qemu-img compare and kiln-img compare, and both tools' check must find
# nothing. Also snapshots, commit/rebase, convert and amend on such images,
# and the error messages qemu-img 7.2 gives.
source "$(dirname "$0")/lib.sh"

# Random operations on an 8 MiB disk (fixed seeds: reproducible).
random_ops() {
    python3 - "$1" <<'EOF'
import random, sys
r = random.Random(int(sys.argv[1]))
size = 8 << 20
for i in range(160):
    kind = r.choice(["w", "w", "w", "w", "z", "zu", "d"])
    if r.random() < 0.3:
        off = r.randrange(0, size - 4096, 512)
        ln = r.choice([512, 1024, 2048, 4096])
    else:
        off = r.randrange(0, size - 300000)
        if r.random() < 0.5:
            off &= ~511
        ln = r.randrange(1, 300000)
    if kind == "w":
        print("write -P %d %d %d" % (r.randrange(1, 255), off, ln))
    elif kind == "z":
        print("write -z %d %d" % (off, ln))
    elif kind == "zu":
        print("write -z -u %d %d" % (off & ~511, (ln + 511) & ~511))
    else:
        print("discard %d %d" % (off & ~511, (ln + 511) & ~511))
EOF
}

# $1 options, $2 seed, $3 optional backing: kiln writes k.qcow2, qemu q.qcow2.
both_ways() {
    local opts=$1 seed=$2 backing=${3:-} ops=() line
    while IFS= read -r line; do ops+=(-c "$line"); done < <(random_ops "$seed")
    rm -f k.qcow2 q.qcow2 k-data.raw q-data.raw
    local kopts=$opts qopts=$opts
    if [[ $opts == *data_file* ]]; then
        kopts=${opts//data_file=X/data_file=k-data.raw}
        qopts=${opts//data_file=X/data_file=q-data.raw}
    fi
    local bargs=()
    [[ -n $backing ]] && bargs=(-b "$backing" -F qcow2)
    run "$IMG" create -q -f qcow2 -o "$kopts" "${bargs[@]}" k.qcow2 8M || return
    qemu-img create -q -f qcow2 -o "$qopts" "${bargs[@]}" q.qcow2 8M
    run "$IO" "${ops[@]}" k.qcow2 || return
    qemu-io "${ops[@]}" q.qcow2 >/dev/null
    qcheck k.qcow2
    kcheck q.qcow2
    kcheck k.qcow2
    qsame k.qcow2 q.qcow2
    ksame q.qcow2 k.qcow2
    if [[ $opts == *data_file_raw=on* ]]; then
        # The data file is a raw copy of the disk at all times.
        qsame -f raw -F qcow2 k-data.raw k.qcow2
    fi
}

seed=1
for opts in extended_l2=on extended_l2=on,cluster_size=16k extended_l2=on,cluster_size=2M \
            extended_l2=on,refcount_bits=1 extended_l2=on,lazy_refcounts=on extended_l2=on,preallocation=metadata \
            data_file=X data_file=X,data_file_raw=on data_file=X,extended_l2=on \
            data_file=X,extended_l2=on,data_file_raw=on,cluster_size=16k; do
    both_ways "$opts" $((seed++))
done

# Over a backing file: unallocated subclusters show the backing data.
qemu-img create -q -f qcow2 base.qcow2 8M
qemu-io -c 'write -P 0x61 0 3M' -c 'write -P 0x62 5M 2M' base.qcow2 >/dev/null
for opts in extended_l2=on extended_l2=on,cluster_size=32k extended_l2=on,preallocation=metadata data_file=X \
            data_file=X,extended_l2=on; do
    both_ways "$opts" $((seed++)) base.qcow2
done

# Discard over a backing file where the overlay has no L2 table yet: the
# range reads as zeroes afterwards, as with qemu-io.
qemu-img create -q -f qcow2 bigbase.qcow2 1G
qemu-io -c 'write -P 0x63 600M 1M' bigbase.qcow2 >/dev/null
for opts in extended_l2=on extended_l2=off; do
    rm -f dk.qcow2 dq.qcow2
    run "$IMG" create -q -f qcow2 -o $opts -b bigbase.qcow2 -F qcow2 dk.qcow2
    qemu-img create -q -f qcow2 -o $opts -b bigbase.qcow2 -F qcow2 dq.qcow2
    run "$IO" -c 'discard 600M 128k' -c 'write -z 601M 64k' dk.qcow2
    qemu-io -c 'discard 600M 128k' -c 'write -z 601M 64k' dq.qcow2 >/dev/null
    qsame dk.qcow2 dq.qcow2
    qcheck dk.qcow2
done

# A 4 KiB write into an empty 64 KiB cluster writes 4 KiB of data (the point
# of subclusters), and so does a write next to it.
rm -f s.qcow2
run "$IMG" create -q -f qcow2 -o extended_l2=on s.qcow2 1M
run "$IO" -c 'write -P 1 4k 4k' -c 'write -P 2 128k 1k' s.qcow2
out=$(qemu-img map --output=json s.qcow2)
grep -q '"start": 4096, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true' <<<"$out" \
    || fail "subcluster write: unexpected map $out"
grep -q '"start": 131072, "length": 2048, "depth": 0, "present": true, "zero": false, "data": true' <<<"$out" \
    || fail "sub-subcluster write: unexpected map $out"

# Compressed clusters in an extended-L2 image, then partial overwrites.
qemu-img create -q -f raw src.raw 4M
qemu-io -f raw -c 'write -P 0x41 0 1M' -c 'write -P 0x42 2M 300k' src.raw >/dev/null
rm -f c.qcow2
run "$IMG" convert -c -O qcow2 -o extended_l2=on -f raw src.raw c.qcow2 && qcheck c.qcow2 && qsame c.qcow2 src.raw
run "$IO" -c 'write -P 0x43 70000 5000' -c 'write -z 140k 8k' c.qcow2
qemu-io -f raw -c 'write -P 0x43 70000 5000' -c 'write -z 140k 8k' src.raw >/dev/null
qcheck c.qcow2
qsame c.qcow2 src.raw

# Internal snapshots of an extended-L2 image: COPIED flags follow.
rm -f sn.qcow2
run "$IMG" create -q -f qcow2 -o extended_l2=on sn.qcow2 4M
run "$IO" -c 'write -P 1 0 100k' -c 'write -P 2 1M 3k' sn.qcow2
run "$IMG" convert -O raw sn.qcow2 before.raw
run "$IMG" snapshot -c one sn.qcow2
run "$IO" -c 'write -P 3 2k 4k' -c 'write -z 1M 64k' -c 'discard 0 64k' sn.qcow2
qcheck sn.qcow2
kcheck sn.qcow2
run "$IMG" snapshot -a one sn.qcow2 && qsame -F raw sn.qcow2 before.raw
qcheck sn.qcow2
run "$IMG" snapshot -d one sn.qcow2 && qcheck sn.qcow2

# Data-file images: info as qemu-img prints it, snapshots and compression
# refused, commit and rebase of a data-file overlay.
rm -f df.qcow2 df.raw
run "$IMG" create -q -f qcow2 -o data_file=df.raw,data_file_raw=on df.qcow2 1M
diff <("$IMG" info df.qcow2 | grep -v '^disk size') <(qemu-img info df.qcow2 | grep -v '^disk size') >/dev/null \
    || fail "info differs from qemu-img's on a data-file image"
diff <("$IMG" info --output=json df.qcow2 | grep -v actual-size) \
     <(qemu-img info --output=json df.qcow2 | grep -v actual-size) >/dev/null \
    || fail "info --output=json differs from qemu-img's on a data-file image"
out=$("$IMG" snapshot -c s df.qcow2 2>&1) && fail "snapshot on a data-file image succeeded"
[[ $out == *"Could not create snapshot 's': -95 (Operation not supported)"* ]] || fail "snapshot -c: $out"
run "$IMG" create -q -f qcow2 ov-base.qcow2 4M
run "$IO" -c 'write -P 7 0 1M' ov-base.qcow2
run "$IMG" create -q -f qcow2 -o data_file=ov.raw,extended_l2=on -b ov-base.qcow2 -F qcow2 ov.qcow2
run "$IO" -c 'write -P 8 10k 20k' -c 'write -P 9 2M 64k' ov.qcow2
run "$IMG" convert -O raw ov.qcow2 ov-expect.raw
run "$IMG" rebase -b '' ov.qcow2 && qsame -F raw ov.qcow2 ov-expect.raw && qcheck ov.qcow2
run "$IMG" rebase -u -b ov-base.qcow2 -F qcow2 ov.qcow2
run "$IMG" commit ov.qcow2 && qsame -F raw ov-base.qcow2 ov-expect.raw && qcheck ov.qcow2 && qcheck ov-base.qcow2

# A missing data file is named; --image-opts can point elsewhere.
mv df.raw moved.raw
out=$("$IO" -c 'read 0 1' df.qcow2 2>&1) && fail "opened with a missing data file"
[[ $out == *"Could not open 'df.raw': No such file or directory"* ]] || fail "missing data file: $out"
run "$IO" -c 'read 0 1' --image-opts driver=qcow2,file.filename=df.qcow2,data-file.filename=moved.raw
run "$IMG" amend -o data_file=moved.raw --image-opts driver=qcow2,file.filename=df.qcow2,data-file.filename=moved.raw
run "$IO" -c 'write -P 4 0 4k' df.qcow2
run "$IMG" amend -o data_file_raw=off df.qcow2
[[ $(qemu-img info df.qcow2) == *"data file raw: false"* ]] || fail "amend data_file_raw=off"

# qemu-img 7.2's refusals, word for word.
same_error() {
    local k q
    k=$("$IMG" "$@" 2>&1 >/dev/null | sed 's/^kiln-img: //')
    q=$(qemu-img "$@" 2>&1 >/dev/null | sed 's/^qemu-img: //')
    [[ "$k" == "$q" ]] || fail "$*: kiln '$k', qemu '$q'"
}
rm -f e.qcow2
same_error create -f qcow2 -o extended_l2=on,cluster_size=8k e.qcow2 1M
same_error create -f qcow2 -o extended_l2=on,compat=0.10 e.qcow2 1M
same_error create -f qcow2 -o data_file_raw=on e.qcow2 1M
same_error create -f qcow2 -o data_file=e.raw,compat=0.10 e.qcow2 1M
same_error create -f qcow2 -o data_file=e.raw,data_file_raw=on -b ov-base.qcow2 -F qcow2 e.qcow2 1M
qemu-img create -q -f qcow2 plain.qcow2 1M
same_error amend -o data_file=x.raw plain.qcow2
same_error amend -o data_file_raw=on df.qcow2
same_error amend -o compat=0.10 df.qcow2
same_error amend -o extended_l2=off plain.qcow2

# LUKS with an external data file, both ways: the ciphertext lives in the
# data file (no plaintext there), each tool reads what the other wrote.
# qemu-img's PBKDF2 calibration fails at random on this host ("Unable to
# get accurate CPU usage"): retried.
SEC=(--object secret,id=s,data=pw)
kopen() { echo "driver=qcow2,encrypt.key-secret=s,file.filename=$1"; }
rm -f ek.qcow2 ek.raw eq.qcow2 eq.raw
run "$IMG" create -q -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10,data_file=ek.raw ek.qcow2 4M
run "$IO" "${SEC[@]}" --image-opts "$(kopen ek.qcow2)" -c 'write -P 7 64k 100k' -c 'write -P 8 3M 512'
if grep -q $'\x07\x07\x07\x07\x07\x07\x07\x07' ek.raw; then fail "plaintext in the encrypted data file"; fi
out=$(qemu-io "${SEC[@]}" --image-opts "$(kopen ek.qcow2)" -c 'read -P 7 64k 100k' -c 'read -P 8 3M 512' -c 'read -P 0 0 64k' 2>&1)
[[ $out == *Pattern* || $out != *"read 512/512"* ]] && fail "qemu-io on kiln's encrypted data-file image: $out"
for _ in $(seq 1 40); do
    qemu-img create -q -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10,data_file=eq.raw eq.qcow2 4M 2>/dev/null && break
done
qemu-io "${SEC[@]}" --image-opts "$(kopen eq.qcow2)" -c 'write -P 5 128k 200k' >/dev/null 2>&1
run "$IO" "${SEC[@]}" --image-opts "$(kopen eq.qcow2)" -c 'read -P 5 128k 200k' -c 'read -P 0 0 128k' -c 'write -P 6 2M 4k'
out=$(qemu-io "${SEC[@]}" --image-opts "$(kopen eq.qcow2)" -c 'read -P 6 2M 4k' -c 'read -P 5 128k 200k' 2>&1)
[[ $out == *Pattern* || $out != *"read 204800/204800"* ]] && fail "qemu-io after kiln's write: $out"
for f in ek eq; do
    out=$(qemu-img check "${SEC[@]}" --image-opts "$(kopen $f.qcow2)" 2>&1) || fail "qemu-img check $f: $out"
    out=$("$IMG" check "${SEC[@]}" --image-opts "$(kopen $f.qcow2)" 2>&1) || fail "kiln-img check $f: $out"
done
# Kiln refuses raw mode with encryption (unwritten clusters would not read
# back as zeroes); qemu-img accepts it.
out=$("$IMG" create -q -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=s,data_file=er.raw,data_file_raw=on er.qcow2 4M 2>&1) \
    && fail "data_file_raw with encryption was accepted"
[[ $out == *"data_file_raw is not supported with encryption"* ]] || fail "raw+encryption message: $out"

finish
