import Testing
@testable import KVMRunLoop

@Suite struct ELFTests {
    static let code: [UInt8] = [0xF4, 0xEB, 0xFD] + [UInt8](repeating: 0x90, count: 29)

    static func sample64() -> [UInt8] {
        ELFBuilder(entry: 0x100000, segments: [
            .init(at: 0x100000, data: code),
            .init(at: 0x200000, virtual: 0xFFFF_FFFF_8020_0000, data: [1, 2, 3, 4], memorySize: 0x2000),
        ]).build()
    }

    @Test func parsesELF64() throws {
        let elf = try ELFImage(parsing: Self.sample64())
        #expect(elf.elfClass == .elf64)
        #expect(elf.machine == 62)
        #expect(elf.entry == 0x100000)
        #expect(elf.loadSegments.count == 2)
        let data = elf.loadSegments[1]
        #expect(data.index == 1)
        #expect(data.physicalAddress == 0x200000)
        #expect(data.virtualAddress == 0xFFFF_FFFF_8020_0000)
        #expect(data.fileSize == 4)
        #expect(data.memorySize == 0x2000)
        #expect(data.flags == 5)
        #expect(try elf.pvhEntry() == nil)
    }

    @Test func parsesELF32() throws {
        let image = ELFBuilder(is64: false, entry: 0x100010, segments: [.init(at: 0x100000, data: Self.code)]).build()
        let elf = try ELFImage(parsing: image)
        #expect(elf.elfClass == .elf32)
        #expect(elf.machine == 3)
        #expect(elf.entry == 0x100010)
        #expect(elf.loadSegments.map(\.physicalAddress) == [0x100000])
        #expect(elf.loadSegments[0].fileSize == UInt64(Self.code.count))
    }

    @Test func findsPVHNote() throws {
        for size in [4, 8] {
            let image = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: Self.code)],
                                   notes: [.init(name: "GNU", type: 3, descriptor: [1, 2, 3]), pvhNote(0x100004, size: size)])
                .build()
            let elf = try ELFImage(parsing: image)
            #expect(elf.notes.count == 2)
            #expect(elf.notes[0] == ELFNote(name: "GNU", type: 3, descriptor: [1, 2, 3]))
            #expect(try elf.pvhEntry() == 0x100004)
        }
    }

    @Test func rejectsPVHEntryAbove4GiB() {
        let image = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: Self.code)],
                               notes: [pvhNote(0x1_0000_0000, size: 8)]).build()
        #expect(throws: LoadError.self) { try ELFImage(parsing: image).pvhEntry() }
    }

    @Test func wrongMachine() {
        let image = ELFBuilder(is64: false, machine: 40, entry: 0, segments: [.init(at: 0x100000, data: [0])]).build()
        expectLoadError(containing: "machine is ARM, not x86") { try ELFImage(parsing: image) }
        let aarch64 = ELFBuilder(machine: 183, entry: 0, segments: [.init(at: 0x100000, data: [0])]).build()
        expectLoadError(containing: "machine is AArch64, not x86") { try ELFImage(parsing: aarch64) }
    }

    @Test func badIdentification() {
        var image = Self.sample64()
        image[5] = 2
        expectLoadError(containing: "big-endian") { try ELFImage(parsing: image) }
        image = Self.sample64()
        image[4] = 3
        expectLoadError(containing: "ELF class 3") { try ELFImage(parsing: image) }
        expectLoadError(containing: "truncated ELF header") { try ELFImage(parsing: Array(Self.sample64().prefix(40))) }
        expectLoadError(containing: "not an ELF file") { try ELFImage(parsing: [1, 2, 3, 4, 5]) }
    }

    @Test func relocatableObject() {
        var builder = ELFBuilder(entry: 0, segments: [.init(at: 0x100000, data: [0])])
        builder.type = 1
        expectLoadError(containing: "relocatable object") { try ELFImage(parsing: builder.build()) }
    }

    @Test func programHeaderPastEnd() {
        var image = Self.sample64()
        image[56] = 40  // e_phnum
        expectLoadError(containing: "program header 2 extends past end of file (offset 0xb0, file is 212 bytes)") { try ELFImage(parsing: image) }
    }

    @Test func fileSizeLargerThanMemorySize() {
        var builder = ELFBuilder(entry: 0x100000, segments: [.init(at: 0x100000, data: [1, 2, 3, 4], memorySize: 2)])
        builder.is64 = true
        expectLoadError(containing: "segment 0 has p_filesz 0x4 larger than p_memsz 0x2") {
            try ELFImage(parsing: builder.build())
        }
    }

    @Test func segmentWrapsAddressSpace() {
        let image = ELFBuilder(entry: 0, segments: [.init(at: UInt64.max - 1, data: [1, 2, 3, 4])]).build()
        expectLoadError(containing: "wraps around") { try ELFImage(parsing: image) }
    }

    /// Every prefix of a valid image must fail cleanly: the file ends with segment data, so no
    /// prefix is complete.
    @Test func everyTruncationThrows() {
        var multiboot32 = ELFBuilder(is64: false, entry: 0x100000, segments: [.init(at: 0x100000, data: Self.code)])
        multiboot32.preamble = multibootHeader()
        let images = [
            Self.sample64(),
            multiboot32.build(),
            ELFBuilder(is64: false, entry: 0x100000, segments: [.init(at: 0x100000, data: Self.code)],
                       notes: [pvhNote(0x100000)]).build(),
        ]
        for image in images {
            for length in 0..<image.count {
                let memory = FakeMemory(size: 64 * MiB)
                #expect(throws: LoadError.self, "prefix of \(length) bytes") {
                    try loadGuest(image: Array(image.prefix(length)), into: memory, commandLine: "", cpuCount: 1)
                }
                #expect(memory.writeCount == 0)
            }
        }
    }

    /// Random corruption of the headers must never crash the parser or the loader.
    @Test func corruptedHeadersNeverCrash() {
        let originals = [
            Self.sample64(),
            ELFBuilder(is64: false, entry: 0x100000, segments: [.init(at: 0x100000, data: Self.code)],
                       notes: [pvhNote(0x100000)]).build(),
        ]
        var random = XorShift(state: 0x9E37_79B9_7F4A_7C15)
        for original in originals {
            for _ in 0..<3000 {
                var image = original
                for _ in 0..<(1 + random.next() % 4) {
                    let position = Int(random.next() % UInt64(min(image.count, 200)))
                    image[position] = UInt8(truncatingIfNeeded: random.next())
                }
                let memory = FakeMemory(size: 16 * MiB)
                _ = try? loadGuest(image: image, into: memory, commandLine: "x", cpuCount: 2)
            }
        }
    }
}

/// Expects `body` to throw a LoadError whose message contains `text`.
func expectLoadError<T>(containing text: String, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws -> T) {
    do {
        _ = try body()
        Issue.record("expected a LoadError containing \"\(text)\"", sourceLocation: sourceLocation)
    } catch let error as LoadError {
        #expect(error.message.contains(text), "message was: \(error.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a LoadError, got \(error)", sourceLocation: sourceLocation)
    }
}
