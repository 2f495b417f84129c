import Testing
@testable import RSP

/// Run-length encoded `m` and `x` replies: what gdb (which expands runs before it unescapes)
/// and LLDB (which does both in one pass, like PacketDecoder.expand) decode is exactly the
/// bytes an unencoded reply carries.
@Suite struct RunLengthTests {
    /// One framed packet's payload as gdb's read_frame sees it: `$`, the raw bytes with `c*N`
    /// expanded (N - 29 more copies of the byte before), `#`, a checksum over the raw bytes.
    /// Nil for bad framing, a framing byte inside, a count of `#`/`$`, or a bad checksum.
    private func gdbReadFrame(_ packet: [UInt8]) -> [UInt8]? {
        guard packet.count >= 4, packet[0] == UInt8(ascii: "$"), packet[packet.count - 3] == UInt8(ascii: "#"),
              let sum = Hex.decode(packet[(packet.count - 2)...]) else { return nil }
        let raw = packet[1..<(packet.count - 3)]
        guard !raw.contains(UInt8(ascii: "$")), !raw.contains(UInt8(ascii: "#")),
              raw.reduce(UInt8(0), { $0 &+ $1 }) == sum[0] else { return nil }
        var out: [UInt8] = []
        var i = raw.startIndex
        while i < raw.endIndex {
            if raw[i] == UInt8(ascii: "*") {
                guard i + 1 < raw.endIndex, let last = out.last else { return nil }
                let repeats = Int(raw[i + 1]) - 29
                guard repeats >= 3, repeats <= 97 else { return nil }
                out += [UInt8](repeating: last, count: repeats)
                i += 2
            } else {
                out.append(raw[i])
                i += 1
            }
        }
        return out
    }

    /// gdb's remote_unescape_input, applied after read_frame for binary replies.
    private func unescape(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var escaped = false
        for b in bytes {
            if escaped { out.append(b ^ 0x20); escaped = false } else if b == UInt8(ascii: "}") { escaped = true } else { out.append(b) }
        }
        return out
    }

    /// Memory of runs of every length up to 300 of bytes that matter: zero, doubled hex
    /// digits, the four escaped bytes, and the byte an escape of `#` leaves (0x03).
    private func runs() -> [UInt8] {
        var memory: [UInt8] = []
        let values: [UInt8] = [0x00, 0x11, 0xFF, 0x23, 0x24, 0x7D, 0x2A, 0x03, 0x5D, 0x30]
        var length = 1
        while memory.count < 0xF000 {
            for v in values {
                memory += [UInt8](repeating: v, count: length)
                memory.append(UInt8(truncatingIfNeeded: length &* 37))
            }
            length = length % 300 + 1
        }
        return Array(memory.prefix(0xF000))
    }

