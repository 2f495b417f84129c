/// One piece of a guest-virtual range that is contiguous in guest-physical RAM.
public struct PhysicalRun: Sendable, Equatable {
    /// Where the piece starts in guest-physical memory.
    public var physical: UInt64
    /// Where it starts, counted from the start of the virtual range.
    public var offset: Int
    public var length: Int

    public init(physical: UInt64, offset: Int, length: Int) {
        self.physical = physical; self.offset = offset; self.length = length
    }
}

public enum GuestVirtualRuns {
    /// The guest-physical runs behind [address, address + count), in order and without gaps,
    /// merged wherever consecutive pages are physically contiguous. One page walk per page
    /// (4 KiB, 2 MiB, 4 MiB or 1 GiB), never one per byte, so a 64 KiB read in 2 MiB pages costs
    /// one walk. The runs cover a prefix of the range: they end at the first byte that is
    /// unmapped or outside RAM, or at the top of the address space. `paging` nil: the addresses
    /// are guest-physical.
    public static func runs(_ address: UInt64, count: Int, paging: PagingState?,
                            memory: any PhysicalMemory) -> [PhysicalRun] {
        guard count > 0 else { return [] }
        // Never past the top of the address space.
        let total = UInt64(count - 1) <= UInt64.max - address ? count : Int(UInt64.max - address) + 1
        guard let paging else {
            guard address < memory.size else { return [] }
            return [PhysicalRun(physical: address, offset: 0, length: Int(min(UInt64(total), memory.size - address)))]
        }
        var runs: [PhysicalRun] = []
        var offset = 0
        while offset < total {
            let virtual = address &+ UInt64(offset)
            guard let t = PageWalker.translate(virtual, paging: paging, memory: memory),
                  t.physical < memory.size else { break }
            let wanted = min(UInt64(total - offset), t.pageSize - (virtual & (t.pageSize - 1)))
            let length = Int(min(wanted, memory.size - t.physical))
            if let last = runs.last, last.physical &+ UInt64(last.length) == t.physical {
                runs[runs.count - 1].length += length
            } else {
                runs.append(PhysicalRun(physical: t.physical, offset: offset, length: length))
            }
            offset += length
            // The page runs past the end of RAM: what follows is not readable.
            if UInt64(length) < wanted { break }
        }
        return runs
    }

    /// How many bytes from the start of the range the runs cover.
    public static func covered(_ runs: [PhysicalRun]) -> Int {
        runs.last.map { $0.offset + $0.length } ?? 0
    }
}
