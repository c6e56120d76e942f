#include "system/drive_options.h"

#include <algorithm>
#include <array>
#include <set>

#include "util/options.h"

namespace kiln::system {

using hw::BlockErrorAction;
using hw::DiskDeviceConfig;
using hw::DiskDeviceKind;
using hw::DiskSetConfig;
using hw::DriveConfig;
using hw::DriveInterface;
using hw::DriveMedia;

namespace {

constexpr int k_ide_buses = 2;
constexpr int k_ide_units = 2;

Error arg_error(const std::string& option, const std::string& value, const std::string& what)
{
    return Error::invalid("-" + option + " " + value + ": " + what);
}

Result<BlockErrorAction> parse_error_action(const std::string& text, bool is_read)
{
    if (text == "ignore")
        return BlockErrorAction::Ignore;
    if (!is_read && text == "enospc")
        return BlockErrorAction::StopOnEnospc;
    if (text == "stop")
        return BlockErrorAction::Stop;
    if (text == "report")
        return BlockErrorAction::Report;
    return Error::invalid("'" + text + "' invalid " + (is_read ? "read" : "write") + " error action");
}

Result<int> parse_int(const std::string& key, const std::string& text)
{
    char* end = nullptr;
    long v = strtol(text.c_str(), &end, 10);
    if (text.empty() || *end || v < 0 || v > 1000000)
        return Error::invalid("Parameter '" + key + "' expects a number");
    return int(v);
}

// Keys -drive itself understands; everything else goes to the block layer.
bool is_drive_key(const std::string& k)
{
    static const std::set<std::string> keys = { "file", "format", "if", "index", "bus", "unit", "media", "cache",
        "cache.direct", "cache.no-flush", "aio", "readonly", "read-only", "snapshot", "discard", "detect-zeroes", "id",
        "node-name", "serial", "werror", "rerror", "addr", "copy-on-read" };
    return keys.count(k) != 0;
}

Result<void> apply_drive_keys(DriveConfig& d, const OptionList& o, bool snapshot_default, int& index_out)
{
    d.file = o.get("file").value_or("");
    d.format = o.get("format").value_or("");
    if (d.format == "help" || d.format == "?")
        return Error::invalid("Supported formats: qcow2 raw");
    if (auto v = o.get("if")) {
        if (*v == "ide")
            d.interface = DriveInterface::Ide;
        else if (*v == "virtio")
            d.interface = DriveInterface::Virtio;
        else if (*v == "none")
            d.interface = DriveInterface::None;
        else if (*v == "scsi" || *v == "floppy" || *v == "pflash" || *v == "mtd" || *v == "sd" || *v == "xen")
            return Error::not_supported("Kiln does not support if=" + *v + " (only ide, virtio and none)");
        else
            return Error::invalid("unsupported bus type '" + *v + "'");
    }
    if (auto v = o.get("media")) {
        if (*v == "disk")
            d.media = DriveMedia::Disk;
        else if (*v == "cdrom")
            d.media = DriveMedia::Cdrom;
        else
            return Error::invalid("'" + *v + "' invalid media");
    }
    index_out = -1;
    if (auto v = o.get("index"))
        index_out = TRY(parse_int("index", *v));
    if (auto v = o.get("bus"))
        d.bus = TRY(parse_int("bus", *v));
    if (auto v = o.get("unit"))
        d.unit = TRY(parse_int("unit", *v));
    if (index_out >= 0 && (d.bus >= 0 || d.unit >= 0))
        return Error::invalid("index cannot be used with bus and unit");

    bool direct_given = false;
    if (auto v = o.get("cache")) {
        auto mode = block::parse_cache_mode(*v);
        if (!mode)
            return Error::invalid("invalid cache option");
        d.cache = *mode;
    }
    if (auto v = TRY(o.get_bool("cache.direct"))) {
        direct_given = true;
        bool wt = block::cache_is_writethrough(d.cache);
        if (*v)
            d.cache = wt ? block::CacheMode::Directsync : block::CacheMode::None;
        else if (d.cache == block::CacheMode::None || d.cache == block::CacheMode::Directsync)
            d.cache = wt ? block::CacheMode::Writethrough : block::CacheMode::Writeback;
    }
    if (auto v = TRY(o.get_bool("cache.no-flush")); v && *v)
        d.cache = block::CacheMode::Unsafe;
    if (auto v = o.get("aio")) {
        auto engine = block::parse_aio_engine(*v);
        if (!engine)
            return Error::invalid("invalid aio option");
        d.aio = *engine;
        if (*engine == block::AioEngine::Native && !block::cache_uses_o_direct(d.cache))
            return Error::invalid("aio=native was specified, but it requires cache.direct=on, which was not "
                                  "specified.");
    }
    (void)direct_given;
    if (auto v = TRY(o.get_bool("readonly")))
        d.read_only = *v;
    if (auto v = TRY(o.get_bool("read-only")))
        d.read_only = *v;
    d.snapshot = snapshot_default;
    if (auto v = TRY(o.get_bool("snapshot")))
        d.snapshot = *v;
    if (auto v = o.get("discard")) {
        if (*v == "ignore" || *v == "off")
            d.discard = hw::DiscardMode::Ignore;
        else if (*v == "unmap" || *v == "on")
            d.discard = hw::DiscardMode::Unmap;
        else
            return Error::invalid("Invalid discard option");
    }
    if (auto v = o.get("detect-zeroes")) {
        if (*v == "off")
            d.detect_zeroes = hw::DetectZeroes::Off;
        else if (*v == "on")
            d.detect_zeroes = hw::DetectZeroes::On;
        else if (*v == "unmap")
            d.detect_zeroes = hw::DetectZeroes::Unmap;
        else
            return Error::invalid("Parameter 'detect-zeroes' does not accept value '" + *v + "'");
        if (d.detect_zeroes == hw::DetectZeroes::Unmap && d.discard != hw::DiscardMode::Unmap)
            return Error::invalid("setting detect-zeroes to unmap is not allowed without setting discard "
                                  "operation to unmap");
    }
    if (auto v = TRY(o.get_bool("copy-on-read")); v && *v)
        return Error::not_supported("copy-on-read=on is not supported by Kiln");
    d.id = o.get("id").value_or("");
    d.node_name = o.get("node-name").value_or("");
    d.serial = o.get("serial").value_or("");
    if (d.serial.size() > 20)
        d.serial.resize(20); // IDE's serial field; virtio-blk's ID is 20 bytes too
    if (auto v = o.get("werror")) {
        d.werror = TRY(parse_error_action(*v, false));
    }
    if (auto v = o.get("rerror"))
        d.rerror = TRY(parse_error_action(*v, true));
    if (d.media == DriveMedia::Cdrom)
        d.read_only = true;
    for (const auto& [k, v] : o.entries())
        if (!is_drive_key(k))
            d.block_options.set(k, v);
    return ok();
}

struct DriveSlot {
    int bus, unit;
};

class DiskParser {
public:
    Result<void> add_drive(const std::string& option, const std::string& value, const OptionList& opts)
    {
        DriveConfig d;
        d.origin = "-" + option + " " + value;
        int index = -1;
        auto applied = apply_drive_keys(d, opts, m_snapshot, index);
        if (!applied)
            return arg_error(option, value, applied.error().message());
        if (auto r = place(d, index); !r)
            return arg_error(option, value, r.error().message());
        if (d.id.empty())
            d.id = default_id(d);
        for (const auto& other : m_set.drives)
            if (other.id == d.id)
                return arg_error(option, value, "Duplicate ID '" + d.id + "' for drive");
        if (d.file.empty() && d.media == DriveMedia::Disk && d.interface != DriveInterface::None)
            return arg_error(option, value, "Device needs media, but drive is empty");
        if (d.interface == DriveInterface::Ide) {
            DiskDeviceConfig dev;
            dev.kind = d.media == DriveMedia::Cdrom ? DiskDeviceKind::IdeCd : DiskDeviceKind::IdeHd;
            dev.drive_id = d.id;
            dev.ide_bus = d.bus;
            dev.ide_unit = d.unit;
            dev.origin = d.origin;
            m_set.devices.push_back(dev);
            m_used.insert(d.id);
        } else if (d.interface == DriveInterface::Virtio) {
            DiskDeviceConfig dev;
            dev.kind = DiskDeviceKind::VirtioBlkPci;
            dev.drive_id = d.id;
            dev.origin = d.origin;
            if (auto a = opts.get("addr"))
                dev.pci_slot = TRY(parse_pci_slot(option, value, *a));
            m_set.devices.push_back(dev);
            m_used.insert(d.id);
        }
        m_set.drives.push_back(std::move(d));
        return ok();
    }

