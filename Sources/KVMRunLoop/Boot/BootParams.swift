/// Linux's `struct boot_params`, the "zero page" (Documentation/arch/x86/zero-page.rst): 4 KiB,
/// all zero except the setup header copied from the image and the fields a boot loader fills.
struct BootParams {
    static let size = 4096

    // Offsets in boot_params (zero-page.rst) and in the setup header (boot.rst).
    static let extRamdiskImage = 0x0C0
    static let extRamdiskSize = 0x0C4
    static let extCmdLinePtr = 0x0C8
    static let e820Entries = 0x1E8
    static let typeOfLoader = 0x210
    static let loadFlags = 0x211
    static let ramdiskImage = 0x218
    static let ramdiskSize = 0x21C
    static let heapEndPtr = 0x224
    static let cmdLinePtr = 0x228
    static let e820Table = 0x2D0
    /// E820_MAX_ENTRIES_ZEROPAGE.
    static let e820MaximumEntries = 128

    /// type_of_loader 0xFF: "undefined" boot loader (QEMU and Firecracker say the same).
    static let undefinedLoader: UInt8 = 0xFF
    /// loadflags CAN_USE_HEAP: heap_end_ptr is valid.
    static let canUseHeap: UInt8 = 0x80
    /// boot.rst's sample configuration for a bzImage: heap end 0xE000 into the real-mode
    /// segment, given as heap_end - 0x200. The 64-bit entry never runs the setup code that
    /// reads it; it is filled in so the header says what a loader is expected to say.
    static let heapEnd: UInt16 = 0xE000 - 0x200

    private(set) var bytes = [UInt8](repeating: 0, count: size)

    /// A zero page holding the kernel's setup header at 0x1F1, as the protocol says to start.
    init(setupHeader: [UInt8]) {
        let start = Int(SetupHeader.start)
        bytes.replaceSubrange(start..<start + setupHeader.count, with: setupHeader)
    }

    /// Fills the loader's fields: who we are, the command line, the initrd and the e820 map.
    mutating func fill(commandLine: UInt64, ramdisk: Range<UInt64>?, memoryMap: [MemoryMapEntry]) {
        bytes[Self.typeOfLoader] = Self.undefinedLoader
        bytes[Self.loadFlags] |= Self.canUseHeap
        put(UInt64(Self.heapEnd), count: 2, at: Self.heapEndPtr)
        putSplit(commandLine, low: Self.cmdLinePtr, high: Self.extCmdLinePtr)
        if let ramdisk {
            putSplit(ramdisk.lowerBound, low: Self.ramdiskImage, high: Self.extRamdiskImage)
            putSplit(UInt64(ramdisk.count), low: Self.ramdiskSize, high: Self.extRamdiskSize)
        } else {
            // The image's header may carry stale values; no initrd is zero address and size.
            putSplit(0, low: Self.ramdiskImage, high: Self.extRamdiskImage)
            putSplit(0, low: Self.ramdiskSize, high: Self.extRamdiskSize)
        }
        let entries = memoryMap.prefix(Self.e820MaximumEntries)
        bytes[Self.e820Entries] = UInt8(entries.count)
        for (i, entry) in entries.enumerated() {
            let at = Self.e820Table + i * 20
            put(entry.start, count: 8, at: at)
            put(entry.length, count: 8, at: at + 8)
            put(UInt64(entry.type), count: 4, at: at + 16)
        }
    }

    private mutating func put(_ value: UInt64, count: Int, at offset: Int) {
        bytes.replaceSubrange(offset..<offset + count, with: littleEndianBytes(value, count: count))
    }

    /// A 64-bit value kept as a 32-bit header field plus its ext_ field in boot_params.
    private mutating func putSplit(_ value: UInt64, low: Int, high: Int) {
        put(value & 0xFFFF_FFFF, count: 4, at: low)
        put(value >> 32, count: 4, at: high)
    }
}
