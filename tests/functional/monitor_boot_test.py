#!/usr/bin/env python3
"""Functional test: the monitor against a booted guest, in one boot.

The demo guest boots under `-accel interp` with QMP on a unix socket, HMP
on another, and HMP on the serial console's Ctrl-A mux (-serial mon:stdio).
Checked: QMP stop/cont with STOP and RESUME events and the guest frozen
meanwhile; HMP over the mux (Ctrl-A c) and back to the guest; info
commands on the live machine; malformed, huge and half-sent QMP messages
and a client vanishing mid-command leave kiln and the guest running;
system_powerdown makes the guest power off (POWERDOWN, then SHUTDOWN) and
kiln exits with status 0."""
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from monitor_qmp import Checks, Kiln, Qmp, end_test, test_setup  # noqa: E402

kiln_bin, guest, tmp, disk = test_setup("kiln-monitor-boot-")
qmp_path = os.path.join(tmp, "qmp.sock")
hmp_path = os.path.join(tmp, "hmp.sock")

k = Kiln([kiln_bin, "-accel", "interp", "-m", "512", "-nographic", "-serial", "mon:stdio", "-name", "kilnmon",
          "-qmp", f"unix:{qmp_path},server=on,wait=off", "-monitor", f"unix:{hmp_path},server,nowait",
          "-drive", f"file={disk},format=raw,if=virtio",
          "-kernel", os.path.join(guest, "vmlinux"), "-initrd", os.path.join(guest, "initrd"),
          "-append", "console=ttyS0 quiet"])
c = Checks()


