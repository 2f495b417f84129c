import CKVM
import Glibc

/// A KVM virtual machine (the vm fd): memory slots, the in-kernel irqchip, and its vCPUs.
public final class VirtualMachine: @unchecked Sendable {
    // SAFETY (Sendable): the fd is immutable; slot changes happen only while every vCPU is parked
    // (the controller's rule), and KVM serialises VM ioctls itself.
    public let kvm: Kvm
    public let fd: Int32

    init(kvm: Kvm, fd: Int32) {
        self.kvm = kvm
        self.fd = fd
    }

    deinit { close(fd) }

    /// Intel VMX needs these two pages for real-mode emulation; place them just below 4 GiB,
    /// far above any RAM we give a guest below the 32-bit hole. Harmless elsewhere.
    public func setUpArchitecturalPages() throws(SystemError) {
        try sys("KVM_SET_TSS_ADDR") { ckvm_ioctl_int(fd, CKVM_SET_TSS_ADDR, 0xFFFB_D000) }
        var identity: UInt64 = 0xFFFB_C000
        try sys("KVM_SET_IDENTITY_MAP_ADDR") { ckvm_ioctl_ptr(fd, CKVM_SET_IDENTITY_MAP_ADDR, &identity) }
    }

    /// KVM_SET_USER_MEMORY_REGION. A size of 0 deletes the slot.
    public func setMemoryRegion(slot: UInt32, guestPhysical: UInt64, size: UInt64,
                                host: UnsafeMutableRawPointer?, readOnly: Bool = false) throws(SystemError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: readOnly ? UInt32(KVM_MEM_READONLY) : 0,
            guest_phys_addr: guestPhysical, memory_size: size,
            userspace_addr: UInt64(UInt(bitPattern: host)))
        try sys("KVM_SET_USER_MEMORY_REGION slot \(slot) at 0x\(String(guestPhysical, radix: 16))") {
            ckvm_ioctl_ptr(fd, CKVM_SET_USER_MEMORY_REGION, &region)
        }
    }

    /// The in-kernel local APICs and IOAPIC; must come before the first vCPU.
    public func createIRQChip() throws(SystemError) {
        try sys("KVM_CREATE_IRQCHIP") { ckvm_ioctl_int(fd, CKVM_CREATE_IRQCHIP, 0) }
    }

    /// The in-kernel i8254 timer (PIT), after the irqchip: the tick Linux calibrates against and
    /// runs on before its local APIC timer.
    public func createPIT() throws(SystemError) {
        var config = kvm_pit_config()
        try sys("KVM_CREATE_PIT2") { ckvm_ioctl_ptr(fd, CKVM_CREATE_PIT2, &config) }
    }

    /// KVM_IRQ_LINE: drives an interrupt line of the in-kernel irqchip (PIC and IOAPIC pin
    /// `irq`). ISA lines are edge-triggered: a rise from low to high is one interrupt.
    public func setIRQLine(_ irq: UInt32, high: Bool) throws(SystemError) {
        var line = kvm_irq_level()
        line.irq = irq
        line.level = high ? 1 : 0
        try sys("KVM_IRQ_LINE \(irq)") { ckvm_ioctl_ptr(fd, CKVM_IRQ_LINE, &line) }
    }

    public func createVCPU(index: Int) throws(SystemError) -> VCPU {
        let vcpufd = try sys("KVM_CREATE_VCPU \(index)") { ckvm_ioctl_int(fd, CKVM_CREATE_VCPU, UInt(index)) }
        let size = kvm.vcpuMmapSize
        // SAFETY: checked against MAP_FAILED below; VCPU unmaps it in deinit.
        let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0)
        guard let mapping, mapping != MAP_FAILED else {
            let e = errno
            close(vcpufd)
            throw SystemError("mmap of vCPU \(index)'s kvm_run", errno: e)
        }
        return VCPU(index: index, fd: vcpufd, run: mapping, runSize: size, vm: self)
    }
}
