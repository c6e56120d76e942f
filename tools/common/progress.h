// qemu-img's -p progress line: "    (45.00/100%)\r". Like QEMU's, a value
// is printed when it moved more than min_skip percent from the last one
// printed, and always at 0 and 100; end() prints the closing newline.
#pragma once

namespace kiln::tools {

class Progress {
public:
    // enabled: -p given (and not -q). convert uses 1.0, compare 2.0.
    explicit Progress(bool enabled, double min_skip = 1.0);
    // Prints 0.00%.
    void start() { set(0); }
    // Absolute progress in [0, 100].
    void set(double percent);
    // Adds `delta` percent, accumulating in float as QEMU does.
    void advance(float delta) { set(double(float(m_current + delta / 100 * 100))); }
    // The newline after the last value.
    void end();

private:
    bool m_enabled;
    double m_min_skip;
    float m_current = 0;
    float m_last_print = 0;
};

} // namespace kiln::tools
