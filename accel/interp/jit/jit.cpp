#include "accel/interp/jit/jit.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "util/log.h"

namespace kiln::accel::interp::jit {

namespace {

int32_t offset_in(const InterpreterImpl& cpu, const void* field)
{
    return int32_t(static_cast<const char*>(field) - reinterpret_cast<const char*>(&cpu));
}

// The byte of LazyFlags that clear() resets, found through its public
// interface (lazy_flags.h belongs to the interpreter proper and may change
// shape): generated code that has put the arithmetic flags into RFLAGS
// writes 0 there, as LazyFlags::set_eager() would. -1 when clear() does not
// reset exactly one byte from a pending op to 0.
int32_t find_flags_op_byte()
{
    static_assert(std::is_trivially_copyable_v<LazyFlags>);
    // Whole-object copies (memcpy), so padding bytes compare equal too.
    LazyFlags pending;
    std::memset(static_cast<void*>(&pending), 0, sizeof pending);
    pending.set(FlagOp::Neg, 8, 0x1234, 0, 0x5678);
    LazyFlags cleared;
    std::memcpy(static_cast<void*>(&cleared), &pending, sizeof cleared);
    cleared.clear();
    unsigned char a[sizeof(LazyFlags)], b[sizeof(LazyFlags)];
    std::memcpy(a, &pending, sizeof a);
    std::memcpy(b, &cleared, sizeof b);
    int32_t at = -1;
    for (unsigned i = 0; i < sizeof a; i++) {
        if (a[i] == b[i])
            continue;
        if (at >= 0 || a[i] != uint8_t(FlagOp::Neg) || b[i] != 0)
            return -1;
        at = int32_t(i);
    }
    if (at < 0 || !pending.pending() || cleared.pending())
        return -1;
    LazyFlags probe;
    std::memcpy(static_cast<void*>(&probe), &pending, sizeof probe);
    reinterpret_cast<unsigned char*>(&probe)[at] = 0;
    if (probe.pending() || probe.get(0x2) != 0x2)
        return -1;
    return at;
}

} // namespace

Layout Jit::layout_of(InterpreterImpl& cpu)
{
    Layout l;
    l.gpr = offset_in(cpu, &cpu.m_s.gpr[0]);
    l.rip = offset_in(cpu, &cpu.m_s.rip);
    l.rflags = offset_in(cpu, &cpu.m_s.rflags);
    l.fs_base = offset_in(cpu, &cpu.m_s.segment(Seg::FS).base);
    l.gs_base = offset_in(cpu, &cpu.m_s.segment(Seg::GS).base);
    l.next_rip = offset_in(cpu, &cpu.m_next_rip);
    l.insn = offset_in(cpu, &cpu.m_insn);
    l.block_end = offset_in(cpu, &cpu.m_block_end);
    l.check_irq = offset_in(cpu, &cpu.m_check_irq);
    l.new_shadow = offset_in(cpu, &cpu.m_new_shadow);
    static_assert(sizeof(std::atomic<bool>) == 1);
    l.kick = offset_in(cpu, &cpu.m_kick);
    l.tlb_epoch = offset_in(cpu, &cpu.m_tlb_epoch);
    l.arena_epoch = offset_in(cpu, &cpu.m_arena_epoch);
    const int32_t op = find_flags_op_byte();
    l.flags_op = op < 0 ? -1 : offset_in(cpu, &cpu.m_flags) + op;
    return l;
}

Result<std::unique_ptr<Jit>> Jit::create(InterpreterImpl& cpu, const JitOptions& options)
{
    std::unique_ptr<Jit> jit(new Jit(options));
    if (jit->m_options.threshold == 0)
        jit->m_options.threshold = 1;
    TRY(jit->m_code.init(options.code_bytes));
    jit->m_layout = layout_of(cpu);
    if (getenv("KILN_JIT_DEBUG"))
        jit->m_stats = std::make_unique<CompileStats>();
    if (getenv("KILN_JIT_PERFMAP")) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/perf-%d.map", int(getpid()));
        jit->m_perf_map = fopen(path, "a");
    }
    return jit;
}