    @Test func mAndXRepliesOfRunsDecodeToTheSameBytes() {
        let h = Harness()
        let memory = runs()
        h.target.memory.replaceSubrange(0..<memory.count, with: memory)
        for (start, length) in [(0, 0xF000), (1, 0x7FFF), (3, 1000), (5, 9), (17, 40)] {
            let expected = Array(memory[start..<start + length])
            let address = String(0x1000 + start, radix: 16), count = String(length, radix: 16)
            let m = h.session.receive(gdbPacket("m\(address),\(count)"))
            #expect(gdbReadFrame(m) == Hex.encode(expected), "m at \(start), \(length) bytes")
            if length >= 1000 { #expect(m.count < 2 * length, "m at \(start): runs left uncompressed") }
            #expect(parseStubOutput(m) == [String(decoding: Hex.encode(expected), as: UTF8.self)])
            let x = h.session.receive(gdbPacket("x\(address),\(count)"))
            #expect(gdbReadFrame(x).map(unescape) == [UInt8(ascii: "b")] + expected, "x at \(start), \(length) bytes")
            // LLDB's order (unescape and expand in one pass) gives the same bytes.
            if case .packet(let payload) = PacketDecoder.expand(Array(x[1..<(x.count - 3)]), limit: 1 << 20) {
                #expect(payload == [UInt8(ascii: "b")] + expected)
            } else {
                Issue.record("x reply at \(start) does not decode")
            }
        }
    }

    @Test func zeroedMemoryGoesOutInGroupsOf98() {
        let h = Harness()
        h.target.memory = [UInt8](repeating: 0, count: 0x10000)
        let out = h.session.receive(gdbPacket("m1000,10000"))
        // 0x20000 digits: 1337 groups of 98 (`0*~`) and 46 more: `0*` + (45 + 29) = `0*J`.
        let payload = Array(repeating: Array("0*~".utf8), count: 1337).joined() + Array("0*J".utf8)
        #expect(out == PacketEncoder.finishForTest(Array(payload)))
        #expect(gdbReadFrame(out) == [UInt8](repeating: UInt8(ascii: "0"), count: 0x20000))
    }

    @Test func shortRunsAndIncompressibleMemoryAreLeftAlone() {
        let h = Harness()   // memory[i] = i & 0xff: no byte repeats
        let out = h.session.receive(gdbPacket("m1000,100"))
        #expect(!out.contains(UInt8(ascii: "*")))
        #expect(gdbReadFrame(out) == Hex.encode(h.target.memory.prefix(0x100)))
    }

    @Test func everyRunLengthAvoidsTheFramingBytesAndNeverGrows() {
        for count in 1...400 {
            let c = UInt8(ascii: "a")
            var sum: UInt32 = 0
            let encoded = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { buffer in
                let n = RunLength.encodeRun(of: c, count: count, into: buffer.baseAddress!, at: 0, sum: &sum)
                return Array(buffer[0..<n])
            }
            #expect(encoded.count <= count)
            #expect(!encoded.contains(UInt8(ascii: "#")) && !encoded.contains(UInt8(ascii: "$")), "count \(count)")
            #expect(UInt8(truncatingIfNeeded: sum) == encoded.reduce(UInt8(0)) { $0 &+ $1 })
            #expect(gdbReadFrame(PacketEncoder.finishForTest(encoded)) == [UInt8](repeating: c, count: count), "count \(count)")
        }
    }

    @Test func aRunNeverStartsOnTheByteAnEscapeCovers() {
        // `#` (escaped as `}` 0x03) followed by 0x03s: the run starts after the pair.
        let data: [UInt8] = [0x23] + [UInt8](repeating: 0x03, count: 40)
        let framed = data.withUnsafeBytes { PacketEncoder.frame(prefix: [], $0) }
        var buffer = Array(framed.dropLast(3))
        var sum = UInt32(buffer.dropFirst().reduce(UInt8(0)) { $0 &+ $1 })
        let end = buffer.withUnsafeMutableBufferPointer { RunLength.compress($0, from: 1, to: $0.count, sum: &sum) }
        let payload = Array(buffer[1..<end])
        #expect(payload.prefix(3) == [UInt8(ascii: "}"), 0x03, 0x03])
        #expect(payload[3] == UInt8(ascii: "*"))
        #expect(UInt8(truncatingIfNeeded: sum) == payload.reduce(UInt8(0)) { $0 &+ $1 })
        if case .packet(let decoded) = PacketDecoder.expand(payload, limit: 1 << 16) {
            #expect(decoded == data)
        } else {
            Issue.record("does not decode")
        }
        #expect(gdbReadFrame(PacketEncoder.finishForTest(payload)).map(unescape) == data)
    }

    @Test func hexRunsAreFoundAcrossPiecesAsTheTargetHandsThemOver() {
        var generator = SystemRandomNumberGenerator()
        let patterns: [[UInt8]] = [
            [UInt8](repeating: 0, count: 20000),
            runs(),
            (0..<20000).map { _ in UInt8.random(in: 0...255, using: &generator) },
            (0..<20000).map { i in (i / 700) % 2 == 0 ? 0 : UInt8(truncatingIfNeeded: i) },
            [UInt8](repeating: 0x11, count: 9) + [UInt8](repeating: 0x12, count: 100) + [UInt8](repeating: 0xFF, count: 4097),
        ]
        for memory in patterns {
            for _ in 0..<20 {
                var sum: UInt32 = 0
                var writer = HexRunWriter()
                let out = [UInt8](unsafeUninitializedCapacity: 2 * memory.count) { buffer, initialized in
                    var n = 0, at = 0
                    memory.withUnsafeBytes { bytes in
                        while at < bytes.count {
                            let size = min(bytes.count - at, Int.random(in: 1...5000, using: &generator))
                            n = writer.write(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + size)]), into: buffer.baseAddress!, at: n, sum: &sum)
                            at += size
                        }
                    }
                    n = writer.finish(into: buffer.baseAddress!, at: n, sum: &sum)
                    initialized = n
                }
                #expect(out.count <= 2 * memory.count)
                #expect(UInt8(truncatingIfNeeded: sum) == out.reduce(UInt8(0)) { $0 &+ $1 })
                #expect(gdbReadFrame(PacketEncoder.finishForTest(out)) == Hex.encode(memory))
            }
        }
    }
}

extension PacketEncoder {
    /// `$payload#cs` without escaping: a payload that is already escaped.
    static func finishForTest(_ payload: [UInt8]) -> [UInt8] {
        [UInt8(ascii: "$")] + payload + Array("#".utf8) + Hex.encode([payload.reduce(UInt8(0)) { $0 &+ $1 }])
    }
}
