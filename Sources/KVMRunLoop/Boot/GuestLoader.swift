/// How the guest is entered; chosen by `loadGuest` from what the image contains.
public enum BootProtocol: Sendable, Equatable {
    /// ELF64 without a boot note: 64-bit long mode, identity-mapped RAM, every vCPU at e_entry.
    case elf64Direct
    /// Multiboot v1 (ELF32, or any file with the a.out kludge): 32-bit protected mode, EAX=0x2BADB002.
    case multiboot
    /// ELF with a XEN_ELFNOTE_PHYS32_ENTRY note: 32-bit protected mode, EBX=hvm_start_info.
    case pvh
    /// A Linux bzImage (setup header "HdrS"): boot_params in RSI, 64-bit long mode at load + 0x200.
    case linux
}

/// A guest image written into RAM and the state its vCPUs start in.
public struct LoadedGuest: Sendable {
    public var bootProtocol: BootProtocol
    /// `.elf64Direct`: one state per vCPU (index = vCPU number). `.multiboot`/`.pvh`/`.linux`: exactly one,
    /// for vCPU 0; the other vCPUs wait for INIT-SIPI as on real hardware.
    public var entry: [EntryState]
    /// Guest-physical ranges the image occupies (file data plus zeroed bss), for diagnostics.
    public var loadedRanges: [Range<UInt64>]
    /// Where the ELF image's segments say their virtual addresses live in physical memory
    /// (p_vaddr -> p_paddr): the guest's own page tables, once it builds them, map them so. A
    /// breakpoint on a kernel's virtual address can be planted there before those tables exist.
    public var imageMap: [ImageMapping]
    /// A bzImage holds its kernel compressed: where the kernel will lie once its decompressor has
    /// written it out (nil for every other image).
    public var decompressedKernel: DecompressedKernel?

    public init(bootProtocol: BootProtocol, entry: [EntryState], loadedRanges: [Range<UInt64>],
                imageMap: [ImageMapping] = [], decompressedKernel: DecompressedKernel? = nil) {
        self.bootProtocol = bootProtocol; self.entry = entry; self.loadedRanges = loadedRanges
        self.imageMap = imageMap; self.decompressedKernel = decompressedKernel
    }

    /// The image's first code in the same 512 GiB as `virtual` (a kernel's _text for its init
    /// code): while the guest's tables map it but not `virtual`, code at `virtual` is gone.
    public func imageReference(for virtual: UInt64) -> UInt64? {
        imageMap.filter { $0.virtual >> 39 == virtual >> 39 }.map(\.virtual).min()
    }

    /// The physical address the image's segments put `virtual` at, if one of them covers it.
    public func imagePhysical(forVirtual virtual: UInt64) -> UInt64? {
        for mapping in imageMap where virtual >= mapping.virtual && virtual - mapping.virtual < mapping.size {
            return mapping.physical + (virtual - mapping.virtual)
        }
        return nil
    }
}

/// Where an x86-64 Linux bzImage's decompressor puts the kernel (arch/x86/boot/compressed): it
/// writes it out at the output address (the load address aligned to kernel_alignment, at least
/// LOAD_PHYSICAL_ADDR = pref_address) and jumps to its first byte, startup_64, identity-mapped,
/// with RSI = boot_params. The kernel is linked at __START_KERNEL = __START_KERNEL_map +
/// LOAD_PHYSICAL_ADDR, and without KASLR (`nokaslr`) that is where it runs.
public struct DecompressedKernel: Sendable, Equatable {
    /// __START_KERNEL_map: x86-64 Linux maps its image from here.
    public static let kernelMap: UInt64 = 0xFFFF_FFFF_8000_0000

    /// The physical (and, at the jump, linear) address of startup_64.
    public var entry: UInt64
    /// The kernel's link addresses, init_size of them, and where they lie once written out.
    public var mapping: ImageMapping
    /// RSI at the jump.
    public var bootParams: UInt64

    public init(entry: UInt64, mapping: ImageMapping, bootParams: UInt64) {
        self.entry = entry; self.mapping = mapping; self.bootParams = bootParams
    }
}

