/// A multiboot v1 header found in an image (Multiboot Specification 0.6.96, section 3.1).
public struct MultibootHeader: Sendable, Equatable {
    /// The header's magic field.
    public static let magic: UInt32 = 0x1BAD_B002
    /// The value in EAX when a multiboot kernel is entered.
    public static let bootloaderMagic: UInt32 = 0x2BAD_B002
    /// The header must lie entirely within the first 8192 bytes of the file.
    public static let searchLimit = 8192

    /// Flag bits 0-15 are requirements. Bit 0 (page-align modules) is met trivially (there are
    /// no modules), bit 1 (memory information) is always provided, bit 2 (video mode) is
    /// declined the way the spec allows: the information structure omits the video fields.
    public static let understoodRequiredFlags: UInt32 = 0b111
    /// Flag bit 16: the header carries the a.out kludge address fields.
    public static let aoutKludgeFlag: UInt32 = 1 << 16

    /// The a.out kludge fields (present when flag bit 16 is set): where the file goes in memory.
    public struct AoutKludge: Sendable, Equatable {
        /// Physical address the magic field is loaded at.
        public var headerAddress: UInt32
        /// Physical address of the start of the text segment (loaded from file offset
        /// `fileOffset - (headerAddress - loadAddress)`).
        public var loadAddress: UInt32
        /// End of the data to load; 0 means to the end of the file.
        public var loadEndAddress: UInt32
        /// End of the bss to zero; 0 means no bss.
        public var bssEndAddress: UInt32
        public var entryAddress: UInt32
    }

    /// Offset of the magic field in the file (a multiple of 4, below 8192).
    public var fileOffset: Int
    public var flags: UInt32
    public var kludge: AoutKludge?

    /// Finds the first valid multiboot header. Returns nil when there is none; throws when the
    /// only candidates have a bad checksum, or a valid header asks for what cannot be given.
    public static func find(in image: [UInt8]) throws(LoadError) -> MultibootHeader? {
        let file = ImageReader(bytes: image)
        var badChecksumAt: (offset: Int, sum: UInt32)?
        var offset = 0
        while offset + 12 <= min(image.count, searchLimit) {
            defer { offset += 4 }
            guard file.u32(UInt64(offset)) == magic,
                  let flags = file.u32(UInt64(offset + 4)), let checksum = file.u32(UInt64(offset + 8)) else {
                continue
            }
            let sum = magic &+ flags &+ checksum
            guard sum == 0 else {
                if badChecksumAt == nil { badChecksumAt = (offset, sum) }
                continue
            }
            return try MultibootHeader(file: file, offset: offset, flags: flags)
        }
        if let bad = badChecksumAt {
            throw LoadError("the multiboot header at offset \(hex(bad.offset)) has a bad checksum: magic + flags + "
                + "checksum must be 0 modulo 2^32 but is \(hex(bad.sum)); fix the checksum field")
        }
        return nil
    }

    private init(file: ImageReader, offset: Int, flags: UInt32) throws(LoadError) {
        fileOffset = offset
        self.flags = flags
        let unknown = flags & 0xFFFF & ~MultibootHeader.understoodRequiredFlags
        guard unknown == 0 else {
            let bits = (0..<16).filter { unknown & (1 << $0) != 0 }.map(String.init).joined(separator: ", ")
            throw LoadError("the multiboot header requires features gdbvmm does not provide (flag bits \(bits)); "
                + "the multiboot spec says a loader must refuse such a kernel. Clear those bits")
        }
        guard flags & MultibootHeader.aoutKludgeFlag != 0 else {
            kludge = nil
            return
        }
        let base = UInt64(offset)
        guard let header = file.u32(base + 12), let load = file.u32(base + 16), let loadEnd = file.u32(base + 20),
              let bssEnd = file.u32(base + 24), let entry = file.u32(base + 28) else {
            throw LoadError("the multiboot header at offset \(hex(offset)) sets the a.out kludge flag (bit 16) "
                + "but the file ends before its address fields; the image is truncated")
        }
        kludge = AoutKludge(headerAddress: header, loadAddress: load, loadEndAddress: loadEnd,
                            bssEndAddress: bssEnd, entryAddress: entry)
    }
}

/// Multiboot v1 loading and the multiboot information structure.
enum Multiboot {
    /// Areas a multiboot or PVH image must avoid: gdbvmm's GDT and boot information page.
    static let reserved = [
        ReservedArea(range: BootLayout.gdtArea, purpose: "its GDT"),
        ReservedArea(range: BootLayout.infoArea, purpose: "the boot information"),
    ]

