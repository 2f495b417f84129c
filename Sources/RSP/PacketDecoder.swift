// Incoming framing: `$payload#cs`, acks, and Ctrl-C, recognised one byte at a time so any chunking
// of the stream (whole, byte by byte, several packets glued together) decodes the same.

/// One thing the decoder recognised in the byte stream from gdb.
enum PacketEvent: Equatable, Sendable {
    /// `+`: gdb received our last packet.
    case ack
    /// `-`: gdb wants our last packet again.
    case nak
    /// 0x03 outside a packet: the user pressed Ctrl-C.
    case interrupt
    /// A packet with a good checksum; the payload is unescaped and run-length expanded.
    case packet([UInt8])
    /// A complete packet whose checksum did not match (or was not hex).
    case badChecksum
    /// A packet with a good checksum that cannot be decoded: too long, a dangling escape, or a
    /// run-length count that makes no sense.
    case malformed(String)
}

struct PacketDecoder: Sendable {
    /// Far above the `PacketSize` we advertise, so only garbage reaches it.
    static let defaultMaximumPacketSize = 1 << 20

    /// The most raw bytes kept for one packet, and the most bytes it may expand to.
    let maximumPacketSize: Int

    private enum State: Sendable {
        /// Between packets: looking for `$`, `+`, `-`, 0x03 or `%`; anything else is noise.
        case idle
        case payload
        case checksumHigh
        case checksumLow(high: UInt8?)
        /// Inside a `%...#xx` notification, which a stub never acts on.
        case notification
        case notificationChecksum(remaining: Int)
    }

    private var state: State = .idle
    private var raw: [UInt8] = []
    private var sum: UInt8 = 0
    /// Set once the payload passed the limit: the rest is counted but not stored.
    private var oversized = false

    init(maximumPacketSize: Int = PacketDecoder.defaultMaximumPacketSize) {
        self.maximumPacketSize = maximumPacketSize
    }

    /// Feeds a chunk of the stream and returns every event it completed, in order.
    mutating func feed(_ bytes: some Sequence<UInt8>) -> [PacketEvent] {
        var events: [PacketEvent] = []
        let contiguous: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            var i = 0
            while i < buffer.count {
                if case .payload = state {
                    i = takePayload(buffer, from: i)
                    if i == buffer.count { break }
                }
                if let event = feed(buffer[i]) { events.append(event) }
                i += 1
            }
        }
        if contiguous == nil {
            for byte in bytes {
                if let event = feed(byte) { events.append(event) }
            }
        }
        return events
    }

    /// Inside a packet's payload: takes every byte up to the next `#` or `$` in one go (a 128 KiB
    /// `M` or `X` packet is one scan and one append, not 128 Ki state-machine steps) and
    /// returns the index of that byte, or the end of the buffer.
    private mutating func takePayload(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let rest = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: buffer[start...]))
        let end = start + min(ByteScan.firstIndex(of: UInt8(ascii: "#"), in: rest) ?? rest.count,
                              ByteScan.firstIndex(of: UInt8(ascii: "$"), in: rest) ?? rest.count)
        let payload = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: buffer[start..<end]))
        sum &+= ByteScan.sum(payload)
        let taken = min(max(0, maximumPacketSize - raw.count), payload.count)
        raw.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<start + taken]))
        if taken < payload.count { oversized = true }
        return end
    }

    /// Feeds one byte; returns the event it completed, if any.
    mutating func feed(_ byte: UInt8) -> PacketEvent? {
        switch state {
        case .idle:
            switch byte {
            case UInt8(ascii: "$"): startPacket()
            case UInt8(ascii: "+"): return .ack
            case UInt8(ascii: "-"): return .nak
            case 0x03: return .interrupt
            case UInt8(ascii: "%"): state = .notification
            default: break
            }
        case .payload:
            switch byte {
            case UInt8(ascii: "#"):
                state = .checksumHigh
            case UInt8(ascii: "$"):
                // A raw `$` never occurs inside a packet (binary data escapes it), so this is
                // the start of a retransmission after a lost `#`: resynchronise on it.
                startPacket()
            default:
                sum &+= byte
                if raw.count < maximumPacketSize { raw.append(byte) } else { oversized = true }
            }
        case .checksumHigh:
            state = .checksumLow(high: Hex.value(of: byte))
        case .checksumLow(let high):
            state = .idle
            return finishPacket(high: high, low: Hex.value(of: byte))
        case .notification:
            if byte == UInt8(ascii: "#") { state = .notificationChecksum(remaining: 2) }
        case .notificationChecksum(let remaining):
            state = remaining > 1 ? .notificationChecksum(remaining: remaining - 1) : .idle
        }
        return nil
    }

    private mutating func startPacket() {
        state = .payload
        raw.removeAll(keepingCapacity: true)
        sum = 0
        oversized = false
    }

    private mutating func finishPacket(high: UInt8?, low: UInt8?) -> PacketEvent {
        guard let high, let low, high << 4 | low == sum else { return .badChecksum }
        if oversized { return .malformed("packet longer than \(maximumPacketSize) bytes") }
        return PacketDecoder.expand(raw, limit: maximumPacketSize)
    }

    /// Undoes the two transformations of the framing layer: `}` escapes the next byte (xor 0x20),
    /// and `x*n` stands for `x` followed by n - 29 more copies of it.
    static func expand(_ raw: [UInt8], limit: Int) -> PacketEvent {
        // Fast path: most packets use neither.
        let hasEscape = raw.withUnsafeBytes { ByteScan.firstIndex(of: UInt8(ascii: "}"), in: $0) != nil }
        let hasRunLength = raw.withUnsafeBytes { ByteScan.firstIndex(of: UInt8(ascii: "*"), in: $0) != nil }
        if !hasEscape && !hasRunLength {
            return .packet(raw)
        }
        // One pass into a buffer of the raw size (escapes only shrink the data); run lengths,
        // which may grow it, take the slower appending path.
        if !hasRunLength {
            var dangling = false
            let out = [UInt8](unsafeUninitializedCapacity: raw.count) { out, initialized in
                raw.withUnsafeBufferPointer { raw in
                    var i = 0, n = 0
                    while i < raw.count {
                        let byte = raw[i]
                        if byte == UInt8(ascii: "}") {
                            guard i + 1 < raw.count else { dangling = true; break }
                            out[n] = raw[i + 1] ^ 0x20
                            i += 2
                        } else {
                            out[n] = byte
                            i += 1
                        }
                        n += 1
                    }
                    initialized = n
                }
            }
            return dangling ? .malformed("escape at end of packet") : .packet(out)
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            let byte = raw[i]
            switch byte {
            case UInt8(ascii: "}"):
                guard i + 1 < raw.count else { return .malformed("escape at end of packet") }
                out.append(raw[i + 1] ^ 0x20)
                i += 2
            case UInt8(ascii: "*"):
                guard let previous = out.last else { return .malformed("run length without a character") }
                guard i + 1 < raw.count else { return .malformed("run length without a count") }
                let count = Int(raw[i + 1]) - 29
                guard count >= 0 else { return .malformed("run length count below 29") }
                guard out.count + count <= limit else { return .malformed("run length expands past \(limit) bytes") }
                out.append(contentsOf: repeatElement(previous, count: count))
                i += 2
            default:
                out.append(byte)
                i += 1
            }
        }
        return .packet(out)
    }
}
