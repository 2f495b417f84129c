/// The 0F opcode map apart from SSE/MMX (see `SIMDOpcodes.swift`). The three-byte maps
/// 0F 38 and 0F 3A are not decoded.
extension DecodeState {
    mutating func decodeTwoByte(_ opcode: UInt8) throws(DecodeFailure) {
        let size = operandSize
        switch opcode {
        case 0x00:  // sldt, str, lldt, ltr, verr, verw
            let modrm = try modRM()
            switch modrm.regField {
            case 0, 1: operand(modrm, .write, 2)
            case 2...5: operand(modrm, .read, 2)
            default: throw .unsupported
            }
        case 0x01:
            try group7()
        case 0x02, 0x03:  // lar, lsl
            operand(try modRM(), .read, 2)
        case 0x05, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x0E, 0x30...0x35, 0x77, 0xA2, 0xC8...0xCF:
            break  // syscall clts sysret invd wbinvd ud2 femms wrmsr rdtsc rdmsr rdpmc sysenter sysexit emms cpuid bswap
        case 0x0D:  // prefetch, prefetchw
            guard try modRM().isMemory else { throw .unsupported }
        case 0x18, 0x19, 0x1C...0x1F:  // prefetch hints, hint NOPs (nopl, endbr64, cldemote)
            _ = try modRM()
        case 0x20...0x23:  // mov to/from CRn, DRn: always register operands
            _ = try modRM(registerOnly: true)
        case 0x40...0x4F:  // cmovcc
            operand(try modRM(), .read, size)
        case 0x78, 0x79:  // vmread (writes r/m), vmwrite (reads it); 66/F2 forms are SSE4a
            guard prefixes.simd == .none else { throw .unsupported }
            operand(try modRM(), opcode == 0x78 ? .write : .read, isLong ? 8 : 4)
        case 0x80...0x8F:  // jcc rel16/32
            try skip(try relativeSize())
        case 0x90...0x9F:  // setcc
            operand(try modRM(), .write, 1)
        case 0xA0, 0xA8:  // push fs, push gs
            push(stackSlot)
        case 0xA1, 0xA9:  // pop fs, pop gs
            pop(stackSlot)
        case 0xA3, 0xAB, 0xB3, 0xBB:  // bt, bts, btr, btc r/m, r
            try bitTestRegister(opcode == 0xA3 ? .read : .readWrite)
        case 0xA4, 0xAC:  // shld, shrd imm8
            operand(try modRM(), .readWrite, size)
            try skip(1)
        case 0xA5, 0xAD:  // shld, shrd cl
            operand(try modRM(), .readWrite, size)
        case 0xAE:
            try group15()
        case 0xAF:
            operand(try modRM(), .read, size)
        case 0xB0, 0xB1:  // cmpxchg: the destination is written back even when unequal
            operand(try modRM(), .readWrite, opcode == 0xB0 ? 1 : size)
        case 0xB2, 0xB4, 0xB5:  // lss, lfs, lgs m16:16/32/64
            let modrm = try modRM()
            guard modrm.isMemory else { throw .unsupported }
            operand(modrm, .read, size + 2)
        case 0xB6, 0xBE:  // movzx, movsx r, r/m8
            operand(try modRM(), .read, 1)
        case 0xB7, 0xBF:  // movzx, movsx r, r/m16
            operand(try modRM(), .read, 2)
        case 0xB8:  // popcnt (without F3: jmpe)
            guard prefixes.repeatPrefix == 0xF3 else { throw .unsupported }
            operand(try modRM(), .read, size)
        case 0xBA:  // bt, bts, btr, btc r/m, imm8: the offset stays inside the operand
            let modrm = try modRM()
            switch modrm.regField {
            case 4: operand(modrm, .read, size)
            case 5...7: operand(modrm, .readWrite, size)
            default: throw .unsupported
            }
            try skip(1)
        case 0xBC, 0xBD:  // bsf/tzcnt, bsr/lzcnt
            operand(try modRM(), .read, size)
        case 0xC0, 0xC1:  // xadd
            operand(try modRM(), .readWrite, opcode == 0xC0 ? 1 : size)
        case 0xC7:
            try group9()
        default:
            guard let form = SIMDForm.form(for: opcode, operandSize: size) else {
                throw .unsupported
            }
            try simd(form)
        }
    }

