/// The guest's page tables as QEMU's monitor lists them: `info mem` (runs of equal user/write
/// permission) and `info tlb` (every leaf entry with its flags), byte for byte as
/// target/i386/monitor.c prints them, because tools parse that text (pwndbg's kernel vmmap
/// reads `monitor info mem`, GEF's memory map falls back to it).
///
/// QEMU's quirks are kept where they show in the output: the size column is sign-extended like
/// the addresses, a range that reaches the top of the lower half ends at its canonical form,
/// and `info tlb` masks 32-bit 4 MiB and PAE 2 MiB pages with QEMU's masks. QEMU's 5-level
/// `info mem` skips every present entry (an inverted test); here 5-level tables are listed
/// as 4-level ones are.
public enum QEMUPageTables {
    /// QEMU's text for paging off, the whole output of both commands then.
    public static let pagingDisabled = "PG disabled\n"

    /// At most this many page tables are read: 8 GiB of 4 KiB pages, more than gdbvmm's largest
    /// guest maps, and a bound on tables that point back at themselves (a recursive PML4 entry
    /// would otherwise describe 2^36 pages).
    public static let tableBudget = 4096

    static let present: UInt64 = 1, writable: UInt64 = 2, user: UInt64 = 4
    static let writeThrough: UInt64 = 8, cacheDisable: UInt64 = 0x10, accessed: UInt64 = 0x20
    static let dirty: UInt64 = 0x40, pageSize: UInt64 = 0x80, global: UInt64 = 0x100
    static let noExecute: UInt64 = 1 << 63
    static let protection = user | writable | present

    /// `monitor info mem`: `start-end size perm` lines, perm `u`/`-`, `r`, `w`/`-`.
    public static func infoMem(paging: PagingState, memory: any PhysicalMemory) -> String {
        guard let walk = Walk(paging: paging, memory: memory) else { return pagingDisabled }
        var text = ""
        var start: UInt64? = nil
        var lastProt: UInt64 = 0
        func note(_ end: UInt64, _ prot: UInt64) {
            guard prot != lastProt else { return }
            if let start {
                text += hex16(walk.canonical(start)) + "-" + hex16(walk.canonical(end)) + " "
                text += hex16(walk.canonical(end &- start)) + " "
                text += (lastProt & user != 0 ? "u" : "-") + "r" + (lastProt & writable != 0 ? "w" : "-") + "\n"
            }
            start = prot != 0 ? end : nil
            lastProt = prot
        }
        walk.run { virtual, entry, prot, _ in note(virtual, prot) }
        note(walk.top, 0)
        return text
    }

    /// `monitor info tlb`: `virtual: physical XGPDACTUW` for each present leaf entry.
    public static func infoTLB(paging: PagingState, memory: any PhysicalMemory) -> String {
        guard let walk = Walk(paging: paging, memory: memory) else { return pagingDisabled }
        var text = ""
        walk.run { virtual, entry, prot, mask in
            guard prot != 0, let mask else { return }
            let flags: [(UInt64, Character)] = [
                (noExecute, "X"), (global, "G"), (pageSize, "P"), (dirty, "D"), (accessed, "A"),
                (cacheDisable, "C"), (writeThrough, "T"), (user, "U"), (writable, "W"),
            ]
            text += hex16(walk.canonical(virtual)) + ": " + hex16(entry & mask) + " "
            text += String(flags.map { entry & $0.0 != 0 ? $0.1 : "-" }) + "\n"
        }
        if walk.exhausted { text += "(stopped after \(tableBudget) page tables: the tables refer back to themselves)\n" }
        return text
    }

    /// One walk over the tables in virtual-address order, as QEMU's loops go.
    final class Walk {
        struct Level {
            var shift: UInt64
            var entries: Int
            /// PS=1 ends the walk here with a large page; the mask is QEMU's for `info tlb`.
            var largePageMask: UInt64?
            /// Legacy PAE PDPTEs carry no permissions: QEMU does not AND them in.
            var permissions: Bool
            /// The address bits of an entry that point at the next table.
            var tableMask: UInt64
        }

        let levels: [Level]
        let root: UInt64
        let entrySize: Int
        /// Where the last range ends: 2^32, 2^48 or 2^57.
        let top: UInt64
        let la57: Bool
        let longMode: Bool
        /// QEMU's `info tlb` mask for 4 KiB pages.
        let pageMask: UInt64
        let memory: any PhysicalMemory
        private var tablesLeft = QEMUPageTables.tableBudget
        private(set) var exhausted = false

