/// Where an instruction can send the processor next: what range stepping needs to know to run
/// a source line at full speed and stop only where control can leave it.
public enum ControlFlow: Sendable, Equatable {
    /// Always the next instruction.
    case next
    /// A relative jump, conditional jump, loop or call: to `target` (an offset in CS, as RIP
    /// holds it), and also to the next instruction when `fallsThrough` (a condition, or a call's
    /// return).
    case direct(target: UInt64, fallsThrough: Bool)
    /// Anywhere: indirect jumps and calls, returns, software interrupts, system calls, HLT,
    /// instructions that change the address space or raise #UD on purpose.
    case anywhere
}

extension InstructionDecoder {
    private static let noRegisters = DecodeRegisters()

    /// The length of the instruction at the start of `bytes` (at CS offset `rip`) and where it
    /// can go next; nil when the decoder does not know the instruction (treat it as going
    /// anywhere).
    public static func controlFlow(_ bytes: [UInt8], mode: DecodeMode, rip: UInt64) -> (length: Int, flow: ControlFlow)? {
        // Operand addresses do not matter here: one shared, empty register set (no allocation
        // per instruction; a range sweep decodes thousands).
        var state = DecodeState(bytes: bytes, mode: mode, registers: noRegisters)
        let opcode: UInt8
        do {
            opcode = try state.readPrefixes()
        } catch {
            return nil
        }
        // The state after the prefixes and the opcode byte: where the operands begin.
        let classify = state
        do {
            try state.decodeOneByte(opcode)
        } catch {
            // int3, int n, into, int1, far returns, iret outside 64-bit mode: the decoder does not model them,
            // but their length is known and they go anywhere.
            switch opcode {
            case 0xCC, 0xCE, 0xF1, 0xCB, 0xCF: return (classify.position, .anywhere)
            case 0xCA: return classify.position + 2 <= min(bytes.count, maximumInstructionLength) ? (classify.position + 2, .anywhere) : nil
            case 0xCD: return classify.position < min(bytes.count, maximumInstructionLength) ? (classify.position + 1, .anywhere) : nil
            default: return nil
            }
        }
        let length = state.position
        let next = rip &+ UInt64(length)
        let ipMask: UInt64 = mode == .long64 ? ~0 : (classify.operandSize == 2 ? 0xFFFF : 0xFFFF_FFFF)
        func relative(_ size: Int) -> UInt64 {
            // The displacement is the instruction's last `size` bytes, sign-extended.
            var value: UInt64 = 0
            for i in 0..<size { value |= UInt64(bytes[length - size + i]) << (8 * UInt64(i)) }
            let shift = UInt64(64 - 8 * size)
            let signed = UInt64(bitPattern: Int64(bitPattern: value << shift) >> Int64(shift))
            return (next &+ signed) & ipMask
        }
        switch opcode {
        case 0x70...0x7F, 0xE0...0xE3:
            return (length, .direct(target: relative(1), fallsThrough: true))
        case 0xEB:
            return (length, .direct(target: relative(1), fallsThrough: false))
        case 0xE8, 0xE9:
            guard let size = try? classify.relativeSize() else { return nil }
            return (length, .direct(target: relative(size), fallsThrough: opcode == 0xE8))
        case 0xC2, 0xC3, 0xCA, 0xCB, 0xCF, 0x9A, 0xEA, 0xF4:
            return (length, .anywhere)
        case 0xFF:
            // Group 5: /2 /3 call, /4 /5 jmp (indirect).
            guard classify.position < bytes.count else { return nil }
            let reg = (bytes[classify.position] >> 3) & 7
            return (length, (2...5).contains(reg) ? .anywhere : .next)
        case 0x0F:
            guard classify.position < bytes.count else { return nil }
            let second = bytes[classify.position]
            switch second {
            case 0x80...0x8F:
                guard let size = try? classify.relativeSize() else { return nil }
                return (length, .direct(target: relative(size), fallsThrough: true))
            // syscall, sysret, sysenter, sysexit, ud2, ud1, ud0, group 7 (vmcall, swapgs, lgdt,
            // invlpg...), mov to CRn (paging may change), rsm.
            case 0x05, 0x07, 0x34, 0x35, 0x0B, 0xB9, 0xFF, 0x01, 0x22, 0xAA:
                return (length, .anywhere)
            default:
                return (length, .next)
            }
        default:
            return (length, .next)
        }
    }
}
