import CKVM
import KVMRunLoop
import RSP

/// Everything the register file is assembled from: two synced structures, the XSAVE image
/// (x87, SSE, MXCSR), one MSR.
struct CPUState: Equatable {
    var regs: kvm_regs
    var sregs: kvm_sregs
    var xsave: [UInt8]
    var kernelGSBase: UInt64

    static let kernelGSBaseMSR: UInt32 = 0xC000_0102

    init(vcpu: VCPU) throws(SystemError) {
        regs = try vcpu.getRegs()
        sregs = try vcpu.getSregs()
        xsave = try vcpu.getXSave()
        kernelGSBase = try vcpu.getMSRs([CPUState.kernelGSBaseMSR])[CPUState.kernelGSBaseMSR] ?? 0
    }

    /// Writes back only the parts that differ from `old`: each ioctl costs microseconds.
    func write(to vcpu: VCPU, old: CPUState) throws(SystemError) {
        if !bytesEqual(regs, old.regs) { try vcpu.setRegs(regs) }
        if !bytesEqual(sregs, old.sregs) { try vcpu.setSregs(sregs) }
        if xsave != old.xsave {
            var image = xsave
            // XSTATE_BV: mark x87 and SSE state present, or KVM restores their init state.
            image[512] |= 0x3
            try vcpu.setXSave(image)
        }
        if kernelGSBase != old.kernelGSBase { try vcpu.setMSRs([(CPUState.kernelGSBaseMSR, kernelGSBase)]) }
    }

    static func == (a: CPUState, b: CPUState) -> Bool {
        bytesEqual(a.regs, b.regs) && bytesEqual(a.sregs, b.sregs) && a.xsave == b.xsave
            && a.kernelGSBase == b.kernelGSBase
    }

    // MARK: to and from gdb's register file

    /// The registers that come from kvm_regs and kvm_sregs alone (x87/SSE and MSRs left at
    /// their defaults): what a stop reply needs.
    static func generalRegisters(regs: kvm_regs, sregs: kvm_sregs) -> X86_64Registers {
        var r = X86_64Registers()
        r.gpr = [regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp, regs.rsp,
                 regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15]
        r.rip = regs.rip
        r.eflags = UInt32(truncatingIfNeeded: regs.rflags)
        r.segments = [sregs.cs, sregs.ss, sregs.ds, sregs.es, sregs.fs, sregs.gs].map { UInt32($0.selector) }
        r.fsBase = sregs.fs.base
        r.gsBase = sregs.gs.base
        r.cr0 = sregs.cr0
        r.cr2 = sregs.cr2
        r.cr3 = sregs.cr3
        r.cr4 = sregs.cr4
        r.cr8 = sregs.cr8
        r.efer = sregs.efer
        return r
    }

    var registers: X86_64Registers {
        var r = CPUState.generalRegisters(regs: regs, sregs: sregs)
        r.kernelGsBase = kernelGSBase
        // FXSAVE layout: fcw 0, fsw 2, abridged ftw 4, fop 6, fip 8, fdp 16, mxcsr 24,
        // st(i) at 32 + 16i, xmm(i) at 160 + 16i.
        let st = (0..<8).map { Array(xsave[(32 + $0 * 16)..<(32 + $0 * 16 + 10)]) }
        r.st = st
        let fsw = UInt32(le(16, at: 2))
        let top = Int(fsw >> 11) & 7
        r.x87Control = [UInt32(le(16, at: 0)), fsw,
                        UInt32(CPUState.fullTagWord(abridged: xsave[4], st: st, top: top)),
                        0, UInt32(le(32, at: 8)), 0, UInt32(le(32, at: 16)), UInt32(le(16, at: 6))]
        r.xmm = (0..<16).map { Array(xsave[(160 + $0 * 16)..<(160 + $0 * 16 + 16)]) }
        r.mxcsr = UInt32(le(32, at: 24))
        return r
    }

