/// One SSE/MMX opcode in the 0F map: its memory operand for each mandatory prefix (nil: no
/// such instruction), its immediate, and whether it only exists with register operands.
struct SIMDForm {
    var none: OperandSpec?
    var p66: OperandSpec?
    var f3: OperandSpec?
    var f2: OperandSpec?
    var immediate = 0
    var registerOnly = false

    func spec(_ prefix: SIMDPrefix) -> OperandSpec? {
        switch prefix {
        case .none: none
        case .p66: p66
        case .f3: f3
        case .f2: f2
        }
    }

    /// Packed (16 bytes), scalar single (4) and scalar double (8): the usual four forms.
    private static func arithmetic(immediate: Int = 0) -> SIMDForm {
        SIMDForm(none: .r(16), p66: .r(16), f3: .r(4), f2: .r(8), immediate: immediate)
    }

    /// MMX (8 bytes, no prefix) and SSE2 integer (16 bytes, 66) forms.
    private static func integer(mmx: Int = 8) -> SIMDForm {
        SIMDForm(none: .r(mmx), p66: .r(16))
    }

    /// The form of 0F `opcode`, or nil when it is not an SSE/MMX opcode decoded here.
    /// `operandSize` is 8 with REX.W, which widens the general-register operand of movd/movq,
    /// cvtsi2ss/sd and movnti.
    static func form(for opcode: UInt8, operandSize: Int) -> SIMDForm? {
        let general = operandSize == 8 ? 8 : 4
        switch opcode {
        case 0x10: return SIMDForm(none: .r(16), p66: .r(16), f3: .r(4), f2: .r(8))  // movups movupd movss movsd
        case 0x11: return SIMDForm(none: .w(16), p66: .w(16), f3: .w(4), f2: .w(8))
        case 0x12: return SIMDForm(none: .r(8), p66: .r(8), f3: .r(16), f2: .r(8))  // movlps movlpd movsldup movddup
        case 0x13, 0x17: return SIMDForm(none: .w(8), p66: .w(8))  // movlps/movhps stores
        case 0x14, 0x15, 0x28, 0x54...0x57: return SIMDForm(none: .r(16), p66: .r(16))  // unpck, movaps, and andn or xor
        case 0x16: return SIMDForm(none: .r(8), p66: .r(8), f3: .r(16))  // movhps movhpd movshdup
        case 0x29, 0x2B: return SIMDForm(none: .w(16), p66: .w(16))  // movaps store, movntps
        case 0x2A: return SIMDForm(none: .r(8), p66: .r(8), f3: .r(general), f2: .r(general))  // cvtpi2ps, cvtsi2ss
        case 0x2C, 0x2D: return SIMDForm(none: .r(8), p66: .r(16), f3: .r(4), f2: .r(8))  // cvt(t)ps2pi, cvt(t)ss2si
        case 0x2E, 0x2F: return SIMDForm(none: .r(4), p66: .r(8))  // ucomiss comiss ucomisd comisd
        case 0x50, 0xC5, 0xD7: // movmskps, pextrw, pmovmskb
            return SIMDForm(none: .r(0), p66: .r(0), immediate: opcode == 0xC5 ? 1 : 0, registerOnly: true)
        case 0x51, 0x58, 0x59, 0x5C...0x5F: return arithmetic()  // sqrt add mul sub min div max
        case 0x52, 0x53: return SIMDForm(none: .r(16), f3: .r(4))  // rsqrt, rcp
        case 0x5A: return SIMDForm(none: .r(8), p66: .r(16), f3: .r(4), f2: .r(8))  // cvtps2pd cvtpd2ps cvtss2sd cvtsd2ss
        case 0x5B: return SIMDForm(none: .r(16), p66: .r(16), f3: .r(16))  // cvtdq2ps cvtps2dq cvttps2dq
        case 0x60...0x62: return integer(mmx: 4)  // punpckl*: the MMX form reads 32 bits
        case 0x63...0x6B, 0x74...0x76: return integer()
        case 0x6C, 0x6D: return SIMDForm(p66: .r(16))  // punpckl/hqdq
        case 0x6E: return SIMDForm(none: .r(general), p66: .r(general))  // movd/movq from r/m
        case 0x6F: return SIMDForm(none: .r(8), p66: .r(16), f3: .r(16))  // movq, movdqa, movdqu
        case 0x70: return SIMDForm(none: .r(8), p66: .r(16), f3: .r(16), f2: .r(16), immediate: 1)  // pshufw/d/hw/lw
        case 0x71...0x73: return SIMDForm(none: .r(0), p66: .r(0), immediate: 1, registerOnly: true)  // shifts by imm
        case 0x7C, 0x7D: return SIMDForm(p66: .r(16), f2: .r(16))  // hadd, hsub
        case 0x7E: return SIMDForm(none: .w(general), p66: .w(general), f3: .r(8))  // movd/movq to r/m; movq xmm, m64
        case 0x7F: return SIMDForm(none: .w(8), p66: .w(16), f3: .w(16))  // movq, movdqa, movdqu stores
        case 0xC2: return arithmetic(immediate: 1)  // cmpps/pd/ss/sd
        case 0xC3: return SIMDForm(none: .w(general))  // movnti
        case 0xC4: return SIMDForm(none: .r(2), p66: .r(2), immediate: 1)  // pinsrw
        case 0xC6: return SIMDForm(none: .r(16), p66: .r(16), immediate: 1)  // shufps, shufpd
        case 0xD0: return SIMDForm(p66: .r(16), f2: .r(16))  // addsubpd/ps
        case 0xD1...0xD5, 0xD8...0xDF, 0xE0...0xE5, 0xE8...0xEF, 0xF1...0xF6, 0xF8...0xFE:
            return integer()  // packed integer arithmetic, shifts, compares, logic
        case 0xD6: return SIMDForm(none: .r(0), p66: .w(8), f3: .r(0), f2: .r(0))  // movq store; movq2dq/movdq2q are register-only
        case 0xE6: return SIMDForm(p66: .r(16), f3: .r(8), f2: .r(16))  // cvttpd2dq cvtdq2pd cvtpd2dq
        case 0xE7: return SIMDForm(none: .w(8), p66: .w(16))  // movntq, movntdq
        case 0xF0: return SIMDForm(f2: .r(16))  // lddqu
        default: return nil
        }
    }
}

extension DecodeState {
    mutating func simd(_ form: SIMDForm) throws(DecodeFailure) {
        guard let spec = form.spec(prefixes.simd) else { throw .unsupported }
        let modrm = try modRM()
        if modrm.isMemory {
            // Memory forms of register-only opcodes do not exist; size 0 marks them too
            // (movq2dq, movdq2q).
            guard !form.registerOnly, spec.size > 0 else { throw .unsupported }
            operand(modrm, spec)
        }
        try skip(form.immediate)
    }
}
