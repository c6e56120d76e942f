// FakeMachine: a MachineControl that looks like QEMU 7.2's
// `qemu-system-x86_64 -S -name testvm -drive file=d.qcow2,if=ide` at the
// prelaunch stop, so HMP text can be compared with real QEMU's output.
#pragma once

#include <array>
#include <cstring>
#include <map>
#include <vector>

#include "monitor/hmp_executor.h"
#include "monitor/machine_control.h"

namespace kiln::monitor::testing {

class FakeMachine : public MachineControl {
public:
    FakeMachine();

    RunState run_state() const override { return m_state; }
    Result<void> stop() override;
    Result<void> cont() override;
    Result<void> system_reset() override;
    Result<void> system_powerdown() override;
    void quit() override { ++quit_calls; }

    VersionInfo version() const override { return { 7, 2, 22, "Debian 1:7.2+dfsg-7+deb12u18+b3" }; }
    std::optional<std::string> name() const override { return vm_name; }
    KvmInfo kvm() const override { return kvm_info; }

    std::vector<CpuInfo> cpus() const override;
    Result<CpuRegisters> cpu_registers(int64_t cpu_index) override;
    std::vector<BlockDeviceInfo> block_devices() const override { return blocks; }
    std::vector<ChardevInfo> chardevs() const override { return chardev_list; }
    std::vector<PciDeviceInfo> pci_devices() const override { return pci; }
    std::vector<MemoryTreeSection> memory_tree() const override { return mtree; }
    QtreeBus device_tree() const override { return qtree; }

    Result<void> read_memory(
        AddressKind kind, int64_t cpu_index, uint64_t address, void* buffer, uint64_t length_bytes) override;
    Result<void> send_keys(const std::vector<KeyPress>& keys, int64_t hold_time_ms) override;
    Result<void> commit(const std::string& device) override;
    Result<void> eject(const std::string& device, bool force) override;
    Result<void> change_medium(const std::string& device, const std::string& filename, const std::string& format,
        MediumMode mode, bool force) override;
    Result<void> block_resize(const std::string& device, uint64_t size_bytes) override;
    void set_event_sink(EventSink sink) override { m_sink = std::move(sink); }

    // Test hooks.
    void emit(MonitorEvent kind, std::vector<EventField> data = {});
    void poke(uint64_t address, const std::vector<uint8_t>& bytes);

    RunState m_state = RunState::Prelaunch;
    std::optional<std::string> vm_name = "testvm";
    KvmInfo kvm_info { true, false };
    struct FakeCpu : CpuInfo {
        CpuRegisters regs;
    };
    std::vector<FakeCpu> cpu_list;
    std::vector<BlockDeviceInfo> blocks;
    std::vector<ChardevInfo> chardev_list;
    std::vector<PciDeviceInfo> pci;
    std::vector<MemoryTreeSection> mtree;
    QtreeBus qtree;
    uint64_t ram_size_bytes = 64ull << 20;

    int quit_calls = 0;
    int reset_calls = 0;
    std::vector<std::vector<KeyPress>> sent_keys;
    std::vector<int64_t> hold_times;
    std::vector<std::string> resized;
    std::vector<std::string> changed;

private:
    BlockDeviceInfo* find_block(const std::string& device);
    std::map<uint64_t, std::array<uint8_t, 4096>> m_pages;
    EventSink m_sink;
};

// What HMP tests share: a FakeMachine, the table and one HMP executor.
struct HmpHarness {
    FakeMachine machine;
    CommandTable table = build_command_table();
    HmpExecutor hmp { table, machine };

    std::string run(const std::string& line) { return hmp.execute(line); }
};

} // namespace kiln::monitor::testing
