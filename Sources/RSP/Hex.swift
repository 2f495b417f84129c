// Hex is the protocol's number and data encoding. Every number gdb sends goes through the parsers
// here, which reject empty input, non-hex bytes and values that do not fit, instead of trapping.

enum Hex {
    /// Lower-case digits; gdb accepts either case and stubs conventionally send lower case.
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The value of each ASCII byte as a hex digit; 0xFF for a byte that is not one.
    static let values: [UInt8] = (0..<256).map { c in
        switch UInt8(c) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt8(c) - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt8(c) - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt8(c) - UInt8(ascii: "A") + 10
        default: return 0xFF
        }
    }

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

    /// Writes two digits per byte of `source` at `destination` (2 * source.count bytes) and
    /// returns what they add to the packet checksum: the hot path of `m` replies. Eight bytes
    /// at a time become sixteen digits in two 64-bit stores, the nibbles spread and turned into
    /// digits with shifts and masks (SWAR), the checksum summed in 16-bit lanes; no allocation.
    static func encode(_ source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawPointer) -> UInt8 {
        guard let input = source.baseAddress else { return 0 }
        let count = source.count
        var sum: UInt64 = 0
        var lanes: UInt64 = 0
        var i = 0
        while i + 8 <= count {
            // SAFETY: bytes i..<i+8 are inside the source, and 2i..<2i+16 inside the destination.
            let word = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let low = digitWord(UInt32(truncatingIfNeeded: word)), high = digitWord(UInt32(truncatingIfNeeded: word >> 32))
            (destination + 2 * i).storeBytes(of: low.littleEndian, as: UInt64.self)
            (destination + 2 * i + 8).storeBytes(of: high.littleEndian, as: UInt64.self)
            // Four 16-bit lanes, each gaining at most 4 * 0x66 per step: fold before 128 steps.
            lanes &+= (low & 0x00FF_00FF_00FF_00FF) &+ ((low >> 8) & 0x00FF_00FF_00FF_00FF)
            lanes &+= (high & 0x00FF_00FF_00FF_00FF) &+ ((high >> 8) & 0x00FF_00FF_00FF_00FF)
            i += 8
            if i & 0x3FF == 0 { sum &+= foldLanes(lanes); lanes = 0 }
        }
        sum &+= foldLanes(lanes)
        while i < count {
            let b = Int(source[i])
            (destination + 2 * i).storeBytes(of: digits[b >> 4], as: UInt8.self)
            (destination + 2 * i + 1).storeBytes(of: digits[b & 0xf], as: UInt8.self)
            sum &+= UInt64(digits[b >> 4]) &+ UInt64(digits[b & 0xf])
            i += 1
        }
        return UInt8(truncatingIfNeeded: sum)
    }

    /// Four bytes as eight lower-case digits, the first digit in the lowest byte.
    @inline(__always)
    static func digitWord(_ x: UInt32) -> UInt64 {
        var v = UInt64(x)
        v = (v | v << 16) & 0x0000_FFFF_0000_FFFF
        v = (v | v << 8) & 0x00FF_00FF_00FF_00FF       // input byte k now at byte 2k
        let nibbles = (v >> 4) & 0x000F_000F_000F_000F | (v & 0x000F_000F_000F_000F) << 8
        // 1 in each byte whose nibble is 10 or more (no byte carries: nibble + 6 < 256).
        let letters = ((nibbles &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return nibbles &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
    }

    @inline(__always)
    private static func foldLanes(_ lanes: UInt64) -> UInt64 {
        (lanes & 0xFFFF) &+ (lanes >> 16 & 0xFFFF) &+ (lanes >> 32 & 0xFFFF) &+ (lanes >> 48)
    }

    /// Appends two digits per byte.
    static func append(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        let count = bytes.count
        guard count > 0 else { return }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 2 * count))
        out.withUnsafeMutableBytes { destination in
            // SAFETY: the 2 * count bytes after `start` were just added.
            let done: Void? = bytes.withContiguousStorageIfAvailable { source in
                _ = encode(UnsafeRawBufferPointer(source), to: destination.baseAddress! + start)
            }
            if done == nil {
                for (i, b) in bytes.enumerated() {
                    destination[start + 2 * i] = digits[Int(b >> 4)]
                    destination[start + 2 * i + 1] = digits[Int(b & 0xf)]
                }
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
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: text.count / 2) { out, initialized in
            values.withUnsafeBufferPointer { values in
                text.withUnsafeBufferPointer { text in
                    var bad: UInt8 = 0
                    for i in 0..<out.count {
                        // SAFETY: 2i + 1 < text.count, and a byte indexes the 256-entry table.
                        let hi = values[Int(text[2 * i])], lo = values[Int(text[2 * i + 1])]
                        bad |= hi | lo
                        out[i] = hi << 4 | lo
                    }
                    // Valid digits are below 16; a 0xFF entry sets the high bits.
                    valid = bad < 16
                }
            }
            initialized = out.count
        }
        return valid ? out : nil
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
