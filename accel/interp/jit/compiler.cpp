// Block compiler. Shape of the generated code (README.md has the details):
//
//   prologue: save RBX RBP R12 R13 R14; RBX = InterpreterImpl*, R12/R13 =
//   the read/write TLB rows for the CPL.
//   per instruction, either
//     inline host code: guest registers are read from and written to
//     CpuState::gpr through RBX; memory operands take an inline software-TLB
//     lookup and, on any miss, a cold path that runs the instruction's
//     interpreter handler instead; or
//     a handler call: RIP/next RIP/m_insn stored, call_handler thunk, fault
//     check, then the checks chain() makes (block end, IRQ check, shadow).
//   exits: RAX = instructions completed (| k_exit_fault), epilogue.
//
// Arithmetic flags: inline instructions compute them with the host's own
// ALU. They stay in the host's EFLAGS while the next instruction needs them
// (Jcc, SETcc, CMOVcc, ADC, INC...) and are stored into RFLAGS (clearing the
// lazy-flags record) only when something can observe them: a handler, a
// possible fault, a block exit. A backward pass over the block (flag
// liveness) drops them when the next flag writer overwrites them all first.
#include "accel/interp/jit/compiler.h"

#include <cstddef>
#include <functional>

#include "accel/interp/jit/emitter.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp::jit {

using namespace x86;

namespace {

constexpr uint8_t k_cpu = RBX;
constexpr uint8_t k_read_tlb = R12;
constexpr uint8_t k_write_tlb = R13;
constexpr int32_t k_arith_mask = 0x8d5; // CF PF AF ZF SF OF

static_assert(k_tlb_entries == 256, "the inline TLB index is the low byte of the page number");
static_assert(sizeof(TlbEntry) == 32 && offsetof(TlbEntry, vpage) == 0 && offsetof(TlbEntry, host) == 8);

bool canonical(uint64_t v) { return uint64_t(int64_t(v << 16) >> 16) == v; }

// What an instruction is compiled as, and what it does to the flags.
enum class Form : uint8_t {
    Handler,
    Nop,
    MovRR, // 88/89/8A/8B mod 3
    MovRImm, // B0-BF, C6/C7 mod 3
    AluRR, // 00-3B mod 3, 84/85
    AluRImm, // 80/81/83 mod 3, 04-3D acc, A8/A9, F6/F7 /0
    Lea,
    Movx, // MOVZX/MOVSX/MOVSXD mod 3
    IncDec, // FE/FF /0 /1 mod 3
    NotNeg, // F6/F7 /2 /3 mod 3
    Shift, // C0/C1/D0/D1/D2/D3 mod 3
    Imul, // 0F AF, 69, 6B mod 3
    Cmov, // 0F 40-4F mod 3
    Setcc, // 0F 90-9F mod 3
    Bswap,
    Jcc,
    Jmp,
    MovLoad, // 8A/8B memory
    MovStore, // 88/89 memory
    MovStoreImm, // C6/C7 memory
    AluLoad, // op r, [m]
    AluStore, // op [m], r / imm (RMW; CMP/TEST only read)
    MovxLoad,
    Push,
    Pop,
    Call,
    Ret,
};

struct Plan {
    Form form = Form::Handler;
    uint8_t op = 0; // ALU op 0-7 (8: TEST), shift kind, or condition code
    uint8_t size = 0; // operand size
    uint8_t src_size = 0; // MOVX source size
    bool sign = false; // MOVSX
    bool imm = false; // the source is the immediate
    bool acc = false; // accumulator form (destination RAX)
    bool reads_flags = false;
    bool writes_flags = false; // all six arithmetic flags
    bool observes = false; // may fault, call out or leave the block: flags must be in RFLAGS
};

class BlockCompiler {
public:
    BlockCompiler(const Layout& layout, const Thunks& thunks, const BlockInsn* insns, unsigned count, uint64_t rip)
        : L(layout)
        , T(thunks)
        , m_insns(insns)
        , m_count(count)
    {
        m_rip.resize(count + 1);
        m_rip[0] = rip;
        for (unsigned i = 0; i < count; i++)
            m_rip[i + 1] = m_rip[i] + insns[i].d.length;
    }

