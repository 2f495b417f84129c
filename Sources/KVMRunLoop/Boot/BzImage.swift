/// The Linux/x86 boot protocol (Documentation/arch/x86/boot.rst) for a bzImage, entered the way
/// `qemu -kernel` or a 64-bit boot loader does: the protected-mode kernel at its preferred
/// address, boot_params (the zero page) with e820, command line and initrd, and the vCPU in
/// 64-bit long mode at load address + 0x200 with RSI = boot_params ("64-bit boot protocol").
/// The real-mode setup code is never run, so there is no BIOS to emulate.
enum BzImage {
    /// boot_flag at 0x1FE and "HdrS" at 0x202: the two marks of a Linux boot sector.
    static let bootFlag: UInt16 = 0xAA55
    static let headerMagic: UInt32 = 0x5372_6448  // "HdrS"
    /// Protocol 2.12 (Linux 3.8) added xloadflags, which is where XLF_KERNEL_64 lives.
    static let minimumVersion: UInt16 = 0x020C
    /// The classic bzImage load address, used for kernels that are not relocatable.
    static let fixedLoadAddress: UInt64 = 0x10_0000
    /// The 64-bit entry point is this far into the protected-mode kernel.
    static let entryOffset: UInt64 = 0x200

    /// True when the image carries a Linux setup header (checked before ELF and multiboot
    /// probing: a bzImage is not ELF, and its compressed payload may hold any bytes).
    static func hasMagic(_ image: [UInt8]) -> Bool {
        let reader = ImageReader(bytes: image)
        return reader.u16(SetupHeader.bootFlagOffset) == bootFlag && reader.u32(SetupHeader.magicOffset) == headerMagic
    }

    static func plan(image: [UInt8], ramSize: UInt64, commandLine: String,
                     initrd: [UInt8]?) throws(LoadError) -> LoadPlan {
        let header = try SetupHeader(parsing: image)
        let kernel = header.protectedModeKernel(imageSize: UInt64(image.count))
        let load = try loadAddress(header)

        // [load, load + init_size) is what the kernel needs before it reads its memory map.
        let needed = max(UInt64(header.initSize), kernel.length)
        let (kernelEnd, overflow) = load.addingReportingOverflow(needed)
        // With some headroom for the kernel's own allocations; an address past any RAM gdbvmm can
        // give (or one that wraps) is a corrupt header, not a matter of -m.
        let (withHeadroom, headroomOverflow) = kernelEnd.addingReportingOverflow(16 << 20)
        guard !overflow, !headroomOverflow, withHeadroom <= 1 << 52 else {
            throw LoadError("the kernel's load address \(hex(load)) with init_size \(hex(header.initSize)) lies beyond "
                + "any physical address; the setup header is corrupt")
        }
        guard kernelEnd <= ramSize else {
            throw LoadError("the kernel needs \(byteCount(needed)) of RAM from its load address \(hex(load)) "
                + "(init_size \(hex(header.initSize))), up to \(hex(kernelEnd)), but guest RAM is \(byteCount(ramSize)); "
                + "give more memory with -m (at least -m \(roundedUpMiB(withHeadroom))M)")
        }
        let gib: UInt64 = 1 << 30
        let directories = ramSize / gib + (ramSize % gib == 0 ? 0 : 1)
        let maximum = (BootLayout.linuxPageDirectoriesEnd - BootLayout.pageDirectoriesStart) / 0x1000
        guard directories <= maximum else {
            throw LoadError("guest RAM is \(byteCount(ramSize)); the Linux boot identity-maps at most \(maximum) GiB "
                + "below its zero page; use -m \(maximum)G or less")
        }

        let commandLineBytes = try linuxCommandLine(commandLine, limit: header.commandLineLimit)
        var structures = try Elf64Direct.identityMap(ramSize: ramSize)
        let gdt = GDTImage.linux
        structures.append((gdt.register.base, gdt.bytes))
        structures.append((BootLayout.linuxCommandLine.lowerBound, commandLineBytes))

        var ramdisk: Range<UInt64>?
        if let initrd {
            // initrd_addr_max is the highest address the initrd may occupy (inclusive).
            let ceiling = min(ramSize, UInt64(header.initrdAddressMax) + 1)
            let address = try Initrd.place(size: UInt64(initrd.count), floor: kernelEnd, ceiling: ceiling,
                                           floorName: "the end of the kernel's init_size area",
                                           ceilingName: ceiling == ramSize ? "the end of guest RAM"
                                               : "the kernel's initrd_addr_max \(hex(header.initrdAddressMax))")
            ramdisk = address..<address + UInt64(initrd.count)
            structures.append((address, initrd))
        }

        var params = BootParams(setupHeader: header.bytes)
        params.fill(commandLine: BootLayout.linuxCommandLine.lowerBound, ramdisk: ramdisk,
                    memoryMap: linuxMemoryMap(ramSize: ramSize))
        structures.append((BootLayout.linuxZeroPage, params.bytes))

        let segment = PlannedSegment(name: "the protected-mode kernel", physicalAddress: load,
                                     fileOffset: kernel.offset, fileSize: kernel.length, memorySize: kernel.length)
        var state = EntryState(cs: .flatCode(selector: BootSelectors.linuxCode, long: true),
                               data: .flatData(selector: BootSelectors.linuxData), gdt: gdt.register)
        state.rip = load + entryOffset
        state.rsi = BootLayout.linuxZeroPage
        state.rsp = BootLayout.linuxStackTop
        state.rflags = 0x2  // IF clear: interrupts off, as the protocol requires
        state.cr0 = Elf64Direct.cr0
        state.cr3 = BootLayout.pml4Address
        state.cr4 = Elf64Direct.cr4
        state.efer = Elf64Direct.efer
        // head_64.S: output = max(load aligned to kernel_alignment, LOAD_PHYSICAL_ADDR).
        let output = max(load, header.preferredAddress)
        let kernel64 = DecompressedKernel(
            entry: output,
            mapping: ImageMapping(virtual: DecompressedKernel.kernelMap &+ header.preferredAddress, physical: output,
                                  size: UInt64(header.initSize)),
            bootParams: BootLayout.linuxZeroPage)
        return LoadPlan(bootProtocol: .linux, segments: [segment], structures: structures, entry: [state],
                        decompressedKernel: kernel64)
    }

