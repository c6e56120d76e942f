"""Shared helpers for the functional boots: the test guest from
tests/guest/build, a kiln process on a pseudo-terminal, and a checklist
that prints what failed."""
import os
import select
import subprocess
import sys
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "KILN-GUEST-READY"
# Generous: a boot costs ~40 s of CPU, several times that on a loaded machine.
BOOT_TIMEOUT_S = float(os.environ.get("KILN_BOOT_TIMEOUT", "1200"))


def guest_dir():
    """The guest cache directory, or exit 77 (skip) when it cannot be built."""
    try:
        out = subprocess.run([os.path.join(ROOT, "tests/guest/build")], check=True, capture_output=True,
                             text=True).stdout
    except subprocess.CalledProcessError as e:
        print(f"SKIP: could not build the test guest: {e.stderr.strip()}")
        sys.exit(77)
    return out.strip().splitlines()[-1]


class Checks:
    def __init__(self):
        self.results = []

    def check(self, name, ok):
        self.results.append((name, bool(ok)))
        return ok

    def finish(self, context=""):
        failed = [n for n, ok in self.results if not ok]
        if failed:
            print("FAILED: " + ", ".join(failed))
            if context:
                print(context)
            sys.exit(1)
        print(f"{len(self.results)} passed, 0 failed")


class PtyKiln:
    """kiln with stdin/stdout/stderr on a pseudo-terminal, as a user's shell runs it."""

    def __init__(self, args):
        self.master, self.slave = os.openpty()
        self.termios_before = termios.tcgetattr(self.slave)
        self.output = b""
        self.proc = subprocess.Popen(args, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                     start_new_session=True)

    def read_until(self, needle, timeout_s=BOOT_TIMEOUT_S, start=0):
        """Reads until `needle` appears after offset `start` of the output;
        returns True if it did."""
        needle = needle.encode() if isinstance(needle, str) else needle
        end = time.monotonic() + timeout_s
        while needle not in self.output[start:]:
            left = end - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if not r:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                return False
            self.output += chunk
        return True

    def write(self, data):
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def wait(self, timeout_s=60):
        """Drains the output until kiln exits; returns its status (None on timeout)."""
        end = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < end:
            r, _, _ = select.select([self.master], [], [], 0.2)
            if r:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            return None
        return self.proc.returncode

    def terminal_restored(self):
        return termios.tcgetattr(self.slave) == self.termios_before

    def text(self):
        return self.output.decode(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)
