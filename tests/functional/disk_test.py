#!/usr/bin/env python3
"""Functional test: disks in one boot of the demo guest under `kiln -accel interp`.

The guest (script disk_guest.sh, carried on the CD-ROM it tests) writes
random patterns to virtio and IDE disks, raw and qcow2 over a backing file,
reads them back and hashes them; the host then reads the same images with
qemu-img and kiln-img. snapshot=on must leave its image untouched, readonly=on
must make writes fail, the CD-ROM (an ISO made by xorriso) must read back,
mkfs.ext4 (virtio) and mke2fs -t ext2 (IDE) must leave filesystems e2fsck finds
clean (the virtio one over INTx after a rebind without MSI-X), and a write
to an image that cannot grow must pause the VM under
werror=stop. While it is paused, qemu-io and a second kiln must be refused
the write lock of the images and of a backing file.

usage: disk_test.py KILN KILN_IMG [--emulator qemu]   (qemu: the same test
under qemu-system-x86_64 -accel tcg, to check the test itself)
"""
import argparse
import hashlib
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sha(data):
    return hashlib.sha256(data).hexdigest()


def sha_file(path):
    with open(path, "rb") as f:
        return sha(f.read())


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", **kw)


class Checks:
    def __init__(self):
        self.results = []

    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))
        print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok or not detail else ': ' + detail}", flush=True)


class Output:
    """Collects a process's stdout and stderr lines from reader threads."""

    def __init__(self, proc):
        self.lock = threading.Lock()
        self.stdout, self.stderr = [], []
        self.threads = [threading.Thread(target=self._pump, args=(proc.stdout, self.stdout), daemon=True),
                        threading.Thread(target=self._pump, args=(proc.stderr, self.stderr), daemon=True)]
        for t in self.threads:
            t.start()

    def _pump(self, stream, lines):
        for line in iter(stream.readline, ""):
            with self.lock:
                lines.append(line.rstrip("\r\n"))

    def text(self, which):
        with self.lock:
            return "\n".join(getattr(self, which))

    def count(self, which, needle):
        with self.lock:
            return sum(needle in l for l in getattr(self, which))


def wait_for(pred, timeout_s, proc):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        if proc.poll() is not None:
            return pred()
        time.sleep(0.5)
    return pred()


def guest_results(stdout):
    """KILN-T lines -> {name: {key: value}} (the last line of each name)."""
    res = {}
    for line in stdout.splitlines():
        m = re.search(r"KILN-T (\S+)(.*)", line)
        if m:
            res[m.group(1)] = dict(kv.split("=", 1) for kv in m.group(2).split() if "=" in kv)
    return res


