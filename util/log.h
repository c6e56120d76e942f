// Logging: one sink (stderr or a -D file), categories enabled by -d.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace kiln {

enum class LogCategory : uint32_t {
    Guest = 1u << 0,     // guest_errors: the guest did something invalid
    Unimp = 1u << 1,     // unimplemented device features used by the guest
    InAsm = 1u << 2,     // interpreter: guest code as decoded
    Int = 1u << 3,       // interrupts and exceptions
    CpuReset = 1u << 4,  // CPU state at reset
    Cpu = 1u << 5,       // CPU state before each block
    Exec = 1u << 6,      // blocks executed
    Block = 1u << 7,     // block layer tracing
};

class Log {
public:
    // Program name used as the prefix of error lines ("kiln-img: ...").
    static void set_program_name(std::string name);
    static const std::string& program_name();

    // -d list ("in_asm,int"); returns false on an unknown name.
    static bool enable_categories(std::string_view list, std::string* unknown = nullptr);
    static bool enabled(LogCategory category);
    // -D file; nullptr/empty restores stderr.
    static bool set_file(const std::string& path);
    static FILE* sink();

    // "prog: message" on stderr.
    static void error(std::string_view message);
    static void warning(std::string_view message);
    static void write(LogCategory category, std::string_view message);
};

} // namespace kiln
