// External data files (incompatible bit 2, header extension 0x44415441,
// autoclear bit 1 "raw external data"): guest data lives in a separate
// file at its guest offset. Data clusters there have no refcounts; the
// qcow2 file keeps only metadata. With data_file_raw the data file must
// read as the guest disk at all times, so zeroing also zeroes it there.
#include <cinttypes>
#include <cstdio>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::open_data_file(const ImageSpec& spec)
{
    const Header& h = m_header;
    OptionList opts = spec.options.subtree("data-file");
    spec.options.consume("data-file");
    std::string path = opts.get("filename").value_or(h.data_file);
    opts.remove("filename");
    opts.remove("driver");
    if (path.empty())
        co_return Error::invalid("'data-file' is required for this image");
    // QEMU opens the recorded name as it is (relative to the current
    // directory, unlike backing files).
    auto data = co_await context().open_file(path, opts, spec.flags);
    if (!data) {
        // qemu-img info opens without I/O and shows the name anyway.
        if (spec.flags.no_io)
            co_return ok();
        co_return std::move(data).error();
    }
    m_data_file = std::move(data).value();
    co_return ok();
}

Task<Result<uint64_t>> Qcow2Node::alloc_data_clusters(uint64_t guest, uint64_t count, uint64_t* got)
{
    if (m_data_file) {
        *got = count;
        co_return guest & ~(m_cluster_size - 1);
    }
    auto guard = co_await co_lock(m_meta_lock);
    co_return co_await alloc_some_clusters(count, got);
}

Task<void> Qcow2Node::free_new_data_clusters(uint64_t host, uint64_t count)
{
    if (m_data_file)
        co_return;
    // Nothing points at the clusters: give them back (or leak them if even
    // that fails).
    auto guard = co_await co_lock(m_meta_lock);
    (void)co_await set_refcounts(host >> m_cluster_bits, count, 0);
}

Result<void> Qcow2Node::check_data_file_entry(uint64_t guest, uint64_t entry, uint64_t l1_idx) const
{
    if (!(m_header.incompatible_features & k_incompat_data_file))
        return ok();
    char buf[200];
    uint64_t l2_off = l1_idx < m_l1.size() ? (m_l1[l1_idx] & k_l1e_offset_mask) : 0;
    if (entry & k_oflag_compressed) {
        std::snprintf(buf, sizeof buf,
                      "Compressed cluster entry found in image with external data file (L2 offset: %#" PRIx64
                      ", L2 index: %#" PRIx64 ")",
                      l2_off, l2_index(guest));
        return Error::corrupt(buf);
    }
    ClusterType t = type_of(entry);
    if (t != ClusterType::Normal && t != ClusterType::ZeroAlloc)
        return ok();
    uint64_t host = entry & k_l2e_offset_mask;
    uint64_t guest_cluster = guest & ~(m_cluster_size - 1);
    if (host != guest_cluster) {
        std::snprintf(buf, sizeof buf,
                      "External data file host cluster offset %#" PRIx64
                      " does not match guest cluster offset: %#" PRIx64 ", L2 index: %#" PRIx64 ")",
                      host, guest_cluster, l2_index(guest));
        return Error::corrupt(buf);
    }
    return ok();
}

Task<Result<void>> Qcow2Node::resize_data_file(uint64_t new_size, PreallocMode prealloc)
{
    if (!m_data_file || m_data_file->size_bytes() == new_size)
        co_return ok();
    // Metadata preallocation concerns the qcow2 file only.
    if (prealloc == PreallocMode::Metadata)
        prealloc = PreallocMode::Off;
    CO_TRY(co_await m_data_file->truncate(new_size, prealloc, true));
    co_return ok();
}

Task<Result<void>> Qcow2Node::zero_raw_data_file(uint64_t offset, uint64_t bytes)
{
    if (!m_data_file || !data_file_raw() || bytes == 0)
        co_return ok();
    CO_TRY(co_await m_data_file->pwrite_zeroes(offset, bytes, RequestFlags::MayUnmap));
    note_write();
    co_return ok();
}

// amend -o data_file=NAME / data_file_raw=on|off, with QEMU's rules: the
// name can only change on an image that has a data file, and raw mode can
// only be switched off (turning it on, even where it is on already, is
// refused: the data file would have to be a raw copy).
Task<Result<void>> Qcow2Node::amend_data_file(const OptionList& options)
{
    auto name = options.get("data_file");
    std::optional<bool> raw = CO_TRY(options.get_bool("data_file_raw"));
    bool has = m_header.incompatible_features & k_incompat_data_file;
    if (name && !has)
        co_return Error::invalid("data-file can only be set for images that use an external data file");
    if (raw && *raw)
        co_return Error::invalid("data-file-raw cannot be set on existing images");
    if (!name && !(raw && !*raw))
        co_return ok();
    auto guard = co_await co_lock(m_meta_lock);
    Header saved = m_header;
    if (name)
        m_header.data_file = *name;
    if (raw && !*raw)
        m_header.autoclear_features &= ~k_autoclear_data_file_raw;
    auto r = co_await write_header();
    if (!r) {
        m_header = saved;
        co_return std::move(r).error();
    }
    CO_TRY(co_await m_file->flush());
    co_return ok();
}

} // namespace kiln::block::qcow2
