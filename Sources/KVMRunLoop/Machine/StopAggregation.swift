/// All-stop bookkeeping, as gdbserver keeps it: every vCPU that stopped for a reason gdb must
/// hear about keeps that stop pending until it is reported, one per resume, so that stops which
/// happen at the same moment on several vCPUs are all told, none lost. Which one goes first: the
/// vCPU reported least often so far, ties round robin from the one after the vCPU reported
/// last, so a vCPU the host schedules first cannot starve the others. Pure: the controller
/// feeds it, tests drive it directly.
public struct StopAggregator: Sendable, Equatable {
    public private(set) var pending: [VCPUStop?]
    /// The vCPU whose stop gdb heard of last.
    public private(set) var lastReported: Int
    /// Stops told to gdb per vCPU.
    public private(set) var reports: [Int]

    public init(vcpuCount: Int) {
        pending = Array(repeating: nil, count: vcpuCount)
        lastReported = vcpuCount - 1
        reports = Array(repeating: 0, count: vcpuCount)
    }

    /// Least reported first, then round robin after the vCPU reported last.
    private func fairOrder(_ vcpus: some Sequence<Int>) -> [Int] {
        let count = pending.count
        return vcpus.sorted {
            reports[$0] != reports[$1] ? reports[$0] < reports[$1]
                : ($0 - lastReported - 1 + count) % count < ($1 - lastReported - 1 + count) % count
        }
    }

    /// Keeps a stop gdb must hear about. A vCPU with a pending stop is not resumed, so it has
    /// at most one; should a second come anyway, the first stays (it happened first).
    public mutating func record(_ stop: VCPUStop, vcpu: Int) {
        guard stop.isReportable, pending[vcpu] == nil else { return }
        pending[vcpu] = stop
    }

    public var hasPending: Bool { pending.contains { $0 != nil } }

    /// Takes the stop to report now, among the vCPUs in `candidates` (all when nil): the guest's
    /// end first, then a crash, then round robin after the vCPU reported last.
    public mutating func takeNext(among candidates: Set<Int>? = nil) -> (vcpu: Int, stop: VCPUStop)? {
        let order = fairOrder(pending.indices.filter { pending[$0] != nil && (candidates?.contains($0) ?? true) })
        func isExit(_ s: VCPUStop?) -> Bool { if case .exit? = s { return true }; return false }
        func isCrash(_ s: VCPUStop?) -> Bool { if case .crash? = s { return true }; return false }
        guard let vcpu = order.first(where: { isExit(pending[$0]) }) ?? order.first(where: { isCrash(pending[$0]) })
            ?? order.first else { return nil }
        let stop = pending[vcpu]!
        pending[vcpu] = nil
        reported(vcpu: vcpu)
        return (vcpu, stop)
    }

    /// Marks a stop as told to gdb without it being pending (a stop decided elsewhere, such as
    /// Ctrl-C reported on the current vCPU), for the round robin.
    public mutating func reported(vcpu: Int) {
        lastReported = vcpu
        reports[vcpu] += 1
    }

    /// Drops the pending stops `stillValid` rejects: a breakpoint stop whose breakpoint gdb has
    /// removed (the vCPU then simply executes the original instruction), or one whose vCPU gdb
    /// moved elsewhere.
    public mutating func revalidate(_ stillValid: (Int, VCPUStop) -> Bool) {
        for vcpu in pending.indices {
            if let stop = pending[vcpu], !stillValid(vcpu, stop) { pending[vcpu] = nil }
        }
    }

    public mutating func discard(vcpu: Int) { pending[vcpu] = nil }

    public mutating func discardAll() {
        for i in pending.indices { pending[i] = nil }
    }

    /// The order to resume vCPUs in, the same as the reporting order: the vCPUs reported least
    /// get the host's CPUs first.
    public func resumeOrder(_ vcpus: some Sequence<Int>) -> [Int] { fairOrder(vcpus) }
}
