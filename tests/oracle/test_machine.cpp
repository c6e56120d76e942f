#include "tests/oracle/test_machine.h"

#include <cstdio>
#include <cstring>

namespace kiln::oracle {

using namespace accel::x86;

FakeHost::FakeHost(uint64_t ram_bytes)
{
    auto mem = hw::GuestMemory::create(ram_bytes, ram_bytes);
    if (mem.ok())
        m_mem = std::move(mem).value();
}

uint32_t FakeHost::pio_read(uint16_t port, unsigned size) { return size == 4 ? 0xffffffff : (1u << (8 * size)) - 1; }

void FakeHost::pio_write(uint16_t port, unsigned size, uint32_t value) { pio_writes.push_back({ port, size, value }); }

uint64_t FakeHost::mmio_read(uint64_t gpa, unsigned size) { return size == 8 ? ~0ull : (1ull << (8 * size)) - 1; }

void FakeHost::mmio_write(uint64_t gpa, unsigned size, uint64_t value) { mmio_writes.push_back({ gpa, value }); }

uint8_t FakeHost::acknowledge_interrupt()
{
    uint8_t v = irqs.front();
    irqs.pop_front();
    return v;
}

bool FakeHost::wait_for_interrupt()
{
    halts++;
    if (on_halt)
        return on_halt(*this);
    return !irqs.empty() || nmi;
}

void FakeHost::write(uint64_t gpa, const std::vector<uint8_t>& bytes)
{
    std::memcpy(ram(gpa), bytes.data(), bytes.size());
}

static void put64(FakeHost& h, uint64_t gpa, uint64_t v) { std::memcpy(h.ram(gpa), &v, 8); }

void setup_long_mode(accel::interp::Interpreter& cpu, FakeHost& host, unsigned cpl)
{
    // GDT.
    put64(host, k_gdt + 0x00, 0);
    put64(host, k_gdt + 0x08, 0x00cf9b000000ffffull); // 32-bit code, DPL 0
    put64(host, k_gdt + 0x10, 0x00209b0000000000ull); // 64-bit code, DPL 0
    put64(host, k_gdt + 0x18, 0x00cf93000000ffffull); // data, DPL 0
    put64(host, k_gdt + 0x20, 0x00cffb000000ffffull); // 32-bit code, DPL 3
    put64(host, k_gdt + 0x28, 0x00cff3000000ffffull); // data, DPL 3
    put64(host, k_gdt + 0x30, 0x0020fb0000000000ull); // 64-bit code, DPL 3
    put64(host, k_gdt + 0x38, 0);
    uint64_t tss_lo = 0x67 | ((k_tss & 0xffffff) << 16) | (0x89ull << 40) | ((k_tss >> 24) << 56);
    put64(host, k_gdt + 0x40, tss_lo);
    put64(host, k_gdt + 0x48, k_tss >> 32);
    // TSS: RSP0, IST1 (both the kernel stack), no I/O bitmap.
    std::memset(host.ram(k_tss), 0, 104);
    put64(host, k_tss + 4, k_kernel_stack);
    put64(host, k_tss + 0x24, k_kernel_stack);
    uint16_t iomap = 104;
    std::memcpy(host.ram(k_tss + 102), &iomap, 2);
    // IDT: interrupt gates to the stubs.
    for (unsigned v = 0; v < 256; v++) {
        uint64_t target = k_stubs + v * 16;
        uint64_t lo
            = (target & 0xffff) | (uint64_t(k_sel_code64) << 16) | (0xeeull << 40) | (((target >> 16) & 0xffff) << 48);
        put64(host, k_idt + v * 16, lo);
        put64(host, k_idt + v * 16 + 8, target >> 32);
        std::memset(host.ram(target), 0xf4, 16);
    }
    // Page tables: PML4[0] -> PDPT[0] -> PD with 512 x 2 MiB user pages.
    std::memset(host.ram(k_pml4), 0, 3 * 4096);
    put64(host, k_pml4, (k_pml4 + 0x1000) | 7);
    put64(host, k_pml4 + 0x1000, (k_pml4 + 0x2000) | 7);
    for (unsigned i = 0; i < 512; i++)
        put64(host, k_pml4 + 0x2000 + i * 8, (uint64_t(i) << 21) | 0x87);

    CpuState& s = cpu.state();
    s.cr0 = k_cr0_pe | k_cr0_et | k_cr0_ne | k_cr0_wp | k_cr0_pg | k_cr0_mp;
    s.cr3 = k_pml4;
    s.cr4 = k_cr4_pae | k_cr4_osfxsr | k_cr4_osxmmexcpt | k_cr4_pge;
    s.efer = k_efer_lme | k_efer_lma | k_efer_sce | k_efer_nxe;
    s.gdtr = { k_gdt, 0x4f };
    s.idtr = { k_idt, 0xfff };
    s.tr = { k_sel_tss, 0x8b, 0x67, k_tss };
    s.ldtr = {};
    auto seg = [](uint16_t sel, uint16_t attr) {
        SegmentCache c;
        c.selector = sel;
        c.attr = attr;
        c.limit = 0xffffffff;
        c.base = 0;
        return c;
    };
    if (cpl == 3) {
        s.segment(Seg::CS) = seg(k_sel_user_code64, 0xa0fb);
        for (Seg r : { Seg::SS, Seg::DS, Seg::ES, Seg::FS, Seg::GS })
            s.segment(r) = seg(k_sel_user_data, 0xc0f3);
    } else {
        s.segment(Seg::CS) = seg(k_sel_code64, 0xa09b);
        for (Seg r : { Seg::SS, Seg::DS, Seg::ES, Seg::FS, Seg::GS })
            s.segment(r) = seg(k_sel_data, 0xc093);
    }
    s.rflags = 0x202;
    s.fpu.fcw = 0x37f;
    s.fpu.mxcsr = 0x1f80;
}

int delivered_vector(const CpuState& s)
{
    if (s.rip >= k_stubs && s.rip < k_stubs + 256 * 16)
        return int((s.rip - k_stubs) / 16);
    return -1;
}

std::unique_ptr<accel::interp::Interpreter> make_interpreter(FakeHost& host, const char* model_name)
{
    auto model = CpuModel::by_name(model_name);
    if (!model.ok()) {
        std::fprintf(stderr, "%s\n", model.error().message().c_str());
        return nullptr;
    }
    auto cpu = accel::interp::Interpreter::create(host, model.value());
    if (!cpu.ok()) {
        std::fprintf(stderr, "%s\n", cpu.error().message().c_str());
        return nullptr;
    }
    return std::move(cpu).value();
}

} // namespace kiln::oracle
