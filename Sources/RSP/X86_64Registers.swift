// One register file for every CPU mode, so the `g` packet never changes size when the guest
// switches from real or protected mode to long mode. Field order is the order of target.xml.

public struct X86_64Registers: Sendable, Equatable {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8 ... r15 (gdb's order, not the encoding order).
    public var gpr: [UInt64] = Array(repeating: 0, count: 16)
    public var rip: UInt64 = 0
    public var eflags: UInt32 = 0
    /// cs, ss, ds, es, fs, gs selectors.
    public var segments: [UInt32] = Array(repeating: 0, count: 6)
    /// st0 ... st7, 10 bytes each (80-bit extended, little-endian), in physical register order
    /// as FXSAVE stores them relative to TOP, i.e. st(i).
    public var st: [[UInt8]] = Array(repeating: Array(repeating: 0, count: 10), count: 8)
    /// fctrl, fstat, ftag, fiseg, fioff, foseg, fooff, fop.
    public var x87Control: [UInt32] = [0x37f, 0, 0xffff, 0, 0, 0, 0, 0]
    /// xmm0 ... xmm15, 16 bytes each, little-endian.
    public var xmm: [[UInt8]] = Array(repeating: Array(repeating: 0, count: 16), count: 16)
    public var mxcsr: UInt32 = 0x1f80
    public var fsBase: UInt64 = 0
    public var gsBase: UInt64 = 0
    public var kernelGsBase: UInt64 = 0
    public var cr0: UInt64 = 0
    public var cr2: UInt64 = 0
    public var cr3: UInt64 = 0
    public var cr4: UInt64 = 0
    public var cr8: UInt64 = 0
    public var efer: UInt64 = 0

    public init() {}

    public var rsp: UInt64 { get { gpr[7] } set { gpr[7] = newValue } }
    public var rbp: UInt64 { get { gpr[6] } set { gpr[6] = newValue } }
}
