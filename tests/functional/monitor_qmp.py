"""Small QMP and process helpers shared by the monitor functional tests
(not a test itself): a QMP client over a unix socket that keeps events
apart from replies, and a kiln process whose output is collected by a
thread so tests can wait for text."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import guest_dir  # noqa: E402


def test_setup(prefix, disk_bytes=16 << 20):
    """(kiln binary from argv, guest dir, scratch dir, raw disk in it)."""
    guest = guest_dir()
    tmp = tempfile.mkdtemp(prefix=prefix)
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(disk_bytes)
    return sys.argv[1], guest, tmp, disk


def end_test(k, checks):
    """Kills kiln if it still runs; prints the summary (and kiln's output on failure)."""
    if k.proc.poll() is None:
        k.proc.kill()
        k.proc.wait()
    checks.finish(extra=k.text()[-3000:] + "\n--- stderr ---\n" + k.err.decode(errors="replace")[-2000:])


def connect_unix(path, timeout_s=30):
    """Connects once kiln listens (the path may not exist yet, or be stale)."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Qmp:
    """One QMP connection. Replies are matched to requests in order;
    events are queued in self.events as they arrive."""

    def __init__(self, path, timeout_s=120):
        self.sock = connect_unix(path)
        self.sock.settimeout(timeout_s)
        self.buf = b""
        self.events = []
        self.greeting = self._read_message()

    def _read_message(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, data):
        self.sock.sendall(data)

    def reply(self):
        """The next non-event message."""
        while True:
            msg = self._read_message()
            if "event" in msg:
                self.events.append(msg)
            else:
                return msg

    def cmd(self, name, **arguments):
        req = {"execute": name}
        if arguments:
            req["arguments"] = arguments
        self.send_raw(json.dumps(req).encode() + b"\n")
        return self.reply()

    def negotiate(self):
        r = self.cmd("qmp_capabilities")
        assert r == {"return": {}}, r
        return self

    def wait_event(self, name, timeout_s=300):
        """Returns (and removes) the first queued or arriving event `name`."""
        deadline = time.monotonic() + timeout_s
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    return self.events.pop(i)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} event")
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            msg = self._read_message()
            if "event" in msg:
                self.events.append(msg)
            else:
                raise AssertionError(f"unexpected reply while waiting for {name}: {msg}")

    def close(self):
        self.sock.close()


class Kiln:
    """A kiln process with stdin as a pipe and stdout collected by a thread."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""
        self.err = b""
        self.lock = threading.Lock()
        threading.Thread(target=self._pump, args=(self.proc.stdout, "out"), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, "err"), daemon=True).start()

    def _pump(self, stream, name):
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return
            with self.lock:
                setattr(self, name, getattr(self, name) + chunk)

    def text(self):
        with self.lock:
            return self.out.decode(errors="replace")

    def wait_for(self, needle, timeout_s=600, start=0):
        """Waits until `needle` appears in stdout after offset `start`;
        returns the offset just past it."""
        deadline = time.monotonic() + timeout_s
        while True:
            t = self.text()
            i = t.find(needle, start)
            if i >= 0:
                return i + len(needle)
            if self.proc.poll() is not None:
                raise AssertionError(f"kiln exited ({self.proc.returncode}) before printing {needle!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not printed")
            time.sleep(0.05)

    def type(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def finish(self, timeout_s=120):
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Checks:
    """Named checks; prints a summary and exits 1 if any failed."""

    def __init__(self):
        self.results = []

    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok)))
        if not ok:
            print(f"FAILED: {name} {detail}")
        return ok

    def finish(self, extra=""):
        failed = [n for n, ok in self.results if not ok]
        print(f"{len(self.results) - len(failed)} passed, {len(failed)} failed")
        if failed:
            if extra:
                print(extra)
            sys.exit(1)
