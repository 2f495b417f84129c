/// How a vCPU's run ended: what the controller (and gdb) gets told.
public enum VCPUStop: Sendable, Equatable {
    case softwareBreakpoint
    case hardwareBreakpoint(slot: Int)
    case stepped
    case watchpoint(WatchKind, address: UInt64)
    /// Kicked out of KVM_RUN because the controller asked every vCPU to stop.
    case interrupted
    /// A debug exception that is not ours (the guest's own int3, a #DB it caused).
    case guestDebugTrap(exception: UInt32)
    /// HLT with nothing that could wake it.
    case halted
    /// The guest asked to end the VM (debug-exit port, power-off) with this status.
    case exit(status: Int32)
    case crash(Crash)
    /// Not for gdb: KVM could not run an instruction on a page trapped for a watchpoint. The
    /// controller parks every vCPU, lifts the traps, steps this one (`RunMode.untrappedStep`)
    /// and puts them back: slots change only while no vCPU runs.
    case untrappedStepNeeded

    /// Worth telling gdb about (the others only update what the controller knows).
    public var isReportable: Bool {
        switch self {
        case .interrupted, .halted, .untrappedStepNeeded: return false
        default: return true
        }
    }
}

public enum WatchKind: Sendable, Equatable { case write, read, access }

public struct Crash: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case tripleFault, emulationFailure, entryFailure, internalError, reset }
    public var kind: Kind
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { detail }
}
