import CKVM

/// What an exit is handled against: the devices, the breakpoint table and the watch traps,
/// shared by every vCPU (each guards its own state). The Machine provides one; tests fake it.
public protocol ExitEnvironment: AnyObject, Sendable {
    /// Serves a port access on the bus: the bytes an `in` reads, and what an `out` asks for.
    func portIO(_ access: IOAccess) -> PortIOResult
    /// Serves an access that left the memory slots: trapped RAM is completed on RAM (and
    /// checked against the watches), other addresses behave as an empty bus. `paging` reads the
    /// vCPU's paging state, for the rare access that needs it.
    func mmio(_ access: MMIOAccess, paging: () -> PagingState?) -> MMIOResult
    /// Whose `int3` is at this linear address (translated through `paging`).
    func breakpointOwner(atLinear address: UInt64, paging: PagingState) -> BreakpointOwner
    /// Up to 15 bytes of the instruction at this linear address (planted breakpoints show the
    /// bytes they replaced): for naming an instruction KVM could not run.
    func instructionBytes(atLinear address: UInt64, paging: PagingState) -> [UInt8]
    /// `count` bytes of code from this linear address, as far as they are mapped (planted
    /// breakpoints show the bytes they replaced): for decoding a stepping range.
    func codeBytes(atLinear address: UInt64, count: Int, paging: PagingState) -> [UInt8]
    /// Any watchpoint set: an instruction KVM could not emulate may be on a trapped page.
    var hasWatches: Bool { get }
    /// Before a checked single step: the watched bytes (on page-table pages only, or all of
    /// them for a step with the traps lifted) and the reads the instruction will make.
    func watchStepSnapshot(regs: kvm_regs, sregs: kvm_sregs, allWatches: Bool) -> WatchStepSnapshot
    /// After that step: the watch it hit, if any.
    func watchStepHit(_ snapshot: WatchStepSnapshot, regs: kvm_regs) -> VCPUStop?
    /// At a debug-register breakpoint hit: whether its agent (a condition, dprintf) says run on
    /// (BreakpointAgent.swift; a default says stop).
    func agentRunsOn(regs: kvm_regs, sregs: kvm_sregs) -> Bool
}

extension ExitEnvironment {
    /// Fifteen bytes at a time through `instructionBytes`; environments with RAM do better.
    public func codeBytes(atLinear address: UInt64, count: Int, paging: PagingState) -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count {
            let chunk = instructionBytes(atLinear: address &+ UInt64(bytes.count), paging: paging)
            if chunk.isEmpty { break }
            bytes += chunk.prefix(count - bytes.count)
        }
        return bytes
    }
}

public struct PortIOResult: Sendable, Equatable {
    /// For `in`: the `size * count` bytes to return.
    public var input: [UInt8]
    public var effect: DeviceEffect

    public init(input: [UInt8] = [], effect: DeviceEffect = .none) {
        self.input = input
        self.effect = effect
    }
}

public struct MMIOResult: Sendable, Equatable {
    /// For reads: the value to complete the access with.
    public var value: UInt64
    /// The watchpoint the access hit (kind, guest-virtual address to report).
    public var hit: (kind: WatchKind, address: UInt64)?

    public init(value: UInt64 = 0, hit: (kind: WatchKind, address: UInt64)? = nil) {
        self.value = value
        self.hit = hit
    }

    public static func == (a: MMIOResult, b: MMIOResult) -> Bool {
        a.value == b.value && a.hit?.kind == b.hit?.kind && a.hit?.address == b.hit?.address
    }
}

public enum BreakpointOwner: Sendable, Equatable {
    /// One gdb planted.
    case debugger
    /// An `int3` that is part of the guest's own code.
    case guest
    /// No `int3` there.
    case none
}

/// What a checked step compares against: the bytes under the watches before the step, and the
/// decoded reads of the instruction (with the registers it started from).
public struct WatchStepSnapshot: Sendable {
    public var watched: [WatchedBytes]
    public var reads: [MemoryAccess]
    public var regsBefore: kvm_regs
    public var sregsBefore: kvm_sregs

    public init(watched: [WatchedBytes], reads: [MemoryAccess], regsBefore: kvm_regs, sregsBefore: kvm_sregs) {
        self.watched = watched
        self.reads = reads
        self.regsBefore = regsBefore
        self.sregsBefore = sregsBefore
    }
}

public struct WatchedBytes: Sendable, Equatable {
    public var kind: WatchKind
    /// The guest-virtual address of the first byte, and its physical address.
    public var virtual: UInt64
    public var physical: UInt64
    public var bytes: [UInt8]

    public init(kind: WatchKind, virtual: UInt64, physical: UInt64, bytes: [UInt8]) {
        self.kind = kind
        self.virtual = virtual
        self.physical = physical
        self.bytes = bytes
    }
}