    /// pref_address (aligned up to kernel_alignment) for a relocatable kernel, else 1 MiB.
    static func loadAddress(_ header: SetupHeader) throws(LoadError) -> UInt64 {
        guard header.relocatable else { return fixedLoadAddress }
        var load = header.preferredAddress
        let alignment = UInt64(header.kernelAlignment)
        if alignment > 1, alignment & (alignment - 1) == 0 {
            let (aligned, overflow) = load.addingReportingOverflow(alignment - 1)
            guard !overflow else {
                throw LoadError("the setup header's pref_address \(hex(load)) is not a usable address; the image is corrupt")
            }
            load = aligned & ~(alignment - 1)
        }
        guard load >= fixedLoadAddress else {
            throw LoadError("the setup header's pref_address \(hex(load)) is below 1 MiB, where gdbvmm keeps the zero "
                + "page and page tables [\(hex(BootLayout.linuxReservedArea.lowerBound)), "
                + "\(hex(BootLayout.linuxReservedArea.upperBound))); rebuild the kernel with "
                + "CONFIG_PHYSICAL_START at 1 MiB or above")
        }
        return load
    }

    /// The command line, NUL-terminated, within the kernel's cmdline_size and gdbvmm's area.
    static func linuxCommandLine(_ commandLine: String, limit: UInt64) throws(LoadError) -> [UInt8] {
        let utf8 = Array(commandLine.utf8)
        let room = min(limit, UInt64(BootLayout.linuxCommandLine.count) - 1)
        guard UInt64(utf8.count) <= room else {
            throw LoadError("the kernel command line is \(utf8.count) bytes; this kernel accepts at most \(room) "
                + (room == limit ? "(cmdline_size in its setup header)" : "(the room gdbvmm gives it)")
                + "; shorten --append/--cmdline")
        }
        guard !utf8.contains(0) else {
            throw LoadError("the kernel command line contains a NUL character, which would cut it short")
        }
        return utf8 + [0]
    }

    /// The e820 map: gdbvmm's first 64 KiB reserved, conventional memory up to the EBDA, the
    /// EBDA and BIOS area reserved, RAM from 1 MiB.
    static func linuxMemoryMap(ramSize: UInt64) -> [MemoryMapEntry] {
        let reserved = BootLayout.linuxReservedArea
        return [MemoryMapEntry(start: reserved.lowerBound, length: UInt64(reserved.count), type: 2),
                MemoryMapEntry(start: reserved.upperBound, length: 0x9FC00 - reserved.upperBound, type: 1),
                MemoryMapEntry(start: 0x9FC00, length: 0x400, type: 2),
                MemoryMapEntry(start: 0xF0000, length: 0x10000, type: 2),
                MemoryMapEntry(start: 1 << 20, length: ramSize - (1 << 20), type: 1)]
    }

    private static func roundedUpMiB(_ bytes: UInt64) -> UInt64 { (bytes + (1 << 20) - 1) >> 20 }
}

/// The fields of the setup header (boot.rst, "The Real-Mode Kernel Header") that gdbvmm reads,
/// checked for what the 64-bit boot protocol needs. `bytes` is the header as the kernel
/// declares it, [0x1F1, 0x202 + byte at 0x201), to be copied into boot_params.
struct SetupHeader {
    static let start: UInt64 = 0x1F1
    static let bootFlagOffset: UInt64 = 0x1FE
    static let magicOffset: UInt64 = 0x202
    /// boot_params has room for the header up to 0x290 (edd_mbr_sig_buffer follows).
    static let end: UInt64 = 0x290
    /// The last field read here is init_size (0x260, 4 bytes).
    static let requiredEnd: UInt64 = 0x264

    /// loadflags LOADED_HIGH: the protected-mode kernel is loaded at 1 MiB (a bzImage).
    static let loadedHigh: UInt8 = 0x01
    /// xloadflags XLF_KERNEL_64: the kernel has the 64-bit entry point at +0x200.
    static let kernel64: UInt16 = 0x0001

