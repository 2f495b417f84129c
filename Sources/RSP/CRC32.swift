/// The CRC-32 gdb's `compare-sections` expects from `qCRC` (libiberty's `xcrc32`, which gdb
/// uses for it): polynomial 0x04C11DB7, most significant bit first, initial value 0xFFFFFFFF,
/// no final xor (the CRC-32/MPEG-2 parameters; "123456789" gives 0x0376E6E7).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i) << 24
        for _ in 0..<8 { c = c & 0x8000_0000 != 0 ? (c << 1) ^ 0x04C1_1DB7 : c << 1 }
        return c
    }

    static let initial: UInt32 = 0xFFFF_FFFF

    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc
        table.withUnsafeBufferPointer { table in
            for b in bytes {
                // SAFETY: the index is a byte value; the table has 256 entries.
                crc = (crc << 8) ^ table[Int((crc >> 24) ^ UInt32(b))]
            }
        }
        return crc
    }

    static func of(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(initial, $0) }
    }

    /// The CRC of [address, address + length), read a window at a time; throws `.errno(14)`
    /// when part of it cannot be read.
    static func gdb(address: UInt64, length: UInt64, window: Int = MemorySearch.window,
                    read: MemorySearch.Reader) throws(TargetError) -> UInt32 {
        var crc = initial
        guard length > 0 else { return crc }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(min(UInt64(window), length)), alignment: 16)
        defer { buffer.deallocate() }
        var next = address
        var left = length
        while left > 0 {
            let want = Int(min(UInt64(buffer.count), left))
            let got = try read(next, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            guard got == want else { throw .errno(14) }
            crc = update(crc, UnsafeRawBufferPointer(rebasing: buffer[0..<want]))
            left -= UInt64(want)
            next &+= UInt64(want)
        }
        return crc
    }
}