/// One loaded segment's virtual range and where it lies in physical memory.
public struct ImageMapping: Sendable, Equatable {
    public var virtual: UInt64
    public var physical: UInt64
    public var size: UInt64

    public init(virtual: UInt64, physical: UInt64, size: UInt64) {
        self.virtual = virtual; self.physical = physical; self.size = size
    }
}

/// Loads a guest kernel image into guest RAM and returns how to start it.
///
/// The boot protocol is chosen from the image: a Linux setup header (0xAA55 at 0x1FE, "HdrS" at
/// 0x202) makes it a bzImage; otherwise a multiboot v1 header in the first 8 KiB wins
/// (loaded through its a.out kludge addresses if it has them, else as ELF32); otherwise an ELF
/// file with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY) boots through PVH; otherwise an ELF64 file
/// is entered directly in 64-bit mode. Everything is validated before the first byte is
/// written, so a failed load leaves RAM untouched.
///
/// - Parameters:
///   - commandLine: passed to multiboot, PVH and Linux guests (ignored by the direct ELF64 boot,
///     which has no place to pass it).
///   - cpuCount: number of vCPUs; the direct ELF64 boot gives each its own stack.
///   - initrd: an initial ramdisk for Linux bzImage and PVH guests, placed at the top of RAM.
public func loadGuest(image: [UInt8], into memory: any PhysicalMemory, commandLine: String,
                      cpuCount: Int, initrd: [UInt8]? = nil) throws(LoadError) -> LoadedGuest {
    guard cpuCount >= 1 else {
        throw LoadError("the guest needs at least one vCPU (asked for \(cpuCount))")
    }
    guard memory.size >= BootLayout.minimumRAM else {
        throw LoadError("guest RAM is \(byteCount(memory.size)); gdbvmm needs at least "
            + "\(byteCount(BootLayout.minimumRAM)); give more memory with -m")
    }
    let plan = try LoadPlan.make(image: image, ramSize: memory.size, commandLine: commandLine,
                                 cpuCount: cpuCount, initrd: initrd)
    try plan.write(image: image, into: memory)
    return LoadedGuest(bootProtocol: plan.bootProtocol, entry: plan.entry,
                       loadedRanges: plan.segments.map(\.range),
                       imageMap: plan.segments.compactMap { segment in
                           segment.virtualAddress.map { ImageMapping(virtual: $0, physical: segment.physicalAddress,
                                                                     size: segment.memorySize) }
                       },
                       decompressedKernel: plan.decompressedKernel)
}

/// A part of the image to place in RAM: `fileSize` bytes from `fileOffset`, then zeros up to
/// `memorySize`. The file range has been checked against the image.
struct PlannedSegment {
    /// How error messages name it: "segment 2", "the a.out kludge image".
    var name: String
    var physicalAddress: UInt64
    var fileOffset: UInt64
    var fileSize: UInt64
    var memorySize: UInt64
    /// The ELF segment's p_vaddr, for executable segments (breakpoints go on code; a vmlinux's
    /// per-CPU segment has p_vaddr 0 and must not claim low addresses); nil for other segments
    /// and for images without one (an a.out kludge, a bzImage).
    var virtualAddress: UInt64?

    var range: Range<UInt64> { physicalAddress..<(physicalAddress + memorySize) }

    init(name: String, physicalAddress: UInt64, fileOffset: UInt64, fileSize: UInt64, memorySize: UInt64,
         virtualAddress: UInt64? = nil) {
        self.name = name; self.physicalAddress = physicalAddress; self.fileOffset = fileOffset
        self.fileSize = fileSize; self.memorySize = memorySize; self.virtualAddress = virtualAddress
    }

    init(_ header: ELFProgramHeader) {
        self.init(name: "segment \(header.index)", physicalAddress: header.physicalAddress,
                  fileOffset: header.fileOffset, fileSize: header.fileSize, memorySize: header.memorySize,
                  virtualAddress: header.flags & 1 != 0 ? header.virtualAddress : nil)
    }
}

