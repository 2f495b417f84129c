import Testing
@testable import RSP

/// Random and mutated input must never trap, and everything the session sends must be valid
/// framing. A deterministic generator keeps failures reproducible.
@Suite struct FuzzTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    static let seeds = [
        "?", "g", "G00", "p10", "P10=0011223344556677", "m1000,10", "M1000,2:0102", "X1000,1:a", "x1000,4",
        "c", "s", "C05", "S05;1000", "vCont?", "vCont;s:1;c", "vCont;r1000,1010:1;c", "vCont;C02:2;t", "Hg0", "Hc-1", "T1", "qC",
        "qfThreadInfo", "qsThreadInfo", "qAttached", "qSupported:error-message+", "qXfer:features:read:target.xml:0,ffb",
        "qXfer:threads:read::0,ffb", "qThreadExtraInfo,1", "qRcmd,6869", "qOffsets", "qSymbol::", "qTStatus",
        "QStartNoAckMode", "Z0,1000,1", "z0,1000,1", "!", "vRun;", "R00", "vMustReplyEmpty", "vCtrlC", "k", "D",
        "vKill;1",
    ]

    /// A seed packet with a few random byte edits.
    static func mutate(_ seed: String, _ rng: inout SplitMix) -> [UInt8] {
        var bytes = Array(seed.utf8)
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            let alphabet = Array("0123456789abcdefABCDEF,;:=-*}#$+\u{3}xXmMgGqQvZz".utf8)
            let byte = Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = byte
            case 1: bytes.insert(byte, at: Int.random(in: 0...bytes.count, using: &rng))
            default: if !bytes.isEmpty { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng)) }
            }
        }
        return bytes
    }

    @Test func sessionSurvivesRandomInput() {
        var rng = SplitMix(state: 0x6764_6276_6d6d)
        for _ in 0..<300 {
            let target = FakeTarget()
            let session = Session(target: target)
            for _ in 0..<40 {
                var input: [UInt8]
                switch Int.random(in: 0..<10, using: &rng) {
                case 0:
                    input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                case 1:
                    // A well-framed packet of random bytes.
                    input = PacketEncoder.frame((0..<Int.random(in: 0...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
                case 2:
                    input = gdbPacket(String(decoding: Self.mutate(Self.seeds.randomElement(using: &rng)!, &rng), as: UTF8.self))
                    if let i = input.indices.randomElement(using: &rng) { input[i] ^= 1 }
                default:
                    input = PacketEncoder.frame(Self.mutate(Self.seeds.randomElement(using: &rng)!, &rng))
                }
                let out = session.receive(input)
                #expect(parseStubOutput(out) != nil, "bad framing for \(input)")
                if session.isRunning, Bool.random(using: &rng) {
                    let event: StopEvent = Int.random(in: 0..<8, using: &rng) == 0
                        ? .exited(status: 1) : .stopped(thread: 1, signal: 5, reason: .softwareBreakpoint)
                    #expect(parseStubOutput(session.targetStopped(event)) != nil)
                }
                if session.isClosed { break }
            }
        }
    }

    /// One class of input with the events the decoder must return for it.
    static func decoderInput(_ rng: inout SplitMix, limit: Int) -> (bytes: [UInt8], events: [PacketEvent]) {
        func checksum(_ raw: [UInt8]) -> [UInt8] { Hex.encode([raw.reduce(0, &+)]) }
        func randomPayload(_ count: Int) -> [UInt8] {
            (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        /// `$`, `#`, `}` and `*` escaped, as gdb sends binary data.
        func escaped(_ payload: [UInt8]) -> [UInt8] {
            payload.flatMap { b -> [UInt8] in Array("$#}*".utf8).contains(b) ? [UInt8(ascii: "}"), b ^ 0x20] : [b] }
        }
        func framed(_ raw: [UInt8]) -> [UInt8] { [UInt8(ascii: "$")] + raw + [UInt8(ascii: "#")] + checksum(raw) }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0:
            // Noise between packets: anything that does not start a packet, ack or interrupt.
            let starters = Array("$+-%".utf8) + [0x03]
            let noise = (0..<Int.random(in: 1...16, using: &rng)).map { _ in
                var b: UInt8
                repeat { b = UInt8.random(in: 0...255, using: &rng) } while starters.contains(b)
                return b
            }
            return (noise, [])
        case 1:
            return [([UInt8(ascii: "+")], [.ack]), ([UInt8(ascii: "-")], [.nak]), ([0x03], [.interrupt])]
                .randomElement(using: &rng)!
        case 2:
            // A notification (`%Stop:...#xx`): ignored, whatever its checksum.
            let body = randomPayload(Int.random(in: 0...20, using: &rng)).filter { $0 != UInt8(ascii: "#") }
            return ([UInt8(ascii: "%")] + body + [UInt8(ascii: "#")] + randomPayload(2), [])
        case 3:
            // A good packet, escaped: the payload comes back unescaped.
            let payload = randomPayload(Int.random(in: 0...limit / 2, using: &rng))
            return (framed(escaped(payload)), [.packet(payload)])
        case 4:
            // A wrong checksum (or one that is not hex).
            let raw = escaped(randomPayload(Int.random(in: 0...32, using: &rng)))
            let good = raw.reduce(0, &+)
            let bad: [UInt8] = Bool.random(using: &rng) ? Hex.encode([good &+ UInt8.random(in: 1...255, using: &rng)])
                                                        : [UInt8(ascii: "g"), UInt8(ascii: "0")]
            return ([UInt8(ascii: "$")] + raw + [UInt8(ascii: "#")] + bad, [.badChecksum])
        case 5:
            // Longer than the limit, with a good checksum.
            let raw = escaped(randomPayload(limit + 1 + Int.random(in: 0...64, using: &rng)))
            return (framed(raw), [.malformed("packet longer than \(limit) bytes")])
        case 6:
            let raw = escaped(randomPayload(Int.random(in: 0...16, using: &rng))) + [UInt8(ascii: "}")]
            return (framed(raw), [.malformed("escape at end of packet")])
        case 7:
            // Run-length encoding: `x*n` is x and n - 29 more; `#` and `$` are never counts.
            var count: UInt8
            repeat { count = UInt8.random(in: 29...126, using: &rng) } while count == 35 || count == 36
            let raw: [UInt8] = [UInt8(ascii: "a"), UInt8(ascii: "*"), count]
            return (framed(raw), [.packet(Array(repeating: UInt8(ascii: "a"), count: Int(count) - 28))])
        case 8:
            let raw: [UInt8] = [UInt8(ascii: "a"), UInt8(ascii: "*"), UInt8.random(in: 0...28, using: &rng)]
            return (framed(raw), [.malformed("run length count below 29")])
        default:
            let raw: [UInt8] = [UInt8(ascii: "*"), UInt8(ascii: " ")]
            return (framed(raw), [.malformed("run length without a character")])
        }
    }

    /// Every input class, glued together in random order and fed whole, byte by byte and in
    /// random chunks, decodes to exactly the events that class stands for.
    @Test func decoderSurvivesRandomBytes() {
        var rng = SplitMix(state: 42)
        let limit = 256
        for _ in 0..<500 {
            var stream: [UInt8] = []
            var expected: [PacketEvent] = []
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                let (bytes, events) = Self.decoderInput(&rng, limit: limit)
                stream += bytes
                expected += events
            }
            var whole = PacketDecoder(maximumPacketSize: limit)
            #expect(whole.feed(stream) == expected, "stream \(stream)")
            var single = PacketDecoder(maximumPacketSize: limit)
            #expect(stream.compactMap { single.feed($0) } == expected)
            var chunked = PacketDecoder(maximumPacketSize: limit)
            var events: [PacketEvent] = []
            var index = 0
            while index < stream.count {
                let end = min(stream.count, index + Int.random(in: 1...64, using: &rng))
                events += chunked.feed(stream[index..<end])
                index = end
            }
            #expect(events == expected)
        }
        // Raw random bytes (no class): whatever comes out respects the limit, however it is cut.
        for _ in 0..<500 {
            let chunk = (0..<Int.random(in: 0...512, using: &rng)).map { _ in
                Int.random(in: 0..<4, using: &rng) == 0
                    ? Array("$#}*+-%".utf8).randomElement(using: &rng)!
                    : UInt8.random(in: 0...255, using: &rng)
            }
            var whole = PacketDecoder(maximumPacketSize: limit)
            var single = PacketDecoder(maximumPacketSize: limit)
            let events = whole.feed(chunk)
            #expect(events == chunk.compactMap { single.feed($0) })
            for event in events {
                if case .packet(let payload) = event { #expect(payload.count <= limit) }
            }
        }
    }
}
