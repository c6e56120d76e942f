// Random and edge-case oracle cases for every user-mode instruction form
// the interpreter implements, grouped by instruction family.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/oracle/oracle.h"

namespace kiln::oracle {

struct Rng {
    uint64_t s;
    uint64_t next()
    {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    unsigned below(unsigned n) { return unsigned(next() % n); }
    // Mix of edge values (0, ±1, sign boundaries) and random ones.
    uint64_t value();
};

// Names of the instruction families, e.g. "alu", "shift", "string".
std::vector<std::string> oracle_families();
// `count` cases per instruction form of `family`.
std::vector<OracleCase> generate_family(const std::string& family, unsigned count, uint64_t seed);

} // namespace kiln::oracle
