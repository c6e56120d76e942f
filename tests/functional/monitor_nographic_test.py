#!/usr/bin/env python3
"""Functional test: under -nographic on a real pty, Ctrl-A c switches the
terminal between the guest's serial console and the HMP monitor, as QEMU's
mux does. A tiny synthetic kernel prints on COM1, then echoes what it
receives back, so the test can tell where typed bytes went. Also checked:
tab completion and history on the terminal, stop/cont from the mux, and
`quit` from the mux ending kiln with status 0 and the terminal restored."""
import os
import select
import subprocess
import sys
import tempfile
import termios

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(here), "unit", "system"))
from nographic_test_kernel import synthetic_pvh_kernel  # noqa: E402

kiln = sys.argv[1]
failures = []
passed = 0


def check(name, ok, detail=""):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(name)
        print(f"FAILED: {name} {detail!r}"[:2000])


received = b""  # everything kiln wrote
cursor = 0  # how far read_until has consumed it


def read_until(fd, needle, timeout_s=60):
    """Returns the output from the last match up to and including `needle`."""
    global received, cursor
    while received.find(needle, cursor) < 0:
        r, _, _ = select.select([fd], [], [], timeout_s)
        if not r:
            raise TimeoutError(f"timed out waiting for {needle!r}; got {received[cursor:][-500:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            raise EOFError(f"EOF waiting for {needle!r}; got {received[cursor:][-500:]!r}")
        received += chunk
    end = received.find(needle, cursor) + len(needle)
    out, cursor = received[cursor:end], end
    return out


# 16-bit-free PVH code (32-bit): print "ready\n" on COM1, then forever:
# wait for LSR.DR, read a byte, write it back plus one (so 'a' echoes 'b').
ready = b"".join(b"\xb0" + bytes([c]) + b"\xee" for c in b"ready\n")
code = (b"\x66\xba\xf8\x03" + ready +  # mov dx,0x3f8; out "ready\n"
        b"\x66\xba\xfd\x03"            # loop: mov dx,0x3fd
        b"\xec"                        # in al,dx
        b"\xa8\x01"                    # test al,1
        b"\x74\xfb"                    # jz in
        b"\x66\xba\xf8\x03"            # mov dx,0x3f8
        b"\xec"                        # in al,dx
        b"\xfe\xc0"                    # inc al
        b"\xee"                        # out dx,al
        b"\xeb\xed")                   # jmp loop
with tempfile.NamedTemporaryFile(suffix=".vmlinux", delete=False) as f:
    f.write(synthetic_pvh_kernel(code))
    kernel = f.name

master, slave = os.openpty()
before = termios.tcgetattr(slave)
p = subprocess.Popen([kiln, "-nographic", "-m", "32", "-name", "muxvm", "-kernel", kernel],
                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
try:
    read_until(master, b"ready")
    os.write(master, b"a")
    check("the guest gets typed bytes before Ctrl-A c", b"b" in read_until(master, b"b"))

    os.write(master, b"\x01c")
    out = read_until(master, b"(kiln) ")
    check("Ctrl-A c shows the monitor banner", b"Kiln 0.1.0 monitor - type 'help' for more information" in out, out)
    os.write(master, b"info name\r")
    out = read_until(master, b"muxvm")
    read_until(master, b"(kiln) ")
    check("info name on the mux", b"muxvm" in out, out)
    os.write(master, b"info sta\t")
    out = read_until(master, b"tus")
    os.write(master, b"\r")
    out = read_until(master, b"VM status: running")
    read_until(master, b"(kiln) ")
    check("tab completes 'info sta' to 'info status'", True)
    os.write(master, b"stop\r")
    read_until(master, b"(kiln) ")
    os.write(master, b"\x1b[A\x1b[A\r")  # history: two up = "info status"
    out = read_until(master, b"(kiln) ")
    check("history recalls info status; stop paused the VM", b"VM status: paused" in out, out)
    os.write(master, b"cont\r")
    read_until(master, b"(kiln) ")
    os.write(master, b"Y")  # typed while the monitor has the keyboard: not for the guest
    os.write(master, b"\x15")  # Ctrl-U clears it
    os.write(master, b"\x01c")
    os.write(master, b"P")
    out = read_until(master, b"Q")
    check("after Ctrl-A c again, typed bytes reach the guest (P -> Q)", out.endswith(b"Q"), out)
    check("bytes typed in the monitor did not reach the guest", b"Z" not in out, out)

    os.write(master, b"\x01c")
    read_until(master, b"(kiln) ")
    os.write(master, b"quit\r")
    status = p.wait(timeout=30)
    check("quit on the mux exits with status 0", status == 0, status)
    check("terminal settings restored", termios.tcgetattr(slave) == before)
except (TimeoutError, EOFError, OSError, subprocess.TimeoutExpired) as e:
    check("no exception", False, repr(e))
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
    os.unlink(kernel)
print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
