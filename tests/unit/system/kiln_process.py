"""Shared pieces of the process-level tests (process_test.py,
options_test.py): kiln run as a process on tiny synthetic PVH kernels,
and a checklist that reports every failure before exiting."""
import os
import subprocess
import sys
import tempfile
import time

from nographic_test_kernel import synthetic_pvh_kernel

HALT = b'\xfa\xf4\xeb\xfd'  # cli; hlt; jmp hlt
# Powers off through the ACPI PM block (SLP_TYP 0 | SLP_EN at 0x604).
POWEROFF = b'\x66\xba\x04\x06\x66\xb8\x00\x20\x66\xef'


def out_text(text, port=0x3f8):
    """mov dx, port; then mov al, c; out dx, al for each byte."""
    return b'\x66\xba' + port.to_bytes(2, 'little') + b''.join(b'\xb0' + bytes([c]) + b'\xee' for c in text)


class ProcessTest:
    def __init__(self, prefix):
        self.kiln = os.path.abspath(sys.argv[1])
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.failures = []

    def check(self, cond, what):
        if not cond:
            self.failures.append(what)
            print('FAIL:', what)

    def run(self, args, timeout=60, env=None):
        return subprocess.run([self.kiln] + args, capture_output=True, text=True, timeout=timeout, env=env)

    @staticmethod
    def wait_for(pred, timeout_s=60):
        end = time.time() + timeout_s
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.05)
        return False

    def kernel(self, code):
        path = os.path.join(self.tmp, 'k%d.vmlinux' % len(os.listdir(self.tmp)))
        with open(path, 'wb') as f:
            f.write(synthetic_pvh_kernel(code))
        return path

    def finish(self):
        if self.failures:
            sys.exit('%d failures' % len(self.failures))
        print('ok')
