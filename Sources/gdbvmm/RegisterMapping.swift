import CKVM
import Glibc
import KVMRunLoop
import RSP

/// What a VM's register file is read from beyond kvm_regs and kvm_sregs: where the XSAVE
/// components lie and which MSRs gdb is shown. Taken from the guest's CPUID once; the register
/// set then stays the same whatever the guest does.
struct RegisterSources: Equatable {
    var xsave: XSaveLayout
    var msrs: [UInt32]
    var extensions: RegisterExtensions

    init(_ support: GuestRegisterSupport) {
        extensions = RegisterExtensions(avx: support.xsave.hasAVX, avx512: support.xsave.hasAVX512,
                                        pkeys: support.xsave.hasPKRU, tscAux: support.hasTSCAux,
                                        specCtrl: support.hasSpecCtrl)
        xsave = support.xsave
        msrs = extensions.msrs
    }

    static let baseline = RegisterSources(.baseline)
}

/// Everything the register file is assembled from, each part read only when gdb asks for a
/// register in it: kvm_regs and kvm_sregs (synced, free after a stop), the XSAVE image (x87,
/// SSE, AVX, AVX-512, PKRU), the MSRs, the guest's debug registers.
struct CPUState: Equatable {
    let sources: RegisterSources
    private(set) var parts: RegisterParts = []
    var regs = kvm_regs()
    var sregs = kvm_sregs()
    var xsave: [UInt8] = []
    var msrs: [UInt32: UInt64] = [:]
    var debugRegs = kvm_debugregs()

    static let kernelGSBaseMSR: UInt32 = 0xC000_0102
    static let apicBaseMSR: UInt32 = 0x1B

    init(vcpu: VCPU, parts: RegisterParts = .general, sources: RegisterSources = .baseline) throws(SystemError) {
        self.sources = sources
        try load(parts, from: vcpu)
    }

    /// Reads the parts in `wanted` not read yet.
    mutating func load(_ wanted: RegisterParts, from vcpu: VCPU) throws(SystemError) {
        let missing = wanted.subtracting(parts)
        if missing.contains(.general) {
            regs = try vcpu.getRegs()
            sregs = try vcpu.getSregs()
        }
        if missing.contains(.vector) { xsave = try vcpu.getXSave() }
        if missing.contains(.msrs) {
            let values = try vcpu.getMSRs(sources.msrs)
            if let absent = sources.msrs.first(where: { values[$0] == nil }) {
                throw SystemError("KVM_GET_MSRS (MSR 0x\(String(absent, radix: 16)) unreadable)", errno: EINVAL)
            }
            msrs = values
        }
        if missing.contains(.debug) { debugRegs = try vcpu.getDebugRegs() }
        parts.formUnion(missing)
    }

    /// Writes back only the parts that differ from `old` (the state this one was made from):
    /// each ioctl costs microseconds.
    func write(to vcpu: VCPU, old: CPUState) throws(SystemError) {
        if parts.contains(.general) {
            if !bytesEqual(regs, old.regs) { try vcpu.setRegs(regs) }
            if !bytesEqual(sregs, old.sregs) { try vcpu.setSregs(sregs) }
        }
        if parts.contains(.vector) && xsave != old.xsave {
            try vcpu.setXSave(sources.xsave.markingWrittenComponents(xsave, old: old.xsave))
        }
        if parts.contains(.msrs) {
            let changed = sources.msrs.filter { msrs[$0] != old.msrs[$0] }.map { ($0, msrs[$0] ?? 0) }
            if !changed.isEmpty { try vcpu.setMSRs(changed) }
        }
        if parts.contains(.debug) && !bytesEqual(debugRegs, old.debugRegs) { try vcpu.setDebugRegs(debugRegs) }
    }

    static func == (a: CPUState, b: CPUState) -> Bool {
        a.parts == b.parts && bytesEqual(a.regs, b.regs) && bytesEqual(a.sregs, b.sregs) && a.xsave == b.xsave
            && a.msrs == b.msrs && bytesEqual(a.debugRegs, b.debugRegs) && a.sources == b.sources
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
        r.gdtrBase = sregs.gdt.base
        r.gdtrLimit = UInt32(sregs.gdt.limit)
        r.idtrBase = sregs.idt.base
        r.idtrLimit = UInt32(sregs.idt.limit)
        r.ldtr = SystemSegment(selector: UInt32(sregs.ldt.selector), base: sregs.ldt.base, limit: sregs.ldt.limit)
        r.tr = SystemSegment(selector: UInt32(sregs.tr.selector), base: sregs.tr.base, limit: sregs.tr.limit)
        return r
    }

