# The synthetic PVH kernel for the process-level tests (same layout as
# tests/unit/hw/synthetic_kernel.h).
import struct


def synthetic_pvh_kernel(code):
    """A minimal ELF64 vmlinux: one PT_LOAD at 16 MiB, a Xen PVH note whose
    entry is 16 MiB + 0x40 where `code` sits (same layout as
    tests/unit/hw/synthetic_kernel.h)."""
    k = bytearray(0x3000)
    k[0:4] = b'\x7fELF'
    k[4], k[5], k[6] = 2, 1, 1
    struct.pack_into('<HH', k, 16, 2, 62)
    struct.pack_into('<Q', k, 32, 64)
    struct.pack_into('<HH', k, 54, 56, 2)
    struct.pack_into('<IIQQQQQQ', k, 64, 1, 0, 0x1000, 0, 0x1000000, 0x1000, 0x2000, 0)
    struct.pack_into('<IIQQQQQQ', k, 120, 4, 0, 0x2800, 0, 0, 20, 20, 0)
    k[0x1040:0x1040 + len(code)] = code
    struct.pack_into('<III4sI', k, 0x2800, 4, 4, 18, b'Xen\0', 0x1000040)
    return bytes(k)
