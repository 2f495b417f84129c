import Testing
@testable import KVMRunLoop

/// The memory-slot layout the watch traps ask KVM for: pages with only write watches become
/// read-only slots (adjacent ones merged), pages with a read or access watch leave the slots,
/// and page-table pages stay mapped. No VM is attached, so nothing reaches KVM.
@Suite struct WatchTrapLayoutTests {
    typealias Slot = WatchTraps.Slot
    let size: UInt64 = 64 << 12
    let traps: WatchTraps

    init() throws { traps = WatchTraps(ram: try GuestRAM(size: 64 << 12)) }

    func watch(_ kind: WatchKind, physical: UInt64, length: Int) throws {
        try traps.insert(kind, virtual: physical + 0x4000_0000, length: length,
                         pieces: [(virtual: physical + 0x4000_0000, physical: physical, length: length)])
    }

    var layout: [Slot] { traps.desiredLayout(traps.pageModes()) }

    @Test func noWatchesIsOneSlot() {
        #expect(traps.pageModes().isEmpty)
        #expect(layout == [Slot(start: 0, size: size, readOnly: false)])
    }

    @Test func writeWatchMakesItsPageReadOnly() throws {
        try watch(.write, physical: 0x5010, length: 4)
        #expect(traps.pageModes() == [5: .readOnly])
        #expect(layout == [Slot(start: 0, size: 0x5000, readOnly: false),
                           Slot(start: 0x5000, size: 0x1000, readOnly: true),
                           Slot(start: 0x6000, size: size - 0x6000, readOnly: false)])
    }

    @Test func readAndAccessWatchesUnmapTheirPage() throws {
        try watch(.read, physical: 0x3000, length: 1)
        try watch(.access, physical: 0x8FFF, length: 1)
        #expect(traps.pageModes() == [3: .unmapped, 8: .unmapped])
        #expect(layout == [Slot(start: 0, size: 0x3000, readOnly: false),
                           Slot(start: 0x4000, size: 0x4000, readOnly: false),
                           Slot(start: 0x9000, size: size - 0x9000, readOnly: false)])
    }

    @Test func readWatchWinsOverWriteWatchOnOnePage() throws {
        try watch(.write, physical: 0x7000, length: 8)
        try watch(.read, physical: 0x7100, length: 8)
        try watch(.write, physical: 0x7200, length: 8)
        #expect(traps.pageModes() == [7: .unmapped])
    }

    @Test func adjacentReadOnlyPagesMergeAndAPageStraddleCountsBoth() throws {
        // 8 bytes across the 0x10000 boundary, and the page after: one read-only slot of three pages.
        try watch(.write, physical: 0xFFFC, length: 8)
        try watch(.write, physical: 0x11000, length: 4)
        #expect(traps.pageModes() == [0xF: .readOnly, 0x10: .readOnly, 0x11: .readOnly])
        #expect(layout == [Slot(start: 0, size: 0xF000, readOnly: false),
                           Slot(start: 0xF000, size: 0x3000, readOnly: true),
                           Slot(start: 0x12000, size: size - 0x12000, readOnly: false)])
    }

    @Test func firstAndLastPagesLeaveNoEmptySlot() throws {
        try watch(.write, physical: 0, length: 1)
        try watch(.access, physical: size - 1, length: 1)
        #expect(layout == [Slot(start: 0, size: 0x1000, readOnly: true),
                           Slot(start: 0x1000, size: size - 0x2000, readOnly: false)])
    }

    @Test func pagesBeyondRAMAreIgnored() {
        #expect(traps.desiredLayout([64: .unmapped, 100: .readOnly]) == [Slot(start: 0, size: size, readOnly: false)])
    }

    @Test func pageTablePagesStayMappedAndAreStepped() throws {
        try watch(.write, physical: 0x1008, length: 8)
        try watch(.read, physical: 0x2000, length: 8)
        try watch(.write, physical: 0x6000, length: 4)
        // No VM is attached: apply records the table pages and stops short of KVM.
        try traps.apply(tablePages: [1, 2, 3])
        #expect(traps.pageModes() == [6: .readOnly])
        #expect(traps.needsStepping)
        try traps.apply(tablePages: [3])
        #expect(traps.pageModes() == [1: .readOnly, 2: .unmapped, 6: .readOnly])
        #expect(!traps.needsStepping)
    }

    @Test func removingTheLastWatchRestoresOneSlot() throws {
        try watch(.access, physical: 0x4000, length: 2)
        try traps.remove(.access, virtual: 0x4000_4000, length: 2)
        #expect(traps.isEmpty)
        #expect(layout == [Slot(start: 0, size: size, readOnly: false)])
    }
}