    /// The a.out kludge: one contiguous piece of the file goes at load_addr, then bss.
    static func planKludge(image: [UInt8], header: MultibootHeader, kludge: MultibootHeader.AoutKludge,
                           ramSize: UInt64, commandLine: String) throws(LoadError) -> LoadPlan {
        let load = UInt64(kludge.loadAddress)
        let headerAddress = UInt64(kludge.headerAddress)
        guard headerAddress >= load else {
            throw LoadError("multiboot header_addr \(hex(headerAddress)) is below load_addr \(hex(load)); the "
                + "header must lie inside the loaded text, so header_addr >= load_addr")
        }
        guard headerAddress - load <= UInt64(header.fileOffset) else {
            throw LoadError("multiboot load_addr \(hex(load)) is \(hex(headerAddress - load)) bytes before header_addr, "
                + "but the header is only \(hex(header.fileOffset)) bytes into the file; load_addr would start "
                + "before the beginning of the file")
        }
        let fileOffset = UInt64(header.fileOffset) - (headerAddress - load)
        let fileSize: UInt64
        if kludge.loadEndAddress == 0 {
            fileSize = UInt64(image.count) - fileOffset
        } else {
            let loadEnd = UInt64(kludge.loadEndAddress)
            guard loadEnd >= load else {
                throw LoadError("multiboot load_end_addr \(hex(loadEnd)) is below load_addr \(hex(load))")
            }
            fileSize = loadEnd - load
            guard ImageReader(bytes: image).contains(offset: fileOffset, length: fileSize) else {
                throw LoadError("multiboot load_end_addr \(hex(loadEnd)) asks for \(hex(fileSize)) bytes from file "
                    + "offset \(hex(fileOffset)), past the end of the file (\(image.count) bytes); the image is truncated")
            }
        }
        var memorySize = fileSize
        if kludge.bssEndAddress != 0 {
            let bssEnd = UInt64(kludge.bssEndAddress)
            guard bssEnd >= load + fileSize else {
                throw LoadError("multiboot bss_end_addr \(hex(bssEnd)) is below the end of the loaded data "
                    + "\(hex(load + fileSize))")
            }
            memorySize = bssEnd - load
        }
        let segment = PlannedSegment(name: "the multiboot a.out kludge image", physicalAddress: load,
                                     fileOffset: fileOffset, fileSize: fileSize, memorySize: memorySize)
        try LoadPlan.validate([segment], ramSize: ramSize, reserved: reserved)
        let entry = UInt64(kludge.entryAddress)
        guard segment.range.contains(entry) else {
            throw LoadError("multiboot entry_addr \(hex(entry)) is outside the loaded image "
                + "[\(hex(segment.range.lowerBound)), \(hex(segment.range.upperBound)))")
        }
        return try plan(segments: [segment], entry: entry, ramSize: ramSize, commandLine: commandLine)
    }

    /// An ELF32 multiboot kernel: PT_LOAD segments at their physical addresses.
    static func planELF(_ elf: ELFImage, ramSize: UInt64, commandLine: String) throws(LoadError) -> LoadPlan {
        let segments = elf.loadSegments.map(PlannedSegment.init)
        try LoadPlan.validate(segments, ramSize: ramSize, reserved: reserved)
        return try plan(segments: segments, entry: try physicalEntry(of: elf), ramSize: ramSize,
                        commandLine: commandLine)
    }

    private static func plan(segments: [PlannedSegment], entry: UInt64, ramSize: UInt64,
                             commandLine: String) throws(LoadError) -> LoadPlan {
        let gdt = GDTImage.protectedMode
        var state = EntryState.protectedMode(entry: entry, gdt: gdt)
        state.rax = UInt64(MultibootHeader.bootloaderMagic)
        state.rbx = BootLayout.infoArea.lowerBound
        return LoadPlan(
            bootProtocol: .multiboot, segments: segments,
            structures: [(gdt.register.base, gdt.bytes),
                         (BootLayout.infoArea.lowerBound, try informationPage(ramSize: ramSize, commandLine: commandLine))],
            entry: [state])
    }

    // Layout of the boot information page at 0x9000.
    static let mbiOffset = 0x000
    static let memoryMapOffset = 0x080
    static let loaderNameOffset = 0x100
    static let commandLineOffset = 0x200

    /// Multiboot information flag bits this structure provides.
    static let infoFlagMemory: UInt32 = 1 << 0
    static let infoFlagCommandLine: UInt32 = 1 << 2
    static let infoFlagMemoryMap: UInt32 = 1 << 6
    static let infoFlagLoaderName: UInt32 = 1 << 9