    Result<void> add_device(const std::string& value)
    {
        auto parsed = OptionList::parse(value, "driver");
        if (!parsed)
            return arg_error("device", value, parsed.error().message());
        const OptionList& o = parsed.value();
        std::string driver = o.get("driver").value_or("");
        DiskDeviceConfig dev;
        dev.origin = "-device " + value;
        std::string prop_owner;
        if (driver == "virtio-blk-pci" || driver == "virtio-blk") {
            dev.kind = DiskDeviceKind::VirtioBlkPci;
            prop_owner = "virtio-blk-device";
        } else if (driver == "ide-hd") {
            dev.kind = DiskDeviceKind::IdeHd;
            prop_owner = "ide-hd";
        } else if (driver == "ide-cd") {
            dev.kind = DiskDeviceKind::IdeCd;
            prop_owner = "ide-cd";
        } else {
            return arg_error("device", value, "'" + driver + "' is not a valid device model name");
        }
        bool virtio = dev.kind == DiskDeviceKind::VirtioBlkPci;
        for (const auto& [k, v] : o.entries()) {
            if (k == "driver") {
                continue;
            } else if (k == "drive") {
                dev.drive_id = v;
            } else if (k == "id") {
                dev.id = v;
            } else if (k == "serial") {
                dev.serial = v.substr(0, 20);
            } else if (!virtio && k == "bus") {
                if (v != "ide.0" && v != "ide.1")
                    return arg_error("device", value, "Bus '" + v + "' not found");
                dev.ide_bus = v[4] - '0';
            } else if (!virtio && k == "unit") {
                auto u = parse_int("unit", v);
                if (!u)
                    return arg_error("device", value, u.error().message());
                if (u.value() >= k_ide_units)
                    return arg_error("device", value, "Can't create IDE unit " + v + ", bus supports only 2 units");
                dev.ide_unit = u.value();
            } else if (virtio && k == "addr") {
                dev.pci_slot = TRY(parse_pci_slot("device", value, v));
            } else if (virtio && k == "bus") {
                if (v != "pci.0")
                    return arg_error("device", value, "Bus '" + v + "' not found");
            } else if (virtio && (k == "num-queues" || k == "queue-size")) {
                auto n = parse_int(k, v);
                if (!n || n.value() == 0)
                    return arg_error("device", value, "Parameter '" + k + "' expects a positive number");
                if (k == "num-queues") {
                    if (n.value() > 16)
                        return arg_error("device", value, "num-queues property must be at most 16");
                    dev.num_queues = unsigned(n.value());
                } else {
                    unsigned q = unsigned(n.value());
                    if (q < 2 || q > 1024 || (q & (q - 1)))
                        return arg_error("device", value,
                            "invalid queue-size property (" + v + "), must be a power of 2 and between 2 and 1024");
                    dev.queue_size = q;
                }
            } else {
                return arg_error("device", value, "Property '" + driver + "." + k + "' not found");
            }
        }
        if (dev.drive_id.empty()) {
            if (dev.kind == DiskDeviceKind::VirtioBlkPci)
                return arg_error("device", value, "drive property not set");
            if (dev.kind == DiskDeviceKind::IdeHd)
                return arg_error("device", value, "No drive specified");
        }
        m_pending_devices.push_back({ dev, prop_owner, value });
        return ok();
    }

