#include "system/help.h"

#include "accel/x86/cpuid.h"

namespace kiln::system {

void print_version(FILE* out)
{
    fprintf(out, "Kiln emulator version 0.1.0 (QEMU-compatible command line)\n"
                 "Copyright (c) the Kiln developers\n");
}

void print_help(FILE* out)
{
    print_version(out);
    fprintf(out,
            "usage: kiln [options]\n"
            "\n"
            "Standard options:\n"
            "-h or -help     display this help and exit\n"
            "-version        display version information and exit\n"
            "-machine pc     select the machine (only 'pc'; -M is an alias)\n"
            "-cpu model      select the CPU model (-cpu help for a list)\n"
            "-accel kvm|interp|tcg\n"
            "                select the accelerator (tcg runs Kiln's interpreter)\n"
            "-enable-kvm     same as -accel kvm\n"
            "-smp 1          number of CPUs (only 1 is supported)\n"
            "-m [size=]megs[M|G]\n"
            "                guest RAM (default 128M)\n"
            "-name string1[,process=string2][,debug-threads=on|off]\n"
            "                guest name; process name; name the vCPU thread\n"
            "\n"
            "Boot options:\n"
            "-kernel bzImage|vmlinux\n"
            "                boot a Linux bzImage, or an ELF vmlinux through its PVH entry\n"
            "-append cmdline kernel command line\n"
            "-initrd file    initial ram disk\n"
            "\n"
            "Block devices (see docs/disks.md):\n"
            "-drive [file=]file[,if=ide|virtio|none][,format=fmt][,media=disk|cdrom][,...]\n"
            "                a disk\n"
            "-hda/-hdb/-hdc/-hdd file\n"
            "                IDE disk 0-3 (a bare file name is -hda)\n"
            "-cdrom file     IDE CD-ROM (secondary master)\n"
            "-snapshot       write to temporary overlays, never to the images\n"
            "-device virtio-blk-pci|ide-hd|ide-cd,drive=id[,...]\n"
            "                a disk device for an if=none drive\n"
            "\n"
            "Display and serial:\n"
            "-nographic      no display; serial port 0 and the monitor share stdio (Ctrl-A h for help)\n"
            "-display none   no display\n"
            "-serial dev     stdio, mon:stdio, file:PATH, unix:PATH[,server][,nowait], pty, null, none\n"
            "\n"
            "Run control:\n"
            "-S              do not start the CPU\n"
            "-no-reboot      exit instead of rebooting\n"
            "-no-shutdown    stop (do not exit) when the guest powers off\n"
            "-rtc base=utc|localtime|date\n"
            "                set the start time of the real-time clock\n"
            "-daemonize      detach from the terminal after start-up\n"
            "-pidfile file   write the process id to file\n"
            "-nodefaults     create no default serial port\n"
            "\n"
            "Monitor (see docs/monitor.md):\n"
            "-monitor dev    HMP on stdio, pty, unix:PATH,server=on,wait=off, tcp:HOST:PORT,server=on,wait=off\n"
            "-qmp dev        QMP on the same\n"
            "-chardev backend,id=id[,...]\n"
            "                socket, stdio, pty, null or file, for -mon and -serial chardev:id\n"
            "-mon [chardev=]id[,mode=readline|control]\n"
            "                a monitor on a -chardev\n"
            "\n"
            "Debugging:\n"
            "-D logfile      write logs to logfile instead of stderr\n"
            "-d item1,...    enable logging of items (-d help for a list)\n"
            "\n"
            "See docs/cli.md for the differences from QEMU.\n");
}

bool print_help_topic(FILE* out, const std::string& topic)
{
    if (topic == "machine") {
        fprintf(out, "Supported machines are:\npc                   Standard PC (i440FX + PIIX, 1996) (default)\n");
    } else if (topic == "cpu") {
        fprintf(out, "Available CPUs:\n");
        for (const std::string& n : accel::x86::CpuModel::names())
            fprintf(out, "x86 %s\n", n.c_str());
    } else if (topic == "accel") {
        fprintf(out, "Accelerators supported in Kiln:\nkvm\ninterp\ntcg (runs the interpreter)\n");
    } else if (topic == "display") {
        fprintf(out, "Available display backend types:\nnone\n");
    } else if (topic == "log") {
        fprintf(out, "Log items (comma separated):\n"
                     "guest_errors  log when the guest OS does something invalid\n"
                     "unimp         log unimplemented functionality\n"
                     "in_asm        show target assembly code for each compiled block\n"
                     "int           show interrupts/exceptions in short format\n"
                     "cpu_reset     show CPU state before CPU resets\n"
                     "cpu           show CPU registers before entering a block\n"
                     "exec          show trace before each executed block\n"
                     "block         block layer tracing\n");
    } else {
        return false;
    }
    return true;
}

} // namespace kiln::system
