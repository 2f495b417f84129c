import Testing
@testable import KVMRunLoop

private let P: UInt64 = 1, W: UInt64 = 2, U: UInt64 = 4, A: UInt64 = 0x20, D: UInt64 = 0x40, PS: UInt64 = 0x80
private let G: UInt64 = 0x100, NX: UInt64 = 1 << 63

/// `monitor info mem` and `info tlb` in QEMU's exact text (target/i386/monitor.c).
@Suite struct QEMUPageTablesTests {
    let memory = FakeMemory(size: 64 * MiB)

    @Test("paging off: QEMU's one line")
    func pagingOff() {
        let off = PagingState(cr0: 0x11, cr3: 0, cr4: 0, efer: 0)
        #expect(QEMUPageTables.infoMem(paging: off, memory: memory) == "PG disabled\n")
        #expect(QEMUPageTables.infoTLB(paging: off, memory: memory) == "PG disabled\n")
    }

    /// The identity map the multiboot demo builds (1 GiB of 2 MiB pages, the first accessed and
    /// dirty): QEMU 7.2 printed exactly these lines for it.
    @Test("4-level long mode: the multiboot demo's identity map as QEMU printed it")
    func longModeIdentityMap() throws {
        let pml4: UInt64 = 0x101000, pdpt: UInt64 = 0x102000, pd: UInt64 = 0x103000
        try memory.writeU64(pdpt | P | W, at: pml4)
        try memory.writeU64(pd | P | W, at: pdpt)
        for i in 0..<UInt64(512) {
            try memory.writeU64(i << 21 | P | W | PS | (i == 0 ? A | D : 0), at: pd + i * 8)
        }
        let paging = PagingState(cr0: 0x8000_0013, cr3: pml4, cr4: 0x620, efer: 0x500)
        #expect(QEMUPageTables.infoMem(paging: paging, memory: memory)
                == "0000000000000000-0000000040000000 0000000040000000 -rw\n")
        let tlb = QEMUPageTables.infoTLB(paging: paging, memory: memory).split(separator: "\n")
        #expect(tlb.count == 512)
        #expect(tlb.first == "0000000000000000: 0000000000000000 --PDA---W")
        #expect(tlb[1] == "0000000000200000: 0000000000200000 --P-----W")
        #expect(tlb.last == "000000003fe00000: 000000003fe00000 --P-----W")
    }

    @Test("permissions AND down the walk, runs split where they change, the upper half is sign-extended")
    func permissionsAndCanonicalAddresses() throws {
        let pml4: UInt64 = 0x10000, pdpt: UInt64 = 0x11000, pd: UInt64 = 0x12000, pt: UInt64 = 0x13000
        try memory.writeU64(pdpt | P | W | U, at: pml4 + 511 * 8)  // 0xffffff8000000000
        try memory.writeU64(pd | P | W | U, at: pdpt)
        try memory.writeU64(pt | P | U, at: pd)                     // read-only above the PTEs
        try memory.writeU64(0x5000 | P | W | U | G, at: pt)         // shows -r- (the PDE is read-only)
        try memory.writeU64(0x6000 | P | W | U | NX, at: pt + 8)
        try memory.writeU64(0x7000 | P | W, at: pt + 16)             // supervisor: --r-
        try memory.writeU64(0x40_0000 | P | W | U | PS, at: pd + 8)  // 2 MiB page, urw
        let paging = PagingState(cr0: 0x8000_0013, cr3: pml4, cr4: 0x20, efer: 0xD00)
        #expect(QEMUPageTables.infoMem(paging: paging, memory: memory) == """
            ffffff8000000000-ffffff8000002000 0000000000002000 ur-
            ffffff8000002000-ffffff8000003000 0000000000001000 -r-
            ffffff8000200000-ffffff8000400000 0000000000200000 urw

            """)
        #expect(QEMUPageTables.infoTLB(paging: paging, memory: memory) == """
            ffffff8000000000: 0000000000005000 -G-----UW
            ffffff8000001000: 0000000000006000 X------UW
            ffffff8000002000: 0000000000007000 --------W
            ffffff8000200000: 0000000000400000 --P----UW

            """)
    }

    @Test("32-bit paging with PSE, and PAE, as QEMU walks them")
    func thirtyTwoBitModes() throws {
        let pd: UInt64 = 0x20000, pt: UInt64 = 0x21000
        try memory.writeU32(UInt32(pt | P | W | U), at: pd)
        try memory.writeU32(UInt32(0x3000 | P | W | U), at: pt + 4)
        try memory.writeU32(UInt32(0x0080_0000 | P | W | PS), at: pd + 0x300 * 4)
        let legacy = PagingState(cr0: 0x8000_0011, cr3: pd, cr4: 0x10, efer: 0)
        #expect(QEMUPageTables.infoMem(paging: legacy, memory: memory) == """
            0000000000001000-0000000000002000 0000000000001000 urw
            00000000c0000000-00000000c0400000 0000000000400000 -rw

            """)
        #expect(QEMUPageTables.infoTLB(paging: legacy, memory: memory) == """
            0000000000001000: 0000000000003000 -------UW
            00000000c0000000: 0000000000800000 --P-----W

            """)
        let pdpt: UInt64 = 0x30000, paePD: UInt64 = 0x31000
        try memory.writeU64(paePD | P, at: pdpt + 3 * 8)
        try memory.writeU64(0x20_0000 | P | PS, at: paePD + 8)
        let pae = PagingState(cr0: 0x8000_0011, cr3: pdpt, cr4: 0x20, efer: 0)
        #expect(QEMUPageTables.infoMem(paging: pae, memory: memory)
                == "00000000c0200000-00000000c0400000 0000000000200000 -r-\n")
    }

    @Test("tables that point back at themselves end the listing")
    func selfReference() throws {
        let pml4: UInt64 = 0x40000
        // 16 entries pointing back at the table: 16^3 = 4096 tables below the root.
        for i in 0..<UInt64(16) { try memory.writeU64(pml4 | P | W, at: pml4 + i * 8) }
        let paging = PagingState(cr0: 0x8000_0013, cr3: pml4, cr4: 0x20, efer: 0x500)
        let tlb = QEMUPageTables.infoTLB(paging: paging, memory: memory)
        #expect(tlb.hasSuffix("(stopped after 4096 page tables: the tables refer back to themselves)\n"))
    }
}
