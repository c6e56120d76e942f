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
    // TSC ticks the virtual clock accounts for: ns * kHz / 10^6.
    return uint64_t((unsigned __int128)m_host.virtual_clock_ns() * m_tsc_khz / 1000000u);
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

Result<void> KvmVcpu::fetch_state()
{
    kvm_regs regs;
    if (ioctl(m_fd, KVM_GET_REGS, &regs) < 0)
        return ioctl_error("KVM_GET_REGS", errno);
    regs_from_kvm(regs, m_state);
    kvm_sregs sregs;
    if (ioctl(m_fd, KVM_GET_SREGS, &sregs) < 0)
        return ioctl_error("KVM_GET_SREGS", errno);
    sregs_from_kvm(sregs, m_state);
    if (m_have_xcrs) {
        kvm_xcrs xcrs {};
        if (ioctl(m_fd, KVM_GET_XCRS, &xcrs) < 0)
            return ioctl_error("KVM_GET_XCRS", errno);
        xcrs_from_kvm(xcrs, m_state);
    }
    if (m_have_xsave) {
        unsigned long req = m_have_xsave2 ? abi::k_get_xsave2 : abi::k_get_xsave;
        if (ioctl(m_fd, req, m_xsave_buf.data()) < 0)
            return ioctl_error(m_have_xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", errno);
        xsave_from_kvm(m_xsave_buf, m_state);
    } else {
        kvm_fpu fpu;
        if (ioctl(m_fd, KVM_GET_FPU, &fpu) < 0)
            return ioctl_error("KVM_GET_FPU", errno);
        fpu_from_kvm(fpu, m_state);
    }
    TRY(fetch_msrs());
    kvm_vcpu_events events;
    if (ioctl(m_fd, KVM_GET_VCPU_EVENTS, &events) < 0)
        return ioctl_error("KVM_GET_VCPU_EVENTS", errno);
    events_from_kvm(events, m_state);
    kvm_debugregs dbg;
    if (ioctl(m_fd, KVM_GET_DEBUGREGS, &dbg) < 0)
        return ioctl_error("KVM_GET_DEBUGREGS", errno);
    debugregs_from_kvm(dbg, m_state);
    m_state.apic_id = m_apic_id;
    return {};
}

Result<void> KvmVcpu::push_state()
{
    kvm_sregs sregs;
    sregs_to_kvm(m_state, sregs);
    if (ioctl(m_fd, KVM_SET_SREGS, &sregs) < 0)
        return ioctl_error("KVM_SET_SREGS", errno);
    kvm_regs regs;
    regs_to_kvm(m_state, regs);
    if (ioctl(m_fd, KVM_SET_REGS, &regs) < 0)
        return ioctl_error("KVM_SET_REGS", errno);
    if (m_have_xcrs) {
        kvm_xcrs xcrs;
        xcrs_to_kvm(m_state, xcrs);
        if (ioctl(m_fd, KVM_SET_XCRS, &xcrs) < 0)
            return ioctl_error("KVM_SET_XCRS", errno);
    }
    if (m_have_xsave) {
        xsave_to_kvm(m_state, m_xsave_buf);
        if (ioctl(m_fd, abi::k_set_xsave, m_xsave_buf.data()) < 0)
            return ioctl_error("KVM_SET_XSAVE", errno);
    } else {
        kvm_fpu fpu;
        fpu_to_kvm(m_state, fpu);
        if (ioctl(m_fd, KVM_SET_FPU, &fpu) < 0)
            return ioctl_error("KVM_SET_FPU", errno);
    }
    TRY(push_msrs());
    kvm_vcpu_events events;
    events_to_kvm(m_state, events);
    if (ioctl(m_fd, KVM_SET_VCPU_EVENTS, &events) < 0)
        return ioctl_error("KVM_SET_VCPU_EVENTS", errno);
    kvm_debugregs dbg;
    debugregs_to_kvm(m_state, dbg);
    if (ioctl(m_fd, KVM_SET_DEBUGREGS, &dbg) < 0)
        return ioctl_error("KVM_SET_DEBUGREGS", errno);
    m_location = StateLocation::InSync;
    m_run_fields_valid = false; // IF and the interrupt shadow may have changed
    return {};
}

} // namespace kiln::accel::kvm
