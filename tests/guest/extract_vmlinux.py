#!/usr/bin/env python3
"""Extracts the ELF vmlinux from a bzImage whose payload is xz-compressed."""
import lzma
import sys

src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
magic = b"\xfd7zXZ\x00"
pos = data.find(magic)
if pos < 0:
    sys.exit(f"{src}: no xz payload found")
decomp = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
elf = decomp.decompress(data[pos:])  # stops at the end of the first stream
if elf[:4] != b"\x7fELF":
    sys.exit(f"{src}: payload is not an ELF image")
open(dst, "wb").write(elf)
