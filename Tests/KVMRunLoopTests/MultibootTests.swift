import Testing
@testable import KVMRunLoop

@Suite struct MultibootTests {
    /// A flat binary (not ELF) with a kludge header at `headerOffset`, meant for load_addr
    /// 0x100000 with the header at 0x100000 + headerOffset.
    static func flatKernel(headerOffset: Int = 0x40, size: Int = 0x200, loadEnd: UInt32 = 0, bssEnd: UInt32 = 0,
                           entry: UInt32 = 0x100080) -> [UInt8] {
        var image = (0..<size).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
        let header = multibootHeader(kludge: (0x100000 + UInt32(headerOffset), 0x100000, loadEnd, bssEnd, entry))
        image.replaceSubrange(headerOffset..<headerOffset + header.count, with: header)
        return image
    }

    @Test func findsHeaderOnlyAlignedAndInFirst8KiB() throws {
        var image = [UInt8](repeating: 0, count: 0x3000)
        let header = multibootHeader()
        image.replaceSubrange(0x1FF4..<0x2000, with: header)  // the last aligned slot that fits
        #expect(try MultibootHeader.find(in: image)?.fileOffset == 0x1FF4)

        var late = [UInt8](repeating: 0, count: 0x3000)
        late.replaceSubrange(0x2000..<0x200C, with: header)
        #expect(try MultibootHeader.find(in: late) == nil)

        var unaligned = [UInt8](repeating: 0, count: 0x100)
        unaligned.replaceSubrange(0x22..<0x2E, with: header)
        #expect(try MultibootHeader.find(in: unaligned) == nil)
    }

    @Test func badChecksum() {
        var image = [UInt8](repeating: 0, count: 0x100)
        image.replaceSubrange(0x10..<0x1C, with: multibootHeader(badChecksum: true))
        expectLoadError(containing: "multiboot header at offset 0x10 has a bad checksum") {
            try MultibootHeader.find(in: image)
        }
    }

    @Test func requiredFlags() throws {
        var image = [UInt8](repeating: 0, count: 0x100)
        image.replaceSubrange(0..<12, with: multibootHeader(flags: 0x7))  // video mode: declined quietly
        #expect(try MultibootHeader.find(in: image)?.flags == 0x7)
        image.replaceSubrange(0..<12, with: multibootHeader(flags: 0x3 | 1 << 3 | 1 << 9))
        expectLoadError(containing: "flag bits 3, 9") { try MultibootHeader.find(in: image) }
    }

    @Test func kludgeLoadsFromTheRightFileOffset() throws {
        // Header 0x1000 into the file, header_addr 0x200000, load_addr 0x1FF800: the loaded
        // text starts 0x800 bytes before the header, i.e. at file offset 0x800.
        var image = (0..<0x2000).map { UInt8(truncatingIfNeeded: $0 >> 4) }
        image.replaceSubrange(0x1000..<0x1020,
                              with: multibootHeader(kludge: (0x200000, 0x1FF800, 0x200400, 0x201000, 0x1FF900)))
        let memory = FakeMemory(size: 8 * MiB)
        memory.fill(0xAA, at: 0x1FF000, count: 0x3000)
        let guest = try loadGuest(image: image, into: memory, commandLine: "", cpuCount: 1)
        #expect(guest.bootProtocol == .multiboot)
        #expect(guest.loadedRanges == [0x1FF800..<0x201000])
        #expect(try memory.read(at: 0x1FF800, count: 0xC00) == Array(image[0x800..<0x1400]))
        #expect(try memory.read(at: 0x200400, count: 0xC00) == [UInt8](repeating: 0, count: 0xC00))  // bss
        #expect(try memory.read(at: 0x1FF7FF, count: 1) == [0xAA])
        #expect(try memory.read(at: 0x201000, count: 1) == [0xAA])
        #expect(guest.entry.count == 1)
        #expect(guest.entry[0].rip == 0x1FF900)
    }

    @Test func kludgeLoadEndZeroMeansWholeFile() throws {
        let image = Self.flatKernel()
        let memory = FakeMemory(size: 4 * MiB)
        let guest = try loadGuest(image: image, into: memory, commandLine: "", cpuCount: 1)
        #expect(guest.loadedRanges == [0x100000..<0x100200])
        #expect(try memory.read(at: 0x100000, count: 0x200) == image)
    }

