#if canImport(Glibc)
import Glibc
#endif

/// gdb's `find` done by the stub (`qSearch:memory`): the memory is read a window at a time
/// straight into one buffer, and each window is searched with memchr/memcmp, so an 8 MiB search
/// is one round trip instead of gdb reading all 8 MiB in `m` packets.
enum MemorySearch {
    /// Bytes read per step.
    static let window = 1 << 20

    /// Reads memory into the buffer it is given, from the address it is given; returns the bytes
    /// read from the start (fewer at unreadable memory).
    typealias Reader = (UInt64, UnsafeMutableRawBufferPointer) throws(TargetError) -> Int

    /// The first address in [address, address + length) where `pattern` lies entirely; nil when
    /// there is none. Throws `.errno(14)` when the search reaches memory it cannot read before
    /// finding the pattern. Windows overlap by pattern.count - 1 bytes, so a match that spans
    /// two windows (or two pages) is found.
    static func find(_ pattern: [UInt8], address: UInt64, length: UInt64, window: Int = window,
                     read: Reader) throws(TargetError) -> UInt64? {
        let p = pattern.count
        guard p > 0, UInt64(p) <= length else { return nil }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: window + p - 1, alignment: 16)
        defer { buffer.deallocate() }
        var carried = 0
        var next = address
        var left = length
        while left > 0 {
            let want = Int(min(UInt64(window), left))
            let got = min(want, max(0, try read(next, UnsafeMutableRawBufferPointer(rebasing: buffer[carried..<carried + want]))))
            let filled = carried + got
            if let i = firstMatch(pattern, in: UnsafeRawBufferPointer(rebasing: buffer[0..<filled])) {
                return next &- UInt64(carried) &+ UInt64(i)
            }
            if got < want { throw .errno(14) }
            left -= UInt64(want)
            next &+= UInt64(want)
            let keep = min(p - 1, filled)
            // SAFETY: both ranges lie inside the buffer; memmove allows them to overlap.
            if keep > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + (filled - keep), keep) }
            carried = keep
        }
        return nil
    }

    /// The offset of the first occurrence of `pattern` in `haystack`.
    static func firstMatch(_ pattern: [UInt8], in haystack: UnsafeRawBufferPointer) -> Int? {
        let p = pattern.count
        guard p > 0, haystack.count >= p, let base = haystack.baseAddress else { return nil }
        return pattern.withUnsafeBytes { needle -> Int? in
            let first = Int32(needle[0])
            var start = 0
            let lastStart = haystack.count - p
            while start <= lastStart {
                // SAFETY: memchr looks at most lastStart - start + 1 bytes from start, all inside
                // the haystack; memcmp compares p bytes from a start <= lastStart.
                guard let hit = memchr(base + start, first, lastStart - start + 1) else { return nil }
                let offset = base.distance(to: UnsafeRawPointer(hit))
                if p == 1 || memcmp(base + offset + 1, needle.baseAddress! + 1, p - 1) == 0 { return offset }
                start = offset + 1
            }
            return nil
        }
    }
}