    var bytes: [UInt8]
    var setupSectors: UInt64
    var systemSize: UInt32
    var version: UInt16
    var loadFlags: UInt8
    var initrdAddressMax: UInt32
    var kernelAlignment: UInt32
    var relocatable: Bool
    var extendedLoadFlags: UInt16
    var commandLineSize: UInt32
    var preferredAddress: UInt64
    var initSize: UInt32

    init(parsing image: [UInt8]) throws(LoadError) {
        let reader = ImageReader(bytes: image)
        let versionField = reader.u16(0x206) ?? 0
        guard versionField >= BzImage.minimumVersion else {
            throw LoadError("the file is a Linux kernel with boot protocol \(SetupHeader.versionText(versionField)); "
                + "gdbvmm enters Linux through the 64-bit boot protocol, which needs protocol 2.12 or later "
                + "(Linux 3.8 and newer). Boot a newer kernel, or its vmlinux (ELF with a PVH note)")
        }
        version = versionField
        // The jump at 0x200 is `jmp short`; its displacement is where the header ends.
        let declaredEnd = 0x202 + UInt64(reader.u8(0x201) ?? 0)
        guard declaredEnd >= Self.requiredEnd, reader.contains(offset: 0, length: Self.requiredEnd) else {
            throw LoadError("the Linux setup header ends at \(hex(declaredEnd)) (the jump at 0x200), before the "
                + "protocol 2.12 fields it must have (up to \(hex(Self.requiredEnd))); the image is truncated or corrupt")
        }
        let headerEnd = min(declaredEnd, Self.end)
        guard let header = reader.slice(Self.start, headerEnd - Self.start) else {
            throw LoadError("the file is \(image.count) bytes, shorter than its Linux setup header "
                + "(to \(hex(headerEnd))); the image is truncated")
        }
        bytes = header
        let fields = HeaderFields(header)
        func at(_ offset: Int) -> Int { offset - Int(Self.start) }
        let sectors = UInt64(fields.u16(at(0x1F1)) & 0xFF)
        setupSectors = sectors == 0 ? 4 : sectors  // boot.rst: 0 means 4, for ancient kernels
        systemSize = fields.u32(at(0x1F4))
        loadFlags = UInt8(fields.u16(at(0x211)) & 0xFF)
        initrdAddressMax = fields.u32(at(0x22C))
        kernelAlignment = fields.u32(at(0x230))
        relocatable = fields.u16(at(0x234)) & 0xFF != 0
        extendedLoadFlags = fields.u16(at(0x236))
        commandLineSize = fields.u32(at(0x238))
        preferredAddress = fields.u64(at(0x258))
        initSize = fields.u32(at(0x260))

        guard loadFlags & Self.loadedHigh != 0 else {
            throw LoadError("the Linux kernel is a zImage (loadflags LOADED_HIGH is clear): it loads below 1 MiB "
                + "and starts in real mode, which gdbvmm does not do; build a bzImage (make bzImage)")
        }
        guard extendedLoadFlags & Self.kernel64 != 0 else {
            throw LoadError("the Linux kernel has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64): it is a "
                + "32-bit kernel; gdbvmm boots 64-bit kernels (CONFIG_X86_64=y), or a 32-bit vmlinux with a PVH note")
        }
        let kernelOffset = (setupSectors + 1) * 512
        guard kernelOffset + BzImage.entryOffset < UInt64(image.count) else {
            throw LoadError("the Linux setup header's setup_sects = \(setupSectors) puts the protected-mode kernel "
                + "at file offset \(hex(kernelOffset)), but the file is only \(image.count) bytes (the kernel and "
                + "its 64-bit entry at +0x200 must follow); the image is truncated")
        }
        // syssize is rounded up to 16 bytes; build.c pads the file to match, other tools may not.
        let declaredKernel = UInt64(systemSize) * 16
        guard reader.contains(offset: kernelOffset, length: declaredKernel > 15 ? declaredKernel - 15 : 0) else {
            throw LoadError("the Linux setup header's syssize says the protected-mode kernel is "
                + "\(byteCount(declaredKernel)) from file offset \(hex(kernelOffset)), but the file is only "
                + "\(image.count) bytes; the image is truncated")
        }
    }

    /// Where the protected-mode kernel lies in the file: after the boot sector and the setup
    /// sectors, to the end of the file (as QEMU and GRUB load it).
    func protectedModeKernel(imageSize: UInt64) -> (offset: UInt64, length: UInt64) {
        let offset = (setupSectors + 1) * 512
        return (offset, imageSize - offset)
    }

    /// The longest command line the kernel takes, without its NUL (cmdline_size, 2.06+).
    var commandLineLimit: UInt64 { UInt64(commandLineSize) }

    static func versionText(_ version: UInt16) -> String {
        version == 0 ? "older than 2.00" : "\(version >> 8).\(String(format2: version & 0xFF))"
    }
}

extension String {
    /// Two decimal digits, for protocol minor versions ("2.02").
    fileprivate init(format2 value: UInt16) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
