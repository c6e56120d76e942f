#!/usr/bin/env python3
"""Functional test: kiln -nographic on a pseudo-terminal, as a user runs it.

1. The PVH vmlinux boots under -accel interp with -no-reboot to /init's
   marker, runs the -append command, then its interactive shell on the
   console runs a typed command; a typed `reboot -f` ends kiln with 0
   (-no-reboot) and the terminal's settings come back.
2. Without -no-reboot, the guest's `reboot -f` (from -append) resets the
   machine and the kernel boots again; Ctrl-A h prints the mux help and
   Ctrl-A x ends kiln with 0 during that second boot.

usage: console_test.py PATH/TO/kiln"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import MARKER, Checks, PtyKiln, guest_dir  # noqa: E402

kiln = sys.argv[1]
guest = guest_dir()
checks = Checks()
base = [kiln, "-accel", "interp", "-m", "512", "-nographic", "-kernel", os.path.join(guest, "vmlinux"),
        "-initrd", os.path.join(guest, "initrd")]

# 1. Interactive shell, then reboot under -no-reboot.
start = time.monotonic()
k = PtyKiln(base + ["-no-reboot", "-append", 'console=ttyS0 quiet -- sh -c "echo sum=$((6*7))"'])
try:
    checks.check("marker printed by /init", k.read_until(MARKER))
    checks.check("command from -append ran", k.read_until("sum=42", 60))
    checks.check("its exit status printed", k.read_until("KILN-GUEST-STATUS=0", 60))
    marker_s = time.monotonic() - start
    checks.check("shell prompt", k.read_until("# ", 120))
    mark = len(k.output)
    k.write("echo typed-$((1+2))\r")
    checks.check("typed command ran in the guest shell", k.read_until("typed-3", 120, start=mark))
    k.write("reboot -f\r")
    status = k.wait(300)
    checks.check("guest reboot under -no-reboot ended kiln with status 0 (got %r)" % status, status == 0)
    checks.check("terminal settings restored", k.terminal_restored())
    print(f"vmlinux on the console: marker at {marker_s:.1f} s, kiln ended at {time.monotonic() - start:.1f} s")
    context = k.text()[-3000:]
finally:
    k.close()

# 2. A guest reboot without -no-reboot resets the machine: the kernel
# starts again. Ctrl-A h and Ctrl-A x then work while it boots.
start = time.monotonic()
k = PtyKiln(base + ["-append", "console=ttyS0 -- reboot -f"])
try:
    checks.check("first boot reaches /init", k.read_until(MARKER))
    mark = len(k.output)
    checks.check("guest reboot starts the kernel again", k.read_until("Linux version", 600, start=mark))
    print(f"reboot: second kernel banner at {time.monotonic() - start:.1f} s")
    k.write(b"\x01h")
    checks.check("C-a h prints the help", k.read_until("C-a x    exit emulator", 60, start=mark))
    k.write(b"\x01x")
    status = k.wait(60)
    checks.check("C-a x ended kiln with status 0 (got %r)" % status, status == 0)
    checks.check("C-a x says so", b"Kiln: Terminated" in k.output)
    checks.check("terminal settings restored after C-a x", k.terminal_restored())
    context += "\n---\n" + k.text()[-2000:]
finally:
    k.close()

checks.finish(context)
