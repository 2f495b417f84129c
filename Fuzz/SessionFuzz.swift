// libFuzzer entry point for the protocol: arbitrary bytes from "gdb" go into a Session over a
// fake in-memory target. Built by scripts/fuzz together with Sources/RSP as one module, so the
// decoder and parser are reached the way the VMM reaches them. Any trap, overflow or sanitizer
// report is a bug: the VMM must answer every input with a reply or an error.

final class FuzzTarget: Target {
    var memory = [UInt8](repeating: 0x90, count: 0x10000)
    var registers = [X86_64Registers(), X86_64Registers()]
    var running = false

    var threads: [ThreadID] { [1, 2] }
    func threadName(_ thread: ThreadID) -> String { "vCPU \(thread - 1)" }
    func threadExtraInfo(_ thread: ThreadID) -> String { "running" }

    func readRegisters(thread: ThreadID) throws(TargetError) -> X86_64Registers {
        guard (1...2).contains(thread) else { throw .errno(3) }
        return registers[thread - 1]
    }

    func writeRegisters(_ r: X86_64Registers, thread: ThreadID) throws(TargetError) {
        guard (1...2).contains(thread) else { throw .errno(3) }
        registers[thread - 1] = r
    }

    func readMemory(address: UInt64, count: Int, thread: ThreadID) throws(TargetError) -> [UInt8] {
        guard address < UInt64(memory.count) else { throw .errno(14) }
        let start = Int(address)
        return Array(memory[start..<min(memory.count, start + max(0, count))])
    }

    func writeMemory(_ bytes: [UInt8], address: UInt64, thread: ThreadID) throws(TargetError) {
        guard address < UInt64(memory.count), bytes.count <= memory.count - Int(address) else { throw .errno(14) }
        memory.replaceSubrange(Int(address)..<Int(address) + bytes.count, with: bytes)
    }

    func insertBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {
        if kind == .hardware { throw .unsupported }
    }

    func removeBreakpoint(_ kind: BreakpointKind, address: UInt64, length: Int) throws(TargetError) {}
    func resume(_ plan: ResumePlan) throws(TargetError) { running = true }
    func interrupt() {}
    func kill() {}
    func detach() {}
    func monitor(_ command: String) -> String { "monitor: " + command }
    func restart() throws(TargetError) -> StopEvent { .stopped(thread: 1, signal: 5, reason: .none) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSession(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let target = FuzzTarget()
    let architecture: TargetArchitecture = first & 1 == 0 ? .x86_64 : .i386
    let session = Session(target: target, architecture: architecture)
    // The first byte also picks the chunk size, so framing is tried at every split.
    let chunk = Int(first >> 1) + 1
    var index = 1
    while index < bytes.count && !session.isClosed {
        let end = min(bytes.count, index + chunk)
        _ = session.receive(bytes[index..<end])
        if target.running && session.isRunning {
            target.running = false
            let reason: StopReason = bytes[index] & 1 == 0 ? .softwareBreakpoint : .watch(address: UInt64(bytes[index]))
            _ = session.targetStopped(.stopped(thread: Int(bytes[index] % 3), signal: 5, reason: reason))
        }
        index = end
    }
    return 0
}
