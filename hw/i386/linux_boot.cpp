#include "hw/i386/linux_boot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kiln::hw {

namespace {

using Layout = LinuxBootLayout;

constexpr uint64_t k_page = 0x1000;
constexpr uint32_t k_hdrs_magic = 0x53726448; // "HdrS"
constexpr uint32_t k_pvh_magic = 0x336ec578;
constexpr uint32_t k_xen_elfnote_phys32_entry = 18;

template<typename T>
T get(std::span<const uint8_t> b, size_t off)
{
    T v{};
    if (off + sizeof(T) <= b.size())
        std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

template<typename T>
void put(std::vector<uint8_t>& b, size_t off, T v)
{
    std::memcpy(b.data() + off, &v, sizeof(T));
}

std::string hex(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
    return buf;
}

bool is_elf(std::span<const uint8_t> k) { return k.size() >= 64 && std::memcmp(k.data(), "\x7f" "ELF", 4) == 0; }

bool is_bzimage(std::span<const uint8_t> k)
{
    return k.size() >= 0x300 && get<uint16_t>(k, 0x1fe) == 0xaa55 && get<uint32_t>(k, 0x202) == k_hdrs_magic;
}

Error bad_kernel(const std::string& name, const std::string& why)
{
    return Error::invalid("kernel '" + name + "' " + why);
}

// Flat GDT: null, null, code at 0x10, data at 0x18 (the Linux boot
// protocol's __BOOT_CS/__BOOT_DS).
Result<void> write_gdt(GuestMemory& mem, bool long_mode, BootCpuSetup& setup)
{
    uint64_t gdt[4] = {0, 0, long_mode ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull, 0x00cf93000000ffffull};
    TRY(mem.write(Layout::k_gdt, gdt, sizeof gdt));
    setup.gdt_base = Layout::k_gdt;
    setup.gdt_limit = sizeof gdt - 1;
    return {};
}

// Identity map of the first 4 GiB with 2 MiB pages.
Result<void> write_identity_page_tables(GuestMemory& mem)
{
    std::vector<uint64_t> tables(6 * 512, 0);
    uint64_t pml4 = Layout::k_pml4, pdpt = pml4 + k_page, pd0 = pdpt + k_page;
    tables[0] = pdpt | 0x3; // present, writable
    for (unsigned i = 0; i < 4; i++)
        tables[512 + i] = (pd0 + i * k_page) | 0x3;
    for (unsigned i = 0; i < 4 * 512; i++)
        tables[1024 + i] = (uint64_t(i) << 21) | 0x83; // present, writable, 2 MiB
    return mem.write(pml4, tables.data(), tables.size() * 8);
}

Result<void> write_cmdline(GuestMemory& mem, const std::string& cmdline, uint64_t max_bytes)
{
    if (cmdline.size() + 1 > max_bytes)
        return Error::invalid("kernel command line is too long (" + std::to_string(cmdline.size())
                              + " bytes; the kernel accepts " + std::to_string(max_bytes - 1) + ")");
    return mem.write(Layout::k_cmdline, cmdline.c_str(), cmdline.size() + 1);
}

// The highest page-aligned address below `limit` where `size` bytes fit,
// at or above `floor`.
Result<uint64_t> place_initrd(GuestMemory& mem, std::span<const uint8_t> initrd, const std::string& name,
                              uint64_t floor, uint64_t limit)
{
    if (initrd.size() > limit || limit - initrd.size() < floor)
        return Error::invalid("initrd '" + name + "' is too large for guest RAM (" + std::to_string(initrd.size() >> 20)
                              + " MiB; " + std::to_string(limit > floor ? (limit - floor) >> 20 : 0)
                              + " MiB available)");
    uint64_t addr = (limit - initrd.size()) & ~(k_page - 1);
    TRY(mem.write(addr, initrd.data(), initrd.size()));
    return addr;
}

Result<BootCpuSetup> load_bzimage(GuestMemory& mem, const LinuxBootConfig& cfg, std::span<const uint8_t> k,
                                  const std::string& kname, std::span<const uint8_t> initrd, const std::string& iname)
{
    uint16_t version = get<uint16_t>(k, 0x206);
    if (version < 0x206)
        return bad_kernel(kname, "uses boot protocol " + std::to_string(version >> 8) + "." + std::to_string(version & 0xff)
                                     + "; Kiln needs 2.06 or newer");
    uint8_t loadflags = get<uint8_t>(k, 0x211);
    if (!(loadflags & 0x01))
        return bad_kernel(kname, "is a zImage (not loaded high); only bzImage is supported");
    unsigned setup_sects = get<uint8_t>(k, 0x1f1);
    if (setup_sects == 0)
        setup_sects = 4;
    size_t setup_bytes = (setup_sects + 1) * 512;
    if (setup_bytes >= k.size())
        return bad_kernel(kname, "is truncated (no protected-mode code after the setup sectors)");
    std::span<const uint8_t> pm = k.subspan(setup_bytes);
    // syssize (2.04+) is the protected-mode code's size in 16-byte units:
    // a shorter file is a truncated download, which would otherwise boot
    // into garbage.
    uint64_t syssize_bytes = uint64_t(get<uint32_t>(k, 0x1f4)) * 16;
    if (version >= 0x204 && pm.size() < syssize_bytes)
        return bad_kernel(kname, "is truncated (" + std::to_string(k.size()) + " bytes; its header says "
                                     + std::to_string(setup_bytes + syssize_bytes) + ")");

    uint64_t load = Layout::k_kernel;
    uint64_t init_size = version >= 0x20a ? get<uint32_t>(k, 0x260) : pm.size() * 4;
    init_size = std::max<uint64_t>(init_size, pm.size());
    if (load + init_size > cfg.low_ram_end)
        return bad_kernel(kname, "needs " + std::to_string((load + init_size) >> 20)
                                     + " MiB of RAM to decompress; the guest has less below 4 GiB");
    TRY(mem.write(load, pm.data(), pm.size()));

    // boot_params: zeroed, then the setup header copied from the image.
    std::vector<uint8_t> bp(4096, 0);
    size_t hdr_end = 0x202 + get<uint8_t>(k, 0x201);
    hdr_end = std::min<size_t>({hdr_end, k.size(), 0x290});
    std::memcpy(bp.data() + 0x1f1, k.data() + 0x1f1, hdr_end - 0x1f1);
    put<uint16_t>(bp, 0x1fa, 0xffff);    // vid_mode: normal
    put<uint8_t>(bp, 0x210, 0xff);       // type_of_loader: undefined
    put<uint8_t>(bp, 0x211, uint8_t(loadflags | 0x80)); // CAN_USE_HEAP
    put<uint16_t>(bp, 0x224, 0xfe00);    // heap_end_ptr
    put<uint32_t>(bp, 0x214, uint32_t(load)); // code32_start
    put<uint32_t>(bp, 0x228, uint32_t(Layout::k_cmdline));
    uint64_t cmdline_max = get<uint32_t>(k, 0x238) + 1; // cmdline_size excludes the NUL
    TRY(write_cmdline(mem, cfg.cmdline, std::min(cmdline_max, Layout::k_cmdline_max)));

    if (!initrd.empty()) {
        uint64_t addr_max = version >= 0x203 ? get<uint32_t>(k, 0x22c) : 0x37ffffff;
        uint64_t limit = std::min<uint64_t>(cfg.low_ram_end, uint64_t(addr_max) + 1);
        uint64_t addr = TRY(place_initrd(mem, initrd, iname, load + init_size, limit));
        put<uint32_t>(bp, 0x218, uint32_t(addr));
        put<uint32_t>(bp, 0x21c, uint32_t(initrd.size()));
    }

    size_t n = std::min<size_t>(cfg.e820.size(), 128);
    put<uint8_t>(bp, 0x1e8, uint8_t(n));
    for (size_t i = 0; i < n; i++) {
        put<uint64_t>(bp, 0x2d0 + 20 * i, cfg.e820[i].addr);
        put<uint64_t>(bp, 0x2d0 + 20 * i + 8, cfg.e820[i].size);
        put<uint32_t>(bp, 0x2d0 + 20 * i + 16, uint32_t(cfg.e820[i].type));
    }
    if (version >= 0x20e)
        put<uint64_t>(bp, 0x070, cfg.rsdp_gpa); // acpi_rsdp_addr
    TRY(mem.write(Layout::k_zero_page, bp.data(), bp.size()));

    BootCpuSetup setup;
    bool kernel64 = version >= 0x20c && (get<uint16_t>(k, 0x236) & 0x1);
    TRY(write_gdt(mem, kernel64, setup));
    setup.rsi = Layout::k_zero_page;
    if (kernel64) {
        TRY(write_identity_page_tables(mem));
        setup.mode = BootCpuSetup::Mode::Long64;
        setup.entry = load + 0x200;
        setup.cr3 = Layout::k_pml4;
    } else {
        setup.mode = BootCpuSetup::Mode::Protected32;
        setup.entry = load;
    }
    return setup;
}

struct ElfSegment {
    uint64_t offset, paddr, filesz, memsz;
};

Result<BootCpuSetup> load_elf_pvh(GuestMemory& mem, const LinuxBootConfig& cfg, std::span<const uint8_t> k,
                                  const std::string& kname, std::span<const uint8_t> initrd, const std::string& iname)
{
    bool is64 = k[4] == 2;
    if ((k[4] != 1 && k[4] != 2) || k[5] != 1)
        return bad_kernel(kname, "is not a little-endian ELF32/ELF64 file");
    if (get<uint16_t>(k, 18) != (is64 ? 62 : 3))
        return bad_kernel(kname, "is an ELF file for another machine");
    uint64_t phoff = is64 ? get<uint64_t>(k, 32) : get<uint32_t>(k, 28);
    uint16_t phentsize = get<uint16_t>(k, is64 ? 54 : 42);
    uint16_t phnum = get<uint16_t>(k, is64 ? 56 : 44);
    if (phentsize < (is64 ? 56 : 32) || phoff > k.size() || uint64_t(phnum) * phentsize > k.size() - phoff)
        return bad_kernel(kname, "has a corrupt ELF program header table");

    std::vector<ElfSegment> loads;
    uint64_t entry = 0;
    bool have_entry = false;
    for (unsigned i = 0; i < phnum; i++) {
        size_t ph = phoff + size_t(i) * phentsize;
        uint32_t type = get<uint32_t>(k, ph);
        ElfSegment s;
        if (is64) {
            s = {get<uint64_t>(k, ph + 8), get<uint64_t>(k, ph + 24), get<uint64_t>(k, ph + 32), get<uint64_t>(k, ph + 40)};
        } else {
            s = {get<uint32_t>(k, ph + 4), get<uint32_t>(k, ph + 12), get<uint32_t>(k, ph + 16), get<uint32_t>(k, ph + 20)};
        }
        if (s.offset > k.size() || s.filesz > k.size() - s.offset)
            return bad_kernel(kname, "has an ELF segment past the end of the file");
        if (type == 1) { // PT_LOAD
            if (s.filesz > s.memsz)
                return bad_kernel(kname, "has an ELF segment whose file size exceeds its memory size");
            loads.push_back(s);
        } else if (type == 4) { // PT_NOTE: walk the notes
            size_t p = s.offset, end = s.offset + s.filesz;
            while (p + 12 <= end) {
                uint32_t namesz = get<uint32_t>(k, p), descsz = get<uint32_t>(k, p + 4), ntype = get<uint32_t>(k, p + 8);
                size_t name_at = p + 12;
                size_t desc_at = name_at + ((uint64_t(namesz) + 3) & ~3ull);
                size_t next = desc_at + ((uint64_t(descsz) + 3) & ~3ull);
                if (namesz > end || descsz > end || next > end || next <= p)
                    break;
                if (namesz == 4 && std::memcmp(k.data() + name_at, "Xen", 4) == 0 && ntype == k_xen_elfnote_phys32_entry) {
                    entry = descsz >= 8 ? get<uint64_t>(k, desc_at) : get<uint32_t>(k, desc_at);
                    have_entry = descsz >= 4;
                }
                p = next;
            }
        }
    }
    if (!have_entry)
        return bad_kernel(kname, "is an ELF file without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
    if (entry >= (1ull << 32))
        return bad_kernel(kname, "has a PVH entry point above 4 GiB");

    uint64_t kernel_end = 0;
    for (auto& s : loads) {
        if (s.paddr < Layout::k_kernel)
            return bad_kernel(kname, "has a segment at " + hex(s.paddr) + ", below 1 MiB");
        if (s.paddr + s.memsz > cfg.low_ram_end || s.paddr + s.memsz < s.paddr)
            return bad_kernel(kname, "has a segment at " + hex(s.paddr) + " that does not fit in guest RAM");
        TRY(mem.write(s.paddr, k.data() + s.offset, s.filesz));
        if (s.memsz > s.filesz) {
            auto span = TRY(mem.host_span(s.paddr + s.filesz, s.memsz - s.filesz));
            std::memset(span.data(), 0, span.size());
        }
        kernel_end = std::max(kernel_end, s.paddr + s.memsz);
    }

    TRY(write_cmdline(mem, cfg.cmdline, Layout::k_cmdline_max));
    uint32_t nr_modules = 0;
    if (!initrd.empty()) {
        uint64_t floor = (kernel_end + k_page - 1) & ~(k_page - 1);
        uint64_t addr = TRY(place_initrd(mem, initrd, iname, floor, cfg.low_ram_end));
        uint64_t mod[4] = {addr, initrd.size(), 0, 0};
        TRY(mem.write(Layout::k_pvh_modlist, mod, sizeof mod));
        nr_modules = 1;
    }
    size_t n = std::min<size_t>(cfg.e820.size(), (Layout::k_pvh_modlist - Layout::k_pvh_memmap) / 24);
    std::vector<uint8_t> memmap(n * 24, 0);
    for (size_t i = 0; i < n; i++) {
        put<uint64_t>(memmap, 24 * i, cfg.e820[i].addr);
        put<uint64_t>(memmap, 24 * i + 8, cfg.e820[i].size);
        put<uint32_t>(memmap, 24 * i + 16, uint32_t(cfg.e820[i].type));
    }
    TRY(mem.write(Layout::k_pvh_memmap, memmap.data(), memmap.size()));
    std::vector<uint8_t> si(56, 0);
    put<uint32_t>(si, 0, k_pvh_magic);
    put<uint32_t>(si, 4, 1); // version 1: has the memory map
    put<uint32_t>(si, 12, nr_modules);
    put<uint64_t>(si, 16, nr_modules ? Layout::k_pvh_modlist : 0);
    put<uint64_t>(si, 24, Layout::k_cmdline);
    put<uint64_t>(si, 32, cfg.rsdp_gpa);
    put<uint64_t>(si, 40, Layout::k_pvh_memmap);
    put<uint32_t>(si, 48, uint32_t(n));
    TRY(mem.write(Layout::k_start_info, si.data(), si.size()));

    BootCpuSetup setup;
    TRY(write_gdt(mem, false, setup));
    setup.mode = BootCpuSetup::Mode::Protected32;
    setup.entry = entry;
    setup.rbx = Layout::k_start_info;
    return setup;
}

Result<std::vector<uint8_t>> read_file(const std::string& path, const char* what)
{
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return Error::from_errno(errno, std::string("could not load ") + what + " '" + path + "'");
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = errno;
        close(fd);
        return Error::from_errno(err, std::string("could not load ") + what + " '" + path + "'");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (S_ISDIR(st.st_mode))
            return Error::from_errno(EISDIR, std::string("could not load ") + what + " '" + path + "'");
        return Error::invalid(std::string("could not load ") + what + " '" + path + "': not a regular file");
    }
    std::vector<uint8_t> data(size_t(st.st_size));
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::read(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            close(fd);
            return Error::from_errno(err, std::string("could not read ") + what + " '" + path + "'");
        }
        done += size_t(n);
    }
    close(fd);
    return data;
}

} // namespace

