import Testing
@testable import KVMRunLoop

/// The debugger's bookkeeping that needs no KVM: planted software breakpoints and the
/// watchpoint hit test.
@Suite("breakpoint and watch tables")
struct BreakpointAndWatchTableTests {
    @Test("a breakpoint keeps its original byte; aliases share one planted byte")
    func breakpointAliases() {
        let table = BreakpointTable()
        #expect(table.insert(virtual: 0xFFFF_8000_0010_0000, physical: 0x10_0000, original: 0x55))
        // A second virtual alias of the same physical byte plants nothing new.
        #expect(!table.insert(virtual: 0x10_0000, physical: 0x10_0000, original: 0xCC))
        #expect(table.contains(physical: 0x10_0000))
        #expect(table.original(atPhysical: 0x10_0000) == 0x55)
        // Removing one alias keeps the byte planted for the other.
        #expect(table.remove(virtual: 0xFFFF_8000_0010_0000) == nil)
        #expect(table.contains(physical: 0x10_0000))
        let restored = table.remove(virtual: 0x10_0000)
        #expect(restored?.physical == 0x10_0000)
        #expect(restored?.original == 0x55)
        #expect(!table.contains(physical: 0x10_0000))
        #expect(table.remove(virtual: 0x1234) == nil)
    }

    @Test("a write over a planted byte changes what is under the breakpoint")
    func updateOriginal() {
        let table = BreakpointTable()
        _ = table.insert(virtual: 0x1000, physical: 0x1000, original: 0x90)
        table.updateOriginal(atPhysical: 0x1000, to: 0xC3)
        table.updateOriginal(atPhysical: 0x2000, to: 0xC3)  // not planted: ignored
        #expect(table.original(atPhysical: 0x1000) == 0xC3)
        #expect(table.original(atPhysical: 0x2000) == nil)
        #expect(table.plantedPhysical == [0x1000: 0xC3])
    }

    @Test("watch hits match kind and overlap, and report the guest-virtual address accessed")
    func watchHits() throws {
        let ram = try GuestRAM(size: 1 << 20)
        let traps = WatchTraps(ram: ram)
        try traps.insert(.write, virtual: 0xFFFF_0000_0000_2004, length: 4,
                         pieces: [(virtual: 0xFFFF_0000_0000_2004, physical: 0x2004, length: 4)])
        try traps.insert(.read, virtual: 0x3000, length: 8, pieces: [(virtual: 0x3000, physical: 0x3000, length: 8)])
        try traps.insert(.access, virtual: 0x4ffe, length: 4,
                         pieces: [(virtual: 0x4ffe, physical: 0x4ffe, length: 2), (virtual: 0x5000, physical: 0x9000, length: 2)])
        // A write that starts before the watched bytes reports the first watched byte it touches.
        #expect(traps.hit(physical: 0x2000, length: 8, isWrite: true)! == (.write, 0xFFFF_0000_0000_2004))
        #expect(traps.hit(physical: 0x2000, length: 4, isWrite: true) == nil)
        #expect(traps.hit(physical: 0x2004, length: 4, isWrite: false) == nil)
        #expect(traps.hit(physical: 0x3007, length: 1, isWrite: false)! == (.read, 0x3007))
        #expect(traps.hit(physical: 0x3007, length: 1, isWrite: true) == nil)
        // An access watch split over two physical pages matches on either piece.
        #expect(traps.hit(physical: 0x9001, length: 1, isWrite: true)! == (.access, 0x5001))
        #expect(traps.hit(physical: 0x4ffe, length: 1, isWrite: false)! == (.access, 0x4ffe))
        try traps.remove(.read, virtual: 0x3000, length: 8)
        #expect(traps.hit(physical: 0x3000, length: 8, isWrite: false) == nil)
        #expect(!traps.isEmpty)
    }
}
