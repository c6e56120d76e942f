// HMP rendering of every command against text captured from QEMU 7.2
// (`qemu-system-x86_64 -S -name testvm -drive file=d.qcow2,if=ide`).
#include <fstream>

#include <gtest/gtest.h>

#include "monitor/hmp_executor.h"
#include "monitor/text_dump.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

class HmpCommandsTest : public ::testing::Test, public testing::HmpHarness { };

TEST_F(HmpCommandsTest, StatusFollowsRunState)
{
    EXPECT_EQ(run("info status"), "VM status: paused (prelaunch)\n");
    EXPECT_EQ(run("cont"), "");
    EXPECT_EQ(run("info status"), "VM status: running\n");
    EXPECT_EQ(run("s"), "");
    EXPECT_EQ(run("info status"), "VM status: paused\n");
    machine.m_state = RunState::Shutdown;
    EXPECT_EQ(run("info status"), "VM status: paused (shutdown)\n");
}

TEST_F(HmpCommandsTest, IdentityCommands)
{
    EXPECT_EQ(run("info version"), "7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\n");
    EXPECT_EQ(run("info name"), "testvm\n");
    machine.vm_name.reset();
    EXPECT_EQ(run("info name"), "");
    EXPECT_EQ(run("info kvm"), "kvm support: disabled\n");
    machine.kvm_info = { true, true };
    EXPECT_EQ(run("info kvm"), "kvm support: enabled\n");
    machine.kvm_info = { false, false };
    EXPECT_EQ(run("info kvm"), "kvm support: not compiled\n");
    EXPECT_EQ(run("info cpus"), "* CPU #0: thread_id=10918\n");
}

TEST_F(HmpCommandsTest, CpuSelectsTheDefaultCpu)
{
    auto second = machine.cpu_list[0];
    second.index = 1;
    second.thread_id = 10919;
    second.regs.gpr[0] = 0x1234;
    machine.cpu_list.push_back(second);
    EXPECT_EQ(run("cpu 5"), "invalid CPU index\n");
    EXPECT_EQ(run("cpu x"), "invalid char 'x' in expression\nTry \"help cpu\" for more information\n");
    EXPECT_EQ(run("cpu 1"), "");
    EXPECT_EQ(run("info cpus"), "  CPU #0: thread_id=10918\n* CPU #1: thread_id=10919\n");
    EXPECT_NE(run("info registers").find("\nCPU#1\nEAX=00001234 "), std::string::npos);
    std::string all = run("info registers -a");
    EXPECT_NE(all.find("\nCPU#0\n"), std::string::npos);
    EXPECT_NE(all.find("\nCPU#1\n"), std::string::npos);
}

TEST_F(HmpCommandsTest, LifeCycleCommandsReachTheMachine)
{
    EXPECT_EQ(run("system_reset"), "");
    EXPECT_EQ(machine.reset_calls, 1);
    EXPECT_EQ(run("q"), "");
    EXPECT_EQ(machine.quit_calls, 1);
    EXPECT_EQ(run("system_powerdown"), "");
}

TEST_F(HmpCommandsTest, InfoBlockMatchesQemu)
{
    EXPECT_EQ(run("info block"),
        "ide0-hd0 (#block152): d.qcow2 (qcow2)\n"
        "    Attached to:      /machine/unattached/device[23]\n"
        "    Cache mode:       writeback\n"
        "\n"
        "ide1-cd0: [not inserted]\n"
        "    Attached to:      /machine/unattached/device[24]\n"
        "    Removable device: not locked, tray closed\n"
        "\n"
        "floppy0: [not inserted]\n"
        "    Attached to:      /machine/unattached/device[16]\n"
        "    Removable device: not locked, tray closed\n"
        "\n"
        "sd0: [not inserted]\n"
        "    Removable device: not locked, tray closed\n");
    EXPECT_EQ(run("info block sd0"), "sd0: [not inserted]\n    Removable device: not locked, tray closed\n");
    EXPECT_EQ(run("info block -n"), "#block152: d.qcow2 (qcow2)\n    Cache mode:       writeback\n");
}