    std::vector<uint8_t> compile();

private:
    Plan plan(const DecodedInsn& d) const;
    bool plan_memory(const DecodedInsn& d, Plan& p) const;

    // Operands.
    Mem field(int32_t off) const { return Mem { k_cpu, k_no_host_reg, 0, off }; }
    Mem greg(unsigned r, unsigned size, const DecodedInsn& d) const
    {
        if (size == 1 && r >= 4 && r < 8 && !d.rex)
            return field(L.gpr + 8 * int32_t(r - 4) + 1); // AH, CH, DH, BH
        return field(L.gpr + 8 * int32_t(r));
    }
    void load_greg(unsigned size, uint8_t host, unsigned r, const DecodedInsn& d) { a.load(size, host, greg(r, size, d)); }
    // A result in `host` (32-bit results already zero-extended) to a guest register.
    void store_greg(unsigned size, unsigned r, const DecodedInsn& d, uint8_t host)
    {
        a.store(size == 4 ? 8 : size, greg(r, size, d), host);
    }
    void store_u64(int32_t off, uint64_t v)
    {
        if (int64_t(v) == int64_t(int32_t(v))) {
            a.store_imm32(8, field(off), uint32_t(v));
        } else {
            a.mov_imm(RAX, v);
            a.store(8, field(off), RAX);
        }
    }

    // Flags.
    void save_flags();
    void flush_flags()
    {
        if (m_dirty)
            save_flags();
    }
    void clobber_flags()
    {
        flush_flags();
        m_host_valid = false;
    }
    void ensure_host_flags();
    void produced_flags(unsigned i)
    {
        m_host_valid = true;
        m_dirty = m_live_after[i];
    }

    // Exits and cold code.
    void cold(std::function<void()> f) { m_cold.push_back(std::move(f)); }
    void exit_with(uint64_t value) // RAX = value, then the epilogue
    {
        a.mov_imm(RAX, value);
        m_epilogue_jumps.push_back(a.jmp());
    }
    void exit_checks(unsigned done);
    void emit_handler(unsigned i);
    void emit_instruction(unsigned i, const Plan& p);
    void emit_ea(const DecodedInsn& d, uint64_t next_rip);
    Label emit_tlb_lookup(unsigned size, bool write);
    void emit_memory(unsigned i, const Plan& p);
    void emit_alu_host(unsigned op, unsigned size, uint8_t dst, uint8_t src);

