#include "hw/virtio/virtio_pci.h"

#include <cstring>

#include "util/log.h"

namespace kiln::hw {

using namespace virtio;

namespace {

constexpr unsigned k_cap_common = 0x40, k_cap_isr = 0x50, k_cap_device = 0x60, k_cap_notify = 0x70, k_cap_msix = 0x84;
constexpr uint64_t k_legacy_bar_bytes = 0x80;

struct Field {
    unsigned offset, size;
};
// Common configuration layout (virtio 1.x 4.1.4.3).
constexpr Field k_common_fields[]
    = { { 0x00, 4 }, { 0x04, 4 }, { 0x08, 4 }, { 0x0c, 4 }, { 0x10, 2 }, { 0x12, 2 }, { 0x14, 1 }, { 0x15, 1 },
          { 0x16, 2 }, { 0x18, 2 }, { 0x1a, 2 }, { 0x1c, 2 }, { 0x1e, 2 }, { 0x20, 8 }, { 0x28, 8 }, { 0x30, 8 } };
constexpr Field k_legacy_fields[] = { { 0x00, 4 }, { 0x04, 4 }, { 0x08, 4 }, { 0x0c, 2 }, { 0x0e, 2 }, { 0x10, 2 },
    { 0x12, 1 }, { 0x13, 1 }, { 0x14, 2 }, { 0x16, 2 } };

const Field* find_field(const Field* begin, const Field* end, uint64_t offset)
{
    for (const Field* f = begin; f != end; ++f)
        if (offset >= f->offset && offset < f->offset + f->size)
            return f;
    return nullptr;
}

// Reads or writes a register file of fields byte by byte, so any access
// width and alignment works: get(field) / set(field, merged value).
template<typename Get>
uint64_t read_fields(const Field* begin, const Field* end, uint64_t offset, unsigned size, Get get)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        const Field* f = find_field(begin, end, offset + i);
        uint8_t b = 0;
        if (f)
            b = uint8_t(get(f->offset) >> (8 * (offset + i - f->offset)));
        v |= uint64_t(b) << (8 * i);
    }
    return v;
}

template<typename Get, typename Set>
void write_fields(
    const Field* begin, const Field* end, uint64_t offset, unsigned size, uint64_t value, Get get, Set set)
{
    unsigned i = 0;
    while (i < size) {
        const Field* f = find_field(begin, end, offset + i);
        if (!f) {
            i++;
            continue;
        }
        uint64_t cur = get(f->offset);
        while (i < size && offset + i < f->offset + f->size) {
            unsigned shift = unsigned(8 * (offset + i - f->offset));
            cur = (cur & ~(uint64_t(0xff) << shift)) | (uint64_t(uint8_t(value >> (8 * i))) << shift);
            i++;
        }
        set(f->offset, cur);
    }
}

void put_cap(uint8_t* cfg, unsigned at, unsigned next, uint8_t type, uint8_t bar, uint32_t offset, uint32_t length,
    uint8_t len = 16)
{
    cfg[at] = 0x09;
    cfg[at + 1] = uint8_t(next);
    cfg[at + 2] = len;
    cfg[at + 3] = type;
    cfg[at + 4] = bar;
    std::memcpy(cfg + at + 8, &offset, 4);
    std::memcpy(cfg + at + 12, &length, 4);
}

} // namespace

