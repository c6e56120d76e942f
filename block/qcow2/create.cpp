#include "block/qcow2/create.h"

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

std::vector<CreateOptionInfo> create_options()
{
    return {
        {"backing_file", "str", "File name of a base image", ""},
        {"backing_fmt", "str", "Image format of the base image", ""},
        {"cluster_size", "size", "qcow2 cluster size", "65536"},
        {"compat", "str", "Compatibility level (v2 [0.10] or v3 [1.1])", "1.1"},
        {"compression_type", "str", "Compression method used for image cluster compression", "zlib"},
        {"data_file", "str", "File name of an external data file", ""},
        {"data_file_raw", "bool", "The external data file must stay valid as a raw image", "off"},
        {"encrypt.cipher-alg", "str", "Name of encryption cipher algorithm", ""},
        {"encrypt.cipher-mode", "str", "Name of encryption cipher mode", ""},
        {"encrypt.format", "str", "Encrypt the image, format choices: 'aes', 'luks'", ""},
        {"encrypt.hash-alg", "str", "Name of encryption hash algorithm", ""},
        {"encrypt.iter-time", "num", "Time to spend in PBKDF in milliseconds", ""},
        {"encrypt.ivgen-alg", "str", "Name of IV generator algorithm", ""},
        {"encrypt.ivgen-hash-alg", "str", "Name of IV generator hash algorithm", ""},
        {"encrypt.key-secret", "str", "ID of secret providing qcow AES key or LUKS passphrase", ""},
        {"encryption", "bool", "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)", "off"},
        {"extended_l2", "bool", "Extended L2 tables", "off"},
        {"lazy_refcounts", "bool", "Postpone refcount updates", "off"},
        {"preallocation", "str", "Preallocation mode (allowed values: off, metadata, falloc, full)", "off"},
        {"refcount_bits", "num", "Width of a reference count entry in bits", "16"},
        {"size", "size", "Virtual disk size", ""},
    };
}

struct CreateParams {
    uint32_t version = 3;
    uint32_t cluster_bits = 16;
    uint32_t refcount_order = 4;
    bool lazy_refcounts = false;
    uint8_t compression_type = k_compression_zlib;
    PreallocMode prealloc = PreallocMode::Off;
    std::string backing_file;
    std::string backing_fmt;
    bool extended_l2 = false;
    std::string data_file;
    bool data_file_raw = false;
};

// extended_l2, data_file, data_file_raw (QEMU's checks and messages).
static Result<void> parse_layout_params(const OptionList& o, CreateParams& p)
{
    p.extended_l2 = TRY(o.get_bool("extended_l2")).value_or(false);
    if (p.extended_l2) {
        if (p.version < 3)
            return Error::invalid("Extended L2 entries are only supported with compatibility level 1.1 and above "
                                  "(use version=v3 or greater)");
        if (p.cluster_bits < 14)
            return Error::invalid("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");
    }
    p.data_file = o.get("data_file").value_or("");
    p.data_file_raw = TRY(o.get_bool("data_file_raw")).value_or(false);
    if (!p.data_file.empty() && p.version < 3)
        return Error::invalid("External data files are only supported with compatibility level 1.1 and above (use "
                              "version=v3 or greater)");
    if (p.data_file_raw && p.data_file.empty())
        return Error::invalid("data-file-raw requires data-file");
    return ok();
}

