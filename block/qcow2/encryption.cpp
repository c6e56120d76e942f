// qcow2 encryption: LUKS (crypt_method=2, header extension 0x0537be77)
// and the legacy AES method (crypt_method=1), on top of block/crypto/.
//
// Data clusters are encrypted per 512-byte sector. LUKS numbers sectors by
// HOST file offset, legacy AES by GUEST offset (QEMU's
// crypt_physical_offset); tests/unit/crypto/qcow2_interop_test.cpp proves
// both against QEMU. Metadata, zero and unallocated clusters are never
// encrypted; compressed clusters cannot be written to encrypted images.
//
// Secrets: the passphrase is fetched from the BlockContext, used, and
// wiped; only the SectorCipher (master key) stays. No message here ever
// contains it.
#include <algorithm>

#include "block/crypto/legacy_aes.h"
#include "block/crypto/luks.h"
#include "block/crypto/secure_bytes.h"
#include "block/luks/area_amend.h"
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

namespace {

constexpr uint64_t k_sector = crypto::SectorCipher::k_sector_bytes;
constexpr uint64_t k_crypto_ext_bytes = 16;

std::span<const uint8_t> bytes_of(const std::string& s)
{
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Error key_secret_required() { return Error::invalid("Parameter 'encrypt.key-secret' is required for cipher"); }

} // namespace

Result<LuksArea> Qcow2Node::luks_area() const
{
    for (const auto& ext : m_header.other_extensions) {
        if (ext.type != k_ext_crypto)
            continue;
        if (ext.data.size() != k_crypto_ext_bytes)
            return Error::corrupt("qcow2: Invalid encryption header length");
        LuksArea area{load_be64(ext.data.data()), load_be64(ext.data.data() + 8)};
        if (area.offset & (m_cluster_size - 1))
            return Error::corrupt("qcow2: encryption header offset is not cluster aligned");
        if (area.length < crypto::k_luks_header_bytes || area.length > k_max_image_bytes
            || area.offset > m_file->size_bytes() || area.length > m_file->size_bytes() - area.offset)
            return Error::corrupt("qcow2: encryption header lies outside the image file");
        if (area.offset < m_cluster_size)
            return Error::corrupt("qcow2: encryption header overlaps the image header");
        return area;
    }
    return Error::corrupt("Missing CRYPTO header for crypt method 2");
}

Task<Result<void>> Qcow2Node::open_encryption(const ImageSpec& spec)
{
    const Header& h = m_header;
    auto secret_id = spec.options.get("encrypt.key-secret");
    spec.options.consume("encrypt.key-secret");
    if (auto fmt = spec.options.get("encrypt.format")) {
        spec.options.consume("encrypt.format");
        if ((*fmt == "luks") != (h.crypt_method == 2) || (*fmt != "luks" && *fmt != "aes"))
            co_return Error::invalid("Header reported 'encrypt.format' does not match the image's encryption");
    }
    if (h.crypt_method > 2)
        co_return Error::invalid("Unsupported encryption method: " + std::to_string(h.crypt_method));
    if (h.crypt_method == 2) {
        LuksArea area = CO_TRY(luks_area());
        std::vector<uint8_t> head(crypto::k_luks_header_bytes);
        CO_TRY(co_await read_clamped(*m_file, area.offset, head.data(), head.size()));
        m_luks = CO_TRY(crypto::LuksHeader::parse(head));
        if (!secret_id) {
            if (spec.flags.no_io)
                co_return ok(); // info: the header is enough
            co_return key_secret_required();
        }
        uint64_t need = m_luks->key_material_end_bytes();
        if (need > area.length)
            co_return Error::corrupt("qcow2: LUKS key material extends past the encryption header area");
        std::string pass = CO_TRY(context().secret(*secret_id));
        crypto::SecureBytes material(need);
        auto rd = co_await read_clamped(*m_file, area.offset, material.data(), material.size());
        if (!rd) {
            crypto::wipe_string(pass);
            co_return std::move(rd).error();
        }
        // PBKDF2 takes up to iter-time per slot by design: off the loop.
        auto volume = co_await context().pool().run([&] { return crypto::luks_unlock(material.span(), bytes_of(pass)); });
        crypto::wipe_string(pass);
        if (!volume)
            co_return std::move(volume).error();
        m_cipher.emplace(std::move(volume->cipher));
        m_key_secret_id = *secret_id;
        co_return ok();
    }
    if (!secret_id) {
        if (spec.flags.no_io)
            co_return ok();
        co_return key_secret_required();
    }
    co_return use_legacy_aes(*secret_id);
}

Result<void> Qcow2Node::use_legacy_aes(const std::string& secret_id)
{
    std::string pass = TRY(context().secret(secret_id));
    auto cipher = crypto::legacy_qcow_aes_cipher(bytes_of(pass));
    crypto::wipe_string(pass);
    if (!cipher)
        return std::move(cipher).error();
    m_cipher.emplace(std::move(*cipher));
    return ok();
}

Result<void> Qcow2Node::check_cipher() const
{
    if (!m_cipher)
        return key_secret_required();
    return ok();
}

uint64_t Qcow2Node::crypt_sector(uint64_t host, uint64_t guest) const
{
    return (m_header.crypt_method == 2 ? host : guest) / k_sector;
}

Task<Result<void>> Qcow2Node::read_data(uint64_t host, uint64_t guest, QIov qiov)
{
    if (!encrypted())
        co_return co_await read_file_clamped(host, std::move(qiov));
    CO_TRY(check_cipher());
    // Whole sectors around the request (reads may start mid-sector).
    uint64_t head = host % k_sector;
    uint64_t len = align_up(head + qiov.size(), k_sector);
    std::vector<uint8_t> buf(len);
    // Encrypted data lives in the external data file when there is one.
    CO_TRY(co_await read_clamped(*data_node(), host - head, buf.data(), len));
    const crypto::SectorCipher& c = *m_cipher;
    uint64_t sector = crypt_sector(host - head, guest - head);
    CO_TRY(co_await context().pool().run([&] { return c.decrypt(sector, buf); }));
    qiov.copy_in(0, buf.data() + head, qiov.size());
    co_return ok();
}

Task<Result<void>> Qcow2Node::write_data(uint64_t host, uint64_t guest, QIov qiov)
{
    if (!encrypted()) {
        CO_TRY(co_await data_node()->pwritev(host, std::move(qiov), RequestFlags::None));
        co_return ok();
    }
    CO_TRY(check_cipher());
    if ((host | qiov.size()) % k_sector)
        co_return Error::internal("qcow2: unaligned write reached the encryption layer");
    // The guest's buffers must not be encrypted in place: a bounce copy.
    std::vector<uint8_t> buf(qiov.size());
    qiov.copy_out(0, buf.data(), buf.size());
    const crypto::SectorCipher& c = *m_cipher;
    uint64_t sector = crypt_sector(host, guest);
    CO_TRY(co_await context().pool().run([&] { return c.encrypt(sector, buf); }));
    CO_TRY(co_await data_node()->pwritev(host, QIov(buf.data(), buf.size()), RequestFlags::None));
    co_return ok();
}

// Sub-sector guest writes: read-modify-write of the covering sectors, so
// the layers below only see whole sectors. Concurrent sub-sector writes
// to one sector are not serialised (devices write whole sectors).
Task<Result<void>> Qcow2Node::pwritev_unaligned_encrypted(uint64_t offset, QIov qiov, RequestFlags flags)
{
    uint64_t start = offset / k_sector * k_sector;
    uint64_t end = align_up(offset + qiov.size(), k_sector);
    std::vector<uint8_t> buf(end - start);
    CO_TRY(co_await preadv(start, QIov(buf.data(), buf.size())));
    qiov.copy_out(0, buf.data() + (offset - start), qiov.size());
    co_return co_await pwritev(start, QIov(buf.data(), buf.size()), flags);
}

nlohmann::json Qcow2Node::encryption_info() const
{
    if (m_header.crypt_method == 1)
        return nlohmann::json{{"format", "aes"}};
    if (m_header.crypt_method == 2 && m_luks) {
        nlohmann::json j = m_luks->info();
        j["format"] = "luks";
        return j;
    }
    return nullptr;
}

Result<std::optional<crypto::LuksAmendOptions>> Qcow2Node::check_encryption_amend(const OptionList& options) const
{
    if (!crypto::has_luks_amend_options(options, "encrypt."))
        return std::optional<crypto::LuksAmendOptions>();
    if (m_header.crypt_method == 0)
        return Error::invalid("Can't amend encryption options - encryption not present");
    if (m_header.crypt_method != 2)
        return Error::not_supported("Only LUKS encryption options can be amended");
    return std::optional(TRY(crypto::parse_luks_amend_options(options, "encrypt.")));
}

// Key slots live in the LUKS area (extension 0x0537be77): clusters of
// their own that no qcow2 metadata shares, so no metadata ordering is
// involved; luks/area_amend.cpp orders the area's own writes.
Task<Result<void>> Qcow2Node::amend_encryption(const crypto::LuksAmendOptions& options, AmendFlags flags)
{
    CO_TRY(check_cipher());
    if (!m_luks)
        co_return key_secret_required();
    LuksArea area = CO_TRY(luks_area());
    auto guard = co_await co_lock(m_meta_lock);
    m_luks = CO_TRY(co_await amend_luks_area(
        context(), *m_file, LuksAreaLocation{area.offset, area.length}, *m_luks, options, m_key_secret_id, flags));
    co_return ok();
}

Result<void> check_encryption_secret(BlockContext& ctx, const OptionList& options)
{
    bool legacy = TRY(options.get_bool("encryption")).value_or(false);
    if (!options.has("encrypt.format") && !legacy)
        return ok();
    auto id = options.get("encrypt.key-secret");
    if (!id)
        return key_secret_required();
    std::string pass = TRY(ctx.secret(*id));
    crypto::wipe_string(pass);
    return ok();
}

// Create: QEMU places the LUKS area at the first free clusters after the
// L1 table and records it in the header extension.
Task<Result<void>> Qcow2Node::setup_encryption(const OptionList& options)
{
    std::string format = options.get("encrypt.format").value_or("");
    auto legacy = CO_TRY(options.get_bool("encryption"));
    options.consume("encrypt.format");
    options.consume("encryption");
    if (format.empty() && legacy && *legacy)
        format = "aes";
    if (format.empty()) {
        if (options.has("encrypt.key-secret"))
            co_return Error::invalid("encrypt.key-secret requires encrypt.format");
        co_return ok();
    }
    if (format != "luks" && format != "aes")
        co_return Error::invalid("Parameter 'encrypt.format' does not accept value '" + format + "'");
    auto secret_id = options.get("encrypt.key-secret");
    options.consume("encrypt.key-secret");
    if (!secret_id)
        co_return key_secret_required();
    if (format == "aes") {
        for (const char* k : {"encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg",
                              "encrypt.ivgen-hash-alg", "encrypt.hash-alg", "encrypt.iter-time"})
            if (options.has(k))
                co_return Error::invalid(std::string("Invalid parameter '") + (k + 8) + "'");
        CO_TRY(use_legacy_aes(*secret_id));
        m_header.crypt_method = 1;
    } else {
        crypto::LuksCreateOptions o = CO_TRY(crypto::parse_luks_create_options(options, "encrypt."));
        std::string pass = CO_TRY(context().secret(*secret_id));
        auto created = co_await context().pool().run([&] { return crypto::luks_create(o, bytes_of(pass)); });
        crypto::wipe_string(pass);
        if (!created)
            co_return std::move(created).error();
        auto guard = co_await co_lock(m_meta_lock);
        uint64_t clusters = div_round_up(created->area.size(), m_cluster_size);
        uint64_t off = CO_TRY(co_await alloc_clusters(clusters));
        std::vector<uint8_t> area = std::move(created->area);
        uint64_t area_bytes = area.size();
        area.resize(clusters * m_cluster_size, 0);
        CO_TRY(co_await m_file->pwritev(off, QIov(area.data(), area.size()), RequestFlags::None));
        note_write();
        RawExtension ext;
        ext.type = k_ext_crypto;
        ext.data.resize(k_crypto_ext_bytes);
        store_be64(ext.data.data(), off);
        store_be64(ext.data.data() + 8, area_bytes);
        m_header.other_extensions.push_back(std::move(ext));
        m_header.crypt_method = 2;
        m_luks = created->volume.header;
        m_cipher.emplace(std::move(created->volume.cipher));
    }
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await order_after_refcounts());
    CO_TRY(co_await write_header());
    CO_TRY(co_await flush_covering(m_write_seq));
    co_return ok();
}

} // namespace kiln::block::qcow2