VirtioPci::VirtioPci(
    VirtioDevice& device, GuestMemory& memory, IrqLine& intx, MsiSink* msi, VirtioPciBuses buses, std::string name)
    : PciDevice(0x1af4, uint16_t(0x1000 + device.device_type() - 1), 0x01000000, 0x00)
    , m_device(device)
    , m_memory(memory)
    , m_intx(intx)
    , m_name(std::move(name))
    , m_msix(device.queue_count() + 1, msi)
    , m_bars(m_config, m_wmask)
{
    m_device.set_transport(this);
    for (unsigned i = 0; i < device.queue_count(); i++)
        m_queues.emplace_back(device.queue_max_size());
    set_u16(0x2c, 0x1af4);
    set_u16(0x2e, device.device_type());
    m_config[0x06] |= 0x10; // capability list
    m_config[0x34] = k_cap_msix;
    m_config[0x3d] = 1; // INTA
    m_config[k_cap_msix] = 0x11;
    m_config[k_cap_msix + 1] = k_cap_notify;
    set_u16(k_cap_msix + 2, uint16_t(m_msix.vectors() - 1));
    m_wmask[k_cap_msix + 3] = 0xc0; // enable, function mask
    set_u32(k_cap_msix + 4, 0x00000001); // table in BAR1 at 0
    set_u32(k_cap_msix + 8, uint32_t(MsixTable::k_pba_offset) | 1); // PBA in BAR1
    put_cap(m_config, k_cap_notify, k_cap_device, 2, 4, k_notify_offset, 0x1000, 20);
    set_u32(k_cap_notify + 16, k_notify_multiplier);
    put_cap(m_config, k_cap_device, k_cap_isr, 4, 4, k_device_offset, 0x1000);
    put_cap(m_config, k_cap_isr, k_cap_common, 3, 4, k_isr_offset, 0x1000);
    put_cap(m_config, k_cap_common, 0, 1, 4, k_common_offset, 0x1000);
    m_wmask[0x05] |= 0x04; // INTx disable

    m_legacy_io = FnRegion([this](uint64_t o, unsigned s) { return legacy_read(o, s); },
        [this](uint64_t o, unsigned s, uint64_t v) { legacy_write(o, s, v); });
    m_bar4_io = FnRegion(
        [this](uint64_t o, unsigned s) -> uint64_t {
            if (o < k_isr_offset)
                return common_read(o, s);
            if (o < k_device_offset)
                return o == k_isr_offset ? read_isr() : 0;
            if (o < k_notify_offset)
                return device_cfg_read(o - k_device_offset, s);
            return 0;
        },
        [this](uint64_t o, unsigned s, uint64_t v) {
            if (o < k_isr_offset) {
                common_write(o, s, v);
            } else if (o >= k_device_offset && o < k_notify_offset) {
                device_cfg_write(o - k_device_offset, s, v);
            } else if (o >= k_notify_offset) {
                uint64_t q = (o - k_notify_offset) / k_notify_multiplier;
                if (q < m_queues.size() && m_queues[q].enabled && !m_queues[q].broken)
                    m_device.queue_notify(unsigned(q));
            }
        });
    if (buses.pio)
        m_bars.define(0, PciBarKind::Io, k_legacy_bar_bytes, m_legacy_io, *buses.pio, m_name + "-legacy");
    m_bars.define(1, PciBarKind::Mem32, MsixTable::k_region_bytes, m_msix, *buses.mmio, m_name + "-msix");
    m_bars.define(4, PciBarKind::Mem64, k_bar4_bytes, m_bar4_io, *buses.mmio, m_name + "-modern");
}

void VirtioPci::reset()
{
    m_config[0x04] = 0;
    m_config[0x05] = 0;
    m_config[k_cap_msix + 3] = 0;
    m_bars.update();
    m_msix.reset();
    reset_device();
}

void VirtioPci::reset_device()
{
    m_device.device_reset();
    for (auto& q : m_queues)
        q.reset();
    m_status = 0;
    m_driver_features = 0;
    m_device_feature_select = m_driver_feature_select = 0;
    m_msix_config = 0xffff;
    m_queue_select = 0;
    m_isr = 0;
    m_intx.lower();
}

void VirtioPci::config_write(unsigned offset, unsigned size, uint32_t value)
{
    PciDevice::config_write(offset, size, value);
    m_bars.update();
    update_msix_control();
    if (m_config[0x05] & 0x04)
        m_intx.lower();
}