static Result<CreateParams> parse_params(const OptionList& o)
{
    CreateParams p;
    if (auto v = o.get("compat")) {
        if (*v == "0.10" || *v == "v2")
            p.version = 2;
        else if (*v == "1.1" || *v == "v3")
            p.version = 3;
        else
            return Error::invalid("Parameter 'version' does not accept value '" + *v + "'");
    }
    if (auto v = TRY(o.get_size("cluster_size"))) {
        uint64_t cs = *v;
        if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)))
            return Error::invalid("Cluster size must be a power of two between 512 and 2048k");
        p.cluster_bits = uint32_t(__builtin_ctzll(cs));
    }
    if (auto v = TRY(o.get_number("refcount_bits"))) {
        uint64_t bits = *v;
        if (bits == 0 || bits > 64 || (bits & (bits - 1)))
            return Error::invalid("Refcount width must be a power of two and may not exceed 64 bits");
        if (p.version < 3 && bits != 16)
            return Error::invalid("Different refcount widths than 16 bits require compatibility level 1.1 or above "
                                  "(use compat=1.1 or greater)");
        p.refcount_order = uint32_t(__builtin_ctzll(bits));
    }
    if (auto v = TRY(o.get_bool("lazy_refcounts")); v && *v) {
        if (p.version < 3)
            return Error::invalid("Lazy refcounts only supported with compatibility level 1.1 and above (use "
                                  "compat=1.1 or greater)");
        p.lazy_refcounts = true;
    }
    if (auto v = o.get("compression_type")) {
        if (*v == "zstd")
            p.compression_type = k_compression_zstd;
        else if (*v != "zlib")
            return Error::invalid("Parameter 'compression-type' does not accept value '" + *v + "'");
        if (p.version < 3 && p.compression_type != k_compression_zlib)
            return Error::invalid("Non-zlib compression type is only supported with compatibility level 1.1 and "
                                  "above (use compat=1.1 or greater)");
    }
    if (auto v = o.get("preallocation")) {
        auto m = parse_prealloc(*v);
        if (!m)
            return Error::invalid("Parameter 'preallocation' does not accept value '" + *v + "'");
        p.prealloc = *m;
    }
    bool encrypt = o.has("encrypt.format") || TRY(o.get_bool("encryption")).value_or(false);
    if (encrypt && p.prealloc != PreallocMode::Off)
        return Error::invalid("qcow2: preallocation is not supported with encryption (the clusters would not "
                              "read back as zeroes)");
    TRY(parse_layout_params(o, p));
    p.backing_file = o.get("backing_file").value_or("");
    p.backing_fmt = o.get("backing_fmt").value_or("");
    if (!p.backing_fmt.empty() && p.backing_file.empty())
        return Error::invalid("Backing format cannot be used without backing file");
    if (!p.backing_file.empty() && p.prealloc != PreallocMode::Off && !p.extended_l2)
        return Error::invalid("Backing file and preallocation can only be used at the same time if extended_l2 is on");
    if (!p.backing_file.empty() && p.data_file_raw)
        return Error::invalid("Backing file and data-file-raw cannot be used at the same time");
    // QEMU accepts this, but the identity-mapped clusters of a raw data
    // file are preallocated, and unwritten ones would not read as zeroes
    // through the cipher (the reason preallocation is refused above).
    if (encrypt && p.data_file_raw)
        return Error::invalid("qcow2: data_file_raw is not supported with encryption (the clusters would not read "
                              "back as zeroes)");
    // The data file must map every guest offset identically from the start.
    if (p.data_file_raw && p.prealloc == PreallocMode::Off)
        p.prealloc = PreallocMode::Metadata;
    for (const char* k : {"compat", "cluster_size", "refcount_bits", "lazy_refcounts", "compression_type",
                          "preallocation", "extended_l2", "data_file", "data_file_raw", "backing_file",
                          "backing_fmt", "size"})
        o.consume(k);
    return p;
}

