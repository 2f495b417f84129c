/// The parts of an x86 or x86-64 ELF executable that the loaders need, parsed from an untrusted
/// file: every offset and size is checked against the file, so a truncated or hostile image
/// produces a `LoadError` naming what is wrong, never a crash.
public struct ELFImage: Sendable, Equatable {
    /// EI_CLASS: 32- or 64-bit headers (independent of the mode the code runs in).
    public enum Class: Sendable, Equatable {
        case elf32, elf64
    }

    public var elfClass: Class
    /// e_machine: 3 (EM_386) or 62 (EM_X86_64).
    public var machine: UInt16
    /// e_type: 2 (ET_EXEC) or 3 (ET_DYN).
    public var type: UInt16
    /// e_entry, a virtual address.
    public var entry: UInt64
    /// Every program header, in file order (`index` is its position, as `readelf -l` counts).
    public var programHeaders: [ELFProgramHeader]
    /// The notes of every PT_NOTE segment.
    public var notes: [ELFNote]

    public static let machineI386: UInt16 = 3
    public static let machineX86_64: UInt16 = 62

    /// PT_LOAD segments that occupy memory (p_memsz > 0): what a loader copies into RAM.
    public var loadSegments: [ELFProgramHeader] {
        programHeaders.filter { $0.type == ELFProgramHeader.typeLoad && $0.memorySize > 0 }
    }

    /// True when `image` starts with the ELF magic "\x7fELF" (whether or not the rest is valid).
    public static func hasMagic(_ image: [UInt8]) -> Bool {
        image.count >= 4 && image[0] == 0x7F && image[1] == 0x45 && image[2] == 0x4C && image[3] == 0x46
    }

    /// The 32-bit physical entry point of a PVH kernel: the XEN_ELFNOTE_PHYS32_ENTRY note
    /// (name "Xen", type 18). nil when the image has no such note.
    public func pvhEntry() throws(LoadError) -> UInt32? {
        guard let note = notes.first(where: { $0.name == "Xen" && $0.type == ELFNote.xenPhys32Entry }) else {
            return nil
        }
        // Linux emits the value with _ASM_PTR (8 bytes in a 64-bit build); the ABI says 32 bits.
        let fields = HeaderFields(note.descriptor)
        let value: UInt64
        switch note.descriptor.count {
        case 4: value = UInt64(fields.u32(0))
        case 8: value = fields.u64(0)
        default:
            throw LoadError("the Xen PHYS32_ENTRY note has a \(note.descriptor.count)-byte value; "
                + "the PVH ABI requires a 4-byte (or 8-byte) physical address")
        }
        guard let entry = UInt32(exactly: value) else {
            throw LoadError("the Xen PHYS32_ENTRY note gives entry point \(hex(value)), above 4 GiB; "
                + "PVH kernels start in 32-bit mode, so the entry must be a 32-bit physical address")
        }
        return entry
    }