/// An area of low memory gdbvmm writes its own structures into, which the image must avoid.
struct ReservedArea {
    var range: Range<UInt64>
    /// Completes "overlaps the area gdbvmm reserves for ...".
    var purpose: String
}

/// Everything a load will do, decided and checked before anything is written.
struct LoadPlan {
    var bootProtocol: BootProtocol
    var segments: [PlannedSegment]
    /// gdbvmm's own boot structures (GDT, page tables, boot information), written after the image.
    var structures: [(address: UInt64, bytes: [UInt8])]
    var entry: [EntryState]
    var decompressedKernel: DecompressedKernel?

    static func make(image: [UInt8], ramSize: UInt64, commandLine: String, cpuCount: Int,
                     initrd: [UInt8]? = nil) throws(LoadError) -> LoadPlan {
        if BzImage.hasMagic(image) {
            return try BzImage.plan(image: image, ramSize: ramSize, commandLine: commandLine, initrd: initrd)
        }
        let plan = try makeFromELFOrMultiboot(image: image, ramSize: ramSize, commandLine: commandLine,
                                              cpuCount: cpuCount, initrd: initrd)
        if initrd != nil, plan.bootProtocol != .pvh {
            throw LoadError("--initrd is handed to Linux bzImage and PVH kernels only; this image boots through "
                + (plan.bootProtocol == .multiboot ? "multiboot" : "the direct ELF64 entry")
                + ", which gdbvmm gives no initrd. Leave out --initrd, or boot the kernel's bzImage")
        }
        return plan
    }

    private static func makeFromELFOrMultiboot(image: [UInt8], ramSize: UInt64, commandLine: String,
                                               cpuCount: Int, initrd: [UInt8]?) throws(LoadError) -> LoadPlan {
        let multiboot = try MultibootHeader.find(in: image)
        // An ELF parse error matters only if the ELF headers are what we end up loading from.
        var elf: Result<ELFImage, LoadError>?
        if ELFImage.hasMagic(image) {
            do throws(LoadError) { elf = .success(try ELFImage(parsing: image)) } catch { elf = .failure(error) }
        }

        if let multiboot {
            if let kludge = multiboot.kludge {
                return try Multiboot.planKludge(image: image, header: multiboot, kludge: kludge,
                                                ramSize: ramSize, commandLine: commandLine)
            }
            switch elf {
            case .success(let elf) where elf.elfClass == .elf32:
                return try Multiboot.planELF(elf, ramSize: ramSize, commandLine: commandLine)
            case .success(let elf):
                if let entry = try elf.pvhEntry() {
                    return try PVH.plan(elf, entry: entry, ramSize: ramSize, commandLine: commandLine,
                                        initrd: initrd)
                }
                throw LoadError("the file is ELF64 with a multiboot header that has no a.out kludge (flag bit 16); "
                    + "multiboot v1 cannot load ELF64 without the a.out kludge (GRUB and QEMU refuse it too). "
                    + "Set flag 16 and the address fields, link the kernel as ELF32, or remove the multiboot "
                    + "header to have gdbvmm enter the ELF64 file directly in 64-bit mode")
            case .failure(let error):
                throw error
            case nil:
                throw LoadError("the file has a multiboot header at offset \(hex(multiboot.fileOffset)) without the "
                    + "a.out kludge (flag bit 16) and is not an ELF file, so gdbvmm cannot tell where to load it; "
                    + "set flag 16 and the address fields, or link the kernel as ELF32")
            }
        }

        guard let elf else {
            throw LoadError("the file is neither ELF nor has a multiboot header in its first 8 KiB. gdbvmm boots "
                + "ELF64 kernels (entered in 64-bit mode), ELF kernels with a PVH note "
                + "(XEN_ELFNOTE_PHYS32_ENTRY), multiboot v1 kernels and Linux bzImages")
        }
        let image = try elf.get()
        if let entry = try image.pvhEntry() {
            return try PVH.plan(image, entry: entry, ramSize: ramSize, commandLine: commandLine, initrd: initrd)
        }
        guard image.elfClass == .elf64 else {
            throw LoadError("the file is ELF32 with neither a multiboot header nor a PVH note; gdbvmm enters "
                + "32-bit kernels through multiboot v1 (put a multiboot header in the first 8 KiB) or PVH (add a "
                + "XEN_ELFNOTE_PHYS32_ENTRY note), and ELF64 kernels directly in 64-bit mode")
        }
        return try Elf64Direct.plan(image, ramSize: ramSize, cpuCount: cpuCount)
    }

