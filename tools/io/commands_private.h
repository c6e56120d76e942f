// Internals shared by kiln-io's command files.
#pragma once

#include <string>
#include <vector>

#include "tools/io/session.h"

namespace kiln::tools::io {

// A char** view of a command's words for getopt.
class ArgvView {
public:
    explicit ArgvView(std::vector<std::string>& words)
    {
        for (auto& w : words)
            m_ptrs.push_back(w.data());
        m_ptrs.push_back(nullptr);
    }
    int argc() const { return int(m_ptrs.size()) - 1; }
    char** argv() { return m_ptrs.data(); }

private:
    std::vector<char*> m_ptrs;
};

const IoCommand& find_command(const std::string& name);
// "<name> <args> -- <oneline>" as qemu-io's usage line.
void print_usage(const IoCommand& cmd);

Task<int> cmd_read(IoSession& s, std::vector<std::string>& words);
Task<int> cmd_write(IoSession& s, std::vector<std::string>& words);
Task<int> cmd_discard(IoSession& s, std::vector<std::string>& words);
Task<int> cmd_readv(IoSession& s, std::vector<std::string>& words);
Task<int> cmd_writev(IoSession& s, std::vector<std::string>& words);
Task<int> cmd_aio_read(IoSession& s, std::vector<std::string>& words);
Task<int> cmd_aio_write(IoSession& s, std::vector<std::string>& words);
Task<int> cmd_aio_flush(IoSession& s, std::vector<std::string>& words);

} // namespace kiln::tools::io