const uint8_t* Jit::compile(InterpreterImpl& cpu, const BlockInsn* insns, unsigned count)
{
    static const Thunks thunks {
        reinterpret_cast<const void*>(&Jit::call_handler),
        reinterpret_cast<const void*>(&Jit::materialize_flags),
    };
    // The block's page (run_block just translated RIP): self-loops watch its generation.
    SelfLoop loop;
    const uint64_t page = cpu.m_fetch_gpa >> 12;
    if (page < cpu.m_pages) {
        loop.generation_addr = &cpu.m_page_gen[page];
        loop.generation = cpu.m_page_gen[page].load(std::memory_order_relaxed);
    }
    const Chaining chaining { &m_cells, &m_exit_cell };
    std::vector<uint8_t> code
        = compile_block(m_layout, thunks, insns, count, cpu.m_s.rip, loop, chaining, m_stats.get());
    const uint8_t* at = m_code.add(code.data(), code.size());
    if (!at)
        return nullptr;
    m_compiled++;
    if (m_perf_map) {
        // perf's JIT symbol map: `perf report` names the block by its guest RIP.
        fprintf(m_perf_map, "%lx %zx jit_%llx\n", (unsigned long)at, code.size(), (unsigned long long)cpu.m_s.rip);
        fflush(m_perf_map);
    }
    return at;
}

bool Jit::run(InterpreterImpl& cpu, uint32_t first, unsigned count, uint64_t& budget)
{
    // LOCK/alignment/data-breakpoint hooks (m_direct_mem is off with them and
    // outside 64-bit mode) and -d exec tracing keep the interpreter's path.
    if (!cpu.m_direct_mem || cpu.m_trace_blocks || budget < count) [[unlikely]]
        return false;
    BlockLinks& b = cpu.m_block_arena[first - 1].links;
    if (b.jit_epoch != m_code_epoch) [[unlikely]] {
        // Not compiled, or compiled into a buffer that has been emptied since.
        if (b.jit_heat == ~0u || ++b.jit_heat < m_options.threshold)
            return false;
        const uint8_t* code = compile(cpu, &cpu.m_block_arena[first].insn, count);
        if (!code) {
            // Full: drop every compiled block (their links carry the old
            // code epoch) and start again.
            m_code.reset();
            m_cells.reset();
            m_exit_cell = nullptr;
            m_flushes++;
            if (++m_code_epoch == 0) {
                cpu.m_jit.reset(); // 65535 flushes: the epoch would wrap; stop compiling
                return false;
            }
            code = compile(cpu, &cpu.m_block_arena[first].insn, count);
        }
        if (!code) {
            b.jit_heat = ~0u; // too big for the buffer: interpret it
            return false;
        }
        b.jit_epoch = m_code_epoch;
        b.jit_code = uint32_t(m_code.offset_of(code));
        b.jit_rip = cpu.m_s.rip;
    }
    if (b.jit_rip != cpu.m_s.rip) [[unlikely]]
        return false;
    const uint8_t* entry = m_code.exec_at(b.jit_code);
    const bool user = cpu.m_cpl == 3;
    const TlbEntry* read_tlb = &cpu.m_tlb[0][user][0];
    // The compiled block that just returned left for this RIP through a
    // chain cell: link the cell to this block (run_block has just checked
    // the translation, page generation and decoded block it relies on).
    if (const ChainCell* c = m_exit_cell) {
        m_exit_cell = nullptr;
        const uint64_t page = cpu.m_fetch_gpa >> 12;
        if ((c->target == cpu.m_s.rip || c->dynamic) && page < cpu.m_pages) {
            ChainCell* cell = const_cast<ChainCell*>(c);
            cell->target = cpu.m_s.rip;
            cell->read_tlb = read_tlb;
            cell->tlb_epoch = cpu.m_tlb_epoch;
            cell->generation_addr = &cpu.m_page_gen[page];
            cell->generation = cpu.m_page_gen[page].load(std::memory_order_relaxed);
            cell->arena_epoch = cpu.m_arena_epoch;
            cell->count = count;
            cell->body = entry + k_body_offset;
        }
    }
    cpu.m_stop_after_one = true; // handlers called from the code run one instruction each
    const BlockFn fn = reinterpret_cast<BlockFn>(const_cast<uint8_t*>(entry));
    // The code may run more blocks than this one (self-loops, chained
    // blocks): what it retired before its last block comes back as the
    // budget it used; the last block's progress as `done`.
    const uint64_t given = std::min<uint64_t>(budget, 1u << 30);
    const uint64_t r = fn(&cpu, read_tlb, &cpu.m_tlb[1][user][0], given);
    const unsigned done = unsigned(uint32_t(r));
    const uint64_t before_last = given - (r >> k_loops_shift);
    const BlockInsn* insns = &cpu.m_block_arena[first].insn;
    // run_block() retires the instructions before m_insn (after a fault) or
    // up to it: m_insn stays at this block's first instruction, the rest is
    // counted here.
    cpu.m_insn = &insns[0].d;
    if (r & k_exit_fault) [[unlikely]] {
        cpu.m_retired += before_last + done;
        budget -= before_last + done;
        if (m_pending) {
            std::exception_ptr p = std::move(m_pending);
            m_pending = nullptr;
            std::rethrow_exception(p);
        }
        throw m_exception;
    }
    cpu.m_retired += before_last + done - 1;
    budget -= before_last + done - 1;
    return true;
}