    /// gdb's view of the parts read; the rest keeps X86_64Registers' defaults.
    var registers: X86_64Registers {
        var r = parts.contains(.general) ? CPUState.generalRegisters(regs: regs, sregs: sregs) : X86_64Registers()
        if parts.contains(.msrs) {
            r.msrs = msrs
            r.kernelGsBase = msrs[CPUState.kernelGSBaseMSR] ?? 0
        }
        if parts.contains(.debug) {
            let d = debugRegs
            r.debugRegisters = [d.db.0, d.db.1, d.db.2, d.db.3, d.dr6, d.dr7]
        }
        if parts.contains(.vector) && xsave.count >= 512 { vectorRegisters(into: &r) }
        return r
    }

    private func vectorRegisters(into r: inout X86_64Registers) {
        // FXSAVE layout: fcw 0, fsw 2, abridged ftw 4, fop 6, fip 8, fdp 16, mxcsr 24,
        // st(i) at 32 + 16i, xmm(i) at 160 + 16i.
        let st = (0..<8).map { Array(xsave[(32 + $0 * 16)..<(32 + $0 * 16 + 10)]) }
        r.st = st
        let fsw = UInt32(le(16, at: 2))
        let top = Int(fsw >> 11) & 7
        r.x87Control = [UInt32(le(16, at: 0)), fsw,
                        UInt32(CPUState.fullTagWord(abridged: xsave[4], st: st, top: top)),
                        0, UInt32(le(32, at: 8)), 0, UInt32(le(32, at: 16)), UInt32(le(16, at: 6))]
        for i in 0..<16 { r.xmm[i] = Array(xsave[(160 + i * 16)..<(160 + i * 16 + 16)]) }
        r.mxcsr = UInt32(le(32, at: 24))
        let layout = sources.xsave
        func bytes(_ range: Range<Int>?) -> [UInt8]? {
            guard let range, range.upperBound <= xsave.count else { return nil }
            return Array(xsave[range])
        }
        for i in 0..<32 {
            if let v = bytes(layout.ymmHigh(i)) { r.ymmh[i] = v }
            if let v = bytes(layout.zmmHigh(i)) { r.zmmh[i] = v }
            if let v = bytes(layout.xmmHigh(i)) { r.xmm[i] = v }
        }
        for i in 0..<8 {
            if let v = bytes(layout.opmask(i)) { r.k[i] = v.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        }
        if let v = bytes(layout.pkruRange) { r.pkru = v.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    }

    /// Takes gdb's values for the parts read.
    mutating func update(from r: X86_64Registers) {
        if parts.contains(.general) { updateGeneral(from: r) }
        if parts.contains(.vector) && xsave.count >= 512 { updateVector(from: r) }
        if parts.contains(.msrs) {
            for index in sources.msrs { msrs[index] = r.msrs[index] ?? msrs[index] }
            if msrs[CPUState.kernelGSBaseMSR] != nil { msrs[CPUState.kernelGSBaseMSR] = r.kernelGsBase }
            // kvm_sregs carries IA32_APIC_BASE too: a later KVM_SET_SREGS must not undo a write.
            if parts.contains(.general), let base = msrs[CPUState.apicBaseMSR] { sregs.apic_base = base }
        }
        if parts.contains(.debug) && r.debugRegisters.count == 6 {
            let d = r.debugRegisters
            debugRegs.db = (d[0], d[1], d[2], d[3])
            debugRegs.dr6 = d[4]
            debugRegs.dr7 = d[5]
        }
    }

    private mutating func updateGeneral(from r: X86_64Registers) {
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
        sregs.cr0 = r.cr0
        sregs.cr2 = r.cr2
        sregs.cr3 = r.cr3
        sregs.cr4 = r.cr4
        sregs.cr8 = r.cr8
        sregs.efer = r.efer
        sregs.gdt.base = r.gdtrBase
        sregs.gdt.limit = UInt16(truncatingIfNeeded: r.gdtrLimit)
        sregs.idt.base = r.idtrBase
        sregs.idt.limit = UInt16(truncatingIfNeeded: r.idtrLimit)
        sregs.ldt.selector = UInt16(truncatingIfNeeded: r.ldtr.selector)
        sregs.ldt.base = r.ldtr.base
        sregs.ldt.limit = r.ldtr.limit
        sregs.tr.selector = UInt16(truncatingIfNeeded: r.tr.selector)
        sregs.tr.base = r.tr.base
        sregs.tr.limit = r.tr.limit
    }

    private mutating func updateVector(from r: X86_64Registers) {
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
        let layout = sources.xsave
        func put(_ bytes: [UInt8], _ range: Range<Int>?) {
            guard let range, range.upperBound <= xsave.count, bytes.count == range.count else { return }
            xsave.replaceSubrange(range, with: bytes)
        }
        func littleEndian(_ value: UInt64, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }
        for i in 0..<32 {
            put(r.ymmh[i], layout.ymmHigh(i))
            put(r.zmmh[i], layout.zmmHigh(i))
            put(r.xmm[i], layout.xmmHigh(i))
        }
        for i in 0..<8 { put(littleEndian(r.k[i], 8), layout.opmask(i)) }
        put(littleEndian(UInt64(r.pkru), 4), layout.pkruRange)
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
