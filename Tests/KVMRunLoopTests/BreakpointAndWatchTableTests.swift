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

    /// BreakpointTable.CodeGuard: a guest write over a breakpoint planted before its code was
    /// mapped keeps the 0xCC before the guest's tables exist and while they map that code there;
    /// once they map the image's first code but not that code, or after they mapped it once,
    /// the page is something else now and the breakpoint retires.
    @Test("a write over a guarded breakpoint keeps the 0xCC while its code is there or not yet mapped, and retires it once the code is gone")
    func guardedBreakpointWrites() throws {
        let ram = try GuestRAM(size: 4 << 20)
        let traps = WatchTraps(ram: ram)
        let text: UInt64 = 0xFFFF_FFFF_8100_0000, initCode: UInt64 = 0xFFFF_FFFF_8120_0010, physical: UInt64 = 0x20_0010
        // PML4 0x10000 -> PDPT 0x11000 (entry 510) -> PD 0x12000: entry 8 maps _text at 0, entry 9 the init code at 2 MiB.
        func put(_ value: UInt64, at address: UInt64) throws {
            try ram.write((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }, at: address)
        }
        try put(0x11000 | 3, at: 0x10000 + 511 * 8)
        try put(0x12000 | 3, at: 0x11000 + 510 * 8)
        try put(0x00_0000 | 0x83, at: 0x12000 + 8 * 8)
        try put(0x20_0000 | 0x83, at: 0x12000 + 9 * 8)
        let kernelTables = PagingState(cr0: 0x8000_0011, cr3: 0x10000, cr4: 0x20, efer: 0x500)
        let pagingOff = PagingState(cr0: 0x11, cr3: 0, cr4: 0, efer: 0)
        let table = BreakpointTable()
        func plant(seenMapped: Bool) throws {
            _ = table.insert(virtual: initCode, physical: physical, original: 0x55)
            try ram.write([0xCC], at: physical)
            table.setGuard(BreakpointTable.CodeGuard(virtual: initCode, reference: text, seenMapped: seenMapped), atPhysical: physical)
        }
        func write(_ byte: UInt8, _ paging: PagingState) throws -> UInt8 {
            _ = traps.serve(MMIOAccess(address: physical, length: 1, isWrite: true, data: UInt64(byte)), planted: table,
                            paging: { paging })
            return try ram.read(at: physical, count: 1)[0]
        }
        try plant(seenMapped: false)
        // A loader writing the code before the kernel's tables exist.
        #expect(try write(0x66, pagingOff) == 0xCC)
        #expect(table.original(atPhysical: physical) == 0x66)
        // The kernel patching its own text, mapped here: and now it has been seen mapped.
        #expect(try write(0x77, kernelTables) == 0xCC)
        #expect(table.original(atPhysical: physical) == 0x77)
        #expect(table.codeGuard(atPhysical: physical)?.seenMapped == true)
        // Unmapped after that (paging off stands for any tables without it): the page is data now.
        #expect(try write(0x88, pagingOff) == 0x88)
        #expect(table.original(atPhysical: physical) == nil && table.isRetired(virtual: initCode))
        #expect(table.physical(forVirtual: initCode) == nil)
        // Never seen mapped, but the kernel's tables map _text and not the init code: freed.
        table.clearRetired()
        try plant(seenMapped: false)
        try put(0, at: 0x12000 + 9 * 8)
        #expect(try write(0x99, kernelTables) == 0x99)
        #expect(table.isRetired(virtual: initCode))
    }
}
