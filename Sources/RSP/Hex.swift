// Hex is the protocol's number and data encoding. Every number gdb sends goes through the parsers
// here, which reject empty input, non-hex bytes and values that do not fit, instead of trapping.

enum Hex {
    /// Lower-case digits; gdb accepts either case and stubs conventionally send lower case.
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The value of one ASCII hex digit, or nil for any other byte.
    @inline(__always)
    static func value(of c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }

    /// Appends two digits per byte. Hot path for 64 KiB `m` replies, hence the table and the
    /// up-front reservation rather than any String work.
    static func append(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        out.reserveCapacity(out.count + 2 * bytes.count)
        // SAFETY: both indices below are 4-bit values and the table has 16 entries.
        digits.withUnsafeBufferPointer { table in
            for b in bytes {
                out.append(table[Int(b >> 4)])
                out.append(table[Int(b & 0xf)])
            }
        }
    }

    static func encode(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        append(bytes, to: &out)
        return out
    }

    /// Appends `value` in hex without leading zeros, padded to at least `minimumDigits` digits.
    static func appendNumber(_ value: UInt64, minimumDigits: Int = 1, to out: inout [UInt8]) {
        var reversed: [UInt8] = []
        var v = value
        repeat {
            reversed.append(digits[Int(v & 0xf)])
            v >>= 4
        } while v != 0
        while reversed.count < minimumDigits { reversed.append(UInt8(ascii: "0")) }
        out.append(contentsOf: reversed.reversed())
    }

    /// Appends the `byteCount` low bytes of `value` in target (little-endian) order.
    static func appendLittleEndian(_ value: UInt64, byteCount: Int, to out: inout [UInt8]) {
        var v = value
        for _ in 0..<byteCount {
            out.append(digits[Int((v >> 4) & 0xf)])
            out.append(digits[Int(v & 0xf)])
            v >>= 8
        }
    }

    /// Decodes pairs of digits; nil for an odd count or a non-hex byte.
    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var i = text.startIndex
        while i < text.endIndex {
            guard let hi = value(of: text[i]), let lo = value(of: text[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// A non-empty hex number that fits in 64 bits (leading zeros allowed), else nil.
    static func parseUInt64(_ text: ArraySlice<UInt8>) -> UInt64? {
        guard !text.isEmpty else { return nil }
        var result: UInt64 = 0
        for c in text {
            guard let digit = value(of: c), result >> 60 == 0 else { return nil }
            result = result << 4 | UInt64(digit)
        }
        return result
    }

    /// Like `parseUInt64`, for counts and indices that must fit in `Int`.
    static func parseInt(_ text: ArraySlice<UInt8>) -> Int? {
        guard let value = parseUInt64(text), value <= UInt64(Int.max) else { return nil }
        return Int(value)
    }
}
