/// The one-byte opcode map. Each case consumes the rest of the instruction (ModRM, SIB,
/// displacement, immediate) and records its memory accesses; anything not listed is refused.
extension DecodeState {
    mutating func decodeOneByte(_ opcode: UInt8) throws(DecodeFailure) {
        let size = operandSize
        switch opcode {
        case 0x00...0x3F where opcode & 7 < 6:
            try arithmetic(opcode)
        case 0x06, 0x0E, 0x16, 0x1E:  // push es/cs/ss/ds
            guard !isLong else { throw .unsupported }
            push(stackSlot)
        case 0x07, 0x17, 0x1F:  // pop es/ss/ds
            guard !isLong else { throw .unsupported }
            pop(stackSlot)
        case 0x0F:
            try decodeTwoByte(try next())
        case 0x27, 0x2F, 0x37, 0x3F, 0x40...0x4F:  // daa das aaa aas, inc/dec r (REX in 64-bit mode)
            guard !isLong else { throw .unsupported }
        case 0x50...0x57:
            push(stackSlot)
        case 0x58...0x5F:
            pop(stackSlot)
        case 0x60, 0x61:  // pusha, popa: eight registers
            guard !isLong else { throw .unsupported }
            if opcode == 0x60 { push(8 * size) } else { pop(8 * size) }
        case 0x62:  // bound (a register form is EVEX)
            guard !isLong, try peek() < 0xC0 else { throw .unsupported }
            operand(try modRM(), .read, 2 * size)
        case 0x63:  // movsxd in 64-bit mode, arpl elsewhere
            let modrm = try modRM()
            if isLong { operand(modrm, .read, size == 8 ? 4 : size) } else { operand(modrm, .readWrite, 2) }
        case 0x68:
            try skip(immediateSize)
            push(stackSlot)
        case 0x69:
            operand(try modRM(), .read, size)
            try skip(immediateSize)
        case 0x6A:
            try skip(1)
            push(stackSlot)
        case 0x6B:
            operand(try modRM(), .read, size)
            try skip(1)
        case 0x6C, 0x6D:  // ins
            try string(elementSize: opcode == 0x6C ? 1 : min(size, 4), source: nil, destination: .write)
        case 0x6E, 0x6F:  // outs
            try string(elementSize: opcode == 0x6E ? 1 : min(size, 4), source: .read, destination: nil)
        case 0x70...0x7F, 0xEB, 0xE0...0xE3:  // jcc, jmp, loop, jcxz rel8
            try skip(1)
        case 0x80...0x83:
            guard opcode != 0x82 || !isLong else { throw .unsupported }
            let modrm = try modRM()
            operand(modrm, modrm.regField == 7 ? .read : .readWrite, opcode == 0x81 || opcode == 0x83 ? size : 1)
            try skip(opcode == 0x81 ? immediateSize : 1)
        case 0x84, 0x85:  // test
            operand(try modRM(), .read, opcode == 0x84 ? 1 : size)
        case 0x86, 0x87:  // xchg
            operand(try modRM(), .readWrite, opcode == 0x86 ? 1 : size)
        case 0x88, 0x89:
            operand(try modRM(), .write, opcode == 0x88 ? 1 : size)
        case 0x8A, 0x8B:
            operand(try modRM(), .read, opcode == 0x8A ? 1 : size)
        case 0x8C:  // mov r/m16, sreg
            let modrm = try modRM()
            guard modrm.regField <= 5 else { throw .unsupported }
            operand(modrm, .write, 2)
        case 0x8D:  // lea: computes an address, touches nothing
            guard try modRM().isMemory else { throw .unsupported }
        case 0x8E:  // mov sreg, r/m16
            let modrm = try modRM()
            guard modrm.regField <= 5, modrm.regField != 1 else { throw .unsupported }
            operand(modrm, .read, 2)
        case 0x8F:  // pop r/m: the address is computed with RSP already incremented
            let modrm = try modRM()
            guard modrm.regField == 0 else { throw .unsupported }
            pop(stackSlot)
            operand(modrm, .w(stackSlot), rspBias: UInt64(stackSlot))
        case 0x90...0x99, 0x9B, 0x9E, 0x9F, 0xF4, 0xF5, 0xF8...0xFD, 0xEC...0xEF:
            break  // xchg/nop, cbw, cwd, fwait, sahf, lahf, hlt, cmc, flag ops, in/out dx
        case 0x9A:  // call far ptr16:16/32
            guard !isLong else { throw .unsupported }
            try skip(size + 2)
            push(2 * size)
        case 0x9C:
            push(stackSlot)
        case 0x9D:
            pop(stackSlot)
        case 0xA0, 0xA1:
            try moffs(.read, size: opcode == 0xA0 ? 1 : size)
        case 0xA2, 0xA3:
            try moffs(.write, size: opcode == 0xA2 ? 1 : size)
        case 0xA4, 0xA5:
            try string(elementSize: opcode == 0xA4 ? 1 : size, source: .read, destination: .write)
        case 0xA6, 0xA7:
            try string(elementSize: opcode == 0xA6 ? 1 : size, source: .read, destination: .read)
        case 0xAA, 0xAB:
            try string(elementSize: opcode == 0xAA ? 1 : size, source: nil, destination: .write)
        case 0xAC, 0xAD:
            try string(elementSize: opcode == 0xAC ? 1 : size, source: .read, destination: nil)
        case 0xAE, 0xAF:
            try string(elementSize: opcode == 0xAE ? 1 : size, source: nil, destination: .read)
        case 0xA8, 0xB0...0xB7, 0xE4...0xE7:  // test al, mov r8, in/out imm8
            try skip(1)
        case 0xA9:
            try skip(immediateSize)
        case 0xB8...0xBF:  // mov r, imm16/32/64
            try skip(size)
        case 0xC0, 0xC1:
            operand(try modRM(), .readWrite, opcode == 0xC0 ? 1 : size)
            try skip(1)
        case 0xC2, 0xC3:
            if opcode == 0xC2 { try skip(2) }
            pop(try nearBranchSize())
        case 0xC4, 0xC5:  // les, lds (register forms are VEX)
            guard !isLong, try peek() < 0xC0 else { throw .unsupported }
            operand(try modRM(), .read, size + 2)
        case 0xC6, 0xC7:
            let modrm = try modRM()
            guard modrm.regField == 0 else { throw .unsupported }  // xabort, xbegin
            operand(modrm, .write, opcode == 0xC6 ? 1 : size)
            try skip(opcode == 0xC6 ? 1 : immediateSize)
        case 0xC8:
            try enter()
        case 0xC9:
            leave()
        case 0xCA, 0xCB:  // far ret: pops RIP and CS (same privilege level assumed)
            if opcode == 0xCA { try skip(2) }
            pop(2 * size)
        case 0xCF:  // iret: 64-bit mode always pops RIP CS RFLAGS RSP SS; real mode IP CS FLAGS
            switch mode {
            case .long64: pop(5 * size)
            case .real16: pop(3 * size)
            case .protected32: throw .unsupported  // 3 or 5 slots depending on the target
            }
        case 0xD0...0xD3:
            operand(try modRM(), .readWrite, opcode & 1 == 0 ? 1 : size)
        case 0xD4, 0xD5:  // aam, aad
            guard !isLong else { throw .unsupported }
            try skip(1)
        case 0xD7:
            xlat()
        case 0xD8...0xDF:
            try decodeX87(opcode)
        case 0xE8:
            try skip(try relativeSize())
            push(try nearBranchSize())
        case 0xE9:
            try skip(try relativeSize())
        case 0xEA:  // jmp far ptr16:16/32
            guard !isLong else { throw .unsupported }
            try skip(size + 2)
        case 0xF6, 0xF7:
            try group3(opcode)
        case 0xFE:
            let modrm = try modRM()
            guard modrm.regField <= 1 else { throw .unsupported }
            operand(modrm, .readWrite, 1)
        case 0xFF:
            try group5()
        default:
            // int3, int n, into, int1, salc, 0x82 in 64-bit mode, ...
            throw .unsupported
        }
    }

