#include "tests/unit/accel/payloads.h"

#include <cstring>

#include <gtest/gtest.h>

namespace kiln::test {

using namespace x86;

namespace {

constexpr uint64_t k_flat_code32 = 0x00cf9a000000ffffull;
constexpr uint64_t k_flat_data = 0x00cf92000000ffffull;
constexpr uint64_t k_code64 = 0x00af9a000000ffffull;

void put64(std::vector<uint8_t>& v, size_t off, uint64_t x)
{
    if (v.size() < off + 8)
        v.resize(off + 8);
    std::memcpy(v.data() + off, &x, 8);
}

// GDT at 0x500, its pointer at 0x520, an empty IDT pointer at 0x530.
MemoryBlob gdt_blob()
{
    MemoryBlob b { 0x500, {} };
    put64(b.bytes, 0x00, 0);
    put64(b.bytes, 0x08, k_flat_code32);
    put64(b.bytes, 0x10, k_flat_data);
    put64(b.bytes, 0x18, k_code64);
    put64(b.bytes, 0x20, 0x0000000005000000ull | 0x1f); // limit 0x1f, base 0x500
    put64(b.bytes, 0x30, 0); // limit 0, base 0
    return b;
}

std::vector<MemoryBlob> page_table_blobs()
{
    MemoryBlob pml4 { 0x2000, {} }, pdpt { 0x3000, {} }, pd_low { 0x4000, {} }, pd_mmio { 0x5000, {} };
    put64(pml4.bytes, 0, 0x3000 | 0x3); // P | RW
    put64(pdpt.bytes, 0, 0x4000 | 0x3); // 0-1 GiB
    put64(pdpt.bytes, 3 * 8, 0x5000 | 0x3); // 3-4 GiB
    put64(pd_low.bytes, 0, 0x0 | 0x83); // 2 MiB page at 0: P | RW | PS
    put64(pd_mmio.bytes, 256 * 8, 0xe0000000ull | 0x93); // P | RW | PCD | PS
    return { pml4, pdpt, pd_low, pd_mmio };
}

// 32-bit interrupt gates to code selector 0x08 at 0x6000 + 8 * vector.
MemoryBlob idt_blob()
{
    MemoryBlob b { 0x6000, std::vector<uint8_t>(0x800, 0) };
    auto gate = [&](unsigned vector, uint32_t handler) {
        uint64_t g = (handler & 0xffffull) | (0x08ull << 16) | (0x8eull << 40) | (uint64_t(handler >> 16) << 48);
        put64(b.bytes, vector * 8, g);
    };
    gate(0x02, 0x1100); // NMI
    gate(0x20, 0x1100);
    gate(0x30, 0x1200);
    return b;
}

// ---- machine code (assembled with GNU as, listed as objdump shows it)
// clang-format off

const std::vector<uint8_t> k_real_mode_pio = {
    0xb8, 0x34, 0x12,                                   // 1000: mov ax,0x1234
    0xe7, 0x80,                                         // 1003: out 0x80,ax
    0xba, 0xf8, 0x03,                                   // 1005: mov dx,0x3f8
    0xb0, 0x4b,                                         // 1008: mov al,0x4b
    0xee,                                               // 100a: out dx,al
    0xbe, 0x00, 0x90,                                   // 100b: mov si,0x9000
    0xb9, 0x05, 0x00,                                   // 100e: mov cx,0x5
    0xfc,                                               // 1011: cld
    0xf3, 0x6e,                                         // 1012: rep outs dx,BYTE PTR ds:[si]
    0xbf, 0x00, 0x91,                                   // 1014: mov di,0x9100
    0xb9, 0x04, 0x00,                                   // 1017: mov cx,0x4
    0xba, 0xe0, 0x00,                                   // 101a: mov dx,0xe0
    0xf3, 0x6c,                                         // 101d: rep ins BYTE PTR es:[di],dx
    0x66, 0xa1, 0x00, 0x91,                             // 101f: mov eax,ds:0x9100
    0xf4,                                               // 1023: hlt
};

const std::vector<uint8_t> k_real_to_long_mode = {
    // real mode
    0xfa,                                               // 1000: cli
    0x0f, 0x01, 0x16, 0x20, 0x05,                       // 1001: lgdtw ds:0x520
    0x0f, 0x20, 0xc0,                                   // 1006: mov eax,cr0
    0x0c, 0x01,                                         // 1009: or al,0x1
    0x0f, 0x22, 0xc0,                                   // 100b: mov cr0,eax
    0xea, 0x13, 0x10, 0x08, 0x00,                       // 100e: jmp 0x8:0x1013
    // 32-bit protected mode
    0x66, 0xb8, 0x10, 0x00,                             // 1013: mov ax,0x10
    0x8e, 0xd8,                                         // 1017: mov ds,eax
    0x8e, 0xc0,                                         // 1019: mov es,eax
    0x8e, 0xd0,                                         // 101b: mov ss,eax
    0xbc, 0x00, 0x80, 0x00, 0x00,                       // 101d: mov esp,0x8000
    0xb0, 0x32,                                         // 1022: mov al,0x32
    0xe6, 0x81,                                         // 1024: out 0x81,al
    0x0f, 0x20, 0xe0,                                   // 1026: mov eax,cr4
    0x83, 0xc8, 0x20,                                   // 1029: or eax,0x20  (PAE)
    0x0f, 0x22, 0xe0,                                   // 102c: mov cr4,eax
    0xb8, 0x00, 0x20, 0x00, 0x00,                       // 102f: mov eax,0x2000
    0x0f, 0x22, 0xd8,                                   // 1034: mov cr3,eax
    0xb9, 0x80, 0x00, 0x00, 0xc0,                       // 1037: mov ecx,0xc0000080 (EFER)
    0x0f, 0x32,                                         // 103c: rdmsr
    0x0d, 0x00, 0x01, 0x00, 0x00,                       // 103e: or eax,0x100  (LME)
    0x0f, 0x30,                                         // 1043: wrmsr
    0x0f, 0x20, 0xc0,                                   // 1045: mov eax,cr0
    0x0d, 0x00, 0x00, 0x00, 0x80,                       // 1048: or eax,0x80000000  (PG)
    0x0f, 0x22, 0xc0,                                   // 104d: mov cr0,eax
    0xea, 0x57, 0x10, 0x00, 0x00, 0x18, 0x00,           // 1050: jmp 0x18:0x1057
    // 64-bit mode
    0xb0, 0x64,                                         // 1057: mov al,0x64
    0xe6, 0x81,                                         // 1059: out 0x81,al
    // 105b: movabs rax,0x1122334455667788
    0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
    0xbb, 0x10, 0x00, 0x00, 0xe0,                       // 1065: mov ebx,0xe0000010
    0x48, 0x89, 0x03,                                   // 106a: mov QWORD PTR [rbx],rax
    0x48, 0x8b, 0x0b,                                   // 106d: mov rcx,QWORD PTR [rbx]
    0x49, 0x89, 0xc7,                                   // 1070: mov r15,rax
    0xf4,                                               // 1073: hlt
};

const std::vector<uint8_t> k_protected_mode_mmio = {
    // 1000: mov DWORD PTR ds:0xe0000000,0xdeadbeef
    0xc7, 0x05, 0x00, 0x00, 0x00, 0xe0, 0xef, 0xbe, 0xad, 0xde,
    0xc6, 0x05, 0x08, 0x00, 0x00, 0xe0, 0x5a,           // 100a: mov BYTE PTR ds:0xe0000008,0x5a
    0xa1, 0x00, 0x00, 0x00, 0xe0,                       // 1011: mov eax,ds:0xe0000000
    0x0f, 0xb6, 0x1d, 0x08, 0x00, 0x00, 0xe0,           // 1016: movzx ebx,BYTE PTR ds:0xe0000008
    0x66, 0x8b, 0x0d, 0x04, 0x00, 0x00, 0xe0,           // 101d: mov cx,WORD PTR ds:0xe0000004
    0xf4,                                               // 1024: hlt
};

const std::vector<uint8_t> k_interrupt_idt = {
    0x31, 0xdb,                                         // 1000: xor ebx,ebx
    0xfb,                                               // 1002: sti
    0x81, 0xfb, 0x11, 0x11, 0x00, 0x00,                 // 1003: cmp ebx,0x1111
    0x75, 0xf8,                                         // 1009: jne 1003
    0xfa,                                               // 100b: cli
    0xf4,                                               // 100c: hlt
};

// KVM's instruction emulator (which this build machine's nested KVM uses
// for everything privileged) has no protected-mode IRET, so the
// protected-mode handlers drop their frame and jump on instead of
// returning; real_mode_irq covers IRET through the real-mode IVT.
const std::vector<uint8_t> k_interrupt_handler = {      // vector 0x20
    0xbb, 0x11, 0x11, 0x00, 0x00,                       // 1100: mov ebx,0x1111
    0x46,                                               // 1105: inc esi
    0x83, 0xc4, 0x0c,                                   // 1106: add esp,0xc  (drop EIP, CS, EFLAGS)
    0xe9, 0xfd, 0xfe, 0xff, 0xff,                       // 1109: jmp 100b     (cli; hlt)
};

const std::vector<uint8_t> k_hlt_timer = {
    0x31, 0xff,                                         // 1000: xor edi,edi
    0xfb,                                               // 1002: sti
    0xf4,                                               // 1003: hlt  (woken by the timer)
    0xfa,                                               // 1004: cli
    0xf4,                                               // 1005: hlt  (nothing can wake it)
};

const std::vector<uint8_t> k_timer_handler = {          // vector 0x30
    0xbf, 0x22, 0x22, 0x00, 0x00,                       // 1200: mov edi,0x2222
    0x83, 0xc4, 0x0c,                                   // 1205: add esp,0xc  (drop EIP, CS, EFLAGS)
    0xe9, 0xf7, 0xfd, 0xff, 0xff,                       // 1208: jmp 1004     (cli; hlt)
};

const std::vector<uint8_t> k_nmi_wait = {               // same layout as k_interrupt_idt, no STI
    0x31, 0xdb,                                         // 1000: xor ebx,ebx
    0x90,                                               // 1002: nop
    0x81, 0xfb, 0x11, 0x11, 0x00, 0x00,                 // 1003: cmp ebx,0x1111
    0x75, 0xf8,                                         // 1009: jne 1003
    0xfa,                                               // 100b: cli
    0xf4,                                               // 100c: hlt
};

const std::vector<uint8_t> k_real_mode_irq = {
    0x31, 0xdb,                                         // 1000: xor bx,bx
    0xfb,                                               // 1002: sti
    0x81, 0xfb, 0x11, 0x11,                             // 1003: cmp bx,0x1111
    0x75, 0xfa,                                         // 1007: jne 1003
    0xfa,                                               // 1009: cli
    0xf4,                                               // 100a: hlt
};

const std::vector<uint8_t> k_real_mode_handler = {      // vector 0x20 through the IVT
    0xbb, 0x11, 0x11,                                   // 1100: mov bx,0x1111
    0x46,                                               // 1103: inc si
    0xcf,                                               // 1104: iret
};

const std::vector<uint8_t> k_triple_fault = {
    0x0f, 0x01, 0x1e, 0x30, 0x05,                       // 1000: lidtw ds:0x530  (limit 0)
    0xcc,                                               // 1005: int3 -> #GP -> #DF -> triple fault
};

const std::vector<uint8_t> k_triple_fault_pm = {
    0x0f, 0x01, 0x1d, 0x30, 0x05, 0x00, 0x00,           // 1000: lidt ds:0x530  (limit 0)
    0x0f, 0x0b,                                         // 1007: ud2 -> #GP -> #DF -> triple fault
};

const std::vector<uint8_t> k_triple_fault_lm = {
    0x0f, 0x01, 0x1c, 0x25, 0x30, 0x05, 0x00, 0x00,     // 1000: lidt [0x530]  (limit 0)
    0x0f, 0x0b,                                         // 1008: ud2 -> #GP -> #DF -> triple fault
};

const std::vector<uint8_t> k_i8042_reset = {
    0xb0, 0xfe,                                         // 1000: mov al,0xfe
    0xe6, 0x64,                                         // 1002: out 0x64,al
    0xeb, 0xfe,                                         // 1004: jmp 1004  (until the board stops the CPU)
};
// clang-format on

std::vector<PioWrite> bytes_to_port(uint16_t port, std::string_view s)
{
    std::vector<PioWrite> out;
    for (char c : s)
        out.push_back({ port, 1, uint8_t(c) });
    return out;
}

std::vector<Payload> build_payloads()
{
    std::vector<Payload> all;
    const uint64_t k_reset_cr0 = k_cr0_et | k_cr0_cd | k_cr0_nw;
    {
        Payload p;
        p.name = "real_mode_pio";
        p.description = "real mode: OUT imm8/DX, REP OUTSB and REP INSB";
        p.memory = { gdt_blob(), { 0x1000, k_real_mode_pio }, { 0x9000, { 'h', 'e', 'l', 'l', 'o' } } };
        p.initial = real_mode_state(0x1000);
        p.expected = { { { k_rax, 0x04030201 }, { k_rcx, 0 }, { k_rdx, 0xe0 }, { k_rsi, 0x9005 }, { k_rdi, 0x9104 },
                           { k_rbx, 0 }, { k_rsp, 0x8000 } },
            0x1024, k_reset_cr0, 0, 0, 0, 0, 0, 0, false, false };
        p.pio_writes = { { 0x80, 2, 0x1234 }, { 0x3f8, 1, 'K' } };
        for (auto& w : bytes_to_port(0x3f8, "hello"))
            p.pio_writes.push_back(w);
        p.memory_after = { { 0x9100, { 1, 2, 3, 4 } } };
        all.push_back(p);
    }
    {
        Payload p;
        p.name = "real_to_long_mode";
        p.description = "real mode -> protected mode -> long mode with paging, 64-bit MMIO";
        p.memory = { gdt_blob(), { 0x1000, k_real_to_long_mode } };
        for (auto& b : page_table_blobs())
            p.memory.push_back(b);
        p.initial = real_mode_state(0x1000);
        p.expected = { { { k_rax, 0x1122334455667788 }, { k_rcx, 0x1122334455667788 }, { k_rbx, 0xe0000010 },
                           { k_rdx, 0 }, { k_rsp, 0x8000 }, { k_r15, 0x1122334455667788 } },
            0x1074, k_reset_cr0 | k_cr0_pe | k_cr0_pg, 0x2000, k_cr4_pae, k_efer_lme | k_efer_lma, 0x18, 0x10, 0x10,
            true, false };
        p.pio_writes = { { 0x81, 1, 0x32 }, { 0x81, 1, 0x64 } };
        p.mmio = { { true, 0xe0000010, 8, 0x1122334455667788 }, { false, 0xe0000010, 8, 0x1122334455667788 } };
        all.push_back(p);
    }
    {
        Payload p;
        p.name = "protected_mode_mmio";
        p.description = "32-bit protected mode: 4-, 1- and 2-byte MMIO reads and writes";
        p.memory = { gdt_blob(), { 0x1000, k_protected_mode_mmio } };
        p.initial = flat_protected_mode_state(0x1000);
        p.expected = { { { k_rax, 0xdeadbeef }, { k_rbx, 0x5a }, { k_rcx, 0x1514 } }, 0x1025, k_cr0_pe | k_cr0_et, 0, 0,
            0, 0x08, 0x10, 0x10, false, false };
        p.mmio = { { true, 0xe0000000, 4, 0xdeadbeef }, { true, 0xe0000008, 1, 0x5a },
            { false, 0xe0000000, 4, 0xdeadbeef }, { false, 0xe0000008, 1, 0x5a }, { false, 0xe0000004, 2, 0x1514 } };
        all.push_back(p);
    }
    {
        Payload p;
        p.name = "interrupt_idt";
        p.description = "an external interrupt (vector 0x20) delivered through the IDT once IF is set";
        p.memory = { gdt_blob(), idt_blob(), { 0x1000, k_interrupt_idt }, { 0x1100, k_interrupt_handler },
            { 0x1200, k_timer_handler } };
        p.initial = flat_protected_mode_state(0x1000);
        p.irqs_at_start = { 0x20 };
        p.expected = { { { k_rbx, 0x1111 }, { k_rsi, 1 }, { k_rsp, 0x8000 } }, 0x100d, k_cr0_pe | k_cr0_et, 0, 0, 0,
            0x08, 0x10, 0x10, false, false };
        p.acked = { 0x20 };
        p.memory_after = { { 0x7ff8, { 0x08, 0, 0, 0 } } }; // CS of the interrupted code in the frame
        all.push_back(p);
    }
    {
        Payload p;
        p.name = "nmi_idt";
        p.description = "an NMI delivered through IDT gate 2 while IF=0 (the main loop never sets IF)";
        p.memory = { gdt_blob(), idt_blob(), { 0x1000, k_nmi_wait }, { 0x1100, k_interrupt_handler } };
        p.initial = flat_protected_mode_state(0x1000);
        p.nmi_at_start = true;
        p.expected = { { { k_rbx, 0x1111 }, { k_rsi, 1 }, { k_rsp, 0x8000 } }, 0x100d, k_cr0_pe | k_cr0_et, 0, 0, 0,
            0x08, 0x10, 0x10, false, false };
        p.nmis_acked = 1;
        p.memory_after = { { 0x7ff8, { 0x08, 0, 0, 0 } } }; // CS of the interrupted code in the frame
        all.push_back(p);
    }
    {
        Payload p;
        p.name = "real_mode_irq";
        p.description = "real mode: an external interrupt (vector 0x20) through the IVT, handler returns with IRET";
        MemoryBlob ivt { 0x80, { 0x00, 0x11, 0x00, 0x00 } }; // vector 0x20 -> 0000:1100
        p.memory = { ivt, { 0x1000, k_real_mode_irq }, { 0x1100, k_real_mode_handler } };
        p.initial = real_mode_state(0x1000);
        p.irqs_at_start = { 0x20 };
        p.expected = { { { k_rbx, 0x1111 }, { k_rsi, 1 }, { k_rsp, 0x8000 } }, 0x100b, k_reset_cr0, 0, 0, 0, 0, 0, 0,
            false, false };
        p.acked = { 0x20 };
        all.push_back(p);
    }
    {
        Payload p;
        p.name = "hlt_timer";
        p.description = "STI; HLT woken by a timer interrupt (vector 0x30), then CLI; HLT stops";
        p.memory = { gdt_blob(), idt_blob(), { 0x1000, k_hlt_timer }, { 0x1100, k_interrupt_handler },
            { 0x1200, k_timer_handler } };
        p.initial = flat_protected_mode_state(0x1000);
        p.timer_vector = 0x30;
        p.expected = { { { k_rdi, 0x2222 }, { k_rsp, 0x8000 } }, 0x1006, k_cr0_pe | k_cr0_et, 0, 0, 0, 0x08, 0x10, 0x10,
            false, false };
        p.acked = { 0x30 };
        // The frame: EIP after the first HLT, CS, EFLAGS (IF, ZF, PF from XOR).
        p.memory_after = { { 0x7ff4, { 0x04, 0x10, 0, 0, 0x08, 0, 0, 0, 0x46, 0x02, 0, 0 } } };
        all.push_back(p);
    }
    // Triple faults: LIDT of an empty IDT, then an exception; the CPU asks
    // for a reset and its end state is not defined.
    auto triple_fault = [&](const char* name, const char* mode, std::vector<MemoryBlob> memory, CpuState initial) {
        Payload p;
        p.name = name;
        p.description = std::string(mode) + ": LIDT of an empty IDT then an exception: triple fault, reset";
        p.memory = std::move(memory);
        p.initial = initial;
        p.end = PayloadEnd::Reset;
        p.check_cpu = false;
        p.resets = 1;
        all.push_back(p);
    };
    triple_fault(
        "triple_fault", "real mode (INT3)", { gdt_blob(), { 0x1000, k_triple_fault } }, real_mode_state(0x1000));
    triple_fault("triple_fault_pm", "protected mode (UD2)", { gdt_blob(), { 0x1000, k_triple_fault_pm } },
        flat_protected_mode_state(0x1000));
    std::vector<MemoryBlob> lm = page_table_blobs();
    lm.push_back(gdt_blob());
    lm.push_back({ 0x1000, k_triple_fault_lm });
    triple_fault("triple_fault_lm", "64-bit mode (UD2)", lm, long_mode_state(0x1000));
    {
        Payload p;
        p.name = "i8042_reset";
        p.description = "reset through the keyboard controller (OUT 0xfe to port 0x64); the host kicks the CPU";
        p.memory = { gdt_blob(), { 0x1000, k_i8042_reset } };
        p.initial = real_mode_state(0x1000);
        p.end = PayloadEnd::Kicked;
        p.expected = { { { k_rax, 0xfe } }, 0x1004, k_reset_cr0, 0, 0, 0, 0, 0, 0, false, false };
        p.pio_writes = { { 0x64, 1, 0xfe } };
        p.resets = 1;
        all.push_back(p);
    }
    return all;
}

} // namespace

x86::CpuState real_mode_state(uint16_t ip)
{
    CpuState s;
    reset_cpu_state(s, ResetKind::PowerOn, 0x600, true);
    s.gpr[k_rdx] = 0;
    SegmentCache& cs = s.segment(Seg::CS);
    cs.selector = 0;
    cs.base = 0;
    s.rip = ip;
    s.gpr[k_rsp] = 0x8000;
    return s;
}

x86::CpuState flat_protected_mode_state(uint32_t eip)
{
    CpuState s;
    reset_cpu_state(s, ResetKind::PowerOn, 0x600, true);
    s.gpr[k_rdx] = 0;
    s.cr0 = k_cr0_pe | k_cr0_et;
    for (auto& seg : s.seg)
        seg = { 0x10, uint16_t(k_seg_g | k_seg_db | k_seg_p | k_seg_s | 0x3), 0xffffffff, 0 };
    s.segment(Seg::CS) = { 0x08, uint16_t(k_seg_g | k_seg_db | k_seg_p | k_seg_s | 0xb), 0xffffffff, 0 };
    s.gdtr = { 0x500, 0x1f };
    s.idtr = { 0x6000, 0x7ff };
    s.rip = eip;
    s.gpr[k_rsp] = 0x8000;
    return s;
}

x86::CpuState long_mode_state(uint64_t rip)
{
    CpuState s = flat_protected_mode_state(uint32_t(rip));
    s.rip = rip;
    s.cr0 |= k_cr0_pg;
    s.cr4 |= k_cr4_pae;
    s.cr3 = 0x2000;
    s.efer |= k_efer_lme | k_efer_lma;
    s.segment(Seg::CS) = { 0x18, uint16_t(k_seg_g | k_seg_l | k_seg_p | k_seg_s | 0xb), 0xffffffff, 0 };
    return s;
}

const std::vector<Payload>& all_payloads()
{
    static const std::vector<Payload> payloads = build_payloads();
    return payloads;
}

const Payload& payload(std::string_view name)
{
    for (auto& p : all_payloads())
        if (p.name == name)
            return p;
    ADD_FAILURE() << "no payload named " << name;
    return all_payloads().front();
}

std::unique_ptr<FakeVcpuHost> make_payload_host(const Payload& p)
{
    auto mem = hw::GuestMemory::create(k_payload_ram_bytes, k_payload_ram_bytes);
    if (!mem) {
        ADD_FAILURE() << mem.error().message();
        return nullptr;
    }
    auto host = std::make_unique<FakeVcpuHost>(std::move(mem).value());
    for (auto& b : p.memory) {
        auto r = host->memory().write(b.gpa, b.bytes.data(), b.bytes.size());
        EXPECT_TRUE(r.ok()) << p.name << ": cannot load memory at " << b.gpa;
    }
    for (uint8_t v : p.irqs_at_start)
        host->raise_interrupt(v);
    if (p.timer_vector)
        host->arm_timer(*p.timer_vector);
    if (p.nmi_at_start)
        host->raise_nmi();
    return host;
}

void check_payload_result(const Payload& p, FakeVcpuHost& host, const x86::CpuState& s)
{
    SCOPED_TRACE("payload " + p.name);
    EXPECT_EQ(host.pio_writes, p.pio_writes);
    EXPECT_EQ(host.mmio, p.mmio);
    EXPECT_EQ(host.acked, p.acked);
    EXPECT_EQ(host.resets, p.resets);
    EXPECT_EQ(host.nmis_acked, p.nmis_acked);
    for (auto& b : p.memory_after) {
        std::vector<uint8_t> got(b.bytes.size());
        ASSERT_TRUE(host.memory().read(b.gpa, got.data(), got.size()).ok());
        EXPECT_EQ(got, b.bytes) << "memory at 0x" << std::hex << b.gpa;
    }
    if (!p.check_cpu)
        return;
    const ExpectedCpu& e = p.expected;
    for (auto& [reg, value] : e.gprs)
        EXPECT_EQ(s.gpr[reg], value) << "GPR " << unsigned(reg);
    EXPECT_EQ(s.rip, e.rip);
    EXPECT_EQ(s.cr0, e.cr0);
    EXPECT_EQ(s.cr3, e.cr3);
    EXPECT_EQ(s.cr4, e.cr4);
    EXPECT_EQ(s.efer, e.efer);
    EXPECT_EQ(s.segment(Seg::CS).selector, e.cs);
    EXPECT_EQ(s.segment(Seg::SS).selector, e.ss);
    EXPECT_EQ(s.segment(Seg::DS).selector, e.ds);
    EXPECT_EQ((s.segment(Seg::CS).attr & k_seg_l) != 0, e.cs_long);
    EXPECT_EQ((s.rflags & k_flag_if) != 0, e.interrupts_enabled);
}

void expect_same_architectural_state(const x86::CpuState& a, const x86::CpuState& b)
{
    for (unsigned i = 0; i < k_gpr_count; i++)
        EXPECT_EQ(a.gpr[i], b.gpr[i]) << "GPR " << i;
    EXPECT_EQ(a.rip, b.rip);
    // Arithmetic flags plus IF and DF. AF is left out: logic and shift
    // instructions leave it undefined, and the CPU and the interpreter
    // differ there (the boot payload ends with AF=1 under KVM, 0 interpreted).
    uint64_t mask = (k_flags_arith & ~k_flag_af) | k_flag_if | k_flag_df;
    EXPECT_EQ(a.rflags & mask, b.rflags & mask);
    for (unsigned i = 0; i < k_seg_count; i++) {
        EXPECT_EQ(a.seg[i].selector, b.seg[i].selector) << "segment " << i;
        EXPECT_EQ(a.seg[i].base, b.seg[i].base) << "segment " << i;
        EXPECT_EQ(a.seg[i].limit, b.seg[i].limit) << "segment " << i;
        // The accessed bit is set by hardware on load; compare the rest.
        EXPECT_EQ(a.seg[i].attr | k_seg_accessed, b.seg[i].attr | k_seg_accessed) << "segment " << i;
    }
    EXPECT_EQ(a.gdtr.base, b.gdtr.base);
    EXPECT_EQ(a.gdtr.limit, b.gdtr.limit);
    EXPECT_EQ(a.idtr.base, b.idtr.base);
    EXPECT_EQ(a.idtr.limit, b.idtr.limit);
    EXPECT_EQ(a.cr0, b.cr0);
    EXPECT_EQ(a.cr3, b.cr3);
    EXPECT_EQ(a.cr4, b.cr4);
    EXPECT_EQ(a.efer, b.efer);
}

} // namespace kiln::test
