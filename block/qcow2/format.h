// qcow2 on-disk constants and helpers (docs/interop/qcow2.rst).
// Everything on disk is big-endian.
#pragma once

#include <cstdint>
#include <cstring>

namespace kiln::block::qcow2 {

inline constexpr uint32_t k_magic = 0x514649fb; // "QFI\xfb"
inline constexpr uint32_t k_min_cluster_bits = 9;
inline constexpr uint32_t k_max_cluster_bits = 21;
inline constexpr uint32_t k_v2_header_bytes = 72;
inline constexpr uint32_t k_v3_header_bytes = 104;
// What Kiln writes for v3 (includes compression_type + padding), as QEMU.
inline constexpr uint32_t k_v3_header_written_bytes = 112;
inline constexpr uint32_t k_max_backing_name_bytes = 1023;
inline constexpr uint32_t k_max_l1_bytes = 32u << 20;        // QCOW_MAX_L1_SIZE
inline constexpr uint32_t k_max_refcount_table_bytes = 8u << 20; // QCOW_MAX_REFTABLE_SIZE
inline constexpr uint32_t k_max_snapshots = 65536;
inline constexpr uint64_t k_max_image_bytes = 1ull << 56;   // offsets are 56 bits

// Incompatible feature bits.
inline constexpr uint64_t k_incompat_dirty = 1ull << 0;
inline constexpr uint64_t k_incompat_corrupt = 1ull << 1;
inline constexpr uint64_t k_incompat_data_file = 1ull << 2;
inline constexpr uint64_t k_incompat_compression = 1ull << 3;
inline constexpr uint64_t k_incompat_extended_l2 = 1ull << 4;
inline constexpr uint64_t k_incompat_known = 0x1f;
// Compatible feature bits.
inline constexpr uint64_t k_compat_lazy_refcounts = 1ull << 0;
// Autoclear bits.
inline constexpr uint64_t k_autoclear_bitmaps = 1ull << 0;
inline constexpr uint64_t k_autoclear_data_file_raw = 1ull << 1;

// Header extension types.
inline constexpr uint32_t k_ext_end = 0;
inline constexpr uint32_t k_ext_backing_format = 0xe2792aca;
inline constexpr uint32_t k_ext_feature_table = 0x6803f857;
inline constexpr uint32_t k_ext_bitmaps = 0x23852875;
inline constexpr uint32_t k_ext_crypto = 0x0537be77;
inline constexpr uint32_t k_ext_data_file = 0x44415441;

// L1/L2 entry bits.
inline constexpr uint64_t k_oflag_copied = 1ull << 63;
inline constexpr uint64_t k_oflag_compressed = 1ull << 62;
inline constexpr uint64_t k_oflag_zero = 1ull << 0;
inline constexpr uint64_t k_l1e_offset_mask = 0x00fffffffffffe00ull;
inline constexpr uint64_t k_l2e_offset_mask = 0x00fffffffffffe00ull;
inline constexpr uint64_t k_l1e_reserved_mask = 0x7f000000000001ffull;
inline constexpr uint64_t k_l2e_std_reserved_mask = 0x3f000000000001feull;
inline constexpr uint64_t k_reftable_offset_mask = 0xfffffffffffffe00ull;

inline constexpr uint8_t k_compression_zlib = 0;
inline constexpr uint8_t k_compression_zstd = 1;

inline uint16_t load_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t load_be32(const uint8_t* p)
{
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline uint64_t load_be64(const uint8_t* p) { return uint64_t(load_be32(p)) << 32 | load_be32(p + 4); }
inline void store_be16(uint8_t* p, uint16_t v)
{
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
inline void store_be32(uint8_t* p, uint32_t v)
{
    p[0] = uint8_t(v >> 24);
    p[1] = uint8_t(v >> 16);
    p[2] = uint8_t(v >> 8);
    p[3] = uint8_t(v);
}
inline void store_be64(uint8_t* p, uint64_t v)
{
    store_be32(p, uint32_t(v >> 32));
    store_be32(p + 4, uint32_t(v));
}

inline uint64_t div_round_up(uint64_t n, uint64_t d) { return (n + d - 1) / d; }
inline uint64_t align_up(uint64_t n, uint64_t a) { return div_round_up(n, a) * a; }

// Kinds of standard/compressed L2 entries (qcow2.rst "Cluster Descriptor").
enum class ClusterType { Unallocated, ZeroPlain, ZeroAlloc, Normal, Compressed };

inline ClusterType cluster_type(uint64_t l2_entry, bool v3)
{
    if (l2_entry & k_oflag_compressed)
        return ClusterType::Compressed;
    // v2 has no zero flag; bit 0 is reserved there and ignored.
    if (v3 && (l2_entry & k_oflag_zero))
        return (l2_entry & k_l2e_offset_mask) ? ClusterType::ZeroAlloc : ClusterType::ZeroPlain;
    return (l2_entry & k_l2e_offset_mask) ? ClusterType::Normal : ClusterType::Unallocated;
}

} // namespace kiln::block::qcow2
