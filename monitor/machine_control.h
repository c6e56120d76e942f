// MachineControl: the narrow interface the monitor needs from a running VM.
// The board (hw/i386/pc, built by system/) implements it; the monitor never
// sees devices, the block layer or the accelerator directly. Every call is
// made on the main-loop thread; implementations take the machine lock where
// they touch device or vCPU state.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace kiln::monitor {

// QEMU's RunState values, spelled as QAPI spells them.
enum class RunState {
    Debug,
    InMigrate,
    InternalError,
    IoError,
    Paused,
    PostMigrate,
    Prelaunch,
    FinishMigrate,
    RestoreVm,
    Running,
    SaveVm,
    Shutdown,
    Suspended,
    Watchdog,
    GuestPanicked,
    Colo,
};
const char* run_state_name(RunState state);

struct VersionInfo {
    int64_t major = 0;
    int64_t minor = 0;
    int64_t micro = 0;
    std::string package; // appended to the version as QEMU does ("" for none)
};

struct KvmInfo {
    bool present = false; // built in and /dev/kvm usable
    bool enabled = false; // the running accelerator is KVM
};

// One segment register's hidden cache, as the SDM descriptor flags word
// (bits 8..23: type, S, DPL, P, AVL, L, D/B, G), the layout QEMU prints.
struct SegmentState {
    uint16_t selector = 0;
    uint64_t base = 0;
    uint32_t limit = 0;
    uint32_t flags = 0;
};

// accel/x86 keeps segment attributes in the VMX access-rights layout
// (bits 0-7 = descriptor bits 40-47, bits 12-15 = descriptor bits 52-55)
// and a byte-granular limit; this rebuilds the descriptor's second dword
// as QEMU keeps it (limit bits 19:16 included, which `info registers` shows).
constexpr uint32_t segment_flags_from_access_rights(uint16_t attr, uint32_t limit)
{
    uint32_t raw_limit = (attr & 0x8000) ? limit >> 12 : limit;
    return (uint32_t(attr & 0x00ff) << 8) | (uint32_t(attr & 0xf000) << 8) | (raw_limit & 0x000f0000);
}
static_assert(segment_flags_from_access_rights(0xa09b, 0xffffffff) == 0x00af9b00); // 64-bit code
static_assert(segment_flags_from_access_rights(0xc093, 0xffffffff) == 0x00cf9300); // flat 32-bit data
static_assert(segment_flags_from_access_rights(0x0093, 0xffff) == 0x00009300); // real mode

struct TableState {
    uint64_t base = 0;
    uint32_t limit = 0;
};

// Architectural registers for `info registers` and for `x` address
// translation; filled from accel/x86's state by the machine.
struct CpuRegisters {
    uint64_t gpr[16] = {}; // RAX RCX RDX RBX RSP RBP RSI RDI R8..R15 (SDM order)
    uint64_t rip = 0;
    uint64_t rflags = 0x2;
    int cpl = 0;
    bool interrupt_inhibit = false; // STI/MOV SS shadow
    bool a20_enabled = true;
    bool smm = false;
    bool halted = false;
    SegmentState segs[6]; // ES CS SS DS FS GS
    SegmentState ldt;
    SegmentState tr;
    TableState gdt;
    TableState idt;
    uint64_t cr0 = 0x60000010;
    uint64_t cr2 = 0;
    uint64_t cr3 = 0;
    uint64_t cr4 = 0;
    uint64_t dr[8] = { 0, 0, 0, 0, 0, 0, 0xffff0ff0, 0x400 };
    uint64_t efer = 0;
    uint16_t fcw = 0x37f;
    uint16_t fsw = 0; // TOP in bits 11..13
    uint8_t ftw_abridged = 0; // FXSAVE form: bit i set = ST(i) physical register valid
    uint32_t mxcsr = 0x1f80;
    struct FpReg {
        uint64_t mantissa = 0;
        uint16_t exponent = 0; // sign and exponent
    } fpr[8];
    struct Xmm {
        uint64_t lo = 0;
        uint64_t hi = 0;
    } xmm[16];
};

