#include "tools/common/progress.h"

#include <cstdio>

namespace kiln::tools {

Progress::Progress(bool enabled, double min_skip)
    : m_enabled(enabled)
    , m_min_skip(min_skip)
{
}

void Progress::set(double percent)
{
    if (!m_enabled)
        return;
    // QEMU keeps the value as a float; so does this, for the same digits.
    float current = float(percent > 100 ? 100 : percent);
    m_current = current;
    if (current > m_last_print + m_min_skip || current < m_last_print - m_min_skip || current == 0 || current == 100) {
        m_last_print = current;
        std::printf("    (%3.2f/100%%)\r", double(current));
        std::fflush(stdout);
    }
}

void Progress::end()
{
    if (!m_enabled)
        return;
    std::printf("\n");
    std::fflush(stdout);
}

} // namespace kiln::tools
