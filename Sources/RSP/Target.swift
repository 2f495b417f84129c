// The debuggee as the protocol sees it. The session calls these on its own thread, and only while
// the target is stopped, except `interrupt`, which may come while it runs. A resumed target
// reports its next stop by the owner calling `Session.targetStopped(_:)`.

/// A gdb thread id. gdb numbers threads from 1; gdbvmm maps vCPU n to thread n + 1.
public typealias ThreadID = Int

/// Breakpoint and watchpoint kinds, numbered as in the `Z`/`z` packets.
public enum BreakpointKind: Int, Sendable, Equatable {
    case software = 0, hardware = 1, writeWatch = 2, readWatch = 3, accessWatch = 4
}

/// Why a thread stopped, beyond its signal; becomes the `swbreak:`/`watch:`... part of a T packet.
public enum StopReason: Sendable, Equatable {
    case none
    case softwareBreakpoint
    case hardwareBreakpoint
    case watch(address: UInt64)
    case readWatch(address: UInt64)
    case accessWatch(address: UInt64)
}

/// Signal numbers gdb understands (its own numbering, which matches Linux for these).
public enum GDBSignal {
    public static let sigint: UInt8 = 2
    public static let sigill: UInt8 = 4
    public static let sigtrap: UInt8 = 5
    public static let sigsegv: UInt8 = 11
}

public enum StopEvent: Sendable, Equatable {
    /// A thread stopped; all other threads are stopped too (all-stop).
    case stopped(thread: ThreadID, signal: UInt8, reason: StopReason)
    /// The guest ended with this exit status (`W` packet).
    case exited(status: UInt8)
    /// The guest was ended by a signal (`X` packet).
    case terminated(signal: UInt8)
}

/// What one thread should do on resume; `vCont` actions and `c`/`s` map onto these.
public enum ResumeAction: Sendable, Equatable {
    case `continue`(signal: UInt8?)
    case step(signal: UInt8?)
    /// `t`: stay stopped (or stop, in non-stop mode).
    case stop
    /// `r start,end`: step once, then keep stepping while the pc stays in [start, end); stop
    /// earlier for anything a step would stop for (a breakpoint, a watchpoint, a signal).
    case rangeStep(start: UInt64, end: UInt64)
}

/// The resume plan: an action for every thread that gets one; threads not named stay stopped.
public struct ResumePlan: Sendable, Equatable {
    public var actions: [ThreadID: ResumeAction]
    public init(actions: [ThreadID: ResumeAction]) { self.actions = actions }
}

public enum TargetError: Error, Sendable, Equatable {
    /// An errno-style failure, sent to gdb as `Exx`.
    case errno(Int32)
    /// The operation is not supported; the session answers with the empty packet.
    case unsupported
    /// A failure with text for the user, sent as `E.text` where gdb shows it.
    case message(String)
}

public protocol Target: AnyObject {
    /// Threads (vCPUs) in gdb numbering, ascending.
    var threads: [ThreadID] { get }
    /// Text for `qThreadExtraInfo` and the `qXfer:threads` name/extra attributes.
    func threadName(_ thread: ThreadID) -> String
    func threadExtraInfo(_ thread: ThreadID) -> String

    func readRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers
    /// The registers with at least `parts` read (a `g` needs no MSRs, a `p` of one MSR no XSAVE
    /// image); what is not read keeps its default. Defaults to `readRegisters(thread:)`.
    func readRegisters(thread: ThreadID, parts: RegisterParts) throws(TargetError) -> X86_64Registers
    /// The registers a stop reply expedites (pc, sp, fp): a target may serve these more
    /// cheaply than the whole file. Defaults to `readRegisters`.
    func stopRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers
    /// Writes back a register file read with `readRegisters`: a target writes only the parts it
    /// read, and only what changed.
    func writeRegisters(_ registers: X86_64Registers, thread: ThreadID) throws(TargetError)

