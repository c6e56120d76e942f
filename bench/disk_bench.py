#!/usr/bin/env python3
"""In-guest disk throughput, Kiln against QEMU TCG (a benchmark, not a test).

Boots the test guest (tests/guest/build) once under `kiln -accel interp` and
once under `qemu-system-x86_64 -accel tcg`, each with the same two raw
images: one on virtio-blk, one on IDE (PIIX3, bus-master DMA). In the guest,
dd writes N MiB of zeros to each disk (conv=fsync) and reads them back after
dropping the page cache; the guest's /proc/uptime times each dd. Prints MB/s
per row and the kiln/qemu time ratio (below 1: Kiln is faster).

The numbers measure the whole emulated system (the guest's dd and block
driver run on the CPU emulator), not only the disk model.

usage: bench/disk_bench.py [--kiln build/system/kiln] [--mib 32] [--runs 1] [--format raw|qcow2]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def guest_script(mib):
    # One line for the kernel command line; each dd is timed by the guest clock.
    return (
        "up() { cut -d\\  -f1 /proc/uptime; }; "
        "for d in vda sda; do "
        f"s=$(up); dd if=/dev/zero of=/dev/$d bs=1M count={mib} conv=fsync 2>/dev/null; e=$(up); "
        "echo KILN-B write $d $s $e; "
        "echo 3 > /proc/sys/vm/drop_caches; "
        f"s=$(up); dd if=/dev/$d of=/dev/null bs=1M count={mib} 2>/dev/null; e=$(up); "
        "echo KILN-B read $d $s $e; "
        "done")


def run_guest(cmd_prefix, guest, images, fmt, mib):
    append = f'console=ttyS0 quiet kiln.poweroff -- sh -c "{guest_script(mib)}"'
    cmd = cmd_prefix + ["-m", "512", "-no-reboot", "-kernel", os.path.join(guest, "vmlinux"),
                        "-initrd", os.path.join(guest, "initrd"), "-append", append,
                        "-drive", f"file={images[0]},format={fmt},if=virtio",
                        "-drive", f"file={images[1]},format={fmt},if=ide,index=0"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                       timeout=3600)
    rows = {}
    for m in re.finditer(r"KILN-B (\w+) (\w+) ([\d.]+) ([\d.]+)", p.stdout):
        rows[(m.group(1), m.group(2))] = float(m.group(4)) - float(m.group(3))
    if len(rows) != 4:
        sys.exit(f"guest run failed ({' '.join(cmd_prefix[:3])}):\n{p.stdout[-2000:]}\n{p.stderr[-1000:]}")
    return rows


def make_images(d, fmt, mib, tag):
    out = []
    for name in ("virtio", "ide"):
        path = os.path.join(d, f"{tag}-{name}.{fmt}")
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, f"{mib + 16}M"], check=True)
        out.append(path)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "system", "kiln"))
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--runs", type=int, default=1, help="best of N per emulator")
    ap.add_argument("--format", choices=["raw", "qcow2"], default="raw")
    a = ap.parse_args()
    if not shutil.which("qemu-system-x86_64"):
        sys.exit("qemu-system-x86_64 not installed (scripts/setup --test)")
    guest = subprocess.run([os.path.join(ROOT, "tests/guest/build")], check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
    emulators = {
        "kiln": [a.kiln, "-accel", "interp", "-nographic"],
        "qemu": ["qemu-system-x86_64", "-accel", "tcg", "-display", "none", "-serial", "stdio", "-monitor", "none"],
    }
    best = {}
    with tempfile.TemporaryDirectory(prefix="kiln-disk-bench-") as d:
        for run in range(a.runs):
            for name, prefix in emulators.items():
                images = make_images(d, a.format, a.mib, name)
                rows = run_guest(prefix, guest, images, a.format, a.mib)
                for k, v in rows.items():
                    best[(name,) + k] = min(v, best.get((name,) + k, v))
                for img in images:
                    os.unlink(img)
    print(f"in-guest dd, {a.mib} MiB, bs=1M, {a.format} images, best of {a.runs}")
    print(f"| operation | QEMU TCG (MB/s) | Kiln interp (MB/s) | kiln/qemu time |")
    print(f"|---|---|---|---|")
    for dev, label in (("vda", "virtio-blk"), ("sda", "IDE")):
        for op in ("write", "read"):
            q, k = best[("qemu", op, dev)], best[("kiln", op, dev)]
            mbps = lambda s: a.mib * 1.048576 / s if s > 0 else float("inf")
            print(f"| {label} {op} | {mbps(q):.1f} | {mbps(k):.1f} | {k / q if q > 0 else float('inf'):.2f} |")


if __name__ == "__main__":
    main()
