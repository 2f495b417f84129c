import Foundation

/// Counts of KVM exits per vCPU and reason, with the time spent in KVM_RUN before each:
/// the run loop's view for `monitor info exits`. Recording builds no strings (it runs on every
/// exit); names are made when the table is read.
public final class ExitStatistics: @unchecked Sendable {
    // SAFETY (Sendable): every table is guarded by its own lock.
    public struct Entry: Sendable, Equatable {
        public var count: UInt64 = 0
        public var nanoseconds: UInt64 = 0
    }

    /// An exit reason with its detail (the port of an I/O exit, the suberror...).
    struct Key: Hashable {
        enum Kind: UInt8 { case ioIn, ioOut, mmioRead, mmioWrite, hlt, debugBP, debugDB, shutdown, failEntry,
                           internalError, systemEvent, interrupted, other }
        var kind: Kind
        var detail: UInt32 = 0

        init(_ exit: VMExit) {
            switch exit {
            case .io(let a): kind = a.isOut ? .ioOut : .ioIn; detail = UInt32(a.port)
            case .mmio(let a): kind = a.isWrite ? .mmioWrite : .mmioRead
            case .hlt: kind = .hlt
            case .debug(let exception, _, _, _): kind = exception == 3 ? .debugBP : .debugDB
            case .shutdown: kind = .shutdown
            case .failEntry: kind = .failEntry
            case .internalError(let sub, _): kind = .internalError; detail = sub
            case .systemEvent: kind = .systemEvent
            case .interrupted: kind = .interrupted
            case .other(let reason): kind = .other; detail = reason
            }
        }

        var name: String {
            switch kind {
            case .ioIn: return "IO in port 0x\(String(detail, radix: 16))"
            case .ioOut: return "IO out port 0x\(String(detail, radix: 16))"
            case .mmioRead: return "MMIO read"
            case .mmioWrite: return "MMIO write"
            case .hlt: return "HLT"
            case .debugBP: return "DEBUG #BP"
            case .debugDB: return "DEBUG #DB"
            case .shutdown: return "SHUTDOWN"
            case .failEntry: return "FAIL_ENTRY"
            case .internalError: return "INTERNAL_ERROR (suberror \(detail))"
            case .systemEvent: return "SYSTEM_EVENT"
            case .interrupted: return "EINTR (kick)"
            case .other: return "exit reason \(detail)"
            }
        }
    }

    private final class Table: @unchecked Sendable {
        // SAFETY (Sendable): `entries` is guarded by `lock`.
        let lock = NSLock()
        var entries: [Key: Entry] = [:]
    }

    private let tables: [Table]

    init(vcpuCount: Int) {
        tables = (0..<vcpuCount).map { _ in Table() }
    }

    func record(vcpu: Int, exit: VMExit, nanoseconds: UInt64) {
        let key = Key(exit)
        let table = tables[vcpu]
        table.lock.lock()
        table.entries[key, default: Entry()].count += 1
        table.entries[key, default: Entry()].nanoseconds &+= nanoseconds
        table.lock.unlock()
    }

    public func snapshot() -> [[String: Entry]] {
        tables.map { table in
            table.lock.lock()
            defer { table.lock.unlock() }
            return Dictionary(uniqueKeysWithValues: table.entries.map { ($0.key.name, $0.value) })
        }
    }

    public func reset() {
        for table in tables {
            table.lock.lock()
            table.entries.removeAll()
            table.lock.unlock()
        }
    }
}
