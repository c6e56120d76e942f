// qemu-img's -p progress line: "    (45.00/100%)\r", redrawn when the
// value moves by at least min_skip percent, with a newline at the end.
#pragma once

namespace kiln::tools {

class Progress {
public:
    // enabled: -p given (and not -q); min_skip: qemu-img uses 1.0 for most
    // commands.
    explicit Progress(bool enabled, double min_skip = 1.0);
    // Starts at 0.00%.
    void start();
    // Absolute progress in [0, 100].
    void set(double percent);
    void end();

private:
    void print();
    bool m_enabled;
    double m_min_skip;
    double m_current = 0;
    double m_last_print = -100;
};

} // namespace kiln::tools
