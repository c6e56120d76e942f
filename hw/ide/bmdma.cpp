// IdeChannel: bus-master DMA (SFF-8038i). The PRD table and the data
// buffers are reached only through the checked DMA API: a table that never
// ends, or an entry outside RAM, ends the transfer with the error bit set.
#include <cstring>

#include "hw/core/guest_memory.h"
#include "hw/ide/ide_channel.h"
#include "util/log.h"

namespace kiln::hw {

using namespace ata;

namespace {

// A PRD table lives in one 64 KiB region: at most 8192 entries.
constexpr unsigned k_max_prd_entries = 65536 / 8;
constexpr uint8_t k_bm_start = 0x01, k_bm_to_memory = 0x08;
constexpr uint8_t k_bm_active = 0x01, k_bm_error = 0x02, k_bm_irq = 0x04;

void guest_error(const std::string& what)
{
    if (Log::enabled(LogCategory::Guest))
        Log::write(LogCategory::Guest, "ide: " + what);
}

} // namespace

uint64_t IdeChannel::bm_read(uint64_t offset, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        uint64_t o = offset + i;
        uint8_t b = 0;
        if (o == 0)
            b = m_bm_command;
        else if (o == 2)
            b = m_bm_status;
        else if (o >= 4 && o < 8)
            b = uint8_t(m_bm_prd >> (8 * (o - 4)));
        v |= uint64_t(b) << (8 * i);
    }
    return v;
}

void IdeChannel::bm_write(uint64_t offset, unsigned size, uint64_t value)
{
    for (unsigned i = 0; i < size; i++) {
        uint64_t o = offset + i;
        uint8_t b = uint8_t(value >> (8 * i));
        if (o == 0) {
            uint8_t old = m_bm_command;
            m_bm_command = b & (k_bm_start | k_bm_to_memory);
            if ((b & k_bm_start) && !(old & k_bm_start)) {
                m_bm_status |= k_bm_active;
                dma_maybe_start();
            } else if (!(b & k_bm_start)) {
                // Stopping the engine does not cancel a request in flight;
                // its completion still updates the status.
                m_bm_status &= ~k_bm_active;
            }
        } else if (o == 2) {
            // Bits 1 and 2 clear when written with 1; 5 and 6 are scratch.
            m_bm_status = uint8_t((m_bm_status & ~(b & (k_bm_error | k_bm_irq))) & ~0x60);
            m_bm_status |= b & 0x60;
        } else if (o >= 4 && o < 8) {
            unsigned shift = unsigned(8 * (o - 4));
            m_bm_prd = (m_bm_prd & ~(0xffu << shift)) | (uint32_t(b) << shift);
            m_bm_prd &= ~3u;
        }
    }
}

Result<block::QIov> IdeChannel::dma_map(uint64_t bytes)
{
    block::QIov qiov;
    uint64_t addr = m_bm_prd;
    uint64_t left = bytes;
    m_dma_ranges.clear();
    for (unsigned n = 0; left > 0; n++) {
        if (n >= k_max_prd_entries)
            return Error::invalid("PRD table at " + std::to_string(m_bm_prd) + " has no end marker");
        uint32_t base = TRY(m_io.memory->read_value<uint32_t>(addr + 8 * n));
        uint32_t ctl = TRY(m_io.memory->read_value<uint32_t>(addr + 8 * n + 4));
        uint32_t len = ctl & 0xfffe;
        if (len == 0)
            len = 0x10000;
        bool eot = ctl & 0x80000000u;
        uint64_t take = std::min<uint64_t>(len, left);
        auto span = TRY(m_io.memory->host_span(base & ~1u, take));
        // Spans point into guest RAM, which outlives every request.
        qiov.add(span.data(), span.size());
        m_dma_ranges.push_back({ base & ~1u, take });
        left -= take;
        if (eot && left > 0)
            return Error::invalid("PRD table describes fewer bytes than the transfer");
    }
    return qiov;
}

void IdeChannel::dma_maybe_start()
{
    if (!(m_bm_command & k_bm_start))
        return;
    for (unsigned i = 0; i < 2; i++) {
        IdeUnit& u = m_units[i];
        if (!u.dma_pending)
            continue;
        u.dma_pending = false;
        u.status = k_bsy | k_drdy | k_dsc;
        if (u.kind == IdeKind::Cdrom && !u.reply.empty()) {
            dma_from_buffer(u, u.reply.data(), u.reply.size());
            u.reply.clear();
            return;
        }
        if (u.kind == IdeKind::Cdrom) {
            uint64_t bytes = uint64_t(u.remaining) * k_cd_sector_bytes;
            m_io.start(run_dma(i, u.generation, u.lba * k_cd_sector_bytes, bytes, false));
            return;
        }
        uint64_t bytes = uint64_t(u.remaining) * k_sector_bytes;
        m_io.start(run_dma(i, u.generation, u.lba * k_sector_bytes, bytes, u.dma_write));
        return;
    }
}

Task<void> IdeChannel::run_dma(unsigned unit, uint32_t gen, uint64_t offset, uint64_t bytes, bool write)
{
    std::weak_ptr<bool> alive = m_alive;
    IdeUnit& u = m_units[unit];
    Result<block::QIov> mapped = Error::internal("unset");
    {
        auto lock = m_io.lock_machine();
        if (alive.expired() || u.generation != gen)
            co_return;
        mapped = dma_map(bytes);
        if (!mapped) {
            guest_error(mapped.error().message());
            dma_finish(u, false);
            co_return;
        }
    }
    block::QIov qiov = mapped.value();
    auto r = write ? co_await u.drive->write(offset, qiov) : co_await u.drive->read(offset, qiov);
    auto lock = m_io.lock_machine();
    if (alive.expired() || u.generation != gen)
        co_return;
    if (!write) // decoded-code caches must see what DMA wrote
        for (auto [gpa, len] : m_dma_ranges)
            m_io.memory->notify_written(gpa, len);
    if (!r) {
        if (io_failed(unit, gen, write ? IoDirection::Write : IoDirection::Read, r.error(),
                [this, unit, gen, offset, bytes, write] { m_io.start(run_dma(unit, gen, offset, bytes, write)); }))
            dma_finish(u, true);
        co_return;
    }
    u.remaining = 0;
    if (u.kind == IdeKind::Disk) {
        u.lba += bytes / k_sector_bytes;
        set_task_lba(u, u.lba - 1, u.lba48);
    }
    dma_finish(u, true);
}

void IdeChannel::dma_finish(IdeUnit& u, bool ok)
{
    m_bm_status &= ~k_bm_active;
    if (!ok) {
        m_bm_status |= k_bm_error;
        command_error(u, k_abrt);
        return;
    }
    if (u.kind == IdeKind::Cdrom) {
        atapi_ok(u);
        return;
    }
    command_ok(u);
}

void IdeChannel::dma_from_buffer(IdeUnit& u, const uint8_t* data, size_t bytes)
{
    auto mapped = dma_map(bytes);
    if (!mapped) {
        guest_error(mapped.error().message());
        dma_finish(u, false);
        return;
    }
    mapped.value().copy_in(0, data, bytes);
    for (auto [gpa, len] : m_dma_ranges)
        m_io.memory->notify_written(gpa, len);
    dma_finish(u, true);
}

} // namespace kiln::hw
