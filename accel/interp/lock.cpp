// LOCK-prefixed read-modify-write (and XCHG with memory), atomic across
// vCPU threads.
//
// While a locked instruction runs, its memory operand's reads and writes
// go to a shadow copy: the first read records the host address and the
// bytes seen, writes update the shadow, and at the end one host
// compare-and-swap publishes the result if memory still holds the bytes
// read. If another vCPU (or DMA) changed them meanwhile, the registers and
// flags are restored and the instruction runs again. A mutex would not be
// enough: another vCPU's plain store could land between the read and the
// write and be lost.
//
// Operands the CAS cannot cover (MMIO, ROM, pages holding decoded code,
// accesses split across cache lines) run under one process-wide mutex
// instead: atomic against other locked instructions, not against plain
// stores, as split locks are on some hosts.
#include <cstring>
#include <mutex>

#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

// Raised when the compare-and-swap finds memory changed.
struct LockRetry {
    bool slow; // run the retry under the global mutex
};

std::mutex& split_lock_mutex()
{
    static std::mutex m;
    return m;
}

bool cas(uint8_t* p, unsigned size, const uint8_t* expected, const uint8_t* desired)
{
    switch (size) {
    case 1: {
        uint8_t e = expected[0];
        return __atomic_compare_exchange_n(p, &e, desired[0], false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    case 2: {
        uint16_t e, n;
        std::memcpy(&e, expected, 2);
        std::memcpy(&n, desired, 2);
        return __atomic_compare_exchange_n(
            reinterpret_cast<uint16_t*>(p), &e, n, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    case 4: {
        uint32_t e, n;
        std::memcpy(&e, expected, 4);
        std::memcpy(&n, desired, 4);
        return __atomic_compare_exchange_n(
            reinterpret_cast<uint32_t*>(p), &e, n, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    case 8: {
        uint64_t e, n;
        std::memcpy(&e, expected, 8);
        std::memcpy(&n, desired, 8);
        return __atomic_compare_exchange_n(
            reinterpret_cast<uint64_t*>(p), &e, n, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    default: { // 16, 16-byte aligned (CMPXCHG16B checks that)
        uint64_t e[2], n[2];
        std::memcpy(e, expected, 16);
        std::memcpy(n, desired, 16);
        bool ok;
        asm volatile("lock cmpxchg16b %1"
                     : "=@ccz"(ok), "+m"(*reinterpret_cast<__int128*>(p)), "+a"(e[0]), "+d"(e[1])
                     : "b"(n[0]), "c"(n[1])
                     : "memory");
        return ok;
    }
    }
}

} // namespace

void InterpreterImpl::execute_locked(const DecodedInsn& d)
{
    // Registers and flags to restore if the compare-and-swap fails.
    uint64_t gpr[k_gpr_count];
    std::memcpy(gpr, m_s.gpr, sizeof gpr);
    const uint64_t rflags = m_s.rflags;
    const LazyFlags lazy = m_flags;
    bool slow = false;
    for (;;) {
        std::unique_lock<std::mutex> guard(split_lock_mutex(), std::defer_lock);
        if (slow)
            guard.lock();
        m_lock = LockedAccess {};
        m_lock.active = !slow;
        update_mem_hooks();
        try {
            dispatch(d);
            if (m_lock.dirty && !cas(m_lock.host, m_lock.size, m_lock.old, m_lock.shadow))
                throw LockRetry { false };
            m_lock.active = false;
            update_mem_hooks();
            return;
        } catch (const LockRetry& r) {
            std::memcpy(m_s.gpr, gpr, sizeof gpr);
            m_s.rflags = rflags;
            m_flags = lazy;
            slow = slow || r.slow;
        } catch (...) {
            m_lock.active = false;
            update_mem_hooks();
            throw;
        }
    }
}

uint64_t InterpreterImpl::locked_read(Seg seg, uint64_t offset, unsigned size)
{
    // A locked operand is read with write intent (a #PF reports a write).
    uint64_t lin = linear(seg, offset, size, Access::Write);
    LockedAccess& l = m_lock;
    if (!l.host) {
        uint64_t gpa;
        uint8_t* p = (lin & 63) + size <= 64 ? translate_fast(lin, Access::Write, m_cpl == 3, gpa) : nullptr;
        if (!p)
            throw LockRetry { true };
        l.host = p;
        l.lin = lin;
        l.size = size;
        // One read: the value computed from must be the value the CAS expects.
        std::memcpy(l.old, p, size);
        std::memcpy(l.shadow, l.old, size);
    } else if (lin != l.lin) {
        // CMPXCHG16B reads its operand as two halves: extend to 16 bytes.
        if (lin != l.lin + l.size || l.size != 8 || size != 8 || (l.lin & 15))
            throw LockRetry { true };
        std::memcpy(l.old + 8, l.host + 8, 8);
        std::memcpy(l.shadow + 8, l.old + 8, 8);
        l.size = 16;
    }
    uint64_t v = 0;
    std::memcpy(&v, l.shadow + (lin - l.lin), size);
    return v;
}

void InterpreterImpl::locked_write(Seg seg, uint64_t offset, unsigned size, uint64_t value)
{
    uint64_t lin = linear(seg, offset, size, Access::Write);
    LockedAccess& l = m_lock;
    if (!l.host || lin < l.lin || lin + size > l.lin + l.size)
        throw LockRetry { true };
    std::memcpy(l.shadow + (lin - l.lin), &value, size);
    l.dirty = true;
}

} // namespace kiln::accel::interp
