// LazyFlags::cond's direct comparisons (after CMP/SUB and logic ops) must
// agree with the conditions derived from fully computed flags. The oracle
// cannot see this: it runs one instruction at a time from materialised
// flags, while in a block a Jcc usually reads the flags its CMP left pending.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "accel/interp/private/lazy_flags.h"

namespace kiln::accel::interp {
namespace {

uint64_t mask_of(unsigned size) { return size == 8 ? ~0ull : (1ull << (size * 8)) - 1; }

std::vector<uint64_t> operands(unsigned size, std::mt19937_64& rng)
{
    uint64_t m = mask_of(size), top = 1ull << (size * 8 - 1);
    std::vector<uint64_t> v = { 0, 1, 2, m, m - 1, top, top - 1, top + 1 };
    for (int i = 0; i < 24; i++)
        v.push_back(rng() & m);
    return v;
}

// The condition from materialised flags (no pending op).
bool reference(const LazyFlags& f, unsigned cc)
{
    LazyFlags plain;
    return plain.cond_slow(f.get(0), cc);
}

TEST(InterpLazyFlags, CondAfterSubMatchesComputedFlags)
{
    std::mt19937_64 rng(42);
    unsigned checked = 0;
    for (unsigned size : { 1u, 2u, 4u, 8u }) {
        auto ops = operands(size, rng);
        for (uint64_t a : ops) {
            for (uint64_t b : ops) {
                LazyFlags f;
                f.set(FlagOp::Sub, size, (a - b) & mask_of(size), a, b);
                for (unsigned cc = 0; cc < 16; cc++) {
                    ASSERT_EQ(f.cond(0, cc), reference(f, cc)) << "size " << size << " a " << a << " b " << b << " cc " << cc;
                    checked++;
                }
            }
        }
    }
    EXPECT_GT(checked, 60000u);
}

TEST(InterpLazyFlags, CondAfterLogicMatchesComputedFlags)
{
    std::mt19937_64 rng(7);
    for (unsigned size : { 1u, 2u, 4u, 8u }) {
        for (uint64_t r : operands(size, rng)) {
            LazyFlags f;
            f.set(FlagOp::Logic, size, r, 0, 0);
            for (unsigned cc = 0; cc < 16; cc++)
                ASSERT_EQ(f.cond(0, cc), reference(f, cc)) << "size " << size << " r " << r << " cc " << cc;
        }
    }
}

// Flags from the definitions (wide arithmetic), independent of LazyFlags.
uint64_t reference_flags(bool sub, unsigned size, uint64_t a, uint64_t b)
{
    const unsigned bits = size * 8;
    const uint64_t m = mask_of(size);
    const uint64_t r = (sub ? a - b : a + b) & m;
    auto sx = [&](uint64_t v) { return __int128(int64_t(v << (64 - bits)) >> (64 - bits)); };
    __int128 wide = sub ? sx(a) - sx(b) : sx(a) + sx(b);
    bool cf = sub ? a < b : (unsigned __int128)a + b > m;
    bool of = wide != sx(r);
    uint64_t f = 0;
    if (cf)
        f |= x86::k_flag_cf;
    if (!__builtin_parity(unsigned(r & 0xff)))
        f |= x86::k_flag_pf;
    if (((a ^ b ^ r) >> 4) & 1)
        f |= x86::k_flag_af;
    if (r == 0)
        f |= x86::k_flag_zf;
    if ((r >> (bits - 1)) & 1)
        f |= x86::k_flag_sf;
    if (of)
        f |= x86::k_flag_of;
    return f;
}

TEST(InterpLazyFlags, MaterialisedAddSubMatchDefinitions)
{
    std::mt19937_64 rng(99);
    for (unsigned size : { 1u, 2u, 4u, 8u }) {
        auto ops = operands(size, rng);
        for (uint64_t a : ops) {
            for (uint64_t b : ops) {
                for (bool sub : { false, true }) {
                    LazyFlags f;
                    uint64_t r = (sub ? a - b : a + b) & mask_of(size);
                    f.set(sub ? FlagOp::Sub : FlagOp::Add, size, r, a, b);
                    ASSERT_EQ(f.get(0), reference_flags(sub, size, a, b))
                        << (sub ? "sub" : "add") << " size " << size << " a " << a << " b " << b;
                }
            }
        }
    }
}

TEST(InterpLazyFlags, KnownComparisons)
{
    LazyFlags f;
    f.set(FlagOp::Sub, 4, uint64_t(5 - 7) & 0xffffffff, 5, 7); // cmp 5, 7
    EXPECT_TRUE(f.cond(0, 0x2)); // JB
    EXPECT_TRUE(f.cond(0, 0xc)); // JL
    EXPECT_FALSE(f.cond(0, 0x4)); // JE
    f.set(FlagOp::Sub, 1, uint8_t(0x80 - 1), 0x80, 1); // cmp -128, 1 (8-bit)
    EXPECT_FALSE(f.cond(0, 0x2)); // unsigned 0x80 >= 1
    EXPECT_TRUE(f.cond(0, 0xc)); // signed -128 < 1
    EXPECT_TRUE(f.cond(0, 0x0)); // OF set
}

TEST(InterpLazyFlags, EagerReplacementOfAllArithmeticFlags)
{
    LazyFlags f;
    uint64_t rflags = x86::k_flag_fixed1 | x86::k_flag_if;
    f.set(FlagOp::Sub, 8, 0, 3, 3); // pending ZF
    f.set_eager(rflags, x86::k_flag_cf);
    EXPECT_EQ(rflags, x86::k_flag_fixed1 | x86::k_flag_if | x86::k_flag_cf);
    f.set(FlagOp::Sub, 8, 0, 3, 3);
    f.set_eager(rflags, 0, x86::k_flag_cf); // partial: ZF from the pending op survives
    EXPECT_EQ(rflags, x86::k_flag_fixed1 | x86::k_flag_if | x86::k_flag_zf | x86::k_flag_pf);
}

} // namespace
} // namespace kiln::accel::interp
