/// The processor mode an instruction is decoded in. It fixes the default operand and address
/// sizes (the 66 and 67 prefixes switch them per instruction), the stack width, whether
/// 40-4F are REX prefixes, and which segment bases apply.
public enum DecodeMode: Sendable {
    /// 64-bit mode (long mode, CS.L = 1): 32-bit operands, 64-bit addresses and stack, REX
    /// prefixes; only the FS and GS bases are added to addresses.
    case long64
    /// 32-bit protected mode (CS.D = 1): 32-bit operands and addresses; the stack is assumed
    /// 32-bit too (SS.B = 1). Linear addresses wrap at 4 GiB.
    case protected32
    /// Real mode or 16-bit protected mode: 16-bit operands, addresses and stack.
    case real16
}
