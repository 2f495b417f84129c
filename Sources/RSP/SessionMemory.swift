// Memory replies, built for speed: `m` and `x` answers are written straight into their framed
// packet (hex never needs escaping, so the digits and the checksum come from one pass over the
// bytes read), and `find` and `compare-sections` are computed on this side of the connection.

extension Session {
    /// The reply to `m addr,len` (hex) or `x addr,len` (`b` + binary), framed (`$...#cs`) when
    /// `framed`. Short reads answer what could be read; nothing readable is an error.
    func memoryReadReply(address: UInt64, length: Int, binary: Bool, framed: Bool) -> [UInt8] {
        // Keep the reply inside our packet size, and the range inside the address space.
        var count = min(length, Self.packetSize / 2)
        if count > 0 && UInt64(count - 1) > UInt64.max - address {
            count = Int(UInt64.max - address) + 1
        }
        let prefix: [UInt8] = binary ? [UInt8(ascii: "b")] : []
        let finish: ([UInt8]) -> [UInt8] = { framed ? PacketEncoder.frame($0) : $0 }
        guard count > 0 else { return finish(prefix) }
        let thread = resolve(generalThread)
        let result = withUnsafeTemporaryAllocation(byteCount: count, alignment: 16) { buffer -> Result<[UInt8], TargetError> in
            do throws(TargetError) {
                let n = min(count, try target.readMemory(address: address, into: buffer, thread: thread))
                // Nothing readable must be an error: an empty `m` reply would read as "unsupported".
                guard n > 0 else { return .failure(.errno(14)) }
                let data = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                if binary { return .success(framed ? PacketEncoder.frame(prefix: prefix, data) : prefix + Array(data)) }
                return .success(Self.hexReply(data, framed: framed))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let reply): return reply
        case .failure(let error): return finish(Reply.error(error, messagesAllowed: errorMessagesAllowed))
        }
    }

    /// Two digits per byte, with `$` before and `#cs` after when `framed`.
    static func hexReply(_ data: UnsafeRawBufferPointer, framed: Bool) -> [UInt8] {
        let lead = framed ? 1 : 0
        let digits = 2 * data.count
        return [UInt8](unsafeUninitializedCapacity: lead + digits + (framed ? 3 : 0)) { out, initialized in
            // SAFETY: the capacity holds the lead byte, the digits and the three trailing bytes.
            let sum = Hex.encode(data, to: UnsafeMutableRawPointer(out.baseAddress!) + lead)
            if framed {
                out[0] = UInt8(ascii: "$")
                initialized = PacketEncoder.finish(out, at: lead + digits, sum: sum)
            } else {
                initialized = digits
            }
        }
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
