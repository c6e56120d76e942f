#include "system/boot_cpu.h"
#include "system/vm.h"

namespace kiln::system {

namespace {
Result<void> load_kernel(Vm& vm)
{
    hw::LinuxBootConfig boot;
    boot.cmdline = vm.config.append;
    boot.e820 = vm.machine->e820();
    boot.low_ram_end = vm.machine->low_ram_bytes();
    boot.rsdp_gpa = vm.machine->acpi_rsdp_gpa();
    vm.boot = TRY(hw::load_linux_files(vm.machine->memory(), boot, vm.config.kernel, vm.config.initrd));
    return {};
}
} // namespace

Result<void> realize_vm(Vm& vm)
{
    TRY(load_kernel(vm));
    vm.vcpu = TRY(create_vcpu(vm.config, *vm.machine));
    vm.vcpu->power_on_reset();
    apply_boot_setup(vm.boot, vm.vcpu->state());
    Vcpu* v = vm.vcpu.get();
    vm.machine->set_vcpu_kick([v] { v->kick(); });
    vm.machine->set_vcpu_wake([v] { v->wake(); });
    return {};
}

} // namespace kiln::system

namespace kiln::system {

Result<void> reboot_vm(Vm& vm)
{
    TRY(vm.machine->reset_devices());
    if (vm.disks) {
        hw::MachineLock lk(*vm.machine);
        vm.disks->reset();
    }
    TRY(load_kernel(vm));
    vm.vcpu->power_on_reset();
    apply_boot_setup(vm.boot, vm.vcpu->state());
    return {};
}

} // namespace kiln::system