TEST_F(HmpCommandsTest, InfoBlockBackingFileReadOnlyAndDetectZeroes)
{
    // As QEMU 7.2 printed an overlay with detect-zeroes=on and a read-only
    // CD-ROM.
    BlockMedium& over = *machine.blocks[0].medium;
    over.node_name = "#block193";
    over.filename = "over.qcow2";
    over.backing_file = "base.qcow2";
    over.backing_file_depth = 1;
    over.detect_zeroes = "on";
    machine.blocks[0].device = "virtio0";
    machine.blocks[0].qdev = "/machine/peripheral-anon/device[1]/virtio-backend";
    BlockMedium cd;
    cd.node_name = "#block506";
    cd.filename = "base2.qcow2";
    cd.format = "qcow2";
    cd.read_only = true;
    machine.blocks[1].device = "ide0-cd1";
    machine.blocks[1].qdev = "/machine/unattached/device[19]";
    machine.blocks[1].medium = cd;
    machine.blocks.resize(2);
    EXPECT_EQ(run("info block"),
        "virtio0 (#block193): over.qcow2 (qcow2)\n"
        "    Attached to:      /machine/peripheral-anon/device[1]/virtio-backend\n"
        "    Cache mode:       writeback\n"
        "    Backing file:     base.qcow2 (chain depth: 1)\n"
        "    Detect zeroes:    on\n"
        "\n"
        "ide0-cd1 (#block506): base2.qcow2 (qcow2, read-only)\n"
        "    Attached to:      /machine/unattached/device[19]\n"
        "    Removable device: not locked, tray closed\n"
        "    Cache mode:       writeback\n");
}

TEST_F(HmpCommandsTest, InfoBlockstatsMatchesQemu)
{
    machine.blocks[0].stats.rd_bytes = 512;
    machine.blocks[0].stats.rd_operations = 1;
    std::string zero = "rd_bytes=0 wr_bytes=0 rd_operations=0 wr_operations=0 flush_operations=0 wr_total_time_ns=0 "
                       "rd_total_time_ns=0 flush_total_time_ns=0 rd_merged=0 wr_merged=0 idle_time_ns=0\n";
    EXPECT_EQ(run("info blockstats"),
        "ide0-hd0: rd_bytes=512 wr_bytes=0 rd_operations=1 wr_operations=0 flush_operations=0 "
        "wr_total_time_ns=0 rd_total_time_ns=0 flush_total_time_ns=0 rd_merged=0 wr_merged=0 idle_time_ns=0\n"
        "ide1-cd0: "
            + zero + "floppy0: " + zero + "sd0: " + zero);
}

TEST_F(HmpCommandsTest, InfoChardevMatchesQemu)
{
    EXPECT_EQ(
        run("info chardev"), "parallel0: filename=null\ncompat_monitor0: filename=stdio\nserial0: filename=null\n");
}