    const Layout& L;
    const Thunks& T;
    const BlockInsn* m_insns;
    unsigned m_count;
    std::vector<uint64_t> m_rip; // m_rip[i]: instruction i; m_rip[count]: after the block
    std::vector<bool> m_live_after;
    Emitter a;
    std::vector<std::function<void()>> m_cold;
    std::vector<Label> m_epilogue_jumps;
    bool m_host_valid = false; // host EFLAGS hold the guest's arithmetic flags
    bool m_dirty = false; // ... and RFLAGS does not (yet) while they are live
    bool m_eager = false; // no lazy-flags record is pending: RFLAGS is current unless dirty
    bool m_rip_set = false; // the last instruction stored RIP itself (a taken transfer)
};

Plan BlockCompiler::plan(const DecodedInsn& d) const
{
    Plan p;
    p.size = d.opsize;
    if (d.lock())
        return p;
    const unsigned op = d.op;
    const bool mem = d.is_mem();
    const bool flags_ok = L.flags_op >= 0;
    auto writer = [&](Form f) {
        if (!flags_ok)
            return;
        p.form = f;
        p.writes_flags = true;
    };
    auto reader = [&](Form f) {
        p.form = f;
        p.reads_flags = true;
    };
    if (mem)
        return plan_memory(d, p) ? p : Plan { Form::Handler, 0, d.opsize };
    if (op < 0x40 && (op & 7) < 6) {
        p.op = uint8_t((op >> 3) & 7);
        p.size = (op & 1) ? d.opsize : 1;
        if ((op & 7) >= 4) {
            p.imm = true;
            p.acc = true;
        }
        writer((op & 7) >= 4 ? Form::AluRImm : Form::AluRR);
        if (p.op == 2 || p.op == 3)
            p.reads_flags = true; // ADC, SBB
        return p;
    }
    switch (op) {
    case 0x80:
    case 0x81:
    case 0x83:
        p.op = d.reg & 7;
        p.size = op == 0x80 ? 1 : d.opsize;
        p.imm = true;
        writer(Form::AluRImm);
        p.reads_flags = p.op == 2 || p.op == 3;
        return p;
    case 0x84:
    case 0x85:
        p.op = 8;
        p.size = op == 0x84 ? 1 : d.opsize;
        writer(Form::AluRR);
        return p;
    case 0xa8:
    case 0xa9:
        p.op = 8;
        p.size = op == 0xa8 ? 1 : d.opsize;
        p.imm = true;
        p.acc = true;
        writer(Form::AluRImm);
        return p;
    case 0xf6:
    case 0xf7:
        p.size = op == 0xf6 ? 1 : d.opsize;
        if ((d.reg & 7) < 2) {
            p.op = 8;
            p.imm = true;
            writer(Form::AluRImm);
        } else if ((d.reg & 7) == 2) {
            p.op = 2;
            p.form = Form::NotNeg;
        } else if ((d.reg & 7) == 3) {
            p.op = 3;
            writer(Form::NotNeg);
        }
        return p;
    case 0x88:
    case 0x89:
    case 0x8a:
    case 0x8b:
        p.size = (op & 1) ? d.opsize : 1;
        p.form = Form::MovRR;
        return p;
    case 0xc6:
    case 0xc7:
        if (d.reg & 7)
            return p;
        p.size = op == 0xc6 ? 1 : d.opsize;
        p.form = Form::MovRImm;
        return p;
    case 0x8d:
        return p; // LEA with a register operand: #UD in the handler
    case 0x90:
        if (!(d.rex & 1) && !d.rep())
            p.form = Form::Nop;
        return p;
    case 0x11f:
        p.form = Form::Nop;
        return p;
    case 0x1b6:
    case 0x1b7:
    case 0x1be:
    case 0x1bf:
        p.form = Form::Movx;
        p.src_size = (op & 1) ? 2 : 1;
        p.sign = op >= 0x1be;
        return p;
    case 0x63:
        if (d.opsize == 8) {
            p.form = Form::Movx;
            p.src_size = 4;
            p.sign = true;
        }
        return p;
    case 0xfe:
    case 0xff:
        if ((d.reg & 7) < 2 && flags_ok) {
            p.size = op == 0xfe ? 1 : d.opsize;
            p.op = d.reg & 7;
            reader(Form::IncDec); // CF is kept
        }
        return p;
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        if (!flags_ok)
            return p;
        p.size = (op & 1) ? d.opsize : 1;
        p.op = d.reg & 7;
        const unsigned count = op <= 0xc1 ? unsigned(d.imm) & (p.size == 8 ? 0x3f : 0x1f) : op <= 0xd1 ? 1 : 0;
        p.form = Form::Shift;
        // SHL/SHR/SAR by a known non-zero count set every flag; rotates,
        // RCL/RCR and counts from CL keep some (or all) of them.
        if (op <= 0xd1 && count != 0 && p.op >= 4)
            p.writes_flags = true;
        else
            p.reads_flags = true;
        return p;
    }
    case 0x1af:
    case 0x69:
    case 0x6b:
        if (d.opsize != 1) {
            p.imm = op != 0x1af;
            writer(Form::Imul);
        }
        return p;
    case 0x1c8:
    case 0x1c9:
    case 0x1ca:
    case 0x1cb:
    case 0x1cc:
    case 0x1cd:
    case 0x1ce:
    case 0x1cf:
        if (d.opsize >= 4)
            p.form = Form::Bswap;
        return p;
    case 0xeb:
    case 0xe9:
        if (d.opsize != 2 && canonical(0)) {
            p.form = Form::Jmp;
            p.observes = true;
        }
        return p;
    default:
        break;
    }
    if (op >= 0xb0 && op <= 0xbf) {
        p.size = op < 0xb8 ? 1 : d.opsize;
        p.form = Form::MovRImm;
        return p;
    }
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f)) {
        if (d.opsize != 2 && flags_ok) {
            p.op = op & 0xf;
            reader(Form::Jcc);
            p.observes = true;
        }
        return p;
    }
    if (op >= 0x140 && op <= 0x14f && flags_ok && d.opsize != 1) {
        p.op = op & 0xf;
        reader(Form::Cmov);
        return p;
    }
    if (op >= 0x190 && op <= 0x19f && flags_ok) {
        p.op = op & 0xf;
        p.size = 1;
        reader(Form::Setcc);
        return p;
    }
    if (op >= 0x50 && op <= 0x57 && d.opsize == 8) {
        p.form = Form::Push;
        p.observes = true;
        return p;
    }
    if (op >= 0x58 && op <= 0x5f && d.opsize == 8) {
        p.form = Form::Pop;
        p.observes = true;
        return p;
    }
    if (op == 0xe8 && d.opsize == 8) {
        p.form = Form::Call;
        p.observes = true;
        return p;
    }
    if (op == 0xc3 && d.opsize == 8) {
        p.form = Form::Ret;
        p.observes = true;
        return p;
    }
    return p;
}

