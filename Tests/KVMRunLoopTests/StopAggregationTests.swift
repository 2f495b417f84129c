import Testing
@testable import KVMRunLoop

/// All-stop bookkeeping: simultaneous stops are each reported once, none lost, fairly.
@Suite("stop aggregation")
struct StopAggregationTests {
    @Test("breakpoint, watch, step and crash at once: the crash first, then each once, round robin")
    func simultaneousStops() {
        var book = StopAggregator(vcpuCount: 4)
        book.record(.softwareBreakpoint, vcpu: 0)
        book.record(.watchpoint(.write, address: 0x10), vcpu: 1)
        book.record(.stepped, vcpu: 2)
        book.record(.crash(Crash(.tripleFault, "tf")), vcpu: 3)
        book.record(.interrupted, vcpu: 0)
        book.record(.halted, vcpu: 1)
        var told: [Int] = []
        while let (vcpu, _) = book.takeNext() { told.append(vcpu) }
        #expect(told == [3, 0, 1, 2])
        #expect(!book.hasPending)
    }

    @Test("the guest's end goes before everything")
    func exitFirst() {
        var book = StopAggregator(vcpuCount: 3)
        book.record(.crash(Crash(.tripleFault, "tf")), vcpu: 0)
        book.record(.exit(status: 3), vcpu: 2)
        #expect(book.takeNext()?.stop == .exit(status: 3))
    }

    @Test("every vCPU hitting a breakpoint every time: each is reported in turn")
    func roundRobin() {
        var book = StopAggregator(vcpuCount: 4)
        var counts = [0, 0, 0, 0]
        for _ in 0..<200 {
            for vcpu in 0..<4 where book.pending[vcpu] == nil { book.record(.softwareBreakpoint, vcpu: vcpu) }
            if let (vcpu, _) = book.takeNext() { counts[vcpu] += 1 }
        }
        #expect(counts == [50, 50, 50, 50])
    }

    @Test("only resumed vCPUs report; a stop whose breakpoint is gone is dropped")
    func candidatesAndRevalidation() {
        var book = StopAggregator(vcpuCount: 4)
        book.record(.softwareBreakpoint, vcpu: 1)
        book.record(.hardwareBreakpoint(slot: 0), vcpu: 2)
        #expect(book.takeNext(among: [0, 3]) == nil)
        book.revalidate { vcpu, _ in vcpu != 1 }
        #expect(book.pending[1] == nil)
        #expect(book.takeNext(among: [2])?.vcpu == 2)
        book.record(.interrupted, vcpu: 0)
        #expect(!book.hasPending)
    }

    @Test("resumes start with the vCPU after the one reported last")
    func resumeOrder() {
        var book = StopAggregator(vcpuCount: 4)
        #expect(book.resumeOrder([3, 1, 0, 2]) == [0, 1, 2, 3])
        book.record(.stepped, vcpu: 1)
        _ = book.takeNext()
        #expect(book.resumeOrder(0..<4) == [2, 3, 0, 1])
        book.reported(vcpu: 3)
        #expect(book.resumeOrder([1, 3]) == [1, 3])
    }
}
