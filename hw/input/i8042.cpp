#include "hw/input/i8042.h"

namespace kiln::hw {

namespace {
constexpr uint8_t k_st_obf = 0x01, k_st_sys = 0x04, k_st_cmd = 0x08, k_st_unlocked = 0x10, k_st_aux = 0x20;
constexpr uint8_t k_cb_kbd_int = 0x01, k_cb_aux_int = 0x02, k_cb_sys = 0x04, k_cb_kbd_off = 0x10,
                  k_cb_aux_off = 0x20, k_cb_xlate = 0x40;
constexpr uint8_t k_ack = 0xfa;
constexpr size_t k_queue_limit = 64;
} // namespace

I8042::I8042(IrqLine& kbd_irq, IrqLine& aux_irq, std::function<void()> reset_request)
    : m_kbd_irq(kbd_irq), m_aux_irq(aux_irq), m_reset_request(std::move(reset_request))
{
    reset();
}

void I8042::reset()
{
    m_out.clear();
    m_command_byte = k_cb_kbd_int | k_cb_sys | k_cb_xlate;
    m_pending_cmd = m_kbd_pending = m_aux_pending = 0;
    m_output_port = 0x03; // reset line released, A20 on
    m_kbd_enabled = m_kbd_scanning = true;
    m_last_was_command = false;
    update_irq();
}

void I8042::queue(uint8_t v, bool aux)
{
    if (m_out.size() < k_queue_limit)
        m_out.push_back({v, aux});
    update_irq();
}

void I8042::update_irq()
{
    bool kbd = false, aux = false;
    if (!m_out.empty()) {
        if (m_out.front().aux)
            aux = m_command_byte & k_cb_aux_int;
        else
            kbd = m_command_byte & k_cb_kbd_int;
    }
    m_kbd_irq.set_level(kbd);
    m_aux_irq.set_level(aux);
}

uint64_t I8042::read(uint64_t offset, unsigned size)
{
    if (offset == 4) {
        uint8_t st = k_st_unlocked | ((m_command_byte & k_cb_sys) ? k_st_sys : 0);
        if (m_last_was_command)
            st |= k_st_cmd;
        if (!m_out.empty())
            st |= k_st_obf | (m_out.front().aux ? k_st_aux : 0);
        return st;
    }
    if (offset != 0)
        return 0xff;
    if (m_out.empty())
        return 0; // stale output buffer
    uint8_t v = m_out.front().value;
    m_out.pop_front();
    // The controller's output buffer holds one byte; the next queued byte
    // is a new arrival with an interrupt of its own. ISA IRQ 1/12 are
    // edge-triggered and Linux reads one byte per interrupt, so the line
    // must drop and rise again (else a multi-byte reply such as GETID's
    // ACK, 0xAB, 0x83 stalls and atkbd/psmouse time out on every probe).
    m_kbd_irq.set_level(false);
    m_aux_irq.set_level(false);
    update_irq();
    return v;
}

void I8042::write(uint64_t offset, unsigned size, uint64_t value)
{
    uint8_t v = uint8_t(value);
    if (offset == 4) {
        m_last_was_command = true;
        controller_command(v);
        return;
    }
    if (offset != 0)
        return;
    m_last_was_command = false;
    uint8_t cmd = m_pending_cmd;
    m_pending_cmd = 0;
    switch (cmd) {
    case 0x60:
        m_command_byte = v;
        update_irq();
        return;
    case 0xd1:
        m_output_port = v;
        if (!(v & 1) && m_reset_request)
            m_reset_request();
        return;
    case 0xd2: queue(v, false); return;
    case 0xd3: queue(v, true); return;
    case 0xd4: mouse_command(v); return;
    default: keyboard_command(v); return;
    }
}

void I8042::controller_command(uint8_t cmd)
{
    switch (cmd) {
    case 0x20: queue(m_command_byte, false); return;
    case 0x60: case 0xd1: case 0xd2: case 0xd3: case 0xd4:
        m_pending_cmd = cmd;
        return;
    case 0xa7: m_command_byte |= k_cb_aux_off; return;
    case 0xa8: m_command_byte &= ~k_cb_aux_off; return;
    case 0xa9: queue(0x00, false); return; // aux interface test: OK
    case 0xaa:                             // self test
        m_command_byte |= k_cb_sys;
        queue(0x55, false);
        return;
    case 0xab: queue(0x00, false); return; // keyboard interface test: OK
    case 0xad: m_command_byte |= k_cb_kbd_off; return;
    case 0xae: m_command_byte &= ~k_cb_kbd_off; return;
    case 0xc0: queue(0x00, false); return; // input port
    case 0xd0: queue(m_output_port, false); return;
    default:
        if ((cmd & 0xf0) == 0xf0) {
            // Pulse output lines low; bit 0 is the CPU reset line.
            if (!(cmd & 1) && m_reset_request)
                m_reset_request();
        }
        return;
    }
}

void I8042::keyboard_command(uint8_t v)
{
    if (m_kbd_pending) {
        m_kbd_pending = 0;
        queue(k_ack, false); // LEDs, typematic rate, scancode set
        return;
    }
    switch (v) {
    case 0xff:
        queue(k_ack, false);
        queue(0xaa, false);
        m_kbd_scanning = true;
        return;
    case 0xf2: // identify: an MF2 keyboard, 0x83 translated to 0x41
        queue(k_ack, false);
        queue(0xab, false);
        queue((m_command_byte & k_cb_xlate) ? 0x41 : 0x83, false);
        return;
    case 0xee: queue(0xee, false); return;
    case 0xed: case 0xf0: case 0xf3:
        m_kbd_pending = v;
        queue(k_ack, false);
        return;
    case 0xf4: m_kbd_scanning = true; queue(k_ack, false); return;
    case 0xf5: m_kbd_scanning = false; queue(k_ack, false); return;
    case 0xf6: queue(k_ack, false); return;
    default: queue(0xfe, false); return; // resend: unknown command
    }
}

void I8042::mouse_command(uint8_t v)
{
    if (m_aux_pending) {
        m_aux_pending = 0;
        queue(k_ack, true);
        return;
    }
    switch (v) {
    case 0xff:
        queue(k_ack, true);
        queue(0xaa, true);
        queue(0x00, true);
        return;
    case 0xf2:
        queue(k_ack, true);
        queue(0x00, true);
        return;
    case 0xe9: // status request
        queue(k_ack, true);
        queue(0x00, true);
        queue(0x02, true);
        queue(0x64, true);
        return;
    case 0xe8: case 0xf3:
        m_aux_pending = v;
        queue(k_ack, true);
        return;
    default: queue(k_ack, true); return;
    }
}

namespace {

// The 8042's fixed scancode translation (command byte bit 6): set-2 code
// to the set-1 code the PC/XT keyboard sent for the same key. Codes from
// 0x80 up pass unchanged, except set 2's F7 (0x83) and Alt-SysRq (0x84).
constexpr uint8_t k_set2_to_set1[128] = {
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59, // 00
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b, // 10
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d, // 20
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f, // 30
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61, // 40
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76, // 50
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f, // 60
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54, // 70
};

uint8_t translate_to_set1(uint8_t code)
{
    if (code < 0x80)
        return k_set2_to_set1[code];
    if (code == 0x83)
        return 0x41;
    if (code == 0x84)
        return 0x54;
    return code;
}

} // namespace

void I8042::key_event(std::span<const uint8_t> set2_bytes)
{
    if (!m_kbd_scanning || (m_command_byte & k_cb_kbd_off))
        return;
    if (!(m_command_byte & k_cb_xlate)) {
        for (uint8_t b : set2_bytes)
            queue(b, false);
        return;
    }
    // Set 2 marks a release with an 0xF0 prefix; set 1 sets bit 7 of the
    // code instead. 0xE0/0xE1 prefixes pass through.
    bool release = false;
    for (uint8_t b : set2_bytes) {
        if (b == 0xf0) {
            release = true;
            continue;
        }
        if (b == 0xe0 || b == 0xe1) {
            queue(b, false);
            continue;
        }
        queue(uint8_t(translate_to_set1(b) | (release ? 0x80 : 0)), false);
        release = false;
    }
}

void I8042::save_state(StateWriter& w) const
{
    for (uint8_t b : {m_command_byte, m_pending_cmd, m_kbd_pending, m_aux_pending, m_output_port})
        w.u8(b);
    for (bool b : {m_kbd_enabled, m_kbd_scanning, m_last_was_command})
        w.boolean(b);
    w.u8(uint8_t(m_out.size()));
    for (auto& b : m_out) {
        w.u8(b.value);
        w.boolean(b.aux);
    }
}

Result<void> I8042::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    for (uint8_t* b : {&m_command_byte, &m_pending_cmd, &m_kbd_pending, &m_aux_pending, &m_output_port})
        *b = TRY(r.u8());
    for (bool* b : {&m_kbd_enabled, &m_kbd_scanning, &m_last_was_command})
        *b = TRY(r.boolean());
    uint8_t n = TRY(r.u8());
    if (n > k_queue_limit)
        return r.invalid("output queue too long");
    m_out.clear();
    for (unsigned i = 0; i < n; i++) {
        uint8_t v = TRY(r.u8());
        bool aux = TRY(r.boolean());
        m_out.push_back({v, aux});
    }
    TRY(r.finish());
    update_irq();
    return {};
}

} // namespace kiln::hw