def image_bytes(tool, path, fmt, out):
    r = run([tool, "convert", "-f", fmt, "-O", "raw", path, out])
    if r.returncode != 0:
        return None, r.stderr.strip()
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("kiln_img")
    ap.add_argument("--emulator", choices=["kiln", "qemu"], default="kiln")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-tmpfs", action="store_true", help="use the file-size limit even when tmpfs is possible")
    a = ap.parse_args()

    for tool in ("qemu-img", "qemu-io", "xorriso", "e2fsck", "debugfs", "dumpe2fs"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not installed (scripts/setup --test)")
            return 77
    try:
        guest = run([os.path.join(ROOT, "tests/guest/build")], check=True).stdout.strip().splitlines()[-1]
    except subprocess.CalledProcessError as e:
        print(f"SKIP: could not build the test guest: {e.stderr.strip()}")
        return 77

    tmp = tempfile.mkdtemp(prefix="kiln-disk-guest-")
    p = lambda name: os.path.join(tmp, name)
    rng = random.Random(6)
    c = Checks()

    # Images. Backing files carry a host pattern so reads through qcow2 show it.
    def make_raw(name, size, data=b""):
        with open(p(name), "wb") as f:
            f.write(data)
            f.truncate(size)
        return p(name)

    for name in ("vraw.img", "iraw.img"):
        make_raw(name, 4 * MiB)
    base_bytes = {n: rng.randbytes(4 * MiB) for n in ("vbase.raw", "ibase.raw")}
    for n, data in base_bytes.items():
        make_raw(n, 4 * MiB, data)
    # One qcow2 made by kiln-img, one by qemu-img: each tool reads the other's.
    mk = [run([a.kiln_img, "create", "-q", "-f", "qcow2", "-b", p("vbase.raw"), "-F", "raw", p("vqcow.qcow2")]),
          run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", p("ibase.raw"), "-F", "raw", p("iqcow.qcow2")])]
    for r in mk:
        if r.returncode != 0:
            print("could not create the qcow2 images: " + r.stderr)
            return 1
    snap_data = rng.randbytes(4 * MiB)
    make_raw("snap.img", 4 * MiB, snap_data)
    ro_data = rng.randbytes(4 * MiB)
    make_raw("ro.img", 4 * MiB, ro_data)
    make_raw("fs4.img", 24 * MiB)
    make_raw("fs2.img", 8 * MiB)
    before = {n: sha_file(p(n)) for n in ("vbase.raw", "ibase.raw", "snap.img", "ro.img")}

    os.makedirs(p("cd"))
    cd_data = rng.randbytes(512 * 1024)
    with open(p("cd/data.bin"), "wb") as f:
        f.write(cd_data)
    shutil.copy(os.path.join(ROOT, "tests/functional/disk_guest.sh"), p("cd/run.sh"))
    r = run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "KILNTEST", "-o", p("cd.iso"), p("cd")])
    if r.returncode != 0:
        print("xorriso failed: " + r.stderr)
        return 1
    iso = open(p("cd.iso"), "rb").read()

    # The werror=stop disk lives where it cannot grow: a 1 MiB tmpfs in a
    # private mount namespace when we may mount (a real ENOSPC), else a
    # file-size limit on the process (EFBIG past 768 MiB, above the guest's
    # 512 MiB of RAM, which kiln keeps in a memfd; the guest writes the
    # last 4 MiB of a 1 GiB disk).
    full_dir = p("full")
    os.makedirs(full_dir)
    use_tmpfs = not a.no_tmpfs and os.geteuid() == 0 and run(["unshare", "-m", "true"]).returncode == 0
    werr = os.path.join(full_dir, "werr.img")
    if not use_tmpfs:
        make_raw("full/werr.img", 1024 * MiB)

    snap_tmp = p("overlays")
    os.makedirs(snap_tmp)
    def virtio(img, serial, opts=""):
        return ["-drive", f"file={img},if=none,id={serial.lower()}{opts}",
                "-device", f"virtio-blk-pci,drive={serial.lower()},serial={serial}"]

    # QEMU 7.2 dropped -drive serial=; Kiln keeps it, so one disk uses it.
    vraw = ["-drive", f"file={p('vraw.img')},format=raw,if=virtio,serial=VRAW"] if a.emulator == "kiln" \
        else virtio(p("vraw.img"), "VRAW", ",format=raw")
    drives = vraw + virtio(p("vqcow.qcow2"), "VQCOW", ",format=qcow2,cache=none,aio=io_uring") \
        + virtio(p("snap.img"), "VSNAP", ",format=raw,snapshot=on") \
        + virtio(p("ro.img"), "VRO", ",format=raw,readonly=on") \
        + virtio(p("fs4.img"), "VFS4", ",format=raw,discard=unmap") \
        + virtio(werr, "VWERR", ",format=raw,werror=stop") + [
        "-drive", f"file={p('iraw.img')},format=raw,if=ide,index=0",
        "-drive", f"file={p('iqcow.qcow2')},format=qcow2,if=none,id=iq,aio=threads",
        "-device", "ide-hd,drive=iq,bus=ide.0,unit=1",
        "-cdrom", p("cd.iso"),
        "-drive", f"file={p('fs2.img')},format=raw,if=ide,index=3",
    ]
    # libata.force: the secondary slave runs in PIO (READ/WRITE MULTIPLE).
    append = ('console=ttyS0 quiet kiln.poweroff libata.force=2.01:pio4 -- sh -c '
              '"mkdir -p /cd && mount -t iso9660 -o ro /dev/sr0 /cd && sh /cd/run.sh"')
    common = ["-m", "512", "-nographic", "-no-reboot", "-kernel", os.path.join(guest, "vmlinux"),
              "-initrd", os.path.join(guest, "initrd"), "-append", append]
    if a.emulator == "kiln":
        cmd = [a.kiln, "-accel", "interp"] + common + drives
    else:
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-monitor", "none", "-serial", "stdio", "-display", "none",
               "-no-reboot", "-m", "512", "-kernel", os.path.join(guest, "vmlinux"),
               "-initrd", os.path.join(guest, "initrd"), "-append", append] + drives
    preexec = None
    if use_tmpfs:
        cmd = ["unshare", "-m", "sh", "-c",
               'mount -t tmpfs -o size=1m kiln-full "$0" && truncate -s 64M "$0/werr.img" && exec "$@"',
               full_dir] + cmd
    else:
        def preexec():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (768 * MiB, 768 * MiB))
    env = dict(os.environ, TMPDIR=snap_tmp)

    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", env=env, preexec_fn=preexec)
    out = Output(proc)
    boot_limit_s = 1500
    started = wait_for(lambda: out.count("stdout", "KILN-T werror-start"), boot_limit_s, proc)
    c.check("guest ran the disk script to the werror step", started,
            out.text("stdout")[-3000:] + "\n" + out.text("stderr")[-2000:])
    paused_msg = "werror=stop: VM paused"
    paused = started and wait_for(lambda: out.count("stderr", paused_msg) or a.emulator == "qemu", 300, proc)
    c.check("werror=stop: kiln says why it paused", paused, out.text("stderr")[-2000:])
    if paused and a.emulator == "kiln":
        c.check("werror=stop message names the drive and the error",
                re.search(r"drive 'vwerr': write error: .*(No space left on device|File too large)",
                          out.text("stderr")), out.text("stderr")[-1000:])
    if paused:
        time.sleep(3)  # a heartbeat already on its way may still arrive
        beats = out.count("stdout", "KILN-HB")
        time.sleep(8)
        c.check("werror=stop: the VM is paused (the guest's heartbeat stops)",
                beats >= 1 and out.count("stdout", "KILN-HB") == beats,
                f"{beats} then {out.count('stdout', 'KILN-HB')}")
        c.check("werror=stop: the failed write never completes in the guest",
                not out.count("stdout", "werror-after"))
        c.check("kiln keeps running while paused", proc.poll() is None)

        # Locks while the VM holds the images.
        for img, fmt in ((p("vraw.img"), "raw"), (p("vbase.raw"), "raw"), (p("iqcow.qcow2"), "qcow2")):
            r = run(["qemu-io", "-f", fmt, "-c", "write 0 512", img])
            c.check(f"qemu-io refused the write lock of {os.path.basename(img)}",
                    r.returncode != 0 and 'Failed to get "write" lock' in r.stderr, r.stderr.strip())
        if a.emulator == "kiln":
            r = run([a.kiln, "-accel", "interp", "-S", "-display", "none", "-kernel", os.path.join(guest, "vmlinux"),
                     "-drive", f"file={p('iraw.img')},format=raw,if=virtio"], timeout=60)
            c.check("a second kiln is refused with QEMU's lock message",
                    r.returncode != 0 and 'Failed to get "write" lock' in r.stderr
                    and f"Is another process using the image [{p('iraw.img')}]?" in r.stderr, r.stderr.strip())

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for t in out.threads:
        t.join(timeout=5)
    elapsed = time.monotonic() - start
    if a.emulator == "kiln":
        c.check("kiln ends with status 0 on SIGTERM", proc.returncode == 0, f"status {proc.returncode}")
    g = guest_results(out.text("stdout"))
    with open(p("console.log"), "w") as f:
        f.write(out.text("stdout") + "\n")
    with open(p("stderr.log"), "w") as f:
        f.write(out.text("stderr") + "\n")
    # libata reports lost interrupts, timeouts and bus errors as exceptions.
    ata_trouble = [l for l in out.text("stdout").splitlines()
                   if re.search(r"ata\d.*(exception|timeout|failed command|irq .* nobody cared)", l)]
    c.check("no libata exceptions or timeouts in the guest's log", not ata_trouble, "\n".join(ata_trouble[:5]))

    # CD-ROM.
    cd = g.get("cd", {})
    c.check("CD-ROM: a file on the ISO reads back in the guest", cd.get("data") == sha(cd_data), str(cd))
    c.check("CD-ROM: the whole device reads back as the ISO",
            cd.get("dev") == sha(iso) and cd.get("size") == str(len(iso) // 512), str(cd))

    # Pattern disks: the guest's view, then qemu-img's and kiln-img's.
    for name, img, fmt, base in (("vraw", "vraw.img", "raw", None), ("vqcow", "vqcow.qcow2", "qcow2", "vbase.raw"),
                                 ("ide-raw", "iraw.img", "raw", None), ("ide-qcow", "iqcow.qcow2", "qcow2", "ibase.raw")):
        r = g.get(name, {})
        c.check(f"{name}: guest write succeeded and read back its pattern",
                r.get("write_rc") == "0" and r.get("pattern") and r.get("pattern") == r.get("readback"), str(r))
        for tool in ("qemu-img", a.kiln_img):
            data, err = image_bytes(tool, p(img), fmt, p("convert.raw"))
            tname = os.path.basename(tool)
            c.check(f"{name}: {tname} reads what the guest wrote",
                    data is not None and sha(data) == r.get("disk") and sha(data[MiB:2 * MiB]) == r.get("pattern"),
                    err or str(r))
            if data is not None and base:
                c.check(f"{name}: {tname} reads the backing file's bytes around the write",
                        data[:MiB] == base_bytes[base][:MiB] and data[2 * MiB:] == base_bytes[base][2 * MiB:])
        if base:
            c.check(f"{name}: backing file unchanged", sha_file(p(base)) == before[base])
            for tool in ("qemu-img", a.kiln_img):
                rc = run([tool, "check", "-q", p(img)])
                c.check(f"{name}: {os.path.basename(tool)} check finds the qcow2 clean", rc.returncode == 0,
                        rc.stdout + rc.stderr)

    s = g.get("vsnap", {})
    c.check("snapshot=on: the guest reads its own writes",
            s.get("write_rc") == "0" and s.get("pattern") and s.get("pattern") == s.get("readback"), str(s))
    c.check("snapshot=on: the image is untouched", sha_file(p("snap.img")) == before["snap.img"])
    c.check("snapshot=on: no overlay left behind", os.listdir(snap_tmp) == [], str(os.listdir(snap_tmp)))

    ro = g.get("vro", {})
    c.check("readonly=on: the guest's write fails and the disk is read-only",
            ro.get("write_rc") not in (None, "0") and ro.get("ro_flag") == "1", str(ro))
    c.check("readonly=on: the guest reads the image and it is untouched",
            ro.get("disk") == sha(ro_data) and sha_file(p("ro.img")) == before["ro.img"], str(ro))

    # Filesystems: e2fsck clean, and the file the guest copied in is there.
    for name, img, fstype in (("vfs4", "fs4.img", "ext4"), ("ide-fs2", "fs2.img", "ext2")):
        r = g.get(name, {})
        c.check(f"{name}: mkfs, mount, copy and remount in the guest",
                r.get("mkfs_rc") == "0" and r.get("mount_rc") == "0" and r.get("copy_rc") == "0"
                and r.get("data") == sha(cd_data) and r.get("type") == fstype
                and g.get(name + "-umount", {}).get("rc") == "0", str(r))
        fsck = run(["e2fsck", "-fn", p(img)])
        c.check(f"{name}: the host's e2fsck finds the {fstype} filesystem clean", fsck.returncode == 0,
                fsck.stdout[-800:] + fsck.stderr[-400:])
        dump = subprocess.run(["debugfs", "-R", "cat /data.bin", p(img)], capture_output=True)
        c.check(f"{name}: debugfs reads the copied file from the image", sha(dump.stdout) == sha(cd_data),
                dump.stderr.decode(errors="replace")[-400:])
        feats = run(["dumpe2fs", "-h", p(img)]).stdout
        journal = "has_journal" in feats and "extent" in feats
        c.check(f"{name}: it is {fstype}", journal if fstype == "ext4" else "has_journal" not in feats)

    ix, ixa = g.get("intx", {}), g.get("intx-after", {})
    count = lambda line: int(line.split("_")[2]) if line.count("_") > 2 and line.split("_")[2].isdigit() else -1
    c.check("virtio-blk falls back to INTx without MSI-X (IO-APIC line, interrupts counted)",
            ix.get("msix") == "0" and "IO-APIC" in ix.get("line", "") and "virtio" in ix.get("line", "")
            and count(ixa.get("line", "")) > count(ix.get("line", "")) >= 0, f"{ix} {ixa}")

    m = g.get("models", {})
    c.check("IDE identities (QEMU HARDDISK, QEMU DVD-ROM)",
            m.get("hd") == "QEMU_HARDDISK" and m.get("sr0") == "QEMU_DVD-ROM", str(m))

    x = g.get("xfer", {})
    c.check("IDE transfer modes: bus-master DMA, and PIO where forced",
            x.get("hd") == "XFER_MW_DMA_2" and x.get("fs2") == "XFER_PIO_4", str(x))

    failed = [n for n, ok, _ in c.results if not ok]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{a.emulator}: boot to the end of the disk checks in {elapsed:.0f} s "
          f"({cpu.ru_utime + cpu.ru_stime:.0f} s CPU with the host tools), "
          f"{len(c.results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        print("guest output (tail):\n" + out.text("stdout")[-4000:])
        print("stderr (tail):\n" + out.text("stderr")[-2000:])
    if a.keep or failed:
        print(f"files kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