void VirtioPci::update_msix_control()
{
    uint8_t ctl = m_config[k_cap_msix + 3];
    m_msix.set_control(ctl & 0x80, ctl & 0x40);
}

void VirtioPci::send_interrupt(uint16_t vector, uint8_t isr_bit)
{
    if (m_msix.enabled()) {
        if (vector != 0xffff)
            m_msix.notify(vector);
        return;
    }
    m_isr |= isr_bit;
    if (!(m_config[0x05] & 0x04))
        m_intx.raise();
}

void VirtioPci::notify_queue(unsigned n)
{
    Virtqueue& q = m_queues[n];
    auto want = q.should_notify(m_memory, has_feature(k_f_event_idx));
    if (!want) {
        queue_error(n, want.error().message());
        return;
    }
    if (want.value())
        send_interrupt(q.msix_vector, 1);
}

void VirtioPci::raise_config_interrupt()
{
    m_config_generation++;
    send_interrupt(m_msix_config, 2);
}

void VirtioPci::config_changed()
{
    if (m_status & virtio::k_status_driver_ok)
        raise_config_interrupt();
}

void VirtioPci::queue_error(unsigned n, const std::string& what)
{
    m_queues[n].broken = true;
    if (!m_logged_error) {
        m_logged_error = true;
        Log::write(LogCategory::Guest,
            m_name + ": queue " + std::to_string(n) + ": " + what + "; device needs reset (further errors not logged)");
    }
    if (!(m_status & k_status_needs_reset)) {
        m_status |= k_status_needs_reset;
        if (m_status & k_status_driver_ok)
            raise_config_interrupt();
    }
}

uint8_t VirtioPci::read_isr()
{
    uint8_t v = m_isr;
    m_isr = 0;
    m_intx.lower();
    return v;
}

void VirtioPci::set_status(uint8_t v)
{
    if (v == 0) {
        reset_device();
        return;
    }
    if ((v & k_status_features_ok) && !(m_status & k_status_features_ok)) {
        if (m_driver_features & ~m_device.host_features())
            v &= ~k_status_features_ok; // unacceptable: the driver reads it back unset
    }
    m_status = uint8_t(v | (m_status & k_status_needs_reset));
}

uint64_t VirtioPci::common_read(uint64_t offset, unsigned size)
{
    Virtqueue* q = m_queue_select < m_queues.size() ? &m_queues[m_queue_select] : nullptr;
    auto get = [&](unsigned f) -> uint64_t {
        switch (f) {
        case 0x00:
            return m_device_feature_select;
        case 0x04:
            return m_device_feature_select < 2 ? uint32_t(m_device.host_features() >> (32 * m_device_feature_select))
                                               : 0;
        case 0x08:
            return m_driver_feature_select;
        case 0x0c:
            return m_driver_feature_select < 2 ? uint32_t(m_driver_features >> (32 * m_driver_feature_select)) : 0;
        case 0x10:
            return m_msix_config;
        case 0x12:
            return m_queues.size();
        case 0x14:
            return m_status;
        case 0x15:
            return m_config_generation;
        case 0x16:
            return m_queue_select;
        case 0x18:
            return q ? q->size() : 0;
        case 0x1a:
            return q ? q->msix_vector : 0xffff;
        case 0x1c:
            return q ? q->enabled : 0;
        case 0x1e:
            return m_queue_select;
        case 0x20:
            return q ? q->desc_addr : 0;
        case 0x28:
            return q ? q->avail_addr : 0;
        case 0x30:
            return q ? q->used_addr : 0;
        }
        return 0;
    };
    return read_fields(std::begin(k_common_fields), std::end(k_common_fields), offset, size, get);
}

