// MsiSink: where a PCI function's message-signalled interrupts go. The
// board implements it (decodes the 0xFEExxxxx address and the data word
// into a local APIC delivery).
#pragma once

#include <cstdint>

namespace kiln::hw {

class MsiSink {
public:
    virtual ~MsiSink() = default;
    virtual void deliver_msi(uint64_t address, uint32_t data) = 0;
};

} // namespace kiln::hw
