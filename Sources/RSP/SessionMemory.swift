// Memory replies, built for speed: `m` and `x` answers are written straight into their framed
// packet (hex never needs escaping, so the digits and the checksum come from one pass over the
// bytes read, runs run-length encoded as they are found), and `find` and `compare-sections` are computed on this side of the connection.

extension Session {
    /// The reply to `m addr,len` (hex) or `x addr,len` (`b` + binary), framed (`$...#cs`) when
    /// `framed`. The target's bytes are encoded where they lie, piece by piece, into a buffer
    /// sized for the whole reply. Short reads answer what could be read; nothing readable is an
    /// error.
    func memoryReadReply(address: UInt64, length: Int, binary: Bool, framed: Bool) -> [UInt8] {
        // Keep the reply inside our packet size, and the range inside the address space.
        var count = min(length, Self.packetSize / 2)
        if count > 0 && UInt64(count - 1) > UInt64.max - address {
            count = Int(UInt64.max - address) + 1
        }
        let finish: ([UInt8]) -> [UInt8] = { framed ? PacketEncoder.frame($0) : $0 }
        guard count > 0 else { return finish(binary ? [UInt8(ascii: "b")] : []) }
        let thread = resolve(generalThread)
        var failure: TargetError?
        var read = 0
        var runs = HexRunWriter()
        // `$`, `b`, two bytes per data byte (hex digits or an escape), `#cs`.
        let reply = [UInt8](unsafeUninitializedCapacity: 2 * count + 5) { out, initialized in
            var n = 0, taken = 0
            if framed { out[n] = UInt8(ascii: "$"); n += 1 }
            var sum: UInt32 = 0
            if binary { out[n] = UInt8(ascii: "b"); n += 1; sum = UInt32(UInt8(ascii: "b")) }
            do throws(TargetError) {
                read = try target.readMemory(address: address, count: count, thread: thread) { piece in
                    // Never more than `count` bytes in all, whatever the target hands over.
                    let piece = UnsafeRawBufferPointer(rebasing: piece.prefix(count - taken))
                    taken += piece.count
                    if binary {
                        n = PacketEncoder.escape(piece, into: out, at: n, sum: &sum, escaping: framed)
                    } else if framed {
                        // Runs (zeroed memory) as `c*N` as the digits are written: gdb's
                        // per-character read loop is what a large read costs it (see RunLength).
                        n = runs.write(piece, into: out.baseAddress!, at: n, sum: &sum)
                    } else {
                        // SAFETY: 2 * piece.count digits fit: the capacity holds 2 * count.
                        sum &+= UInt32(Hex.encode(piece, to: UnsafeMutableRawPointer(out.baseAddress! + n)))
                        n += 2 * piece.count
                    }
                }
            } catch {
                failure = error
            }
            read = min(read, taken)
            if framed && failure == nil && read > 0 {
                // Runs in binary replies are found after escaping (see RunLength.compress).
                n = binary ? RunLength.compress(out, from: 2, to: n, sum: &sum) : runs.finish(into: out.baseAddress!, at: n, sum: &sum)
                n = PacketEncoder.finish(out, at: n, sum: UInt8(truncatingIfNeeded: sum))
            }
            initialized = n
        }
        if let failure { return finish(Reply.error(failure, messagesAllowed: errorMessagesAllowed)) }
        // Nothing readable must be an error: an empty `m` reply would read as "unsupported".
        guard read > 0 else { return finish(Reply.error(14)) }
        return reply
    }

    /// `qSearch:memory`: `1,addr` for the first match, `0` for none, `Exx` when memory the
    /// search needs is unreadable.
    func searchReply(address: UInt64, length: UInt64, pattern: [UInt8]) -> [[UInt8]] {
        let length = Self.clamped(length, at: address)
        do throws(TargetError) {
            guard let found = try target.searchMemory(address: address, length: length, pattern: pattern,
                                                      thread: resolve(generalThread)) else {
                return [[UInt8(ascii: "0")]]
            }
            var reply = Array("1,".utf8)
            Hex.appendNumber(found, to: &reply)
            return [reply]
        } catch {
            return [Reply.error(error, messagesAllowed: errorMessagesAllowed)]
        }
    }

    /// `qCRC`: `Cxxxxxxxx`, or `Exx` when part of the range is unreadable.
    func crcReply(address: UInt64, length: UInt64) -> [[UInt8]] {
        let length = Self.clamped(length, at: address)
        do throws(TargetError) {
            let crc = try target.crc32(address: address, length: length, thread: resolve(generalThread))
            var reply: [UInt8] = [UInt8(ascii: "C")]
            Hex.appendNumber(UInt64(crc), minimumDigits: 8, to: &reply)
            return [reply]
        } catch {
            return [Reply.error(error, messagesAllowed: errorMessagesAllowed)]
        }
    }

    /// A length cut so that the range ends at the top of the address space at the latest.
    static func clamped(_ length: UInt64, at address: UInt64) -> UInt64 {
        guard length > 0, length - 1 > UInt64.max - address else { return length }
        return UInt64.max - address + 1
    }
}