TEST_F(HmpCommandsTest, InfoPciMatchesQemu)
{
    EXPECT_EQ(run("info pci"),
        "  Bus  0, device   0, function 0:\n"
        "    Host bridge: PCI device 8086:1237\n"
        "      PCI subsystem 1af4:1100\n"
        "      id \"\"\n"
        "  Bus  0, device   1, function 0:\n"
        "    ISA bridge: PCI device 8086:7000\n"
        "      PCI subsystem 1af4:1100\n"
        "      id \"\"\n"
        "  Bus  0, device   1, function 1:\n"
        "    IDE controller: PCI device 8086:7010\n"
        "      PCI subsystem 1af4:1100\n"
        "      BAR4: I/O at 0xffffffffffffffff [0x000e].\n"
        "      id \"\"\n"
        "  Bus  0, device   1, function 3:\n"
        "    Bridge: PCI device 8086:7113\n"
        "      PCI subsystem 1af4:1100\n"
        "      IRQ 0, pin A\n"
        "      id \"\"\n"
        "  Bus  0, device   2, function 0:\n"
        "    VGA controller: PCI device 1234:1111\n"
        "      PCI subsystem 1af4:1100\n"
        "      BAR0: 32 bit prefetchable memory at 0xffffffffffffffff [0x00fffffe].\n"
        "      BAR2: 32 bit memory at 0xffffffffffffffff [0x00000ffe].\n"
        "      BAR6: 32 bit memory at 0xffffffffffffffff [0x0000fffe].\n"
        "      id \"\"\n"
        "  Bus  0, device   3, function 0:\n"
        "    Ethernet controller: PCI device 8086:100e\n"
        "      PCI subsystem 1af4:1100\n"
        "      IRQ 0, pin A\n"
        "      BAR0: 32 bit memory at 0xffffffffffffffff [0x0001fffe].\n"
        "      BAR1: I/O at 0xffffffffffffffff [0x003e].\n"
        "      BAR6: 32 bit memory at 0xffffffffffffffff [0x0003fffe].\n"
        "      id \"\"\n");
}

TEST_F(HmpCommandsTest, InfoRegistersRealModeMatchesQemu)
{
    EXPECT_EQ(run("info registers"),
        "\nCPU#0\n"
        "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1\n"
        "ESI=00000000 EDI=00000000 EBP=00000000 ESP=00000000\n"
        "EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
        "ES =0000 00000000 0000ffff 00009300\n"
        "CS =f000 ffff0000 0000ffff 00009b00\n"
        "SS =0000 00000000 0000ffff 00009300\n"
        "DS =0000 00000000 0000ffff 00009300\n"
        "FS =0000 00000000 0000ffff 00009300\n"
        "GS =0000 00000000 0000ffff 00009300\n"
        "LDT=0000 00000000 0000ffff 00008200\n"
        "TR =0000 00000000 0000ffff 00008b00\n"
        "GDT=     00000000 0000ffff\n"
        "IDT=     00000000 0000ffff\n"
        "CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000\n"
        "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \n"
        "DR6=00000000ffff0ff0 DR7=0000000000000400\n"
        "EFER=0000000000000000\n"
        "FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80\n"
        "FPR0=0000000000000000 0000 FPR1=0000000000000000 0000\n"
        "FPR2=0000000000000000 0000 FPR3=0000000000000000 0000\n"
        "FPR4=0000000000000000 0000 FPR5=0000000000000000 0000\n"
        "FPR6=0000000000000000 0000 FPR7=0000000000000000 0000\n"
        "XMM00=0000000000000000 0000000000000000 XMM01=0000000000000000 0000000000000000\n"
        "XMM02=0000000000000000 0000000000000000 XMM03=0000000000000000 0000000000000000\n"
        "XMM04=0000000000000000 0000000000000000 XMM05=0000000000000000 0000000000000000\n"
        "XMM06=0000000000000000 0000000000000000 XMM07=0000000000000000 0000000000000000\n");
    EXPECT_EQ(run("info registers 5"), "CPU#5 not available\n");
}

