import Testing
@testable import RSP

@Suite struct HexTests {
    private func bytes(_ s: String) -> ArraySlice<UInt8> { Array(s.utf8)[...] }

    @Test func parsesNumbersWithOverflowChecks() {
        #expect(Hex.parseUInt64(bytes("0")) == 0)
        #expect(Hex.parseUInt64(bytes("DeadBeef")) == 0xdead_beef)
        #expect(Hex.parseUInt64(bytes("ffffffffffffffff")) == UInt64.max)
        #expect(Hex.parseUInt64(bytes("0000000000000000001")) == 1)
        #expect(Hex.parseUInt64(bytes("10000000000000000")) == nil)
        #expect(Hex.parseUInt64(bytes("")) == nil)
        #expect(Hex.parseUInt64(bytes("12g")) == nil)
        #expect(Hex.parseUInt64(bytes("-1")) == nil)
        #expect(Hex.parseInt(bytes("7fffffffffffffff")) == Int.max)
        #expect(Hex.parseInt(bytes("8000000000000000")) == nil)
    }

    @Test func encodesAndDecodesData() {
        let all = (0...255).map { UInt8($0) }
        let text = Hex.encode(all)
        #expect(text.count == 512)
        #expect(String(decoding: text.prefix(6), as: UTF8.self) == "000102")
        #expect(Hex.decode(text[...]) == all)
        #expect(Hex.decode(bytes("0A0b")) == [10, 11])
        #expect(Hex.decode(bytes("abc")) == nil)
        #expect(Hex.decode(bytes("zz")) == nil)
        #expect(Hex.decode(bytes("")) == [])
    }

    @Test func formatsNumbers() {
        var out: [UInt8] = []
        Hex.appendNumber(0, to: &out)
        Hex.appendNumber(5, minimumDigits: 2, to: &out)
        Hex.appendNumber(UInt64.max, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "005ffffffffffffffff")
        out = []
        Hex.appendLittleEndian(0x1122_3344, byteCount: 4, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "44332211")
    }
}
