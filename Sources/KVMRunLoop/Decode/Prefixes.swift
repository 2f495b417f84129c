/// The legacy and REX prefixes in front of an opcode.
struct Prefixes {
    /// 66: the other operand size.
    var operandSizeOverride = false
    /// 67: the other address size.
    var addressSizeOverride = false
    var lock = false
    /// The last of F2 (REPNE) and F3 (REP/REPE), if any.
    var repeatPrefix: UInt8?
    /// The segment override in effect. In 64-bit mode ES/CS/SS/DS overrides are ignored and
    /// never recorded.
    var segment: SegmentRegister?
    /// The REX byte (0x40-0x4F) directly before the opcode, or 0.
    var rex: UInt8 = 0

    var rexW: Bool { rex & 8 != 0 }
    /// REX.R, REX.X and REX.B as register-number bit 3.
    var rexR: Int { rex & 4 != 0 ? 8 : 0 }
    var rexX: Int { rex & 2 != 0 ? 8 : 0 }
    var rexB: Int { rex & 1 != 0 ? 8 : 0 }

    /// The mandatory prefix selecting an SSE form: F2/F3 win over 66.
    var simd: SIMDPrefix {
        switch repeatPrefix {
        case 0xF3: .f3
        case 0xF2: .f2
        default: operandSizeOverride ? .p66 : .none
        }
    }
}

/// Which of the SSE opcode forms the prefixes select.
enum SIMDPrefix {
    case none, p66, f3, f2
}

extension DecodeState {
    /// Consumes the prefixes and returns the opcode byte that follows them. A REX prefix only
    /// counts when it is the last prefix (one followed by a legacy prefix is ignored).
    mutating func readPrefixes() throws(DecodeFailure) -> UInt8 {
        while true {
            let byte = try next()
            if mode == .long64, byte & 0xF0 == 0x40 {
                prefixes.rex = byte
                continue
            }
            switch byte {
            case 0x66: prefixes.operandSizeOverride = true
            case 0x67: prefixes.addressSizeOverride = true
            case 0xF0: prefixes.lock = true
            case 0xF2, 0xF3: prefixes.repeatPrefix = byte
            case 0x26: overrideSegment(.es)
            case 0x2E: overrideSegment(.cs)
            case 0x36: overrideSegment(.ss)
            case 0x3E: overrideSegment(.ds)
            case 0x64: overrideSegment(.fs)
            case 0x65: overrideSegment(.gs)
            default: return byte
            }
            prefixes.rex = 0
        }
    }

    private mutating func overrideSegment(_ segment: SegmentRegister) {
        if mode == .long64, segment != .fs, segment != .gs { return }
        prefixes.segment = segment
    }
}