    Result<DiskSetConfig> finish()
    {
        for (auto& [dev, owner, value] : m_pending_devices) {
            if (!dev.drive_id.empty()) {
                const DriveConfig* d = m_set.find_drive(dev.drive_id);
                if (!d)
                    return arg_error(
                        "device", value, "Property '" + owner + ".drive' can't find value '" + dev.drive_id + "'");
                if (m_used.count(dev.drive_id))
                    return arg_error("device", value,
                        "Property '" + owner + ".drive' can't take value '" + dev.drive_id + "', it's in use");
                if (dev.kind == DiskDeviceKind::IdeHd && d->file.empty())
                    return arg_error("device", value, "Device needs media, but drive is empty");
                if (dev.kind == DiskDeviceKind::VirtioBlkPci && d->file.empty())
                    return arg_error("device", value, "Device needs media, but drive is empty");
                m_used.insert(dev.drive_id);
            }
            if (dev.ide_bus >= 0 || dev.ide_unit >= 0) {
                int bus = std::max(dev.ide_bus, 0);
                for (const auto& other : m_set.devices) {
                    if (other.kind == DiskDeviceKind::VirtioBlkPci || other.ide_unit < 0)
                        continue;
                    if (dev.ide_unit >= 0 && other.ide_bus == bus && other.ide_unit == dev.ide_unit)
                        return arg_error("device", value, "IDE unit " + std::to_string(dev.ide_unit) + " is in use");
                }
            }
            m_set.devices.push_back(dev);
        }
        // Place IDE devices without a fixed slot in the first free one.
        for (auto& dev : m_set.devices) {
            if (dev.kind == DiskDeviceKind::VirtioBlkPci || (dev.ide_bus >= 0 && dev.ide_unit >= 0))
                continue;
            bool placed = false;
            for (int b = std::max(dev.ide_bus, 0); b < k_ide_buses && !placed; b++)
                for (int u = 0; u < k_ide_units && !placed; u++)
                    if (!ide_slot_taken(b, u)) {
                        dev.ide_bus = b;
                        dev.ide_unit = u;
                        placed = true;
                    }
            if (!placed)
                return Error::invalid(dev.origin + ": no free IDE unit (the PIIX3 has 2 buses of 2 units)");
        }
        return std::move(m_set);
    }

