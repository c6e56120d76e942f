// VmControl: block devices and their media, PCI functions, the memory and
// device trees, and keys sent to the i8042.
#include <cerrno>
#include <cstring>

#include "block/commit.h"
#include "system/keycodes.h"
#include "system/machine_control_impl.h"
#include "system/vm.h"

namespace kiln::system {

using namespace monitor;

namespace {

Task<Result<void>> commit_quiesced(block::BlockBackend& blk)
{
    co_await blk.quiesce();
    auto r = co_await block::commit_into_backing(*blk.root());
    blk.end_quiesce();
    co_return r;
}

const char* detect_zeroes_name(hw::DetectZeroes d)
{
    switch (d) {
    case hw::DetectZeroes::Off:
        return "off";
    case hw::DetectZeroes::On:
        return "on";
    case hw::DetectZeroes::Unmap:
        return "unmap";
    }
    return "off";
}

monitor::BlockStats convert_stats(const block::BlockStats& s)
{
    monitor::BlockStats out;
    out.rd_bytes = s.rd_bytes;
    out.wr_bytes = s.wr_bytes;
    out.unmap_bytes = s.unmap_bytes;
    out.rd_operations = s.rd_operations;
    out.wr_operations = s.wr_operations;
    out.flush_operations = s.flush_operations;
    out.unmap_operations = s.unmap_operations;
    out.rd_total_time_ns = s.rd_total_time_ns;
    out.wr_total_time_ns = s.wr_total_time_ns;
    out.flush_total_time_ns = s.flush_total_time_ns;
    out.unmap_total_time_ns = s.unmap_total_time_ns;
    out.failed_rd_operations = s.failed_rd_operations;
    out.failed_wr_operations = s.failed_wr_operations;
    out.failed_flush_operations = s.failed_flush_operations;
    out.failed_unmap_operations = s.failed_unmap_operations;
    out.invalid_rd_operations = s.invalid_rd_operations;
    out.invalid_wr_operations = s.invalid_wr_operations;
    out.invalid_flush_operations = s.invalid_flush_operations;
    out.invalid_unmap_operations = s.invalid_unmap_operations;
    return out;
}

BlockMedium describe_medium(const hw::Drive& drive, size_t index)
{
    const block::BlockNode& root = *drive.backend()->root();
    const hw::DriveConfig& cfg = drive.config();
    BlockMedium m;
    // QEMU names anonymous nodes "#blockNNN"; any stable, unique name will do.
    m.node_name = cfg.node_name.empty() ? "#block" + std::to_string(100 + index * 2) : cfg.node_name;
    m.filename = root.filename();
    m.format = std::string(root.driver_name());
    m.read_only = drive.read_only();
    m.encrypted = m.format == "luks";
    m.virtual_size_bytes = drive.size_bytes();
    if (auto a = root.allocated_size(); a.ok())
        m.actual_size_bytes = a.value();
    if (root.cluster_size() != 0)
        m.cluster_size_bytes = root.cluster_size();
    m.backing_file = root.backing_file_name();
    for (const block::BlockNode* b = root.backing(); b; b = b->backing())
        m.backing_file_depth++;
    m.cache_writeback = cfg.cache != block::CacheMode::Writethrough && cfg.cache != block::CacheMode::Directsync;
    m.cache_direct = block::cache_uses_o_direct(cfg.cache);
    m.cache_no_flush = cfg.cache == block::CacheMode::Unsafe;
    m.detect_zeroes = detect_zeroes_name(cfg.detect_zeroes);
    return m;
}

} // namespace

hw::Drive* VmControl::find_drive(const std::string& device) const
{
    if (!m_vm.disks)
        return nullptr;
    auto drives = m_vm.disks->drives();
    for (size_t i = 0; i < drives.size(); i++) {
        hw::Drive* d = drives[i];
        if (d->id() == device || (!d->config().node_name.empty() && d->config().node_name == device))
            return d;
        if (d->has_medium() && describe_medium(*d, i).node_name == device)
            return d;
    }
    return nullptr;
}

std::vector<BlockDeviceInfo> VmControl::block_devices() const
{
    std::vector<BlockDeviceInfo> out;
    if (!m_vm.disks)
        return out;
    auto drives = m_vm.disks->drives();
    for (size_t i = 0; i < drives.size(); i++) {
        const hw::Drive& d = *drives[i];
        BlockDeviceInfo info;
        info.device = d.id();
        info.qdev = "/machine/unattached/device[" + std::to_string(20 + i) + "]";
        info.removable = d.config().media == hw::DriveMedia::Cdrom;
        auto tray = m_tray_open.find(d.id());
        info.tray_open = tray != m_tray_open.end() && tray->second;
        auto status = m_io_status.find(d.id());
        info.io_status = status == m_io_status.end() ? "ok" : status->second;
        if (d.has_medium()) {
            info.medium = describe_medium(d, i);
            info.stats = convert_stats(d.backend()->stats());
        }
        out.push_back(std::move(info));
    }
    return out;
}

// QEMU's bdrv_commit under the running guest: the drive's requests are
// held and drained and the vCPU parked, so the guest sees the disk before
// or after the commit, never during it.
Result<void> VmControl::commit_drive(hw::Drive& drive)
{
    park_vcpu();
    block::BlockBackend* blk = drive.backend();
    auto result = m_loop.run_until_complete(commit_quiesced(*blk));
    unpark_vcpu();
    return result;
}

Result<void> VmControl::commit(const std::string& device)
{
    // Drives without a backing file have nothing to commit: QEMU answers
    // ENOTSUP for one and skips them for "all", stopping at the first error.
    if (device == "all") {
        if (m_vm.disks)
            for (hw::Drive* d : m_vm.disks->drives())
                if (d->has_medium() && d->backend()->root()->backing())
                    TRY(commit_drive(*d));
        return {};
    }
    hw::Drive* d = find_drive(device);
    if (!d)
        return Error::not_found("Device '" + device + "' not found");
    if (!d->has_medium())
        return Error::from_errno(ENOMEDIUM, "commit");
    if (!d->backend()->root()->backing())
        return Error::from_errno(ENOTSUP, "commit");
    return commit_drive(*d);
}

Result<void> VmControl::eject(const std::string& device, bool force)
{
    hw::Drive* d = find_drive(device);
    if (!d)
        return Error::not_found("Device '" + device + "' not found");
    if (d->config().media != hw::DriveMedia::Cdrom)
        return Error::invalid("Device '" + device + "' is not removable");
    (void)force; // the tray is never locked by a guest here
    TRY(m_loop.run_until_complete(d->eject()));
    m_tray_open[d->id()] = true;
    return {};
}

Result<void> VmControl::change_medium(
    const std::string& device, const std::string& filename, const std::string& format, MediumMode mode, bool force)
{
    hw::Drive* d = find_drive(device);
    if (!d)
        return Error::not_found("Device '" + device + "' not found");
    if (d->config().media != hw::DriveMedia::Cdrom)
        return Error::invalid("Device '" + device + "' is not removable");
    (void)force;
    (void)mode; // CD-ROMs are always read-only
    TRY(m_loop.run_until_complete(d->change_medium(filename, format)));
    m_tray_open[d->id()] = false;
    return {};
}

Result<void> VmControl::block_resize(const std::string& device, uint64_t size_bytes)
{
    hw::Drive* d = find_drive(device);
    if (!d || !d->has_medium())
        return Error::not_found("Device '" + device + "' has no medium");
    if (d->read_only())
        return Error::invalid("Device '" + device + "' is read only");
    if (size_bytes % 512)
        return Error::invalid("The new size must be a multiple of 512");
    block::BlockNode* root = d->backend()->root();
    TRY(m_loop.run_until_complete(root->truncate(size_bytes, block::PreallocMode::Off, true)));
    hw::MachineLock lk(*m_vm.machine);
    m_vm.disks->drive_resized(d->id());
    return {};
}

// ---- PCI ----

namespace {

// Visits every function on bus 0 with the machine lock held:
// f(slot, function, device).
template<class F> void for_each_pci_function(hw::PcMachine& m, F&& f)
{
    hw::MachineLock lk(m);
    for (unsigned slot = 0; slot < 32; slot++)
        for (unsigned fn = 0; fn < 8; fn++)
            if (hw::PciDevice* dev = m.pci().function_at(slot, fn))
                f(slot, fn, *dev);
}

} // namespace

std::vector<PciDeviceInfo> VmControl::pci_devices() const
{
    std::vector<PciDeviceInfo> out;
    for_each_pci_function(*m_vm.machine, [&](unsigned slot, unsigned fn, hw::PciDevice& d) {
        hw::PciDevice* dev = &d;
        PciDeviceInfo info;
        info.slot = slot;
        info.function = fn;
        info.vendor_id = uint16_t(dev->config_read(0x00, 2));
        info.device_id = uint16_t(dev->config_read(0x02, 2));
        info.class_code = uint16_t(dev->config_read(0x0a, 2));
        info.subsystem_vendor_id = uint16_t(dev->config_read(0x2c, 2));
        info.subsystem_id = uint16_t(dev->config_read(0x2e, 2));
        info.irq_pin = int64_t(dev->config_read(0x3d, 1));
        info.irq = int64_t(dev->config_read(0x3c, 1));
        uint16_t command = uint16_t(dev->config_read(0x04, 2));
        bool header0 = (dev->config_read(0x0e, 1) & 0x7f) == 0;
        for (unsigned bar = 0; header0 && bar < 6; bar++) {
            unsigned off = 0x10 + bar * 4;
            uint32_t mask = dev->write_mask(off);
            if (mask == 0)
                continue;
            uint32_t value = dev->config_read(off, 4);
            PciRegion r;
            r.bar = bar;
            if (value & 1) {
                r.kind = PciRegion::Kind::Io;
                r.size_bytes = uint64_t(~(mask & ~3u)) + 1;
                r.size_bytes &= 0xffffffffull;
                if (command & 1)
                    r.address = value & ~3u;
            } else {
                r.kind = PciRegion::Kind::Memory;
                r.prefetch = value & 8;
                r.mem_type_64 = (value & 6) == 4;
                uint64_t full_mask = mask & ~0xfu;
                uint64_t address = value & ~0xfu;
                if (r.mem_type_64 && bar < 5) {
                    full_mask |= uint64_t(dev->write_mask(off + 4)) << 32;
                    address |= uint64_t(dev->config_read(off + 4, 4)) << 32;
                } else {
                    full_mask |= 0xffffffff00000000ull;
                }
                r.size_bytes = ~full_mask + 1;
                if (command & 2)
                    r.address = address;
            }
            info.regions.push_back(r);
            if (r.mem_type_64)
                bar++;
        }
        out.push_back(std::move(info));
    });
    return out;
}

// ---- memory and device trees ----

std::vector<MemoryTreeSection> VmControl::memory_tree() const
{
    hw::PcMachine& m = *m_vm.machine;
    MemoryTreeSection memory;
    memory.names = { "memory" };
    MemoryRegionInfo system;
    system.name = "system";
    system.start = 0;
    system.end = UINT64_MAX;
    system.kind = "container";
    size_t ram_index = 0;
    for (const hw::RamRegion& r : m.memory().regions()) {
        MemoryRegionInfo ram;
        ram.start = r.guest_base;
        ram.end = r.guest_base + r.size_bytes - 1;
        ram.kind = r.read_only ? "rom" : "ram";
        ram.name = r.read_only ? "rom" + std::to_string(ram_index) : "pc.ram";
        if (!r.read_only && ram_index > 0)
            ram.name = "ram-above-4g";
        ram_index++;
        system.children.push_back(std::move(ram));
    }
    MemoryTreeSection io;
    io.names = { "I/O" };
    MemoryRegionInfo io_root;
    io_root.name = "io";
    io_root.end = 0xffff;
    io_root.kind = "container";
    {
        hw::MachineLock lk(m);
        m.mmio().for_each_mapping([&](uint64_t base, uint64_t size, const std::string& name) {
            MemoryRegionInfo r;
            r.start = base;
            r.end = base + size - 1;
            r.priority = 1;
            r.name = name;
            system.children.push_back(std::move(r));
        });
        m.pio().for_each_mapping([&](uint64_t base, uint64_t size, const std::string& name) {
            MemoryRegionInfo r;
            r.start = base;
            r.end = base + size - 1;
            r.name = name;
            io_root.children.push_back(std::move(r));
        });
    }
    std::stable_sort(system.children.begin(), system.children.end(),
        [](const MemoryRegionInfo& a, const MemoryRegionInfo& b) { return a.start < b.start; });
    memory.root = std::move(system);
    io.root = std::move(io_root);
    return { memory, io };
}

QtreeBus VmControl::device_tree() const
{
    hw::PcMachine& m = *m_vm.machine;
    QtreeBus root { "main-system-bus", "System", {} };
    QtreeDevice host { "i440FX-pcihost", "", { "short_root_bus = 0 (0x0)" }, {} };
    QtreeBus pci { "pci.0", "PCI", {} };
    QtreeBus isa { "isa.0", "ISA", {} };
    for_each_pci_function(m, [&](unsigned slot, unsigned fn, hw::PciDevice& d) {
        hw::PciDevice* dev = &d;
        char addr[32];
        snprintf(addr, sizeof addr, "addr = %02x.%x", slot, fn);
        char ids[96];
        snprintf(ids, sizeof ids, "class %04x, addr 00:%02x.%x, pci id %04x:%04x (sub %04x:%04x)",
            unsigned(dev->config_read(0x0a, 2)), slot, fn, unsigned(dev->config_read(0, 2)),
            unsigned(dev->config_read(2, 2)), unsigned(dev->config_read(0x2c, 2)), unsigned(dev->config_read(0x2e, 2)));
        std::vector<QtreeBus> buses;
        if (slot == 1 && fn == 0)
            buses.push_back(isa); // PIIX3's ISA bridge: filled below
        pci.devices.push_back(QtreeDevice { dev->name(), "", { addr, ids }, std::move(buses) });
    });
    for (const hw::DeviceState* s : m.device_states()) {
        std::string name = s->state_name();
        if (name.rfind("pci", 0) == 0 || name.rfind("piix", 0) == 0 || name.rfind("i440", 0) == 0)
            continue;
        isa.devices.push_back({ name, "", {}, {} });
    }
    for (auto& d : pci.devices)
        if (!d.buses.empty())
            d.buses[0] = isa;
    host.buses.push_back(std::move(pci));
    root.devices.push_back(std::move(host));
    return root;
}

// ---- keys ----

Result<void> VmControl::send_keys(const std::vector<KeyPress>& keys, int64_t hold_time_ms)
{
    std::vector<const KeyCode*> codes;
    for (const KeyPress& k : keys) {
        const KeyCode* code = k.qcode.empty() ? key_by_number(k.number) : key_by_qcode(k.qcode);
        if (!code)
            return Error::invalid(k.qcode.empty() ? "Invalid key number " + std::to_string(k.number)
                                                  : "Parameter 'keys' has an invalid key '" + k.qcode + "'");
        codes.push_back(code);
    }
    {
        hw::MachineLock lk(*m_vm.machine);
        for (const KeyCode* c : codes)
            m_vm.machine->i8042().key_event(set2_press(*c));
    }
    // Released in reverse order once the hold time has passed, as QEMU does.
    uint64_t hold_ns = uint64_t(hold_time_ms > 0 ? hold_time_ms : 100) * 1000000;
    m_loop.add_timer_ns(hold_ns, [this, codes] {
        hw::MachineLock lk(*m_vm.machine);
        for (auto it = codes.rbegin(); it != codes.rend(); ++it)
            m_vm.machine->i8042().key_event(set2_release(**it));
    });
    return {};
}

} // namespace kiln::system