    /// 00-3D: add or adc sbb and sub xor cmp in their six forms.
    private mutating func arithmetic(_ opcode: UInt8) throws(DecodeFailure) {
        let isCompare = opcode >> 3 == 7
        let width = opcode & 1 == 0 ? 1 : operandSize
        switch opcode & 7 {
        case 0, 1: operand(try modRM(), isCompare ? .read : .readWrite, width)
        case 2, 3: operand(try modRM(), .read, width)
        case 4: try skip(1)
        default: try skip(immediateSize)
        }
    }

    /// F6/F7: test imm, not, neg, mul, imul, div, idiv.
    private mutating func group3(_ opcode: UInt8) throws(DecodeFailure) {
        let modrm = try modRM()
        let width = opcode == 0xF6 ? 1 : operandSize
        switch modrm.regField {
        case 0, 1:
            operand(modrm, .read, width)
            try skip(opcode == 0xF6 ? 1 : immediateSize)
        case 2, 3:
            operand(modrm, .readWrite, width)
        default:
            operand(modrm, .read, width)
        }
    }

    /// FF: inc, dec, call, call far, jmp, jmp far, push.
    private mutating func group5() throws(DecodeFailure) {
        let modrm = try modRM()
        let size = operandSize
        switch modrm.regField {
        case 0, 1:
            operand(modrm, .readWrite, size)
        case 2:
            let slot = try nearBranchSize()
            operand(modrm, .read, slot)
            push(slot)
        case 3:
            guard modrm.isMemory else { throw .unsupported }
            operand(modrm, .read, size + 2)
            push(2 * size)
        case 4:
            operand(modrm, .read, try nearBranchSize())
        case 5:
            guard modrm.isMemory else { throw .unsupported }
            operand(modrm, .read, size + 2)
        case 6:
            operand(modrm, .read, stackSlot)
            push(stackSlot)
        default:
            throw .unsupported
        }
    }
}
