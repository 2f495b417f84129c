/// Guest-virtual to guest-physical translation by walking the guest's page tables in guest
/// memory, in every x86 paging mode: off, 32-bit (with PSE), PAE, 4-level and 5-level long
/// mode. Permissions are those of the page tables (R/W, U/S and, with EFER.NXE, NX ANDed down
/// the walk); CR0.WP, SMEP and protection keys are not applied.
public enum PageWalker {
    /// Where `virtual` maps, or nil when it does not: not present, non-canonical (or above
    /// 4 GiB in a 32-bit mode), or a page table that lies outside guest RAM. With paging off
    /// every address maps to itself, in 4 KiB pages.
    public static func translate(_ virtual: UInt64, paging: PagingState,
                                 memory: any PhysicalMemory) -> Translation? {
        guard let format = PageTableFormat(paging) else {
            return Translation(physical: virtual, pageSize: 0x1000, writable: true, user: true, executable: true)
        }
        guard format.isValid(virtual) else { return nil }
        var table = format.root
        var writable = true, user = true, executable = true
        for (depth, level) in format.levels.enumerated() {
            let index = (virtual >> level.shift) & UInt64(level.entries - 1)
            guard let entry = format.readEntry(at: table + index * UInt64(format.entrySize), memory: memory),
                  entry & PageEntry.present != 0 else { return nil }
            let large = entry & PageEntry.largePage != 0
            if large && level.largePageReserved { return nil }
            if level.permissions {
                writable = writable && entry & PageEntry.writable != 0
                user = user && entry & PageEntry.user != 0
                executable = executable && !(format.noExecute && entry & PageEntry.noExecute != 0)
            }
            let pageSize: UInt64 = 1 << level.shift
            if depth == format.levels.count - 1 {
                return Translation(physical: format.nextAddress(entry) | (virtual & (pageSize - 1)),
                                   pageSize: pageSize, writable: writable, user: user, executable: executable)
            }
            if large && level.largePages {
                return Translation(physical: format.largePageBase(entry, level: level) | (virtual & (pageSize - 1)),
                                   pageSize: pageSize, writable: writable, user: user, executable: executable)
            }
            table = format.nextAddress(entry)
        }
        return nil
    }

    /// Every mapping in the guest's page tables, in virtual-address order, with runs that are
    /// contiguous both virtually and physically and have the same permissions merged: what
    /// `monitor info mem` prints. Stops after `limit` ranges, or after examining 4 Mi page-table
    /// entries (enough for 16 GiB of 4 KiB pages; hostile tables that point back at themselves
    /// could otherwise describe 2^36 pages). With paging off, the one identity range covering RAM.
    public static func mappings(paging: PagingState, memory: any PhysicalMemory,
                                limit: Int = 4096) -> [MappedRange] {
        mappings(paging: paging, memory: memory, limit: limit, entryBudget: 1 << 22)
    }

    static func mappings(paging: PagingState, memory: any PhysicalMemory, limit: Int,
                         entryBudget: Int) -> [MappedRange] {
        guard limit > 0 else { return [] }
        guard let format = PageTableFormat(paging) else {
            guard memory.size > 0 else { return [] }
            return [MappedRange(virtualStart: 0, physicalStart: 0, size: memory.size,
                                writable: true, user: true, executable: true)]
        }
        var collector = MappingCollector(format: format, memory: memory, limit: limit, budget: entryBudget)
        collector.walk(table: format.root, depth: 0, virtualBase: 0,
                       permissions: (writable: true, user: true, executable: true))
        collector.flush()
        return collector.ranges
    }
}

/// Page-table entry bits shared by every mode.
enum PageEntry {
    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let user: UInt64 = 1 << 2
    static let largePage: UInt64 = 1 << 7
    static let noExecute: UInt64 = 1 << 63
}

/// Depth-first enumeration of the page tables, merging leaves into ranges as they come (they
/// come in increasing virtual order, so only the last range can grow).
private struct MappingCollector {
    typealias Permissions = (writable: Bool, user: Bool, executable: Bool)

    let format: PageTableFormat
    let memory: any PhysicalMemory
    let limit: Int
    var ranges: [MappedRange] = []
    var current: MappedRange?
    /// Page-table entries left to examine.
    var budget: Int
    var done = false
    /// Tables (address, depth) already walked without finding a single mapping: skipped when
    /// reached again, so many entries pointing at one empty table cost one walk.
    var emptyTables: Set<EmptyTable> = []

    struct EmptyTable: Hashable {
        var address: UInt64
        var depth: Int
    }

    init(format: PageTableFormat, memory: any PhysicalMemory, limit: Int, budget: Int) {
        self.format = format; self.memory = memory; self.limit = limit; self.budget = budget
    }

    mutating func walk(table: UInt64, depth: Int, virtualBase: UInt64, permissions: Permissions) {
        let key = EmptyTable(address: table, depth: depth)
        guard !emptyTables.contains(key) else { return }
        let level = format.levels[depth]
        guard let entries = format.readEntries(at: table, count: level.entries, memory: memory) else { return }
        let leavesBefore = leaves
        defer { if leaves == leavesBefore && !done { emptyTables.insert(key) } }
        for (index, entry) in entries.enumerated() {
            guard !done else { return }
            budget -= 1
            if budget < 0 { done = true; return }
            guard entry & PageEntry.present != 0 else { continue }
            let large = entry & PageEntry.largePage != 0
            if large && level.largePageReserved { continue }
            var allowed = permissions
            if level.permissions {
                allowed.writable = allowed.writable && entry & PageEntry.writable != 0
                allowed.user = allowed.user && entry & PageEntry.user != 0
                allowed.executable = allowed.executable && !(format.noExecute && entry & PageEntry.noExecute != 0)
            }
            let virtual = virtualBase | UInt64(index) << level.shift
            let pageSize: UInt64 = 1 << level.shift
            if depth == format.levels.count - 1 {
                add(virtual: virtual, physical: format.nextAddress(entry), size: pageSize, allowed)
            } else if large && level.largePages {
                add(virtual: virtual, physical: format.largePageBase(entry, level: level), size: pageSize, allowed)
            } else {
                walk(table: format.nextAddress(entry), depth: depth + 1, virtualBase: virtual, permissions: allowed)
            }
        }
    }

    /// Leaf entries seen so far.
    var leaves = 0

    mutating func add(virtual: UInt64, physical: UInt64, size: UInt64, _ allowed: Permissions) {
        leaves += 1
        let start = format.canonical(virtual)
        if var run = current, run.virtualStart &+ run.size == start, run.physicalStart &+ run.size == physical,
           run.writable == allowed.writable, run.user == allowed.user, run.executable == allowed.executable {
            run.size += size
            current = run
            return
        }
        flush()
        guard ranges.count < limit else { done = true; return }
        current = MappedRange(virtualStart: start, physicalStart: physical, size: size, writable: allowed.writable,
                              user: allowed.user, executable: allowed.executable)
    }

    mutating func flush() {
        if let run = current, ranges.count < limit { ranges.append(run) }
        current = nil
    }
}
