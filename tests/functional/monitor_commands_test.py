#!/usr/bin/env python3
"""Functional test: every monitor command against the real pc machine,
without booting (kiln -S holds the VM in prelaunch, so it costs no guest
CPU time).

One kiln process carries HMP on stdio (driven over a pipe), QMP on a unix
socket (driven by a small client and by socat), QMP through -chardev +
-mon, HMP on a pty (-chardev pty + -mon) and HMP over telnet:. Outputs are
checked against QEMU 7.2's formats; errors for unknown commands, bad
arguments and wrong types are checked on both front ends; `quit` ends kiln
with status 0 after a SHUTDOWN event."""
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from monitor_qmp import Checks, Kiln, Qmp, end_test, test_setup  # noqa: E402

kiln_bin, guest, tmp, disk = test_setup("kiln-monitor-cmds-")
qmp_path = os.path.join(tmp, "qmp.sock")
qmp2_path = os.path.join(tmp, "qmp2.sock")
cd = os.path.join(tmp, "cd.iso")
with open(cd, "wb") as f:
    f.write(b"KILNCD" * 1000)
    f.truncate(2 << 20)

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
telnet_port = probe.getsockname()[1]
probe.close()

k = Kiln([kiln_bin, "-S", "-m", "256", "-name", "testvm", "-serial", "null",
          "-monitor", "stdio",
          "-qmp", f"unix:{qmp_path},server=on,wait=off",
          "-chardev", f"socket,id=qmp2,path={qmp2_path},server=on,wait=off", "-mon", "chardev=qmp2,mode=control",
          "-chardev", "pty,id=ptymon", "-mon", "chardev=ptymon",
          "-monitor", f"telnet:127.0.0.1:{telnet_port},server,nowait",
          "-drive", f"file={disk},format=raw,if=ide", "-cdrom", cd,
          "-kernel", os.path.join(guest, "vmlinux"), "-initrd", os.path.join(guest, "initrd")])
c = Checks()
prompts = 0


def hmp(line, timeout_s=60):
    """Runs one HMP line on stdio; returns its output (without echo and prompt)."""
    global prompts
    before = k.text()
    start = len(before)
    k.type(line + "\n")
    deadline = time.monotonic() + timeout_s
    while True:
        t = k.text()
        if t.count("(kiln) ") > prompts:
            end = t.find("(kiln) ", start)
            if end >= 0:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"no prompt after {line!r}")
        time.sleep(0.02)
    prompts += 1
    out = t[start:end].replace("\r\n", "\n")
    # Drop the echoed command line.
    first_nl = out.find("\n")
    return out[first_nl + 1:] if first_nl >= 0 else ""


def socat_qmp(requests):
    """Sends QMP requests through socat; returns the parsed replies (greeting first)."""
    data = "".join(json.dumps(r) + "\n" for r in requests)
    p = subprocess.run(["socat", "-t5", "-", f"UNIX-CONNECT:{qmp_path}"], input=data, capture_output=True,
                       text=True, timeout=60)
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


