#!/usr/bin/env python3
"""Functional test: the demo guest (Debian's stock kernel, busybox
initramfs) boots under `kiln -accel interp`, reaches /init's marker, runs a
command passed on -append, and its `poweroff` ends kiln with status 0.

usage: boot_test.py PATH/TO/kiln [vmlinux|bzImage]   (default vmlinux)

vmlinux: the ELF kernel through its PVH note, console on stdio (-nographic).
bzImage: the Linux/x86 boot protocol (the kernel decompresses itself first),
         console captured by -serial file: with -display none."""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import BOOT_TIMEOUT_S, MARKER, Checks, guest_dir  # noqa: E402

kiln = sys.argv[1]
kernel = sys.argv[2] if len(sys.argv) > 2 else "vmlinux"
guest = guest_dir()
checks = Checks()
append = 'console=ttyS0 quiet kiln.poweroff -- sh -c "echo sum=$((6*7)); uname -r"'
args = [kiln, "-accel", "interp", "-m", "512", "-no-reboot", "-kernel", os.path.join(guest, kernel),
        "-initrd", os.path.join(guest, "initrd"), "-append", append]
serial_file = None
if kernel == "bzImage":
    serial_file = os.path.join(tempfile.mkdtemp(prefix="kiln-boot-test-"), "console.txt")
    args += ["-display", "none", "-serial", "file:" + serial_file]
else:
    args += ["-nographic"]

start = time.monotonic()
proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                      timeout=BOOT_TIMEOUT_S * (2 if kernel == "bzImage" else 1))
elapsed = time.monotonic() - start
out = proc.stdout
if serial_file:
    checks.check("nothing on stdout with -serial file:", out == "")
    with open(serial_file, errors="replace") as f:
        out = f.read()
    os.unlink(serial_file)
    os.rmdir(os.path.dirname(serial_file))
checks.check("marker printed by /init", MARKER in out)
checks.check("command from -append ran", "sum=42" in out)
checks.check("kernel release printed", "6.1.0" in out)
checks.check("command exit status 0", "KILN-GUEST-STATUS=0" in out)
checks.check("poweroff ended kiln with status 0", proc.returncode == 0)
print(f"{kernel}: boot to poweroff in {elapsed:.1f} s, kiln exit {proc.returncode}")
checks.finish(out[-3000:] + "\n" + proc.stderr[-2000:])
