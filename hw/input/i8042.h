// Intel 8042 keyboard controller at ports 0x60 (data) and 0x64 (status /
// command), with a keyboard and a PS/2 mouse that answer the commands
// drivers probe with (reset, identify, LEDs, enable). IRQ 1 for keyboard
// bytes, IRQ 12 for mouse bytes. Its output port carries the CPU reset
// line: command 0xFE (pulse) or 0xD1 with bit 0 clear resets the machine.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <span>

#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class I8042 final : public IoRegion, public DeviceState {
public:
    I8042(IrqLine& kbd_irq, IrqLine& aux_irq, std::function<void()> reset_request);
    void reset();

    // offset 0 = port 0x60, offset 4 = port 0x64 (the board maps 5 bytes).
    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;

    // Host key press/release as set-2 scancode bytes (translated to set 1
    // when the command byte asks for translation).
    void key_event(std::span<const uint8_t> set2_bytes);

    std::string state_name() const override { return "i8042"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    struct Byte {
        uint8_t value;
        bool aux;
    };
    void queue(uint8_t v, bool aux);
    void update_irq();
    void controller_command(uint8_t cmd);
    void keyboard_command(uint8_t v);
    void mouse_command(uint8_t v);

    IrqLine& m_kbd_irq;
    IrqLine& m_aux_irq;
    std::function<void()> m_reset_request;
    std::deque<Byte> m_out;
    uint8_t m_command_byte = 0;
    uint8_t m_pending_cmd = 0;  // controller command awaiting its data byte
    uint8_t m_kbd_pending = 0;  // keyboard command awaiting its parameter
    uint8_t m_aux_pending = 0;
    uint8_t m_output_port = 0;
    bool m_kbd_enabled = true;
    bool m_kbd_scanning = true;
    bool m_last_was_command = false;
};

} // namespace kiln::hw
