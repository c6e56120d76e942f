// IdeChannel: register file, interrupts, resets and the PIO data port.
#include "hw/ide/ide_channel.h"

#include <cstring>

#include "util/log.h"

namespace kiln::hw {

using namespace ata;

IdeChannel::IdeChannel(unsigned index, IrqLine& irq, const DeviceIoContext& io)
    : m_index(index)
    , m_irq(irq)
    , m_io(io)
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

IdeChannel::~IdeChannel() { *m_alive = false; }

Result<void> IdeChannel::attach(unsigned unit, IdeKind kind, Drive* drive, const std::string& serial)
{
    if (unit > 1)
        return Error::invalid("Can't create IDE unit " + std::to_string(unit) + ", bus supports only 2 units");
    IdeUnit& u = m_units[unit];
    if (u.kind != IdeKind::None)
        return Error::invalid("IDE unit " + std::to_string(unit) + " is in use");
    if (kind == IdeKind::Disk && (!drive || !drive->has_medium()))
        return Error::invalid("Device needs media, but drive is empty");
    // ATA has no write-protect bit: QEMU refuses a read-only ide-hd.
    if (kind == IdeKind::Disk && drive->read_only())
        return Error(ErrorKind::PermissionDenied, "Block node is read-only", EPERM);
    u.kind = kind;
    u.drive = drive;
    u.buf.assign(k_pio_buffer_bytes, 0);
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
    u.tf.nsector = 1;
    u.tf.sector = 1;
    bool atapi = u.kind == IdeKind::Cdrom;
    u.tf.lcyl = atapi ? 0x14 : 0;
    u.tf.hcyl = atapi ? 0xeb : 0;
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
        set_signature(u);
        u.tf.device = 0xa0;
    }
    m_select = 0;
    m_irq_pending = false;
    update_irq();
}

void IdeChannel::reset()
{
    m_control = 0;
    m_bm_command = 0;
    m_bm_status &= 0x60;
    m_bm_prd = 0;
    for (auto& u : m_units) {
        u.tf = TaskFile {};
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

void IdeChannel::update_irq() { m_irq.set_level(m_irq_pending && !(m_control & k_nien)); }

uint64_t IdeChannel::task_lba(const IdeUnit& u, bool lba48) const
{
    const TaskFile& t = u.tf;
    if (lba48)
        return uint64_t(t.sector) | uint64_t(t.lcyl) << 8 | uint64_t(t.hcyl) << 16 | uint64_t(t.hob_sector) << 24
            | uint64_t(t.hob_lcyl) << 32 | uint64_t(t.hob_hcyl) << 40;
    if (t.device & k_dev_lba)
        return uint64_t(t.sector) | uint64_t(t.lcyl) << 8 | uint64_t(t.hcyl) << 16 | uint64_t(t.device & 0x0f) << 24;
    // CHS: sector numbers start at 1.
    uint64_t cyl = uint64_t(t.hcyl) << 8 | t.lcyl;
    uint64_t head = t.device & 0x0f;
    if (t.sector == 0)
        return UINT64_MAX;
    return (cyl * u.heads + head) * u.sectors_per_track + (t.sector - 1);
}

void IdeChannel::set_task_lba(IdeUnit& u, uint64_t lba, bool lba48)
{
    TaskFile& t = u.tf;
    t.sector = uint8_t(lba);
    t.lcyl = uint8_t(lba >> 8);
    t.hcyl = uint8_t(lba >> 16);
    if (lba48) {
        t.hob_sector = uint8_t(lba >> 24);
        t.hob_lcyl = uint8_t(lba >> 32);
        t.hob_hcyl = uint8_t(lba >> 40);
    } else {
        t.device = uint8_t((t.device & 0xf0) | ((lba >> 24) & 0x0f));
    }
}

uint32_t IdeChannel::task_count(const IdeUnit& u, bool lba48) const
{
    if (lba48) {
        uint32_t n = uint32_t(u.tf.hob_nsector) << 8 | u.tf.nsector;
        return n == 0 ? 65536 : n;
    }
    return u.tf.nsector == 0 ? 256 : u.tf.nsector;
}

uint64_t IdeChannel::cmd_read(uint64_t offset, unsigned size)
{
    if (offset == 0)
        return data_read(size);
    bool absent = !has_any_drive() || cur().kind == IdeKind::None;
    bool hob = m_control & k_hob;
    const TaskFile& t = cur().tf;
    switch (offset) {
    case 1:
        return absent ? 0 : hob ? t.hob_feature : cur().error;
    case 2:
        return absent ? 0 : hob ? t.hob_nsector : t.nsector;
    case 3:
        return absent ? 0 : hob ? t.hob_sector : t.sector;
    case 4:
        return absent ? 0 : hob ? t.hob_lcyl : t.lcyl;
    case 5:
        return absent ? 0 : hob ? t.hob_hcyl : t.hcyl;
    case 6:
        return !has_any_drive() ? 0 : uint8_t((t.device & ~k_dev_slave) | (m_select ? k_dev_slave : 0));
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
    // Both devices latch task file writes, as on the cable.
    for (auto& u : m_units) {
        TaskFile& t = u.tf;
        switch (offset) {
        case 1:
            t.hob_feature = std::exchange(t.feature, v);
            break;
        case 2:
            t.hob_nsector = std::exchange(t.nsector, v);
            break;
        case 3:
            t.hob_sector = std::exchange(t.sector, v);
            break;
        case 4:
            t.hob_lcyl = std::exchange(t.lcyl, v);
            break;
        case 5:
            t.hob_hcyl = std::exchange(t.hcyl, v);
            break;
        case 6:
            t.device = uint8_t(v | 0xa0);
            break;
        }
    }
    switch (offset) {
    case 6:
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
    // The buffer never moves: a request superseded by a reset may still be
    // filling it from a worker thread. Blocks are at most 64 KiB - 2.
    bytes = std::min(bytes, u.buf.size());
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
    for (uint8_t b : { m_control, m_bm_command, m_bm_status })
        w.u8(b);
    w.u32(m_bm_prd);
    w.boolean(m_irq_pending);
    w.u8(uint8_t(m_select));
    for (const auto& u : m_units) {
        const TaskFile& t = u.tf;
        for (uint8_t b : { t.feature, t.nsector, t.sector, t.lcyl, t.hcyl, t.hob_feature, t.hob_nsector, t.hob_sector,
                 t.hob_lcyl, t.hob_hcyl, t.device })
            w.u8(b);
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
    for (uint8_t* b : { &m_control, &m_bm_command, &m_bm_status })
        *b = TRY(r.u8());
    m_bm_prd = TRY(r.u32());
    m_irq_pending = TRY(r.boolean());
    m_select = TRY(r.u8()) & 1;
    for (auto& u : m_units) {
        TaskFile& t = u.tf;
        for (uint8_t* b : { &t.feature, &t.nsector, &t.sector, &t.lcyl, &t.hcyl, &t.hob_feature, &t.hob_nsector,
                 &t.hob_sector, &t.hob_lcyl, &t.hob_hcyl, &t.device })
            *b = TRY(r.u8());
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