TEST_F(HmpCommandsTest, InfoRegistersProtectedModeMatchesQemu)
{
    // SeaBIOS in 32-bit flat mode, as QEMU 7.2 printed it.
    CpuRegisters& r = machine.cpu_list[0].regs;
    r.gpr[1] = 0x10;
    r.gpr[2] = 0xefbbf;
    r.gpr[4] = 0x7000;
    r.rip = 0xefbbf;
    r.rflags = 0x6;
    for (auto& s : r.segs)
        s = { 0x10, 0, 0xffffffff, 0x00cf9300 };
    r.segs[1] = { 0x08, 0, 0xffffffff, 0x00cf9b00 };
    r.gdt = { 0xf6180, 0x37 };
    r.idt = { 0xf61be, 0 };
    r.cr0 = 0x11;
    std::string out = run("info registers");
    EXPECT_NE(out.find("EIP=000efbbf EFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"), std::string::npos);
    EXPECT_NE(out.find("ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\n"
                       "CS =0008 00000000 ffffffff 00cf9b00 DPL=0 CS32 [-RA]\n"),
        std::string::npos);
    EXPECT_NE(out.find("LDT=0000 00000000 0000ffff 00008200 DPL=0 LDT\n"
                       "TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy\n"
                       "GDT=     000f6180 00000037\n"
                       "IDT=     000f61be 00000000\n"
                       "CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000\n"),
        std::string::npos);
}

TEST_F(HmpCommandsTest, InfoRegistersLongModeUses64BitLayout)
{
    CpuRegisters& r = machine.cpu_list[0].regs;
    r.efer = 0x500;
    r.cr0 = 0x80050033;
    r.segs[1] = { 0x10, 0, 0xffffffff, 0x00af9b00 };
    r.gpr[8] = 0x1122334455667788;
    r.rip = 0xffffffff81000000;
    std::string out = run("info registers");
    EXPECT_NE(out.find("R8 =1122334455667788 R9 =0000000000000000"), std::string::npos);
    EXPECT_NE(out.find("RIP=ffffffff81000000 RFL=00000002"), std::string::npos);
    EXPECT_NE(out.find("CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\n"), std::string::npos);
    EXPECT_NE(out.find("XMM15="), std::string::npos);
}

TEST_F(HmpCommandsTest, InfoRegistersLongModeMatchesQemu)
{
    // Debian's kernel under QEMU 7.2 TCG, stopped in long mode.
    CpuRegisters& r = machine.cpu_list[0].regs;
    const uint64_t gpr[16] = { 1, 1, 1, 0x2e9a8, 0xffffc90000013c60, 0x15c, 1, 0xffffffff82c3c3e0, 0,
        0xffffc90000013ca8, 0xffffffffffffffff, 0, 0, 0xffff888005263800, 0, 0 };
    std::copy(std::begin(gpr), std::end(gpr), r.gpr);
    r.rip = 0xffffffff8138bcd5;
    r.rflags = 0x246;
    for (auto& s : r.segs)
        s = {};
    r.segs[1] = { 0x10, 0, 0xffffffff, 0x00af9b00 };
    r.segs[2] = { 0x18, 0, 0xffffffff, 0x00cf9300 };
    r.segs[5].base = 0xffff88800f800000;
    r.ldt = { 0, 0, 0, 0x8200 };
    r.tr = { 0x40, 0xfffffe0000003000, 0x4087, 0x8900 };
    r.gdt = { 0xfffffe0000001000, 0x7f };
    r.idt = { 0xfffffe0000000000, 0xfff };
    r.cr0 = 0x80050033;
    r.cr2 = 0xffff888004401000;
    r.cr3 = 0x2a10000;
    r.cr4 = 0x6f0;
    r.efer = 0xd01;
    std::string zero_fpu = "FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80\n"
                           "FPR0=0000000000000000 0000 FPR1=0000000000000000 0000\n"
                           "FPR2=0000000000000000 0000 FPR3=0000000000000000 0000\n"
                           "FPR4=0000000000000000 0000 FPR5=0000000000000000 0000\n"
                           "FPR6=0000000000000000 0000 FPR7=0000000000000000 0000\n";
    std::string xmm;
    for (int i = 0; i < 16; i += 2)
        xmm += strprintf(
            "XMM%02d=0000000000000000 0000000000000000 XMM%02d=0000000000000000 0000000000000000\n", i, i + 1);
    EXPECT_EQ(run("info registers"),
        "\nCPU#0\n"
        "RAX=0000000000000001 RBX=000000000002e9a8 RCX=0000000000000001 RDX=0000000000000001\n"
        "RSI=0000000000000001 RDI=ffffffff82c3c3e0 RBP=000000000000015c RSP=ffffc90000013c60\n"
        "R8 =0000000000000000 R9 =ffffc90000013ca8 R10=ffffffffffffffff R11=0000000000000000\n"
        "R12=0000000000000000 R13=ffff888005263800 R14=0000000000000000 R15=0000000000000000\n"
        "RIP=ffffffff8138bcd5 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
        "ES =0000 0000000000000000 00000000 00000000\n"
        "CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\n"
        "SS =0018 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\n"
        "DS =0000 0000000000000000 00000000 00000000\n"
        "FS =0000 0000000000000000 00000000 00000000\n"
        "GS =0000 ffff88800f800000 00000000 00000000\n"
        "LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT\n"
        "TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl\n"
        "GDT=     fffffe0000001000 0000007f\n"
        "IDT=     fffffe0000000000 00000fff\n"
        "CR0=80050033 CR2=ffff888004401000 CR3=0000000002a10000 CR4=000006f0\n"
        "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \n"
        "DR6=00000000ffff0ff0 DR7=0000000000000400\n"
        "EFER=0000000000000d01\n"
            + zero_fpu + xmm);
#if KILN_HAVE_CAPSTONE
    machine.poke(0x138bcd5, { 0x31, 0xc0, 0x48, 0x85, 0xed, 0x5b });
    EXPECT_EQ(run("x /3i $pc"),
        "0xffffffff8138bcd5:  31 c0                    xorl     %eax, %eax\n"
        "0xffffffff8138bcd7:  48 85 ed                 testq    %rbp, %rbp\n"
        "0xffffffff8138bcda:  5b                       popq     %rbx\n");
#endif
}

