import CKVM

/// Why KVM_RUN returned, decoded once from kvm_run after a successful (or interrupted) run.
/// Payloads are copied out, so no pointer into kvm_run escapes the VCPU.
public enum VMExit: Sendable, Equatable {
    /// Port I/O. An `in` is completed with `VCPUBackend.completeIORead` before re-entering.
    case io(IOAccess)
    /// An access to a guest-physical address with no (writable) memory slot. A read is
    /// completed with `VCPUBackend.completeMMIORead` before re-entering.
    case mmio(MMIOAccess)
    case hlt
    /// A debug exception intercepted for the debugger: #DB (1) or #BP (3).
    case debug(exception: UInt32, pc: UInt64, dr6: UInt64, dr7: UInt64)
    /// Triple fault: the guest is beyond saving.
    case shutdown
    case failEntry(reason: UInt64)
    /// KVM could not handle something; suberror 1 is an instruction emulation failure.
    case internalError(suberror: UInt32, data: [UInt64])
    case systemEvent(type: UInt32)
    /// KVM_RUN returned EINTR: a kick (signal or immediate_exit).
    case interrupted
    case other(reason: UInt32)
}

public struct IOAccess: Sendable, Equatable {
    public var isOut: Bool
    public var port: UInt16
    /// Bytes per access (1, 2 or 4).
    public var size: Int
    /// Repetitions (string I/O, `rep outsb`).
    public var count: Int
    /// For `out`: the `size * count` bytes written, copied out of kvm_run. Empty for `in`.
    public var data: [UInt8]

    public init(isOut: Bool, port: UInt16, size: Int, count: Int = 1, data: [UInt8] = []) {
        self.isOut = isOut
        self.port = port
        self.size = size
        self.count = count
        self.data = data
    }
}

public struct MMIOAccess: Sendable, Equatable {
    public var address: UInt64
    /// 1 to 8 bytes (KVM never reports more).
    public var length: Int
    public var isWrite: Bool
    /// The bytes written, little-endian (writes only).
    public var data: UInt64

    public init(address: UInt64, length: Int, isWrite: Bool, data: UInt64 = 0) {
        self.address = address
        self.length = length
        self.isWrite = isWrite
        self.data = data
    }
}
