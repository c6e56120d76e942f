#!/usr/bin/env python3
"""Crash safety: a qcow2 writer killed with SIGKILL at random points.

Each round creates an image (alternately with and without a backing file),
starts crash_writer, kills it after a random delay, then requires that
`qemu-img check` finds no corruption (leaks are allowed) and that every
request acknowledged by a completed flush reads back, with untouched bytes
unchanged."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

writer = sys.argv[1]
rounds = int(os.environ.get("KILN_CRASH_ROUNDS", "40"))
if not shutil.which("qemu-img"):
    print("SKIP: qemu-img not installed")
    sys.exit(77)

rng = random.Random(int(os.environ.get("KILN_CRASH_SEED", "1234")))
tmp = tempfile.mkdtemp(prefix="kiln-crash-")
failures = 0
try:
    for rnd in range(rounds):
        img = os.path.join(tmp, "top.qcow2")
        backed = rnd % 2 == 1
        cluster = rng.choice(["512", "4k", "64k"])
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        if backed:
            base = os.path.join(tmp, "base.raw")
            with open(base, "wb") as f:
                f.truncate(16 << 20)
            subprocess.run([writer, "fill-backing", base, "0"], check=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster}",
                            "-b", base, "-F", "raw", img], check=True)
        else:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster}",
                            img, "16M"], check=True)
        seed = rng.randrange(1 << 30)
        count = 1500
        proc = subprocess.Popen([writer, "write", img, str(seed), str(count), "25"], stdout=subprocess.PIPE,
                                text=True)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        durable = 0
        for line in out.splitlines():
            if line.startswith("flushed "):
                durable = int(line.split()[1])
        # A killed io_uring user's file references (and so its OFD locks) go
        # away when the kernel tears the ring down, shortly after exit.
        for _ in range(50):
            chk = subprocess.run(["qemu-img", "check", "--output=json", img], capture_output=True, text=True)
            if "lock" not in chk.stderr:
                break
            time.sleep(0.1)
        # 0 clean, 3 leaks only; anything else is a failure.
        if chk.returncode not in (0, 3):
            print(f"round {rnd}: qemu-img check exit {chk.returncode}: {chk.stdout}{chk.stderr}")
            failures += 1
            continue
        ver = subprocess.run([writer, "verify", img, str(seed), str(durable), "1" if backed else "0", str(count)],
                             capture_output=True, text=True)
        if ver.returncode != 0:
            print(f"round {rnd}: verify failed (durable={durable}): {ver.stderr.strip()}")
            failures += 1
            continue
        leaks = json.loads(chk.stdout).get("leaks", 0) if chk.stdout.strip() else 0
        print(f"round {rnd}: cluster={cluster} backed={backed} durable={durable} leaks={leaks} ok")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print(f"{rounds - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
