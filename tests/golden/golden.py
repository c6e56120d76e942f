#!/usr/bin/env python3
"""Golden-output tests for kiln-img and kiln-io.

Each case in cases.txt is a list of shell commands run in a fresh
directory holding copies of images/. Their combined stdout+stderr and exit
codes are compared with expected/<case>.out. The expected files were made by
running the same cases through Debian's qemu-img/qemu-io 7.2
(--regen --img qemu-img --io qemu-io), so a pass means kiln prints what
qemu-img prints. Only what must vary is normalised: the temporary path,
dates, timings, and host-filesystem allocation ("disk size").
"""
import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_cases(path):
    cases, name = [], None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("## "):
            name = line[3:].strip()
            cases.append((name, []))
        elif line.strip() and not line.startswith("#") and name:
            cases[-1][1].append(line)
    return cases


def normalise(text, tmp):
    text = text.replace(tmp, "$TMP")
    text = text.replace("qemu-img", "kiln-img").replace("qemu-io", "kiln-io")
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<date>", text)
    text = re.sub(r'"date-(n?)sec": \d+', r'"date-\1sec": <n>', text)
    text = re.sub(r"disk size: .*", "disk size: <n>", text)
    text = re.sub(r'"actual-size": \d+', '"actual-size": <n>', text)
    # Where a qcow2 driver places clusters in the host file is its own
    # choice (qemu-img's allocation order is not a contract): host offsets
    # in map output are normalised. vs_qemu.py checks them exactly on
    # images qemu wrote.
    text = re.sub(r'"offset": \d+\}', '"offset": <host>}', text)
    text = re.sub(r"^((?:0x[0-9a-f]+|0) +0x[0-9a-f]+ +)(?:0x[0-9a-f]+|0) +(\S+)$", r"\1<host>          \2", text,
                  flags=re.M)
    # QEMU names anonymous block nodes "#block" + a counter + random digits.
    text = re.sub(r"#block\d+", "#block<n>", text)
    text = re.sub(r"Run completed in [0-9.]+ seconds\.", "Run completed in <t> seconds.", text)
    text = re.sub(r"^(.*), (\d+) ops; .*$", r"\1, \2 ops; <timing>", text, flags=re.M)
    return text


def run_case(commands, img, io, tmp):
    env = dict(os.environ, IMG=img, IO=io, TZ="UTC", LC_ALL="C")
    out = []
    for cmd in commands:
        p = subprocess.run(["bash", "-c", cmd], cwd=tmp, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        out.append("$ " + cmd + "\n" + p.stdout.decode("utf-8", "replace") + "[rc=%d]\n" % p.returncode)
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--img", required=True)
    ap.add_argument("--io", required=True)
    ap.add_argument("--cases", default=os.path.join(HERE, "cases.txt"))
    ap.add_argument("--expected", default=os.path.join(HERE, "expected"))
    ap.add_argument("--regen", action="store_true", help="write expected files instead of comparing")
    ap.add_argument("only", nargs="*")
    args = ap.parse_args()
    img = os.path.abspath(args.img) if os.sep in args.img else args.img
    io = os.path.abspath(args.io) if os.sep in args.io else args.io
    known = {}
    kf = os.path.join(HERE, "known_failures.txt")
    if os.path.exists(kf):
        for line in open(kf):
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.strip().partition(" ")
                known[name] = reason
    failed = []
    for name, commands in parse_cases(args.cases):
        if args.only and name not in args.only:
            continue
        tmp = tempfile.mkdtemp(prefix="kiln-golden-")
        try:
            for f in os.listdir(os.path.join(HERE, "images")):
                shutil.copy(os.path.join(HERE, "images", f), tmp)
            got = normalise(run_case(commands, img, io, tmp), tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        path = os.path.join(args.expected, name + ".out")
        if args.regen:
            with open(path, "w") as f:
                f.write(got)
            print("wrote", path)
            continue
        want = open(path).read() if os.path.exists(path) else ""
        if got != want and name in known:
            print("XFAIL %s (%s)" % (name, known[name]))
            if os.environ.get("KILN_GOLDEN_DIFF"):
                sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                           "expected/" + name + ".out", "kiln"))
        elif got != want:
            failed.append(name)
            sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                       "expected/" + name + ".out", "kiln"))
        elif name in known:
            print("XPASS %s: take it off known_failures.txt" % name)
        else:
            print("ok", name)
    if failed:
        print("FAILED:", " ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
