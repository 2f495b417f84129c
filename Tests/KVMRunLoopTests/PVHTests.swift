import Testing
@testable import KVMRunLoop

@Suite struct PVHTests {
    static func kernel(is64: Bool = true, entry: UInt64 = 0x100020) -> [UInt8] {
        ELFBuilder(is64: is64, entry: 0xFFFF_FFFF_8100_0000 & (is64 ? UInt64.max : 0xFFFF_FFFF), segments: [
            .init(at: 0x100000, virtual: is64 ? 0xFFFF_FFFF_8100_0000 : 0xC100_0000,
                  data: [UInt8](repeating: 0x90, count: 0x100), memorySize: 0x3000),
        ], notes: [pvhNote(entry, size: is64 ? 8 : 4)]).build()
    }

    @Test func startInfo() throws {
        let ram: UInt64 = 256 * MiB
        let memory = FakeMemory(size: ram)
        let guest = try loadGuest(image: Self.kernel(), into: memory, commandLine: "earlyprintk=ttyS0", cpuCount: 2)
        #expect(guest.bootProtocol == .pvh)
        #expect(guest.loadedRanges == [0x100000..<0x103000])
        #expect(guest.entry.count == 1)
        let state = guest.entry[0]
        #expect(state.rip == 0x100020)
        #expect(state.rbx == 0x9000)
        #expect(state.cr0 == 0x11 && state.cr4 == 0 && state.efer == 0)
        #expect(state.rflags == 0x2)
        #expect(state.cs == Segment.flatCode(selector: 0x08, long: false))
        #expect(state.ss == Segment.flatData(selector: 0x10))
        #expect(try memory.readU64(at: 0x508) == 0x00CF_9B00_0000_FFFF)

        let info: UInt64 = 0x9000
        #expect(try memory.readU32(at: info) == 0x336E_C578)
        #expect(try memory.readU32(at: info + 0x04) == 1)
        #expect(try memory.readU32(at: info + 0x08) == 0)
        #expect(try memory.readU32(at: info + 0x0C) == 0)
        #expect(try memory.readU64(at: info + 0x10) == 0)
        #expect(try memory.readCString(at: try memory.readU64(at: info + 0x18)) == "earlyprintk=ttyS0")
        #expect(try memory.readU64(at: info + 0x20) == 0)
        let map = try memory.readU64(at: info + 0x28)
        let count = try memory.readU32(at: info + 0x30)
        #expect(count == 4)
        var entries: [[UInt64]] = []
        for i in 0..<UInt64(count) {
            let at = map + i * 24
            entries.append([try memory.readU64(at: at), try memory.readU64(at: at + 8), UInt64(try memory.readU32(at: at + 16))])
            #expect(try memory.readU32(at: at + 20) == 0)
        }
        #expect(entries == [[0, 0x9FC00, 1], [0x9FC00, 0x400, 2], [0xF0000, 0x10000, 2], [MiB, ram - MiB, 1]])
    }

    @Test func elf32PVH() throws {
        let guest = try loadGuest(image: Self.kernel(is64: false), into: FakeMemory(size: 8 * MiB), commandLine: "",
                                  cpuCount: 1)
        #expect(guest.bootProtocol == .pvh)
        #expect(guest.entry[0].rip == 0x100020)
    }

    @Test func entryMustBeInASegment() {
        let memory = FakeMemory(size: 8 * MiB)
        expectLoadError(containing: "PVH entry point 0x500000") {
            try loadGuest(image: Self.kernel(entry: 0x500000), into: memory, commandLine: "", cpuCount: 1)
        }
        #expect(memory.writeCount == 0)
    }

    /// An ELF64 file with an unusable multiboot header still boots through its PVH note.
    @Test func pvhWinsOverUnusableMultiboot() throws {
        var builder = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [0x90, 0x90])],
                                 notes: [pvhNote(0x100001)])
        builder.preamble = multibootHeader()
        let guest = try loadGuest(image: builder.build(), into: FakeMemory(size: 4 * MiB), commandLine: "", cpuCount: 1)
        #expect(guest.bootProtocol == .pvh)
        #expect(guest.entry[0].rip == 0x100001)
    }
}
