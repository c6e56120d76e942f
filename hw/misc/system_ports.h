// Small PC system ports: port 0x92 (System Control Port A: fast A20 and
// fast reset), port 0x80 (POST code / I/O delay), and port 0xCF9 (reset
// control register, the FADT's reset register). A20 masking is not
// modelled (A20 is always on); the bit reads back as written.
#pragma once

#include <cstdint>
#include <functional>

#include "hw/core/io_region.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class Port92 final : public IoRegion, public DeviceState {
public:
    explicit Port92(std::function<void()> reset_request) : m_reset_request(std::move(reset_request)) {}
    void reset() { m_value = 0x02; }
    uint64_t read(uint64_t, unsigned) override { return m_value; }
    void write(uint64_t, unsigned, uint64_t value) override
    {
        uint8_t v = uint8_t(value) & 0x03;
        // Bit 0 0->1 pulses the CPU's reset line.
        bool reset_edge = (v & 1) && !(m_value & 1);
        m_value = v & ~1u;
        if (reset_edge && m_reset_request)
            m_reset_request();
    }
    bool a20() const { return m_value & 2; }

    std::string state_name() const override { return "port92"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override { w.u8(m_value); }
    Result<void> load_state(StateReader& r, uint32_t version) override
    {
        TRY(check_state_version(*this, version));
        m_value = TRY(r.u8()) & 2;
        return r.finish();
    }

private:
    std::function<void()> m_reset_request;
    uint8_t m_value = 0x02;
};

// Port 0x80: writes are POST codes (kept for tests and logging); Linux
// also writes here as an I/O delay, so it must be cheap.
class DebugPort80 final : public IoRegion {
public:
    uint64_t read(uint64_t, unsigned) override { return m_last; }
    void write(uint64_t, unsigned, uint64_t value) override { m_last = uint8_t(value); }
    uint8_t last() const { return m_last; }

private:
    uint8_t m_last = 0;
};

// 0xCF9: bit 2 (RST_CPU) set starts a reset; bit 1 selects hard reset,
// which is the same thing here.
class ResetControl final : public IoRegion {
public:
    explicit ResetControl(std::function<void()> reset_request) : m_reset_request(std::move(reset_request)) {}
    uint64_t read(uint64_t, unsigned) override { return m_value; }
    void write(uint64_t, unsigned size, uint64_t value) override
    {
        if (size != 1)
            return; // 0xCF8 dword accesses overlap this byte on real chipsets
        m_value = uint8_t(value) & 0x0a;
        if ((value & 0x04) && m_reset_request)
            m_reset_request();
    }

private:
    std::function<void()> m_reset_request;
    uint8_t m_value = 0;
};

} // namespace kiln::hw
