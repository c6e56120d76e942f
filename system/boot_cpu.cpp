#include "system/boot_cpu.h"

namespace kiln::system {

using namespace accel::x86;

namespace {
SegmentCache flat(uint16_t selector, uint16_t attr)
{
    SegmentCache s;
    s.selector = selector;
    s.attr = attr;
    s.limit = 0xffffffff;
    s.base = 0;
    return s;
}
} // namespace

void apply_boot_setup(const hw::BootCpuSetup& setup, CpuState& cpu)
{
    bool long_mode = setup.mode == hw::BootCpuSetup::Mode::Long64;
    // Code: execute/read, accessed; data: read/write, accessed.
    uint16_t code_attr = 0x0b | k_seg_s | k_seg_p | k_seg_g | (long_mode ? k_seg_l : k_seg_db);
    uint16_t data_attr = 0x03 | k_seg_s | k_seg_p | k_seg_g | k_seg_db;
    cpu.segment(Seg::CS) = flat(setup.code_selector, code_attr);
    for (Seg s : {Seg::DS, Seg::ES, Seg::SS, Seg::FS, Seg::GS})
        cpu.segment(s) = flat(setup.data_selector, data_attr);
    // A busy TSS and an unusable LDT: what VMX entry (and so KVM) needs.
    cpu.tr = SegmentCache{0, uint16_t(0x0b | k_seg_p), 0x67, 0};
    cpu.ldtr = SegmentCache{0, uint16_t(0x02 | k_seg_p), 0xffff, 0};
    cpu.gdtr = {setup.gdt_base, setup.gdt_limit};
    cpu.idtr = {0, 0};
    cpu.rflags = k_flag_fixed1; // interrupts off
    cpu.rip = setup.entry;
    for (auto& r : cpu.gpr)
        r = 0;
    cpu.gpr[k_rsi] = setup.rsi;
    cpu.gpr[k_rbx] = setup.rbx;
    cpu.cr0 = k_cr0_pe | k_cr0_et | (long_mode ? k_cr0_pg : 0);
    cpu.cr3 = long_mode ? setup.cr3 : 0;
    cpu.cr4 = long_mode ? k_cr4_pae : 0;
    cpu.efer = long_mode ? (k_efer_lme | k_efer_lma) : 0;
    cpu.halted = false;
}

} // namespace kiln::system
