// The qcow2 header and its extensions: parsing with QEMU's validation
// messages, and serialisation that keeps extensions Kiln does not
// understand (bitmaps, unknown types) byte for byte.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"

namespace kiln::block::qcow2 {

struct FeatureName {
    uint8_t type = 0; // 0 incompatible, 1 compatible, 2 autoclear
    uint8_t bit = 0;
    std::string name;
};

struct RawExtension {
    uint32_t type = 0;
    std::vector<uint8_t> data;
};

struct Header {
    uint32_t version = 3;
    uint64_t backing_file_offset = 0;
    uint32_t backing_file_size = 0;
    uint32_t cluster_bits = 16;
    uint64_t size = 0;
    uint32_t crypt_method = 0;
    uint32_t l1_size = 0;
    uint64_t l1_table_offset = 0;
    uint64_t refcount_table_offset = 0;
    uint32_t refcount_table_clusters = 0;
    uint32_t nb_snapshots = 0;
    uint64_t snapshots_offset = 0;
    uint64_t incompatible_features = 0;
    uint64_t compatible_features = 0;
    uint64_t autoclear_features = 0;
    uint32_t refcount_order = 4;
    uint32_t header_length = 0;
    uint8_t compression_type = 0;

    std::string backing_file;
    std::string backing_format;
    std::string data_file;
    std::vector<FeatureName> feature_names;
    // Extensions kept as they are (bitmaps, crypto header, unknown types).
    std::vector<RawExtension> other_extensions;

    uint64_t cluster_size() const { return 1ull << cluster_bits; }
};

// Reads the fixed part only (enough to learn cluster_bits/header_length).
Result<Header> parse_fixed_header(std::span<const uint8_t> bytes);

// Parses the whole header from the start of the file (at least the first
// cluster, or the whole file if shorter) and validates it against the file
// size. Errors use qemu's wording where it has one.
Result<Header> parse_header(std::span<const uint8_t> bytes, uint64_t file_size);

// Serialises the header, its extensions and the backing file name into one
// cluster (fills backing_file_offset/size and header_length).
Result<std::vector<uint8_t>> serialize_header(Header& header);

// Feature table QEMU writes into every v3 image.
std::vector<FeatureName> default_feature_names();

// "dirty bit, corrupt bit, Unknown incompatible feature: 20" style list of
// the set bits in `mask`, named from the image's feature table.
std::string describe_incompatible(uint64_t mask, const std::vector<FeatureName>& names);

} // namespace kiln::block::qcow2
