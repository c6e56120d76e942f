#include "accel/interp/jit/plan.h"

namespace kiln::accel::interp::jit {

namespace {

// Memory forms: the inline TLB path, with the handler as the cold path.
bool plan_memory(const DecodedInsn& d, Plan& p, bool flags_ok)
{
    if (d.addrsize == 2)
        return false;
    const unsigned op = d.op;
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

} // namespace

Plan plan_instruction(const DecodedInsn& d, bool flags_ok)
{
    Plan p;
    p.size = d.opsize;
    if (d.lock())
        return p;
    const unsigned op = d.op;
    const bool mem = d.is_mem();
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
    if (op == 0x11f) { // hint NOP, whatever its operand
        p.form = Form::Nop;
        return p;
    }
    if (mem)
        return plan_memory(d, p, flags_ok) ? p : Plan { Form::Handler, 0, d.opsize };
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
            p.form = Form::IncDec; // CF is kept
            p.keeps_flags = true;
        } else if (op == 0xff && d.opsize != 2 && ((d.reg & 7) == 2 || (d.reg & 7) == 4)) {
            // Near indirect CALL/JMP: 64-bit in 64-bit mode (66 truncates, as exec_control does).
            p.form = (d.reg & 7) == 2 ? Form::CallInd : Form::JmpInd;
            p.observes = true;
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
        else if (p.op == 2 || p.op == 3)
            p.reads_flags = true; // RCL/RCR rotate CF in
        else
            p.keeps_flags = true;
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
        if (d.opsize != 2) {
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

} // namespace kiln::accel::interp::jit
