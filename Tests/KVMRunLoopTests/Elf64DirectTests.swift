import Testing
@testable import KVMRunLoop

@Suite struct Elf64DirectTests {
    static func kernel(entry: UInt64 = 0x100000, segments: [ELFBuilder.Segment]? = nil) -> [UInt8] {
        ELFBuilder(entry: entry, segments: segments ?? [
            .init(at: 0x100000, data: [0xF4, 0xEB, 0xFD, 0x90]),
            .init(at: 0x200000, data: [9, 8, 7], memorySize: 0x1800),
        ]).build()
    }

    @Test func loadsSegmentsAndZeroesBss() throws {
        let memory = FakeMemory(size: 64 * MiB)
        memory.fill(0xAA, at: 0x200000, count: 0x2000)
        let guest = try loadGuest(image: Self.kernel(), into: memory, commandLine: "ignored", cpuCount: 1)
        #expect(guest.bootProtocol == .elf64Direct)
        #expect(guest.loadedRanges == [0x100000..<0x100004, 0x200000..<0x201800])
        #expect(try memory.read(at: 0x100000, count: 4) == [0xF4, 0xEB, 0xFD, 0x90])
        #expect(try memory.read(at: 0x200000, count: 4) == [9, 8, 7, 0])
        #expect(try memory.read(at: 0x2017FF, count: 2) == [0, 0xAA])
    }

    @Test func entryStatePerVCPU() throws {
        let memory = FakeMemory(size: 64 * MiB)
        let cpus = 3
        let guest = try loadGuest(image: Self.kernel(), into: memory, commandLine: "", cpuCount: cpus)
        #expect(guest.entry.count == cpus)
        var stacks: Set<UInt64> = []
        for (i, state) in guest.entry.enumerated() {
            #expect(state.rip == 0x100000)
            #expect(state.rdi == UInt64(i))
            #expect(state.rsi == UInt64(cpus))
            #expect(state.rsp % 16 == 0)
            #expect(state.rsp > 0x10000 && state.rsp <= 0x90000)
            #expect(state.cr0 == 0x8005_0033)
            #expect(state.cr3 == 0x1000)
            #expect(state.cr4 == 0x620)
            #expect(state.efer == 0x500)
            #expect(state.rflags == 0x2)
            #expect(state.cs == Segment.flatCode(selector: 0x08, long: true))
            #expect(state.ds == Segment.flatData(selector: 0x10))
            #expect(state.gdt == DescriptorTable(base: 0x500, limit: 31))
            stacks.insert(state.rsp)
        }
        let sorted = stacks.sorted()
        #expect(sorted.count == cpus)
        // Equal slices: each vCPU's stack top is a slice above the previous one.
        let slice = sorted[0] - 0x10000
        #expect(sorted == (1...cpus).map { 0x10000 + UInt64($0) * slice })
        #expect(slice >= 0x80000 / UInt64(cpus) - 16)
    }

    @Test func gdtMatchesSegments() throws {
        let memory = FakeMemory(size: 16 * MiB)
        let state = try loadGuest(image: Self.kernel(), into: memory, commandLine: "", cpuCount: 1).entry[0]
        #expect(try memory.readU64(at: 0x500) == 0)
        #expect(try memory.readU64(at: 0x508) == 0x00AF_9B00_0000_FFFF)
        #expect(try memory.readU64(at: 0x510) == 0x00CF_9300_0000_FFFF)
        #expect(try memory.readU64(at: 0x518) == 0x00CF_9B00_0000_FFFF)
        #expect(try memory.readU64(at: 0x508) == state.cs.gdtDescriptor)
        #expect(try memory.readU64(at: 0x510) == state.ss.gdtDescriptor)
    }

