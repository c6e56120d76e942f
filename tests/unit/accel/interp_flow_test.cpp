// Random straight-line sequences of register-form ALU, shift, INC/DEC,
// IMUL, TEST/CMP, SETcc, CMOVcc, short forward Jcc and JMP/CALL over an
// instruction, run natively and in the interpreter. Single-instruction oracle cases cannot see the block
// build's flag liveness (handlers that skip dead flags) or the compare +
// branch fusion: here flags flow between instructions of one block, so a
// handler that dropped a flag something still reads changes the outcome.
// JMP/CALL targets in the same page continue the block (build_block()).
#include <array>
#include <string>

#include <gtest/gtest.h>

#include "tests/oracle/generators.h"
#include "tests/oracle/oracle.h"

using namespace kiln::oracle;

namespace {

constexpr uint64_t k_af = 1u << 4;

// Registers the sequences may use: everything but RSP.
unsigned pick_reg(Rng& rng)
{
    unsigned r = rng.below(15);
    return r >= 4 ? r + 1 : r;
}

struct Emitter {
    Rng& rng;
    std::vector<uint8_t>& code;

    // Prefixes and REX for a reg,rm instruction of `size` bytes.
    void head(unsigned size, unsigned reg, unsigned rm)
    {
        if (size == 2)
            code.push_back(0x66);
        uint8_t rex = uint8_t(0x40 | (size == 8 ? 8 : 0) | ((reg & 8) ? 4 : 0) | ((rm & 8) ? 1 : 0));
        // Byte forms without REX use AH..BH for 4-7; with an empty REX they
        // are SPL..DIL (never SPL: RSP stays put).
        if (rex != 0x40 || (size == 1 && reg != 4 && rm != 4 && rng.below(2)))
            code.push_back(rex);
    }
    void modrm(unsigned reg, unsigned rm) { code.push_back(uint8_t(0xc0 | ((reg & 7) << 3) | (rm & 7))); }
    unsigned size() { return (unsigned[]) { 1, 2, 4, 8, 4, 8 }[rng.below(6)]; }
    unsigned byte_reg() { return rng.below(8); } // no REX needed either way (RSP's 4 is AH or SPL)

    // op r/m, r for ALU op a (0-7) or TEST (a = 8): writes every flag.
    void alu_rr(unsigned a)
    {
        unsigned s = size();
        unsigned reg = s == 1 ? byte_reg() : pick_reg(rng), rm = s == 1 ? byte_reg() : pick_reg(rng);
        head(s, reg, rm);
        code.push_back(uint8_t(a == 8 ? (s == 1 ? 0x84 : 0x85) : a * 8 + (s == 1 ? 0 : 1)));
        modrm(reg, rm);
    }
    void alu_imm(unsigned a)
    {
        unsigned s = size();
        unsigned rm = s == 1 ? byte_reg() : pick_reg(rng);
        head(s, 0, rm);
        code.push_back(s == 1 ? 0x80 : 0x83);
        modrm(a, rm);
        code.push_back(uint8_t(rng.value()));
    }
    void full_writer() { alu_rr(std::array<unsigned, 5> { 0, 5, 7, 2, 3 }[rng.below(5)]); }