TEST_F(HmpCommandsTest, InfoMtreeAndQtree)
{
    EXPECT_EQ(run("info mtree"),
        "address-space: cpu-memory-0\n"
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000000000-0000000003ffffff (prio 0, ram): alias ram-below-4g @pc.ram "
        "0000000000000000-0000000003ffffff\n"
        "    0000000000000000-ffffffffffffffff (prio -1, i/o): pci\n"
        "      00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\n"
        "      00000000000e0000-00000000000fffff (prio 1, rom): alias isa-bios @pc.bios "
        "0000000000020000-000000000003ffff\n"
        "\n"
        "address-space: I/O\n"
        "  0000000000000000-000000000000ffff (prio 0, i/o): io\n"
        "    0000000000000020-0000000000000021 (prio 0, i/o): pic\n"
        "\n");
    EXPECT_EQ(run("info qtree"),
        "bus: main-system-bus\n"
        "  type System\n"
        "  dev: hpet, id \"\"\n"
        "    gpio-in \"\" 2\n"
        "    timers = 3 (0x3)\n"
        "    mmio 00000000fed00000/0000000000000400\n"
        "  dev: i440FX-pcihost, id \"\"\n"
        "    short_root_bus = 0 (0x0)\n"
        "    bus: pci.0\n"
        "      type PCI\n"
        "      dev: PIIX4_PM, id \"\"\n"
        "        addr = 01.3\n");
}