    /// Parses and validates the ELF header, the program headers and the notes.
    public init(parsing image: [UInt8]) throws(LoadError) {
        let file = ImageReader(bytes: image)
        guard ELFImage.hasMagic(image) else {
            throw LoadError("not an ELF file (it does not start with \\x7fELF)")
        }
        guard image.count >= 16 else {
            throw LoadError("truncated ELF header: the file is only \(image.count) bytes")
        }
        switch image[4] {
        case 1: elfClass = .elf32
        case 2: elfClass = .elf64
        default:
            throw LoadError("ELF class \(image[4]) is neither ELF32 (1) nor ELF64 (2); the file is damaged")
        }
        switch image[5] {
        case 1: break
        case 2: throw LoadError("the ELF file is big-endian; x86 executables are little-endian")
        default: throw LoadError("ELF data encoding \(image[5]) is unknown; the file is damaged")
        }
        guard image[6] == 1 else {
            throw LoadError("ELF identification version \(image[6]) is not 1 (EV_CURRENT); the file is damaged")
        }

        let is64 = elfClass == .elf64
        let headerSize = is64 ? 64 : 52
        guard let headerBytes = file.slice(0, UInt64(headerSize)) else {
            throw LoadError("truncated ELF header: an \(is64 ? "ELF64" : "ELF32") header is \(headerSize) bytes, "
                + "the file is only \(image.count)")
        }
        let header = HeaderFields(headerBytes)
        type = header.u16(16)
        machine = header.u16(18)
        switch type {
        case 2, 3: break
        case 1:
            throw LoadError("the file is a relocatable object (.o), not an executable; link it first "
                + "(for example ld -T linker.ld -o kernel.elf ...)")
        case 4: throw LoadError("the file is a core dump, not an executable")
        default: throw LoadError("ELF type \(type) is not an executable (ET_EXEC) or position-independent executable (ET_DYN)")
        }
        guard machine == ELFImage.machineI386 || machine == ELFImage.machineX86_64 else {
            throw LoadError("machine is \(ELFImage.machineName(machine)), not x86; gdbvmm runs x86 and x86-64 guests")
        }

        let programHeaderOffset: UInt64
        let entrySize: UInt64
        let count: UInt64
        if is64 {
            entry = header.u64(24)
            programHeaderOffset = header.u64(32)
            entrySize = UInt64(header.u16(54))
            count = UInt64(header.u16(56))
        } else {
            entry = UInt64(header.u32(24))
            programHeaderOffset = UInt64(header.u32(28))
            entrySize = UInt64(header.u16(42))
            count = UInt64(header.u16(44))
        }
        let minimumEntrySize: UInt64 = is64 ? 56 : 32
        guard count > 0 else {
            throw LoadError("the ELF file has no program headers, so there is nothing to load; "
                + "link it as an executable, not as an object or a section dump")
        }
        guard count != 0xFFFF else {
            throw LoadError("the ELF file has 65535 or more program headers (PN_XNUM), which gdbvmm does not support")
        }
        guard entrySize >= minimumEntrySize else {
            throw LoadError("program header size e_phentsize is \(entrySize) bytes, smaller than the "
                + "\(minimumEntrySize)-byte \(is64 ? "ELF64" : "ELF32") program header; the file is damaged")
        }

        var headers: [ELFProgramHeader] = []
        for index in 0..<count {
            // count < 0xFFFF and entrySize <= 0xFFFF: the product cannot overflow.
            let (offset, overflow) = programHeaderOffset.addingReportingOverflow(index * entrySize)
            guard !overflow, let bytes = file.slice(offset, minimumEntrySize) else {
                throw LoadError("program header \(index) extends past end of file (offset "
                    + "\(overflow ? "beyond 2^64" : hex(offset)), file is \(image.count) bytes); the image is truncated")
            }
            let fields = HeaderFields(bytes)
            let programHeader: ELFProgramHeader
            if is64 {
                programHeader = ELFProgramHeader(
                    index: Int(index), type: fields.u32(0), flags: fields.u32(4), fileOffset: fields.u64(8),
                    virtualAddress: fields.u64(16), physicalAddress: fields.u64(24), fileSize: fields.u64(32),
                    memorySize: fields.u64(40), alignment: fields.u64(48))
            } else {
                programHeader = ELFProgramHeader(
                    index: Int(index), type: fields.u32(0), flags: fields.u32(24),
                    fileOffset: UInt64(fields.u32(4)), virtualAddress: UInt64(fields.u32(8)),
                    physicalAddress: UInt64(fields.u32(12)), fileSize: UInt64(fields.u32(16)),
                    memorySize: UInt64(fields.u32(20)), alignment: UInt64(fields.u32(28)))
            }
            try programHeader.validate(in: file)
            headers.append(programHeader)
        }
        programHeaders = headers

        var notes: [ELFNote] = []
        for segment in headers where segment.type == ELFProgramHeader.typeNote {
            notes += try ELFNote.parse(segment: segment, in: file)
        }
        self.notes = notes
    }

    /// e_machine values a user is likely to hand us by mistake, by name.
    static func machineName(_ machine: UInt16) -> String {
        switch machine {
        case 0: return "unspecified (EM_NONE)"
        case 2: return "SPARC"
        case 8: return "MIPS"
        case 20: return "PowerPC"
        case 21: return "PowerPC64"
        case 22: return "S/390"
        case 40: return "ARM"
        case 43: return "SPARC V9"
        case 50: return "IA-64"
        case 183: return "AArch64"
        case 243: return "RISC-V"
        case 258: return "LoongArch"
        default: return "e_machine \(machine)"
        }
    }
}

/// One ELF program header (Elf32_Phdr or Elf64_Phdr, widened to 64 bits).
public struct ELFProgramHeader: Sendable, Equatable {
    /// Position in the program header table.
    public var index: Int
    /// p_type: 1 PT_LOAD, 4 PT_NOTE, ...
    public var type: UInt32
    /// p_flags: PF_X 1, PF_W 2, PF_R 4.
    public var flags: UInt32
    public var fileOffset: UInt64
    public var virtualAddress: UInt64
    public var physicalAddress: UInt64
    public var fileSize: UInt64
    public var memorySize: UInt64
    public var alignment: UInt64

