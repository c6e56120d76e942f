#include "util/log.h"

#include <atomic>
#include <mutex>
#include <vector>

namespace kiln {

// Logging is process-wide by nature (stderr is); this is the one place
// where Kiln keeps global state, guarded by a mutex.
namespace {
struct LogState {
    std::mutex lock;
    std::string program = "kiln";
    std::atomic<uint32_t> categories{0};
    FILE* file = nullptr;
};
LogState& state()
{
    static LogState s;
    return s;
}
} // namespace

void Log::set_program_name(std::string name) { state().program = std::move(name); }
const std::string& Log::program_name() { return state().program; }

bool Log::enable_categories(std::string_view list, std::string* unknown)
{
    static const std::vector<std::pair<std::string_view, LogCategory>> names = {
        {"guest_errors", LogCategory::Guest}, {"unimp", LogCategory::Unimp},
        {"in_asm", LogCategory::InAsm},       {"int", LogCategory::Int},
        {"cpu_reset", LogCategory::CpuReset}, {"cpu", LogCategory::Cpu},
        {"exec", LogCategory::Exec},          {"block", LogCategory::Block},
    };
    uint32_t mask = 0;
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string_view item = list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (!item.empty()) {
            bool found = false;
            for (auto& [name, cat] : names) {
                if (item == name) {
                    mask |= uint32_t(cat);
                    found = true;
                }
            }
            if (!found) {
                if (unknown)
                    *unknown = std::string(item);
                return false;
            }
        }
        if (comma == std::string_view::npos)
            break;
        start = comma + 1;
    }
    state().categories |= mask;
    return true;
}

bool Log::enabled(LogCategory category) { return state().categories.load(std::memory_order_relaxed) & uint32_t(category); }

bool Log::set_file(const std::string& path)
{
    std::lock_guard guard(state().lock);
    if (state().file) {
        fclose(state().file);
        state().file = nullptr;
    }
    if (path.empty())
        return true;
    state().file = fopen(path.c_str(), "w");
    return state().file != nullptr;
}

FILE* Log::sink() { return state().file ? state().file : stderr; }

void Log::error(std::string_view message)
{
    std::lock_guard guard(state().lock);
    fprintf(stderr, "%s: %.*s\n", state().program.c_str(), int(message.size()), message.data());
}

void Log::warning(std::string_view message)
{
    std::lock_guard guard(state().lock);
    fprintf(stderr, "%s: warning: %.*s\n", state().program.c_str(), int(message.size()), message.data());
}

void Log::write(LogCategory category, std::string_view message)
{
    if (!enabled(category))
        return;
    std::lock_guard guard(state().lock);
    FILE* f = sink();
    fwrite(message.data(), 1, message.size(), f);
    if (message.empty() || message.back() != '\n')
        fputc('\n', f);
}

} // namespace kiln
