// IdeChannel: one ATA channel (primary or secondary): the command block
// (8 ports), the control block (alternate status / device control), two
// units (master, slave) that are ATA disks or ATAPI CD-ROMs, the channel's
// IRQ line and its bus-master DMA registers (SFF-8038i).
//
// Every disk access is asynchronous: a command sets BSY and posts a
// coroutine to the event loop; its completion (under the machine lock)
// fills or drains the PIO buffer or finishes the DMA, then raises the IRQ.
// Completions of commands superseded by a reset are dropped (generation).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "block/qiov.h"
#include "hw/block/device_io.h"
#include "hw/block/drive.h"
#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"
#include "hw/ide/ata_defs.h"

namespace kiln::hw {

enum class IdeKind { None, Disk, Cdrom };

// What happens when the guest has moved the whole PIO buffer.
enum class PioEnd { None, ReadNext, WriteChunk, Packet, AtapiNext, AtapiDone };

// The task file. Each device has its own copy: the host's register writes
// reach both, reads come from the selected one, and each device sets its
// own signature and results.
struct TaskFile {
    uint8_t feature = 0, nsector = 0, sector = 0, lcyl = 0, hcyl = 0;
    uint8_t hob_feature = 0, hob_nsector = 0, hob_sector = 0, hob_lcyl = 0, hob_hcyl = 0;
    uint8_t device = 0xa0;
};

struct IdeUnit {
    IdeKind kind = IdeKind::None;
    TaskFile tf;
    Drive* drive = nullptr;
    std::string serial, model;
    uint8_t status = 0, error = 0;
    unsigned mult_sectors = ata::k_max_mult_sectors;
    bool write_cache = true;
    uint8_t xfer_mode = 0x42; // SET FEATURES transfer mode (UDMA2)
    uint64_t cylinders = 0, heads = 16, sectors_per_track = 63;

    // Command in progress.
    uint8_t command = 0;
    uint64_t lba = 0;
    uint32_t remaining = 0; // sectors (ATA) or CD sectors (ATAPI)
    uint32_t chunk = 0; // sectors per DRQ block
    bool lba48 = false;
    bool dma_pending = false;
    bool dma_write = false; // guest memory -> disk
    uint32_t generation = 0;

    // PIO buffer.
    std::vector<uint8_t> buf;
    size_t pos = 0, end = 0;
    PioEnd pio_end = PioEnd::None;

    // ATAPI.
    uint8_t sense_key = 0, asc = 0, ascq = 0;
    unsigned seen_medium = 0;
    bool tray_locked = false;
    bool media_event = false; // GET EVENT STATUS: new medium to report
    uint32_t byte_limit = 0;
    std::vector<uint8_t> reply; // data not yet sent to the host
    size_t reply_pos = 0;
    bool atapi_dma = false;
};

class IdeChannel final : public DeviceState {
public:
    // index: 0 primary, 1 secondary (names and default serials).
    IdeChannel(unsigned index, IrqLine& irq, const DeviceIoContext& io);
    ~IdeChannel() override;

    // Attaches a drive (before the guest runs). serial/model empty: QEMU's
    // defaults ("QM0000N", "QEMU HARDDISK" / "QEMU DVD-ROM").
    Result<void> attach(unsigned unit, IdeKind kind, Drive* drive, const std::string& serial);
    const IdeUnit& unit(unsigned n) const { return m_units[n & 1]; }

    IoRegion& command_block() { return m_cmd_io; } // 8 ports (0x1F0)
    IoRegion& control_block() { return m_ctl_io; } // 1 port (0x3F6)

    // Bus master registers of this channel: 8 bytes in BAR4.
    uint64_t bm_read(uint64_t offset, unsigned size);
    void bm_write(uint64_t offset, unsigned size, uint64_t value);
    uint8_t bm_status() const { return m_bm_status; }

    void reset();
    // The VM continues after a werror/rerror=stop pause.
    void resume();

