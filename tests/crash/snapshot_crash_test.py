#!/usr/bin/env python3
"""Crash safety of snapshot create/apply/delete: snapshot_crasher runs a
deterministic mix of guest writes and snapshot operations and is killed
with SIGKILL at a random moment. Then:

- `qemu-img check` may report leaks; any corruption it reports must be an
  OFLAG_COPIED flag left clear (harmless: it only costs a copy-on-write)
  on an image whose dirty bit asks for a repair (v3), or a v2 image;
- `kiln-img check -r all` repairs it and `qemu-img check` is then clean;
- every snapshot listed reads back as taken, every finished one is there
  and no deleted one is (snapshot_crasher verify)."""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

crasher, kiln_img = sys.argv[1], sys.argv[2]
rounds = int(os.environ.get("KILN_CRASH_ROUNDS", "30"))
if not shutil.which("qemu-img"):
    print("SKIP: qemu-img not installed")
    sys.exit(77)

rng = random.Random(int(os.environ.get("KILN_CRASH_SEED", "4321")))
tmp = tempfile.mkdtemp(prefix="kiln-snapcrash-")
failures = 0


def qemu_check(img, *extra):
    for _ in range(50):
        chk = subprocess.run(["qemu-img", "check", *extra, img], capture_output=True, text=True)
        if "lock" not in chk.stderr:
            return chk
        time.sleep(0.1)
    return chk


try:
    for rnd in range(rounds):
        img = os.path.join(tmp, "s.qcow2")
        if os.path.exists(img):
            os.unlink(img)
        cluster = rng.choice(["512", "4k", "64k"])
        compat = rng.choice(["1.1", "1.1", "0.10"])
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster},compat={compat}",
                        img, "2M"], check=True)
        seed = rng.randrange(1 << 30)
        count = 60
        proc = subprocess.Popen([crasher, "run", img, str(seed), str(count)], stdout=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        done = 0
        for line in out.splitlines():
            if line.startswith("done "):
                done = int(line.split()[1])
        chk = qemu_check(img)
        errors = [l for l in chk.stdout.splitlines() if l.startswith("ERROR")]
        with open(img, "rb") as f:
            header = f.read(80)
        dirty = compat == "0.10" or (header[79] & 1) == 1
        harmless = all("OFLAG_COPIED" in l for l in errors) and dirty
        if chk.returncode not in (0, 3) and not (chk.returncode == 2 and harmless):
            print(f"round {rnd}: qemu-img check exit {chk.returncode} (dirty={dirty}): {chk.stdout}{chk.stderr}")
            failures += 1
            continue
        rep = subprocess.run([kiln_img, "check", "-q", "-r", "all", img], capture_output=True, text=True)
        after = qemu_check(img)
        if after.returncode != 0:
            print(f"round {rnd}: after kiln-img check -r all (exit {rep.returncode}: {rep.stdout}{rep.stderr}), "
                  f"qemu-img check exit {after.returncode}: {after.stdout}{after.stderr}")
            failures += 1
            continue
        ver = subprocess.run([crasher, "verify", img, str(seed), str(count), str(done)], capture_output=True,
                             text=True)
        if ver.returncode != 0:
            print(f"round {rnd}: verify failed (done={done}): {ver.stderr.strip()}")
            failures += 1
            continue
        print(f"round {rnd}: cluster={cluster} compat={compat} done={done} check={chk.returncode} ok")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print(f"{rounds - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
