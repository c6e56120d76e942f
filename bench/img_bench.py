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
        # 4 KiB writes scattered over a fresh extended_l2=on image (a 68 KiB
        # stride: each write lands in an unallocated cluster, so subcluster
        # allocation decides how much is written and copied).
        rows.append(("bench write 4k ext-l2 scattered",
                     ["bench", "-w", "-c", n, "-d", "32", "-s", "4096", "-S", "69632", "-t", "none", "-i",
                      "io_uring", "-f", "qcow2", "bx.qcow2"], None))
        rows.append(("check", ["check", "src.qcow2"], None))
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
                    if "bx.qcow2" in cmd:
                        subprocess.run([args.qemu, "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "bx.qcow2",
                                        "%dM" % args.size_mib], cwd=work, check=True)
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