    std::string state_name() const override { return "ide" + std::to_string(m_index); }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    uint64_t cmd_read(uint64_t offset, unsigned size);
    void cmd_write(uint64_t offset, unsigned size, uint64_t value);
    IdeUnit& cur() { return m_units[m_select]; }
    bool has_any_drive() const { return m_units[0].kind != IdeKind::None || m_units[1].kind != IdeKind::None; }

    // Interrupts.
    void raise_irq();
    void update_irq();

    // Register file helpers.
    uint64_t task_lba(const IdeUnit& u, bool lba48) const;
    void set_task_lba(IdeUnit& u, uint64_t lba, bool lba48);
    uint32_t task_count(const IdeUnit& u, bool lba48) const;
    void set_signature(IdeUnit& u);
    void soft_reset();

    // PIO data port.
    uint32_t data_read(unsigned size);
    void data_write(unsigned size, uint32_t value);
    void pio_start(IdeUnit& u, size_t bytes, PioEnd end);
    void pio_done(IdeUnit& u);

    // ATA commands (ata_commands.cpp).
    void execute(uint8_t command);
    void command_ok(IdeUnit& u, bool irq = true);
    void command_abort(IdeUnit& u);
    void command_error(IdeUnit& u, uint8_t error);
    void identify(IdeUnit& u);
    bool start_rw(IdeUnit& u, uint8_t command);
    void set_features(IdeUnit& u);
    void read_chunk(IdeUnit& u);
    void write_chunk(IdeUnit& u);
    void flush(IdeUnit& u);
    Task<void> run_read(unsigned unit, uint32_t gen, uint64_t offset, size_t bytes);
    Task<void> run_write(unsigned unit, uint32_t gen, uint64_t offset, size_t bytes);
    Task<void> run_flush(unsigned unit, uint32_t gen);
    // Error policy: true if the command already finished (report/ignore).
    bool io_failed(unsigned unit, uint32_t gen, IoDirection dir, const Error& e, std::function<void()> retry);

    // ATAPI (atapi.cpp).
    void identify_packet(IdeUnit& u);
    void packet_command(IdeUnit& u);
    void atapi_dispatch(IdeUnit& u, const uint8_t* cdb);
    void atapi_reply(IdeUnit& u, std::vector<uint8_t> data, size_t alloc);
    void atapi_ok(IdeUnit& u);
    void atapi_check_condition(IdeUnit& u, uint8_t key, uint8_t asc, uint8_t ascq = 0);
    void atapi_read(IdeUnit& u, uint64_t lba, uint32_t count);
    void atapi_read_next(IdeUnit& u);
    void atapi_send_next(IdeUnit& u);
    Task<void> run_atapi_read(unsigned unit, uint32_t gen, uint64_t lba, uint32_t count);
    bool atapi_medium_ready(IdeUnit& u, uint8_t op);

    // Bus-master DMA (bmdma.cpp).
    void dma_maybe_start();
    // Guest spans for `bytes` from the PRD table, or an error.
    Result<block::QIov> dma_map(uint64_t bytes);
    void dma_finish(IdeUnit& u, bool ok);
    void dma_from_buffer(IdeUnit& u, const uint8_t* data, size_t bytes);
    Task<void> run_dma(unsigned unit, uint32_t gen, uint64_t offset, uint64_t bytes, bool write);

    unsigned m_index;
    IrqLine& m_irq;
    DeviceIoContext m_io;
    AliveToken m_alive = std::make_shared<bool>(true);
    std::array<IdeUnit, 2> m_units;
    unsigned m_select = 0;

    uint8_t m_control = 0;
    bool m_irq_pending = false;

    uint8_t m_bm_command = 0, m_bm_status = 0;
    uint32_t m_bm_prd = 0;
    // Guest ranges of the DMA in progress (for RAM write notification).
    std::vector<std::pair<uint64_t, uint64_t>> m_dma_ranges;

    FnRegion m_cmd_io, m_ctl_io;
};

} // namespace kiln::hw
