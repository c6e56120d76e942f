#include "tests/unit/monitor/fake_machine.h"

#include <fcntl.h>
#include <unistd.h>

namespace kiln::monitor::testing {

namespace {

CpuRegisters reset_state()
{
    CpuRegisters r;
    r.gpr[2] = 0x00060fb1; // EDX = family/model/stepping at reset
    r.rip = 0xfff0;
    r.rflags = 0x2;
    for (auto& s : r.segs) {
        s.limit = 0xffff;
        s.flags = 0x9300;
    }
    r.segs[1] = { 0xf000, 0xffff0000, 0xffff, 0x9b00 };
    r.ldt = { 0, 0, 0xffff, 0x8200 };
    r.tr = { 0, 0, 0xffff, 0x8b00 };
    r.gdt = { 0, 0xffff };
    r.idt = { 0, 0xffff };
    return r;
}

PciDeviceInfo pci_dev(int64_t slot, int64_t fn, uint16_t cls, uint16_t vendor, uint16_t device, int64_t pin = 0)
{
    PciDeviceInfo d;
    d.slot = slot;
    d.function = fn;
    d.class_code = cls;
    d.vendor_id = vendor;
    d.device_id = device;
    d.subsystem_vendor_id = 0x1af4;
    d.subsystem_id = 0x1100;
    d.irq_pin = pin;
    return d;
}

} // namespace

FakeMachine::FakeMachine()
{
    FakeCpu cpu;
    cpu.index = 0;
    cpu.thread_id = 10918;
    cpu.qom_path = "/machine/unattached/device[0]";
    cpu.regs = reset_state();
    cpu_list.push_back(cpu);

    BlockDeviceInfo hd;
    hd.device = "ide0-hd0";
    hd.qdev = "/machine/unattached/device[23]";
    hd.io_status = "ok";
    BlockMedium medium;
    medium.node_name = "#block152";
    medium.filename = "d.qcow2";
    medium.format = "qcow2";
    medium.virtual_size_bytes = 64ull << 20;
    medium.cluster_size_bytes = 65536;
    medium.actual_size_bytes = 200704;
    hd.medium = medium;
    blocks.push_back(hd);
    BlockDeviceInfo cd;
    cd.device = "ide1-cd0";
    cd.qdev = "/machine/unattached/device[24]";
    cd.removable = true;
    cd.io_status = "ok";
    blocks.push_back(cd);
    BlockDeviceInfo fd;
    fd.device = "floppy0";
    fd.qdev = "/machine/unattached/device[16]";
    fd.removable = true;
    blocks.push_back(fd);
    BlockDeviceInfo sd;
    sd.device = "sd0";
    sd.removable = true;
    blocks.push_back(sd);

    chardev_list = { { "parallel0", "null", true }, { "compat_monitor0", "stdio", true }, { "serial0", "null", true } };

    pci.push_back(pci_dev(0, 0, 0x0600, 0x8086, 0x1237));
    pci.push_back(pci_dev(1, 0, 0x0601, 0x8086, 0x7000));
    auto ide = pci_dev(1, 1, 0x0101, 0x8086, 0x7010);
    ide.regions.push_back({ 4, PciRegion::Kind::Io, UINT64_MAX, 16 });
    pci.push_back(ide);
    pci.push_back(pci_dev(1, 3, 0x0680, 0x8086, 0x7113, 1));
    auto vga = pci_dev(2, 0, 0x0300, 0x1234, 0x1111);
    vga.regions.push_back({ 0, PciRegion::Kind::Memory, UINT64_MAX, 16 << 20, true });
    vga.regions.push_back({ 2, PciRegion::Kind::Memory, UINT64_MAX, 4096 });
    vga.regions.push_back({ 6, PciRegion::Kind::Memory, UINT64_MAX, 65536 });
    pci.push_back(vga);
    auto nic = pci_dev(3, 0, 0x0200, 0x8086, 0x100e, 1);
    nic.regions.push_back({ 0, PciRegion::Kind::Memory, UINT64_MAX, 131072 });
    nic.regions.push_back({ 1, PciRegion::Kind::Io, UINT64_MAX, 64 });
    nic.regions.push_back({ 6, PciRegion::Kind::Memory, UINT64_MAX, 262144 });
    pci.push_back(nic);

    MemoryRegionInfo system { "system", 0, UINT64_MAX, 0, "i/o" };
    MemoryRegionInfo ram { "ram-below-4g", 0, 0x3ffffff, 0, "ram" };
    ram.alias_of = "pc.ram";
    ram.alias_end = 0x3ffffff;
    MemoryRegionInfo pci_region { "pci", 0, UINT64_MAX, -1, "i/o" };
    pci_region.children.push_back({ "pc.rom", 0xc0000, 0xdffff, 1, "rom" });
    MemoryRegionInfo isa_bios { "isa-bios", 0xe0000, 0xfffff, 1, "rom" };
    isa_bios.alias_of = "pc.bios";
    isa_bios.alias_start = 0x20000;
    isa_bios.alias_end = 0x3ffff;
    pci_region.children.push_back(isa_bios);
    system.children = { ram, pci_region };
    MemoryTreeSection section;
    section.names = { "cpu-memory-0", "memory" };
    section.root = system;
    mtree.push_back(section);
    MemoryTreeSection io;
    io.names = { "I/O" };
    io.root = MemoryRegionInfo { "io", 0, 0xffff, 0, "i/o" };
    io.root->children.push_back({ "pic", 0x20, 0x21, 0, "i/o" });
    mtree.push_back(io);

    qtree.name = "main-system-bus";
    qtree.type = "System";
    QtreeDevice hpet { "hpet", "", { "gpio-in \"\" 2", "timers = 3 (0x3)", "mmio 00000000fed00000/0000000000000400" },
        {} };
    QtreeDevice host { "i440FX-pcihost", "", { "short_root_bus = 0 (0x0)" }, {} };
    QtreeBus pci0 { "pci.0", "PCI", {} };
    pci0.devices.push_back({ "PIIX4_PM", "", { "addr = 01.3" }, {} });
    host.buses.push_back(pci0);
    qtree.devices = { hpet, host };

    // BIOS bytes QEMU 7.2's SeaBIOS has at these addresses (captured with
    // pmemsave), so /i and /x output can be compared with real QEMU.
    poke(0xfe0b0,
        { 0x0f, 0x87, 0xd0, 0x01, 0x67, 0x66, 0x8d, 0x42, 0x14, 0x66, 0x89, 0xc1, 0x66, 0xc1, 0xe9, 0x04, 0x8e, 0xc1,
            0x66, 0x83, 0xe0, 0x0f, 0x26, 0x67, 0x66, 0x8b, 0x00, 0x66, 0x6a, 0x00, 0x66, 0x89 });
    std::vector<uint8_t> top = { 0xf1, 0x66, 0x83, 0xc9, 0xff, 0x66, 0x89, 0xc8, 0x66, 0x5b, 0x66, 0x5e, 0x66, 0x5f,
        0x66, 0xc3, 0xea, 0x5b, 0xe0, 0x00, 0xf0, 0x30, 0x36, 0x2f, 0x32, 0x33, 0x2f, 0x39, 0x39, 0x00, 0xfc, 0x00 };
    poke(0xfffe0, top);
    poke(0xfffffff0, std::vector<uint8_t>(top.begin() + 16, top.end()));
}

std::vector<CpuInfo> FakeMachine::cpus() const { return std::vector<CpuInfo>(cpu_list.begin(), cpu_list.end()); }

Result<CpuRegisters> FakeMachine::cpu_registers(int64_t cpu_index)
{
    for (const auto& cpu : cpu_list)
        if (cpu.index == cpu_index)
            return cpu.regs;
    return Error::not_found("CPU " + std::to_string(cpu_index) + " not found");
}

void FakeMachine::poke(uint64_t address, const std::vector<uint8_t>& bytes)
{
    for (size_t i = 0; i < bytes.size(); ++i) {
        uint64_t a = address + i;
        auto& page = m_pages[a / 4096];
        page[a % 4096] = bytes[i];
    }
}

Result<void> FakeMachine::read_memory(AddressKind kind, int64_t, uint64_t address, void* buffer, uint64_t length_bytes)
{
    // Virtual addresses in Linux's kernel text map (__START_KERNEL_map)
    // translate to physical ones; below it paging is treated as off.
    constexpr uint64_t k_kernel_map = 0xffffffff80000000ull;
    if (kind == AddressKind::Virtual && address >= k_kernel_map) {
        if (address + length_bytes < address)
            return Error::invalid("address wraps");
        return read_memory(AddressKind::Physical, 0, address - k_kernel_map, buffer, length_bytes);
    }
    // Physical map: RAM below ram_size, the BIOS's last 256 KiB below 4 GiB.
    // Paging is off in the fake CPU, so virtual = physical.
    auto* out = static_cast<uint8_t*>(buffer);
    for (uint64_t i = 0; i < length_bytes; ++i) {
        uint64_t a = address + i;
        if (a < address)
            return Error::invalid("address wraps");
        bool mapped = a < ram_size_bytes || (a >= 0xfffc0000 && a < 0x100000000ull);
        if (!mapped)
            return Error::invalid("Cannot access memory");
        auto it = m_pages.find(a / 4096);
        out[i] = it == m_pages.end() ? 0 : it->second[a % 4096];
    }
    return {};
}

void FakeMachine::emit(MonitorEvent kind, std::vector<EventField> data)
{
    if (m_sink)
        m_sink(MachineEvent { kind, std::move(data) });
}

Result<void> FakeMachine::stop()
{
    if (m_state == RunState::Running) {
        m_state = RunState::Paused;
        emit(MonitorEvent::Stop);
    }
    return {};
}

Result<void> FakeMachine::cont()
{
    m_state = RunState::Running;
    emit(MonitorEvent::Resume);
    return {};
}

Result<void> FakeMachine::system_reset()
{
    ++reset_calls;
    emit(MonitorEvent::Reset,
        { { "guest", EventField::Type::Bool, "", 0, false },
            { "reason", EventField::Type::String, "host-qmp-system-reset" } });
    return {};
}

Result<void> FakeMachine::system_powerdown()
{
    emit(MonitorEvent::Powerdown);
    return {};
}

Result<void> FakeMachine::send_keys(const std::vector<KeyPress>& keys, int64_t hold_time_ms)
{
    sent_keys.push_back(keys);
    hold_times.push_back(hold_time_ms);
    return {};
}

BlockDeviceInfo* FakeMachine::find_block(const std::string& device)
{
    for (auto& b : blocks)
        if (b.device == device || (b.medium && b.medium->node_name == device))
            return &b;
    return nullptr;
}

Result<void> FakeMachine::commit(const std::string& device)
{
    if (device == "all")
        return {};
    if (!find_block(device))
        return Error::not_found("Device '" + device + "' not found");
    return Error::not_supported("commit");
}

Result<void> FakeMachine::eject(const std::string& device, bool)
{
    auto* b = find_block(device);
    if (!b)
        return Error::not_found("Device '" + device + "' not found");
    if (!b->removable)
        return Error::invalid("Device '" + device + "' is not removable");
    b->medium.reset();
    return {};
}

Result<void> FakeMachine::change_medium(
    const std::string& device, const std::string& filename, const std::string& format, MediumMode, bool)
{
    auto* b = find_block(device);
    if (!b)
        return Error::not_found("Device '" + device + "' not found");
    int fd = ::open(filename.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return Error::from_errno(errno, "Could not open '" + filename + "'");
    ::close(fd);
    if (!b->removable)
        return Error::invalid("Device '" + device + "' is not removable");
    BlockMedium m;
    m.node_name = "#block999";
    m.filename = filename;
    m.format = format.empty() ? "raw" : format;
    m.read_only = true;
    b->medium = m;
    changed.push_back(device + "=" + filename);
    return {};
}

Result<void> FakeMachine::block_resize(const std::string& device, uint64_t size_bytes)
{
    auto* b = find_block(device);
    if (!b)
        return Error::not_found("Device '" + device + "' not found");
    resized.push_back(device + "=" + std::to_string(size_bytes));
    if (b->medium)
        b->medium->virtual_size_bytes = size_bytes;
    return {};
}

} // namespace kiln::monitor::testing