// Memory forms: the inline TLB path, with the handler as the cold path.
bool BlockCompiler::plan_memory(const DecodedInsn& d, Plan& p) const
{
    if (d.addrsize == 2)
        return false;
    const unsigned op = d.op;
    const bool flags_ok = L.flags_op >= 0;
    p.observes = true;
    if (op < 0x40 && (op & 7) < 4) {
        p.op = uint8_t((op >> 3) & 7);
        if (p.op == 2 || p.op == 3 || !flags_ok)
            return false;
        p.size = (op & 1) ? d.opsize : 1;
        p.form = (op & 2) ? Form::AluLoad : Form::AluStore;
        p.writes_flags = true;
        return true;
    }
    switch (op) {
    case 0x80:
    case 0x81:
    case 0x83:
        p.op = d.reg & 7;
        if (p.op == 2 || p.op == 3 || !flags_ok)
            return false;
        p.size = op == 0x80 ? 1 : d.opsize;
        p.imm = true;
        p.form = Form::AluStore;
        p.writes_flags = true;
        return true;
    case 0x84:
    case 0x85:
        if (!flags_ok)
            return false;
        p.op = 8;
        p.size = op == 0x84 ? 1 : d.opsize;
        p.form = Form::AluStore;
        p.writes_flags = true;
        return true;
    case 0xf6:
    case 0xf7:
        if ((d.reg & 7) >= 2 || !flags_ok)
            return false;
        p.op = 8;
        p.size = op == 0xf6 ? 1 : d.opsize;
        p.imm = true;
        p.form = Form::AluStore;
        p.writes_flags = true;
        return true;
    case 0x88:
    case 0x89:
        p.size = (op & 1) ? d.opsize : 1;
        p.form = Form::MovStore;
        return true;
    case 0x8a:
    case 0x8b:
        p.size = (op & 1) ? d.opsize : 1;
        p.form = Form::MovLoad;
        return true;
    case 0xc6:
    case 0xc7:
        if (d.reg & 7)
            return false;
        p.size = op == 0xc6 ? 1 : d.opsize;
        p.form = Form::MovStoreImm;
        return true;
    case 0x8d:
        if (d.opsize == 2)
            return false;
        p.form = Form::Lea;
        p.observes = false;
        return true;
    case 0x1b6:
    case 0x1b7:
    case 0x1be:
    case 0x1bf:
        p.form = Form::MovxLoad;
        p.src_size = (op & 1) ? 2 : 1;
        p.sign = op >= 0x1be;
        return true;
    case 0x63:
        if (d.opsize != 8)
            return false;
        p.form = Form::MovxLoad;
        p.src_size = 4;
        p.sign = true;
        return true;
    default:
        return false;
    }
}

void BlockCompiler::save_flags()
{
    a.pushfq();
    a.pop(RAX);
    a.alu_ri(4, 4, RAX, k_arith_mask); // and eax
    a.load(8, RCX, field(L.rflags));
    a.alu_ri(4, 8, RCX, ~k_arith_mask); // and rcx
    a.op_reg({ 0x09 }, 8, RAX, RCX); // or rcx, rax
    a.store(8, field(L.rflags), RCX);
    a.store_imm32(1, field(L.flags_op), 0);
    m_dirty = false;
    m_eager = true;
}

