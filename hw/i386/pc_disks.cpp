#include "hw/i386/pc_disks.h"

#include <optional>

#include "util/log.h"

namespace kiln::hw {

// Completions take the board's MachineLock, so the vCPU's lock-free
// interrupt summary is refreshed when they raise an IRQ.
class PcDisks::Lock final : public DeviceLock {
public:
    explicit Lock(PcMachine& m)
        : m_machine(m)
    {
    }
    void acquire() override { m_held.emplace(m_machine); }
    void release() override { m_held.reset(); }

private:
    PcMachine& m_machine;
    std::optional<MachineLock> m_held;
};

// MSI to the (single) local APIC: address 0xFEEx_xxxx carries the
// destination, data the vector, delivery mode and trigger mode.
class PcDisks::Msi final : public MsiSink {
public:
    explicit Msi(PcMachine& m)
        : m_machine(m)
    {
    }
    void deliver_msi(uint64_t address, uint32_t data) override
    {
        if ((address >> 20) != 0xfee)
            return; // not an interrupt message: a write nobody decodes
        uint8_t dest = uint8_t(address >> 12);
        bool logical = address & 4;
        unsigned mode = (data >> 8) & 7;
        bool level = data & (1u << 15);
        LocalApic& apic = m_machine.lapic();
        if (dest != 0xff && !apic.matches_destination(dest, logical))
            return;
        apic.deliver(uint8_t(data), mode, level);
        m_machine.kick_vcpu();
    }

private:
    PcMachine& m_machine;
};

// ORs the INTx lines of the functions that share a PIRQ.
class PcDisks::Pirq final : public IrqSink {
public:
    explicit Pirq(PcMachine& m)
        : m_machine(m)
    {
    }
    // pin = index of the function's line in m_levels.
    unsigned add_line(unsigned pirq)
    {
        m_pirq_of.push_back(pirq);
        m_levels.push_back(false);
        return unsigned(m_levels.size() - 1);
    }
    void set_irq(unsigned pin, bool level) override
    {
        if (pin >= m_levels.size())
            return;
        m_levels[pin] = level;
        unsigned pirq = m_pirq_of[pin];
        bool any = false;
        for (size_t i = 0; i < m_levels.size(); i++)
            any |= m_pirq_of[i] == pirq && m_levels[i];
        if (auto* bridge = dynamic_cast<Piix3IsaBridge*>(m_machine.pci().function_at(1, 0)))
            bridge->set_pirq(pirq, any);
    }

private:
    PcMachine& m_machine;
    std::vector<unsigned> m_pirq_of;
    std::vector<bool> m_levels;
};

// The default reaction to werror/rerror=stop: say why and pause the VM.
class PcDisks::StopHost final : public BlockErrorHost {
public:
    explicit StopHost(PcMachine& m)
        : m_machine(m)
    {
    }
    void block_error_stop(const std::string&, IoDirection, bool, const std::string& reason) override
    {
        Log::error(reason);
        m_machine.request_stop();
    }

private:
    PcMachine& m_machine;
};

PcDisks::PcDisks(PcMachine& machine)
    : m_machine(machine)
    , m_lock(std::make_unique<Lock>(machine))
    , m_msi(std::make_unique<Msi>(machine))
    , m_pirq(std::make_unique<Pirq>(machine))
    , m_stop_host(std::make_unique<StopHost>(machine))
{
}

PcDisks::~PcDisks() { m_mappings.clear(); }

Task<Result<std::unique_ptr<PcDisks>>> PcDisks::create(
    PcMachine& machine, block::BlockContext& ctx, const DiskSetConfig& cfg, BlockErrorHost* errors)
{
    std::unique_ptr<PcDisks> d(new PcDisks(machine));
    d->m_io.loop = &ctx.loop();
    d->m_io.machine_lock = d->m_lock.get();
    d->m_io.memory = &machine.memory();
    for (const DriveConfig& dc : cfg.drives) {
        auto drive = co_await Drive::open(ctx, dc);
        if (!drive) {
            // Images opened so far are closed before reporting.
            (void)co_await d->close();
            co_return Error(drive.error().kind(), dc.origin + ": " + drive.error().message());
        }
        drive.value()->set_error_host(errors ? errors : d->m_stop_host.get());
        d->m_drives.push_back(std::move(drive).value());
    }
    auto placed = d->place(cfg);
    if (!placed) {
        (void)co_await d->close();
        co_return std::move(placed).error();
    }
    co_return std::move(d);
}

Drive* PcDisks::drive(const std::string& id) const
{
    for (const auto& d : m_drives)
        if (d->id() == id)
            return d.get();
    return nullptr;
}

std::vector<Drive*> PcDisks::drives() const
{
    std::vector<Drive*> out;
    for (const auto& d : m_drives)
        out.push_back(d.get());
    return out;
}

Result<void> PcDisks::place(const DiskSetConfig& cfg)
{
    m_ide = std::make_unique<PiixIde>(
        m_machine.isa_irq(PiixIde::k_primary_irq), m_machine.isa_irq(PiixIde::k_secondary_irq), m_machine.pio(), m_io);
    TRY(m_machine.pci().attach(1, 1, *m_ide));
    struct Port {
        uint16_t base, size;
        IoRegion* region;
        const char* name;
    };
    Port ports[] = { { PiixIde::k_primary_cmd, 8, &m_ide->channel(0).command_block(), "ide0" },
        { PiixIde::k_primary_ctl, 1, &m_ide->channel(0).control_block(), "ide0-ctl" },
        { PiixIde::k_secondary_cmd, 8, &m_ide->channel(1).command_block(), "ide1" },
        { PiixIde::k_secondary_ctl, 1, &m_ide->channel(1).control_block(), "ide1-ctl" } };
    for (const Port& p : ports)
        m_mappings.push_back(TRY(m_machine.pio().map(p.base, p.size, *p.region, p.name)));

    unsigned next_slot = 3;
    for (const DiskDeviceConfig& dev : cfg.devices) {
        Drive* d = dev.drive_id.empty() ? nullptr : drive(dev.drive_id);
        std::string where = dev.origin.empty() ? dev.drive_id : dev.origin;
        if (dev.kind == DiskDeviceKind::VirtioBlkPci) {
            if (!d)
                return Error::invalid(where + ": drive property not set");
            unsigned slot = dev.pci_slot >= 0 ? unsigned(dev.pci_slot) : 0;
            if (dev.pci_slot < 0) {
                while (next_slot < 32 && m_machine.pci().function_at(next_slot, 0))
                    next_slot++;
                if (next_slot >= 32)
                    return Error::invalid(where + ": no free PCI slot for virtio-blk-pci");
                slot = next_slot;
            }
            if (m_machine.pci().function_at(slot, 0))
                return Error::invalid(where + ": PCI: slot " + std::to_string(slot)
                    + " function 0 not available for virtio-blk-pci, in use by "
                    + m_machine.pci().function_at(slot, 0)->name());
            VirtioFn fn;
            fn.slot = slot;
            VirtioBlkConfig bc;
            bc.num_queues = dev.num_queues;
            bc.queue_size = uint16_t(dev.queue_size);
            bc.serial = dev.serial.empty() ? d->config().serial : dev.serial;
            fn.blk = std::make_unique<VirtioBlk>(*d, bc, m_io);
            fn.intx = std::make_unique<IrqLine>();
            unsigned pin = m_pirq->add_line(Piix3IsaBridge::pirq_for(slot, 1));
            fn.intx->connect(*m_pirq, pin);
            fn.pci = std::make_unique<VirtioPci>(*fn.blk, m_machine.memory(), *fn.intx, m_msi.get(),
                VirtioPciBuses { &m_machine.pio(), &m_machine.mmio() }, "virtio-blk-pci-" + std::to_string(slot));
            // The guest's interrupt line register starts at the routed IRQ,
            // as firmware would leave it.
            TRY(m_machine.pci().attach(slot, 0, *fn.pci));
            m_virtio.push_back(std::move(fn));
            continue;
        }
        IdeKind kind = dev.kind == DiskDeviceKind::IdeCd ? IdeKind::Cdrom : IdeKind::Disk;
        if (dev.ide_bus < 0 || dev.ide_bus > 1 || dev.ide_unit < 0 || dev.ide_unit > 1)
            return Error::invalid(where + ": no IDE unit given");
        std::string serial = dev.serial.empty() && d ? d->config().serial : dev.serial;
        auto r = m_ide->channel(unsigned(dev.ide_bus)).attach(unsigned(dev.ide_unit), kind, d, serial);
        if (!r)
            return Error(r.error().kind(), where + ": " + r.error().message());
    }
    return ok();
}

void PcDisks::reset()
{
    if (m_ide)
        m_ide->reset();
    for (auto& v : m_virtio)
        v.pci->reset();
}

void PcDisks::resume()
{
    for (auto& d : m_drives)
        d->resume();
}

void PcDisks::drive_resized(const std::string& id)
{
    for (auto& fn : m_virtio)
        if (fn.blk->drive().id() == id)
            fn.pci->config_changed();
}

Task<Result<void>> PcDisks::close()
{
    Result<void> first = ok();
    for (auto& d : m_drives) {
        auto r = co_await d->close();
        if (!r && first)
            first = std::move(r).error();
    }
    co_return first;
}

std::vector<DeviceState*> PcDisks::device_states() const
{
    std::vector<DeviceState*> out;
    if (m_ide)
        out.push_back(m_ide.get());
    for (const auto& v : m_virtio)
        out.push_back(v.pci.get());
    return out;
}

} // namespace kiln::hw
