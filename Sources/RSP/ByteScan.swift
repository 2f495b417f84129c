#if canImport(Glibc)
import Glibc
#endif

/// Whole-buffer byte scans for the packet paths that see 128 KiB at a time (large `M`/`X`
/// packets): libc's vectorised memchr, and a checksum summed sixteen bytes a step.
enum ByteScan {
    /// The offset of the first `byte` in `buffer`.
    static func firstIndex(of byte: UInt8, in buffer: UnsafeRawBufferPointer) -> Int? {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return nil }
        // SAFETY: memchr reads at most buffer.count bytes from its start.
        guard let hit = memchr(base, Int32(byte), buffer.count) else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    /// The sum of the bytes, modulo 256 (the packet checksum).
    static func sum(_ buffer: UnsafeRawBufferPointer) -> UInt8 {
        guard let base = buffer.baseAddress else { return 0 }
        var lanes = SIMD16<UInt16>()
        var total: UInt64 = 0
        var i = 0
        while i + 16 <= buffer.count {
            // SAFETY: bytes i..<i+16 are inside the buffer; the load is unaligned-safe.
            lanes &+= SIMD16<UInt16>(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self))
            i += 16
            // Each lane gains at most 255 per step: fold every 256 steps, before 65535.
            if i & 0xFFF == 0 {
                total &+= UInt64(lanes.wrappedSum())
                lanes = SIMD16<UInt16>()
            }
        }
        total &+= UInt64(lanes.wrappedSum())
        while i < buffer.count {
            total &+= UInt64(buffer[i])
            i += 1
        }
        return UInt8(truncatingIfNeeded: total)
    }
}
