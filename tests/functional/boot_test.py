#!/usr/bin/env python3
"""Functional test: the demo guest (Debian's stock kernel as a PVH vmlinux,
busybox initramfs) boots under `kiln -accel interp`, reaches /init's marker,
runs a command passed on -append, and its `poweroff` ends kiln with status 0."""
import os
import subprocess
import sys
import time

kiln = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    guest = subprocess.run([os.path.join(root, "tests/guest/build")], check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
except subprocess.CalledProcessError as e:
    print(f"SKIP: could not build the test guest: {e.stderr.strip()}")
    sys.exit(77)

append = 'console=ttyS0 quiet kiln.poweroff -- sh -c "echo sum=$((6*7)); uname -r"'
start = time.monotonic()
proc = subprocess.run([kiln, "-accel", "interp", "-m", "512", "-nographic", "-no-reboot",
                       "-kernel", os.path.join(guest, "vmlinux"), "-initrd", os.path.join(guest, "initrd"),
                       "-append", append], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                      errors="replace", timeout=900)
elapsed = time.monotonic() - start
out = proc.stdout
checks = [
    ("marker printed by /init", "KILN-GUEST-READY" in out),
    ("command from -append ran", "sum=42" in out),
    ("kernel release printed", "6.1.0" in out),
    ("command exit status 0", "KILN-GUEST-STATUS=0" in out),
    ("poweroff ended kiln with status 0", proc.returncode == 0),
]
failed = [name for name, ok in checks if not ok]
print(f"boot to poweroff in {elapsed:.1f} s, kiln exit {proc.returncode}")
if failed:
    print("FAILED: " + ", ".join(failed))
    print(out[-3000:])
    print(proc.stderr[-2000:])
    sys.exit(1)
print(f"{len(checks)} passed, 0 failed")
