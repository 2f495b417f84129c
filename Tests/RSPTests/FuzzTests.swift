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
        "c", "s", "C05", "S05;1000", "vCont?", "vCont;s:1;c", "vCont;C02:2;t", "Hg0", "Hc-1", "T1", "qC",
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

    @Test func decoderSurvivesRandomBytes() {
        var rng = SplitMix(state: 42)
        var decoder = PacketDecoder(maximumPacketSize: 256)
        for _ in 0..<2000 {
            let chunk = (0..<Int.random(in: 0...512, using: &rng)).map { _ in
                Int.random(in: 0..<4, using: &rng) == 0
                    ? Array("$#}*+-%".utf8).randomElement(using: &rng)!
                    : UInt8.random(in: 0...255, using: &rng)
            }
            for event in decoder.feed(chunk) {
                if case .packet(let payload) = event { #expect(payload.count <= 256) }
            }
        }
    }
}
