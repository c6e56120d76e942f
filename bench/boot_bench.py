#!/usr/bin/env python3
"""kiln -accel interp vs qemu-system-x86_64 -accel tcg booting the same
guest (a benchmark, not a test).

Both get the same kernel, initrd, -append and -m. The guest is the test
guest from tests/guest/build: its /init prints KILN-GUEST-READY, runs the
command after "--" and powers off (kiln.poweroff). Measured per run: wall
time to the marker on the serial console, wall time to the emulator's exit,
CPU time (user + system) and peak RSS of the emulator process. Prints one
row per kernel with the kiln/qemu ratio (below 1: Kiln is faster).

usage: bench/boot_bench.py [--kiln build/system/kiln] [--qemu qemu-system-x86_64]
                           [--kernel vmlinux|bzImage|both] [--runs N] [--mem 512] [--jit on|off]
"""
import argparse
import os
import select
import subprocess
import sys
import time

MARKER = b"KILN-GUEST-READY"
APPEND = 'console=ttyS0 quiet kiln.poweroff -- sh -c "echo sum=$((6*7))"'


def guest_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([os.path.join(here, "..", "tests", "guest", "build")], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def boot(cmd, timeout_s):
    """Runs one boot; returns (to_marker_s, to_exit_s, cpu_s, peak_rss_mib, rc)."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    seen = b""
    to_marker = None
    fd = p.stdout.fileno()
    while True:
        left = timeout_s - (time.monotonic() - start)
        if left <= 0:
            p.kill()
            break
        r, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        if to_marker is None:
            seen = (seen + chunk)[-4096:]
            if MARKER in seen:
                to_marker = time.monotonic() - start
    _, status, usage = os.wait4(p.pid, 0)
    to_exit = time.monotonic() - start
    rc = os.waitstatus_to_exitcode(status)
    return to_marker, to_exit, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, rc


def best(runs):
    ok = [r for r in runs if r[0] is not None and r[4] == 0]
    if not ok:
        return None
    return (min(r[0] for r in ok), min(r[1] for r in ok), min(r[2] for r in ok), max(r[3] for r in ok))


def fmt(v, unit):
    return "-" if v is None else ("%.1f%s" % (v, unit))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(here, "..", "build", "system", "kiln"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--kernel", choices=["vmlinux", "bzImage", "both"], default="both")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--mem", default="512")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--jit", choices=["on", "off"], default="on", help="kiln's JIT tier (-accel interp,jit=)")
    args = ap.parse_args()
    guest = guest_dir()
    kernels = ["vmlinux", "bzImage"] if args.kernel == "both" else [args.kernel]
    emulators = [("qemu", [args.qemu, "-accel", "tcg"]), ("kiln", [os.path.abspath(args.kiln), "-accel", "interp,jit=" + args.jit])]
    rows = []
    for k in kernels:
        common = ["-m", args.mem, "-nographic", "-no-reboot", "-kernel", os.path.join(guest, k),
                  "-initrd", os.path.join(guest, "initrd"), "-append", APPEND]
        res = {}
        for name, prefix in emulators:
            runs = []
            for i in range(args.runs):
                r = boot(prefix + common, args.timeout)
                print("%s %s run %d: marker %s, exit %s (status %d), cpu %s, peak RSS %s" %
                      (name, k, i + 1, fmt(r[0], " s"), fmt(r[1], " s"), r[4], fmt(r[2], " s"),
                       fmt(r[3], " MiB")), flush=True)
                runs.append(r)
            res[name] = best(runs)
        rows.append((k, res))

    print()
    print("| kernel | measure | qemu tcg | kiln interp | kiln/qemu |")
    print("|---|---|---|---|---|")
    for k, res in rows:
        q, n = res["qemu"], res["kiln"]
        for i, (label, unit) in enumerate([("time to marker", " s"), ("time to exit", " s"),
                                           ("CPU time", " s"), ("peak RSS", " MiB")]):
            qv = q[i] if q else None
            nv = n[i] if n else None
            ratio = "%.2f" % (nv / qv) if qv and nv else "-"
            print("| %s | %s | %s | %s | %s |" % (k, label, fmt(qv, unit), fmt(nv, unit), ratio))
    failed = [k for k, res in rows if not res["qemu"] or not res["kiln"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