    public static let typeLoad: UInt32 = 1
    public static let typeNote: UInt32 = 4

    public init(index: Int, type: UInt32, flags: UInt32, fileOffset: UInt64, virtualAddress: UInt64,
                physicalAddress: UInt64, fileSize: UInt64, memorySize: UInt64, alignment: UInt64) {
        self.index = index; self.type = type; self.flags = flags; self.fileOffset = fileOffset
        self.virtualAddress = virtualAddress; self.physicalAddress = physicalAddress
        self.fileSize = fileSize; self.memorySize = memorySize; self.alignment = alignment
    }

    /// True when `address` is in [p_paddr, p_paddr + p_memsz).
    public func containsPhysical(_ address: UInt64) -> Bool {
        address >= physicalAddress && address - physicalAddress < memorySize
    }

    /// True when `address` is in [p_vaddr, p_vaddr + p_memsz).
    public func containsVirtual(_ address: UInt64) -> Bool {
        address >= virtualAddress && address - virtualAddress < memorySize
    }

    /// Checks that the file data lies inside the file and that the memory image does not wrap.
    func validate(in file: ImageReader) throws(LoadError) {
        guard type == ELFProgramHeader.typeLoad || type == ELFProgramHeader.typeNote else { return }
        let what = type == ELFProgramHeader.typeLoad ? "segment \(index)" : "note segment \(index)"
        guard file.contains(offset: fileOffset, length: fileSize) else {
            throw LoadError("\(what) file data (offset \(describe(start: fileOffset, length: fileSize))) extends "
                + "past end of file (\(file.count) bytes); the image is truncated")
        }
        guard type == ELFProgramHeader.typeLoad else { return }
        guard fileSize <= memorySize else {
            throw LoadError("segment \(index) has p_filesz \(hex(fileSize)) larger than p_memsz \(hex(memorySize)); "
                + "the file is damaged")
        }
        guard !physicalAddress.addingReportingOverflow(memorySize).overflow else {
            throw LoadError("segment \(index) (\(describe(start: physicalAddress, length: memorySize))) wraps around "
                + "the end of the physical address space; the file is damaged")
        }
    }
}

/// One ELF note (Elf_Nhdr followed by its name and descriptor).
public struct ELFNote: Sendable, Equatable {
    /// The owner name without its terminating NUL ("Xen", "GNU").
    public var name: String
    public var type: UInt32
    public var descriptor: [UInt8]

    /// XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical PVH entry point.
    public static let xenPhys32Entry: UInt32 = 18

    public init(name: String, type: UInt32, descriptor: [UInt8]) {
        self.name = name; self.type = type; self.descriptor = descriptor
    }

    /// Every note in a PT_NOTE segment, whose file range `validate` has already checked.
    static func parse(segment: ELFProgramHeader, in file: ImageReader) throws(LoadError) -> [ELFNote] {
        guard let data = file.slice(segment.fileOffset, segment.fileSize) else {
            throw LoadError("note segment \(segment.index) extends past end of file; the image is truncated")
        }
        // Notes are 4-byte aligned, except in segments that declare 8 (e.g. .note.gnu.property).
        let alignment = segment.alignment == 8 ? 8 : 4
        let reader = ImageReader(bytes: data)
        var notes: [ELFNote] = []
        var offset: UInt64 = 0
        while offset < reader.count {
            guard let nameSize = reader.u32(offset), let descriptorSize = reader.u32(offset + 4),
                  let type = reader.u32(offset + 8) else {
                throw LoadError("note segment \(segment.index) ends inside a note header at offset "
                    + "\(hex(segment.fileOffset + offset)); the file is damaged")
            }
            let nameStart = offset + 12
            let descriptorStart = nameStart + align(UInt64(nameSize), to: alignment)
            guard let nameBytes = reader.slice(nameStart, UInt64(nameSize)),
                  let descriptor = reader.slice(descriptorStart, UInt64(descriptorSize)) else {
                throw LoadError("note at offset \(hex(segment.fileOffset + offset)) extends past the end of "
                    + "note segment \(segment.index); the file is damaged")
            }
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            notes.append(ELFNote(name: name, type: type, descriptor: descriptor))
            // Both sizes are < 2^32 and offset < 2^32 + ..., far from overflowing 64 bits.
            offset = descriptorStart + align(UInt64(descriptorSize), to: alignment)
        }
        return notes
    }

    private static func align(_ value: UInt64, to alignment: Int) -> UInt64 {
        let mask = UInt64(alignment - 1)
        return (value + mask) & ~mask
    }
}
