// Test helper: a whole file as a string ("" if it cannot be read).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace kiln::system::test {

inline std::string file_text(const std::string& path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

} // namespace kiln::system::test
