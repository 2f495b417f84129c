extension PageWalker {
    /// The guest-physical page numbers (address >> 12) of every page-table page reachable from
    /// CR3: pages the CPU itself reads (and sets A/D bits in) while translating, which therefore
    /// must stay mapped in KVM's memory slots. Stops after `limit` pages; empty with paging off.
    public static func tablePages(paging: PagingState, memory: any PhysicalMemory,
                                  limit: Int = 1 << 16) -> Set<UInt64> {
        guard let format = PageTableFormat(paging) else { return [] }
        var pages: Set<UInt64> = [format.root >> 12]
        // PAE's 32-byte PDPT is not page-aligned, but it lies in one page.
        var pending: [(table: UInt64, depth: Int)] = [(format.root, 0)]
        while let (table, depth) = pending.popLast(), pages.count < limit {
            let level = format.levels[depth]
            guard depth + 1 < format.levels.count,
                  let entries = format.readEntries(at: table, count: level.entries, memory: memory) else { continue }
            for entry in entries where entry & PageEntry.present != 0 {
                if level.largePages && entry & PageEntry.largePage != 0 { continue }
                let next = format.nextAddress(entry)
                if pages.insert(next >> 12).inserted { pending.append((next, depth + 1)) }
                if pages.count >= limit { break }
            }
        }
        return pages
    }
}
