/// What the decoder learned about one instruction.
public struct DecodedInstruction: Sendable, Equatable {
    /// Total length in bytes, prefixes and immediates included.
    public var length: Int
    /// Memory the instruction reads or writes, roughly in the order it does so. Register-only
    /// forms have none. Implicit accesses to system structures (descriptor tables, TSS, page
    /// tables) are never listed.
    public var accesses: [MemoryAccess]

    public init(length: Int, accesses: [MemoryAccess]) {
        self.length = length
        self.accesses = accesses
    }
}
