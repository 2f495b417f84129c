// Which register set gdb is told about. gdb insists that the description's architecture match the
// one it takes from the program's symbols, so an ELF32 guest needs the i386 view (what
// qemu-system-i386 serves) and everything else the x86-64 one (qemu-system-x86_64).

/// The register view a `Session` serves: target.xml, the `g`/`G`/`p`/`P` layout and the registers
/// expedited in stop replies. Both views read and write the same `X86_64Registers`.
public enum TargetArchitecture: Sendable, Equatable, CaseIterable {
    /// `i386:x86-64`: rax...r15, rip and the long-mode system registers, 64-bit wide. The default.
    case x86_64
    /// `i386`: eax...edi, eip and cr0-cr4/efer, 32-bit wide, as the low halves of the 64-bit
    /// registers. A 32-bit register written by gdb is zero-extended into its 64-bit field, as the
    /// CPU does; r8-r15, the upper xmm registers, k_gs_base and cr8 are not shown.
    case i386
}