TEST_F(HmpCommandsTest, BlockCommandsAndTheirErrors)
{
    EXPECT_EQ(run("commit all"), "");
    EXPECT_EQ(run("commit foo"), "Device 'foo' not found\n");
    EXPECT_EQ(run("commit ide0-hd0"), "'commit' error for 'ide0-hd0': Operation not supported\n");
    EXPECT_EQ(run("eject foo"), "Error: Device 'foo' not found\n");
    EXPECT_EQ(run("eject ide0-hd0"), "Error: Device 'ide0-hd0' is not removable\n");
    EXPECT_EQ(run("block_resize ide0-hd0 128M"), "");
    EXPECT_EQ(run("block_resize ide0-hd0 2"), ""); // HMP sizes default to MiB
    ASSERT_EQ(machine.resized.size(), 2u);
    EXPECT_EQ(machine.resized[0], "ide0-hd0=134217728");
    EXPECT_EQ(machine.resized[1], "ide0-hd0=2097152");
    EXPECT_EQ(run("block_resize ide0-hd0 abc"), "invalid size\nTry \"help block_resize\" for more information\n");
    EXPECT_EQ(run("block_resize ide0-hd0 -5"), "invalid size\nTry \"help block_resize\" for more information\n");
    EXPECT_EQ(run("block_resize ide0-hd0"), "invalid size\nTry \"help block_resize\" for more information\n");
    EXPECT_EQ(run("block_resize"),
        "block_resize: block device name expected\nTry \"help block_resize\" for more information\n");
    EXPECT_EQ(run("block_resize foo 1G"), "Error: Cannot find device='foo' nor node-name=''\n");
    EXPECT_EQ(run("block_resize ide0-hd0 128M extra"),
        "block_resize: extraneous characters at the end of line\n"
        "Try \"help block_resize\" for more information\n");
    EXPECT_EQ(run("change ide1-cd0 /nonexist"), "Error: Could not open '/nonexist': No such file or directory\n");
    EXPECT_EQ(run("change"), "change: block device name expected\nTry \"help change\" for more information\n");
    EXPECT_EQ(run("change foo"), "change: filename expected\nTry \"help change\" for more information\n");
    EXPECT_EQ(run("change ide1-cd0 /dev/null raw read-only"), "");
    ASSERT_EQ(machine.changed.size(), 1u);
    EXPECT_EQ(run("info block ide1-cd0"),
        "ide1-cd0 (#block999): /dev/null (raw, read-only)\n"
        "    Attached to:      /machine/unattached/device[24]\n"
        "    Removable device: not locked, tray closed\n"
        "    Cache mode:       writeback\n");
    EXPECT_EQ(run("eject -f ide1-cd0"), "");
    EXPECT_EQ(run("eject -x ide1-cd0"), "eject: unsupported option -x\nTry \"help eject\" for more information\n");
}

TEST_F(HmpCommandsTest, SendkeyParsesKeyNames)
{
    EXPECT_EQ(run("sendkey ctrl-alt-f1"), "");
    ASSERT_EQ(machine.sent_keys.size(), 1u);
    ASSERT_EQ(machine.sent_keys[0].size(), 3u);
    EXPECT_EQ(machine.sent_keys[0][2].qcode, "f1");
    EXPECT_EQ(machine.hold_times[0], 100);
    EXPECT_EQ(run("sendkey a 10"), "");
    EXPECT_EQ(machine.hold_times[1], 10);
    EXPECT_EQ(run("sendkey 0x1e-<"), "");
    EXPECT_EQ(machine.sent_keys[2][0].number, 0x1e);
    EXPECT_EQ(machine.sent_keys[2][1].qcode, "less");
    EXPECT_EQ(run("sendkey foo"), "invalid parameter: foo\n");
    EXPECT_EQ(run("sendkey ctrl-foo"), "invalid parameter: foo\n");
    EXPECT_EQ(run("sendkey"), "sendkey: string expected\nTry \"help sendkey\" for more information\n");
    EXPECT_EQ(run("sendkey a 10x"),
        "sendkey: extraneous characters at the end of line\nTry \"help sendkey\" for more information\n");
}

