#include "util/size.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kiln {

Result<uint64_t> parse_size(std::string_view text, uint64_t default_unit)
{
    std::string s(text);
    auto bad = [&] { return Error::invalid("Invalid size '" + s + "'"); };
    if (s.empty() || !(std::isdigit((unsigned char)s[0]) || s[0] == '.'))
        return bad();
    size_t pos = 0;
    while (pos < s.size() && std::isdigit((unsigned char)s[pos]))
        ++pos;
    std::string integer = s.substr(0, pos);
    std::string fraction;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        size_t start = pos;
        while (pos < s.size() && std::isdigit((unsigned char)s[pos]))
            ++pos;
        fraction = s.substr(start, pos - start);
        if (integer.empty() && fraction.empty())
            return bad();
    }
    std::string suffix = s.substr(pos);
    uint64_t unit = default_unit;
    if (!suffix.empty()) {
        char c = char(std::tolower((unsigned char)suffix[0]));
        int shift;
        switch (c) {
        case 'b': shift = 0; break;
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        case 't': shift = 40; break;
        case 'p': shift = 50; break;
        case 'e': shift = 60; break;
        default: return bad();
        }
        if (suffix.size() > 1) {
            // Accept "KiB"-free forms only: "k" or "kB"-style is not qemu syntax,
            // but a trailing 'b'/'B' after a unit letter is harmless to allow.
            if (suffix.size() != 2 || std::tolower((unsigned char)suffix[1]) != 'b' || shift == 0)
                return bad();
        }
        unit = uint64_t(1) << shift;
    }
    errno = 0;
    unsigned long long whole = integer.empty() ? 0 : std::strtoull(integer.c_str(), nullptr, 10);
    if (errno == ERANGE)
        return Error::invalid("Size '" + s + "' is too large");
    unsigned __int128 value = (unsigned __int128)whole * unit;
    if (!fraction.empty()) {
        // Fractions count only with a unit, as in QEMU ("1.5" bytes is junk).
        long double frac = std::strtold(("0." + fraction).c_str(), nullptr);
        if (unit == 1 && frac != 0)
            return bad();
        value += (unsigned __int128)std::floor(frac * (long double)unit);
    }
    if (value > (unsigned __int128)INT64_MAX)
        return Error::invalid("Size '" + s + "' is too large");
    return uint64_t(value);
}

std::string format_size_human(uint64_t bytes)
{
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    // QEMU's size_to_str: pick the unit so the value is below 1000 (in
    // 1024ths), print with up to 3 significant digits.
    int i = 0;
    long double value = (long double)bytes;
    while (value >= 1000.0L * 1.0L && i < 6 && bytes >= (1ull << (10 * (i + 1))) * 1000 / 1024) {
        value /= 1024.0L;
        ++i;
        if (value < 1000.0L)
            break;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%0.3Lg %s", value, units[i]);
    return buf;
}

} // namespace kiln