    void set_snapshot(bool on) { m_snapshot = on; }

private:
    struct PendingDevice {
        DiskDeviceConfig dev;
        std::string owner;
        std::string value;
    };

    bool ide_slot_taken(int bus, int unit) const
    {
        for (const auto& dev : m_set.devices)
            if (dev.kind != DiskDeviceKind::VirtioBlkPci && dev.ide_bus == bus && dev.ide_unit == unit)
                return true;
        return false;
    }

    static Result<int> parse_pci_slot(const std::string& option, const std::string& value, const std::string& addr)
    {
        std::string slot = addr.substr(0, addr.find('.'));
        char* end = nullptr;
        long s = strtol(slot.c_str(), &end, 16);
        if (slot.empty() || *end || s < 0 || s > 31)
            return arg_error(option, value, "Property 'virtio-blk-pci.addr' doesn't take value '" + addr + "'");
        if (addr.find('.') != std::string::npos && addr.substr(addr.find('.') + 1) != "0")
            return arg_error(option, value, "Kiln places virtio-blk-pci on function 0 only (addr=" + addr + ")");
        return int(s);
    }

    // QEMU's drive_new(): index -> bus/unit, or the first free unit.
    Result<void> place(DriveConfig& d, int index)
    {
        bool ide = d.interface == DriveInterface::Ide;
        int max_devs = ide ? k_ide_units : 0;
        if (index >= 0) {
            if (max_devs) {
                d.bus = index / max_devs;
                d.unit = index % max_devs;
            } else {
                d.bus = 0;
                d.unit = index;
            }
        }
        if (d.bus < 0)
            d.bus = 0;
        if (d.unit < 0) {
            d.unit = 0;
            while (drive_at(d.interface, d.bus, d.unit)) {
                d.unit++;
                if (max_devs && d.unit >= max_devs) {
                    d.unit -= max_devs;
                    d.bus++;
                }
            }
        }
        if (max_devs && d.unit >= max_devs)
            return Error::invalid(
                "unit " + std::to_string(d.unit) + " too big (max is " + std::to_string(max_devs - 1) + ")");
        if (drive_at(d.interface, d.bus, d.unit))
            return Error::invalid("drive with bus=" + std::to_string(d.bus) + ", unit=" + std::to_string(d.unit)
                + " (index=" + std::to_string(max_devs ? d.bus * max_devs + d.unit : d.unit) + ") exists");
        if (ide && d.bus >= k_ide_buses)
            return Error::invalid("machine type does not support if=ide,bus=" + std::to_string(d.bus)
                + ",unit=" + std::to_string(d.unit));
        d.index = max_devs ? d.bus * max_devs + d.unit : d.unit;
        return ok();
    }