uint64_t Jit::call_handler(InterpreterImpl* cpu, ExecFn fn, const DecodedInsn* d)
{
    try {
        fn(*cpu, *d);
        return 0;
    } catch (const CpuException& e) {
        cpu->m_jit->m_exception = e;
    } catch (...) {
        cpu->m_jit->m_pending = std::current_exception();
    }
    return 1;
}

void Jit::materialize_flags(InterpreterImpl* cpu) { cpu->m_flags.materialize(cpu->m_s.rflags); }

Jit::~Jit()
{
    if (m_perf_map)
        fclose(m_perf_map);
    if (m_stats) {
        // The buffer's bytes: perf reports JIT samples as offsets into the memfd.
        if (FILE* f = fopen("/tmp/kiln-jit-code.bin", "wb")) {
            fwrite(m_code.exec_at(0), 1, m_code.used_bytes(), f);
            fclose(f);
        }
        fprintf(stderr,
            "jit: %llu blocks compiled, %llu flushes, flags byte %d; %llu instructions inline, %llu through handlers:",
            (unsigned long long)m_compiled, (unsigned long long)m_flushes, m_layout.flags_op,
            (unsigned long long)m_stats->inline_insns, (unsigned long long)m_stats->handler_insns);
        for (unsigned op = 0; op < 0x400; op++)
            if (m_stats->handler_ops[op] * 200 > m_stats->handler_insns)
                fprintf(stderr, " %03x:%llu", op, (unsigned long long)m_stats->handler_ops[op]);
        fprintf(stderr, "\n");
    }
}

void JitDeleter::operator()(Jit* jit) const { delete jit; }

} // namespace kiln::accel::interp::jit

namespace kiln::accel::interp {

uint64_t InterpreterImpl::jit_blocks_compiled() const { return m_jit ? m_jit->blocks_compiled() : 0; }

Result<void> InterpreterImpl::set_jit(bool enabled, unsigned threshold)
{
    m_jit.reset();
    // Blocks starting each other from handlers (next_block()) would bypass
    // the JIT's hook in run_block(): off while the JIT is on.
    m_chain_blocks = !enabled;
    if (!enabled)
        return {};
    jit::JitOptions options;
    if (threshold)
        options.threshold = threshold;
    auto j = TRY(jit::Jit::create(*this, options));
    m_jit.reset(j.release());
    return {};
}

} // namespace kiln::accel::interp