        init?(paging: PagingState, memory: any PhysicalMemory) {
            self.memory = memory
            let qemuTable: UInt64 = 0x3_FFFF_FFFF_F000
            switch paging.mode {
            case .disabled:
                return nil
            case .legacy32:
                let pse = paging.cr4 & PagingState.cr4PSE != 0
                levels = [Level(shift: 22, entries: 1024, largePageMask: pse ? ~((1 << 21) - 1) : nil, permissions: true, tableMask: 0xFFFF_F000),
                          Level(shift: 12, entries: 1024, largePageMask: nil, permissions: true, tableMask: 0)]
                root = paging.cr3 & 0xFFFF_F000
                entrySize = 4
                top = 1 << 32
                pageMask = 0xFFFF_F000
                longMode = false
            case .pae:
                levels = [Level(shift: 30, entries: 4, largePageMask: nil, permissions: false, tableMask: qemuTable),
                          Level(shift: 21, entries: 512, largePageMask: ~((1 << 20) - 1), permissions: true, tableMask: qemuTable),
                          Level(shift: 12, entries: 512, largePageMask: nil, permissions: true, tableMask: 0)]
                root = paging.cr3 & ~0x1F & 0xFFFF_FFFF
                entrySize = 8
                top = 1 << 32
                pageMask = ~0xFFF
                longMode = false
            case .longMode4, .longMode5:
                var l = [Level(shift: 39, entries: 512, largePageMask: nil, permissions: true, tableMask: qemuTable),
                         Level(shift: 30, entries: 512, largePageMask: 0x3_FFFF_C000_0000, permissions: true, tableMask: qemuTable),
                         Level(shift: 21, entries: 512, largePageMask: 0x3_FFFF_FFE0_0000, permissions: true, tableMask: qemuTable),
                         Level(shift: 12, entries: 512, largePageMask: nil, permissions: true, tableMask: 0)]
                if paging.mode == .longMode5 {
                    l.insert(Level(shift: 48, entries: 512, largePageMask: nil, permissions: true, tableMask: qemuTable), at: 0)
                }
                levels = l
                root = paging.cr3 & qemuTable
                entrySize = 8
                top = paging.mode == .longMode5 ? 1 << 57 : 1 << 48
                pageMask = qemuTable
                longMode = true
            }
            la57 = paging.mode == .longMode5
        }

        /// QEMU's addr_canonical: sign-extends bit 47 (bit 56 with LA57), in every mode.
        func canonical(_ address: UInt64) -> UInt64 {
            let bit: UInt64 = la57 ? 56 : 47
            return address & (1 << bit) != 0 ? address | ~((1 << (bit + 1)) - 1) : address
        }

        /// Calls `visit(virtual, entry, prot, tlbMask)` for every non-present entry (prot 0)
        /// and every leaf (prot: U/RW/P ANDed down the walk; tlbMask: QEMU's address mask).
        func run(_ visit: (UInt64, UInt64, UInt64, UInt64?) -> Void) {
            walk(depth: 0, table: root, base: 0, inherited: QEMUPageTables.protection, visit)
        }

        private func walk(depth: Int, table: UInt64, base: UInt64, inherited: UInt64,
                          _ visit: (UInt64, UInt64, UInt64, UInt64?) -> Void) {
            guard tablesLeft > 0 else { exhausted = true; return }
            tablesLeft -= 1
            let level = levels[depth]
            let entries = read(table, count: level.entries)
            let last = depth == levels.count - 1
            for (i, entry) in entries.enumerated() {
                let virtual = base | UInt64(i) << level.shift
                guard entry & QEMUPageTables.present != 0 else { visit(virtual, entry, 0, nil); continue }
                let prot = level.permissions ? inherited & entry : inherited
                if last {
                    // QEMU clears PS (PAT, in a 4 KiB entry) before printing the flags.
                    visit(virtual, entry & ~QEMUPageTables.pageSize, entry & prot & QEMUPageTables.protection, pageMask)
                } else if let mask = level.largePageMask, entry & QEMUPageTables.pageSize != 0 {
                    visit(virtual, entry, entry & prot & QEMUPageTables.protection, mask)
                } else {
                    walk(depth: depth + 1, table: entry & level.tableMask, base: virtual, inherited: prot, visit)
                    if exhausted { return }
                }
            }
        }

        /// A table's entries; what lies outside guest RAM reads as not present.
        private func read(_ address: UInt64, count: Int) -> [UInt64] {
            guard let bytes = try? memory.read(at: address, count: count * entrySize) else {
                return [UInt64](repeating: 0, count: count)
            }
            // SAFETY: `bytes` holds count * entrySize bytes, so every load is in bounds;
            // loadUnaligned has no alignment requirement.
            return bytes.withUnsafeBytes { raw in
                (0..<count).map { i in
                    entrySize == 4
                        ? UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                        : UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                }
            }
        }
    }
}

/// `%016llx`
func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}
