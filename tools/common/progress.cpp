#include "tools/common/progress.h"

#include <cstdio>

namespace kiln::tools {

Progress::Progress(bool enabled, double min_skip) : m_enabled(enabled), m_min_skip(min_skip) {}

void Progress::start()
{
    if (!m_enabled)
        return;
    m_current = 0;
    print();
}

void Progress::print()
{
    std::printf("    (%3.2f/100%%)\r", m_current);
    std::fflush(stdout);
    m_last_print = m_current;
}

void Progress::set(double percent)
{
    if (!m_enabled)
        return;
    if (percent > 100)
        percent = 100;
    m_current = percent;
    if (m_current - m_last_print >= m_min_skip || (m_current >= 100 && m_last_print < 100))
        print();
}

void Progress::end()
{
    if (!m_enabled)
        return;
    m_current = 100;
    print();
    std::printf("\n");
    std::fflush(stdout);
}

} // namespace kiln::tools
