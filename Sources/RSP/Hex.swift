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
    /// returns what they add to the packet checksum: the hot path of `m` replies. Sixteen bytes
    /// at a time: their nibbles become digits in SIMD lanes (`0`+n, plus 0x27 for a-f), are
    /// interleaved by widening to 16 bits, and are summed for the checksum in 16-bit lanes;
    /// the last few bytes go one by one. No allocation.
    static func encode(_ source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawPointer) -> UInt8 {
        guard let input = source.baseAddress else { return 0 }
        let count = source.count
        let fifteen = SIMD16<UInt8>(repeating: 15), nine = SIMD16<UInt8>(repeating: 9)
        let zero = SIMD16<UInt8>(repeating: 0), letter = SIMD16<UInt8>(repeating: 0x27)
        let digit0 = SIMD16<UInt8>(repeating: 0x30)
        var lanes = SIMD16<UInt16>()
        var sum: UInt64 = 0
        var i = 0
        while i + 16 <= count {
            // SAFETY: bytes i..<i+16 are inside the source, 2i..<2i+32 inside the destination;
            // both accesses are unaligned-safe.
            let v = input.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self)
            let high = v &>> 4, low = v & fifteen
            let highDigits = SIMD16<UInt16>(truncatingIfNeeded: high &+ digit0 &+ letter.replacing(with: zero, where: high .<= nine))
            let lowDigits = SIMD16<UInt16>(truncatingIfNeeded: low &+ digit0 &+ letter.replacing(with: zero, where: low .<= nine))
            // Little-endian: the high digit is the first byte of each 16-bit lane.
            destination.storeBytes(of: highDigits | lowDigits &<< 8, toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
            // Each lane gains at most 2 * 0x66 per step: fold every 256 steps, before 65535.
            lanes &+= highDigits &+ lowDigits
            i += 16
            if i & 0xFFF == 0 {
                sum &+= UInt64(lanes.wrappedSum())
                lanes = SIMD16<UInt16>()
            }
        }
        sum &+= UInt64(lanes.wrappedSum())
        while i < count {
            let b = Int(source[i])
            let high = digits[b >> 4], low = digits[b & 0xf]
            (destination + 2 * i).storeBytes(of: high, as: UInt8.self)
            (destination + 2 * i + 1).storeBytes(of: low, as: UInt8.self)
            sum &+= UInt64(high) &+ UInt64(low)
            i += 1
        }
        return UInt8(truncatingIfNeeded: sum)
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
            text.withUnsafeBytes { text in
                valid = decode(text, into: out)
            }
            initialized = out.count
        }
        return valid ? out : nil
    }

    /// Decodes `2 * out.count` digits into `out`; false if any byte is not a hex digit. Eight
    /// digits a step in a 64-bit word (SWAR): range checks per byte by adding to bit 7, a
    /// digit's value as its low nibble plus 9 for a letter (bit 6 set), then the nibble pairs
    /// packed into four bytes.
    static func decode(_ text: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        guard let input = text.baseAddress, let output = out.baseAddress else { return true }
        var valid = true
        var i = 0
        while i + 4 <= out.count {
            // SAFETY: digits 2i..<2i+8 are inside the text, bytes i..<i+4 inside out.
            let w = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: 2 * i, as: UInt64.self))
            valid = valid && allDigits(w)
            let nibbles = (w & 0x0F0F_0F0F_0F0F_0F0F) &+ ((w >> 6) & 0x0101_0101_0101_0101) &* 9
            // Each 16-bit lane: high digit in its low byte, low digit in its high byte.
            var t = ((nibbles & 0x00FF_00FF_00FF_00FF) << 4) | ((nibbles >> 8) & 0x00FF_00FF_00FF_00FF)
            t = (t | t >> 8) & 0x0000_FFFF_0000_FFFF
            t = (t | t >> 16) & 0xFFFF_FFFF
            UnsafeMutableRawPointer(output + i).storeBytes(of: UInt32(truncatingIfNeeded: t).littleEndian, as: UInt32.self)
            i += 4
        }
        while i < out.count {
            let hi = values[Int(text[2 * i])], lo = values[Int(text[2 * i + 1])]
            valid = valid && hi < 16 && lo < 16
            out[i] = hi << 4 | lo
            i += 1
        }
        return valid
    }

    /// Whether each of the eight bytes of `w` is `0`-`9`, `a`-`f` or `A`-`F`.
    @inline(__always)
    private static func allDigits(_ w: UInt64) -> Bool {
        let high: UInt64 = 0x8080_8080_8080_8080
        guard w & high == 0 else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101
        // Bit 7 of each byte: x >= k, for bytes x < 0x80 and k <= 0x80 (no carry between bytes).
        func atLeast(_ x: UInt64, _ k: UInt8) -> UInt64 { (x &+ ones &* UInt64(0x80 - k)) & high }
        let lower = w | 0x2020_2020_2020_2020
        let decimal = atLeast(w, UInt8(ascii: "0")) & ~atLeast(w, UInt8(ascii: "9") + 1)
        let letter = atLeast(lower, UInt8(ascii: "a")) & ~atLeast(lower, UInt8(ascii: "f") + 1)
        return decimal | letter == high
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
