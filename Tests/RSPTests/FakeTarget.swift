@testable import RSP

/// An in-memory debuggee: two threads, 64 KiB of memory at 0x1000, and a log of every call the
/// session made, so tests can assert what gdb's packets turned into.
final class FakeTarget: Target {
    enum Call: Equatable {
        case resume(ResumePlan)
        case interrupt, kill, detach, restart
        case insert(BreakpointKind, UInt64, Int)
        case remove(BreakpointKind, UInt64, Int)
        case writeRegisters(ThreadID)
        case writeMemory(UInt64, [UInt8])
        case monitor(String)
    }

    static let memoryBase: UInt64 = 0x1000
    var threads: [ThreadID] = [1, 2]
    var registers: [ThreadID: X86_64Registers] = [:]
    var memory = [UInt8](repeating: 0, count: 0x10000)
    var calls: [Call] = []
    /// When set, every fallible call throws it.
    var failure: TargetError?
    var monitorOutput = "ok\n"
    var restartEvent = StopEvent.stopped(thread: 1, signal: GDBSignal.sigtrap, reason: .none)

    init() {
        for (i, thread) in threads.enumerated() {
            var r = X86_64Registers()
            for n in 0..<16 { r.gpr[n] = UInt64(thread) << 32 | UInt64(n) }
            r.rip = 0x100000 + UInt64(i)
            r.rsp = 0x7000
            r.rbp = 0x7ff0
            r.eflags = 0x202
            registers[thread] = r
        }
        for i in memory.indices { memory[i] = UInt8(truncatingIfNeeded: i) }
    }

    func threadName(_ thread: ThreadID) -> String { "vCPU \(thread - 1)" }
    func threadExtraInfo(_ thread: ThreadID) -> String { "long mode <&>" }

    /// Served by `stopRegisters` when set (a target with a cheaper path for stop replies).
    var stopRegisterFile: X86_64Registers?
    private(set) var fullRegisterReads = 0

    func stopRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers {
        if let stopRegisterFile { return stopRegisterFile }
        return try readRegisters(thread: thread)
    }

    func readRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers {
        fullRegisterReads += 1
        if let failure { throw failure }
        guard let r = registers[thread] else { throw .errno(3) }
        return r
    }

    /// The parts each register read asked for, in order.
    private(set) var partsRead: [RegisterParts] = []
    /// When set, register writes (only) throw it: a CPU that refuses a value.
    var writeFailure: TargetError?

    func readRegisters(thread: ThreadID, parts: RegisterParts) throws(TargetError) -> X86_64Registers {
        partsRead.append(parts)
        return try readRegisters(thread: thread)
    }

    func writeRegisters(_ registers: X86_64Registers, thread: ThreadID) throws(TargetError) {
        if let failure { throw failure }
        if let writeFailure { throw writeFailure }
        self.registers[thread] = registers
        calls.append(.writeRegisters(thread))
    }

    func readMemory(address: UInt64, count: Int, thread: ThreadID) throws(TargetError) -> [UInt8] {
        if let failure { throw failure }
        guard address >= Self.memoryBase, address - Self.memoryBase < UInt64(memory.count) else {
            throw .errno(14)
        }
        let start = Int(address - Self.memoryBase)
        return Array(memory[start..<min(start + count, memory.count)])
    }

    func writeMemory(_ bytes: [UInt8], address: UInt64, thread: ThreadID) throws(TargetError) {
        if let failure { throw failure }
        guard address >= Self.memoryBase, Int(address - Self.memoryBase) + bytes.count <= memory.count else {
            throw .errno(14)
        }
        let start = Int(address - Self.memoryBase)
        memory.replaceSubrange(start..<start + bytes.count, with: bytes)
        calls.append(.writeMemory(address, bytes))
    }

    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        if let failure { throw failure }
        if kind == .accessWatch { throw .unsupported }
        calls.append(.insert(kind, address, length))
    }

    func removeBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        if let failure { throw failure }
        calls.append(.remove(kind, address, length))
    }

    func resume(_ plan: ResumePlan) throws(TargetError) {
        if let failure { throw failure }
        calls.append(.resume(plan))
    }

    func interrupt() { calls.append(.interrupt) }
    func kill() { calls.append(.kill) }
    func detach() { calls.append(.detach) }

    func monitor(_ command: String) -> String {
        calls.append(.monitor(command))
        return monitorOutput
    }

    func restart() throws(TargetError) -> StopEvent {
        if let failure { throw failure }
        calls.append(.restart)
        return restartEvent
    }
}

/// Frames a payload the way gdb does (no escaping needed for the text packets tests send).
func gdbPacket(_ payload: String) -> [UInt8] {
    let bytes = Array(payload.utf8)
    let sum = bytes.reduce(UInt8(0)) { $0 &+ $1 }
    return [UInt8(ascii: "$")] + bytes + Array("#".utf8) + Hex.encode([sum])
}

/// Splits what a session sent into acks and packet payloads, checking the framing strictly:
/// returns nil if anything is not `+`, `-`, or a `$...#xx` packet with a correct checksum.
func parseStubOutput(_ bytes: [UInt8]) -> [String]? {
    var items: [String] = []
    var i = 0
    while i < bytes.count {
        switch bytes[i] {
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            items.append(String(UnicodeScalar(bytes[i])))
            i += 1
        case UInt8(ascii: "$"):
            guard let hash = bytes[(i + 1)...].firstIndex(of: UInt8(ascii: "#")), hash + 2 < bytes.count else {
                return nil
            }
            let raw = bytes[(i + 1)..<hash]
            guard !raw.contains(UInt8(ascii: "$")),
                  let sum = Hex.decode(bytes[(hash + 1)...(hash + 2)]),
                  sum == [raw.reduce(UInt8(0)) { $0 &+ $1 }],
                  case .packet(let payload) = PacketDecoder.expand(Array(raw), limit: 1 << 22)
            else { return nil }
            items.append(String(decoding: payload, as: UTF8.self))
            i = hash + 3
        default:
            return nil
        }
    }
    return items
}