struct CpuInfo {
    int64_t index = 0;
    int64_t thread_id = 0; // host thread id of the vCPU thread
    std::string qom_path; // "/machine/unattached/device[0]"
    int64_t socket_id = 0;
    int64_t core_id = 0;
    int64_t thread_in_core = 0;
};

struct BlockStats {
    uint64_t rd_bytes = 0, wr_bytes = 0, unmap_bytes = 0;
    uint64_t rd_operations = 0, wr_operations = 0, flush_operations = 0, unmap_operations = 0;
    uint64_t rd_total_time_ns = 0, wr_total_time_ns = 0, flush_total_time_ns = 0, unmap_total_time_ns = 0;
    uint64_t wr_highest_offset = 0;
    uint64_t rd_merged = 0, wr_merged = 0, unmap_merged = 0;
    uint64_t failed_rd_operations = 0, failed_wr_operations = 0, failed_flush_operations = 0,
             failed_unmap_operations = 0;
    uint64_t invalid_rd_operations = 0, invalid_wr_operations = 0, invalid_flush_operations = 0,
             invalid_unmap_operations = 0;
    std::optional<uint64_t> idle_time_ns; // absent until the first access
    bool account_invalid = true;
    bool account_failed = true;
};

// The medium behind a drive, when one is inserted.
struct BlockMedium {
    std::string node_name; // "#block152" or the user's node-name
    std::string filename; // as opened ("d.qcow2")
    std::string format; // driver name: "qcow2", "raw"
    bool read_only = false;
    bool encrypted = false;
    uint64_t virtual_size_bytes = 0;
    std::optional<uint64_t> actual_size_bytes;
    std::optional<uint64_t> cluster_size_bytes;
    std::string backing_file; // "" for none
    int64_t backing_file_depth = 0;
    bool cache_writeback = true;
    bool cache_direct = false;
    bool cache_no_flush = false;
    std::string detect_zeroes = "off";
};

struct BlockDeviceInfo {
    std::string device; // "ide0-hd0"; "" for an anonymous backend
    std::string qdev; // "/machine/unattached/device[23]"; "" if not attached
    bool removable = false;
    bool locked = false;
    bool tray_open = false;
    std::optional<std::string> io_status; // "ok", "failed", "nospace"; absent if unsupported
    std::optional<BlockMedium> medium;
    BlockStats stats;
};

struct ChardevInfo {
    std::string label;
    std::string filename; // "stdio", "null", "unix:/path,server=on", "pty:/dev/pts/3"
    bool frontend_open = true;
};

struct PciRegion {
    int64_t bar = 0;
    enum class Kind { Io, Memory } kind = Kind::Memory;
    uint64_t address = UINT64_MAX; // all ones while unassigned, as QEMU
    uint64_t size_bytes = 0;
    bool prefetch = false;
    bool mem_type_64 = false;
};

struct PciDeviceInfo {
    int64_t bus = 0;
    int64_t slot = 0;
    int64_t function = 0;
    uint16_t class_code = 0; // base class << 8 | subclass
    uint16_t vendor_id = 0;
    uint16_t device_id = 0;
    uint16_t subsystem_vendor_id = 0;
    uint16_t subsystem_id = 0;
    int64_t irq_pin = 0; // 0 none, 1 = INTA#
    int64_t irq = 0; // routed line, meaningful when irq_pin != 0
    std::string qdev_id;
    std::vector<PciRegion> regions;
};

// `info mtree`: one section per address space (or alias target region).
struct MemoryRegionInfo {
    std::string name;
    uint64_t start = 0; // absolute, as printed
    uint64_t end = 0; // inclusive
    int priority = 0;
    std::string kind = "i/o"; // "ram", "rom", "romd", "i/o", "ramd"
    bool enabled = true;
    std::string alias_of; // "" unless an alias
    uint64_t alias_start = 0;
    uint64_t alias_end = 0;
    std::vector<MemoryRegionInfo> children;
};
struct MemoryTreeSection {
    enum class Kind { AddressSpace, MemoryRegion } kind = Kind::AddressSpace;
    std::vector<std::string> names; // address spaces sharing this root
    std::optional<MemoryRegionInfo> root;
};

