// -help, -version, and "help" values (-machine help, -cpu help, ...).
#pragma once

#include <cstdio>
#include <string>

namespace kiln::system {

void print_version(FILE* out);
void print_help(FILE* out);
// Returns false for an unknown topic.
bool print_help_topic(FILE* out, const std::string& topic);

} // namespace kiln::system
