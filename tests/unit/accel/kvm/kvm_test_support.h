// Helpers for the KVM tests: open /dev/kvm or skip, build a VM around a
// FakeVcpuHost, and run a vCPU under a watchdog so no test can hang.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "accel/kvm/kvm_accel.h"
#include "tests/unit/accel/fake_vcpu_host.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::test {

// Opens /dev/kvm; on failure returns nullptr and sets `why` (the caller skips).
inline std::unique_ptr<accel::kvm::KvmDevice> open_kvm(std::string& why)
{
    auto dev = accel::kvm::KvmDevice::open();
    if (!dev) {
        why = "KVM is not usable here: " + dev.error().message();
        return nullptr;
    }
    return std::move(dev).value();
}

#define KILN_REQUIRE_KVM()                                                                                             \
    do {                                                                                                               \
        std::string _kvm_why;                                                                                          \
        if (!::kiln::test::open_kvm(_kvm_why))                                                                         \
            GTEST_SKIP() << _kvm_why;                                                                                  \
    } while (0)

// A VM with one vCPU over `host`'s memory.
struct KvmGuest {
    std::unique_ptr<FakeVcpuHost> host;
    std::unique_ptr<accel::kvm::KvmAccel> accel;
    std::unique_ptr<accel::kvm::KvmVcpu> vcpu;
};

inline Result<KvmGuest> make_kvm_guest(std::unique_ptr<FakeVcpuHost> host, const std::string& cpu = "qemu64")
{
    KvmGuest g;
    g.host = std::move(host);
    accel::kvm::KvmOptions options;
    options.cpu = cpu;
    g.accel = TRY(accel::kvm::KvmAccel::create(g.host->memory(), options));
    g.vcpu = TRY(g.accel->create_vcpu(*g.host, 0));
    return g;
}

// A guest loaded with payload `p`, its vCPU in p's starting state. On
// failure the test has failed and the result holds null pointers.
inline KvmGuest guest_for(const Payload& p, const std::string& cpu = "qemu64")
{
    auto g = make_kvm_guest(make_payload_host(p), cpu);
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message());
    if (!g.ok())
        return {};
    auto set = g->vcpu->set_state(p.initial);
    EXPECT_TRUE(set.ok()) << (set.ok() ? "" : set.error().message());
    return std::move(g).value();
}

// 64-bit code at 0x1000 on real_to_long_mode's GDT and identity page tables.
inline Payload long_mode_payload(std::vector<uint8_t> code)
{
    Payload p = payload("real_to_long_mode");
    p.memory.push_back({ 0x1000, std::move(code) });
    p.initial = long_mode_state(0x1000);
    return p;
}

struct TimedRun {
    Result<accel::VcpuExit> exit = Error::internal("not run");
    bool timed_out = false;
    double elapsed_ms = 0;
};

// run() with a watchdog: after `limit` the vCPU is kicked (repeatedly, in
// case the kick lands between exits) and the run is reported as timed out.
inline TimedRun run_with_limit(accel::Vcpu& vcpu, std::chrono::milliseconds limit = std::chrono::seconds(60))
{
    TimedRun out;
    std::mutex lock;
    std::condition_variable cv;
    bool done = false;
    std::thread watchdog([&] {
        std::unique_lock l(lock);
        if (cv.wait_for(l, limit, [&] { return done; }))
            return;
        out.timed_out = true;
        while (!done) {
            vcpu.kick();
            cv.wait_for(l, std::chrono::milliseconds(50), [&] { return done; });
        }
    });
    auto t0 = std::chrono::steady_clock::now();
    out.exit = vcpu.run();
    out.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
        std::lock_guard l(lock);
        done = true;
    }
    cv.notify_all();
    watchdog.join();
    return out;
}

} // namespace kiln::test
