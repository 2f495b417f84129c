import CKVM
import Glibc

/// The KVM system handle (/dev/kvm): API version, capabilities, and the factory for VMs.
public final class Kvm: @unchecked Sendable {
    // SAFETY (Sendable): immutable after init; the fd is only used for read-only queries.
    public let fd: Int32
    public let vcpuMmapSize: Int

    public init(path: String = "/dev/kvm") throws(SystemError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 { throw SystemError("open \(path)", errno: errno) }
        self.fd = fd
        do throws(SystemError) {
            let version = try sys("KVM_GET_API_VERSION") { ckvm_ioctl_int(fd, CKVM_GET_API_VERSION, 0) }
            // KVM_API_VERSION has been 12 since Linux 2.6.22; anything else is not the API we speak.
            guard version == 12 else { throw SystemError("KVM API version \(version) (need 12)", errno: EINVAL) }
            vcpuMmapSize = Int(try sys("KVM_GET_VCPU_MMAP_SIZE") { ckvm_ioctl_int(fd, CKVM_GET_VCPU_MMAP_SIZE, 0) })
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Guest kernel code runs under KVM's instruction emulator on this host (the paravirtual
    /// PVM module, PLATFORM.md) rather than natively as on VMX/SVM: the guest must then not be
    /// told of instructions that emulator cannot execute.
    public static var emulatesGuestKernelCode: Bool { access("/sys/module/kvm_pvm", F_OK) == 0 }

    /// KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific value.
    public func capability(_ cap: Int32) -> Int32 {
        max(0, ckvm_ioctl_int(fd, CKVM_CHECK_EXTENSION, UInt(cap)))
    }

    /// The CPUID entries KVM can present to a guest (KVM_GET_SUPPORTED_CPUID).
    public func supportedCPUID() throws(SystemError) -> [kvm_cpuid_entry2] {
        var capacity: UInt32 = 128
        while true {
            guard let buffer = ckvm_cpuid2_alloc(capacity) else {
                throw SystemError("allocating a CPUID buffer", errno: ENOMEM)
            }
            defer { free(buffer) }
            let r = ckvm_ioctl_ptr(fd, CKVM_GET_SUPPORTED_CPUID, buffer)
            if r == -1 && errno == E2BIG && capacity < 4096 { capacity *= 2; continue }
            if r == -1 { throw SystemError("KVM_GET_SUPPORTED_CPUID", errno: errno) }
            let count = Int(buffer.pointee.nent)
            // SAFETY: the kernel filled `nent` entries of the flexible array that follows the header.
            let entries = UnsafeMutableRawPointer(buffer).advanced(by: MemoryLayout<kvm_cpuid2>.size)
                .assumingMemoryBound(to: kvm_cpuid_entry2.self)
            return Array(UnsafeBufferPointer(start: entries, count: count))
        }
    }

    public func createVM() throws(SystemError) -> VirtualMachine {
        let vmfd = try sys("KVM_CREATE_VM") { ckvm_ioctl_int(fd, CKVM_CREATE_VM, 0) }
        return VirtualMachine(kvm: self, fd: vmfd)
    }
}
