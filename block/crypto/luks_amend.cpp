#include "block/crypto/luks_amend.h"

#include <cerrno>
#include <cstdlib>

#include "block/crypto/luks.h"

namespace kiln::block::crypto {

namespace {

constexpr uint64_t k_default_iter_time_ms = 2000;

std::string with_prefix(std::string_view prefix, const char* key) { return std::string(prefix) + key; }

Result<std::optional<int64_t>> signed_number(const OptionList& options, const std::string& key)
{
    auto text = options.get(key);
    if (!text)
        return std::optional<int64_t>();
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(text->c_str(), &end, 0);
    if (text->empty() || *end || errno)
        return Error::invalid("Parameter '" + key + "' expects a number");
    return std::optional<int64_t>(n);
}

// QEMU prints the slot number with %u when adding and %i when erasing.
std::string slot_range_error(int64_t keyslot, bool as_unsigned)
{
    std::string shown = as_unsigned ? std::to_string(uint32_t(keyslot)) : std::to_string(int32_t(keyslot));
    return "Invalid keyslot " + shown + " specified, must be between 0 and " + std::to_string(k_luks_num_slots - 1);
}

size_t active_slots(const LuksHeader& h)
{
    size_t n = 0;
    for (const auto& s : h.slots)
        n += s.is_active();
    return n;
}

// The bytes slot `i` would occupy must lie in the key material area, clear
// of the header, the payload and every other active slot: a hostile header
// must not turn an amend into a write over data.
Result<void> check_slot_region(const LuksHeader& h, size_t i, size_t area_bytes)
{
    uint64_t start = uint64_t(h.slots[i].key_offset_sectors) * k_luks_sector_bytes;
    uint64_t end = start + h.split_key_bytes();
    std::string name = "LUKS keyslot " + std::to_string(i);
    if (start < k_luks_header_bytes)
        return Error::corrupt(name + " overlaps the LUKS header");
    if (end > h.payload_offset_bytes() || end > area_bytes)
        return Error::corrupt(name + " is overlapping with the encrypted payload");
    for (size_t j = 0; j < k_luks_num_slots; ++j) {
        if (j == i || !h.slots[j].is_active())
            continue;
        uint64_t o = uint64_t(h.slots[j].key_offset_sectors) * k_luks_sector_bytes;
        if (start < o + h.split_key_bytes() && o < end)
            return Error::corrupt("LUKS keyslots " + std::to_string(std::min(i, j)) + " and "
                + std::to_string(std::max(i, j)) + " are overlapping in the header");
    }
    return ok();
}

LuksAreaWrite header_write(const LuksHeader& h)
{
    auto bytes = h.serialize();
    return LuksAreaWrite { 0, SecureBytes(std::span<const uint8_t>(bytes)) };
}

Result<LuksAmendPlan> add_keyslot(const LuksHeader& header, std::span<const uint8_t> area, const LuksAmendOptions& o,
    const std::string& unlock_secret_id, const LuksSecretLookup& lookup, LuksAmendForce force)
{
    if (!o.new_secret)
        return Error::invalid("'new-secret' is required to activate a keyslot");
    if (o.old_secret)
        return Error::invalid("'old-secret' must not be given when activating keyslots");
    size_t slot = k_luks_num_slots;
    if (o.keyslot) {
        if (*o.keyslot < 0 || *o.keyslot >= int64_t(k_luks_num_slots))
            return Error::invalid(slot_range_error(*o.keyslot, true));
        slot = size_t(*o.keyslot);
    } else {
        for (size_t i = 0; i < k_luks_num_slots && slot == k_luks_num_slots; ++i)
            if (!header.slots[i].is_active())
                slot = i;
        if (slot == k_luks_num_slots)
            return Error::invalid("Can't add a keyslot - all keyslots are in use");
    }
    if (force == LuksAmendForce::No && header.slots[slot].is_active())
        return Error::invalid(
            "Refusing to overwrite active keyslot " + std::to_string(slot) + " - please erase it first");

    SecureBytes unlock = TRY(lookup(unlock_secret_id));
    SecureBytes master_key;
    for (size_t i = 0; i < k_luks_num_slots && master_key.empty(); ++i)
        master_key = TRY(luks_try_keyslot(header, i, area, unlock.span()));
    if (master_key.empty())
        return Error(ErrorKind::PermissionDenied, "Invalid password, cannot unlock any keyslot", EACCES);
    SecureBytes new_pass = TRY(lookup(*o.new_secret));

    LuksAmendPlan plan { header, {} };
    // A forced overwrite of an active slot: its own old material may go.
    plan.header.slots[slot].active = k_luks_slot_inactive;
    TRY(check_slot_region(plan.header, slot, area.size()));
    uint64_t iterations = TRY(luks_slot_iterations(header, o.iter_time_ms.value_or(k_default_iter_time_ms)));
    SecureBytes split = TRY(luks_store_keyslot(plan.header, slot, master_key.span(), new_pass.span(), iterations));
    uint64_t offset = uint64_t(plan.header.slots[slot].key_offset_sectors) * k_luks_sector_bytes;
    plan.writes.push_back({ offset, std::move(split) });
    plan.writes.push_back(header_write(plan.header));
    return plan;
}

Result<LuksAmendPlan> erase_keyslots(const LuksHeader& header, std::span<const uint8_t> area,
    const LuksAmendOptions& o, const LuksSecretLookup& lookup, LuksAmendForce force)
{
    if (o.new_secret)
        return Error::invalid("'new-secret' must not be given when erasing keyslots");
    if (o.iter_time_ms)
        return Error::invalid("'iter-time' must not be given when erasing keyslots");
    SecureBytes old_pass;
    if (o.old_secret)
        old_pass = TRY(lookup(*o.old_secret));

    std::vector<size_t> erase;
    if (o.keyslot) {
        if (*o.keyslot < 0 || *o.keyslot >= int64_t(k_luks_num_slots))
            return Error::invalid(slot_range_error(*o.keyslot, false));
        size_t slot = size_t(*o.keyslot);
        std::string n = std::to_string(slot);
        if (o.old_secret && TRY(luks_try_keyslot(header, slot, area, old_pass.span())).empty())
            return Error::invalid("Given keyslot " + n + " doesn't contain the given old password for erase operation");
        if (force == LuksAmendForce::No && !header.slots[slot].is_active())
            return Error::invalid("Given keyslot " + n + " is already erased (inactive) ");
        if (force == LuksAmendForce::No && active_slots(header) == 1)
            return Error::invalid("Attempt to erase the only active keyslot " + n
                + " which will erase all the data in the image irreversibly - refusing operation");
        erase.push_back(slot);
    } else if (o.old_secret) {
        for (size_t i = 0; i < k_luks_num_slots; ++i)
            if (!TRY(luks_try_keyslot(header, i, area, old_pass.span())).empty())
                erase.push_back(i);
        if (erase.empty())
            return Error::invalid("No keyslots match given (old) password for erase operation");
        if (force == LuksAmendForce::No && erase.size() == active_slots(header))
            return Error::invalid("All the active keyslots match the (old) password that was given and erasing them "
                                  "will erase all the data in the image irreversibly - refusing operation");
    } else {
        return Error::invalid("To erase keyslot(s), either explicit keyslot index or the password currently "
                              "contained in them must be given");
    }

    LuksAmendPlan plan { header, {} };
    for (size_t i : erase) {
        LuksKeySlot& s = plan.header.slots[i];
        s.active = k_luks_slot_inactive;
        s.iterations = 0;
        s.salt = {};
    }
    for (size_t i : erase)
        TRY(check_slot_region(plan.header, i, area.size()));
    // Inactive first: a crash between the writes leaves a disabled slot
    // whose material is still there, never an active slot of garbage.
    plan.writes.push_back(header_write(plan.header));
    for (size_t i : erase) {
        SecureBytes garbage(header.split_key_bytes());
        TRY(random_bytes(garbage.span()));
        uint64_t offset = uint64_t(plan.header.slots[i].key_offset_sectors) * k_luks_sector_bytes;
        plan.writes.push_back({ offset, std::move(garbage) });
    }
    return plan;
}

} // namespace

bool has_luks_amend_options(const OptionList& options, std::string_view prefix)
{
    for (const char* key : k_luks_amend_keys)
        if (options.has(with_prefix(prefix, key)))
            return true;
    return false;
}

Result<LuksAmendOptions> parse_luks_amend_options(const OptionList& options, std::string_view prefix)
{
    for (const char* key : k_luks_amend_keys)
        options.consume(with_prefix(prefix, key));
    LuksAmendOptions o;
    auto state = options.get(with_prefix(prefix, "state"));
    if (!state)
        return Error::invalid("Parameter 'state' is missing");
    if (*state == "active")
        o.state = LuksKeyslotState::Active;
    else if (*state == "inactive")
        o.state = LuksKeyslotState::Inactive;
    else
        return Error::invalid("Parameter 'state' does not accept value '" + *state + "'");
    o.new_secret = options.get(with_prefix(prefix, "new-secret"));
    o.old_secret = options.get(with_prefix(prefix, "old-secret"));
    o.keyslot = TRY(signed_number(options, with_prefix(prefix, "keyslot")));
    o.iter_time_ms = TRY(options.get_number(with_prefix(prefix, "iter-time")));
    // An hour of PBKDF2 per slot is already absurd; QEMU takes 0 as its floor.
    if (o.iter_time_ms && *o.iter_time_ms > 3'600'000)
        return Error::invalid("Parameter '" + with_prefix(prefix, "iter-time")
            + "' expects a time in milliseconds (0 to 3600000)");
    return o;
}

Result<LuksAmendPlan> luks_amend(const LuksHeader& header, std::span<const uint8_t> area,
    const LuksAmendOptions& options, const std::string& unlock_secret_id, const LuksSecretLookup& lookup,
    LuksAmendForce force)
{
    if (area.size() < header.key_material_end_bytes())
        return Error::corrupt("LUKS key material is truncated (" + std::to_string(area.size()) + " of "
            + std::to_string(header.key_material_end_bytes()) + " bytes)");
    if (options.state == LuksKeyslotState::Active)
        return add_keyslot(header, area, options, unlock_secret_id, lookup, force);
    return erase_keyslots(header, area, options, lookup, force);
}

} // namespace kiln::block::crypto
