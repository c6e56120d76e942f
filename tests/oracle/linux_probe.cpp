// kiln-interp-probe: boots an uncompressed Linux vmlinux through its PVH
// entry point on the interpreter with a device-less fake host, printing
// the serial console (port 0x3F8) and where the CPU stopped. A developer
// tool for finding what the interpreter still lacks before the real PC
// board exists; not a test (it needs a kernel image).
//
//   kiln-interp-probe VMLINUX [COMMAND-LINE] [MAX-INSTRUCTIONS] [INITRD]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"
#include "util/log.h"

using namespace kiln;
using namespace kiln::accel;

namespace {

// Just enough of a 16550 at 0x3F8 for Linux's 8250 driver: output only,
// THR-empty interrupts on IRQ 4 (vector 0x34 once Linux has programmed
// the 8259s), everything else reads as an idle port.
class ProbeHost : public oracle::FakeHost {
public:
    using FakeHost::FakeHost;
    uint32_t pio_read(uint16_t port, unsigned size) override
    {
        if (port < 0x3f8 || port > 0x3ff)
            return FakeHost::pio_read(port, size);
        bool dlab = m_lcr & 0x80;
        switch (port - 0x3f8) {
        case 0:
            return dlab ? m_dll : 0;
        case 1:
            return dlab ? m_dlm : m_ier;
        case 2: { // IIR: THR empty pending (reading clears it), else none
            uint8_t fifo = (m_fcr & 1) ? 0xc0 : 0;
            if (m_thre_pending && (m_ier & 2)) {
                m_thre_pending = false;
                return fifo | 0x02;
            }
            return fifo | 0x01;
        }
        case 3:
            return m_lcr;
        case 4:
            return m_mcr;
        case 5:
            return 0x60; // LSR: transmitter empty, no data
        case 6: // MSR: loopback mirrors MCR, otherwise CTS/DSR/DCD
            if (m_mcr & 0x10)
                return ((m_mcr & 1) << 5) | ((m_mcr & 2) << 3) | ((m_mcr & 4) << 4) | ((m_mcr & 8) << 4);
            return 0xb0;
        default:
            return m_scr;
        }
    }
    void pio_write(uint16_t port, unsigned size, uint32_t value) override
    {
        if (port < 0x3f8 || port > 0x3ff)
            return;
        uint8_t v = uint8_t(value);
        bool dlab = m_lcr & 0x80;
        if (m_trace && port != 0x3f8)
            fprintf(stderr, "[uart] out %x <- %02x\n", port, v);
        switch (port - 0x3f8) {
        case 0:
            if (dlab) {
                m_dll = v;
            } else if (!(m_mcr & 0x10)) {
                fputc(v, stdout);
                fflush(stdout);
                m_thre_pending = true;
            }
            break;
        case 1:
            if (dlab) {
                m_dlm = v;
            } else {
                m_ier = v & 0x0f;
                if (m_ier & 2)
                    m_thre_pending = true;
            }
            break;
        case 2:
            m_fcr = v;
            break;
        case 3:
            m_lcr = v;
            break;
        case 4:
            m_mcr = v & 0x1f;
            break;
        case 7:
            m_scr = v;
            break;
        default:
            break;
        }
    }
    bool interrupt_pending() override { return m_thre_pending && (m_ier & 2) && (m_mcr & 8); }
    uint8_t acknowledge_interrupt() override
    {
        if (m_trace)
            fprintf(stderr, "[uart] irq\n");
        return 0x34;
    }
    uint64_t virtual_clock_ns() override
    {
        return uint64_t(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
                .count());
    }
    bool wait_for_interrupt() override { return interrupt_pending(); }

private:
    bool m_trace = getenv("KILN_PROBE_TRACE") != nullptr;
    uint8_t m_ier = 0, m_lcr = 0, m_mcr = 0, m_fcr = 0, m_scr = 0, m_dll = 0, m_dlm = 0;
    bool m_thre_pending = false;
};

struct Elf64Header {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct Elf64Phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s VMLINUX [CMDLINE] [MAX-INSTRUCTIONS] [INITRD]\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    std::vector<uint8_t> image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (image.size() < sizeof(Elf64Header)
        || std::memcmp(image.data(),
               "\x7f"
               "ELF",
               4)
            != 0) {
        fprintf(stderr, "%s: '%s' is not an ELF file\n", argv[0], argv[1]);
        return 1;
    }
    std::string cmdline = argc > 2 && argv[2][0]
        ? argv[2]
        : "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr acpi=off noapic nolapic lpj=1000000";
    uint64_t budget = argc > 3 ? strtoull(argv[3], nullptr, 0) : 2000000000ull;
    Log::enable_categories("unimp");