def hmp_socket(commands):
    """Runs HMP commands over the -monitor socket; returns the text."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(hmp_path)
    data = b""
    for cmd in commands + [None]:
        while not data.endswith(b"(kiln) "):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if cmd is None:
            break
        data += b"\n"  # keep one prompt per command
        s.sendall(cmd.encode() + b"\r")
    s.close()
    return data.decode(errors="replace")


try:
    start = time.monotonic()
    qmp = Qmp(qmp_path).negotiate()
    c.check("greeting has QMP version and capabilities",
            "version" in qmp.greeting.get("QMP", {}) and "capabilities" in qmp.greeting["QMP"], qmp.greeting)
    r = qmp.cmd("query-status")
    c.check("query-status running at start", r.get("return", {}).get("status") == "running", r)

    k.wait_for("KILN-GUEST-READY", timeout_s=900)
    boot_s = time.monotonic() - start
    pos = k.wait_for("# ", timeout_s=120)  # the shell prompt

    # stop / cont with events, and the guest frozen in between.
    r = qmp.cmd("stop")
    c.check("stop returns {}", r == {"return": {}}, r)
    ev = qmp.wait_event("STOP", timeout_s=30)
    c.check("STOP event has a timestamp", "seconds" in ev.get("timestamp", {}), ev)
    r = qmp.cmd("query-status")
    c.check("query-status paused after stop", r.get("return") == {"status": "paused", "singlestep": False,
                                                                    "running": False}, r)
    hmp = hmp_socket(["info status", "info registers", "info cpus"])
    c.check("HMP socket: info status paused", "VM status: paused" in hmp, hmp[-500:])
    c.check("HMP socket: info registers shows RIP in 64-bit mode", re.search(r"RIP=[0-9a-f]{16}", hmp), hmp[-2000:])
    c.check("HMP socket: info cpus", re.search(r"\* CPU #0: thread_id=\d+", hmp), hmp[-300:])
    mark = len(k.text())
    k.type("echo ping-$((40+2))\n")
    time.sleep(2)
    c.check("no guest output while stopped", "ping-42" not in k.text()[mark:])
    r = qmp.cmd("cont")
    c.check("cont returns {}", r == {"return": {}}, r)
    c.check("RESUME event sent before the cont reply", any(e["event"] == "RESUME" for e in qmp.events), qmp.events)
    qmp.wait_event("RESUME", timeout_s=5)
    k.wait_for("ping-42", timeout_s=300, start=mark)
    c.check("guest runs the typed command after cont", True)

    # HMP on the serial mux: Ctrl-A c, commands, Ctrl-A c back to the guest.
    mark = len(k.text())
    k.type(b"\x01c")
    k.wait_for("monitor - type 'help' for more information", timeout_s=30, start=mark)
    k.wait_for("(kiln) ", timeout_s=30, start=mark)
    k.type("info status\r")
    p = k.wait_for("VM status: running", timeout_s=30, start=mark)
    k.type("info name\r")
    p = k.wait_for("kilnmon", timeout_s=30, start=p)
    k.type("info block\r")
    p = k.wait_for("virtio0", timeout_s=30, start=p)
    k.type("info pci\r")
    p = k.wait_for("SCSI controller: PCI device 1af4:1001", timeout_s=30, start=p)
    k.type(b"\x01c")
    k.type("echo back-$((2+3))\n")
    k.wait_for("back-5", timeout_s=300, start=p)
    c.check("Ctrl-A c: HMP on the mux and back to the guest", True)

    # A hostile second client: bad JSON, wrong types, a 10 MiB line, a
    # client that leaves halfway through a command.
    bad = Qmp(qmp_path).negotiate()
    bad.send_raw(b"{ this is not json }\n")
    r = bad.reply()
    c.check("invalid JSON: GenericError", r.get("error", {}).get("class") == "GenericError", r)
    r = bad.cmd("query-status", extra=1)
    c.check("unexpected argument: GenericError", r.get("error", {}).get("class") == "GenericError", r)
    bad.send_raw(b'{"execute": "eject", "arguments": {"device": 7}}\n')
    r = bad.reply()
    c.check("wrong argument type: GenericError naming the type",
            "expected: string" in r.get("error", {}).get("desc", "") or "string" in json.dumps(r), r)
    r = bad.cmd("no-such-command")
    c.check("unknown command: CommandNotFound", r.get("error", {}).get("class") == "CommandNotFound", r)
    r = bad.cmd("eject", device="nope")
    c.check("unknown device: DeviceNotFound", r.get("error", {}).get("class") == "DeviceNotFound", r)
    huge_ok = True
    try:
        bad.send_raw(b'{"execute": "query-status", "id": "' + b"x" * (10 << 20) + b'"}\n')
        r = bad.reply()
        huge_ok = "error" in r
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass  # a closed connection is an accepted answer
    c.check("10 MiB message: error or closed connection", huge_ok)
    bad.close()
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(qmp_path)
    half.recv(4096)
    half.sendall(b'{"execute": "qmp_capabilities"}\n{"execute": "human-monitor-command", "arguments": {"comm')
    half.close()
    for _ in range(20):  # many clients at once, each gone mid-request
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(qmp_path)
        s.sendall(b'{"execute": "qmp_capabilities"}{"execute": "query-status"')
        s.close()
    r = qmp.cmd("query-status")
    c.check("first client still served after the hostile ones", r.get("return", {}).get("running") is True, r)
    mark = len(k.text())
    k.type("echo alive-$((3+4))\n")
    k.wait_for("alive-7", timeout_s=300, start=mark)
    c.check("guest still running after the hostile clients", k.proc.poll() is None)

    # Live info through QMP.
    r = qmp.cmd("human-monitor-command", **{"command-line": "info mtree"})
    c.check("human-monitor-command info mtree", "address-space: memory" in r.get("return", ""), r)
    r = qmp.cmd("query-block")
    c.check("query-block lists virtio0", any(b.get("device") == "virtio0" for b in r.get("return", [])), r)
    r = qmp.cmd("query-blockstats")
    stats = [b["stats"] for b in r.get("return", []) if b.get("device") == "virtio0"]
    c.check("query-blockstats has virtio0's counters", stats and "rd_operations" in stats[0]
            and "wr_highest_offset" in stats[0], r)

    # ACPI power button: the guest's acpid powers it off.
    qmp.events.clear()
    r = qmp.cmd("system_powerdown")
    c.check("system_powerdown returns {}", r == {"return": {}}, r)
    qmp.wait_event("POWERDOWN", timeout_s=5)
    ev = qmp.wait_event("SHUTDOWN", timeout_s=300)
    c.check("SHUTDOWN after the power button is the guest's",
            ev.get("data") == {"guest": True, "reason": "guest-shutdown"}, ev)
    status = k.finish(timeout_s=60)
    c.check("kiln exits with status 0 after the guest powers off", status == 0, f"status {status}")
    c.check("the guest's power-button handler ran", "KILN-GUEST-POWERBUTTON" in k.text())
    print(f"boot to /init in {boot_s:.1f} s; whole run {time.monotonic() - start:.1f} s")
except (AssertionError, TimeoutError, EOFError, OSError) as e:
    c.check("no exception", False, repr(e))
finally:
    end_test(k, c)