// Writes the three-cluster skeleton (header, refcount table, refcount block).
static Task<Result<void>> write_skeleton(BlockNode& file, const CreateParams& p)
{
    Header h;
    h.version = p.version;
    h.cluster_bits = p.cluster_bits;
    h.refcount_order = p.refcount_order;
    uint64_t cs = h.cluster_size();
    h.refcount_table_offset = cs;
    h.refcount_table_clusters = 1;
    if (p.lazy_refcounts)
        h.compatible_features |= k_compat_lazy_refcounts;
    h.compression_type = p.compression_type;
    if (p.compression_type != k_compression_zlib)
        h.incompatible_features |= k_incompat_compression;
    if (p.extended_l2)
        h.incompatible_features |= k_incompat_extended_l2;
    if (!p.data_file.empty()) {
        h.incompatible_features |= k_incompat_data_file;
        h.data_file = p.data_file;
        if (p.data_file_raw)
            h.autoclear_features |= k_autoclear_data_file_raw;
    }
    std::vector<uint8_t> image(3 * cs, 0);
    std::vector<uint8_t> header = CO_TRY(serialize_header(h));
    std::memcpy(image.data(), header.data(), header.size());
    store_be64(&image[cs], 2 * cs);
    // Refcounts 1 for clusters 0..2, in the chosen width.
    uint8_t* rb = &image[2 * cs];
    for (uint64_t i = 0; i < 3; ++i) {
        switch (p.refcount_order) {
        case 0: rb[0] |= uint8_t(1u << i); break;
        case 1: rb[0] |= uint8_t(1u << (2 * i)); break;
        case 2: rb[i / 2] |= uint8_t(1u << (4 * (i % 2))); break;
        case 3: rb[i] = 1; break;
        case 4: store_be16(rb + 2 * i, 1); break;
        case 5: store_be32(rb + 4 * i, 1); break;
        default: store_be64(rb + 8 * i, 1); break;
        }
    }
    CO_TRY(co_await file.pwritev(0, QIov(image.data(), image.size()), RequestFlags::None));
    CO_TRY(co_await file.flush());
    co_return ok();
}

Task<Result<void>> create_image(BlockContext& ctx, const std::string& filename, uint64_t size_bytes,
                                const OptionList& options)
{
    CreateParams p = CO_TRY(parse_params(options));
    if (size_bytes == 0 && !p.backing_file.empty()) {
        ImageSpec b;
        b.filename = block::resolve_backing_path(filename, p.backing_file);
        b.format = p.backing_fmt;
        b.flags.no_backing = false;
        auto backing = co_await ctx.open_image(b);
        if (!backing)
            co_return Error(backing.error().kind(), "Could not open backing image: " + backing.error().message(),
                            backing.error().errno_value());
        size_bytes = (*backing)->size_bytes();
        (void)co_await (*backing)->close();
    }
    if (size_bytes % 512)
        co_return Error::invalid("Image size must be a multiple of 512 bytes");
    if (size_bytes > k_max_image_bytes)
        co_return Error::invalid("Image is too big");

    CO_TRY(check_encryption_secret(ctx, options));
    if (!p.data_file.empty()) {
        // As qemu-img: the name as given, relative to the current directory.
        CO_TRY(co_await ctx.create_file(p.data_file, 0, PreallocMode::Off));
    }
    CO_TRY(co_await ctx.create_file(filename, 0, PreallocMode::Off, options.subtree("file")));

    OpenFlags flags;
    flags.read_write = true;
    auto file = CO_TRY(co_await ctx.open_file(filename, OptionList{}, flags));
    OptionList opts = options;
    opts.set("size", std::to_string(size_bytes));
    auto node = CO_TRY(co_await format_node(ctx, std::move(file), filename, opts));
    co_return co_await node->close();
}

Task<Result<std::unique_ptr<BlockNode>>> format_node(BlockContext& ctx, std::unique_ptr<BlockNode> file,
                                                     const std::string& filename, const OptionList& options)
{
    CreateParams p = CO_TRY(parse_params(options));
    uint64_t size_bytes = CO_TRY(options.get_size("size")).value_or(0);
    if (size_bytes % 512)
        co_return Error::invalid("Image size must be a multiple of 512 bytes");
    CO_TRY(co_await write_skeleton(*file, p));
    ImageSpec spec;
    spec.filename = filename;
    spec.format = "qcow2";
    spec.flags.read_write = true;
    spec.flags.no_backing = true;
    auto node = CO_TRY(co_await Qcow2Node::open(ctx, std::move(file), spec));
    auto* q = static_cast<Qcow2Node*>(node.get());
    Result<void> r = ok();
    if (!p.backing_file.empty())
        r = co_await q->set_backing(p.backing_file, p.backing_fmt);
    if (r)
        r = co_await q->truncate(size_bytes, p.prealloc, false);
    if (r)
        r = co_await q->setup_encryption(options);
    if (!r) {
        (void)co_await node->close();
        co_return std::move(r).error();
    }
    co_return node;
}

} // namespace kiln::block::qcow2