    /// BT family with a register bit offset: the offset is signed and may reach far beyond
    /// the operand, so the accessed unit is base + (offset >> log2(bits)) * size.
    private mutating func bitTestRegister(_ use: Use) throws(DecodeFailure) {
        let modrm = try modRM()
        let size = operandSize
        let raw = registers.register(modrm.reg)
        let offset: Int64 = switch size {
        case 2: Int64(Int16(truncatingIfNeeded: raw))
        case 4: Int64(Int32(truncatingIfNeeded: raw))
        default: Int64(bitPattern: raw)
        }
        let shift: Int64 = size == 2 ? 4 : (size == 4 ? 5 : 6)
        let delta = UInt64(bitPattern: (offset >> shift) &* Int64(size))
        operand(modrm, OperandSpec(use: use, size: size), displacement: delta)
    }

    /// 0F 01: descriptor-table loads and stores, smsw, lmsw, invlpg; register forms are a
    /// zoo of system instructions of which those without memory operands are accepted.
    private mutating func group7() throws(DecodeFailure) {
        let byte = try peek()
        let modrm = try modRM()
        guard modrm.isMemory else {
            // vmcall vmlaunch vmresume vmxoff monitor mwait clac stac xgetbv xsetbv vmfunc
            // xend xtest vmmcall stgi clgi invlpga serialize rdpkru wrpkru swapgs rdtscp
            let known: Set<UInt8> = [0xC1, 0xC2, 0xC3, 0xC4, 0xC8, 0xC9, 0xCA, 0xCB, 0xD0, 0xD1, 0xD4,
                                     0xD5, 0xD6, 0xD9, 0xDC, 0xDD, 0xDF, 0xE8, 0xEE, 0xEF, 0xF9]
            guard known.contains(byte) || (byte == 0xF8 && isLong) else { throw .unsupported }
            return
        }
        // The pseudo-descriptor: a 2-byte limit and a 4-byte base (8 in 64-bit mode).
        let table = isLong ? 10 : 6
        switch modrm.regField {
        case 0, 1: operand(modrm, .write, table)  // sgdt, sidt
        case 2, 3: operand(modrm, .read, table)  // lgdt, lidt
        case 4: operand(modrm, .write, 2)  // smsw
        case 6: operand(modrm, .read, 2)  // lmsw
        case 7: break  // invlpg
        default: throw .unsupported
        }
    }

    /// 0F AE: fxsave, fxrstor, ldmxcsr, stmxcsr, clflush(opt), clwb; register forms are the
    /// fences and rd/wr fs/gs base. xsave and friends have state-dependent sizes: refused.
    private mutating func group15() throws(DecodeFailure) {
        let modrm = try modRM()
        guard modrm.isMemory else { return }
        switch (prefixes.simd, modrm.regField) {
        case (.none, 0): operand(modrm, .write, 512)
        case (.none, 1): operand(modrm, .read, 512)
        case (.none, 2): operand(modrm, .read, 4)
        case (.none, 3): operand(modrm, .write, 4)
        case (.none, 7), (.p66, 6), (.p66, 7): break  // cache-line flushes and write-backs
        default: throw .unsupported
        }
    }

    /// 0F C7: cmpxchg8b/16b, vmptrld, vmxon, vmptrst; register forms rdrand, rdseed, rdpid.
    private mutating func group9() throws(DecodeFailure) {
        let modrm = try modRM()
        guard modrm.isMemory else {
            guard modrm.regField >= 6 else { throw .unsupported }
            return
        }
        switch (prefixes.simd, modrm.regField) {
        case (_, 1): operand(modrm, .readWrite, prefixes.rexW ? 16 : 8)  // F2/F3 are HLE hints here
        case (.none, 6), (.f3, 6): operand(modrm, .read, 8)  // vmptrld, vmxon
        case (.none, 7): operand(modrm, .write, 8)  // vmptrst
        default: throw .unsupported
        }
    }
}