    @Test func kludgeErrors() {
        let memory = FakeMemory(size: 4 * MiB)
        expectLoadError(containing: "past the end of the file") {
            try loadGuest(image: Self.flatKernel(loadEnd: 0x100400), into: memory, commandLine: "", cpuCount: 1)
        }
        expectLoadError(containing: "entry_addr 0x300000 is outside the loaded image") {
            try loadGuest(image: Self.flatKernel(entry: 0x300000), into: memory, commandLine: "", cpuCount: 1)
        }
        expectLoadError(containing: "bss_end_addr") {
            try loadGuest(image: Self.flatKernel(loadEnd: 0x100100, bssEnd: 0x100080), into: memory, commandLine: "",
                          cpuCount: 1)
        }
        var before = Self.flatKernel()
        before.replaceSubrange(0x40..<0x60, with: multibootHeader(kludge: (0x100040, 0x0FF000, 0, 0, 0x100080)))
        expectLoadError(containing: "before the beginning of the file") {
            try loadGuest(image: before, into: memory, commandLine: "", cpuCount: 1)
        }
        var truncated = [UInt8](repeating: 0, count: 20)
        truncated.replaceSubrange(0..<20, with: multibootHeader(kludge: (0, 0, 0, 0, 0)).prefix(20))
        expectLoadError(containing: "ends before its address fields") {
            try loadGuest(image: truncated, into: memory, commandLine: "", cpuCount: 1)
        }
        var tooBig = Self.flatKernel()
        tooBig.replaceSubrange(0x40..<0x60, with: multibootHeader(kludge: (0x3FFF40, 0x3FFF00, 0, 0x500000, 0x3FFF80)))
        expectLoadError(containing: "lies outside guest RAM (4 MiB); give more memory with -m") {
            try loadGuest(image: tooBig, into: memory, commandLine: "", cpuCount: 1)
        }
        var overInfo = Self.flatKernel()
        overInfo.replaceSubrange(0x40..<0x60, with: multibootHeader(kludge: (0x8F40, 0x8F00, 0, 0, 0x8F80)))
        expectLoadError(containing: "overlaps the area gdbvmm reserves for the boot information [0x9000, 0xa000)") {
            try loadGuest(image: overInfo, into: memory, commandLine: "", cpuCount: 1)
        }
        #expect(memory.writeCount == 0)
    }

