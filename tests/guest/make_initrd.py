#!/usr/bin/env python3
"""Writes an uncompressed newc cpio initramfs: busybox, /init, modules."""
import argparse
import os
import stat

# Load order that works with busybox insmod (see shared FACTS).
MODULES = [
    "drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev", "drivers/virtio/virtio_pci", "drivers/block/virtio_blk",
    "drivers/scsi/scsi_common", "drivers/scsi/scsi_mod", "drivers/ata/libata", "drivers/ata/ata_piix",
    "crypto/crct10dif_common", "crypto/crct10dif_generic", "lib/crc-t10dif", "lib/crc64",
    "lib/crc64-rocksoft", "block/t10-pi", "drivers/scsi/sd_mod", "drivers/cdrom/cdrom", "drivers/scsi/sr_mod",
    "fs/mbcache", "fs/jbd2/jbd2", "lib/crc16", "crypto/crc32c_generic", "lib/libcrc32c", "fs/ext4/ext4",
    "fs/isofs/isofs",
    # The ACPI power button as an input device, for busybox acpid.
    "drivers/input/evdev", "drivers/acpi/button",
]


class Cpio:
    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def entry(self, name, mode, data=b"", target=None, rdev=(0, 0)):
        if target is not None:
            data = target.encode()
        namez = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0))
        self.ino += 1
        self.out += hdr.encode() + namez
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        self.entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, perm=0o644):
        self.entry(name, stat.S_IFREG | perm, data)

    def finish(self):
        self.entry("TRAILER!!!", 0)
        self.out += b"\0" * (-len(self.out) % 512)
        return bytes(self.out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--busybox", required=True)
    ap.add_argument("--modules", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--file", action="append", default=[], metavar="SRC:DEST",
                    help="add a host file (symlinks followed) at DEST, creating its directories")
    a = ap.parse_args()
    c = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "mnt", "etc", "lib", "lib/modules", "root"):
        c.dir(d)
    c.entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))  # so init has a console before devtmpfs
    c.file("bin/busybox", open(a.busybox, "rb").read(), 0o755)
    c.entry("bin/sh", stat.S_IFLNK | 0o777, target="busybox")
    c.file("init", open(a.init, "rb").read(), 0o755)
    made = {"bin", "sbin", "etc", "lib"}
    for spec in a.file:
        src, dest = spec.rsplit(":", 1)
        parts = dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                c.dir(d)
                made.add(d)
        perm = 0o755 if os.access(src, os.X_OK) else 0o644
        c.file(dest, open(os.path.realpath(src), "rb").read(), perm)
    if any(f.endswith(":sbin/mke2fs") for f in a.file):
        for name in ("mkfs.ext4", "mkfs.ext3"):
            c.entry("sbin/" + name, stat.S_IFLNK | 0o777, target="mke2fs")
    order = []
    for m in MODULES:
        path = os.path.join(a.modules, m + ".ko")
        if not os.path.exists(path):
            continue
        base = os.path.basename(m)
        c.file(f"lib/modules/{base}.ko", open(path, "rb").read())
        order.append(base)
    c.file("etc/modules", ("\n".join(order) + "\n").encode())
    open(a.out, "wb").write(c.finish())


main()