    void one()
    {
        switch (rng.below(16)) {
        case 0:
        case 1:
            alu_rr(rng.below(9));
            break;
        case 2:
            alu_imm(rng.below(8));
            break;
        case 3: { // INC/DEC/NEG/NOT
            unsigned s = size(), rm = pick_reg(rng);
            unsigned k = rng.below(4);
            if (s == 1)
                rm = byte_reg();
            head(s, 0, rm);
            code.push_back(k < 2 ? (s == 1 ? 0xfe : 0xff) : (s == 1 ? 0xf6 : 0xf7));
            modrm(k, rm); // /0 INC, /1 DEC, /2 NOT, /3 NEG
            break;
        }
        case 4: { // shift or rotate by 1: every flag but AF defined
            unsigned s = size(), rm = s == 1 ? byte_reg() : pick_reg(rng);
            unsigned k = std::array<unsigned, 6> { 0, 1, 2, 4, 5, 7 }[rng.below(6)];
            head(s, 0, rm);
            code.push_back(s == 1 ? 0xd0 : 0xd1);
            modrm(k, rm);
            break;
        }
        case 5: { // by an immediate or CL: OF (and more) undefined, so overwrite the flags next
            unsigned s = size(), rm = s == 1 ? byte_reg() : pick_reg(rng);
            unsigned k = std::array<unsigned, 5> { 0, 1, 4, 5, 7 }[rng.below(5)];
            bool cl = rng.below(3) == 0 && rm != 1;
            head(s, 0, rm);
            code.push_back(cl ? (s == 1 ? 0xd2 : 0xd3) : (s == 1 ? 0xc0 : 0xc1));
            modrm(k, rm);
            if (!cl)
                code.push_back(uint8_t(rng.below(s * 8)));
            full_writer();
            break;
        }
        case 6: { // IMUL: SF/ZF/AF/PF undefined
            unsigned s = std::array<unsigned, 3> { 2, 4, 8 }[rng.below(3)];
            unsigned reg = pick_reg(rng), rm = pick_reg(rng);
            head(s, reg, rm);
            if (rng.below(2)) {
                code.insert(code.end(), { 0x0f, 0xaf });
                modrm(reg, rm);
            } else {
                code.push_back(0x6b);
                modrm(reg, rm);
                code.push_back(uint8_t(rng.value()));
            }
            full_writer();
            break;
        }
        case 7: { // SETcc r8
            unsigned rm = byte_reg();
            head(1, 0, rm);
            code.insert(code.end(), { 0x0f, uint8_t(0x90 + rng.below(16)) });
            modrm(0, rm);
            break;
        }
        case 8: { // CMOVcc
            unsigned s = std::array<unsigned, 3> { 2, 4, 8 }[rng.below(3)];
            unsigned reg = pick_reg(rng), rm = pick_reg(rng);
            head(s, reg, rm);
            code.insert(code.end(), { 0x0f, uint8_t(0x40 + rng.below(16)) });
            modrm(reg, rm);
            break;
        }
        case 9:
        case 10: { // CMP/TEST/SUB/AND then Jcc over the next instruction
            alu_rr(std::array<unsigned, 5> { 7, 8, 5, 4, 7 }[rng.below(5)]);
            jcc_over_next();
            break;
        }
        case 11: // Jcc after whatever came before
            jcc_over_next();
            break;
        case 12: { // MOV r, r and LEA: no flags
            unsigned reg = pick_reg(rng), rm = pick_reg(rng);
            head(8, reg, rm);
            code.push_back(rng.below(2) ? 0x89 : 0x8b);
            modrm(reg, rm);
            break;
        }
        case 13: { // CMP r/m, imm then Jcc
            alu_imm(7);
            jcc_over_next();
            break;
        }
        case 14: { // JMP over the next instruction (blocks continue at the target)
            size_t at = code.size();
            code.insert(code.end(), { 0xeb, 0 });
            size_t before = code.size();
            alu_rr(rng.below(9));
            code[at + 1] = uint8_t(code.size() - before);
            break;
        }
        default: { // CALL over the next instruction: pushes the return address
            size_t at = code.size();
            code.insert(code.end(), { 0xe8, 0, 0, 0, 0 });
            size_t before = code.size();
            alu_rr(rng.below(9));
            code[at + 1] = uint8_t(code.size() - before);
            break;
        }
        }
    }
    void jcc_over_next()
    {
        size_t at = code.size();
        code.insert(code.end(), { uint8_t(0x70 + rng.below(16)), 0 });
        size_t before = code.size();
        alu_rr(rng.below(9));
        code[at + 1] = uint8_t(code.size() - before);
    }
};

TEST(InterpFlow, RandomSequencesMatchNative)
{
    Rng rng { 0x5eedf10b };
    std::vector<OracleCase> cases;
    for (unsigned i = 0; i < 1500; i++) {
        OracleCase c;
        c.name = "flow " + std::to_string(i);
        Emitter e { rng, c.code };
        unsigned n = 4 + rng.below(16);
        for (unsigned k = 0; k < n && c.code.size() < k_max_code_bytes - 40; k++)
            e.one();
        for (unsigned r = 0; r < 16; r++)
            c.in.gpr[r] = rng.value();
        c.in.gpr[4] = k_stack_addr + k_stack_bytes - 64;
        c.in.rflags = 0x202 | (rng.next() & 0x8d5);
        // Logic ops leave AF undefined, and nothing here reads it.
        c.undefined_flags = k_af;
        c.whole_blocks = true;
        cases.push_back(std::move(c));
    }
    // The block interpreter, then the JIT tier (accel/interp/jit) on the same cases.
    for (InterpMode mode : { InterpMode::Step, InterpMode::Jit }) {
        auto rep = run_differential(cases, 10, mode);
        ASSERT_TRUE(rep.ok()) << rep.error().message();
        for (const std::string& r : rep.value().reported)
            ADD_FAILURE() << r;
        EXPECT_EQ(rep.value().mismatches, 0u);
    }
}

} // namespace