void BlockCompiler::ensure_host_flags()
{
    if (m_host_valid)
        return;
    if (!m_eager) {
        a.mov_rr(8, RDI, k_cpu);
        a.call_abs(T.materialize_flags);
        m_eager = true;
    }
    a.load(8, RAX, field(L.rflags));
    a.alu_ri(4, 4, RAX, k_arith_mask);
    a.push(RAX);
    a.popfq();
    m_host_valid = true;
}

void BlockCompiler::exit_checks(unsigned done)
{
    // What chain() checks after each instruction.
    a.load(1, RAX, field(L.block_end));
    a.op_mem({ 0x0a }, 1, RAX, field(L.check_irq)); // or al, [check_irq]
    a.op_mem({ 0x0a }, 1, RAX, field(L.new_shadow));
    Label l = a.jcc(0x5); // jnz
    cold([this, l, done] {
        a.bind(l);
        exit_with(done);
    });
}

void BlockCompiler::emit_handler(unsigned i)
{
    const BlockInsn& x = m_insns[i];
    clobber_flags();
    store_u64(L.rip, m_rip[i]);
    store_u64(L.next_rip, m_rip[i + 1]);
    a.mov_imm(RAX, reinterpret_cast<uint64_t>(&x.d));
    a.store(8, field(L.insn), RAX);
    a.mov_rr(8, RDI, k_cpu);
    a.mov_imm(RSI, reinterpret_cast<uint64_t>(&x));
    a.call_abs(T.call_handler);
    a.op_reg({ 0x85 }, 4, RAX, RAX); // test eax, eax
    Label fault = a.jcc(0x5);
    cold([this, fault, i] {
        a.bind(fault);
        exit_with(k_exit_fault | i);
    });
    exit_checks(i + 1);
    // The handler may have left a lazy-flags record; chain() stored RIP.
    m_eager = false;
    m_host_valid = false;
    m_dirty = false;
}

std::vector<uint8_t> BlockCompiler::compile()
{
    std::vector<Plan> plans(m_count);
    for (unsigned i = 0; i < m_count; i++)
        plans[i] = plan(m_insns[i].d);
    // Flag liveness, backwards: the flags are live after the block and
    // wherever something may observe them.
    m_live_after.assign(m_count, true);
    bool live = true;
    for (unsigned i = m_count; i-- > 0;) {
        m_live_after[i] = live;
        const Plan& p = plans[i];
        if (p.form == Form::Handler || p.reads_flags || p.observes)
            live = true;
        else if (p.writes_flags)
            live = false;
    }

    a.push(RBX);
    a.push(RBP);
    a.push(R12);
    a.push(R13);
    a.push(R14);
    a.mov_rr(8, k_cpu, RDI);
    a.mov_rr(8, k_read_tlb, RSI);
    a.mov_rr(8, k_write_tlb, RDX);
    for (unsigned i = 0; i < m_count; i++) {
        m_rip_set = false;
        if (plans[i].form == Form::Handler)
            emit_handler(i);
        else
            emit_instruction(i, plans[i]);
    }
    const Plan& last = plans[m_count - 1];
    flush_flags();
    if (last.form != Form::Handler && !m_rip_set)
        store_u64(L.rip, m_rip[m_count]);
    a.mov_imm(RAX, m_count);
    const uint32_t epilogue = a.size();
    a.pop(R14);
    a.pop(R13);
    a.pop(R12);
    a.pop(RBP);
    a.pop(RBX);
    a.ret();
    // Cold code may add more cold code (and epilogue jumps).
    for (size_t k = 0; k < m_cold.size(); k++) {
        auto f = std::move(m_cold[k]);
        f();
    }
    for (Label l : m_epilogue_jumps)
        a.bind_to(l, epilogue);
    return a.bytes();
}

void BlockCompiler::emit_instruction(unsigned i, const Plan&) { emit_handler(i); }

} // namespace

std::vector<uint8_t> compile_block(
    const Layout& layout, const Thunks& thunks, const BlockInsn* insns, unsigned count, uint64_t rip)
{
    return BlockCompiler(layout, thunks, insns, count, rip).compile();
}

} // namespace kiln::accel::interp::jit