    /// Checks that every segment lies in RAM, avoids the reserved areas and the other segments.
    static func validate(_ segments: [PlannedSegment], ramSize: UInt64,
                         reserved: [ReservedArea]) throws(LoadError) {
        guard !segments.isEmpty else {
            throw LoadError("the image has no loadable segments (no PT_LOAD with p_memsz > 0); nothing to run")
        }
        for segment in segments {
            let location = describe(start: segment.physicalAddress, length: segment.memorySize)
            // physicalAddress + memorySize does not overflow: checked when the segment was parsed.
            guard segment.range.upperBound <= ramSize else {
                throw LoadError("\(segment.name) (\(location)) lies outside guest RAM (\(byteCount(ramSize))); "
                    + "give more memory with -m")
            }
            for area in reserved where segment.range.overlaps(area.range) {
                throw LoadError("\(segment.name) (\(location)) overlaps the area gdbvmm reserves for \(area.purpose) "
                    + "[\(hex(area.range.lowerBound)), \(hex(area.range.upperBound))); link the guest at 1 MiB or above")
            }
        }
        let sorted = segments.sorted { $0.physicalAddress < $1.physicalAddress }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.range.overlaps(b.range) {
            throw LoadError("\(a.name) (\(describe(start: a.physicalAddress, length: a.memorySize))) and \(b.name) "
                + "(\(describe(start: b.physicalAddress, length: b.memorySize))) overlap in physical memory; "
                + "check the linker script's AT() load addresses")
        }
    }

    /// Copies the segments, zeroes their bss, then writes gdbvmm's structures.
    func write(image: [UInt8], into memory: any PhysicalMemory) throws(LoadError) {
        do throws(MemoryError) {
            for segment in segments {
                // The file range was validated against the image when the plan was made.
                let start = Int(segment.fileOffset)
                try memory.write(Array(image[start..<start + Int(segment.fileSize)]), at: segment.physicalAddress)
                var zeroAt = segment.physicalAddress + segment.fileSize
                let chunk: UInt64 = 1 << 20
                let zeros = [UInt8](repeating: 0, count: Int(min(chunk, segment.memorySize - segment.fileSize)))
                while zeroAt < segment.range.upperBound {
                    let count = min(chunk, segment.range.upperBound - zeroAt)
                    try memory.write(count == UInt64(zeros.count) ? zeros : Array(zeros.prefix(Int(count))), at: zeroAt)
                    zeroAt += count
                }
            }
            for structure in structures {
                try memory.write(structure.bytes, at: structure.address)
            }
        } catch {
            // Unreachable unless RAM shrank under us: every range was checked against memory.size.
            throw LoadError("writing the guest image into RAM failed: \(error)")
        }
    }
}

/// The physical entry point for an ELF loaded at its physical addresses. e_entry is a virtual
/// address; like GRUB and QEMU, translate it through the segment whose virtual range holds it,
/// so kernels linked at a higher-half virtual address still start at the right byte.
func physicalEntry(of elf: ELFImage) throws(LoadError) -> UInt64 {
    let segments = elf.loadSegments
    if let segment = segments.first(where: { $0.containsVirtual(elf.entry) }) {
        return segment.physicalAddress + (elf.entry - segment.virtualAddress)
    }
    if segments.contains(where: { $0.containsPhysical(elf.entry) }) { return elf.entry }
    throw LoadError("entry point \(hex(elf.entry)) is not inside any loaded segment, so the guest would start "
        + "in memory the image does not fill; check ENTRY() in the linker script")
}