    @Test func kludgeWorksForELF64Too() throws {
        var builder = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [UInt8](repeating: 0x90, count: 64))])
        builder.preamble = multibootHeader(kludge: (0x100000, 0x100000, 0, 0, 0x100000))
        let image = builder.build()
        // The preamble sits at file offset 64 + 56; header_addr == load_addr loads from there.
        let memory = FakeMemory(size: 4 * MiB)
        let guest = try loadGuest(image: image, into: memory, commandLine: "", cpuCount: 1)
        #expect(guest.bootProtocol == .multiboot)
        #expect(try memory.read(at: 0x100000, count: 4) == le(0x1BAD_B002, 4))
    }

    @Test func elf64WithoutKludgeIsRefused() {
        var builder = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0x90])])
        builder.preamble = multibootHeader()
        expectLoadError(containing: "multiboot v1 cannot load ELF64 without the a.out kludge") {
            try loadGuest(image: builder.build(), into: FakeMemory(size: 4 * MiB), commandLine: "", cpuCount: 1)
        }
    }

    @Test func nonELFWithoutKludgeIsRefused() {
        var image = [UInt8](repeating: 0, count: 0x100)
        image.replaceSubrange(0..<12, with: multibootHeader())
        expectLoadError(containing: "without the a.out kludge (flag bit 16) and is not an ELF file") {
            try loadGuest(image: image, into: FakeMemory(size: 4 * MiB), commandLine: "", cpuCount: 1)
        }
    }

    /// A higher-half ELF32 kernel: loaded by physical address, entered at the physical
    /// address that corresponds to its virtual e_entry.
    @Test func elf32LoadsByPhysicalAddress() throws {
        var builder = ELFBuilder(is64: false, entry: 0xC010_0010, segments: [
            .init(at: 0x100000, virtual: 0xC010_0000, data: [UInt8](repeating: 0x90, count: 0x40)),
            .init(at: 0x102000, virtual: 0xC010_2000, data: [1, 2, 3], memorySize: 0x1000),
        ])
        builder.preamble = multibootHeader()
        let memory = FakeMemory(size: 32 * MiB)
        memory.fill(0xAA, at: 0x102000, count: 0x1000)
        let guest = try loadGuest(image: builder.build(), into: memory, commandLine: "", cpuCount: 4)
        #expect(guest.bootProtocol == .multiboot)
        #expect(guest.loadedRanges == [0x100000..<0x100040, 0x102000..<0x103000])
        #expect(guest.entry.count == 1)
        let state = guest.entry[0]
        #expect(state.rip == 0x100010)
        #expect(try memory.read(at: 0x102000, count: 5) == [1, 2, 3, 0, 0])
        #expect(try memory.read(at: 0x102FFF, count: 1) == [0])
    }

    @Test func entryStateAndGDT() throws {
        let memory = FakeMemory(size: 4 * MiB)
        let state = try loadGuest(image: Self.flatKernel(), into: memory, commandLine: "", cpuCount: 1).entry[0]
        #expect(state.rax == 0x2BAD_B002)
        #expect(state.rbx == 0x9000)
        #expect(state.cr0 == 0x11)
        #expect(state.cr4 == 0)
        #expect(state.efer == 0)
        #expect(state.rflags & (1 << 17 | 1 << 9) == 0)
        #expect(state.cs == Segment.flatCode(selector: 0x08, long: false))
        #expect(state.ds == Segment.flatData(selector: 0x10))
        #expect(state.ss == state.ds && state.es == state.ds && state.fs == state.ds && state.gs == state.ds)
        #expect(state.gdt == DescriptorTable(base: 0x500, limit: 23))
        #expect(try memory.readU64(at: 0x500) == 0)
        #expect(try memory.readU64(at: 0x508) == 0x00CF_9B00_0000_FFFF)
        #expect(try memory.readU64(at: 0x510) == 0x00CF_9300_0000_FFFF)
    }

    @Test func informationStructure() throws {
        let ram: UInt64 = 128 * MiB
        let memory = FakeMemory(size: ram)
        _ = try loadGuest(image: Self.flatKernel(), into: memory, commandLine: "console=ttyS0 debug", cpuCount: 1)
        let mbi: UInt64 = 0x9000
        let flags = try memory.readU32(at: mbi)
        #expect(flags == (1 << 0 | 1 << 2 | 1 << 6 | 1 << 9))
        #expect(try memory.readU32(at: mbi + 4) == 639)
        #expect(try memory.readU32(at: mbi + 8) == UInt32((ram - MiB) / 1024))
        #expect(try memory.readCString(at: UInt64(memory.readU32(at: mbi + 16))) == "console=ttyS0 debug")
        #expect(try memory.readCString(at: UInt64(memory.readU32(at: mbi + 64))) == "gdbvmm")

        let length = try memory.readU32(at: mbi + 44)
        var address = UInt64(try memory.readU32(at: mbi + 48))
        let end = address + UInt64(length)
        var entries: [[UInt64]] = []
        while address < end {
            let size = try memory.readU32(at: address)
            #expect(size == 20)
            entries.append([try memory.readU64(at: address + 4), try memory.readU64(at: address + 12),
                            UInt64(try memory.readU32(at: address + 20))])
            address += UInt64(size) + 4
        }
        #expect(entries == [[0, 0x9FC00, 1], [0x9FC00, 0x400, 2], [0xF0000, 0x10000, 2], [MiB, ram - MiB, 1]])
    }

    @Test func commandLineMustFit() {
        expectLoadError(containing: "command line is 5000 bytes") {
            try loadGuest(image: Self.flatKernel(), into: FakeMemory(size: 4 * MiB),
                          commandLine: String(repeating: "x", count: 5000), cpuCount: 1)
        }
    }
}
