import Testing
@testable import RSP

/// The same input must decode the same whether it arrives whole, byte by byte, or in odd chunks
/// (after swift-nio's ByteToMessageDecoderVerifier).
private func decodeAllWays(_ input: [UInt8], limit: Int = PacketDecoder.defaultMaximumPacketSize) -> [PacketEvent] {
    var whole = PacketDecoder(maximumPacketSize: limit)
    let expected = whole.feed(input)
    var single = PacketDecoder(maximumPacketSize: limit)
    var bytewise: [PacketEvent] = []
    for byte in input { bytewise += single.feed([byte]) }
    #expect(bytewise == expected)
    for chunk in [2, 3, 7] {
        var chunked = PacketDecoder(maximumPacketSize: limit)
        var events: [PacketEvent] = []
        var i = 0
        while i < input.count {
            events += chunked.feed(input[i..<min(i + chunk, input.count)])
            i += chunk
        }
        #expect(events == expected)
    }
    return expected
}

private func packet(_ s: String) -> PacketEvent { .packet(Array(s.utf8)) }

@Suite struct PacketDecoderTests {
    @Test func decodesPacketsAcksAndInterrupts() {
        let input = Array("+".utf8) + gdbPacket("qSupported:swbreak+") + Array("-".utf8) + [0x03] + gdbPacket("g") + gdbPacket("m1000,4")
        #expect(decodeAllWays(input) == [.ack, packet("qSupported:swbreak+"), .nak, .interrupt, packet("g"), packet("m1000,4")])
    }

    @Test func ignoresGarbageAndNotifications() {
        let input = Array("xyz\r\n%Stop:T05#99junk".utf8) + gdbPacket("?") + Array("%a#00".utf8) + gdbPacket("g")
        #expect(decodeAllWays(input) == [packet("?"), packet("g")])
    }

    @Test func reportsBadChecksums() {
        #expect(decodeAllWays(Array("$g#00".utf8)) == [.badChecksum])
        #expect(decodeAllWays(Array("$g#zz".utf8)) == [.badChecksum])
        #expect(decodeAllWays(Array("$g#67$g#68".utf8)) == [packet("g"), .badChecksum])
        #expect(decodeAllWays(Array("$g#6".utf8)) == [])
    }

    @Test func checksumAcceptsEitherCase() {
        // "qC" sums to 0xb4.
        #expect(decodeAllWays(Array("$qC#B4$qC#b4".utf8)) == [packet("qC"), packet("qC")])
    }

    @Test func dollarInsidePacketRestartsIt() {
        #expect(decodeAllWays(Array("$garbage".utf8) + gdbPacket("g")) == [packet("g")])
    }

    @Test func ctrlCInsidePacketIsData() {
        let payload: [UInt8] = Array("X1000,1:".utf8) + [0x03]
        let sum = payload.reduce(UInt8(0)) { $0 &+ $1 }
        let input = [UInt8(ascii: "$")] + payload + [UInt8(ascii: "#")] + Hex.encode([sum])
        #expect(decodeAllWays(input) == [.packet(payload)])
    }

    @Test func unescapesAndExpandsRunLengths() {
        // `}` escapes: }\x03 is '#', }\x04 is '$', }] is '}', }\x0a is '*'.
        let raw: [UInt8] = Array("X0,4:".utf8) + [0x7d, 0x03, 0x7d, 0x04, 0x7d, 0x5d, 0x7d, 0x0a]
        #expect(PacketDecoder.expand(raw, limit: 100) == .packet(Array("X0,4:#$}*".utf8)))
        // "0* " is '0' plus 32 - 29 = 3 more.
        #expect(PacketDecoder.expand(Array("a0* b".utf8), limit: 100) == packet("a0000b"))
        #expect(PacketDecoder.expand(Array("0*\u{1d}".utf8), limit: 100) == packet("0"))
        // The run-length count may follow an escaped character.
        #expect(PacketDecoder.expand([0x7d, 0x03, 0x2a, 0x20], limit: 100) == packet("####"))
        let framed = Array("$a0* b#".utf8) + Hex.encode([Array("a0* b".utf8).reduce(UInt8(0)) { $0 &+ $1 }])
        #expect(decodeAllWays(framed) == [packet("a0000b")])
    }

    @Test func rejectsBrokenEscapesAndRunLengths() {
        for raw in ["}", "*a", "a*", "a*\u{1c}"] {
            guard case .malformed = PacketDecoder.expand(Array(raw.utf8), limit: 100) else {
                Issue.record("\(raw) should be malformed")
                continue
            }
        }
        // Expansion is bounded too.
        guard case .malformed = PacketDecoder.expand(Array("a*~a*~".utf8), limit: 100) else {
            Issue.record("expansion past the limit must be malformed")
            return
        }
    }

    @Test func oversizedPacketIsMalformedAndBounded() {
        let payload = [UInt8](repeating: UInt8(ascii: "0"), count: 2_000_000)
        let sum = payload.reduce(UInt8(0)) { $0 &+ $1 }
        var decoder = PacketDecoder()
        let events = decoder.feed([UInt8(ascii: "$")] + payload + [UInt8(ascii: "#")] + Hex.encode([sum]) + gdbPacket("g"))
        #expect(events.count == 2)
        guard case .malformed = events.first else {
            Issue.record("expected malformed, got \(events)")
            return
        }
        #expect(events.last == packet("g"))
    }

    @Test func smallLimitIsRespectedByteByByte() {
        let input = gdbPacket("m1000,40") + gdbPacket("g")
        let events = decodeAllWays(input, limit: 4)
        #expect(events.count == 2)
        #expect(events.last == packet("g"))
    }
}

@Suite struct PacketEncoderTests {
    @Test func framesWithChecksum() {
        #expect(PacketEncoder.frame(Array("OK".utf8)) == Array("$OK#9a".utf8))
        #expect(PacketEncoder.frame([]) == Array("$#00".utf8))
    }

    @Test func escapesReservedBytes() {
        let payload: [UInt8] = Array("l<#$}*>".utf8) + [0, 0x03, 0xff]
        let framed = PacketEncoder.frame(payload)
        let body = framed.dropFirst().prefix(while: { $0 != UInt8(ascii: "#") })
        #expect(!body.contains(UInt8(ascii: "$")) && !body.contains(UInt8(ascii: "*")))
        var decoder = PacketDecoder()
        #expect(decoder.feed(framed) == [.packet(payload)])
    }

    @Test func everyByteRoundTrips() {
        let payload = (0...255).map { UInt8($0) } + (0...255).reversed().map { UInt8($0) }
        var decoder = PacketDecoder()
        #expect(decoder.feed(PacketEncoder.frame(payload)) == [.packet(payload)])
    }
}
