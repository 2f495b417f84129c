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

/// The hex digits of an `m` reply, written piece by piece as the target hands its memory over,
/// with the runs of a byte whose two digits are the same (zeroed memory's `00`, `ff`, ...)
/// run-length encoded as they are found in the bytes: no digits are written for what a run
/// stands for, and nothing is scanned twice, where hex-encoding everything first and then
/// `RunLength.compress` wrote 128 KiB of `0` for a zeroed 64 KiB and read them all again. Runs
/// are found through whole 8-byte words of one byte, and one may go on into the next piece;
/// `finish` writes the last one out.
struct HexRunWriter {
    private var runByte: UInt8 = 0
    /// Source bytes of the run not yet written out.
    private var runLength = 0

    static let ones: UInt64 = 0x0101_0101_0101_0101

    /// Writes `source` at `out + index` (at most 2 digits per byte) and returns the index after
    /// it; `sum` gains the bytes written.
    mutating func write(_ source: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>, at index: Int,
                        sum: inout UInt32) -> Int {
        guard let base = source.baseAddress else { return index }
        let count = source.count
        var n = index
        var literal = 0   // the first source byte not written out or taken into the run
        if runLength > 0 {
            // The run left pending by the last piece goes on while its byte does.
            let word = UInt64(runByte) &* Self.ones
            // SAFETY: literal + 8 <= count and literal < count keep every load inside `source`.
            while literal + 8 <= count && base.loadUnaligned(fromByteOffset: literal, as: UInt64.self) == word { literal += 8 }
            while literal < count && base.load(fromByteOffset: literal, as: UInt8.self) == runByte { literal += 1 }
            runLength += literal
            if literal == count { return n }
            n = flushRun(into: out, at: n, sum: &sum)
        }
        var scan = literal
        while scan + 8 <= count {
            // SAFETY: scan + 8 <= count; unaligned loads are allowed.
            let word = base.loadUnaligned(fromByteOffset: scan, as: UInt64.self)
            let b = UInt8(truncatingIfNeeded: word)
            guard word == UInt64(b) &* Self.ones, b >> 4 == b & 0xF else {
                scan += 8
                continue
            }
            var first = scan
            // SAFETY: every index below stays inside [literal, count).
            while first > literal && base.load(fromByteOffset: first - 1, as: UInt8.self) == b { first -= 1 }
            var past = scan + 8
            while past + 8 <= count && base.loadUnaligned(fromByteOffset: past, as: UInt64.self) == word { past += 8 }
            while past < count && base.load(fromByteOffset: past, as: UInt8.self) == b { past += 1 }
            n = writeLiteral(base + literal, count: first - literal, into: out, at: n, sum: &sum)
            runByte = b
            runLength = past - first
            literal = past
            scan = past
            // A run that reaches the end of the piece may go on in the next one.
            if past < count { n = flushRun(into: out, at: n, sum: &sum) }
        }
        return writeLiteral(base + literal, count: count - literal, into: out, at: n, sum: &sum)
    }

    /// Writes the pending run, if any; returns the index after the output.
    mutating func finish(into out: UnsafeMutablePointer<UInt8>, at index: Int, sum: inout UInt32) -> Int {
        flushRun(into: out, at: index, sum: &sum)
    }

    private mutating func flushRun(into out: UnsafeMutablePointer<UInt8>, at index: Int, sum: inout UInt32) -> Int {
        guard runLength > 0 else { return index }
        let n = RunLength.encodeRun(of: Hex.digits[Int(runByte & 0xF)], count: 2 * runLength, into: out, at: index, sum: &sum)
        runLength = 0
        return n
    }

    private func writeLiteral(_ start: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<UInt8>, at index: Int,
                              sum: inout UInt32) -> Int {
        guard count > 0 else { return index }
        sum &+= UInt32(Hex.encode(UnsafeRawBufferPointer(start: start, count: count), to: UnsafeMutableRawPointer(out + index)))
        return index + 2 * count
    }
}