void VirtioPci::common_write(uint64_t offset, unsigned size, uint64_t value)
{
    auto get = [&](unsigned f) -> uint64_t {
        return common_read(f, f >= 0x20 ? 8 : f == 0x14 || f == 0x15 ? 1 : f >= 0x10 ? 2 : 4);
    };
    auto set = [&](unsigned f, uint64_t v) {
        Virtqueue* q = m_queue_select < m_queues.size() ? &m_queues[m_queue_select] : nullptr;
        bool queue_live = q && q->enabled;
        switch (f) {
        case 0x00:
            m_device_feature_select = uint32_t(v);
            break;
        case 0x08:
            m_driver_feature_select = uint32_t(v);
            break;
        case 0x0c:
            if (m_driver_feature_select < 2 && !(m_status & k_status_features_ok)) {
                unsigned shift = 32 * m_driver_feature_select;
                m_driver_features
                    = (m_driver_features & ~(uint64_t(0xffffffff) << shift)) | (uint64_t(uint32_t(v)) << shift);
            }
            break;
        case 0x10:
            m_msix_config = v < m_msix.vectors() ? uint16_t(v) : 0xffff;
            break;
        case 0x14:
            set_status(uint8_t(v));
            break;
        case 0x16:
            m_queue_select = uint16_t(v);
            break;
        case 0x18:
            if (q && !queue_live)
                q->set_size(uint16_t(v));
            break;
        case 0x1a:
            if (q)
                q->msix_vector = v < m_msix.vectors() ? uint16_t(v) : 0xffff;
            break;
        case 0x1c:
            if (q && v == 1) {
                if (!q->valid_size(false)) {
                    queue_error(m_queue_select,
                        "queue size " + std::to_string(q->size()) + " is not a power of two up to "
                            + std::to_string(q->max_size()));
                    break;
                }
                q->enabled = true;
            }
            break;
        case 0x20:
            if (q && !queue_live)
                q->desc_addr = v;
            break;
        case 0x28:
            if (q && !queue_live)
                q->avail_addr = v;
            break;
        case 0x30:
            if (q && !queue_live)
                q->used_addr = v;
            break;
        }
    };
    write_fields(std::begin(k_common_fields), std::end(k_common_fields), offset, size, value, get, set);
}

void VirtioPci::legacy_set_pfn(uint32_t pfn)
{
    if (m_queue_select >= m_queues.size())
        return;
    Virtqueue& q = m_queues[m_queue_select];
    if (pfn == 0) {
        uint16_t vector = q.msix_vector;
        q.reset();
        q.msix_vector = vector;
        return;
    }
    q.set_size(q.max_size());
    q.desc_addr = uint64_t(pfn) << 12;
    q.avail_addr = q.desc_addr + 16 * uint64_t(q.size());
    q.used_addr = (q.avail_addr + 6 + 2 * uint64_t(q.size()) + 4095) & ~uint64_t(4095);
    q.enabled = true;
}

uint64_t VirtioPci::legacy_read(uint64_t offset, unsigned size)
{
    unsigned cfg = legacy_config_offset();
    if (offset >= cfg)
        return device_cfg_read(offset - cfg, size);
    if (offset == 0x13 && size == 1)
        return read_isr();
    Virtqueue* q = m_queue_select < m_queues.size() ? &m_queues[m_queue_select] : nullptr;
    auto get = [&](unsigned f) -> uint64_t {
        switch (f) {
        case 0x00:
            return uint32_t(m_device.host_features() & ~k_f_version_1);
        case 0x04:
            return uint32_t(m_driver_features);
        case 0x08:
            return q && q->enabled ? uint32_t(q->desc_addr >> 12) : 0;
        case 0x0c:
            return q ? q->max_size() : 0;
        case 0x0e:
            return m_queue_select;
        case 0x12:
            return m_status;
        case 0x14:
            return m_msix.enabled() ? m_msix_config : 0xffff;
        case 0x16:
            return q && m_msix.enabled() ? q->msix_vector : 0xffff;
        }
        return 0;
    };
    const Field* end = m_msix.enabled() ? std::end(k_legacy_fields) : std::end(k_legacy_fields) - 2;
    return read_fields(std::begin(k_legacy_fields), end, offset, size, get);
}

