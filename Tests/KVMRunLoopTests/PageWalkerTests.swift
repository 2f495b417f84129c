import Testing
@testable import KVMRunLoop

private let P: UInt64 = 1, W: UInt64 = 2, U: UInt64 = 4, PS: UInt64 = 0x80, NX: UInt64 = 1 << 63

private func entry32(_ memory: FakeMemory, table: UInt64, index: UInt64, _ value: UInt64) throws {
    try memory.writeU32(UInt32(value), at: table + index * 4)
}

private func entry64(_ memory: FakeMemory, table: UInt64, index: UInt64, _ value: UInt64) throws {
    try memory.writeU64(value, at: table + index * 8)
}

@Suite struct PageWalkerTests {
    let memory = FakeMemory(size: 64 * MiB)

    @Test func pagingOffIsIdentity() {
        let paging = PagingState(cr0: 0x11, cr3: 0, cr4: 0, efer: 0)
        #expect(paging.mode == .disabled)
        #expect(PageWalker.translate(0x12345, paging: paging, memory: memory)
            == Translation(physical: 0x12345, pageSize: 4096, writable: true, user: true, executable: true))
        #expect(PageWalker.mappings(paging: paging, memory: memory)
            == [MappedRange(virtualStart: 0, physicalStart: 0, size: 64 * MiB, writable: true, user: true, executable: true)])
    }

    @Test func legacy32() throws {
        let pd: UInt64 = 0x10000, pt: UInt64 = 0x11000
        try entry32(memory, table: pd, index: 1, pt | P | W | U)  // va 0x00400000..
        try entry32(memory, table: pt, index: 0, 0x5000 | P | U)
        try entry32(memory, table: pt, index: 1, 0x7000 | P | W | U)
        // A PS entry: 4 MiB page with PSE, with PSE-36 bits 0x3 (physical bits 33:32).
        try entry32(memory, table: pd, index: 0x300, 0x0080_0000 | 0x3 << 13 | P | W | PS)
        let noPSE = PagingState(cr0: 0x8000_0011, cr3: pd | 0x18, cr4: 0, efer: 0)
        let pse = PagingState(cr0: 0x8000_0011, cr3: pd, cr4: 0x10, efer: 0)
        #expect(noPSE.mode == .legacy32)

        #expect(PageWalker.translate(0x0040_0123, paging: noPSE, memory: memory)
            == Translation(physical: 0x5123, pageSize: 4096, writable: false, user: true, executable: true))
        #expect(PageWalker.translate(0x0040_1FFF, paging: noPSE, memory: memory)?.physical == 0x7FFF)
        #expect(PageWalker.translate(0x0040_2000, paging: noPSE, memory: memory) == nil)  // PTE not present
        #expect(PageWalker.translate(0x0080_0000, paging: noPSE, memory: memory) == nil)  // PDE not present
        #expect(PageWalker.translate(0x1_0040_0000, paging: noPSE, memory: memory) == nil)  // above 4 GiB

        #expect(PageWalker.translate(0xC012_3456, paging: pse, memory: memory)
            == Translation(physical: 0x3_0092_3456, pageSize: 4 * MiB, writable: true, user: false, executable: true))
        // Without PSE the PS bit is ignored: the entry points at a page table (here all zero).
        #expect(PageWalker.translate(0xC012_3456, paging: noPSE, memory: memory) == nil)
    }

    @Test func pae() throws {
        let pdpt: UInt64 = 0x10020, pd: UInt64 = 0x11000, pt: UInt64 = 0x12000
        try entry64(memory, table: pdpt, index: 3, pd | P)
        try entry64(memory, table: pd, index: 0, pt | P | W)
        try entry64(memory, table: pt, index: 5, 0x1234_5000 | P | W | NX)
        try entry64(memory, table: pd, index: 1, 0x4_0020_0000 | P | PS | 0x1000)  // 2 MiB, PAT bit set
        let paging = PagingState(cr0: 0x8000_0011, cr3: pdpt, cr4: 0x20, efer: 0)
        let nxe = PagingState(cr0: 0x8000_0011, cr3: pdpt, cr4: 0x20, efer: 0x800)
        #expect(paging.mode == .pae)

        #expect(PageWalker.translate(0xC000_5ABC, paging: paging, memory: memory)
            == Translation(physical: 0x1234_5ABC, pageSize: 4096, writable: true, user: false, executable: true))
        #expect(PageWalker.translate(0xC000_5ABC, paging: nxe, memory: memory)?.executable == false)
        #expect(PageWalker.translate(0xC03F_FFFF, paging: paging, memory: memory)
            == Translation(physical: 0x4_003F_FFFF, pageSize: 2 * MiB, writable: false, user: false, executable: true))
        #expect(PageWalker.translate(0x4000_0000, paging: paging, memory: memory) == nil)  // PDPTE 1 not present
    }

    /// 4-level: a 1 GiB page, a 2 MiB page and 4 KiB pages, in both halves of the address space.
    static func buildLongMode(_ memory: FakeMemory, fiveLevel: Bool = false) throws -> PagingState {
        let pml5: UInt64 = 0x20000, pml4: UInt64 = 0x10000, pdpt: UInt64 = 0x11000, pd: UInt64 = 0x12000
        let pt: UInt64 = 0x13000, highPdpt: UInt64 = 0x14000
        if fiveLevel {
            try entry64(memory, table: pml5, index: 0, pml4 | P | W | U)
            try entry64(memory, table: pml5, index: 511, pml4 | P | W | U)
        }
        try entry64(memory, table: pml4, index: 0, pdpt | P | W | U)
        try entry64(memory, table: pdpt, index: 1, 0x8000_0000 | P | W | PS)          // va 1 GiB -> pa 2 GiB, 1 GiB page
        try entry64(memory, table: pdpt, index: 0, pd | P | W | U)
        try entry64(memory, table: pd, index: 1, 0x60_0000 | P | W | U | PS | NX)   // va 2 MiB -> 6 MiB, 2 MiB page
        try entry64(memory, table: pd, index: 0, pt | P | W | U)
        for i in 0..<UInt64(3) { try entry64(memory, table: pt, index: 16 + i, (0x100 + i) * 0x1000 | P | W | U) }
        try entry64(memory, table: pt, index: 19, 0x300_0000 | P | U)               // read-only, elsewhere
        try entry64(memory, table: pml4, index: 256, highPdpt | P | W)               // va 0xFFFF8000_00000000
        try entry64(memory, table: highPdpt, index: 0, 0x4000_0000 | P | W | PS)
        let cr4: UInt64 = fiveLevel ? 0x1020 : 0x20
        return PagingState(cr0: 0x8000_0011, cr3: (fiveLevel ? pml5 : pml4) | 0x8, cr4: cr4, efer: 0xD00)
    }

    @Test(arguments: [false, true])
    func longMode(fiveLevel: Bool) throws {
        let paging = try Self.buildLongMode(memory, fiveLevel: fiveLevel)
        #expect(paging.mode == (fiveLevel ? .longMode5 : .longMode4))
        func t(_ va: UInt64) -> Translation? { PageWalker.translate(va, paging: paging, memory: memory) }

        #expect(t(0x4000_0000 + 0x1234_5678)
            == Translation(physical: 0x8000_0000 + 0x1234_5678, pageSize: GiB, writable: true, user: false, executable: true))
        #expect(t(0x20_1234) == Translation(physical: 0x60_1234, pageSize: 2 * MiB, writable: true, user: true, executable: false))
        #expect(t(0x1_0FFF) == Translation(physical: 0x10_0FFF, pageSize: 4096, writable: true, user: true, executable: true))
        #expect(t(0x1_3000)?.writable == false)
        #expect(t(0x1_4000) == nil)
        #expect(t(0x8000_0000) == nil)

        let upperHalf: UInt64 = fiveLevel ? 0xFFFF_8000_0000_0000 | 0x00FF_0000_0000_0000 : 0xFFFF_8000_0000_0000
        #expect(t(upperHalf + 0x42) == Translation(physical: 0x4000_0042, pageSize: GiB, writable: true, user: false,
                                                   executable: true))
        if fiveLevel {
            // 57-bit canonical: bits 63:56 all ones.
            #expect(t(0x0100_0000_0000_0000) == nil)  // non-canonical in 5-level mode
        } else {
            #expect(t(0x0000_8000_0000_0000) == nil)  // non-canonical
            #expect(t(0xFFFF_0000_0000_0000) == nil)  // canonical only with LA57
        }
    }

    @Test func fiveLevelUsesTheTopLevel() throws {
        let paging = try Self.buildLongMode(memory, fiveLevel: true)
        // PML5 index 511, PML4 index 256: va = sign-extended (511 << 48 | 256 << 39).
        let va: UInt64 = 0xFFFF_8000_0000_0000 | (511 << 48)
        #expect(PageWalker.translate(va + 7, paging: paging, memory: memory)?.physical == 0x4000_0007)
        // PML5 index 1 is not present.
        #expect(PageWalker.translate(1 << 48, paging: paging, memory: memory) == nil)
    }

    @Test func noExecuteNeedsNXE() throws {
        var paging = try Self.buildLongMode(memory)
        paging.efer = 0x500  // LME|LMA without NXE
        #expect(PageWalker.translate(0x20_0000, paging: paging, memory: memory)?.executable == true)
    }

    @Test func tablesOutsideRAM() throws {
        let paging = PagingState(cr0: 0x8000_0011, cr3: 128 * MiB, cr4: 0x20, efer: 0x500)
        #expect(PageWalker.translate(0x1000, paging: paging, memory: memory) == nil)
        #expect(PageWalker.mappings(paging: paging, memory: memory) == [])
        try entry64(memory, table: 0x10000, index: 0, 0x7FFF_F000 | P)  // PDPT beyond RAM
        let dangling = PagingState(cr0: 0x8000_0011, cr3: 0x10000, cr4: 0x20, efer: 0x500)
        #expect(PageWalker.translate(0x1000, paging: dangling, memory: memory) == nil)
    }

    @Test func psInPML4IsInvalid() throws {
        try entry64(memory, table: 0x10000, index: 0, 0x0 | P | W | PS)
        let paging = PagingState(cr0: 0x8000_0011, cr3: 0x10000, cr4: 0x20, efer: 0x500)
        #expect(PageWalker.translate(0x1000, paging: paging, memory: memory) == nil)
    }

    @Test func mappingsMergeRuns() throws {
        let paging = try Self.buildLongMode(memory)
        let ranges = PageWalker.mappings(paging: paging, memory: memory)
        #expect(ranges == [
            MappedRange(virtualStart: 0x1_0000, physicalStart: 0x10_0000, size: 0x3000, writable: true, user: true, executable: true),
            MappedRange(virtualStart: 0x1_3000, physicalStart: 0x300_0000, size: 0x1000, writable: false, user: true, executable: true),
            MappedRange(virtualStart: 0x20_0000, physicalStart: 0x60_0000, size: 2 * MiB, writable: true, user: true, executable: false),
            MappedRange(virtualStart: 0x4000_0000, physicalStart: 0x8000_0000, size: GiB, writable: true, user: false, executable: true),
            MappedRange(virtualStart: 0xFFFF_8000_0000_0000, physicalStart: 0x4000_0000, size: GiB, writable: true, user: false, executable: true),
        ])
        #expect(PageWalker.mappings(paging: paging, memory: memory, limit: 2) == Array(ranges.prefix(2)))
        #expect(PageWalker.mappings(paging: paging, memory: memory, limit: 0) == [])
    }

    @Test func mappingsLegacy32() throws {
        let pd: UInt64 = 0x10000, pt: UInt64 = 0x11000
        try entry32(memory, table: pd, index: 0, pt | P | W)
        for i in 0..<UInt64(1024) { try entry32(memory, table: pt, index: i, i * 4096 | P | W) }
        try entry32(memory, table: pd, index: 1, 0x40_0000 | P | W | PS)  // continues the run with PSE
        let paging = PagingState(cr0: 0x8000_0011, cr3: pd, cr4: 0x10, efer: 0)
        #expect(PageWalker.mappings(paging: paging, memory: memory)
            == [MappedRange(virtualStart: 0, physicalStart: 0, size: 8 * MiB, writable: true, user: false, executable: true)])
    }

    /// Every PML4, PDPT, PD and PT entry pointing at one self-referencing table describes 2^36
    /// pages; the walk must give up in bounded time instead.
    @Test(.timeLimit(.minutes(1)))
    func selfReferencingTablesTerminate() throws {
        let table: UInt64 = 0x10000
        var bytes: [UInt8] = []
        for _ in 0..<512 { bytes += le(table | P | W, 8) }
        try memory.write(bytes, at: table)
        let paging = PagingState(cr0: 0x8000_0011, cr3: table, cr4: 0x20, efer: 0x500)
        let ranges = PageWalker.mappings(paging: paging, memory: memory)
        #expect(!ranges.isEmpty)
        #expect(ranges.count <= 4096)
    }

    /// Upper levels fanning out to the same empty page table: 2^36 entries to visit and no
    /// mapping to stop at; the entry budget ends the walk.
    @Test(.timeLimit(.minutes(1)))
    func hugeEmptyFanOutTerminates() throws {
        let pml4: UInt64 = 0x10000, pdpt: UInt64 = 0x11000, pd: UInt64 = 0x12000, pt: UInt64 = 0x13000
        for (table, next) in [(pml4, pdpt), (pdpt, pd), (pd, pt)] {
            var bytes: [UInt8] = []
            for _ in 0..<512 { bytes += le(next | P | W, 8) }
            try memory.write(bytes, at: table)
        }
        let paging = PagingState(cr0: 0x8000_0011, cr3: pml4, cr4: 0x20, efer: 0x500)
        #expect(PageWalker.mappings(paging: paging, memory: memory) == [])
    }

    /// The same fan-out onto a full page table: 2^36 mapped pages in 2^27 runs. With no range
    /// limit, the entry budget still ends the walk (a small one here, to keep the test fast).
    @Test(.timeLimit(.minutes(1)))
    func entryBudgetEndsTheWalk() throws {
        let pml4: UInt64 = 0x10000, pdpt: UInt64 = 0x11000, pd: UInt64 = 0x12000, pt: UInt64 = 0x13000
        for (table, next) in [(pml4, pdpt), (pdpt, pd), (pd, pt)] {
            var bytes: [UInt8] = []
            for _ in 0..<512 { bytes += le(next | P | W, 8) }
            try memory.write(bytes, at: table)
        }
        var bytes: [UInt8] = []
        for i in 0..<UInt64(512) { bytes += le(i << 12 | P | W, 8) }
        try memory.write(bytes, at: pt)
        let paging = PagingState(cr0: 0x8000_0011, cr3: pml4, cr4: 0x20, efer: 0x500)
        let ranges = PageWalker.mappings(paging: paging, memory: memory, limit: .max, entryBudget: 1 << 16)
        #expect(ranges.count > 64 && ranges.count <= (1 << 16) / 512)
        #expect(ranges.dropLast().allSatisfy { $0.size == 2 * MiB && $0.physicalStart == 0 })
    }
}
