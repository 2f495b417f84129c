import Testing
@testable import RSP

/// Memory replies built for speed (framed in one pass), `qSearch:memory` and `qCRC`.
@Suite struct MemoryPacketTests {
    /// The bytes gdb receives for a payload: `$`, the escaped payload, `#`, the checksum.
    private func framedTheSlowWay(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "$")]
        var sum: UInt8 = 0
        for b in payload {
            if [UInt8(ascii: "$"), UInt8(ascii: "#"), UInt8(ascii: "}"), UInt8(ascii: "*")].contains(b) {
                out += [UInt8(ascii: "}"), b ^ 0x20]
                sum &+= UInt8(ascii: "}") &+ (b ^ 0x20)
            } else {
                out.append(b)
                sum &+= b
            }
        }
        return out + Array("#".utf8) + Array(String(format: "%02x", sum).utf8)
    }

    @Test func framingMatchesTheByteByByteDefinition() {
        let all = (0...255).map { UInt8($0) } + Array("$#}*plain".utf8)
        #expect(PacketEncoder.frame(all) == framedTheSlowWay(all))
        #expect(PacketEncoder.frame([UInt8]()) == Array("$#00".utf8))
        #expect(PacketEncoder.frame(all[3...]) == framedTheSlowWay(Array(all[3...])))
    }

    @Test func hexEncodingWithItsChecksum() {
        let all = (0...255).map { UInt8($0) }
        let hex = Hex.encode(all)
        #expect(hex == Array(all.map { String(format: "%02x", $0) }.joined().utf8))
        let sum = all.withUnsafeBytes { source in
            withUnsafeTemporaryAllocation(byteCount: 512, alignment: 1) { Hex.encode(source, to: $0.baseAddress!) }
        }
        #expect(sum == hex.reduce(UInt8(0)) { $0 &+ $1 })
    }

    /// Every length (the 16-byte steps and the tail) and alignment, every byte value, through
    /// the session's framed replies.
    @Test func hexOfEveryLengthAndAlignment() {
        let h = Harness()
        for i in h.target.memory.indices { h.target.memory[i] = UInt8(truncatingIfNeeded: i &* 151 &+ i >> 8) }
        for start in 0..<3 {
            for length in Array(1...40) + [1023, 1024, 1025, 4095, 4096, 4097, 0x8000, 0xFFFD] {
                let expected = Hex.encode(h.target.memory[start..<start + length])
                let out = h.session.receive(gdbPacket("m\(String(0x1000 + start, radix: 16)),\(String(length, radix: 16))"))
                #expect(out == framedTheSlowWay(expected), "start \(start) length \(length)")
            }
        }
    }

    /// The SIMD steps and the tail: every length, upper and lower case, and a bad byte at
    /// every position.
    @Test func hexDecodingOfEveryLength() {
        let data = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }
        for length in 0...data.count {
            let text = Hex.encode(data.prefix(length))
            #expect(Hex.decode(text[...]) == Array(data.prefix(length)))
            #expect(Hex.decode(Array(String(decoding: text, as: UTF8.self).uppercased().utf8)[...]) == Array(data.prefix(length)))
        }
        let text = Hex.encode(data.prefix(40))
        for position in text.indices {
            for bad in [UInt8(ascii: "g"), UInt8(ascii: "G"), UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: "@"),
                        UInt8(ascii: "`"), 0x00, 0xFF, UInt8(ascii: "p") | 0x80] {
                var broken = text
                broken[position] = bad
                #expect(Hex.decode(broken[...]) == nil, "byte \(bad) at \(position)")
            }
        }
    }

    @Test func checksumsAndScansOfEveryLength() {
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 4) } + [UInt8](repeating: 0xFF, count: 9000)
        for length in Array(0...40) + [4095, 4096, 4097, 8191, 14000] {
            let prefix = Array(data.prefix(length))
            #expect(prefix.withUnsafeBytes { ByteScan.sum($0) } == prefix.reduce(UInt8(0)) { $0 &+ $1 }, "length \(length)")
        }
        data.withUnsafeBytes { raw in
            #expect(ByteScan.firstIndex(of: data[4321], in: raw) == data.firstIndex(of: data[4321]))
            #expect(ByteScan.firstIndex(of: 0xFF, in: UnsafeRawBufferPointer(rebasing: raw[0..<0])) == nil)
        }
    }

    @Test func mRepliesGoOutFramedInOnePiece() {
        let h = Harness()
        let out = h.session.receive(gdbPacket("m1000,10000"))
        let expected = h.target.memory.prefix(0x10000)
        #expect(out == framedTheSlowWay(Hex.encode(expected)))
        // A retransmission request gets the same bytes again.
        #expect(h.session.receive(Array("-".utf8)) == out)
    }

    @Test(arguments: [1, 7, 16, 17, 1000])
    func repliesFromPiecesAreTheSame(pieceSize: Int) {
        let h = Harness()
        h.target.memory[0..<4] = [UInt8(ascii: "$"), UInt8(ascii: "#"), UInt8(ascii: "}"), UInt8(ascii: "*")]
        h.target.pieceSize = pieceSize
        #expect(h.session.receive(gdbPacket("m1000,1003")) == framedTheSlowWay(Hex.encode(h.target.memory.prefix(0x1003))))
        #expect(h.session.receive(gdbPacket("x1000,1003")) == framedTheSlowWay([UInt8(ascii: "b")] + h.target.memory.prefix(0x1003)))
        // A short read: what could be read.
        #expect(h.send("m10ff0,20") == [String(decoding: Hex.encode(h.target.memory.suffix(16)), as: UTF8.self)])
        #expect(h.send("m0,20") == ["E0e"])
    }

    @Test func xRepliesAreEscapedBinary() {
        let h = Harness()
        h.target.memory[0..<6] = [UInt8(ascii: "$"), UInt8(ascii: "#"), UInt8(ascii: "}"), UInt8(ascii: "*"), 0, 0xFF]
        let out = h.session.receive(gdbPacket("x1000,6"))
        #expect(out == framedTheSlowWay([UInt8(ascii: "b")] + h.target.memory.prefix(6)))
        #expect(h.send("x0,4") == ["E0e"])
        #expect(h.send("x1000,0") == ["b"])
    }

    @Test func binaryUploadIsAdvertised() {
        let h = Harness(noAck: false)
        #expect(h.send("qSupported:binary-upload+").last?.contains("binary-upload+") == true)
    }

    // MARK: qCRC

    @Test func crcVectors() {
        // CRC-32/MPEG-2's check value: the parameters of libiberty's xcrc32, which gdb uses.
        #expect(CRC32.of(Array("123456789".utf8)) == 0x0376_E6E7)
        #expect(CRC32.of([]) == 0xFFFF_FFFF)
        #expect(CRC32.of([0]) == 0x4E08_BFB4)
        // Against the bitwise definition, on data long enough to exercise every table entry.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ $0 >> 3) }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in data {
            crc ^= UInt32(b) << 24
            for _ in 0..<8 { crc = crc & 0x8000_0000 != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
        }
        #expect(CRC32.of(data) == crc)
    }

    @Test func crcPacketsThroughTheSession() {
        let h = Harness()
        let expected = CRC32.of(Array(h.target.memory[0x10..<0x1010]))
        #expect(h.send("qCRC:1010,1000") == ["C" + String(format: "%08x", expected)])
        // Read in windows: the same CRC as in one piece.
        let windowed = try? CRC32.gdb(address: 0x1010, length: 0x1000, window: 7) { (at, buffer) throws(TargetError) in
            try h.target.readMemory(address: at, into: buffer, thread: 1)
        }
        #expect(windowed == expected)
        #expect(h.send("qCRC:0,10") == ["E0e"])                 // unreadable
        #expect(h.send("qCRC:10ff0,20") == ["E0e"])             // runs off the end of memory
        #expect(h.send("qCRC:1000") == ["E01"])
        #expect(h.send("qCRC:1000,zz") == ["E01"])
        #expect(h.send("qCRC:1000,0") == ["Cffffffff"])
    }

    // MARK: qSearch:memory

    /// gdb frames the binary pattern with escapes.
    private func searchPacket(_ address: UInt64, _ length: UInt64, _ pattern: [UInt8]) -> [UInt8] {
        PacketEncoder.frame(Array("qSearch:memory:\(String(address, radix: 16));\(String(length, radix: 16));".utf8) + pattern)
    }

    @Test func searchFindsTheFirstMatch() {
        let h = Harness()
        // FakeTarget memory holds i & 0xff at 0x1000 + i.
        #expect(parseStubOutput(h.session.receive(searchPacket(0x1000, 0x10000, [0x41, 0x42, 0x43]))) == ["1,1041"])
        #expect(parseStubOutput(h.session.receive(searchPacket(0x1042, 0x10000 - 0x42, [0x41, 0x42, 0x43]))) == ["1,1141"])
        // The match must end inside the range.
        #expect(parseStubOutput(h.session.receive(searchPacket(0x1000, 0x43, [0x41, 0x42, 0x43]))) == ["0"])
        #expect(parseStubOutput(h.session.receive(searchPacket(0x1000, 0x44, [0x41, 0x42, 0x43]))) == ["1,1041"])
        // Framing characters and `;` in the pattern: escaped by gdb, unescaped by the decoder.
        h.target.memory[0x500..<0x504] = [UInt8(ascii: "$"), UInt8(ascii: ";"), UInt8(ascii: "}"), UInt8(ascii: "*")]
        #expect(parseStubOutput(h.session.receive(searchPacket(0x1000, 0x10000, Array("$;}*".utf8)))) == ["1,1500"])
        #expect(parseStubOutput(h.session.receive(searchPacket(0x1000, 0x10000, [0xEE, 0xEE]))) == ["0"])
    }

    @Test func searchErrors() {
        let h = Harness()
        #expect(h.send("qSearch:memory:1000;10;") == ["E01"])        // empty pattern
        #expect(h.send("qSearch:memory:1000;10") == ["E01"])
        #expect(h.send("qSearch:memory:zz;10;a") == ["E01"])
        #expect(h.send("qSearch:memory:0;10;a") == ["E0e"])           // unreadable
        // Not found before the end of readable memory, but the range goes on: an error.
        #expect(parseStubOutput(h.session.receive(searchPacket(0x10000, 0x10000, [0xEE, 0xEE]))) == ["E0e"])
        // Found before the unreadable part: found.
        #expect(parseStubOutput(h.session.receive(searchPacket(0x10000, 0x10000, [0x41, 0x42]))) == ["1,10041"])
    }

    /// A reader over memory with a hole: [0, 0x3000) readable except [0x1000, 0x2000).
    private func holeyReader(_ memory: [UInt8]) -> MemorySearch.Reader {
        { (at, buffer) throws(TargetError) in
            var n = 0
            while n < buffer.count {
                let a = Int(at) + n
                guard a < memory.count, !(0x1000..<0x2000).contains(a) else { break }
                buffer[n] = memory[a]
                n += 1
            }
            return n
        }
    }

    @Test func searchAcrossWindowsAndPages() throws {
        var memory = [UInt8](repeating: 0, count: 0x3000)
        memory[0xFFD..<0x1000] = [1, 2, 3]                // ends at the hole
        memory[0x2FFC..<0x3000] = [9, 8, 7, 6]
        memory[0x7FE..<0x802] = [5, 5, 4, 4]              // spans a window boundary (window 0x800)
        let read = holeyReader(memory)
        #expect(try MemorySearch.find([5, 5, 4, 4], address: 0, length: 0x1000, window: 0x800, read: read) == 0x7FE)
        #expect(try MemorySearch.find([1, 2, 3], address: 0, length: 0x1000, window: 0x800, read: read) == 0xFFD)
        #expect(try MemorySearch.find([9, 8, 7, 6], address: 0x2000, length: 0x1000, window: 0x100, read: read) == 0x2FFC)
        // Window of one byte: every match still spans windows.
        #expect(try MemorySearch.find([5, 5, 4, 4], address: 0x700, length: 0x200, window: 1, read: read) == 0x7FE)
        // A pattern that would continue into the hole is not there, and the search cannot go on.
        #expect(throws: TargetError.errno(14)) {
            try MemorySearch.find([1, 2, 3, 0], address: 0, length: 0x3000, window: 0x800, read: read)
        }
        // Starting inside the hole: nothing readable.
        #expect(throws: TargetError.errno(14)) {
            try MemorySearch.find([9], address: 0x1800, length: 0x1000, read: read)
        }
        #expect(try MemorySearch.find([9, 9], address: 0, length: 1, read: read) == nil)
    }

    @Test func firstMatchScansPastFalseStarts() {
        let hay: [UInt8] = [7, 7, 7, 1, 7, 7, 8]
        hay.withUnsafeBytes { h in
            #expect(MemorySearch.firstMatch([7, 7, 8], in: h) == 4)
            #expect(MemorySearch.firstMatch([7], in: h) == 0)
            #expect(MemorySearch.firstMatch([8, 9], in: h) == nil)
            #expect(MemorySearch.firstMatch(hay + [0], in: h) == nil)
        }
    }

    // MARK: large writes

    @Test func largeMAndXWritesDecodeWholeAndInPieces() throws {
        let data = (0..<0x8000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        for chunk in [1, 7, 4096, 1 << 20] {
            let h = Harness()
            let m = gdbPacket("M1000,8000:" + String(decoding: Hex.encode(data), as: UTF8.self))
            let x = PacketEncoder.frame(Array("X9000,8000:".utf8) + data)
            var replies: [String] = []
            for packet in [m, x] {
                var offset = 0
                var out: [UInt8] = []
                while offset < packet.count {
                    out += h.session.receive(packet[offset..<min(offset + chunk, packet.count)])
                    offset += chunk
                }
                replies += try #require(parseStubOutput(out))
            }
            #expect(replies == ["OK", "OK"])
            #expect(Array(h.target.memory[0..<0x8000]) == data)
            #expect(Array(h.target.memory[0x8000..<0x10000]) == data)
        }
    }
}