    /// Reads at a guest-virtual address (or physical, in physical mode). May return fewer bytes
    /// than asked when the range runs into unmapped memory; throws when nothing is readable.
    /// Returns the original bytes where software breakpoints are planted.
    func readMemory(address: UInt64, count: Int, thread: ThreadID) throws(TargetError) -> [UInt8]
    func writeMemory(_ bytes: [UInt8], address: UInt64, thread: ThreadID) throws(TargetError)
    /// `readMemory` into a caller's buffer (the `m`/`x` replies, `qSearch`, `qCRC`): returns how
    /// many bytes it read from the start, fewer than `buffer.count` when the range runs into
    /// unmapped memory; 0 or a throw when nothing is readable. Defaults to `readMemory`.
    func readMemory(address: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                    thread: ThreadID) throws(TargetError) -> Int
    /// The bytes of [address, address + count) handed to `body` in order, in pieces, straight
    /// from where the target keeps them (the `m`/`x` replies are encoded from there, without a
    /// copy); a planted breakpoint's original byte comes as a piece of its own. Returns how many
    /// bytes it handed over, fewer at unmapped memory; 0 or a throw when nothing is readable.
    /// Defaults to `readMemory(into:)` through a buffer.
    func readMemory(address: UInt64, count: Int, thread: ThreadID,
                    pieces body: (UnsafeRawBufferPointer) -> Void) throws(TargetError) -> Int
    /// `qSearch:memory`: the first address in [address, address + length) where `pattern`
    /// starts and ends; nil when there is none; throws when memory the search must read is
    /// unreadable. Defaults to a search over `readMemory(into:)`.
    func searchMemory(address: UInt64, length: UInt64, pattern: [UInt8], thread: ThreadID) throws(TargetError) -> UInt64?
    /// `qCRC`: gdb's CRC-32 of [address, address + length); throws when part is unreadable.
    /// Defaults to a computation over `readMemory(into:)`.
    func crc32(address: UInt64, length: UInt64, thread: ThreadID) throws(TargetError) -> UInt32

    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError)
    func removeBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError)

    /// Starts the threads as planned and returns at once; the stop arrives later.
    func resume(_ plan: ResumePlan) throws(TargetError)
    /// Asks a running target to stop; it reports the stop (SIGINT) through the owner.
    func interrupt()
    /// `k`: end the debuggee.
    func kill()
    /// `D`: remove every breakpoint and let the debuggee run on without the debugger.
    func detach()
    /// `qRcmd`: runs a monitor command and returns its output text.
    func monitor(_ command: String) -> String
    /// `vRun`/`R`: restart from the boot state. The debuggee is stopped afterwards.
    func restart() throws(TargetError) -> StopEvent
}

/// Targets that decide breakpoint conditions and run breakpoint commands themselves
/// (`ConditionalBreakpoints+`, `BreakpointCommands+`): a false condition resumes without a stop
/// reply; command output reaches gdb's console while the target runs.
public protocol BreakpointAgentTarget: Target {
    /// Inserts (or, at an address that has one, re-inserts with new options: gdb re-sends the
    /// whole list) a breakpoint whose hits are decided by `options`.
    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int,
                          options: BreakpointOptions) throws(TargetError)
}

extension Target {
    public func readRegisters(thread: ThreadID, parts: RegisterParts) throws(TargetError) -> X86_64Registers {
        try readRegisters(thread: thread)
    }

    public func stopRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers {
        try readRegisters(thread: thread)
    }

    public func readMemory(address: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                           thread: ThreadID) throws(TargetError) -> Int {
        guard !buffer.isEmpty else { return 0 }
        let bytes = try readMemory(address: address, count: buffer.count, thread: thread)
        let n = min(bytes.count, buffer.count)
        // SAFETY: n bytes fit both the array and the buffer.
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
        return n
    }

    public func readMemory(address: UInt64, count: Int, thread: ThreadID,
                           pieces body: (UnsafeRawBufferPointer) -> Void) throws(TargetError) -> Int {
        guard count > 0 else { return 0 }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        defer { buffer.deallocate() }
        let n = min(count, try readMemory(address: address, into: buffer, thread: thread))
        if n > 0 { body(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }

    public func searchMemory(address: UInt64, length: UInt64, pattern: [UInt8],
                             thread: ThreadID) throws(TargetError) -> UInt64? {
        try MemorySearch.find(pattern, address: address, length: length) { (at, buffer) throws(TargetError) in
            try readMemory(address: at, into: buffer, thread: thread)
        }
    }

    public func crc32(address: UInt64, length: UInt64, thread: ThreadID) throws(TargetError) -> UInt32 {
        try CRC32.gdb(address: address, length: length) { (at, buffer) throws(TargetError) in
            try readMemory(address: at, into: buffer, thread: thread)
        }
    }
}
