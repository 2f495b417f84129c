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
    /// xmm0 ... xmm31, 16 bytes each, little-endian (xmm16-31 exist with AVX-512 only).
    public var xmm: [[UInt8]] = Array(repeating: Array(repeating: 0, count: 16), count: 32)
    /// Bits 128-255 of ymm0 ... ymm31 (gdb's ymm0h...), 16 bytes each.
    public var ymmh: [[UInt8]] = Array(repeating: Array(repeating: 0, count: 16), count: 32)
    /// Bits 256-511 of zmm0 ... zmm31 (gdb's zmm0h...), 32 bytes each.
    public var zmmh: [[UInt8]] = Array(repeating: Array(repeating: 0, count: 32), count: 32)
    /// The AVX-512 opmask registers k0 ... k7.
    public var k: [UInt64] = Array(repeating: 0, count: 8)
    public var pkru: UInt32 = 0
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
    /// The descriptor-table registers: GDTR and IDTR (base, limit), LDTR and TR (selector and
    /// the hidden base and limit).
    public var gdtrBase: UInt64 = 0
    public var gdtrLimit: UInt32 = 0
    public var idtrBase: UInt64 = 0
    public var idtrLimit: UInt32 = 0
    public var ldtr = SystemSegment()
    public var tr = SystemSegment()
    /// Model-specific registers by index (sysenter_cs 0x174, lstar 0xC0000082...); k_gs_base is
    /// `kernelGsBase`, efer `efer`.
    public var msrs: [UInt32: UInt64] = [:]
    /// dr0, dr1, dr2, dr3, dr6, dr7 as the guest sees them (not the debugger's hardware
    /// breakpoints).
    public var debugRegisters: [UInt64] = [0, 0, 0, 0, 0xFFFF_0FF0, 0x400]

    public init() {}

    public var rsp: UInt64 { get { gpr[7] } set { gpr[7] = newValue } }
    public var rbp: UInt64 { get { gpr[6] } set { gpr[6] = newValue } }
}

/// LDTR or TR: a selector and the descriptor the CPU loaded for it.
public struct SystemSegment: Sendable, Equatable {
    public var selector: UInt32 = 0
    public var base: UInt64 = 0
    public var limit: UInt32 = 0
    public init(selector: UInt32 = 0, base: UInt64 = 0, limit: UInt32 = 0) {
        self.selector = selector
        self.base = base
        self.limit = limit
    }
}