void VirtioPci::legacy_write(uint64_t offset, unsigned size, uint64_t value)
{
    unsigned cfg = legacy_config_offset();
    if (offset >= cfg) {
        device_cfg_write(offset - cfg, size, value);
        return;
    }
    auto get = [&](unsigned f) { return legacy_read(f, f <= 0x08 ? 4 : f == 0x12 || f == 0x13 ? 1 : 2); };
    auto set = [&](unsigned f, uint64_t v) {
        switch (f) {
        case 0x04:
            m_driver_features = uint32_t(v) & m_device.host_features();
            break;
        case 0x08:
            legacy_set_pfn(uint32_t(v));
            break;
        case 0x0e:
            m_queue_select = uint16_t(v);
            break;
        case 0x10:
            if (v < m_queues.size() && m_queues[v].enabled && !m_queues[v].broken)
                m_device.queue_notify(unsigned(v));
            break;
        case 0x12:
            set_status(uint8_t(v));
            break;
        case 0x14:
            m_msix_config = v < m_msix.vectors() ? uint16_t(v) : 0xffff;
            break;
        case 0x16:
            if (m_queue_select < m_queues.size())
                m_queues[m_queue_select].msix_vector = v < m_msix.vectors() ? uint16_t(v) : 0xffff;
            break;
        }
    };
    const Field* end = m_msix.enabled() ? std::end(k_legacy_fields) : std::end(k_legacy_fields) - 2;
    // The ISR is read-only; reading it through get() would clear it.
    if (offset <= 0x13 && offset + size > 0x13)
        return;
    write_fields(std::begin(k_legacy_fields), end, offset, size, value, get, set);
}

uint64_t VirtioPci::device_cfg_read(uint64_t offset, unsigned size)
{
    uint8_t buf[8] = {};
    if (offset >= m_device.config_bytes())
        return 0;
    unsigned n = unsigned(std::min<uint64_t>(size, m_device.config_bytes() - offset));
    m_device.read_config(unsigned(offset), buf, n);
    uint64_t v = 0;
    std::memcpy(&v, buf, std::min(n, 8u));
    return v;
}

void VirtioPci::device_cfg_write(uint64_t offset, unsigned size, uint64_t value)
{
    if (offset >= m_device.config_bytes())
        return;
    unsigned n = unsigned(std::min<uint64_t>(size, m_device.config_bytes() - offset));
    uint8_t buf[8];
    std::memcpy(buf, &value, 8);
    m_device.write_config(unsigned(offset), buf, std::min(n, 8u));
}

void VirtioPci::save_state(StateWriter& w) const
{
    save_config(w);
    m_msix.save(w);
    w.u64(m_driver_features);
    w.u32(m_device_feature_select);
    w.u32(m_driver_feature_select);
    w.u16(m_msix_config);
    w.u8(m_status);
    w.u8(m_config_generation);
    w.u16(m_queue_select);
    w.u8(m_isr);
    for (const auto& q : m_queues)
        q.save(w);
}

Result<void> VirtioPci::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    TRY(load_config(r));
    TRY(m_msix.load(r));
    m_driver_features = TRY(r.u64());
    m_device_feature_select = TRY(r.u32());
    m_driver_feature_select = TRY(r.u32());
    m_msix_config = TRY(r.u16());
    m_status = TRY(r.u8());
    m_config_generation = TRY(r.u8());
    m_queue_select = TRY(r.u16());
    m_isr = TRY(r.u8());
    for (auto& q : m_queues)
        TRY(q.load(r));
    TRY(r.finish());
    m_bars.update();
    update_msix_control();
    m_intx.set_level(m_isr != 0 && !m_msix.enabled());
    return ok();
}

} // namespace kiln::hw
