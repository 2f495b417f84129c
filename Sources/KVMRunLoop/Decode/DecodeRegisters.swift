/// The register values an instruction starts with: everything the decoder needs to turn
/// operands into linear addresses.
public struct DecodeRegisters: Sendable {
    /// General-purpose registers in encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15.
    /// Missing entries read as 0.
    public var gpr: [UInt64]
    /// Address of the instruction's first byte (prefixes included). RIP-relative operands are
    /// relative to `rip + length`.
    public var rip: UInt64
    /// Segment bases in encoding order: es cs ss ds fs gs. In `.long64` only fs and gs are
    /// used. Missing entries read as 0.
    public var segmentBases: [UInt64]
    /// RFLAGS.DF: string instructions walk downwards when set.
    public var rflagsDF: Bool

    public init(gpr: [UInt64] = Array(repeating: 0, count: 16), rip: UInt64 = 0,
                segmentBases: [UInt64] = Array(repeating: 0, count: 6), rflagsDF: Bool = false) {
        self.gpr = gpr
        self.rip = rip
        self.segmentBases = segmentBases
        self.rflagsDF = rflagsDF
    }

    /// General-purpose register `index` (encoding order), 0 when the array is short.
    func register(_ index: Int) -> UInt64 {
        gpr.indices.contains(index) ? gpr[index] : 0
    }

    func base(of segment: SegmentRegister) -> UInt64 {
        segmentBases.indices.contains(segment.rawValue) ? segmentBases[segment.rawValue] : 0
    }
}
