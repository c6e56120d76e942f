// MemNode: a RAM-backed protocol node for qcow2 unit tests, with a crash
// model (writes since the last flush may or may not have reached "disk")
// and fault injection (fail writes after a budget, or past a size: ENOSPC).
#pragma once

#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "block/context.h"
#include "block/node.h"

namespace kiln::block::test {

class MemNode final : public BlockNode {
public:
    MemNode(BlockContext& ctx, std::vector<uint8_t> data = {}, bool read_write = true)
        : BlockNode(ctx), m_data(std::move(data)), m_durable(m_data)
    {
        set_read_only(!read_write);
    }

    std::string_view driver_name() const override { return "file"; }
    std::string filename() const override { return "/mem/image.qcow2"; }
    uint64_t size_bytes() const override { return m_data.size(); }

    Task<Result<void>> preadv(uint64_t offset, QIov qiov) override
    {
        if (yield_each_request)
            co_await context().loop().yield();
        size_t len = qiov.size();
        for (size_t i = 0; i < len; ++i) {
            uint8_t b = offset + i < m_data.size() ? m_data[offset + i] : 0;
            qiov.copy_in(i, &b, 1);
        }
        ++reads;
        co_return ok();
    }

    Task<Result<void>> pwritev(uint64_t offset, QIov qiov, RequestFlags) override
    {
        if (read_only())
            co_return Error{ErrorKind::PermissionDenied, "read-only", EPERM};
        if (yield_each_request)
            co_await context().loop().yield();
        if (fail_writes_after >= 0 && writes >= uint64_t(fail_writes_after))
            co_return Error::from_errno(EIO, "injected write failure");
        if (max_size_bytes && offset + qiov.size() > max_size_bytes)
            co_return Error::from_errno(ENOSPC, "injected out of space");
        if (offset + qiov.size() > m_data.size())
            m_data.resize(offset + qiov.size(), 0);
        std::vector<uint8_t> buf(qiov.size());
        qiov.copy_out(0, buf.data(), buf.size());
        std::memcpy(&m_data[offset], buf.data(), buf.size());
        m_pending.push_back({offset, std::move(buf)});
        ++writes;
        if (on_write)
            on_write();
        co_return ok();
    }

    Task<Result<void>> flush() override
    {
        if (yield_each_request)
            co_await context().loop().yield();
        m_durable = m_data;
        m_pending.clear();
        ++flushes;
        co_return ok();
    }

    Task<Result<void>> truncate(uint64_t new_size, PreallocMode, bool) override
    {
        m_data.resize(new_size, 0);
        m_pending.push_back({new_size, {}}); // marks a size change
        co_return ok();
    }

    // What "disk" could hold after a crash now: the durable image plus a
    // random subset of the writes since the last flush, in issue order.
    std::vector<uint8_t> crash_image(std::mt19937& rng) const
    {
        std::vector<uint8_t> img = m_durable;
        for (const auto& w : m_pending) {
            if (w.data.empty()) {
                if (rng() & 1)
                    img.resize(w.offset, 0);
                continue;
            }
            if (rng() & 1)
                continue;
            if (w.offset + w.data.size() > img.size())
                img.resize(w.offset + w.data.size(), 0);
            std::memcpy(&img[w.offset], w.data.data(), w.data.size());
        }
        return img;
    }

    const std::vector<uint8_t>& data() const { return m_data; }
    std::vector<uint8_t>& mutable_data() { return m_data; }

    bool yield_each_request = false;
    int64_t fail_writes_after = -1;
    uint64_t max_size_bytes = 0;
    uint64_t writes = 0, reads = 0, flushes = 0;
    std::function<void()> on_write;

private:
    struct Pending {
        uint64_t offset;
        std::vector<uint8_t> data;
    };
    std::vector<uint8_t> m_data;
    std::vector<uint8_t> m_durable;
    std::vector<Pending> m_pending;
};

} // namespace kiln::block::test