    const uint64_t ram = 512ull << 20;
    ProbeHost host(ram);
    Elf64Header eh;
    std::memcpy(&eh, image.data(), sizeof eh);
    uint64_t pvh_entry = 0;
    for (unsigned i = 0; i < eh.phnum; i++) {
        Elf64Phdr ph;
        std::memcpy(&ph, image.data() + eh.phoff + i * sizeof ph, sizeof ph);
        if (ph.type == 1) { // PT_LOAD at its physical address
            if (ph.paddr + ph.memsz > ram || ph.offset + ph.filesz > image.size()) {
                fprintf(stderr, "%s: segment %u does not fit\n", argv[0], i);
                return 1;
            }
            std::memcpy(host.ram(ph.paddr), image.data() + ph.offset, ph.filesz);
            std::memset(host.ram(ph.paddr + ph.filesz), 0, ph.memsz - ph.filesz);
        } else if (ph.type == 4) { // PT_NOTE: look for XEN_ELFNOTE_PHYS32_ENTRY (18)
            uint64_t off = ph.offset, end = ph.offset + ph.filesz;
            while (off + 12 <= end) {
                uint32_t namesz, descsz, type;
                std::memcpy(&namesz, &image[off], 4);
                std::memcpy(&descsz, &image[off + 4], 4);
                std::memcpy(&type, &image[off + 8], 4);
                uint64_t desc = off + 12 + ((namesz + 3) & ~3u);
                if (type == 18 && descsz >= 4) {
                    uint32_t e;
                    std::memcpy(&e, &image[desc], 4);
                    pvh_entry = e;
                }
                off = desc + ((descsz + 3) & ~3u);
            }
        }
    }
    if (!pvh_entry) {
        fprintf(stderr, "%s: no PVH entry note\n", argv[0]);
        return 1;
    }
    // hvm_start_info at 0x6000, memory map at 0x6100, command line at 0x7000.
    struct {
        uint32_t magic, version, flags, nr_modules;
        uint64_t modlist, cmdline, rsdp, memmap;
        uint32_t memmap_entries, reserved;
    } si { 0x336ec578, 1, 0, 0, 0, 0x7000, 0, 0x6100, 2, 0 };
    struct {
        uint64_t addr, size;
        uint32_t type, reserved;
    } map[2] = { { 0, 0x9f000, 1, 0 }, { 0x100000, ram - 0x100000, 1, 0 } };
    if (argc > 4) {
        // The initrd goes at 256 MiB and is announced as PVH module 0.
        std::ifstream rd(argv[4], std::ios::binary);
        std::vector<uint8_t> initrd((std::istreambuf_iterator<char>(rd)), std::istreambuf_iterator<char>());
        if (initrd.empty() || initrd.size() > (128u << 20)) {
            fprintf(stderr, "%s: cannot use initrd '%s'\n", argv[0], argv[4]);
            return 1;
        }
        const uint64_t at = 256ull << 20;
        std::memcpy(host.ram(at), initrd.data(), initrd.size());
        uint64_t mod[4] = { at, initrd.size(), 0, 0 };
        std::memcpy(host.ram(0x6200), mod, sizeof mod);
        si.nr_modules = 1;
        si.modlist = 0x6200;
    }
    std::memcpy(host.ram(0x6000), &si, sizeof si);
    std::memcpy(host.ram(0x6100), map, sizeof map);
    std::memcpy(host.ram(0x7000), cmdline.c_str(), cmdline.size() + 1);

    const char* model_name = getenv("KILN_PROBE_CPU") ? getenv("KILN_PROBE_CPU") : "max";
    auto model = x86::CpuModel::by_name(model_name);
    if (!model.ok()) {
        fprintf(stderr, "%s: %s\n", argv[0], model.error().message().c_str());
        return 1;
    }
    auto cpu = std::move(interp::Interpreter::create(host, model.value()).value());
    x86::CpuState& s = cpu->state();
    // PVH entry: 32-bit flat protected mode, paging off, EBX = start info.
    auto flat = [](uint16_t sel, uint16_t attr) { return x86::SegmentCache { sel, attr, 0xffffffff, 0 }; };
    s.cr0 = x86::k_cr0_pe | x86::k_cr0_et;
    s.segment(x86::Seg::CS) = flat(0x10, 0xc09b);
    for (x86::Seg r : { x86::Seg::DS, x86::Seg::ES, x86::Seg::SS, x86::Seg::FS, x86::Seg::GS })
        s.segment(r) = flat(0x18, 0xc093);
    s.tr = { 0x20, 0x8b, 0x67, 0 };
    s.gpr[x86::k_rbx] = 0x6000;
    s.rip = pvh_entry;
    s.rflags = 0x2;

    auto t0 = std::chrono::steady_clock::now();
    // Run in slices so the probe can sample how often user mode is running.
    interp::RunExit exit = interp::RunExit::Budget;
    uint64_t user_samples = 0, samples = 0;
    while (cpu->instructions_retired() < budget) {
        exit = cpu->run(std::min<uint64_t>(1u << 20, budget - cpu->instructions_retired()));
        samples++;
        if ((s.segment(x86::Seg::CS).selector & 3) == 3)
            user_samples++;
        if (exit != interp::RunExit::Budget)
            break;
    }
    fprintf(stderr, "\n[probe] %llu of %llu samples (1 Mi instructions apart) in user mode\n",
        (unsigned long long)user_samples, (unsigned long long)samples);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fprintf(stderr,
        "\n[probe] exit=%s after %llu instructions in %.2f s (%.1f MIPS); rip=%llx cs=%x cr0=%llx cr2=%llx "
        "efer=%llx halted=%d rflags=%llx rsp=%llx\n",
        interp::run_exit_name(exit), (unsigned long long)cpu->instructions_retired(), secs,
        cpu->instructions_retired() / secs / 1e6, (unsigned long long)s.rip, s.segment(x86::Seg::CS).selector,
        (unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.efer, s.halted,
        (unsigned long long)s.rflags, (unsigned long long)s.gpr[x86::k_rsp]);
    return 0;
}
