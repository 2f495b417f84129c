/// The shape of one paging mode's tables: how many levels, how wide each index is, where each
/// level may end in a large page. `PageWalker` walks any of them with the same code.
struct PageTableFormat {
    struct Level {
        /// Bit position of this level's index in the virtual address (= log2 of its page size).
        var shift: UInt64
        var entries: Int
        /// A set PS bit (7) ends the walk here with a page of 1 << shift bytes.
        var largePages: Bool
        /// The PS bit is reserved here (PML4E, PML5E): a set PS bit makes the entry invalid.
        var largePageReserved: Bool
        /// Legacy PAE PDPTEs have no R/W, U/S or NX bits.
        var permissions: Bool
    }

    var levels: [Level]
    /// 4 (32-bit paging) or 8 bytes per entry.
    var entrySize: Int
    var root: UInt64
    /// Virtual addresses are this many bits; longer ones must be canonical (sign-extended).
    var virtualBits: UInt64
    /// Long mode: the upper half is the sign extension of bit virtualBits-1.
    var signExtended: Bool
    var noExecute: Bool

    /// Physical address bits 12..51 of an 8-byte entry.
    static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

    init?(_ paging: PagingState) {
        func level(_ shift: UInt64, _ entries: Int = 512, large: Bool = false, reserved: Bool = false,
                   permissions: Bool = true) -> Level {
            Level(shift: shift, entries: entries, largePages: large, largePageReserved: reserved,
                  permissions: permissions)
        }
        noExecute = paging.noExecuteEnabled
        switch paging.mode {
        case .disabled:
            return nil
        case .legacy32:
            levels = [level(22, 1024, large: paging.cr4 & PagingState.cr4PSE != 0), level(12, 1024)]
            entrySize = 4
            root = paging.cr3 & 0xFFFF_F000
            virtualBits = 32
            signExtended = false
            noExecute = false
        case .pae:
            levels = [level(30, 4, permissions: false), level(21, large: true), level(12)]
            entrySize = 8
            root = paging.cr3 & 0xFFFF_FFE0
            virtualBits = 32
            signExtended = false
        case .longMode4, .longMode5:
            levels = [level(39, reserved: true), level(30, large: true), level(21, large: true), level(12)]
            if paging.mode == .longMode5 { levels.insert(level(48, reserved: true), at: 0) }
            entrySize = 8
            root = paging.cr3 & PageTableFormat.addressMask
            virtualBits = paging.mode == .longMode5 ? 57 : 48
            signExtended = true
        }
    }

    /// The address of the next table (or 4 KiB page) an entry points to.
    func nextAddress(_ entry: UInt64) -> UInt64 {
        entrySize == 4 ? entry & 0xFFFF_F000 : entry & PageTableFormat.addressMask
    }

    /// The physical base of the large page a PS=1 entry at `level` maps.
    func largePageBase(_ entry: UInt64, level: Level) -> UInt64 {
        if entrySize == 4 {
            // 4 MiB PSE page: bits 31:22, plus PSE-36 bits 20:13 as physical bits 39:32.
            return (entry & 0xFFC0_0000) | ((entry >> 13) & 0xFF) << 32
        }
        // Bit 12 of a large-page entry is PAT, not address: mask down to the page size.
        return entry & PageTableFormat.addressMask & ~((1 << level.shift) - 1)
    }

    /// Whether `virtual` can be translated in this mode at all (32-bit, or canonical).
    func isValid(_ virtual: UInt64) -> Bool {
        guard signExtended else { return virtual >> virtualBits == 0 }
        let upper = virtual >> (virtualBits - 1)
        return upper == 0 || upper == (UInt64.max >> (virtualBits - 1))
    }

    /// Sign-extends a long-mode virtual address assembled from table indices.
    func canonical(_ virtual: UInt64) -> UInt64 {
        guard signExtended, virtual & (1 << (virtualBits - 1)) != 0 else { return virtual }
        return virtual | ~((1 << virtualBits) - 1)
    }

    /// Reads the one entry at `address` without allocating (a translation reads one per level);
    /// nil if it is not in RAM.
    func readEntry(at address: UInt64, memory: any PhysicalMemory) -> UInt64? {
        var entry: UInt64 = 0
        // SAFETY: entrySize (4 or 8) bytes are copied into the 8 bytes of `entry`; x86 is
        // little-endian, so a 4-byte entry lands in its low half.
        let ok = withUnsafeMutableBytes(of: &entry) { raw in
            (try? memory.copy(at: address, count: entrySize, to: raw.baseAddress!)) != nil
        }
        return ok ? UInt64(littleEndian: entry) : nil
    }

    /// Reads `count` consecutive entries starting at `address`; nil if they are not all in RAM.
    func readEntries(at address: UInt64, count: Int, memory: any PhysicalMemory) -> [UInt64]? {
        guard let bytes = try? memory.read(at: address, count: count * entrySize) else { return nil }
        // SAFETY: `bytes` holds exactly count * entrySize bytes, so every load below is in bounds;
        // loadUnaligned has no alignment requirement.
        let entries = bytes.withUnsafeBytes { raw in
            (0..<count).map { i in
                entrySize == 4
                    ? UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                    : UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            }
        }
        return entries
    }
}
