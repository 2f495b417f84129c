/// Builds small ELF32/ELF64 executables in memory for the loader tests.
struct ELFBuilder {
    struct Segment {
        var type: UInt32 = 1
        var physicalAddress: UInt64
        var virtualAddress: UInt64
        var data: [UInt8]
        var memorySize: UInt64
        var flags: UInt32 = 5

        init(at physical: UInt64, virtual: UInt64? = nil, data: [UInt8], memorySize: UInt64? = nil, type: UInt32 = 1) {
            physicalAddress = physical
            virtualAddress = virtual ?? physical
            self.data = data
            self.memorySize = memorySize ?? UInt64(data.count)
            self.type = type
        }
    }

    struct Note {
        var name: String
        var type: UInt32
        var descriptor: [UInt8]
    }

    var is64: Bool
    var machine: UInt16
    var type: UInt16 = 2
    var entry: UInt64
    var segments: [Segment]
    var notes: [Note] = []
    /// Bytes placed right after the program headers (e.g. a multiboot header), in no segment.
    var preamble: [UInt8] = []

    init(is64: Bool = true, machine: UInt16? = nil, entry: UInt64, segments: [Segment], notes: [Note] = []) {
        self.is64 = is64
        self.machine = machine ?? (is64 ? 62 : 3)
        self.entry = entry
        self.segments = segments
        self.notes = notes
    }

    /// Header, program headers, preamble, note data, then each segment's data: the file ends
    /// with the last segment's bytes, so any truncation cuts into something the loader needs.
    func build() -> [UInt8] {
        let headerSize = is64 ? 64 : 52
        let phSize = is64 ? 56 : 32
        let phCount = segments.count + (notes.isEmpty ? 0 : 1)
        var offset = headerSize + phSize * phCount

        let preambleOffset = offset
        offset += preamble.count
        offset = (offset + 3) & ~3

        var noteData: [UInt8] = []
        for note in notes {
            let name = Array(note.name.utf8) + [0]
            noteData += le(UInt64(name.count), 4) + le(UInt64(note.descriptor.count), 4) + le(UInt64(note.type), 4)
            noteData += name + [UInt8](repeating: 0, count: (4 - name.count % 4) % 4)
            noteData += note.descriptor + [UInt8](repeating: 0, count: (4 - note.descriptor.count % 4) % 4)
        }
        let noteOffset = offset
        offset += noteData.count

        var segmentOffsets: [Int] = []
        for segment in segments {
            offset = (offset + 15) & ~15
            segmentOffsets.append(offset)
            offset += segment.data.count
        }

        var file = [UInt8](repeating: 0, count: offset)
        func put(_ bytes: [UInt8], at: Int) { file.replaceSubrange(at..<at + bytes.count, with: bytes) }

        put([0x7F, 0x45, 0x4C, 0x46, is64 ? 2 : 1, 1, 1, 0], at: 0)
        put(le(UInt64(type), 2) + le(UInt64(machine), 2) + le(1, 4), at: 16)
        if is64 {
            put(le(entry, 8) + le(UInt64(headerSize), 8) + le(0, 8) + le(0, 4), at: 24)
            put(le(UInt64(headerSize), 2) + le(UInt64(phSize), 2) + le(UInt64(phCount), 2) + le(64, 2) + le(0, 2) + le(0, 2), at: 52)
        } else {
            put(le(entry, 4) + le(UInt64(headerSize), 4) + le(0, 4) + le(0, 4), at: 24)
            put(le(UInt64(headerSize), 2) + le(UInt64(phSize), 2) + le(UInt64(phCount), 2) + le(40, 2) + le(0, 2) + le(0, 2), at: 40)
        }
        var phOffset = headerSize
        func programHeader(type: UInt32, flags: UInt32, offset: Int, vaddr: UInt64, paddr: UInt64,
                           filesz: UInt64, memsz: UInt64, align: UInt64) {
            if is64 {
                put(le(UInt64(type), 4) + le(UInt64(flags), 4) + le(UInt64(offset), 8) + le(vaddr, 8) + le(paddr, 8)
                    + le(filesz, 8) + le(memsz, 8) + le(align, 8), at: phOffset)
            } else {
                put(le(UInt64(type), 4) + le(UInt64(offset), 4) + le(vaddr, 4) + le(paddr, 4) + le(filesz, 4)
                    + le(memsz, 4) + le(UInt64(flags), 4) + le(align, 4), at: phOffset)
            }
            phOffset += phSize
        }
        if !notes.isEmpty {
            programHeader(type: 4, flags: 4, offset: noteOffset, vaddr: 0, paddr: 0,
                          filesz: UInt64(noteData.count), memsz: UInt64(noteData.count), align: 4)
        }
        for (segment, segmentOffset) in zip(segments, segmentOffsets) {
            programHeader(type: segment.type, flags: segment.flags, offset: segmentOffset,
                          vaddr: segment.virtualAddress, paddr: segment.physicalAddress,
                          filesz: UInt64(segment.data.count), memsz: segment.memorySize, align: 16)
            put(segment.data, at: segmentOffset)
        }
        put(preamble, at: preambleOffset)
        put(noteData, at: noteOffset)
        return file
    }
}

func le(_ value: UInt64, _ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
}

/// A multiboot v1 header; `kludge` = (header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr).
func multibootHeader(flags: UInt32 = 0x3, kludge: (UInt32, UInt32, UInt32, UInt32, UInt32)? = nil,
                     badChecksum: Bool = false) -> [UInt8] {
    let magic: UInt32 = 0x1BAD_B002
    let allFlags = kludge == nil ? flags : flags | 1 << 16
    let checksum = (0 &- (magic &+ allFlags)) &+ (badChecksum ? 1 : 0)
    var bytes = le(UInt64(magic), 4) + le(UInt64(allFlags), 4) + le(UInt64(checksum), 4)
    if let k = kludge {
        for field in [k.0, k.1, k.2, k.3, k.4] { bytes += le(UInt64(field), 4) }
    }
    return bytes
}

/// A PVH entry note (name "Xen", type 18).
func pvhNote(_ entry: UInt64, size: Int = 4) -> ELFBuilder.Note {
    ELFBuilder.Note(name: "Xen", type: 18, descriptor: le(entry, size))
}

/// Deterministic pseudo-random bytes (xorshift), for fuzz-style tests.
struct XorShift {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}
