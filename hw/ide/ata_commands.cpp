// IdeChannel: ATA command dispatch, IDENTIFY DEVICE, PIO/DMA reads and
// writes (LBA28, LBA48, CHS), FLUSH CACHE and the housekeeping commands.
#include <cstring>

#include "hw/ide/ide_channel.h"
#include "util/log.h"

namespace kiln::hw {

using namespace ata;

namespace {

// ATA strings: two characters per word, the first in the high byte.
void put_string(uint16_t* words, unsigned first_word, unsigned chars, const std::string& s)
{
    for (unsigned i = 0; i < chars; i++) {
        uint8_t c = i < s.size() ? uint8_t(s[i]) : ' ';
        uint16_t& w = words[first_word + i / 2];
        if (i % 2 == 0)
            w = uint16_t((w & 0x00ff) | c << 8);
        else
            w = uint16_t((w & 0xff00) | c);
    }
}

} // namespace

void IdeChannel::command_ok(IdeUnit& u, bool irq)
{
    u.status = k_drdy | k_dsc;
    u.error = 0;
    if (irq)
        raise_irq();
}

void IdeChannel::command_error(IdeUnit& u, uint8_t error)
{
    u.status = k_drdy | k_dsc | k_err;
    u.error = error;
    u.pio_end = PioEnd::None;
    u.dma_pending = false;
    raise_irq();
}

void IdeChannel::command_abort(IdeUnit& u) { command_error(u, k_abrt); }

void IdeChannel::execute(uint8_t command)
{
    IdeUnit& u = cur();
    u.command = command;
    ++u.generation;
    bool cd = u.kind == IdeKind::Cdrom;
    switch (command) {
    case k_cmd_identify:
        if (cd) {
            // ATAPI devices abort IDENTIFY and show their signature, which is
            // how hosts tell them apart.
            set_signature(u);
            command_abort(u);
            return;
        }
        identify(u);
        return;
    case k_cmd_identify_packet:
        if (!cd)
            return command_abort(u);
        identify_packet(u);
        return;
    case k_cmd_packet:
        if (!cd)
            return command_abort(u);
        u.atapi_dma = u.tf.feature & 1;
        u.byte_limit = uint32_t(u.tf.hcyl) << 8 | u.tf.lcyl;
        u.tf.nsector = k_ireason_cod;
        pio_start(u, 12, PioEnd::Packet);
        return;
    case k_cmd_device_reset:
        if (!cd)
            return command_abort(u);
        ++u.generation;
        u.pio_end = PioEnd::None;
        u.dma_pending = false;
        set_signature(u);
        u.status = 0;
        u.error = 0x01;
        return;
    case k_cmd_exec_diagnostic:
        for (auto& unit : m_units) {
            unit.error = 0x01;
            set_signature(unit);
            unit.tf.device = 0xa0;
            unit.status = unit.kind == IdeKind::Disk ? (k_drdy | k_dsc) : 0;
        }
        m_select = 0;
        raise_irq();
        return;
    default:
        break;
    }
    if (cd) {
        // Everything else an ATAPI device aborts (as QEMU, allowing the few
        // that cost nothing).
        if (command == k_cmd_check_power_mode || command == k_cmd_idle_immediate || command == k_cmd_set_features) {
            if (command == k_cmd_check_power_mode)
                u.tf.nsector = 0xff;
            command_ok(u);
            return;
        }
        set_signature(u);
        command_abort(u);
        return;
    }
    switch (command) {
    case k_cmd_read_sectors:
    case k_cmd_read_sectors_noretry:
    case k_cmd_read_sectors_ext:
    case k_cmd_read_multiple:
    case k_cmd_read_multiple_ext:
    case k_cmd_write_sectors:
    case k_cmd_write_sectors_noretry:
    case k_cmd_write_sectors_ext:
    case k_cmd_write_multiple:
    case k_cmd_write_multiple_ext:
    case k_cmd_read_dma:
    case k_cmd_read_dma_noretry:
    case k_cmd_read_dma_ext:
    case k_cmd_write_dma:
    case k_cmd_write_dma_noretry:
    case k_cmd_write_dma_ext:
    case k_cmd_write_dma_fua_ext:
        start_rw(u, command);
        return;
    case k_cmd_read_verify:
    case k_cmd_read_verify_noretry:
    case k_cmd_read_verify_ext: {
        bool lba48 = command == k_cmd_read_verify_ext;
        uint64_t lba = task_lba(u, lba48);
        uint64_t sectors = u.drive->size_bytes() / k_sector_bytes;
        if (lba == UINT64_MAX || lba + task_count(u, lba48) > sectors)
            return command_error(u, k_idnf | k_abrt);
        command_ok(u);
        return;
    }
    case k_cmd_flush_cache:
    case k_cmd_flush_cache_ext:
        flush(u);
        return;
    case k_cmd_set_features:
        set_features(u);
        return;
    case k_cmd_set_multiple:
        if (u.tf.nsector > k_max_mult_sectors || (u.tf.nsector & (u.tf.nsector - 1)))
            return command_abort(u);
        u.mult_sectors = u.tf.nsector;
        command_ok(u);
        return;
    case k_cmd_init_params:
        // Only the CHS translation's heads/sectors would change; LBA guests
        // never use it. Accept and keep the default 16/63 geometry.
        command_ok(u);
        return;
    case k_cmd_check_power_mode:
        u.tf.nsector = 0xff; // active or idle
        command_ok(u);
        return;
    case k_cmd_idle:
    case k_cmd_idle_immediate:
    case k_cmd_standby:
    case k_cmd_standby_immediate:
    case k_cmd_sleep:
    case k_cmd_seek:
        command_ok(u);
        return;
    case k_cmd_read_native_max:
    case k_cmd_read_native_max_ext: {
        bool lba48 = command == k_cmd_read_native_max_ext;
        uint64_t max = u.drive->size_bytes() / k_sector_bytes - 1;
        if (!lba48)
            max = std::min<uint64_t>(max, 0x0fffffff);
        set_task_lba(u, max, lba48);
        command_ok(u);
        return;
    }
    default:
        if (command >= k_cmd_recalibrate && command <= 0x1f) {
            command_ok(u);
            return;
        }
        if (Log::enabled(LogCategory::Unimp))
            Log::write(LogCategory::Unimp, "ide: unsupported ATA command " + std::to_string(command));
        command_abort(u);
        return;
    }
}

void IdeChannel::identify(IdeUnit& u)
{
    uint16_t w[256] = {};
    uint64_t sectors = u.drive->size_bytes() / k_sector_bytes;
    uint64_t cyls = u.cylinders;
    w[0] = 0x0040;
    w[1] = uint16_t(cyls);
    w[3] = uint16_t(u.heads);
    w[4] = uint16_t(512 * u.sectors_per_track);
    w[5] = 512;
    w[6] = uint16_t(u.sectors_per_track);
    put_string(w, 10, 20, u.serial);
    w[20] = 3;
    w[21] = 512;
    w[22] = 4;
    put_string(w, 23, 8, "2.5+");
    put_string(w, 27, 40, u.model);
    w[47] = 0x8000 | k_max_mult_sectors;
    w[48] = 1; // dword I/O
    w[49] = (1 << 11) | (1 << 9) | (1 << 8); // IORDY, LBA, DMA
    w[50] = 0x4000;
    w[51] = 0x200;
    w[52] = 0x200;
    w[53] = 1 | 2 | 4; // words 54-58, 64-70, 88 valid
    uint64_t chs = cyls * u.heads * u.sectors_per_track;
    w[54] = uint16_t(cyls);
    w[55] = uint16_t(u.heads);
    w[56] = uint16_t(u.sectors_per_track);
    w[57] = uint16_t(chs);
    w[58] = uint16_t(chs >> 16);
    if (u.mult_sectors)
        w[59] = uint16_t(0x100 | u.mult_sectors);
    uint64_t lba28 = std::min<uint64_t>(sectors, 0x0fffffff);
    w[60] = uint16_t(lba28);
    w[61] = uint16_t(lba28 >> 16);
    w[62] = 0x07;
    uint8_t mode = u.xfer_mode;
    w[63] = uint16_t(0x07 | ((mode >> 3) == 4 ? (1u << ((mode & 7) + 8)) : 0));
    w[64] = 0x03; // PIO 3 and 4
    w[65] = w[66] = w[67] = w[68] = 120;
    w[80] = 0xf0; // ATA-4 .. ATA-7
    w[81] = 0x16;
    w[82] = (1 << 14) | (1 << 5) | 1;
    w[83] = (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10);
    w[84] = 1 << 14;
    w[85] = uint16_t((1 << 14) | (u.write_cache ? (1 << 5) : 0) | 1);
    w[86] = (1 << 13) | (1 << 12) | (1 << 10);
    w[87] = 1 << 14;
    w[88] = uint16_t(0x3f | ((mode >> 3) == 8 ? (1u << ((mode & 7) + 8)) : 0));
    w[93] = 1 | (1 << 14) | 0x2000;
    w[100] = uint16_t(sectors);
    w[101] = uint16_t(sectors >> 16);
    w[102] = uint16_t(sectors >> 32);
    w[103] = uint16_t(sectors >> 48);
    w[106] = 0x4000; // one logical sector per physical
    pio_start(u, 512, PioEnd::None);
    std::memcpy(u.buf.data(), w, 512);
    raise_irq();
}

void IdeChannel::set_features(IdeUnit& u)
{
    switch (u.tf.feature) {
    case 0x02:
        u.write_cache = true;
        break;
    case 0x82:
        u.write_cache = false;
        break;
    case 0x03: {
        uint8_t mode = u.tf.nsector;
        unsigned kind = mode >> 3, n = mode & 7;
        bool valid = (kind <= 1 && n <= 4) || (kind == 4 && n <= 2) || (kind == 8 && n <= 5) || mode == 0;
        if (!valid)
            return command_abort(u);
        u.xfer_mode = mode;
        break;
    }
    case 0x05: // APM
    case 0x85:
    case 0x42: // AAM
    case 0xc2:
    case 0x55: // read look-ahead
    case 0xaa:
    case 0x66: // reverting to defaults
    case 0xcc:
    case 0x31:
    case 0x95:
        break;
    default:
        return command_abort(u);
    }
    command_ok(u);
}

bool IdeChannel::start_rw(IdeUnit& u, uint8_t command)
{
    bool lba48 = command == k_cmd_read_sectors_ext || command == k_cmd_read_multiple_ext
        || command == k_cmd_write_sectors_ext || command == k_cmd_write_multiple_ext || command == k_cmd_read_dma_ext
        || command == k_cmd_write_dma_ext || command == k_cmd_write_dma_fua_ext;
    bool write = command == k_cmd_write_sectors || command == k_cmd_write_sectors_noretry
        || command == k_cmd_write_sectors_ext || command == k_cmd_write_multiple || command == k_cmd_write_multiple_ext
        || command == k_cmd_write_dma || command == k_cmd_write_dma_noretry || command == k_cmd_write_dma_ext
        || command == k_cmd_write_dma_fua_ext;
    bool multiple = command == k_cmd_read_multiple || command == k_cmd_read_multiple_ext
        || command == k_cmd_write_multiple || command == k_cmd_write_multiple_ext;
    bool dma = command == k_cmd_read_dma || command == k_cmd_read_dma_noretry || command == k_cmd_read_dma_ext
        || command == k_cmd_write_dma || command == k_cmd_write_dma_noretry || command == k_cmd_write_dma_ext
        || command == k_cmd_write_dma_fua_ext;
    if (multiple && u.mult_sectors == 0) {
        command_abort(u);
        return false;
    }
    if (write && u.drive->read_only()) {
        command_abort(u);
        return false;
    }
    uint64_t lba = task_lba(u, lba48);
    uint32_t count = task_count(u, lba48);
    uint64_t sectors = u.drive->size_bytes() / k_sector_bytes;
    if (lba == UINT64_MAX || lba > sectors || count > sectors - lba) {
        command_error(u, k_idnf | k_abrt);
        return false;
    }
    u.lba = lba;
    u.remaining = count;
    u.lba48 = lba48;
    u.chunk = multiple ? u.mult_sectors : 1;
    if (dma) {
        u.dma_pending = true;
        u.dma_write = write;
        u.status = k_drdy | k_dsc | k_drq;
        dma_maybe_start();
        return true;
    }
    if (write) {
        // The first block is requested without an interrupt.
        pio_start(u, size_t(std::min(u.chunk, u.remaining)) * k_sector_bytes, PioEnd::WriteChunk);
        return true;
    }
    read_chunk(u);
    return true;
}

void IdeChannel::read_chunk(IdeUnit& u)
{
    uint32_t n = std::min(u.chunk, u.remaining);
    size_t bytes = size_t(n) * k_sector_bytes;
    u.status = k_bsy | k_drdy | k_dsc;
    m_io.start(run_read(unsigned(&u - m_units.data()), u.generation, u.lba* k_sector_bytes, bytes));
}

Task<void> IdeChannel::run_read(unsigned unit, uint32_t gen, uint64_t offset, size_t bytes)
{
    std::weak_ptr<bool> alive = m_alive;
    IdeUnit& u = m_units[unit];
    auto r = co_await u.drive->read(offset, block::QIov(u.buf.data(), bytes));
    auto lock = m_io.lock_machine();
    if (alive.expired() || u.generation != gen)
        co_return;
    if (!r && !io_failed(unit, gen, IoDirection::Read, r.error(), [this, unit, gen, offset, bytes] {
            m_io.start(run_read(unit, gen, offset, bytes));
        }))
        co_return;
    uint32_t n = uint32_t(bytes / k_sector_bytes);
    u.lba += n;
    u.remaining -= n;
    set_task_lba(u, u.lba - 1, u.lba48);
    pio_start(u, bytes, PioEnd::ReadNext);
    raise_irq();
}

void IdeChannel::write_chunk(IdeUnit& u)
{
    uint32_t n = std::min(u.chunk, u.remaining);
    u.status = k_bsy | k_drdy | k_dsc;
    m_io.start(
        run_write(unsigned(&u - m_units.data()), u.generation, u.lba* k_sector_bytes, size_t(n) * k_sector_bytes));
}

Task<void> IdeChannel::run_write(unsigned unit, uint32_t gen, uint64_t offset, size_t bytes)
{
    std::weak_ptr<bool> alive = m_alive;
    IdeUnit& u = m_units[unit];
    auto r = co_await u.drive->write(offset, block::QIov(u.buf.data(), bytes));
    if (r && !u.write_cache)
        r = co_await u.drive->flush();
    auto lock = m_io.lock_machine();
    if (alive.expired() || u.generation != gen)
        co_return;
    if (!r && !io_failed(unit, gen, IoDirection::Write, r.error(), [this, unit, gen, offset, bytes] {
            m_io.start(run_write(unit, gen, offset, bytes));
        }))
        co_return;
    uint32_t n = uint32_t(bytes / k_sector_bytes);
    u.lba += n;
    u.remaining -= n;
    set_task_lba(u, u.lba - 1, u.lba48);
    if (u.remaining > 0) {
        pio_start(u, size_t(std::min(u.chunk, u.remaining)) * k_sector_bytes, PioEnd::WriteChunk);
    } else {
        u.status = k_drdy | k_dsc;
    }
    raise_irq();
}

void IdeChannel::flush(IdeUnit& u)
{
    u.status = k_bsy | k_drdy | k_dsc;
    m_io.start(run_flush(unsigned(&u - m_units.data()), u.generation));
}

Task<void> IdeChannel::run_flush(unsigned unit, uint32_t gen)
{
    std::weak_ptr<bool> alive = m_alive;
    IdeUnit& u = m_units[unit];
    auto r = co_await u.drive->flush();
    auto lock = m_io.lock_machine();
    if (alive.expired() || u.generation != gen)
        co_return;
    if (!r && !io_failed(unit, gen, IoDirection::Write, r.error(), [this, unit, gen] {
            m_io.start(run_flush(unit, gen));
        }))
        co_return;
    command_ok(u);
}

bool IdeChannel::io_failed(unsigned unit, uint32_t gen, IoDirection dir, const Error& e, std::function<void()> retry)
{
    IdeUnit& u = m_units[unit];
    switch (u.drive->handle_error(dir, e, std::move(retry))) {
    case ErrorOutcome::Ignore:
        return true; // carry on as if it worked
    case ErrorOutcome::Stopped:
        return false; // stays BSY until the VM continues
    case ErrorOutcome::Report:
        break;
    }
    if (u.dma_pending || u.command == k_cmd_read_dma || u.command == k_cmd_write_dma || u.command == k_cmd_read_dma_ext
        || u.command == k_cmd_write_dma_ext) {
        m_bm_status = uint8_t((m_bm_status & ~0x01) | 0x02);
    }
    command_error(u, dir == IoDirection::Read ? uint8_t(k_unc | k_abrt) : k_abrt);
    return false;
}

} // namespace kiln::hw
