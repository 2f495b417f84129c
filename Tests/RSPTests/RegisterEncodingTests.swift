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
    r.xmm = (0..<16).map { i in (0..<16).map { UInt8(i * 16 + $0) } }
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
    return r
}

@Suite struct RegisterEncodingTests {
    @Test func layoutMatchesTheContract() {
        let names = RegisterLayout.registers.map(\.name)
        #expect(names.count == 66)
        #expect(Array(names[0..<8]) == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"])
        #expect(names[16] == "rip" && names[17] == "eflags" && names[18] == "cs" && names[23] == "gs")
        #expect(names[24] == "st0" && names[32] == "fctrl" && names[39] == "fop")
        #expect(names[40] == "xmm0" && names[55] == "xmm15" && names[56] == "mxcsr")
        #expect(Array(names[57...]) == ["fs_base", "gs_base", "k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"])
        #expect(RegisterLayout.totalByteCount == 608)
        #expect(RegisterLayout.offsets[16] == 128 && RegisterLayout.offsets[57] == 536)
    }

    @Test func fullFileRoundTrips() {
        let r = sampleRegisters()
        let raw = r.rawBytes
        #expect(raw.count == RegisterLayout.totalByteCount)
        // rax is little-endian at offset 0, rip at 128, eflags at 136.
        #expect(Array(raw[0..<8]) == [0x00, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
        #expect(Array(raw[128..<136]) == [0, 0, 0, 0x81, 0xff, 0xff, 0xff, 0xff])
        #expect(Array(raw[136..<140]) == [0x46, 0x02, 0, 0])
        var decoded = X86_64Registers()
        let updated = decoded.update(fromRawBytes: raw[...])
        #expect(updated == 66)
        #expect(decoded == r)
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
        var copy = X86_64Registers()
        for regnum in 0..<66 {
            let bytes = try! #require(r.rawBytes(ofRegister: regnum))
            #expect(bytes.count == RegisterLayout.registers[regnum].byteCount)
            let accepted = copy.setRawBytes(bytes[...], ofRegister: regnum)
            #expect(accepted)
        }
        #expect(copy == r)
        #expect(r.rawBytes(ofRegister: 66) == nil)
        #expect(r.rawBytes(ofRegister: -1) == nil)
        let wrongSize = copy.setRawBytes([0, 0, 0][...], ofRegister: 0)
        let unknown = copy.setRawBytes([0][...], ofRegister: 66)
        #expect(!wrongSize && !unknown)
    }

    @Test func malformedArraysReadAsZerosAndArePadded() {
        var r = X86_64Registers()
        r.gpr = [1]
        r.st = [[1, 2]]
        r.xmm = []
        r.segments = []
        let raw = r.rawBytes
        #expect(raw.count == 608)
        #expect(raw[8] == 0)
        #expect(Array(raw[164..<174]) == [1, 2, 0, 0, 0, 0, 0, 0, 0, 0])
        let setGPR = r.setRawBytes([9, 0, 0, 0, 0, 0, 0, 0][...], ofRegister: 15)
        #expect(setGPR)
        #expect(r.gpr.count == 16 && r.gpr[15] == 9 && r.gpr[0] == 1)
        let setXMM = r.setRawBytes([UInt8](repeating: 7, count: 16)[...], ofRegister: 55)
        #expect(setXMM)
        #expect(r.xmm.count == 16 && r.xmm[15] == [UInt8](repeating: 7, count: 16))
    }
}