    /// The whole information page: the multiboot_info structure, the memory map (entries with a
    /// size prefix of 20), the boot loader name and the command line.
    static func informationPage(ramSize: UInt64, commandLine: String) throws(LoadError) -> [UInt8] {
        var page = BootInformationPage()
        let base = UInt32(BootLayout.infoArea.lowerBound)
        let map = MemoryMapEntry.standard(ramSize: ramSize)
        for (i, entry) in map.enumerated() {
            let at = memoryMapOffset + i * 24
            page.put32(20, at: at)
            page.put64(entry.start, at: at + 4)
            page.put64(entry.length, at: at + 12)
            page.put32(entry.type, at: at + 20)
        }
        page.putString("gdbvmm", at: loaderNameOffset)
        try page.putCommandLine(commandLine, at: commandLineOffset)

        page.put32(infoFlagMemory | infoFlagCommandLine | infoFlagMemoryMap | infoFlagLoaderName, at: 0)
        page.put32(639, at: 4)  // mem_lower: KiB below 640 KiB (the 0x9FC00 EBDA starts after it)
        page.put32(UInt32(clamping: (ramSize - (1 << 20)) / 1024), at: 8)  // mem_upper: KiB from 1 MiB
        page.put32(base + UInt32(commandLineOffset), at: 16)
        page.put32(UInt32(map.count * 24), at: 44)  // mmap_length
        page.put32(base + UInt32(memoryMapOffset), at: 48)
        page.put32(base + UInt32(loaderNameOffset), at: 64)
        return page.bytes
    }
}

/// One entry of the memory map given to multiboot and PVH guests.
struct MemoryMapEntry: Equatable {
    var start: UInt64
    var length: UInt64
    /// 1 = usable RAM, 2 = reserved (the same numbers in multiboot and hvm_memmap_table_entry).
    var type: UInt32

    /// The PC layout a kernel expects: conventional memory below the EBDA, the EBDA and BIOS
    /// areas reserved, RAM from 1 MiB. [0xA0000, 0xF0000) is left out, as the VGA/ROM hole.
    static func standard(ramSize: UInt64) -> [MemoryMapEntry] {
        [MemoryMapEntry(start: 0, length: 0x9FC00, type: 1),
         MemoryMapEntry(start: 0x9FC00, length: 0x400, type: 2),
         MemoryMapEntry(start: 0xF0000, length: 0x10000, type: 2),
         MemoryMapEntry(start: 1 << 20, length: ramSize - (1 << 20), type: 1)]
    }
}

/// The 4 KiB boot information page being assembled (zero-filled, little-endian fields).
struct BootInformationPage {
    var bytes = [UInt8](repeating: 0, count: Int(BootLayout.infoArea.count))

    mutating func put32(_ value: UInt32, at offset: Int) { put(UInt64(value), count: 4, at: offset) }
    mutating func put64(_ value: UInt64, at offset: Int) { put(value, count: 8, at: offset) }

    mutating func put(_ value: UInt64, count: Int, at offset: Int) {
        bytes.replaceSubrange(offset..<offset + count, with: littleEndianBytes(value, count: count))
    }

    /// A NUL-terminated string; the offsets are gdbvmm's own constants, with room to spare.
    mutating func putString(_ string: String, at offset: Int) {
        let utf8 = Array(string.utf8)
        bytes.replaceSubrange(offset..<offset + utf8.count, with: utf8)
    }

    /// The user's command line, NUL-terminated, which must fit in the rest of the page.
    mutating func putCommandLine(_ commandLine: String, at offset: Int) throws(LoadError) {
        let utf8 = Array(commandLine.utf8)
        let room = bytes.count - offset - 1
        guard utf8.count <= room else {
            throw LoadError("the kernel command line is \(utf8.count) bytes; at most \(room) fit in the boot "
                + "information page")
        }
        guard !utf8.contains(0) else {
            throw LoadError("the kernel command line contains a NUL character, which would cut it short")
        }
        bytes.replaceSubrange(offset..<offset + utf8.count, with: utf8)
    }
}

extension EntryState {
    /// 32-bit protected mode with paging off, as multiboot and PVH specify: flat code and data
    /// segments, CR0 = PE|ET, CR4 = 0, EFLAGS with IF and VM clear.
    static func protectedMode(entry: UInt64, gdt: GDTImage) -> EntryState {
        var state = EntryState(cs: .flatCode(selector: BootSelectors.code, long: false),
                               data: .flatData(selector: BootSelectors.data), gdt: gdt.register)
        state.rip = entry
        state.rflags = 0x2
        state.cr0 = 0x11
        state.cr4 = 0
        state.efer = 0
        return state
    }
}
