// Per-device migratable state. Each device implements DeviceState next to
// its definition: a section name, a version, and a save/load pair written
// with StateWriter/StateReader (little-endian, bounds-checked). migration/
// frames these sections into the state stream; a truncated or malformed
// section is an error naming the device, never an out-of-bounds read.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "util/result.h"

namespace kiln::hw {

class StateWriter {
public:
    void u8(uint8_t v) { put(v); }
    void u16(uint16_t v) { put(v); }
    void u32(uint32_t v) { put(v); }
    void u64(uint64_t v) { put(v); }
    void boolean(bool v) { put(uint8_t(v ? 1 : 0)); }
    void bytes(std::span<const uint8_t> data)
    {
        m_buf.insert(m_buf.end(), data.begin(), data.end());
    }
    const std::vector<uint8_t>& data() const { return m_buf; }

private:
    template<typename T>
    void put(T v)
    {
        static_assert(std::is_integral_v<T>);
        for (unsigned i = 0; i < sizeof(T); i++)
            m_buf.push_back(uint8_t(uint64_t(v) >> (8 * i)));
    }
    std::vector<uint8_t> m_buf;
};

class StateReader {
public:
    // section names the device in errors.
    StateReader(std::span<const uint8_t> data, std::string section)
        : m_data(data), m_section(std::move(section))
    {
    }
    Result<uint8_t> u8() { return get<uint8_t>(); }
    Result<uint16_t> u16() { return get<uint16_t>(); }
    Result<uint32_t> u32() { return get<uint32_t>(); }
    Result<uint64_t> u64() { return get<uint64_t>(); }
    Result<bool> boolean()
    {
        uint8_t v = TRY(get<uint8_t>());
        if (v > 1)
            return Error::corrupt("state section '" + m_section + "': bad boolean");
        return v == 1;
    }
    Result<void> bytes(std::span<uint8_t> out)
    {
        if (out.size() > m_data.size() - m_pos)
            return truncated();
        std::memcpy(out.data(), m_data.data() + m_pos, out.size());
        m_pos += out.size();
        return {};
    }
    // A load must consume the whole section.
    Result<void> finish() const
    {
        if (m_pos != m_data.size())
            return Error::corrupt("state section '" + m_section + "': " + std::to_string(m_data.size() - m_pos)
                                  + " unexpected trailing bytes");
        return {};
    }
    // For fields whose range the device must check ("index 9 out of range").
    Error invalid(const std::string& what) const
    {
        return Error::corrupt("state section '" + m_section + "': " + what);
    }

private:
    Error truncated() const { return Error::corrupt("state section '" + m_section + "' is truncated"); }
    template<typename T>
    Result<T> get()
    {
        if (sizeof(T) > m_data.size() - m_pos)
            return truncated();
        uint64_t v = 0;
        for (unsigned i = 0; i < sizeof(T); i++)
            v |= uint64_t(m_data[m_pos + i]) << (8 * i);
        m_pos += sizeof(T);
        return T(v);
    }
    std::span<const uint8_t> m_data;
    size_t m_pos = 0;
    std::string m_section;
};

class DeviceState {
public:
    virtual ~DeviceState() = default;
    // Unique within the machine ("pic-master", "serial0").
    virtual std::string state_name() const = 0;
    virtual uint32_t state_version() const = 0;
    virtual void save_state(StateWriter& w) const = 0;
    // `version` is the saved version; a device refuses versions it does not
    // know. Called with the VM paused.
    virtual Result<void> load_state(StateReader& r, uint32_t version) = 0;
};

// Checks the version a device is asked to load.
inline Result<void> check_state_version(const DeviceState& d, uint32_t version)
{
    if (version == 0 || version > d.state_version())
        return Error::not_supported("state section '" + d.state_name() + "': version " + std::to_string(version)
                                    + " is not supported (newest is " + std::to_string(d.state_version()) + ")");
    return {};
}

} // namespace kiln::hw
