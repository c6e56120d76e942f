// PcDisks: the disk controllers of the `pc` board, built from a
// DiskSetConfig. Opens every drive (QEMU's messages for missing files and
// lock conflicts), places the PIIX3 IDE function at 00:01.1 with its
// legacy ports and ISA IRQs 14/15, and one virtio-blk-pci function per
// virtio disk (first free slot from 00:03.0, or addr=), whose INTx goes
// through the PIIX3 PIRQ routing and whose MSI-X goes to the local APIC.
//
// A request that fails under werror/rerror=stop pauses the VM: with no
// `errors` host given, PcDisks prints why (Log::error) and asks the board
// to stop (MachineEvent::Stop); resume() re-issues the request.
//
// Lifetime: create() after the board, reset() on system reset, resume()
// when the VM continues after a werror/rerror=stop pause, close() (drain
// and close the images) before the board is destroyed.
#pragma once

#include <memory>
#include <vector>

#include "block/context.h"
#include "hw/block/drive.h"
#include "hw/block/drive_config.h"
#include "hw/i386/pc.h"
#include "hw/ide/piix_ide.h"
#include "hw/virtio/virtio_blk.h"
#include "hw/virtio/virtio_pci.h"

namespace kiln::hw {

class PcDisks {
public:
    static Task<Result<std::unique_ptr<PcDisks>>> create(
        PcMachine& machine, block::BlockContext& ctx, const DiskSetConfig& cfg, BlockErrorHost* errors = nullptr);
    ~PcDisks();
    PcDisks(const PcDisks&) = delete;
    PcDisks& operator=(const PcDisks&) = delete;

    // With the machine lock held.
    void reset();
    void resume();
    // With the machine lock held: drive `id` changed size (block_resize);
    // a virtio disk's driver is told through a config interrupt, IDE
    // reports the new size on the next IDENTIFY.
    void drive_resized(const std::string& id);
    // Drains every request and closes the images (snapshot overlays go away).
    Task<Result<void>> close();

    PiixIde& ide() { return *m_ide; }
    size_t virtio_count() const { return m_virtio.size(); }
    VirtioPci& virtio_pci(size_t i) { return *m_virtio[i].pci; }
    VirtioBlk& virtio_blk(size_t i) { return *m_virtio[i].blk; }
    Drive* drive(const std::string& id) const;
    // Every drive in command-line order (the monitor's block list).
    std::vector<Drive*> drives() const;
    // Migratable state of the controllers (append to the machine's list).
    std::vector<DeviceState*> device_states() const;

private:
    class Lock;
    class Msi;
    class Pirq;
    class StopHost;
    struct VirtioFn {
        std::unique_ptr<VirtioBlk> blk;
        std::unique_ptr<VirtioPci> pci;
        std::unique_ptr<IrqLine> intx;
        unsigned slot = 0;
    };

    explicit PcDisks(PcMachine& machine);
    Result<void> place(const DiskSetConfig& cfg);

    PcMachine& m_machine;
    std::unique_ptr<Lock> m_lock;
    std::unique_ptr<Msi> m_msi;
    std::unique_ptr<Pirq> m_pirq;
    std::unique_ptr<StopHost> m_stop_host;
    DeviceIoContext m_io;
    std::vector<std::unique_ptr<Drive>> m_drives;
    std::unique_ptr<PiixIde> m_ide;
    std::vector<VirtioFn> m_virtio;
    std::vector<BusMapping> m_mappings;
};

} // namespace kiln::hw
