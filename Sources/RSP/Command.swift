// A packet from gdb as a typed value. Parsing (CommandParser.swift) never fails: arguments that do
// not parse become `.malformed`, and packets we do not implement become `.unknown`, which RSP
// requires be answered with the empty packet.

/// A thread as gdb names it in `H`, `T` and `vCont`.
enum ThreadSelector: Equatable, Sendable {
    /// `0`: any thread; the session picks the current one.
    case any
    /// `-1`: all threads.
    case all
    case thread(ThreadID)
}

/// One `vCont` action and the thread it names (nil: every thread not named by an earlier action).
struct VContAction: Equatable, Sendable {
    var action: ResumeAction
    var thread: ThreadSelector?
}

enum Command: Equatable, Sendable {
    /// `?`
    case haltReason
    /// `g`
    case readRegisters
    /// `G hex`: the raw register bytes in regnum order; may cover only the first registers.
    case writeRegisters([UInt8])
    /// `p n`
    case readRegister(Int)
    /// `P n=hex`
    case writeRegister(Int, value: [UInt8])
    /// `m addr,len` (hex reply) and `x addr,len` (binary reply).
    case readMemory(address: UInt64, length: Int, binary: Bool)
    /// `M addr,len:hex` and `X addr,len:binary`; the bytes already match the length.
    case writeMemory(address: UInt64, bytes: [UInt8])
    /// `c [addr]`, `C sig[;addr]`
    case `continue`(signal: UInt8?, address: UInt64?)
    /// `s [addr]`, `S sig[;addr]`
    case step(signal: UInt8?, address: UInt64?)
    /// `vCont?`
    case vContQuery
    /// `vCont;action[:tid]...`
    case vCont([VContAction])
    /// `Hg tid`: the thread for register and memory packets.
    case setGeneralThread(ThreadSelector)
    /// `Hc tid`: the thread for `c` and `s`.
    case setContinueThread(ThreadSelector)
    /// `T tid`
    case threadAlive(ThreadSelector)
    /// `qC`
    case currentThread
    /// `qfThreadInfo`
    case threadInfoFirst
    /// `qsThreadInfo`
    case threadInfoNext
    /// `qAttached[:pid]`
    case attached
    /// `qSupported[:features]`: gdb's features, e.g. `swbreak+`, `xmlRegisters=i386`.
    case supported(features: [String])
    /// `qXfer:features:read:annex:off,len`
    case readFeatures(annex: String, offset: Int, length: Int)
    /// `qXfer:threads:read::off,len`
    case readThreads(offset: Int, length: Int)
    /// `qThreadExtraInfo,tid`
    case threadExtraInfo(ThreadID)
    /// `qRcmd,hex`: a `monitor` command, decoded.
    case monitor(String)
    /// `qOffsets`
    case offsets
    /// `qSymbol::` (and any other `qSymbol`): we never ask for symbols.
    case symbolLookup
    /// `qTStatus`
    case traceStatus
    /// `QStartNoAckMode`
    case startNoAckMode
    /// `Z type,addr,kind`
    case insertBreakpoint(BreakpointKind, address: UInt64, kind: Int)
    /// `z type,addr,kind`
    case removeBreakpoint(BreakpointKind, address: UInt64, kind: Int)
    /// `k`
    case kill
    /// `D[;pid]`
    case detach
    /// `!`
    case extendedMode
    /// `vRun;filename;args...`: a VM has one program, so the arguments are not kept.
    case run
    /// `R xx`
    case restart
    /// `vKill;pid`
    case vKill
    /// `vMustReplyEmpty`: gdb checks that unknown `v` packets get the empty reply.
    case mustReplyEmpty
    /// `vCtrlC`
    case ctrlC
    /// One of QEMU's maintenance packets (`qqemu.sstepbits`, `Qqemu.PhyMemMode:1`, ...).
    case qemu(QEMUCommand)
    /// `qGDBServerVersion`
    case serverVersion
    /// Anything we do not implement (its text, shortened), answered with the empty packet.
    case unknown(String)
    /// A known packet whose arguments did not parse, answered with `E01`.
    case malformed(String)
}
