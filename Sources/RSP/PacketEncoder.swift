// Outgoing framing. Every reply goes through `frame`, which escapes the four bytes the framing
// layer reserves. Text replies (hex, `OK`, stop replies) never contain them, so escaping is a
// no-op there; binary replies (`qXfer`, `x`) need it, and gdb unescapes exactly those.

enum PacketEncoder {
    /// `$payload#cs`, with `$`, `#`, `}` and `*` in the payload sent as `}` and the byte xor 0x20.
    static func frame(_ payload: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "$")]
        out.reserveCapacity(payload.count + 4)
        var sum: UInt8 = 0
        for byte in payload {
            switch byte {
            case UInt8(ascii: "$"), UInt8(ascii: "#"), UInt8(ascii: "}"), UInt8(ascii: "*"):
                let escaped = byte ^ 0x20
                out.append(UInt8(ascii: "}"))
                out.append(escaped)
                sum &+= UInt8(ascii: "}") &+ escaped
            default:
                out.append(byte)
                sum &+= byte
            }
        }
        out.append(UInt8(ascii: "#"))
        Hex.appendNumber(UInt64(sum), minimumDigits: 2, to: &out)
        return out
    }
}
