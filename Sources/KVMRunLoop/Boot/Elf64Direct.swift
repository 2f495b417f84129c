/// gdbvmm's own boot for ELF64 kernels with no boot note: the PT_LOAD segments at their
/// physical addresses and every vCPU entered at e_entry in 64-bit long mode, with RAM
/// identity-mapped, RDI = vCPU number, RSI = vCPU count and a stack of its own.
enum Elf64Direct {
    /// PE|MP|ET|NE|WP|AM|PG, what Linux runs with.
    static let cr0: UInt64 = 0x8005_0033
    /// PAE|OSFXSR|OSXMMEXCPT: long mode needs PAE; the OS* bits let compiled code use SSE.
    static let cr4: UInt64 = 0x620
    /// LME|LMA.
    static let efer: UInt64 = 0x500
    /// The smallest per-vCPU stack worth having.
    static let minimumStack: UInt64 = 1024

    static let reserved = [ReservedArea(range: BootLayout.directReservedArea, purpose: "page tables and stacks")]

    static func plan(_ elf: ELFImage, ramSize: UInt64, cpuCount: Int) throws(LoadError) -> LoadPlan {
        let segments = elf.loadSegments.map(PlannedSegment.init)
        try LoadPlan.validate(segments, ramSize: ramSize, reserved: reserved)
        guard segments.contains(where: { $0.range.contains(elf.entry) }) else {
            if let segment = elf.loadSegments.first(where: { $0.containsVirtual(elf.entry) }) {
                throw LoadError("entry point \(hex(elf.entry)) is a virtual address of segment \(segment.index), "
                    + "which is loaded at physical \(hex(segment.physicalAddress)); the direct ELF64 boot "
                    + "identity-maps RAM, so link the kernel with virtual == physical addresses, or add a PVH note")
            }
            throw LoadError("entry point \(hex(elf.entry)) is not inside any loaded segment, so the guest would start "
                + "in memory the image does not fill; check ENTRY() in the linker script")
        }

        let stackBytes = UInt64(BootLayout.stackArea.count)
        let slice = (stackBytes / UInt64(cpuCount)) & ~0xF
        guard slice >= minimumStack else {
            throw LoadError("\(cpuCount) vCPUs would each get less than \(byteCount(minimumStack)) of the "
                + "\(byteCount(stackBytes)) stack area of the direct ELF64 boot; use at most "
                + "\(stackBytes / minimumStack) vCPUs")
        }

        let gdt = GDTImage.longMode
        let entry = (0..<cpuCount).map { cpu in
            var state = EntryState(cs: .flatCode(selector: BootSelectors.code, long: true),
                                   data: .flatData(selector: BootSelectors.data), gdt: gdt.register)
            state.rip = elf.entry
            state.rsp = BootLayout.stackArea.lowerBound + UInt64(cpu + 1) * slice
            state.rflags = 0x2
            state.rdi = UInt64(cpu)
            state.rsi = UInt64(cpuCount)
            state.cr0 = cr0
            state.cr3 = BootLayout.pml4Address
            state.cr4 = cr4
            state.efer = efer
            return state
        }
        var structures = try identityMap(ramSize: ramSize)
        structures.append((gdt.register.base, gdt.bytes))
        return LoadPlan(bootProtocol: .elf64Direct, segments: segments, structures: structures, entry: entry)
    }

    /// Page tables that identity-map RAM rounded up to 1 GiB with 2 MiB pages: one PML4 entry,
    /// one PDPT entry per GiB, each pointing at a full page directory.
    static func identityMap(ramSize: UInt64) throws(LoadError) -> [(address: UInt64, bytes: [UInt8])] {
        let gib: UInt64 = 1 << 30
        let directories = ramSize / gib + (ramSize % gib == 0 ? 0 : 1)
        let maximum = (BootLayout.pageDirectoriesEnd - BootLayout.pageDirectoriesStart) / 0x1000
        guard directories <= maximum else {
            throw LoadError("guest RAM is \(byteCount(ramSize)); the direct ELF64 boot identity-maps at most "
                + "\(maximum) GiB below its stacks. Use -m \(maximum)G or less, or boot the kernel through PVH "
                + "or multiboot and let it build its own page tables")
        }
        let present: UInt64 = 0x1, writable: UInt64 = 0x2, largePage: UInt64 = 0x80
        var pml4 = [UInt8](repeating: 0, count: 0x1000)
        pml4.replaceSubrange(0..<8, with: littleEndianBytes(BootLayout.pdptAddress | present | writable, count: 8))
        var pdpt = [UInt8](repeating: 0, count: 0x1000)
        var tables: [(address: UInt64, bytes: [UInt8])] = [(BootLayout.pml4Address, pml4)]
        for g in 0..<directories {
            let directoryAddress = BootLayout.pageDirectoriesStart + g * 0x1000
            let at = Int(g) * 8
            pdpt.replaceSubrange(at..<at + 8, with: littleEndianBytes(directoryAddress | present | writable, count: 8))
            var directory = [UInt8]()
            directory.reserveCapacity(0x1000)
            for i in 0..<UInt64(512) {
                directory += littleEndianBytes((g * gib + (i << 21)) | present | writable | largePage, count: 8)
            }
            tables.append((directoryAddress, directory))
        }
        tables.append((BootLayout.pdptAddress, pdpt))
        return tables
    }
}
