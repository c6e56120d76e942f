// IdeChannel: ATAPI CD-ROM (PACKET commands, MMC subset): INQUIRY, TEST
// UNIT READY, REQUEST SENSE, READ CAPACITY, READ(10)/(12), READ TOC
// (formats 0 and 1), MODE SENSE(10), GET CONFIGURATION, GET EVENT STATUS
// NOTIFICATION, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, and the
// unit attention a medium change raises.
#include <cstring>

#include "hw/ide/ide_channel.h"
#include "util/log.h"

namespace kiln::hw {

using namespace ata;

namespace {

constexpr unsigned k_read_chunk_sectors = 16; // 32 KiB per block-layer read in PIO mode

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
void put_be32(uint8_t* p, uint32_t v)
{
    p[0] = uint8_t(v >> 24);
    p[1] = uint8_t(v >> 16);
    p[2] = uint8_t(v >> 8);
    p[3] = uint8_t(v);
}
void put_be16(uint8_t* p, uint16_t v)
{
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
void put_padded(uint8_t* p, size_t n, const char* s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < n; i++)
        p[i] = i < len ? uint8_t(s[i]) : ' ';
}
// Writes an address as LBA or as MSF (minute/second/frame, +2 s lead-in).
void put_address(uint8_t* p, uint32_t lba, bool msf)
{
    if (!msf) {
        put_be32(p, lba);
        return;
    }
    uint32_t x = lba + 150;
    p[0] = 0;
    p[1] = uint8_t(x / (75 * 60));
    p[2] = uint8_t((x / 75) % 60);
    p[3] = uint8_t(x % 75);
}

} // namespace

void IdeChannel::identify_packet(IdeUnit& u)
{
    uint16_t w[256] = {};
    w[0] = (2 << 14) | (5 << 8) | (1 << 7) | (2 << 5);
    auto put = [&](unsigned first, unsigned chars, const std::string& s) {
        for (unsigned i = 0; i < chars; i++) {
            uint8_t c = i < s.size() ? uint8_t(s[i]) : ' ';
            uint16_t& x = w[first + i / 2];
            x = i % 2 == 0 ? uint16_t((x & 0x00ff) | c << 8) : uint16_t((x & 0xff00) | c);
        }
    };
    put(10, 20, u.serial);
    w[20] = 3;
    w[21] = 512;
    w[22] = 4;
    put(23, 8, "2.5+");
    put(27, 40, u.model);
    w[48] = 1;
    w[49] = (1 << 9) | (1 << 8);
    w[53] = 7;
    w[62] = 7;
    w[63] = uint16_t(7 | ((u.xfer_mode >> 3) == 4 ? (1u << ((u.xfer_mode & 7) + 8)) : 0));
    w[64] = 3;
    w[65] = w[66] = w[67] = w[68] = 0xb4;
    w[71] = 30;
    w[72] = 30;
    w[80] = 0x1e;
    w[82] = 1 << 4; // PACKET feature set
    w[83] = 1 << 14;
    w[84] = 1 << 14;
    w[85] = 1 << 4;
    w[86] = 0;
    w[87] = 1 << 14;
    w[88] = uint16_t(0x3f | ((u.xfer_mode >> 3) == 8 ? (1u << ((u.xfer_mode & 7) + 8)) : 0));
    w[93] = 1 | (1 << 14) | 0x2000;
    pio_start(u, 512, PioEnd::None);
    std::memcpy(u.buf.data(), w, 512);
    u.status = k_drdy | k_dsc | k_drq;
    raise_irq();
}

void IdeChannel::packet_command(IdeUnit& u)
{
    uint8_t cdb[12];
    std::memcpy(cdb, u.buf.data(), 12);
    u.reply.clear();
    u.reply_pos = 0;
    u.remaining = 0;
    atapi_dispatch(u, cdb);
}

void IdeChannel::atapi_ok(IdeUnit& u)
{
    u.status = k_drdy | k_dsc;
    u.error = 0;
    u.tf.nsector = k_ireason_io | k_ireason_cod;
    raise_irq();
}

void IdeChannel::atapi_check_condition(IdeUnit& u, uint8_t key, uint8_t asc, uint8_t ascq)
{
    u.sense_key = key;
    u.asc = asc;
    u.ascq = ascq;
    u.status = k_drdy | k_err;
    u.error = uint8_t(key << 4);
    u.dma_pending = false;
    u.reply.clear();
    u.tf.nsector = k_ireason_io | k_ireason_cod;
    raise_irq();
}

void IdeChannel::atapi_reply(IdeUnit& u, std::vector<uint8_t> data, size_t alloc)
{
    data.resize(std::min(data.size(), alloc));
    if (data.empty()) {
        atapi_ok(u);
        return;
    }
    u.reply = std::move(data);
    u.reply_pos = 0;
    if (u.atapi_dma) {
        u.dma_pending = true;
        u.status = k_drdy | k_dsc | k_drq;
        dma_maybe_start();
        return;
    }
    atapi_send_next(u);
}

void IdeChannel::atapi_send_next(IdeUnit& u)
{
    if (u.reply_pos >= u.reply.size()) {
        u.reply.clear();
        if (u.remaining > 0)
            atapi_read_next(u);
        else
            atapi_ok(u);
        return;
    }
    uint32_t limit = u.byte_limit == 0 || u.byte_limit == 0xffff ? 0xfffe : u.byte_limit;
    limit &= ~1u;
    if (limit == 0)
        limit = 2;
    size_t block = std::min<size_t>(u.reply.size() - u.reply_pos, limit);
    bool last = u.reply_pos + block >= u.reply.size() && u.remaining == 0;
    pio_start(u, block, last ? PioEnd::AtapiDone : PioEnd::AtapiNext);
    std::memcpy(u.buf.data(), u.reply.data() + u.reply_pos, block);
    u.reply_pos += block;
    u.tf.lcyl = uint8_t(block);
    u.tf.hcyl = uint8_t(block >> 8);
    u.tf.nsector = k_ireason_io;
    raise_irq();
}

bool IdeChannel::atapi_medium_ready(IdeUnit& u, uint8_t op)
{
    bool exempt = op == 0x12 || op == 0x03 || op == 0x46 || op == 0x4a;
    unsigned gen = u.drive ? u.drive->medium_generation() : 0;
    if (gen != u.seen_medium) {
        u.seen_medium = gen;
        u.media_event = true;
        if (!exempt) {
            atapi_check_condition(u, k_sense_unit_attention, k_asc_medium_may_have_changed);
            return false;
        }
    }
    return true;
}

void IdeChannel::atapi_read(IdeUnit& u, uint64_t lba, uint32_t count)
{
    uint64_t total = u.drive->size_bytes() / k_cd_sector_bytes;
    if (lba > total || count > total - lba) {
        atapi_check_condition(u, k_sense_illegal_request, k_asc_lba_out_of_range);
        return;
    }
    if (count == 0) {
        atapi_ok(u);
        return;
    }
    u.lba = lba;
    u.remaining = count;
    if (u.atapi_dma) {
        u.dma_pending = true;
        u.status = k_drdy | k_dsc | k_drq;
        dma_maybe_start();
        return;
    }
    atapi_read_next(u);
}

void IdeChannel::atapi_read_next(IdeUnit& u)
{
    uint32_t n = std::min<uint32_t>(u.remaining, k_read_chunk_sectors);
    u.status = k_bsy | k_drdy | k_dsc;
    m_io.start(run_atapi_read(unsigned(&u - m_units.data()), u.generation, u.lba, n));
}

Task<void> IdeChannel::run_atapi_read(unsigned unit, uint32_t gen, uint64_t lba, uint32_t count)
{
    std::weak_ptr<bool> alive = m_alive;
    IdeUnit& u = m_units[unit];
    std::vector<uint8_t> data(size_t(count) * k_cd_sector_bytes);
    auto r = co_await u.drive->read(lba * k_cd_sector_bytes, block::QIov(data.data(), data.size()));
    auto lock = m_io.lock_machine();
    if (alive.expired() || u.generation != gen)
        co_return;
    if (!r) {
        auto outcome = u.drive->handle_error(IoDirection::Read, r.error(),
            [this, unit, gen, lba, count] { m_io.start(run_atapi_read(unit, gen, lba, count)); });
        if (outcome == ErrorOutcome::Stopped)
            co_return;
        if (outcome == ErrorOutcome::Report) {
            atapi_check_condition(u, r.error().errno_value() == ENOMEDIUM ? k_sense_not_ready : k_sense_medium_error,
                r.error().errno_value() == ENOMEDIUM ? k_asc_medium_not_present : k_asc_read_error);
            co_return;
        }
    }
    u.lba += count;
    u.remaining -= count;
    u.reply = std::move(data);
    u.reply_pos = 0;
    atapi_send_next(u);
}

void IdeChannel::atapi_dispatch(IdeUnit& u, const uint8_t* cdb)
{
    uint8_t op = cdb[0];
    if (!atapi_medium_ready(u, op))
        return;
    bool medium = u.drive && u.drive->has_medium();
    uint64_t total = medium ? u.drive->size_bytes() / k_cd_sector_bytes : 0;
    auto need_medium = [&]() {
        if (medium)
            return true;
        atapi_check_condition(u, k_sense_not_ready, k_asc_medium_not_present);
        return false;
    };
    switch (op) {
    case 0x00: // TEST UNIT READY
        if (need_medium())
            atapi_ok(u);
        return;
    case 0x03: { // REQUEST SENSE
        std::vector<uint8_t> s(18, 0);
        s[0] = 0x70;
        s[2] = u.sense_key;
        s[7] = 10;
        s[12] = u.asc;
        s[13] = u.ascq;
        u.sense_key = u.asc = u.ascq = 0;
        atapi_reply(u, std::move(s), cdb[4]);
        return;
    }
    case 0x12: { // INQUIRY
        std::vector<uint8_t> d(36, 0);
        d[0] = 0x05; // CD/DVD device
        d[1] = 0x80; // removable
        d[2] = 0x00;
        d[3] = 0x21; // ATAPI, response format 1
        d[4] = 31;
        put_padded(&d[8], 8, "QEMU");
        put_padded(&d[16], 16, "QEMU DVD-ROM");
        put_padded(&d[32], 4, "2.5+");
        atapi_reply(u, std::move(d), be16(&cdb[3]));
        return;
    }
    case 0x1b: { // START STOP UNIT
        bool loej = cdb[4] & 2, start = cdb[4] & 1;
        if (loej && !start) {
            if (u.tray_locked) {
                atapi_check_condition(u, k_sense_not_ready, k_asc_medium_removal_prevented, 0x02);
                return;
            }
            if (medium) {
                Drive* d = u.drive;
                m_io.start([](Drive* drive) -> Task<void> { (void)co_await drive->eject(); }(d));
            }
        }
        atapi_ok(u);
        return;
    }
    case 0x1e: // PREVENT ALLOW MEDIUM REMOVAL
        u.tray_locked = cdb[4] & 1;
        atapi_ok(u);
        return;
    case 0x25: { // READ CAPACITY
        if (!need_medium())
            return;
        std::vector<uint8_t> d(8);
        put_be32(&d[0], uint32_t(total ? total - 1 : 0));
        put_be32(&d[4], k_cd_sector_bytes);
        atapi_reply(u, std::move(d), 8);
        return;
    }
    case 0x28: // READ(10)
        if (need_medium())
            atapi_read(u, be32(&cdb[2]), be16(&cdb[7]));
        return;
    case 0xa8: // READ(12)
        if (need_medium())
            atapi_read(u, be32(&cdb[2]), be32(&cdb[6]));
        return;
    case 0x43: { // READ TOC/PMA/ATIP
        if (!need_medium())
            return;
        bool msf = cdb[1] & 2;
        unsigned format = cdb[2] & 0x0f;
        if (format == 0 && (cdb[9] >> 6))
            format = cdb[9] >> 6; // the older position of the format field
        size_t alloc = be16(&cdb[7]);
        std::vector<uint8_t> d;
        if (format == 0) {
            unsigned start = cdb[6];
            if (start > 1 && start != 0xaa) {
                atapi_check_condition(u, k_sense_illegal_request, k_asc_invalid_field);
                return;
            }
            d.resize(4);
            d[2] = 1;
            d[3] = 1;
            auto track = [&](uint8_t number, uint32_t lba) {
                uint8_t t[8] = { 0, 0x14, number, 0 };
                put_address(&t[4], lba, msf);
                d.insert(d.end(), t, t + 8);
            };
            if (start <= 1)
                track(1, 0);
            track(0xaa, uint32_t(total));
        } else if (format == 1) {
            d.resize(12, 0);
            d[2] = 1;
            d[3] = 1;
            d[5] = 0x14;
            d[6] = 1;
            put_address(&d[8], 0, msf);
        } else {
            atapi_check_condition(u, k_sense_illegal_request, k_asc_invalid_field);
            return;
        }
        put_be16(&d[0], uint16_t(d.size() - 2));
        atapi_reply(u, std::move(d), alloc);
        return;
    }
    case 0x5a: { // MODE SENSE(10)
        unsigned page = cdb[2] & 0x3f;
        size_t alloc = be16(&cdb[7]);
        std::vector<uint8_t> d(8, 0);
        d[2] = 0x70; // medium type as QEMU reports it
        if (page == 0x01 || page == 0x3f) {
            uint8_t p[12] = { 0x01, 0x0a, 0x00, 0x05 };
            d.insert(d.end(), p, p + 12);
        }
        if (page == 0x2a || page == 0x3f) {
            uint8_t p[28] = { 0x2a, 0x1a, 0x3f, 0x00, 0x71, 0x60, 0x29, 0x00, 0x02, 0xc2, 0x00, 0x02, 0x02, 0x00 };
            p[6] = uint8_t(0x29 | (u.tray_locked ? 0x02 : 0));
            d.insert(d.end(), p, p + 28);
        }
        if (d.size() == 8) {
            atapi_check_condition(u, k_sense_illegal_request, k_asc_invalid_field);
            return;
        }
        put_be16(&d[0], uint16_t(d.size() - 2));
        atapi_reply(u, std::move(d), alloc);
        return;
    }
    case 0x46: { // GET CONFIGURATION
        size_t alloc = be16(&cdb[7]);
        uint16_t profile = !medium ? 0 : total > 360000 ? 0x0010 : 0x0008; // DVD-ROM or CD-ROM
        std::vector<uint8_t> d(8, 0);
        put_be16(&d[6], profile);
        uint8_t profiles[12] = { 0x00, 0x00, 0x03, 0x08, 0x00, 0x10, uint8_t(profile == 0x10), 0, 0x00, 0x08,
            uint8_t(profile == 0x08), 0 };
        d.insert(d.end(), profiles, profiles + 12);
        uint8_t core[12] = { 0x00, 0x01, 0x0b, 0x08, 0x00, 0x00, 0x00, 0x02, 0x01, 0, 0, 0 };
        d.insert(d.end(), core, core + 12);
        uint8_t removable[8] = { 0x00, 0x03, 0x0b, 0x04, 0x29, 0, 0, 0 };
        d.insert(d.end(), removable, removable + 8);
        put_be32(&d[0], uint32_t(d.size() - 4));
        atapi_reply(u, std::move(d), alloc);
        return;
    }
    case 0x4a: { // GET EVENT STATUS NOTIFICATION
        if (!(cdb[1] & 1)) { // only polled mode exists on ATAPI
            atapi_check_condition(u, k_sense_illegal_request, k_asc_invalid_field);
            return;
        }
        size_t alloc = be16(&cdb[7]);
        std::vector<uint8_t> d(4, 0);
        d[3] = 0x10; // supported classes: media
        if (cdb[4] & 0x10) {
            d[2] = 0x04; // media class
            uint8_t event = 0;
            if (u.media_event) {
                event = medium ? 2 : 3; // new media / media removal
                u.media_event = false;
            }
            uint8_t m[4] = { event, uint8_t(medium ? 0x02 : 0x00), 0, 0 };
            d.insert(d.end(), m, m + 4);
        } else {
            d[2] = 0x80; // no event available
        }
        put_be16(&d[0], uint16_t(d.size() - 2));
        atapi_reply(u, std::move(d), alloc);
        return;
    }
    case 0xbd: { // MECHANISM STATUS
        std::vector<uint8_t> d(8, 0);
        atapi_reply(u, std::move(d), be16(&cdb[8]));
        return;
    }
    default:
        if (Log::enabled(LogCategory::Unimp))
            Log::write(LogCategory::Unimp, "ide: unsupported ATAPI command " + std::to_string(op));
        atapi_check_condition(u, k_sense_illegal_request, k_asc_invalid_opcode);
        return;
    }
}

} // namespace kiln::hw
