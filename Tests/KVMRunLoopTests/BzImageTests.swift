import Testing
@testable import KVMRunLoop

/// A Linux bzImage built in memory: boot sector and setup sectors with the setup header at
/// 0x1F1, then the protected-mode kernel (`kernel` bytes).
struct BzImageBuilder {
    var setupSectors: UInt8 = 1
    var version: UInt16 = 0x020F
    var loadFlags: UInt8 = 0x01         // LOADED_HIGH
    var extendedLoadFlags: UInt16 = 0x0003  // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    var relocatable = true
    var preferredAddress: UInt64 = 0x100_0000
    var kernelAlignment: UInt32 = 0x20_0000
    var initSize: UInt32 = 0x40_0000
    var commandLineSize: UInt32 = 2047
    var initrdAddressMax: UInt32 = 0x7FFF_FFFF
    /// The jump's displacement at 0x201: the header ends at 0x202 + this.
    var headerLength: UInt8 = 0x6A      // protocol 2.15 headers end at 0x26C
    var kernel: [UInt8] = (0..<0x1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    var systemSize: UInt32?

    var kernelOffset: Int { (Int(setupSectors == 0 ? 4 : setupSectors) + 1) * 512 }

    func build() -> [UInt8] {
        var image = [UInt8](repeating: 0, count: kernelOffset)
        func put(_ value: UInt64, _ count: Int, at offset: Int) {
            for i in 0..<count { image[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        put(UInt64(setupSectors), 1, at: 0x1F1)
        put(UInt64(systemSize ?? UInt32((kernel.count + 15) / 16)), 4, at: 0x1F4)
        put(0xFFFF, 2, at: 0x1FA)       // vid_mode "normal"
        put(0xAA55, 2, at: 0x1FE)
        put(0xEB, 1, at: 0x200)
        put(UInt64(headerLength), 1, at: 0x201)
        put(0x5372_6448, 4, at: 0x202)  // "HdrS"
        put(UInt64(version), 2, at: 0x206)
        put(UInt64(loadFlags), 1, at: 0x211)
        put(0x10_0000, 4, at: 0x214)    // code32_start
        put(0xDEAD_BEEF, 4, at: 0x218)  // stale ramdisk_image, which the loader must overwrite
        put(UInt64(initrdAddressMax), 4, at: 0x22C)
        put(UInt64(kernelAlignment), 4, at: 0x230)
        put(relocatable ? 1 : 0, 1, at: 0x234)
        put(21, 1, at: 0x235)           // min_alignment
        put(UInt64(extendedLoadFlags), 2, at: 0x236)
        put(UInt64(commandLineSize), 4, at: 0x238)
        put(preferredAddress, 8, at: 0x258)
        put(UInt64(initSize), 4, at: 0x260)
        put(0x190, 4, at: 0x264)        // handover_offset
        return image + kernel
    }
}

@Suite struct BzImageTests {
    static let zeroPage: UInt64 = 0x7000

    static func load(_ builder: BzImageBuilder = BzImageBuilder(), ram: UInt64 = 128 * MiB,
                     commandLine: String = "console=ttyS0 nokaslr", initrd: [UInt8]? = nil,
                     memory: FakeMemory? = nil) throws -> (LoadedGuest, FakeMemory) {
        let memory = memory ?? FakeMemory(size: ram)
        let guest = try loadGuest(image: builder.build(), into: memory, commandLine: commandLine, cpuCount: 1,
                                  initrd: initrd)
        return (guest, memory)
    }

    @Test func detectedBeforeELFAndMultiboot() {
        let image = BzImageBuilder().build()
        #expect(BzImage.hasMagic(image))
        #expect(!BzImage.hasMagic(Array(image.prefix(0x205))))
        var noBootFlag = image
        noBootFlag[0x1FE] = 0
        #expect(!BzImage.hasMagic(noBootFlag))
    }

    @Test func loadsAtPreferredAddressAndEntersLongMode() throws {
        let builder = BzImageBuilder()
        let (guest, memory) = try Self.load(builder)
        #expect(guest.bootProtocol == .linux)
        #expect(guest.entry.count == 1)
        #expect(guest.loadedRanges == [0x100_0000..<0x100_1000])
        #expect(try memory.read(at: 0x100_0000, count: builder.kernel.count) == builder.kernel)

        let state = guest.entry[0]
        #expect(state.rip == 0x100_0200)
        #expect(state.rsi == Self.zeroPage)
        #expect(state.rflags == 0x2)
        #expect(state.cr0 & 0x8000_0001 == 0x8000_0001)   // PG | PE
        #expect(state.cr4 & 0x20 == 0x20)                  // PAE
        #expect(state.efer == 0x500)                       // LME | LMA
        #expect(state.cr3 == 0x1000)
        #expect(state.cs == Segment.flatCode(selector: 0x10, long: true))
        for data in [state.ds, state.es, state.ss] { #expect(data == Segment.flatData(selector: 0x18)) }

        // The GDT in memory has the same descriptors at __BOOT_CS and __BOOT_DS.
        #expect(state.gdt == DescriptorTable(base: 0x500, limit: 0x1F))
        #expect(try memory.readU64(at: 0x500) == 0)
        #expect(try memory.readU64(at: 0x508) == 0)
        #expect(try memory.readU64(at: 0x510) == 0x00AF_9B00_0000_FFFF)  // flat code64, execute/read
        #expect(try memory.readU64(at: 0x518) == 0x00CF_9300_0000_FFFF)  // flat data, read/write

        // Identity map: PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB, large pages.
        #expect(try memory.readU64(at: 0x1000) == 0x2003)
        #expect(try memory.readU64(at: 0x2000) == 0x3003)
        #expect(try memory.readU64(at: 0x3000 + 8 * 8) == 0x100_0083)
    }

    @Test func zeroPage() throws {
        let builder = BzImageBuilder()
        let initrd = [UInt8](repeating: 0x5A, count: 5000)
        let ram: UInt64 = 128 * MiB
        let (_, memory) = try Self.load(builder, ram: ram, commandLine: "console=ttyS0 nokaslr", initrd: initrd)
        let zp = Self.zeroPage
        let image = builder.build()

        // The setup header as the image declares it, then the loader's fields over it.
        let headerEnd = 0x202 + Int(builder.headerLength)
        var expected = Array(image[0x1F1..<headerEnd])
        let page = try memory.read(at: zp, count: 4096)
        expected[0x210 - 0x1F1] = 0xFF                      // type_of_loader
        expected[0x211 - 0x1F1] |= 0x80                     // CAN_USE_HEAP
        for offset in [0x218, 0x21C, 0x224, 0x228] {        // ramdisk, heap_end_ptr, cmd_line_ptr
            let at = offset - 0x1F1
            expected.replaceSubrange(at..<at + 4, with: page[offset..<offset + 4])
        }
        #expect(Array(page[0x1F1..<headerEnd]) == expected)
        #expect(page[0x1EF] == 0)                           // sentinel
        #expect(page[0..<0xC0].allSatisfy { $0 == 0 })    // screen_info, apm, ist, acpi_rsdp_addr: none

        #expect(try memory.read(at: zp + 0x210, count: 1)[0] == 0xFF)
        #expect(try memory.read(at: zp + 0x211, count: 1)[0] == 0x81)
        #expect(try memory.readU16(at: zp + 0x224) == 0xDE00)
        let commandLine = UInt64(try memory.readU32(at: zp + 0x228)) | UInt64(try memory.readU32(at: zp + 0xC8)) << 32
        #expect(commandLine == 0x9000)
        #expect(try memory.readCString(at: commandLine) == "console=ttyS0 nokaslr")

        let ramdisk = UInt64(try memory.readU32(at: zp + 0x218)) | UInt64(try memory.readU32(at: zp + 0xC0)) << 32
        let ramdiskSize = UInt64(try memory.readU32(at: zp + 0x21C)) | UInt64(try memory.readU32(at: zp + 0xC4)) << 32
        #expect(ramdiskSize == 5000)
        #expect(ramdisk % 4096 == 0)
        #expect(ramdisk == (ram - 5000) & ~0xFFF)
        #expect(try memory.read(at: ramdisk, count: 5000) == initrd)

        let count = Int(try memory.read(at: zp + 0x1E8, count: 1)[0])
        var entries: [[UInt64]] = []
        for i in 0..<UInt64(count) {
            let at = zp + 0x2D0 + i * 20
            entries.append([try memory.readU64(at: at), try memory.readU64(at: at + 8), UInt64(try memory.readU32(at: at + 16))])
        }
        #expect(entries == [[0, 0x10000, 2], [0x10000, 0x9FC00 - 0x10000, 1], [0x9FC00, 0x400, 2],
                            [0xF0000, 0x10000, 2], [MiB, ram - MiB, 1]])
    }

    @Test func noInitrdClearsTheRamdiskFields() throws {
        let (_, memory) = try Self.load(commandLine: "")
        #expect(try memory.readU32(at: Self.zeroPage + 0x218) == 0)
        #expect(try memory.readU32(at: Self.zeroPage + 0x21C) == 0)
        #expect(try memory.readCString(at: 0x9000) == "")
    }

    @Test func initrdStaysBelowInitrdAddrMax() throws {
        var builder = BzImageBuilder()
        builder.initrdAddressMax = 0x37FF_FFFF
        let (_, memory) = try Self.load(builder, ram: 2 * GiB, initrd: [1, 2, 3])
        #expect(try memory.readU32(at: Self.zeroPage + 0x218) == 0x37FF_F000)
        #expect(try memory.read(at: 0x37FF_F000, count: 3) == [1, 2, 3])
    }

    @Test func loadAddress() throws {
        var builder = BzImageBuilder()
        builder.preferredAddress = 0x110_0000     // rounded up to kernel_alignment (2 MiB)
        #expect(try Self.load(builder).0.entry[0].rip == 0x120_0200)
        builder.relocatable = false               // not relocatable: the classic 1 MiB
        #expect(try Self.load(builder).0.entry[0].rip == 0x10_0200)
    }

    /// Where head_64.S writes the kernel out and jumps: max(load, LOAD_PHYSICAL_ADDR), the
    /// kernel's link addresses starting at __START_KERNEL_map + LOAD_PHYSICAL_ADDR.
    @Test func decompressedKernel() throws {
        var builder = BzImageBuilder()
        var kernel = try #require(try Self.load(builder).0.decompressedKernel)
        #expect(kernel == DecompressedKernel(entry: 0x100_0000,
                                             mapping: ImageMapping(virtual: 0xFFFF_FFFF_8100_0000, physical: 0x100_0000,
                                                                   size: 0x40_0000),
                                             bootParams: Self.zeroPage))
        builder.preferredAddress = 0x110_0000     // loaded at the aligned 0x1200000: the output is there
        kernel = try #require(try Self.load(builder).0.decompressedKernel)
        #expect(kernel.entry == 0x120_0000)
        #expect(kernel.mapping == ImageMapping(virtual: 0xFFFF_FFFF_8110_0000, physical: 0x120_0000, size: 0x40_0000))
        builder.relocatable = false               // loaded at 1 MiB, written out at LOAD_PHYSICAL_ADDR
        kernel = try #require(try Self.load(builder).0.decompressedKernel)
        #expect(kernel.entry == 0x110_0000)
        #expect(kernel.mapping.physical == 0x110_0000)
        // Other images have none.
        let elf = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0x90])]).build()
        #expect(try loadGuest(image: elf, into: FakeMemory(size: 128 * MiB), commandLine: "",
                              cpuCount: 1).decompressedKernel == nil)
    }

    @Test func setupSectorsZeroMeansFour() throws {
        var builder = BzImageBuilder()
        builder.setupSectors = 0
        let (_, memory) = try Self.load(builder)
        #expect(try memory.read(at: 0x100_0000, count: 16) == Array(builder.kernel.prefix(16)))
    }

    // MARK: refusals, each before anything is written

    static func expectRefused(_ builder: BzImageBuilder, image: [UInt8]? = nil, ram: UInt64 = 128 * MiB,
                              commandLine: String = "", initrd: [UInt8]? = nil, containing text: String,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        let memory = FakeMemory(size: ram)
        expectLoadError(containing: text, sourceLocation: sourceLocation) {
            try loadGuest(image: image ?? builder.build(), into: memory, commandLine: commandLine, cpuCount: 1,
                          initrd: initrd)
        }
        #expect(memory.writeCount == 0, sourceLocation: sourceLocation)
    }

    @Test func tooOldProtocol() {
        var builder = BzImageBuilder()
        builder.version = 0x020B
        Self.expectRefused(builder, containing: "boot protocol 2.11; gdbvmm enters Linux through the 64-bit boot protocol, which needs protocol 2.12")
        builder.version = 0
        Self.expectRefused(builder, containing: "older than 2.00")
    }

    @Test func no64BitEntry() {
        var builder = BzImageBuilder()
        builder.extendedLoadFlags = 0x2
        Self.expectRefused(builder, containing: "lacks XLF_KERNEL_64")
    }

    @Test func zImage() {
        var builder = BzImageBuilder()
        builder.loadFlags = 0
        Self.expectRefused(builder, containing: "zImage")
    }

    @Test func headerEndsTooEarly() {
        var builder = BzImageBuilder()
        builder.headerLength = 0x50
        Self.expectRefused(builder, containing: "before the protocol 2.12 fields")
    }

    @Test func setupSectorsPastTheFile() {
        var builder = BzImageBuilder()
        builder.setupSectors = 200
        let image = Array(builder.build().prefix(0x1000))
        Self.expectRefused(builder, image: image, containing: "setup_sects = 200 puts the protected-mode kernel at file offset 0x19200")
    }

    @Test func kernelTooShortForItsEntry() {
        var builder = BzImageBuilder()
        builder.kernel = [UInt8](repeating: 0x90, count: 0x200)
        Self.expectRefused(builder, containing: "its 64-bit entry at +0x200 must follow")
    }

    @Test func truncatedKernel() {
        var builder = BzImageBuilder()
        builder.systemSize = 0x200      // says 8 KiB; the file has 4 KiB of kernel
        Self.expectRefused(builder, containing: "syssize says the protected-mode kernel is 8 KiB")
        builder.systemSize = 0x101      // 16 bytes more than the file: too much
        Self.expectRefused(builder, containing: "syssize says the protected-mode kernel is 4.0 KiB")
    }

    /// syssize counts 16-byte units, rounded up; a file not padded to 16 bytes still loads.
    @Test func unpaddedKernelLoads() throws {
        var builder = BzImageBuilder()
        builder.kernel = [UInt8](repeating: 0x90, count: 0x1000 - 8)
        builder.systemSize = 0x100
        #expect(try Self.load(builder).0.loadedRanges == [0x100_0000..<0x100_0FF8])
    }

    @Test func initSizeLargerThanRAM() {
        var builder = BzImageBuilder()
        builder.initSize = 0x1000_0000
        Self.expectRefused(builder, containing: "the kernel needs 256 MiB of RAM from its load address 0x1000000")
        builder.initSize = UInt32.max
        builder.preferredAddress = UInt64.max - 0x10
        Self.expectRefused(builder, containing: "pref_address")
    }

    /// Found by the loader fuzzer: a pref_address that aligns without overflowing but leaves no
    /// room for init_size used to trap while the error message was built.
    @Test func preferredAddressAtTheTopOfTheAddressSpace() {
        for address: UInt64 in [0xFFFF_FFFF_FFF0_0000, 0xFFFF_FFFF_FE00_0000, 1 << 60] {
            var builder = BzImageBuilder()
            builder.preferredAddress = address
            builder.kernelAlignment = 0x10_0000   // the fuzzer's input: aligning does not overflow
            Self.expectRefused(builder, containing: "corrupt")
        }
    }

    @Test func preferredAddressBelowOneMiB() {
        var builder = BzImageBuilder()
        builder.preferredAddress = 0x8000
        builder.kernelAlignment = 0x1000
        Self.expectRefused(builder, containing: "below 1 MiB")
    }

    @Test func commandLineTooLong() {
        var builder = BzImageBuilder()
        builder.commandLineSize = 10
        Self.expectRefused(builder, commandLine: "console=ttyS0", containing: "at most 10 (cmdline_size in its setup header)")
        builder.commandLineSize = 0xFFFF_FFFF
        Self.expectRefused(builder, commandLine: String(repeating: "x", count: 0x7000),
                           containing: "at most 28671 (the room gdbvmm gives it)")
    }

    @Test func initrdTooLarge() {
        Self.expectRefused(BzImageBuilder(), ram: 32 * MiB, initrd: [UInt8](repeating: 1, count: 16 << 20),
                           containing: "the initrd is 16 MiB, but only 12 MiB of guest RAM lie between the end of the kernel's init_size area (0x1400000)")
        Self.expectRefused(BzImageBuilder(), initrd: [], containing: "the initrd file is empty")
    }

    /// Every prefix and every single-byte corruption of the header is either loaded or refused
    /// with a LoadError; none crashes.
    @Test func truncationsAndCorruptionsNeverCrash() {
        let image = BzImageBuilder().build()
        for length in stride(from: 0, through: image.count, by: 7) {
            _ = try? loadGuest(image: Array(image.prefix(length)), into: FakeMemory(size: 64 * MiB), commandLine: "x",
                               cpuCount: 1, initrd: [1])
        }
        for offset in 0x1F1..<0x270 {
            for value: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                var corrupt = image
                corrupt[offset] = value
                _ = try? loadGuest(image: corrupt, into: FakeMemory(size: 64 * MiB), commandLine: "x", cpuCount: 1,
                                   initrd: [1])
            }
        }
    }

    @Test func otherProtocolsRefuseAnInitrd() {
        let elf = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0x90])]).build()
        expectLoadError(containing: "--initrd is handed to Linux bzImage and PVH kernels only; this image boots through the direct ELF64 entry") {
            try loadGuest(image: elf, into: FakeMemory(size: 8 * MiB), commandLine: "", cpuCount: 1, initrd: [1])
        }
    }

    @Test func pvhModuleList() throws {
        let memory = FakeMemory(size: 64 * MiB)
        let initrd = [UInt8](repeating: 0xA5, count: 10000)
        _ = try loadGuest(image: PVHTests.kernel(), into: memory, commandLine: "", cpuCount: 1, initrd: initrd)
        let info: UInt64 = 0x9000
        #expect(try memory.readU32(at: info + 0x0C) == 1)
        let list = try memory.readU64(at: info + 0x10)
        #expect(list == 0x9100)
        let address = try memory.readU64(at: list)
        #expect(address == (64 * MiB - 10000) & ~0xFFF)
        #expect(try memory.readU64(at: list + 8) == 10000)
        #expect(try memory.readU64(at: list + 16) == 0)
        #expect(try memory.read(at: address, count: 10000) == initrd)

        let tiny = FakeMemory(size: 2 * MiB)
        expectLoadError(containing: "the initrd is 2 MiB, but only") {
            try loadGuest(image: PVHTests.kernel(), into: tiny, commandLine: "", cpuCount: 1,
                          initrd: [UInt8](repeating: 0, count: 2 << 20))
        }
        #expect(tiny.writeCount == 0)
    }
}