TEST_F(HmpCommandsTest, MemsaveWritesGuestBytesAndParsesLikeQemu)
{
    std::string path = ::testing::TempDir() + "kiln_memsave.bin";
    EXPECT_EQ(run("memsave 0xfffe0 32 \"" + path + "\""), "");
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_EQ(bytes.size(), 32u);
    EXPECT_EQ(uint8_t(bytes[16]), 0xea);
    // An unquoted path after the size is part of QEMU's expression: 16 / tmp.
    EXPECT_EQ(
        run("memsave 0 16 /tmp/x"), "invalid char 't' in expression\nTry \"help memsave\" for more information\n");
    EXPECT_EQ(run("pmemsave 0 0x10 /nonexist/a"),
        "invalid char 'n' in expression\nTry \"help pmemsave\" for more information\n");
    EXPECT_EQ(run("memsave"), "unexpected end of expression\nTry \"help memsave\" for more information\n");
    EXPECT_EQ(
        run("memsave 0 xx /tmp/a"), "invalid char 'x' in expression\nTry \"help memsave\" for more information\n");
    EXPECT_EQ(run("pmemsave 0 16 \"/nonexist/a\""), "Error: Could not open '/nonexist/a': No such file or directory\n");
    EXPECT_EQ(run("pmemsave 0x100000000000 16 \"" + path + "\""),
        "Error: Invalid addr 0x0000100000000000/size 16 specified\n");
}

TEST_F(HmpCommandsTest, UnknownCommandsAndExtraArguments)
{
    EXPECT_EQ(run("foo"), "unknown command: 'foo'\n");
    EXPECT_EQ(run("info foo"), "unknown command: 'info foo'\n");
    EXPECT_EQ(run("stop extra"),
        "stop|s: extraneous characters at the end of line\nTry \"help stop\" for more information\n");
    EXPECT_EQ(run("info cpus extra"),
        "cpus: extraneous characters at the end of line\nTry \"help info cpus\" for more information\n");
    EXPECT_EQ(run(""), "");
    EXPECT_EQ(run("   "), "");
}

TEST_F(HmpCommandsTest, HelpMatchesQemuLines)
{
    EXPECT_EQ(run("help stop"), "stop|s  -- stop emulation\n");
    EXPECT_EQ(run("help xp"), "xp /fmt addr -- physical memory dump starting at 'addr'\n");
    EXPECT_EQ(run("help commit"),
        "commit device|all -- commit changes to the disk images (if -snapshot is used) or backing files\n");
    EXPECT_EQ(run("help sendkey"),
        "sendkey keys [hold_ms] -- send keys to the VM (e.g. 'sendkey ctrl-alt-f1', "
        "default hold time=100 ms)\n");
    EXPECT_EQ(run("help info status"), "info status  -- show the current VM status (running|paused)\n");
    EXPECT_EQ(run("help memsave"),
        "memsave addr size file -- save to disk virtual memory dump starting at 'addr' of "
        "size 'size'\n");
    EXPECT_EQ(run("help change"),
        "change device [-f] filename [format [read-only-mode]] -- change a removable "
        "medium, optional format, use -f to force the operation\n");
    EXPECT_EQ(run("help eject"), "eject [-f] device -- eject a removable medium (use -f to force it)\n");
    EXPECT_EQ(run("help block_resize"), "block_resize device size -- resize a block image\n");
    EXPECT_EQ(run("help help"), "help|? [cmd] -- show the help\n");
    EXPECT_EQ(run("help nosuch"), "unknown command: 'nosuch'\n");
    EXPECT_EQ(run("help info block"),
        "info block [-n] [-v] [device] -- show info of one block device or all block "
        "devices (-n: show named nodes; -v: show details)\n");
    std::string info = run("info");
    EXPECT_EQ(info, run("help info"));
    EXPECT_EQ(info.rfind("info block [-n]", 0), 0u);
    EXPECT_NE(info.find("info version  -- show the version of QEMU\n"), std::string::npos);
    std::string all = run("help");
    EXPECT_NE(all.find("info [subcommand] -- show various information about the system state\n"), std::string::npos);
    EXPECT_LT(all.find("cont|c"), all.find("info [subcommand]"));
    EXPECT_LT(all.find("info [subcommand]"), all.find("memsave"));
}

} // namespace
} // namespace kiln::monitor
