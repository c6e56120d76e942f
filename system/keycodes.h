// PC keyboard codes for the monitor's sendkey: QAPI QKeyCode names, the
// "number" form QEMU accepts (the set-1 scancode, 0x80 set for E0-prefixed
// keys) and the set-2 bytes the i8042 receives.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace kiln::system {

struct KeyCode {
    const char* qcode;
    uint8_t number; // set 1, bit 7 = E0 prefix
    uint8_t set2;
    bool extended; // E0 prefix in set 2 as well
};

const KeyCode* key_by_qcode(std::string_view qcode);
const KeyCode* key_by_number(int64_t number);
std::vector<uint8_t> set2_press(const KeyCode& key);
std::vector<uint8_t> set2_release(const KeyCode& key);

} // namespace kiln::system
