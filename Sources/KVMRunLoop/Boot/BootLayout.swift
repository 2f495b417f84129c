/// Where gdbvmm puts its own boot structures in guest-physical memory. Every boot protocol
/// keeps its structures below 1 MiB, where the usual guest links nothing.
public enum BootLayout {
    /// The GDT gdbvmm builds, so the selectors in the entry state name real descriptors.
    public static let gdtArea: Range<UInt64> = 0x500..<0x600
    /// Multiboot information or hvm_start_info, with its memory map and strings.
    public static let infoArea: Range<UInt64> = 0x9000..<0xA000
    /// ELF64 direct boot: PML4 (one page), PDPT (one page), then one page directory per GiB.
    public static let pml4Address: UInt64 = 0x1000
    public static let pdptAddress: UInt64 = 0x2000
    public static let pageDirectoriesStart: UInt64 = 0x3000
    /// Page directories must end here, where the stacks begin: at most 13 of them (13 GiB).
    public static let pageDirectoriesEnd: UInt64 = 0x10000
    /// ELF64 direct boot: split evenly between the vCPUs, one stack each.
    public static let stackArea: Range<UInt64> = 0x10000..<0x90000
    /// ELF64 direct boot: page tables, GDT and stacks; the image must not overlap it.
    public static let directReservedArea: Range<UInt64> = 0..<0x90000
    /// Below this there is no room for the boot structures and a guest.
    public static let minimumRAM: UInt64 = 2 << 20

    /// Linux bzImage boot: everything gdbvmm writes lies in the first 64 KiB, which Linux
    /// reserves for itself anyway (CONFIG_X86_RESERVE_LOW); the e820 map marks it reserved.
    /// GDT at 0x500 and page tables from 0x1000 as above (at most four page directories,
    /// 0x3000..0x7000), then the zero page, a small stack and the command line.
    public static let linuxReservedArea: Range<UInt64> = 0..<0x10000
    public static let linuxPageDirectoriesEnd: UInt64 = 0x7000
    public static let linuxZeroPage: UInt64 = 0x7000
    /// RSP at entry (the stack is the page below); Linux switches to its own stack at once.
    public static let linuxStackTop: UInt64 = 0x9000
    public static let linuxCommandLine: Range<UInt64> = 0x9000..<0x10000
}

/// The GDT selectors gdbvmm uses. The guest sees the same descriptors in memory at
/// `BootLayout.gdtArea` as in the hidden segment state, so reloading a selector is harmless.
public enum BootSelectors {
    /// 32-bit protected-mode boots (multiboot, PVH): 0x08 flat code32, 0x10 flat data.
    /// 64-bit direct boot: 0x08 code64, 0x10 data, 0x18 code32.
    public static let code: UInt16 = 0x08
    public static let data: UInt16 = 0x10
    public static let code32InLongModeTable: UInt16 = 0x18
    /// The Linux 64-bit boot protocol: __BOOT_CS (code64) and __BOOT_DS.
    public static let linuxCode: UInt16 = 0x10
    public static let linuxData: UInt16 = 0x18
}

extension Segment {
    /// The 8-byte GDT descriptor whose hidden state is this segment (the inverse of what the
    /// CPU does when it loads a selector).
    public var gdtDescriptor: UInt64 {
        let limitField = UInt64(g ? limit >> 12 : limit) & 0xF_FFFF
        let access = UInt64(type & 0xF) | (s ? 0x10 : 0) | UInt64(dpl & 3) << 5 | (present ? 0x80 : 0)
        let flags: UInt64 = (l ? 0x2 : 0) | (db ? 0x4 : 0) | (g ? 0x8 : 0)
        return (limitField & 0xFFFF)
            | (base & 0xFF_FFFF) << 16
            | access << 40
            | (limitField >> 16) << 48
            | flags << 52
            | ((base >> 24) & 0xFF) << 56
    }
}

/// A GDT image: a null descriptor, then each segment at the slot its selector names.
struct GDTImage {
    let bytes: [UInt8]
    let register: DescriptorTable

    init(segments: [Segment], at address: UInt64) {
        let slots = (segments.map { Int($0.selector >> 3) }.max() ?? 0) + 1
        var bytes = [UInt8](repeating: 0, count: slots * 8)
        for segment in segments {
            let slot = Int(segment.selector >> 3)
            bytes.replaceSubrange(slot * 8..<slot * 8 + 8, with: littleEndianBytes(segment.gdtDescriptor, count: 8))
        }
        self.bytes = bytes
        register = DescriptorTable(base: address, limit: UInt16(slots * 8 - 1))
    }

    /// Flat 32-bit protected mode: null, 0x08 code32, 0x10 data.
    static var protectedMode: GDTImage {
        GDTImage(segments: [Segment.flatCode(selector: BootSelectors.code, long: false),
                            Segment.flatData(selector: BootSelectors.data)],
                 at: BootLayout.gdtArea.lowerBound)
    }

    /// Long mode: null, 0x08 code64, 0x10 data, 0x18 code32.
    static var longMode: GDTImage {
        GDTImage(segments: [Segment.flatCode(selector: BootSelectors.code, long: true),
                            Segment.flatData(selector: BootSelectors.data),
                            Segment.flatCode(selector: BootSelectors.code32InLongModeTable, long: false)],
                 at: BootLayout.gdtArea.lowerBound)
    }

    /// The Linux 64-bit boot protocol: null, null, 0x10 code64 (__BOOT_CS), 0x18 data (__BOOT_DS).
    static var linux: GDTImage {
        GDTImage(segments: [Segment.flatCode(selector: BootSelectors.linuxCode, long: true),
                            Segment.flatData(selector: BootSelectors.linuxData)],
                 at: BootLayout.gdtArea.lowerBound)
    }
}
