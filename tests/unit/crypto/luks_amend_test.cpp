// LUKS key slot amendment (luks_amend.h) on an in-memory area: adding and
// erasing keys with QEMU 7.2's rules and messages, the order of the writes
// (the crash-safety contract), hostile slot layouts, and that no message
// ever contains a passphrase.
#include <map>

#include <gtest/gtest.h>

#include "block/crypto/luks.h"
#include "block/crypto/luks_amend.h"
#include "tests/unit/crypto/crypto_test_util.h"

using namespace kiln;
using namespace kiln::block::crypto;
using namespace kiln::block::crypto::test;

namespace {

const std::map<std::string, std::string> k_secrets
    = { { "sec0", "passw0rd-zero" }, { "sec1", "passw0rd-one" }, { "sec2", "passw0rd-two" } };

class LuksAmend : public ::testing::Test {
protected:
    void SetUp() override
    {
        LuksCreateOptions o;
        o.fixed_iterations = 1000;
        auto c = luks_create(o, bytes_of(k_secrets.at("sec0")));
        ASSERT_TRUE(c.ok()) << c.error().message();
        m_area = std::move(c->area);
        m_header = c->volume.header;
    }

    // Plans and applies; returns the error message or "".
    std::string amend(const char* text, LuksAmendForce force = LuksAmendForce::No, const char* unlock = "sec0")
    {
        auto opts = parse_luks_amend_options(OptionList::parse(text).value(), "");
        if (!opts)
            return opts.error().message();
        if (!opts->iter_time_ms && opts->state == LuksKeyslotState::Active)
            opts->iter_time_ms = 1; // QEMU's floor of 1000 iterations: fast
        m_last_writes.clear();
        auto lookup = [](const std::string& id) -> Result<SecureBytes> {
            auto it = k_secrets.find(id);
            if (it == k_secrets.end())
                return Error::not_found("No secret with id '" + id + "'");
            return SecureBytes(std::string_view(it->second));
        };
        auto plan = luks_amend(m_header, m_area, *opts, unlock, lookup, force);
        if (!plan)
            return plan.error().message();
        for (auto& w : plan->writes) {
            EXPECT_LE(w.offset_bytes + w.bytes.size(), m_area.size());
            std::copy(w.bytes.data(), w.bytes.data() + w.bytes.size(), m_area.begin() + long(w.offset_bytes));
            m_last_writes.push_back(w.offset_bytes);
        }
        // What is on disk now parses to the header the plan returned.
        auto reparsed = LuksHeader::parse(m_area);
        EXPECT_TRUE(reparsed.ok());
        if (reparsed.ok()) {
            EXPECT_EQ(reparsed->serialize(), plan->header.serialize());
        }
        m_header = plan->header;
        return "";
    }

    bool unlocks(const char* id)
    {
        auto v = luks_unlock(m_area, bytes_of(k_secrets.at(id)));
        return v.ok();
    }

    std::vector<bool> active() const
    {
        std::vector<bool> out;
        for (auto& s : m_header.slots)
            out.push_back(s.is_active());
        return out;
    }

    std::vector<uint8_t> m_area;
    LuksHeader m_header;
    std::vector<uint64_t> m_last_writes;
};

} // namespace

TEST_F(LuksAmend, AddToFirstFreeSlotThenChosenSlot)
{
    EXPECT_EQ(amend("state=active,new-secret=sec1"), "");
    EXPECT_EQ(active(), (std::vector<bool> { true, true, false, false, false, false, false, false }));
    EXPECT_EQ(amend("state=active,new-secret=sec2,keyslot=6"), "");
    EXPECT_TRUE(m_header.slots[6].is_active());
    EXPECT_GE(m_header.slots[6].iterations, 1000u);
    EXPECT_TRUE(unlocks("sec0"));
    EXPECT_TRUE(unlocks("sec1"));
    EXPECT_TRUE(unlocks("sec2"));
    // All three unlock the same master key: the payload cipher is shared.
    auto a = luks_unlock(m_area, bytes_of(k_secrets.at("sec0")));
    auto b = luks_unlock(m_area, bytes_of(k_secrets.at("sec2")));
    ASSERT_TRUE(a.ok() && b.ok());
    std::vector<uint8_t> x(512, 7), y(512, 7);
    ASSERT_TRUE(a->cipher.encrypt(3, x).ok());
    ASSERT_TRUE(b->cipher.encrypt(3, y).ok());
    EXPECT_EQ(x, y);
}

