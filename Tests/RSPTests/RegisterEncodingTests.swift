import Testing
@testable import RSP

/// Registers with a distinct value in every byte, so any misplaced byte shows.
func sampleRegisters() -> X86_64Registers {
    var r = X86_64Registers()
    for n in 0..<16 { r.gpr[n] = 0x0102_0304_0506_0700 | UInt64(n) }
    r.rip = 0xffff_ffff_8100_0000
    r.eflags = 0x246
    r.segments = [0x10, 0x18, 0x18, 0x18, 0, 0]
    r.st = (0..<8).map { i in (0..<10).map { UInt8(i * 16 + $0) } }
    r.x87Control = [0x37f, 0x3800, 0xffff, 0x10, 0x1234, 0x18, 0x5678, 0x7ff]
    r.xmm = (0..<32).map { i in (0..<16).map { UInt8(truncatingIfNeeded: i * 16 + $0) } }
    r.ymmh = (0..<32).map { i in (0..<16).map { UInt8(truncatingIfNeeded: 0x80 + i * 16 + $0) } }
    r.zmmh = (0..<32).map { i in (0..<32).map { UInt8(truncatingIfNeeded: 0x40 + i * 32 + $0) } }
    r.k = (0..<8).map { 0x0101_0101_0101_0101 &* UInt64($0 + 1) }
    r.pkru = 0x5555_5554
    r.mxcsr = 0x1fa0
    r.fsBase = 0x7f00_0000_1000
    r.gsBase = 0xffff_8880_0000_0000
    r.kernelGsBase = 0x1234
    r.cr0 = 0x8005_0033
    r.cr2 = 0xdead_0000
    r.cr3 = 0x1000
    r.cr4 = 0x3406a0
    r.cr8 = 1
    r.efer = 0xd01
    r.gdtrBase = 0xffff_fe00_0000_1000
    r.gdtrLimit = 0x7f
    r.idtrBase = 0xffff_fe00_0000_0000
    r.idtrLimit = 0xfff
    r.ldtr = SystemSegment(selector: 0, base: 0, limit: 0xffff)
    r.tr = SystemSegment(selector: 0x40, base: 0xffff_fe00_0000_3000, limit: 0x4087)
    for msr in RegisterExtensions.all.msrs where msr != 0xC000_0102 { r.msrs[msr] = 0xffff_ffff_8100_0000 | UInt64(msr & 0xfff) }
    r.debugRegisters = [0x1000, 0x2000, 0x3000, 0x4000, 0xffff_4ff0, 0x401]
    return r
}

extension RegisterExtensions {
    /// Every optional register set.
    static let all = RegisterExtensions(avx: true, avx512: true, pkeys: true, tscAux: true, specCtrl: true)
}

