#!/usr/bin/env python3
"""kiln-img vs qemu-img, side by side (a benchmark, not a test).

Builds a 1 GiB raw image of 1 MiB blocks (half random, a quarter zero, a
quarter text), converts it to qcow2 with qemu-img as the common input, then
times the same command lines through both tools and prints kiln/qemu per row.

usage: bench/img_bench.py [--kiln build/tools/kiln-img] [--dir DIR] [--runs N]
                          [--size-mib 1024] [--requests 200000] [--only TEXT]
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

TEXT = (b"Kiln is a full-system x86-64 emulator with its own block layer. "
        b"The quick brown fox jumps over the lazy dog. 0123456789\n")


def make_image(path, size_mib):
    rng = random.Random(1234)
    text_block = (TEXT * (1048576 // len(TEXT) + 1))[:1048576]
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
        for i in range(size_mib):
            kind = i % 4
            if kind == 2:
                continue  # zero: left as a hole
            f.seek(i << 20)
            f.write(rng.randbytes(1048576) if kind < 2 else text_block)


def timed(cmd, cwd):
    # Start each run without the previous one's dirty pages being written
    # back underneath it.
    os.sync()
    t = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - t
    if p.returncode not in (0,):
        print("  failed (rc=%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stdout.decode()[-500:]))
        return None
    return elapsed


# --- Internal snapshots (create, apply, delete) on a copy of the 1 GiB
# qcow2: each tool runs the three steps in sequence on its own copy.
def snapshot_rows(args, kiln, work):
    steps = [("snapshot -c (1 GiB)", ["snapshot", "-c", "s1", "snap.qcow2"]),
             ("snapshot -a (1 GiB)", ["snapshot", "-a", "s1", "snap.qcow2"]),
             ("snapshot -d (1 GiB)", ["snapshot", "-d", "s1", "snap.qcow2"])]
    best = {name: {} for name, _ in steps}
    for tool, prog in (("qemu", args.qemu), ("kiln", kiln)):
        for _ in range(args.runs):
            shutil.copy(os.path.join(work, "src.qcow2"), os.path.join(work, "snap.qcow2"))
            for name, cmd in steps:
                t = timed([prog] + cmd, work)
                if t is not None:
                    best[name][tool] = min(t, best[name].get(tool, t))
    rows = []
    for name, _ in steps:
        q, k = best[name].get("qemu"), best[name].get("kiln")
        print("  %-28s qemu %8s  kiln %8s  ratio %s" % (name, "%.3f" % q if q else "-", "%.3f" % k if k else "-",
                                                         "%.2f" % (k / q) if q and k else "-"), flush=True)
        rows.append((name, q, k))
    return rows


# --- check -r all on a copy of the 1 GiB qcow2 whose second L1 entry was
# cleared: the L2 table and every data cluster it mapped (about half the
# image) become leaked clusters for the repair to free.
def leak_half(path):
    import struct
    with open(path, "r+b") as f:
        head = f.read(104)
        l1_size = struct.unpack(">I", head[36:40])[0]
        l1_offset = struct.unpack(">Q", head[40:48])[0]
        f.seek(l1_offset + 8 * (l1_size // 2))
        f.write(bytes(8 * (l1_size - l1_size // 2)))


def repair_rows(args, kiln, work):
    name = "check -r all (1 GiB, leaks)"
    best = {}
    for tool, prog in (("qemu", args.qemu), ("kiln", kiln)):
        for _ in range(args.runs):
            img = os.path.join(work, "leaky.qcow2")
            shutil.copy(os.path.join(work, "src.qcow2"), img)
            leak_half(img)
            t = timed([prog, "check", "-r", "all", "leaky.qcow2"], work)
            if t is not None:
                best[tool] = min(t, best.get(tool, t))
            # After the repair the other tool must find the image clean.
            other = args.qemu if tool == "kiln" else kiln
            if subprocess.run([other, "check", "leaky.qcow2"], cwd=work, capture_output=True).returncode != 0:
                print("  %s left leaky.qcow2 unclean" % tool)
    q, k = best.get("qemu"), best.get("kiln")
    print("  %-28s qemu %8s  kiln %8s  ratio %s" % (name, "%.3f" % q if q else "-", "%.3f" % k if k else "-",
                                                     "%.2f" % (k / q) if q and k else "-"), flush=True)
    return [(name, q, k)]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--kiln", default=os.path.join(here, "..", "build", "tools", "kiln-img"))
    ap.add_argument("--qemu", default="qemu-img")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--snapshots-only", action="store_true", help="run only the snapshot rows")
    ap.add_argument("--only", action="append", default=[],
                    help="run only the rows whose name contains TEXT (repeatable)")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    work = tempfile.mkdtemp(prefix="kiln-bench-", dir=args.dir)
    try:
        print("preparing a %d MiB image in %s" % (args.size_mib, work))
        make_image(os.path.join(work, "src.raw"), args.size_mib)
        subprocess.run([args.qemu, "convert", "-f", "raw", "-O", "qcow2", "src.raw", "src.qcow2"], cwd=work, check=True)
        n = str(args.requests)
        if args.snapshots_only:
            results = snapshot_rows(args, kiln, work)
            print("\n| operation | qemu-img (s) | kiln-img (s) | kiln/qemu |\n|---|---|---|---|")
            for name, q, k in results:
                print("| %s | %s | %s | %s |" % (name, "%.3f" % q if q else "failed", "%.3f" % k if k else "failed",
                                               "%.2f" % (k / q) if q and k else "-"))
            return 0
        rows = [
            ("convert raw->qcow2", ["convert", "-f", "raw", "-O", "qcow2", "src.raw", "out.qcow2"], "out.qcow2"),
            ("convert qcow2->raw", ["convert", "-f", "qcow2", "-O", "raw", "src.qcow2", "out.raw"], "out.raw"),
            ("convert -c (zlib)", ["convert", "-c", "-f", "raw", "-O", "qcow2", "src.raw", "outc.qcow2"], "outc.qcow2"),
            ("convert -c (zstd)", ["convert", "-c", "-o", "compression_type=zstd", "-f", "raw", "-O", "qcow2",
                                   "src.raw", "outc.qcow2"], "outc.qcow2"),
        ]
        for engine in ("threads", "native", "io_uring"):
            rows.append(("bench read 4k d32 %s" % engine,
                         ["bench", "-c", n, "-d", "32", "-s", "4096", "-t", "none", "-i", engine, "-f", "qcow2",
                          "src.qcow2"], None))
        for engine in ("threads", "native", "io_uring"):
            rows.append(("bench write 4k d32 %s" % engine,
                         ["bench", "-w", "-c", n, "-d", "32", "-s", "4096", "-t", "none", "-i", engine, "-f",
                          "qcow2", "bw.qcow2"], None))
        rows.append(("check", ["check", "src.qcow2"], None))
        # Allocating 4 KiB writes (one per 64 KiB cluster) with a flush every
        # 64 requests, into a fresh image: refcount/L2 commit ordering is the
        # cost. Each run gets a new empty image made by qemu-img.
        alloc = ["bench", "-w", "-c", str(min(args.requests, (args.size_mib << 20) // 65536)), "-d", "32", "-s",
                 "4096", "-S", "65536", "-t", "none", "--flush-interval=64", "-f", "qcow2"]
        rows.append(("bench write 4k alloc", alloc + ["bn.qcow2"], None))
        rows.append(("bench write 4k alloc lazy_refcounts", alloc + ["bl.qcow2"], None))
        if args.only:
            rows = [r for r in rows if any(t in r[0] for t in args.only)]
        results = []
        for name, cmd, out in rows:
            best = {}
            sizes = {}
            for tool, prog in (("qemu", args.qemu), ("kiln", kiln)):
                times = []
                for _ in range(args.runs):
                    if out:
                        try:
                            os.unlink(os.path.join(work, out))
                        except FileNotFoundError:
                            pass
                    if "bw.qcow2" in cmd:
                        shutil.copy(os.path.join(work, "src.qcow2"), os.path.join(work, "bw.qcow2"))
                    for fresh, lazy in (("bn.qcow2", "off"), ("bl.qcow2", "on")):
                        if fresh in cmd:
                            subprocess.run([args.qemu, "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=" + lazy,
                                            fresh, "%dM" % args.size_mib], cwd=work, check=True)
                    t = timed([prog] + cmd, work)
                    if t is not None:
                        times.append(t)
                    if out and os.path.exists(os.path.join(work, out)):
                        sizes[tool] = os.stat(os.path.join(work, out)).st_blocks * 512
                best[tool] = min(times) if times else None
            # For converts: the output's disk usage, kiln/qemu.
            size_ratio = "%.3f" % (sizes["kiln"] / sizes["qemu"]) if sizes.get("qemu") and "kiln" in sizes else ""
            results.append((name, best["qemu"], best["kiln"], size_ratio))
            q, k = best["qemu"], best["kiln"]
            ratio = "%.2f" % (k / q) if q and k else "-"
            print("  %-28s qemu %8s  kiln %8s  ratio %s%s" % (name, "%.2f" % q if q else "-",
                                                               "%.2f" % k if k else "-", ratio,
                                                               "  size ratio " + size_ratio if size_ratio else ""),
                  flush=True)
        if not args.only or any("snapshot" in t for t in args.only):
            results += [(name, q, k, "") for name, q, k in snapshot_rows(args, kiln, work)]
        if not args.only or any("check -r" in t for t in args.only):
            results += [(name, q, k, "") for name, q, k in repair_rows(args, kiln, work)]
        print()
        print("| operation | qemu-img (s) | kiln-img (s) | kiln/qemu | output size kiln/qemu |")
        print("|---|---|---|---|---|")
        for name, q, k, size_ratio in results:
            print("| %s | %s | %s | %s | %s |" % (name, "%.2f" % q if q else "failed", "%.2f" % k if k else "failed",
                                                "%.2f" % (k / q) if q and k else "-", size_ratio))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