TEST_F(LuksAmend, AddWritesKeyMaterialBeforeTheHeader)
{
    ASSERT_EQ(amend("state=active,new-secret=sec1,keyslot=3"), "");
    ASSERT_EQ(m_last_writes.size(), 2u);
    EXPECT_EQ(m_last_writes[0], uint64_t(m_header.slots[3].key_offset_sectors) * 512);
    EXPECT_EQ(m_last_writes[1], 0u);
}

TEST_F(LuksAmend, EraseMarksInactiveBeforeWipingAndWipes)
{
    ASSERT_EQ(amend("state=active,new-secret=sec1"), "");
    uint64_t off = uint64_t(m_header.slots[0].key_offset_sectors) * 512;
    std::vector<uint8_t> before(m_area.begin() + long(off), m_area.begin() + long(off + 4096));
    ASSERT_EQ(amend("state=inactive,old-secret=sec0"), "");
    ASSERT_EQ(m_last_writes.size(), 2u);
    EXPECT_EQ(m_last_writes[0], 0u);
    EXPECT_EQ(m_last_writes[1], off);
    EXPECT_NE(std::vector<uint8_t>(m_area.begin() + long(off), m_area.begin() + long(off + 4096)), before);
    EXPECT_FALSE(m_header.slots[0].is_active());
    EXPECT_EQ(m_header.slots[0].iterations, 0u);
    EXPECT_FALSE(unlocks("sec0"));
    EXPECT_TRUE(unlocks("sec1"));
}

TEST_F(LuksAmend, QemuMessagesForEveryRefusal)
{
    EXPECT_EQ(amend("new-secret=sec1"), "Parameter 'state' is missing");
    EXPECT_EQ(amend("state=on"), "Parameter 'state' does not accept value 'on'");
    EXPECT_EQ(amend("state=active"), "'new-secret' is required to activate a keyslot");
    EXPECT_EQ(amend("state=active,new-secret=sec1,old-secret=sec0"),
        "'old-secret' must not be given when activating keyslots");
    EXPECT_EQ(amend("state=active,new-secret=sec1,keyslot=8"), "Invalid keyslot 8 specified, must be between 0 and 7");
    EXPECT_EQ(amend("state=active,new-secret=sec1,keyslot=-1"),
        "Invalid keyslot 4294967295 specified, must be between 0 and 7");
    EXPECT_EQ(amend("state=active,new-secret=sec1,keyslot=0"),
        "Refusing to overwrite active keyslot 0 - please erase it first");
    EXPECT_EQ(amend("state=active,new-secret=sec9"), "No secret with id 'sec9'");
    EXPECT_EQ(amend("state=active,new-secret=sec1", LuksAmendForce::No, "sec2"),
        "Invalid password, cannot unlock any keyslot");
    EXPECT_EQ(amend("state=active,new-secret=sec1,keyslot=x"), "Parameter 'keyslot' expects a number");
    EXPECT_EQ(amend("state=active,new-secret=sec1,iter-time=3600001"),
        "Parameter 'iter-time' expects a time in milliseconds (0 to 3600000)");
    EXPECT_EQ(amend("state=inactive"),
        "To erase keyslot(s), either explicit keyslot index or the password currently contained in them must be "
        "given");
    EXPECT_EQ(amend("state=inactive,new-secret=sec1"), "'new-secret' must not be given when erasing keyslots");
    EXPECT_EQ(amend("state=inactive,iter-time=10,keyslot=0"), "'iter-time' must not be given when erasing keyslots");
    EXPECT_EQ(amend("state=inactive,keyslot=-1"), "Invalid keyslot -1 specified, must be between 0 and 7");
    EXPECT_EQ(amend("state=inactive,keyslot=5"), "Given keyslot 5 is already erased (inactive) ");
    EXPECT_EQ(amend("state=inactive,keyslot=0,old-secret=sec1"),
        "Given keyslot 0 doesn't contain the given old password for erase operation");
    EXPECT_EQ(amend("state=inactive,old-secret=sec1"), "No keyslots match given (old) password for erase operation");
    EXPECT_EQ(amend("state=inactive,old-secret=sec9"), "No secret with id 'sec9'");
    EXPECT_EQ(amend("state=inactive,keyslot=0"),
        "Attempt to erase the only active keyslot 0 which will erase all the data in the image irreversibly - "
        "refusing operation");
    EXPECT_EQ(amend("state=inactive,old-secret=sec0"),
        "All the active keyslots match the (old) password that was given and erasing them will erase all the data "
        "in the image irreversibly - refusing operation");
    // Nothing above changed the area.
    EXPECT_TRUE(unlocks("sec0"));
    EXPECT_EQ(active(), (std::vector<bool> { true, false, false, false, false, false, false, false }));
}