try:
    k.wait_for("(kiln) ", timeout_s=60)
    prompts = 1
    c.check("banner", "Kiln 0.1.0 monitor - type 'help' for more information" in k.text(), k.text())

    # ---- HMP over a pipe, QEMU's formats ----
    out = hmp("info status")
    c.check("info status", out == "VM status: paused (prelaunch)\n", out)
    out = hmp("info version")
    c.check("info version", out == "0.1.0\n", out)
    out = hmp("info name")
    c.check("info name", out == "testvm\n", out)
    out = hmp("info kvm")
    c.check("info kvm", re.fullmatch(r"kvm support: (enabled|disabled)\n", out), out)
    out = hmp("info cpus")
    c.check("info cpus", re.fullmatch(r"\* CPU #0: thread_id=\d+\n", out), out)
    out = hmp("info registers")
    c.check("info registers", re.search(r"^EAX=[0-9a-f]{8} EBX=[0-9a-f]{8} ECX=[0-9a-f]{8} EDX=[0-9a-f]{8}$", out, re.M)
            and re.search(r"^EIP=[0-9a-f]{8} EFL=00000002 \[-------\] CPL=0 II=0 A20=1 SMM=0 HLT=0$", out, re.M)
            and re.search(r"^CS =0010 00000000 ffffffff 00cf9b00 DPL=0 CS32 \[-RA\]$", out, re.M)
            and "EFER=0000000000000000" in out, out)
    eip = re.search(r"EIP=([0-9a-f]{8})", out).group(1)
    out = hmp("info chardev")
    c.check("info chardev", "serial0: filename=null\n" in out and "compat_monitor0: filename=stdio\n" in out
            and f"compat_monitor1: filename=unix:{qmp_path},server=on\n" in out
            and f"qmp2: filename=unix:{qmp2_path},server=on\n" in out and "ptymon: filename=pty\n" in out, out)
    out = hmp("info block")
    c.check("info block: hard disk", re.search(r"^ide0-hd0 \(#block\d+\): " + re.escape(disk) + r" \(raw\)\n"
                                               r"    Attached to:      \S+\n    Cache mode:       writeback\n",
                                               out, re.M), out)
    c.check("info block: CD-ROM", re.search(r"^ide1-cd0 \(#block\d+\): " + re.escape(cd) + r" \(raw, read-only\)\n"
                                            r"    Attached to:      \S+\n"
                                            r"    Removable device: not locked, tray closed\n", out, re.M), out)
    out = hmp("info blockstats")
    c.check("info blockstats", re.search(r"^ide0-hd0: rd_bytes=0 wr_bytes=0 rd_operations=0 wr_operations=0 "
                                         r"flush_operations=0 wr_total_time_ns=0 rd_total_time_ns=0 "
                                         r"flush_total_time_ns=0 rd_merged=0 wr_merged=0 idle_time_ns=\d*$",
                                         out, re.M) or "ide0-hd0: rd_bytes=0" in out, out)
    out = hmp("info pci")
    c.check("info pci", "  Bus  0, device   0, function 0:\n    Host bridge: PCI device 8086:1237\n" in out
            and "    ISA bridge: PCI device 8086:7000\n" in out and "    IDE controller: PCI device 8086:7010\n" in out
            and '      id ""\n' in out, out)
    out = hmp("info mtree")
    c.check("info mtree", out.startswith("address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, container): system\n")
            and re.search(r"^    0000000000000000-[0-9a-f]{16} \(prio 0, ram\): pc.ram$", out, re.M)
            and "address-space: I/O\n" in out and re.search(r"\(prio 0, i/o\): \S*serial|\(prio 0, i/o\): ", out), out)
    out = hmp("info qtree")
    c.check("info qtree", out.startswith("bus: main-system-bus\n  type System\n")
            and '  dev: i440FX-pcihost, id ""\n' in out and "bus: pci.0" in out, out)

    # Memory: xp / x / pmemsave / memsave agree with each other.
    out = hmp(f"xp /16xb 0x{eip}")
    c.check("xp /16xb", re.fullmatch(r"(0000000001[0-9a-f]{6}:( 0x[0-9a-f]{2}){8}\n){2}", out), out)
    xp_bytes = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})\b", re.sub(r"^[0-9a-f]+:", "", out, flags=re.M)))
    dump = os.path.join(tmp, "pmem.bin")
    out = hmp(f'pmemsave 0x{eip} 16 "{dump}"')
    c.check("pmemsave writes the same bytes as xp", out == "" and open(dump, "rb").read() == xp_bytes, out)
    vdump = os.path.join(tmp, "vmem.bin")
    out = hmp(f'memsave 0x{eip} 16 "{vdump}"')
    c.check("memsave (paging off) equals pmemsave", out == "" and open(vdump, "rb").read() == xp_bytes, out)
    out = hmp("x /2i $eip")
    c.check("x /2i disassembles at EIP", re.match(r"0x0*" + eip.lstrip("0") + r":\s+(" + " ".join(
        f"{b:02x}" for b in xp_bytes[:1]) + r")", out) and len(out.splitlines()) == 2, out)
    out = hmp("x /4xw 0x1")
    c.check("x /4xw", re.fullmatch(r"0000000000000001:( 0x[0-9a-f]{8}){4}\n", out), out)
    out = hmp("xp /2xg 0xfffffffffffff000")
    c.check("xp of unbacked memory fails", "Cannot access memory" in out or "error" in out.lower(), out)

    # Keys, media, resize, commit.
    out = hmp("sendkey ctrl-alt-f1")
    c.check("sendkey ctrl-alt-f1", out == "", out)
    out = hmp("sendkey ctrl-nosuchkey")
    c.check("sendkey with an unknown key", "invalid parameter: nosuchkey" in out, out)
    out = hmp("eject ide1-cd0")
    c.check("eject", out == "", out)
    out = hmp("info block ide1-cd0")
    c.check("info block after eject: tray open, not inserted",
            "ide1-cd0: [not inserted]" in out and "tray open" in out, out)
    out = hmp(f'change ide1-cd0 "{cd}" raw')
    c.check("change", out == "", out)
    out = hmp("info block ide1-cd0")
    c.check("info block after change: inserted, tray closed", cd in out and "tray closed" in out, out)
    out = hmp("eject ide0-hd0")
    c.check("eject a hard disk", "Device 'ide0-hd0' is not removable" in out, out)
    out = hmp("block_resize ide0-hd0 32")
    c.check("block_resize (MiB by default)", out == "" and os.path.getsize(disk) == 32 << 20,
            f"{out} size={os.path.getsize(disk)}")
    out = hmp("commit ide0-hd0")
    c.check("commit of a drive without backing file", out == "'commit' error for 'ide0-hd0': Operation not supported\n",
            out)
    out = hmp("commit all")
    c.check("commit all", out == "", out)

    # HMP errors.
    out = hmp("nosuchcmd")
    c.check("unknown command", out == "unknown command: 'nosuchcmd'\n", out)
    out = hmp("stop now")
    c.check("extraneous argument", "extraneous characters at the end of line" in out, out)
    out = hmp("block_resize")
    c.check("missing argument", "block_resize: block device name expected" in out, out)
    out = hmp("block_resize ide0-hd0 lots")
    c.check("bad size", "invalid size" in out, out)
    out = hmp("eject nosuchdrive")
    c.check("unknown device", "Device 'nosuchdrive' not found" in out, out)
    out = hmp("help info")
    c.check("help info", "info status" in out and "info registers" in out, out[:300])
    out = hmp("help")
    c.check("help lists every command", all(w in out for w in ("cont|c", "stop|s", "system_powerdown", "quit|q",
                                                               "sendkey", "memsave", "pmemsave", "block_resize",
                                                               "commit", "change", "eject", "xp ", "x ")), out[:500])

    # ---- QMP through socat ----
    replies = socat_qmp([
        {"execute": "query-status"},
        {"execute": "qmp_capabilities"},
        {"execute": "query-status", "id": 1},
        {"execute": "query-version", "id": 2},
        {"execute": "query-name", "id": 3},
        {"execute": "query-kvm", "id": 4},
        {"execute": "query-cpus-fast", "id": 5},
        {"execute": "query-block", "id": 6},
        {"execute": "query-blockstats", "id": 7},
        {"execute": "query-commands", "id": 8},
        {"execute": "human-monitor-command", "arguments": {"command-line": "info name"}, "id": 9},
        {"execute": "nosuch", "id": 10},
        {"execute": "eject", "arguments": {"device": 5}, "id": 11},
        {"execute": "eject", "arguments": {"device": "nope"}, "id": 12},
        {"execute": "block_resize", "arguments": {"device": "ide0-hd0"}, "id": 13},
        {"execute": "query-status", "arguments": {"x": 1}, "id": 14},
        {"execute": "blockdev-change-medium", "arguments": {"id": "ide1-cd0", "filename": cd}, "id": 15},
    ])
    by_id = {r.get("id"): r for r in replies if "id" in r}
    c.check("socat: greeting", "QMP" in replies[0] and replies[0]["QMP"]["version"]["qemu"] == {
        "micro": 0, "minor": 1, "major": 0}, replies[:1])
    c.check("socat: commands before negotiation refused",
            replies[1] == {"error": {"class": "CommandNotFound",
                                     "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}},
            replies[1:2])
    c.check("query-status", by_id.get(1) == {"return": {"status": "prelaunch", "singlestep": False, "running": False},
                                             "id": 1}, by_id.get(1))
    c.check("query-version", by_id.get(2, {}).get("return", {}).get("qemu") == {"micro": 0, "minor": 1, "major": 0},
            by_id.get(2))
    c.check("query-name", by_id.get(3, {}).get("return") == {"name": "testvm"}, by_id.get(3))
    c.check("query-kvm", set(by_id.get(4, {}).get("return", {})) == {"enabled", "present"}, by_id.get(4))
    cpus = by_id.get(5, {}).get("return", [{}])
    c.check("query-cpus-fast", cpus[0].get("cpu-index") == 0 and cpus[0].get("target") == "x86_64"
            and cpus[0].get("qom-path", "").startswith("/machine/"), cpus)
    blocks = {b["device"]: b for b in by_id.get(6, {}).get("return", [])}
    c.check("query-block", blocks.get("ide0-hd0", {}).get("inserted", {}).get("file") == disk
            and blocks.get("ide0-hd0", {}).get("inserted", {}).get("image", {}).get("virtual-size") == 32 << 20
            and blocks.get("ide1-cd0", {}).get("removable") is True, blocks)
    c.check("query-blockstats", any(b.get("device") == "ide0-hd0" and "rd_bytes" in b.get("stats", {})
                                    for b in by_id.get(7, {}).get("return", [])), by_id.get(7))
    names = {x["name"] for x in by_id.get(8, {}).get("return", [])}
    c.check("query-commands", {"stop", "cont", "quit", "system_reset", "system_powerdown", "query-status",
                               "query-block", "human-monitor-command", "blockdev-change-medium", "eject",
                               "block_resize", "query-commands"} <= names, names)
    c.check("human-monitor-command", by_id.get(9, {}).get("return") == "testvm\r\n", by_id.get(9))
    c.check("unknown command", by_id.get(10, {}).get("error") == {"class": "CommandNotFound",
                                                                  "desc": "The command nosuch has not been found"},
            by_id.get(10))
    c.check("wrong type", by_id.get(11, {}).get("error") == {
        "class": "GenericError", "desc": "Invalid parameter type for 'device', expected: string"}, by_id.get(11))
    c.check("unknown device", by_id.get(12, {}).get("error") == {"class": "DeviceNotFound",
                                                                 "desc": "Device 'nope' not found"}, by_id.get(12))
    c.check("missing argument", by_id.get(13, {}).get("error") == {"class": "GenericError",
                                                                   "desc": "Parameter 'size' is missing"},
            by_id.get(13))
    c.check("unexpected argument", by_id.get(14, {}).get("error") == {"class": "GenericError",
                                                                      "desc": "Parameter 'x' is unexpected"},
            by_id.get(14))
    c.check("blockdev-change-medium", by_id.get(15) == {"return": {}, "id": 15}, by_id.get(15))

    # ---- QMP events with two clients (one through -chardev/-mon) ----
    a = Qmp(qmp_path).negotiate()
    b = Qmp(qmp2_path).negotiate()
    r = a.cmd("system_reset")
    c.check("system_reset", r == {"return": {}}, r)
    for name, q in (("a", a), ("b", b)):
        ev = q.wait_event("RESET", timeout_s=30)
        c.check(f"RESET event on client {name}", ev.get("data") == {"guest": False,
                                                                   "reason": "host-qmp-system-reset"}, ev)
    r = a.cmd("query-status")
    c.check("system_reset keeps prelaunch", r.get("return", {}).get("status") == "prelaunch", r)
    r = a.cmd("stop")
    c.check("stop in prelaunch: no change", r == {"return": {}} and a.cmd("query-status")["return"]["status"]
            == "prelaunch")
    r = a.cmd("cont")
    c.check("cont: RESUME before the reply", r == {"return": {}} and any(e["event"] == "RESUME" for e in a.events),
            (r, a.events))
    b.wait_event("RESUME", timeout_s=30)
    r = a.cmd("stop")
    ev = a.wait_event("STOP", timeout_s=30)
    c.check("stop while running: STOP event", r == {"return": {}} and ev["event"] == "STOP", r)
    r = b.cmd("query-status")
    c.check("paused after stop", r.get("return", {}).get("status") == "paused", r)

    # ---- HMP on a pty and over telnet ----
    m = re.search(r"char device redirected to (\S+) \(label ptymon\)", k.err.decode(errors="replace"))
    pty_out = ""
    if m:
        fd = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY)
        os.write(fd, b"info name\r")
        deadline = time.monotonic() + 30
        while "testvm" not in pty_out and time.monotonic() < deadline:
            pty_out += os.read(fd, 4096).decode(errors="replace")
        os.close(fd)
    c.check("HMP on a pty (-chardev pty + -mon)", "testvm" in pty_out, pty_out or k.err[-500:])
    t = socket.create_connection(("127.0.0.1", telnet_port), timeout=30)
    t.sendall(b"info status\r")
    telnet_out = b""
    while b"VM status: paused" not in telnet_out:
        chunk = t.recv(4096)
        if not chunk:
            break
        telnet_out += chunk
    t.close()
    c.check("HMP over telnet:", b"VM status: paused" in telnet_out, telnet_out)
    c.check("telnet: starts with QEMU's option offer (WILL ECHO, WILL SGA, ...)",
            telnet_out.startswith(b"\xff\xfb\x01\xff\xfb\x03"), telnet_out[:20])

    # ---- quit ----
    r = a.cmd("quit")
    c.check("quit returns {}", r == {"return": {}}, r)
    ev = b.wait_event("SHUTDOWN", timeout_s=30)
    c.check("SHUTDOWN event for quit", ev.get("data") == {"guest": False, "reason": "host-qmp-quit"}, ev)
    status = k.finish(timeout_s=60)
    c.check("kiln exits with status 0 after quit", status == 0, f"status {status}")
except (AssertionError, TimeoutError, EOFError, OSError, AttributeError) as e:
    c.check("no exception", False, repr(e))
finally:
    end_test(k, c)
