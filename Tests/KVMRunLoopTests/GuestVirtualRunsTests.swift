import Synchronization
import Testing
@testable import KVMRunLoop

/// Counts the page walker's loads, to show one walk per page rather than per byte or chunk.
private final class CountingMemory: PhysicalMemory {
    let inner: FakeMemory
    let loads = Atomic<Int>(0)
    init(_ inner: FakeMemory) { self.inner = inner }
    var size: UInt64 { inner.size }
    func read(at address: UInt64, count: Int) throws(MemoryError) -> [UInt8] {
        loads.add(1, ordering: .relaxed)
        return try inner.read(at: address, count: count)
    }
    func write(_ bytes: [UInt8], at address: UInt64) throws(MemoryError) { try inner.write(bytes, at: address) }
}

@Suite struct GuestVirtualRunsTests {
    let memory = FakeMemory(size: 64 * MiB)

    @Test func contiguousPagesMergeAndOthersSplit() throws {
        let paging = try PageWalkerTests.buildLongMode(memory)
        // va 0x10000-0x12FFF -> pa 0x100000-0x102FFF (contiguous), va 0x13000 -> pa 0x3000000.
        #expect(GuestVirtualRuns.runs(0x10800, count: 0x3000, paging: paging, memory: memory) == [
            PhysicalRun(physical: 0x10_0800, offset: 0, length: 0x2800),
            PhysicalRun(physical: 0x300_0000, offset: 0x2800, length: 0x800),
        ])
        // va 0x14000 is not mapped: the runs cover the prefix before it.
        let runs = GuestVirtualRuns.runs(0x12000, count: 0x4000, paging: paging, memory: memory)
        #expect(runs == [PhysicalRun(physical: 0x10_2000, offset: 0, length: 0x1000),
                         PhysicalRun(physical: 0x300_0000, offset: 0x1000, length: 0x1000)])
        #expect(GuestVirtualRuns.covered(runs) == 0x2000)
        #expect(GuestVirtualRuns.runs(0x14000, count: 1, paging: paging, memory: memory) == [])
        #expect(GuestVirtualRuns.runs(0x10000, count: 0, paging: paging, memory: memory) == [])
    }

    @Test func oneWalkPerLargePage() throws {
        let counting = CountingMemory(memory)
        let paging = try PageWalkerTests.buildLongMode(memory)
        // va 2 MiB..4 MiB is one 2 MiB page at pa 6 MiB; va 4 MiB is not mapped.
        let runs = GuestVirtualRuns.runs(0x20_0100, count: 0x20_0000, paging: paging, memory: counting)
        #expect(runs == [PhysicalRun(physical: 0x60_0100, offset: 0, length: 0x1F_FF00)])
        // Two walks (the page, then the unmapped address after it) of at most 4 levels each,
        // where a walk per 4 KiB would have taken 512.
        #expect(counting.loads.load(ordering: .relaxed) <= 8)
    }

    @Test func pagesOutsideRAMEndTheRuns() throws {
        let paging = try PageWalkerTests.buildLongMode(memory)
        // va 1 GiB maps a 1 GiB page at pa 2 GiB, beyond this 64 MiB of RAM.
        #expect(GuestVirtualRuns.runs(0x4000_0000, count: 16, paging: paging, memory: memory) == [])
    }

    @Test func physicalAddressesStopAtTheEndOfRAM() {
        #expect(GuestVirtualRuns.runs(64 * MiB - 0x10, count: 0x100, paging: nil, memory: memory)
            == [PhysicalRun(physical: 64 * MiB - 0x10, offset: 0, length: 0x10)])
        #expect(GuestVirtualRuns.runs(64 * MiB, count: 1, paging: nil, memory: memory) == [])
        #expect(GuestVirtualRuns.runs(UInt64.max - 3, count: 16, paging: nil, memory: memory) == [])
        // Paging off: identity, merged across 4 KiB steps.
        let off = PagingState(cr0: 0x11, cr3: 0, cr4: 0, efer: 0)
        #expect(GuestVirtualRuns.runs(0xFF0, count: 0x3000, paging: off, memory: memory)
            == [PhysicalRun(physical: 0xFF0, offset: 0, length: 0x3000)])
    }

    @Test func copiesWithoutArrays() throws {
        try memory.writeU64(0x1122_3344_5566_7788, at: 0x5000)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        try memory.copy(at: 0x5000, count: 8, to: buffer.baseAddress!)
        #expect(Array(buffer) == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
        #expect(throws: MemoryError.self) { try memory.copy(at: 64 * MiB - 4, count: 8, to: buffer.baseAddress!) }
        #expect(try memory.readU32(at: 0x5004) == 0x1122_3344)
    }
}
