/// Guest-physical memory as the loaders, the page walker and the debugger see it.
/// The KVM-backed implementation is `GuestMemory`; tests use an array-backed fake.
public protocol PhysicalMemory: AnyObject, Sendable {
    /// Bytes of RAM, starting at guest-physical address 0.
    var size: UInt64 { get }
    /// Reads `count` bytes at `address`; throws `.outOfRange` unless the whole range is RAM.
    func read(at address: UInt64, count: Int) throws(MemoryError) -> [UInt8]
    /// Writes `bytes` at `address`; throws `.outOfRange` unless the whole range is RAM.
    func write(_ bytes: [UInt8], at address: UInt64) throws(MemoryError)
    /// Copies `count` bytes at `address` to `destination` without an intermediate array (the
    /// debugger's memory reads and the page walker's entry loads); throws like `read`.
    func copy(at address: UInt64, count: Int, to destination: UnsafeMutableRawPointer) throws(MemoryError)
    /// Copies `count` bytes from `source` to `address`; throws like `write`.
    func copy(from source: UnsafeRawPointer, count: Int, to address: UInt64) throws(MemoryError)
}

public enum MemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// [address, address+count) is not entirely inside guest RAM.
    case outOfRange(address: UInt64, count: Int)

    public var description: String {
        switch self {
        case let .outOfRange(address, count):
            return "guest-physical range 0x\(String(address, radix: 16))+\(count) is outside guest RAM"
        }
    }
}

extension PhysicalMemory {
    /// Through `read`: correct for any memory, fast only where the conformer overrides it.
    public func copy(at address: UInt64, count: Int, to destination: UnsafeMutableRawPointer) throws(MemoryError) {
        let bytes = try read(at: address, count: count)
        // SAFETY: the caller provides `count` writable bytes at destination; bytes has count.
        bytes.withUnsafeBytes { if let base = $0.baseAddress { destination.copyMemory(from: base, byteCount: count) } }
    }

    public func copy(from source: UnsafeRawPointer, count: Int, to address: UInt64) throws(MemoryError) {
        // SAFETY: the caller provides `count` readable bytes at source.
        try write(Array(UnsafeRawBufferPointer(start: source, count: count)), at: address)
    }

    public func readU16(at address: UInt64) throws(MemoryError) -> UInt16 {
        UInt16(truncatingIfNeeded: try readLittleEndian(at: address, count: 2))
    }
    public func readU32(at address: UInt64) throws(MemoryError) -> UInt32 {
        UInt32(truncatingIfNeeded: try readLittleEndian(at: address, count: 4))
    }
    public func readU64(at address: UInt64) throws(MemoryError) -> UInt64 {
        try readLittleEndian(at: address, count: 8)
    }
    public func writeU16(_ value: UInt16, at address: UInt64) throws(MemoryError) {
        try write(littleEndianBytes(UInt64(value), count: 2), at: address)
    }
    public func writeU32(_ value: UInt32, at address: UInt64) throws(MemoryError) {
        try write(littleEndianBytes(UInt64(value), count: 4), at: address)
    }
    public func writeU64(_ value: UInt64, at address: UInt64) throws(MemoryError) {
        try write(littleEndianBytes(value, count: 8), at: address)
    }

    private func readLittleEndian(at address: UInt64, count: Int) throws(MemoryError) -> UInt64 {
        var value: UInt64 = 0
        // SAFETY: count <= 8, the size of `value`; x86 is little-endian, so the low bytes
        // of `value` receive the bytes in memory order.
        try withUnsafeMutableBytes(of: &value) { (raw) throws(MemoryError) in
            try copy(at: address, count: count, to: raw.baseAddress!)
        }
        return UInt64(littleEndian: value)
    }
}

@inline(__always)
func littleEndianBytes(_ value: UInt64, count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
}
