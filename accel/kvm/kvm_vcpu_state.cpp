// KvmVcpu: moving the whole CpuState into and out of KVM.
#include <cerrno>
#include <cstdio>

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "accel/kvm/kvm_msrs.h"
#include "accel/kvm/kvm_state.h"
#include "accel/kvm/kvm_vcpu.h"
#include "accel/kvm/private/kvm_abi.h"

namespace kiln::accel::kvm {

uint64_t KvmVcpu::guest_tsc_base() const
{
    // CpuState's TSC is an offset from the virtual clock counted one tick
    // per ns, as the interpreter runs it. Converting with the same unit
    // keeps the value continuous when the CPU changes accelerator (scaled
    // by KVM's rate, it went back by ns * (rate - 1) on the way to the
    // interpreter); KVM's own rate (tsc_khz()) only says how fast the TSC
    // runs between transfers.
    return m_host.virtual_clock_ns();
}

Result<void> KvmVcpu::sync_from_kernel()
{
    if (m_location != StateLocation::Kernel)
        return {};
    TRY(fetch_state());
    m_location = StateLocation::InSync;
    return {};
}

Result<void> KvmVcpu::fetch_msrs()
{
    abi::MsrBuffer buf(m_msrs.size());
    for (size_t i = 0; i < m_msrs.size(); i++)
        buf.entry(i).index = m_msrs[i];
    int n = ioctl(m_fd, abi::k_get_msrs, buf.hdr());
    if (n < 0)
        return ioctl_error("KVM_GET_MSRS", errno);
    if (size_t(n) != m_msrs.size())
        return Error::internal(std::string("kvm: KVM_GET_MSRS could not read ") + msr_name(m_msrs[n]));
    for (size_t i = 0; i < m_msrs.size(); i++) {
        const kvm_msr_entry& e = buf.entry(i);
        if (e.index == k_msr_tsc) {
            m_state.msr.tsc_offset = int64_t(e.data - guest_tsc_base());
            m_kernel_tsc_offset = m_state.msr.tsc_offset;
            m_tsc_known = true;
        } else if (uint64_t* field = msr_field(m_state, e.index)) {
            *field = e.data;
        }
    }
    return {};
}

Result<void> KvmVcpu::push_msrs()
{
    abi::MsrBuffer buf(m_msrs.size());
    size_t n = 0;
    for (uint32_t index : m_msrs) {
        kvm_msr_entry& e = buf.entry(n);
        e.index = index;
        if (index == k_msr_tsc) {
            // Writing the TSC makes it jump by the time between our read and
            // this write; only do it when the offset really changed.
            if (m_tsc_known && m_state.msr.tsc_offset == m_kernel_tsc_offset)
                continue;
            e.data = guest_tsc_base() + uint64_t(m_state.msr.tsc_offset);
        } else if (uint64_t* field = msr_field(m_state, index)) {
            e.data = *field;
        } else {
            continue;
        }
        n++;
    }
    buf.hdr()->nmsrs = uint32_t(n);
    int done = ioctl(m_fd, abi::k_set_msrs, buf.hdr());
    if (done < 0)
        return ioctl_error("KVM_SET_MSRS", errno);
    if (size_t(done) != n) {
        char msg[128];
        snprintf(msg, sizeof msg, "kvm: KVM_SET_MSRS refused %s = 0x%llx", msr_name(buf.entry(done).index),
            (unsigned long long)buf.entry(done).data);
        return Error::invalid(msg);
    }
    m_kernel_tsc_offset = m_state.msr.tsc_offset;
    m_tsc_known = true;
    return {};
}

namespace {

// One KVM_GET_* ioctl whose structure converts into CpuState.
template<typename KvmStruct>
Result<void> get_into(int fd, unsigned long request, const char* name,
    void (*convert)(const KvmStruct&, x86::CpuState&), x86::CpuState& state)
{
    KvmStruct k {};
    if (ioctl(fd, request, &k) < 0)
        return ioctl_error(name, errno);
    convert(k, state);
    return {};
}

// One KVM_SET_* ioctl whose structure is built from CpuState.
template<typename KvmStruct>
Result<void> set_from(int fd, unsigned long request, const char* name,
    void (*convert)(const x86::CpuState&, KvmStruct&), const x86::CpuState& state)
{
    KvmStruct k {};
    convert(state, k);
    if (ioctl(fd, request, &k) < 0)
        return ioctl_error(name, errno);
    return {};
}

} // namespace

Result<void> KvmVcpu::fetch_state()
{
    TRY(get_into(m_fd, KVM_GET_REGS, "KVM_GET_REGS", regs_from_kvm, m_state));
    TRY(get_into(m_fd, KVM_GET_SREGS, "KVM_GET_SREGS", sregs_from_kvm, m_state));
    if (m_have_xcrs)
        TRY(get_into(m_fd, KVM_GET_XCRS, "KVM_GET_XCRS", xcrs_from_kvm, m_state));
    if (m_have_xsave) {
        unsigned long req = m_have_xsave2 ? abi::k_get_xsave2 : abi::k_get_xsave;
        if (ioctl(m_fd, req, m_xsave_buf.data()) < 0)
            return ioctl_error(m_have_xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", errno);
        xsave_from_kvm(m_xsave_buf, m_state);
    } else {
        TRY(get_into(m_fd, KVM_GET_FPU, "KVM_GET_FPU", fpu_from_kvm, m_state));
    }
    TRY(fetch_msrs());
    TRY(get_into(m_fd, KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", events_from_kvm, m_state));
    TRY(get_into(m_fd, KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", debugregs_from_kvm, m_state));
    m_state.apic_id = m_apic_id;
    return {};
}

Result<void> KvmVcpu::push_state()
{
    // SREGS before REGS and events: KVM derives the CPU mode from them.
    TRY(set_from(m_fd, KVM_SET_SREGS, "KVM_SET_SREGS", sregs_to_kvm, m_state));
    TRY(set_from(m_fd, KVM_SET_REGS, "KVM_SET_REGS", regs_to_kvm, m_state));
    // XCR0 before the XSAVE image, whose XSTATE_BV it bounds.
    if (m_have_xcrs)
        TRY(set_from(m_fd, KVM_SET_XCRS, "KVM_SET_XCRS", xcrs_to_kvm, m_state));
    if (m_have_xsave) {
        xsave_to_kvm(m_state, m_xsave_buf);
        if (ioctl(m_fd, abi::k_set_xsave, m_xsave_buf.data()) < 0)
            return ioctl_error("KVM_SET_XSAVE", errno);
    } else {
        TRY(set_from(m_fd, KVM_SET_FPU, "KVM_SET_FPU", fpu_to_kvm, m_state));
    }
    TRY(push_msrs());
    TRY(set_from(m_fd, KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", events_to_kvm, m_state));
    TRY(set_from(m_fd, KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", debugregs_to_kvm, m_state));
    // Without an in-kernel APIC, KVM_RUN loads CR8 from kvm_run (the TPR as
    // userspace last saw it), overriding the one in sregs.
    m_run->cr8 = m_state.cr8;
    m_location = StateLocation::InSync;
    m_run_fields_valid = false; // IF and the interrupt shadow may have changed
    return {};
}

} // namespace kiln::accel::kvm
