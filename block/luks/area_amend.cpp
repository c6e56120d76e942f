#include "block/luks/area_amend.h"

#include <map>

namespace kiln::block {

namespace {

// The secrets an amendment may ask for, fetched on the event loop thread
// (the BlockContext is not shared with the pool); failures are kept and
// reported when, and only if, the planner asks.
class PrefetchedSecrets {
public:
    PrefetchedSecrets(BlockContext& ctx, const std::vector<std::string>& ids)
    {
        for (const auto& id : ids) {
            if (m_secrets.count(id))
                continue;
            auto text = ctx.secret(id);
            if (!text) {
                m_secrets.emplace(id, std::move(text).error());
                continue;
            }
            m_secrets.emplace(id, crypto::SecureBytes(std::string_view(*text)));
            crypto::wipe_string(*text);
        }
    }

    Result<crypto::SecureBytes> lookup(const std::string& id) const
    {
        auto it = m_secrets.find(id);
        if (it == m_secrets.end())
            return Error::not_found("No secret with id '" + id + "'");
        return it->second;
    }

private:
    std::map<std::string, Result<crypto::SecureBytes>> m_secrets;
};

} // namespace

Task<Result<crypto::LuksHeader>> amend_luks_area(BlockContext& ctx, BlockNode& file, LuksAreaLocation where,
    const crypto::LuksHeader& header, const crypto::LuksAmendOptions& options, const std::string& unlock_secret_id,
    AmendFlags flags)
{
    uint64_t file_bytes = file.size_bytes();
    uint64_t length = where.length_bytes;
    if (where.offset_bytes > file_bytes)
        co_return Error::corrupt("LUKS header lies outside '" + file.filename() + "'");
    length = std::min(length, file_bytes - where.offset_bytes);
    length = std::min<uint64_t>(length, crypto::k_luks_max_key_material_end_bytes);
    crypto::SecureBytes area(length);
    CO_TRY(co_await file.preadv(where.offset_bytes, QIov(area.data(), area.size())));

    std::vector<std::string> ids { unlock_secret_id };
    if (options.old_secret)
        ids.push_back(*options.old_secret);
    if (options.new_secret)
        ids.push_back(*options.new_secret);
    PrefetchedSecrets secrets(ctx, ids);
    auto force = flags.force ? crypto::LuksAmendForce::Yes : crypto::LuksAmendForce::No;
    // PBKDF2 (unlocking, the new slot's calibration) takes seconds: off the loop.
    auto plan = co_await ctx.pool().run([&] {
        return crypto::luks_amend(header, area.span(), options, unlock_secret_id,
            [&](const std::string& id) { return secrets.lookup(id); }, force);
    });
    if (!plan)
        co_return std::move(plan).error();
    for (auto& w : plan->writes) {
        CO_TRY(co_await file.pwritev(where.offset_bytes + w.offset_bytes, QIov(w.bytes.data(), w.bytes.size()),
            RequestFlags::None));
        CO_TRY(co_await file.flush());
    }
    co_return std::move(plan->header);
}

} // namespace kiln::block
