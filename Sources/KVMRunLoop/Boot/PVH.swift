/// The PVH boot protocol (Xen's HVM direct boot, also used by QEMU, Firecracker and Cloud
/// Hypervisor): the ELF segments at their physical addresses, the vCPU in 32-bit protected
/// mode at the XEN_ELFNOTE_PHYS32_ENTRY address, EBX = physical address of hvm_start_info
/// (xen/include/public/arch-x86/hvm/start_info.h).
enum PVH {
    /// hvm_start_info.magic: "xEn3" with the 0x80 bit of the "E" set.
    static let startInfoMagic: UInt32 = 0x336E_C578
    /// Version 1 adds the memory map fields.
    static let startInfoVersion: UInt32 = 1

    // Layout of the boot information page at 0x9000.
    static let startInfoOffset = 0x000
    static let memoryMapOffset = 0x040
    static let moduleListOffset = 0x100
    static let commandLineOffset = 0x200

    static func plan(_ elf: ELFImage, entry: UInt32, ramSize: UInt64, commandLine: String,
                     initrd: [UInt8]? = nil) throws(LoadError) -> LoadPlan {
        let segments = elf.loadSegments.map(PlannedSegment.init)
        try LoadPlan.validate(segments, ramSize: ramSize, reserved: Multiboot.reserved)
        guard segments.contains(where: { $0.range.contains(UInt64(entry)) }) else {
            throw LoadError("the PVH entry point \(hex(entry)) (XEN_ELFNOTE_PHYS32_ENTRY) is not inside any loaded "
                + "segment; it must be the physical address of the 32-bit entry code")
        }
        let gdt = GDTImage.protectedMode
        var state = EntryState.protectedMode(entry: UInt64(entry), gdt: gdt)
        state.rbx = BootLayout.infoArea.lowerBound
        var module: Range<UInt64>?
        var structures = [(address: UInt64, bytes: [UInt8])]()
        if let initrd {
            // Above every segment, at the top of RAM (hvm_modlist_entry.paddr is 64-bit).
            let kernelEnd = segments.map(\.range.upperBound).max() ?? 0
            let address = try Initrd.place(size: UInt64(initrd.count), floor: kernelEnd, ceiling: ramSize,
                                           floorName: "the end of the kernel", ceilingName: "the end of guest RAM")
            module = address..<address + UInt64(initrd.count)
            structures.append((address, initrd))
        }
        structures.insert(contentsOf: [
            (gdt.register.base, gdt.bytes),
            (BootLayout.infoArea.lowerBound, try startInfoPage(ramSize: ramSize, commandLine: commandLine, module: module)),
        ], at: 0)
        return LoadPlan(bootProtocol: .pvh, segments: segments, structures: structures, entry: [state])
    }

    /// hvm_start_info (56 bytes), the hvm_memmap_table_entry array, the module list (one
    /// hvm_modlist_entry for the initrd, if there is one) and the command line.
    static func startInfoPage(ramSize: UInt64, commandLine: String,
                              module: Range<UInt64>? = nil) throws(LoadError) -> [UInt8] {
        var page = BootInformationPage()
        let base = BootLayout.infoArea.lowerBound
        let map = MemoryMapEntry.standard(ramSize: ramSize)
        for (i, entry) in map.enumerated() {
            let at = memoryMapOffset + i * 24
            page.put64(entry.start, at: at)       // addr
            page.put64(entry.length, at: at + 8)  // size
            page.put32(entry.type, at: at + 16)   // type; reserved u32 stays 0
        }
        try page.putCommandLine(commandLine, at: commandLineOffset)
        if let module {
            page.put64(module.lowerBound, at: moduleListOffset)                  // paddr
            page.put64(UInt64(module.count), at: moduleListOffset + 8)           // size
            // cmdline_paddr (0: no module command line) and reserved stay 0.
        }

        page.put32(startInfoMagic, at: 0x00)
        page.put32(startInfoVersion, at: 0x04)
        page.put32(0, at: 0x08)    // flags
        page.put32(module == nil ? 0 : 1, at: 0x0C)    // nr_modules
        page.put64(module == nil ? 0 : base + UInt64(moduleListOffset), at: 0x10)    // modlist_paddr
        page.put64(base + UInt64(commandLineOffset), at: 0x18)
        page.put64(0, at: 0x20)    // rsdp_paddr: no ACPI tables
        page.put64(base + UInt64(memoryMapOffset), at: 0x28)
        page.put32(UInt32(map.count), at: 0x30)
        return page.bytes
    }
}
