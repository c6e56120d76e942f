#!/usr/bin/env python3
"""Crash safety with lazy_refcounts=on: the writer is killed with SIGKILL
while refcount blocks lag the L2 tables on disk (the dirty bit covers them).

Each round creates a compat=1.1 image with lazy_refcounts=on (with or
without a backing file, a random cluster size), runs crash_writer (a flush
every 25 requests, or none), kills it after a random delay, then repairs the
image the way a user would: alternately `kiln-img check -r all` and a plain
read-write open (`kiln-img amend -o lazy_refcounts=on`, which rebuilds the
refcounts of a dirty image as QEMU's open does). After that `qemu-img
check` must find the image clean (exit 0: no corruption, no leak, dirty bit
gone) and every request acknowledged by a completed flush must read back.

usage: lazy_crash_test.py CRASH_WRITER KILN_IMG"""
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

writer, kiln_img = sys.argv[1], sys.argv[2]
rounds = int(os.environ.get("KILN_CRASH_ROUNDS", "24"))
if not shutil.which("qemu-img"):
    print("SKIP: qemu-img not installed")
    sys.exit(77)

rng = random.Random(int(os.environ.get("KILN_CRASH_SEED", "4321")))
tmp = tempfile.mkdtemp(prefix="kiln-lazy-crash-")
IMAGE_BYTES = 16 << 20


def dirty_bit(img):
    with open(img, "rb") as f:
        head = f.read(80)
    return len(head) >= 80 and struct.unpack(">Q", head[72:80])[0] & 1 == 1


def run_unlocked(cmd):
    # A killed io_uring user's OFD locks go away shortly after exit.
    for _ in range(50):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if "lock" not in p.stderr:
            break
        time.sleep(0.1)
    return p


failures = 0
dirty_rounds = 0
try:
    for rnd in range(rounds):
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        img = os.path.join(tmp, "lazy.qcow2")
        backed = rnd % 3 == 1
        every = 0 if rnd % 3 == 2 else 25
        cluster = rng.choice(["512", "4k", "64k"])
        opts = f"cluster_size={cluster},lazy_refcounts=on"
        if backed:
            base = os.path.join(tmp, "base.raw")
            with open(base, "wb") as f:
                f.truncate(IMAGE_BYTES)
            subprocess.run([writer, "fill-backing", base, "0"], check=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, "-b", base, "-F", "raw", img],
                           check=True)
        else:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, img, str(IMAGE_BYTES)], check=True)
        seed = rng.randrange(1 << 30)
        count = 1500 if every else 4000
        proc = subprocess.Popen([writer, "write", img, str(seed), str(count), str(every)], stdout=subprocess.PIPE,
                                text=True)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        durable = 0
        for line in (out or "").splitlines():
            if line.startswith("flushed "):
                durable = int(line.split()[1])
        was_dirty = dirty_bit(img)
        dirty_rounds += was_dirty
        how = "check -r all" if rnd % 2 == 0 else "read-write open"
        if rnd % 2 == 0:
            rep = run_unlocked([kiln_img, "check", "-r", "all", img])
            ok_codes = (0,)
        else:
            rep = run_unlocked([kiln_img, "amend", "-o", "lazy_refcounts=on", img])
            ok_codes = (0,)
        if rep.returncode not in ok_codes:
            print(f"round {rnd} ({how}): kiln-img exit {rep.returncode}: {rep.stdout}{rep.stderr}")
            failures += 1
            continue
        chk = run_unlocked(["qemu-img", "check", img])
        if chk.returncode != 0 or dirty_bit(img):
            print(f"round {rnd} ({how}): qemu-img check exit {chk.returncode} after repair: {chk.stdout}{chk.stderr}")
            failures += 1
            continue
        ver = subprocess.run([writer, "verify", img, str(seed), str(durable), "1" if backed else "0", str(count)],
                             capture_output=True, text=True)
        if ver.returncode != 0:
            print(f"round {rnd}: verify failed (durable={durable}): {ver.stderr.strip()}")
            failures += 1
            continue
        print(f"round {rnd}: cluster={cluster} backed={backed} flush_every={every} dirty={was_dirty} "
              f"durable={durable} repaired by {how}: ok")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
if dirty_rounds == 0:
    print("no round was killed inside a lazy-refcounts session")
    failures += 1
print(f"{rounds - failures} passed, {failures} failed ({dirty_rounds} rounds killed with the dirty bit set)")
sys.exit(1 if failures else 0)