    mutating func update(from r: X86_64Registers) {
        let g = r.gpr
        regs.rax = g[0]; regs.rbx = g[1]; regs.rcx = g[2]; regs.rdx = g[3]
        regs.rsi = g[4]; regs.rdi = g[5]; regs.rbp = g[6]; regs.rsp = g[7]
        regs.r8 = g[8]; regs.r9 = g[9]; regs.r10 = g[10]; regs.r11 = g[11]
        regs.r12 = g[12]; regs.r13 = g[13]; regs.r14 = g[14]; regs.r15 = g[15]
        regs.rip = r.rip
        // Bit 1 of RFLAGS is reserved and must be one.
        regs.rflags = (regs.rflags & ~0xFFFF_FFFF) | UInt64(r.eflags) | 2
        // A selector write changes the selector only; the hidden descriptor stays, as after a
        // debugger write on real hardware with no reload.
        sregs.cs.selector = UInt16(truncatingIfNeeded: r.segments[0])
        sregs.ss.selector = UInt16(truncatingIfNeeded: r.segments[1])
        sregs.ds.selector = UInt16(truncatingIfNeeded: r.segments[2])
        sregs.es.selector = UInt16(truncatingIfNeeded: r.segments[3])
        sregs.fs.selector = UInt16(truncatingIfNeeded: r.segments[4])
        sregs.gs.selector = UInt16(truncatingIfNeeded: r.segments[5])
        sregs.fs.base = r.fsBase
        sregs.gs.base = r.gsBase
        kernelGSBase = r.kernelGsBase
        sregs.cr0 = r.cr0
        sregs.cr2 = r.cr2
        sregs.cr3 = r.cr3
        sregs.cr4 = r.cr4
        sregs.cr8 = r.cr8
        sregs.efer = r.efer
        for i in 0..<8 { for b in 0..<10 { xsave[32 + i * 16 + b] = r.st[i][b] } }
        setLE(UInt64(r.x87Control[0]), bits: 16, at: 0)
        setLE(UInt64(r.x87Control[1]), bits: 16, at: 2)
        xsave[4] = CPUState.abridgedTag(full: UInt16(truncatingIfNeeded: r.x87Control[2]))
        // Only the low 32 bits of the instruction/data pointers are in gdb's view; keep the rest.
        if UInt32(le(32, at: 8)) != r.x87Control[4] { setLE(UInt64(r.x87Control[4]), bits: 32, at: 8) }
        if UInt32(le(32, at: 16)) != r.x87Control[6] { setLE(UInt64(r.x87Control[6]), bits: 32, at: 16) }
        setLE(UInt64(r.x87Control[7]), bits: 16, at: 6)
        for i in 0..<16 { for b in 0..<16 { xsave[160 + i * 16 + b] = r.xmm[i][b] } }
        setLE(UInt64(r.mxcsr), bits: 32, at: 24)
    }

    private func le(_ bits: Int, at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<(bits / 8) { value |= UInt64(xsave[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    private mutating func setLE(_ value: UInt64, bits: Int, at offset: Int) {
        for i in 0..<(bits / 8) { xsave[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    /// FXSAVE keeps one "not empty" bit per physical register; gdb shows the full x87 tag word
    /// (valid 0, zero 1, special 2, empty 3), derived from each register's contents.
    static func fullTagWord(abridged: UInt8, st: [[UInt8]], top: Int) -> UInt16 {
        var word: UInt16 = 0
        for physical in 0..<8 {
            var tag: UInt16 = 3
            if abridged & (1 << physical) != 0 {
                let value = st[(physical - top + 8) & 7]
                let exponent = (UInt16(value[9]) << 8 | UInt16(value[8])) & 0x7FFF
                let mantissaZero = value[0..<8].allSatisfy { $0 == 0 }
                if exponent == 0x7FFF { tag = 2 }
                else if exponent == 0 { tag = mantissaZero ? 1 : 2 }
                else { tag = value[7] & 0x80 != 0 ? 0 : 2 }
            }
            word |= tag << (UInt16(physical) * 2)
        }
        return word
    }

    static func abridgedTag(full: UInt16) -> UInt8 {
        var abridged: UInt8 = 0
        for physical in 0..<8 where (full >> (physical * 2)) & 3 != 3 { abridged |= 1 << physical }
        return abridged
    }
}

/// A vCPU's registers as read at a stop, with gdb's view of them built once.
struct CachedRegisters {
    var state: CPUState
    var view: X86_64Registers
}

/// Compares two C structs byte for byte (they hold no pointers or padding we care about).
func bytesEqual<T>(_ a: T, _ b: T) -> Bool {
    // SAFETY: compares the bytes of two plain C struct values of the same type.
    withUnsafeBytes(of: a) { ra in withUnsafeBytes(of: b) { rb in ra.elementsEqual(rb) } }
}