TEST_F(LuksAmend, AllSlotsInUse)
{
    for (int i = 1; i < 8; ++i)
        ASSERT_EQ(amend("state=active,new-secret=sec1"), "");
    EXPECT_EQ(amend("state=active,new-secret=sec2"), "Can't add a keyslot - all keyslots are in use");
    // Erasing by password takes every slot that holds it.
    ASSERT_EQ(amend("state=inactive,old-secret=sec1"), "");
    EXPECT_EQ(active(), (std::vector<bool> { true, false, false, false, false, false, false, false }));
}

TEST_F(LuksAmend, ForceOverwritesAndErasesTheLastSlot)
{
    ASSERT_EQ(amend("state=active,new-secret=sec1,keyslot=0", LuksAmendForce::Yes), "");
    EXPECT_FALSE(unlocks("sec0"));
    EXPECT_TRUE(unlocks("sec1"));
    // An inactive slot may be erased again with force.
    EXPECT_EQ(amend("state=inactive,keyslot=4", LuksAmendForce::Yes), "");
    ASSERT_EQ(amend("state=inactive,keyslot=0", LuksAmendForce::Yes), "");
    EXPECT_EQ(active(), std::vector<bool>(8, false));
    EXPECT_FALSE(unlocks("sec1"));
}

TEST_F(LuksAmend, HostileSlotLayoutIsRefusedBeforeAnyWrite)
{
    // Inactive slot 2's key material pointed into the payload area.
    m_header.slots[2].key_offset_sectors = m_header.payload_offset_sectors - 1;
    auto bytes = m_header.serialize();
    std::copy(bytes.begin(), bytes.end(), m_area.begin());
    auto snapshot = m_area;
    EXPECT_EQ(amend("state=active,new-secret=sec1,keyslot=2"),
        "LUKS keyslot 2 is overlapping with the encrypted payload");
    // Slot 3 over slot 0's material.
    m_header.slots[3].key_offset_sectors = m_header.slots[0].key_offset_sectors + 8;
    EXPECT_EQ(amend("state=active,new-secret=sec1,keyslot=3"), "LUKS keyslots 0 and 3 are overlapping in the header");
    m_header.slots[3].key_offset_sectors = 0;
    EXPECT_EQ(amend("state=active,new-secret=sec1,keyslot=3"), "LUKS keyslot 3 overlaps the LUKS header");
    EXPECT_EQ(m_area, snapshot);
}

TEST_F(LuksAmend, TruncatedAreaIsRefused)
{
    m_area.resize(8192);
    std::string e = amend("state=active,new-secret=sec1");
    EXPECT_NE(e.find("LUKS key material is truncated"), std::string::npos) << e;
}

TEST_F(LuksAmend, NoMessageContainsAPassphrase)
{
    std::vector<std::string> messages;
    for (const char* text : { "state=active,new-secret=sec1,keyslot=0", "state=inactive,old-secret=sec1",
             "state=inactive,keyslot=0", "state=active,new-secret=sec1,old-secret=sec2" })
        messages.push_back(amend(text));
    messages.push_back(amend("state=active,new-secret=sec1", LuksAmendForce::No, "sec2"));
    for (const auto& m : messages) {
        EXPECT_FALSE(m.empty());
        for (const auto& [id, pass] : k_secrets)
            EXPECT_EQ(m.find(pass), std::string::npos) << m;
    }
}
