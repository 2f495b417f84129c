/// The control registers that decide how the guest translates virtual addresses.
public struct PagingState: Sendable, Equatable {
    public var cr0: UInt64
    public var cr3: UInt64
    public var cr4: UInt64
    public var efer: UInt64

    public init(cr0: UInt64, cr3: UInt64, cr4: UInt64, efer: UInt64) {
        self.cr0 = cr0; self.cr3 = cr3; self.cr4 = cr4; self.efer = efer
    }

    /// The translation scheme these registers select.
    public enum Mode: Sendable, Equatable {
        /// CR0.PG = 0: virtual = physical.
        case disabled
        /// 32-bit paging: two levels of 4-byte entries; 4 MiB pages when CR4.PSE.
        case legacy32
        /// PAE paging: a 4-entry PDPT, then 8-byte entries; 2 MiB pages.
        case pae
        /// 4-level long-mode paging, 48-bit virtual addresses; 1 GiB and 2 MiB pages.
        case longMode4
        /// 5-level long-mode paging (CR4.LA57), 57-bit virtual addresses.
        case longMode5
    }

    static let cr0PG: UInt64 = 1 << 31
    static let cr4PSE: UInt64 = 1 << 4
    static let cr4PAE: UInt64 = 1 << 5
    static let cr4LA57: UInt64 = 1 << 12
    static let eferLME: UInt64 = 1 << 8
    static let eferLMA: UInt64 = 1 << 10
    static let eferNXE: UInt64 = 1 << 11

    public var mode: Mode {
        guard cr0 & PagingState.cr0PG != 0 else { return .disabled }
        // LMA is what the CPU reports; LME with paging and PAE on implies it.
        let longMode = efer & PagingState.eferLMA != 0
            || (efer & PagingState.eferLME != 0 && cr4 & PagingState.cr4PAE != 0)
        if longMode { return cr4 & PagingState.cr4LA57 != 0 ? .longMode5 : .longMode4 }
        return cr4 & PagingState.cr4PAE != 0 ? .pae : .legacy32
    }

    /// Execute-disable bits are honoured only with EFER.NXE (otherwise bit 63 is reserved).
    var noExecuteEnabled: Bool { efer & PagingState.eferNXE != 0 }
}

/// Where one guest-virtual address lands and what its page allows.
public struct Translation: Sendable, Equatable {
    public var physical: UInt64
    /// Size of the page that maps it (4 KiB, 2 MiB, 4 MiB or 1 GiB; 4 KiB when paging is off).
    public var pageSize: UInt64
    public var writable: Bool
    public var user: Bool
    public var executable: Bool

    public init(physical: UInt64, pageSize: UInt64, writable: Bool, user: Bool, executable: Bool) {
        self.physical = physical; self.pageSize = pageSize
        self.writable = writable; self.user = user; self.executable = executable
    }
}

/// A run of virtual addresses mapped to contiguous physical memory with the same permissions.
public struct MappedRange: Sendable, Equatable {
    public var virtualStart: UInt64
    public var physicalStart: UInt64
    public var size: UInt64
    public var writable: Bool
    public var user: Bool
    public var executable: Bool

    public init(virtualStart: UInt64, physicalStart: UInt64, size: UInt64,
                writable: Bool, user: Bool, executable: Bool) {
        self.virtualStart = virtualStart; self.physicalStart = physicalStart; self.size = size
        self.writable = writable; self.user = user; self.executable = executable
    }
}
