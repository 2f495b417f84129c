import Foundation
import KVMRunLoop

/// Where the VMM's own time goes while gdb drives it, for `monitor info timing` (and
/// scripts/bench): the controller's time from reading gdb's bytes to handing the reply to the
/// socket, its time from a vCPU's stop to the stop reply, and the time the vCPUs spent inside
/// KVM_RUN. What gdb itself takes is the rest of the wall time. Recording is two
/// clock_gettime calls and two additions: no strings, no locks.
struct VMMTiming {
    /// Reads from gdb that produced a reply, and the time from each read to its reply sent.
    var exchanges: UInt64 = 0
    var exchangeNanoseconds: UInt64 = 0
    /// Reads that produced no reply yet (a resume, whose reply is the stop; the first part of a
    /// large `M`/`X`), counted in time only.
    var partialNanoseconds: UInt64 = 0
    /// Stop events handled (a vCPU stopped; the stop reply, if any, sent).
    var stops: UInt64 = 0
    var stopNanoseconds: UInt64 = 0
    /// When the counters were last reset, and the KVM_RUN totals at that moment.
    var since = monotonicNow()
    var kvmExitsAtReset: UInt64 = 0
    var kvmNanosecondsAtReset: UInt64 = 0

    mutating func exchange(from start: UInt64, replied: Bool) {
        let spent = monotonicNow() &- start
        if replied {
            exchanges &+= 1
            exchangeNanoseconds &+= spent
        } else {
            partialNanoseconds &+= spent
        }
    }

    mutating func stop(from start: UInt64) {
        stops &+= 1
        stopNanoseconds &+= monotonicNow() &- start
    }
}

extension Controller {
    /// Every vCPU's exits and time inside KVM_RUN since the VM started.
    private var kvmRunTotals: (exits: UInt64, nanoseconds: UInt64) {
        machine.statistics.snapshot().reduce((UInt64(0), UInt64(0))) { total, table in
            table.values.reduce(total) { ($0.0 + $1.count, $0.1 + $1.nanoseconds) }
        }
    }

    func resetTiming() {
        let kvm = kvmRunTotals
        timing = VMMTiming()
        timing.kvmExitsAtReset = kvm.exits
        timing.kvmNanosecondsAtReset = kvm.nanoseconds
    }

    func timingReport() -> String {
        let kvm = kvmRunTotals
        let t = timing
        func ms(_ ns: UInt64) -> String { String(format: "%.3f ms", Double(ns) / 1e6) }
        func each(_ ns: UInt64, _ n: UInt64) -> String { n == 0 ? "" : String(format: " (%.1f us each)", Double(ns) / Double(n) / 1e3) }
        let kvmExits = kvm.exits &- t.kvmExitsAtReset, kvmNs = kvm.nanoseconds &- t.kvmNanosecondsAtReset
        return """
            since the last 'monitor timing reset': \(ms(monotonicNow() &- t.since)) wall
            gdb requests answered: \(t.exchanges), \(ms(t.exchangeNanoseconds)) in the VMM\(each(t.exchangeNanoseconds, t.exchanges)): from reading the request to handing the reply to the socket
            reads answered later (resumes) or not yet (part of a packet): \(ms(t.partialNanoseconds))
            stops handled: \(t.stops), \(ms(t.stopNanoseconds))\(each(t.stopNanoseconds, t.stops)): from the vCPU's stop to the stop reply handed to the socket
            KVM_RUN: \(kvmExits) exits, \(ms(kvmNs)) inside KVM_RUN\(each(kvmNs, kvmExits))

            """
    }
}
