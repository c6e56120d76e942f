#!/usr/bin/env python3
# kiln -nographic on a real pty: raw mode while running, the Ctrl-A mux
# (C-a h prints the help, C-a x exits with status 0), and the terminal's
# settings restored afterwards. Usage: nographic_test.py PATH/TO/kiln
import os
import select
import subprocess
import sys
import tempfile
import termios

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nographic_test_kernel import synthetic_pvh_kernel  # noqa: E402


def read_until(fd, needle, timeout_s=30):
    buf = b''
    while needle not in buf:
        r, _, _ = select.select([fd], [], [], timeout_s)
        if not r:
            raise SystemExit('timed out waiting for %r; got %r' % (needle, buf))
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b''
        if not chunk:
            raise SystemExit('EOF waiting for %r; got %r' % (needle, buf))
        buf += chunk
    return buf


def main():
    kiln = sys.argv[1]
    # mov dx,0x3f8; out "ready\n"; cli; hlt; jmp hlt
    code = b'\x66\xba\xf8\x03' + b''.join(b'\xb0' + bytes([c]) + b'\xee' for c in b'ready\n') + b'\xfa\xf4\xeb\xfd'
    with tempfile.NamedTemporaryFile(suffix='.vmlinux', delete=False) as f:
        f.write(synthetic_pvh_kernel(code))
        kernel = f.name
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    try:
        p = subprocess.Popen([kiln, '-nographic', '-m', '32', '-kernel', kernel],
                             stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        read_until(master, b'ready')
        during = termios.tcgetattr(slave)
        if during[3] & (termios.ECHO | termios.ICANON):
            raise SystemExit('terminal not in raw mode while kiln runs')
        os.write(master, b'\x01h')
        read_until(master, b'C-a x    exit emulator')
        os.write(master, b'\x01x')
        read_until(master, b'Kiln: Terminated')
        status = p.wait(timeout=30)
        if status != 0:
            raise SystemExit('kiln exited with %d after C-a x' % status)
        after = termios.tcgetattr(slave)
        if after != before:
            raise SystemExit('terminal settings not restored: %r != %r' % (after, before))
    finally:
        os.unlink(kernel)
    print('ok')


main()
