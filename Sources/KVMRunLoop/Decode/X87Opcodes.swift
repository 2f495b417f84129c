/// D8-DF, the x87 escape opcodes. Memory forms report the operand by opcode and ModRM.reg:
/// 32-bit real or integer (D8, D9, DA, DB), 64-bit (DC, DD, DF /5 /7), 16-bit integer (DE, DF),
/// 80-bit (DB /5 /7, DF /4 /6), control and status words (2), and the environment (14 or 28
/// bytes) and full state (94 or 108 bytes) by operand size. Register forms (mod == 3) are not
/// validated: they never touch memory, and the undefined ones fault before doing anything.
extension DecodeState {
    mutating func decodeX87(_ opcode: UInt8) throws(DecodeFailure) {
        let modrm = try modRM()
        guard modrm.isMemory else { return }
        let environment = operandSize == 2 ? 14 : 28
        let state = operandSize == 2 ? 94 : 108
        let reg = Int(modrm.regField)
        let spec: OperandSpec?
        switch opcode {
        case 0xD8: spec = .r(4)  // fadd fmul fcom fcomp fsub fsubr fdiv fdivr m32fp
        case 0xDA: spec = .r(4)  // the same on m32int
        case 0xDC: spec = .r(8)  // m64fp
        case 0xDE: spec = .r(2)  // m16int
        case 0xD9:  // fld, -, fst, fstp m32fp, fldenv, fldcw, fnstenv, fnstcw
            spec = [.r(4), nil, .w(4), .w(4), .r(environment), .r(2), .w(environment), .w(2)][reg]
        case 0xDB:  // fild, fisttp, fist, fistp m32int, -, fld m80, -, fstp m80
            spec = [.r(4), .w(4), .w(4), .w(4), nil, .r(10), nil, .w(10)][reg]
        case 0xDD:  // fld, fisttp, fst, fstp m64, frstor, -, fnsave, fnstsw
            spec = [.r(8), .w(8), .w(8), .w(8), .r(state), nil, .w(state), .w(2)][reg]
        default:  // DF: fild, fisttp, fist, fistp m16int, fbld, fild m64, fbstp, fistp m64
            spec = [.r(2), .w(2), .w(2), .w(2), .r(10), .r(8), .w(10), .w(8)][reg]
        }
        guard let spec else { throw .unsupported }
        operand(modrm, spec)
    }
}
