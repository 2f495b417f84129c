import CKVM

/// Why KVM_RUN returned, decoded from kvm_run after a successful (or interrupted) run.
public enum VMExit: Sendable, Equatable {
    /// Port I/O. `data` points into kvm_run: read it for `out`, fill it for `in`.
    case io(IOAccess)
    /// An access to a guest-physical address with no (writable) memory slot.
    case mmio(address: UInt64, length: Int, isWrite: Bool, data: UInt64)
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
    /// Offset of the data buffer inside the kvm_run mapping.
    public var dataOffset: Int
}
