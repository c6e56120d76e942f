// virtio-blk (virtio 1.x 5.2) on a Drive: read, write, flush, discard,
// write zeroes and get-id requests, each a coroutine on the event loop, so
// a queue can have as many requests in flight as it has descriptors.
// Completions run under the machine lock, fill the status byte, return
// the buffers on the used ring and interrupt as the driver asked.
#pragma once

#include <memory>
#include <string>

#include "hw/block/device_io.h"
#include "hw/block/drive.h"
#include "hw/virtio/virtio_device.h"

namespace kiln::hw {

struct VirtioBlkConfig {
    unsigned num_queues = 1;
    uint16_t queue_size = 256;
    std::string serial; // GET_ID answer (20 bytes at most)
};

class VirtioBlk final : public VirtioDevice {
public:
    // Feature bits (virtio 1.x 5.2.3).
    static constexpr uint64_t k_f_size_max = 1ull << 1, k_f_seg_max = 1ull << 2, k_f_geometry = 1ull << 4,
                              k_f_ro = 1ull << 5, k_f_blk_size = 1ull << 6, k_f_flush = 1ull << 9,
                              k_f_topology = 1ull << 10, k_f_mq = 1ull << 12, k_f_discard = 1ull << 13,
                              k_f_write_zeroes = 1ull << 14;
    static constexpr uint32_t k_t_in = 0, k_t_out = 1, k_t_flush = 4, k_t_get_id = 8, k_t_discard = 11,
                              k_t_write_zeroes = 13;
    static constexpr uint8_t k_s_ok = 0, k_s_ioerr = 1, k_s_unsupp = 2;
    static constexpr unsigned k_max_discard_segments = 16;
    static constexpr uint32_t k_max_discard_sectors = 0x3fffff;

    VirtioBlk(Drive& drive, const VirtioBlkConfig& cfg, const DeviceIoContext& io);
    ~VirtioBlk() override;

    uint16_t device_type() const override { return 2; }
    std::string device_name() const override { return "virtio-blk"; }
    uint64_t host_features() const override;
    unsigned queue_count() const override { return m_cfg.num_queues; }
    uint16_t queue_max_size() const override { return m_cfg.queue_size; }
    unsigned config_bytes() const override { return 60; }
    void read_config(unsigned offset, uint8_t* out, unsigned bytes) override;
    void write_config(unsigned offset, const uint8_t* in, unsigned bytes) override;
    void queue_notify(unsigned n) override;
    void device_reset() override;
    void resume() override { m_drive.resume(); }

    unsigned in_flight() const { return m_in_flight; }
    const Drive& drive() const { return m_drive; }

private:
    struct Request;
    void start(unsigned queue, VirtqElement e);
    Task<void> run(unsigned queue, uint32_t generation, VirtqElement e);
    Task<std::pair<uint8_t, uint32_t>> execute(const VirtqElement& e, bool& stopped, std::function<void()> retry);
    void complete(unsigned queue, const VirtqElement& e, uint8_t status, uint32_t data_written);

    Drive& m_drive;
    VirtioBlkConfig m_cfg;
    DeviceIoContext m_io;
    AliveToken m_alive = std::make_shared<bool>(true);
    uint32_t m_generation = 0;
    unsigned m_in_flight = 0;
};

} // namespace kiln::hw
