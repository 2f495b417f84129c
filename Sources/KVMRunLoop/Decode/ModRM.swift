/// A decoded ModRM byte with its SIB byte and displacement.
struct ModRM {
    var mod: UInt8
    /// Bits 5:3 as encoded: the opcode extension of group instructions.
    var regField: UInt8
    /// The register operand, REX.R included.
    var reg: Int
    /// The memory operand; nil for register forms (mod == 3).
    var memory: MemoryOperand?

    var isMemory: Bool { memory != nil }
}

/// A memory operand before register values are applied: base + index * scale + displacement
/// (or next RIP + displacement), in the default segment unless a prefix overrides it.
struct MemoryOperand {
    var base: Int?
    var index: Int?
    var scale: UInt64 = 1
    /// Sign-extended to 64 bits.
    var displacement: UInt64 = 0
    var ripRelative = false
    /// SS for operands based on (E)SP/(E)BP or 16-bit BP, DS otherwise.
    var defaultSegment: SegmentRegister = .ds
}

extension DecodeState {
    /// Reads a ModRM byte and, for memory forms, its SIB byte and displacement.
    /// `registerOnly` treats every ModRM as a register form (MOV to/from CRn/DRn ignore mod).
    mutating func modRM(registerOnly: Bool = false) throws(DecodeFailure) -> ModRM {
        let byte = try next()
        let mod = byte >> 6, regField = (byte >> 3) & 7, rm = Int(byte & 7)
        var modrm = ModRM(mod: mod, regField: regField, reg: Int(regField) | prefixes.rexR)
        if mod == 3 || registerOnly { return modrm }
        modrm.memory = addressSize == 2 ? try memory16(mod: mod, rm: rm) : try memory32(mod: mod, rm: rm)
        return modrm
    }

    /// 32- and 64-bit addressing: optional SIB, disp8/disp32, RIP-relative in 64-bit mode.
    private mutating func memory32(mod: UInt8, rm: Int) throws(DecodeFailure) -> MemoryOperand {
        var operand = MemoryOperand()
        var disp32 = mod == 2
        if rm == 4 {
            let sib = try next()
            operand.scale = 1 << UInt64(sib >> 6)
            let index = Int((sib >> 3) & 7) | prefixes.rexX
            operand.index = index == GPR.rsp ? nil : index
            let base = Int(sib & 7)
            if base == GPR.rbp && mod == 0 {
                disp32 = true
            } else {
                operand.base = base | prefixes.rexB
            }
        } else if rm == GPR.rbp && mod == 0 {
            operand.ripRelative = isLong
            disp32 = true
        } else {
            operand.base = rm | prefixes.rexB
        }
        if let base = operand.base, base == GPR.rsp || base == GPR.rbp { operand.defaultSegment = .ss }
        if mod == 1 {
            operand.displacement = UInt64(bitPattern: Int64(Int8(bitPattern: try next())))
        } else if disp32 {
            operand.displacement = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: try immediate(4))))
        }
        return operand
    }

    /// 16-bit addressing: [bx+si], [bx+di], [bp+si], [bp+di], [si], [di], [bp] or disp16, [bx].
    private mutating func memory16(mod: UInt8, rm: Int) throws(DecodeFailure) -> MemoryOperand {
        var operand = MemoryOperand()
        let table: [(base: Int?, index: Int?)] = [
            (GPR.rbx, GPR.rsi), (GPR.rbx, GPR.rdi), (GPR.rbp, GPR.rsi), (GPR.rbp, GPR.rdi),
            (nil, GPR.rsi), (nil, GPR.rdi), (GPR.rbp, nil), (GPR.rbx, nil),
        ]
        if !(mod == 0 && rm == 6) {
            operand.base = table[rm].base
            operand.index = table[rm].index
        }
        if operand.base == GPR.rbp { operand.defaultSegment = .ss }
        if mod == 1 {
            operand.displacement = UInt64(bitPattern: Int64(Int8(bitPattern: try next())))
        } else if mod == 2 || (mod == 0 && rm == 6) {
            operand.displacement = try immediate(2)
        }
        return operand
    }
}
