/// A small x86 decoder for one question: which memory does an instruction read and write?
/// gdbvmm asks it after single-stepping an instruction that KVM could not emulate (the code
/// shares a page with a watched variable), to tell whether the step hit a watchpoint.
///
/// Covered: legacy prefixes (66 67 F0 F2 F3 and segment overrides), REX in 64-bit mode,
/// ModRM/SIB with all displacement forms, RIP-relative, 16-bit addressing, address-size
/// wrap-around; the integer one-byte map, the common 0F instructions (movzx/movsx, cmov,
/// setcc, bt*, cmpxchg, xadd, shld/shrd, system instructions with memory operands), SSE/SSE2
/// and MMX loads, stores and arithmetic, and x87 memory forms. Implicit stack, string, moffs
/// and xlat accesses are included.
///
/// Not covered (nil): VEX/EVEX/XOP, the 0F 38 and 0F 3A maps, 3DNow!, xsave/xrstor, software
/// interrupts, iret in 32-bit protected mode, near branches with a 66 prefix in 64-bit mode
/// (Intel and AMD differ), and anything else not listed. Never reported: implicit accesses to
/// descriptor tables, the TSS, the IDT or page tables. Protection checks (segment limits,
/// canonical addresses, alignment) are not applied: the addresses are the ones the
/// instruction would use if it ran.
public enum InstructionDecoder {
    /// Decodes the instruction at the start of `bytes` (extra bytes after it are ignored).
    /// Returns nil when the bytes are not an instruction this decoder understands, or end
    /// before it does (the caller then falls back to comparing memory before and after).
    public static func decode(_ bytes: [UInt8], mode: DecodeMode, registers: DecodeRegisters) -> DecodedInstruction? {
        var state = DecodeState(bytes: bytes, mode: mode, registers: registers)
        do {
            let opcode = try state.readPrefixes()
            try state.decodeOneByte(opcode)
        } catch {
            return nil
        }
        return DecodedInstruction(length: state.position, accesses: state.resolved())
    }
}