Result<KernelFormat> probe_kernel(std::span<const uint8_t> kernel, const std::string& kernel_name)
{
    if (kernel.empty())
        return bad_kernel(kernel_name, "is empty");
    if (is_bzimage(kernel))
        return KernelFormat::BzImage;
    if (is_elf(kernel))
        return KernelFormat::ElfPvh;
    return bad_kernel(kernel_name, "is neither a bzImage nor an ELF vmlinux");
}

Result<BootCpuSetup> load_linux(GuestMemory& mem, const LinuxBootConfig& cfg, std::span<const uint8_t> kernel,
                                const std::string& kernel_name, std::span<const uint8_t> initrd,
                                const std::string& initrd_name)
{
    KernelFormat fmt = TRY(probe_kernel(kernel, kernel_name));
    if (fmt == KernelFormat::BzImage)
        return load_bzimage(mem, cfg, kernel, kernel_name, initrd, initrd_name);
    return load_elf_pvh(mem, cfg, kernel, kernel_name, initrd, initrd_name);
}

Result<BootCpuSetup> load_linux_files(GuestMemory& mem, const LinuxBootConfig& cfg, const std::string& kernel_path,
                                      const std::string& initrd_path)
{
    std::vector<uint8_t> kernel = TRY(read_file(kernel_path, "kernel"));
    std::vector<uint8_t> initrd;
    if (!initrd_path.empty())
        initrd = TRY(read_file(initrd_path, "initrd"));
    return load_linux(mem, cfg, kernel, kernel_path, initrd, initrd_path);
}

} // namespace kiln::hw
