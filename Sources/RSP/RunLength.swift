// Run-length encoding of large replies (the protocol's "Run-Length Encoding": `c*N` stands for
// `c` followed by N - 29 more copies of it, N printable and neither `#` nor `$`).
//
// Why: gdb reads a reply one character at a time (remote.c, read_frame: readchar per byte, the
// checksum, the buffer), about 25 ns a character here, and that loop was 96% of an 8 MiB read
// through gdb 13: a 64 KiB `m` reply is 128 KiB of hex. read_frame expands `*` itself, before
// anything else looks at the packet (`case '*': ... repeat = c - ' ' + 3; memset (&buf[bc],
// buf[bc - 1], repeat)`), for every packet, which is what gdbserver's putpkt relies on (its
// try_rle compresses every reply it sends). LLDB expands it too (GDBRemoteCommunication's
// ExpandRLE). Zeroed memory, the common case in a guest, then costs gdb 3 characters per 98.
// What gdb decodes is byte for byte what it would have got without it.

enum RunLength {
    /// The longest repeat one `*` carries: `~` (126) - 29.
    static let maximumRepeat = 97

    /// Compresses `buffer[start..<end]` in place and returns its new end; `sum`, the checksum
    /// of those bytes so far (and of anything before them), becomes that of the compressed
    /// bytes. Only runs found through whole 8-byte words of one character are encoded (a run of
    /// 23 or more always is), so incompressible data costs one 8-byte compare per 16 bytes. The
    /// region must hold no `$`, `#` or `*`, and a `}` only as the first byte of an escape pair
    /// (a framed payload does): a run never starts on the byte an escape covers, so a decoder
    /// that unescapes while it expands (LLDB's) repeats the right byte.
    static func compress(_ buffer: UnsafeMutableBufferPointer<UInt8>, from start: Int, to end: Int,
                         sum: inout UInt32) -> Int {
        guard let base = buffer.baseAddress, end - start >= 8 else { return end }
        precondition(start >= 0 && end <= buffer.count)
        let raw = UnsafeMutableRawPointer(base)
        var total = sum
        var read = start      // the first input byte not yet written out
        var write = start     // where the next output byte goes; never past `read`
        var scan = start
        while scan + 8 <= end {
            // SAFETY: scan + 8 <= end <= buffer.count; unaligned loads are allowed.
            let word = raw.loadUnaligned(fromByteOffset: scan, as: UInt64.self)
            guard word == (word & 0xFF) &* 0x0101_0101_0101_0101 else {
                scan += 16
                continue
            }
            let c = base[scan]
            var first = scan
            while first > read && base[first - 1] == c { first -= 1 }
            // The byte after a `}` is part of its escape pair: the run starts after it.
            if first > read && base[first - 1] == UInt8(ascii: "}") { first += 1 }
            var past = scan + 8
            // SAFETY: past + 8 <= end.
            while past + 8 <= end && raw.loadUnaligned(fromByteOffset: past, as: UInt64.self) == word { past += 8 }
            while past < end && base[past] == c { past += 1 }
            // The literal bytes before the run move down to the output position.
            if write != read && first > read {
                // SAFETY: both ranges are inside the buffer; memmove semantics allow overlap.
                (raw + write).copyMemory(from: raw + read, byteCount: first - read)
            }
            write += first - read
            total &-= UInt32(c) &* UInt32(past - first)
            write = encodeRun(of: c, count: past - first, into: base, at: write, sum: &total)
            read = past
            scan = past
        }
        if write != read && end > read {
            // SAFETY: as above.
            (raw + write).copyMemory(from: raw + read, byteCount: end - read)
        }
        sum = total
        return write + (end - read)
    }

    /// Writes `count` copies of `c` as literal bytes and `c*N` groups at `index` (never more
    /// bytes than `count`: a group of 1 + n copies takes 3, n >= 3), adding them to `sum`;
    /// returns the index after them.
    static func encodeRun(of c: UInt8, count: Int, into out: UnsafeMutablePointer<UInt8>, at index: Int,
                          sum: inout UInt32) -> Int {
        var n = index, left = count
        while left > 0 {
            out[n] = c
            n += 1
            sum &+= UInt32(c)
            left -= 1
            if left >= 3 {
                var repeats = min(left, maximumRepeat)
                // 6 and 7 repeats would be `#` and `$`, the framing bytes: 5, and the rest follows.
                if repeats == 6 || repeats == 7 { repeats = 5 }
                out[n] = UInt8(ascii: "*")
                out[n + 1] = UInt8(repeats + 29)
                sum &+= UInt32(UInt8(ascii: "*")) &+ UInt32(repeats + 29)
                n += 2
                left -= repeats
            } else {
                for _ in 0..<left {
                    out[n] = c
                    n += 1
                    sum &+= UInt32(c)
                }
                left = 0
            }
        }
        return n
    }
}
