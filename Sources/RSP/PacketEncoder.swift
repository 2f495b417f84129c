// Outgoing framing. Every reply goes through `frame`, which escapes the four bytes the framing
// layer reserves. Text replies (hex, `OK`, stop replies) never contain them, so escaping is a
// no-op there; binary replies (`qXfer`, `x`) need it, and gdb unescapes exactly those.

enum PacketEncoder {
    /// Bytes that must be escaped inside a packet: `$`, `#`, `}` and `*`.
    static let mustEscape: [Bool] = (0..<256).map { c in
        c == Int(UInt8(ascii: "$")) || c == Int(UInt8(ascii: "#")) || c == Int(UInt8(ascii: "}"))
            || c == Int(UInt8(ascii: "*"))
    }

    /// `$payload#cs`, with `$`, `#`, `}` and `*` in the payload sent as `}` and the byte xor 0x20.
    static func frame(_ payload: some Collection<UInt8>) -> [UInt8] {
        let framed = payload.withContiguousStorageIfAvailable { source in
            frame(prefix: [], UnsafeRawBufferPointer(source))
        }
        if let framed { return framed }
        return Array(payload).withUnsafeBytes { frame(prefix: [], $0) }
    }

    /// `$`, the bytes of `prefix` (which need no escaping), `data` escaped, `#` and the
    /// checksum: one pass over the data, into a buffer sized for the worst case.
    static func frame(prefix: [UInt8], _ data: UnsafeRawBufferPointer) -> [UInt8] {
        let capacity = 1 + prefix.count + 2 * data.count + 3
        return [UInt8](unsafeUninitializedCapacity: capacity) { out, initialized in
            out[0] = UInt8(ascii: "$")
            var n = 1
            var sum: UInt32 = 0
            for b in prefix { out[n] = b; n += 1; sum &+= UInt32(b) }
            n = escape(data, into: out, at: n, sum: &sum)
            n = finish(out, at: n, sum: UInt8(truncatingIfNeeded: sum))
            initialized = n
        }
    }

    /// Writes `data` at `index` with the framing bytes escaped (unless `escaping` is false: an
    /// unframed payload), adding what it wrote to `sum`; returns the index after it. The caller
    /// provides room for two bytes per data byte.
    static func escape(_ data: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>, at index: Int,
                       sum: inout UInt32, escaping: Bool = true) -> Int {
        var n = index
        guard escaping else {
            // SAFETY: the caller provides room for the data at index.
            if let base = data.baseAddress, !data.isEmpty {
                UnsafeMutableRawPointer(out.baseAddress! + n).copyMemory(from: base, byteCount: data.count)
            }
            return n + data.count
        }
        var s = sum
        mustEscape.withUnsafeBufferPointer { escape in
            for i in 0..<data.count {
                let b = data[i]
                // SAFETY (bounds): at most two bytes per data byte fit the caller's room.
                if escape[Int(b)] {
                    out[n] = UInt8(ascii: "}")
                    out[n + 1] = b ^ 0x20
                    n += 2
                    s &+= UInt32(UInt8(ascii: "}")) &+ UInt32(b ^ 0x20)
                } else {
                    out[n] = b
                    n += 1
                    s &+= UInt32(b)
                }
            }
        }
        sum = s
        return n
    }

    /// Writes `#` and the two checksum digits at `index`; returns the index after them.
    static func finish(_ out: UnsafeMutableBufferPointer<UInt8>, at index: Int, sum: UInt8) -> Int {
        out[index] = UInt8(ascii: "#")
        out[index + 1] = Hex.digits[Int(sum >> 4)]
        out[index + 2] = Hex.digits[Int(sum & 0xf)]
        return index + 3
    }
}
