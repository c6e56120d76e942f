#!/usr/bin/env python3
"""Crash safety: a qcow2 writer killed with SIGKILL at random points.

Rounds cycle through five workloads (every third group of five with
extended_l2=on, except convert):
  0, 1  crash_writer: many requests in flight, a flush every 25 (without and
        with a backing file);
  2     crash_writer: bench-like writes with no flush at all (metadata stays
        in the caches until they fill);
  3     crash_writer: compressed writes of whole clusters, a flush every 10;
  4     kiln-img convert -c into an existing image (nothing flushed).
It kills the writer after a random delay, then requires that `qemu-img check`
finds no corruption (leaks are allowed), that every request acknowledged by a
completed flush reads back, with untouched bytes unchanged, and (convert)
that every cluster reads either as zeroes or as the source's content.

usage: crash_test.py CRASH_WRITER KILN_IMG"""
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
kiln_img = sys.argv[2] if len(sys.argv) > 2 else "unused"
rounds = int(os.environ.get("KILN_CRASH_ROUNDS", "40"))
if not shutil.which("qemu-img"):
    print("SKIP: qemu-img not installed")
    sys.exit(77)

rng = random.Random(int(os.environ.get("KILN_CRASH_SEED", "1234")))
tmp = tempfile.mkdtemp(prefix="kiln-crash-")
IMAGE_BYTES = 16 << 20


def make_source(path, rnd):
    """A raw image of 64 KiB blocks: random, zero, text, patterned."""
    r = random.Random(rnd)
    text = (b"crash test text block, compressible. " * 2000)[:65536]
    with open(path, "wb") as f:
        for i in range(IMAGE_BYTES // 65536):
            kind = r.randrange(4)
            if kind == 0:
                f.write(r.randbytes(65536))
            elif kind == 1:
                f.write(bytes(65536))
            elif kind == 2:
                f.write(text)
            else:
                f.write(bytes([i % 251 + 1]) * 65536)


def check_image(img):
    # A killed io_uring user's file references (and so its OFD locks) go
    # away when the kernel tears the ring down, shortly after exit.
    for _ in range(50):
        chk = subprocess.run(["qemu-img", "check", "--output=json", img], capture_output=True, text=True)
        if "lock" not in chk.stderr:
            break
        time.sleep(0.1)
    return chk


def kill_after(proc, seconds):
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return out or ""


def verify_convert(img, src, cluster):
    """Every cluster of the target reads as zeroes or as the source."""
    out = img + ".raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, out], check=True)
    with open(src, "rb") as a, open(out, "rb") as b:
        for c in range(IMAGE_BYTES // cluster):
            want = a.read(cluster)
            got = b.read(cluster)
            if got != want and got != bytes(cluster):
                return "cluster %d reads neither zeroes nor the source" % c
    return None


failures = 0
try:
    for rnd in range(rounds):
        kind = rnd % 5
        if kind == 4 and kiln_img == "unused":
            kind = 3
        img = os.path.join(tmp, "top.qcow2")
        backed = kind == 1 or (kind == 2 and (rnd // 5) % 2 == 1)
        cluster = rng.choice(["512", "4k", "64k"])
        if kind >= 3 and cluster == "512":
            cluster = "4k"  # compressed data needs room to pack
        # Every third group of five rounds: extended L2 entries (subcluster
        # allocation; clusters of at least 16 KiB).
        ext_l2 = (rnd // 5) % 3 == 2 and kind != 4
        if ext_l2:
            cluster = "64k"
        opts = f"cluster_size={cluster}" + (",extended_l2=on" if ext_l2 else "")
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        if backed:
            base = os.path.join(tmp, "base.raw")
            with open(base, "wb") as f:
                f.truncate(IMAGE_BYTES)
            subprocess.run([writer, "fill-backing", base, "0"], check=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts,
                            "-b", base, "-F", "raw", img], check=True)
        else:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts,
                            img, str(IMAGE_BYTES)], check=True)
        seed = rng.randrange(1 << 30)
        delay = rng.uniform(0.0, 0.6)
        what = ["flushed", "flushed", "no-flush", "compressed", "convert -c"][kind]
        if kind == 4:
            src = os.path.join(tmp, "src.raw")
            make_source(src, seed)
            proc = subprocess.Popen([kiln_img, "convert", "-n", "-c", "-f", "raw", "-O", "qcow2", src, img],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            kill_after(proc, rng.uniform(0.0, 0.8))
            durable, count, mode = 0, 0, None
        else:
            mode, count, every = {0: ("write", 1500, 25), 1: ("write", 1500, 25), 2: ("write", 4000, 0),
                                  3: ("write-c", 400, 10)}[kind]
            proc = subprocess.Popen([writer, mode, img, str(seed), str(count), str(every)], stdout=subprocess.PIPE,
                                    text=True)
            out = kill_after(proc, delay)
            durable = 0
            for line in out.splitlines():
                if line.startswith("flushed "):
                    durable = int(line.split()[1])
        chk = check_image(img)
        # 0 clean, 3 leaks only; anything else is a failure.
        if chk.returncode not in (0, 3):
            print(f"round {rnd} ({what}): qemu-img check exit {chk.returncode}: {chk.stdout}{chk.stderr}")
            failures += 1
            continue
        if kind == 4:
            bad = verify_convert(img, src, {"4k": 4096, "64k": 65536}[cluster])
            if bad:
                print(f"round {rnd} ({what}): {bad}")
                failures += 1
                continue
        else:
            verify_mode = "verify-c" if mode == "write-c" else "verify"
            ver = subprocess.run([writer, verify_mode, img, str(seed), str(durable), "1" if backed else "0",
                                  str(count)], capture_output=True, text=True)
            if ver.returncode != 0:
                print(f"round {rnd} ({what}): verify failed (durable={durable}): {ver.stderr.strip()}")
                failures += 1
                continue
        leaks = json.loads(chk.stdout).get("leaks", 0) if chk.stdout.strip() else 0
        print(f"round {rnd}: {what} cluster={cluster} extended_l2={ext_l2} backed={backed} durable={durable} "
              f"leaks={leaks} ok")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print(f"{rounds - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
