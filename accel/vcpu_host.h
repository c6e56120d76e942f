// VcpuHost: what an accelerator (interpreter or KVM) needs from the
// machine it runs in. The board (hw/i386/pc) implements it; accelerators
// never see devices directly. Called on the vCPU thread; implementations
// take the machine lock around device accesses.
#pragma once

#include <cstdint>

#include "hw/core/guest_memory.h"

namespace kiln::accel {

class VcpuHost {
public:
    virtual ~VcpuHost() = default;

    virtual hw::GuestMemory& memory() = 0;

    // Port I/O (size 1, 2 or 4). Unclaimed ports read as all ones.
    virtual uint32_t pio_read(uint16_t port, unsigned size) = 0;
    virtual void pio_write(uint16_t port, unsigned size, uint32_t value) = 0;
    // Accesses to guest-physical addresses outside RAM/ROM (size 1..8).
    // Unclaimed addresses read as all ones and drop writes.
    virtual uint64_t mmio_read(uint64_t gpa, unsigned size) = 0;
    virtual void mmio_write(uint64_t gpa, unsigned size, uint64_t value) = 0;

    // Interrupts for this vCPU, as the local APIC presents them (it folds
    // in the PIC's ExtINT). Valid only when the CPU can take them.
    virtual bool interrupt_pending() = 0;
    // Acknowledges the highest-priority pending interrupt and returns its
    // vector (INTA cycle).
    virtual uint8_t acknowledge_interrupt() = 0;
    virtual bool nmi_pending() = 0;
    virtual void acknowledge_nmi() = 0;

    // The guest executed HLT with interrupts enabled or disabled; the host
    // blocks until an interrupt, a kick or a stop request arrives, advancing
    // virtual time as needed. Returns false if the vCPU should stop running.
    virtual bool wait_for_interrupt() = 0;
    // Triple fault or a reset request from the CPU side.
    virtual void request_reset() = 0;
    // Virtual clock in nanoseconds (drives TSC), stops while paused.
    virtual uint64_t virtual_clock_ns() = 0;
};

} // namespace kiln::accel
