// IdeChannel: register file, interrupts, resets and the PIO data port.
#include "hw/ide/ide_channel.h"

#include <cstring>

#include "util/log.h"

namespace kiln::hw {

using namespace ata;

IdeChannel::IdeChannel(unsigned index, IrqLine& irq, const DeviceIoContext& io)
    : m_index(index), m_irq(irq), m_io(io)
{
    m_cmd_io = FnRegion([this](uint64_t o, unsigned s) { return cmd_read(o, s); },
                        [this](uint64_t o, unsigned s, uint64_t v) { cmd_write(o, s, v); });
    m_ctl_io = FnRegion(
        [this](uint64_t, unsigned) -> uint64_t {
            // Alternate status: no side effects.
            if (!has_any_drive() || cur().kind == IdeKind::None)
                return 0;
            return cur().status;
        },
        [this](uint64_t, unsigned, uint64_t v) {
            uint8_t old = m_control;
            m_control = uint8_t(v);
            if ((v & k_srst) && !(old & k_srst)) {
                for (auto& u : m_units) {
                    ++u.generation;
                    u.status = k_bsy;
                    u.dma_pending = false;
                    u.pio_end = PioEnd::None;
                }
            } else if (!(v & k_srst) && (old & k_srst)) {
                soft_reset();
            }
            update_irq();
        });
}

IdeChannel::~IdeChannel()
{
    *m_alive = false;
}

Result<void> IdeChannel::attach(unsigned unit, IdeKind kind, Drive* drive, const std::string& serial)
{
    if (unit > 1)
        return Error::invalid("Can't create IDE unit " + std::to_string(unit) + ", bus supports only 2 units");
    IdeUnit& u = m_units[unit];
    if (u.kind != IdeKind::None)
        return Error::invalid("IDE unit " + std::to_string(unit) + " is in use");
    if (kind == IdeKind::Disk && (!drive || !drive->has_medium()))
        return Error::invalid("Device needs media, but drive is empty");
    u.kind = kind;
    u.drive = drive;
    u.serial = serial.empty() ? "QM0000" + std::to_string(m_index * 2 + unit + 1) : serial;
    u.model = kind == IdeKind::Cdrom ? "QEMU DVD-ROM" : "QEMU HARDDISK";
    if (kind == IdeKind::Disk) {
        uint64_t sectors = drive->size_bytes() / k_sector_bytes;
        u.cylinders = std::min<uint64_t>(std::max<uint64_t>(sectors / (16 * 63), 1), 16383);
    }
    u.seen_medium = drive ? drive->medium_generation() : 0;
    u.media_event = drive && drive->has_medium();
    set_signature(u);
    u.status = kind == IdeKind::Cdrom ? 0 : (k_drdy | k_dsc);
    return ok();
}

void IdeChannel::set_signature(IdeUnit& u)
{
    m_nsector = 1;
    m_sector = 1;
    if (u.kind == IdeKind::Cdrom) {
        m_lcyl = 0x14;
        m_hcyl = 0xeb;
    } else {
        m_lcyl = 0;
        m_hcyl = 0;
    }
    m_device &= ~k_dev_slave;
    m_select = 0;
}

void IdeChannel::soft_reset()
{
    for (auto& u : m_units) {
        ++u.generation;
        u.dma_pending = false;
        u.pio_end = PioEnd::None;
        u.pos = u.end = 0;
        u.error = 0x01; // diagnostic passed
        u.status = u.kind == IdeKind::Disk ? (k_drdy | k_dsc) : 0;
        u.mult_sectors = k_max_mult_sectors;
    }
    // Master's signature is what the host sees after reset.
    set_signature(m_units[1]);
    if (m_units[1].kind != IdeKind::None)
        set_signature(m_units[1]);
    set_signature(m_units[0]);
    m_device = 0xa0;
    m_irq_pending = false;
    update_irq();
}

void IdeChannel::reset()
{
    m_control = 0;
    m_bm_command = 0;
    m_bm_status &= 0x60;
    m_bm_prd = 0;
    m_feature = m_hob_feature = m_hob_nsector = m_hob_sector = m_hob_lcyl = m_hob_hcyl = 0;
    for (auto& u : m_units) {
        u.write_cache = true;
        u.xfer_mode = 0x42;
        u.tray_locked = false;
        u.sense_key = u.asc = u.ascq = 0;
    }
    soft_reset();
}

void IdeChannel::resume()
{
    for (auto& u : m_units)
        if (u.drive)
            u.drive->resume();
}

void IdeChannel::raise_irq()
{
    m_irq_pending = true;
    m_bm_status |= 0x04;
    update_irq();
}

void IdeChannel::update_irq()
{
    m_irq.set_level(m_irq_pending && !(m_control & k_nien));
}

uint64_t IdeChannel::task_lba(const IdeUnit& u, bool lba48) const
{
    if (lba48)
        return uint64_t(m_sector) | uint64_t(m_lcyl) << 8 | uint64_t(m_hcyl) << 16 | uint64_t(m_hob_sector) << 24
            | uint64_t(m_hob_lcyl) << 32 | uint64_t(m_hob_hcyl) << 40;
    if (m_device & k_dev_lba)
        return uint64_t(m_sector) | uint64_t(m_lcyl) << 8 | uint64_t(m_hcyl) << 16 | uint64_t(m_device & 0x0f) << 24;
    // CHS: sector numbers start at 1.
    uint64_t cyl = uint64_t(m_hcyl) << 8 | m_lcyl;
    uint64_t head = m_device & 0x0f;
    if (m_sector == 0)
        return UINT64_MAX;
    return (cyl * u.heads + head) * u.sectors_per_track + (m_sector - 1);
}

void IdeChannel::set_task_lba(uint64_t lba, bool lba48)
{
    m_sector = uint8_t(lba);
    m_lcyl = uint8_t(lba >> 8);
    m_hcyl = uint8_t(lba >> 16);
    if (lba48) {
        m_hob_sector = uint8_t(lba >> 24);
        m_hob_lcyl = uint8_t(lba >> 32);
        m_hob_hcyl = uint8_t(lba >> 40);
    } else {
        m_device = uint8_t((m_device & 0xf0) | ((lba >> 24) & 0x0f));
    }
}

uint32_t IdeChannel::task_count(bool lba48) const
{
    if (lba48) {
        uint32_t n = uint32_t(m_hob_nsector) << 8 | m_nsector;
        return n == 0 ? 65536 : n;
    }
    return m_nsector == 0 ? 256 : m_nsector;
}

uint64_t IdeChannel::cmd_read(uint64_t offset, unsigned size)
{
    if (offset == 0)
        return data_read(size);
    bool absent = !has_any_drive() || cur().kind == IdeKind::None;
    bool hob = m_control & k_hob;
    switch (offset) {
    case 1:
        return absent ? 0 : hob ? m_hob_feature : cur().error;
    case 2:
        return absent ? 0 : hob ? m_hob_nsector : m_nsector;
    case 3:
        return absent ? 0 : hob ? m_hob_sector : m_sector;
    case 4:
        return absent ? 0 : hob ? m_hob_lcyl : m_lcyl;
    case 5:
        return absent ? 0 : hob ? m_hob_hcyl : m_hcyl;
    case 6:
        return absent && !has_any_drive() ? 0 : m_device;
    case 7:
        if (absent)
            return 0;
        // Reading status acknowledges the interrupt.
        m_irq_pending = false;
        update_irq();
        return cur().status;
    }
    return 0xff;
}

void IdeChannel::cmd_write(uint64_t offset, unsigned size, uint64_t value)
{
    if (offset == 0) {
        data_write(size, uint32_t(value));
        return;
    }
    uint8_t v = uint8_t(value);
    // Writes to the task file clear HOB, as the standard says.
    if (offset >= 1 && offset <= 6)
        m_control &= ~k_hob;
    switch (offset) {
    case 1:
        m_hob_feature = m_feature;
        m_feature = v;
        break;
    case 2:
        m_hob_nsector = m_nsector;
        m_nsector = v;
        break;
    case 3:
        m_hob_sector = m_sector;
        m_sector = v;
        break;
    case 4:
        m_hob_lcyl = m_lcyl;
        m_lcyl = v;
        break;
    case 5:
        m_hob_hcyl = m_hcyl;
        m_hcyl = v;
        break;
    case 6:
        m_device = uint8_t(v | 0xa0);
        m_select = (v & k_dev_slave) ? 1 : 0;
        break;
    case 7:
        if (cur().kind == IdeKind::None)
            return;
        if ((cur().status & (k_bsy | k_drq)) && v != k_cmd_device_reset)
            return; // busy: the command is ignored
        m_irq_pending = false;
        update_irq();
        execute(v);
        break;
    }
}

void IdeChannel::pio_start(IdeUnit& u, size_t bytes, PioEnd end)
{
    if (u.buf.size() < bytes)
        u.buf.resize(bytes);
    u.pos = 0;
    u.end = bytes;
    u.pio_end = end;
    u.status = uint8_t((u.status & ~k_bsy) | k_drq | k_drdy | k_dsc);
}

uint32_t IdeChannel::data_read(unsigned size)
{
    IdeUnit& u = cur();
    if (!(u.status & k_drq) || u.pos >= u.end)
        return 0xffffffffu & uint32_t(size_mask(size));
    uint32_t v = 0;
    unsigned n = unsigned(std::min<size_t>(size, u.end - u.pos));
    std::memcpy(&v, u.buf.data() + u.pos, n);
    u.pos += n;
    if (u.pos >= u.end)
        pio_done(u);
    return v;
}

void IdeChannel::data_write(unsigned size, uint32_t value)
{
    IdeUnit& u = cur();
    if (!(u.status & k_drq) || u.pos >= u.end)
        return;
    unsigned n = unsigned(std::min<size_t>(size, u.end - u.pos));
    std::memcpy(u.buf.data() + u.pos, &value, n);
    u.pos += n;
    if (u.pos >= u.end)
        pio_done(u);
}

void IdeChannel::pio_done(IdeUnit& u)
{
    PioEnd end = std::exchange(u.pio_end, PioEnd::None);
    u.status &= ~k_drq;
    switch (end) {
    case PioEnd::None:
        break;
    case PioEnd::ReadNext:
        if (u.remaining > 0)
            read_chunk(u);
        break;
    case PioEnd::WriteChunk:
        write_chunk(u);
        break;
    case PioEnd::Packet:
        packet_command(u);
        break;
    case PioEnd::AtapiNext:
        atapi_send_next(u);
        break;
    case PioEnd::AtapiDone:
        atapi_ok(u);
        break;
    }
}

void IdeChannel::save_state(StateWriter& w) const
{
    for (uint8_t b : {m_feature, m_nsector, m_sector, m_lcyl, m_hcyl, m_hob_feature, m_hob_nsector, m_hob_sector,
                      m_hob_lcyl, m_hob_hcyl, m_device, m_control, m_bm_command, m_bm_status})
        w.u8(b);
    w.u32(m_bm_prd);
    w.boolean(m_irq_pending);
    w.u8(uint8_t(m_select));
    for (const auto& u : m_units) {
        w.u8(u.status);
        w.u8(u.error);
        w.u8(uint8_t(u.mult_sectors));
        w.boolean(u.write_cache);
        w.u8(u.xfer_mode);
        w.u8(u.sense_key);
        w.u8(u.asc);
        w.boolean(u.tray_locked);
    }
}

Result<void> IdeChannel::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    for (uint8_t* b : {&m_feature, &m_nsector, &m_sector, &m_lcyl, &m_hcyl, &m_hob_feature, &m_hob_nsector,
                       &m_hob_sector, &m_hob_lcyl, &m_hob_hcyl, &m_device, &m_control, &m_bm_command, &m_bm_status})
        *b = TRY(r.u8());
    m_bm_prd = TRY(r.u32());
    m_irq_pending = TRY(r.boolean());
    m_select = TRY(r.u8()) & 1;
    for (auto& u : m_units) {
        u.status = TRY(r.u8());
        u.error = TRY(r.u8());
        u.mult_sectors = TRY(r.u8());
        if (u.mult_sectors > k_max_mult_sectors)
            return r.invalid("multiple count out of range");
        u.write_cache = TRY(r.boolean());
        u.xfer_mode = TRY(r.u8());
        u.sense_key = TRY(r.u8());
        u.asc = TRY(r.u8());
        u.tray_locked = TRY(r.boolean());
        // No transfer is in progress across migration (VM paused, drained).
        u.status &= ~(k_bsy | k_drq);
        u.pio_end = PioEnd::None;
        u.dma_pending = false;
    }
    update_irq();
    return ok();
}

} // namespace kiln::hw
