/// One range of guest memory an instruction reads, writes, or both.
public struct MemoryAccess: Sendable, Equatable {
    /// Linear (guest-virtual) address of the first byte: segment base plus offset.
    public var address: UInt64
    /// Length in bytes. String instructions with a REP prefix report their whole range as one
    /// access.
    public var size: Int
    public var isRead: Bool
    public var isWrite: Bool

    public init(address: UInt64, size: Int, isRead: Bool, isWrite: Bool) {
        self.address = address
        self.size = size
        self.isRead = isRead
        self.isWrite = isWrite
    }

    /// Whether this access touches any of the `size` bytes at `address` (ranges that run past
    /// the top of the 64-bit space are not wrapped).
    public func overlaps(address other: UInt64, size otherSize: Int) -> Bool {
        guard size > 0, otherSize > 0 else { return false }
        let end = address.addingReportingOverflow(UInt64(size))
        let otherEnd = other.addingReportingOverflow(UInt64(otherSize))
        let startsBeforeOtherEnds = otherEnd.overflow || address < otherEnd.partialValue
        let otherStartsBeforeEnd = end.overflow || other < end.partialValue
        return startsBeforeOtherEnds && otherStartsBeforeEnd
    }
}