    bool drive_at(DriveInterface iface, int bus, int unit) const
    {
        for (const auto& o : m_set.drives)
            if (o.interface == iface && o.bus == bus && o.unit == unit)
                return true;
        return false;
    }

    static std::string default_id(const DriveConfig& d)
    {
        switch (d.interface) {
        case DriveInterface::Ide:
            return "ide" + std::to_string(d.bus) + (d.media == DriveMedia::Cdrom ? "-cd" : "-hd")
                + std::to_string(d.unit);
        case DriveInterface::Virtio:
            return "virtio" + std::to_string(d.unit);
        case DriveInterface::None:
            break;
        }
        return "none" + std::to_string(d.unit);
    }

    DiskSetConfig m_set;
    std::set<std::string> m_used;
    std::vector<PendingDevice> m_pending_devices;
    bool m_snapshot = false;
};

} // namespace

bool is_disk_option(std::string_view option)
{
    static constexpr std::array names = { "drive", "hda", "hdb", "hdc", "hdd", "cdrom", "snapshot" };
    return std::find(names.begin(), names.end(), option) != names.end();
}

bool is_disk_device(std::string_view device_value)
{
    std::string_view driver = device_value.substr(0, device_value.find(','));
    if (driver.starts_with("driver="))
        driver.remove_prefix(7);
    return driver == "virtio-blk-pci" || driver == "virtio-blk" || driver == "ide-hd" || driver == "ide-cd";
}

Result<DiskSetConfig> parse_disk_args(const std::vector<DiskArg>& args)
{
    DiskParser parser;
    // -snapshot applies to every drive, wherever it appears.
    for (const auto& a : args)
        if (a.option == "snapshot")
            parser.set_snapshot(true);
    for (const auto& a : args) {
        if (a.option == "drive") {
            auto opts = OptionList::parse(a.value);
            if (!opts)
                return arg_error(a.option, a.value, opts.error().message());
            TRY(parser.add_drive(a.option, a.value, opts.value()));
        } else if (a.option.size() == 3 && a.option.starts_with("hd") && a.option[2] >= 'a' && a.option[2] <= 'd') {
            OptionList opts;
            opts.set("file", a.value);
            opts.set("index", std::to_string(a.option[2] - 'a'));
            opts.set("media", "disk");
            TRY(parser.add_drive(a.option, a.value, opts));
        } else if (a.option == "cdrom") {
            OptionList opts;
            opts.set("file", a.value);
            opts.set("index", "2");
            opts.set("media", "cdrom");
            TRY(parser.add_drive(a.option, a.value, opts));
        } else if (a.option == "device") {
            TRY(parser.add_device(a.value));
        }
    }
    return parser.finish();
}

} // namespace kiln::system
