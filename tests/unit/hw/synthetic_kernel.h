// Synthetic kernels for boot tests: a minimal bzImage (setup header +
// protected-mode payload) and a minimal ELF64 vmlinux with a PVH note.
// `code` is placed where the entry point lands: offset 0x200 of the
// protected-mode payload for the 64-bit bzImage entry, the PVH entry for
// the ELF.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace kiln::hw::test {

template<typename T>
void put_le(std::vector<uint8_t>& b, size_t off, T v)
{
    std::memcpy(b.data() + off, &v, sizeof(T));
}

inline std::vector<uint8_t> synthetic_bzimage(uint16_t version, uint16_t xloadflags, size_t payload = 8192,
                                              const std::vector<uint8_t>& code = {})
{
    std::vector<uint8_t> k(5 * 512 + payload, 0);
    k[0x1f1] = 4;
    put_le<uint16_t>(k, 0x1fe, 0xaa55);
    k[0x201] = 0x66; // header ends at 0x268
    put_le<uint32_t>(k, 0x202, 0x53726448);
    put_le<uint16_t>(k, 0x206, version);
    k[0x211] = 0x01; // LOADED_HIGH
    put_le<uint32_t>(k, 0x22c, 0x7fffffff);
    put_le<uint16_t>(k, 0x236, xloadflags);
    put_le<uint32_t>(k, 0x238, 2047);
    put_le<uint32_t>(k, 0x260, 0x200000); // init_size 2 MiB
    for (size_t i = 0; i < payload; i++)
        k[5 * 512 + i] = uint8_t(i * 7);
    if (!code.empty() && payload >= 0x200 + code.size())
        std::memcpy(k.data() + 5 * 512 + 0x200, code.data(), code.size());
    return k;
}

// One PT_LOAD (file 0x1000..0x2000 -> 16 MiB, memsz 0x2000) and a "Xen"
// note of type 18 (or 17 when !with_note) whose entry is 16 MiB + 0x40.
inline std::vector<uint8_t> synthetic_vmlinux(bool with_note, const std::vector<uint8_t>& code = {})
{
    std::vector<uint8_t> k(0x3000, 0);
    std::memcpy(k.data(), "\x7f" "ELF", 4);
    k[4] = 2;
    k[5] = 1;
    k[6] = 1;
    put_le<uint16_t>(k, 16, 2);
    put_le<uint16_t>(k, 18, 62);
    put_le<uint64_t>(k, 32, 64); // phoff
    put_le<uint16_t>(k, 54, 56);
    put_le<uint16_t>(k, 56, 2);
    put_le<uint32_t>(k, 64, 1);
    put_le<uint64_t>(k, 64 + 8, 0x1000);
    put_le<uint64_t>(k, 64 + 24, 0x1000000);
    put_le<uint64_t>(k, 64 + 32, 0x1000);
    put_le<uint64_t>(k, 64 + 40, 0x2000);
    for (size_t i = 0x1000; i < 0x2000; i++)
        k[i] = 0xcc;
    if (!code.empty())
        std::memcpy(k.data() + 0x1040, code.data(), code.size());
    put_le<uint32_t>(k, 120, 4);
    put_le<uint64_t>(k, 120 + 8, 0x2800);
    put_le<uint64_t>(k, 120 + 32, 20);
    put_le<uint32_t>(k, 0x2800, 4);
    put_le<uint32_t>(k, 0x2804, 4);
    put_le<uint32_t>(k, 0x2808, with_note ? 18 : 17);
    std::memcpy(k.data() + 0x280c, "Xen", 4);
    put_le<uint32_t>(k, 0x2810, 0x1000040);
    return k;
}

// x86 code (valid in 32- and 64-bit mode) that prints `text` on COM1 and
// powers the machine off through the ACPI PM control register (S5).
inline std::vector<uint8_t> serial_then_poweroff_code(const char* text)
{
    std::vector<uint8_t> c = {0x66, 0xba, 0xf8, 0x03}; // mov dx, 0x3f8
    for (const char* p = text; *p; p++) {
        c.push_back(0xb0); // mov al, imm8
        c.push_back(uint8_t(*p));
        c.push_back(0xee); // out dx, al
    }
    const uint8_t off[] = {0x66, 0xba, 0x04, 0x06, // mov dx, 0x604
                           0x66, 0xb8, 0x00, 0x20, // mov ax, SLP_EN | SLP_TYP 0
                           0x66, 0xef,             // out dx, ax
                           0xf4, 0xeb, 0xfd};      // hlt; jmp hlt
    c.insert(c.end(), off, off + sizeof off);
    return c;
}

} // namespace kiln::hw::test