@Suite struct RegisterEncodingTests {
    @Test func layoutMatchesTheContract() {
        let names = RegisterLayout.x86_64.registers.map(\.name)
        #expect(names.count == 92)
        #expect(Array(names[0..<8]) == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"])
        #expect(names[16] == "rip" && names[17] == "eflags" && names[18] == "cs" && names[23] == "gs")
        #expect(names[24] == "st0" && names[32] == "fctrl" && names[39] == "fop")
        #expect(names[40] == "xmm0" && names[55] == "xmm15" && names[56] == "mxcsr")
        #expect(Array(names[57...]) == ["fs_base", "gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer",
                                        "gdtr_base", "gdtr_limit", "idtr_base", "idtr_limit", "ldtr", "ldtr_base",
                                        "ldtr_limit", "tr", "tr_base", "tr_limit",
                                        "k_gs_base", "sysenter_cs", "sysenter_esp", "sysenter_eip", "star", "lstar",
                                        "cstar", "fmask", "tsc", "apic_base", "pat",
                                        "dr0", "dr1", "dr2", "dr3", "dr6", "dr7"])
        // The g packet ends before the MSRs: a stop never needs KVM_GET_MSRS for it.
        #expect(RegisterLayout.x86_64.gPacketCount == 75 && RegisterLayout.x86_64.gPacketByteCount == 656)
        #expect(RegisterLayout.x86_64.gPacketParts == [.general, .vector])
        #expect(RegisterLayout.x86_64.totalByteCount == 792)
        #expect(RegisterLayout.x86_64.offsets[16] == 128 && RegisterLayout.x86_64.offsets[57] == 536)
    }

    @Test func fullFileRoundTrips() {
        let r = sampleRegisters()
        let raw = r.rawBytes
        #expect(raw.count == RegisterLayout.x86_64.gPacketByteCount)
        // rax is little-endian at offset 0, rip at 128, eflags at 136.
        #expect(Array(raw[0..<8]) == [0x00, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
        #expect(Array(raw[128..<136]) == [0, 0, 0, 0x81, 0xff, 0xff, 0xff, 0xff])
        #expect(Array(raw[136..<140]) == [0x46, 0x02, 0, 0])
        var decoded = X86_64Registers()
        let updated = decoded.update(fromRawBytes: raw[...])
        #expect(updated == 75)
        // Everything but the MSRs and debug registers, which are not in the g packet, and the
        // vector registers the baseline layout does not show.
        var expected = r
        expected.kernelGsBase = 0
        expected.msrs = [:]
        expected.debugRegisters = X86_64Registers().debugRegisters
        expected.xmm[16...] = X86_64Registers().xmm[16...]
        expected.ymmh = X86_64Registers().ymmh
        expected.zmmh = X86_64Registers().zmmh
        expected.k = X86_64Registers().k
        expected.pkru = 0
        #expect(decoded == expected)
    }

    @Test func shortWriteUpdatesOnlyCoveredRegisters() {
        let r = sampleRegisters()
        var target = X86_64Registers()
        // All of rax..r15 and half of rip.
        let updated = target.update(fromRawBytes: r.rawBytes[0..<132])
        #expect(updated == 16)
        #expect(target.gpr == r.gpr)
        #expect(target.rip == 0)
    }

    @Test func singleRegistersRoundTrip() {
        let r = sampleRegisters()
        let layout = RegisterLayout.of(.x86_64, extensions: .all)
        var copy = X86_64Registers()
        for regnum in layout.registers.indices {
            let bytes = try! #require(r.rawBytes(ofRegister: regnum, in: layout))
            #expect(bytes.count == layout.registers[regnum].byteCount)
            let accepted = copy.setRawBytes(bytes[...], ofRegister: regnum, in: layout)
            #expect(accepted)
        }
        #expect(copy == r)
        let count = layout.registers.count
        #expect(r.rawBytes(ofRegister: count, in: layout) == nil)
        #expect(r.rawBytes(ofRegister: -1, in: layout) == nil)
        let wrongSize = copy.setRawBytes([0, 0, 0][...], ofRegister: 0, in: layout)
        let unknown = copy.setRawBytes([0][...], ofRegister: count, in: layout)
        #expect(!wrongSize && !unknown)
    }

    @Test func extensionsLayOutAsGDBNamesThem() {
        let layout = RegisterLayout.of(.x86_64, extensions: .all)
        let names = layout.registers.map(\.name)
        func index(_ name: String) -> Int { names.firstIndex(of: name) ?? -1 }
        // gdb's 64bit-avx.xml, 64bit-avx512.xml and 64bit-pkeys.xml, after the sregs part.
        #expect(Array(names[75..<91]) == (0...15).map { "ymm\($0)h" })
        #expect(Array(names[91..<107]) == (16...31).map { "xmm\($0)" })
        #expect(Array(names[107..<123]) == (16...31).map { "ymm\($0)h" })
        #expect(Array(names[123..<131]) == (0...7).map { "k\($0)" })
        #expect(Array(names[131..<163]) == (0...31).map { "zmm\($0)h" })
        #expect(names[163] == "pkru")
        #expect(layout.gPacketCount == 164)
        #expect(index("tsc_aux") == index("tsc") + 1 && index("spec_ctrl") == index("pat") + 1)
        #expect(layout.registers[index("zmm31h")].bitSize == 256 && layout.registers[index("k7")].bitSize == 64)
        // The optional MSRs come and go with their CPUID bits; nothing else moves.
        let none = RegisterLayout.of(.x86_64, extensions: RegisterExtensions(avx: true))
        #expect(!none.registers.contains { $0.name == "tsc_aux" || $0.name == "spec_ctrl" || $0.name == "pkru" || $0.name == "k0" })
        #expect(none.registers[75].name == "ymm0h" && none.gPacketCount == 91)
        // i386: ymm0h-7h, k0-7, zmm0h-7h (gdb's 32bit-avx512.xml), pkru; no long-mode-only MSRs.
        let i386 = RegisterLayout.of(.i386, extensions: .all).registers.map(\.name)
        #expect(i386.contains("ymm7h") && !i386.contains("ymm8h") && i386.contains("zmm7h") && !i386.contains("zmm8h"))
        #expect(i386.contains("k7") && i386.contains("pkru") && !i386.contains("xmm16"))
        #expect(i386.contains("sysenter_eip") && !i386.contains("lstar") && !i386.contains("k_gs_base"))
    }

    @Test func registerPartsSayWhatToFetch() {
        let layout = RegisterLayout.of(.x86_64, extensions: .all)
        func part(_ name: String) -> RegisterParts? { layout.registers.first { $0.name == name }?.slot.part }
        #expect(part("rip") == .general && part("cr4") == .general && part("gdtr_base") == .general)
        #expect(part("xmm0") == .vector && part("ymm15h") == .vector && part("k3") == .vector && part("pkru") == .vector)
        #expect(part("lstar") == .msrs && part("k_gs_base") == .msrs && part("dr7") == .debug)
    }

    @Test func malformedArraysReadAsZerosAndArePadded() {
        var r = X86_64Registers()
        r.gpr = [1]
        r.st = [[1, 2]]
        r.xmm = []
        r.segments = []
        let raw = r.rawBytes
        #expect(raw.count == 656)
        #expect(raw[8] == 0)
        #expect(Array(raw[164..<174]) == [1, 2, 0, 0, 0, 0, 0, 0, 0, 0])
        let setGPR = r.setRawBytes([9, 0, 0, 0, 0, 0, 0, 0][...], ofRegister: 15)
        #expect(setGPR)
        #expect(r.gpr.count == 16 && r.gpr[15] == 9 && r.gpr[0] == 1)
        let setXMM = r.setRawBytes([UInt8](repeating: 7, count: 16)[...], ofRegister: 55)
        #expect(setXMM)
        #expect(r.xmm.count == 32 && r.xmm[15] == [UInt8](repeating: 7, count: 16))
    }

    @Test func i386LayoutMatchesGDB() {
        let layout = RegisterLayout.i386
        let names = layout.registers.map(\.name)
        #expect(names.count == 71)
        #expect(Array(names[0..<10]) == ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags"])
        #expect(Array(names[10..<16]) == ["cs", "ss", "ds", "es", "fs", "gs"])
        #expect(names[16] == "st0" && names[24] == "fctrl" && names[31] == "fop")
        #expect(names[32] == "xmm0" && names[39] == "xmm7" && names[40] == "mxcsr")
        #expect(Array(names[41...]) == ["fs_base", "gs_base", "cr0", "cr2", "cr3", "cr4", "efer",
                                        "gdtr_base", "gdtr_limit", "idtr_base", "idtr_limit", "ldtr", "ldtr_base",
                                        "ldtr_limit", "tr", "tr_base", "tr_limit",
                                        "sysenter_cs", "sysenter_esp", "sysenter_eip", "star", "tsc", "apic_base", "pat",
                                        "dr0", "dr1", "dr2", "dr3", "dr6", "dr7"])
        #expect(layout.pc == 8 && layout.sp == 4 && layout.fp == 5)
        #expect(RegisterLayout.x86_64.pc == 16 && RegisterLayout.x86_64.sp == 7 && RegisterLayout.x86_64.fp == 6)
        #expect(layout.totalByteCount == 456 && layout.gPacketByteCount == 376 && layout.gPacketCount == 58)
        #expect(layout.offsets[8] == 32 && layout.offsets[16] == 64 && layout.offsets[32] == 176 && layout.offsets[41] == 308)
        // MSRs are 64-bit in every mode.
        #expect(layout.registers.allSatisfy {
            $0.bitSize == 32 || $0.name.hasPrefix("st") || $0.name.hasPrefix("xmm") || $0.feature == .msr
        })
    }

    @Test func i386IsTheLowHalfOfTheSameRegisterFile() {
        let r = sampleRegisters()
        let layout = RegisterLayout.i386
        func u32(_ regnum: Int) -> UInt32? {
            r.rawBytes(ofRegister: regnum, in: layout).map { $0.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        }
        // gpr is rax rbx rcx rdx rsi rdi rbp rsp; i386 numbers eax ecx edx ebx esp ebp esi edi.
        let gprIndex = [0, 2, 3, 1, 7, 6, 4, 5]
        for (regnum, i) in gprIndex.enumerated() { #expect(u32(regnum) == UInt32(truncatingIfNeeded: r.gpr[i])) }
        #expect(u32(8) == 0x8100_0000 && u32(9) == 0x246 && u32(10) == 0x10 && u32(15) == 0)
        #expect(r.rawBytes(ofRegister: 16, in: layout) == r.st[0])
        #expect(u32(24) == 0x37f && u32(31) == 0x7ff)
        #expect(r.rawBytes(ofRegister: 39, in: layout) == r.xmm[7])
        #expect(u32(40) == 0x1fa0 && u32(41) == 0x1000 && u32(42) == 0)
        #expect(u32(43) == 0x8005_0033 && u32(44) == 0xdead_0000 && u32(45) == 0x1000 && u32(46) == 0x3406a0 && u32(47) == 0xd01)
        #expect(u32(48) == 0x1000 && u32(49) == 0x7f && u32(56) == 0x3000 && u32(57) == 0x4087)
        #expect(r.rawBytes(ofRegister: 71, in: layout) == nil)
        let raw = r.rawBytes(in: layout)
        #expect(raw.count == 376)
        #expect(Array(raw[32..<36]) == [0, 0, 0, 0x81])
    }

    @Test func i386WritesZeroExtendAndLeaveTheRestAlone() {
        let r = sampleRegisters()
        let layout = RegisterLayout.i386
        var copy = r
        // Writing back what was read clears exactly the upper halves of what i386 shows.
        let updated = copy.update(fromRawBytes: r.rawBytes(in: layout)[...], in: layout)
        #expect(updated == 58)
        var expected = r
        for i in 0..<8 { expected.gpr[i] &= 0xffff_ffff }
        expected.rip &= 0xffff_ffff
        expected.fsBase &= 0xffff_ffff
        expected.gsBase &= 0xffff_ffff
        expected.cr2 &= 0xffff_ffff
        expected.gdtrBase &= 0xffff_ffff
        expected.idtrBase &= 0xffff_ffff
        expected.tr.base &= 0xffff_ffff
        #expect(copy == expected)
        // r8-r15, xmm8-15, k_gs_base and cr8 are untouched.
        #expect(copy.gpr[8...] == r.gpr[8...] && copy.xmm[8...] == r.xmm[8...])
        #expect(copy.kernelGsBase == r.kernelGsBase && copy.cr8 == r.cr8)
        let set = copy.setRawBytes([0xff, 0xff, 0xff, 0xff][...], ofRegister: 4, in: layout)
        #expect(set && copy.gpr[7] == 0xffff_ffff)
        let wrongSize = copy.setRawBytes([0, 0, 0, 0, 0, 0, 0, 0][...], ofRegister: 0, in: layout)
        let unknown = copy.setRawBytes([0, 0, 0, 0][...], ofRegister: 71, in: layout)
        #expect(!wrongSize && !unknown)
    }
}
