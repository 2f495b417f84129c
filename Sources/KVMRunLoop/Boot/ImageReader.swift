/// Bounds-checked little-endian reads from an untrusted image. Every offset in an image header
/// is hostile until checked: these return nil instead of trapping on a short or hostile file.
struct ImageReader {
    let bytes: [UInt8]

    var count: UInt64 { UInt64(bytes.count) }

    /// True when [offset, offset+length) lies inside the image (no overflow).
    func contains(offset: UInt64, length: UInt64) -> Bool {
        let (end, overflow) = offset.addingReportingOverflow(length)
        return !overflow && end <= count
    }

    func u8(_ offset: UInt64) -> UInt8? {
        guard contains(offset: offset, length: 1) else { return nil }
        return bytes[Int(offset)]
    }

    func u16(_ offset: UInt64) -> UInt16? {
        littleEndian(offset, 2).map { UInt16(truncatingIfNeeded: $0) }
    }

    func u32(_ offset: UInt64) -> UInt32? {
        littleEndian(offset, 4).map { UInt32(truncatingIfNeeded: $0) }
    }

    func u64(_ offset: UInt64) -> UInt64? { littleEndian(offset, 8) }

    /// A copy of [offset, offset+length), or nil if it is not entirely inside the image.
    func slice(_ offset: UInt64, _ length: UInt64) -> [UInt8]? {
        guard contains(offset: offset, length: length) else { return nil }
        return Array(bytes[Int(offset)..<Int(offset + length)])
    }

    private func littleEndian(_ offset: UInt64, _ width: UInt64) -> UInt64? {
        guard contains(offset: offset, length: width) else { return nil }
        var value: UInt64 = 0
        for i in 0..<Int(width) { value |= UInt64(bytes[Int(offset) + i]) << (8 * UInt64(i)) }
        return value
    }
}

/// Little-endian fields of a header whose length the caller has already checked (a program
/// header, a multiboot header). Reads past the end yield 0 rather than trap, so a mistake in a
/// length check degrades into a wrong value, never a crash on a hostile image.
struct HeaderFields {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func u16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: field(offset, 2)) }
    func u32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: field(offset, 4)) }
    func u64(_ offset: Int) -> UInt64 { field(offset, 8) }

    private func field(_ offset: Int, _ width: Int) -> UInt64 {
        guard offset >= 0, offset <= bytes.count - width else { return 0 }
        var value: UInt64 = 0
        for i in 0..<width { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return value
    }
}
