#!/usr/bin/env python3
"""Functional test: bad input to kiln gives one clear line on stderr and
exit status 1, never a crash, a hang or a guest that boots into garbage.
Uses the real Debian kernel files (truncated and corrupted copies); no
guest runs, so this is cheap.

usage: bad_input_test.py PATH/TO/kiln"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import Checks, guest_dir  # noqa: E402

kiln = sys.argv[1]
guest = guest_dir()
checks = Checks()
tmp = tempfile.mkdtemp(prefix="kiln-bad-input-")
bz = os.path.join(guest, "bzImage")
vmlinux = os.path.join(guest, "vmlinux")
initrd = os.path.join(guest, "initrd")


def derived(name, source, length=None, patch=None):
    path = os.path.join(tmp, name)
    with open(source, "rb") as f:
        data = bytearray(f.read(length) if length else f.read())
    for off, b in (patch or {}).items():
        data[off] = b
    with open(path, "wb") as f:
        f.write(data)
    return path


bz_cut = derived("bzImage.cut", bz, 4 << 20)
bz_no_magic = derived("bzImage.nomagic", bz, patch={0x202: 0})
vm_cut = derived("vmlinux.cut", vmlinux, 1 << 20)
junk = os.path.join(tmp, "junk")
with open(junk, "wb") as f:
    f.write(os.urandom(65536))
empty = os.path.join(tmp, "empty")
open(empty, "wb").close()
big_initrd = os.path.join(tmp, "big.initrd")
with open(big_initrd, "wb") as f:
    f.truncate(200 << 20)

# (what, extra arguments, stderr as a regular expression). Every run also
# gets a valid -kernel first unless it gives its own (the last one wins).
Q = re.escape
cases = [
    ("missing kernel", ["-kernel", "/nonexistent/vmlinuz"],
     Q("kiln: could not load kernel '/nonexistent/vmlinuz': No such file or directory")),
    ("kernel is a directory", ["-kernel", tmp], Q(f"kiln: could not load kernel '{tmp}': Is a directory")),
    ("empty kernel", ["-kernel", empty], Q(f"kiln: kernel '{empty}' is empty")),
    ("random bytes as kernel", ["-kernel", junk], Q(f"kiln: kernel '{junk}' is neither a bzImage nor an ELF vmlinux")),
    ("truncated bzImage", ["-kernel", bz_cut], Q(f"kiln: kernel '{bz_cut}' is truncated (4194304 bytes; its header says ")
     + r"\d+\)"),
    ("bzImage without its header magic", ["-kernel", bz_no_magic],
     Q(f"kiln: kernel '{bz_no_magic}' is neither a bzImage nor an ELF vmlinux")),
    ("truncated vmlinux", ["-kernel", vm_cut], Q(f"kiln: kernel '{vm_cut}' has an ELF segment past the end of the file")),
    ("missing initrd", ["-initrd", "/nonexistent/initrd"],
     Q("kiln: could not load initrd '/nonexistent/initrd': No such file or directory")),
    ("initrd bigger than RAM", ["-m", "128", "-initrd", big_initrd],
     Q(f"kiln: initrd '{big_initrd}' is too large for guest RAM (200 MiB; ") + r"\d+ MiB available\)"),
    ("bzImage in too little RAM", ["-m", "16", "-kernel", bz],
     Q(f"kiln: kernel '{bz}' needs ") + r"\d+ MiB of RAM to decompress; the guest has less below 4 GiB"),
    ("-m too small", ["-m", "1M"], Q("kiln: -m 1M: RAM size must be at least 2 MiB")),
    ("-m too big", ["-m", "2T"], Q("kiln: -m 2T: RAM size must be at most 1 TiB")),
    ("-m malformed", ["-m", "lots"], Q("kiln: -m lots: invalid RAM size 'lots' (expected a size such as 512M or 2G)")),
    ("-m unknown key", ["-m", "size=1G,slots=2"], Q("kiln: -m size=1G,slots=2: option 'slots' is not supported (only size=)")),
    ("unknown option", ["-frobnicate"], Q("kiln: -frobnicate: invalid option")),
    ("QEMU option Kiln lacks", ["-fda", "floppy.img"], Q("kiln: -fda: unsupported option")),
    ("missing argument", ["-append"], Q("kiln: -append: requires an argument")),
    ("-smp 2", ["-smp", "2"], Q("kiln: -smp 2: only one CPU is supported (Kiln has no SMP yet)")),
    ("-smp malformed", ["-smp", "two"], Q("kiln: -smp two: invalid number 'two' for 'cpus' (expected a positive integer)")),
    ("-accel unknown", ["-accel", "hvf"], Q("kiln: -accel hvf: invalid accelerator 'hvf' (expected kvm, interp or tcg)")),
    ("-cpu unknown", ["-cpu", "pentium9"], Q("kiln: -cpu pentium9: unable to find CPU model 'pentium9'")),
    ("-machine unknown", ["-machine", "q35"], Q("kiln: -machine q35: unsupported machine type 'q35' (only 'pc' is available)")),
    ("-rtc malformed", ["-rtc", "base=yesterday"],
     Q("kiln: -rtc base=yesterday: invalid base 'yesterday' (expected utc, localtime or a date such as 2006-06-17T16:01:21)")),
    ("-serial unknown backend", ["-serial", "tcp:localhost:4444"], Q("kiln: -serial tcp:localhost:4444: ") + ".+"),
    ("-serial file: unwritable", ["-serial", "file:/nonexistent/dir/log"],
     Q("kiln: -serial: Could not open '/nonexistent/dir/log': No such file or directory")),
    ("-display unknown", ["-display", "gtk"], Q("kiln: -display gtk: unsupported display 'gtk' (only 'none' is available)")),
    ("-d unknown item", ["-d", "everything"], Q("kiln: -d everything: unknown logging item 'everything' (see -d help)")),
    ("-pidfile unwritable", ["-pidfile", "/nonexistent/dir/kiln.pid"],
     Q("kiln: cannot create PID file: Could not create '/nonexistent/dir/kiln.pid': No such file or directory")),
    ("-initrd without -kernel", None, Q("kiln: -initrd only allowed with -kernel option")),
    ("no kernel at all", [], Q("kiln: no kernel given: Kiln has no firmware yet, so -kernel is required")),
]

for what, extra, pattern in cases:
    if extra is None:
        argv = [kiln, "-initrd", initrd, "-display", "none", "-serial", "null"]
    elif what == "no kernel at all":
        argv = [kiln, "-display", "none", "-serial", "null"]
    else:
        argv = [kiln, "-kernel", vmlinux, "-display", "none", "-serial", "null", "-S"] + extra
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        checks.check(f"{what}: kiln did not hang", False)
        continue
    ok = r.returncode == 1 and re.fullmatch(pattern + r"\n", r.stderr) is not None
    if not ok:
        print(f"{what}: exit {r.returncode}, stderr {r.stderr!r}")
    checks.check(what, ok)

shutil.rmtree(tmp)
checks.finish()