// `info qtree`: buses and devices with pre-formatted property lines.
struct QtreeDevice;
struct QtreeBus {
    std::string name;
    std::string type;
    std::vector<QtreeDevice> devices;
};
struct QtreeDevice {
    std::string type;
    std::string id;
    std::vector<std::string> lines; // "timers = 3 (0x3)", "mmio 00000000fed00000/0000000000000400"
    std::vector<QtreeBus> buses;
};

enum class MonitorEvent { Stop, Resume, Shutdown, Reset, Powerdown, BlockIoError };

// What the machine reports through the event sink. `data` is QMP's event
// "data" member, already in QAPI form (ordered JSON text kept out of this
// header so it stays free of nlohmann: a flat list of key/value pairs).
struct EventField {
    std::string key;
    enum class Type { String, Int, Bool } type = Type::String;
    std::string string_value;
    int64_t int_value = 0;
    bool bool_value = false;
};
struct MachineEvent {
    MonitorEvent kind = MonitorEvent::Stop;
    std::vector<EventField> data;
};
using EventSink = std::function<void(const MachineEvent&)>;

// One key for sendkey: a QAPI QKeyCode name ("ctrl", "alt", "f1", "a"),
// or, when qcode is empty, a raw PC scancode number.
struct KeyPress {
    std::string qcode;
    int64_t number = 0;
};

enum class AddressKind { Virtual, Physical };
enum class MediumMode { Retain, ReadOnly, ReadWrite };

class MachineControl {
public:
    virtual ~MachineControl() = default;

    virtual RunState run_state() const = 0;
    virtual bool singlestep() const { return false; }
    // Each of these emits its event (STOP, RESUME, RESET, POWERDOWN,
    // SHUTDOWN) through the sink when it changes state.
    virtual Result<void> stop() = 0;
    virtual Result<void> cont() = 0;
    virtual Result<void> system_reset() = 0;
    virtual Result<void> system_powerdown() = 0;
    // Ends the process after the current command's reply has been flushed.
    virtual void quit() = 0;

    virtual VersionInfo version() const = 0;
    virtual std::optional<std::string> name() const = 0;
    virtual KvmInfo kvm() const = 0;

    virtual std::vector<CpuInfo> cpus() const = 0;
    // One vCPU's registers, synchronised from the accelerator (for KVM
    // this may mean a round trip to the vCPU thread, so it is asked for
    // only by the commands that print or use registers). NotFound-style
    // Error for an unknown index.
    virtual Result<CpuRegisters> cpu_registers(int64_t cpu_index) = 0;
    virtual std::vector<BlockDeviceInfo> block_devices() const = 0;
    virtual std::vector<ChardevInfo> chardevs() const = 0;
    virtual std::vector<PciDeviceInfo> pci_devices() const = 0;
    virtual std::vector<MemoryTreeSection> memory_tree() const = 0;
    virtual QtreeBus device_tree() const = 0;

    // Reads guest memory; Virtual goes through cpu_index's page tables.
    // Fails (any Error) when part of the range is not mapped.
    virtual Result<void> read_memory(
        AddressKind kind, int64_t cpu_index, uint64_t address, void* buffer, uint64_t length_bytes)
        = 0;

    virtual Result<void> send_keys(const std::vector<KeyPress>& keys, int64_t hold_time_ms) = 0;

    // Block operations; device is the BlockBackend name (or a node name
    // where QEMU accepts one). The monitor checks the name against
    // block_devices() first, so these see only known devices; their Error
    // messages reach the user as QEMU's GenericError text.
    virtual Result<void> commit(const std::string& device) = 0;
    virtual Result<void> eject(const std::string& device, bool force) = 0;
    virtual Result<void> change_medium(
        const std::string& device, const std::string& filename, const std::string& format, MediumMode mode, bool force)
        = 0;
    virtual Result<void> block_resize(const std::string& device, uint64_t size_bytes) = 0;

    // The monitor registers one sink; the machine calls it on the main loop.
    virtual void set_event_sink(EventSink sink) = 0;
};

} // namespace kiln::monitor