    @Test(arguments: [16 * MiB, 1 * GiB, 3 * GiB + 2 * MiB, 13 * GiB])
    func identityMapCoversRAM(ram: UInt64) throws {
        let memory = FakeMemory(size: ram)
        let state = try loadGuest(image: Self.kernel(), into: memory, commandLine: "", cpuCount: 2).entry[0]
        let paging = PagingState(cr0: state.cr0, cr3: state.cr3, cr4: state.cr4, efer: state.efer)
        #expect(paging.mode == .longMode4)
        for address in [0, 0x1234, 0x100000, 0x1F_FFFF, 0x20_0000, ram / 2 + 0x123, ram - 1] as [UInt64] {
            let translation = PageWalker.translate(address, paging: paging, memory: memory)
            #expect(translation == Translation(physical: address, pageSize: 2 * MiB, writable: true, user: false,
                                               executable: true))
        }
        let mapped = (ram + GiB - 1) / GiB * GiB
        #expect(PageWalker.translate(mapped, paging: paging, memory: memory) == nil)
        #expect(PageWalker.mappings(paging: paging, memory: memory) == [
            MappedRange(virtualStart: 0, physicalStart: 0, size: mapped, writable: true, user: false, executable: true),
        ])
    }

    @Test func tooMuchRAMToIdentityMap() {
        expectLoadError(containing: "identity-maps at most 13 GiB") {
            try loadGuest(image: Self.kernel(), into: FakeMemory(size: 14 * GiB), commandLine: "", cpuCount: 1)
        }
    }

    @Test func tooManyVCPUs() throws {
        _ = try loadGuest(image: Self.kernel(), into: FakeMemory(size: 16 * MiB), commandLine: "", cpuCount: 512)
        expectLoadError(containing: "use at most 512 vCPUs") {
            try loadGuest(image: Self.kernel(), into: FakeMemory(size: 16 * MiB), commandLine: "", cpuCount: 513)
        }
        expectLoadError(containing: "at least one vCPU") {
            try loadGuest(image: Self.kernel(), into: FakeMemory(size: 16 * MiB), commandLine: "", cpuCount: 0)
        }
    }

    @Test func reservedAreaOverlap() {
        let image = Self.kernel(entry: 0x8F000, segments: [.init(at: 0x8F000, data: [UInt8](repeating: 0x90, count: 0x2000))])
        let memory = FakeMemory(size: 16 * MiB)
        expectLoadError(containing: "segment 0 (0x8f000+0x2000) overlaps the area gdbvmm reserves for page tables "
            + "and stacks [0x0, 0x90000); link the guest at 1 MiB or above") {
            try loadGuest(image: image, into: memory, commandLine: "", cpuCount: 1)
        }
        #expect(memory.writeCount == 0)
    }

    @Test func segmentOutsideRAM() {
        let image = Self.kernel(segments: [.init(at: 0x100000, data: [0x90]), .init(at: 0x7FF000, data: [1], memorySize: 0x5000)])
        let memory = FakeMemory(size: 8 * MiB)
        expectLoadError(containing: "segment 1 (0x7ff000+0x5000) lies outside guest RAM (8 MiB); give more memory with -m") {
            try loadGuest(image: image, into: memory, commandLine: "", cpuCount: 1)
        }
        #expect(memory.writeCount == 0)
    }

    @Test func overlappingSegments() {
        let image = Self.kernel(segments: [.init(at: 0x100000, data: [0x90], memorySize: 0x2000), .init(at: 0x101000, data: [1])])
        expectLoadError(containing: "segment 0 (0x100000+0x2000) and segment 1 (0x101000+0x1) overlap") {
            try loadGuest(image: image, into: FakeMemory(size: 8 * MiB), commandLine: "", cpuCount: 1)
        }
    }

    @Test func entryOutsideSegments() {
        expectLoadError(containing: "entry point 0x400000 is not inside any loaded segment") {
            try loadGuest(image: Self.kernel(entry: 0x400000), into: FakeMemory(size: 8 * MiB), commandLine: "", cpuCount: 1)
        }
        let higherHalf = Self.kernel(entry: 0xFFFF_FFFF_8010_0000,
                                     segments: [.init(at: 0x100000, virtual: 0xFFFF_FFFF_8010_0000, data: [0x90])])
        expectLoadError(containing: "is a virtual address of segment 0") {
            try loadGuest(image: higherHalf, into: FakeMemory(size: 8 * MiB), commandLine: "", cpuCount: 1)
        }
    }

    @Test func tooLittleRAM() {
        expectLoadError(containing: "guest RAM is 1 MiB; gdbvmm needs at least 2 MiB; give more memory with -m") {
            try loadGuest(image: Self.kernel(), into: FakeMemory(size: MiB), commandLine: "", cpuCount: 1)
        }
    }
}

@Suite struct FormatDetectionTests {
    @Test func elf32WithoutBootInformation() {
        let image = ELFBuilder(is64: false, entry: 0x100000, segments: [.init(at: 0x100000, data: [0x90])]).build()
        expectLoadError(containing: "ELF32 with neither a multiboot header nor a PVH note") {
            try loadGuest(image: image, into: FakeMemory(size: 8 * MiB), commandLine: "", cpuCount: 1)
        }
    }

    @Test func notAKernel() {
        expectLoadError(containing: "neither ELF nor has a multiboot header") {
            try loadGuest(image: Array("#!/bin/sh\necho hi\n".utf8), into: FakeMemory(size: 8 * MiB), commandLine: "",
                          cpuCount: 1)
        }
        expectLoadError(containing: "neither ELF nor has a multiboot header") {
            try loadGuest(image: [], into: FakeMemory(size: 8 * MiB), commandLine: "", cpuCount: 1)
        }
    }

    @Test func noLoadableSegments() {
        let image = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [], memorySize: 0)]).build()
        expectLoadError(containing: "no loadable segments") {
            try loadGuest(image: image, into: FakeMemory(size: 8 * MiB), commandLine: "", cpuCount: 1)
        }
    }

    @Test func sizesReadNaturally() {
        #expect(byteCount(128 * MiB) == "128 MiB")
        #expect(byteCount(3 * GiB / 2) == "1536 MiB")
        #expect(byteCount(1536 + 512) == "2 KiB")
        #expect(byteCount(1536 + 100) == "1.5 KiB")
        #expect(byteCount(100) == "100 bytes")
    }
}
