import Foundation

/// Counts of KVM exits per vCPU and reason, with the time spent in KVM_RUN before each:
/// the run loop's view for `monitor info exits`.
public final class ExitStatistics: @unchecked Sendable {
    // SAFETY (Sendable): all state is guarded by `lock`.
    public struct Entry: Sendable, Equatable {
        public var count: UInt64 = 0
        public var nanoseconds: UInt64 = 0
    }

    private let lock = NSLock()
    private var table: [[String: Entry]]

    init(vcpuCount: Int) {
        table = Array(repeating: [:], count: vcpuCount)
    }

    func record(vcpu: Int, exit: VMExit, nanoseconds: UInt64) {
        let key: String
        switch exit {
        case .io(let a): key = "IO \(a.isOut ? "out" : "in") port 0x\(String(a.port, radix: 16))"
        case .mmio(_, _, let isWrite, _): key = isWrite ? "MMIO write" : "MMIO read"
        case .hlt: key = "HLT"
        case .debug(let exception, _, _, _): key = "DEBUG #\(exception == 3 ? "BP" : "DB")"
        case .shutdown: key = "SHUTDOWN"
        case .failEntry: key = "FAIL_ENTRY"
        case .internalError(let sub, _): key = "INTERNAL_ERROR (suberror \(sub))"
        case .systemEvent: key = "SYSTEM_EVENT"
        case .interrupted: key = "EINTR (kick)"
        case .other(let reason): key = "exit reason \(reason)"
        }
        lock.lock()
        table[vcpu][key, default: Entry()].count += 1
        table[vcpu][key, default: Entry()].nanoseconds &+= nanoseconds
        lock.unlock()
    }

    public func snapshot() -> [[String: Entry]] {
        lock.lock()
        defer { lock.unlock() }
        return table
    }

    public func reset() {
        lock.lock()
        for i in table.indices { table[i] = [:] }
        lock.unlock()
    }
}
