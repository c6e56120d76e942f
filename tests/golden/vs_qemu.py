#!/usr/bin/env python3
"""Runs kiln-img and Debian's qemu-img side by side on the same images
(made by qemu-img) and requires identical output and exit codes.

Fields Kiln documents as different (docs/kiln-img.md, "Differences from
qemu-img") would be listed in KNOWN_DIFFERENCES; there are none today.
Skips (exit 77) when qemu-img is not installed.
"""
import os
import shutil
import subprocess
import sys
import tempfile

KNOWN_DIFFERENCES = []

# Images Kiln's block drivers cannot open yet (not a kiln-img matter):
# mismatches on them are reported as XFAIL, matches as XPASS.
KNOWN_DRIVER_GAPS = {
}

SETUP = [
    "qemu-img create -q -f qcow2 plain.qcow2 64M",
    "qemu-io -c 'write -P 0xab 0 1M' -c 'write -z 2M 64k' -c 'write -P 1 63M 4k' plain.qcow2",
    "qemu-img create -q -f qcow2 -o cluster_size=4k,compat=0.10 v2.qcow2 8M",
    "qemu-io -c 'write -P 0x11 4k 12k' v2.qcow2",
    "qemu-img create -q -f qcow2 -o refcount_bits=8,lazy_refcounts=on,cluster_size=512 r8.qcow2 1M",
    "qemu-io -c 'write -P 0x12 1000 3000' r8.qcow2",
    "qemu-img create -q -f qcow2 -o compression_type=zstd zstd.qcow2 4M",
    "qemu-io -c 'write -P 0x13 64k 64k' zstd.qcow2",
    "qemu-img create -q -f qcow2 -o extended_l2=on el2.qcow2 4M",
    "qemu-img create -q -f qcow2 -b plain.qcow2 -F qcow2 over.qcow2",
    "qemu-io -c 'write -P 0xcd 512k 64k' over.qcow2",
    "qemu-img create -q -f qcow2 -b over.qcow2 -F qcow2 top.qcow2 128M",
    "qemu-img convert -c -O qcow2 plain.qcow2 comp.qcow2",
    "qemu-img create -q -f raw disk.raw 16M",
    "qemu-io -f raw -c 'write -P 0x77 1M 1M' disk.raw",
    "qemu-img create -q -f qcow2 snap.qcow2 4M",
    "qemu-io -c 'write -P 0x21 0 64k' snap.qcow2",
    "qemu-img snapshot -c one snap.qcow2",
    "qemu-io -c 'write -P 0x22 0 4k' snap.qcow2",
    "qemu-img snapshot -c two snap.qcow2",
    "qemu-img create -q -f qcow2 -o data_file=ext.raw dfile.qcow2 1M",
]

IMAGES = ["plain.qcow2", "v2.qcow2", "r8.qcow2", "zstd.qcow2", "el2.qcow2", "over.qcow2", "top.qcow2", "comp.qcow2",
          "disk.raw", "snap.qcow2", "dfile.qcow2"]

COMMANDS = [
    "info --output=json {img}",
    "info {img}",
    "info --backing-chain --output=json {img}",
    "check --output=json {img}",
    "check {img}",
    "map --output=json {img}",
    "map {img}",
    "snapshot -l {img}",
    "compare {img} {img}",
]


def run(cmd, cwd):
    p = subprocess.run(["bash", "-c", cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=dict(os.environ, TZ="UTC", LC_ALL="C"), timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def main():
    kiln_img = os.path.abspath(sys.argv[1])
    if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        print("qemu-img not installed: skipping")
        return 77
    tmp = tempfile.mkdtemp(prefix="kiln-vsqemu-")
    failures = 0
    try:
        for cmd in SETUP:
            rc, out = run(cmd + " > /dev/null", tmp)
            if rc:
                print("setup failed:", cmd, out)
                return 1
        for img in IMAGES:
            for template in COMMANDS:
                args = template.format(img=img)
                if (img, template) in KNOWN_DIFFERENCES:
                    continue
                qrc, qout = run("qemu-img " + args, tmp)
                krc, kout = run(kiln_img + " " + args, tmp)
                qout = qout.replace("qemu-img", "kiln-img")
                kout = kout.replace(kiln_img, "kiln-img")
                # Host allocation of the image file can differ with the
                # writer's I/O pattern only for files Kiln wrote; these are
                # qemu's files, so even "disk size" must match.
                if (qrc, qout) != (krc, kout) and img in KNOWN_DRIVER_GAPS:
                    print("XFAIL %s (%s)" % (args, KNOWN_DRIVER_GAPS[img]))
                elif (qrc, qout) != (krc, kout):
                    failures += 1
                    print("MISMATCH: %s" % args)
                    print("--- qemu-img (rc=%d)\n%s--- kiln-img (rc=%d)\n%s" % (qrc, qout, krc, kout))
                elif img in KNOWN_DRIVER_GAPS:
                    print("XPASS %s: take %s off KNOWN_DRIVER_GAPS" % (args, img))
                else:
                    print("ok", args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d mismatches" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
